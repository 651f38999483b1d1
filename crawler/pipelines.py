"""Item pipeline: write crawl results to the corpus store.

Stage: crawl. Input: :class:`crawler.items.DocumentItem`, :class:`crawler.items.SourceItem`
and :class:`crawler.items.FetchRecord` from the spiders. Output: ``documents`` / ``sources``
/ ``fetches`` rows and content-addressed files under ``corpus/files``, through the typed API
of :class:`nlp.store.CorpusStore` (Scrapy's FilesPipeline is not used: it names files by URL
hash and refuses redirects). The store is the crawl's (:class:`crawler.state.CrawlState`),
opened and closed by :class:`crawler.state.CrawlStateExtension`: this is the only writer.

A document, its source and the fetch rows of every URL that led to it are written in one
transaction, after the file is in place: once a URL's fetch row says ``ok``, its document is
stored. That is what lets ``--resume`` skip it (crawler.middlewares.CrawlGateMiddleware).
"""
from __future__ import annotations

import logging
from typing import Any

from crawler.items import DocumentItem, FetchRecord, SourceItem
from crawler.state import CrawlState
from nlp.store import CorpusStore

log = logging.getLogger(__name__)


class StorePipeline:
    """Writes items to the crawl's :class:`nlp.store.CorpusStore`."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self._store: CorpusStore | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "StorePipeline":
        return cls(crawler)

    @property
    def store(self) -> CorpusStore:
        if self._store is None:
            self._store = CrawlState.of(self.crawler).store
        return self._store

    def process_item(self, item: Any, spider: Any = None) -> Any:
        if isinstance(item, DocumentItem):
            self._store_document(item)
        elif isinstance(item, SourceItem):
            self.store.add_source(
                item.document_id, item.metropole, item.url, referer=item.referer,
                anchor_text=item.anchor_text, page_title=item.page_title,
                http_status=item.http_status, etag=item.etag, last_modified=item.last_modified,
                headers=item.headers or None, fetched_at=item.fetched_at, origin=item.origin,
                metadata=item.metadata, attribution=item.attribution,
            )
            self.stats.inc_value("barometre/sources_attached")
        elif isinstance(item, FetchRecord):
            self._record_fetch(item)
        return item

    def _record_fetch(self, item: FetchRecord) -> None:
        """The outcome of a URL and of the URLs that redirected to it, in one transaction."""
        store = self.store
        with store.transaction():
            for url in dict.fromkeys([item.url, *item.aliases]):
                store.record_fetch(
                    item.metropole, url, item.status, http_status=item.http_status,
                    kind=item.kind, document_id=item.document_id, etag=item.etag,
                    last_modified=item.last_modified, error=item.error, referer=item.referer,
                    depth=item.depth, nbytes=item.nbytes,
                )
        self.stats.inc_value(f"barometre/fetch/{item.status}")

    def _store_document(self, item: DocumentItem) -> None:
        store = self.store
        with store.transaction():
            doc_id, created = store.add_document(item.body, item.media_type, item.ext)
            store.add_source(
                doc_id, item.metropole, item.url, referer=item.referer,
                anchor_text=item.anchor_text or None, page_title=item.page_title or None,
                http_status=item.http_status, etag=item.etag, last_modified=item.last_modified,
                headers=item.headers, fetched_at=item.fetched_at, origin=item.origin,
                metadata=item.metadata, attribution=item.attribution,
            )
            # Inside the document's transaction: once a URL's fetch says ok, its bytes are stored.
            self._record_fetch(FetchRecord(
                item.metropole, item.url, "ok", item.kind, http_status=item.http_status,
                referer=item.referer, depth=item.depth, nbytes=len(item.body), etag=item.etag,
                last_modified=item.last_modified, document_id=doc_id, aliases=item.aliases,
            ))
        self.stats.inc_value("barometre/documents_stored")
        if created:
            self.stats.inc_value("barometre/documents_new")
        log.debug("stored %s %s (%s, %d bytes, new=%s)", item.metropole, item.url,
                  item.media_type, len(item.body), created)
