"""Cleaning: raw engine pages -> the paragraphs the NLP stages read.

Stage: extract (second half). Input: :class:`~nlp.extract.engines.RawPage` objects (lines of
fragments with geometry) from any engine, PDF or OCR. Output: per page, cleaned paragraphs and
the tables found, plus counts of what was removed.

What is removed from the body, and why:
- prefecture stamps ("Accusé de réception – Ministère de l'intérieur", "Acte certifié
  exécutoire", "Réception en préfecture", the ``034-213401722-20140522-…-DE`` act id): added by
  the transmission software, they are not the deliberation's words;
- margin columns: a narrow column of short lines beside a full-width body in the top part of
  the first page (the Montpellier letterhead: service name, "Extrait du registre…", act
  number); the columns of a bulletin and the label column of a table on later pages stay;
- running headers and footers: lines near the top or bottom of a page repeated on at least
  half the pages (digits ignored, so "page 3" and "page 4" are the same line), and lone page
  numbers;
- tables (rows of three or more cells, or runs of short two-cell rows): kept apart as rows so
  a grid of amounts does not flood the prose.

What is repaired: duplicated glyphs ("AAccccuusséé" -> "Accusé", when every character of a word
is doubled, decided per line), NFC and compatibility characters (ligatures, mathematical
italics, odd spaces, soft hyphens), hyphenated line ends (``numé-`` + ``rique`` -> ``numérique``,
but ``Saint-`` + ``Étienne`` and ``peut-`` + ``être`` keep their hyphen), and paragraphs are
rebuilt from lines using vertical gaps, indentation, short last lines and list markers.

Bump :data:`CLEANING_VERSION` whenever the output of this module, or of the metadata rules
(:mod:`nlp.extract.metadata`), changes: stored extractions with an older version are redone by
``barometre extract``.
"""
from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from functools import lru_cache

from nlp.extract.engines import Fragment, RawLine, RawPage
from nlp.extract.normalize import (  # noqa: F401 - STAMP_RE: imported from here by bench/extract_quality.py
    STAMP_RE, normalize_page, normalize_text, repair_doubled_glyphs, stamp_candidates, strip_stamps,
)

CLEANING_VERSION = "5"

PAGE_NUMBER_RE = re.compile(
    r"^\s*[-–—]?\s*(?:page|p\.)?\s*\d{1,4}\s*(?:(?:/|sur|of)\s*\d{1,4})?\s*[-–—]?\s*$", re.I
)
_BULLET_START = re.compile(
    r"^(?:[•\-–—*►▪➢→o]\s|\(?\d{1,3}[.)°]\s|\(?[a-z][.)]\s|[IVX]{1,5}[.)\-–]\s|article\s+\d|art\.\s*\d"
    r"|(?-i:VU|CONSID[ÉE]RANT|D[ÉE]CIDE|APPROUVE|AUTORISE|PREND ACTE)\b)",
    re.I,
)
# First words of the short "… :" labels of minutes ("Le Président décide :", "Absents :").
_LABEL_STARTS = {"Le", "La", "Les", "Il", "Elle", "Monsieur", "Madame", "Absents", "Absent",
                 "Présents", "Excusés", "Étaient", "Etaient", "Pouvoirs", "Objet", "Ordre", "Vote"}
_LONE_BULLET = re.compile(r"^(?:[•\-–—*►▪➢→o]|\d{1,2}[.)°]|[a-z][.)]|[IVX]{1,4}[.)])$")
_SENTENCE_END = re.compile(r"[.:;!?»\"”)]$")
_SENTENCE_END_CHARS = frozenset(".:;!?»\"”)")


def _ends_sentence(text: str) -> bool:
    """``_SENTENCE_END.search(text)`` without scanning the line (lines hold no line break)."""
    return bool(text) and text[-1] in _SENTENCE_END_CHARS


@dataclass
class CleanPage:
    """A page after cleaning: paragraphs and tables, with what was removed."""

    number: int
    paragraphs: list[str]
    tables: list[list[list[str]]]
    method: str = "text"
    ocr_confidence: float | None = None
    removed: Counter = field(default_factory=Counter)

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


# A positioned line of text is the engines' fragment shape: one definition for both.
_Line = Fragment


# --- page layout --------------------------------------------------------------------------
def _fragment_lines(page: RawPage, removed: Counter) -> list[RawLine]:
    """Normalise and repair every fragment; drop stamps and empty fragments."""
    texts = normalize_page([f.text for line in page.lines for f in line.fragments])
    stamps = stamp_candidates(texts)
    out = []
    k = 0
    single = RawLine.single

    def repaired(f: Fragment, i: int) -> Fragment | None:
        """Fragment ``f`` with its normalised text ``texts[i]``, stamps stripped; None when
        nothing is left. ``f`` itself when the text did not change."""
        text = texts[i]
        if text and i in stamps:
            text, stamped = strip_stamps(text)
            if stamped:
                removed["stamp"] += 1
        if not text:
            return None
        return f if text == f.text else Fragment(text, f.x0, f.top, f.x1, f.bottom)

    for line in page.lines:
        if len(line.fragments) == 1:  # most lines: the same step, without the lists
            g = repaired(line.fragments[0], k)
            k += 1
            if g is not None:
                out.append(line if g is line.fragments[0] else single(g))
            continue
        frags = []
        for f in line.fragments:
            g = repaired(f, k)
            k += 1
            if g is not None:
                frags.append(g)
        if not frags:
            continue
        if len(frags) > 1:
            # A bullet set apart from its item by a tab is part of the item, not a cell.
            merged: list[Fragment] = []
            for f in frags:
                if merged and _LONE_BULLET.match(merged[-1].text):
                    b = merged.pop()
                    f = Fragment(f"{b.text} {f.text}", b.x0, min(b.top, f.top), f.x1, max(b.bottom, f.bottom))
                merged.append(f)
            frags = merged
        out.append(line if len(frags) == len(line.fragments) and all(
            a is b for a, b in zip(frags, line.fragments)) else RawLine(frags))
    return out


def _drop_margin_column(lines: list[RawLine], width: float, height: float, removed: Counter) -> list[RawLine]:
    """Remove a letterhead margin column: >= 3 narrow left fragments beside body text, top 40%."""
    if width <= 0:
        return lines
    # Body text beside the column: a long fragment at least 45% of the page wide. Columns of a
    # multi-column bulletin, or table cells, have only narrow neighbours and stay.
    wide = [f for ln in lines for f in ln.fragments if len(f.text) >= 25 and f.x1 - f.x0 >= 0.45 * width]

    def candidate(f: Fragment) -> bool:
        if f.x1 > 0.36 * width or f.top > 0.4 * height or f.x1 <= 0:
            return False
        band = 3 * f.height
        return any(g.x0 > f.x1 + 5 and g.top < f.bottom + band and g.bottom > f.top - band for g in wide)

    flags = {(i, j) for i, ln in enumerate(lines) for j, f in enumerate(ln.fragments)
             if len(ln.fragments) <= 2 and candidate(f)}
    if len(flags) < 3:
        return lines
    # The column's other lines (its first line may have nothing wide beside it).
    x_col = statistics.median(lines[i].fragments[j].x0 for i, j in flags)
    flags |= {(i, j) for i, ln in enumerate(lines) for j, f in enumerate(ln.fragments)
              if len(ln.fragments) <= 2 and abs(f.x0 - x_col) <= 3 and f.x1 <= 0.36 * width
              and f.top <= 0.4 * height}
    out = []
    for i, ln in enumerate(lines):
        keep = [f for j, f in enumerate(ln.fragments) if (i, j) not in flags]
        removed["margin"] += len(ln.fragments) - len(keep)
        if keep:
            out.append(RawLine(keep))
    return out


def _is_table_row(ln: RawLine) -> bool:
    frags = ln.fragments
    if len(frags) >= 3:
        return True
    return len(frags) == 2 and all(len(f.text) <= 40 for f in frags)


def _split_tables(lines: list[RawLine], removed: Counter) -> tuple[list[RawLine], list[list[list[str]]]]:
    """Runs of table-like rows become tables (rows of cell strings); the rest stays prose.

    A short single-fragment line between two table rows is the continuation of a cell that
    wraps (``PS – EELV –`` / ``Progressistes et apparentés``): it joins the cell above it.
    """
    if all(len(ln.fragments) == 1 for ln in lines):  # no row of cells on the page
        return list(lines), []
    kinds = []
    for ln in lines:
        if _is_table_row(ln):
            kinds.append("T")
        elif len(ln.fragments) == 1 and len(ln.fragments[0].text) <= 40:
            kinds.append("S")
        else:
            kinds.append("O")
    prose: list[RawLine] = []
    tables: list[list[list[str]]] = []
    i = 0
    while i < len(lines):
        if kinds[i] != "T":
            prose.append(lines[i])
            i += 1
            continue
        j = i  # extend over T and S, then trim trailing S
        while j < len(lines) and kinds[j] in "TS":
            j += 1
        while j > i and kinds[j - 1] == "S":
            j -= 1
        run = lines[i:j]
        rows_t = [ln for ln, k in zip(run, kinds[i:j]) if k == "T"]
        multi = sum(1 for ln in rows_t if len(ln.fragments) >= 3)
        # Three two-cell rows (label | value) or two rows of three cells make a table.
        if len(rows_t) >= 3 or (len(rows_t) >= 2 and multi >= 2):
            rows: list[list[str]] = []
            boxes: list[list[Fragment]] = []
            for ln, k in zip(run, kinds[i:j]):
                if k == "T" or not rows:
                    rows.append([f.text for f in ln.fragments])
                    boxes.append(list(ln.fragments))
                    continue
                f = ln.fragments[0]
                col = min(range(len(boxes[-1])), key=lambda c: abs(boxes[-1][c].x0 - f.x0))
                rows[-1][col] = f"{rows[-1][col]} {f.text}"
            tables.append(rows)
            removed["table_rows"] += len(run)
        else:
            prose.extend(run)
        i = j
    return prose, tables


def _reading_order(lines: list[RawLine], width: float) -> list[_Line]:
    """Flatten lines into text lines, reading a two-column stretch column by column.

    Engines that read row by row (pdfminer) put both columns of a bulletin on one line as two
    fragments split near the middle; a run of such lines is read left column first.
    """
    def two_col(ln: RawLine) -> bool:
        f = ln.fragments
        return (len(f) == 2 and width > 0 and f[0].x1 < 0.6 * width and f[1].x0 > 0.4 * width
                and len(f[0].text) > 15 and len(f[1].text) > 15)

    def as_line(f: Fragment | RawLine) -> _Line:
        return _Line(f.text, f.x0, f.top, f.x1, f.bottom)

    strict = [ln for ln in lines if two_col(ln)]
    if len(strict) < 4:
        return [as_line(ln) for ln in lines]
    mid = statistics.median(ln.fragments[1].x0 for ln in strict) - 5

    def columnar(ln: RawLine) -> bool:
        return all(f.x1 <= mid or f.x0 >= mid for f in ln.fragments)

    out: list[_Line] = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and columnar(lines[j]):
            j += 1
        run = lines[i:j]
        if sum(1 for ln in run if two_col(ln)) >= 2:
            frags = [f for ln in run for f in ln.fragments]
            out.extend(as_line(f) for f in frags if f.x1 <= mid)
            out.extend(as_line(f) for f in frags if f.x0 >= mid)
        else:
            out.extend(as_line(ln) for ln in run)
        if j < len(lines):
            out.append(as_line(lines[j]))
        i = j + 1
    return out


_DIGITS = re.compile(r"\d+")
_WHITE = re.compile(r"\s+")
_VOCAB_WORD = re.compile(r"\w+(?:-\w+)*")


@lru_cache(maxsize=1 << 16)  # asked twice per edge line (collected, then checked)
def _noise_key(text: str) -> str:
    return _WHITE.sub(" ", _DIGITS.sub("#", text.lower())).strip()


class _Vocabulary:
    """The lower-cased words (hyphenated ones whole) of a document's lines, built on the first
    question: most documents never ask (see :func:`join_hyphenated`)."""

    def __init__(self, texts: list[str]) -> None:
        self._texts = texts
        self._words: set[str] | None = None

    def __contains__(self, word: object) -> bool:
        if self._words is None:
            # One pass over the joined lines finds the same words as one per line: a word
            # never spans the line break.
            self._words = set(map(str.lower, _VOCAB_WORD.findall("\n".join(self._texts))))
        return word in self._words


# --- hyphenation and paragraphs -----------------------------------------------------------
# Second halves that are words of their own after a hyphen (peut-être, celle-ci, dit-il).
_HYPHEN_KEEP_SECOND = {
    "être", "ci", "là", "même", "mêmes", "il", "ils", "elle", "elles", "on", "je", "tu", "nous",
    "vous", "t-il", "t-elle", "t-on", "dessus", "dessous", "delà", "dedans", "dehors", "bas",
    "haut", "clés", "clé", "faire", "mère", "père", "unis", "ville", "major", "président",
    "présidente", "adjoint", "adjointe", "membre", "membres", "cadre", "type", "types",
}
# First halves that build compounds (arrière-pays, sous-préfecture, non-titulaire).
_HYPHEN_KEEP_FIRST = {
    "arrière", "avant", "après", "contre", "demi", "mi", "non", "semi", "sous", "ex", "vice",
    "grand", "grande", "anti", "co", "auto", "multi", "inter", "extra", "post", "pré", "pro",
    "quasi", "ultra", "belle", "beau", "petit", "petite", "chef", "garde", "porte", "haut",
    "basse", "bas", "centre", "nord", "sud", "est", "ouest", "e", "c'est-à", "au", "ci",
    "celui", "celle", "ceux", "celles", "là", "plus", "moins", "peut", "y", "a", "rendez",
    "vis", "sans", "tête", "libre", "bien", "mal", "social", "socio", "médico", "euro",
}


def join_hyphenated(first: str, second: str, vocabulary: Container[str] | None = None) -> str:
    """Join a line ending with a hyphen to the next line.

    ``numé-`` + ``rique`` -> ``numérique``; a capitalised second half (``Saint-`` +
    ``Étienne``), a known compound half (``peut-`` + ``être``) or a hyphenated form seen
    elsewhere in the document keeps the hyphen.
    """
    head = first[:-1]
    m_head = re.search(r"(\w+)$", head)
    m_tail = re.match(r"(\w+)", second)
    if not m_head or not m_tail:
        return first + second
    a, b = m_head.group(1), m_tail.group(1)
    keep = (
        not b[0].islower()
        or b.lower() in _HYPHEN_KEEP_SECOND
        or a.lower() in _HYPHEN_KEEP_FIRST
        or a.isdigit() or b.isdigit()
        or (vocabulary is not None and f"{a}-{b}".lower() in vocabulary
            and f"{a}{b}".lower() not in vocabulary)
    )
    return first + second if keep else head + second


def _paragraphs(lines: list[_Line], vocabulary: Container[str]) -> list[str]:
    """Rebuild paragraphs from lines using geometry and punctuation."""
    if not lines:
        return []
    heights = sorted(ln.height for ln in lines)
    h_med = heights[len(heights) // 2]
    gaps = sorted(b.top - a.bottom for a, b in zip(lines, lines[1:]) if 0 <= b.top - a.bottom < 3 * h_med)
    # The lower quartile: most gaps are between lines of one paragraph, and with few lines
    # the median would be a paragraph gap.
    gap_med = gaps[len(gaps) // 4] if gaps else 0.3 * h_med
    left = sorted(ln.x0 for ln in lines)[int(0.1 * (len(lines) - 1))]
    has_geometry = any(ln.x1 > 0 for ln in lines)

    edges: dict[int, float] = {}

    def right_edge(ln: _Line) -> float:
        # The right margin of the column this line belongs to (lines starting near it).
        key = round(ln.x0)
        if key not in edges:
            same = sorted(o.x1 for o in lines if abs(o.x0 - ln.x0) <= 3 * h_med)
            edges[key] = max(same) if len(same) < 5 else same[int(0.9 * (len(same) - 1))]
        return edges[key]

    paragraphs: list[str] = []
    current = lines[0].text
    for prev, ln in zip(lines, lines[1:]):
        text = ln.text
        if current.endswith("-") and len(current) > 1 and current[-2].isalpha() and text[:1].isalpha():
            brk = False
        else:
            # A short capitalised line ending with a colon is a label of its own ("Absents :",
            # "Le Président décide :"), whatever precedes it.
            brk = bool(_BULLET_START.match(text)) or (
                len(text) <= 45 and text.endswith(":")
                and (_ends_sentence(prev.text)
                     or text.split(" ", 1)[0] in _LABEL_STARTS)
            )
            if has_geometry and not brk:
                gap = ln.top - prev.bottom
                short_prev = prev.x1 < right_edge(prev) - 3 * h_med
                brk = (
                    gap > gap_med + 0.7 * h_med          # a blank line between blocks
                    or gap < -2 * h_med                  # jumped back up: a new column or block
                    or (short_prev and _ends_sentence(prev.text))
                    or (short_prev and text[:1].isupper() and not prev.text.endswith(","))
                    or (ln.x0 > left + 2 * h_med and prev.x0 <= left + h_med
                        and text[:1].isupper() and _ends_sentence(prev.text))
                )
            elif not brk:
                brk = _ends_sentence(prev.text) and len(prev.text) < 60
        if brk:
            paragraphs.append(current)
            current = text
        elif current.endswith("-") and len(current) > 1 and current[-2].isalpha():
            current = join_hyphenated(current, text, vocabulary)
        else:
            current = f"{current} {text}"
    paragraphs.append(current)
    # Lines are normalised: a paragraph whose characters are all printable and holds no
    # double space has nothing for the whitespace pattern to change.
    return [(p if p.isprintable() and "  " not in p else _WHITE.sub(" ", p)).strip()
            for p in paragraphs if p.strip()]


# --- document level -----------------------------------------------------------------------
def clean_pages(pages: list[RawPage]) -> list[CleanPage]:
    """Clean the raw pages of one document (headers/footers need every page)."""
    staged: list[tuple[RawPage, list[RawLine], Counter]] = []
    for page in pages:
        removed: Counter = Counter()
        lines = _fragment_lines(page, removed)
        if page.number == 1:  # letterhead margin columns sit on the first page only
            lines = _drop_margin_column(lines, page.width, page.height, removed)
        staged.append((page, lines, removed))

    # Running headers/footers, before tables so that a two-part header ("DEPARTEMENT DE
    # LOIRE-ATLANTIQUE …   CM 13 mai 2014 47") never joins a table: edge lines whose
    # digit-blind text recurs at the same height (within 8 pt) on at least half the pages (two
    # pages at least). The height condition keeps in the body a sentence that happens to recur
    # ("Vote favorable à l'unanimité").
    n_text_pages = sum(1 for _, lines, _ in staged if lines)
    threshold = max(2, (n_text_pages + 1) // 2)
    positions: dict[str, list[tuple[int, float]]] = {}
    edge_sets = []
    for k, (page, lines, _) in enumerate(staged):
        edges = _edge_lines(lines, page.height)
        edge_sets.append({id(ln) for ln in edges})
        for ln in edges:
            positions.setdefault(_noise_key(ln.text), []).append((k, ln.top))

    # Memoised by (text, height): a running header is the same line at the same height on
    # every page, and counting its pages once per page made long documents quadratic.
    seen: dict[tuple[str, float], bool] = {}

    def repeated(ln: RawLine) -> bool:
        if n_text_pages < 2:
            return False
        key = _noise_key(ln.text)
        if len(key) < 3:
            return False
        top = ln.top
        answer = seen.get((key, top))
        if answer is None:
            pages_near = {k for k, t in positions.get(key, ()) if abs(t - top) <= 8}
            answer = seen[(key, top)] = len(pages_near) >= threshold
        return answer

    # A line repeated on every page is a running header only beside a body: when nothing else
    # is left anywhere (a document whose only line recurs on each page), it is the text.
    drop_repeated = any(
        not (id(ln) in edges and (PAGE_NUMBER_RE.match(ln.text) or repeated(ln)))
        for (_, lines, _), edges in zip(staged, edge_sets) for ln in lines
    )
    laid_out = []
    for (page, lines, removed), edges in zip(staged, edge_sets):
        body = []
        for ln in lines:
            if id(ln) in edges and (PAGE_NUMBER_RE.match(ln.text) or (drop_repeated and repeated(ln))):
                removed["header_footer"] += 1
                continue
            body.append(ln)
        prose, tables = _split_tables(body, removed)
        laid_out.append((page, _reading_order(prose, page.width), [*page.tables, *tables], removed))

    vocabulary = _Vocabulary([ln.text for _, flat, _, _ in laid_out for ln in flat])
    return [
        CleanPage(
            number=page.number,
            paragraphs=_paragraphs(flat, vocabulary),
            tables=tables,
            method=page.method,
            ocr_confidence=page.ocr_confidence,
            removed=removed,
        )
        for page, flat, tables, removed in laid_out
    ]


def _edge_lines(lines: list, height: float) -> list:
    """Lines that may be running headers/footers: the first and last three of the page, and
    any line in the top or bottom 8% of it."""
    picked = {id(ln): ln for ln in lines[:3] + lines[-3:]}
    if height > 0:
        for ln in lines:
            if ln.x1 > 0 and (ln.bottom < 0.08 * height or ln.top > 0.92 * height):
                picked[id(ln)] = ln
    return list(picked.values())


def clean_text_block(text: str) -> list[str]:
    """Paragraphs of plain text without geometry (TXT files, HTML main text)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [repair_doubled_glyphs(normalize_text(x)) for x in block.splitlines()]
        lines = [x for x in lines if x]
        if not lines:
            continue
        fake = [_Line(x, 0.0, 0.0, 0.0, 0.0) for x in lines]
        paragraphs.extend(_paragraphs(fake, set()))
    return paragraphs
