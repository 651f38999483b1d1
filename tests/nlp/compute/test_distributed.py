"""Extract and annotate on a real Dask scheduler and two real workers on 127.0.0.1, and on a
LocalCluster: the same tables as the in-process run (byte for byte for the Parquet tables);
a worker killed (SIGKILL) in the middle of the extract stage: its partition runs again on
the other worker, the result is unchanged and nothing is committed twice. Each run is a
subprocess (compute_runs.run_stages), as a user's barometre would be."""
from __future__ import annotations

from pathlib import Path

from compute_runs import DaskCluster, assert_same_outputs, copy_corpus, run_stages

from nlp.io import read_table
from nlp.store import CorpusStore


def test_local_cluster_gives_the_in_process_tables(source_corpus: Path, reference: Path, tmp_path: Path) -> None:
    copy_corpus(source_corpus, tmp_path / "corpus")
    counts = run_stages(tmp_path / "corpus", tmp_path / "outputs",
                        {"scheduler": "local", "workers": 2, "local_min_documents": 0})
    assert counts["extract"] == {"ok": 25} and counts["annotate"]["annotated"] == 25
    docs = read_table(tmp_path / "outputs" / "tables" / "documents.parquet")
    assert docs["document_id"].value_counts().max() == 2  # the shared document, once per metropolis
    assert_same_outputs(reference, tmp_path)


def _long_pdf_partition(corpus: Path, size: int) -> int:
    with CorpusStore(corpus) as store:
        ids = [d.id for d in store.documents()]
        long_id = next(s["document_id"] for s in store.sources() if s["url"].endswith("/long.pdf"))
    return ids.index(long_id) // size


def test_tcp_scheduler_with_a_killed_worker_gives_the_in_process_tables(
        source_corpus: Path, reference: Path, tmp_path: Path, dask_cluster: DaskCluster) -> None:
    """One run on the real scheduler, one of its two workers SIGKILLed while it extracts the
    long PDF: that partition is done again by the other worker, every document is committed
    once, and extract + annotate give the in-process run's rows, texts and tables."""
    corpus = copy_corpus(source_corpus, tmp_path / "corpus")
    size = 4
    target = _long_pdf_partition(corpus, size)
    result = run_stages(corpus, tmp_path / "outputs", {"scheduler": dask_cluster.address, "partition_size": size},
                        kill={"partition": target, "pids": dask_cluster.pids()})
    killed = [name for name, proc in dask_cluster.workers.items() if proc.poll() is not None]
    assert len(killed) == 1, "exactly one worker was killed"
    assert result["extract"] == {"ok": 25}  # each document counted (committed) once
    assert result["annotate"]["annotated"] == 25
    # The partition was running on the victim when it died, and was completed elsewhere.
    assert len(result["done_on"]) == 1 and result["victim"] not in result["done_on"][0], result
    assert_same_outputs(reference, tmp_path)
