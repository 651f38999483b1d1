"""Extraction stage on PDFs generated with a known ground truth, and on small HTML/DOCX/ODT
files written by the tests: engines, cleaning, OCR, bad inputs, metadata, the incremental
store run, the time limit and ``text_command``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nlp.errors import BarometreError
from nlp.extract import ExtractSettings, extract_file, run_extract, text_command
from nlp.extract import clean, normalize
from nlp.extract.clean import join_hyphenated, normalize_text, repair_doubled_glyphs
from nlp.extract.metadata import classify_document, document_metadata, detect_language, find_date, find_deliberation

ENGINES = ["pdfium", "pdfplumber"]
HAS_TESSERACT = shutil.which("tesseract") is not None


def paragraphs(extraction) -> list[str]:
    return [p for page in extraction.pages for p in page.paragraphs]


# --- cleaning units -----------------------------------------------------------------------
def test_doubled_glyphs_repaired_per_line() -> None:
    assert repair_doubled_glyphs("AAccccuusséé ddee rréécceeppttiioonn") == "Accusé de réception"
    assert repair_doubled_glyphs("Le  ccoonnsseeiill municipal") == "Le  conseil municipal"
    # Ordinary words that happen to look doubled stay as they are.
    assert repair_doubled_glyphs("coco elle aa") == "coco elle aa"
    assert repair_doubled_glyphs("Le conseil approuve") == "Le conseil approuve"


def test_hyphenated_line_ends() -> None:
    assert join_hyphenated("transformation numé-", "rique de la ville") == "transformation numérique de la ville"
    assert join_hyphenated("la ville de Saint-", "Étienne") == "la ville de Saint-Étienne"
    assert join_hyphenated("pourra peut-", "être") == "pourra peut-être"
    assert join_hyphenated("celle-", "ci") == "celle-ci"
    assert join_hyphenated("la sous-", "préfecture") == "la sous-préfecture"
    vocabulary = {"auto-entrepreneur"}
    assert join_hyphenated("un auto-", "entrepreneur", vocabulary) == "un auto-entrepreneur"


def test_normalization() -> None:
    assert normalize_text("le ﬁnancement\u00a0 du\u00ad projet") == "le financement du projet"
    assert normalize_text("𝑝𝑟𝑜𝑓𝑜𝑛𝑑𝑒𝑢𝑟") == "profondeur"
    assert normalize_text("\x01 Taux fixe") == "• Taux fixe"
    assert normalize_text("e\u0301lu") == "élu"  # NFC


# --- generated layouts, both engines -------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_headers_footers_and_page_numbers_removed(pdfs: dict, engine: str, gen: object) -> None:
    doc = pdfs["headers_hyphenation"]
    result = extract_file(doc.path, ExtractSettings(engine=engine, ocr=False))
    assert result.status == "ok"
    assert [p.number for p in result.pages] == [1, 2, 3]
    assert paragraphs(result) == doc.paragraphs
    for noise in (gen.HEADER, gen.FOOTER, "Page 2 / 3"):
        assert noise not in result.text


@pytest.mark.parametrize("engine", ENGINES)
def test_hyphenation_joined_real_hyphens_kept(pdfs: dict, engine: str, gen: object) -> None:
    result = extract_file(pdfs["headers_hyphenation"].path, ExtractSettings(engine=engine, ocr=False))
    first = result.pages[0].paragraphs[0]
    assert first == gen.HYPHEN_TRUTH
    assert "deliberation" in first and "experimentation" in first
    assert "Saint-Etienne" in first and "peut-etre" in first and "celle-ci" in first


@pytest.mark.parametrize("engine", ENGINES)
def test_two_columns_read_column_by_column(pdfs: dict, engine: str) -> None:
    doc = pdfs["two_columns"]
    result = extract_file(doc.path, ExtractSettings(engine=engine, ocr=False))
    assert paragraphs(result) == doc.paragraphs


@pytest.mark.parametrize("engine", ENGINES)
def test_tables_kept_apart_from_prose(pdfs: dict, engine: str) -> None:
    doc = pdfs["table"]
    result = extract_file(doc.path, ExtractSettings(engine=engine, ocr=False))
    assert paragraphs(result) == doc.paragraphs
    assert [t.rows for t in result.tables] == doc.tables
    assert all(t.page == 1 for t in result.tables)
    assert "4 500 EUR" not in result.text


def test_duplicated_glyphs_pdf(pdfs: dict) -> None:
    import pdfplumber

    doc = pdfs["doubled_glyphs"]
    # The fixture reproduces the defect: pdfminer reads every glyph twice...
    with pdfplumber.open(doc.path) as pdf:
        raw = pdf.pages[0].extract_text()
    assert "DDeelliibbeerraattiioonn" in raw
    # ...and cleaning repairs it, whatever the engine.
    for engine in ENGINES:
        result = extract_file(doc.path, ExtractSettings(engine=engine, ocr=False))
        assert paragraphs(result) == doc.paragraphs


@pytest.mark.parametrize("engine", ENGINES)
def test_margin_column_and_prefecture_stamp_out_of_body(pdfs: dict, engine: str, gen: object) -> None:
    doc = pdfs["margin_stamp"]
    result = extract_file(doc.path, ExtractSettings(engine=engine, ocr=False))
    assert paragraphs(result) == doc.paragraphs
    for noise in doc.noise:
        assert noise not in result.text
    assert result.metadata["removed"]["margin"] == len(gen.MARGIN_LINES)


@pytest.mark.skipif(not HAS_TESSERACT, reason="tesseract is not installed")
def test_scanned_page_ocr(pdfs: dict) -> None:
    doc = pdfs["scanned"]
    result = extract_file(doc.path, ExtractSettings(ocr=True))
    assert result.status == "ocr"
    page = result.pages[0]
    assert page.method == "ocr" and page.ocr_confidence is not None and page.ocr_confidence > 60
    truth_words = set(" ".join(doc.paragraphs).lower().split())
    got_words = set(result.text.lower().split())
    assert len(truth_words & got_words) / len(truth_words) >= 0.9
    assert result.metadata["ocr_pages"] == [1]


def test_scanned_page_without_ocr(pdfs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = pdfs["scanned"]
    off = extract_file(doc.path, ExtractSettings(ocr=False))
    assert off.status == "no-text-layer"
    assert "--ocr" in off.error
    assert off.metadata["pages_without_text"] == [1]
    # Default (ocr=None) on a machine without tesseract: the message says how to install it.
    monkeypatch.setenv("PATH", str(tmp_path))
    missing = extract_file(doc.path, ExtractSettings())
    assert missing.status == "no-text-layer"
    assert "apt-get install tesseract-ocr tesseract-ocr-fra" in missing.error


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_inputs_get_a_status(pdfs: dict, engine: str) -> None:
    bad = pdfs["bad"]
    settings = ExtractSettings(engine=engine, ocr=False)
    assert extract_file(bad["encrypted"], settings).status == "pdf-encrypted"
    assert extract_file(bad["truncated"], settings).status == "pdf-malformed"
    assert extract_file(bad["empty"], settings).status == "empty"
    html = extract_file(bad["html"], settings)
    assert html.status == "html-as-pdf"
    # Extracted as HTML, so that one can see what it was: an error page.
    assert "n'existe plus" in html.text
    assert "introuvable" in html.metadata["title"]
    for path in bad.values():
        assert extract_file(path, settings).error


def test_large_minutes_file(pdfs: dict, gen: object) -> None:
    doc = pdfs["minutes_255"]
    result = extract_file(doc.path, ExtractSettings(ocr=False))
    assert result.status == "ok"
    assert [p.number for p in result.pages] == list(range(1, 256))
    assert paragraphs(result) == doc.paragraphs
    assert gen.HEADER not in result.text and gen.FOOTER not in result.text
    limited = extract_file(doc.path, ExtractSettings(ocr=False, max_pages=10))
    assert len(limited.pages) == 10


# --- other formats ----------------------------------------------------------------------------


def test_html_main_text_title_and_date(tmp_path: Path, html_page: str) -> None:
    path = tmp_path / "page.html"
    path.write_text(html_page, encoding="utf-8")
    result = extract_file(path, ExtractSettings(), {"url": "https://example.org/strategie-numerique"})
    assert result.status == "ok" and result.engine == "trafilatura"
    assert "feuille de route numérique" in result.text
    assert "Mentions légales" not in result.text
    assert result.metadata["title"] == "Stratégie numérique de la Métropole"
    assert result.metadata["date"] == "2021-03-12"
    assert result.metadata["language"] == "fr"
    assert len(result.pages[0].paragraphs) >= 3


def test_docx_and_odt(tmp_path: Path, office) -> None:
    docx = office.docx(tmp_path / "delib.docx", (
        '<w:p><w:r><w:t>Le conseil approuve la convention de médiation numérique.</w:t></w:r></w:p>'
        '<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Association</w:t></w:r></w:p></w:tc>'
        '<w:tc><w:p><w:r><w:t>Montant</w:t></w:r></w:p></w:tc></w:tr>'
        '<w:tr><w:tc><w:p><w:r><w:t>Club</w:t></w:r></w:p></w:tc>'
        '<w:tc><w:p><w:r><w:t>1 200 €</w:t></w:r></w:p></w:tc></w:tr></w:tbl>'
        '<w:p><w:r><w:t xml:space="preserve">Vote à </w:t></w:r><w:r><w:t>l\'unanimité.</w:t></w:r></w:p>'
    ))
    result = extract_file(docx, ExtractSettings())
    assert result.engine == "docx"
    assert result.pages[0].paragraphs == [
        "Le conseil approuve la convention de médiation numérique.", "Vote à l'unanimité."]
    assert result.tables[0].rows == [["Association", "Montant"], ["Club", "1 200 €"]]

    odt = office.odt(tmp_path / "note.odt", (
        '<text:h>Feuille de route</text:h>'
        '<text:p>La métropole<text:s/>déploie des tiers-lieux numériques.</text:p>'
        '<table:table><table:table-row><table:table-cell><text:p>A</text:p></table:table-cell>'
        '<table:table-cell><text:p>B</text:p></table:table-cell></table:table-row></table:table>'
    ))
    result = extract_file(odt, ExtractSettings())
    assert result.engine == "odt"
    assert result.pages[0].paragraphs == ["Feuille de route", "La métropole déploie des tiers-lieux numériques."]
    assert result.tables[0].rows == [["A", "B"]]


def test_not_french_flagged(tmp_path: Path) -> None:
    path = tmp_path / "report.txt"
    path.write_text(
        "The city council approved the digital strategy of the metropolitan area. It is the "
        "first plan of its kind and it has been discussed with the residents for a year. The "
        "report will be published with the minutes of the meeting.\n", encoding="utf-8")
    result = extract_file(path, ExtractSettings())
    assert result.status == "not-french"
    assert result.metadata["language"] == "en"
    assert result.text  # the text is kept


# --- metadata ---------------------------------------------------------------------------------
def test_metadata_rules() -> None:
    fr = "Le conseil municipal approuve la convention et autorise le maire à signer les pièces du dossier avec la commune."
    assert detect_language(fr * 3)[0] == "fr"
    assert find_date("EXTRAIT\nSéance publique du vendredi 12 mars 2021 à 18h", {}) == ("2021-03-12", "text:seance")
    assert find_date("Conseil municipal du lundi 1er février 2016", {}) == ("2016-02-01", "text:seance")
    assert find_date("pas de date", {"DELIB_DATE": "2022-01-27"}) == ("2022-01-27", "scdl")
    assert find_date("pas de date", {"last_modified": "Wed, 21 Oct 2015 07:28:00 GMT"}) == (
        "2015-10-21", "http-last-modified")
    assert find_deliberation("N° 2016.02.16 - Subvention à l'association Énergie\n", {}) == {
        "delib_number": "2016.02.16", "delib_object": "Subvention à l'association Énergie"}
    assert find_deliberation("loi n° 2002-276 du 27 février\nn° 2014 / 186\n", {})["delib_number"] == "2014/186"
    assert find_deliberation("", {"DELIB_ID": "2022.00022", "DELIB_OBJET": "Plan  numérique"}) == {
        "delib_number": "2022.00022", "delib_object": "Plan numérique"}
    # The crawler stores SCDL rows parsed (delib_id, delib_date, objet).
    meta = document_metadata("", "", {"delib_id": "2022.00022", "objet": "Plan numérique",
                                      "delib_date": "2022-01-27"})
    assert (meta["delib_number"], meta["title"], meta["date"], meta["date_source"]) == (
        "2022.00022", "Plan numérique", "2022-01-27", "scdl")
    head = "Extrait du registre des délibérations du Conseil municipal. Le conseil, après en avoir délibéré, décide"
    assert classify_document("", "", head, False)[0] == "deliberation"
    assert classify_document("Procès-verbal de la séance", "", "ordre du jour", False)[0] == "proces_verbal"
    assert classify_document("Schéma directeur du numérique", "", "", False)[0] == "strategie"
    assert classify_document("Agenda", "https://example.org/agenda", "", True)[0] == "page_web"
    kind, conf = classify_document("", "", "", False)
    assert (kind, conf) == ("autre", 0.0)


# --- store run: incremental, parallel, time limit ---------------------------------------------
def test_run_extract_incremental(pdfs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_with, html_page: str) -> None:
    html = tmp_path / "page.html"
    html.write_text(html_page, encoding="utf-8")
    files = [pdfs["table"].path, pdfs["two_columns"].path, pdfs["bad"]["encrypted"], html]
    store = store_with(tmp_path, files)
    settings = ExtractSettings(workers=2, ocr=False)
    first = run_extract(store, settings, progress=False)
    assert first == {"ok": 3, "pdf-encrypted": 1}
    rows = store.latest_extractions()
    assert len(rows) == 4
    table_row = next(r for r in rows if r["metadata"].get("title") == "table")
    assert table_row["metadata"]["date"] == "2021-03-12" and table_row["metadata"]["date_source"] == "scdl"
    loaded = store.load_extraction(table_row)
    assert [t.rows for t in loaded.tables] == pdfs["table"].tables

    assert run_extract(store, settings, progress=False) == {"unchanged": 4}
    # Another engine is another key: the PDFs are extracted again, the HTML page is not.
    assert run_extract(store, ExtractSettings(engine="pdfplumber", ocr=False), progress=False) == {
        "ok": 2, "pdf-encrypted": 1, "unchanged": 1}
    assert run_extract(store, ExtractSettings(ocr=False, force=True), progress=False) == {
        "ok": 3, "pdf-encrypted": 1}
    monkeypatch.setattr(clean, "CLEANING_VERSION", "test-next")
    assert run_extract(store, settings, progress=False) == {"ok": 3, "pdf-encrypted": 1}
    assert run_extract(store, settings, progress=False) == {"unchanged": 4}


def test_worker_killed_by_time_limit_batch_goes_on(pdfs: dict, tmp_path: Path, store_with) -> None:
    store = store_with(tmp_path, [pdfs["minutes_255"].path, pdfs["table"].path])
    # pdfplumber reads ~10 pages/s: the 255-page file cannot finish in 3 s, the table can.
    settings = ExtractSettings(engine="pdfplumber", ocr=False, timeout_s=3, workers=1)
    counts = run_extract(store, settings, progress=False)
    assert counts == {"timeout": 1, "ok": 1}
    by_status = {r["status"]: r for r in store.latest_extractions()}
    assert "time limit" in by_status["timeout"]["error"]
    assert by_status["ok"]["chars"] > 0


def test_worker_memory_limit_batch_goes_on(pdfs: dict, tmp_path: Path, store_with) -> None:
    big = tmp_path / "huge.txt"
    big.write_bytes(b"Le conseil municipal approuve la convention. " * 1_500_000)  # ~68 MB
    store = store_with(tmp_path, [big, pdfs["table"].path])
    counts = run_extract(store, ExtractSettings(ocr=False, max_memory_mb=40), progress=False)
    assert counts == {"memory": 1, "ok": 1}
    failed = next(r for r in store.latest_extractions() if r["status"] == "memory")
    assert "40 MB" in failed["error"]


# --- text_command -------------------------------------------------------------------------------
def test_text_command(pdfs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    doc = pdfs["table"]
    text = text_command(doc.path)
    assert text == doc.text
    data = json.loads(text_command(doc.path, engine="pdfplumber", as_json=True))
    assert data["status"] == "ok" and data["engine"] == "pdfplumber"
    assert data["pages"][0]["paragraphs"] == doc.paragraphs
    assert data["tables"][0]["rows"] == doc.tables[0]
    assert "language" in data["metadata"]
    assert list(tmp_path.iterdir()) == []  # no corpus, nothing written
    with pytest.raises(BarometreError):
        text_command(tmp_path / "missing.pdf")
    with pytest.raises(BarometreError):
        text_command(doc.path, engine="nope")
    with pytest.raises(BarometreError, match="pdf-encrypted"):
        text_command(pdfs["bad"]["encrypted"])
    assert json.loads(text_command(pdfs["bad"]["encrypted"], as_json=True))["status"] == "pdf-encrypted"


# --- the fast paths of cleaning give what the plain definitions give ---------------------------
def _reference_normalize(text: str) -> str:
    """normalize_text as first written: one pattern or table per step, per fragment."""
    import re
    import unicodedata

    compat = re.compile("[\ufb00-\ufb06\U0001d400-\U0001d7ff\uff01-\uff5e\u2000-\u200a\u1d2c-\u1d6a\u02b0-\u02b8]")
    table = {**dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None),
             **dict.fromkeys(map(ord, "\u00a0\u202f\u2007\t"), " ")}
    bullets = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\uf000-\uf0ff\u25aa\u25cf\u25a0\u2022\u2023\u2043\u25e6\u2219\u27a2\u2713\u2714]")
    if not text.isascii():
        text = compat.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text)
        text = text.translate(table)
        text = unicodedata.normalize("NFC", text)
    else:
        text = text.replace("\t", " ")
    text = bullets.sub("•", text)
    return re.sub(r" {2,}", " ", text).strip()


def test_page_level_cleaning_equals_the_per_fragment_definition() -> None:
    import random

    alphabet = list("aé e\u0301É\t  \u00a0\u202f\u2007\u00ad\u200b\ufeff\u2022\x01\x0b\uf0b7\ufb01"
                    "\U0001d45d\uff21\u2003\u1d49\u02b3AaCcİıſK0123456789:;ID-") + [
        "accusé", "Préfecture", "ID :", "123456789", "AAccccuusséé ddee", "minisTère", "affiché"]
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert normalize_text(text) == _reference_normalize(text), repr(text)
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 15))) for _ in range(rng.randint(1, 6))]
        got = normalize.normalize_page(texts)
        assert got == [repair_doubled_glyphs(_reference_normalize(t)) for t in texts], texts
        candidates = normalize.stamp_candidates(got)
        assert {k for k, t in enumerate(got) if normalize._STAMP_HINT.search(t)} <= candidates, got


def test_metadata_fast_patterns_match_their_definitions() -> None:
    from nlp.extract import metadata

    # The language tokenizer: same single characters as the re.I definition, all code points.
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        c = chr(code)
        assert bool(metadata._TOKEN.fullmatch(c)) == bool(metadata._TOKEN_I.fullmatch(c)), hex(code)
    # The document-type rules on lower-cased text, with and without re.I.
    heads = ["extrait du registre des délibérations du conseil municipal", "procès-verbal de la séance",
             "schéma directeur et feuille de route", "rapport d'activité annuel", "pv cm", "ſtratégie ıci"]
    for kind, rules in metadata._TYPE_RULES_LOWER.items():
        for lower_rx, rx, _ in rules:
            for head in heads[:-1]:
                assert lower_rx.findall(head) == rx.findall(head), (kind, rx.pattern, head)
    assert metadata.classify_document("", "", heads[-1], False) == metadata.classify_document("", "", heads[-1].upper(), False)


