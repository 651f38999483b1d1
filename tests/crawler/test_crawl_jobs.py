"""Crawls as per-metropolis jobs on a Dask cluster (crawler.jobs, issue 14 item 3).

Real components throughout: the demo site served on 127.0.0.1, the real Scrapy process per
job, a real ``dask scheduler`` and two ``dask worker`` processes (tests/nlp/compute/
compute_runs.py), the real SQLite store. The per-job path must give the store the same rows as
the single-process crawl, merge idempotently, survive a killed worker, and never let two
processes crawl one metropolis.
"""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

from conftest import TEST_OVERRIDES
from crawler.jobs import (LockedError, MetropoleLocks, crawl_groups, job_dir, merge_manifest,
                          seed_manifest)
from crawler.registry import load_registry
from crawler.run import run_crawl
from nlp.compute import ComputeSettings
from nlp.config import REPO_ROOT
from nlp.store import CorpusStore

demo_site = pytest.importorskip("nlp.demo.site")


def _compute_runs() -> ModuleType:
    name = "barometre_compute_runs_for_crawl"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "nlp" / "compute" / "compute_runs.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        assert spec.loader is not None
        spec.loader.exec_module(module)
    return sys.modules[name]


# -- grouping -----------------------------------------------------------------------------------
def test_the_real_registry_crawls_one_metropolis_per_job() -> None:
    reg = load_registry(REPO_ROOT / "crawler" / "metropoles.yaml").to_dict()
    groups = crawl_groups(reg["metropoles"])
    assert len(groups) == len(reg["metropoles"]) == 22
    assert all(len(g) == 1 for g in groups)


def test_metropolises_sharing_a_host_crawl_in_one_job() -> None:
    def entry(slug: str, *urls: str, domains: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"slug": slug, "domains": list(domains), "start_urls": list(urls), "sitemaps": [],
                "deliberation_datasets": [{"url": "https://www.data.gouv.fr/x.csv"}]}

    groups = crawl_groups([
        entry("a", "https://www.metro-a.fr/"), entry("b", "https://numerique.metro-a.fr/strategie"),
        entry("c", "https://metro-c.fr/", domains=("metro-c.fr",)), entry("d", "https://metro-d.fr/"),
    ])
    # b's host is inside a's domain (www. aside); the dataset portal shared by all ties nothing.
    assert groups == [["a", "b"], ["c"], ["d"]]
    # The demo serves its four metropolises from one host: one job keeps that host's politeness.
    assert crawl_groups(demo_site.demo_registry("http://127.0.0.1:8000")["metropoles"]) == [
        sorted(m["slug"] for m in demo_site.demo_registry("http://127.0.0.1:8000")["metropoles"])]


# -- locks ----------------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_metropolis_is_never_locked_twice(tmp_path: Path) -> None:
    with MetropoleLocks(tmp_path, ["lyon", "nantes"]):
        assert sorted(p.name for p in (tmp_path / ".crawl" / "locks").iterdir()) == ["lyon.lock", "nantes.lock"]
        with pytest.raises(LockedError, match=r"metropolis nantes is being crawled by process \d+"):
            with MetropoleLocks(tmp_path, ["nantes", "toulouse"], wait=0):
                pass
        # The failed attempt took nothing (toulouse) and left the holder's locks in place.
        assert sorted(p.name for p in (tmp_path / ".crawl" / "locks").iterdir()) == ["lyon.lock", "nantes.lock"]
    assert not list((tmp_path / ".crawl" / "locks").iterdir())


def test_a_dead_holders_lock_is_taken_over_another_hosts_never(tmp_path: Path) -> None:
    locks = tmp_path / ".crawl" / "locks"
    locks.mkdir(parents=True)
    (locks / "lyon.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
    with MetropoleLocks(tmp_path, ["lyon"]):
        assert json.loads((locks / "lyon.lock").read_text())["pid"] == os.getpid()
    (locks / "lyon.lock").write_text(json.dumps({"host": "node-17.cluster", "pid": 4242, "since": "x"}))
    with pytest.raises(LockedError, match="node-17.cluster"):
        with MetropoleLocks(tmp_path, ["lyon"], wait=0):
            pass


def test_a_live_holder_on_this_host_is_waited_for(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    locks = tmp_path / ".crawl" / "locks"
    locks.mkdir(parents=True)
    (locks / "lyon.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid}))
    try:
        with pytest.raises(LockedError):
            with MetropoleLocks(tmp_path, ["lyon"], wait=0):
                pass
        # The holder exits (its zombie reaped) while the second waits: then it is stale.
        started = time.monotonic()
        import threading

        threading.Timer(1.0, holder.wait).start()
        with MetropoleLocks(tmp_path, ["lyon"], wait=30):
            assert time.monotonic() - started >= 0.9
    finally:
        holder.kill()
        holder.wait()


# -- manifests ------------------------------------------------------------------------------------
def _table(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(sql).fetchall(), key=repr)


def _store_rows(corpus: Path) -> dict[str, list[tuple]]:
    db = corpus / "corpus.sqlite"
    return {
        "documents": _table(db, "SELECT id, media_type, size, path FROM documents"),
        "sources": _table(db, "SELECT document_id, metropole, url, origin, attribution FROM sources"),
        "fetches": _table(db, "SELECT metropole, url, status, http_status, kind, document_id, attempts, fetched_at "
                              "FROM fetches"),
    }


def test_seed_then_merge_is_idempotent_and_touches_only_the_jobs_metropolis(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    with CorpusStore(corpus) as store:
        a, _ = store.add_document(b"%PDF-1.4 lyon strategy", "application/pdf")
        b, _ = store.add_document(b"<html>nantes</html>", "text/html")
        store.add_source(a, "lyon", "https://lyon.fr/s.pdf", fetched_at="2026-01-01T00:00:00+00:00")
        store.add_source(b, "nantes", "https://nantes.fr/", fetched_at="2026-01-01T00:00:00+00:00")
        store.record_fetch("lyon", "https://lyon.fr/s.pdf", "ok", kind="document", document_id=a)
        store.record_fetch("lyon", "https://lyon.fr/gone", "http-404", kind="page")
        store.record_fetch("nantes", "https://nantes.fr/", "ok", kind="page", document_id=b)
        manifest = tmp_path / "job" / "manifest.sqlite"
        manifest.parent.mkdir()
        assert seed_manifest(store, manifest, ["lyon"]) == {"documents": 1, "sources": 1, "fetches": 2}
    # The job: a new document (file in the shared corpus, row in its manifest), a re-fetch.
    time.sleep(1.1)  # fetch times are stored to the second
    with CorpusStore(corpus, manifest=manifest, journal_mode="DELETE") as job:
        c, created = job.add_document(b"%PDF-1.4 lyon deliberation", "application/pdf")
        job.add_source(c, "lyon", "https://lyon.fr/d.pdf", fetched_at="2026-02-01T00:00:00+00:00")
        job.record_fetch("lyon", "https://lyon.fr/d.pdf", "ok", kind="document", document_id=c)
        job.record_fetch("lyon", "https://lyon.fr/gone", "http-404", kind="page")
    assert created
    before_nantes = [r for r in _store_rows(corpus)["fetches"] if r[0] == "nantes"]
    with CorpusStore(corpus) as store:
        first = merge_manifest(store, manifest)
        assert first == {"documents": 1, "sources": 1, "fetches": 2}
        rows = _store_rows(corpus)
        assert merge_manifest(store, manifest) == {"documents": 0, "sources": 0, "fetches": 0}
        assert _store_rows(corpus) == rows
        assert (corpus / store.get_document(c).path).read_bytes() == b"%PDF-1.4 lyon deliberation"
    gone = [r for r in rows["fetches"] if r[1] == "https://lyon.fr/gone"]
    assert gone[0][6] == 2  # attempts: the store's one plus the job's
    assert [r for r in rows["fetches"] if r[0] == "nantes"] == before_nantes


def test_an_older_job_row_never_replaces_a_newer_store_row(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    manifest = tmp_path / "manifest.sqlite"
    with CorpusStore(corpus) as store:
        seed_manifest(store, manifest, ["lyon"])
    with CorpusStore(corpus, manifest=manifest, journal_mode="DELETE") as job:
        job.record_fetch("lyon", "https://lyon.fr/p", "http-5xx", kind="page")
    time.sleep(1.1)
    with CorpusStore(corpus) as store:
        store.record_fetch("lyon", "https://lyon.fr/p", "ok", kind="page")
        merge_manifest(store, manifest)
        assert store.get_fetch("lyon", "https://lyon.fr/p")["status"] == "ok"


# -- end to end on a real Dask cluster ----------------------------------------------------------------
def _two_host_registry(base: str) -> dict[str, Any]:
    """The demo registry with two metropolises moved to http://localhost:PORT: two hosts, so
    two jobs (each with two metropolises) for the same local server."""
    reg = demo_site.demo_registry(base)
    other = base.replace("127.0.0.1", "localhost")
    for entry in sorted(reg["metropoles"], key=lambda e: e["slug"])[2:]:
        text = json.dumps(entry).replace(base, other).replace("127\\\\.0\\\\.0\\\\.1", "localhost")
        entry.clear()
        entry.update(json.loads(text))
        entry["domains"] = ["localhost"]
        entry["sitemaps"] = []
    return reg


OVERRIDES = {**{k: v for k, v in TEST_OVERRIDES.items() if k != "BAROMETRE_MAX_QUERY_VARIANTS"},
             "CONCURRENT_REQUESTS_PER_DOMAIN": 4, "allow_addresses": ["127.0.0.1", "::1"]}


def _localhost_is_loopback() -> bool:
    try:
        return any(info[4][0] in ("127.0.0.1", "::1") for info in socket.getaddrinfo("localhost", None))
    except OSError:
        return False


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not _localhost_is_loopback():
        pytest.skip("the two-host demo needs 'localhost' to resolve to this machine (/etc/hosts)")
    built = demo_site.build_site(tmp_path_factory.mktemp("site"))
    with demo_site.serve(built.root) as server:
        yield built, server


@pytest.fixture(scope="module")
def reference(site: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    """The single-process crawl of the same registry: what the jobs must give the store."""
    _built, server = site
    base = tmp_path_factory.mktemp("reference")
    run_crawl(_two_host_registry(server.base_url), base / "corpus", base / "outputs", overrides=OVERRIDES,
              progress=False)
    return _comparable(base / "corpus")


def _differences(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> dict[str, Any]:
    """Rows only in one of two stores, per table (empty when they hold the same rows)."""
    out = {}
    for table in want:
        extra, missing = set(got[table]) - set(want[table]), set(want[table]) - set(got[table])
        if extra or missing:
            out[table] = {"extra": sorted(extra, key=repr), "missing": sorted(missing, key=repr)}
    return out


def _comparable(corpus: Path) -> dict[str, list[tuple]]:
    """Store rows without what differs between two crawls of the same site (times, attempts
    counted across retries)."""
    rows = _store_rows(corpus)
    # The demo's robots.txt points every host at the one 127.0.0.1 sitemap: which of the two
    # localhost metropolises records that offsite fetch depends on request order in their
    # process, in either layout.
    return {"documents": rows["documents"], "sources": rows["sources"],
            "fetches": [r[:6] for r in rows["fetches"] if (r[2], r[4]) != ("offsite", "sitemap")]}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    c = _compute_runs().DaskCluster(workdir)
    try:
        c.wait()
        yield c
    except Exception:
        print(c.logs())
        raise
    finally:
        c.close()


@pytest.mark.slow
def test_jobs_on_a_dask_cluster_fill_the_store_as_one_process_does(site: Any, reference: Any, cluster: Any,
                                                                   tmp_path: Path) -> None:
    _built, server = site
    registry = _two_host_registry(server.base_url)
    corpus = tmp_path / "corpus"
    summary = run_crawl(registry, corpus, tmp_path / "outputs", overrides=OVERRIDES, progress=False,
                        compute=ComputeSettings(scheduler=cluster.address))
    assert sorted(tuple(j["slugs"]) for j in summary.jobs) == [tuple(g) for g in crawl_groups(registry["metropoles"])]
    assert len(summary.jobs) == 2 and all(j["returncode"] == 0 and j["worker"] for j in summary.jobs)
    assert not _differences(_comparable(corpus), reference)
    assert {r["metropole"] for r in summary.rows} == {e["slug"] for e in registry["metropoles"]}
    # The workers wrote to their manifests only; the locks are released.
    for job in summary.jobs:
        assert Path(job["manifest"]).parent == job_dir(corpus, job["slugs"])
    assert not list((corpus / ".crawl" / "locks").iterdir())
    # Merging a finished job again changes nothing.
    with CorpusStore(corpus) as store:
        assert all(set(merge_manifest(store, Path(j["manifest"])).values()) == {0} for j in summary.jobs)


@pytest.mark.slow
def test_a_killed_worker_s_crawl_job_is_retried_and_the_store_is_unchanged(site: Any, reference: Any,
                                                                           cluster: Any, tmp_path: Path) -> None:
    _built, server = site
    registry = _two_host_registry(server.base_url)
    corpus = tmp_path / "corpus"
    # Slow enough to be killed mid-crawl: one request at a time, a small delay.
    overrides = {**OVERRIDES, "CONCURRENT_REQUESTS_PER_DOMAIN": 1, "DOWNLOAD_DELAY": 0.05}
    killed: dict[str, Any] = {}

    def kill_first_job_worker() -> None:
        pids = {pid: name for name, pid in cluster.pids().items()}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for attempt in corpus.glob(".crawl/by-metropole/*/attempt.json"):
                manifest = attempt.parent / "manifest.sqlite"
                try:
                    info = json.loads(attempt.read_text())
                    fetched = _table(manifest, "SELECT COUNT(*) FROM fetches")[0][0]
                except (ValueError, OSError, sqlite3.Error):
                    continue
                if fetched >= 5 and info["pid"] in pids:
                    killed.update(job=attempt.parent.name, fetched=fetched, worker=pids[info["pid"]])
                    cluster.kill_worker(pids[info["pid"]])
                    return
            time.sleep(0.05)

    import threading

    killer = threading.Thread(target=kill_first_job_worker)
    killer.start()
    summary = run_crawl(registry, corpus, tmp_path / "outputs", overrides=overrides, progress=False,
                        compute=ComputeSettings(scheduler=cluster.address))
    killer.join()
    assert killed, "no job was seen running on a worker"
    retried = [j for j in summary.jobs if "+".join(j["slugs"]) == killed["job"]]
    assert retried and retried[0]["resumed"] and retried[0]["returncode"] == 0
    assert not _differences(_comparable(corpus), reference)
    assert not list((corpus / ".crawl" / "locks").iterdir())


def test_a_crawl_refuses_a_metropolis_another_process_is_crawling(site: Any, tmp_path: Path) -> None:
    from crawler.run import CrawlError

    _built, server = site
    registry = demo_site.demo_registry(server.base_url)
    slug = registry["metropoles"][0]["slug"]
    with MetropoleLocks(tmp_path / "corpus", [slug]):  # held by this (live) process
        with pytest.raises(CrawlError, match="exited with code 75"):
            run_crawl(registry, tmp_path / "corpus", tmp_path / "outputs", metropoles=[slug],
                      overrides=OVERRIDES, progress=False)
    with CorpusStore(tmp_path / "corpus") as store:
        assert not store.fetches([slug])  # nothing was crawled
