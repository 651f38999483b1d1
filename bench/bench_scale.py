"""Scaling of extract + annotate on the compute layer: 1 vs 2 Dask workers, side by side.

Run: ``.venv/bin/python bench/bench_scale.py`` (default: 1,000 documents), ``--sizes 1000
10000``, ``--large`` to add 50,000, ``--workers 1 2``, ``--pdf-share 0.3``.

The corpus is generated (tests/fixtures/scale_corpus.py): real sentences (the demo corpus and,
when ../shared/data is there, the gold development set) reshuffled into documents of 3-10
paragraphs, a share of them as PDFs drawn with the project's PDF fixture generator, the rest
as HTML pages; spread over three metropolises. For each size and each worker count, a fresh
copy of the corpus goes through ``run_extract`` then ``run_annotate`` on a fresh
LocalCluster (one single-threaded worker process per worker), given to the stages as a
scheduler address so that this script can ask the workers their peak memory at the end.

Columns: wall seconds per stage (the cluster's start is shown apart: the stages reuse it),
documents per second for the two stages together, speed-up against 1 worker in the same run
(target ≥ 1.8× for 2 workers), CPU seconds of the workers (their own and their forked
extraction children's), CPU seconds of this process during annotate (the client: store
reads, job records, commits; the LocalCluster's scheduler runs in it too), peak RSS per
worker (the Dask worker process; its forked extraction children's peak apart). On a shared,
loaded machine the wall-time speed-up is a floor: CPU seconds say how much work there was.
"""
from __future__ import annotations

import argparse
import importlib.util
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.annotate import AnnotateSettings, run_annotate  # noqa: E402
from nlp.compute import ComputeSettings  # noqa: E402
from nlp.extract import ExtractSettings, run_extract  # noqa: E402
from nlp.io import read_table  # noqa: E402
from nlp.store import CorpusStore  # noqa: E402


def _scale_corpus() -> Any:
    spec = importlib.util.spec_from_file_location("barometre_scale_corpus", ROOT / "tests" / "fixtures" / "scale_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def worker_usage() -> dict[str, float]:
    """Runs on each worker: its peak RSS and CPU seconds, and those of its (reaped) children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"rss_mb": me.ru_maxrss / 1024, "children_rss_mb": kids.ru_maxrss / 1024,
            "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}


def one_run(source: Path, work: Path, n_workers: int) -> dict[str, Any]:
    """Extract + annotate a fresh copy of ``source`` on a fresh LocalCluster of ``n_workers``."""
    from distributed import Client, LocalCluster

    corpus = work / "corpus"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, corpus)
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    start_s = time.perf_counter() - t0
    compute = ComputeSettings(scheduler=cluster.scheduler_address)
    try:
        with CorpusStore(corpus) as store:
            t = time.perf_counter()
            extracted = run_extract(store, ExtractSettings(ocr=False), progress=False, compute=compute)
            extract_s = time.perf_counter() - t
            extract_cpu = sum(u["cpu_s"] for u in client.run(worker_usage).values())
            t, cpu = time.perf_counter(), time.process_time()
            annotated = run_annotate(store, work / "outputs", ROOT / "lexicons", AnnotateSettings(),
                                     progress=False, compute=compute)
            annotate_s, annotate_client_cpu = time.perf_counter() - t, time.process_time() - cpu
            pages = sum(int(r["pages"] or 0) for r in store.latest_extractions())
        usage = client.run(worker_usage)
        words = int(read_table(work / "outputs" / "tables" / "documents.parquet", columns=["n_words"])["n_words"].sum())
    finally:
        client.close()
        cluster.close()
    return {"start_s": start_s, "extract_s": extract_s, "extract_cpu": extract_cpu, "annotate_s": annotate_s,
            "annotate_client_cpu": annotate_client_cpu, "pages": pages,
            "extracted": extracted, "annotated": annotated.get("annotated"), "words": words,
            "paragraphs": annotated.get("paragraphs"), "usage": list(usage.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--large", action="store_true", help="add the 50,000-document corpus")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pdf-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep", type=Path, help="keep the corpora and outputs under this folder")
    args = parser.parse_args()
    sizes = args.sizes + ([50_000] if args.large else [])
    scale = _scale_corpus()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    rows = []
    try:
        for n in sizes:
            t = time.perf_counter()
            source = base / f"source-{n}"
            if not (source / "corpus.sqlite").exists():
                scale.build_corpus(source, n, seed=args.seed, pdf_share=args.pdf_share).close()
            print(f"corpus of {n:,} documents generated in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            first = None
            for w in args.workers:
                r = one_run(source, base / f"run-{n}-{w}", w)
                total = r["extract_s"] + r["annotate_s"]
                rate = n / total
                first = first or rate
                rows.append((n, w, r, rate, rate / first))
                print(_row(n, w, r, rate, rate / first), file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(_table(rows))
    return 0


HEADER = ("| documents | workers | cluster start s | extract s | annotate s | docs/s | speed-up | pages | "
          "words | worker CPU s (extract + annotate) | annotate client CPU s | peak RSS per worker MB | extraction child peak MB |")


def _row(n: int, w: int, r: dict[str, Any], rate: float, speedup: float) -> str:
    usage = r["usage"]
    rss = "/".join(f"{u['rss_mb']:.0f}" for u in usage)
    kids = "/".join(f"{u['children_rss_mb']:.0f}" for u in usage)
    cpu = sum(u["cpu_s"] for u in usage)
    return (f"| {n:,} | {w} | {r['start_s']:.1f} | {r['extract_s']:.1f} | {r['annotate_s']:.1f} | {rate:.1f} | "
            f"{speedup:.2f}× | {r['pages']:,} | {r['words']:,} | {r['extract_cpu']:.0f} + {cpu - r['extract_cpu']:.0f} | {r['annotate_client_cpu']:.1f} | {rss} | {kids} |")


def _table(rows: list[tuple]) -> str:
    sep = "|" + "|".join("---" for _ in HEADER.split("|")[1:-1]) + "|"
    return "\n".join([HEADER, sep] + [_row(*row) for row in rows])


if __name__ == "__main__":
    sys.exit(main())
