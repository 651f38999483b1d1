"""Stage "report": one self-contained HTML page from the persisted tables.

Inputs (under ``outputs_dir``; see :mod:`nlp.report.tables`): the annotate stage's
``tables/documents.parquet`` (and ``hits.parquet``), the indicators' tables and
``tables/indicators_settings.json``, optionally the barometer join's and the topics stage's
tables (and its HTML figures under ``outputs/topics/``), ``outputs/validation/*.json`` and
``run_info.json``. A missing required input is an error naming the command to run; nothing
is recomputed here.

Outputs: ``outputs/report/index.html`` — CSS inline, figures embedded as PNG data URIs, no
JavaScript, no network, in French with the decimal comma; ``outputs/report/data/*.csv`` — the
data of every table and figure, linked from the page beside the stages' own
``outputs/tables/*.csv``; ``outputs/plots/*.png`` — the figures. Text from crawled documents
goes through Jinja2's autoescape and only http(s) URLs become links.

Modules: :mod:`~nlp.report.tables` (loading), :mod:`~nlp.report.sections` and
:mod:`~nlp.report.panels` (one function per section), :mod:`~nlp.report.plots` (figures,
never written by themselves), :mod:`~nlp.report.artifacts` (files and provenance),
:mod:`~nlp.report.formatting` (French numbers and labels), ``templates/report.html.j2``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import jinja2

from nlp.io import atomic_write
from nlp.report import panels, sections
from nlp.report.artifacts import Context, Output, Provenance
from nlp.report.formatting import safe_url
from nlp.report.tables import Inputs, load_inputs

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).with_name("templates")
TITLE = "Baromètre textuel de la maturité numérique des métropoles"
SECTIONS = [
    ("apercu", "Aperçu"), ("methode", "Méthode"), ("carte", "Carte de chaleur"), ("profils", "Profils"),
    ("classement", "Classements"), ("maturite", "Indice de maturité"), ("freins", "Freins"),
    ("specificites", "Spécificités"), ("evolution", "Évolution et types"), ("topics", "Thèmes latents"),
    ("barometre", "Baromètre"), ("preuves", "Preuves"), ("execution", "Exécution"),
]

__all__ = ["build_report", "safe_url", "SECTIONS"]


def _metropoles(inputs: Inputs) -> list[str]:
    """The metropolises of the indicators, in the indicators' order."""
    listed = inputs.settings.get("metropoles")
    if listed:
        return [str(m) for m in listed]
    return sorted(set(inputs["indicators"]["metropole"].astype(str)))


def _content(ctx: Context) -> dict[str, Any]:
    """Every section's content, in page order."""
    return {
        "overview": panels.overview(ctx), "method": panels.method(ctx), "heatmap": sections.heatmap(ctx),
        "profiles": sections.profiles(ctx), "rankings": sections.rankings(ctx),
        "maturity": sections.maturity(ctx), "barriers": sections.barriers(ctx),
        "keyness": sections.keyness(ctx), "evolution": sections.evolution(ctx), "topics": panels.topics(ctx),
        "barometer": panels.barometer(ctx), "evidence": panels.evidence(ctx),
        "run_info": panels.run_information(ctx),
    }


def render(content: Mapping[str, Any], run_info_present: bool, dictionary: bool) -> str:
    """The page from the sections' content (Jinja2, autoescape on); ``dictionary``: link the
    data dictionary (``outputs/data_dictionary.{md,csv}``)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True)
    present = {"topics": content["topics"] is not None, "barometre": content["barometer"] is not None}
    nav = [{"id": i, "title": t} for i, t in SECTIONS if present.get(i, True)]
    return env.get_template("report.html.j2").render(
        title=TITLE, generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), sections=nav,
        primary=sections.PRIMARY, run_info_present=run_info_present, dictionary=dictionary, **content)


def build_report(outputs_dir: Path, names: Mapping[str, str] | None = None) -> Path:
    """Build ``outputs_dir/report/index.html`` (and its CSV and PNG files) from the persisted
    tables; ``names``: display name of each metropolis slug. Returns the page's path."""
    outputs_dir = Path(outputs_dir)
    inputs = load_inputs(outputs_dir)
    ctx = Context(inputs=inputs, out=Output(outputs_dir),
                  provenance=Provenance(inputs.settings.get("correction"), inputs.model_versions),
                  names=dict(names or {}), metropoles=_metropoles(inputs))
    dictionary = all((outputs_dir / f"data_dictionary.{ext}").is_file() for ext in ("md", "csv"))
    html = render(_content(ctx), bool(inputs.run_info), dictionary)
    path = ctx.out.report_dir / "index.html"
    atomic_write(path, html)
    removed = ctx.out.prune()
    log.info("report written to %s (%d data files, %d stale files removed)", path, len(ctx.out.written), len(removed))
    return path
