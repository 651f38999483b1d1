"""Tests of crawler/urls.py: the canonical URL (w3lib plus the two rules it lacks) and hosts."""
from __future__ import annotations

import pytest
from w3lib.url import canonicalize_url

from crawler.urls import host_in_domains, host_of, normalise_url, safe_url, url_allowed


def test_normalise_url_is_w3lib_canonical_form():
    assert normalise_url("HTTPS://WWW.GrandLyon.COM:443/A/b?b=2&a=1#top") == "https://www.grandlyon.com/A/b?a=1&b=2"
    # encoded characters keep their meaning (upper-case hex), raw non-ASCII is encoded
    assert normalise_url("https://ex.fr/d%c3%a9lib?path=a%2Fb") == "https://ex.fr/d%C3%A9lib?path=a%2Fb"
    assert normalise_url("https://ex.fr/délib é") == "https://ex.fr/d%C3%A9lib%20%C3%A9"
    # repeated names are sorted with their values, blank values kept (as w3lib does)
    assert normalise_url("https://ex.fr/?t=2&t=1&a=") == "https://ex.fr/?a=&t=1&t=2"
    assert normalise_url("http://ex.fr/a/./b/../c") == "http://ex.fr/a/c"
    assert normalise_url("http://bücher.de/x") == "http://xn--bcher-kva.de/x"
    u = "https://Ex.fr:443/a b?z=1&utm_x=2&a=%c3%a9#f"
    assert normalise_url(normalise_url(u)) == normalise_url(u)
    with pytest.raises(ValueError):
        normalise_url("/relative/path")


def test_the_two_rules_w3lib_lacks():
    # default port
    assert canonicalize_url("http://ex.fr:80/x") == "http://ex.fr:80/x"
    assert normalise_url("http://ex.fr:80") == "http://ex.fr/"
    assert normalise_url("https://ex.fr:443/x") == "https://ex.fr/x"
    assert normalise_url("http://ex.fr:8080/x") == "http://ex.fr:8080/x"
    assert normalise_url("http://[::1]:80/x") == "http://[::1]/x"
    # a session id as a path parameter
    assert canonicalize_url("https://ex.fr/p;jsessionid=0A1B").endswith(";jsessionid=0A1B")
    assert normalise_url("https://ex.fr/p;jsessionid=0A1B?PHPSESSID=zz&page=2") == "https://ex.fr/p?page=2"
    assert normalise_url("https://ex.fr/a;JSESSIONID=x/b") == "https://ex.fr/a/b"


def test_tracking_parameters_dropped():
    assert normalise_url("https://ex.fr/p?utm_source=nl&utm_Medium=m&fbclid=abc&id=3&gclid=z") == "https://ex.fr/p?id=3"
    assert normalise_url("https://ex.fr/p?utm_source=x") == "https://ex.fr/p"
    assert normalise_url("http://EX.fr./x") == "http://ex.fr/x"


def test_backslash_host_is_the_host_scrapy_sends_to():
    """urlsplit reads the host of http://a\\@b/ as b; browsers, w3lib and Scrapy send to a."""
    url = "http://localhost:18732\\@127.0.0.1:18731/bs"
    assert host_of(url) == "localhost"
    assert safe_url(url) == "http://localhost:18732/@127.0.0.1:18731/bs"
    assert normalise_url(url) == "http://localhost:18732/@127.0.0.1:18731/bs"
    assert not host_in_domains(host_of(url), ["127.0.0.1"])
    assert host_in_domains("www.grandlyon.com", ["grandlyon.com"])
    assert not host_in_domains("grandlyon.com.evil.org", ["grandlyon.com"])
    assert host_of("mailto:x@y") is None


URL_CASES = [
    "HTTPS://WWW.GrandLyon.COM:443/A/b?b=2&a=1#top", "https://ex.fr/d%c3%a9lib?path=a%2Fb",
    "https://ex.fr/délib é", "https://ex.fr/?t=2&t=1&a=", "http://ex.fr/a/./b/../c", "http://bücher.de/x",
    "https://ex.fr/p;jsessionid=0A1B?PHPSESSID=zz&page=2", "http://EX.fr./x", "http://[::1]:80/x",
    "http://localhost:18732\\@127.0.0.1:18731/bs", " http://ex.fr/ x ", "https://ex.fr/p?utm_source=x",
]


def test_memoised_url_forms_are_the_computed_ones():
    """normalise_url and safe_url are memoised (a site repeats its menus on every page): the
    answer from the memo is the computation's, twice over, and an error is raised every time."""
    for url in URL_CASES:
        for _ in range(2):
            assert normalise_url(url) == normalise_url.__wrapped__(url)
            assert safe_url(url) == safe_url.__wrapped__(url)
    for _ in range(2):
        with pytest.raises(ValueError):
            normalise_url("/relative/path")


def test_url_allowed_reads_the_host_host_of_reads():
    """url_allowed splits the URL once; its host is host_of's (the host Scrapy sends to)."""
    from types import SimpleNamespace

    for url in URL_CASES + ["mailto:x@y", "ftp://ex.fr/x", "http://sub.ex.fr/x", "http://ex.fr.evil.org/"]:
        for domains in (["ex.fr"], ["localhost"], ["127.0.0.1"], ["grandlyon.com"], ["xn--bcher-kva.de"]):
            entry = SimpleNamespace(domains=domains, allow=[], deny=[])
            host = host_of(url)
            expected = bool(url.strip().lower().startswith(("http://", "https://")) and host
                            and host_in_domains(host, domains))
            assert url_allowed(entry, url) == expected, (url, domains)
