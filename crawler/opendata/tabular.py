"""CSV deliberation datasets: SCDL "délibérations" files, local variants, local formats.

Stage: crawl. Input: the bytes of a CSV file and its :class:`~crawler.opendata.options.
ReadOptions`. Output: a :class:`~crawler.opendata.records.ParseResult`.

SCDL "délibérations" CSV (schema versions 1.1, 2.0 and 2.1.5/latest have the same 17 columns,
in a different order in 1.1): ``COLL_NOM, COLL_SIRET, DELIB_ID, DELIB_DATE,
DELIB_MATIERE_CODE, DELIB_MATIERE_NOM, DELIB_OBJET, BUDGET_ANNEE, BUDGET_NOM, PREF_ID,
PREF_DATE, VOTE_EFFECTIF, VOTE_REEL, VOTE_POUR, VOTE_CONTRE, VOTE_ABSTENTION, DELIB_URL``;
columns are found by name (:mod:`crawler.opendata.columns`). A local format that no name
matches is read through the column mapping the registry declares for the dataset (by header
name or by position; header-less files; records spanning several physical lines).

Messy real files are expected: the text is decoded by :func:`nlp.io.decode_bytes` (a BOM;
UTF-8, windows-1252, UTF-16; UTF-8 once mis-decoded as windows-1252, "DÃ©libÃ©ration", is
repaired) and the separator found by :func:`nlp.io.sniff_delimiter` (``;`` ``,`` tab ``|``,
a title line above the header); line breaks inside quoted fields; Excel escapes such as
``_x0001_``.

Row numbers are those a spreadsheet shows: records, not physical lines (a record whose quoted
field spans three lines is one row), header = row 1, first data record = row 2; blank records
count as rows and are skipped silently. For records of N lines, a row is N lines. Skipped: a
record with more or fewer fields than the header (trailing empty fields excepted), a record
opening a quote that is never closed. A field may be as long as the file (the csv module's
131,072-character default would stop the reading there and drop every later row).
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
from typing import Any, Iterator

from crawler.opendata.columns import FIELD_ALIASES, map_columns, norm_name, schema_of
from crawler.opendata.options import ReadOptions
from crawler.opendata.records import ParseResult, RowError
from crawler.opendata.rows import RowBuilder
from crawler.opendata.values import clean
from nlp.io import decode_bytes, sniff_delimiter

logger = logging.getLogger(__name__)


def decode_text(data: bytes, result: ParseResult, encoding: str | None = None) -> str:
    """The text of a dataset file (:func:`nlp.io.decode_bytes`, or the declared encoding);
    what was done to read it becomes a file-level warning."""
    if encoding:
        result.encoding = encoding
        text = data.decode(encoding, errors="replace")
        if "\ufffd" in text:
            result.warnings.append(RowError(0, f"bytes invalid in {encoding} replaced by U+FFFD"))
        return text.lstrip("\ufeff").replace("\x00", "")
    decoded = decode_bytes(data)
    result.encoding = decoded.encoding
    result.warnings.extend(RowError(0, note) for note in decoded.notes)
    return decoded.text


@contextlib.contextmanager
def _field_size_for(text: str) -> Iterator[None]:
    """Let the csv module read a field as long as the whole text (its default stops at
    131,072 characters). The limit is process-wide: it is restored afterwards."""
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


def group_lines(records: list[list[str]], n: int, result: ParseResult) -> list[list[str]]:
    """Join every ``n`` non-blank physical records into one (records of ``n`` lines); an
    incomplete last group is an error."""
    if n <= 1:
        return records
    lines = [r for r in records if any(c.strip() for c in r)]
    grouped = [sum(lines[i:i + n], []) for i in range(0, len(lines) - len(lines) % n, n)]
    if len(lines) % n:
        result.errors.append(RowError(len(grouped) + 1, (
            f"the last record has {len(lines) % n} of its {n} lines; row skipped")))
    return grouped


class _Layout:
    """Which field of a record is which: found from a header (SCDL names and their
    variants), or declared by the registry (by header name or position)."""

    def __init__(self, result: ParseResult, options: ReadOptions) -> None:
        self.result = result
        self.options = options
        self.names: list[str] | None = None
        self.mapping: dict[str, int] = {}
        self.others: dict[int, str] = {}
        self.preamble: list[int] = []
        if not options.header:
            self._declare(None)

    def offer(self, row_number: int, record: list[str]) -> bool:
        """Take ``record`` as the header if it is one; False when the search must stop."""
        names = [clean(c) for c in record]
        if self.options.columns:
            if self._declare(names):
                return True
        else:
            mapping, others = map_columns(names)
            if "delib_id" in mapping and ("objet" in mapping or "url" in mapping):
                self.names, self.mapping, self.others = names, mapping, others
                self._found()
                return True
        self.preamble.append(row_number)
        return len(self.preamble) < 10

    def missing_header(self) -> RowError:
        if self.options.columns:
            wanted = [w for w in self.options.columns.values() if not isinstance(w, int)]
            return RowError(0, f"no header among the first rows has the columns {wanted} named by the "
                               "registry's column mapping")
        return RowError(0, (
            "no header with a deliberation id column and a subject or URL column found "
            "(expected SCDL names such as DELIB_ID, DELIB_OBJET, DELIB_URL, or a column mapping in the registry)"))

    def _declare(self, names: list[str] | None) -> bool:
        """The registry's mapping against ``names`` (None: no header)."""
        keys = [norm_name(n) for n in names] if names is not None else []
        mapping: dict[str, int] = {}
        for field, where in self.options.columns.items():
            if isinstance(where, int):
                mapping[field] = where
            elif norm_name(where) in keys:
                mapping[field] = keys.index(norm_name(where))
            else:
                return False
        self.names = names
        self.mapping = mapping
        taken = set(mapping.values())
        self.others = {i: k or f"column_{i + 1}" for i, k in enumerate(keys) if i not in taken}
        self._found()
        return True

    def _found(self) -> None:
        result, names = self.result, self.names or []
        if "delib_date" not in self.mapping:
            result.warnings.append(RowError(0, "no DELIB_DATE column: rows have no date"))
        result.schema = schema_of(names) if names else "local"
        result.columns = {k: (names[i] if i < len(names) else f"#{i}") for k, i in self.mapping.items()}
        if self.preamble:
            first, last = self.preamble[0], self.preamble[-1]
            span = f"row {first}" if first == last else f"rows {first}-{last}"
            result.warnings.append(RowError(first, f"{span} before the header skipped"))

    @property
    def width(self) -> int:
        """Fields a record must have: the header's, or what the mapping reaches."""
        if self.names is not None:
            return len(self.names)
        return max(self.mapping.values(), default=-1) + 1

    @property
    def ready(self) -> bool:
        return self.names is not None or (not self.options.header and bool(self.mapping))


def parse_deliberations_csv(data: bytes, source: str = "", *, fmt: str = "scdl-csv",
                            options: ReadOptions | None = None) -> ParseResult:
    """Parse a deliberations CSV (SCDL, a local variant, or a local format read through the
    registry's column mapping) given as bytes.

    ``source`` (the dataset URL or path) appears in the result and resolves relative
    DELIB_URLs when it is an http(s) URL. ``fmt`` is recorded as the result's format.
    Never raises on bad content: problems are in ``errors`` / ``warnings``.
    """
    options = options or ReadOptions()
    result = ParseResult(source=source, format=fmt)
    text = decode_text(data, result, options.encoding)
    if not text.strip():
        result.errors.append(RowError(0, "the file is empty"))
        return result
    result.delimiter = options.delimiter or sniff_delimiter(text)
    records, unclosed = read_records(text, result.delimiter, result)
    records = group_lines(records, options.record_lines, result)
    builder = RowBuilder(result, source, keep=options.keep)
    layout = _Layout(result, options)
    for row_number, record in enumerate(records, start=1):
        if not any(cell.strip() for cell in record):
            continue
        if not layout.ready:
            if not layout.offer(row_number, record) and not layout.ready:
                break
            continue
        if unclosed and row_number == len(records):
            result.records += 1
            result.errors.append(RowError(row_number, (
                "a quote opened in this record is never closed: it swallowed the rest of the file; row skipped")))
            break
        builder.has_date = "delib_date" in layout.mapping
        _add_record(result, builder, layout, row_number, record)
    if not layout.ready and not result.file_error:
        result.errors.append(layout.missing_header())
    builder.finish()
    log_result(result)
    return result


def _add_record(result: ParseResult, builder: RowBuilder, layout: _Layout, row_number: int,
                record: list[str]) -> None:
    result.records += 1
    n = layout.width
    if len(record) > n and not any(c.strip() for c in record[n:]):
        record = record[:n]  # trailing separators written by spreadsheets
    if len(record) != n and (layout.names is not None or len(record) < n):
        result.errors.append(RowError(
            row_number, f"{len(record)} fields where the header has {n} (a stray separator or quote?); row skipped"))
        return
    values = {k: clean(record[i], keep_lines=(k == "objet")) for k, i in layout.mapping.items() if k in FIELD_ALIASES}
    extra = {key: clean(record[i]) for i, key in layout.others.items() if i < len(record)}
    extra.update({k: clean(record[i]) for k, i in layout.mapping.items() if k not in FIELD_ALIASES})
    if layout.names is None:
        taken = set(layout.mapping.values())
        extra.update({f"column_{i + 1}": clean(c) for i, c in enumerate(record) if i not in taken})
    builder.add(row_number, values, extra)


def parse_scdl_csv(data: bytes, source: str = "", options: ReadOptions | None = None) -> ParseResult:
    """Parse an SCDL "délibérations" CSV (1.1, 2.0, 2.1.x) or a local variant: see
    :func:`parse_deliberations_csv`."""
    return parse_deliberations_csv(data, source, fmt="scdl-csv", options=options)


def log_result(result: ParseResult) -> None:
    logger.info(
        "%s: %d rows kept, %d skipped, %d filtered, %d warnings (%s, %s)", result.source or "dataset",
        len(result.rows), len(result.errors), result.filtered, len(result.warnings), result.format, result.encoding,
    )
