"""Fixtures of the crawler tests: the fixture web site (tests/crawler/mockserver.py) and
helpers to run a crawl against it with politeness delays off."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mockserver import MockServer, start_server  # noqa: E402

# Fast but still polite where it is tested: 2 requests per domain, small timeouts/backoff.
TEST_OVERRIDES: dict[str, Any] = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
    "DOWNLOAD_TIMEOUT": 1,
    "RETRY_TIMES": 1,
    "BAROMETRE_BACKOFF_BASE": 0.1,
    "BAROMETRE_RETRY_AFTER_MAX": 5,
    "BAROMETRE_MAX_QUERY_VARIANTS": 5,
    "BAROMETRE_PROGRESS_INTERVAL": 0,
    "contact": "tests@barometre.invalid",
    # The fixture server runs on this machine: an explicit allowance of the fetch policy.
    "allow_addresses": ["127.0.0.1"],
}


def fixture_registry(server: MockServer, **limits: Any) -> dict[str, Any]:
    """A one-entry registry pointing at the fixture server."""
    return {
        "version": 1,
        "defaults": {"max_pages": 100, "max_depth": 4, "max_file_bytes": 100_000, **limits},
        "metropoles": [{
            "slug": "testville",
            "name": "Métropole de test",
            "siren": "100000009",
            "domains": ["127.0.0.1"],
            "start_urls": [server.url + "/"],
            "deliberation_datasets": [{"url": server.url + "/data/deliberations.csv", "format": "scdl-csv"}],
            "fictional": True,
        }],
    }


@pytest.fixture(scope="module")
def server() -> Any:
    srv = start_server()
    yield srv
    srv.stop()
