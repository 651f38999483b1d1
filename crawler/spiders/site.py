"""Focused site spider: crawls each metropolis's web site from its start URLs.

Stage: crawl. Input: registry entries (start URLs, domains, allow/deny regexes, sitemaps,
limits, keywords) and the corpus store. Output (through the pipeline): documents (PDF, DOCX,
ODT...; relevant HTML pages) with provenance, and one ``fetches`` row per URL tried.

How it spends its budget:
- links are followed only inside the entry's domains and allow/deny regexes
  (``registry.url_allowed``), after URL normalisation (``registry.normalise_url``);
- request priority = relevance score of the link (URL, anchor text, title of the page it is
  on: ``crawler.focus.link_score``) × 10, documents first, minus depth;
- pages up to ``max_depth`` links from a start URL; a document linked from a page at
  ``max_depth`` is still fetched (depth ``max_depth + 1``); pages up to ``max_pages`` per
  metropolis; bytes up to ``max_total_bytes``; each file up to ``max_file_bytes``
  (over: ``too-large``, not stored);
- traps: distinct query strings per path and URLs per path shape are capped
  (``crawler.focus.TrapGuard``), on top of the depth limit;
- sitemaps: the entry's ``sitemaps``, ``/sitemap.xml`` and the ``Sitemap:`` lines of
  ``robots.txt`` of every start URL's site (entries enter at depth 1);
- forms: the entry's ``forms`` are submitted once per chosen option (crawler.spiders.forms),
  each answer a listing page at depth 1;
- which HTML pages are stored: the start URLs, and every page whose relevance
  (``crawler.focus.page_score``: URL, title + first heading, anchor that led to it) reaches
  ``BAROMETRE_PAGE_THRESHOLD``; other pages are followed but not stored (their outcome is
  still recorded in ``fetches``, through the pipeline like every write). The page is kept with
  the bytes as served and its declared charset recorded in the source's headers.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator
from urllib.parse import urlsplit

from scrapy.http import HtmlResponse, Request, Response
from scrapy.linkextractors import IGNORED_EXTENSIONS
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap

from crawler.focus import TrapGuard, link_score, looks_like_document, page_score
from crawler.items import FetchRecord
from crawler.spiders.base import BarometreSpider
from crawler.spiders.forms import FormListings
from crawler.urls import normalise_url, url_allowed
from nlp.media import DOCUMENT_EXTENSIONS, url_extension

log = logging.getLogger(__name__)

SKIPPED_EXTENSIONS = frozenset(IGNORED_EXTENSIONS) - DOCUMENT_EXTENSIONS


def page_title_and_heading(response: Response) -> tuple[str, str]:
    """``<title>`` and first ``<h1>`` texts of an HTML response, white space collapsed."""
    root = response.selector.root
    # Where they belong first (cheap), anywhere in the tree only when they are not there.
    title = root.find("head/title")
    if title is None:
        title = next(root.iter("title"), None)
    body = root.find("body")
    h1 = next((body if body is not None else root).iter("h1"), None)
    return (
        " ".join("".join(title.itertext()).split()) if title is not None else "",
        " ".join("".join(h1.itertext()).split()) if h1 is not None else "",
    )


class SiteSpider(FormListings, BarometreSpider):
    name = "site"

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> "SiteSpider":
        spider = super().from_crawler(crawler, *args, **kwargs)
        s = crawler.settings
        spider.page_threshold = s.getfloat("BAROMETRE_PAGE_THRESHOLD", 2.0)
        spider.use_sitemaps = s.getbool("BAROMETRE_USE_SITEMAPS", True)
        spider.traps = TrapGuard(s.getint("BAROMETRE_MAX_QUERY_VARIANTS", 50),
                                 s.getint("BAROMETRE_MAX_PATTERN_URLS", 1000))
        return spider

    # -- start ----------------------------------------------------------------------------
    def replay_link(self, metropole: str, url: str, kind: str | None) -> None:
        if kind == "page":
            # The same trap decisions as the interrupted run (the guard lives in memory).
            self.traps.allow(metropole, url)

    def first_requests(self) -> Iterator[Request]:
        # Read the links log first: it restores the trap guard before any page is parsed.
        relogged = list(self.relogged_requests())
        for slug, m in self.metros.items():
            for url in m.start_urls:
                url = normalise_url(url)
                self.traps.allow(slug, url)
                # dont_filter: after a kill, Scrapy's seen-set may hold a start URL that was never
                # done; the gate skips the ones the store holds.
                yield self.make_request(slug, url, kind="page", depth=0, priority=1000, dont_filter=True)
            yield from self.form_requests(slug)
            if self.use_sitemaps:
                origins = dict.fromkeys(f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in m.start_urls)
                for origin in origins:
                    yield self.make_request(slug, f"{origin}/robots.txt", kind="sitemap", depth=0,
                                            priority=900, callback=self.parse_robots, always=True,
                                            dont_filter=True, extra_meta={"dont_retry": True})
                    yield self.make_request(slug, f"{origin}/sitemap.xml", kind="sitemap", depth=0,
                                            priority=900, callback=self.parse_sitemap, always=True,
                                            dont_filter=True)
                for url in m.sitemaps:
                    yield self.make_request(slug, normalise_url(url), kind="sitemap", depth=0,
                                            priority=900, callback=self.parse_sitemap, always=True,
                                            dont_filter=True)
        yield from relogged

    # -- sitemaps -------------------------------------------------------------------------
    def parse_robots(self, response: Response) -> Iterator[Request]:
        if response.status != 200:
            return
        m = response.meta["b_m"]
        for line in response.text.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "sitemap" and value.strip():
                try:
                    url = normalise_url(response.urljoin(value.strip()))
                except ValueError:
                    continue
                yield self.make_request(m, url, kind="sitemap", depth=0, priority=900,
                                        callback=self.parse_sitemap, always=True)

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        if response.status != 200:
            return
        m = response.meta["b_m"]
        body = response.body
        if body[:2] == b"\x1f\x8b":
            try:
                body = gunzip(body, max_size=response.meta.get("download_maxsize", 0))
            except Exception as exc:  # a broken gzip is a bad sitemap, not a crash
                log.warning("unreadable gzipped sitemap %s: %s", response.url, exc)
                return
        try:
            sitemap = Sitemap(body)
        except Exception as exc:  # lxml raises several types on junk
            log.warning("unreadable sitemap %s: %s", response.url, exc)
            return
        requests = []
        for entry in sitemap:
            loc = (entry.get("loc") or "").strip()
            if not loc:
                continue
            try:
                url = normalise_url(response.urljoin(loc))
            except ValueError:
                continue
            if sitemap.type == "sitemapindex":
                requests.append(self.make_request(m, url, kind="sitemap", depth=0, priority=900,
                                                  callback=self.parse_sitemap, always=True))
            else:
                request = self.link_request(m, url, "", "", depth=1, referer=response.url)
                if request is not None:
                    requests.append(request)
        self.log_links(m, response.meta["b_url"], requests)
        yield from requests

    # -- pages ----------------------------------------------------------------------------
    def link_request(self, m: str, url: str, anchor: str, context_title: str, *, depth: int,
                     referer: str) -> Request | None:
        """A request for a link found on a page (or in a sitemap), or None if not followed."""
        metro = self.metros[m]
        if not url_allowed(metro, url) or url_extension(url) in SKIPPED_EXTENSIONS:
            return None
        is_doc = looks_like_document(url)
        limit = metro.limits.max_depth + (1 if is_doc else 0)
        if depth > limit:
            self.crawler.stats.inc_value("barometre/skipped/depth")
            return None
        if not is_doc:
            if self.crawl_state.budget_spent(m, "page"):
                return None
            if not self.traps.allow(m, url):
                self.crawler.stats.inc_value("barometre/skipped/trap")
                return None
        score = link_score(url, anchor, context_title, self.keywords[m])
        priority = int(score * 10) + (50 if is_doc else 0) - depth
        return self.make_request(
            m, url, kind="document" if is_doc else "page", depth=depth, referer=referer,
            anchor=anchor, context_title=context_title, priority=priority,
        )

    def extract_links(self, response: Response, m: str, depth: int, title: str) -> list[Request]:
        found: dict[str, str] = {}
        # lxml directly (the tree parsel already built): a CSS query per link costs more than
        # the rest of the page's processing.
        root = response.selector.root
        for a in root.iter("a", "area"):
            href = (a.get("href") or "").strip()
            if not href or href.startswith(("#", "mailto:", "javascript:", "tel:", "data:")):
                continue
            try:
                url = normalise_url(response.urljoin(href))
            except ValueError:
                continue
            anchor = " ".join("".join(a.itertext()).split())
            if not anchor:
                img = next(a.iter("img"), None)
                anchor = (a.get("title") or (img.get("alt") if img is not None else "") or "").strip()
            if url not in found or (anchor and not found[url]):
                found[url] = anchor
        page_url = self.final_url(response)
        out = []
        for url, anchor in found.items():
            if url == page_url:
                continue
            request = self.link_request(m, url, anchor, title, depth=depth + 1, referer=page_url)
            if request is not None:
                out.append(request)
        return out

    def handle_page(self, response: Response, media: str, charset: str | None,
                    aliases: list[str]) -> Iterator[Any]:
        meta = response.meta
        m, depth = meta["b_m"], meta.get("b_depth") or 0
        title, heading = page_title_and_heading(response)
        requests = self.extract_links(response, m, depth, title)
        # Logged before the page's outcome is recorded: a page recorded done has its links
        # on disk, so a resumed crawl can re-derive requests lost in flight.
        self.log_links(m, self.final_url(response), requests)
        yield from requests
        score = page_score(response.url, title, heading, meta.get("b_anchor") or "", self.keywords[m])
        if depth == 0 or score >= self.page_threshold:
            yield self.document_item(response, media, "html", charset, aliases, kind="page",
                                     page_title=title, extra={"relevance": score})
        else:
            yield FetchRecord(
                m, self.final_url(response), "ok", "page", http_status=response.status,
                referer=meta.get("b_ref"), depth=depth, nbytes=len(response.body), aliases=aliases,
            )

    def handle_not_modified(self, response: Response, aliases: list[str]) -> Iterator[Any]:
        """A stored page that did not change: follow its links from the stored bytes."""
        records = list(super().handle_not_modified(response, aliases))
        record = records[0]
        if record.kind == "page" and record.document_id:
            try:
                path = self.crawl_state.store.document_path(record.document_id)
                body = path.read_bytes()
            except (KeyError, OSError):
                body = b""
            if body:
                stored = HtmlResponse(url=response.url, body=body, request=response.request,
                                      encoding=self._stored_charset(record.document_id))
                meta = response.meta
                title = page_title_and_heading(stored)[0]
                requests = self.extract_links(stored, meta["b_m"], meta.get("b_depth") or 0, title)
                self.log_links(meta["b_m"], record.url, requests)
                yield from requests
        yield from records

    def _stored_charset(self, document_id: str) -> str | None:
        for source in self.crawl_state.store.sources(document_id=document_id, include_undecided=True):
            charset = (source.get("headers") or {}).get("charset")
            if charset:
                return charset
        return None
