"""Unit tests of the crawler's pure functions: media sniffing, relevance, traps, Retry-After."""
from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone

from crawler.focus import TrapGuard, link_score, looks_like_document, page_score, prepare_keywords
from nlp.media import DOCX, ODT, PDF, detect_media_type, filename_from_disposition
from crawler.middlewares import parse_retry_after
from crawler.outcomes import http_status_slug
from mockserver import make_pdf


def _zip(members: dict[str, bytes], first: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        if first:
            z.writestr(zipfile.ZipInfo(first), members.pop(first), compress_type=zipfile.ZIP_STORED)
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_media_type_from_bytes_not_url():
    pdf = make_pdf("x")
    assert detect_media_type(pdf, "application/octet-stream", "", "http://h/download.php?id=12")[0] == PDF
    # A lying header loses against the bytes.
    assert detect_media_type(pdf, "text/html", "", "http://h/page.html")[0] == PDF
    page = b"<!DOCTYPE html><html><head><title>t</title></head></html>"
    media, charset, ext = detect_media_type(page, "application/pdf", "", "http://h/x.pdf")
    assert (media, ext) == ("text/html", "html")


def test_media_type_docx_odt_and_disposition():
    docx = _zip({"[Content_Types].xml": b"<x/>", "word/document.xml": b"<w/>"})
    assert detect_media_type(docx, "application/octet-stream")[0] == DOCX
    odt = _zip({"mimetype": ODT.encode(), "content.xml": b"<x/>"}, first="mimetype")
    assert detect_media_type(odt, "application/zip")[0] == ODT
    assert filename_from_disposition('attachment; filename="rapport 2024.pdf"') == "rapport 2024.pdf"
    assert detect_media_type(b"\x00\x01binary", "application/octet-stream",
                             'attachment; filename="a.docx"', "http://h/get?id=1")[0] == DOCX


def test_charset_from_header_or_meta():
    body = '<html><head><meta charset="windows-1252"><title>é</title></head></html>'.encode("cp1252")
    assert detect_media_type(body, "text/html")[1] == "windows-1252"
    assert detect_media_type(body, "text/html; charset=ISO-8859-1")[1] == "iso-8859-1"


def test_relevance_scores_follow_keywords():
    kw = prepare_keywords(["numérique", "délibération", "conseil métropolitain"])
    relevant = link_score("http://h/strategie-numerique.html", "Délibérations du conseil métropolitain", "", kw)
    boring = link_score("http://h/plan-du-site.html", "Plan du site", "", kw)
    assert relevant > boring == 0
    assert page_score("http://h/x", "Schéma directeur du NUMERIQUE", "", "", kw) >= 2
    assert looks_like_document("http://h/docs/a.PDF")
    assert looks_like_document("http://h/download.php?id=12")
    assert not looks_like_document("http://h/actualites/page.html")


def test_trap_guard_caps_query_and_pattern_variants():
    guard = TrapGuard(max_query_variants=3, max_pattern_urls=4)
    allowed = [guard.allow("m", f"http://h/agenda?month=2024-{i:02d}") for i in range(1, 8)]
    assert allowed == [True, True, True, False, False, False, False]
    assert guard.allow("m", "http://h/agenda?month=2024-01")  # seen before: still fine
    paths = [guard.allow("m", f"http://h/cal/2024/{i}/") for i in range(1, 8)]
    assert paths.count(True) == 4
    assert guard.allow("other", "http://h/agenda?month=2030-01")  # caps are per metropolis


def test_retry_after_and_status_slugs():
    assert parse_retry_after(b"3") == 3.0
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    assert [http_status_slug(s) for s in (200, 304, 404, 410, 429, 403, 503)] == [
        "ok", "not-modified", "http-404", "http-404", "http-429", "http-4xx", "http-5xx"]


def test_rate_limit_reset_of_opendatasoft_portals():
    from crawler.middlewares import parse_rate_limit_reset

    assert parse_rate_limit_reset(b"1700000030", now=1700000000.0) == 30.0
    assert parse_rate_limit_reset("1699999990", now=1700000000.0) == 0.0
    assert parse_rate_limit_reset("tomorrow") is None and parse_rate_limit_reset(None) is None
    assert parse_rate_limit_reset("9" * 40) is None


def test_queued_requests_name_their_callbacks_as_scrapy_does():
    """CrawlRequest looks callbacks up on a callbacks-only view of the spider (speed); the
    dictionary written to the disk queue and the request read back are Scrapy's."""
    from scrapy import Request
    from scrapy.utils.request import request_from_dict

    from crawler.spiders.base import CrawlRequest
    from crawler.spiders.site import SiteSpider

    registry = {"version": 1, "metropoles": [{"slug": "testville", "name": "Test", "siren": "100000009",
                                              "domains": ["example.org"], "start_urls": ["https://example.org/"],
                                              "fictional": True}]}
    spider = SiteSpider(registry=registry)
    for callback in (spider.parse_response, spider.parse_sitemap, spider.parse_robots, spider.parse):
        ours = CrawlRequest("https://example.org/a", callback=callback, errback=spider.on_error, meta={"b_m": "x"})
        plain = Request("https://example.org/a", callback=callback, errback=spider.on_error, meta={"b_m": "x"})
        d = ours.to_dict(spider=spider)
        assert {k: v for k, v in d.items() if k != "_class"} == plain.to_dict(spider=spider)
        assert d["callback"] == callback.__name__ and d["errback"] == "on_error"
        back = request_from_dict(d, spider=spider)
        assert type(back) is CrawlRequest and back.callback == callback and back.meta == {"b_m": "x"}
    # A callback outside parse*/on_* is still found (the full search).
    odd = CrawlRequest("https://example.org/b", callback=spider.replay_link)
    assert odd.to_dict(spider=spider)["callback"] == "replay_link"


def test_ascii_text_skips_unicode_folding_with_the_same_result():
    """normalise_text leaves out NFKC and accent folding for ASCII text (its own form)."""
    import re
    import unicodedata

    from crawler.focus import normalise_text
    from nlp.io import fold_accents

    def full(text: str) -> str:
        folded = fold_accents(unicodedata.normalize("NFKC", text))
        return " " + re.sub(r"[\W_]+", " ", folded.lower()).strip() + " "

    texts = [chr(i) for i in range(128)] + ["", "Page 12", "/gen/3?max=5000", "Stratégie NUMÉRIQUE",
                                           "ﬁchier ＰＤＦ", "Open_Data-2024", "x\u0301y"]
    for text in texts:
        assert normalise_text.__wrapped__(text) == full(text), repr(text)


def test_scraped_items_are_logged_only_at_debug():
    """The log formatter leaves out the per-item message only where LOG_LEVEL drops it."""
    from scrapy.logformatter import LogFormatter
    from scrapy.settings import Settings

    from crawler.extensions import QuietLogFormatter

    class Spider:
        pass

    for level, logged in (("DEBUG", True), (10, True), ("INFO", False), ("WARNING", False), (None, True)):
        crawler = type("Crawler", (), {"settings": Settings({"LOG_LEVEL": level})})()
        formatter = QuietLogFormatter.from_crawler(crawler)
        ours = formatter.scraped({"a": 1}, None, Spider())
        assert (ours == LogFormatter().scraped({"a": 1}, None, Spider())) if logged else ours is None, level
