"""``barometre registry check`` against the fixture server (issue 15): live, broken,
redirected, robots-disallowed URLs, a moved and a gone data.gouv.fr dataset, a paged API."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.check import run_check

pytestmark = pytest.mark.slow

V21 = "/api/explore/v2.1/catalog/datasets/deliberations-test-metropole/records?limit=10"


def check_registry(server: Any) -> dict[str, Any]:
    registry = fixture_registry(server)
    base = server.url
    registry["metropoles"][0].update(
        start_urls=[f"{base}/", f"{base}/missing.pdf", f"{base}/redirect/1", f"{base}/private/page.html"],
        sitemaps=[f"{base}/sitemap.xml"],
        forms=[{"url": f"{base}/webdelib/"}],
        deliberation_datasets=[
            {"url": f"{base}/data/deliberations.csv", "format": "scdl-csv"},
            {"url": f"{base}/api/1/datasets/moved-delibs/", "format": "datagouv", "filter": {"coll_siret": "^100000009"}},
            {"url": f"{base}/api/1/datasets/gone-delibs/", "format": "datagouv"},
            {"url": f"{base}{V21}", "format": "opendatasoft"},
        ])
    return registry


@pytest.fixture(scope="module")
def report(server: Any) -> dict[str, Any]:
    server.reset()
    result = run_check(check_registry(server), overrides=TEST_OVERRIDES)
    rows = {r["url"].replace(server.url, ""): r for r in result.rows}
    return {"rows": rows, "report": result, "requests": server.requests}


def test_every_url_reported_once_and_fetched_once(report):
    rows = report["rows"]
    assert {r["role"] for r in rows.values()} == {"robots", "start_url", "sitemap", "form", "dataset", "resource"}
    paths = Counter(r["path"] for r in report["requests"])
    assert paths["/robots.txt"] == 1
    assert all(n == 1 for p, n in paths.items() if p != "/ods-files"), paths
    assert not any(r["method"] == "POST" for r in report["requests"])  # a form is looked at, not submitted


def test_statuses_final_urls_and_media(report):
    rows = report["rows"]
    assert rows["/"]["status"] == 200 and rows["/"]["media_type"] == "text/html"
    assert rows["/missing.pdf"]["status"] == 404
    redirected = rows["/redirect/1"]
    assert redirected["status"] == 200 and redirected["redirects"] == 2
    assert redirected["final_url"].endswith("/docs/final.pdf") and redirected["media_type"] == "application/pdf"
    assert rows["/private/page.html"]["status"] == "robots-disallowed"
    assert not any(r["path"].startswith("/private/") for r in report["requests"])
    assert rows["/sitemap.xml"]["status"] == 200 and rows["/webdelib/"]["status"] == 200


def test_dataset_figures(report):
    rows = report["rows"]
    scdl = rows["/data/deliberations.csv"]["dataset"]
    assert (scdl["rows"], scdl["rows_with_url"], scdl["share_with_url"], scdl["skipped"]) == (3, 3, 1.0, 1)
    assert (scdl["date_min"], scdl["date_max"]) == ("2024-03-11", "2024-03-13")
    moved = rows["/api/1/datasets/moved-delibs/"]
    assert moved["status"] == 200 and moved["final_url"].endswith("/api/1/datasets/megalis-delibs/")
    assert moved["dataset"]["resources"] == 1 and moved["dataset"]["publisher"] == "Mégalis Bretagne"
    resource = rows["/static/resources/megalis/deliberation-2024.csv"]
    assert resource["role"] == "resource" and resource["dataset"]["rows"] == 3 and resource["dataset"]["filtered"] == 3
    assert rows["/api/1/datasets/gone-delibs/"]["status"] == 404
    paged = rows[V21]["dataset"]
    assert paged["rows"] == 10 and paged["declared_total"] == 25


def test_text_report_and_cli(report, server: Any, tmp_path: Path, capsys: Any):
    text = report["report"].to_text()
    assert "robots-disallowed" in text and "first page of 25" in text and "-> " in text
    from nlp.cli import main

    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump(check_registry(server), allow_unicode=True), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"crawl": {k: v for k, v in TEST_OVERRIDES.items()}}), encoding="utf-8")
    code = main(["registry", "check", "--registry", str(path), "--config", str(config), "--json", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    rows = json.loads(out)["rows"]
    assert len(rows) == len(report["rows"]) and rows[0]["role"] == "robots"
