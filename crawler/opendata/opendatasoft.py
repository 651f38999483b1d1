"""Opendatasoft portals: the JSON shapes of the Explore API (v2.1, v2.0, v1), paging, record
attachments, and CSV exports.

Stage: crawl. Input: the bytes of an answer of an Opendatasoft portal and its URL. Output: a
:class:`~crawler.opendata.records.ParseResult`, and the URL of the next page when the answer
is one page of a paged API.

Shapes read: ``/exports/json`` (a list of records), ``/exports/jsonl``, v2.1 ``/records``
(``{"total_count": …, "results": […]}``), v2.0 ``{"records": [{"record": {"fields": …}}]}``,
v1 ``/api/records/1.0/search`` (``{"nhits": …, "records": [{"fields": …}]}``) and
``/exports/csv`` (``;`` and a BOM, read by :func:`crawler.opendata.tabular.
parse_deliberations_csv`). Fields are matched by name like CSV columns (the portals
lower-case SCDL names: ``delib_id``, ``delib_objet``…).

Attachments: a file field (``{"id": …, "filename": …, "format": "pdf", …}``: Tours's
``delib_url``) is the deliberation's document. v2.1 exports give its ``url``; v1 records do
not, and the file is downloaded from ``<portal>/explore/dataset/<dataset>/files/<id>/download/``
(as the portal's own pages link it).

Paging: v2.1 ``/records`` gives at most 100 records an answer (``limit``, ``offset``) and
no record past the 10,000th; v1 ``/search`` pages with ``rows`` and ``start``.
:func:`next_page_url` gives the next page until ``total_count`` / ``nhits`` is reached.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from crawler.opendata.columns import FIELD_ALIASES, map_columns, schema_of
from crawler.opendata.options import ReadOptions
from crawler.opendata.records import ParseResult, RowError
from crawler.opendata.rows import RowBuilder
from crawler.opendata.tabular import log_result, parse_deliberations_csv
from crawler.opendata.values import clean
from nlp.io import parse_json_line

# The records API gives no record past this offset (v2.1: offset + limit <= 10,000).
RECORDS_API_CAP = 10_000
_V2_DATASET_RE = re.compile(r"/api/(?:explore/)?v2(?:\.\d)?/catalog/datasets/([^/?#]+)")


def dataset_of(source: str) -> tuple[str, str, str] | None:
    """(portal origin, dataset id, API flavour "v1" | "v2.0" | "v2.1") of an Explore API URL."""
    try:
        parts = urlsplit(source)
    except ValueError:
        return None
    origin = f"{parts.scheme}://{parts.netloc}"
    m = _V2_DATASET_RE.search(parts.path)
    if m:
        return origin, m.group(1), "v2.1" if "/explore/v2.1/" in parts.path else "v2.0"
    if "/api/records/1.0/" in parts.path:
        dataset = dict(parse_qsl(parts.query)).get("dataset")
        if dataset:
            return origin, dataset, "v1"
    return None


def attachment_url(source: str) -> Callable[[dict[str, Any]], str | None]:
    """For the answer at ``source``: file field -> its download URL (None when unknown)."""
    where = dataset_of(source)

    def url_of(value: dict[str, Any]) -> str | None:
        if isinstance(value.get("url"), str):
            return value["url"]
        file_id = value.get("id")
        if where is None or not isinstance(file_id, str) or not re.fullmatch(r"[\w.-]{1,200}", file_id):
            return None
        origin, dataset, flavour = where
        if flavour == "v1":
            return f"{origin}/explore/dataset/{dataset}/files/{file_id}/download/"
        api = "api/explore/v2.1" if flavour == "v2.1" else "api/v2"
        return f"{origin}/{api}/catalog/datasets/{dataset}/files/{file_id}"

    return url_of


def _is_file(value: Any) -> bool:
    return isinstance(value, dict) and "id" in value and ("filename" in value or "mimetype" in value)


def ods_value(value: Any, file_url: Callable[[dict[str, Any]], str | None] | None = None) -> str:
    """An Opendatasoft JSON value as cell text (a file field as its download URL)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # integral floats (ids, SIRETs, counts exported as numbers) without ".0"
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, dict):
        if _is_file(value) and file_url is not None:
            url = file_url(value)
            if url:
                return url
        for key in ("url", "href", "link"):
            if isinstance(value.get(key), str):
                return value[key]
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, list):
        return "; ".join(ods_value(v, file_url) for v in value)
    return str(value)


def ods_records(doc: Any) -> tuple[list[Any], int | None]:
    """(records, declared total) from the JSON shapes of the Explore API."""
    if isinstance(doc, list):
        return doc, None
    if isinstance(doc, dict):
        total = doc.get("total_count", doc.get("nhits"))
        total = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
        if isinstance(doc.get("results"), list):  # v2.1 /records
            return doc["results"], total
        if isinstance(doc.get("records"), list):  # v2.0 {"record": {"fields"}} or v1 {"fields"}
            out = []
            for rec in doc["records"]:
                if isinstance(rec, dict) and isinstance(rec.get("record"), dict):
                    rec = rec["record"]
                if isinstance(rec, dict) and isinstance(rec.get("fields"), dict):
                    rec = rec["fields"]
                out.append(rec)
            return out, total
    raise ValueError("not an Opendatasoft export: expected a list of records, {'results': [...]} or {'records': [...]}")


def load_json(data: bytes, result: ParseResult) -> Any:
    """The JSON document (or JSON Lines, as a list) in ``data``; None with a file-level error
    when it is not one. Read by :func:`nlp.io.parse_json_line`: nesting, huge integers, lone
    surrogates and invalid UTF-8 are errors, not crashes."""
    if not data.strip():
        result.errors.append(RowError(0, "the file is empty"))
        return None
    whole = parse_json_line(data, 1)
    if whole.error is None:
        return whole.value
    lines = [(n, ln) for n, ln in enumerate(data.splitlines(), start=1) if ln.strip()]
    values = []
    for n, raw in lines:
        line = parse_json_line(raw, n)
        if line.error is not None:
            where = "" if len(lines) == 1 else f" (nor JSON Lines: line {n}: {line.error})"
            result.errors.append(RowError(0, f"{whole.error}{where}"))
            return None
        values.append(line.value)
    return values


def page_position(source: str) -> tuple[str, int, int] | None:
    """(offset parameter, offset, page size) of a paged records API URL, None otherwise."""
    where = dataset_of(source)
    if where is None:
        return None
    parts = urlsplit(source)
    params = dict(parse_qsl(parts.query))
    if where[2] == "v1" and "/search" in parts.path:
        name, size_name, default = "start", "rows", 10
    elif where[2] != "v1" and parts.path.rstrip("/").endswith("/records"):
        name, size_name, default = "offset", "limit", 10
    else:
        return None
    try:
        return name, max(0, int(params.get(name, 0))), max(1, int(params.get(size_name, default)))
    except ValueError:
        return None


def next_page_url(source: str, result: ParseResult) -> str | None:
    """The URL of the page after the answer at ``source``, or None (last page, not a paged
    API, or past what the records API gives: then a warning says to use the exports)."""
    position = page_position(source)
    total = result.declared_total
    if position is None or total is None or result.page_records == 0:
        return None
    name, offset, _size = position
    following = offset + result.page_records
    if following >= total:
        return None
    if name == "offset" and following >= RECORDS_API_CAP:
        result.warnings.append(RowError(0, (
            f"the dataset holds {total} records and the records API gives the first {RECORDS_API_CAP:,} only: "
            "declare its /exports/json URL instead")))
        return None
    parts = urlsplit(source)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    params.append((name, str(following)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), ""))


def parse_opendatasoft(data: bytes, source: str = "", fmt: str = "json",
                       options: ReadOptions | None = None) -> ParseResult:
    """Parse an answer of an Opendatasoft portal (see the module docstring).

    ``fmt``: "json" (every JSON shape; JSON Lines too) or "csv" (``/exports/csv``). Row
    numbers are 1-based record positions, counted from ``options.first_row`` (a later page).
    Never raises on bad content.
    """
    options = options or ReadOptions()
    if fmt == "csv":
        return parse_deliberations_csv(data, source, fmt="opendatasoft-csv", options=options)
    if fmt not in ("json", "jsonl"):
        raise ValueError(f"fmt must be 'json' or 'csv', got {fmt!r}")
    result = ParseResult(source=source, format="opendatasoft-json", encoding="utf-8")
    doc = load_json(data, result)
    if doc is None:
        return result
    try:
        records, total = ods_records(doc)
    except ValueError as exc:
        result.errors.append(RowError(0, str(exc)))
        return result
    result.declared_total = total
    result.page_records = len(records)
    if total is not None and total > len(records) and page_position(source) is None:
        result.warnings.append(RowError(0, (
            f"the answer holds {len(records)} of {total} records (a paginated /records page); "
            "use /exports/json for the whole dataset")))
    _read_records(result, records, source, options)
    return result


def _read_records(result: ParseResult, records: list[Any], source: str, options: ReadOptions) -> None:
    builder = RowBuilder(result, source, keep=options.keep)
    file_url = attachment_url(source)
    names_seen: dict[str, None] = {}
    # Records of one export share their keys: map each distinct key list once.
    mappings: dict[tuple[str, ...], tuple[dict[str, int], dict[int, str]]] = {}
    for position, rec in enumerate(records, start=options.first_row):
        if not isinstance(rec, dict):
            result.records += 1
            result.errors.append(RowError(position, f"record is a {type(rec).__name__}, not an object; skipped"))
            continue
        if not rec:
            continue
        result.records += 1
        names = [str(n) for n in rec]
        names_seen.update(dict.fromkeys(names))
        key = tuple(names)
        if key not in mappings:
            mappings[key] = _mapping(names, options)
        mapping, others = mappings[key]
        cells = list(rec.values())
        values = {k: clean(ods_value(cells[i], file_url), keep_lines=(k == "objet"))
                  for k, i in mapping.items() if k in FIELD_ALIASES}
        extra = {key: clean(ods_value(cells[i], file_url)) for i, key in others.items()}
        extra.update({k: clean(ods_value(cells[i], file_url)) for k, i in mapping.items() if k not in FIELD_ALIASES})
        builder.has_date = "delib_date" in mapping
        if "delib_id" not in mapping:
            result.errors.append(RowError(position, f"no deliberation id field among {names[:30]}; skipped"))
            continue
        builder.add(position, values, extra)
    builder.finish()
    if names_seen:
        m, _ = _mapping(list(names_seen), options)
        result.schema = schema_of(names_seen)
        result.columns = {k: list(names_seen)[i] for k, i in m.items()}
    log_result(result)


def _mapping(names: list[str], options: ReadOptions) -> tuple[dict[str, int], dict[int, str]]:
    """Field mapping of a record: by name (SCDL names and variants), the registry's column
    mapping first when it names fields of this record."""
    mapping, others = map_columns(names)
    for field, where in options.columns.items():
        if isinstance(where, str) and where in names:
            index = names.index(where)
            mapping = {k: i for k, i in mapping.items() if i != index and k != field}
            mapping[field] = index
            others.pop(index, None)
    return mapping, others
