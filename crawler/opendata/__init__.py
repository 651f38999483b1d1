"""Readers of open-data lists of council deliberations (SCDL CSV, Opendatasoft, data.gouv.fr,
local formats).

Stage: crawl. Input: the bytes of a deliberations dataset downloaded by the crawler (see
``deliberation_datasets`` in ``crawler/metropoles.yaml``). Output: a :class:`ParseResult`
holding one :class:`DeliberationRow` per good record (its document URL, date, subject and
votes, attached as metadata to the downloaded deliberation) and one :class:`RowError` per bad
record, which is reported and skipped while the good rows go on.

Modules: :mod:`~crawler.opendata.records` (the records), :mod:`~crawler.opendata.options`
(how a dataset is read: filter, column mapping), :mod:`~crawler.opendata.columns` (column
names and their variants), :mod:`~crawler.opendata.values` (cell values: dates, SIRET, matter
codes, votes, URLs), :mod:`~crawler.opendata.rows` (checks, duplicates, filters),
:mod:`~crawler.opendata.tabular` (CSV), :mod:`~crawler.opendata.opendatasoft` (the JSON shapes,
paging and attachments of Opendatasoft portals), :mod:`~crawler.opendata.datagouv`
(data.gouv.fr dataset references).

Public functions: :func:`parse_dataset` (dispatch on the registry's dataset format),
:func:`parse_scdl_csv`, :func:`parse_deliberations_csv`, :func:`parse_opendatasoft`,
:func:`parse_date`.
"""
from __future__ import annotations

import codecs

from crawler.opendata.opendatasoft import parse_opendatasoft
from crawler.opendata.options import ReadOptions
from crawler.opendata.records import DeliberationRow, ParseResult, RowError
from crawler.opendata.rows import RowFilter
from crawler.opendata.tabular import parse_deliberations_csv, parse_scdl_csv
from crawler.opendata.values import parse_date

__all__ = [
    "DeliberationRow", "ParseResult", "ReadOptions", "RowError", "RowFilter", "parse_dataset", "parse_date",
    "parse_deliberations_csv", "parse_opendatasoft", "parse_scdl_csv",
]

# Formats a dataset (or a data.gouv.fr resource) is read as.
READ_FORMATS = ("scdl-csv", "local-csv", "opendatasoft", "auto")


def parse_dataset(data: bytes, dataset_format: str, source: str = "", content_type: str | None = None,
                  options: ReadOptions | None = None) -> ParseResult:
    """Parse a dataset file (``dataset_format``: scdl-csv | local-csv | opendatasoft | auto).

    For ``opendatasoft`` and ``auto`` the JSON or CSV form is told apart by ``content_type``
    when it says, else by the first non-blank byte (``[`` or ``{`` -> JSON).
    """
    if dataset_format in ("scdl-csv", "local-csv"):
        return parse_deliberations_csv(data, source, fmt=dataset_format, options=options)
    if dataset_format in ("opendatasoft", "auto"):
        ct = (content_type or "").lower()
        if "json" in ct:
            fmt = "json"
        elif "csv" in ct:
            fmt = "csv"
        else:
            head = data.lstrip(codecs.BOM_UTF8).lstrip()[:1]
            fmt = "json" if head in (b"[", b"{") else "csv"
        if dataset_format == "auto" and fmt == "csv":
            return parse_deliberations_csv(data, source, fmt="scdl-csv", options=options)
        return parse_opendatasoft(data, source, fmt=fmt, options=options)
    raise ValueError(f"unknown dataset format {dataset_format!r} (expected one of {', '.join(READ_FORMATS)})")
