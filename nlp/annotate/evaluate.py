"""Scoring the theme detector against human labels (``barometre eval``).

Input: gold label sets and predicted label sets of the same paragraphs, with the document of
each paragraph (and its genre). Output: an :class:`EvalReport`: per label the confusion counts,
precision, recall, F1 and specificity with percentile bootstrap intervals that resample
DOCUMENTS (paragraphs of one document are not independent), the macro-F1 over the ten themes
with its interval, the same per genre, and the polarity of driver themes (the ``negated``
field) against the gold.

The counts are also what the indicators use to correct prevalences for the detector's error
(sensitivity = recall, specificity = tn / (tn + fp)): :func:`write_validation` saves them.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nlp.io import atomic_write
from nlp.schema import LABELS, THEMES

THEME_IDS = tuple(THEMES)
SUB_IDS = tuple(lab for lab in LABELS if "." in lab)


@dataclass
class EvalReport:
    """Scores of one method on one set of paragraphs."""

    name: str
    n: int
    n_documents: int
    labels: pd.DataFrame            # one row per label: counts, scores, intervals
    macro_f1: float
    macro_ci: tuple[float, float]
    by_genre: pd.DataFrame          # genre, n, macro_f1, numerique_f1
    polarity: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)  # id, missing, spurious
    weighted: bool = False          # label scores weighted by sampling weights (corpus estimates)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "n": self.n, "n_documents": self.n_documents,
                "macro_f1": self.macro_f1, "macro_ci": list(self.macro_ci),
                "labels": self.labels.to_dict(orient="records"),
                "by_genre": self.by_genre.to_dict(orient="records"), "polarity": self.polarity,
                "weighted": self.weighted}

    def score(self, label: str, column: str = "f1") -> float:
        return float(self.labels.set_index("label").loc[label, column])


def _matrix(sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    idx = {lab: j for j, lab in enumerate(labels)}
    M = np.zeros((len(sets), len(labels)), dtype=bool)
    for i, s in enumerate(sets):
        for lab in s:
            if lab in idx:
                M[i, idx[lab]] = True
    return M


def _counts(G: np.ndarray, P: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """(labels, 4) array of tp, fp, fn, tn (weighted by ``w`` when given)."""
    w = np.ones(len(G)) if w is None else np.asarray(w, dtype=float)
    cells = (G & P, ~G & P, G & ~P, ~G & ~P)
    return np.stack([(w[:, None] * m).sum(0) for m in cells], axis=1)


def _scores(c: np.ndarray) -> dict[str, np.ndarray]:
    tp, fp, fn, tn = (c[..., k].astype(float) for k in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        rec = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    return {"precision": prec, "recall": rec, "f1": f1, "specificity": spec}


def _doc_bootstrap(G: np.ndarray, P: np.ndarray, groups: Sequence[str], draws: int, seed: int,
                   w: np.ndarray | None = None) -> np.ndarray:
    """(draws, labels, 4) confusion counts with documents resampled with replacement."""
    codes, uniq = pd.factorize(pd.Series(list(groups)))
    n_docs = len(uniq)
    per_doc = np.zeros((n_docs, G.shape[1], 4))
    cells = np.stack([G & P, ~G & P, G & ~P, ~G & ~P], axis=2).astype(float)
    if w is not None:
        cells *= np.asarray(w, dtype=float)[:, None, None]
    np.add.at(per_doc, codes, cells)
    rng = np.random.default_rng(seed)
    out = np.empty((draws, G.shape[1], 4))
    for b in range(draws):
        w = np.bincount(rng.integers(0, n_docs, n_docs), minlength=n_docs).astype(float)
        out[b] = np.tensordot(w, per_doc, axes=(0, 0))
    return out


def _nanquantile(values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """``np.nanquantile`` that gives NaN, without numpy's warning, where every value is NaN
    (a label with no gold and no predicted paragraph in any draw)."""
    if np.isnan(values).all():
        return np.full(len(qs), np.nan)
    return np.nanquantile(values, qs)


def _nanmean(values: np.ndarray, axis: int | None = None) -> Any:
    """``np.nanmean`` without numpy's warning for an all-NaN slice (its mean is NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def evaluate_sets(name: str, gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]],
                  groups: Sequence[str], genres: Sequence[str] | None = None,
                  labels: Sequence[str] = LABELS, draws: int = 1000, seed: int = 42,
                  confidence: float = 0.95, weights: Sequence[float] | None = None,
                  ids: Sequence[str] | None = None) -> EvalReport:
    """Score ``predicted`` against ``gold`` (see the module docstring). ``weights``: sampling
    weights of the paragraphs (inverse inclusion probabilities of a stratified sample), so
    that recall and specificity estimate the corpus's, not the sample's."""
    labels = list(labels)
    G, P = _matrix(gold, labels), _matrix(predicted, labels)
    w = None if weights is None else np.asarray(weights, dtype=float)
    c = _counts(G, P, w)
    sc = _scores(c)
    boot = _scores(_doc_bootstrap(G, P, groups, draws, seed, w)) if draws else None
    alpha = (1 - confidence) / 2
    rows = []
    for j, lab in enumerate(labels):
        row = {"label": lab, "tp": float(c[j, 0]), "fp": float(c[j, 1]), "fn": float(c[j, 2]),
               "tn": float(c[j, 3]), "support": int(G[:, j].sum())}
        for m in ("precision", "recall", "f1", "specificity"):
            row[m] = float(sc[m][j])
            if boot is not None:
                lo, hi = _nanquantile(boot[m][:, j], [alpha, 1 - alpha])
                row[f"{m}_low"], row[f"{m}_high"] = float(lo), float(hi)
        rows.append(row)
    table = pd.DataFrame(rows)
    theme_cols = [labels.index(t) for t in THEME_IDS if t in labels]
    macro = float(_nanmean(sc["f1"][theme_cols]))
    ci = (float("nan"), float("nan"))
    if boot is not None:
        ci = tuple(float(x) for x in _nanquantile(_nanmean(boot["f1"][:, theme_cols], axis=1), [alpha, 1 - alpha]))
    errors = []
    for i in np.flatnonzero((G != P).any(axis=1)):
        errors.append({"id": str(ids[i]) if ids is not None else str(i),
                       "missing": [labels[j] for j in np.flatnonzero(G[i] & ~P[i])],
                       "spurious": [labels[j] for j in np.flatnonzero(P[i] & ~G[i])]})
    return EvalReport(name=name, n=len(gold), n_documents=len(set(groups)), labels=table,
                      macro_f1=macro, macro_ci=ci, by_genre=_by_genre(G, P, genres, labels, theme_cols),
                      errors=errors, weighted=w is not None and bool(np.any(w != 1.0)))


def _by_genre(G: np.ndarray, P: np.ndarray, genres: Sequence[str] | None, labels: Sequence[str],
              theme_cols: list[int]) -> pd.DataFrame:
    rows = []
    if genres is not None:
        genres_a = np.asarray(list(genres))
        for g in sorted(set(genres_a.tolist())):
            sel = genres_a == g
            sc = _scores(_counts(G[sel], P[sel]))
            rows.append({"genre": g, "n": int(sel.sum()), "macro_f1": float(_nanmean(sc["f1"][theme_cols])),
                         "numerique_f1": float(sc["f1"][labels.index("numerique")]) if "numerique" in labels else np.nan})
    return pd.DataFrame(rows, columns=["genre", "n", "macro_f1", "numerique_f1"])


def polarity_scores(gold_labels: Sequence[Sequence[str]], gold_negated: Sequence[Sequence[str]],
                    predicted_negated: Sequence[Sequence[str]], drivers: Sequence[str]) -> dict[str, Any]:
    """The ``negated`` flag of driver themes against the gold, on the (paragraph, theme) pairs
    the gold labels: precision, recall and counts (the detector's polarity comes from the
    hits of each theme; a theme without hits is never negated)."""
    tp = fp = fn = 0
    for labs, gneg, pneg in zip(gold_labels, gold_negated, predicted_negated):
        for t in drivers:
            if t not in labs:
                continue
            g, p = t in gneg, t in pneg
            tp += g and p
            fp += p and not g
            fn += g and not p
    return {"pairs_negated_gold": tp + fn, "pairs_negated_predicted": tp + fp, "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None}


def format_report(report: EvalReport, sub_labels: bool = True, max_errors: int = 0) -> str:
    """A plain-text table: one line per label with P, R, F1 (and their intervals), then the
    first ``max_errors`` paragraphs where detector and gold disagree."""
    lines = [f"== {report.name}" + (f" [{report.model}]" if report.model else "")
             + f": {report.n} paragraphs, {report.n_documents} documents"
             + ("; P, R, F1 weighted by the sample's weights (estimates for the corpus it was drawn from; "
                "support: paragraphs coded)" if report.weighted else ""),
             f"{'label':30s} {'P':>5s} {'R':>5s} {'F1':>5s}  F1 interval     support"]
    for r in report.labels.itertuples():
        if not sub_labels and "." in r.label:
            continue
        ci = f"[{r.f1_low:.2f}, {r.f1_high:.2f}]" if hasattr(r, "f1_low") and not np.isnan(r.f1_low) else ""
        lines.append(f"{r.label:30s} {r.precision:5.2f} {r.recall:5.2f} {r.f1:5.2f}  {ci:15s} {r.support:5d}")
    lines.append(f"macro-F1 over the ten themes: {report.macro_f1:.3f} "
                 f"[{report.macro_ci[0]:.3f}, {report.macro_ci[1]:.3f}]")
    if len(report.by_genre):
        lines.append(("by genre (unweighted): " if report.weighted else "by genre: ") + "; ".join(f"{g.genre} (n={g.n}) macro-F1 {g.macro_f1:.2f}, numerique {g.numerique_f1:.2f}"
                                              for g in report.by_genre.itertuples()))
    if report.polarity:
        p = report.polarity
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"polarity (driver themes spoken of as absent/lacking/another's): precision {fmt(p['precision'])}, "
                     f"recall {fmt(p['recall'])} ({p['pairs_negated_gold']} gold pairs)")
    for err in report.errors[:max_errors]:
        lines.append(f"  [{err['id']}] missing={','.join(err['missing']) or '-'} "
                     f"spurious={','.join(err['spurious']) or '-'}")
    return "\n".join(lines)


def write_validation(report: EvalReport, path: Path, source: str) -> Path:
    """Save a report's per-label counts (sensitivity, specificity) for the indicators'
    misclassification correction, with where they come from."""
    data = report.to_dict()
    data["source"] = source
    data["errors"] = report.errors
    atomic_write(path, json.dumps(data, ensure_ascii=False, indent=1, default=float))
    return path


def read_validation(path: Path) -> dict[str, dict[str, float]]:
    """label → {tp, fp, fn, tn} of a saved validation (see :func:`write_validation`)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {r["label"]: {k: r[k] for k in ("tp", "fp", "fn", "tn")} for r in data["labels"]}
