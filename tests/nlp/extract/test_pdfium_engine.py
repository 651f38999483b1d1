"""The PDFium engine's geometry: the unchecked C calls and the character indices it measures.

The engine calls PDFium about 600 times per page without pypdfium2's argument checks, and maps
string positions to PDFium's UTF-16 character indices only on pages with characters outside
the BMP. Both are checked here against pypdfium2's own (checked) API, on a PDF written with a
font that has such characters (DejaVu Sans, shipped with matplotlib).
"""
from __future__ import annotations

from pathlib import Path

import pytest

pypdfium2 = pytest.importorskip("pypdfium2")
import pypdfium2.raw as pdfium_c  # noqa: E402

from nlp.extract import engines  # noqa: E402

ASTRAL = "\U00010300\U00010301"  # OLD ITALIC LETTERS A, BE (in DejaVu Sans): two UTF-16 units each


def _dejavu() -> Path:
    matplotlib = pytest.importorskip("matplotlib")
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not path.exists():
        pytest.skip("matplotlib's DejaVuSans.ttf is not installed")
    return path


def _cells_pdf(path: Path, rows: list[tuple[str, str]]) -> Path:
    """One page; each row two cells 250 pt apart (a gap PDFium fills with a generated space)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.add_font("DejaVu", fname=str(_dejavu()))
    pdf.add_page()
    pdf.set_font("DejaVu", size=11)
    for k, (left, right) in enumerate(rows):
        y = 80 + 20 * k
        pdf.text(60, y, left)
        pdf.text(320, y, right)
    pdf.output(str(path))
    return path


def _checked_box(textpage, index: int, page_h: float) -> tuple[float, float, float, float]:
    left, bottom, right, top = textpage.get_charbox(index, loose=True)
    return (left, page_h - top, right, page_h - bottom)


def test_unchecked_calls_give_what_the_checked_bindings_give(tmp_path: Path) -> None:
    path = _cells_pdf(tmp_path / "cells.pdf", [("Délibération n° 12", "adoptée"), (ASTRAL + " budget", "numérique")])
    pdf = pypdfium2.PdfDocument(str(path))
    page = pdf[0]
    textpage = page.get_textpage()
    try:
        height = page.get_size()[1]
        assert engines._unchecked_text_functions() is not None  # pypdfium2's ctypes bindings
        boxes = engines._Boxes(textpage, height)
        n = textpage.count_chars()
        assert n > 20
        generated = [boxes.generated(i) for i in range(n)]
        assert generated == [pdfium_c.FPDFText_IsGenerated(textpage.raw, i) == 1 for i in range(n)]
        assert any(generated)
        for i in range(n):
            assert boxes(i) == pytest.approx(_checked_box(textpage, i, height)), i
        # gap(a, b): from the right edge of a to the left edge of b.
        assert boxes.gap(0, 5) == pytest.approx(boxes(5)[0] - boxes(0)[2])
    finally:
        textpage.close()
        page.close()
        pdf.close()


def test_cells_beyond_the_bmp_keep_their_own_geometry(tmp_path: Path) -> None:
    """On a page with characters outside the BMP, every fragment's box is the box of its own
    first and last characters: string positions are mapped to PDFium's UTF-16 indices."""
    rows = [(f"{ASTRAL} axe {ASTRAL}", f"{ASTRAL} données"), ("Ligne simple", f"fin {ASTRAL}")]
    path = _cells_pdf(tmp_path / "astral.pdf", rows)
    [raw_page] = engines.PdfiumEngine().extract(path)
    got = [[f.text for f in line.fragments] for line in raw_page.lines]
    assert got == [[left, right] for left, right in rows]

    pdf = pypdfium2.PdfDocument(str(path))
    page = pdf[0]
    textpage = page.get_textpage()
    try:
        height = page.get_size()[1]
        text = textpage.get_text_range()
        units = [0]  # UTF-16 index of each string position
        for c in text:
            units.append(units[-1] + (2 if ord(c) > 0xFFFF else 1))
        start = 0
        for line in raw_page.lines:
            for frag in line.fragments:
                pos = text.index(frag.text, start)
                start = pos + len(frag.text)
                first = _checked_box(textpage, units[pos], height)
                last = _checked_box(textpage, units[start - 1], height)
                assert frag.x0 == pytest.approx(min(first[0], last[0])), frag.text
                assert frag.x1 == pytest.approx(max(first[2], last[2])), frag.text
                assert frag.x1 - frag.x0 < 200  # one cell, not the line across the gap
    finally:
        textpage.close()
        page.close()
        pdf.close()


def test_checked_calls_where_bare_ones_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bindings that are not ctypes function pointers: the engine falls back on pypdfium2's
    checked calls and reads the same geometry."""
    path = _cells_pdf(tmp_path / "cells.pdf", [("Délibération n° 12", "adoptée"), (ASTRAL + " budget", "numérique")])
    fast = engines.PdfiumEngine().extract(path)
    monkeypatch.setattr(engines, "_unchecked_text_functions", lambda: None)
    checked = engines.PdfiumEngine().extract(path)
    assert [[(f.text, f.x0, f.top, f.x1, f.bottom) for f in ln.fragments] for ln in checked[0].lines] == \
        [[(f.text, f.x0, f.top, f.x1, f.bottom) for f in ln.fragments] for ln in fast[0].lines]
    assert len(checked[0].lines) == 2 and all(len(ln.fragments) == 2 for ln in checked[0].lines)
