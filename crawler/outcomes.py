"""What happened to a request, as a status slug of ``nlp.schema.FETCH_STATUSES``.

Stage: crawl. Input: an HTTP status code, or a Twisted failure from Scrapy's downloader.
Output: ``(slug, message)`` recorded in the ``fetches`` table. Failures are data: every
request that leaves ends with a slug, except those the crawl itself dropped (already done in
a resumed crawl, budget spent), which record nothing.
"""
from __future__ import annotations

import re
from typing import Any

from scrapy.exceptions import IgnoreRequest


class AlreadyDone(IgnoreRequest):
    """The store already holds this URL's outcome for the crawl being resumed."""


class BudgetSpent(IgnoreRequest):
    """The metropolis has used its page or byte budget."""


class PolicyRefusal(IgnoreRequest):
    """The fetch policy refused the request (see :mod:`crawler.policy`); ``slug`` says why."""

    slug = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OffsiteRequest(PolicyRefusal):
    """The host the request goes to is outside the registry entry's domains."""

    slug = "offsite"


class BlockedAddress(PolicyRefusal):
    """The request goes to a loopback, private, link-local, multicast or reserved address."""

    slug = "blocked-address"


# Statuses the spiders' callbacks see (others are redirects, handled by Scrapy).
HANDLED_STATUSES = [304, 400, 401, 403, 404, 405, 406, 408, 410, 429, 451,
                    500, 501, 502, 503, 504, 520, 521, 522, 523, 524]


def http_status_slug(status: int) -> str:
    """Fetch status slug for an HTTP status code."""
    if 200 <= status < 300:
        return "ok"
    if status == 304:
        return "not-modified"
    if status in (404, 410):
        return "http-404"
    if status == 429:
        return "http-429"
    if 400 <= status < 500:
        return "http-4xx"
    if status >= 500:
        return "http-5xx"
    return "error"


def classify_failure(failure: Any) -> tuple[str | None, str, int | None]:
    """``(status slug, message, bytes)`` of a request failure; slug None = not an outcome to
    record (a request dropped by the gate or by a middleware on purpose)."""
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.internet import error as terr
    from twisted.internet.defer import CancelledError
    from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

    exc = failure.value
    message = f"{exc.__class__.__name__}: {exc}"[:500]
    if failure.check(AlreadyDone, BudgetSpent):
        return None, message, None
    if failure.check(PolicyRefusal):
        return exc.slug, exc.message[:500], None
    if failure.check(HttpError):  # a status outside HANDLED_STATUSES
        return http_status_slug(exc.response.status), message, None
    if failure.check(IgnoreRequest):
        if "robots.txt" in str(exc):
            return "robots-disallowed", message, None
        return None, message, None
    if failure.check(CancelledError) and "max size" in str(exc):
        digits = [int(x) for x in re.findall(r"\((\d+)\)", str(exc))]
        return "too-large", message, digits[0] if digits else None
    if failure.check(terr.TimeoutError, terr.TCPTimedOutError):
        return "timeout", message, None
    if failure.check(terr.DNSLookupError):
        return "dns-error", message, None
    if failure.check(terr.ConnectError, terr.ConnectionRefusedError, terr.ConnectionLost,
                     ResponseFailed, ResponseNeverReceived, terr.ConnectionDone):
        return "connection-error", message, None
    return "error", message, None
