"""The base class of the barometre spiders.

Stage: crawl. :class:`BarometreSpider` holds what every spider needs: the registry entries to
crawl, request building (meta keys below), response classification (media type from headers
*and* bytes) and failure classification (status slugs of ``nlp.schema.FETCH_STATUSES``, see
:mod:`crawler.outcomes`). Spiders yield requests and items only: the corpus store is opened and
closed by :class:`crawler.state.CrawlStateExtension`, every write goes through
:class:`crawler.pipelines.StorePipeline`, and a spider reads what it needs (is this URL done?
what did a 304 point to?) through :attr:`BarometreSpider.crawl_state`.

Request meta keys: ``b_m`` metropolis slug, ``b_url`` normalised URL (the key of the
``fetches`` table), ``b_kind`` page|document|dataset|sitemap (a guess for documents: the bytes
decide), ``b_depth``, ``b_ref`` referer, ``b_anchor`` anchor text, ``b_ctx`` title of the page
the link was found on, ``b_meta`` extra metadata for the source row (dataset fields),
``b_scope`` extra hosts the request may go to (a dataset's ``domains``, read by
:class:`crawler.policy.FetchPolicyMiddleware`).

Resume: the resumed spider re-yields every link of ``links.jsonl`` whose outcome the store does
not hold since the crawl began (:mod:`crawler.state`).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Iterator

import scrapy
from scrapy.http import Request, Response
from scrapy.utils.request import fingerprint as scrapy_fingerprint

from crawler.attribution import Attribution, document_text, from_publisher_fields, from_text
from crawler.focus import prepare_keywords
from crawler.items import KEPT_HEADERS, DocumentItem, FetchRecord, SourceItem
from crawler.outcomes import HANDLED_STATUSES, classify_failure, http_status_slug
from crawler.registry import Metropole, load_registry, registry_from_dict
from crawler.state import CrawlState
from crawler.urls import host_of, is_normal_form, normalise_url
from nlp.media import DOCUMENT_TYPES, detect_media_type, is_html
from nlp.store import utcnow

log = logging.getLogger(__name__)


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


class CrawlRequest(Request):
    """A Request that names its callbacks cheaply when written to the disk queue (JOBDIR).

    Scrapy's ``Request.to_dict`` finds a callback's name with ``inspect.getmembers`` over the
    whole spider, which reads every attribute of it, for every request queued: 5% of the
    crawl's CPU in a profile of 3,000 pages (bench/bench_crawl.py). The search runs on a view
    holding only the spider's callbacks (methods named ``parse*`` and ``on_*``) instead; the
    dictionary is the same, and ``request_from_dict`` reads the callback back from the spider.
    """

    def to_dict(self, *, spider: Any = None) -> dict[str, Any]:
        if spider is None:
            return super().to_dict(spider=spider)
        try:
            return super().to_dict(spider=_callbacks_view(spider))
        except ValueError:  # a callback that is not a parse*/on_* method: the full search
            return super().to_dict(spider=spider)

    def _set_url(self, url: str) -> None:
        # A normal form of crawler.urls is already w3lib's safe form: Scrapy would encode it
        # again for every request made and again for every one read back from the disk queue.
        if isinstance(url, str) and is_normal_form(url):
            self._url = url
        else:
            super()._set_url(url)


class NormalFormFingerprinter:
    """Scrapy's default request fingerprint, the same bytes, without canonicalising again a
    URL that is already a normal form of :func:`crawler.urls.normalise_url` (it is its own
    canonical form): w3lib's ``canonicalize_url`` ran once per request in the normaliser and
    once more here. Other URLs get Scrapy's own computation (setting
    ``REQUEST_FINGERPRINTER_CLASS``)."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> "NormalFormFingerprinter":
        return cls()

    def fingerprint(self, request: Request) -> bytes:
        url = request.url
        if not is_normal_form(url):
            return scrapy_fingerprint(request)
        # scrapy.utils.request.fingerprint's data with include_headers=None, keep_fragments=False.
        data = {"method": request.method, "url": url, "body": (request.body or b"").hex(), "headers": {}}
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).digest()  # noqa: S324 (Scrapy's hash)


class _Callbacks:
    """The bound callback methods of one spider, as attributes (see :class:`CrawlRequest`).

    ``dir()`` lists only them (``inspect.getmembers``, which Scrapy's search runs twice per
    queued request, would otherwise read every attribute an object has)."""

    def __dir__(self) -> list[str]:
        return list(self.__dict__)


def _callbacks_view(spider: Any) -> _Callbacks:
    view = spider.__dict__.get("_callbacks_view")
    if view is None:
        view = _Callbacks()
        for name in dir(type(spider)):  # class attributes: no property is evaluated
            if name.startswith(("parse", "on_")) and callable(getattr(type(spider), name, None)):
                setattr(view, name, getattr(spider, name))
        spider.__dict__["_callbacks_view"] = view
    return view


def _as_bool(value: bool | str | None) -> bool | None:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return value


class RegistrySpider(scrapy.Spider):
    """A spider over registry entries (``self.metros``), with or without the corpus store.

    Arguments (``scrapy crawl NAME -a registry=FILE -a metropoles=a,b`` or ``crawler.run``):
    ``registry`` (path, or dict from ``Registry.to_dict``), ``metropoles`` (slugs, list or
    comma-separated), ``corpus_dir`` (else setting BAROMETRE_CORPUS_DIR), ``resume`` (else
    setting BAROMETRE_RESUME).
    """

    uses_store = False

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
        self.corpus_dir = corpus_dir
        self.resume = _as_bool(resume)


class BarometreSpider(RegistrySpider):
    """Base class of the spiders that fill the corpus (see module docstring)."""

    origin = "crawl"
    uses_store = True
    keep_undecided = False
    # The error statuses the callbacks classify themselves (HttpErrorMiddleware and the
    # redirect middleware read the spider's list when a request's meta has none): a class
    # attribute rather than a copy in every request's meta, pickled into the disk queue and
    # read back for each request.
    handle_httpstatus_list = HANDLED_STATUSES
    _crawl_state: CrawlState | None = None

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> "BarometreSpider":
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.keep_undecided = crawler.settings.getbool("BAROMETRE_KEEP_UNDECIDED")
        return spider

    @property
    def crawl_state(self) -> CrawlState:
        """The crawl's shared state (store, start time, budgets): read-only for spiders.
        (Not ``state``: Scrapy's SpiderState extension owns that attribute under a JOBDIR.)"""
        if self._crawl_state is None:
            self._crawl_state = CrawlState.of(self.crawler)
        return self._crawl_state

    # Both entry points in this class, each a subclass's first_requests(): Scrapy 2.13 warns
    # when a subclass defines start_requests() below a class that defines start().
    async def start(self) -> Any:  # Scrapy >= 2.13
        for request in self.first_requests():
            yield request

    def start_requests(self) -> Iterator[Request]:  # Scrapy < 2.13
        return self.first_requests()

    def first_requests(self) -> Iterator[Request]:
        """The crawl's first requests (start URLs, sitemaps, datasets): each spider's own."""
        return iter(())

    # -- resume -----------------------------------------------------------------------------
    def log_links(self, metropole: str, url: str, requests: list[Request]) -> None:
        """Record a parsed page's outgoing requests (``links.jsonl``, for resume)."""
        self.crawl_state.log_links(metropole, url, [
            [r.url, r.meta.get("b_kind"), r.meta.get("b_depth"), r.meta.get("b_anchor"),
             r.meta.get("b_ctx"), r.priority, r.callback.__name__ if r.callback else None]
            for r in requests
        ])

    def relogged_requests(self) -> Iterator[Request]:
        """Requests of the interrupted run that the store does not hold (resume only)."""
        seen: set[tuple[str, str]] = set()
        state = self.crawl_state
        for entry in state.logged_links():
            m = entry["m"]
            for url, kind, depth, anchor, ctx, priority, callback in entry.get("links") or []:
                self.replay_link(m, url, kind)
                if (m, url) in seen or state.is_done(m, url):
                    continue
                seen.add((m, url))
                yield self.make_request(
                    m, url, kind=kind, depth=depth, referer=entry.get("u"), anchor=anchor,
                    context_title=ctx, priority=priority, dont_filter=True,
                    callback=getattr(self, callback, None) if callback else None,
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
        meta = self.request_meta(metropole, url, kind=kind, depth=depth, referer=referer, anchor=anchor,
                                 context_title=context_title, extra_meta=extra_meta, always=always)
        headers = {"Referer": referer} if referer else None
        return CrawlRequest(
            url, callback=callback or self.parse_response, errback=self.on_error, meta=meta,
            priority=priority, dont_filter=dont_filter, headers=headers,
        )

    def request_meta(self, metropole: str, key: str, *, kind: str, depth: int = 0, referer: str | None = None,
                     anchor: str | None = None, context_title: str | None = None,
                     extra_meta: dict[str, Any] | None = None, always: bool = False) -> dict[str, Any]:
        """The meta of a request whose outcome is recorded under ``key`` (module docstring)."""
        meta = {
            "b_m": metropole, "b_url": key, "b_kind": kind, "b_depth": depth, "b_ref": referer,
            "b_anchor": anchor, "b_ctx": context_title,
            "download_maxsize": self.metros[metropole].limits.max_file_bytes,
            # Where a request may go (redirects included) is the fetch policy's decision
            # (crawler.policy): Scrapy's offsite filter knows one domain list per spider.
            "allow_offsite": True,
        }
        if always:
            meta["b_always"] = True
        if extra_meta:
            meta.update(extra_meta)
        return meta

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
        self.crawl_state.bytes_received(m, len(response.body))
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
        store = self.crawl_state.store
        previous = store.get_fetch(m, meta["b_url"]) or {}
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
            stored = store.source_of(previous["document_id"], m, url)
            yield SourceItem(
                previous["document_id"], m, url,
                stored["http_status"] if stored else 200,
                fetched_at=stored["fetched_at"] if stored else utcnow(),
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

    def attribute(self, response: Response, media: str, charset: str | None) -> Attribution | None:
        """Who published a document found on a shared domain (None: not on one)."""
        meta = response.meta
        entry = self.metros[meta["b_m"]]
        if not entry.is_shared(host_of(response.url)):
            return None
        if meta.get("b_meta"):
            decided = from_publisher_fields(meta["b_meta"], entry.siren, entry.name)
            if decided is not None:
                return decided
        return from_text(document_text(response.body, media, charset), entry.siren, entry.name, entry.shared_with)

    def attribution_value(self, attribution: Attribution | None) -> str | None:
        """What the store records for a document's source (see crawler.attribution)."""
        if attribution is None:
            return None
        if attribution.decision == "undecided":
            return "kept" if self.keep_undecided else "undecided"
        return attribution.decision

    def document_item(self, response: Response, media: str, ext: str, charset: str | None,
                      aliases: list[str], *, kind: str | None = None, page_title: str | None = None,
                      extra: dict[str, Any] | None = None) -> DocumentItem | FetchRecord:
        """The item that stores a document, or the fetch record of a document found on a
        shared domain that says it is another publisher's."""
        meta = response.meta
        attribution = self.attribute(response, media, charset)
        if attribution is not None and attribution.decision == "other":
            self.crawler.stats.inc_value("barometre/attribution/other")
            return FetchRecord(meta["b_m"], self.final_url(response), "other-publisher", kind or meta["b_kind"],
                               http_status=response.status, error=attribution.evidence[:500],
                               referer=meta.get("b_ref"), depth=meta.get("b_depth"), nbytes=len(response.body),
                               aliases=aliases)
        metadata: dict[str, Any] = {"depth": meta.get("b_depth"), "spider": self.name}
        if attribution is not None:
            metadata["publisher"] = attribution.to_dict()
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
            attribution=self.attribution_value(attribution),
        )

    # -- failures -------------------------------------------------------------------------
    def on_error(self, failure: Any) -> Iterable[Any]:
        request = failure.request
        meta = request.meta
        status, message, nbytes = classify_failure(failure)
        if status is None or "b_m" not in meta:
            return []
        log.info("%s %s: %s", status, request.url, message)
        return [FetchRecord(
            meta["b_m"], meta["b_url"], status, meta.get("b_kind", "page"), error=message,
            referer=meta.get("b_ref"), depth=meta.get("b_depth"), nbytes=nbytes,
        )]
