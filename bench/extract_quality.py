"""Extraction quality per engine, against reference texts and generated ground truth.

Run: ``.venv/bin/python bench/extract_quality.py`` (``--no-ocr`` to skip the scanned minutes,
``--data DIR`` for another ../shared/data). Prints markdown tables; deterministic.

Variants compared on each document:
- ``pdfplumber raw``: ``page.extract_text()`` joined, no cleaning (the card's extractor as is);
- ``pdfium raw``: PDFium's text layer (``get_text_bounded``) joined, no cleaning;
- ``pdfplumber`` and ``pdfium``: ``nlp.extract.extract_file`` with that engine (cleaning,
  tables apart, OCR of pages without a text layer); ``pdfium`` is what ``auto`` uses.

References (``../shared/data/MANIFEST.csv``): the expected text of the Bourg-en-Bresse
deliberation, the reference conversion of the Roannais minutes (tool unknown), the structured
extraction of the Chéméré minutes (its deliberation texts only: read recall, precision is
meaningless there; same for the Roannais conversion, which leaves out tables and vote lists), and the word-processor sources of the two scanned Aiglun minutes (an
OCR benchmark). Generated PDFs (tests/fixtures/pdfs/generate.py) have an exact ground truth.

Scores, after NFC, lower-casing, apostrophes unified and whitespace collapsed:
- ``F1`` / ``R``: word-multiset F1 and recall against the reference (F1 only where the
  reference covers the whole document); ``R+tables``: recall counting the table cells that
  cleaning keeps apart (what the stage keeps in all);
- ``order``: difflib similarity ratio of the two word sequences (reading order, splits);
- ``noise/page``: running headers/footers and stamp lines found in the output, per page.
  Noise lines are found in the raw text layer: lines at the top or bottom of pages that recur
  on half of them (digits ignored), plus prefecture-stamp lines; lines also present in the
  reference are not noise. For generated PDFs the noise strings are known.
- ``paras``: share of ground-truth paragraphs found exactly as one paragraph (generated only).
"""
from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import re
import sys
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.extract import ExtractSettings, extract_file  # noqa: E402
from nlp.extract.clean import STAMP_RE  # noqa: E402

VARIANTS = ["pdfplumber raw", "pdfium raw", "pdfplumber", "pdfium"]


from nlp.config import shared_data_dir as shared_data  # noqa: E402


def norm(text: str) -> str:
    text = unicodedata.normalize("NFC", text).lower().replace("’", "'").replace("`", "'")
    return re.sub(r"\s+", " ", text).strip()


def words(text: str) -> list[str]:
    return re.findall(r"\w+", norm(text))


def prf(ref: list[str], out: list[str]) -> tuple[float, float, float]:
    if not ref or not out:
        return 0.0, 0.0, 0.0
    common = sum((Counter(ref) & Counter(out)).values())
    p, r = common / len(out), common / len(ref)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def order_ratio(ref: list[str], out: list[str]) -> float:
    if not ref or not out:
        return 0.0
    return difflib.SequenceMatcher(None, ref, out).ratio()


# --- variants ---------------------------------------------------------------------------------
def raw_pages(path: Path, variant: str) -> list[str]:
    try:
        if variant == "pdfplumber raw":
            import pdfplumber

            with pdfplumber.open(str(path)) as pdf:
                return [p.extract_text() or "" for p in pdf.pages]
        import pypdfium2

        pdf = pypdfium2.PdfDocument(str(path))
        try:
            return [pdf[i].get_textpage().get_text_bounded().replace("\r\n", "\n") for i in range(len(pdf))]
        finally:
            pdf.close()
    except Exception:
        return []


def run_variant(path: Path, variant: str, ocr: bool) -> tuple[str, str, str]:
    """(text, table text, status) of one variant."""
    if variant.endswith("raw"):
        pages = raw_pages(path, variant)
        return "\n".join(pages), "", "ok" if any(p.strip() for p in pages) else "no text"
    result = extract_file(path, ExtractSettings(engine=variant, ocr=ocr))
    tables = " ".join(c for t in result.tables for row in t.rows for c in row)
    return result.text, tables, result.status


# --- noise ------------------------------------------------------------------------------------
def _key(line: str) -> str:
    return re.sub(r"\d+", "#", norm(line))


def noise_lines(path: Path, reference: str) -> list[str]:
    """Digit-blind keys of running header/footer and stamp lines of a PDF's raw text layer."""
    pages = [[ln for ln in p.splitlines() if ln.strip()] for p in raw_pages(path, "pdfium raw")]
    pages = [p for p in pages if p]
    ref = _key(reference)
    seen: Counter = Counter()
    stamps = set()
    for lines in pages:
        seen.update({_key(ln) for ln in lines[:3] + lines[-3:]})
        stamps.update(_key(ln) for ln in lines if STAMP_RE.search(ln) and len(ln.strip()) > 8)
    repeated = {k for k, c in seen.items() if len(pages) >= 2 and c >= max(2, (len(pages) + 1) // 2)}
    keys = {k for k in repeated | stamps if len(k) >= 6 and not re.fullmatch(r"[#\W]*", k)}
    return sorted(k for k in keys if k not in ref)


def noise_left(text: str, keys: list[str]) -> int:
    hay = _key(text)
    return sum(hay.count(k) for k in keys)


# --- references -------------------------------------------------------------------------------
def references(data: Path) -> list[tuple[str, Path, str, str]]:
    """(name, pdf, reference text, kind) for every PDF with a reference that exists."""
    real = data / "real-pdfs"
    out = []

    def add(name: str, pdf: str, ref_text: str | None, kind: str) -> None:
        if ref_text is not None and (real / pdf).exists():
            out.append((name, real / pdf, ref_text, kind))

    def read(rel: str, encoding: str = "utf-8") -> str | None:
        p = real / rel
        return p.read_text(encoding=encoding, errors="replace") if p.exists() else None

    add("bourg-en-bresse delib (expected text)", "pdf/communes/bourg-en-bresse_delib_2016-02-01_subvention.pdf",
        read("txt/communes/bourg-en-bresse_delib_2016-02-01_expected.txt"), "full")
    roannais = read("txt/roannais/roannais_PV_2021-10-28_extraction_reference.txt", "cp1252")
    if roannais is not None:
        roannais = re.sub(r"[#*|]+", " ", roannais)
    # The conversion holds ~40% of the PDF's words (tables and vote lists left out): a subset.
    add("roannais PV 49 p. (reference conversion, partial)",
        "pdf/roannais/roannais_agglomeration_PV_conseil_communautaire_2021-10-28.pdf", roannais, "subset")
    chemere = real / "json/chemere/chemere_PV_2014-05-13.json"
    if chemere.exists():
        data_json = json.loads(chemere.read_text(encoding="utf-8"))
        text = "\n".join(d.get("text", "") for d in data_json.get("deliberations", []))
        add("chemere PV (deliberation texts, silver)", "pdf/chemere/chemere_13_mai_2014.pdf", text, "subset")
    for date in ("2013-06-19", "2015-11-04"):
        html = real / f"html/aiglun/aiglun_CR_CM_{date}.html"
        if html.exists():
            import lxml.html

            text = lxml.html.fromstring(html.read_bytes()).text_content()
            add(f"aiglun CR {date} (scan; .doc source)", f"pdf/aiglun/aiglun_CR_CM_{date}.pdf", text, "scan")
    return out


def load_generator():
    path = ROOT / "tests" / "fixtures" / "pdfs" / "generate.py"
    spec = importlib.util.spec_from_file_location("barometre_pdf_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data())
    parser.add_argument("--no-ocr", action="store_true", help="skip OCR (scanned references score 0)")
    args = parser.parse_args(argv)
    ocr = not args.no_ocr

    refs = references(args.data)
    print("## Real PDFs against reference texts\n")
    if not refs:
        print(f"(no reference data under {args.data})\n")
    print("| document | variant | status | F1 | R | R+tables | order | noise/page |")
    print("|---|---|---|---|---|---|---|---|")
    totals: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for name, pdf, ref_text, kind in refs:
        ref_words = words(ref_text)
        keys = noise_lines(pdf, ref_text)
        n_pages = max(1, len(raw_pages(pdf, "pdfium raw")))
        for variant in VARIANTS:
            text, tables, status = run_variant(pdf, variant, ocr)
            out_words = words(text)
            _, r, f1 = prf(ref_words, out_words)
            _, r_all, _ = prf(ref_words, out_words + words(tables))
            order = order_ratio(ref_words, out_words)
            noise = noise_left(text, keys) / n_pages
            totals[variant].append(r_all if kind == "subset" else f1)
            print(f"| {name} | {variant} | {status} | {'—' if kind == 'subset' else f'{f1:.3f}'} "
                  f"| {r:.3f} | {r_all:.3f} | {order:.3f} | {noise:.2f} |")
    if refs:
        print("\nMean over the references (F1 where the reference is the whole document, "
              "R+tables where it covers part of it):\n")
        print("| variant | mean |")
        print("|---|---|")
        for variant in VARIANTS:
            vals = totals[variant]
            print(f"| {variant} | {sum(vals) / len(vals):.3f} |")

    gen = load_generator()
    print("\n## Generated PDFs with exact ground truth\n")
    print("| layout | variant | F1 | order | paras exact | noise left |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        docs = gen.generate_all(Path(tmp), include_large=False, include_scan=ocr)
        for name, doc in docs.items():
            truth_words = words(doc.text)
            for variant in VARIANTS:
                if variant.endswith("raw"):
                    text, _, _ = run_variant(doc.path, variant, ocr)
                    paras = "—"
                else:
                    result = extract_file(doc.path, ExtractSettings(engine=variant, ocr=ocr))
                    text = result.text
                    got = {p for page in result.pages for p in page.paragraphs}
                    paras = f"{sum(1 for p in doc.paragraphs if p in got) / len(doc.paragraphs):.2f}"
                out_words = words(text)
                _, _, f1 = prf(truth_words, out_words)
                order = order_ratio(truth_words, out_words)
                left = sum(norm(text).count(norm(n)) for n in doc.noise)
                print(f"| {name} | {variant} | {f1:.3f} | {order:.3f} | {paras} | {left} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
