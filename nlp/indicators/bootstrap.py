"""The within-cell document bootstrap shared by every indicator (stage: indicators).

A cell is a metropolis (or metropolis × year, × document type). Its documents are resampled
with replacement ``draws`` times by a numpy Generator seeded from ``(seed, cell key)``, so a
cell's draws do not depend on which other cells exist. The resampling is vectorised: the
per-document counts are stacked once and every draw is a row of multinomial weights applied
by a matrix product. Draws keep the SUMS (numerators and denominators), so any ratio, rank,
index or keyness is recomputed per draw from the same resamples (``scipy.stats.bootstrap``
cannot share resamples across statistics like this).
"""
from __future__ import annotations

import contextlib
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def cell_rng(seed: int, key: str) -> np.random.Generator:
    """A generator for one cell: depends on the seed and the cell's key only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(key.encode())]))


def resample_weights(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """``draws × n`` multiplicities of a resampling of ``n`` items with replacement."""
    picks = rng.integers(0, n, size=(draws, n))
    flat = (np.arange(draws, dtype=np.int64)[:, None] * n + picks).ravel()
    return np.bincount(flat, minlength=draws * n).reshape(draws, n).astype(np.float64)


def percentiles(x: np.ndarray, confidence: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval bounds along ``axis`` (NaN draws ignored; all-NaN gives NaN)."""
    alpha = (1.0 - confidence) / 2.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(x, [100 * alpha, 100 * (1 - alpha)], axis=axis)
    return lo, hi


def ratio(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``a / b × scale``, NaN where ``b`` is 0 (broadcasting)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a * scale / np.where(b > 0, b, 1.0), np.nan)


def single_thread_blas() -> Any:
    """The draws are many small matrix products: BLAS threads only add contention (measured
    ×4 slower with OpenBLAS's threads on a loaded 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class Cells:
    """Sums per cell (``G`` cells) of a stacked per-document matrix (``K`` columns), and the
    same sums in every bootstrap draw (``draws``: ``B × G × K``, or ``None`` without draws).
    ``keys``: one row per cell (metropole, and year or doc_type); ``n_docs``: documents."""

    keys: pd.DataFrame
    key_strings: list[str]
    n_docs: np.ndarray
    sums: np.ndarray
    draws: np.ndarray | None


def cell_draws(part: list[tuple[int, str, np.ndarray]], n_draws: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """The bootstrap draws of a partition of cells: for each ``(g, key, rows)`` (the cell's
    index, key string and document rows of ``M``), the ``n_draws × K`` sums of its documents
    resampled with replacement. Runs in process or as a Dask task (nlp.compute): a cell's
    draws depend only on (seed, key, rows), so the partitioning never changes them."""
    with single_thread_blas():
        return [(g, resample_weights(cell_rng(seed, key), len(rows), n_draws) @ rows) for g, key, rows in part]


def aggregate(codes: np.ndarray, keys: pd.DataFrame, key_strings: list[str], M: np.ndarray,
              n_draws: int, seed: int, client: Any = None) -> Cells:
    """Sum the rows of ``M`` (documents × columns) into cells (``codes`` = cell of each
    document) and, with ``n_draws``, into each bootstrap draw (documents resampled within
    their cell). ``client``: a Dask client to run the draws on, partitions of cells as tasks
    (None: here); the result is the same either way."""
    G, K = len(keys), M.shape[1]
    sums = np.zeros((G, K))
    np.add.at(sums, codes, M)
    n_docs = np.bincount(codes, minlength=G).astype(np.float64)
    draws = None
    if n_draws > 0:
        draws = np.full((n_draws, G, K), np.nan)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(G + 1))
        cells = [(g, key_strings[g], M[order[bounds[g]:bounds[g + 1]]]) for g in range(G) if bounds[g + 1] > bounds[g]]
        if client is None:
            results = [cell_draws(cells, n_draws, seed)]
        else:
            from nlp.compute import map_partitions, n_workers

            # About four tasks per worker, cut by documents so that tasks weigh alike.
            parts = _balanced(cells, 4 * n_workers(client))
            results = [r.value for r in map_partitions(cell_draws, parts, n_draws, seed, client=client,
                                                       name="bootstrap")]
        for result in results:
            for g, d in result:
                draws[:, g, :] = d
    return Cells(keys, key_strings, n_docs, sums, draws)


def _balanced(cells: list[tuple[int, str, np.ndarray]], n_parts: int) -> list[list[tuple[int, str, np.ndarray]]]:
    """``cells`` cut into at most ``n_parts`` consecutive partitions of about equal documents."""
    total = sum(len(rows) for _g, _k, rows in cells) or 1
    parts: list[list[tuple[int, str, np.ndarray]]] = [[]]
    done = 0
    for cell in cells:
        if parts[-1] and done >= total * len(parts) / n_parts:
            parts.append([])
        parts[-1].append(cell)
        done += len(cell[2])
    return [p for p in parts if p]


def group_codes(docs: pd.DataFrame, cols: list[str], metropoles: list[str]
                ) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Cell code per document row, the cell keys (every metropolis present at the
    metropolis level, even without documents), and a stable string key per cell."""
    if cols == ["metropole"]:
        keys = pd.DataFrame({"metropole": metropoles})
    else:
        keys = docs[cols].drop_duplicates().sort_values(cols, kind="stable").reset_index(drop=True)
    key_str = ["|".join(str(v) for v in row) for row in keys.itertuples(index=False)]
    lookup = {k: i for i, k in enumerate(key_str)}
    doc_keys = ["|".join(str(v) for v in row) for row in docs[cols].itertuples(index=False)]
    codes = np.array([lookup[k] for k in doc_keys], dtype=np.int64)
    return codes, keys, [f"{'+'.join(cols)}:{k}" for k in key_str]


def midranks(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rank 1 = largest value; ties share the mean of their ranks (mid-ranks); NaN stays NaN."""
    from scipy import stats

    r = stats.rankdata(-x, axis=axis, method="average", nan_policy="omit")
    return np.where(np.isnan(x), np.nan, r)
