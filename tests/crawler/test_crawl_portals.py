"""The deliberations spider on the real shapes of the portals (issue 15): Opendatasoft v2.1
paged records with a rate limit, v1 search with record attachments, a data.gouv.fr dataset
reference that mixes publishers, a local UTF-16 format with two lines per record, mangled ids.
One crawl of the fixture server (tests/crawler/portals.py says which real source each shape
reproduces)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.run import run_crawl
from nlp.store import CorpusStore

pytestmark = pytest.mark.slow

V21 = "/api/explore/v2.1/catalog/datasets/deliberations-test-metropole/records"
V1 = "/api/records/1.0/search/?dataset=deliberations-test-v1"


def datasets(base: str) -> list[dict[str, Any]]:
    return [
        {"url": f"{base}{V21}?limit=10&order_by=delib_date", "format": "opendatasoft"},
        {"url": f"{base}{V1}&rows=10", "format": "opendatasoft"},
        {"url": f"{base}/fr/datasets/megalis-delibs/", "format": "datagouv", "filter": {"coll_siret": "^100000009"}},
        {"url": f"{base}/data/ville-utf16.txt", "format": "local-csv", "header": False, "record_lines": 2,
         "columns": {"delib_date": 0, "objet": 1, "url": 2, "decision": 3, "delib_id": 4}},
        {"url": f"{base}/data/mangled.csv", "format": "scdl-csv"},
    ]


@pytest.fixture(scope="module")
def crawl(server: Any, tmp_path_factory: Any) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("portals")
    registry = fixture_registry(server)
    registry["metropoles"][0]["deliberation_datasets"] = datasets(server.url)
    server.reset()
    run_crawl(registry, root / "corpus", root / "out", overrides={**TEST_OVERRIDES, "spiders": ["deliberations"]},
              progress=False)
    with CorpusStore(root / "corpus") as store:
        sources = {s["url"].replace(server.url, ""): s for s in store.sources()}
        fetches = {f["url"].replace(server.url, ""): f for f in store.fetches()}
    return {"sources": sources, "fetches": fetches, "requests": server.requests}


def _hits(crawl: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [r for r in crawl["requests"] if r["path"].startswith(prefix)]


def test_opendatasoft_v21_records_are_paged_through_a_rate_limit(crawl):
    from urllib.parse import parse_qs, urlsplit

    pages = _hits(crawl, V21)
    offsets = [parse_qs(urlsplit(r["path"]).query).get("offset", ["0"])[0] for r in pages]
    assert sorted(offsets) == ["0", "10", "10", "20", "20"]  # pages 2 and 3: 429 first, then served
    assert [r["status"] for r, o in zip(pages, offsets) if o == "10"] == [429, 200]
    datasets_ok = [u for u, f in crawl["fetches"].items() if u.startswith(V21) and f["status"] == "ok"]
    assert len(datasets_ok) == 3 and all(crawl["fetches"][u]["kind"] == "dataset" for u in datasets_ok)
    docs = {u: s for u, s in crawl["sources"].items() if u.startswith("/ods-files/")}
    assert len(docs) == 25
    meta = docs["/ods-files/17.pdf"]["metadata"]
    assert meta["delib_id"] == "C2024_017" and meta["dataset_row"] == 17 and meta["delib_date"] == "2024-03-17"


def test_opendatasoft_v1_attachments_are_the_documents(crawl):
    assert len(_hits(crawl, V1)) == 2  # rows=10: start 0, then start 10 (nhits 12)
    files = {u: s for u, s in crawl["sources"].items() if "/files/f" in u}
    assert len(files) == 12
    s = files["/explore/dataset/deliberations-test-v1/files/f003/download/"]
    assert s["metadata"]["delib_id"] == "C_24_02_12_003" and s["headers"]["Content-Type"] == "application/pdf"
    assert s["metadata"]["extra"]["cr_url"].endswith("/explore/dataset/deliberations-test-v1/files/cr003/download/")
    assert s["metadata"]["extra"]["type_seance"] == "Conseil Métropolitain"
    assert not _hits(crawl, "/explore/dataset/deliberations-test-v1/files/cr")  # minutes: kept as a link only


def test_datagouv_reference_resolved_and_filtered_on_the_publisher(crawl):
    assert crawl["fetches"]["/api/1/datasets/megalis-delibs/"]["kind"] == "dataset"
    assert crawl["fetches"]["/static/resources/megalis/deliberation-2024.csv"]["status"] == "ok"
    mine = {u for u in crawl["sources"] if u.startswith("/megalis/100000009/")}
    assert len(mine) == 3
    assert not _hits(crawl, "/megalis/200000172/")  # the commune's rows are filtered out
    assert not _hits(crawl, "/static/resources/megalis/notice.pdf")  # neither CSV nor JSON
    meta = crawl["sources"]["/megalis/100000009/Deliberation/2024/2.pdf"]["metadata"]
    assert meta["coll_siret"] == "10000000900017" and meta["delib_id"] == "DE-2024-002"


def test_local_utf16_two_line_records(crawl):
    local = {u: s["metadata"] for u, s in crawl["sources"].items() if u.startswith("/ville-files/")}
    assert len(local) == 3
    m = local["/ville-files/2.pdf"]
    assert (m["delib_id"], m["delib_date"], m["objet"]) == ("V-2024-02", "2024-02-12", "Conseillers numériques : recrutement")
    assert m["extra"]["decision"] == "DELIBERATION EXECUTOIRE" and m["dataset_format"] == "local-csv"


def test_mangled_ids_keep_both_deliberations(crawl):
    one, two = (crawl["sources"][f"/mangled/{n}.pdf"]["metadata"] for n in (1, 2))
    assert one["delib_id"] != two["delib_id"]
    assert one["delib_id"].startswith("2022,00103~") and two["delib_id"].startswith("2022,00103~")
    assert one["extra"]["delib_id_original"] == two["extra"]["delib_id_original"] == "2022,00103"
    assert crawl["fetches"]["/data/mangled.csv"]["error"] == "1 bad rows"  # the exact copy
