"""Non-PDF documents: HTML (trafilatura), DOCX and ODT (their XML), Markdown (markdown-it-py),
plain text.

Stage: extract. Input: a file. Output: ``(paragraphs, tables, info)`` where ``info`` holds
``title`` and ``html_date`` when the format carries them. DOCX and ODT are zip files of XML,
read with the standard library and lxml: no extra dependency.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from lxml import etree

from nlp.errors import BarometreError
from nlp.extract.clean import clean_text_block, normalize_text, repair_doubled_glyphs
from nlp.extract.engines import ExtractFailure
from nlp.io import bom_encoding
from nlp.media import MARKDOWN, MARKDOWN_EXTENSIONS

MAX_XML_BYTES = 200 * 1024 * 1024  # a zip bomb must not exhaust the worker before its limit


def decode_text(data: bytes) -> str:
    """Bytes to text: a byte-order mark says the encoding (UTF-8, UTF-16, UTF-32); else UTF-8,
    else Windows-1252, the usual French legacy."""
    encoding = bom_encoding(data)
    if encoding:
        return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# A tag with more attributes than this keeps only its first ones: libxml2 checks attributes
# for duplicates in quadratic time (100,000 attributes: minutes), and no text lives there.
MAX_HTML_ATTRIBUTES = 256
_LONG_TAG = re.compile(r"<([a-zA-Z][^\s<>/]*)([^<>]{8000,})>")
_ATTRIBUTE = re.compile(r"""[^\s=/>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?""")
# Elements whose content is not text a reader sees (the fallback reader skips them).
_HIDDEN = {"script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object"}
_BLOCKS = {
    "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "tr", "td", "th", "section", "article", "header", "footer", "nav", "aside", "main",
    "blockquote", "pre", "form", "fieldset", "figure", "figcaption", "hr", "address", "body",
}


def _cap_attributes(html: str) -> str:
    """Keep the first :data:`MAX_HTML_ATTRIBUTES` attributes of every (very long) tag."""
    def shorten(m: re.Match) -> str:
        body = m.group(2)
        if body.count("=") <= MAX_HTML_ATTRIBUTES:
            return m.group(0)
        kept = []
        for a in _ATTRIBUTE.finditer(body):
            kept.append(a.group(0))
            if len(kept) >= MAX_HTML_ATTRIBUTES:
                break
        return f"<{m.group(1)} {' '.join(kept)}>"

    return _LONG_TAG.sub(shorten, html)


def _parse_html(html: str):
    """An lxml tree of ``html`` (trafilatura's parser options, plus ``huge_tree`` so that a
    page nested deeper than 256 levels keeps its text); the parser's errors come along."""
    from lxml.html import HTMLParser, document_fromstring

    parser = HTMLParser(collect_ids=False, default_doctype=False, encoding="utf-8",
                        remove_comments=True, remove_pis=True, huge_tree=True)
    try:
        tree = document_fromstring(html.encode("utf-8", errors="replace"), parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        tree = None
    too_deep = any("depth" in str(e.message).lower() for e in parser.error_log)
    return tree, too_deep


def _fallback_paragraphs(html: str) -> tuple[list[str], str]:
    """Visible text of a page by a streaming tokenizer (no tree, so no depth limit): one
    paragraph per block element, and the title. For pages the tree-based reader cannot read."""
    from html.parser import HTMLParser as Tokenizer

    paragraphs: list[str] = []
    current: list[str] = []
    hidden = 0

    def flush() -> None:
        text = repair_doubled_glyphs(normalize_text(" ".join(current)))
        if text:
            paragraphs.append(text)
        current.clear()

    title: list[str] = []
    in_title = False

    class Reader(Tokenizer):
        def handle_starttag(self, tag: str, attrs: Any) -> None:
            nonlocal hidden, in_title
            in_title = tag == "title" or in_title
            if tag in _HIDDEN:
                hidden += 1
            elif tag in _BLOCKS:
                flush()

        def handle_endtag(self, tag: str) -> None:
            nonlocal hidden, in_title
            in_title = in_title and tag != "title"
            if tag in _HIDDEN:
                hidden = max(0, hidden - 1)
            elif tag in _BLOCKS:
                flush()

        def handle_data(self, data: str) -> None:
            if in_title:
                title.append(data)
            elif not hidden:
                current.append(data)

    reader = Reader(convert_charrefs=True)
    reader.feed(html)
    reader.close()
    flush()
    return paragraphs, normalize_text(" ".join(title))[:500]


def read_html(path: Path, url: str | None = None) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Main text of a web page through trafilatura, with its title and date.

    A page nested too deeply for a tree (libxml2 stops past 256 levels, 2,048 with
    ``huge_tree``), or too deeply for trafilatura's recursion, falls back to its visible text
    read by a streaming tokenizer, so its text is kept (``info["reader"]`` says ``fallback``)."""
    import trafilatura

    raw = path.read_bytes()
    if not raw.strip():
        raise ExtractFailure("empty", "empty HTML file")
    html = _cap_attributes(decode_text(raw))
    tree, too_deep = _parse_html(html)
    info: dict[str, Any] = {}
    doc = None
    unreadable = tree is None or too_deep
    if not unreadable:
        try:
            doc = trafilatura.bare_extraction(
                tree, url=url, with_metadata=True, include_tables=True, include_comments=False,
                favor_recall=True,
            )
        except RecursionError:  # deep enough to exhaust trafilatura's recursion
            unreadable = True
    d = {} if doc is None else (doc.as_dict() if hasattr(doc, "as_dict") else dict(doc))
    if d.get("title"):
        info["title"] = d["title"]
    if d.get("date"):
        info["html_date"] = d["date"]
    paragraphs: list[str] = []
    tables: list[list[list[str]]] = []
    rows: list[list[str]] = []
    for line in (d.get("text") or "").splitlines():
        line = line.strip()
        # trafilatura writes table rows as "| a | b |" lines.
        if line.startswith("|") and line.endswith("|"):
            cells = [normalize_text(c) for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        if rows:
            tables.append(rows)
            rows = []
        text = repair_doubled_glyphs(normalize_text(line))
        if text:
            paragraphs.append(text)
    if rows:
        tables.append(rows)
    if unreadable:
        # Only there: a page trafilatura read and found no main text in stays empty (a menu
        # page's links are not the page's text).
        paragraphs, title = _fallback_paragraphs(html)
        info["reader"] = "fallback"
        if title:
            info["title"] = title
    return paragraphs, tables, info


def _read_zip_member(path: Path, name: str, kind: str) -> bytes | None:
    """Bytes of member ``name`` of the zip container of a ``kind`` document (``docx``/``odt``);
    None when absent. Raises ``<kind>-malformed`` for a broken container, ``memory`` for a
    member that would inflate past :data:`MAX_XML_BYTES`."""
    try:
        with zipfile.ZipFile(path) as z:
            try:
                member = z.getinfo(name)
            except KeyError:
                return None
            if member.file_size > MAX_XML_BYTES:
                raise ExtractFailure("memory", f"{name} inflates to {member.file_size} bytes")
            with z.open(member) as f:
                data = f.read(MAX_XML_BYTES + 1)  # the size in the header may lie
            if len(data) > MAX_XML_BYTES:
                raise ExtractFailure("memory", f"{name} inflates to more than {MAX_XML_BYTES} bytes")
            return data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError,
            ValueError, RuntimeError) as exc:
        # A truncated or corrupt container, an unknown compression method, a wrong CRC, an
        # encrypted member.
        raise ExtractFailure(f"{kind}-malformed", f"not a readable {kind.upper()} container: {exc}") from exc


_XML_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, huge_tree=True, load_dtd=False)


def _parse_xml(data: bytes, name: str, kind: str):
    """Parse a member of an office document; ``<kind>-malformed`` when it is not XML."""
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(**_XML_PARSER_OPTIONS))
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ExtractFailure(f"{kind}-malformed", f"{name} is not well-formed XML: {str(exc)[:200]}") from exc
    if root is None:
        raise ExtractFailure(f"{kind}-malformed", f"{name} is empty")
    return root


def _title(data: bytes | None, path: str) -> str | None:
    """The dc:title of a metadata member (docProps/core.xml, meta.xml), if readable."""
    if not data:
        return None
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(**_XML_PARSER_OPTIONS))
    except (etree.XMLSyntaxError, ValueError):
        return None  # the metadata is optional: a broken one costs only the title
    t = root.find(path) if root is not None else None
    return t.text.strip() if t is not None and isinstance(t.text, str) and t.text.strip() else None


W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def read_docx(path: Path) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Paragraphs and tables of a Word document (word/document.xml)."""
    data = _read_zip_member(path, "word/document.xml", "docx")
    if data is None:
        raise ExtractFailure("docx-malformed", "no word/document.xml in the DOCX container")
    root = _parse_xml(data, "word/document.xml", "docx")

    def text_of(el) -> str:
        parts = []
        for node in el.iter(f"{W}t", f"{W}tab", f"{W}br"):
            parts.append((node.text or "") if node.tag == f"{W}t" else " ")
        return normalize_text("".join(parts))

    paragraphs, tables = [], []
    body = root.find(f"{W}body")
    for el in (body if body is not None else []):
        if el.tag == f"{W}p":
            if t := text_of(el):
                paragraphs.append(t)
        elif el.tag == f"{W}tbl":
            rows = [[text_of(tc) for tc in tr.iter(f"{W}tc")] for tr in el.iter(f"{W}tr")]
            if rows:
                tables.append(rows)
    info: dict[str, Any] = {}
    title = _title(_read_zip_member(path, "docProps/core.xml", "docx"), "{http://purl.org/dc/elements/1.1/}title")
    if title:
        info["title"] = title
    return paragraphs, tables, info


TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE_NS = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"


def read_odt(path: Path) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Paragraphs and tables of an OpenDocument text (content.xml)."""
    data = _read_zip_member(path, "content.xml", "odt")
    if data is None:
        raise ExtractFailure("odt-malformed", "no content.xml in the ODT container")
    root = _parse_xml(data, "content.xml", "odt")

    def text_of(el) -> str:
        # text:s / text:tab / text:line-break carry no text but stand for white space.
        for node in el.iter(f"{{{TEXT_NS}}}s", f"{{{TEXT_NS}}}tab", f"{{{TEXT_NS}}}line-break"):
            node.text = " "
        return normalize_text("".join(t for t in el.itertext() if isinstance(t, str)))

    paragraphs, tables = [], []
    for el in root.iter(f"{{{TEXT_NS}}}p", f"{{{TEXT_NS}}}h", f"{{{TABLE_NS}}}table"):
        if el.tag == f"{{{TABLE_NS}}}table":
            rows = [[text_of(c) for c in r.iter(f"{{{TABLE_NS}}}table-cell")]
                    for r in el.iter(f"{{{TABLE_NS}}}table-row")]
            tables.append(rows)
            continue
        # Paragraphs inside table cells belong to the table.
        if any(a.tag == f"{{{TABLE_NS}}}table-cell" for a in el.iterancestors()):
            continue
        if t := text_of(el):
            paragraphs.append(t)
    info: dict[str, Any] = {}
    title = _title(_read_zip_member(path, "meta.xml", "odt"), ".//{http://purl.org/dc/elements/1.1/}title")
    if title:
        info["title"] = title
    return paragraphs, tables, info


def read_txt(path: Path) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Paragraphs of a plain-text file (blank lines separate paragraphs)."""
    text = decode_text(path.read_bytes())
    return clean_text_block(text), [], {}


_HTML_HINT = re.compile(r"<!doctype html|<html[\s>]|<head[\s>]|<body[\s>]|<p[\s>]", re.I)
_HTML_HINT_BYTES = re.compile(_HTML_HINT.pattern.encode(), re.I)
_OFFICE_KINDS = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.oasis.opendocument.text": "odt",
}


# YAML front matter of a static site's page (Jekyll, Hugo): "---" lines around it, at the top.
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*$\r?\n?", re.S | re.M)
MAX_FRONT_MATTER_CHARS = 64 * 1024
# Inline tokens whose text a reader sees (link text is the children between link_open/close).
_INLINE_TEXT = {"text", "code_inline"}
_INLINE_BREAKS = {"softbreak", "hardbreak"}


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``(fields, body)``: the page's YAML front matter (empty when absent or unreadable: the
    text is still read) and the Markdown after it."""
    m = _FRONT_MATTER.match(text[: MAX_FRONT_MATTER_CHARS + 8])
    if not m:
        return {}, text
    from nlp.yamlio import load_yaml

    try:
        fields = load_yaml(m.group(1).encode("utf-8"), name="front matter")
    except BarometreError:
        fields = None
    return (fields if isinstance(fields, dict) else {}), text[m.end():]


def _inline_text(children: list[Any]) -> str:
    """The text a reader sees in an inline run: words, code and link texts; images and raw
    HTML left out."""
    out: list[str] = []
    for tok in children:
        if tok.type in _INLINE_TEXT:
            out.append(tok.content)
        elif tok.type in _INLINE_BREAKS:
            out.append(" ")
    return "".join(out)


def read_markdown(path: Path) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Paragraphs of a Markdown file (a static site's pages, minutes kept on a forge).

    CommonMark with tables, parsed by markdown-it-py: each heading, paragraph and list item is
    a paragraph, its inline markup reduced to its text (``**gras**`` → ``gras``, ``[texte](url)``
    → ``texte``); tables are tables; code blocks are not prose and are left out; raw HTML
    blocks are read as HTML's visible text. The YAML front matter gives ``title`` and
    ``html_date`` (the page's date field) and is not text."""
    from markdown_it import MarkdownIt

    text = decode_text(path.read_bytes())
    fields, body = _front_matter(text)
    info: dict[str, Any] = {}
    if isinstance(fields.get("title"), str) and fields["title"].strip():
        info["title"] = normalize_text(fields["title"])[:500]
    if fields.get("date"):
        info["html_date"] = str(fields["date"])
    # maxNesting bounds the parser's recursion on hostile nesting (its default is 20 too).
    tokens = MarkdownIt("commonmark", {"maxNesting": 20}).enable("table").parse(body)
    paragraphs, tables, code = _markdown_blocks(tokens)
    # Past maxNesting the parser drops what it does not descend into: a text that lost more
    # than half of its letters (code aside) is read as plain text instead, so nothing is lost.
    kept = _letters(" ".join(paragraphs)) + sum(_letters(" ".join(r)) for t in tables for r in t)
    if kept < (_letters(body) - code) / 2:
        paragraphs, tables = clean_text_block(body), []
        info["reader"] = "fallback"
    return paragraphs, tables, info


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def _markdown_blocks(tokens: list[Any]) -> tuple[list[str], list[list[list[str]]], int]:
    """Paragraphs, tables and the letter count of code blocks of markdown-it's block tokens."""
    paragraphs: list[str] = []
    tables: list[list[list[str]]] = []
    rows: list[list[str]] | None = None
    row: list[str] | None = None
    code = 0
    for tok in tokens:
        if tok.type == "table_open":
            rows = []
        elif tok.type == "table_close":
            if rows:
                tables.append(rows)
            rows = None
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close":
            if rows is not None and row is not None and any(row):
                rows.append(row)
            row = None
        elif tok.type == "inline":
            content = _inline_text(tok.children or [])
            if row is not None:
                row.append(normalize_text(content))
            else:
                paragraphs.extend(clean_text_block(content))
        elif tok.type == "html_block":
            paragraphs.extend(_fallback_paragraphs(tok.content)[0])
        elif tok.type in ("fence", "code_block"):
            code += _letters(tok.content)
    return paragraphs, tables, code


def sniff(path: Path, media_type: str | None = None) -> str:
    """``pdf``, ``html``, ``docx``, ``odt``, ``md``, ``txt``, ``empty`` or ``unknown`` from the first
    bytes (the extension, or the declared ``media_type``, decides only between text formats
    and for a zip container too broken to list)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "empty"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    suffix = path.suffix.lower()
    declared = _OFFICE_KINDS.get(str(media_type or "").split(";")[0].strip().lower())
    if head.startswith(b"PK\x03\x04"):
        if b"mimetypeapplication/vnd.oasis.opendocument.text" in head[:200]:
            return "odt"
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            # A truncated container: its reader says so when the name or type announces one.
            return declared or {".docx": "docx", ".odt": "odt"}.get(suffix, "unknown")
        if "word/document.xml" in names:
            return "docx"
        if "content.xml" in names:
            return "odt"
        return declared or {".docx": "docx", ".odt": "odt"}.get(suffix, "unknown")
    # Plain text or Markdown: the name or the declared type says which (their bytes do not).
    plain = "md" if (suffix.lstrip(".") in MARKDOWN_EXTENSIONS
                     or str(media_type or "").split(";")[0].strip().lower() == MARKDOWN) else "txt"
    encoding = bom_encoding(head)
    if encoding:  # UTF-16/32 text has NUL bytes: decode before looking
        text = head.decode(encoding, errors="replace")
        return "html" if plain != "md" and _HTML_HINT.search(text) else plain
    if plain != "md" and _HTML_HINT_BYTES.search(head):  # Markdown may hold raw HTML
        return "html"
    if suffix in (".pdf",):
        return "pdf"  # a PDF without header: the PDF reader will say it is malformed
    if b"\x00" in head:
        return "unknown"
    return plain
