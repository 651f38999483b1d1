"""Shared setup of the compute-layer tests: a small generated corpus
(tests/fixtures/scale_corpus.py), its in-process reference run, and a fresh real Dask
scheduler with two real workers on 127.0.0.1 per test (compute_runs.DaskCluster)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest
from compute_runs import DaskCluster, copy_corpus, run_stages

from nlp.config import REPO_ROOT

N_DOCS = 24
SEED = 14


def _load(name: str, path: Path) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        assert spec.loader is not None
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def scale_corpus() -> ModuleType:
    return _load("barometre_scale_corpus", REPO_ROOT / "tests" / "fixtures" / "scale_corpus.py")


@pytest.fixture(scope="session")
def source_corpus(scale_corpus: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus folder of N_DOCS generated documents (PDF and HTML), one of them also published
    by a second metropolis (a document with two row sets in the tables), plus one 120-page PDF
    whose extraction takes long enough for a test to kill the worker running it."""
    root = tmp_path_factory.mktemp("source") / "corpus"
    store = scale_corpus.build_corpus(root, N_DOCS, seed=SEED, pdf_share=0.4)
    shared = store.sources()[0]
    other = next(s["metropole"] for s in store.sources() if s["metropole"] != shared["metropole"])
    store.add_source(shared["document_id"], other, f"https://{other}.example/repris.html",
                     fetched_at="2024-01-02T00:00:00+00:00")
    long_pdf = scale_corpus.make_pdf("Procès-verbal long", [f"Point {i}. " + s for i, s in
                                                           enumerate(scale_corpus.sentences(False) * 2)][:1500])
    doc_id, _ = store.add_document(long_pdf, "application/pdf")
    store.add_source(doc_id, "alpha", "https://alpha.example/docs/long.pdf", page_title="Procès-verbal long",
                     fetched_at="2024-01-01T00:00:00+00:00")
    store.close()
    return root


@pytest.fixture(scope="session")
def reference(source_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The in-process run of extract + annotate on the source corpus: what every other
    scheduler must reproduce."""
    base = tmp_path_factory.mktemp("reference")
    run_stages(copy_corpus(source_corpus, base / "corpus"), base / "outputs", {"scheduler": "inprocess"})
    return base


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """A fresh scheduler and two workers for one test (a test may kill one)."""
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    cluster = DaskCluster(workdir)
    try:
        cluster.wait()
        yield cluster
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.close()
