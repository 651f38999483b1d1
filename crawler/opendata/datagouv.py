"""data.gouv.fr datasets: from a dataset reference to the files that hold the rows.

Stage: crawl. Input: a data.gouv.fr dataset page URL (``/fr/datasets/<slug>/``) or API URL
(``/api/1/datasets/<slug or id>/``) from the registry, then the API's JSON answer. Output:
the dataset's resources worth reading, each with the reader its rows need.

The API answers ``{"id", "slug", "title", "organization": {"name", …}, "resources": [{"id",
"title", "url", "format", "mime", "filetype", "last_modified", …}]}``. A resource's declared
``format`` is not trusted alone (Mégalis Bretagne uploads its SCDL CSVs with ``format: xml``):
the kind is read from the format, the MIME type and the URL's extension, CSV first, and the
bytes decide in the end (:func:`crawler.opendata.parse_dataset` with format ``auto``).
Resources that are neither CSV nor JSON (PDF, ZIP, XLS…) are reported, not read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from crawler.opendata.records import RowError
from nlp.io import parse_json_line

_PAGE_RE = re.compile(r"^/(?:[a-z]{2}/)?datasets/([^/?#]+)/?$")
_API_RE = re.compile(r"^/api/[12]/datasets/([^/?#]+)/?$")


def api_url(url: str) -> str:
    """The API URL of a data.gouv.fr dataset given by its page or API URL (unchanged when
    it is neither)."""
    parts = urlsplit(url)
    m = _PAGE_RE.match(parts.path)
    if m and not _API_RE.match(parts.path):
        return urlunsplit((parts.scheme, parts.netloc, f"/api/1/datasets/{m.group(1)}/", "", ""))
    return url


@dataclass
class Resource:
    """A file of a data.gouv.fr dataset: ``kind`` csv | json | other."""

    url: str
    title: str
    kind: str
    declared_format: str = ""


@dataclass
class DatagouvDataset:
    """The parts of the API answer the crawler uses; ``errors`` / ``warnings`` as in a
    :class:`~crawler.opendata.records.ParseResult` (row 0: the whole file)."""

    title: str = ""
    organization: str = ""
    resources: list[Resource] = field(default_factory=list)
    skipped: list[Resource] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)


def resource_kind(resource: dict[str, Any]) -> str:
    """csv | json | other, from the URL's extension, the MIME type, then the format."""
    url = str(resource.get("url") or "")
    path = urlsplit(url).path.lower() if url else ""
    mime = str(resource.get("mime") or "").lower()
    fmt = str(resource.get("format") or "").lower()
    for kind, exts, mimes in (("csv", (".csv",), ("text/csv",)), ("json", (".json", ".jsonl"), ("json",))):
        if path.endswith(exts) or any(m in mime for m in mimes):
            return kind
    if "/exports/csv" in path:
        return "csv"
    if "/exports/json" in path:
        return "json"
    return fmt if fmt in ("csv", "json") else "other"


def parse_datagouv(data: bytes, source: str, select: str | None = None) -> DatagouvDataset:
    """Read the API answer of a dataset; ``select``: a regex searched in each resource's
    title and URL (None: every CSV and JSON resource). Never raises on bad content."""
    out = DatagouvDataset()
    line = parse_json_line(data, 1)
    doc = line.value
    if line.error is not None or not isinstance(doc, dict):
        out.errors.append(RowError(0, f"not a data.gouv.fr dataset answer: {line.error or type(doc).__name__}"))
        return out
    out.title = str(doc.get("title") or "")
    org = doc.get("organization")
    out.organization = str(org.get("name") or "") if isinstance(org, dict) else ""
    resources = doc.get("resources")
    if not isinstance(resources, list):
        out.errors.append(RowError(0, "the dataset answer has no 'resources' list"))
        return out
    for position, res in enumerate(resources, start=1):
        if not isinstance(res, dict) or not isinstance(res.get("url"), str):
            out.warnings.append(RowError(position, "resource without a URL; skipped"))
            continue
        resource = Resource(res["url"].strip(), str(res.get("title") or ""), resource_kind(res),
                            str(res.get("format") or ""))
        if select and not re.search(select, f"{resource.title} {resource.url}"):
            continue
        (out.resources if resource.kind in ("csv", "json") else out.skipped).append(resource)
    if out.skipped:
        out.warnings.append(RowError(0, f"{len(out.skipped)} resources neither CSV nor JSON not read: "
                                        + ", ".join(r.title or r.url for r in out.skipped[:5])))
    if not out.resources:
        out.errors.append(RowError(0, "no CSV or JSON resource" + (f" matches {select!r}" if select else "")))
    return out
