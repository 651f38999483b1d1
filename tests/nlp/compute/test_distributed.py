"""Extract and annotate on a real Dask scheduler and two real workers on 127.0.0.1, and on a
LocalCluster: the same tables as the in-process run (byte for byte for the Parquet tables);
a worker killed (SIGKILL) in the middle of the extract stage: its partition runs again on
the other worker, the result is unchanged and nothing is committed twice."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from compute_runs import DaskCluster, assert_same_outputs, copy_corpus, run_stages

from nlp.compute import ComputeSettings
from nlp.store import CorpusStore


def test_local_cluster_gives_the_in_process_tables(source_corpus: Path, reference: Path, tmp_path: Path) -> None:
    copy_corpus(source_corpus, tmp_path / "corpus")
    run_stages(tmp_path / "corpus", tmp_path / "outputs",
               ComputeSettings(scheduler="local", workers=2, local_min_documents=0))
    assert_same_outputs(reference, tmp_path)


def _long_pdf_partition(corpus: Path, size: int) -> int:
    with CorpusStore(corpus) as store:
        ids = [d.id for d in store.documents()]
        long_id = next(s["document_id"] for s in store.sources() if s["url"].endswith("/long.pdf"))
    return ids.index(long_id) // size


def test_tcp_scheduler_with_a_killed_worker_gives_the_in_process_tables(
        source_corpus: Path, reference: Path, tmp_path: Path, dask_cluster: DaskCluster, caplog) -> None:
    """One run on the real scheduler, one of its two workers SIGKILLed while it extracts the
    long PDF: that partition is done again by the other worker, every document is committed
    once, and extract + annotate give the in-process run's rows, texts and tables."""
    corpus = copy_corpus(source_corpus, tmp_path / "corpus")
    size = 4
    target = _long_pdf_partition(corpus, size)
    result: dict = {}

    def stage() -> None:
        try:
            result["counts"] = run_stages(corpus, tmp_path / "outputs",
                                          ComputeSettings(scheduler=dask_cluster.address, partition_size=size))
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    caplog.set_level(logging.DEBUG, logger="nlp.compute")
    runner = threading.Thread(target=stage)
    with dask_cluster.client() as watch:
        runner.start()
        victim, key = None, None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline and runner.is_alive():
            for address, keys in watch.processing().items():
                for k in keys:
                    if k.startswith("extract-") and k.endswith(f"-{target}"):
                        victim, key = address, k
            time.sleep(0.01)
        assert victim is not None, "the partition with the long PDF was never seen running"
        name = watch.scheduler_info()["workers"][victim]["name"]
        time.sleep(0.3)  # well inside the long PDF's extraction
        dask_cluster.kill_worker(name)
        runner.join(120)
    assert not runner.is_alive()
    assert "error" not in result, result.get("error")
    assert result["counts"]["extract"] == {"ok": 25}  # each document counted (committed) once
    assert result["counts"]["annotate"]["annotated"] == 25
    done_on = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"extract: partition {target} done")]
    assert len(done_on) == 1 and victim not in done_on[0], (victim, done_on)
    assert_same_outputs(reference, tmp_path)
