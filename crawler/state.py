"""The state one crawl shares: the corpus store, when the crawl began, budgets, the links log.

Stage: crawl. :class:`CrawlStateExtension` (a Scrapy extension, ``EXTENSIONS`` in
``crawler/settings.py``) opens the :class:`nlp.store.CorpusStore` when the crawler starts and
closes it when the spider closes (after the item pipeline has finished). The spider, the
downloader middlewares and the item pipeline reach the same :class:`CrawlState` through
:meth:`CrawlState.of` (``crawler``); spiders only *read* from it and from the store (what is
done, what a 304 points to), and every write goes through the pipeline (fetch records
straight to its ``process_item``: :class:`crawler.pipelines.FetchRecordMiddleware`).

Resume (setting ``BAROMETRE_RESUME``): ``corpus/.crawl/crawl.json`` says when the crawl began
(setting ``BAROMETRE_CRAWL_STARTED``): a ``fetches`` row recorded since then with a final
status is done and never fetched again in this crawl. ``links.jsonl`` in the JOBDIR keeps the
links every parsed page yielded, so that requests lost in flight by a kill (scrapy#4106) are
derived again.

Writes are batched (:meth:`CrawlState.writing`, :meth:`CrawlState.commit`): the pipeline's
items join one open transaction, each item atomic inside it (a savepoint), and the batch is
committed every ``BAROMETRE_COMMIT_SECONDS`` or ``BAROMETRE_COMMIT_ROWS`` items, and when the
spider closes; the links log is flushed just before each commit. A commit per item cost more
than the rest of recording a fetch. A kill loses at most the uncommitted batch: those URLs are
not done, so a resumed crawl fetches them again (their links are re-derived from the links log
or from their own page), and nothing counted as stored (stats, progress lines) was lost: the
pipeline counts an item when its batch is committed.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Protocol

from scrapy import signals
from scrapy.exceptions import NotConfigured

from nlp.store import CorpusStore

log = logging.getLogger(__name__)

# Outcomes that a resumed crawl does not try again (transient failures are retried).
DONE_STATUSES = frozenset({
    "ok", "not-modified", "http-404", "http-4xx", "too-large", "robots-disallowed",
    "unsupported-type", "offsite", "blocked-address", "other-publisher",
})


class _Limits(Protocol):
    max_pages: int
    max_total_bytes: int


def manifest_options(manifest: str | None) -> dict[str, Any]:
    """CorpusStore options of a crawl: a job's own manifest (rollback journal: it may lie on a
    network filesystem, where WAL does not work), or the corpus store itself."""
    return {"manifest": manifest, "journal_mode": "DELETE"} if manifest else {}


def crawl_start_time(store: CorpusStore) -> str:
    """Now, at the store's precision (the second), strictly after every fetch the store holds:
    if a previous crawl recorded a fetch in this very second, wait for the next one, so that
    "fetched since the crawl began" never includes an older crawl's fetch."""
    while True:
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        latest = store.latest_fetch_time()
        if latest is None or latest < now:
            return now
        time.sleep(0.2)


def done_fetch(fetch: dict[str, Any] | None, since: str | None) -> bool:
    """Is this ``fetches`` row a final outcome recorded at or after ``since``?"""
    return bool(since and fetch and fetch["status"] in DONE_STATUSES and fetch["fetched_at"] >= since)


class CrawlState:
    """Store, start time, budgets and links log of one crawl (see the module docstring)."""

    def __init__(self, store: CorpusStore, limits: dict[str, _Limits], *, started: str | None,
                 resume: bool, jobdir: Path | None, commit_seconds: float = 0.0,
                 commit_rows: int = 1) -> None:
        self.store = store
        # Batched writes (module docstring): 0 seconds or 1 row commits every item.
        self.commit_seconds = commit_seconds
        self.commit_rows = max(1, commit_rows)
        self._batch: contextlib.ExitStack | None = None
        self._batch_rows = 0
        self._batch_started = 0.0
        self.limits = limits
        self.resume = resume
        self.jobdir = jobdir
        self.done_since = started or crawl_start_time(store)
        # Page requests let through by the gate (counted when they leave for the downloader,
        # so that requests waiting in the downloader's queue cannot overshoot max_pages).
        self.pages_fetched: Counter[str] = Counter()
        self.bytes_fetched: Counter[str] = Counter()
        self._links_log: Any = None
        # The function that writes an item (the store pipeline's ``process_item``, set when
        # the pipeline opens): fetch records reach it without Scrapy's item machinery
        # (crawler.pipelines.FetchRecordMiddleware).
        self.writer: Any = None
        if resume:
            self._restore_budgets()
        if jobdir is not None:
            jobdir.mkdir(parents=True, exist_ok=True)
            self._links_log = open(jobdir / "links.jsonl", "a", encoding="utf-8")

    @staticmethod
    def of(crawler: Any) -> "CrawlState":
        """The state of ``crawler``'s crawl (opened by :class:`CrawlStateExtension`)."""
        for ext in getattr(crawler.extensions, "middlewares", ()):
            if isinstance(ext, CrawlStateExtension):
                return ext.state
        raise RuntimeError("crawler.state.CrawlStateExtension is not enabled (EXTENSIONS setting)")

    def _restore_budgets(self) -> None:
        """Budgets already spent by the interrupted run."""
        for f in self.store.fetches(list(self.limits)):
            if f["fetched_at"] >= self.done_since:
                if f["kind"] == "page" and f["status"] != "robots-disallowed":
                    self.pages_fetched[f["metropole"]] += 1
                self.bytes_fetched[f["metropole"]] += f["bytes"] or 0

    def close(self) -> None:
        """Commit what is pending, close the links log and the store."""
        try:
            self.commit()
        finally:
            if self._links_log:
                self._links_log.close()
                self._links_log = None
            self.store.close()

    # -- batched writes ---------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[CorpusStore]:
        """One item's writes, all or nothing (a savepoint), inside the open batch transaction
        (opened here when none is). Yields the store. Commits the batch when it is old or
        full enough (:meth:`commit_due`); an item that fails leaves no row and the batch open."""
        if self._batch is None:
            batch = contextlib.ExitStack()
            batch.enter_context(self.store.transaction())
            self._batch, self._batch_rows, self._batch_started = batch, 0, time.monotonic()
        with self.store.transaction(savepoint=True):
            yield self.store
        self._batch_rows += 1

    def commit_due(self) -> bool:
        """Is the open batch full, or older than ``commit_seconds``?"""
        return self._batch is not None and (
            self._batch_rows >= self.commit_rows
            or time.monotonic() - self._batch_started >= self.commit_seconds)

    def commit(self) -> bool:
        """Flush the links log, then commit the open batch (a page recorded done has its links
        on disk). Returns whether there was a batch to commit."""
        if self._links_log is not None:
            self._links_log.flush()
        batch, self._batch = self._batch, None
        if batch is None:
            return False
        batch.close()  # COMMIT (the store's transaction exits without an exception)
        return True

    # -- what is done -----------------------------------------------------------------------
    def is_done(self, metropole: str, url: str) -> bool:
        """Does the store hold this URL's final outcome, recorded since this crawl began?

        The store, not Scrapy's seen-set, says what is done: it survives a kill, and it also
        catches a URL reached twice in one crawl (a start URL linked back from its pages)."""
        return done_fetch(self.store.get_fetch(metropole, url), self.done_since)

    # -- budgets ----------------------------------------------------------------------------
    def budget_spent(self, metropole: str, kind: str) -> bool:
        limits = self.limits.get(metropole)
        if limits is None:
            return False
        if self.bytes_fetched[metropole] >= limits.max_total_bytes:
            return True
        return kind == "page" and self.pages_fetched[metropole] >= limits.max_pages

    def page_started(self, metropole: str) -> None:
        self.pages_fetched[metropole] += 1

    def bytes_received(self, metropole: str, n: int) -> None:
        self.bytes_fetched[metropole] += n

    # -- links log (resume) ---------------------------------------------------------------------
    def log_links(self, metropole: str, url: str, links: list[list[Any]]) -> None:
        """Append a parsed page's outgoing links to ``links.jsonl``."""
        if self._links_log is None or not links:
            return
        # Buffered: flushed before the batch that records the page is committed (commit).
        self._links_log.write(json.dumps({"m": metropole, "u": url, "links": links}, ensure_ascii=False) + "\n")

    def logged_links(self) -> Iterator[dict[str, Any]]:
        """Entries of ``links.jsonl`` written by the interrupted run (resume only)."""
        path = self.jobdir / "links.jsonl" if self.jobdir is not None else None
        if not self.resume or path is None or not path.exists():
            return
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the kill
                if isinstance(entry, dict) and entry.get("m") in self.limits:
                    yield entry


class CrawlStateExtension:
    """Opens the crawl's :class:`CrawlState` for spiders that write to the corpus store
    (``uses_store = True``), and closes it when the spider closes."""

    def __init__(self, state: CrawlState) -> None:
        self.state = state

    @classmethod
    def from_crawler(cls, crawler: Any) -> "CrawlStateExtension":
        spider = getattr(crawler, "spider", None)
        if not getattr(spider, "uses_store", False):
            raise NotConfigured("the spider does not use the corpus store")
        settings = crawler.settings
        corpus = spider.corpus_dir or settings.get("BAROMETRE_CORPUS_DIR")
        if not corpus:
            raise NotConfigured("set BAROMETRE_CORPUS_DIR (or -a corpus_dir=...)")
        resume = spider.resume if spider.resume is not None else settings.getbool("BAROMETRE_RESUME")
        jobdir = Path(settings["JOBDIR"]) if settings.get("JOBDIR") else None
        store = CorpusStore(Path(corpus), **manifest_options(settings.get("BAROMETRE_MANIFEST")))
        state = CrawlState(store, {s: m.limits for s, m in spider.metros.items()},
                           started=settings.get("BAROMETRE_CRAWL_STARTED"), resume=bool(resume), jobdir=jobdir,
                           commit_seconds=settings.getfloat("BAROMETRE_COMMIT_SECONDS", 0.0),
                           commit_rows=settings.getint("BAROMETRE_COMMIT_ROWS", 1))
        ext = cls(state)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_closed(self, spider: Any, reason: str) -> None:
        self.state.close()
