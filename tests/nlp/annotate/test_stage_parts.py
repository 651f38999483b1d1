"""Annotate's tasks write their own parts of the three tables (issue 14 item 2): the part files
follow the job order and ``batch_size`` (never the scheduler: tests/nlp/compute checks that a
LocalCluster and a TCP scheduler write the in-process run's bytes), a partition run twice rewrites the same bytes, a failed
partition leaves the old tables in place, and a table with no row is still written."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from nlp.annotate import AnnotateSettings, run_annotate
from nlp.annotate import stage as annotate_stage
from nlp.annotate.parts import LazyDetector, annotate_part
from nlp.extract import ExtractSettings, run_extract
from nlp.io import read_table
from nlp.store import CorpusStore
from nlp.tableio import staged_dataset

ROOT = Path(__file__).resolve().parents[3]
LEXICONS = ROOT / "lexicons"
SETTINGS = AnnotateSettings(use_model=False, batch_size=4)
TABLES = ("documents", "paragraphs", "hits")


def _scale_corpus():
    name = "barometre_scale_corpus"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "fixtures" / "scale_corpus.py")
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 extracted HTML documents over three metropolises; one of them also published by a
    second metropolis (a document with two row sets)."""
    root = tmp_path_factory.mktemp("parts") / "corpus"
    store = _scale_corpus().build_corpus(root, 11, seed=3, pdf_share=0.0)
    shared = store.sources()[0]
    other = next(s["metropole"] for s in store.sources() if s["metropole"] != shared["metropole"])
    store.add_source(shared["document_id"], other, f"https://{other}.example/repris.html",
                     fetched_at="2024-01-02T00:00:00+00:00")
    run_extract(store, ExtractSettings(ocr=False), progress=False)
    store.close()
    return root


def _run(extracted: Path, work: Path, **kwargs) -> tuple[dict, Path]:
    corpus = work / "corpus"
    if not corpus.exists():
        shutil.copytree(extracted, corpus)
    with CorpusStore(corpus) as store:
        counts = run_annotate(store, work / "outputs", LEXICONS, kwargs.pop("settings", SETTINGS),
                              progress=False, **kwargs)
    return counts, work / "outputs" / "tables"


def _files(tables: Path) -> dict[str, bytes]:
    return {p.relative_to(tables).as_posix(): p.read_bytes()
            for name in TABLES for p in sorted((tables / f"{name}.parquet").rglob("*.parquet"))}


def test_parts_follow_the_job_order(extracted: Path, tmp_path: Path) -> None:
    counts, tables = _run(extracted, tmp_path)
    assert counts["annotated"] == 11 and counts["hits"] > 0
    names = {Path(name).name for name in _files(tables)}
    # 11 documents in partitions of 4: parts named by their first job's index
    assert names == {"part-000000000.parquet", "part-000000004.parquet", "part-000000008.parquet"}
    with CorpusStore(tmp_path / "corpus") as store:
        jobs = annotate_stage.doc_jobs(store, tmp_path / "cache", SETTINGS, Counter(), None)
    assert [j.index for j in jobs] == list(range(11))
    firsts = [j.sources[0][0] for j in jobs]
    assert firsts == sorted(firsts)  # by first metropolis, then store (id) order
    docs = read_table(tables / "documents.parquet")
    assert docs["document_id"].value_counts().max() == 2  # the shared document, once per metropolis
    order = {j.document_id: j.index for j in jobs}
    for _m, group in docs.groupby("metropole", sort=False):  # read back: job order in each folder
        assert list(group["document_id"].map(order)) == sorted(group["document_id"].map(order))
    # a re-run over the cache goes through the same tasks and writes the same bytes
    before = _files(tables)
    counts, _ = _run(extracted, tmp_path)
    assert counts["cached"] == 11 and "annotated" not in counts
    assert _files(tables) == before


def test_a_partition_run_twice_writes_the_same_parts(extracted: Path, tmp_path: Path) -> None:
    shutil.copytree(extracted, tmp_path / "corpus")
    with CorpusStore(tmp_path / "corpus") as store:
        jobs = annotate_stage.doc_jobs(store, tmp_path / "cache", SETTINGS, Counter(), None)
    detector = LazyDetector(annotate_stage.build_detector, LEXICONS, SETTINGS)
    with staged_dataset(tmp_path / "hits.parquet") as hits, staged_dataset(tmp_path / "docs.parquet") as docs, \
            staged_dataset(tmp_path / "paras.parquet") as paras:
        staging = {"documents": str(docs), "paragraphs": str(paras), "hits": str(hits)}
        first = annotate_part(jobs[4:8], staging, str(tmp_path / "corpus"), detector)
        written = {p: p.read_bytes() for p in Path(hits).rglob("*") if p.is_file()}
        again = annotate_part(jobs[4:8], staging, str(tmp_path / "corpus"), detector)
        assert {p: p.read_bytes() for p in Path(hits).rglob("*") if p.is_file()} == written
    assert first == again and first["annotated"] == 4  # the retry annotates again, same counts


def test_a_failed_partition_leaves_the_old_tables(extracted: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _counts, tables = _run(extracted, tmp_path)
    before = _files(tables)
    calls = []

    def flaky(jobs, *args):
        calls.append(jobs[0].index)
        if len(calls) == 2:
            raise OSError("disk full")
        return annotate_part(jobs, *args)

    monkeypatch.setattr(annotate_stage, "annotate_part", flaky)
    with pytest.raises(OSError):
        _run(extracted, tmp_path, settings=AnnotateSettings(use_model=False, batch_size=4, force=True))
    assert _files(tables) == before
    assert not [p for p in tables.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_no_row_still_writes_the_tables(extracted: Path, tmp_path: Path) -> None:
    _counts, full = _run(extracted, tmp_path / "full")
    counts, tables = _run(extracted, tmp_path / "none", metropoles=["nowhere"])
    assert counts["hits"] == counts["paragraphs"] == 0
    for name in TABLES:
        frame = read_table(tables / f"{name}.parquet")
        assert len(frame) == 0 and list(frame.columns) == list(read_table(full / f"{name}.parquet").columns)
        assert [p.name for p in (tables / f"{name}.parquet").iterdir()] == ["part-0.parquet"]
