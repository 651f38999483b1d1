"""Stage "indicators": per-metropolis text-derived indicators with bootstrap intervals.

Inputs (written by the annotate stage, columns in :mod:`nlp.schema`):
``outputs/tables/documents.parquet`` (one row per document × metropole: the denominators) and
``outputs/tables/hits.parquet`` (one row per lexicon hit; only ``negated == False`` hits count
in the rates, negated hits are reported apart).

Outputs (:func:`write_indicators`), under ``outputs/``:

- ``tables/indicators.{csv,parquet}`` — tidy: one row per level × metropole × theme (× year |
  × doc type) × measure with ``value``, ``ci_low``, ``ci_high``; every metropolis × theme is
  present at level ``all`` (zeros included);
- ``tables/indicators_wide.{csv,parquet}`` — one row per metropolis, one column per
  theme × measure (+ intervals) and the maturity index;
- ``tables/keyness``, ``ranks``, ``maturity_index``, ``maturity_components``, ``sensitivity``,
  ``subthemes``, ``profiles``, ``distances``, ``clusters``, ``linkage``, ``evidence``
  (``.csv`` + ``.parquet``);
- ``data_dictionary.{md,csv}`` defining every table, column and measure.

The barometer join (:func:`join_scores`, :func:`write_join`) reads an external scores CSV and
writes ``tables/joined_scores*``, ``tables/correlations`` and ``tables/unmatched_scores``.

Uncertainty: documents are resampled with replacement within each cell (metropolis, or
metropolis × year, or metropolis × doc type), ``draws`` times, with a numpy Generator seeded
from ``(seed, cell key)`` so a cell's draws do not depend on which other cells exist. The
resampling is vectorised: a document × theme count matrix is built once and every draw is a
row of multinomial weights applied to it by a matrix product.
"""
from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial.distance import jensenshannon, squareform

from nlp.errors import BarometreError, ConfigError
from nlp.schema import BARRIER_THEMES, DRIVER_THEMES, THEMES

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS_PATH = Path(__file__).with_name("maturity_weights.yaml")

RATE_MEASURES = ("hits_per_10k_words", "doc_share", "sentence_share")
COUNT_MEASURES = (
    "n_hits", "n_negated", "n_documents_with_theme", "n_sentences_with_theme", "breadth",
)
KEYNESS_MEASURES = ("keyness_g2", "keyness_p")
ALL_MEASURES = RATE_MEASURES + COUNT_MEASURES + KEYNESS_MEASURES

# Sub-themes of the barrier themes (DESIGN.md §5); observed sub-themes are added to these.
KNOWN_SUBTHEMES: dict[str, tuple[str, ...]] = {
    "frein_interne": ("acculturation", "technique", "politique", "budgetaire"),
    "frein_externe": ("craintes", "fracture"),
}

TIDY_COLUMNS = [
    "level", "metropole", "theme", "year", "doc_type", "measure", "value", "ci_low", "ci_high",
    "n_documents", "n_words",
]


@dataclass
class IndicatorSettings:
    """Settings of the indicators stage (passed explicitly; no module globals).

    ``draws``: bootstrap draws (0 disables intervals). ``seed``: base seed. ``confidence``:
    level of the percentile intervals. ``weights_path``: YAML of the maturity index (default
    :data:`DEFAULT_WEIGHTS_PATH`). ``by_year`` / ``by_doc_type``: also compute the per-year and
    per-document-type tables. ``evidence_per_cell``: sentences kept per metropolis × theme
    (and as many negated ones); ``evidence_per_subcell``: per metropolis × theme × year and
    × doc type. ``doc_types``: keep only these document types (None: all). ``rank_measure``:
    the measure the report ranks on. ``n_clusters``: clusters cut from the dendrogram.
    ``metropoles``: slugs to cover even without any document (rows of NaN rates, zero counts).
    """

    draws: int = 1000
    seed: int = 42
    confidence: float = 0.95
    weights_path: Path | None = None
    by_year: bool = True
    by_doc_type: bool = True
    evidence_per_cell: int = 5
    evidence_per_subcell: int = 2
    doc_types: tuple[str, ...] | None = None
    rank_measure: str = "hits_per_10k_words"
    n_clusters: int = 3
    metropoles: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights_path"] = str(self.weights_path) if self.weights_path else None
        return d


@dataclass
class MaturityWeights:
    """Parsed maturity-index YAML: relative weights per driver theme, measure, normalisation."""

    weights: dict[str, float]
    measure: str = "hits_per_10k_words"
    normalisation: str = "minmax"
    version: int = 1
    source: str = ""


@dataclass
class IndicatorResult:
    """Everything :func:`compute_indicators` produces (plain DataFrames)."""

    tidy: pd.DataFrame
    wide: pd.DataFrame
    keyness: pd.DataFrame
    ranks: pd.DataFrame
    maturity: pd.DataFrame
    maturity_components: pd.DataFrame
    sensitivity: pd.DataFrame
    subthemes: pd.DataFrame
    profiles: pd.DataFrame
    distances: pd.DataFrame
    clusters: pd.DataFrame
    linkage: pd.DataFrame
    evidence: pd.DataFrame
    by_year: pd.DataFrame
    by_doc_type: pd.DataFrame
    settings: IndicatorSettings = field(default_factory=IndicatorSettings)
    weights: MaturityWeights | None = None
    metropoles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- weights
def load_weights(path: Path | None = None) -> MaturityWeights:
    """Read and validate the maturity-index YAML (``path`` or the packaged default).

    Raises :class:`ConfigError` naming the file and the offending key.
    """
    path = Path(path) if path else DEFAULT_WEIGHTS_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: maturity weights file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("weights"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'weights' mapping")
    weights: dict[str, float] = {}
    for key, value in raw["weights"].items():
        if key in BARRIER_THEMES:
            raise ConfigError(
                f"{path}: weights.{key}: barrier themes are reported beside the index, "
                "not weighted into it")
        if key not in DRIVER_THEMES:
            raise ConfigError(
                f"{path}: weights.{key}: unknown driver theme (expected one of "
                f"{', '.join(DRIVER_THEMES)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                or not math.isfinite(value):
            raise ConfigError(f"{path}: weights.{key}: must be a number >= 0, got {value!r}")
        weights[key] = float(value)
    if sum(weights.values()) <= 0:
        raise ConfigError(f"{path}: weights: at least one weight must be > 0")
    measure = raw.get("measure", "hits_per_10k_words")
    if measure not in RATE_MEASURES:
        raise ConfigError(f"{path}: measure: expected one of {', '.join(RATE_MEASURES)}, "
                          f"got {measure!r}")
    norm = raw.get("normalisation", "minmax")
    if norm not in ("minmax", "rank"):
        raise ConfigError(f"{path}: normalisation: expected 'minmax' or 'rank', got {norm!r}")
    return MaturityWeights(weights=weights, measure=measure, normalisation=norm,
                           version=int(raw.get("version", 1)), source=str(path))


# --------------------------------------------------------------------------- helpers
def _cell_rng(seed: int, key: str) -> np.random.Generator:
    """A generator for one cell: depends on the seed and the cell's key only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(key.encode())]))


def _resample_weights(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """``draws × n`` multiplicities of a resampling of ``n`` items with replacement."""
    picks = rng.integers(0, n, size=(draws, n))
    flat = (np.arange(draws, dtype=np.int64)[:, None] * n + picks).ravel()
    return np.bincount(flat, minlength=draws * n).reshape(draws, n).astype(np.float64)


def _percentiles(x: np.ndarray, confidence: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - confidence) / 2.0
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        if np.isnan(x).any():
            lo, hi = np.nanpercentile(x, [100 * alpha, 100 * (1 - alpha)], axis=axis)
        else:
            lo, hi = np.percentile(x, [100 * alpha, 100 * (1 - alpha)], axis=axis)
    return lo, hi


class _quiet_nan_warnings:
    """Silence 'All-NaN slice' warnings: an all-NaN cell simply has no interval."""

    def __enter__(self) -> None:
        import warnings
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def _div(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(b > 0, a * scale / np.where(b > 0, b, 1.0), np.nan)
    return out


def g2_keyness(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-likelihood G² (Dunning 1993; Rayson & Garside 2000) of a frequency ``a`` in a
    target corpus of ``c`` words against ``b`` in a reference corpus of ``d`` words.

    Returns (g2 >= 0, sign (+1 over-use, -1 under-use, 0 equal), p-value chi² 1 df).
    """
    a, b, c, d = (np.asarray(v, dtype=np.float64) for v in (a, b, c, d))
    with np.errstate(divide="ignore", invalid="ignore"):
        total = c + d
        e1 = c * (a + b) / total
        e2 = d * (a + b) / total
        t1 = np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0) / np.where(e1 > 0, e1, 1.0)), 0.0)
        t2 = np.where(b > 0, b * np.log(np.where(b > 0, b, 1.0) / np.where(e2 > 0, e2, 1.0)), 0.0)
        g2 = 2.0 * (t1 + t2)
        g2 = np.where((c > 0) & (d > 0), np.maximum(g2, 0.0), np.nan)
        rel_t = np.where(c > 0, a / np.where(c > 0, c, 1), np.nan)
        rel_r = np.where(d > 0, b / np.where(d > 0, d, 1), np.nan)
        sign = np.sign(rel_t - rel_r)
    p = np.where(np.isnan(g2), np.nan, stats.chi2.sf(np.nan_to_num(g2), 1))
    return g2, sign, p


def _rank_desc(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rank 1 = largest value; ties share the best rank ('min'); NaN stays NaN."""
    r = stats.rankdata(-x, axis=axis, method="min", nan_policy="omit")
    return np.where(np.isnan(x), np.nan, r)


def tie_flags(point_rank: np.ndarray, low: np.ndarray, high: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(tied_with_previous, tied_with_next) per item. Walking items by point rank, two
    neighbours are tied when their rank intervals overlap (or their point ranks are equal).
    Items without a rank are never tied. Without intervals (no bootstrap) only equal point
    ranks tie."""
    n = len(point_rank)
    prev_t = np.zeros(n, dtype=bool)
    next_t = np.zeros(n, dtype=bool)
    order = [i for i in np.argsort(point_rank, kind="stable") if not np.isnan(point_rank[i])]
    for a, b in zip(order, order[1:]):
        tie = point_rank[a] == point_rank[b]
        if not (np.isnan(low[a]) or np.isnan(low[b])):
            tie = tie or (low[b] <= high[a] and low[a] <= high[b])
        prev_t[b] = next_t[a] = bool(tie)
    return prev_t, next_t


# --------------------------------------------------------------------------- core
@dataclass
class _Cells:
    """Point estimates and interval bounds for a set of cells (G groups × C columns)."""

    keys: pd.DataFrame          # one row per group: metropole (+ year | doc_type)
    n_docs: np.ndarray          # (G,)
    words: np.ndarray           # (G,)
    sentences: np.ndarray       # (G,)
    hits: np.ndarray            # (G, C)
    docs_with: np.ndarray       # (G, C)
    sents_with: np.ndarray      # (G, C)
    rates: dict[str, np.ndarray]            # measure -> (G, C)
    ci: dict[str, tuple[np.ndarray, np.ndarray]]
    draws: dict[str, np.ndarray] | None     # measure -> (B, G, C) when kept


def _cells(codes: np.ndarray, keys: pd.DataFrame, key_strings: list[str], H: np.ndarray,
           S: np.ndarray, words: np.ndarray, sentences: np.ndarray,
           settings: IndicatorSettings, keep_draws: bool) -> _Cells:
    """Aggregate document rows into cells (``codes`` = cell of each document row) and
    bootstrap every rate by resampling the documents of each cell."""
    G, C = len(keys), H.shape[1]
    D = (H > 0).astype(np.float64)
    hits = np.zeros((G, C))
    docs_with = np.zeros((G, C))
    sents_with = np.zeros((G, C))
    np.add.at(hits, codes, H)
    np.add.at(docs_with, codes, D)
    np.add.at(sents_with, codes, S)
    n_docs = np.bincount(codes, minlength=G).astype(np.float64)
    w = np.bincount(codes, weights=words, minlength=G)
    s = np.bincount(codes, weights=sentences, minlength=G)
    rates = {
        "hits_per_10k_words": _div(hits, w[:, None], 1e4),
        "doc_share": _div(docs_with, n_docs[:, None]),
        "sentence_share": _div(sents_with, s[:, None]),
    }
    B = int(settings.draws)
    ci: dict[str, tuple[np.ndarray, np.ndarray]] = {
        m: (np.full((G, C), np.nan), np.full((G, C), np.nan)) for m in RATE_MEASURES}
    draws = {m: np.full((B, G, C), np.nan) for m in RATE_MEASURES} if keep_draws and B else None
    if B > 0:
        with _single_thread_blas():
            _bootstrap_cells(codes, G, H, D, S, words, sentences, key_strings, settings,
                             ci, draws)
    return _Cells(keys, n_docs, w, s, hits, docs_with, sents_with, rates, ci, draws)


def _single_thread_blas() -> Any:
    """The draws are many small matrix products: BLAS threads only add contention (measured
    ×4 slower with OpenBLAS's threads on a loaded 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _bootstrap_cells(codes: np.ndarray, G: int, H: np.ndarray, D: np.ndarray, S: np.ndarray,
                     words: np.ndarray, sentences: np.ndarray, key_strings: list[str],
                     settings: IndicatorSettings,
                     ci: dict[str, tuple[np.ndarray, np.ndarray]],
                     draws: dict[str, np.ndarray] | None) -> None:
    """Fill ``ci`` (and ``draws``) by resampling the documents of each cell ``draws`` times:
    one matrix product of the multiplicities with the stacked per-document counts."""
    B = int(settings.draws)
    C = H.shape[1]
    # one product instead of five: [hits | docs with | sentences with | words | sentences]
    M = np.hstack([H, D, S, words[:, None], sentences[:, None]])
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(G + 1))
    for g in range(G):
        idx = order[bounds[g]:bounds[g + 1]]
        if len(idx) == 0:
            continue
        W = _resample_weights(_cell_rng(settings.seed, key_strings[g]), len(idx), B)
        P = W @ M[idx]
        bh, bd, bs = P[:, :C], P[:, C:2 * C], P[:, 2 * C:3 * C]
        bw, bsent = P[:, 3 * C], P[:, 3 * C + 1]
        per = {
            "hits_per_10k_words": _div(bh, bw[:, None], 1e4),
            "doc_share": bd / len(idx),
            "sentence_share": _div(bs, bsent[:, None]),
        }
        for m, arr in per.items():
            lo, hi = _percentiles(arr, settings.confidence)
            ci[m][0][g], ci[m][1][g] = lo, hi
            if draws is not None:
                draws[m][:, g, :] = arr


def _prepare_documents(documents: pd.DataFrame, settings: IndicatorSettings
                       ) -> tuple[pd.DataFrame, list[str]]:
    """Analysed documents (n_words > 0, doc-type filter) sorted by metropole, + warnings."""
    warnings: list[str] = []
    docs = documents.copy()
    for col, default in (("n_words", 0), ("n_sentences", 0), ("year", None),
                         ("doc_type", "autre"), ("date", None), ("url", None),
                         ("title", None)):
        if col not in docs.columns:
            docs[col] = default
    docs["n_words"] = pd.to_numeric(docs["n_words"], errors="coerce").fillna(0)
    docs["n_sentences"] = pd.to_numeric(docs["n_sentences"], errors="coerce").fillna(0)
    docs["year"] = pd.to_numeric(docs["year"], errors="coerce").astype("Int64")
    docs["doc_type"] = docs["doc_type"].fillna("autre").astype(str)
    empty = int((docs["n_words"] <= 0).sum())
    if empty:
        warnings.append(f"{empty} document(s) without words (failed or empty extraction) are "
                        "left out of the denominators")
    docs = docs[docs["n_words"] > 0]
    if settings.doc_types:
        docs = docs[docs["doc_type"].isin(settings.doc_types)]
    dup = docs.duplicated(["document_id", "metropole"])
    if dup.any():
        warnings.append(f"{int(dup.sum())} duplicate (document_id, metropole) rows dropped")
        docs = docs[~dup]
    docs = docs.sort_values(["metropole", "document_id"], kind="stable").reset_index(drop=True)
    return docs, warnings


def _hit_rows(hits: pd.DataFrame, docs: pd.DataFrame, themes: list[str]
              ) -> tuple[pd.DataFrame, list[str]]:
    """Hits joined to their document row (``_row``) and theme column (``_t``)."""
    warnings: list[str] = []
    h = hits.drop(columns=[c for c in ("doc_type", "year", "url") if c in hits.columns])
    key = pd.DataFrame({"document_id": docs["document_id"].values,
                        "metropole": docs["metropole"].values,
                        "_row": np.arange(len(docs)), "doc_type": docs["doc_type"].values,
                        "year": docs["year"].values, "url": docs["url"].values})
    before = len(h)
    h = h.merge(key, on=["document_id", "metropole"], how="inner")
    if len(h) < before:
        warnings.append(f"{before - len(h)} hit(s) whose document is not analysed "
                        "(unknown, empty or filtered out) are ignored")
    theme_index = {t: i for i, t in enumerate(themes)}
    h["_t"] = h["theme"].map(theme_index)
    unknown = h["_t"].isna()
    if unknown.any():
        warnings.append(f"{int(unknown.sum())} hit(s) with an unknown theme ignored: "
                        f"{sorted(h.loc[unknown, 'theme'].astype(str).unique())[:5]}")
        h = h[~unknown]
    h["_t"] = h["_t"].astype(int)
    h["negated"] = h["negated"].fillna(False).astype(bool)
    return h.reset_index(drop=True), warnings


def _count_matrices(h: pd.DataFrame, n_docs: int, n_cols: int, col: str = "_t"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positive hits, distinct positive sentences, negated hits), each ``n_docs × n_cols``."""
    pos = h[~h["negated"]]
    neg = h[h["negated"]]

    def count(frame: pd.DataFrame) -> np.ndarray:
        flat = frame["_row"].to_numpy(np.int64) * n_cols + frame[col].to_numpy(np.int64)
        return np.bincount(flat, minlength=n_docs * n_cols).reshape(n_docs, n_cols
                                                                    ).astype(np.float64)

    sent_keys = ["_row", col, "page", "paragraph", "sentence_index"]
    sent_keys = [k for k in sent_keys if k in pos.columns]
    sents = pos[sent_keys].copy()
    if "sentence" in pos.columns:
        # sentence text guards against a missing sentence_index
        sents["_s"] = pos["sentence"].astype(str).map(hash)
    sents = sents.fillna(-1).drop_duplicates()
    return count(pos), count(sents), count(neg)


def _breadth(h: pd.DataFrame, by: list[str]) -> pd.Series:
    pos = h[~h["negated"]]
    return pos.groupby(by, dropna=False)["term_id"].nunique()


def _level_frames(level: str, cells: _Cells, themes: list[str], neg: np.ndarray,
                  breadth: pd.Series, extra_key: str | None, settings: IndicatorSettings
                  ) -> pd.DataFrame:
    """Tidy rows for one level (all / year / doc_type), keyness computed within strata."""
    G, C = cells.hits.shape
    keys = cells.keys.reset_index(drop=True)
    # keyness: metropolis against the other metropolises of the same stratum
    strata = keys[extra_key].astype(str).to_numpy() if extra_key else np.zeros(G, dtype=object)
    a = cells.hits
    c = np.repeat(cells.words[:, None], C, axis=1)
    tot_hits = pd.DataFrame(a).groupby(strata).transform("sum").to_numpy()
    tot_words = pd.Series(cells.words).groupby(strata).transform("sum").to_numpy()
    b = tot_hits - a
    d = np.repeat((tot_words - cells.words)[:, None], C, axis=1)
    g2, sign, p = g2_keyness(a, b, c, d)
    signed = g2 * np.where(sign == 0, 1, sign)

    values: dict[str, np.ndarray] = dict(cells.rates)
    values.update({
        "n_hits": cells.hits, "n_negated": neg,
        "n_documents_with_theme": cells.docs_with, "n_sentences_with_theme": cells.sents_with,
        "keyness_g2": signed, "keyness_p": p,
    })
    # breadth from the groupby, aligned on the cell keys
    br = np.zeros((G, C))
    if len(breadth):
        gcols = ["metropole"] + ([extra_key] if extra_key else [])
        bf = breadth.rename("breadth").reset_index()
        bf = bf.merge(keys[gcols].reset_index().rename(columns={"index": "_g"}), on=gcols)
        t_index = {t: i for i, t in enumerate(themes)}
        bf["_t"] = bf["theme"].map(t_index)
        bf = bf[bf["_t"].notna()]
        br[bf["_g"].to_numpy(int), bf["_t"].to_numpy(int)] = bf["breadth"].to_numpy(float)
    values["breadth"] = br

    frames = []
    meta = pd.DataFrame({
        "metropole": keys["metropole"].to_numpy(),
        "year": keys["year"].to_numpy() if "year" in keys else pd.NA,
        "doc_type": keys["doc_type"].to_numpy() if "doc_type" in keys else None,
        "n_documents": cells.n_docs, "n_words": cells.words,
    })
    for m in ALL_MEASURES:
        v = values[m]
        lo, hi = cells.ci.get(m, (np.full((G, C), np.nan), np.full((G, C), np.nan)))
        f = pd.DataFrame({
            "metropole": np.repeat(meta["metropole"].to_numpy(), C),
            "year": np.repeat(meta["year"].to_numpy(), C) if "year" in keys else pd.NA,
            "doc_type": np.repeat(meta["doc_type"].to_numpy(), C) if "doc_type" in keys
            else None,
            "theme": np.tile(np.array(themes, dtype=object), G),
            "measure": m,
            "value": v.ravel(), "ci_low": lo.ravel(), "ci_high": hi.ravel(),
            "n_documents": np.repeat(cells.n_docs, C), "n_words": np.repeat(cells.words, C),
        })
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "level", level)
    out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("Int64")
    out["doc_type"] = out["doc_type"].astype(object)
    return out[TIDY_COLUMNS]


def _group_codes(docs: pd.DataFrame, cols: list[str], metropoles: list[str]
                 ) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Cell code per document row, the cell keys (every metropolis present at level 'all'),
    and a stable string key per cell (seeds the cell's generator)."""
    if cols == ["metropole"]:
        keys = pd.DataFrame({"metropole": metropoles})
    else:
        keys = (docs[cols].drop_duplicates().sort_values(cols, kind="stable")
                .reset_index(drop=True))
    key_str = ["|".join(str(v) for v in row) for row in keys.itertuples(index=False)]
    lookup = {k: i for i, k in enumerate(key_str)}
    doc_keys = ["|".join(str(v) for v in row) for row in docs[cols].itertuples(index=False)]
    codes = np.array([lookup[k] for k in doc_keys], dtype=np.int64)
    return codes, keys, [f"{'+'.join(cols)}:{k}" for k in key_str]


def compute_indicators(documents: pd.DataFrame, hits: pd.DataFrame,
                       settings: IndicatorSettings | None = None) -> IndicatorResult:
    """Compute every indicator table from the annotate stage's documents and hits tables.

    ``documents``: columns of :data:`nlp.schema.DOCUMENT_COLUMNS` (one row per document ×
    metropole). ``hits``: columns of :data:`nlp.schema.HIT_COLUMNS`. Returns an
    :class:`IndicatorResult`; nothing is written (see :func:`write_indicators`).
    """
    settings = settings or IndicatorSettings()
    if not 0 < settings.confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {settings.confidence}")
    if settings.draws < 0:
        raise ConfigError(f"draws must be >= 0, got {settings.draws}")
    if settings.rank_measure not in RATE_MEASURES:
        raise ConfigError(f"rank_measure must be one of {', '.join(RATE_MEASURES)}")
    weights = load_weights(settings.weights_path)
    themes = list(THEMES)
    docs, warnings = _prepare_documents(documents, settings)
    metropoles = sorted(set(documents["metropole"].astype(str))
                        | set(settings.metropoles or ()))
    if not metropoles:
        raise BarometreError("indicators: the documents table is empty (no metropolis): run "
                             "`barometre extract` and `barometre annotate` first")
    h, w2 = _hit_rows(hits, docs, themes)
    warnings += w2
    for w in warnings:
        log.warning(w)
    N, T = len(docs), len(themes)
    H, S, NEG = _count_matrices(h, N, T)
    words = docs["n_words"].to_numpy(np.float64)
    sentences = docs["n_sentences"].to_numpy(np.float64)

    # ---- level all (draws kept for ranks and the maturity index)
    codes, keys, kstr = _group_codes(docs, ["metropole"], metropoles)
    cells = _cells(codes, keys, kstr, H, S, words, sentences, settings, keep_draws=True)
    neg_all = np.zeros((len(keys), T))
    np.add.at(neg_all, codes, NEG)
    tidy_all = _level_frames("all", cells, themes, neg_all,
                             _breadth(h, ["metropole", "theme"]), None, settings)
    levels = [tidy_all]
    by_year = pd.DataFrame(columns=TIDY_COLUMNS)
    by_doc_type = pd.DataFrame(columns=TIDY_COLUMNS)
    if settings.by_year:
        dy = docs[docs["year"].notna()]
        if len(dy):
            sel = np.flatnonzero(docs["year"].notna().to_numpy())
            yc, yk, ykstr = _group_codes(dy.reset_index(drop=True), ["metropole", "year"],
                                         metropoles)
            ycells = _cells(yc, yk, ykstr, H[sel], S[sel], words[sel], sentences[sel],
                            settings, keep_draws=False)
            yneg = np.zeros((len(yk), T))
            np.add.at(yneg, yc, NEG[sel])
            by_year = _level_frames("year", ycells, themes, yneg,
                                    _breadth(h[h["year"].notna()],
                                             ["metropole", "year", "theme"]), "year", settings)
            levels.append(by_year)
    if settings.by_doc_type and N:
        dc, dk, dkstr = _group_codes(docs, ["metropole", "doc_type"], metropoles)
        dcells = _cells(dc, dk, dkstr, H, S, words, sentences, settings, keep_draws=False)
        dneg = np.zeros((len(dk), T))
        np.add.at(dneg, dc, NEG)
        by_doc_type = _level_frames("doc_type", dcells, themes, dneg,
                                    _breadth(h, ["metropole", "doc_type", "theme"]),
                                    "doc_type", settings)
        levels.append(by_doc_type)
    tidy = pd.concat(levels, ignore_index=True)

    keyness = _keyness_table(tidy_all)
    ranks = _ranks_table(cells, themes, settings)
    maturity, components, sensitivity = _maturity(cells, themes, weights, settings)
    subthemes = _subthemes(h, docs, metropoles, settings, words, sentences)
    profiles, distances, clusters, linkage = _comparison(cells, themes, settings)
    wide = _wide(tidy_all, cells, maturity)
    evidence = sample_evidence(h, docs, settings)
    return IndicatorResult(
        tidy=tidy, wide=wide, keyness=keyness, ranks=ranks, maturity=maturity,
        maturity_components=components, sensitivity=sensitivity, subthemes=subthemes,
        profiles=profiles, distances=distances, clusters=clusters, linkage=linkage,
        evidence=evidence, by_year=by_year, by_doc_type=by_doc_type, settings=settings,
        weights=weights, metropoles=metropoles, warnings=warnings)


def _keyness_table(tidy_all: pd.DataFrame) -> pd.DataFrame:
    """One row per metropolis × theme: G², direction, p-value, frequencies (level all)."""
    piv = tidy_all.pivot_table(index=["metropole", "theme"], columns="measure", values="value",
                               aggfunc="first", dropna=False).reset_index()
    base = tidy_all.drop_duplicates(["metropole", "theme"])[
        ["metropole", "theme", "n_words"]]
    out = piv.merge(base, on=["metropole", "theme"])
    tot_hits = out.groupby("theme")["n_hits"].transform("sum")
    tot_words = out.groupby("theme")["n_words"].transform("sum")
    a, c = out["n_hits"].to_numpy(float), out["n_words"].to_numpy(float)
    b, d = tot_hits.to_numpy(float) - a, tot_words.to_numpy(float) - c
    g2, sign, p = g2_keyness(a, b, c, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Hardie's log ratio with a 0.5 continuity correction: an effect size beside G²
        log_ratio = np.log2(((a + 0.5) / np.maximum(c, 1)) / ((b + 0.5) / np.maximum(d, 1)))
    res = pd.DataFrame({
        "metropole": out["metropole"], "theme": out["theme"],
        "n_hits": a, "n_words": c, "n_hits_reference": b, "n_words_reference": d,
        "per_10k_target": _div(a, c, 1e4), "per_10k_reference": _div(b, d, 1e4),
        "g2": g2, "direction": np.where(sign > 0, "+", np.where(sign < 0, "-", "=")),
        "signed_g2": g2 * np.where(sign == 0, 1, sign), "p_value": p,
        "log_ratio": np.where((c > 0) & (d > 0), log_ratio, np.nan),
    })
    res["significant_05"] = res["p_value"] < 0.05
    return res.sort_values(["metropole", "theme"]).reset_index(drop=True)


def _ranks_table(cells: _Cells, themes: list[str], settings: IndicatorSettings
                 ) -> pd.DataFrame:
    """Ranks of the metropolises per theme and rate measure, with bootstrap rank intervals
    and tie groups (rank intervals overlapping the neighbour's)."""
    rows = []
    metros = cells.keys["metropole"].to_numpy()
    valid = cells.n_docs > 0
    for m in RATE_MEASURES:
        point = cells.rates[m]
        for t, theme in enumerate(themes):
            x = np.where(valid, point[:, t], np.nan)
            r = _rank_desc(x)
            lo = hi = np.full(len(x), np.nan)
            if cells.draws is not None:
                dr = np.where(valid[None, :], cells.draws[m][:, :, t], np.nan)
                rd = _rank_desc(dr, axis=1)
                lo, hi = _percentiles(rd, settings.confidence)
            tp, tn = tie_flags(r, lo, hi)
            for i, metro in enumerate(metros):
                rows.append((theme, m, metro, x[i], r[i], lo[i], hi[i], tp[i], tn[i],
                             bool(tp[i] or tn[i])))
    out = pd.DataFrame(rows, columns=["theme", "measure", "metropole", "value", "rank",
                                      "rank_low", "rank_high", "tied_with_previous",
                                      "tied_with_next", "tied"])
    return out


def _normalise(x: np.ndarray, method: str) -> np.ndarray:
    """Normalise across metropolises (axis -2 of ``(..., G, K)``); NaN rows stay NaN."""
    if method == "rank":
        n = np.sum(~np.isnan(x), axis=-2, keepdims=True)
        r = stats.rankdata(x, axis=-2, method="average", nan_policy="omit")
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(n > 1, (r - 1) / np.maximum(n - 1, 1), 0.5)
        return np.where(np.isnan(x), np.nan, out)
    with _quiet_nan_warnings():
        mn = np.nanmin(x, axis=-2, keepdims=True)
        mx = np.nanmax(x, axis=-2, keepdims=True)
    rng = mx - mn
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rng > 0, (x - mn) / np.where(rng > 0, rng, 1), 0.5)
    return np.where(np.isnan(x), np.nan, out)


def _index(norm: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 100.0 * (norm * w).sum(axis=-1) / w.sum()


def _maturity(cells: _Cells, themes: list[str], weights: MaturityWeights,
              settings: IndicatorSettings
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Maturity index 0-100 (point, interval, rank with ties), its components, and the
    drop-one-weight sensitivity table. Barrier rates are put beside it, not subtracted."""
    metros = cells.keys["metropole"].to_numpy()
    valid = cells.n_docs > 0
    drivers = [t for t in DRIVER_THEMES if weights.weights.get(t, 0) > 0]
    t_idx = [themes.index(t) for t in drivers]
    w = np.array([weights.weights[t] for t in drivers])
    x = np.where(valid[:, None], cells.rates[weights.measure][:, t_idx], np.nan)
    norm = _normalise(x, weights.normalisation)
    point = _index(norm, w)
    lo = hi = rlo = rhi = np.full(len(metros), np.nan)
    rank = _rank_desc(point)
    if cells.draws is not None:
        xd = np.where(valid[None, :, None], cells.draws[weights.measure][:, :, t_idx], np.nan)
        idx_d = _index(_normalise(xd, weights.normalisation), w)
        lo, hi = _percentiles(idx_d, settings.confidence)
        rlo, rhi = _percentiles(_rank_desc(idx_d, axis=1), settings.confidence)
    tp, tn = tie_flags(rank, rlo, rhi)
    maturity = pd.DataFrame({
        "metropole": metros, "maturity_index": point, "ci_low": lo, "ci_high": hi,
        "rank": rank, "rank_low": rlo, "rank_high": rhi, "tied_with_previous": tp,
        "tied_with_next": tn, "tied": tp | tn, "n_documents": cells.n_docs,
        "n_words": cells.words,
    })
    for b in BARRIER_THEMES:
        bi = themes.index(b)
        m = "hits_per_10k_words"
        maturity[f"{b}__{m}"] = cells.rates[m][:, bi]
        maturity[f"{b}__{m}__ci_low"] = cells.ci[m][0][:, bi]
        maturity[f"{b}__{m}__ci_high"] = cells.ci[m][1][:, bi]
    maturity["measure"] = weights.measure
    maturity["normalisation"] = weights.normalisation

    comp_rows = []
    for i, metro in enumerate(metros):
        for k, t in enumerate(drivers):
            comp_rows.append((metro, t, x[i, k], norm[i, k], w[k] / w.sum(),
                              100 * norm[i, k] * w[k] / w.sum()))
    components = pd.DataFrame(comp_rows, columns=[
        "metropole", "theme", "rate", "normalised", "weight", "contribution"])

    sens_rows = []
    scenarios: list[tuple[str, np.ndarray]] = [("(aucune)", w)]
    for k, t in enumerate(drivers):
        w2 = w.copy()
        w2[k] = 0
        if w2.sum() > 0:
            scenarios.append((t, w2))
    for dropped, ws in scenarios:
        p2 = _index(norm, ws)
        r2 = _rank_desc(p2)
        for i, metro in enumerate(metros):
            sens_rows.append((dropped, metro, p2[i], r2[i], rank[i], r2[i] - rank[i]))
    sensitivity = pd.DataFrame(sens_rows, columns=[
        "dropped_theme", "metropole", "maturity_index", "rank", "baseline_rank",
        "rank_change"])
    return maturity, components, sensitivity


def _subthemes(h: pd.DataFrame, docs: pd.DataFrame, metropoles: list[str],
               settings: IndicatorSettings, words: np.ndarray, sentences: np.ndarray
               ) -> pd.DataFrame:
    """Rates per metropolis × theme × sub-theme (barriers' sub-themes and any other)."""
    pairs = {(t, s) for t, subs in KNOWN_SUBTHEMES.items() for s in subs}
    if "subtheme" in h.columns:
        obs = h.loc[h["subtheme"].notna(), ["theme", "subtheme"]].drop_duplicates()
        pairs |= {(str(a), str(b)) for a, b in obs.itertuples(index=False)}
    pairs_l = sorted(pairs)
    if not pairs_l:
        return pd.DataFrame(columns=["metropole", "theme", "subtheme", "measure", "value",
                                     "ci_low", "ci_high"])
    col = {p: i for i, p in enumerate(pairs_l)}
    hs = h[h["subtheme"].notna()].copy() if "subtheme" in h.columns else h.iloc[:0].copy()
    hs["_c"] = [col[(str(a), str(b))] for a, b in zip(hs["theme"], hs["subtheme"])]
    H, S, NEG = _count_matrices(hs, len(docs), len(pairs_l), col="_c")
    codes, keys, kstr = _group_codes(docs, ["metropole"], metropoles)
    kstr = [f"subtheme:{k}" for k in kstr]
    cells = _cells(codes, keys, kstr, H, S, words, sentences, settings, keep_draws=False)
    rows = []
    G, C = cells.hits.shape
    for m in ("n_hits",) + RATE_MEASURES:
        v = cells.hits if m == "n_hits" else cells.rates[m]
        lo, hi = cells.ci.get(m, (np.full((G, C), np.nan),) * 2)
        rows.append(pd.DataFrame({
            "metropole": np.repeat(keys["metropole"].to_numpy(), C),
            "theme": np.tile([p[0] for p in pairs_l], G),
            "subtheme": np.tile([p[1] for p in pairs_l], G),
            "measure": m, "value": v.ravel(), "ci_low": lo.ravel(), "ci_high": hi.ravel()}))
    return pd.concat(rows, ignore_index=True)


def _comparison(cells: _Cells, themes: list[str], settings: IndicatorSettings
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Theme profiles (share of a metropolis's hits per theme), Jensen–Shannon distances
    (base 2, in [0, 1]) and average-linkage clustering of the metropolises."""
    metros = cells.keys["metropole"].to_numpy()
    tot = cells.hits.sum(axis=1)
    prof = _div(cells.hits, tot[:, None])
    profiles = pd.DataFrame(prof, columns=themes)
    profiles.insert(0, "metropole", metros)
    profiles.insert(1, "n_hits", tot)
    ok = np.flatnonzero(tot > 0)
    dist_rows = []
    for i_, i in enumerate(ok):
        for j in ok[i_ + 1:]:
            d = float(jensenshannon(prof[i], prof[j], base=2))
            dist_rows.append((metros[i], metros[j], d))
    distances = pd.DataFrame(dist_rows, columns=["metropole_a", "metropole_b", "js_distance"])
    clusters = pd.DataFrame(columns=["metropole", "leaf_order", "cluster", "linkage_index"])
    linkage = pd.DataFrame(columns=["left", "right", "distance", "size"])
    if len(ok) >= 2:
        dm = np.zeros((len(ok), len(ok)))
        for a, b_, d in dist_rows:
            ia, ib = list(metros[ok]).index(a), list(metros[ok]).index(b_)
            dm[ia, ib] = dm[ib, ia] = d
        Z = hierarchy.linkage(squareform(dm, checks=False), method="average")
        k = max(1, min(settings.n_clusters, len(ok)))
        labels = hierarchy.fcluster(Z, t=k, criterion="maxclust")
        leaves = hierarchy.leaves_list(Z)
        order = np.empty(len(ok), dtype=int)
        order[leaves] = np.arange(len(ok))
        clusters = pd.DataFrame({"metropole": metros[ok], "leaf_order": order,
                                 "cluster": labels, "linkage_index": np.arange(len(ok))})
        linkage = pd.DataFrame(Z, columns=["left", "right", "distance", "size"])
    return profiles, distances, clusters, linkage


def _wide(tidy_all: pd.DataFrame, cells: _Cells, maturity: pd.DataFrame) -> pd.DataFrame:
    """One row per metropolis: ``<theme>__<measure>`` (+ ``__ci_low``/``__ci_high`` for
    rates) and the maturity index."""
    base = pd.DataFrame({"metropole": cells.keys["metropole"].to_numpy(),
                         "n_documents": cells.n_docs, "n_words": cells.words,
                         "n_sentences": cells.sentences})
    t = tidy_all.copy()
    t["col"] = t["theme"] + "__" + t["measure"]
    vals = t.pivot(index="metropole", columns="col", values="value")
    rate = t[t["measure"].isin(RATE_MEASURES)]
    lo = rate.pivot(index="metropole", columns="col", values="ci_low").add_suffix("__ci_low")
    hi = rate.pivot(index="metropole", columns="col", values="ci_high").add_suffix("__ci_high")
    cols = []
    for theme in THEMES:
        for m in ALL_MEASURES:
            c = f"{theme}__{m}"
            cols.append(c)
            if m in RATE_MEASURES:
                cols += [c + "__ci_low", c + "__ci_high"]
    wide = pd.concat([vals, lo, hi], axis=1).reindex(columns=cols).reset_index()
    wide = base.merge(wide, on="metropole", how="left")
    mat = maturity[["metropole", "maturity_index", "ci_low", "ci_high", "rank"]].rename(
        columns={"ci_low": "maturity_index__ci_low", "ci_high": "maturity_index__ci_high",
                 "rank": "maturity_rank"})
    return wide.merge(mat, on="metropole", how="left")


# --------------------------------------------------------------------------- evidence
EVIDENCE_COLUMNS = [
    "level", "metropole", "theme", "year", "doc_type", "negated", "subtheme", "term_id",
    "matched", "sentence", "start", "end", "url", "title", "date", "page", "paragraph",
    "document_id",
]


def sample_evidence(h: pd.DataFrame, docs: pd.DataFrame, settings: IndicatorSettings
                    ) -> pd.DataFrame:
    """Seeded sample of the hit sentences behind each cell (KWIC evidence), capped.

    Level ``all``: up to ``evidence_per_cell`` positive and as many negated hits per
    metropolis × theme; levels ``year`` and ``doc_type``: up to ``evidence_per_subcell``
    positive hits per metropolis × theme × year / doc type. One sentence is shown once per
    cell even when it holds several hits of the theme.
    """
    if h.empty:
        return pd.DataFrame(columns=EVIDENCE_COLUMNS)
    # integer keys only: grouping and de-duplicating 200,000 strings is the slow part
    keys = pd.DataFrame({
        "_row": h["_row"].to_numpy(), "_t": h["_t"].to_numpy(),
        "_neg": h["negated"].to_numpy(bool),
        "_year": pd.to_numeric(h["year"], errors="coerce").fillna(-1).to_numpy(np.int64),
        "_dt": pd.factorize(h["doc_type"])[0],
        "_m": pd.factorize(h["metropole"])[0],
    })
    sent_cols = [c for c in ("page", "paragraph", "sentence_index") if c in h.columns]
    keys["_sent"] = pd.concat([keys[["_row"]], h[sent_cols].fillna(-1)], axis=1).groupby(
        ["_row"] + sent_cols, sort=False).ngroup().to_numpy() if sent_cols else \
        np.arange(len(h))
    rng = np.random.default_rng(np.random.SeedSequence([int(settings.seed), 7]))
    keys = keys.iloc[np.argsort(rng.random(len(keys)), kind="stable")]
    picked: list[tuple[str, np.ndarray]] = []

    def take(frame: pd.DataFrame, by: list[str], cap: int, level: str) -> None:
        if cap <= 0 or frame.empty:
            return
        f = frame.drop_duplicates(by + ["_sent"])  # one sentence once per cell
        f = f[f.groupby(by).cumcount().to_numpy() < cap]
        picked.append((level, f.index.to_numpy()))

    take(keys, ["_m", "_t", "_neg"], settings.evidence_per_cell, "all")
    pos = keys[~keys["_neg"]]
    if settings.by_year:
        take(pos[pos["_year"] >= 0], ["_m", "_t", "_year"], settings.evidence_per_subcell,
             "year")
    if settings.by_doc_type:
        take(pos, ["_m", "_t", "_dt"], settings.evidence_per_subcell, "doc_type")
    if not picked:
        return pd.DataFrame(columns=EVIDENCE_COLUMNS)
    parts = [h.loc[idx].assign(level=level) for level, idx in picked]
    e = pd.concat(parts, ignore_index=True)
    meta = docs[["document_id", "metropole", "title", "date"]]
    e = e.drop(columns=[c for c in ("title", "date") if c in e.columns]).merge(
        meta, on=["document_id", "metropole"], how="left")
    for c in EVIDENCE_COLUMNS:
        if c not in e.columns:
            e[c] = None
    out = e[EVIDENCE_COLUMNS].copy()
    out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("Int64")
    return out.sort_values(["level", "metropole", "theme", "negated"], kind="stable"
                           ).reset_index(drop=True)


# --------------------------------------------------------------------------- writing
def _write_table(df: pd.DataFrame, tables: Path, name: str, written: list[Path],
                 csv: bool = True) -> None:
    """Write ``name.parquet`` (+ ``name.csv``) atomically (temp name, then rename)."""
    tables.mkdir(parents=True, exist_ok=True)
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            # parquet needs one type per column: keep None, stringify the rest
            df[c] = df[c].map(lambda v: v if v is None or isinstance(v, (str, bool))
                              or (isinstance(v, float) and math.isnan(v)) else str(v))
            df[c] = df[c].where(df[c].notna(), None)
    targets = [(tables / f"{name}.parquet", lambda p: df.to_parquet(p, index=False))]
    if csv:
        targets.append((tables / f"{name}.csv", lambda p: df.to_csv(p, index=False)))
    for path, writer in targets:
        tmp = path.with_name(path.name + ".tmp")
        writer(tmp)
        tmp.replace(path)
        written.append(path)


def write_indicators(result: IndicatorResult, outputs_dir: Path) -> list[Path]:
    """Write every indicator table under ``outputs_dir/tables`` and the data dictionary
    ``outputs_dir/data_dictionary.{md,csv}``. Returns the written paths."""
    outputs_dir = Path(outputs_dir)
    tables = outputs_dir / "tables"
    written: list[Path] = []
    for name, df in (
        ("indicators", result.tidy), ("indicators_wide", result.wide),
        ("keyness", result.keyness), ("ranks", result.ranks),
        ("maturity_index", result.maturity), ("maturity_components", result.maturity_components),
        ("sensitivity", result.sensitivity), ("subthemes", result.subthemes),
        ("profiles", result.profiles), ("distances", result.distances),
        ("clusters", result.clusters), ("linkage", result.linkage),
        ("evidence", result.evidence),
    ):
        _write_table(df, tables, name, written)
    meta = {
        "settings": result.settings.to_dict(),
        "weights": asdict(result.weights) if result.weights else None,
        "metropoles": result.metropoles, "warnings": result.warnings,
    }
    p = tables / "indicators_settings.json"
    p.write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    written.append(p)
    written += write_data_dictionary(outputs_dir, result.weights)
    return written


# --------------------------------------------------------------------------- dictionary
MEASURE_DEFINITIONS: dict[str, str] = {
    "hits_per_10k_words": "Non-negated lexicon hits of the theme per 10,000 words of the "
                          "cell's analysed documents (sum of hits / sum of n_words × 10,000).",
    "doc_share": "Share (0-1) of the cell's analysed documents with at least one non-negated "
                 "hit of the theme.",
    "sentence_share": "Share (0-1) of the cell's sentences (sum of n_sentences) holding at "
                      "least one non-negated hit of the theme (a sentence counts once).",
    "n_hits": "Number of non-negated hits of the theme.",
    "n_negated": "Number of negated hits of the theme (reported apart; never in the rates).",
    "n_documents_with_theme": "Number of documents with at least one non-negated hit.",
    "n_sentences_with_theme": "Number of distinct sentences with at least one non-negated hit.",
    "breadth": "Number of distinct lexicon terms (term_id) among the non-negated hits.",
    "keyness_g2": "Signed log-likelihood G² (Dunning 1993; Rayson & Garside 2000) of the "
                  "theme's hit count in the metropolis against the other metropolises of the "
                  "same level stratum (all / same year / same doc type), corpus sizes = words. "
                  "Positive: over-use, negative: under-use. G² above 3.84 in absolute value "
                  "⇔ p < 0.05.",
    "keyness_p": "p-value of G² (chi² with 1 degree of freedom).",
}

DICTIONARY: list[tuple[str, str, str]] = [
    ("indicators", "level", "all (metropolis × theme), year (× year of the document) or "
     "doc_type (× document type). Documents without a year are only in level all."),
    ("indicators", "metropole", "Metropolis slug (registry)."),
    ("indicators", "theme", "Theme id (nlp/schema.py THEMES)."),
    ("indicators", "year", "Year of the documents of the cell (level year), else empty."),
    ("indicators", "doc_type", "Document type of the cell (level doc_type), else empty."),
    ("indicators", "measure", "Measure id (see the measures section)."),
    ("indicators", "value", "Point estimate of the measure."),
    ("indicators", "ci_low", "Lower bound of the percentile bootstrap interval (rates only): "
     "documents resampled with replacement within the cell, `draws` times, seeded."),
    ("indicators", "ci_high", "Upper bound of the same interval."),
    ("indicators", "n_documents", "Analysed documents in the cell (n_words > 0)."),
    ("indicators", "n_words", "Words in the cell's analysed documents."),
    ("indicators_wide", "<theme>__<measure>", "Value of the measure at level all; rates also "
     "have `__ci_low` and `__ci_high`."),
    ("indicators_wide", "maturity_index", "Textual maturity index (see maturity_index), with "
     "maturity_index__ci_low/__ci_high and maturity_rank."),
    ("keyness", "g2", "Log-likelihood G² (unsigned) of the theme's hits in the metropolis "
     "(n_hits over n_words) vs all other metropolises (n_hits_reference over "
     "n_words_reference)."),
    ("keyness", "direction", "+ over-use, - under-use, = same relative frequency."),
    ("keyness", "signed_g2", "g2 with the sign of direction."),
    ("keyness", "p_value", "chi² (1 df) p-value of g2; significant_05 = p < 0.05 "
     "(no correction for multiple comparisons)."),
    ("keyness", "log_ratio", "log2 of the ratio of relative frequencies (target / reference), "
     "0.5 added to both hit counts: an effect size beside G²."),
    ("ranks", "rank", "Rank of the metropolis for the theme and measure (1 = highest value; "
     "equal values share the best rank)."),
    ("ranks", "rank_low / rank_high", "Percentile bootstrap interval of the rank (ranks "
     "recomputed across metropolises in every draw)."),
    ("ranks", "tied_with_previous / tied_with_next / tied", "Walking metropolises by rank, "
     "two neighbours are tied when their bootstrap rank intervals overlap (or their values "
     "are equal); tied = tied with either neighbour. The report shows tied ranks with '='."),
    ("maturity_index", "maturity_index", "0-100: 100 × Σ w_t · norm_t / Σ w_t over the driver "
     "themes, norm_t = the driver's rate (measure) normalised across metropolises (minmax: "
     "(x - min)/(max - min), 0.5 when all equal; rank: (rank - 1)/(n - 1)). Weights, measure "
     "and normalisation come from maturity_weights.yaml (default: all drivers weigh 1, "
     "hits_per_10k_words, minmax). The index is relative to the metropolises compared."),
    ("maturity_index", "ci_low / ci_high", "Percentile bootstrap interval of the index: rates "
     "redrawn per metropolis, normalisation recomputed in every draw."),
    ("maturity_index", "rank, rank_low, rank_high, tied*", "As in ranks, for the "
     "index."),
    ("maturity_index", "frein_*__hits_per_10k_words", "Barrier rates with intervals, shown "
     "beside the index (never subtracted from it)."),
    ("maturity_components", "normalised / weight / contribution", "Per driver: normalised rate "
     "(0-1), relative weight, contribution to the index in points (sum = index)."),
    ("sensitivity", "dropped_theme", "Driver whose weight is set to 0 (others renormalised); "
     "'(aucune)' = baseline."),
    ("sensitivity", "rank_change", "rank - baseline_rank (negative = moves up)."),
    ("subthemes", "subtheme", "Sub-theme (e.g. barriers: acculturation, technique, politique, "
     "budgetaire; craintes, fracture) with the rate measures and intervals (level all)."),
    ("profiles", "<theme>", "Share of the metropolis's non-negated hits falling in the theme "
     "(the profile; rows sum to 1)."),
    ("distances", "js_distance", "Jensen–Shannon distance (base 2, 0-1) between two profiles."),
    ("clusters", "cluster", "Cluster of an average-linkage hierarchical clustering of the JS "
     "distances, cut into n_clusters; leaf_order = position in the dendrogram."),
    ("linkage", "left, right, distance, size", "scipy linkage matrix; indices refer to "
     "clusters.linkage_index."),
    ("evidence", "*", "Seeded sample of hit sentences per cell (KWIC): sentence with the match "
     "at [start, end), url, page, date, title; level all: up to evidence_per_cell positive "
     "and negated each per metropolis × theme; year/doc_type: up to evidence_per_subcell."),
    ("joined_scores", "*", "Barometer join: indicators_wide columns of the matched "
     "metropolises + the score columns of the scores file (prefixed score__)."),
    ("correlations", "rho / p_value / ci_low / ci_high", "Spearman correlation between an "
     "indicator and a score column over matched metropolises, scipy p-value, and percentile "
     "bootstrap interval (metropolises resampled with replacement, seeded)."),
    ("unmatched_scores", "*", "Rows of the scores file that matched no metropolis (or were "
     "ambiguous / duplicates), with the reason."),
]


def write_data_dictionary(outputs_dir: Path, weights: MaturityWeights | None = None
                          ) -> list[Path]:
    """Write ``data_dictionary.md`` and ``data_dictionary.csv`` under ``outputs_dir``."""
    outputs_dir = Path(outputs_dir)
    outputs_dir.mkdir(parents=True, exist_ok=True)
    rows = [("measure", m, d) for m, d in MEASURE_DEFINITIONS.items()] + DICTIONARY
    csv_path = outputs_dir / "data_dictionary.csv"
    pd.DataFrame(rows, columns=["table", "column", "definition"]).to_csv(csv_path, index=False)
    lines = [
        "# Data dictionary (barometre indicators)", "",
        "Rates count only non-negated hits; the denominators are the analysed documents "
        "(n_words > 0) of each cell. Intervals are percentile bootstrap intervals "
        "(documents resampled within each metropolis / cell, seeded).", "",
        "## Measures", "", "| measure | definition |", "|---|---|",
    ]
    lines += [f"| `{m}` | {d} |" for m, d in MEASURE_DEFINITIONS.items()]
    current = None
    for table, col, d in DICTIONARY:
        if table != current:
            lines += ["", f"## `{table}`", "", "| column | definition |", "|---|---|"]
            current = table
        lines.append(f"| `{col}` | {d} |")
    if weights is not None:
        lines += ["", "## Maturity weights used", "",
                  f"measure `{weights.measure}`, normalisation `{weights.normalisation}`, "
                  f"file `{weights.source}`", ""]
        lines += [f"- `{t}`: {w:g}" for t, w in weights.weights.items()]
    md_path = outputs_dir / "data_dictionary.md"
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [md_path, csv_path]


def read_tables(tables_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``documents.parquet`` and ``hits.parquet`` from the annotate stage."""
    tables_dir = Path(tables_dir)
    out = []
    for name in ("documents", "hits"):
        p = tables_dir / f"{name}.parquet"
        if not p.exists():
            raise BarometreError(f"{p} not found: run `barometre annotate` first")
        out.append(pd.read_parquet(p))
    return out[0], out[1]


# --------------------------------------------------------------------------- barometer join
_NAME_STOPWORDS = {
    "metropole", "eurometropole", "europeenne", "communaute", "urbaine", "d", "de", "du",
    "des", "la", "le", "l", "les", "et",
}


def normalise_name(name: Any) -> str:
    """Normalised metropolis name for matching: accents, case, punctuation and the words
    "Métropole", "Eurométropole", "Européenne", "Communauté urbaine" and French articles /
    prepositions removed ("Métropole de Lyon" → "lyon", "Eurométropole de Strasbourg" →
    "strasbourg", "Métropole du Grand Nancy" → "grand nancy")."""
    if name is None or (isinstance(name, float) and math.isnan(name)):
        return ""
    s = unicodedata.normalize("NFKD", str(name))
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).lower()
    words = re.split(r"[^a-z0-9]+", s)
    return " ".join(w for w in words if w and w not in _NAME_STOPWORDS)


def _siren(value: Any) -> str | None:
    """Nine-digit SIREN from a cell (spaces allowed; floats from a numeric column too)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    digits = re.sub(r"\s", "", str(value))
    return digits if re.fullmatch(r"\d{9}", digits) else None


@dataclass
class JoinResult:
    """Barometer join: ``joined`` (one row per matched metropolis: slug, name, siren,
    indicators, ``score__<column>``), ``long`` (tidy version), ``correlations`` (indicator ×
    score: n, rho, p_value, ci_low, ci_high), ``unmatched`` (scores rows not matched, with
    the reason), ``missing`` (registry metropolises without a score row), ``report`` (a
    stdout-friendly summary)."""

    joined: pd.DataFrame
    long: pd.DataFrame
    correlations: pd.DataFrame
    unmatched: pd.DataFrame
    missing: list[str]
    score_columns: list[str]
    report: str


def read_scores(scores_path: Path) -> pd.DataFrame:
    """Read a scores CSV: ``,`` or ``;`` (or tab) delimited, UTF-8 with or without BOM
    (Latin-1 as a fallback), decimal commas accepted in numeric columns."""
    scores_path = Path(scores_path)
    if not scores_path.exists():
        raise BarometreError(f"{scores_path}: scores file not found")
    raw = scores_path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    sep = max([";", ",", "\t"], key=first.count)
    import io
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BarometreError(f"{scores_path}: cannot read the scores CSV: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    if df.empty or len(df.columns) < 2:
        raise BarometreError(f"{scores_path}: expected a header, an identifier column and "
                             "at least one score column")
    return df.apply(lambda s: s.str.strip())


def _numeric(col: pd.Series) -> pd.Series | None:
    """The column as floats when every non-empty cell is a number (decimal comma allowed)."""
    s = col.replace("", np.nan).dropna()
    if s.empty:
        return None
    conv = pd.to_numeric(s.str.replace("\u00a0", "").str.replace(" ", "")
                         .str.replace(",", "."), errors="coerce")
    if conv.isna().any():
        return None
    return pd.to_numeric(col.replace("", np.nan).str.replace("\u00a0", "")
                         .str.replace(" ", "").str.replace(",", "."), errors="coerce")


def _spearman_boot(x: np.ndarray, y: np.ndarray, draws: int, confidence: float,
                   rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Spearman rho, scipy p-value and percentile bootstrap interval (pairs resampled)."""
    n = len(x)
    if n < 3 or np.unique(x).size < 2 or np.unique(y).size < 2:
        return np.nan, np.nan, np.nan, np.nan
    res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    lo = hi = np.nan
    if draws > 0:
        idx = rng.integers(0, n, size=(draws, n))
        rx = stats.rankdata(x[idx], axis=1)
        ry = stats.rankdata(y[idx], axis=1)
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(den > 0, (rx * ry).sum(axis=1) / np.where(den > 0, den, 1), np.nan)
        lo, hi = _percentiles(r, confidence)
    return rho, p, float(lo), float(hi)


def _load_wide(result_or_tables: Any) -> pd.DataFrame:
    if isinstance(result_or_tables, IndicatorResult):
        return result_or_tables.wide
    if isinstance(result_or_tables, pd.DataFrame):
        return result_or_tables
    p = Path(result_or_tables)
    for cand in (p / "indicators_wide.parquet", p / "tables" / "indicators_wide.parquet", p):
        if cand.is_file():
            return pd.read_parquet(cand)
    raise BarometreError(f"{p}: no indicators_wide.parquet: run `barometre indicators` first")


def join_scores(result_or_tables: IndicatorResult | pd.DataFrame | Path, scores_path: Path,
                registry_info: pd.DataFrame, settings: IndicatorSettings | None = None
                ) -> JoinResult:
    """Join barometer scores to the indicators and correlate them.

    ``result_or_tables``: an :class:`IndicatorResult`, the wide table, or the outputs /
    tables folder holding ``indicators_wide.parquet``. ``scores_path``: CSV, one row per
    metropolis, identifier column(s) (slug, SIREN or name, in any column) and any number of
    numeric score columns. ``registry_info``: columns slug, name, siren. A row matches a
    metropolis when one of its non-numeric cells (or a column named like ``siren``) equals
    its slug, its SIREN, or its normalised name (:func:`normalise_name`); a row matching no
    or several metropolises, or a metropolis already matched, is reported unmatched.
    """
    settings = settings or IndicatorSettings()
    wide = _load_wide(result_or_tables)
    df = read_scores(scores_path)
    reg = registry_info.copy()
    for col in ("slug", "name", "siren"):
        if col not in reg.columns:
            reg[col] = None
    by_slug = {str(s).lower(): str(s) for s in reg["slug"].dropna()}
    by_siren = {_siren(v): str(s) for s, v in zip(reg["slug"], reg["siren"]) if _siren(v)}
    by_name: dict[str, set[str]] = {}
    for s, nm in zip(reg["slug"], reg["name"]):
        for key in {normalise_name(nm), normalise_name(str(s).replace("-", " "))}:
            if key:
                by_name.setdefault(key, set()).add(str(s))

    id_cols, score_cols, numeric = [], [], {}
    for c in df.columns:
        num = _numeric(df[c])
        nonempty = df[c][df[c] != ""]
        looks_siren = len(nonempty) > 0 and nonempty.map(lambda v: _siren(v) is not None).all()
        if "siren" in c.lower() or num is None or looks_siren:
            id_cols.append(c)
        else:
            score_cols.append(c)
            numeric[c] = num
    if not score_cols:
        raise BarometreError(f"{scores_path}: no numeric score column found "
                             f"(columns: {', '.join(df.columns)})")
    if not id_cols:
        raise BarometreError(f"{scores_path}: no identifier column (slug, SIREN or name) "
                             "found: every column is numeric")

    matched: dict[int, tuple[str, str]] = {}
    unmatched_rows = []
    taken: dict[str, int] = {}
    for i, row in df.iterrows():
        found: dict[str, str] = {}
        for c in id_cols:
            v = row[c]
            if not v:
                continue
            if v.lower() in by_slug:
                found.setdefault(by_slug[v.lower()], "slug")
            sir = _siren(v)
            if sir and sir in by_siren:
                found.setdefault(by_siren[sir], "siren")
            for s in by_name.get(normalise_name(v), ()):
                found.setdefault(s, "name")
        values = "; ".join(f"{c}={row[c]}" for c in id_cols)
        line = int(i) + 2  # header is line 1
        if not found:
            unmatched_rows.append((line, values, "no metropolis matches this slug, SIREN or "
                                   "name"))
        elif len(found) > 1:
            unmatched_rows.append((line, values, "ambiguous: matches "
                                   + ", ".join(sorted(found))))
        else:
            slug, how = next(iter(found.items()))
            if slug in taken:
                unmatched_rows.append((line, values, f"duplicate: {slug} already matched by "
                                       f"line {taken[slug]}"))
            else:
                taken[slug] = line
                matched[int(i)] = (slug, how)
    unmatched = pd.DataFrame(unmatched_rows, columns=["line", "identifiers", "reason"])
    missing = sorted(set(map(str, reg["slug"].dropna())) - set(taken))

    scores = pd.DataFrame({
        "metropole": [matched[i][0] for i in matched],
        "matched_by": [matched[i][1] for i in matched],
        "scores_line": [taken[matched[i][0]] for i in matched],
    })
    for c in score_cols:
        scores[f"score__{c}"] = [numeric[c].iloc[i] for i in matched]
    info = reg[["slug", "name", "siren"]].rename(columns={"slug": "metropole"})
    info["metropole"] = info["metropole"].astype(str)
    joined = scores.merge(info, on="metropole", how="left").merge(
        wide, on="metropole", how="left")
    front = ["metropole", "name", "siren", "matched_by", "scores_line"]
    joined = joined[front + [c for c in joined.columns if c not in front]]

    indicator_cols = [c for c in wide.columns
                      if c == "maturity_index" or any(c.endswith(f"__{m}")
                                                      for m in RATE_MEASURES)]
    corr_rows = []
    for ic in indicator_cols:
        for sc in score_cols:
            x = pd.to_numeric(joined.get(ic), errors="coerce").to_numpy(float) \
                if ic in joined else np.full(len(joined), np.nan)
            y = joined[f"score__{sc}"].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            rng = _cell_rng(settings.seed, f"corr:{ic}:{sc}")
            rho, p, lo, hi = _spearman_boot(x[ok], y[ok], settings.draws,
                                            settings.confidence, rng)
            corr_rows.append((ic, sc, int(ok.sum()), rho, p, lo, hi))
    correlations = pd.DataFrame(corr_rows, columns=["indicator", "score", "n", "rho",
                                                    "p_value", "ci_low", "ci_high"])
    long = joined.melt(id_vars=["metropole", "name", "siren"],
                       value_vars=[c for c in joined.columns if c.startswith("score__")]
                       + [c for c in indicator_cols if c in joined.columns],
                       var_name="variable", value_name="value")
    long["kind"] = np.where(long["variable"].str.startswith("score__"), "score", "indicator")
    long["variable"] = long["variable"].str.replace("^score__", "", regex=True)
    report = _join_report(scores_path, len(df), matched, unmatched, missing, score_cols)
    return JoinResult(joined=joined, long=long, correlations=correlations,
                      unmatched=unmatched, missing=missing, score_columns=score_cols,
                      report=report)


def _join_report(path: Path, n_rows: int, matched: dict, unmatched: pd.DataFrame,
                 missing: list[str], score_cols: list[str]) -> str:
    lines = [f"Scores file {path}: {n_rows} row(s), score columns: {', '.join(score_cols)}",
             f"  matched: {len(matched)} row(s)"
             + (" (" + ", ".join(f"{how}: {n}" for how, n in pd.Series(
                 [h for _, h in matched.values()]).value_counts().items()) + ")"
                if matched else "")]
    if len(unmatched):
        lines.append(f"  UNMATCHED: {len(unmatched)} row(s)")
        lines += [f"    line {r.line}: {r.identifiers} -> {r.reason}"
                  for r in unmatched.itertuples()]
    if missing:
        lines.append(f"  metropolises without a score row ({len(missing)}): "
                     + ", ".join(missing))
    return "\n".join(lines)


def write_join(join: JoinResult, outputs_dir: Path) -> list[Path]:
    """Write ``tables/joined_scores`` (wide), ``joined_scores_long`` (tidy),
    ``correlations`` and ``unmatched_scores`` as CSV + Parquet. Returns the paths."""
    tables = Path(outputs_dir) / "tables"
    written: list[Path] = []
    _write_table(join.joined, tables, "joined_scores", written)
    _write_table(join.long, tables, "joined_scores_long", written)
    _write_table(join.correlations, tables, "correlations", written)
    _write_table(join.unmatched, tables, "unmatched_scores", written)
    return written
