"""Open-data deliberations spider: reads deliberation datasets, downloads each document.

Stage: crawl. Input: the ``deliberation_datasets`` of the registry entries, read by
:mod:`crawler.opendata`:

- ``scdl-csv``: an SCDL "délibérations" CSV (or a local variant whose columns are found by
  name); ``local-csv``: a local format read through the dataset's column mapping;
- ``opendatasoft``: an Explore API answer: a whole export (``/exports/json`` or ``/exports/csv``)
  or a paged records API (v2.1 ``/records``, v1 ``/api/records/1.0/search``), whose next pages
  are requested until ``total_count`` is reached; record attachments are the documents;
- ``datagouv``: a data.gouv.fr dataset (page or API URL), resolved through the data.gouv.fr API
  to its CSV and JSON resources (optionally chosen by the dataset's ``resources`` regex), each
  read as above.

Output (through the pipeline): one document per DELIB_URL, whose ``sources`` row
(``origin='scdl'``) carries the row's metadata (DELIB_ID, DELIB_DATE, DELIB_MATIERE_CODE/NOM,
DELIB_OBJET, votes, the dataset and row number); a ``fetches`` row per URL tried (every
dataset answer is recorded with ``kind='dataset'``, not stored as a document).

Bad rows (no id, unreadable date, no subject nor URL...) are logged with their row number and
reason and skipped; rows outside the dataset's ``filter`` are counted and left out; the good
rows go on. DELIB_URLs may live outside the entry's web domains (open-data portals, document
stores) only where the registry says so, per dataset (its ``domains``): a row pointing
elsewhere is recorded ``offsite``, one pointing at an internal address ``blocked-address``
(crawler.policy), and never requested. The dataset is fetched again on every run (it is what
says which documents exist); the documents it lists get conditional requests like any stored
file. Resume: the dataset is parsed again and its rows re-yielded; the rows whose outcome the
store holds are skipped.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator

from scrapy.http import Request, Response

from crawler.items import FetchRecord, SourceItem
from crawler.opendata import ParseResult, ReadOptions, parse_dataset
from crawler.opendata.datagouv import api_url, parse_datagouv
from crawler.opendata.opendatasoft import next_page_url
from crawler.opendata.records import DeliberationRow
from crawler.outcomes import http_status_slug
from crawler.registry import Dataset
from crawler.spiders.base import BarometreSpider
from crawler.state import done_fetch
from crawler.attribution import from_publisher_fields
from crawler.urls import host_of, normalise_url

log = logging.getLogger(__name__)

# Bad rows logged one by one up to this many per dataset answer (all are counted).
MAX_ROW_ERRORS_LOGGED = 200


def read_format(dataset: Dataset, resource_kind: str | None = None) -> str:
    """How an answer of ``dataset`` is read (a data.gouv.fr resource by its kind)."""
    if dataset.format != "datagouv":
        return dataset.format
    if dataset.columns:
        return "local-csv" if resource_kind == "csv" else "opendatasoft"
    return "auto"


class DeliberationsSpider(BarometreSpider):
    name = "deliberations"
    origin = "scdl"

    def first_requests(self) -> Iterator[Request]:
        for slug, m in self.metros.items():
            for index, dataset in enumerate(m.deliberation_datasets):
                resolve = dataset.format == "datagouv"
                url = api_url(dataset.url) if resolve else dataset.url
                yield self.dataset_request(slug, index, normalise_url(url),
                                           self.parse_datagouv if resolve else self.parse_dataset)

    def dataset_request(self, slug: str, index: int, url: str, callback: Any, *, first_row: int = 1,
                        read: str | None = None, referer: str | None = None) -> Request:
        dataset = self.metros[slug].deliberation_datasets[index]
        return self.make_request(
            slug, url, kind="dataset", priority=100, callback=callback, always=True, referer=referer,
            extra_meta={"b_ds": index, "b_first_row": first_row, "b_read": read or read_format(dataset),
                        "b_scope": list(dataset.domains)},
        )

    def _dataset(self, response: Response) -> Dataset:
        return self.metros[response.meta["b_m"]].deliberation_datasets[response.meta["b_ds"]]

    def _failed(self, response: Response) -> FetchRecord | None:
        if response.status == 200:
            return None
        meta = response.meta
        return FetchRecord(meta["b_m"], meta["b_url"], http_status_slug(response.status), "dataset",
                           http_status=response.status, error=f"HTTP {response.status}", nbytes=len(response.body),
                           aliases=self.aliases(response))

    # -- data.gouv.fr ------------------------------------------------------------------------
    def parse_datagouv(self, response: Response) -> Iterator[Any]:
        """A data.gouv.fr dataset answer: request each of its data resources."""
        failed = self._failed(response)
        if failed is not None:
            yield failed
            return
        meta, dataset = response.meta, self._dataset(response)
        found = parse_datagouv(response.body, response.url, dataset.resources)
        for problem in found.warnings:
            log.warning("%s: %s: %s", meta["b_m"], response.url, problem)
        for resource in found.resources:
            try:
                url = normalise_url(resource.url)
            except ValueError:
                log.warning("%s: %s: resource URL %r unusable", meta["b_m"], response.url, resource.url)
                continue
            yield self.dataset_request(meta["b_m"], meta["b_ds"], url, self.parse_dataset,
                                       read=read_format(dataset, resource.kind), referer=response.url)
        error = found.errors[0].reason if found.errors else None
        yield FetchRecord(meta["b_m"], meta["b_url"], "error" if error else "ok", "dataset",
                          http_status=response.status, error=error, nbytes=len(response.body),
                          aliases=self.aliases(response))

    # -- dataset answers ---------------------------------------------------------------------
    def parse_dataset(self, response: Response) -> Iterator[Any]:
        failed = self._failed(response)
        if failed is not None:
            yield failed
            return
        meta = response.meta
        m = meta["b_m"]
        options = ReadOptions.of(self._dataset(response), first_row=meta.get("b_first_row", 1))
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
        result = parse_dataset(response.body, meta["b_read"], response.url, content_type, options)
        self._report(m, response.url, result)
        yield from self.row_items(response, result)
        following = next_page_url(response.url, result) if meta["b_read"] in ("opendatasoft", "auto") else None
        if following:
            try:
                yield self.dataset_request(m, meta["b_ds"], normalise_url(following), self.parse_dataset,
                                           first_row=options.first_row + result.page_records, read=meta["b_read"],
                                           referer=response.url)
            except ValueError:
                log.warning("%s: next page URL %r unusable", m, following)
        error = f"{len(result.errors)} bad rows" if result.errors else None
        if result.file_error:
            error = result.file_error
        yield FetchRecord(m, meta["b_url"], "ok" if not result.file_error else "error", "dataset",
                          http_status=response.status, error=error, nbytes=len(response.body),
                          aliases=self.aliases(response))

    def _report(self, m: str, url: str, result: ParseResult) -> None:
        stats = self.crawler.stats
        stats.inc_value("barometre/scdl/rows", len(result.rows))
        stats.inc_value("barometre/scdl/bad_rows", len(result.errors))
        stats.inc_value("barometre/scdl/filtered_rows", result.filtered)
        for i, err in enumerate(result.errors):
            if i < MAX_ROW_ERRORS_LOGGED:
                log.warning("%s: %s row %d skipped: %s", m, url, err.row_number, err.reason)
        for warning in result.warnings:
            if warning.row_number == 0 or "mangled" in warning.reason:
                log.warning("%s: %s: %s", m, url, warning)
        log.info("%s: dataset %s: %d rows, %d skipped, %d filtered out, %d with a document URL", m, url,
                 len(result.rows), len(result.errors), result.filtered, sum(1 for r in result.rows if r.url))

    def row_items(self, response: Response, result: ParseResult) -> Iterator[Any]:
        """A request per document URL, or a source row when this crawl already stored it."""
        m = response.meta["b_m"]
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
                continue  # a second row for the same file: the first row's metadata kept
            seen.add(url)
            item = self.row_item(response, row, url, result.to_metadata(row))
            if item is not None:
                yield item

    def row_item(self, response: Response, row: DeliberationRow, url: str, metadata: dict[str, Any]) -> Any:
        m = response.meta["b_m"]
        store = self.crawl_state.store
        fetch = store.get_fetch(m, url)
        anchor = (row.objet or "")[:500] or None
        if done_fetch(fetch, self.crawl_state.done_since) and fetch.get("document_id"):
            # Already downloaded in this crawl (linked from the site, or before a kill):
            # attach the row to the stored document instead of fetching it again.
            stored = store.source_of(fetch["document_id"], m) or {}
            attribution = stored.get("attribution")
            entry = self.metros[m]
            if entry.is_shared(host_of(url)):
                decided = from_publisher_fields(metadata, entry.siren, entry.name)
                if decided is not None and decided.decision == "other":
                    return None  # the row's publisher is not the metropolis
                attribution = self.attribution_value(decided) if decided is not None else attribution
            return SourceItem(
                fetch["document_id"], m, stored.get("url") or url, fetch.get("http_status"),
                fetched_at=fetch["fetched_at"], referer=response.url, anchor_text=anchor,
                headers=stored.get("headers") or {}, etag=fetch.get("etag"),
                last_modified=fetch.get("last_modified"), origin=self.origin, metadata=metadata,
                attribution=attribution,
            )
        return self.make_request(
            m, url, kind="document", depth=1, referer=response.url, anchor=anchor, priority=50,
            extra_meta={"b_meta": metadata, "b_scope": response.meta.get("b_scope") or []},
            # Resumed: Scrapy's seen-set holds the rows queued before the kill, some of them
            # lost in flight (scrapy#4106); the gate skips those the store holds.
            dont_filter=self.crawl_state.resume,
        )
