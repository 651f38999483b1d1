"""The fetch policy (issue 13): enforced where requests leave, on the URL Scrapy sends.

Unit tests of crawler.policy, then crawls of the fixture server whose dataset rows and
redirects point outside the entry or at internal addresses: refused and recorded, never
requested."""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request

from conftest import TEST_OVERRIDES, fixture_registry
from crawler.outcomes import BlockedAddress, OffsiteRequest
from crawler.policy import AddressPolicy, FetchPolicyMiddleware, address_problem
from crawler.run import run_crawl
from nlp.config import shared_repro_dir
from nlp.store import CorpusStore


class _Stats:
    def inc_value(self, *args: Any) -> None:
        pass


def _middleware(allowed: list[str] | None = None) -> FetchPolicyMiddleware:
    return FetchPolicyMiddleware({"m": ["127.0.0.1", "example.org"]}, AddressPolicy(allowed or []), _Stats())


@pytest.mark.parametrize("address,problem", [
    ("127.0.0.1", "loopback"), ("127.0.0.2", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("192.168.1.1", "private"), ("172.16.0.1", "private"), ("fd00::1", "private"),
    ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"), ("100.64.0.1", "non-public"),
    ("8.8.8.8", None), ("2001:4860:4860::8888", None),
])
def test_address_problems(address: str, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


def test_allowance_is_explicit_and_narrow() -> None:
    assert AddressPolicy().refusal("127.0.0.1")
    policy = AddressPolicy(["127.0.0.1"])
    assert policy.refusal("127.0.0.1") is None
    assert "loopback" in policy.refusal("127.0.0.2")
    assert "link-local" in policy.refusal("169.254.169.254")
    assert policy.refusal("example.org") is None  # a name: checked once resolved
    assert AddressPolicy(["10.0.0.0/8"]).refusal("10.9.9.9") is None


def test_backslash_url_goes_to_the_host_scrapy_sends_to() -> None:
    """urlsplit would read host 127.0.0.1 (inside the domains); Scrapy sends to localhost."""
    mw = _middleware(["127.0.0.1"])
    request = Request("http://localhost:18732\\@127.0.0.1:18731/bs", meta={"b_m": "m"})
    assert request.url.startswith("http://localhost:18732/")
    with pytest.raises(OffsiteRequest, match="'localhost' is outside"):
        mw.process_request(request)


def test_literal_addresses_refused_before_the_domain_check() -> None:
    mw = _middleware(["127.0.0.1"])
    assert mw.process_request(Request("http://127.0.0.1:8080/x", meta={"b_m": "m"})) is None
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.2/x", "http://[::1]/x",
                "http://10.0.0.1/x", "http://0.0.0.0/"):
        with pytest.raises(BlockedAddress):
            mw.process_request(Request(url, meta={"b_m": "m"}))
    with pytest.raises(OffsiteRequest):
        mw.process_request(Request("http://elsewhere.org/x", meta={"b_m": "m"}))
    # a dataset's own domains widen the scope of its requests only
    assert mw.process_request(Request("http://127.0.0.1/x", meta={"b_m": "m", "b_scope": ["data.org"]})) is None
    with pytest.raises(OffsiteRequest):
        mw.process_request(Request("http://files.data.org/x", meta={"b_m": "m"}))
    # no entry (robots.txt): inside some entry's scope
    with pytest.raises(OffsiteRequest):
        mw.process_request(Request("http://elsewhere.org/robots.txt"))


def test_per_host_answers_are_the_same_when_asked_again(monkeypatch: Any) -> None:
    """The address and scope answers are memoised per host (and entry): asked again, in any
    order, each request gets the answer it got from a fresh middleware."""
    from twisted.internet import defer, reactor

    monkeypatch.setattr(reactor, "resolve", lambda name, *a: defer.Deferred(), raising=False)
    mw = FetchPolicyMiddleware({"m": ["127.0.0.1", "example.org"], "n": ["data.org"]},
                               AddressPolicy(["127.0.0.1"]), _Stats())
    mw.any_scope = ["127.0.0.1", "data.org", "example.org"]
    cases = [("http://127.0.0.1/x", {"b_m": "m"}), ("http://files.data.org/x", {"b_m": "m"}),
             ("http://files.data.org/x", {"b_m": "m", "b_scope": ["data.org"]}),
             ("http://files.data.org/x", {"b_m": "n"}), ("http://127.0.0.1/x", {"b_m": "n"}),
             ("http://127.0.0.2/x", {"b_m": "m"}), ("http://files.data.org/robots.txt", {}),
             ("http://127.0.0.1/x", {"b_m": "n", "b_scope": ["127.0.0.1"]})]

    def outcome(middleware: FetchPolicyMiddleware, url: str, meta: dict[str, Any]) -> Any:
        try:
            result = middleware.process_request(Request(url, meta=dict(meta)))
        except (BlockedAddress, OffsiteRequest) as exc:
            return type(exc).__name__, str(exc)
        return "resolve" if result is not None else None

    expected = []
    for url, meta in cases:
        fresh = FetchPolicyMiddleware(mw.scopes, mw.addresses, _Stats())
        fresh.any_scope = mw.any_scope
        expected.append(outcome(fresh, url, meta))
    assert [x[0] if isinstance(x, tuple) else x for x in expected] == [
        None, "OffsiteRequest", "resolve", "resolve", "OffsiteRequest", "BlockedAddress", "resolve", None]
    for _ in range(2):
        for (url, meta), answer in zip(cases + cases[::-1], expected + expected[::-1]):
            assert outcome(mw, url, meta) == answer, (url, meta)


def test_resolved_names_are_checked_once(monkeypatch: Any) -> None:
    from twisted.internet import defer, reactor

    calls = []

    def fake_resolve(name: str, *args: Any) -> Any:
        calls.append(name)
        return defer.succeed("127.0.0.1")

    monkeypatch.setattr(reactor, "resolve", fake_resolve, raising=False)
    mw = _middleware()
    outcome: list[Any] = []
    mw.process_request(Request("http://example.org/x", meta={"b_m": "m"})).addBoth(outcome.append)
    assert outcome[0].check(BlockedAddress)
    assert "example.org resolves to 127.0.0.1, a loopback address" in str(outcome[0].value)
    with pytest.raises(BlockedAddress):  # the verdict is cached: no second resolution
        mw.process_request(Request("http://example.org/y", meta={"b_m": "m"}))
    assert calls == ["example.org"]
    # allowed: the Deferred fires with None and the request goes on
    mw = _middleware(["127.0.0.1"])
    outcome.clear()
    mw.process_request(Request("http://example.org/x", meta={"b_m": "m"})).addBoth(outcome.append)
    assert outcome == [None]


# --- crawls of the fixture server ------------------------------------------------------------

def _crawl(server: Any, tmp_path: Path, dataset: dict[str, Any], **overrides: Any) -> dict[str, dict[str, Any]]:
    registry = fixture_registry(server)
    entry = registry["metropoles"][0]
    entry["start_urls"] = [server.url + "/redirect-out", server.url + "/strategie-numerique.html"]
    entry["deliberation_datasets"] = [dataset]
    server.reset()
    run_crawl(registry, tmp_path / "corpus", tmp_path / "out",
              overrides={**TEST_OVERRIDES, "BAROMETRE_USE_SITEMAPS": False, **overrides}, progress=False)
    with CorpusStore(tmp_path / "corpus") as store:
        return {f["url"]: f for f in store.fetches()}


@pytest.mark.slow
def test_hostile_dataset_rows_and_redirects_are_refused_and_recorded(server: Any, tmp_path: Path) -> None:
    fetches = _crawl(server, tmp_path, {"url": server.url + "/data/hostile.csv", "format": "scdl-csv"})
    port = server.port
    assert fetches[f"{server.url}/delib-files/2024-001.pdf"]["status"] == "ok"
    assert fetches[f"http://localhost:{port}/delib-files/2024-003.pdf"]["status"] == "offsite"
    meta = fetches["http://169.254.169.254/latest/meta-data/"]
    assert meta["status"] == "blocked-address" and "link-local" in meta["error"]
    assert fetches[f"http://127.0.0.2:{port}/x.pdf"]["status"] == "blocked-address"
    assert fetches["http://10.1.2.3/x.pdf"]["status"] == "blocked-address"
    redirect = fetches[server.url + "/redirect-out"]
    assert redirect["status"] == "offsite" and "localhost" in redirect["error"]
    # Nothing reached the server under another host name.
    assert all(r["host"].startswith("127.0.0.1") for r in server.requests)
    assert not any(r["path"] == "/outside.html" for r in server.requests)


@pytest.mark.slow
def test_a_dataset_may_leave_the_entry_only_where_the_registry_says(server: Any, tmp_path: Path) -> None:
    dataset = {"url": server.url + "/data/hostile.csv", "format": "scdl-csv", "domains": ["localhost"]}
    fetches = _crawl(server, tmp_path, dataset)
    assert fetches[f"http://localhost:{server.port}/delib-files/2024-003.pdf"]["status"] == "ok"
    # ... and the pages of the entry itself gain nothing from it.
    assert fetches[server.url + "/redirect-out"]["status"] == "offsite"
    # Without the allowance, localhost resolves to a loopback address: refused.
    fetches = _crawl(server, tmp_path / "b", dataset, allow_addresses=[])
    assert {f["status"] for f in fetches.values()} == {"blocked-address"}
    assert server.requests == []


def test_repro_backslash_registry_through_the_cli(tmp_path: Path, capsys: Any) -> None:
    """../shared/repro's backslash registry: `barometre crawl` ends with one line, exit 1,
    before anything is fetched."""
    repro = shared_repro_dir() / "registry_backslash_start_url__domain_bypass.yaml"
    if not repro.exists():
        pytest.skip("../shared/repro is absent")
    from nlp.cli import main

    code = main(["crawl", "--registry", str(repro), "--corpus-dir", str(tmp_path / "c"),
                 "--outputs-dir", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "start_urls[1]" in err[0] and "backslash" in err[0]
    assert not (tmp_path / "c" / "corpus.sqlite").exists()


def test_unresolvable_names_are_not_sent_unchecked(monkeypatch: Any) -> None:
    from twisted.internet import defer, reactor
    from twisted.internet.error import DNSLookupError

    monkeypatch.setattr(reactor, "resolve", lambda name, *a: defer.fail(DNSLookupError(name)), raising=False)
    outcome: list[Any] = []
    _middleware().process_request(Request("http://example.org/x", meta={"b_m": "m"})).addBoth(outcome.append)
    assert outcome[0].check(DNSLookupError)
