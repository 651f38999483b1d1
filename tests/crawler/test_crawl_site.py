"""End-to-end crawl of the fixture site (tests/crawler/mockserver.py) on 127.0.0.1.

One crawl (site + deliberations spiders, in a subprocess through ``run_crawl``) feeds most
tests; the re-crawl test then crawls the same corpus again. The server records every request,
so the tests check what was stored, what was never fetched, and how it was fetched.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.run import run_crawl
from nlp.errors import RegistryError
from nlp.store import CorpusStore

pytestmark = pytest.mark.slow


def _max_overlap(requests: list[dict[str, Any]]) -> int:
    events = []
    for r in requests:
        events += [(r["start"], 1), (r.get("end", r["start"]), -1)]
    best = cur = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        cur += delta
        best = max(best, cur)
    return best


@pytest.fixture(scope="module")
def crawl(server: Any, tmp_path_factory: Any) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("crawl")
    server.reset()
    summary = run_crawl(fixture_registry(server), root / "corpus", root / "outputs",
                        overrides=TEST_OVERRIDES, progress=False)
    store = CorpusStore(root / "corpus")
    out = {
        "root": root, "summary": summary, "requests": server.requests, "store": store,
        "sources": {s["url"].replace(server.url, ""): s for s in store.sources()},
        "fetches": {f["url"].replace(server.url, ""): f for f in store.fetches()},
        "docs": {d.id: d for d in store.documents()},
    }
    yield out
    store.close()


def _requested(crawl: dict[str, Any], path: str) -> list[dict[str, Any]]:
    return [r for r in crawl["requests"] if r["path"] == path]


def test_documents_stored_with_their_media_type(crawl):
    sources, docs = crawl["sources"], crawl["docs"]
    expected_pdfs = [f"/docs/delib-{k}.pdf" for k in range(1, 7)] + [
        "/docs/final.pdf", "/download.php?id=12", "/docs/same-a.pdf", "/copies/same-b.pdf",
        "/flaky.pdf", "/busy.pdf", "/docs/sitemap-doc.pdf",
        "/delib-files/2024-001.pdf", "/delib-files/2024-002.pdf", "/delib-files/2024-003.pdf",
    ]
    for path in expected_pdfs:
        assert path in sources, path
        doc = docs[sources[path]["document_id"]]
        assert doc.media_type == "application/pdf", path
        assert (crawl["root"] / "corpus" / doc.path).read_bytes()[:5] == b"%PDF-"
    # Served as application/octet-stream without extension: the bytes decide.
    assert docs[sources["/download.php?id=12"]["document_id"]].path.endswith(".pdf")
    # HTML pages that look relevant are stored; a plain navigation page is followed only.
    for path in ("/", "/strategie-numerique.html", "/sitemap-only.html", "/latin1.html"):
        assert docs[sources[path]["document_id"]].media_type == "text/html", path
    assert "/plan-du-site.html" not in sources
    assert crawl["fetches"]["/plan-du-site.html"]["status"] == "ok"
    assert not any(p.startswith("/agenda") for p in sources)


def test_same_pdf_at_two_urls_is_one_document_with_two_sources(crawl):
    a, b = crawl["sources"]["/docs/same-a.pdf"], crawl["sources"]["/copies/same-b.pdf"]
    assert a["document_id"] == b["document_id"]
    assert len([d for d in crawl["store"].sources(document_id=a["document_id"])]) == 2


def test_redirect_chain_to_a_pdf_is_followed(crawl):
    final = crawl["sources"]["/docs/final.pdf"]
    assert final["metadata"]["redirect_urls"][0].endswith("/redirect/1")
    assert crawl["fetches"]["/redirect/1"]["document_id"] == final["document_id"]
    assert "/redirect/1" not in crawl["sources"]  # the source is the URL that served the bytes


def test_failures_are_recorded_not_stored(crawl):
    fetches = crawl["fetches"]
    assert fetches["/missing.pdf"]["status"] == "http-404"
    assert fetches["/slow.pdf"]["status"] == "timeout"
    assert len(_requested(crawl, "/slow.pdf")) == 2  # retried once, then given up
    big = fetches["/docs/big.pdf"]
    assert big["status"] == "too-large" and big["document_id"] is None and big["bytes"] == 300_000
    assert not any(d.size >= 300_000 for d in crawl["docs"].values())
    for path in ("/missing.pdf", "/slow.pdf", "/docs/big.pdf"):
        assert path not in crawl["sources"]


def test_500_is_retried_and_succeeds(crawl):
    hits = _requested(crawl, "/flaky.pdf")
    assert [h["status"] for h in hits] == [500, 200]
    assert crawl["fetches"]["/flaky.pdf"]["status"] == "ok"


def test_429_retry_after_is_honoured(crawl):
    first, second = _requested(crawl, "/busy.pdf")
    assert first["status"] == 429 and second["status"] == 200
    assert second["start"] - first["end"] >= 0.95  # Retry-After: 1


def test_never_fetched_robots_out_of_domain_bad_rows(crawl):
    paths = [r["path"] for r in crawl["requests"]]
    assert not any(p.startswith("/private/") for p in paths)
    assert crawl["fetches"]["/private/secret.pdf"]["status"] == "robots-disallowed"
    assert all(r["host"].startswith("127.0.0.1") for r in crawl["requests"])
    assert "/outside.html" not in paths
    assert "/delib-files/2024-009.pdf" not in paths  # the CSV row without DELIB_ID is skipped
    assert "mailto" not in " ".join(paths)


def test_infinite_calendar_is_capped(crawl):
    months = [r for r in crawl["requests"] if r["path"].startswith("/agenda")]
    assert 1 <= len(months) <= TEST_OVERRIDES["BAROMETRE_MAX_QUERY_VARIANTS"]


def test_politeness_per_domain_concurrency_and_user_agent(crawl):
    # /slow.pdf is abandoned by the client at its timeout while the server still sleeps.
    answered = [r for r in crawl["requests"] if r["path"] != "/slow.pdf"]
    assert _max_overlap(answered) <= TEST_OVERRIDES["CONCURRENT_REQUESTS_PER_DOMAIN"]
    agents = {r["headers"].get("User-Agent") for r in crawl["requests"]}
    assert len(agents) == 1 and "tests@barometre.invalid" in agents.pop()


def test_windows_1252_page_round_trips(crawl, server):
    source = crawl["sources"]["/latin1.html"]
    doc = crawl["docs"][source["document_id"]]
    stored = (crawl["root"] / "corpus" / doc.path).read_bytes()
    assert stored == server.httpd.site.latin1  # the bytes as served
    assert source["headers"]["charset"] == "windows-1252"
    text = stored.decode(source["headers"]["charset"])
    assert "Café, élève, cœur, l’été : 10 €." in text
    assert source["page_title"] == "Stratégie numérique – données ouvertes"


def test_provenance_of_every_source(crawl, server):
    for path, s in crawl["sources"].items():
        assert s["metropole"] == "testville"
        assert s["fetched_at"] and s["http_status"] == 200
        assert s["headers"].get("Content-Type"), path
        assert s["etag"] and s["last_modified"]
    pdf = crawl["sources"]["/docs/delib-3.pdf"]
    assert pdf["referer"] == server.url + "/deliberations/detail/3"
    assert pdf["anchor_text"] == "Télécharger la délibération 3 (PDF)"
    assert pdf["page_title"] == "Délibération n°3 du conseil métropolitain"
    assert pdf["metadata"]["depth"] == 4  # home 0 → listing p1 1 → p2 2 → detail 3 → pdf 4
    sitemap_only = crawl["sources"]["/docs/sitemap-doc.pdf"]
    assert sitemap_only["referer"].endswith("/sitemap.xml")


def test_scdl_rows_attached_to_their_documents(crawl):
    s = crawl["sources"]["/delib-files/2024-002.pdf"]
    assert s["origin"] == "scdl"
    meta = s["metadata"]
    assert meta["delib_id"] == "2024-002" and meta["delib_date"] == "2024-03-12"
    assert meta["matiere_code"] == "8.9" and meta["objet"].startswith("Inclusion numérique")
    assert meta["votes"]["pour"] == 80 and meta["dataset_row"] == 3
    assert crawl["fetches"]["/data/deliberations.csv"]["kind"] == "dataset"


def test_summary_csv(crawl):
    path = crawl["root"] / "outputs" / "tables" / "crawl_summary.csv"
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    assert len(rows) == 1 and rows[0]["metropole"] == "testville"
    row = rows[0]
    assert int(row["documents"]) == len(crawl["docs"])
    assert int(row["type_pdf"]) == sum(d.media_type == "application/pdf" for d in crawl["docs"].values())
    assert int(row["status_http-404"]) == 1 and int(row["status_too-large"]) == 1
    assert int(row["status_timeout"]) == 1 and int(row["status_robots-disallowed"]) == 2
    assert int(row["pages_seen"]) >= 15
    assert crawl["summary"].rows[0]["documents"] == int(row["documents"])


def test_recrawl_is_conditional_and_downloads_nothing_again(crawl, server):
    """Issue 2: a second run over an unchanged site re-downloads nothing it already holds."""
    store = crawl["store"]
    before = store.snapshot()
    server.reset()
    run_crawl(fixture_registry(server), crawl["root"] / "corpus", crawl["root"] / "outputs",
              overrides=TEST_OVERRIDES, progress=False)
    assert store.snapshot() == before
    stored_paths = {p for p, s in crawl["sources"].items()}
    second = {r["path"]: r for r in server.requests}
    for path in stored_paths:
        r = second.get(path)
        assert r is not None, f"{path} not asked again"
        assert r["status"] == 304, (path, r["status"])
        assert r["headers"].get("If-None-Match")
    assert crawl["store"].get_fetch("testville", server.url + "/docs/delib-1.pdf")["status"] == "not-modified"
    # Links of stored pages were followed from the stored bytes: the detail pages' PDFs.
    assert all(f"/docs/delib-{k}.pdf" in second for k in range(1, 7))


def test_registry_errors_surface_before_crawling(server, tmp_path):
    bad = fixture_registry(server)
    bad["metropoles"][0]["siren"] = "12"
    with pytest.raises(RegistryError, match="siren"):
        run_crawl(bad, tmp_path / "c", tmp_path / "o")
    with pytest.raises(RegistryError, match="testville"):
        run_crawl(fixture_registry(server), tmp_path / "c", tmp_path / "o", metropoles=["nowhere"])


def test_recrawl_keeps_scdl_provenance(crawl):
    """After the conditional re-crawl (test above), SCDL sources keep status 200 and metadata."""
    s = next(s for s in crawl["store"].sources() if s["url"].endswith("/delib-files/2024-001.pdf"))
    assert s["http_status"] == 200 and s["metadata"]["delib_id"] == "2024-001"
    assert s["headers"]["Content-Type"] == "application/pdf"
