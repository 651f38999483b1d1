"""Open-data deliberations spider: reads deliberation datasets, downloads each DELIB_URL.

Stage: crawl. Input: the ``deliberation_datasets`` of the registry entries (SCDL
"délibérations" CSV, or an Opendatasoft Explore API v2.1 export in JSON or CSV), parsed by
:mod:`crawler.scdl`. Output (through the pipeline): one document per DELIB_URL, whose
``sources`` row (``origin='scdl'``) carries the row's metadata (DELIB_ID, DELIB_DATE,
DELIB_MATIERE_CODE/NOM, DELIB_OBJET, votes, the dataset and row number); a ``fetches`` row per
URL tried (the dataset itself is recorded with ``kind='dataset'``, not stored as a document).

Bad rows (no id, mangled SIRET, bad URL...) are logged with their row number and reason and
skipped; the good rows go on. DELIB_URLs may live outside the entry's web domains (open-data
portals, document stores) only where the registry says so, per dataset (its ``domains``): a
row pointing elsewhere is recorded ``offsite``, one pointing at an internal address
``blocked-address`` (crawler.policy), and never requested. The
dataset is fetched again on every run (it is what says which documents exist); the documents
it lists get conditional requests like any stored file. Resume: the dataset is parsed again and
its rows re-yielded; the rows whose outcome the store holds are skipped.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator

from scrapy.http import Request, Response

from crawler.items import FetchRecord, SourceItem
from crawler.opendata import parse_dataset
from crawler.outcomes import http_status_slug
from crawler.spiders.base import BarometreSpider
from crawler.state import done_fetch
from crawler.urls import normalise_url

log = logging.getLogger(__name__)

# Bad rows logged one by one up to this many per dataset (all are counted).
MAX_ROW_ERRORS_LOGGED = 200


class DeliberationsSpider(BarometreSpider):
    name = "deliberations"
    origin = "scdl"

    def start_requests(self) -> Iterator[Request]:  # Scrapy < 2.13
        for slug, m in self.metros.items():
            for dataset in m.deliberation_datasets:
                yield self.make_request(
                    slug, normalise_url(dataset.url), kind="dataset", priority=100,
                    callback=self.parse_dataset, always=True,
                    extra_meta={"b_format": dataset.format, "b_title": dataset.title,
                                "b_scope": list(dataset.domains)},
                )

    def parse_dataset(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        m = meta["b_m"]
        if response.status != 200:
            yield FetchRecord(m, meta["b_url"], http_status_slug(response.status), "dataset",
                              http_status=response.status, error=f"HTTP {response.status}",
                              nbytes=len(response.body))
            return
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
        result = parse_dataset(response.body, meta["b_format"], response.url, content_type)
        stats = self.crawler.stats
        stats.inc_value("barometre/scdl/rows", len(result.rows))
        stats.inc_value("barometre/scdl/bad_rows", len(result.errors))
        for i, err in enumerate(result.errors):
            if i < MAX_ROW_ERRORS_LOGGED:
                log.warning("%s: %s row %d skipped: %s", m, response.url, err.row_number, err.reason)
        log.info("%s: dataset %s: %d rows, %d skipped, %d with a document URL", m, response.url,
                 len(result.rows), len(result.errors), sum(1 for r in result.rows if r.url))
        requests = []
        seen: set[str] = set()
        for row in result.rows:
            if not row.url:
                continue
            try:
                url = normalise_url(row.url)
            except ValueError:
                log.warning("%s: %s row %d skipped: bad DELIB_URL %r", m, response.url, row.row_number, row.url)
                continue
            if url in seen:
                continue  # a second row for the same file (duplicate id): first row's metadata kept
            seen.add(url)
            metadata = result.to_metadata(row)
            fetch = self.state.store.get_fetch(m, url)
            if done_fetch(fetch, self.state.done_since) and fetch.get("document_id"):
                # Already downloaded in this crawl (linked from the site, or before a kill):
                # attach the row to the stored document instead of fetching it again.
                stored = self.state.store.source_of(fetch["document_id"], m) or {}
                requests.append(SourceItem(
                    fetch["document_id"], m, stored.get("url") or url, fetch.get("http_status"),
                    fetched_at=fetch["fetched_at"], referer=response.url,
                    anchor_text=(row.objet or "")[:500] or None, headers=stored.get("headers") or {},
                    etag=fetch.get("etag"), last_modified=fetch.get("last_modified"),
                    origin=self.origin, metadata=metadata,
                ))
                continue
            requests.append(self.make_request(
                m, url, kind="document", depth=1, referer=response.url,
                anchor=(row.objet or "")[:500] or None, priority=50,
                extra_meta={"b_meta": metadata, "b_scope": meta.get("b_scope") or []},
                # Resumed: Scrapy's seen-set holds the rows queued before the kill, some of
                # them lost in flight (scrapy#4106); the gate skips those the store holds.
                dont_filter=self.state.resume,
            ))
        yield from requests
        error = f"{len(result.errors)} bad rows" if result.errors else None
        if result.file_error:
            error = result.file_error
        yield FetchRecord(m, meta["b_url"], "ok" if not result.file_error else "error", "dataset",
                          http_status=response.status, error=error, nbytes=len(response.body))
