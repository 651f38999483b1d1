"""The registry's records: limits, open-data datasets, forms, entries, the registry itself.

Stage: crawl (configuration). Pydantic models validated field by field with the checks of
:mod:`crawler.registry.checks`; an error raised here names its field, and the loader
(:mod:`crawler.registry.loading`) adds the file and the entry.
"""
from __future__ import annotations

import codecs
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from crawler.registry.checks import (
    FieldError,
    check_host,
    check_http_url,
    check_regex,
    each,
    reject_bool,
    str_list,
)
from crawler.urls import host_in_domains, host_of
from nlp.errors import RegistryError
from nlp.io import luhn_ok

REGISTRY_VERSION = 1
_SLUG_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
_GIB = 1024 ** 3
# Upper bounds of the limits: far above any sensible crawl, low enough to refuse a typo or a
# hostile 5,000-digit number with a message instead of an overflow somewhere later.
LIMIT_BOUNDS = {"max_pages": 10_000_000, "max_depth": 100, "max_file_bytes": 16 * _GIB,
                "max_total_bytes": 16 * 1024 * _GIB}
MAX_KEYWORDS = 500


class _LimitChecks(BaseModel):
    """Field checks shared by the defaults and the per-entry overrides of the limits."""

    @field_validator("max_pages", "max_depth", "max_file_bytes", "max_total_bytes",
                     mode="before", check_fields=False)
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        return reject_bool(v)

    @field_validator("keywords", mode="before", check_fields=False)
    @classmethod
    def _keywords_list(cls, v: Any) -> Any:
        v = None if v is None else str_list(v)
        if isinstance(v, list):
            if len(v) > MAX_KEYWORDS:
                raise ValueError(f"at most {MAX_KEYWORDS} keywords, got {len(v)}")
            for k in v:
                if isinstance(k, str) and len(k) > 200:
                    raise ValueError(f"keyword longer than 200 characters: {k[:40]!r}…")
        return v


class Limits(_LimitChecks):
    """Crawl limits for one metropolis (defaults merged with the entry's overrides).

    ``max_pages``: HTML pages fetched; ``max_depth``: link depth from a start URL;
    ``max_file_bytes``: a file over this is recorded ``too-large`` and not stored;
    ``max_total_bytes``: bytes stored for this metropolis before the crawl stops;
    ``keywords``: relevance keywords of the focused crawl (links whose URL or anchor text
    contains one are followed first).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pages: int = Field(default=300, ge=0, le=LIMIT_BOUNDS["max_pages"])
    max_depth: int = Field(default=4, ge=0, le=LIMIT_BOUNDS["max_depth"])
    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=0, le=LIMIT_BOUNDS["max_file_bytes"])
    max_total_bytes: int = Field(default=2 * _GIB, ge=0, le=LIMIT_BOUNDS["max_total_bytes"])
    keywords: list[str] = Field(default_factory=list)


class LimitOverrides(_LimitChecks):
    """Per-entry ``limits``: any subset of :class:`Limits` fields."""

    model_config = ConfigDict(extra="forbid")

    max_pages: int | None = Field(default=None, ge=0, le=LIMIT_BOUNDS["max_pages"])
    max_depth: int | None = Field(default=None, ge=0, le=LIMIT_BOUNDS["max_depth"])
    max_file_bytes: int | None = Field(default=None, ge=0, le=LIMIT_BOUNDS["max_file_bytes"])
    max_total_bytes: int | None = Field(default=None, ge=0, le=LIMIT_BOUNDS["max_total_bytes"])
    keywords: list[str] | None = None


class Defaults(Limits):
    """The registry's ``defaults``: limits plus deny patterns applied to every entry."""

    deny: list[str] = Field(default_factory=list)

    @field_validator("deny", mode="before")
    @classmethod
    def _deny_list(cls, v: Any) -> Any:
        return str_list(v)

    @field_validator("deny")
    @classmethod
    def _deny_regex(cls, v: list[str]) -> list[str]:
        return each("deny", v, check_regex)

    def limits(self) -> Limits:
        return Limits(**self.model_dump(exclude={"deny"}))


DATASET_FORMATS = ("scdl-csv", "opendatasoft", "datagouv", "local-csv")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
DELIMITERS = (";", ",", "\t", "|")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 64 or any(c not in _NAME_CHARS for c in name):
        raise ValueError(f"field names are lower-case letters, digits and '_' (delib_id, coll_siret, …), "
                         f"got {name!r}"[:300])
    return name


class Dataset(BaseModel):
    """An open-data deliberation dataset (see ``crawler/metropoles.yaml``'s header).

    ``domains``: hosts this dataset and the documents it lists may be fetched from besides
    the entry's own domains (an open-data portal, a document store). Nothing else leaves the
    entry's domains: a row pointing elsewhere is recorded ``offsite``. ``filter``: rows kept
    (field -> regex, all must match: a dataset that mixes publishers); ``resources``: for a
    data.gouv.fr dataset, a regex on the titles and URLs of the files to read; ``columns``,
    ``header``, ``record_lines``, ``encoding``, ``delimiter``: how a local format is read.
    """

    model_config = ConfigDict(extra="forbid")

    url: str
    format: str
    title: str = ""
    domains: list[str] = Field(default_factory=list)
    filter: dict[str, str] = Field(default_factory=dict)
    resources: str | None = None
    columns: dict[str, str | int] = Field(default_factory=dict)
    header: bool = True
    record_lines: int = Field(default=1, ge=1, le=5)
    encoding: str | None = None
    delimiter: str | None = None
    sources: list[str] = Field(default_factory=list)

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            _check_name(name)
            try:
                check_regex(pattern)
            except ValueError as exc:
                raise FieldError(f"filter.{name}", str(exc)) from None
        return v

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: str | None) -> str | None:
        return None if v is None else check_regex(v)

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        for name, where in v.items():
            _check_name(name)
            if isinstance(where, bool) or not isinstance(where, (int, str)):
                raise FieldError(f"columns.{name}", f"must be a column name or a 0-based position, got {where!r}"[:300])
            if isinstance(where, int) and not 0 <= where <= 1000:
                raise FieldError(f"columns.{name}", f"position must be between 0 and 1000, got {where}")
            if isinstance(where, str) and not 0 < len(where) <= 200:
                raise FieldError(f"columns.{name}", "column name must have 1 to 200 characters")
        return v

    @field_validator("record_lines", mode="before")
    @classmethod
    def _lines(cls, v: Any) -> Any:
        return reject_bool(v)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                codecs.lookup(v)
            except (LookupError, ValueError):
                raise ValueError(f"unknown encoding {v!r}"[:300]) from None
        return v

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v: str | None) -> str | None:
        if v is not None and v not in DELIMITERS:
            raise ValueError(f"must be one of ; , tab (\\t) |, got {v!r}"[:300])
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Dataset":
        if self.format == "local-csv" and not self.columns:
            raise FieldError("columns", "a local-csv dataset needs its column mapping (at least delib_id and "
                                        "objet or url)")
        if self.columns and ("delib_id" not in self.columns or not {"objet", "url"} & set(self.columns)):
            raise FieldError("columns", "the column mapping must name delib_id and objet or url")
        if not self.header and any(isinstance(w, str) for w in self.columns.values()):
            raise FieldError("columns", "a file without a header is mapped by positions (0, 1, …), not names")
        if self.resources is not None and self.format != "datagouv":
            raise FieldError("resources", "only a datagouv dataset has resources to choose from")
        return self

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, v: Any) -> str:
        return check_http_url(v)

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> Any:
        if v not in DATASET_FORMATS:
            raise ValueError(f"must be one of {', '.join(DATASET_FORMATS)}, got {v!r}"[:300])
        return v

    @field_validator("domains", "sources", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return str_list(v)

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return each("domains", v, check_host)

    def scope(self, entry_domains: list[str]) -> list[str]:
        """Every host this dataset's requests may go to."""
        return list(dict.fromkeys(entry_domains + self.domains))


class Form(BaseModel):
    """A listing behind a form (WebDelib: the session is chosen in a ``<select>``): the page
    at ``url`` is fetched, and the form submitted once per chosen option of ``field``."""

    model_config = ConfigDict(extra="forbid")

    url: str
    form: str | None = None
    field: str | None = None
    options: str | None = None
    formdata: dict[str, str] = Field(default_factory=dict)
    max_options: int = Field(default=200, ge=1, le=5000)
    sources: list[str] = Field(default_factory=list)

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, v: Any) -> str:
        return check_http_url(v)

    @field_validator("form", "field", mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not 0 < len(v) <= 200):
            raise ValueError(f"must be a string of 1 to 200 characters, got {v!r}"[:300])
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v: str | None) -> str | None:
        return None if v is None else check_regex(v)

    @field_validator("formdata", mode="before")
    @classmethod
    def _formdata(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for key, value in v.items():
                if not isinstance(key, str) or not isinstance(value, str) or len(key) > 200 or len(value) > 2000:
                    raise ValueError(f"must map field names to strings, got {key!r}: {value!r}"[:300])
        return v

    @field_validator("max_options", mode="before")
    @classmethod
    def _max(cls, v: Any) -> Any:
        return reject_bool(v)


class Metropole(BaseModel):
    """One registry entry. After loading, ``limits`` is resolved (defaults merged) and
    ``deny`` holds the defaults' deny patterns followed by the entry's own."""

    model_config = ConfigDict(extra="forbid")

    slug: str
    name: str
    siren: str
    domains: list[str]
    start_urls: list[str]
    sitemaps: list[str] = Field(default_factory=list)
    deliberation_datasets: list[Dataset] = Field(default_factory=list)
    forms: list[Form] = Field(default_factory=list)
    shared_domains: list[str] = Field(default_factory=list)
    shared_with: str | None = None
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    fictional: bool = False
    sources: list[str] = Field(default_factory=list)

    @field_validator("slug", mode="before")
    @classmethod
    def _slug(cls, v: Any) -> str:
        if (not isinstance(v, str) or not v or len(v) > 64 or v[0] == "-"
                or any(ch not in _SLUG_CHARS for ch in v)):
            raise ValueError(
                "must be an ASCII slug of lower-case letters, digits and hyphens "
                f"([a-z0-9-]+, not starting with '-', at most 64), got {v!r}"[:300]
            )
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.strip() or len(v) > 300:
            raise ValueError(f"must be a non-empty string of at most 300 characters, got {v!r}"[:300])
        return v.strip()

    @field_validator("siren", mode="before")
    @classmethod
    def _siren(cls, v: Any) -> str:
        if isinstance(v, int) and not isinstance(v, bool):
            # Unquoted in YAML: leading zeros would be lost, so insist on a string.
            raise ValueError(f"must be a quoted string of 9 digits (write \"{v}\"), got the number {v}"[:300])
        if not isinstance(v, str) or len(v) != 9 or not (v.isascii() and v.isdigit()):
            raise ValueError(f"must be 9 digits, got {v!r}"[:300])
        return v

    @field_validator("shared_domains")
    @classmethod
    def _shared(cls, v: list[str]) -> list[str]:
        return each("shared_domains", v, check_host)

    @field_validator("shared_with", mode="before")
    @classmethod
    def _shared_with(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not 0 < len(v.strip()) <= 300):
            raise ValueError(f"must be the other publisher's name, got {v!r}"[:300])
        return v

    @field_validator("domains", "start_urls", "sitemaps", "shared_domains", "allow", "deny", "sources",
                     mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return str_list(v)

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one domain")
        return each("domains", v, check_host)

    @field_validator("start_urls")
    @classmethod
    def _start_urls(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one URL")
        return each("start_urls", v, check_http_url)

    @field_validator("sitemaps")
    @classmethod
    def _sitemaps(cls, v: list[str]) -> list[str]:
        return each("sitemaps", v, check_http_url)

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return each(info.field_name or "", v, check_regex)

    @field_validator("fictional", mode="before")
    @classmethod
    def _fictional(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, got {v!r}"[:300])
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "Metropole":
        # Real entries carry a real SIREN (Luhn check digit) and say where facts come from.
        if not self.fictional:
            if not luhn_ok(self.siren):
                raise FieldError("siren", f"fails the SIREN check digit (Luhn), got {self.siren!r}: a typo?")
            if not self.sources:
                raise FieldError("sources", "must list at least one source for a real (non-fictional) entry")
        for field_name in ("start_urls", "sitemaps"):
            for i, url in enumerate(getattr(self, field_name)):
                self._inside(f"{field_name}[{i}]", url, self.domains)
        for i, ds in enumerate(self.deliberation_datasets):
            self._inside(f"deliberation_datasets[{i}].url", ds.url, ds.scope(self.domains))
        for i, form in enumerate(self.forms):
            self._inside(f"forms[{i}].url", form.url, self.domains)
        for i, host in enumerate(self.shared_domains):
            if not host_in_domains(host, self.domains):
                raise FieldError(f"shared_domains[{i}]", f"{host!r} is not one of the entry's domains {self.domains}")
        return self

    def is_shared(self, host: str | None) -> bool:
        """Is ``host`` on a domain this metropolis shares with another publisher?"""
        return bool(host) and host_in_domains(host or "", self.shared_domains)

    def _inside(self, field: str, url: str, domains: list[str]) -> None:
        host = host_of(url)
        if host is None or not host_in_domains(host, domains):
            raise FieldError(field, f"host {host!r} of {url!r} is outside the allowed domains {domains}")


class Registry(BaseModel):
    """A validated registry: ``metropoles`` in file order, ``defaults`` and the source path."""

    model_config = ConfigDict(extra="forbid")

    version: int = REGISTRY_VERSION
    defaults: Defaults = Field(default_factory=Defaults)
    metropoles: list[Metropole]
    path: str = ""

    def slugs(self) -> list[str]:
        return [m.slug for m in self.metropoles]

    def get(self, slug: str) -> Metropole:
        """The entry with this slug; RegistryError listing the known slugs otherwise."""
        return self.select([slug])[0]

    def select(self, slugs: list[str] | None) -> list[Metropole]:
        """Entries for ``slugs`` in the order given (all entries, in file order, for None or
        an empty list). An unknown slug raises RegistryError listing the known slugs."""
        if not slugs:
            return list(self.metropoles)
        by_slug = {m.slug: m for m in self.metropoles}
        unknown = [s for s in slugs if s not in by_slug]
        if unknown:
            raise RegistryError(
                f"{self.path or 'registry'}: unknown metropolis slug(s) "
                f"{', '.join(repr(s) for s in unknown)}; known slugs: {', '.join(by_slug)}"
            )
        return [by_slug[s] for s in dict.fromkeys(slugs)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (limits resolved) that :func:`registry_from_dict` reads back."""
        return self.model_dump(mode="json")
