"""The crawler on the demo site (nlp/demo): every demo document ends up stored, under the
right fictional metropolis (a real crawl of a real local HTTP server; no network)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_OVERRIDES
from crawler.run import run_crawl
from nlp.store import CorpusStore

pytestmark = pytest.mark.slow

demo_site = pytest.importorskip("nlp.demo.site")


def test_every_demo_document_is_stored_with_its_metropole(tmp_path: Path) -> None:
    site = demo_site.build_site(tmp_path / "site")
    overrides = {k: v for k, v in TEST_OVERRIDES.items() if k != "BAROMETRE_MAX_QUERY_VARIANTS"}
    overrides["CONCURRENT_REQUESTS_PER_DOMAIN"] = 4
    with demo_site.serve(site.root) as server:
        base = server.base_url
        summary = run_crawl(demo_site.demo_registry(base), tmp_path / "corpus",
                            tmp_path / "outputs", overrides=overrides, progress=False)
    with CorpusStore(tmp_path / "corpus") as store:
        by_doc: dict[str, set[str]] = {}
        for s in store.sources():
            by_doc.setdefault(s["document_id"], set()).add(s["metropole"])
        missing = [d.path for d in site.documents if d.metropole not in by_doc.get(d.sha256, set())]
        assert not missing, missing
        fetched = {(f["metropole"], f["url"].replace(base, "")): f["status"] for f in store.fetches()}
    # Each fictional metropolis stays inside its own prefix.
    assert all(url.startswith(f"/{m}/") for (m, url) in fetched), [k for k in fetched if not k[1].startswith(f"/{k[0]}/")]
    assert not any(url.startswith(p) for (_, url) in fetched for p in site.private_paths
                   if fetched.get((_, url)) != "robots-disallowed")
    for broken in site.broken_links:
        assert "http-404" in {st for (m, u), st in fetched.items() if u == broken}
    assert {r["metropole"] for r in summary.rows} == set(site.metropoles)
