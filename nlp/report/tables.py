"""What the report reads, and only that (stage: report).

Inputs, all persisted by earlier stages under ``outputs_dir``:

- ``tables/documents.parquet`` (annotate) — required; ``tables/hits.parquet`` and the
  ``model`` column of ``tables/paragraphs.parquet`` (annotate) — optional, for counts and
  the model version when ``run_info.json`` lacks it;
- the indicators' tables (``tables/<name>.parquet``, :data:`INDICATOR_TABLES`) and
  ``tables/indicators_settings.json`` — required: written by ``barometre indicators``;
- the barometer join's tables (:data:`JOIN_TABLES`) — optional: ``barometre indicators
  --scores F``;
- the topics stage's ``tables/topics*.parquet`` / ``topic_theme_map.parquet`` and its HTML
  figures under ``outputs/topics/`` — optional;
- ``outputs/validation/*.json`` (the validation the correction comes from), ``run_info.json``
  and ``tables/crawl_summary.csv`` — optional.

Tables are read with :func:`nlp.tableio.read_table`: a single Parquet file or a dataset
partitioned by metropolis (the annotate and indicators stages write those), alike.

Output: :class:`Inputs`. A missing required input is a :class:`~nlp.errors.BarometreError`
naming the command to run; nothing is ever recomputed here.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nlp.errors import BarometreError
from nlp.io import read_table, table_columns

log = logging.getLogger(__name__)

INDICATOR_TABLES = (
    "indicators", "ranks", "rank_probabilities", "keyness", "maturity_index", "maturity_components",
    "maturity_rank_probabilities", "sensitivity", "subthemes", "barriers", "profiles", "distances",
    "clusters", "linkage", "evidence",
)
JOIN_TABLES = ("joined_scores", "joined_scores_long", "correlations", "unmatched_scores", "scores_coverage")
TOPIC_TABLES = ("topics", "topics_per_metropole", "topic_theme_map", "topics_over_time")
HIT_COLUMNS_USED = ["metropole", "theme", "counts", "count_theme", "reason"]


@dataclass
class Inputs:
    """Everything the report shows. ``tables``: name → DataFrame (absent optional tables are
    not keys); ``settings``: ``indicators_settings.json``; ``run_info``: ``run_info.json``
    (``{}`` when absent); ``validation``: the validation file the correction names (or
    ``None``); ``topic_figures``: the topics stage's HTML figures."""

    outputs_dir: Path
    tables: dict[str, pd.DataFrame]
    settings: dict[str, Any]
    run_info: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    validation_path: Path | None = None
    topic_figures: list[Path] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in self.tables and not self.tables[name].empty

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    @property
    def tables_dir(self) -> Path:
        return self.outputs_dir / "tables"


def _parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A table (single file or per-metropolis dataset); of ``columns``, those it has."""
    if columns is not None:
        present = set(table_columns(path))
        columns = [c for c in columns if c in present]
    return read_table(path, columns=columns)


def _required(tables: Path, name: str, command: str) -> pd.DataFrame:
    path = tables / f"{name}.parquet"
    if not path.exists():
        raise BarometreError(f"report: {path} not found; run `{command}` first")
    return _parquet(path)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BarometreError(f"report: {path} is not readable JSON ({exc}); run the stage that writes it "
                             "again") from None


def load_inputs(outputs_dir: Path) -> Inputs:
    """Read every input (see the module docstring)."""
    outputs_dir = Path(outputs_dir)
    tables_dir = outputs_dir / "tables"
    tables = {"documents": _required(tables_dir, "documents", "barometre annotate")}
    settings_path = tables_dir / "indicators_settings.json"
    if not settings_path.is_file():
        raise BarometreError(f"report: {settings_path} not found; run `barometre indicators` first")
    settings = _json(settings_path)
    for name in INDICATOR_TABLES:
        tables[name] = _required(tables_dir, name, "barometre indicators")
    for name in (*JOIN_TABLES, *TOPIC_TABLES):
        path = tables_dir / f"{name}.parquet"
        if path.exists():
            tables[name] = _parquet(path)
    if (tables_dir / "hits.parquet").exists():
        tables["hits"] = _parquet(tables_dir / "hits.parquet", HIT_COLUMNS_USED)
    crawl = tables_dir / "crawl_summary.csv"
    if crawl.is_file():
        tables["crawl_summary"] = pd.read_csv(crawl)
    run_info_path = outputs_dir / "run_info.json"
    run_info = _json(run_info_path) if run_info_path.is_file() else {}
    if not isinstance(run_info, dict):
        run_info = {}
    validation, vpath = _validation(outputs_dir, settings)
    topics_dir = outputs_dir / "topics"
    figures = sorted(topics_dir.glob("*.html")) if topics_dir.is_dir() else []
    return Inputs(outputs_dir=outputs_dir, tables=tables, settings=settings, run_info=run_info,
                  validation=validation, validation_path=vpath, topic_figures=figures,
                  model_versions=_model_versions(tables_dir, run_info))


def _validation(outputs_dir: Path, settings: dict[str, Any]) -> tuple[dict[str, Any] | None, Path | None]:
    """The validation file the indicators used for the correction (the one named in the
    settings, else the first of ``validation.json`` / ``model_cv.json`` present), only when
    a correction was applied."""
    if not settings.get("correction"):
        return None, None
    named = (settings.get("settings") or {}).get("validation_path")
    folder = outputs_dir / "validation"
    for path in ([Path(named)] if named else []) + [folder / "validation.json", folder / "model_cv.json"]:
        if path.is_file():
            data = _json(path)
            return (data if isinstance(data, dict) else None), path
    return None, None


def _model_versions(tables_dir: Path, run_info: dict[str, Any]) -> list[str]:
    """Which model version produced the paragraph labels: ``run_info.json`` → models →
    themes, else the distinct values of the paragraphs table's ``model`` column."""
    models = run_info.get("models") if isinstance(run_info.get("models"), dict) else {}
    if models.get("themes"):
        return [str(models["themes"])]
    path = tables_dir / "paragraphs.parquet"
    if path.exists():
        col = _parquet(path, ["model"])
        if "model" in col:
            return sorted({str(v) for v in col["model"].dropna().unique()})
    return []
