"""Non-PDF documents: HTML (trafilatura), DOCX and ODT (their XML), plain text.

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

from nlp.extract.clean import clean_text_block, normalize_text, repair_doubled_glyphs
from nlp.extract.engines import ExtractFailure

MAX_XML_BYTES = 200 * 1024 * 1024  # a zip bomb must not exhaust the worker before its limit


def decode_text(data: bytes) -> str:
    """Bytes to text: UTF-8 (with or without BOM), else Windows-1252, the usual French legacy."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_html(path: Path, url: str | None = None) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Main text of a web page through trafilatura, with its title and date."""
    import trafilatura

    raw = path.read_bytes()
    if not raw.strip():
        raise ExtractFailure("empty", "empty HTML file")
    html = decode_text(raw)
    doc = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_tables=True, include_comments=False,
        favor_recall=True,
    )
    info: dict[str, Any] = {}
    if doc is None:
        return [], [], info
    d = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
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
    return paragraphs, tables, info


def _read_zip_member(path: Path, name: str) -> bytes | None:
    try:
        with zipfile.ZipFile(path) as z:
            try:
                member = z.getinfo(name)
            except KeyError:
                return None
            if member.file_size > MAX_XML_BYTES:
                raise ExtractFailure("memory", f"{name} inflates to {member.file_size} bytes")
            return z.read(name)
    except zipfile.BadZipFile as exc:
        raise ExtractFailure("error", f"not a valid zip container: {exc}") from exc


W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def read_docx(path: Path) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Paragraphs and tables of a Word document (word/document.xml)."""
    data = _read_zip_member(path, "word/document.xml")
    if data is None:
        raise ExtractFailure("error", "no word/document.xml in the DOCX container")
    root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, huge_tree=True))

    def text_of(el) -> str:
        parts = []
        for node in el.iter(f"{W}t", f"{W}tab", f"{W}br"):
            parts.append(node.text or "" if node.tag == f"{W}t" else " ")
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
    core = _read_zip_member(path, "docProps/core.xml")
    if core:
        t = etree.fromstring(core).find("{http://purl.org/dc/elements/1.1/}title")
        if t is not None and t.text:
            info["title"] = t.text.strip()
    return paragraphs, tables, info


TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE_NS = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"


def read_odt(path: Path) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Paragraphs and tables of an OpenDocument text (content.xml)."""
    data = _read_zip_member(path, "content.xml")
    if data is None:
        raise ExtractFailure("error", "no content.xml in the ODT container")
    root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, huge_tree=True))

    def text_of(el) -> str:
        # text:s / text:tab / text:line-break carry no text but stand for white space.
        for node in el.iter(f"{{{TEXT_NS}}}s", f"{{{TEXT_NS}}}tab", f"{{{TEXT_NS}}}line-break"):
            node.text = " "
        return normalize_text("".join(el.itertext()))

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
    meta = _read_zip_member(path, "meta.xml")
    if meta:
        t = etree.fromstring(meta).find(".//{http://purl.org/dc/elements/1.1/}title")
        if t is not None and t.text:
            info["title"] = t.text.strip()
    return paragraphs, tables, info


def read_txt(path: Path) -> tuple[list[str], list[list[list[str]]], dict[str, Any]]:
    """Paragraphs of a plain-text file (blank lines separate paragraphs)."""
    text = decode_text(path.read_bytes())
    return clean_text_block(text), [], {}


def sniff(path: Path) -> str:
    """``pdf``, ``html``, ``docx``, ``odt``, ``txt`` or ``unknown`` from the first bytes (the
    extension decides only between text formats)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "empty"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if b"mimetypeapplication/vnd.oasis.opendocument.text" in head[:200]:
            return "odt"
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except zipfile.BadZipFile:
            return "unknown"
        if "word/document.xml" in names:
            return "docx"
        if "content.xml" in names:
            return "odt"
        return "unknown"
    if re.search(rb"<!doctype html|<html[\s>]|<head[\s>]|<body[\s>]|<p[\s>]", head, re.I):
        return "html"
    suffix = path.suffix.lower()
    if suffix in (".pdf",):
        return "pdf"  # a PDF without header: the PDF reader will say it is malformed
    if b"\x00" in head:
        return "unknown"
    return "txt"
