"""Per-metropolis limits of the focused crawl: pages, depth and total bytes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.run import run_crawl
from nlp.store import CorpusStore

pytestmark = pytest.mark.slow


def _crawl(server: Any, tmp_path: Path, **limits: Any) -> list[dict[str, Any]]:
    server.reset()
    run_crawl(fixture_registry(server, **limits), tmp_path / "corpus", tmp_path / "out",
              overrides={**TEST_OVERRIDES, "spiders": ["site"]}, progress=False)
    with CorpusStore(tmp_path / "corpus") as store:
        return store.fetches()


def test_page_budget_and_depth(server: Any, tmp_path: Path) -> None:
    fetches = _crawl(server, tmp_path, max_pages=3, max_depth=1)
    fetched_pages = [f for f in fetches if f["kind"] == "page" and f["http_status"]]
    assert len(fetched_pages) == 3
    paths = [r["path"] for r in server.requests]
    assert not any(p.startswith("/deliberations/detail/") for p in paths)  # depth 2 pages


def test_documents_one_level_past_max_depth(server: Any, tmp_path: Path) -> None:
    fetches = _crawl(server, tmp_path, max_depth=0)
    paths = [r["path"] for r in server.requests]
    assert "/docs/same-a.pdf" in paths  # a file linked from the start page (depth 1)
    assert not any(p.startswith("/deliberations") for p in paths)  # pages at depth 1


def test_total_bytes_budget_stops_the_crawl(server: Any, tmp_path: Path) -> None:
    fetches = _crawl(server, tmp_path, max_total_bytes=4000)
    downloaded = sum(f["bytes"] or 0 for f in fetches if f["status"] == "ok")
    # Stops once the budget is spent, plus what had already left for the downloader
    # (at most CONCURRENT_REQUESTS=16 small files here).
    assert 4000 <= downloaded <= 4000 + 16 * 1300
    delib_pdfs = [r for r in server.requests if r["path"].startswith("/docs/delib-")]
    assert len(delib_pdfs) < 6  # the full crawl gets all six
