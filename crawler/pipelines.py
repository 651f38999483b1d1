"""Item pipeline: write crawl results to the corpus store.

Stage: crawl. Input: :class:`crawler.items.DocumentItem` and :class:`crawler.items.FetchRecord`
from the spiders. Output: ``documents`` / ``sources`` / ``fetches`` rows and content-addressed
files under ``corpus/files`` (via :class:`nlp.store.CorpusStore`; Scrapy's FilesPipeline is
not used: it names files by URL hash and refuses redirects).

A document, its source and the fetch rows of every URL that led to it are written in one
transaction, after the file is in place: once a URL's fetch row says ``ok``, its document is
stored. That is what lets ``--resume`` skip it (crawler.middlewares.CrawlGateMiddleware).
"""
from __future__ import annotations

import logging
from typing import Any

from crawler.items import DocumentItem, FetchRecord, SourceItem

log = logging.getLogger(__name__)


def write_fetch_record(store: Any, stats: Any, item: FetchRecord) -> None:
    """Record the outcome of a URL (and of the URLs that redirected to it) in one transaction.

    Used by the pipeline, and called directly by the site spider for the pages it follows
    without storing them: the most frequent record of a crawl need not pay for Scrapy's item
    machinery (signals, item processing) on every page."""
    with store.transaction():
        for url in dict.fromkeys([item.url, *item.aliases]):
            store.record_fetch(
                item.metropole, url, item.status, http_status=item.http_status,
                kind=item.kind, document_id=item.document_id, etag=item.etag,
                last_modified=item.last_modified, error=item.error, referer=item.referer,
                depth=item.depth, nbytes=item.nbytes,
            )
        stats.inc_value(f"barometre/fetch/{item.status}")


class StorePipeline:
    """Writes items through the spider's :class:`nlp.store.CorpusStore` (``spider.store``)."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> "StorePipeline":
        return cls(crawler)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        spider = spider or self.crawler.spider
        store = spider.store
        if isinstance(item, DocumentItem):
            self._store_document(store, item)
        elif isinstance(item, SourceItem):
            store.add_source(
                item.document_id, item.metropole, item.url, referer=item.referer,
                anchor_text=item.anchor_text, page_title=item.page_title,
                http_status=item.http_status, etag=item.etag, last_modified=item.last_modified,
                headers=item.headers or None, fetched_at=item.fetched_at, origin=item.origin,
                metadata=item.metadata,
            )
            self.stats.inc_value("barometre/sources_attached")
        elif isinstance(item, FetchRecord):
            write_fetch_record(store, self.stats, item)
        return item

    def _store_document(self, store: Any, item: DocumentItem) -> None:
        with store.transaction():
            doc_id, created = store.add_document(item.body, item.media_type, item.ext)
            store.add_source(
                doc_id, item.metropole, item.url, referer=item.referer,
                anchor_text=item.anchor_text or None, page_title=item.page_title or None,
                http_status=item.http_status, etag=item.etag, last_modified=item.last_modified,
                headers=item.headers, fetched_at=item.fetched_at, origin=item.origin,
                metadata=item.metadata,
            )
            # Inside the document's transaction: once a URL's fetch says ok, its bytes are stored.
            write_fetch_record(store, self.stats, FetchRecord(
                item.metropole, item.url, "ok", item.kind, http_status=item.http_status,
                referer=item.referer, depth=item.depth, nbytes=len(item.body), etag=item.etag,
                last_modified=item.last_modified, document_id=doc_id, aliases=item.aliases,
            ))
        self.stats.inc_value("barometre/documents_stored")
        if created:
            self.stats.inc_value("barometre/documents_new")
        log.debug("stored %s %s (%s, %d bytes, new=%s)", item.metropole, item.url,
                  item.media_type, len(item.body), created)
