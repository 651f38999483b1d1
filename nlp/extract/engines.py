"""PDF engines behind one small interface: ``extract(path, max_pages) -> list[RawPage]``.

Stage: extract (first half). Input: a PDF file. Output: raw pages made of lines, each line made
of *fragments* (runs of text separated by a wide horizontal gap: table cells, a margin column
beside the body), with their geometry in points, origin at the top-left of the page. Cleaning
(:mod:`nlp.extract.clean`) works on that geometry and is the same for every engine.

- :class:`PdfiumEngine` (pypdfium2): the text layer in content-stream order, ~20x faster than
  pdfplumber on the real deliberations; wide gaps are located from a few character boxes only.
- :class:`PdfplumberEngine`: pdfminer's words regrouped into visual lines, plus pdfplumber's
  ruled-table finder (what it does best): table regions leave the prose and come back as rows.

Both raise :class:`ExtractFailure` with a status slug for inputs they cannot read.
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

# A gap wider than this many font heights separates two fragments (cells, columns). Word
# spaces, even in justified text, stay well under one em.
GAP_EM = 1.0
# Fewer characters than this on a page means "no text layer" (scans carry at most a stray
# page number or a stamp added by the scanner software).
MIN_TEXT_CHARS = 20


class ExtractFailure(Exception):
    """A document that cannot be extracted, with the status slug to record."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Fragment:
    """A run of text on one visual line; coordinates in points from the top-left corner."""

    text: str
    x0: float
    top: float
    x1: float
    bottom: float

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 1.0)


@dataclass
class RawLine:
    """One visual line: its fragments from left to right (usually one). Its text and box are
    computed once, when it is built (cleaning asks for them many times): do not change the
    fragment list afterwards."""

    fragments: list[Fragment]

    def __post_init__(self) -> None:
        frags = self.fragments
        if len(frags) == 1:
            f = frags[0]
            self.text, self.x0, self.top, self.x1, self.bottom = f.text, f.x0, f.top, f.x1, f.bottom
        else:
            self.text = " ".join(f.text for f in frags)
            self.x0 = min(f.x0 for f in frags)
            self.top = min(f.top for f in frags)
            self.x1 = max(f.x1 for f in frags)
            self.bottom = max(f.bottom for f in frags)

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 1.0)

    @classmethod
    def single(cls, frag: Fragment) -> "RawLine":
        """The line of one fragment, built without the dataclass machinery (engines build
        thousands per document)."""
        line = cls.__new__(cls)
        line.fragments = [frag]
        line.text, line.x0, line.top, line.x1, line.bottom = frag.text, frag.x0, frag.top, frag.x1, frag.bottom
        return line


@dataclass
class RawPage:
    """One page as an engine sees it, before cleaning."""

    number: int
    width: float
    height: float
    lines: list[RawLine] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)
    chars: int = 0
    has_images: bool = False
    method: str = "text"
    ocr_confidence: float | None = None
    unreadable: bool = False  # the engine could not load this page (broken page tree)

    @property
    def has_text_layer(self) -> bool:
        return self.chars >= MIN_TEXT_CHARS


class Engine(Protocol):
    """What every PDF engine offers."""

    name: str
    version: str

    def extract(self, path: Path, max_pages: int | None = None) -> list[RawPage]:
        """Raw pages of ``path`` (at most ``max_pages``); raises :class:`ExtractFailure`."""
        ...


def check_pdf_bytes(path: Path) -> None:
    """Classify inputs that are not PDFs at all before handing them to a parser.

    Raises :class:`ExtractFailure` (``empty``, ``html-as-pdf``, ``pdf-malformed``).
    """
    size = path.stat().st_size
    if size == 0:
        raise ExtractFailure("empty", "zero-byte file")
    with open(path, "rb") as f:
        head = f.read(2048)
    if b"%PDF-" in head[:1024]:
        return
    if re.search(rb"<!doctype html|<html[\s>]|<head[\s>]|<body[\s>]", head, re.I):
        raise ExtractFailure("html-as-pdf", "the file announced as a PDF is an HTML page")
    raise ExtractFailure("pdf-malformed", "no %PDF- header in the first 1024 bytes")


# --- pypdfium2 ------------------------------------------------------------------------------
class PdfiumEngine:
    """Text layer through pypdfium2 (PDFium), in content-stream order."""

    name = "pdfium"

    def __init__(self) -> None:
        import pypdfium2

        self.version = (
            f"pypdfium2-{pypdfium2.version.PYPDFIUM_INFO.version}"
            f"+pdfium-{pypdfium2.version.PDFIUM_INFO.build}"
        )

    def open(self, path: Path):  # -> pypdfium2.PdfDocument
        """Open ``path``; map PDFium's errors to status slugs."""
        import pypdfium2

        check_pdf_bytes(path)
        try:
            return pypdfium2.PdfDocument(str(path))
        except pypdfium2.PdfiumError as exc:
            msg = str(exc)
            if "password" in msg.lower():
                raise ExtractFailure(
                    "pdf-encrypted", "the PDF is password-protected (no password known)"
                ) from exc
            raise ExtractFailure("pdf-malformed", f"PDFium cannot open the file: {msg}") from exc

    def extract(self, path: Path, max_pages: int | None = None) -> list[RawPage]:
        import pypdfium2
        import pypdfium2.raw as pdfium_c

        pdf = self.open(path)
        try:
            n = len(pdf)
            if n <= 0:
                raise ExtractFailure("pdf-malformed", "the PDF has no pages")
            pages = []
            unreadable = []
            for i in range(min(n, max_pages) if max_pages else n):
                try:
                    page = pdf[i]
                except pypdfium2.PdfiumError:
                    # A broken page tree (a /Kids loop, a page that is not a page object):
                    # the other pages are still read; the page keeps its number, empty.
                    unreadable.append(i + 1)
                    pages.append(RawPage(number=i + 1, width=0.0, height=0.0, unreadable=True))
                    continue
                try:
                    width, height = page.get_size()
                    textpage = page.get_textpage()
                    try:
                        raw = _pdfium_page(textpage, i + 1, width, height)
                    finally:
                        textpage.close()
                    if not raw.has_text_layer:
                        raw.has_images = any(
                            pdfium_c.FPDFPageObj_GetType(pdfium_c.FPDFPage_GetObject(page, k))
                            == pdfium_c.FPDF_PAGEOBJ_IMAGE
                            for k in range(pdfium_c.FPDFPage_CountObjects(page))
                        )
                finally:
                    page.close()
                pages.append(raw)
            if unreadable and len(unreadable) == len(pages):
                raise ExtractFailure(
                    "pdf-malformed",
                    f"PDFium cannot load any page ({_pages_list(unreadable)}): the page tree is broken",
                )
            return pages
        except pypdfium2.PdfiumError as exc:  # anything else PDFium refuses while reading
            raise ExtractFailure("pdf-malformed", f"PDFium cannot read the file: {exc}") from exc
        finally:
            pdf.close()


def _pages_list(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return f"page {shown}" if len(numbers) == 1 else f"pages {shown}" + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def _utf16_len(s: str) -> int:
    # PDFium indexes characters in UTF-16 code units: a character outside the BMP counts twice.
    return len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


# A character outside the Basic Multilingual Plane: where a page has none (nearly every page),
# string indices are PDFium's UTF-16 indices and no offset needs computing.
_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")


@functools.lru_cache(maxsize=1)
def _unchecked_text_functions() -> tuple | None:
    """PDFium's ``FPDFText_GetLooseCharBox`` and ``FPDFText_IsGenerated`` as bare foreign
    functions (same library, same calling convention, no ``argtypes``), or None where the
    bindings are not ctypes function pointers (then the checked calls are used).

    pypdfium2's bindings declare argument types, so ctypes checks and converts every argument
    on every call: about half of the 0.6–0.8 µs each call costs, and the engine makes about 600
    calls per page. Without ``argtypes`` ctypes passes a ``c_void_p`` and a Python int as they
    are (the documented default conversions); :class:`_Boxes` passes exactly those.
    """
    import ctypes

    import pypdfium2.raw as pdfium_c

    def bare(fn):  # a new pointer of the same function-pointer class: argtypes None, restype int
        return type(fn)(ctypes.cast(fn, ctypes.c_void_p).value)

    try:
        return bare(pdfium_c.FPDFText_GetLooseCharBox), bare(pdfium_c.FPDFText_IsGenerated)
    except (TypeError, AttributeError, ctypes.ArgumentError) as exc:
        log.debug("PDFium text functions stay checked (%s)", exc)
        return None


class _Boxes:
    """Loose character boxes through PDFium's C API with one reused rectangle (the Python
    helper allocates four doubles per call, which dominated the cost), called without
    pypdfium2's argument checks (:func:`_unchecked_text_functions`)."""

    def __init__(self, textpage, page_h: float) -> None:
        import ctypes

        import pypdfium2.raw as pdfium_c

        self._rect = pdfium_c.FS_RECTF()
        self.page_h = page_h
        bare = _unchecked_text_functions()
        if bare is not None:
            self._fn, self._gen = bare
            # The text page handle as a plain pointer, valid while ``textpage`` is open (the
            # engine closes it after the page is read).
            self._raw = ctypes.c_void_p(ctypes.cast(textpage.raw, ctypes.c_void_p).value)
            self._ref = ctypes.byref(self._rect)
        else:
            self._fn, self._gen = pdfium_c.FPDFText_GetLooseCharBox, pdfium_c.FPDFText_IsGenerated
            self._raw, self._ref = textpage.raw, self._rect

    def generated(self, index: int) -> bool:
        """Whether PDFium inserted this character (a space standing for a gap)."""
        return self._gen(self._raw, index) == 1

    def __call__(self, index: int) -> tuple[float, float, float, float]:
        """(x0, top, x1, bottom) of a character, top-left origin."""
        r = self._rect
        if not self._fn(self._raw, index, self._ref):
            return (0.0, 0.0, 0.0, 0.0)
        return (r.left, self.page_h - r.top, r.right, self.page_h - r.bottom)

    def gap(self, a: int, b: int) -> float:
        """Horizontal distance from the right edge of character ``a`` to the left edge of
        character ``b`` (an edge counts as 0 where PDFium has no box, as in ``__call__``)."""
        fn, raw, r, ref = self._fn, self._raw, self._rect, self._ref
        left = r.left if fn(raw, b, ref) else 0.0
        return left - (r.right if fn(raw, a, ref) else 0.0)


def _pdfium_page(textpage, number: int, width: float, height: float) -> RawPage:
    n_chars = textpage.count_chars()
    page = RawPage(number=number, width=width, height=height)
    if n_chars <= 0:
        return page
    text = textpage.get_text_range(0, n_chars)
    page.chars = len("".join(text.split()))
    boxes = _Boxes(textpage, height)
    bmp = _ASTRAL.search(text) is None
    pending: list[tuple[Fragment, int, float]] = []
    pos = 0  # UTF-16 index of the current piece (pages with astral characters only)
    # PDFium joins a hyphenated line end to the next line itself, the hyphen becoming U+FFFE:
    # cut there again, so that every visual line keeps its geometry and cleaning decides.
    for m in _PDFIUM_LINE.finditer(text):
        body, sep = m.group(1), m.group(2)
        if bmp:
            start = m.start()
        else:
            start = pos
            pos += _utf16_len(body) + _utf16_len(sep)
        if sep == "\ufffe":
            body += "-"
        stripped = body.strip()
        if not stripped:
            continue
        if bmp:
            first = start + len(body) - len(body.lstrip())
            last = first + len(stripped) - 1
        else:
            first = start + _utf16_len(body[: len(body) - len(body.lstrip())])
            last = first + _utf16_len(stripped) - 1
        a, b = boxes(first), boxes(last)
        top, bottom = min(a[1], b[1]), max(a[3], b[3])
        h = max(bottom - top, 1.0)
        frag = Fragment(stripped, min(a[0], b[0]), top, max(a[2], b[2]), bottom)
        pending.append((frag, first, h))
    # Only a line wider than its characters would fill may hide a wide gap: compare each
    # line's width per character with the page's typical one, and look for the gap with more
    # character boxes only in lines clearly wider than that.
    ratios = sorted((f.x1 - f.x0) / (len(f.text) * h) for f, _, h in pending if len(f.text) >= 20)
    typical = ratios[len(ratios) // 2] if ratios else 0.5
    lines, single = page.lines, RawLine.single
    for frag, first, h in pending:
        text = frag.text
        if " " not in text:
            lines.append(single(frag))
            continue
        # Spaces PDFium generated (between two text objects: columns, cells) are always
        # checked; typed spaces only in lines wider than their characters would fill.
        wide = frag.x1 - frag.x0 > len(text) * typical * h * 1.1 + GAP_EM * h
        pieces = _split_wide_gaps(boxes, frag, first, h, all_spaces=wide, bmp=bmp)
        lines.append(single(frag) if pieces is None else RawLine(pieces))
    return page


_PDFIUM_LINE = re.compile(r"([^\r\n\ufffe]*)(\ufffe|\r\n|\r|\n|$)")


def _split_wide_gaps(boxes: _Boxes, frag: Fragment, first: int, h: float, all_spaces: bool,
                     bmp: bool = False) -> list[Fragment] | None:
    """Cut a line at the spaces where the ink leaves a gap wider than ``GAP_EM`` heights.

    Only generated spaces and runs of spaces are measured unless ``all_spaces``. ``bmp``: the
    page has no character outside the BMP (string and UTF-16 indices agree). Returns the
    pieces, or None when the line has no such gap (most lines): it stays the one fragment.
    """
    text = frag.text
    n = len(text)
    if bmp or _utf16_len(text) == n:
        offsets = None
    else:
        offsets, off = [], 0
        for c in text:
            offsets.append(off)
            off += 2 if ord(c) > 0xFFFF else 1
    generated, raw, gap = boxes._gen, boxes._raw, boxes.gap
    # The runs of spaces, as spans: never at the ends (the text is stripped). A single space
    # is measured only in a wide line or where PDFium generated it.
    runs = [m.span() for m in _SPACES.finditer(text)]
    if not all_spaces:
        if offsets is None:
            runs = [(i, j) for i, j in runs if j - i > 1 or generated(raw, first + i) == 1]
        else:
            runs = [(i, j) for i, j in runs if j - i > 1 or generated(raw, first + offsets[i]) == 1]
    limit = GAP_EM * h
    cuts: list[tuple[int, int]] = []  # (last index before the gap, first index after it)
    for i, j in runs:
        a, b = (first + i - 1, first + j) if offsets is None else (first + offsets[i - 1], first + offsets[j])
        if gap(a, b) > limit:
            cuts.append((i - 1, j))
    if not cuts:
        return None

    def piece(i: int, j: int) -> Fragment:
        ia, ib = (first + i, first + j) if offsets is None else (first + offsets[i], first + offsets[j])
        a, b = boxes(ia), boxes(ib)
        return Fragment(text[i : j + 1].strip(), min(a[0], b[0]), min(a[1], b[1]),
                        max(a[2], b[2]), max(a[3], b[3]))

    pieces, start = [], 0
    for end, nxt in cuts:
        pieces.append(piece(start, end))
        start = nxt
    pieces.append(piece(start, n - 1))
    return pieces


_SPACES = re.compile(r" +")


# --- pdfplumber -----------------------------------------------------------------------------
class PdfplumberEngine:
    """pdfminer words regrouped into visual lines, plus pdfplumber's ruled tables."""

    name = "pdfplumber"

    def __init__(self, tables: bool = True) -> None:
        import pdfplumber

        self.version = f"pdfplumber-{pdfplumber.__version__}"
        self.tables = tables

    def extract(self, path: Path, max_pages: int | None = None) -> list[RawPage]:
        import pdfplumber
        from pdfminer.pdfdocument import PDFPasswordIncorrect

        check_pdf_bytes(path)
        try:
            pdf = pdfplumber.open(str(path))
        except Exception as exc:  # pdfplumber wraps pdfminer's errors in PdfminerException
            cause = exc.args[0] if exc.args else exc
            if isinstance(cause, PDFPasswordIncorrect) or "password" in repr(exc).lower():
                raise ExtractFailure(
                    "pdf-encrypted", "the PDF is password-protected (no password known)"
                ) from exc
            raise ExtractFailure("pdf-malformed", f"pdfminer cannot parse the file: {exc!r}") from exc
        try:
            try:
                plumber_pages = pdf.pages
            except Exception as exc:
                raise ExtractFailure("pdf-malformed", f"pdfminer cannot read the page tree: {exc!r}") from exc
            if not plumber_pages:
                raise ExtractFailure("pdf-malformed", "the PDF has no pages")
            out = []
            unreadable = []
            for i, page in enumerate(plumber_pages[:max_pages] if max_pages else plumber_pages):
                try:
                    out.append(self._page(page, i + 1))
                except Exception as exc:  # pdfminer fails on a page: the others are still read
                    log.debug("pdfminer cannot read page %d: %r", i + 1, exc)
                    unreadable.append(i + 1)
                    out.append(RawPage(number=i + 1, width=0.0, height=0.0, unreadable=True))
                finally:
                    page.close()  # frees pdfminer's cached layout objects
            if unreadable and len(unreadable) == len(out):
                raise ExtractFailure("pdf-malformed", f"pdfminer cannot read any page ({_pages_list(unreadable)})")
            return out
        finally:
            try:
                pdf.close()
            except Exception:  # pdfplumber's close walks the (broken) page tree again
                log.debug("pdfplumber could not close %s cleanly", path)

    def _page(self, page, number: int) -> RawPage:
        raw = RawPage(number=number, width=float(page.width), height=float(page.height))
        raw.chars = sum(1 for c in page.chars if not c["text"].isspace())
        if not raw.has_text_layer:
            raw.has_images = bool(page.images)
        if raw.chars == 0:
            return raw
        boxes = []
        if self.tables:
            try:
                for table in page.find_tables():
                    rows = [[(c or "").replace("\n", " ").strip() for c in row] for row in table.extract()]
                    rows = [r for r in rows if any(r)]
                    if _real_table(rows):
                        raw.tables.append(rows)
                        boxes.append(table.bbox)
            except Exception as exc:  # a table finder failure must not lose the page text
                log.debug("table finder failed on page %d: %r", number, exc)
        words = page.extract_words(keep_blank_chars=False, use_text_flow=False)
        if boxes:
            words = [w for w in words if not any(_inside(w, b) for b in boxes)]
        raw.lines = _words_to_lines(words)
        return raw


def _real_table(rows: list[list[str]]) -> bool:
    """Tell a grid of cells from a framed page or paragraph that the ruling finder also sees.

    Three rows with two filled cells (or two rows with three), no cell longer than a short paragraph, and half
    the cells filled.
    """
    cells = [c for r in rows for c in r]
    filled = [c for c in cells if c]
    filled_per_row = [sum(1 for c in r if c) for r in rows]
    return (
        (sum(1 for n in filled_per_row if n >= 2) >= 3
         or (len(rows) == 2 and min(filled_per_row) >= 3))
        and max((len(c) for c in cells), default=0) <= 200
        and len(filled) >= 0.5 * len(cells)
    )


def _inside(word: dict, bbox: tuple[float, float, float, float]) -> bool:
    x0, top, x1, bottom = bbox
    cx, cy = (word["x0"] + word["x1"]) / 2, (word["top"] + word["bottom"]) / 2
    return x0 <= cx <= x1 and top <= cy <= bottom


def _words_to_lines(words: list[dict]) -> list[RawLine]:
    """Group words into visual lines (by vertical overlap), then cut lines at wide gaps."""
    words = sorted(words, key=lambda w: (round(w["top"]), w["x0"]))
    rows: list[list[dict]] = []
    for w in words:
        h = max(w["bottom"] - w["top"], 1.0)
        if rows:
            last = rows[-1]
            ref_top = sum(x["top"] for x in last) / len(last)
            if abs(w["top"] - ref_top) <= 0.5 * h:
                last.append(w)
                continue
        rows.append([w])
    lines = []
    for row in rows:
        row.sort(key=lambda w: w["x0"])
        frags: list[list[dict]] = [[row[0]]]
        for prev, w in zip(row, row[1:]):
            h = max(prev["bottom"] - prev["top"], 1.0)
            if w["x0"] - prev["x1"] > GAP_EM * h:
                frags.append([w])
            else:
                frags[-1].append(w)
        lines.append(RawLine([
            Fragment(
                " ".join(w["text"] for w in ws),
                min(w["x0"] for w in ws), min(w["top"] for w in ws),
                max(w["x1"] for w in ws), max(w["bottom"] for w in ws),
            )
            for ws in frags
        ]))
    return lines


ENGINES = ("pdfium", "pdfplumber")


def make_engine(name: str) -> Engine:
    """The engine called ``name`` (``pdfium`` or ``pdfplumber``)."""
    if name == "pdfium":
        return PdfiumEngine()
    if name == "pdfplumber":
        return PdfplumberEngine()
    raise ValueError(f"unknown PDF engine {name!r} (choose among {', '.join(ENGINES)})")
