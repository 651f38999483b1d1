"""Spiders of the barometre crawler, and the base class they share.

Stage: crawl. :class:`BarometreSpider` holds what both spiders need: the registry entries
to crawl, the corpus store, per-metropolis budgets, the resume bookkeeping, request building
(meta keys below), response classification (media type from headers *and* bytes) and
failure classification (status slugs of ``nlp.schema.FETCH_STATUSES``).

Request meta keys: ``b_m`` metropolis slug, ``b_url`` normalised URL (the key of the
``fetches`` table), ``b_kind`` page|document|dataset (a guess for documents: the bytes
decide), ``b_depth``, ``b_ref`` referer, ``b_anchor`` anchor text, ``b_ctx`` title of the page
the link was found on, ``b_meta`` extra metadata for the source row (SCDL fields).

Resume (``resume=True``): the JOBDIR (``corpus/.crawl/jobs/<spider>``) keeps Scrapy's queue
and seen-set, and ``links.jsonl`` (the links every parsed page yielded); ``corpus/.crawl/
crawl.json`` says when the crawl began (setting ``BAROMETRE_CRAWL_STARTED``): a ``fetches``
row recorded since then with a final status is done and never fetched again in this crawl. Requests that were in flight when the process died are lost
from Scrapy's queue (scrapy#4106) but not from ``links.jsonl``: the resumed spider re-yields
every logged link whose outcome the store does not hold since the crawl began.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import time
from datetime import datetime, timezone

import scrapy
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Request, Response

from crawler.focus import prepare_keywords
from crawler.items import KEPT_HEADERS, DocumentItem, FetchRecord, SourceItem
from nlp.media import DOCUMENT_TYPES, detect_media_type, is_html
from crawler.middlewares import AlreadyDone, BudgetSpent
from crawler.registry import Metropole, load_registry, normalise_url, registry_from_dict
from nlp.store import CorpusStore, utcnow

log = logging.getLogger(__name__)

# Outcomes that a resumed crawl does not try again (transient failures are retried).
DONE_STATUSES = frozenset({
    "ok", "not-modified", "http-404", "http-4xx", "too-large", "robots-disallowed",
    "unsupported-type",
})
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


def classify_failure(failure: Any) -> tuple[str | None, str]:
    """``(status slug, message)`` of a request failure; slug None = not an outcome to record
    (a request dropped by the gate)."""
    from twisted.internet import error as terr
    from twisted.internet.defer import CancelledError
    from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

    exc = failure.value
    message = f"{exc.__class__.__name__}: {exc}"[:500]
    if failure.check(AlreadyDone, BudgetSpent):
        return None, message
    from scrapy.spidermiddlewares.httperror import HttpError

    if failure.check(HttpError):  # a status outside HANDLED_STATUSES
        return http_status_slug(exc.response.status), message
    if failure.check(IgnoreRequest):
        if "robots.txt" in str(exc):
            return "robots-disallowed", message
        return None, message
    if failure.check(CancelledError) and "max size" in str(exc):
        return "too-large", message
    if failure.check(terr.TimeoutError, terr.TCPTimedOutError):
        return "timeout", message
    if failure.check(terr.DNSLookupError):
        return "dns-error", message
    if failure.check(terr.ConnectError, terr.ConnectionRefusedError, terr.ConnectionLost,
                     ResponseFailed, ResponseNeverReceived, terr.ConnectionDone):
        return "connection-error", message
    return "error", message


def kept_headers(response: Response, charset: str | None) -> dict[str, str]:
    """Provenance headers of a response (+ ``charset`` for text)."""
    out = {}
    for name in KEPT_HEADERS:
        value = response.headers.get(name)
        if value is not None:
            out[name] = value.decode("latin-1")
    if charset:
        out["charset"] = charset
    return out


def crawl_start_time(store: CorpusStore) -> str:
    """Now, at the store's precision (the second), strictly after every fetch the store holds:
    if a previous crawl recorded a fetch in this very second, wait for the next one, so that
    "fetched since the crawl began" never includes an older crawl's fetch."""
    while True:
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        latest = store.conn.execute("SELECT MAX(fetched_at) FROM fetches").fetchone()[0]
        if latest is None or latest < now:
            return now
        time.sleep(0.2)


def done_fetch(fetch: dict[str, Any] | None, since: str) -> bool:
    """Is this ``fetches`` row a final outcome recorded at or after ``since``?"""
    return bool(fetch and fetch["status"] in DONE_STATUSES and fetch["fetched_at"] >= since)


class BarometreSpider(scrapy.Spider):
    """Base class: registry entries, store, budgets, resume (see module docstring).

    Arguments (``scrapy crawl NAME -a registry=FILE -a metropoles=a,b`` or
    ``crawler.run``): ``registry`` (path, or dict from ``Registry.to_dict``), ``metropoles``
    (slugs, list or comma-separated), ``corpus_dir`` (else setting BAROMETRE_CORPUS_DIR),
    ``resume`` (else setting BAROMETRE_RESUME).
    """

    origin = "crawl"

    def __init__(
        self,
        registry: str | Path | dict[str, Any] | None = None,
        metropoles: list[str] | str | None = None,
        corpus_dir: str | Path | None = None,
        resume: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        reg = registry_from_dict(registry, "registry") if isinstance(registry, dict) else load_registry(registry)
        if isinstance(metropoles, str):
            metropoles = [s.strip() for s in metropoles.split(",") if s.strip()]
        self.metros: dict[str, Metropole] = {m.slug: m for m in reg.select(metropoles)}
        self.keywords = {
            slug: prepare_keywords(m.limits.keywords or reg.defaults.keywords)
            for slug, m in self.metros.items()
        }
        self._corpus_arg = corpus_dir
        self._resume_arg = resume
        # Page requests let through by the gate (counted when they leave for the downloader,
        # so that requests waiting in the downloader's queue cannot overshoot max_pages).
        self.pages_fetched: Counter[str] = Counter()
        self.bytes_fetched: Counter[str] = Counter()
        self.done_since: str | None = None
        self._links_log: Any = None

    # -- setup ----------------------------------------------------------------------------
    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> "BarometreSpider":
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        corpus = spider._corpus_arg or settings.get("BAROMETRE_CORPUS_DIR")
        if not corpus:
            raise NotConfigured("set BAROMETRE_CORPUS_DIR (or -a corpus_dir=...)")
        resume = spider._resume_arg
        if resume is None:
            resume = settings.getbool("BAROMETRE_RESUME")
        elif isinstance(resume, str):
            resume = resume.lower() in ("1", "true", "yes")
        spider.resume = bool(resume)
        spider.store = CorpusStore(Path(corpus))
        spider.jobdir = Path(settings["JOBDIR"]) if settings.get("JOBDIR") else None
        spider._setup_job()
        crawler.signals.connect(spider._on_closed, signal=scrapy.signals.spider_closed)
        return spider

    def _setup_job(self) -> None:
        """Know when this crawl began (kept across resumes), restore budgets, open links.jsonl."""
        started = self.settings.get("BAROMETRE_CRAWL_STARTED") if hasattr(self, "settings") else None
        self.done_since = started or crawl_start_time(self.store)
        if self.resume:
            # Budgets already spent by the interrupted run.
            for f in self.store.fetches(list(self.metros)):
                if f["fetched_at"] >= self.done_since:
                    if f["kind"] == "page" and f["status"] != "robots-disallowed":
                        self.pages_fetched[f["metropole"]] += 1
                    self.bytes_fetched[f["metropole"]] += f["bytes"] or 0
        if self.jobdir is not None:
            self.jobdir.mkdir(parents=True, exist_ok=True)
            self._links_log = open(self.jobdir / "links.jsonl", "a", encoding="utf-8")

    def _on_closed(self, spider: Any, reason: str) -> None:
        if self._links_log:
            self._links_log.close()
        self.store.close()

    # -- bookkeeping used by the middlewares ------------------------------------------------
    def is_done(self, metropole: str, url: str) -> bool:
        """Does the store hold this URL's final outcome, recorded since this crawl began?

        The store, not Scrapy's seen-set, says what is done: it survives a kill, and it also
        catches a URL reached twice in one crawl (a start URL linked back from its pages)."""
        if self.done_since is None:
            return False
        return done_fetch(self.store.get_fetch(metropole, url), self.done_since)

    def budget_spent(self, metropole: str, kind: str) -> bool:
        m = self.metros.get(metropole)
        if m is None:
            return False
        if self.bytes_fetched[metropole] >= m.limits.max_total_bytes:
            return True
        return kind == "page" and self.pages_fetched[metropole] >= m.limits.max_pages

    def page_started(self, metropole: str) -> None:
        self.pages_fetched[metropole] += 1

    def log_links(self, metropole: str, url: str, requests: list[Request]) -> None:
        """Append a parsed page's outgoing requests to ``links.jsonl`` (resume)."""
        if self._links_log is None or not requests:
            return
        links = [
            [r.url, r.meta.get("b_kind"), r.meta.get("b_depth"), r.meta.get("b_anchor"),
             r.meta.get("b_ctx"), r.priority, r.callback.__name__ if r.callback else None]
            for r in requests
        ]
        self._links_log.write(json.dumps({"m": metropole, "u": url, "links": links}, ensure_ascii=False) + "\n")
        self._links_log.flush()

    def relogged_requests(self) -> Iterator[Request]:
        """Requests of the interrupted run that the store does not hold (resume only)."""
        if not self.resume or self.jobdir is None or not (self.jobdir / "links.jsonl").exists():
            return
        seen: set[tuple[str, str]] = set()
        with open(self.jobdir / "links.jsonl", encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the kill
                m = entry["m"]
                if m not in self.metros:
                    continue
                for url, kind, depth, anchor, ctx, priority, callback in entry["links"]:
                    self.replay_link(m, url, kind)
                    if (m, url) in seen or self.is_done(m, url):
                        continue
                    seen.add((m, url))
                    yield self.make_request(
                        m, url, kind=kind, depth=depth, referer=entry["u"], anchor=anchor,
                        context_title=ctx, priority=priority, dont_filter=True,
                        callback=getattr(self, callback) if callback else None,
                    )

    def replay_link(self, metropole: str, url: str, kind: str | None) -> None:
        """Resume hook: a link the interrupted run scheduled, in its order (subclasses restore
        their in-memory guards from it)."""

    # -- requests -------------------------------------------------------------------------
    def make_request(
        self,
        metropole: str,
        url: str,
        *,
        kind: str,
        depth: int = 0,
        referer: str | None = None,
        anchor: str | None = None,
        context_title: str | None = None,
        priority: int = 0,
        callback: Any = None,
        extra_meta: dict[str, Any] | None = None,
        dont_filter: bool = False,
        always: bool = False,
    ) -> Request:
        m = self.metros[metropole]
        meta = {
            "b_m": metropole, "b_url": url, "b_kind": kind, "b_depth": depth, "b_ref": referer,
            "b_anchor": anchor, "b_ctx": context_title,
            "download_maxsize": m.limits.max_file_bytes,
            "handle_httpstatus_list": HANDLED_STATUSES,
        }
        if always:
            meta["b_always"] = True
        if kind == "document":
            # A file linked from an allowed page may be served from elsewhere (a CDN, a
            # document store) after a redirect: follow it there.
            meta["allow_offsite"] = True
        if extra_meta:
            meta.update(extra_meta)
        headers = {"Referer": referer} if referer else None
        return Request(
            url, callback=callback or self.parse_response, errback=self.on_error, meta=meta,
            priority=priority, dont_filter=dont_filter, headers=headers,
        )

    # -- responses ------------------------------------------------------------------------
    def parse(self, response: Response, **kwargs: Any) -> Any:  # scrapy's default callback
        return self.parse_response(response)

    def parse_response(self, response: Response) -> Iterator[Any]:
        """Any fetched URL: classify, then :meth:`handle_page` or :meth:`handle_document`."""
        meta = response.meta
        m, key, kind = meta["b_m"], meta["b_url"], meta["b_kind"]
        aliases = self.aliases(response)
        if response.status == 304:
            yield from self.handle_not_modified(response, aliases)
            return
        if not 200 <= response.status < 300:
            yield FetchRecord(
                m, key, http_status_slug(response.status), kind, http_status=response.status,
                error=f"HTTP {response.status}", referer=meta.get("b_ref"),
                depth=meta.get("b_depth"), nbytes=len(response.body), aliases=aliases,
            )
            return
        self.bytes_fetched[m] += len(response.body)
        media, charset, ext = detect_media_type(
            response.body,
            (response.headers.get("Content-Type") or b"").decode("latin-1"),
            (response.headers.get("Content-Disposition") or b"").decode("latin-1"),
            response.url,
        )
        if is_html(media):
            yield from self.handle_page(response, media, charset, aliases)
        else:
            yield from self.handle_document(response, media, charset, ext, aliases)

    def aliases(self, response: Response) -> list[str]:
        """Normalised URLs that led to this response besides its own (request key, redirects)."""
        final = self.final_url(response)
        if not response.meta.get("redirect_urls"):
            key = response.meta["b_url"]
            return [key] if key != final else []
        out = [response.meta["b_url"]]
        for u in response.meta["redirect_urls"]:
            try:
                out.append(normalise_url(u))
            except ValueError:
                pass
        return [u for u in dict.fromkeys(out) if u != final]

    @staticmethod
    def final_url(response: Response) -> str:
        """Normalised URL that served the response: the request's key unless redirected."""
        meta = response.meta
        if not meta.get("redirect_urls") and "b_url" in meta:
            return meta["b_url"]  # normalised when the request was made
        try:
            return normalise_url(response.url)
        except ValueError:
            return response.url

    def handle_not_modified(self, response: Response, aliases: list[str]) -> Iterator[Any]:
        meta = response.meta
        m = meta["b_m"]
        previous = self.store.get_fetch(m, meta["b_url"]) or {}
        kind = previous.get("kind") or meta["b_kind"]
        yield FetchRecord(
            m, self.final_url(response), "not-modified", kind, http_status=304,
            referer=meta.get("b_ref"), depth=meta.get("b_depth"), nbytes=0,
            document_id=previous.get("document_id"), aliases=aliases,
        )
        if meta.get("b_meta") and previous.get("document_id"):
            # The file did not change but its dataset row may have: refresh the metadata
            # (the source keeps the status and headers of the answer that gave the bytes).
            url = self.final_url(response)
            stored = next((s for s in self.store.sources(document_id=previous["document_id"])
                           if s["metropole"] == m and s["url"] == url), None)
            yield SourceItem(
                previous["document_id"], m, url,
                stored["http_status"] if stored else 200, fetched_at=stored["fetched_at"] if stored else utcnow(),
                headers=stored["headers"] if stored else {}, etag=previous.get("etag"),
                last_modified=previous.get("last_modified"),
                referer=meta.get("b_ref"), anchor_text=meta.get("b_anchor"), origin=self.origin,
                metadata=dict(meta["b_meta"], spider=self.name),
            )

    def handle_page(self, response: Response, media: str, charset: str | None,
                    aliases: list[str]) -> Iterator[Any]:
        """An HTML answer: stored as a document by default (subclasses follow links)."""
        yield self.document_item(response, media, "html", charset, aliases,
                                 page_title=response.css("title::text").get("").strip())

    def handle_document(self, response: Response, media: str, charset: str | None, ext: str,
                        aliases: list[str]) -> Iterator[Any]:
        meta = response.meta
        if media not in DOCUMENT_TYPES:
            yield FetchRecord(
                meta["b_m"], self.final_url(response), "unsupported-type", "document",
                http_status=response.status, error=f"media type {media}",
                referer=meta.get("b_ref"), depth=meta.get("b_depth"),
                nbytes=len(response.body), aliases=aliases,
            )
            return
        yield self.document_item(response, media, ext, charset, aliases, kind="document")

    def document_item(self, response: Response, media: str, ext: str, charset: str | None,
                      aliases: list[str], *, kind: str | None = None, page_title: str | None = None,
                      extra: dict[str, Any] | None = None) -> DocumentItem:
        meta = response.meta
        metadata: dict[str, Any] = {"depth": meta.get("b_depth"), "spider": self.name}
        if meta.get("redirect_urls"):
            metadata["redirect_urls"] = list(meta["redirect_urls"])
        if meta.get("b_meta"):
            metadata.update(meta["b_meta"])
        if extra:
            metadata.update(extra)
        headers = kept_headers(response, charset)
        return DocumentItem(
            body=response.body, media_type=media, ext=ext, metropole=meta["b_m"],
            url=self.final_url(response), kind=kind or meta["b_kind"],
            http_status=response.status, fetched_at=utcnow(), referer=meta.get("b_ref"),
            anchor_text=meta.get("b_anchor") or None, page_title=page_title or meta.get("b_ctx") or None,
            headers=headers, etag=headers.get("ETag"), last_modified=headers.get("Last-Modified"),
            origin=self.origin, depth=meta.get("b_depth"), metadata=metadata, aliases=aliases,
        )

    # -- failures -------------------------------------------------------------------------
    def on_error(self, failure: Any) -> Iterable[Any]:
        request = failure.request
        meta = request.meta
        status, message = classify_failure(failure)
        if status is None or "b_m" not in meta:
            return []
        nbytes = None
        if status == "too-large":
            digits = [int(x) for x in re.findall(r"\((\d+)\)", str(failure.value))]
            nbytes = digits[0] if digits else None
        log.info("%s %s: %s", status, request.url, message)
        return [FetchRecord(
            meta["b_m"], meta["b_url"], status, meta.get("b_kind", "page"), error=message,
            referer=meta.get("b_ref"), depth=meta.get("b_depth"), nbytes=nbytes,
        )]


def reset_jobdir(jobdir: Path) -> None:
    """Forget a previous crawl's queue (a crawl without ``--resume`` starts afresh)."""
    if jobdir.exists():
        shutil.rmtree(jobdir)


