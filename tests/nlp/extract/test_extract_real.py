"""Extraction on the real PDFs of ../shared/data/real-pdfs (skipped when absent): every file
ends with a text or a precise status in one batch, and the awkward ones come out clean."""
from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from nlp.config import shared_data_dir

from nlp.extract import ExtractSettings, extract_file, run_extract
from nlp.store import CorpusStore


_shared_data = shared_data_dir


REAL = _shared_data() / "real-pdfs" / "pdf"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real-pdfs is absent")
HAS_TESSERACT = shutil.which("tesseract") is not None


def _pdf(rel: str) -> Path:
    path = REAL / rel
    if not path.exists():
        pytest.skip(f"{rel} is absent")
    return path


def _words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower().replace("’", "'")))


def test_every_real_pdf_ends_with_text_or_a_status(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path / "corpus")
    names = {}
    for path in sorted(REAL.rglob("*.pdf")):
        doc_id, _ = store.add_document(path.read_bytes(), "application/pdf")
        store.add_source(doc_id, "test", f"https://example.org/{path.name}")
        names[doc_id] = path.name
    # OCR off here to keep the test fast (test_real_scan_first_page_ocr covers OCR): the
    # scans must then say so.
    settings = ExtractSettings(workers=2, ocr=False, timeout_s=120)
    counts = run_extract(store, settings, progress=False)
    assert sum(counts.values()) == len(names)
    rows = {names[r["document_id"]]: r for r in store.latest_extractions()}
    assert set(rows) == set(names.values())
    for name, row in rows.items():
        if name == "idelibre_PasswordProtectedPdf.pdf":
            assert row["status"] == "pdf-encrypted"
        elif name.startswith("aiglun_"):  # scans without a text layer
            assert row["status"] == "no-text-layer"
            assert "--ocr" in row["error"]
        else:
            assert row["status"] == "ok", (name, row["error"])
            assert row["chars"] > 1000
            assert row["metadata"]["language"] == "fr"
        if row["status"] != "ok":
            assert row["error"]


def test_montpellier_stamp_and_margin_column_out_of_body() -> None:
    result = extract_file(_pdf("montpellier/ville_montpellier_delib_2014-05-22-0000072190.pdf"), ExtractSettings())
    text = result.text
    assert "Accusé de réception" not in text and "Ministère de l" not in text
    assert "034-213401722" not in text and "Certifié exécutoire" not in text
    assert "Extrait du registre" not in text and "Direction des Ressources" not in text
    assert "Répartition des moyens alloués aux groupes d’élus" in text
    meta = result.metadata
    assert meta["doc_type"] == "deliberation"
    assert meta["date"] == "2014-05-22" and meta["date_source"] == "text:seance"
    assert meta["delib_number"] == "2014/186"
    assert meta["delib_object"] == meta["title"] == "Répartition des moyens alloués aux groupes d’élus"
    # The allocation grid is a table, not prose.
    assert result.tables and any("Front National" in " ".join(r) for t in result.tables for r in t.rows)


def test_bourg_en_bresse_against_expected_text() -> None:
    pdf = _pdf("communes/bourg-en-bresse_delib_2016-02-01_subvention.pdf")
    expected = (REAL.parent / "txt/communes/bourg-en-bresse_delib_2016-02-01_expected.txt").read_text(encoding="utf-8")
    for engine in ("pdfium", "pdfplumber"):
        result = extract_file(pdf, ExtractSettings(engine=engine))
        got, ref = _words(result.text), _words(expected)
        recall = sum((got & ref).values()) / sum(ref.values())
        assert recall > 0.93, engine
        # The running footer is gone; the expected text (a raw extraction) has it.
        assert "Ville de BOURG-EN-BRESSE - Conseil Municipal" not in result.text
        assert result.metadata["delib_number"] == "2016.02.16"
        paragraphs = [p for page in result.pages for p in page.paragraphs]
        # Paragraphs, neither lines nor pages.
        assert 15 <= len(paragraphs) <= 40
        assert any(p.startswith("La municipalité a souhaité") and p.endswith("à ce titre.") for p in paragraphs)


def test_large_real_minutes_with_tables() -> None:
    result = extract_file(_pdf("roannais/roannais_agglomeration_PV_conseil_communautaire_2021-10-28.pdf"), ExtractSettings())
    assert result.status == "ok"
    assert [p.number for p in result.pages] == list(range(1, 50))
    assert result.tables
    assert result.metadata["doc_type"] == "proces_verbal"
    assert result.metadata["date"] == "2021-10-28"
    lengths = [len(p) for page in result.pages for p in page.paragraphs]
    assert sum(lengths) / len(lengths) > 80  # paragraphs, not lines


def test_multicolumn_bulletin_page() -> None:
    result = extract_file(_pdf("chemere/chemere_bulletin_Subventions_2013.pdf"), ExtractSettings())
    assert result.status == "ok" and result.tables
    assert result.chars > 1000


@pytest.mark.skipif(not HAS_TESSERACT, reason="tesseract is not installed")
def test_real_scan_first_page_ocr() -> None:
    pdf = _pdf("aiglun/aiglun_CR_CM_2015-11-04.pdf")
    result = extract_file(pdf, ExtractSettings(ocr=True, max_pages=1))
    assert result.status == "ocr"
    assert result.pages[0].method == "ocr" and result.pages[0].ocr_confidence > 80
    assert "conseil municipal" in result.text.lower()
    assert result.metadata["date"] == "2015-11-04"
