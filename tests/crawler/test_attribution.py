"""Publisher attribution on domains shared by a city and its metropolis (issue 15)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.attribution import document_text, from_publisher_fields, from_text
from crawler.run import run_crawl
from mockserver import make_pdf
from nlp.store import CorpusStore

BREST = ("242900314", "Brest Métropole")


@pytest.mark.parametrize("text,decision", [
    ("EXTRAIT DU REGISTRE DES DÉLIBÉRATIONS DU CONSEIL DE LA MÉTROPOLE\nBrest Métropole", "metropole"),
    ("Conseil métropolitain du 12 février. SIREN 242 900 314", "metropole"),
    ("VILLE DE BREST – Conseil municipal du 3 mars. Le Maire expose…", "other"),
    ("Guide des démarches en ligne", "undecided"),
    ("Conseil municipal … Conseil de la métropole", "undecided"),  # one each: neither wins
])
def test_letterhead_decides(text, decision):
    assert from_text(text, *BREST, shared_with="Ville de Brest").decision == decision


def test_dataset_publisher_fields_decide_first():
    assert from_publisher_fields({"coll_siret": "24290031400017"}, *BREST).decision == "metropole"
    other = from_publisher_fields({"coll_siret": "21290019700013", "coll_nom": "Brest Métropole"}, *BREST)
    assert other.decision == "other" and "212900197" in other.evidence
    assert from_publisher_fields({"coll_nom": "Ville de Brest"}, *BREST).decision == "other"
    assert from_publisher_fields({"coll_nom": "Brest Métropole"}, *BREST).decision == "metropole"
    assert from_publisher_fields({}, *BREST) is None


def test_document_text_reads_pdf_and_html_heads():
    assert "Conseil" in document_text(make_pdf("Conseil de la Metropole"), "application/pdf")
    assert document_text(b"not a pdf", "application/pdf") == ""
    html = "<html><head><title>Brest métropole</title><script>x()</script></head><body><h1>Conseil</h1></body></html>"
    assert document_text(html.encode(), "text/html") == "Brest métropole Conseil"
    minutes = "# Commune de Bruz\n\nProcès-verbal du conseil municipal " + "é" * 20_000
    head = document_text(minutes.encode("utf-8"), "text/markdown")
    assert head.startswith("# Commune de Bruz Procès-verbal") and len(head) == 4000
    assert document_text("Commune de Bruz".encode("utf-16"), "text/plain") == "Commune de Bruz"  # with its BOM
    assert document_text(b"Commune de Bruz", "text/plain", "no-such-charset") == ""


@pytest.mark.slow
def test_shared_domain_documents_are_attributed(server: Any, tmp_path: Path) -> None:
    registry = fixture_registry(server)
    entry = registry["metropoles"][0]
    entry.update(start_urls=[server.url + "/partage/"], deliberation_datasets=[], shared_domains=["127.0.0.1"],
                 shared_with="Ville de Testville")
    overrides = {**TEST_OVERRIDES, "spiders": ["site"], "BAROMETRE_USE_SITEMAPS": False}
    run_crawl(registry, tmp_path / "c", tmp_path / "o", overrides=overrides, progress=False)
    with CorpusStore(tmp_path / "c") as store:
        fetches = {f["url"].replace(server.url, ""): f for f in store.fetches()}
        counted = {s["url"].replace(server.url, "") for s in store.sources(metropoles=["testville"])}
        every = {s["url"].replace(server.url, ""): s for s in store.sources(include_undecided=True)}
        docs = store.documents(["testville"])
        all_docs = store.documents(["testville"], include_undecided=True)
    assert fetches["/partage/ville.pdf"]["status"] == "other-publisher"
    assert "CONSEIL MUNICIPAL" in fetches["/partage/ville.pdf"]["error"].upper()
    assert "/partage/ville.pdf" not in every
    assert every["/partage/metropole.pdf"]["attribution"] == "metropole"
    assert every["/partage/metropole.pdf"]["metadata"]["publisher"]["decision"] == "metropole"
    assert every["/partage/neutre.pdf"]["attribution"] == "undecided"
    assert "/partage/metropole.pdf" in counted and "/partage/neutre.pdf" not in counted
    # the start page (a list of links) says nothing of its publisher either
    assert every["/partage/"]["attribution"] == "undecided"
    assert len(docs) == 1 and len(all_docs) == 3
    # The user may keep the undecided ones (flagged 'kept', counted).
    run_crawl(registry, tmp_path / "k", tmp_path / "o2", overrides={**overrides, "keep_undecided": True},
              progress=False)
    with CorpusStore(tmp_path / "k") as store:
        kept = {s["url"].replace(server.url, ""): s["attribution"] for s in store.sources(metropoles=["testville"])}
    assert kept["/partage/neutre.pdf"] == "kept"


def test_store_leaves_undecided_sources_out_unless_asked(tmp_path: Path) -> None:
    import sqlite3

    with CorpusStore(tmp_path / "c") as store:
        assert store.schema_version == 2
        a, _ = store.add_document(b"%PDF-a", "application/pdf")
        b, _ = store.add_document(b"%PDF-b", "application/pdf")
        store.add_source(a, "brest", "https://brest.fr/a.pdf", attribution="metropole")
        store.add_source(b, "brest", "https://brest.fr/b.pdf", attribution="undecided")
        store.add_source(b, "brest", "https://brest.fr/b.pdf")  # a later sighting keeps the flag
        assert [d.id for d in store.documents(["brest"])] == [a]
        assert {d.id for d in store.documents(["brest"], include_undecided=True)} == {a, b}
        assert [s["url"] for s in store.sources()] == ["https://brest.fr/a.pdf"]
        assert store.source_of(b, "brest")["attribution"] == "undecided"
    # a store made before the attribution column is migrated in place
    old = tmp_path / "old"
    old.mkdir()
    from nlp.store import MIGRATIONS

    conn = sqlite3.connect(old / "corpus.sqlite")
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.close()
    with CorpusStore(old) as store:
        assert store.schema_version == 2 and store.sources() == []


def test_registry_shared_domains_inside_the_entry(tmp_path: Path) -> None:
    from crawler.registry import registry_from_dict
    from nlp.errors import RegistryError

    entry = {"slug": "b", "name": "B", "siren": "000000000", "fictional": True, "domains": ["brest.fr"],
             "start_urls": ["https://brest.fr/"], "shared_domains": ["brest.fr"], "shared_with": "Ville de Brest"}
    m = registry_from_dict({"version": 1, "metropoles": [entry]}).metropoles[0]
    assert m.is_shared("www.brest.fr") and not m.is_shared("metropole.brest.fr.evil.org")
    with pytest.raises(RegistryError, match="shared_domains\\[0\\]"):
        registry_from_dict({"version": 1, "metropoles": [dict(entry, shared_domains=["strasbourg.eu"])]})
