"""Item pipeline: write crawl results to the corpus store.

Stage: crawl. Input: :class:`crawler.items.DocumentItem`, :class:`crawler.items.SourceItem`
and :class:`crawler.items.FetchRecord` from the spiders. Output: ``documents`` / ``sources``
/ ``fetches`` rows and content-addressed files under ``corpus/files``, through the typed API
of :class:`nlp.store.CorpusStore` (Scrapy's FilesPipeline is not used: it names files by URL
hash and refuses redirects). The store is the crawl's (:class:`crawler.state.CrawlState`),
opened and closed by :class:`crawler.state.CrawlStateExtension`: this is the only writer.

A document, its source and the fetch rows of every URL that led to it are written together
(all or nothing), after the file is in place: once a URL's fetch row says ``ok``, its document
is stored. That is what lets ``--resume`` skip it (crawler.middlewares.CrawlGateMiddleware).
Fetch outcomes (:class:`FetchRecord`, one per page that is only followed) are handed to the
same :meth:`StorePipeline.process_item` by :class:`FetchRecordMiddleware` as soon as a callback
yields them, without Scrapy's per-item machinery (deferreds, signals, log records: 8% of the
crawl's CPU in paired runs of bench/bench_crawl.py's site); documents and sources go through
Scrapy's item pipeline, as does a record an errback returns (Scrapy does not pass errback
output through spider middlewares).

Items are committed in batches (:meth:`crawler.state.CrawlState.writing`): every
``BAROMETRE_COMMIT_SECONDS`` (a timer, so a slow polite crawl commits too) or
``BAROMETRE_COMMIT_ROWS`` items, and when the spider closes. The ``barometre/*`` stats count
an item once its batch is committed, so no progress line counts a row a kill could lose.
"""
from __future__ import annotations

import logging
from collections import Counter
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
        self._state: CrawlState | None = None
        self._pending: Counter[str] = Counter()  # stats of the items of the open batch
        self._stored: list[tuple[Any, ...]] = []  # their "stored" debug lines
        self._timer: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "StorePipeline":
        return cls(crawler)

    @property
    def state(self) -> CrawlState:
        if self._state is None:
            self._state = CrawlState.of(self.crawler)
        return self._state

    @property
    def store(self) -> CorpusStore:
        return self.state.store

    def open_spider(self, spider: Any = None) -> None:
        """Start the commit timer (a batch never waits longer than ``commit_seconds``), and
        become the crawl's writer (:attr:`crawler.state.CrawlState.writer`)."""
        from twisted.internet import task

        self.state.writer = self.process_item
        seconds = self.state.commit_seconds
        if seconds > 0:
            self._timer = task.LoopingCall(self._commit_logged)
            self._timer.start(seconds, now=False)

    def close_spider(self, spider: Any = None) -> None:
        """Commit the last batch (before the crawl state closes the store)."""
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        self.commit()

    def commit(self) -> None:
        """Commit the open batch, then count its items in the stats."""
        self.state.commit()
        for key, n in self._pending.items():
            self.stats.inc_value(key, n)
        self._pending.clear()
        for args in self._stored:
            log.debug("stored %s %s (%s, %d bytes, new=%s)", *args)
        self._stored.clear()

    def _commit_logged(self) -> None:
        try:
            self.commit()
        except Exception:  # the timer must go on; the next item or the close tries again
            log.exception("could not commit the crawl's writes")

    def process_item(self, item: Any, spider: Any = None) -> Any:
        """Write one item (document, source or fetch outcome) into the open batch; commit the
        batch when due. Output: the item, unchanged."""
        with self.state.writing():
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
                self._pending["barometre/sources_attached"] += 1
            elif isinstance(item, FetchRecord):
                self._record_fetch(item)
        if self.state.commit_due():
            self.commit()
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
        self._pending[f"barometre/fetch/{item.status}"] += 1

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
        self._pending["barometre/documents_stored"] += 1
        if created:
            self._pending["barometre/documents_new"] += 1
        self._stored.append((item.metropole, item.url, item.media_type, len(item.body), created))


class FetchRecordMiddleware:
    """Spider middleware: writes each :class:`FetchRecord` a callback yields through the crawl's
    writer (the store pipeline's ``process_item``) when it comes, and passes every other output
    on. Without a writer (no store pipeline) the records go on as items.

    A record is written where Scrapy would have started processing it (after the requests the
    callback yielded before it, whose links are logged first); a write that fails is logged as
    Scrapy logs a failed item, and the callback's other outputs go on.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self._state: CrawlState | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "FetchRecordMiddleware":
        return cls(crawler)

    def _writer(self) -> Any:
        if self._state is None:
            try:
                self._state = CrawlState.of(self.crawler)
            except RuntimeError:  # a spider that does not use the store
                return None
        return self._state.writer

    def _write(self, write: Any, record: FetchRecord) -> None:
        try:
            write(record)
        except Exception:
            log.error("Error processing %s", record, exc_info=True)

    def process_spider_output(self, response: Any, result: Any, spider: Any = None) -> Any:
        write = self._writer()
        for output in result:
            if write is not None and type(output) is FetchRecord:
                self._write(write, output)
            else:
                yield output

    async def process_spider_output_async(self, response: Any, result: Any, spider: Any = None) -> Any:
        write = self._writer()
        async for output in result:
            if write is not None and type(output) is FetchRecord:
                self._write(write, output)
            else:
                yield output
