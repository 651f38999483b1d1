"""Media-type detection shared by the crawler and the importer.

A URL or a file name is weak evidence (``download.php?id=12`` is often a PDF), so the bytes
come first, then the declared type (``Content-Type`` / ``Content-Disposition``), then the name.

Input: the first bytes of a document, optionally its declared type and its name/URL.
Output: a media type string from :data:`KNOWN` (or ``application/octet-stream``).
"""
from __future__ import annotations

import re
import zipfile
from io import BytesIO
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

PDF = "application/pdf"
HTML = "text/html"
CSV = "text/csv"
JSON = "application/json"
TEXT = "text/plain"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
XML = "application/xml"
OCTET = "application/octet-stream"

KNOWN = (PDF, HTML, CSV, JSON, TEXT, DOCX, ODT, XML)
DOCUMENT_TYPES = (PDF, HTML, DOCX, ODT, TEXT)  # what the extract stage turns into text

BY_EXTENSION = {
    ".pdf": PDF, ".html": HTML, ".htm": HTML, ".xhtml": HTML, ".csv": CSV, ".json": JSON,
    ".txt": TEXT, ".docx": DOCX, ".odt": ODT, ".xml": XML,
}
EXTENSION = {PDF: "pdf", HTML: "html", CSV: "csv", JSON: "json", TEXT: "txt", DOCX: "docx",
             ODT: "odt", XML: "xml", OCTET: "bin"}

_HTML_MARKERS = re.compile(rb"<!doctype html|<html[\s>]|<head[\s>]|<body[\s>]|<title[\s>]", re.I)


def sniff_bytes(head: bytes) -> str | None:
    """Media type recognised from the first bytes, or None when they say nothing certain."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return PDF
    if stripped.startswith(b"PK\x03\x04"):
        return _sniff_zip(head)
    lowered = stripped[:2048]
    if _HTML_MARKERS.search(lowered):
        return HTML
    if lowered.startswith(b"<?xml"):
        return HTML if b"<html" in lowered.lower() else XML
    if lowered[:1] in (b"{", b"["):
        return JSON
    return None


def _sniff_zip(head: bytes) -> str | None:
    # OOXML and ODF are zip files; ODF stores its mimetype uncompressed as the first member.
    if b"mimetypeapplication/vnd.oasis.opendocument.text" in head[:200]:
        return ODT
    try:
        names = zipfile.ZipFile(BytesIO(head)).namelist()
    except zipfile.BadZipFile:
        names = []
    if any(n.startswith("word/") for n in names) or b"word/" in head[:4096]:
        return DOCX
    return None


def from_headers(content_type: str | None, content_disposition: str | None = None) -> str | None:
    """Media type declared by HTTP headers (the disposition's file name counts too)."""
    if content_disposition:
        m = re.search(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)", content_disposition, re.I)
        if m:
            by_name = from_name(unquote(m.group(1)))
            if by_name:
                return by_name
    if content_type:
        base = content_type.split(";")[0].strip().lower()
        if base in ("application/xhtml+xml",):
            return HTML
        if base in KNOWN:
            return base
        if base in ("application/x-pdf", "application/acrobat"):
            return PDF
    return None


def from_name(name: str) -> str | None:
    """Media type guessed from a file name or a URL path."""
    path = urlsplit(name).path if "://" in name else name
    return BY_EXTENSION.get(PurePosixPath(path.lower()).suffix)


def detect(head: bytes, content_type: str | None = None, content_disposition: str | None = None,
           name: str | None = None) -> str:
    """Best media type for a document: sniffed bytes, then headers, then name."""
    sniffed = sniff_bytes(head)
    if sniffed:
        return sniffed
    declared = from_headers(content_type, content_disposition)
    if declared and declared not in (PDF, DOCX, ODT):
        # A declared binary type whose magic bytes are absent is not trusted (an HTML error
        # page served as application/pdf); text types cannot be sniffed reliably, so keep them.
        return declared
    guessed = from_name(name) if name else None
    if guessed and guessed not in (PDF, DOCX, ODT):
        return guessed
    if head and _looks_like_text(head):
        return TEXT
    return OCTET


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.I)
    return m.group(1).lower() if m else None


def _looks_like_text(head: bytes) -> bool:
    sample = head[:4096]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return all(b >= 0x20 or b in (9, 10, 13) for b in sample[:512])
