"""Ranks of the metropolises with bootstrap intervals and rank probabilities (stage:
indicators).

Input: point values (``G × T``) and bootstrap draws (``B × G × T``) of a measure, and which
cells may be ranked (at least ``min_documents`` analysed documents). Output: one row per
theme × metropolis: the rank (1 = highest; ties share their mean rank, "mid-ranks"), its
percentile interval over the draws (mid-ranks in every draw too, so a metropolis at 0 in
every draw with three others at 0 gets rank 2.5, not 2–4), whether its interval overlaps a
neighbour's (tie), and the probability of each rank position.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nlp.indicators.bootstrap import midranks, percentiles

RANK_COLUMNS = ["theme", "measure", "metropole", "value", "rank", "rank_low", "rank_high", "p_first",
                "tied_with_previous", "tied_with_next", "tied", "ranked", "reason"]


def tie_flags(point_rank: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tied_with_previous, tied_with_next): walking items by rank, two neighbours are tied
    when their rank intervals overlap (or their ranks are equal). Unranked items never tie."""
    n = len(point_rank)
    prev_t, next_t = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    order = [i for i in np.argsort(point_rank, kind="stable") if not np.isnan(point_rank[i])]
    for a, b in zip(order, order[1:]):
        tie = point_rank[a] == point_rank[b]
        if not (np.isnan(low[a]) or np.isnan(low[b])):
            tie = tie or (low[b] <= high[a] and low[a] <= high[b])
        prev_t[b] = next_t[a] = bool(tie)
    return prev_t, next_t


def _rank_probabilities(d: np.ndarray, rankable: np.ndarray, seed: int) -> np.ndarray | None:
    """P(rank = k) per item from draws ``d`` (B × G): ordinal ranks with ties broken at
    random (seeded), so tied items share the probability of their positions."""
    n = int(rankable.sum())
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    jitter = rng.random(d.shape) * 1e-9
    vals = np.where(np.isnan(d), -np.inf, d + jitter)
    order = np.argsort(-vals, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, d.shape[1] + 1)[None, :].repeat(d.shape[0], 0), axis=1)
    return np.stack([(ranks == k).mean(axis=0) for k in range(1, n + 1)], axis=1)


def rank_table(metropoles: list[str], columns: list[str], measure: str, point: np.ndarray,
               draws: np.ndarray | None, rankable: np.ndarray, confidence: float, min_documents: int
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ranks, rank probabilities) of one measure; see the module docstring."""
    rows, probs = [], []
    G = len(metropoles)
    for t, col in enumerate(columns):
        x = np.where(rankable, point[:, t], np.nan)
        r = midranks(x)
        lo = hi = np.full(G, np.nan)
        p_rank = None
        if draws is not None:
            d = np.where(rankable[None, :], draws[:, :, t], np.nan)
            rd = midranks(d, axis=1)
            lo, hi = percentiles(rd, confidence)
            p_rank = _rank_probabilities(d, rankable, seed=t)
        tp, tn = tie_flags(r, lo, hi)
        for i, m in enumerate(metropoles):
            reason = "" if rankable[i] else f"fewer than {min_documents} analysed documents"
            rows.append((col, measure, m, point[i, t], r[i], lo[i], hi[i],
                         float(p_rank[i, 0]) if p_rank is not None and rankable[i] else np.nan,
                         tp[i], tn[i], bool(tp[i] or tn[i]), bool(rankable[i]), reason))
            if p_rank is not None and rankable[i]:
                for k in range(p_rank.shape[1]):
                    probs.append((col, measure, m, k + 1, float(p_rank[i, k])))
    return (pd.DataFrame(rows, columns=RANK_COLUMNS),
            pd.DataFrame(probs, columns=["theme", "measure", "metropole", "rank", "probability"]))
