"""Forms where the portal needs them (issue 15): a WebDelib-like listing whose session is
chosen in a <select> and submitted by POST with a hidden token (tests/crawler/portals.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy.http import HtmlResponse, Request

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.registry import Form
from crawler.run import run_crawl
from crawler.spiders.forms import form_choices
from nlp.store import CorpusStore

PAGE = ('<html><body><form id="a"><input name="q"></form>'
        '<form id="recherche" method="post" action="/s"><select name="seance_id">'
        '<option value="">--</option><option value="12">Conseil du 12 février 2024</option>'
        '<option value="13">Bureau du 28 mars 2024</option></select><input type="hidden" name="_token" value="t">'
        '</form></body></html>')


def _response() -> HtmlResponse:
    return HtmlResponse("http://h/webdelib/", body=PAGE.encode(), encoding="utf-8", request=Request("http://h/webdelib/"))


def test_form_choices():
    number, field, choices, problem = form_choices(_response(), Form(url="http://h/webdelib/"))
    assert (number, field, problem) == (1, "seance_id", None)
    assert choices == [("12", "Conseil du 12 février 2024"), ("13", "Bureau du 28 mars 2024")]
    only_council = form_choices(_response(), Form(url="http://h/", form="#recherche", options="Conseil"))[2]
    assert only_council == [("12", "Conseil du 12 février 2024")]
    assert form_choices(_response(), Form(url="http://h/", field="nope"))[3] == "no <select> named 'nope' in the form"
    assert "no form matching" in form_choices(_response(), Form(url="http://h/", form="#none"))[3]


@pytest.mark.slow
def test_form_listing_is_submitted_once_per_session(server: Any, tmp_path: Path) -> None:
    registry = fixture_registry(server)
    entry = registry["metropoles"][0]
    entry["start_urls"] = [server.url + "/plan-du-site.html"]
    entry["deliberation_datasets"] = []
    entry["forms"] = [{"url": server.url + "/webdelib/", "field": "seance_id"}]
    server.reset()
    run_crawl(registry, tmp_path / "corpus", tmp_path / "out",
              overrides={**TEST_OVERRIDES, "spiders": ["site"], "BAROMETRE_USE_SITEMAPS": False}, progress=False)
    posts = [r for r in server.requests if r["method"] == "POST"]
    assert len(posts) == 2 and all(r["status"] == 200 for r in posts)
    with CorpusStore(tmp_path / "corpus") as store:
        sources = {s["url"].replace(server.url, ""): s for s in store.sources()}
        fetches = {f["url"].replace(server.url, ""): f for f in store.fetches()}
    for seance in ("12", "13"):
        key = f"/webdelib/seances#form:seance_id={seance}"
        assert fetches[key]["status"] == "ok" and fetches[key]["kind"] == "page"
        for n in (1, 2):
            pdf = sources[f"/webdelib/files/{seance}-{n}.pdf"]
            assert pdf["referer"] == server.url + key and pdf["metadata"]["depth"] == 2
    assert fetches["/webdelib/"]["status"] == "ok"
