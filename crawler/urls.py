"""URL helpers of the crawler: the canonical form of a URL, its host, and the registry's scope.

Stage: crawl. Input: URLs as found (start URLs, links, sitemap entries, dataset cells).
Output: the canonical URL each resource is fetched and recorded under, the host a request
will really go to, and whether a URL is inside a registry entry's domains.

The canonical form is w3lib's (:func:`w3lib.url.canonicalize_url`, the form Scrapy's own
request fingerprints use: lower-case scheme and host, IDNA host, percent-escapes with
upper-case hex, dot segments resolved, query arguments sorted, fragment dropped), computed on
the *safe* form of the URL (:func:`w3lib.url.safe_url_string`: what a Scrapy ``Request``
sends, where a backslash is a path separator as in browsers), plus what w3lib leaves out:

- tracking and session query parameters are dropped (``utm_*``, ``fbclid``, ``gclid``,
  ``jsessionid``, ``PHPSESSID`` …; :func:`w3lib.url.url_query_cleaner`);
- the default port (``:80`` for http, ``:443`` for https) is dropped;
- a session id written as a path parameter (``/page;jsessionid=0A1B``) is dropped;
- a trailing dot of the host is dropped.

Repeated query names are sorted with their values (``t=2&t=1`` → ``t=1&t=2``), and a ``%20``
in the query becomes ``+`` (both as w3lib does).
"""
from __future__ import annotations

import functools
import re
from typing import Protocol
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

from w3lib.url import canonicalize_url, safe_url_string, url_query_cleaner

# Query parameters that identify a visit, not a resource: dropped so that the same page is
# fetched once. Compared lower-case; ``utm_*`` by prefix.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid",
    "_hsenc", "_hsmi", "mkt_tok", "xtor", "at_medium", "at_campaign",
    "jsessionid", "phpsessid", "aspsessionid", "sessionid", "session_id", "cfid", "cftoken",
})
TRACKING_PREFIXES = ("utm_", "aspsessionid")
_PATH_SESSION_RE = re.compile(r";(jsessionid|phpsessid|sessionid)=[^/?#;]*", re.IGNORECASE)
DEFAULT_PORTS = {"http": 80, "https": 443}
# Memo sizes of the pure functions below (results depend on the argument only, so a cached
# answer is the answer). A site repeats its menus on every page: the same few hundred links
# are normalised again and again; a fresh URL is made safe up to three times on its way
# (normalised, scope-checked, its host read).
_SAFE_CACHE = 4096
_NORMALISE_CACHE = 16384  # entries: about 8,000 URLs and their normal forms


class Scoped(Protocol):
    """What :func:`url_allowed` needs of a registry entry."""

    domains: list[str]
    allow: list[str]
    deny: list[str]


@functools.lru_cache(maxsize=_SAFE_CACHE)
def safe_url(url: str) -> str:
    """The URL as a Scrapy ``Request`` would send it (w3lib's safe form). Memoised."""
    return safe_url_string(url.strip())


def host_of(url: str) -> str | None:
    """Lower-case host that a request for ``url`` goes to (read from the safe form, so
    ``http://a\\@b/`` is host ``a``, as Scrapy sends it), without a trailing dot; None if the
    URL has none or is not parseable."""
    try:
        return _host(urlsplit(safe_url(url)))
    except ValueError:
        return None


def _host(parts: SplitResult) -> str | None:
    """The host of a split URL, lower-case, without a trailing dot (None if it has none)."""
    host = parts.hostname
    return host.rstrip(".").lower() if host else None


def host_in_domains(host: str, domains: list[str] | tuple[str, ...] | frozenset[str]) -> bool:
    """True when ``host`` is one of ``domains`` or a subdomain of one of them."""
    return any(host == d or host.endswith("." + d) for d in domains)


def _is_tracking(key: str) -> bool:
    k = unquote_plus(key).strip().lower()
    return k in TRACKING_PARAMS or k.startswith(TRACKING_PREFIXES)


# URL -> its normal form, for the URLs normalised lately, and every normal form -> itself (a
# normal form is its own normal form): cleared when full (a dict, not an LRU, so that
# :func:`is_normal_form` is one lookup).
_NORMALISED: dict[str, str] = {}


def normalise_url(url: str) -> str:
    """Canonical form of an http(s) URL, used to fetch and record each resource once (see the
    module docstring). Raises ValueError for a URL without scheme or host (not memoised).
    Memoised: the canonical form depends on the URL alone (``normalise_url.__wrapped__`` is
    the computation itself)."""
    try:
        return _NORMALISED[url]
    except KeyError:
        pass
    canonical = _normalise(url)
    if len(_NORMALISED) >= _NORMALISE_CACHE:
        _NORMALISED.clear()
    _NORMALISED[url] = canonical
    _NORMALISED[canonical] = canonical
    return canonical


def is_normal_form(url: str) -> bool:
    """True when ``url`` is a normal form :func:`normalise_url` gave lately (False says only
    that it is not known to be one). A normal form is already in w3lib's safe form and is its
    own canonical form (``safe_url_string`` and ``canonicalize_url`` return it unchanged,
    tested): Scrapy need not compute either again for a request to it."""
    return _NORMALISED.get(url) == url


def _normalise(url: str) -> str:
    safe = safe_url(url)
    parts = urlsplit(safe)
    if not parts.scheme or not parts.netloc or not parts.hostname:
        raise ValueError(f"not an absolute URL: {url!r}")
    names = [p.split("=", 1)[0] for p in parts.query.split("&") if p]
    tracking = sorted({n for n in names if _is_tracking(n)})
    if tracking:
        safe = url_query_cleaner(safe, tracking, remove=True, unique=False, keep_fragments=True)
    canonical = canonicalize_url(safe, keep_blank_values=True)
    parts = urlsplit(canonical)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host
    if parts.port is not None and DEFAULT_PORTS.get(scheme) != parts.port:
        netloc = f"{host}:{parts.port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    path = _PATH_SESSION_RE.sub("", parts.path) or "/"
    return urlunsplit((scheme, netloc, path, parts.query, ""))


normalise_url.__wrapped__ = _normalise  # type: ignore[attr-defined]  # the uncached computation


def url_allowed(entry: Scoped, url: str) -> bool:
    """May the crawler of ``entry`` follow ``url``?

    True when the URL is http(s), the host it goes to is one of the entry's domains or a
    subdomain of one, no ``deny`` regex matches it and, when ``allow`` is not empty, at least
    one ``allow`` regex matches it. Regexes are searched (``re.search``) in the whole URL, as
    Scrapy's LinkExtractor does, so ``/deliberations/`` matches a path segment.
    """
    try:
        parts = urlsplit(safe_url(url))
        host = _host(parts)  # what host_of(url) reads, from the same split
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https"):
        return False
    if not host or not host_in_domains(host, entry.domains):
        return False
    if any(re.search(p, url) for p in entry.deny):
        return False
    if entry.allow and not any(re.search(p, url) for p in entry.allow):
        return False
    return True
