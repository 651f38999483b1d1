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


def _random_urls(n: int, seed: int = 20261128) -> list[str]:
    """Seeded URLs with what real links carry: case, ports, IDN and IPv6 hosts, dot segments,
    raw non-ASCII, spaces, escapes in either case, session and tracking parameters, repeated
    and blank query names, '+' and '%20', fragments, backslashes."""
    import random

    rng = random.Random(seed)
    hosts = ["Ex.FR", "www.grandlyon.com", "bücher.de", "[::1]", "127.0.0.1", "ex.fr.", "a-b.metropole.fr"]
    segments = ["a", "B", ".", "..", "délib", "x y", "%c3%a9", "%C3%A9", "p;jsessionid=0A1B", "~u", "a+b",
                "%2F", "ç", "文", "", "index.php", "a%20b", "x\\y", "'q'", "(1)"]
    keys = ["a", "t", "utm_source", "fbclid", "id", "PHPSESSID", "q", "é", "x y", "k%3D", ""]
    values = ["", "1", "2", "é", "a b", "a+b", "%20", "%c3%a9", "x=y", "/p", "?"]
    urls = []
    for _ in range(n):
        scheme = rng.choice(["http", "https", "HTTP", "Https"])
        port = rng.choice(["", "", ":80", ":443", ":8080"])
        path = "/".join(rng.choice(segments) for _ in range(rng.randint(0, 5)))
        query = "&".join(f"{rng.choice(keys)}={rng.choice(values)}" if rng.random() < 0.8 else rng.choice(keys)
                         for _ in range(rng.randint(0, 4)))
        url = f"{scheme}://{rng.choice(hosts)}{port}/{path}"
        if query or rng.random() < 0.2:
            url += "?" + query
        if rng.random() < 0.3:
            url += "#" + rng.choice(["top", "é", "a b"])
        urls.append(url)
    return urls


def test_normal_forms_are_fixed_points_of_what_scrapy_computes_again():
    """Requests to a normal form skip Scrapy's safe-URL encoding (CrawlRequest) and the
    fingerprint's canonicalisation (NormalFormFingerprinter): both are exact only because a
    normal form comes back unchanged from safe_url_string and canonicalize_url, and the
    fingerprint is then Scrapy's own, byte for byte."""
    from scrapy.http import Request
    from scrapy.utils.request import fingerprint
    from w3lib.url import safe_url_string

    from crawler.spiders.base import CrawlRequest, NormalFormFingerprinter
    from crawler.urls import is_normal_form

    checked = 0
    for url in URL_CASES + _random_urls(3000):
        try:
            normal = normalise_url(url)
        except ValueError:
            continue
        checked += 1
        assert is_normal_form(normal), url
        assert normalise_url(normal) == normal, url
        assert safe_url_string(normal) == normal, url
        assert canonicalize_url(normal, keep_fragments=False) == normal, url
        request = CrawlRequest(normal)
        assert request.url == Request(normal).url == normal
        assert NormalFormFingerprinter().fingerprint(request) == fingerprint(Request(normal)), url
    assert checked > 2500
    # A URL that is not a normal form gets Scrapy's own computations.
    raw = "HTTP://Ex.FR/a b?b=2&a=1#top"
    assert not is_normal_form(raw)
    assert CrawlRequest(raw).url == Request(raw).url
    assert NormalFormFingerprinter().fingerprint(CrawlRequest(raw)) == fingerprint(Request(raw))
    post = CrawlRequest(normalise_url("https://ex.fr/f"), method="POST", body=b"a=1")
    assert NormalFormFingerprinter().fingerprint(post) == fingerprint(post)
