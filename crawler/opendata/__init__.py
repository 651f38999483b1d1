"""Readers of open-data lists of council deliberations (SCDL CSV, Opendatasoft, local CSVs).

Stage: crawl. Input: the bytes of a deliberations dataset downloaded by the crawler (see
``deliberation_datasets`` in ``crawler/metropoles.yaml``). Output: a :class:`ParseResult`
holding one :class:`DeliberationRow` per good record (its document URL, date, subject and
votes, attached as metadata to the downloaded deliberation) and one :class:`RowError` per bad
record, which is reported and skipped while the good rows go on.

Modules: :mod:`~crawler.opendata.records` (the records), :mod:`~crawler.opendata.columns`
(column names and their variants), :mod:`~crawler.opendata.values` (cell values: dates,
SIRET, matter codes, votes, URLs), :mod:`~crawler.opendata.rows` (checks and counts),
:mod:`~crawler.opendata.tabular` (CSV), :mod:`~crawler.opendata.opendatasoft` (the JSON
shapes of Opendatasoft portals).

Public functions: :func:`parse_dataset` (dispatch on the registry's dataset format),
:func:`parse_scdl_csv`, :func:`parse_deliberations_csv`, :func:`parse_opendatasoft`,
:func:`parse_date`.
"""
from __future__ import annotations

import codecs

from crawler.opendata.opendatasoft import parse_opendatasoft
from crawler.opendata.records import DeliberationRow, ParseResult, RowError
from crawler.opendata.tabular import parse_deliberations_csv, parse_scdl_csv
from crawler.opendata.values import parse_date

__all__ = [
    "DeliberationRow", "ParseResult", "RowError", "parse_dataset", "parse_date",
    "parse_deliberations_csv", "parse_opendatasoft", "parse_scdl_csv",
]


def parse_dataset(data: bytes, dataset_format: str, source: str = "", content_type: str | None = None) -> ParseResult:
    """Parse a dataset listed in the registry (``format``: scdl-csv | opendatasoft).

    For ``opendatasoft`` the JSON or CSV export is told apart by ``content_type`` when given,
    else by the first non-blank byte (``[`` or ``{`` -> JSON).
    """
    if dataset_format == "scdl-csv":
        return parse_scdl_csv(data, source)
    if dataset_format == "opendatasoft":
        ct = (content_type or "").lower()
        if "json" in ct:
            return parse_opendatasoft(data, source, fmt="json")
        if "csv" in ct or "text/plain" in ct:
            return parse_opendatasoft(data, source, fmt="csv")
        head = data.lstrip(codecs.BOM_UTF8).lstrip()[:1]
        return parse_opendatasoft(data, source, fmt="json" if head in (b"[", b"{") else "csv")
    raise ValueError(f"unknown dataset format {dataset_format!r} (expected scdl-csv or opendatasoft)")
