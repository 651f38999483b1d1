"""Media type of a fetched resource, from its headers *and* its bytes.

Used by the crawl and import stages. Input: the response body, its ``Content-Type`` and ``Content-Disposition``
headers and its URL. Output: ``(media_type, charset, ext)``.

Why the bytes: servers lie. ``download.php?id=12`` served as ``application/octet-stream`` is a
PDF; a CMS may serve a Word file as ``application/force-download``; an HTML error page may
come back as ``application/pdf``. The order of trust is: magic bytes, then a specific
``Content-Type``, then the file name of ``Content-Disposition``, then the URL's extension.
"""
from __future__ import annotations

import re
import zipfile
from io import BytesIO
from urllib.parse import unquote, urlsplit

PDF = "application/pdf"
HTML = "text/html"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
DOC = "application/msword"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ZIP = "application/zip"
OCTET = "application/octet-stream"
MARKDOWN = "text/markdown"

EXT_BY_TYPE = {
    PDF: "pdf", HTML: "html", "application/xhtml+xml": "html", DOCX: "docx", ODT: "odt",
    DOC: "doc", XLSX: "xlsx", ODS: "ods", ZIP: "zip", "text/csv": "csv",
    "application/json": "json", "text/plain": "txt", "application/xml": "xml",
    "text/xml": "xml", "application/rtf": "rtf", MARKDOWN: "md",
}
TYPE_BY_EXT = {v: k for k, v in EXT_BY_TYPE.items()}
TYPE_BY_EXT.update({"htm": HTML, "html": HTML, "xhtml": HTML, "markdown": MARKDOWN})
MARKDOWN_EXTENSIONS = frozenset(ext for ext, media in TYPE_BY_EXT.items() if media == MARKDOWN)
# Types the corpus keeps as documents (the extract stage can read them).
DOCUMENT_TYPES = frozenset({PDF, DOCX, ODT, DOC, "application/rtf", "text/plain", MARKDOWN})
# Text types whose charset the headers or the bytes may declare.
TEXT_TYPES = frozenset({HTML, "application/xhtml+xml", "text/plain", "text/csv", MARKDOWN})
# Header values that say nothing about the content.
GENERIC_TYPES = frozenset({
    "", OCTET, "application/force-download", "application/download", "binary/octet-stream",
    "application/x-download", "application/unknown", "application/x-msdownload",
})
DOCUMENT_EXTENSIONS = frozenset({"pdf", "doc", "docx", "odt", "rtf"})

_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta ")
_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_META_CHARSET_RE = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_FILENAME_RE = re.compile(r"filename\*?\s*=\s*(?:UTF-8'')?[\"']?([^\"';]+)", re.IGNORECASE)


def _ext_of(name: str) -> str:
    name = name.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def filename_from_disposition(value: str) -> str:
    """File name in a ``Content-Disposition`` header value ('' when none)."""
    m = _FILENAME_RE.search(value or "")
    return unquote(m.group(1).strip()) if m else ""


def url_extension(url: str) -> str:
    """Lower-case extension of the URL path ('' when none)."""
    try:
        return _ext_of(unquote(urlsplit(url).path))
    except ValueError:
        return ""


def sniff_bytes(body: bytes) -> str | None:
    """Media type recognised from the first bytes, or None."""
    head = body[:2048]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return DOC
    if head.startswith(b"{\\rtf"):
        return "application/rtf"
    if head.startswith(b"PK\x03\x04"):
        # An OpenDocument file starts with an uncompressed `mimetype` member.
        if head[30:38] == b"mimetype":
            declared = head[38:120].split(b"PK", 1)[0].decode("ascii", "replace").strip()
            if declared in (ODT, ODS):
                return declared
        try:
            names = set(zipfile.ZipFile(BytesIO(body)).namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return ZIP
        if "word/document.xml" in names:
            return DOCX
        if "xl/workbook.xml" in names:
            return XLSX
        return ZIP
    low = stripped[:1024].lower()
    if any(marker in low for marker in _HTML_MARKERS):
        return HTML
    return None


def charset_of(content_type: str, body: bytes = b"") -> str | None:
    """Declared charset: from the header first, else from an HTML ``<meta charset>``."""
    m = _CHARSET_RE.search(content_type or "")
    if m:
        return m.group(1).lower()
    m = _META_CHARSET_RE.search(body[:4096])
    return m.group(1).decode("ascii").lower() if m else None


def detect_media_type(
    body: bytes, content_type: str = "", content_disposition: str = "", url: str = ""
) -> tuple[str, str | None, str]:
    """``(media_type, charset, ext)`` of a response.

    Input: body bytes, raw ``Content-Type`` and ``Content-Disposition`` values, URL.
    """
    declared = (content_type or "").split(";")[0].strip().lower()
    sniffed = sniff_bytes(body)
    if sniffed and sniffed != ZIP:
        media = sniffed
    elif declared and declared not in GENERIC_TYPES and not (sniffed == ZIP and declared == HTML):
        media = declared
    else:
        media = ""
        for ext in (_ext_of(filename_from_disposition(content_disposition)), url_extension(url)):
            if ext in TYPE_BY_EXT:
                media = TYPE_BY_EXT[ext]
                break
        if not media:
            media = sniffed or declared or OCTET
    if media == "text/plain" and url_extension(url) in MARKDOWN_EXTENSIONS:
        media = MARKDOWN  # a forge's raw view serves README.md as text/plain
    charset = charset_of(content_type, body) if media in TEXT_TYPES else None
    ext = EXT_BY_TYPE.get(media) or _ext_of(filename_from_disposition(content_disposition)) or "bin"
    return media, charset, ext


def is_html(media_type: str) -> bool:
    return media_type in (HTML, "application/xhtml+xml")
