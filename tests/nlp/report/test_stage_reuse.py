"""No work on an unchanged corpus (issue 14.7) for the indicators and report stages: a second
run over the same tables reuses every output untouched; a changed table (a changed partition
of a per-metropolis dataset), setting or output edited by hand recomputes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nlp import reuse
from nlp.config import Settings
from nlp.io import read_table, write_table
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
        write_table(df, tables / f"{name}.parquet", partition_by="metropole")  # as annotate writes them
    return Settings(corpus_dir=tmp_path / "corpus", outputs_dir=tmp_path / "outputs", progress=False,
                    indicators={"draws": 60})


def test_second_run_reuses_every_output_untouched(settings: Settings) -> None:
    out = Path(settings.outputs_dir)
    first_ind, first_rep = stage_indicators(settings), stage_report(settings)
    assert "reused" not in first_ind and "reused" not in first_rep
    before = _mtimes(out)
    assert any(k.startswith("report/") for k in before) and "tables/indicators.parquet/lyon/part-0.parquet" in before
    again_ind, again_rep = stage_indicators(settings), stage_report(settings)
    assert again_ind["reused"] and again_rep["reused"]
    assert again_ind["files"] == first_ind["files"] and again_rep["report"] == first_rep["report"]
    assert _mtimes(out) == before


def test_a_changed_input_setting_or_output_recomputes(settings: Settings) -> None:
    out = Path(settings.outputs_dir)
    stage_indicators(settings), stage_report(settings)
    # a setting of the stage
    settings = dataclasses.replace(settings, indicators={"draws": 61})
    assert "reused" not in stage_indicators(settings)
    # an input table: one paragraph fewer (in one metropolis's partition)
    paragraphs = read_table(out / "tables" / "paragraphs.parquet")
    write_table(paragraphs.iloc[1:], out / "tables" / "paragraphs.parquet", partition_by="metropole")
    assert "reused" not in stage_indicators(settings)
    assert stage_indicators(settings)["reused"]
    # an output dataset's partition edited by hand
    part = out / "tables" / "indicators.parquet" / "lyon" / "part-0.parquet"
    read_table(part).head(1).to_parquet(part)
    assert "reused" not in stage_indicators(settings)
    assert len(read_table(part)) > 1
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
    renamed = {**NAMES, next(iter(NAMES)): "Un autre nom"}
    build_report(outputs, names=renamed)
    assert all(state()[n] != before[n] for n in before)


def test_a_dataset_counts_by_each_partition(tmp_path: Path) -> None:
    """The key of a per-metropolis dataset: the same after an unchanged rewrite, changed by
    one row of one partition; with ignored columns (the retrieval time), by its content."""
    from report_outputs import annotate_tables

    documents, _paragraphs, hits = annotate_tables()
    tables = tmp_path / "tables"
    docs_path, hits_path = tables / "documents.parquet", tables / "hits.parquet"
    ignore = {"documents.parquet": ("fetched_at",)}

    def key() -> str:
        return reuse.stage_key([docs_path, hits_path], {}, ignore_columns=ignore)

    write_table(documents, docs_path, partition_by="metropole")
    write_table(hits, hits_path, partition_by="metropole")
    base = key()
    write_table(hits, hits_path, partition_by="metropole")
    write_table(documents, docs_path, partition_by="metropole")
    assert key() == base
    nantes = hits.index[hits["metropole"] == "nantes"][0]
    write_table(hits.drop(index=nantes), hits_path, partition_by="metropole")
    assert key() != base
    write_table(hits, hits_path, partition_by="metropole")
    assert key() == base
    refetched = documents.assign(fetched_at=documents["fetched_at"].where(documents["metropole"] != "lyon",
                                                                           "2031-01-01T00:00:00+00:00"))
    write_table(refetched, docs_path, partition_by="metropole")
    assert key() == base  # only the retrieval time of one partition changed
    write_table(documents.assign(n_words=documents["n_words"] + (documents["metropole"] == "lyon")), docs_path,
                partition_by="metropole")
    assert key() != base
    # a dataset as a recorded output: a partition removed or edited is no longer the output
    reuse.record(tmp_path, "x", "k", [hits_path], {"n": 1})
    assert reuse.reusable(tmp_path, "x", "k") == {"n": 1}
    (hits_path / "nantes" / "part-0.parquet").rename(hits_path / "nantes" / "part-1.parquet")
    assert reuse.reusable(tmp_path, "x", "k") is None


def test_a_changed_annotate_partition_recomputes_the_report(settings: Settings) -> None:
    """The report reads the annotate datasets (folders) as well as single files: one changed
    partition of ``documents`` makes it recompute."""
    out = Path(settings.outputs_dir)
    stage_indicators(settings), stage_report(settings)
    assert stage_report(settings)["reused"]
    documents = read_table(out / "tables" / "documents.parquet")
    documents.loc[documents.index[0], "title"] = "Un autre titre"
    write_table(documents, out / "tables" / "documents.parquet", partition_by="metropole")
    assert "reused" not in stage_report(settings)
