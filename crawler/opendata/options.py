"""How a dataset file is read: the options a registry entry declares per dataset.

Stage: crawl. :class:`ReadOptions` carries the dataset's publisher ``filter``, and for local
formats that are not SCDL the column mapping (by header name or 0-based position), whether the
file has a header, how many physical lines one record spans, its encoding and separator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crawler.opendata.rows import RowFilter


@dataclass(frozen=True)
class ReadOptions:
    """``columns``: canonical field (``delib_id``, ``delib_date``, ``objet``, ``url``,
    ``coll_nom``, ``coll_siret``, ``matiere_code``, ``matiere_nom``, ``vote_pour`` …, or any
    other name, kept in ``extra``) -> header name or 0-based position; ``header``: the file's
    first record(s) name the columns; ``record_lines``: physical lines per record (the header
    spans as many); ``encoding`` / ``delimiter``: instead of detecting them; ``first_row``: the
    row number of the first record (a page of a paged API answer); ``keep``: the publisher
    filter."""

    keep: RowFilter | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    header: bool = True
    record_lines: int = 1
    encoding: str | None = None
    delimiter: str | None = None
    first_row: int = 1

    @classmethod
    def of(cls, dataset: Any, first_row: int = 1) -> "ReadOptions":
        """The options of a registry :class:`~crawler.registry.models.Dataset` (duck-typed)."""
        return cls(keep=RowFilter.of(getattr(dataset, "filter", None)),
                   columns=dict(getattr(dataset, "columns", None) or {}),
                   header=getattr(dataset, "header", True), record_lines=getattr(dataset, "record_lines", 1),
                   encoding=getattr(dataset, "encoding", None), delimiter=getattr(dataset, "delimiter", None),
                   first_row=first_row)
