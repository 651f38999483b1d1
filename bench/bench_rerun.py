"""No work on an unchanged corpus (issue 14.7): the demo run twice, per-stage times side by side.

The first run crawls the demo site, extracts, annotates, fits topics, computes the indicators
and builds the report; the second runs over the same site and outputs. Printed: each stage's
time in both runs (from ``run_info.json``), the second as a share of the first, and whether the
stage said it reused its outputs. Target: the re-run's stage time <= 5% of the first run's
(the crawl of a re-run still asks every URL: conditional requests, answered 304).

    .venv/bin/python bench/bench_rerun.py [--no-topics]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(corpus: Path, outputs: Path, topics: bool) -> tuple[float, dict]:
    """One ``barometre demo`` in a child process: (wall seconds, run_info)."""
    cmd = [sys.executable, "-m", "nlp.cli", "demo", "--corpus-dir", str(corpus), "--outputs-dir", str(outputs),
           "--no-progress"] + ([] if topics else ["--no-topics"])
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start, json.loads((outputs / "run_info.json").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-topics", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, outputs = Path(tmp) / "corpus", Path(tmp) / "outputs"
        wall1, first = run(corpus, outputs, not args.no_topics)
        wall2, second = run(corpus, outputs, not args.no_topics)
    print(f"{'stage':12} {'first s':>8} {'re-run s':>9} {'share':>7}  reused")
    total1 = total2 = 0.0
    for stage, t1 in first["timings"].items():
        t2 = second["timings"].get(stage, float("nan"))
        reused = (second.get("stages", {}).get(stage) or {}).get("reused")
        total1, total2 = total1 + t1, total2 + t2
        print(f"{stage:12} {t1:8.2f} {t2:9.2f} {t2 / t1 if t1 else float('nan'):7.1%}  {reused}")
    print(f"{'all stages':12} {total1:8.2f} {total2:9.2f} {total2 / total1:7.1%}")
    rest1 = total1 - first["timings"].get("crawl", 0)
    rest2 = total2 - second["timings"].get("crawl", 0)
    print(f"{'after crawl':12} {rest1:8.2f} {rest2:9.2f} {rest2 / rest1:7.1%}   (target <= 5%)")
    print(f"wall time of the command (process start, imports, demo server): {wall1:.1f} s, then {wall2:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
