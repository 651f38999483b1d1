"""Stage "indicators": per-metropolis text indicators with honest uncertainty.

Inputs (annotate stage, columns in :mod:`nlp.schema`): ``outputs/tables/documents``,
``paragraphs`` and ``hits`` (Parquet); the detector's validation counts
(``outputs/validation/validation.json`` from a researcher's coded sample, else
``outputs/validation/model_cv.json``, the shipped model's grouped cross-validation, copied by
the annotate stage). Outputs (:func:`write_indicators`): every table as CSV + Parquet under
``outputs/tables/`` and ``outputs/data_dictionary.{md,csv}`` (definitions from
``nlp/indicators/dictionary.yaml``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlp.errors import ConfigError
from nlp.indicators.base import build_base
from nlp.indicators.comparison import compare_profiles
from nlp.indicators.evidence import sample_evidence
from nlp.indicators.keyness import keyness_table
from nlp.indicators.maturity import MaturityConfig, compute_maturity, load_config
from nlp.indicators.measures import Correction, build_level, corrected, level_values, mix_adjusted, tidy
from nlp.indicators.ranks import rank_table
from nlp.io import atomic_write, write_table
from nlp.schema import BARRIER_THEMES, SUBTHEMES, THEMES

log = logging.getLogger(__name__)

# Documented default weights of the mix-adjusted share: every document type counts the same.
DEFAULT_TYPE_WEIGHTS = {"deliberation": 1.0, "proces_verbal": 1.0, "strategie": 1.0, "rapport": 1.0,
                        "page_web": 1.0, "autre": 1.0}
RANK_MEASURES = ("paragraph_share", "document_share", "hits_per_10k_words", "paragraph_share_adjusted",
                 "paragraph_share_corrected")


@dataclass(frozen=True)
class IndicatorSettings:
    """Settings of the indicators stage. ``draws``: bootstrap draws (0: no intervals);
    ``min_documents``: a cell with fewer analysed documents is flagged and not ranked;
    ``type_weights``: weights of the mix-adjusted share; ``maturity_path``: the index
    configuration (default ``nlp/indicators/maturity.yaml``); ``validation_path``: validation
    counts for the corrected prevalence (default: see the module docstring)."""

    draws: int = 1000
    seed: int = 42
    confidence: float = 0.95
    min_documents: int = 5
    maturity_path: Path | None = None
    validation_path: Path | None = None
    by_year: bool = True
    by_doc_type: bool = True
    evidence_per_cell: int = 5
    doc_types: tuple[str, ...] | None = None
    type_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TYPE_WEIGHTS))
    rank_measure: str = "paragraph_share"
    n_clusters: int = 3
    metropoles: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ConfigError(f"indicators: confidence must be in (0, 1), got {self.confidence}")
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 0:
            raise ConfigError(f"indicators: draws must be an integer >= 0, got {self.draws!r}")
        if self.min_documents < 1:
            raise ConfigError(f"indicators: min_documents must be >= 1, got {self.min_documents}")
        if self.rank_measure not in RANK_MEASURES:
            raise ConfigError(f"indicators: rank_measure must be one of {', '.join(RANK_MEASURES)}")
        for k, v in self.type_weights.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ConfigError(f"indicators: type_weights.{k}: must be a finite number >= 0, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class IndicatorResult:
    """Every table :func:`compute_indicators` produces, by name, plus provenance."""

    tables: dict[str, pd.DataFrame]
    settings: IndicatorSettings
    maturity: MaturityConfig
    correction: Correction | None
    metropoles: list[str]
    warnings: list[str]


def load_correction(outputs_dir: Path, settings: IndicatorSettings) -> Correction | None:
    """Validation counts for the corrected prevalence (see the module docstring)."""
    candidates = [settings.validation_path] if settings.validation_path else [
        Path(outputs_dir) / "validation" / "validation.json", Path(outputs_dir) / "validation" / "model_cv.json"]
    for path in candidates:
        if path and Path(path).is_file():
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            rows = data.get("effective") or data.get("labels") or []
            counts = {r["label"]: {k: float(r[k]) for k in ("tp", "fp", "fn", "tn")} for r in rows}
            what = "thèmes après polarité" if data.get("effective") else "étiquettes"
            return Correction(counts, f"{data.get('source', path)} ({what} ; modèle {data.get('model', '?')})")
    return None


def compute_indicators(documents: pd.DataFrame, paragraphs: pd.DataFrame, hits: pd.DataFrame,
                       settings: IndicatorSettings | None = None, correction: Correction | None = None,
                       client: Any = None) -> IndicatorResult:
    """Compute every indicator table (nothing is written; see :func:`write_indicators`).
    ``client``: a Dask client on which the bootstrap draws run (None: in this process; the
    tables are the same)."""
    s = settings or IndicatorSettings()
    config = load_config(s.maturity_path)
    themes = list(THEMES)
    base = build_base(documents, paragraphs, hits, themes, doc_types=s.doc_types, metropoles=s.metropoles)
    levels = {"all": build_level(base, "all", s.draws, s.seed, client)}
    if s.by_year:
        levels["year"] = build_level(base, "year", s.draws, s.seed, client)
    levels["doc_type"] = build_level(base, "doc_type", s.draws, s.seed, client)
    all_level = levels["all"]
    values = level_values(all_level)
    if levels["doc_type"] is not None:
        values["paragraph_share_adjusted"] = (mix_adjusted(all_level, levels["doc_type"], s.type_weights, False),
                                              mix_adjusted(all_level, levels["doc_type"], s.type_weights, True))
    if correction is not None:
        values["paragraph_share_corrected"] = corrected(all_level, themes, correction, s.draws, s.seed)
    src = correction.source if correction else None
    frames = [tidy(all_level, themes, values, s.confidence, s.min_documents, src)]
    for name in ("year", "doc_type"):
        lv = levels.get(name)
        if lv is not None and (name == "year" or s.by_doc_type):
            frames.append(tidy(lv, themes, level_values(lv), s.confidence, s.min_documents, None))
    tidy_all = pd.concat(frames, ignore_index=True)
    metros = list(all_level.cells.keys["metropole"])
    rankable = all_level.cells.n_docs >= s.min_documents
    rank_frames, prob_frames = [], []
    for m, (point, dr) in values.items():
        r, p = rank_table(metros, themes, m, point, dr, rankable, s.confidence, s.min_documents)
        rank_frames.append(r)
        prob_frames.append(p)
    tables: dict[str, pd.DataFrame] = {
        "indicators": tidy_all, "ranks": pd.concat(rank_frames, ignore_index=True),
        "rank_probabilities": pd.concat(prob_frames, ignore_index=True),
        "keyness": keyness_table(all_level, themes, s.confidence, s.min_documents),
    }
    tables.update(compute_maturity(metros, values, themes, rankable, config, s.confidence, s.min_documents))
    tables.update(compare_profiles(metros, themes, values["paragraph_share"][0], s.n_clusters))
    tables["subthemes"] = _subthemes(documents, paragraphs, hits, s, client)
    tables["evidence"] = sample_evidence(hits, paragraphs, base.docs, themes, s.evidence_per_cell, s.seed)
    tables["indicators_wide"] = _wide(tidy_all, all_level, tables["maturity_index"])
    tables["barriers"] = tidy_all[(tidy_all["level"] == "all") & tidy_all["theme"].isin(BARRIER_THEMES)]
    for w in base.warnings:
        log.warning(w)
    return IndicatorResult(tables, s, config, correction, metros, base.warnings)


def _subthemes(documents: pd.DataFrame, paragraphs: pd.DataFrame, hits: pd.DataFrame, s: IndicatorSettings,
               client: Any = None) -> pd.DataFrame:
    cols = [f"{t}.{sub}" for t, subs in SUBTHEMES.items() for sub in subs]
    base = build_base(documents, paragraphs, hits, cols, doc_types=s.doc_types, metropoles=s.metropoles,
                      subthemes=True)
    level = build_level(base, "all", s.draws, s.seed + 1, client)
    out = tidy(level, cols, level_values(level), s.confidence, s.min_documents, None)
    out.insert(3, "subtheme", out["theme"].str.split(".").str[1])
    out["theme"] = out["theme"].str.split(".").str[0]
    return out


def _wide(tidy_all: pd.DataFrame, level: Any, maturity: pd.DataFrame) -> pd.DataFrame:
    """One row per metropolis: ``<theme>__<measure>`` (+ ``__ci_low`` / ``__ci_high``)."""
    t = tidy_all[tidy_all["level"] == "all"].copy()
    t["col"] = t["theme"] + "__" + t["measure"]
    vals = t.pivot(index="metropole", columns="col", values="value")
    lo = t.pivot(index="metropole", columns="col", values="ci_low").add_suffix("__ci_low")
    hi = t.pivot(index="metropole", columns="col", values="ci_high").add_suffix("__ci_high")
    cols = [c for col in vals.columns for c in (col, f"{col}__ci_low", f"{col}__ci_high")]
    wide = pd.concat([vals, lo, hi], axis=1)[cols].reset_index()
    base = pd.DataFrame({"metropole": level.cells.keys["metropole"], "n_documents": level.cells.n_docs,
                         "n_paragraphs": level.n_paragraphs, "n_words": level.n_words})
    mat = maturity[["metropole", "maturity_index", "ci_low", "ci_high", "rank"]].rename(
        columns={"ci_low": "maturity_index__ci_low", "ci_high": "maturity_index__ci_high", "rank": "maturity_rank"})
    return base.merge(wide, on="metropole", how="left").merge(mat, on="metropole", how="left")


def write_indicators(result: IndicatorResult, outputs_dir: Path) -> list[Path]:
    """Every table as CSV + Parquet (a dataset per metropolis when it has a ``metropole``
    column) under ``outputs_dir/tables``, the settings and
    provenance, and the data dictionary. Returns the written paths."""
    from nlp.indicators.dictionary import write_data_dictionary

    tables = Path(outputs_dir) / "tables"
    written: list[Path] = []
    for name, df in result.tables.items():
        # A table with a metropole column is a dataset partitioned by metropolis; the CSV
        # copy stays one file for spreadsheets.
        written += write_table(df, tables / f"{name}.parquet", csv=True, partition_by="metropole")
    meta = {"settings": result.settings.to_dict(), "maturity": asdict(result.maturity),
            "correction": result.correction.source if result.correction else None,
            "metropoles": result.metropoles, "warnings": result.warnings}
    p = tables / "indicators_settings.json"
    atomic_write(p, json.dumps(meta, ensure_ascii=False, indent=2, default=str))
    written.append(p)
    written += write_data_dictionary(Path(outputs_dir), result.maturity)
    return written
