"""No work on an unchanged corpus (issue 14.7) for the indicators and report stages: a second
run over the same tables reuses every output untouched; a changed table, setting or output
edited by hand recomputes."""
from __future__ import annotations

from pathlib import Path

import pytest

from nlp import reuse
from nlp.config import Settings
from nlp.io import write_table
from nlp.pipeline import stage_indicators, stage_report
from report_outputs import annotate_tables


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file() and ".stages" not in p.parts and p.name != "run_info.json"}


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    documents, paragraphs, hits = annotate_tables()
    tables = tmp_path / "outputs" / "tables"
    for name, df in (("documents", documents), ("paragraphs", paragraphs), ("hits", hits)):
        write_table(df, tables / f"{name}.parquet")
    return Settings(corpus_dir=tmp_path / "corpus", outputs_dir=tmp_path / "outputs", progress=False,
                    indicators={"draws": 60})


def test_second_run_reuses_every_output_untouched(settings: Settings) -> None:
    out = Path(settings.outputs_dir)
    first_ind, first_rep = stage_indicators(settings), stage_report(settings)
    assert "reused" not in first_ind and "reused" not in first_rep
    before = _mtimes(out)
    assert any(k.startswith("report/") for k in before) and "tables/indicators.parquet" in before
    again_ind, again_rep = stage_indicators(settings), stage_report(settings)
    assert again_ind["reused"] and again_rep["reused"]
    assert again_ind["files"] == first_ind["files"] and again_rep["report"] == first_rep["report"]
    assert _mtimes(out) == before


def test_a_changed_input_setting_or_output_recomputes(settings: Settings) -> None:
    import pandas as pd

    out = Path(settings.outputs_dir)
    stage_indicators(settings), stage_report(settings)
    # a setting of the stage
    settings.indicators = {"draws": 61}
    assert "reused" not in stage_indicators(settings)
    assert "reused" not in stage_report(settings)  # its input tables changed with it
    # an input table: one paragraph fewer
    paragraphs = pd.read_parquet(out / "tables" / "paragraphs.parquet")
    write_table(paragraphs.iloc[1:], out / "tables" / "paragraphs.parquet")
    assert "reused" not in stage_indicators(settings)
    # an output edited by hand
    stage_report(settings)
    index = out / "report" / "index.html"
    index.write_text(index.read_text(encoding="utf-8") + "<!-- edited -->", encoding="utf-8")
    assert "reused" not in stage_report(settings)
    assert "edited" not in index.read_text(encoding="utf-8")


def test_a_run_killed_before_its_record_recomputes(settings: Settings, tmp_path: Path) -> None:
    out = Path(settings.outputs_dir)
    stage_indicators(settings)
    # the record is dropped before outputs are rewritten: simulate a kill right after that
    reuse.forget(out, "indicators")
    assert "reused" not in stage_indicators(settings)
    # an unreadable record only costs a recomputation
    (out / reuse.RECORD_DIR / "indicators.json").write_text("{not json", encoding="utf-8")
    assert "reused" not in stage_indicators(settings)
    assert stage_indicators(settings)["reused"]


def test_stage_key_covers_bytes_config_and_code(tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    a.write_bytes(b"x")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("X = 1\n")
    base = reuse.stage_key([a], {"k": 1}, code=[pkg])
    assert reuse.stage_key([a], {"k": 1}, code=[pkg]) == base
    assert reuse.stage_key([a], {"k": 2}, code=[pkg]) != base
    (pkg / "m.py").write_text("X = 2\n")
    changed_code = reuse.stage_key([a], {"k": 1}, code=[pkg])
    assert changed_code != base
    a.write_bytes(b"y")
    assert reuse.stage_key([a], {"k": 1}, code=[pkg]) != changed_code
    a.unlink()
    assert reuse.stage_key([a], {"k": 1}, code=[pkg]) != changed_code  # absent is a state too


def test_figures_are_redrawn_only_when_what_they_show_changes(tmp_path: Path) -> None:
    """A rebuild keeps the PNG of every figure whose data, title and display names are
    unchanged (drawing is most of the report's time) and redraws the others."""
    from nlp.report import build_report
    from report_outputs import NAMES, synthetic_outputs

    outputs = synthetic_outputs(tmp_path / "outputs", draws=50)
    build_report(outputs, names=NAMES)
    plots = outputs / "plots"

    def state() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in plots.glob("*.png")}

    before = state()
    assert len(before) > 5
    build_report(outputs, names=NAMES)
    assert state() == before
    (plots / "documents_par_annee.png").write_bytes(b"not a png")  # an output edited by hand
    build_report(outputs, names=NAMES)
    assert (plots / "documents_par_annee.png").read_bytes()[:4] == b"\x89PNG"
    (plots / ".figure_keys.json").write_text("{not json")  # keys lost: every figure drawn again
    build_report(outputs, names=NAMES)
    renamed = {**NAMES, next(iter(NAMES)): "Un autre nom"}
    build_report(outputs, names=renamed)
    assert all(state()[n] != before[n] for n in before)
