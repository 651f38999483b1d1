"""Resume: a crawl killed mid-way (SIGKILL) and resumed ends with the same documents as an
uninterrupted crawl of the same site: nothing lost, nothing fetched twice that was stored."""
from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.run import build_crawl_args, crawl_command, run_crawl, write_crawl_args
from nlp.store import CorpusStore

pytestmark = pytest.mark.slow


def _state(corpus: Path, base: str) -> tuple[set[str], set[tuple[str, str]], dict[str, str]]:
    with CorpusStore(corpus) as store:
        docs = {d.id for d in store.documents()}
        sources = {(s["metropole"], s["url"].replace(base, "")) for s in store.sources()}
        statuses = {f["url"].replace(base, ""): f["status"] for f in store.fetches()}
    return docs, sources, statuses


def _count_documents(corpus: Path) -> int:
    if not (corpus / "corpus.sqlite").exists():
        return 0
    with CorpusStore(corpus) as store:
        return store.snapshot()["documents"]


def test_killed_crawl_resumes_to_the_same_documents(server: Any, tmp_path: Path) -> None:
    registry = fixture_registry(server)
    run_crawl(registry, tmp_path / "full", tmp_path / "out", overrides=TEST_OVERRIDES, progress=False)
    full_docs, full_sources, full_statuses = _state(tmp_path / "full", server.url)

    # Slow the site down so that the crawl can be killed mid-way.
    urllib.request.urlopen(server.url + "/_control/latency?s=0.25").read()
    try:
        corpus = tmp_path / "killed"
        args = build_crawl_args(registry, corpus, overrides=TEST_OVERRIDES, progress=False)
        command, env = crawl_command(write_crawl_args(args))
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _count_documents(corpus) < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
    finally:
        urllib.request.urlopen(server.url + "/_control/latency?s=0").read()
    partial_docs, _, partial_statuses = _state(corpus, server.url)
    assert 6 <= len(partial_docs) < len(full_docs)
    stored_before = {u for u, s in partial_statuses.items() if s == "ok"}
    assert (corpus / ".crawl" / "jobs" / "site" / "links.jsonl").exists()

    server.reset()
    run_crawl(registry, corpus, tmp_path / "out", resume=True, overrides=TEST_OVERRIDES, progress=False)
    docs, sources, statuses = _state(corpus, server.url)
    assert docs == full_docs
    assert sources == full_sources
    assert statuses == full_statuses
    # What the killed run had stored was not downloaded again.
    again = {r["path"] for r in server.requests}
    assert not (again & {u for u in stored_before if not u.endswith(("robots.txt", ".xml", ".csv"))})


def test_recorded_links_are_json_lines(tmp_path: Path, server: Any) -> None:
    """links.jsonl (what re-derives requests lost in flight) holds one parsed page per line."""
    run_crawl(fixture_registry(server), tmp_path / "c", tmp_path / "o", overrides=TEST_OVERRIDES,
              progress=False)
    lines = (tmp_path / "c" / ".crawl" / "jobs" / "site" / "links.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    home = next(e for e in entries if e["u"] == server.url + "/")
    assert any(link[0].endswith("/strategie-numerique.html") for link in home["links"])
