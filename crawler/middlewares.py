"""Downloader middlewares: resume/budget gate, conditional requests, polite retries.

Stage: crawl. Input: requests built by the barometre spiders (meta keys ``b_m`` metropolis
slug, ``b_url`` normalised URL, ``b_kind`` page|document|dataset). Output: requests dropped
(already done in a resumed crawl, budget spent), requests made conditional, responses retried
after a delay.

- :class:`CrawlGateMiddleware` (after robots.txt, so disallowed URLs use no budget): in a resumed crawl, a URL whose outcome the
  store already holds (since the crawl began) is not fetched again; once a metropolis has spent
  its page or byte budget, its queued requests are dropped; in a re-crawl, a URL whose document
  is stored is asked for with ``If-None-Match`` / ``If-Modified-Since``.
- :class:`BackoffRetryMiddleware` (replaces Scrapy's RetryMiddleware): retries 5xx, 408, 429
  and network errors with exponential backoff, and waits what a 429/503 ``Retry-After`` says
  (or, for a 429 without it, until the ``X-RateLimit-Reset`` time of Opendatasoft portals).
  The wait is a Twisted timer (a Deferred returned by the middleware): the reactor keeps
  serving other requests meanwhile (never ``time.sleep``).
"""
from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any

from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import NotConfigured
from scrapy.utils.misc import load_object

from crawler.outcomes import AlreadyDone, BudgetSpent
from crawler.state import CrawlState, done_fetch

log = logging.getLogger(__name__)


def later(seconds: float, value: Any) -> Any:
    """A Deferred that fires with ``value`` after ``seconds``, without blocking the reactor
    (a middleware may return it instead of a request or response)."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: value)


def parse_retry_after(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); None if absent
    or unreadable."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def parse_rate_limit_reset(value: bytes | str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an ``X-RateLimit-Reset`` value, the Unix time at which the quota
    resets (what Opendatasoft portals send with a 429 instead of ``Retry-After``); None if
    absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    if not value.isdigit() or len(value) > 12:
        return None
    return max(0.0, int(value) - (time.time() if now is None else now))


class CrawlGateMiddleware:
    """Drop done/over-budget requests; add conditional headers (see module docstring).
    Not enabled for spiders that do not fill the corpus (the registry check)."""

    def __init__(self, crawler: Any, state: CrawlState) -> None:
        self.crawler = crawler
        self.crawl_state = state

    @classmethod
    def from_crawler(cls, crawler: Any) -> "CrawlGateMiddleware":
        if not getattr(crawler.spider, "uses_store", False):
            raise NotConfigured("the spider does not use the corpus store")
        return cls(crawler, CrawlState.of(crawler))

    def process_request(self, request: Any, spider: Any = None) -> None:
        meta = request.meta
        metropole = meta.get("b_m")
        if not metropole or meta.get("b_always"):
            return None
        url, kind = meta["b_url"], meta.get("b_kind", "page")
        stats = self.crawler.stats
        state = self.crawl_state
        # One lookup serves both questions (is it done? what validators does the store hold?).
        previous = state.store.get_fetch(metropole, url)
        if done_fetch(previous, state.done_since):  # = state.is_done(metropole, url)
            stats.inc_value("barometre/skipped/already_done")
            raise AlreadyDone(f"already done in this crawl: {url}")
        if state.budget_spent(metropole, kind):
            stats.inc_value("barometre/skipped/budget")
            raise BudgetSpent(f"budget of {metropole} spent: {url}")
        if kind == "page":
            state.page_started(metropole)
        if request.method == "GET" and "If-None-Match" not in request.headers \
                and "If-Modified-Since" not in request.headers:
            # Only for URLs whose bytes the store holds: a 304 must leave something to read
            # (a stored page's links are read back from the store).
            if previous and previous.get("document_id") and previous.get("status") in ("ok", "not-modified"):
                if previous.get("etag"):
                    request.headers["If-None-Match"] = previous["etag"]
                if previous.get("last_modified"):
                    request.headers["If-Modified-Since"] = previous["last_modified"]
        return None


class BackoffRetryMiddleware:
    """Retries with exponential backoff and ``Retry-After`` (see module docstring).

    Settings: ``RETRY_TIMES``, ``RETRY_HTTP_CODES``, ``RETRY_EXCEPTIONS``,
    ``RETRY_PRIORITY_ADJUST``, ``BAROMETRE_BACKOFF_BASE``, ``BAROMETRE_BACKOFF_MAX``,
    ``BAROMETRE_RETRY_AFTER_MAX``.
    """

    def __init__(self, crawler: Any) -> None:
        settings = crawler.settings
        self.crawler = crawler
        if not settings.getbool("RETRY_ENABLED"):
            raise NotConfigured
        self.max_retry_times = settings.getint("RETRY_TIMES")
        self.retry_http_codes = {int(x) for x in settings.getlist("RETRY_HTTP_CODES")}
        self.priority_adjust = settings.getint("RETRY_PRIORITY_ADJUST")
        self.base = settings.getfloat("BAROMETRE_BACKOFF_BASE", 2.0)
        self.cap = settings.getfloat("BAROMETRE_BACKOFF_MAX", 120.0)
        self.retry_after_max = settings.getfloat("BAROMETRE_RETRY_AFTER_MAX", 600.0)
        self.exceptions = tuple(
            load_object(x) if isinstance(x, str) else x for x in settings.getlist("RETRY_EXCEPTIONS")
        )

    @classmethod
    def from_crawler(cls, crawler: Any) -> "BackoffRetryMiddleware":
        return cls(crawler)

    def backoff(self, retries: int) -> float:
        return min(self.cap, self.base * (2 ** retries))

    def _retry_request(self, request: Any, reason: Any, spider: Any) -> Any:
        return get_retry_request(
            request, spider=spider, reason=reason,
            max_retry_times=request.meta.get("max_retry_times", self.max_retry_times),
            priority_adjust=request.meta.get("priority_adjust", self.priority_adjust),
        )

    # Plain methods, not coroutines: the common case (nothing to retry) returns at once, and a
    # coroutine middleware costs an asyncio task per response.
    def process_response(self, request: Any, response: Any, spider: Any = None) -> Any:
        spider = spider or self.crawler.spider
        if request.meta.get("dont_retry") or response.status not in self.retry_http_codes:
            return response
        delay = self.backoff(request.meta.get("retry_times", 0))
        if response.status in (429, 503):
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is None and response.status == 429:
                wait = parse_rate_limit_reset(response.headers.get("X-RateLimit-Reset"))
            if wait is not None:
                if wait > self.retry_after_max:
                    log.warning("%s asks to retry after %.0f s (> BAROMETRE_RETRY_AFTER_MAX=%.0f): "
                                "giving up on it", request.url, wait, self.retry_after_max)
                    self.crawler.stats.inc_value("barometre/retry_after/too_long")
                    return response
                delay = wait
                self.crawler.stats.inc_value("barometre/retry_after/honoured")
        retry = self._retry_request(request, f"{response.status} response", spider)
        if retry is None:
            return response
        log.debug("retrying %s in %.2f s (HTTP %d)", request.url, delay, response.status)
        return later(delay, retry)

    def process_exception(self, request: Any, exception: Exception, spider: Any = None) -> Any:
        spider = spider or self.crawler.spider
        if request.meta.get("dont_retry") or not isinstance(exception, self.exceptions):
            return None
        retry = self._retry_request(request, exception, spider)
        if retry is None:
            return None
        delay = self.backoff(request.meta.get("retry_times", 0))
        log.debug("retrying %s in %.2f s (%s)", request.url, delay, exception.__class__.__name__)
        return later(delay, retry)
