"""Joining external barometer scores to the text indicators, with honest statistics
(stage: indicators, ``barometre indicators --scores F``).

Input: a scores CSV, either tidy long (one row per metropolis × indicator [× year], columns
like ``slug, indicator, year, value, unit, level, source``) or wide (one row per metropolis,
identifier column(s) and one numeric column per score); the wide indicator table; the
identifiers of the metropolises IN the indicators (slug, name, SIREN).

Matching is against the metropolises present in the indicators only (slug, SIREN, normalised
name); every unmatched row of either side is listed, and nothing matching is an error. Gaps
stay gaps (never zeros); the ``level`` column (e.g. a central-city stand-in) is carried.

Correlations (Spearman) per text indicator × score: n, rho, an exact permutation p-value for
n ≤ 10 (all n! orderings; the normal approximation is wrong at n = 4: rho = 1 has exact
two-sided p = 0.083), the t approximation above; Holm and Benjamini–Hochberg corrections
across all the tests run; a warning below n = 8; and no interval below n = 5 (a bootstrap over
four points pretends to knowledge it does not have).
"""
from __future__ import annotations

import itertools
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nlp.errors import BarometreError
from nlp.indicators.bootstrap import cell_rng, percentiles
from nlp.indicators.keyness import benjamini_hochberg
from nlp.io import read_csv

EXACT_MAX_N = 10
WARN_BELOW_N = 8
NO_INTERVAL_BELOW_N = 5
_NAME_STOPWORDS = {"metropole", "eurometropole", "europeenne", "communaute", "urbaine", "d", "de", "du",
                   "des", "la", "le", "l", "les", "et"}
LONG_ID_COLUMNS = ("slug", "metropole", "siren", "name", "nom", "collectivite")


def normalise_name(name: Any) -> str:
    """"Métropole de Lyon" → "lyon", "Eurométropole de Strasbourg" → "strasbourg"."""
    if name is None or (isinstance(name, float) and math.isnan(name)):
        return ""
    s = unicodedata.normalize("NFKD", str(name))
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).lower()
    return " ".join(w for w in re.split(r"[^a-z0-9]+", s) if w and w not in _NAME_STOPWORDS)


def siren_of(value: Any) -> str | None:
    """Nine-digit SIREN from a cell (spaces allowed; a float from a numeric column too)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    digits = re.sub(r"\s", "", str(value))
    return digits if re.fullmatch(r"\d{9}", digits) else None


def to_number(col: pd.Series) -> pd.Series:
    """Numbers with a decimal comma or spaces as thousands separators; empty → NaN."""
    s = col.astype(str).str.replace("\u00a0", "", regex=False).str.replace(" ", "", regex=False)
    return pd.to_numeric(s.str.replace(",", ".", regex=False), errors="coerce")  # "" and "nan" → NaN


def read_scores(path: Path) -> tuple[pd.DataFrame, str]:
    """The scores as a long table (``identifier``, ``id_cells``, ``indicator``, ``year``,
    ``value``, ``unit``, ``level``, ``source``) and its input form (``long`` or ``wide``)."""
    path = Path(path)
    if not path.is_file():
        raise BarometreError(f"{path}: scores file not found")
    df, _dec, _delim = read_csv(path.read_bytes(), str(path), max_columns=1000)
    lower = {c.lower(): c for c in df.columns}
    if df.empty or len(df.columns) < 2:
        raise BarometreError(f"{path}: expected a header, an identifier column and at least one score")
    if "value" in lower and "indicator" in lower:
        ids = [lower[c] for c in LONG_ID_COLUMNS if c in lower]
        if not ids:
            raise BarometreError(f"{path}: a long scores file needs an identifier column ({', '.join(LONG_ID_COLUMNS)})")
        out = pd.DataFrame({"identifier": df[ids].astype(str).agg(" | ".join, axis=1) if len(ids) > 1 else df[ids[0]],
                            "id_cells": df[ids].to_dict(orient="records"),
                            "indicator": df[lower["indicator"]], "value": to_number(df[lower["value"]])})
        for extra in ("year", "unit", "level", "source"):
            out[extra] = df[lower[extra]] if extra in lower else None
        out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("Int64")
        out["line"] = np.arange(len(df)) + 2
        return out, "long"
    id_cols, score_cols = [], []
    for c in df.columns:
        nonempty = df[c][df[c] != ""]
        numeric = to_number(nonempty).notna().all() and len(nonempty) > 0
        looks_siren = len(nonempty) > 0 and nonempty.map(lambda v: siren_of(v) is not None).all()
        (id_cols if ("siren" in c.lower() or not numeric or looks_siren) else score_cols).append(c)
    if not score_cols:
        raise BarometreError(f"{path}: no numeric score column (columns: {', '.join(df.columns)})")
    if not id_cols:
        raise BarometreError(f"{path}: no identifier column (slug, SIREN or name): every column is numeric")
    rows = []
    for i, r in df.iterrows():
        for c in score_cols:
            rows.append({"identifier": " | ".join(str(r[k]) for k in id_cols), "id_cells": {k: r[k] for k in id_cols},
                         "indicator": c, "value": to_number(pd.Series([r[c]])).iloc[0], "year": pd.NA,
                         "unit": None, "level": None, "source": None, "line": int(i) + 2})
    out = pd.DataFrame(rows)
    out["year"] = out["year"].astype("Int64")
    return out, "wide"


def _matcher(targets: pd.DataFrame) -> Any:
    by_slug = {str(s).lower(): str(s) for s in targets["slug"]}
    by_siren = {siren_of(v): str(s) for s, v in zip(targets["slug"], targets["siren"]) if siren_of(v)}
    by_name: dict[str, set[str]] = {}
    for s, n in zip(targets["slug"], targets["name"]):
        for key in {normalise_name(n), normalise_name(str(s).replace("-", " "))}:
            if key:
                by_name.setdefault(key, set()).add(str(s))

    def match(cells: dict[str, Any]) -> tuple[set[str], str]:
        found: dict[str, str] = {}
        for v in cells.values():
            v = "" if v is None else str(v).strip()
            if not v:
                continue
            if v.lower() in by_slug:
                found.setdefault(by_slug[v.lower()], "slug")
            s = siren_of(v)
            if s and s in by_siren:
                found.setdefault(by_siren[s], "siren")
            for slug in by_name.get(normalise_name(v), ()):
                found.setdefault(slug, "name")
        return set(found), ",".join(sorted(set(found.values())))
    return match


@dataclass
class JoinResult:
    """Tables of the join and a stdout summary (see :func:`join_scores`)."""

    long: pd.DataFrame
    wide: pd.DataFrame
    correlations: pd.DataFrame
    unmatched: pd.DataFrame
    coverage: pd.DataFrame
    report: str
    form: str


def join_scores(wide_indicators: pd.DataFrame, scores_path: Path, targets: pd.DataFrame,
                draws: int = 1000, seed: int = 42, confidence: float = 0.95) -> JoinResult:
    """See the module docstring. ``targets``: slug, name, siren of the metropolises in the
    indicators."""
    scores, form = read_scores(scores_path)
    match = _matcher(targets)
    slugs, how, unmatched = [], [], []
    for r in scores.itertuples(index=False):
        found, by = match(r.id_cells)
        if len(found) == 1:
            slugs.append(next(iter(found)))
            how.append(by)
        else:
            slugs.append(None)
            how.append(None)
            reason = "matches none of the metropolises in the indicators" if not found else \
                "ambiguous: matches " + ", ".join(sorted(found))
            unmatched.append(("scores", r.line, r.identifier, r.indicator, reason))
    scores = scores.assign(metropole=slugs, matched_by=how)
    matched = scores[scores["metropole"].notna()]
    if matched.empty:
        raise BarometreError(
            f"{scores_path}: no row matches a metropolis of the indicators "
            f"({', '.join(sorted(targets['slug']))}); identifiers seen: "
            + ", ".join(sorted(set(scores["identifier"].astype(str)))[:10]))
    for slug in sorted(set(targets["slug"]) - set(matched["metropole"])):
        unmatched.append(("indicators", None, slug, None, "no score row for this metropolis"))
    unmatched_df = pd.DataFrame(unmatched, columns=["side", "line", "identifier", "indicator", "reason"])
    long = matched.drop(columns=["id_cells", "identifier"]).merge(
        targets.rename(columns={"slug": "metropole"}), on="metropole", how="left")
    long["score"] = long["indicator"].astype(str) + np.where(long["year"].notna(), "@" + long["year"].astype(str), "")
    dup = long.duplicated(["metropole", "score"], keep=False)
    if dup.any():
        raise BarometreError(f"{scores_path}: several values for the same metropolis and indicator: "
                             + ", ".join(sorted(set(long.loc[dup, "metropole"] + " " + long.loc[dup, "score"])))[:300])
    coverage = (long.groupby(["score", "indicator", "year"], dropna=False)
                .agg(n=("value", lambda v: int(v.notna().sum())),
                     metropoles=("metropole", lambda m: ", ".join(sorted(m))),
                     levels=("level", lambda v: ", ".join(sorted({str(x) for x in v if x is not None and x == x}))))
                .reset_index())
    piv = long.pivot(index="metropole", columns="score", values="value").add_prefix("score__").reset_index()
    wide = wide_indicators.merge(piv, on="metropole", how="inner")
    corr = correlations(wide, [c for c in wide.columns if c.startswith("score__")],
                        text_indicator_columns(wide_indicators), draws, seed, confidence)
    report = _summary(scores_path, form, scores, unmatched_df, coverage, corr)
    return JoinResult(long=long, wide=wide, correlations=corr, unmatched=unmatched_df, coverage=coverage,
                      report=report, form=form)


def text_indicator_columns(wide: pd.DataFrame) -> list[str]:
    """The text indicators correlated with scores: the index and each theme's paragraph
    share (corrected where it exists)."""
    cols = [c for c in wide.columns if c.endswith("__paragraph_share") or c.endswith("__paragraph_share_corrected")]
    return (["maturity_index"] if "maturity_index" in wide.columns else []) + cols


@lru_cache(maxsize=None)
def _permutations(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.int8)


def spearman_exact(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its exact two-sided permutation p-value (ties: mid-ranks)."""
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    if den == 0:
        return float("nan"), float("nan")
    obs = float(rx @ ry)
    null = ry[_permutations(len(x))] @ rx
    p = float(np.mean(np.abs(null) >= abs(obs) - 1e-9))
    return obs / den, p


def correlations(wide: pd.DataFrame, score_cols: list[str], text_cols: list[str], draws: int, seed: int,
                 confidence: float) -> pd.DataFrame:
    rows = []
    for ic in text_cols:
        for sc in score_cols:
            x = pd.to_numeric(wide[ic], errors="coerce").to_numpy(float)
            y = pd.to_numeric(wide[sc], errors="coerce").to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            n = int(ok.sum())
            rho = p = lo = hi = np.nan
            method = ""
            if n >= 3 and np.unique(x[ok]).size > 1 and np.unique(y[ok]).size > 1:
                if n <= EXACT_MAX_N:
                    rho, p = spearman_exact(x[ok], y[ok])
                    method = "exact permutation"
                else:
                    res = stats.spearmanr(x[ok], y[ok])
                    rho, p, method = float(res.statistic), float(res.pvalue), "t approximation"
                if n >= NO_INTERVAL_BELOW_N and draws > 0:
                    lo, hi = _boot_interval(x[ok], y[ok], draws, cell_rng(seed, f"corr:{ic}:{sc}"), confidence)
            warning = "" if n >= WARN_BELOW_N else (f"n = {n} < {WARN_BELOW_N}: too few metropolises to conclude"
                                                     + ("; no interval below 5" if n < NO_INTERVAL_BELOW_N else ""))
            rows.append((ic, sc.removeprefix("score__"), n, rho, p, method, lo, hi, warning))
    out = pd.DataFrame(rows, columns=["indicator", "score", "n", "rho", "p_value", "p_method", "ci_low", "ci_high",
                                      "warning"])
    out["p_holm"] = _holm(out["p_value"].to_numpy(float))
    out["q_bh"] = benjamini_hochberg(out["p_value"].to_numpy(float))
    out["n_tests"] = int(out["p_value"].notna().sum())
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok])]
    adj = np.maximum.accumulate([(m - k) * p[i] for k, i in enumerate(order)])
    out[order] = np.minimum(adj, 1.0)
    return out


def _boot_interval(x: np.ndarray, y: np.ndarray, draws: int, rng: np.random.Generator, confidence: float
                   ) -> tuple[float, float]:
    n = len(x)
    idx = rng.integers(0, n, size=(draws, n))
    rx = stats.rankdata(x[idx], axis=1)
    ry = stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, (rx * ry).sum(axis=1) / np.where(den > 0, den, 1), np.nan)
    lo, hi = percentiles(r, confidence)
    return float(lo), float(hi)


def _summary(path: Path, form: str, scores: pd.DataFrame, unmatched: pd.DataFrame, coverage: pd.DataFrame,
             corr: pd.DataFrame) -> str:
    lines = [f"Scores file {path} ({form} form): {len(scores)} value row(s), "
             f"{scores['indicator'].nunique()} indicator(s)"]
    lines.append("  coverage: " + "; ".join(f"{r.score} n={r.n}" for r in coverage.itertuples()))
    if len(unmatched):
        lines.append(f"  UNMATCHED ({len(unmatched)}):")
        lines += [f"    [{r.side}] {'line ' + str(int(r.line)) + ': ' if r.line == r.line and r.line else ''}"
                  f"{r.identifier} -> {r.reason}" for r in unmatched.itertuples()]
    small = corr[corr["warning"] != ""]
    if len(small):
        lines.append(f"  WARNING: {len(small)} of {len(corr)} correlation(s) rest on fewer than {WARN_BELOW_N} "
                     "metropolises: read them as descriptions, not evidence.")
    lines.append(f"  {int(corr['n_tests'].max() if len(corr) else 0)} test(s): p-values corrected by Holm "
                 "(p_holm, family-wise) and Benjamini–Hochberg (q_bh, false discovery rate).")
    return "\n".join(lines)
