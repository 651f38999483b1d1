"""The textual maturity index and its sensitivity (stage: indicators).

Input: the driver themes' measure per metropolis (points and bootstrap draws) and the index
configuration (``nlp/indicators/maturity.yaml``: measure, normalisation, reference shares,
weights). Output: the index (0–100) per metropolis with its interval, rank, rank interval and
rank probabilities; its components; and a sensitivity table over the measure, the
normalisation and each weight.

Normalisation (default ``reference``): each driver's value ``x`` becomes ``x / (x + r)``, with
``r`` a fixed, documented reference share (0.5 at the reference, 0 at none, towards 1 far
above). It does not depend on which metropolises are compared, so a leader does not take all
the points and adding a metropolis does not move the others. ``minmax`` and ``rank`` (relative
to the compared set) are kept for the sensitivity table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nlp.errors import BarometreError, ConfigError
from nlp.indicators.bootstrap import percentiles
from nlp.indicators.ranks import rank_table
from nlp.io import load_yaml
from nlp.schema import BARRIER_THEMES, DRIVER_THEMES

DEFAULT_CONFIG = Path(__file__).with_name("maturity.yaml")
NORMALISATIONS = ("reference", "minmax", "rank")
INDEX_MEASURES = ("paragraph_share", "document_share", "hits_per_10k_words", "paragraph_share_adjusted")


@dataclass
class MaturityConfig:
    """Parsed index configuration (see the module docstring)."""

    weights: dict[str, float]
    reference: dict[str, float] = field(default_factory=dict)
    measure: str = "paragraph_share"
    normalisation: str = "reference"
    version: int = 2
    source: str = ""


def load_config(path: Path | None = None) -> MaturityConfig:
    """Read and validate the index YAML (``path`` or the packaged default). Errors name the
    file and the key."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = load_yaml(path)
    except BarometreError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("weights"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'weights' mapping")
    weights = {k: _number(path, f"weights.{k}", v, allow_zero=True) for k, v in raw["weights"].items()}
    for key in weights:
        if key in BARRIER_THEMES:
            raise ConfigError(f"{path}: weights.{key}: barrier themes are reported beside the index, not weighted into it")
        if key not in DRIVER_THEMES:
            raise ConfigError(f"{path}: weights.{key}: unknown driver theme (one of {', '.join(DRIVER_THEMES)})")
    if sum(weights.values()) <= 0:
        raise ConfigError(f"{path}: weights: at least one weight must be > 0")
    measure = raw.get("measure", "paragraph_share")
    if measure not in INDEX_MEASURES:
        raise ConfigError(f"{path}: measure: expected one of {', '.join(INDEX_MEASURES)}, got {measure!r}")
    norm = raw.get("normalisation", "reference")
    if norm not in NORMALISATIONS:
        raise ConfigError(f"{path}: normalisation: expected one of {', '.join(NORMALISATIONS)}, got {norm!r}")
    reference = {k: _number(path, f"reference.{k}", v) for k, v in (raw.get("reference") or {}).items()}
    missing = [t for t, w in weights.items() if w > 0 and t not in reference]
    if norm == "reference" and missing:
        raise ConfigError(f"{path}: reference: no reference share for {', '.join(missing)}")
    return MaturityConfig(weights=weights, reference=reference, measure=measure, normalisation=norm,
                          version=int(raw.get("version", 2)), source=str(path))


def _number(path: Path, key: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{path}: {key}: must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def normalise(x: np.ndarray, method: str, reference: np.ndarray) -> np.ndarray:
    """Put each driver (last axis) on 0–1; metropolises are axis -2. NaN stays NaN."""
    if method == "reference":
        with np.errstate(divide="ignore", invalid="ignore"):
            return x / (x + reference)
    if method == "rank":
        n = np.sum(~np.isnan(x), axis=-2, keepdims=True)
        r = stats.rankdata(x, axis=-2, method="average", nan_policy="omit")
        out = np.where(n > 1, (r - 1) / np.maximum(n - 1, 1), 0.5)
        return np.where(np.isnan(x), np.nan, out)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mn = np.nanmin(x, axis=-2, keepdims=True)
            mx = np.nanmax(x, axis=-2, keepdims=True)
        span = mx - mn
        out = np.where(span > 0, (x - mn) / np.where(span > 0, span, 1), 0.5)
    return np.where(np.isnan(x), np.nan, out)


def index_of(norm: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 100.0 * (norm * w).sum(axis=-1) / w.sum()


def compute_maturity(metropoles: list[str], values: dict[str, tuple[np.ndarray, np.ndarray | None]],
                     columns: list[str], rankable: np.ndarray, config: MaturityConfig, confidence: float,
                     min_documents: int) -> dict[str, pd.DataFrame]:
    """Index, components, rank probabilities and sensitivity (see the module docstring).
    ``values``: measure → (points ``G × T``, draws ``B × G × T``) over ``columns``."""
    drivers = [t for t in DRIVER_THEMES if config.weights.get(t, 0) > 0 and t in columns]
    idx = [columns.index(t) for t in drivers]
    w = np.array([config.weights[t] for t in drivers])
    ref = np.array([config.reference.get(t, np.nan) for t in drivers])

    def index_for(measure: str, norm: str, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        point, dr = values[measure]
        x = np.where(rankable[:, None], point[:, idx], np.nan)
        n = normalise(x, norm, ref)
        xd = None if dr is None else np.where(rankable[None, :, None], dr[:, :, idx], np.nan)
        return index_of(n, weights), (None if xd is None else index_of(normalise(xd, norm, ref), weights)), n

    point, draws, norm = index_for(config.measure, config.normalisation, w)
    ranks, probs = rank_table(metropoles, ["maturity_index"], config.measure, point[:, None],
                              None if draws is None else draws[:, :, None], rankable, confidence, min_documents)
    lo = hi = np.full(len(metropoles), np.nan)
    if draws is not None:
        lo, hi = percentiles(draws, confidence)
    maturity = ranks.drop(columns=["theme", "measure", "value"]).assign(
        maturity_index=point, ci_low=lo, ci_high=hi, measure=config.measure,
        normalisation=config.normalisation)
    comp = [(m, t, values[config.measure][0][i, columns.index(t)], norm[i, k], w[k] / w.sum(),
             100 * norm[i, k] * w[k] / w.sum()) for i, m in enumerate(metropoles) for k, t in enumerate(drivers)]
    components = pd.DataFrame(comp, columns=["metropole", "theme", "value", "normalised", "weight", "contribution"])
    sensitivity = _sensitivity(metropoles, index_for, point, config, drivers, w, values)
    return {"maturity_index": maturity, "maturity_components": components,
            "maturity_rank_probabilities": probs.drop(columns=["theme"]), "sensitivity": sensitivity}


def _sensitivity(metropoles: list[str], index_for: Any, baseline: np.ndarray, config: MaturityConfig,
                 drivers: list[str], w: np.ndarray, values: dict[str, Any]) -> pd.DataFrame:
    """The ranking under every alternative: another measure, another normalisation, each
    weight dropped (the others renormalised)."""
    base_rank = stats.rankdata(-np.nan_to_num(baseline, nan=-np.inf), method="average")
    scenarios: list[tuple[str, str, str, np.ndarray]] = [("baseline", config.measure, config.normalisation, w)]
    scenarios += [(f"measure={m}", m, config.normalisation, w) for m in INDEX_MEASURES
                  if m != config.measure and m in values]
    scenarios += [(f"normalisation={n}", config.measure, n, w) for n in NORMALISATIONS if n != config.normalisation]
    for k, t in enumerate(drivers):
        w2 = w.copy()
        w2[k] = 0
        if w2.sum() > 0:
            scenarios.append((f"without={t}", config.measure, config.normalisation, w2))
    rows = []
    for name, measure, norm, weights in scenarios:
        point, _draws, _n = index_for(measure, norm, weights)
        rank = stats.rankdata(-np.nan_to_num(point, nan=-np.inf), method="average")
        ok = ~np.isnan(point) & ~np.isnan(baseline)
        varied = ok.sum() >= 3 and np.ptp(point[ok]) > 0 and np.ptp(baseline[ok]) > 0
        rho = float(stats.spearmanr(point[ok], baseline[ok]).statistic) if varied else np.nan
        for i, m in enumerate(metropoles):
            rows.append((name, m, point[i], rank[i] if not np.isnan(point[i]) else np.nan,
                         base_rank[i] if not np.isnan(baseline[i]) else np.nan, rho))
    out = pd.DataFrame(rows, columns=["scenario", "metropole", "maturity_index", "rank", "baseline_rank",
                                      "spearman_with_baseline"])
    out["rank_change"] = out["rank"] - out["baseline_rank"]
    return out
