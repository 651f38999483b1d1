"""The fetch policy, enforced where requests leave: a downloader middleware.

Stage: crawl. Input: every request a spider, the robots.txt middleware or the redirect
middleware sends (start URLs, links, sitemaps, dataset rows, redirects), as the URL Scrapy
will actually send (a ``Request`` holds w3lib's safe form of its URL: ``http://a\\@b/`` goes to
host ``a``). Output: the request goes on, or it is refused with
:class:`~crawler.outcomes.OffsiteRequest` (recorded ``offsite`` in ``fetches``) or
:class:`~crawler.outcomes.BlockedAddress` (recorded ``blocked-address``).

Rules, in order:

1. http and https only.
2. An IP address written in the URL must be a public one: loopback, private, link-local
   (169.254.169.254 is the cloud metadata address), multicast, reserved, unspecified or any
   other non-global address is refused, unless the setting ``BAROMETRE_ALLOWED_ADDRESSES``
   (addresses or networks, e.g. ``["127.0.0.1"]`` for a server on this machine, as the tests
   and the demo set it) allows it.
3. The host must be inside the scope of the request's registry entry: its ``domains``, plus
   for a dataset and the documents it lists the dataset's own ``domains`` (request meta
   ``b_scope``). A request without an entry (robots.txt) must be inside some entry's scope.
4. A host name is resolved (through the reactor's resolver: Scrapy's cache, so the address
   checked is the address used) and the address checked as in rule 2; a name that does not
   resolve is a ``dns-error`` here, never sent unchecked.

Redirects are new requests and go through the same rules, so a redirect to another host or to
an internal address is refused like a link to it.
"""
from __future__ import annotations

import functools
import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from scrapy.exceptions import NotConfigured

from crawler.outcomes import BlockedAddress, OffsiteRequest
from crawler.urls import host_in_domains

log = logging.getLogger(__name__)

MAX_CACHED_HOSTS = 10_000


def address_problem(ip: Any) -> str | None:
    """Why ``ip`` (an ``ipaddress`` address) is not a public address, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attr, label in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                        ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                        ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return label
    if not ip.is_global:
        return "non-public"
    return None


class AddressPolicy:
    """Which IP addresses requests may go to: public ones, plus the explicitly allowed."""

    def __init__(self, allowed: list[str] | tuple[str, ...] = ()) -> None:
        self.allowed = []
        for spec in allowed:
            try:
                self.allowed.append(ipaddress.ip_network(str(spec).strip(), strict=False))
            except ValueError as exc:
                raise NotConfigured(f"BAROMETRE_ALLOWED_ADDRESSES: {spec!r} is not an address or network: {exc}")

    def refusal(self, address: str, host: str | None = None) -> str | None:
        """A one-line reason to refuse ``address`` (what ``host`` resolved to, if given), or
        None when it may be fetched."""
        try:
            ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
        except ValueError:
            return None  # not an IP literal: a host name, checked once resolved
        problem = address_problem(ip)
        if problem is None or any(ip in net for net in self.allowed):
            return None
        what = f"{host} resolves to {address}, a" if host else f"{address} is a"
        return f"{what} {problem} address: never fetched unless allowed (setting BAROMETRE_ALLOWED_ADDRESSES)"


def is_ip(host: str) -> bool:
    """Is ``host`` an IP address literal (``[…]`` and a ``%zone`` allowed) rather than a name?"""
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


class FetchPolicyMiddleware:
    """Downloader middleware applying the fetch policy (module docstring) to every request."""

    def __init__(self, scopes: dict[str, list[str]], addresses: AddressPolicy, stats: Any) -> None:
        self.scopes = scopes
        self.any_scope = sorted({d for domains in scopes.values() for d in domains})
        self.addresses = addresses
        self.stats = stats
        self._resolved: dict[str, str | None] = {}  # host -> refusal (None: fine)
        # Rules 2 and 3 depend on the host (and entry) alone, and a crawl asks them again for
        # every request to the same few hosts: memoised per instance.
        self._literal_answer = functools.lru_cache(maxsize=MAX_CACHED_HOSTS)(self._literal_answer)
        self._entry_scope_has = functools.lru_cache(maxsize=MAX_CACHED_HOSTS)(self._entry_scope_has)

    @classmethod
    def from_crawler(cls, crawler: Any) -> "FetchPolicyMiddleware":
        metros = getattr(crawler.spider, "metros", None)
        if not isinstance(metros, dict):
            raise NotConfigured("not a registry spider")
        scopes = {slug: list(m.domains) for slug, m in metros.items()}
        extra = {slug: [d for ds in m.deliberation_datasets for d in ds.domains] for slug, m in metros.items()}
        addresses = AddressPolicy(crawler.settings.getlist("BAROMETRE_ALLOWED_ADDRESSES"))
        mw = cls(scopes, addresses, crawler.stats)
        # Requests without an entry (robots.txt) may go wherever an entry's requests may.
        mw.any_scope = sorted({d for slug in scopes for d in scopes[slug] + extra[slug]})
        return mw

    def process_request(self, request: Any, spider: Any = None) -> Any:
        parts = urlsplit(request.url)
        host = (parts.hostname or "").rstrip(".").lower()
        if parts.scheme not in ("http", "https") or not host:
            self._refuse(OffsiteRequest(f"not an http(s) URL with a host: {request.url[:300]}"))
        refusal, literal = self._literal_answer(host)
        if refusal:
            self._refuse(BlockedAddress(refusal))
        meta = request.meta
        entry = meta.get("b_m")
        extra = meta.get("b_scope")
        inside = host_in_domains(host, self._scope(entry, extra)) if extra else self._entry_scope_has(entry, host)
        if not inside:
            self._refuse(OffsiteRequest(f"host {host!r} is outside the registry entry's domains "
                                        f"{self._scope(entry, extra)}"))
        if literal:
            return None
        if host in self._resolved:
            refusal = self._resolved[host]
            if refusal:
                self._refuse(BlockedAddress(refusal))
            return None
        return self._resolve(host)

    def _literal_answer(self, host: str) -> tuple[str | None, bool]:
        """(refusal of ``host`` as an address literal — None for a name or a fine address —,
        whether it is an IP literal); memoised (see ``__init__``)."""
        return self.addresses.refusal(host), is_ip(host)

    def _scope(self, entry: str | None, extra: Any = None) -> list[str]:
        """Rule 3's domains: registry entry ``entry``'s, plus the request's ``b_scope`` hosts;
        any entry's for a request without one (robots.txt)."""
        return (self.scopes.get(entry, []) + list(extra or [])) if entry else self.any_scope

    def _entry_scope_has(self, entry: str | None, host: str) -> bool:
        """Is ``host`` inside ``entry``'s scope (no ``b_scope``)? Memoised (see ``__init__``)."""
        return host_in_domains(host, self._scope(entry))

    def _resolve(self, host: str) -> Any:
        """A Deferred that checks the address ``host`` resolves to: None, the request goes on;
        a failure, it does not. A name that does not resolve fails here (``dns-error``, retried
        like any DNS error) rather than being sent unchecked."""
        from twisted.internet import reactor

        def check(address: str) -> None:
            refusal = self.addresses.refusal(address, host)
            if len(self._resolved) < MAX_CACHED_HOSTS:
                self._resolved[host] = refusal
            if refusal:
                self._refuse(BlockedAddress(refusal))

        return reactor.resolve(host).addCallback(check)

    def _refuse(self, exc: Exception) -> None:
        self.stats.inc_value(f"barometre/policy/{getattr(exc, 'slug', 'refused')}")
        log.info("refused: %s", exc)
        raise exc
