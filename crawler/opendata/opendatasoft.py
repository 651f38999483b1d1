"""Opendatasoft portals: the JSON shapes of the Explore API (v2.1, v2.0, v1) and CSV exports.

Stage: crawl. Input: the bytes of an answer of an Opendatasoft portal. Output: a
:class:`~crawler.opendata.records.ParseResult`. Shapes read: ``/exports/json`` (a list of
records), ``/exports/jsonl``, v2.1 ``/records`` (``{"total_count": …, "results": […]}``),
v2.0 ``{"records": [{"record": {"fields": …}}]}``, v1 ``/api/records/1.0/search``
(``{"nhits": …, "records": [{"fields": …}]}``) and ``/exports/csv`` (``;`` and a BOM, read
by :func:`crawler.opendata.tabular.parse_deliberations_csv`). Fields are matched by name like
CSV columns (the portals lower-case SCDL names: ``delib_id``, ``delib_objet``…).
"""
from __future__ import annotations

import json
from typing import Any

from crawler.opendata.columns import map_columns, schema_of
from crawler.opendata.records import ParseResult, RowError
from crawler.opendata.rows import RowBuilder
from crawler.opendata.tabular import log_result, parse_deliberations_csv
from crawler.opendata.values import clean
from nlp.io import parse_json_line


def ods_value(value: Any) -> str:
    """An Opendatasoft JSON value as cell text."""
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
        # a file field: {"url": …, "filename": …, "mimetype": …}
        for key in ("url", "href", "link"):
            if isinstance(value.get(key), str):
                return value[key]
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, list):
        return "; ".join(ods_value(v) for v in value)
    return str(value)


def ods_records(doc: Any) -> tuple[list[Any], int | None]:
    """(records, declared total) from the JSON shapes of the Explore API."""
    if isinstance(doc, list):
        return doc, None
    if isinstance(doc, dict):
        total = doc.get("total_count", doc.get("nhits"))
        total = total if isinstance(total, int) else None
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
            where = "" if len(lines) == 1 else " (nor JSON Lines: line {n}: {line.error})".format(n=n, line=line)
            result.errors.append(RowError(0, f"{whole.error}{where}"))
            return None
        values.append(line.value)
    return values


def parse_opendatasoft(data: bytes, source: str = "", fmt: str = "json") -> ParseResult:
    """Parse an Opendatasoft Explore API v2.1 export of a deliberations dataset.

    ``fmt``: "json" (``/exports/json`` list, ``/records`` object, v1/v2.0 ``records``; JSON
    Lines are also accepted) or "csv" (``/exports/csv``: ``;`` and a BOM, read by
    :func:`parse_deliberations_csv`). Fields are matched by name like CSV columns (the portal
    lower-cases SCDL names: ``delib_id``, ``delib_objet``…). Row numbers are 1-based record
    positions. Never raises on bad content.
    """
    if fmt == "csv":
        return parse_deliberations_csv(data, source, fmt="opendatasoft-csv")
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
    if total is not None and total > len(records):
        result.warnings.append(RowError(0, (
            f"the answer holds {len(records)} of {total} records (a paginated /records page); "
            "use /exports/json for the whole dataset")))
    builder = RowBuilder(result, source)
    names_seen: dict[str, None] = {}
    # Records of one export share their keys: map each distinct key list once.
    mappings: dict[tuple[str, ...], tuple[dict[str, int], dict[int, str]]] = {}
    for position, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            result.records += 1
            result.errors.append(RowError(position, f"record is a {type(rec).__name__}, not an object; skipped"))
            continue
        if not rec:
            continue
        result.records += 1
        names = list(rec)
        names_seen.update(dict.fromkeys(names))
        key = tuple(names)
        if key not in mappings:
            mappings[key] = map_columns(names)
        mapping, others = mappings[key]
        values = {k: clean(ods_value(rec[names[i]]), keep_lines=(k == "objet")) for k, i in mapping.items()}
        extra = {key: clean(ods_value(rec[names[i]])) for i, key in others.items()}
        if "delib_id" not in mapping:
            result.errors.append(RowError(position, f"no deliberation id field among {names}; skipped"))
            continue
        builder.add(position, values, extra)
    if names_seen:
        m, _ = map_columns(list(names_seen))
        result.schema = schema_of(names_seen)
        result.columns = {k: list(names_seen)[i] for k, i in m.items()}
    log_result(result)
    return result

