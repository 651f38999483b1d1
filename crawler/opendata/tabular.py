"""CSV deliberation datasets: SCDL "délibérations" files and local variants.

Stage: crawl. Input: the bytes of a CSV file. Output: a
:class:`~crawler.opendata.records.ParseResult`.

SCDL "délibérations" CSV (schema versions 1.1, 2.0 and 2.1.5/latest have the same 17 columns,
in a different order in 1.1): ``COLL_NOM, COLL_SIRET, DELIB_ID, DELIB_DATE,
DELIB_MATIERE_CODE, DELIB_MATIERE_NOM, DELIB_OBJET, BUDGET_ANNEE, BUDGET_NOM, PREF_ID,
PREF_DATE, VOTE_EFFECTIF, VOTE_REEL, VOTE_POUR, VOTE_CONTRE, VOTE_ABSTENTION, DELIB_URL``;
columns are found by name (:mod:`crawler.opendata.columns`).

Messy real files are expected: the text is decoded by :func:`nlp.io.decode_bytes` (a BOM;
UTF-8, windows-1252, UTF-16; UTF-8 once mis-decoded as windows-1252, "DÃ©libÃ©ration", is
repaired) and the separator found by :func:`nlp.io.sniff_delimiter` (``;`` ``,`` tab ``|``,
a title line above the header); line breaks inside quoted fields; Excel escapes such as
``_x0001_``.

Row numbers are those a spreadsheet shows: records, not physical lines (a record whose quoted
field spans three lines is one row), header = row 1, first data record = row 2; blank records
count as rows and are skipped silently. Skipped: a record with more or fewer fields than the
header (trailing empty fields excepted), a record opening a quote that is never closed. A
field may be as long as the file (the csv module's 131,072-character default would stop the
reading there and drop every later row).
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
from typing import Any, Iterator

from crawler.opendata.columns import map_columns, schema_of
from crawler.opendata.records import ParseResult, RowError
from crawler.opendata.rows import RowBuilder
from crawler.opendata.values import clean
from nlp.io import decode_bytes, sniff_delimiter

logger = logging.getLogger(__name__)


def decode_text(data: bytes, result: ParseResult) -> str:
    """The text of a dataset file (:func:`nlp.io.decode_bytes`); what was done to read it
    becomes a file-level warning."""
    decoded = decode_bytes(data)
    result.encoding = decoded.encoding
    result.warnings.extend(RowError(0, note) for note in decoded.notes)
    return decoded.text


@contextlib.contextmanager
def _field_size_for(text: str) -> Iterator[None]:
    """Let the csv module read a field as long as the whole text (its default stops at
    131,072 characters: the parser would give up there and every later row be lost). The
    limit is process-wide: it is restored afterwards."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, len(text) + 1))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def read_records(text: str, delim: str, result: ParseResult) -> tuple[list[list[str]], bool]:
    """(records, ends inside an unclosed quote?). A CSV error stops the reading; it is
    reported on the record after the last one read."""
    with _field_size_for(text):
        return _read_records(text, delim, result)


def _read_records(text: str, delim: str, result: ParseResult) -> tuple[list[list[str]], bool]:
    def reader(strict: bool) -> Any:
        return csv.reader(io.StringIO(text, newline=""), delimiter=delim, quotechar='"', doublequote=True,
                          strict=strict)
    records: list[list[str]] = []
    it = reader(False)
    while True:
        try:
            records.append(next(it))
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(RowError(
                len(records) + 1, f"CSV error: {exc} (an unclosed quote?); the rest of the file was not read"))
            break
    # The lenient reader ends an unclosed quoted field at the end of the file silently; the
    # strict one says so (it also rejects `"a" b`, which the lenient reading keeps).
    unclosed = False
    try:
        for _ in reader(True):
            pass
    except csv.Error as exc:
        unclosed = "unexpected end of data" in str(exc)
    return records, unclosed


class _Header:
    """Finds the header among the first records (a title line may stand above it)."""

    def __init__(self, result: ParseResult, builder: RowBuilder) -> None:
        self.result = result
        self.builder = builder
        self.names: list[str] | None = None
        self.mapping: dict[str, int] = {}
        self.others: dict[int, str] = {}
        self.preamble: list[int] = []

    def offer(self, row_number: int, record: list[str]) -> bool:
        """Take ``record`` as the header if it is one; False when the search must stop."""
        names = [clean(c) for c in record]
        mapping, others = map_columns(names)
        if "delib_id" in mapping and ("objet" in mapping or "url" in mapping):
            self.names, self.mapping, self.others = names, mapping, others
            self._found()
            return True
        self.preamble.append(row_number)
        return len(self.preamble) < 10

    def _found(self) -> None:
        result, names = self.result, self.names or []
        self.builder.has_date = "delib_date" in self.mapping
        if not self.builder.has_date:
            result.warnings.append(RowError(0, "no DELIB_DATE column: rows have no date"))
        result.schema = schema_of(names)
        result.columns = {k: names[i] for k, i in self.mapping.items()}
        if self.preamble:
            first, last = self.preamble[0], self.preamble[-1]
            span = f"row {first}" if first == last else f"rows {first}-{last}"
            result.warnings.append(RowError(first, f"{span} before the header skipped"))


def parse_deliberations_csv(data: bytes, source: str = "", *, fmt: str = "scdl-csv") -> ParseResult:
    """Parse a deliberations CSV (SCDL or a local variant) given as bytes.

    ``source`` (the dataset URL or path) appears in the result and resolves relative
    DELIB_URLs when it is an http(s) URL. ``fmt`` is recorded as the result's format.
    Never raises on bad content: problems are in ``errors`` / ``warnings``.
    """
    result = ParseResult(source=source, format=fmt)
    text = decode_text(data, result)
    if not text.strip():
        result.errors.append(RowError(0, "the file is empty"))
        return result
    result.delimiter = sniff_delimiter(text)
    records, unclosed = read_records(text, result.delimiter, result)
    builder = RowBuilder(result, source)
    header = _Header(result, builder)
    for row_number, record in enumerate(records, start=1):
        if not any(cell.strip() for cell in record):
            continue
        if header.names is None:
            if not header.offer(row_number, record) and header.names is None:
                break
            continue
        if unclosed and row_number == len(records):
            result.records += 1
            result.errors.append(RowError(row_number, (
                "a quote opened in this record is never closed: it swallowed the rest of the file; row skipped")))
            break
        _add_record(result, builder, header, row_number, record)
    if header.names is None:
        result.errors.append(RowError(0, (
            "no header with a deliberation id column and a subject or URL column found "
            "(expected SCDL names such as DELIB_ID, DELIB_OBJET, DELIB_URL)")))
    log_result(result)
    return result


def _add_record(result: ParseResult, builder: RowBuilder, header: _Header, row_number: int,
                record: list[str]) -> None:
    result.records += 1
    n = len(header.names or [])
    if len(record) > n and not any(c.strip() for c in record[n:]):
        record = record[:n]  # trailing separators written by spreadsheets
    if len(record) != n:
        result.errors.append(RowError(
            row_number, f"{len(record)} fields where the header has {n} (a stray separator or quote?); row skipped"))
        return
    values = {k: clean(record[i], keep_lines=(k == "objet")) for k, i in header.mapping.items()}
    extra = {key: clean(record[i]) for i, key in header.others.items()}
    builder.add(row_number, values, extra)


def parse_scdl_csv(data: bytes, source: str = "") -> ParseResult:
    """Parse an SCDL "délibérations" CSV (1.1, 2.0, 2.1.x) or a local variant: see
    :func:`parse_deliberations_csv`."""
    return parse_deliberations_csv(data, source, fmt="scdl-csv")


def log_result(result: ParseResult) -> None:
    logger.info(
        "%s: %d rows kept, %d skipped, %d warnings (%s, %s)", result.source or "dataset", len(result.rows),
        len(result.errors), len(result.warnings), result.format, result.encoding,
    )
