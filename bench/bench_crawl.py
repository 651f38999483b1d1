"""Benchmark: crawl overhead of barometre's crawler vs a bare Scrapy spider, and memory.

Run by hand (not a test): ``.venv/bin/python bench/bench_crawl.py [--pages 10000] [--repeat 1]``.

On the same local site (tests/crawler/mockserver.py ``/gen/<n>``: a binary tree of small HTML
pages, served by a separate process on 127.0.0.1) and in one run, it crawls N pages with:

- ``bare``: a Scrapy spider that only follows links (Scrapy's default middlewares);
- ``bare-same-settings``: the same with barometre's scheduling settings (a JOBDIR with FIFO
  disk queues, as barometre always keeps one for resume, and ``CONCURRENT_ITEMS=8``): the
  difference with ``barometre`` is the cost of barometre's own code;
- ``barometre``: the real crawler (``crawler.run.run_crawl``, site spider, store pipeline,
  gate, relevance, traps, links log, provenance) with politeness off (no delay, no
  AutoThrottle, no robots.txt, same concurrency as the bare spider);
- ``barometre-store-all``: the same with every page stored as a document (threshold 0).

It prints pages/s (responses / Scrapy's elapsed time), CPU seconds per 1,000 pages of the
crawl process (independent of the server's speed), the overhead ratios side by side, and
the crawler's resident memory at 1k, 5k and 10k pages (memory should stay flat).

``--paired N``: the comparison that holds on a shared machine, where one crawl's CPU per page
varies by up to 2x from run to run. N rounds, each crawling with ``barometre`` and
``bare-same-settings`` *at the same time*, both pinned to the first CPU (the site's server
on the second), so that whatever else the machine does weighs on both alike; it prints each
round's ratio of CPU seconds per 1,000 pages and their median (issue 14: at most 1.10).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONCURRENCY = 16


def bare_crawl(url: str, stats_file: str, milestones: str, jobdir: str = "") -> None:
    """The bare spider (runs in a subprocess: ``--bare URL STATS MILESTONES [JOBDIR]``)."""
    import scrapy
    from scrapy.crawler import CrawlerProcess

    class Bare(scrapy.Spider):
        name = "bare"
        start_urls = [url]

        def parse(self, response: Any) -> Any:
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href, callback=self.parse)

    process = CrawlerProcess({
        "ROBOTSTXT_OBEY": False, "DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False,
        "CONCURRENT_REQUESTS": CONCURRENCY, "CONCURRENT_REQUESTS_PER_DOMAIN": CONCURRENCY,
        "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "EXTENSIONS": {"crawler.extensions.ProgressLog": 500},
        "BAROMETRE_PROGRESS_INTERVAL": 0, "BAROMETRE_STATS_FILE": stats_file,
        "BAROMETRE_RSS_MILESTONES": [int(x) for x in milestones.split(",")],
        # "Same settings": the scheduling settings barometre uses (crawler/settings.py).
        **({"JOBDIR": jobdir, "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
            "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue", "CONCURRENT_ITEMS": 8}
           if jobdir else {}),
    })
    process.crawl(Bare)
    process.start()


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _read_stats(path: Path, spider: str) -> dict[str, Any]:
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [x for x in lines if x["spider"] == spider][-1]


def run_bare(url: str, work: Path, milestones: str, jobdir: bool = False) -> dict[str, Any]:
    stats_file = work / "bare-stats.jsonl"
    stats_file.unlink(missing_ok=True)
    job = work / "bare-jobdir"
    shutil.rmtree(job, ignore_errors=True)
    cpu0, t0 = _children_cpu(), time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, __file__, "--bare", url, str(stats_file), milestones]
                   + ([str(job)] if jobdir else []), check=True, env=env)
    cpu, wall = _children_cpu() - cpu0, time.monotonic() - t0
    return {"stats": _read_stats(stats_file, "bare"), "cpu": cpu, "wall": wall}


def run_barometre(url: str, pages: int, work: Path, milestones: str, store_all: bool) -> dict[str, Any]:
    from crawler.run import run_crawl

    corpus = work / ("corpus-all" if store_all else "corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    stats_file = work / "barometre-stats.jsonl"
    stats_file.unlink(missing_ok=True)
    registry = {
        "version": 1,
        "defaults": {"max_pages": pages + 10, "max_depth": 64, "max_file_bytes": 10_000_000},
        "metropoles": [{"slug": "bench", "name": "Bench", "siren": "100000009",
                        "domains": ["127.0.0.1"], "start_urls": [url], "fictional": True}],
    }
    overrides = {
        "ROBOTSTXT_OBEY": False, "DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False,
        "CONCURRENT_REQUESTS": CONCURRENCY, "CONCURRENT_REQUESTS_PER_DOMAIN": CONCURRENCY,
        "BAROMETRE_USE_SITEMAPS": False, "BAROMETRE_MAX_PATTERN_URLS": 10 * pages,
        "BAROMETRE_PROGRESS_INTERVAL": 0, "BAROMETRE_STATS_FILE": str(stats_file),
        "BAROMETRE_RSS_MILESTONES": [int(x) for x in milestones.split(",")],
        "LOG_LEVEL": "WARNING", "spiders": ["site"], "contact": "bench@barometre.invalid",
        "allow_addresses": ["127.0.0.1"],  # the fixture server runs on this machine
    }
    if store_all:
        overrides["page_threshold"] = 0
    cpu0, t0 = _children_cpu(), time.monotonic()
    summary = run_crawl(registry, corpus, work / "outputs", overrides=overrides, progress=False,
                        log_level="WARNING")
    cpu, wall = _children_cpu() - cpu0, time.monotonic() - t0
    return {"stats": _read_stats(stats_file, "site"), "cpu": cpu, "wall": wall,
            "documents": summary.rows[0]["documents"]}


def one_crawl(kind: str, url: str, pages: int) -> None:
    """One crawl in this process (``--one KIND URL PAGES``): prints its CPU seconds per 1,000
    pages as JSON (``--paired`` starts two of these at once)."""
    work = Path(tempfile.mkdtemp(prefix="bench-crawl-one-"))
    try:
        if kind == "bare-same-settings":
            r = run_bare(url, work, "1000", jobdir=True)
        else:
            r = run_barometre(url, pages, work, "1000", store_all=False)
        n = r["stats"]["response_received_count"]
        print(json.dumps({"kind": kind, "pages": n, "cpu_per_1k": 1000 * r["cpu"] / n}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pinned(cpu: int) -> Any:
    def pin() -> None:  # in the child, before exec: it and its own children run on one CPU
        os.sched_setaffinity(0, {cpu})
    return pin


def paired(url: str, pages: int, rounds: int, cpu: int) -> list[float]:
    """Rounds of barometre and bare-same-settings crawling at the same time on CPU ``cpu``:
    barometre's CPU per 1,000 pages over the bare spider's, per round."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ratios = []
    for r in range(rounds):
        procs = {kind: subprocess.Popen([sys.executable, __file__, "--one", kind, url, str(pages)], env=env,
                                        stdout=subprocess.PIPE, text=True, preexec_fn=_pinned(cpu))
                 for kind in ("barometre", "bare-same-settings")}
        cpu_1k = {}
        for kind, proc in procs.items():
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"the {kind} crawl failed (exit {proc.returncode})")
            cpu_1k[kind] = json.loads(out.strip().splitlines()[-1])["cpu_per_1k"]
        ratios.append(cpu_1k["barometre"] / cpu_1k["bare-same-settings"])
        print(f"round {r + 1}: CPU s per 1,000 pages barometre {cpu_1k['barometre']:.2f}, "
              f"bare-same-settings {cpu_1k['bare-same-settings']:.2f}, ratio {ratios[-1]:.3f}", flush=True)
    return ratios


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        bare_crawl(*sys.argv[2:6])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        one_crawl(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--paired", type=int, default=0, metavar="ROUNDS",
                        help="instead of the table: ROUNDS of barometre and bare-same-settings at the same time on one CPU")
    args = parser.parse_args()
    milestones = ",".join(str(n) for n in (1000, 5000, 10_000) if n <= args.pages)

    cpus = sorted(os.sched_getaffinity(0))
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "crawler" / "mockserver.py")],
                              stdout=subprocess.PIPE, text=True,
                              preexec_fn=_pinned(cpus[-1]) if args.paired and len(cpus) > 1 else None)
    base = server.stdout.readline().strip()
    url = f"{base}/gen/0?max={args.pages}"
    if args.paired:
        try:
            ratios = paired(url, args.pages, args.paired, cpus[0])
        finally:
            server.terminate()
            server.wait()
        print(f"\nbench_crawl --paired: {args.pages} pages, {args.paired} rounds, both crawls on CPU {cpus[0]}"
              f"{f', the server on CPU {cpus[-1]}' if len(cpus) > 1 else ''}: barometre / bare-same-settings CPU "
              f"per 1,000 pages, median {statistics.median(ratios):.3f} (rounds "
              + ", ".join(f"{x:.3f}" for x in ratios) + "; target <= 1.10)")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    results: dict[str, list[dict[str, Any]]] = {
        "bare": [], "bare-same-settings": [], "barometre": [], "barometre-store-all": []}
    try:
        for _ in range(args.repeat):
            results["bare"].append(run_bare(url, work, milestones))
            results["bare-same-settings"].append(run_bare(url, work, milestones, jobdir=True))
            results["barometre"].append(run_barometre(url, args.pages, work, milestones, False))
            results["barometre-store-all"].append(run_barometre(url, args.pages, work, milestones, True))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    def best(name: str) -> dict[str, Any]:
        runs = results[name]
        rate = [r["stats"]["response_received_count"] / r["stats"]["elapsed_time_seconds"] for r in runs]
        i = max(range(len(runs)), key=lambda k: rate[k])
        r = runs[i]
        n = r["stats"]["response_received_count"]
        return {"pages": n, "pages_s": rate[i], "cpu_per_1k": 1000 * r["cpu"] / n, "wall": r["wall"],
                "rss": {m: r["stats"].get(f"barometre/rss_mb_at_{m}") for m in milestones.split(",")},
                "rss_max": r["stats"].get("barometre/rss_max_mb"), "documents": r.get("documents", "-")}

    rows = {name: best(name) for name in results}
    ref = rows["bare"]
    print(f"\nbench_crawl: {args.pages} pages of a local site, concurrency {CONCURRENCY}, "
          f"best of {args.repeat}, {os.cpu_count()} CPUs")
    print(f"{'crawler':22} {'pages':>6} {'pages/s':>8} {'vs bare':>8} {'CPU s/1k':>9} {'vs bare':>8} "
          f"{'stored':>7}  RSS MiB at " + ", ".join(milestones.split(",")) + " pages (peak)")
    for name, r in rows.items():
        rss = ", ".join(f"{v:.0f}" if v else "-" for v in r["rss"].values())
        print(f"{name:22} {r['pages']:>6} {r['pages_s']:>8.0f} {r['pages_s'] / ref['pages_s']:>8.2f} "
              f"{r['cpu_per_1k']:>9.2f} {r['cpu_per_1k'] / ref['cpu_per_1k']:>8.2f} {r['documents']!s:>7}  "
              f"{rss} ({r['rss_max']:.0f})")
    overhead = 1 - rows["barometre"]["pages_s"] / ref["pages_s"]
    overhead_job = 1 - rows["barometre"]["pages_s"] / rows["bare-same-settings"]["pages_s"]
    print(f"\nthroughput overhead of barometre vs bare: {overhead:+.1%}; "
          f"vs bare-same-settings: {overhead_job:+.1%} (target <= 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
