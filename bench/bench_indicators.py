"""Benchmark of the indicators stage (run by hand, not a test).

The demo's annotate-stage tables (``outputs/tables``: run ``make run`` first, or pass
``--from`` another outputs folder) copied until the corpus reaches ``--docs`` documents, spread
over about 22 metropolises (each copy of a document gets a new id; its paragraphs and hits
follow it) → ``compute_indicators`` with ``--draws`` bootstrap draws, in this process and, with
``--scheduler``, on a Dask cluster (``local``: a LocalCluster of ``--workers`` processes, its
start included in the time). Prints the times side by side, their ratio, the ratio to the 30 s
target, and whether the tables are identical.

    .venv/bin/python bench/bench_indicators.py [--docs 4400] [--draws 1000] [--scheduler local]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlp.compute import ComputeSettings, client_for  # noqa: E402
from nlp.indicators import IndicatorSettings, compute_indicators  # noqa: E402
from nlp.io import read_table  # noqa: E402


def scaled_tables(source: Path, n_docs: int, n_metros: int = 22) -> tuple[pd.DataFrame, ...]:
    """The annotate tables of ``source`` copied to ``n_docs`` document rows over about
    ``n_metros`` metropolises (copy k of metropolis m is ``m-(k mod n)``)."""
    tables = [read_table(source / f"{n}.parquet") for n in ("documents", "paragraphs", "hits")]
    base_metros = sorted(tables[0]["metropole"].unique())
    per = max(1, round(n_metros / len(base_metros)))
    copies = max(1, -(-n_docs // len(tables[0])))
    out = []
    for table in tables:
        parts = []
        for k in range(copies):
            t = table.copy()
            t["document_id"] = t["document_id"] + f"-{k}"
            t["metropole"] = t["metropole"] + f"-{k % per}"
            parts.append(t)
        out.append(pd.concat(parts, ignore_index=True))
    keep = set(out[0]["document_id"].iloc[:n_docs])
    return tuple(t[t["document_id"].isin(keep)].reset_index(drop=True) for t in out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="source", type=Path, default=Path("outputs"))
    ap.add_argument("--docs", type=int, default=4400)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--scheduler", default=None, help="also run the bootstrap there (local, tcp://…)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tables = Path(args.source) / "tables"
    if not (tables / "documents.parquet").exists():
        sys.exit(f"no annotate tables in {tables}: run `make run` first (or pass --from)")
    docs, paras, hits = scaled_tables(tables, args.docs)
    print(f"data: {len(docs)} documents, {len(paras)} paragraphs, {len(hits)} hits, "
          f"{docs.metropole.nunique()} metropolises")
    s = IndicatorSettings(draws=args.draws)
    t0 = time.perf_counter()
    compute_indicators(docs, paras, hits, IndicatorSettings(draws=0))
    t1 = time.perf_counter()
    here = compute_indicators(docs, paras, hits, s)
    t2 = time.perf_counter()
    print(f"no bootstrap             : {t1 - t0:6.2f} s")
    print(f"{args.draws} draws, in process  : {t2 - t1:6.2f} s ({(t2 - t1) / 30:.2f} of the 30 s target)")
    if args.scheduler:
        compute = ComputeSettings(scheduler=args.scheduler, workers=args.workers, local_min_documents=0)
        t3 = time.perf_counter()
        with client_for(compute) as client:
            t4 = time.perf_counter()
            there = compute_indicators(docs, paras, hits, s, client=client)
        t5 = time.perf_counter()
        same = all(here.tables[n].equals(there.tables[n]) for n in here.tables)
        print(f"{args.draws} draws, {args.scheduler} ({args.workers} workers): {t5 - t3:6.2f} s "
              f"(cluster start {t4 - t3:.2f} s); ratio to in process {(t5 - t3) / (t2 - t1):.2f}; "
              f"tables identical: {same}")


if __name__ == "__main__":
    main()
