"""Records of the open-data readers: one row per deliberation, one error per bad record.

Stage: crawl. :class:`DeliberationRow` is attached as metadata to the downloaded deliberation
(its ``sources`` row); :class:`ParseResult` is what each reader returns for one dataset file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RowError:
    """A problem with one record: ``row_number`` as a spreadsheet shows it (0 = whole file)."""

    row_number: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.reason}" if self.row_number else self.reason


@dataclass
class DeliberationRow:
    """One deliberation listed in a dataset.

    ``delib_date`` is ISO ``YYYY-MM-DD`` or None; ``url`` is the document's http(s) URL
    (DELIB_URL) or None; ``votes`` has the keys effectif, reel, pour, contre, abstention
    (int or None); ``extra`` holds the other non-empty columns (budget_annee, budget_nom,
    pref_id, pref_date (ISO), and any local column under its normalised name) plus ``*_raw``
    values that failed a check. ``coll_siret_valid`` says whether ``coll_siret`` is 14 digits
    passing the Luhn check.
    """

    row_number: int
    delib_id: str
    delib_date: str | None = None
    matiere_code: str | None = None
    matiere_nom: str | None = None
    objet: str | None = None
    url: str | None = None
    coll_nom: str | None = None
    coll_siret: str | None = None
    coll_siret_valid: bool = False
    votes: dict[str, int | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ParseResult:
    """Outcome of parsing one dataset file.

    ``rows``: good records; ``errors``: skipped records (and file-level problems, row 0);
    ``warnings``: kept records with a problem; ``format``: scdl-csv | opendatasoft-csv |
    opendatasoft-json | local-csv; ``schema``: "scdl" when the columns are SCDL names, else
    "local"; ``columns``: canonical field -> column name as found; ``records``: data records
    read (blank ones excluded); ``declared_total``: the API's ``total_count`` when given (a
    paginated ``/records`` answer holds fewer records than this); ``filtered``: rows left out
    by the dataset's ``filter``; ``page_records``: records in this answer (for paging).
    """

    source: str = ""
    format: str = ""
    schema: str = ""
    encoding: str | None = None
    delimiter: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    rows: list[DeliberationRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    records: int = 0
    declared_total: int | None = None
    filtered: int = 0
    page_records: int = 0

    @property
    def file_error(self) -> str | None:
        """The reason the whole file could not be read, if so."""
        return next((e.reason for e in self.errors if e.row_number == 0), None)

    def to_metadata(self, row: DeliberationRow) -> dict[str, Any]:
        """JSON-able metadata for the source row of the document at ``row.url``."""
        meta: dict[str, Any] = {
            "dataset_source": self.source,
            "dataset_format": self.format,
            "dataset_row": row.row_number,
        }
        d = row.to_dict()
        d.pop("row_number")
        meta.update(d)
        return meta
