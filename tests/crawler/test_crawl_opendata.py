"""The deliberations spider on an Opendatasoft Explore API v2.1 JSON export."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.run import run_crawl
from nlp.store import CorpusStore

pytestmark = pytest.mark.slow


def test_opendatasoft_export_rows_attach_to_documents(server: Any, tmp_path: Path) -> None:
    registry = fixture_registry(server)
    registry["metropoles"][0]["deliberation_datasets"] = [
        {"url": server.url + "/data/ods-export.json", "format": "opendatasoft"}]
    summary = run_crawl(registry, tmp_path / "corpus", tmp_path / "out",
                        overrides={**TEST_OVERRIDES, "spiders": ["deliberations"]}, progress=False)
    assert summary.rows[0]["documents"] == 2 and summary.rows[0]["type_pdf"] == 2
    with CorpusStore(tmp_path / "corpus") as store:
        sources = {s["url"].rsplit("/", 1)[1]: s for s in store.sources()}
    meta = sources["2024-002.pdf"]["metadata"]
    assert sources["2024-002.pdf"]["origin"] == "scdl"
    assert meta["delib_id"] == "ODS-2" and meta["delib_date"] == "2024-04-02"
    assert meta["objet"] == "Feuille de route numérique, volet 2" and meta["votes"]["pour"] == 72
