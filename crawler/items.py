"""Items the spiders hand to :class:`crawler.pipelines.StorePipeline`.

Stage: crawl. Two records (DESIGN.md §3):

- :class:`DocumentItem`: bytes worth keeping plus their provenance → one ``documents`` row
  (by content hash), one ``sources`` row, one ``fetches`` row per URL that led to it;
- :class:`SourceItem`: one more provenance row for a document already stored in this crawl
  (a DELIB_URL the site spider had already downloaded: the SCDL row is attached to it
  without downloading it again) → one ``sources`` row;
- :class:`FetchRecord`: the outcome of a URL that stored nothing (a page only followed, a 404,
  a file too large, a 304 ...) → one ``fetches`` row per URL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Response headers kept with each source (provenance).
KEPT_HEADERS = (
    "Content-Type", "Content-Length", "ETag", "Last-Modified", "Content-Disposition",
    "Content-Language", "Date",
)


@dataclass
class FetchRecord:
    """Outcome of one URL. ``status`` is a slug of ``nlp.schema.FETCH_STATUSES``;
    ``aliases`` are other URLs with the same outcome (the start of a redirect chain)."""

    metropole: str
    url: str
    status: str
    kind: str  # page | document | dataset
    http_status: int | None = None
    error: str | None = None
    referer: str | None = None
    depth: int | None = None
    nbytes: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    document_id: str | None = None
    aliases: list[str] = field(default_factory=list)


@dataclass
class DocumentItem:
    """Bytes to store with their provenance.

    ``url`` is the URL that served the bytes (after redirects); ``aliases`` the URLs that led
    there; ``headers`` the kept response headers plus ``charset`` for text;
    ``metadata``: depth, relevance, redirect chain, SCDL fields for deliberations.
    """

    body: bytes = field(repr=False)  # never in logs
    media_type: str
    ext: str
    metropole: str
    url: str
    kind: str
    http_status: int
    fetched_at: str
    referer: str | None = None
    anchor_text: str | None = None
    page_title: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    origin: str = "crawl"  # crawl | scdl
    depth: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    attribution: str | None = None  # on a shared domain: metropole | undecided | kept


@dataclass
class SourceItem:
    """A ``sources`` row for a document the store already holds."""

    document_id: str
    metropole: str
    url: str
    http_status: int | None
    fetched_at: str
    referer: str | None = None
    anchor_text: str | None = None
    page_title: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    origin: str = "crawl"
    metadata: dict[str, Any] = field(default_factory=dict)
    attribution: str | None = None
