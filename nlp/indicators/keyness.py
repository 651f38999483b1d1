"""Keyness of a theme for a metropolis against the others, at the document level (stage:
indicators).

Paragraphs and hits cluster within documents, so a word-level test (G² over word counts)
treats hundreds of hits of one document as independent evidence and finds almost every cell
"significant". Here the effect is the log ratio of paragraph shares (target metropolis /
all others, 0.5 added to both paragraph counts), its interval and its p-value come from the
document bootstrap (documents resampled within each metropolis, the reference rebuilt from
the other metropolises' draws), and the p-values are corrected across all cells
(Benjamini–Hochberg).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nlp.indicators.bootstrap import percentiles
from nlp.indicators.measures import Level

KEYNESS_COLUMNS = ["metropole", "theme", "share_target", "share_reference", "log2_ratio", "ci_low", "ci_high",
                   "p_value", "q_value", "significant", "direction", "n_documents", "small_cell"]


def _log_ratio(a: np.ndarray, na: np.ndarray, b: np.ndarray, nb: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(((a + 0.5) / (na + 1.0)) / ((b + 0.5) / (nb + 1.0)))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(p[ok])
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(q, 1.0)
    out[ok] = res
    return out


def keyness_table(level: Level, columns: list[str], confidence: float, min_documents: int) -> pd.DataFrame:
    """One row per metropolis × theme (level ``all``); see the module docstring."""
    T = len(columns)
    sums = level.cells.sums
    para, npar = sums[:, :T], sums[:, 4 * T]
    tot_para, tot_npar = para.sum(axis=0), npar.sum()
    ref_para, ref_npar = tot_para[None, :] - para, tot_npar - npar
    lr = _log_ratio(para, npar[:, None], ref_para, ref_npar[:, None])
    lo = hi = p = np.full(lr.shape, np.nan)
    d = level.cells.draws
    if d is not None:
        dp, dn = np.nan_to_num(d[:, :, :T]), np.nan_to_num(d[:, :, 4 * T])
        rp = dp.sum(axis=1, keepdims=True) - dp
        rn = dn.sum(axis=1, keepdims=True) - dn
        lrd = _log_ratio(dp, dn[:, :, None], rp, rn[:, :, None])
        lrd = np.where(np.isnan(d[:, :, :T]), np.nan, lrd)
        lo, hi = percentiles(lrd, confidence)
        with np.errstate(invalid="ignore"):
            below = np.nanmean(lrd <= 0, axis=0)
            above = np.nanmean(lrd >= 0, axis=0)
        B = d.shape[0]
        p = np.clip(2 * np.minimum(below, above), 1.0 / B, 1.0)
        p = np.where(npar[:, None] > 0, p, np.nan)
    q = benjamini_hochberg(p.ravel()).reshape(p.shape)
    metros = level.cells.keys["metropole"].to_numpy()
    share_t = np.where(npar[:, None] > 0, para / np.maximum(npar[:, None], 1), np.nan)
    share_r = np.where(ref_npar[:, None] > 0, ref_para / np.maximum(ref_npar[:, None], 1), np.nan)
    out = pd.DataFrame({
        "metropole": np.repeat(metros, T), "theme": np.tile(columns, len(metros)),
        "share_target": share_t.ravel(), "share_reference": share_r.ravel(), "log2_ratio": lr.ravel(),
        "ci_low": lo.ravel(), "ci_high": hi.ravel(), "p_value": p.ravel(), "q_value": q.ravel(),
        "n_documents": np.repeat(level.cells.n_docs, T),
    })
    out["significant"] = out["q_value"] < 0.05
    out["direction"] = np.where(out["log2_ratio"] > 0, "+", np.where(out["log2_ratio"] < 0, "-", "="))
    out["small_cell"] = out["n_documents"] < min_documents
    return out[KEYNESS_COLUMNS]
