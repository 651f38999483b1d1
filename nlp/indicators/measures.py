"""Measures per metropolis × theme (× year, × document type), with bootstrap intervals
(stage: indicators).

Input: a :class:`~nlp.indicators.base.Base`. Output: :class:`Level` objects (cell sums and
draws) and the tidy table of every measure:

- ``paragraph_share`` (primary): share of the cell's analysed paragraphs where the theme
  counts (the validated unit: paragraph labels);
- ``document_share``: share of the cell's analysed documents with at least one such paragraph;
- ``hits_per_10k_words`` (secondary): counting lexicon hits per 10,000 words of analysed
  paragraphs;
- ``paragraph_share_adjusted``: the paragraph share standardised over document types with the
  fixed weights of the settings (a metropolis is not ranked by what its site happens to
  publish): Σ_type w_type · share_type / Σ w_type over the types it has;
- ``paragraph_share_corrected``: the paragraph share corrected for the detector's measured
  error (Rogan–Gladen: (p + specificity − 1) / (sensitivity + specificity − 1), clipped to
  [0, 1]); its interval also draws sensitivity and specificity from their Beta posteriors
  given the validation counts, so it carries the validation sample's own uncertainty.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nlp.indicators.base import Base
from nlp.indicators.bootstrap import Cells, aggregate, group_codes, percentiles, ratio

MEASURES = ("paragraph_share", "document_share", "hits_per_10k_words", "paragraph_share_adjusted",
            "paragraph_share_corrected")
TIDY_COLUMNS = ["level", "metropole", "theme", "year", "doc_type", "measure", "value", "ci_low", "ci_high",
                "n_documents", "n_paragraphs", "n_words", "small_cell", "corrected_from"]


@dataclass
class Level:
    """Cells of one level (``all``, ``year`` or ``doc_type``) over ``T`` columns."""

    name: str
    cells: Cells
    T: int

    def _block(self, k: int, arr: np.ndarray) -> np.ndarray:
        return arr[..., k * self.T:(k + 1) * self.T]

    def _col(self, j: int, arr: np.ndarray) -> np.ndarray:
        return arr[..., 4 * self.T + j]

    def value(self, measure: str, arr: np.ndarray) -> np.ndarray:
        """A measure from sums ``arr`` (``G × K`` or ``B × G × K``)."""
        npar, words, ndocs = self._col(0, arr), self._col(1, arr), self._col(2, arr)
        if measure == "paragraph_share":
            return ratio(self._block(0, arr), npar[..., None])
        if measure == "document_share":
            return ratio(self._block(1, arr), ndocs[..., None])
        if measure == "label_share":
            return ratio(self._block(2, arr), npar[..., None])
        if measure == "hits_per_10k_words":
            return ratio(self._block(3, arr), words[..., None], 1e4)
        raise KeyError(measure)

    def point(self, measure: str) -> np.ndarray:
        return self.value(measure, self.cells.sums)

    def draws(self, measure: str) -> np.ndarray | None:
        return None if self.cells.draws is None else self.value(measure, self.cells.draws)

    @property
    def n_paragraphs(self) -> np.ndarray:
        return self._col(0, self.cells.sums)

    @property
    def n_words(self) -> np.ndarray:
        return self._col(1, self.cells.sums)


def build_level(base: Base, name: str, draws: int, seed: int, client: Any = None) -> Level | None:
    """The cells of one level (``all``, ``year``, ``doc_type``) with their bootstrap draws
    (computed on ``client``'s cluster when given, :func:`nlp.indicators.bootstrap.aggregate`)."""
    cols = {"all": ["metropole"], "year": ["metropole", "year"], "doc_type": ["metropole", "doc_type"]}[name]
    docs = base.docs
    M = base.stacked()
    if name == "year":
        sel = docs["year"].notna().to_numpy()
        docs, M = docs[sel].reset_index(drop=True), M[sel]
    if name != "all" and docs.empty:
        return None
    codes, keys, kstr = group_codes(docs, cols, base.metropoles)
    return Level(name, aggregate(codes, keys, kstr, M, draws, seed, client), len(base.columns))


def mix_adjusted(all_level: Level, type_level: Level, type_weights: dict[str, float], draws: bool
                 ) -> np.ndarray | None:
    """Paragraph shares standardised over document types (``G_all × T``, or ``B × G_all × T``)."""
    keys = type_level.cells.keys
    src = type_level.draws("paragraph_share") if draws else type_level.point("paragraph_share")
    if src is None:
        return None
    out_shape = (*src.shape[:-2], len(all_level.cells.keys), src.shape[-1])
    num, den = np.zeros(out_shape), np.zeros(out_shape)
    metro_index = {m: i for i, m in enumerate(all_level.cells.keys["metropole"])}
    npar = type_level.n_paragraphs
    for g, (m, t) in enumerate(zip(keys["metropole"], keys["doc_type"])):
        w = float(type_weights.get(str(t), type_weights.get("autre", 0.0)))
        if w <= 0 or npar[g] <= 0:
            continue
        share = src[..., g, :]
        i = metro_index[m]
        ok = ~np.isnan(share)
        num[..., i, :] += np.where(ok, w * share, 0.0)
        den[..., i, :] += np.where(ok, w, 0.0)
    return ratio(num, den)


@dataclass
class Correction:
    """Per-column validation counts (tp, fp, fn, tn) and where they come from."""

    counts: dict[str, dict[str, float]]
    source: str


def rogan_gladen(p: np.ndarray, sens: np.ndarray, spec: np.ndarray) -> np.ndarray:
    """(p + spec − 1) / (sens + spec − 1), clipped to [0, 1]; NaN where sens + spec ≤ 1.05
    (a detector barely better than chance cannot be corrected for)."""
    den = sens + spec - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0.05, (p + spec - 1.0) / np.where(den > 0.05, den, 1.0), np.nan)
    return np.clip(out, 0.0, 1.0)


def corrected(level: Level, columns: list[str], correction: Correction, draws: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """Point and draws of the corrected paragraph share (columns without counts stay NaN)."""
    T = len(columns)
    sens_hat, spec_hat = np.full(T, np.nan), np.full(T, np.nan)
    a = np.ones((T, 4))
    for j, c in enumerate(columns):
        k = correction.counts.get(c)
        if k:
            tp, fp, fn, tn = (float(k[x]) for x in ("tp", "fp", "fn", "tn"))
            if tp + fn > 0 and tn + fp > 0:
                sens_hat[j], spec_hat[j] = tp / (tp + fn), tn / (tn + fp)
                a[j] = (tp, fp, fn, tn)
    point = rogan_gladen(level.point("paragraph_share"), sens_hat, spec_hat)
    pd_ = level.draws("paragraph_share")
    if pd_ is None:
        return point, None
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 99]))
    B = pd_.shape[0]
    sens = rng.beta(a[:, 0] + 1, a[:, 2] + 1, size=(B, T))
    spec = rng.beta(a[:, 3] + 1, a[:, 1] + 1, size=(B, T))
    sens[:, np.isnan(sens_hat)] = np.nan
    return point, rogan_gladen(pd_, sens[:, None, :], spec[:, None, :])


def tidy(level: Level, columns: list[str], values: dict[str, tuple[np.ndarray, np.ndarray | None]],
         confidence: float, min_documents: int, corrected_from: str | None) -> pd.DataFrame:
    """Tidy rows of one level: every cell × column × measure with its interval."""
    keys = level.cells.keys.reset_index(drop=True)
    G, T = len(keys), len(columns)
    frames = []
    for measure, (point, dr) in values.items():
        lo = hi = np.full((G, T), np.nan)
        if dr is not None:
            lo, hi = percentiles(dr, confidence)
        frames.append(pd.DataFrame({
            "level": level.name,
            "metropole": np.repeat(keys["metropole"].to_numpy(), T),
            "theme": np.tile(np.array(columns, dtype=object), G),
            "year": np.repeat(keys["year"].to_numpy(), T) if "year" in keys else pd.NA,
            "doc_type": np.repeat(keys["doc_type"].to_numpy(), T) if "doc_type" in keys else None,
            "measure": measure, "value": point.ravel(), "ci_low": lo.ravel(), "ci_high": hi.ravel(),
            "n_documents": np.repeat(level.cells.n_docs, T), "n_paragraphs": np.repeat(level.n_paragraphs, T),
            "n_words": np.repeat(level.n_words, T),
            "small_cell": np.repeat(level.cells.n_docs < min_documents, T),
            "corrected_from": corrected_from if measure == "paragraph_share_corrected" else None,
        }))
    out = pd.concat(frames, ignore_index=True)
    out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("Int64")
    out["doc_type"] = out["doc_type"].astype(object)
    return out[TIDY_COLUMNS]


def level_values(level: Level, measures: tuple[str, ...] = ("paragraph_share", "document_share", "hits_per_10k_words")
                 ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    return {m: (level.point(m), level.draws(m)) for m in measures}

