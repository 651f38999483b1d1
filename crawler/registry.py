"""Registry of metropolises: load and validate ``crawler/metropoles.yaml``; URL helpers.

Stage: crawl (configuration). Input: a YAML registry file (schema in the header comment of
``crawler/metropoles.yaml``). Output: a validated :class:`Registry` of :class:`Metropole`
entries that the spiders use to know where to start, which domains they may visit, which URLs
to avoid, which open-data deliberation datasets to download, and how far to go (limits).

Every problem in the file is raised as one :class:`nlp.errors.RegistryError` whose message is
a single line naming the file, the entry (slug and 1-based index, or the index alone when the
slug is missing) and the field, e.g.::

    crawler/metropoles.yaml: entry 'lyon' (#9): field 'siren': must be 9 digits, got '2000469'

Public functions:

- :func:`load_registry` (path) -> :class:`Registry`
- :func:`registry_from_dict` (data, source) -> :class:`Registry` (e.g. a registry passed to a
  crawl subprocess as JSON, made by :meth:`Registry.to_dict`)
- :func:`url_allowed` (metropole, url) -> bool
- :func:`normalise_url` (url) -> str
- :func:`default_registry_path` () -> Path
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nlp.errors import RegistryError

logger = logging.getLogger(__name__)

REGISTRY_VERSION = 1
DATASET_FORMATS = ("scdl-csv", "opendatasoft")

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SIREN_RE = re.compile(r"^[0-9]{9}$")
# A host name (labels of letters, digits, hyphens) or a dotted IPv4 address; no scheme, port
# or path: the domain is matched against URL hosts, subdomains included.
_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def default_registry_path() -> Path:
    """Path of the registry shipped with the package (``crawler/metropoles.yaml``)."""
    return Path(__file__).resolve().parent / "metropoles.yaml"


# --- helpers used by the validators ------------------------------------------------------

def _luhn_ok(digits: str) -> bool:
    """True when ``digits`` passes the Luhn check used by SIREN and SIRET numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _host_of(url: str) -> str | None:
    """Lower-case host of an http(s) URL without a trailing dot, or None if there is none."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.rstrip(".").lower()


def _host_in_domains(host: str, domains: list[str]) -> bool:
    """True when ``host`` is one of ``domains`` or a subdomain of one of them."""
    return any(host == d or host.endswith("." + d) for d in domains)


def _check_http_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be an http(s) URL string, got {type(value).__name__} {value!r}")
    url = value.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc}): {value!r}") from None
    del port
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    if not parts.hostname:
        raise ValueError(f"has no host name: {value!r}")
    if any(ch.isspace() for ch in url):
        raise ValueError(f"contains white space: {value!r}")
    return url


def _check_regex(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a regular expression string, got {type(value).__name__} {value!r}")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


class _FieldError(ValueError):
    """An error that names its own field path, e.g. ``start_urls[1]`` (raised inside a
    validator, where pydantic would only know the field as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _each(field: str, values: list[Any], check: Any) -> list[Any]:
    """Apply ``check`` to each list item; an error names the item (``field[i]``)."""
    out = []
    for i, value in enumerate(values):
        try:
            out.append(check(value))
        except _FieldError:
            raise
        except ValueError as exc:
            raise _FieldError(f"{field}[{i}]", str(exc)) from None
    return out


def _reject_bool(value: Any) -> Any:
    # YAML `yes`/`no` are booleans, which pydantic would silently turn into 1/0.
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number >= 0, got {value!r}")
    return value


def _str_list(value: Any) -> Any:
    # YAML turns `domains: grandlyon.com` into a string; a list is what is meant.
    if isinstance(value, str):
        return [value]
    if value is None:
        return []
    return value


# --- models ------------------------------------------------------------------------------

class _LimitChecks(BaseModel):
    """Field checks shared by the defaults and the per-entry overrides of the limits."""

    @field_validator("max_pages", "max_depth", "max_file_bytes", "max_total_bytes",
                     mode="before", check_fields=False)
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        return _reject_bool(v)

    @field_validator("keywords", mode="before", check_fields=False)
    @classmethod
    def _keywords_list(cls, v: Any) -> Any:
        return None if v is None else _str_list(v)


class Limits(_LimitChecks):
    """Crawl limits for one metropolis (defaults merged with the entry's overrides).

    ``max_pages``: HTML pages fetched; ``max_depth``: link depth from a start URL;
    ``max_file_bytes``: a file over this is recorded ``too-large`` and not stored;
    ``max_total_bytes``: bytes stored for this metropolis before the crawl stops;
    ``keywords``: relevance keywords of the focused crawl (links whose URL or anchor text
    contains one are followed first).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pages: int = Field(default=300, ge=0)
    max_depth: int = Field(default=4, ge=0)
    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=0)
    max_total_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=0)
    keywords: list[str] = Field(default_factory=list)



class LimitOverrides(_LimitChecks):
    """Per-entry ``limits``: any subset of :class:`Limits` fields."""

    model_config = ConfigDict(extra="forbid")

    max_pages: int | None = Field(default=None, ge=0)
    max_depth: int | None = Field(default=None, ge=0)
    max_file_bytes: int | None = Field(default=None, ge=0)
    max_total_bytes: int | None = Field(default=None, ge=0)
    keywords: list[str] | None = None



class Defaults(Limits):
    """The registry's ``defaults``: limits plus deny patterns applied to every entry."""

    deny: list[str] = Field(default_factory=list)

    @field_validator("deny", mode="before")
    @classmethod
    def _deny_list(cls, v: Any) -> Any:
        return _str_list(v)

    @field_validator("deny")
    @classmethod
    def _deny_regex(cls, v: list[str]) -> list[str]:
        return _each("deny", v, _check_regex)

    def limits(self) -> Limits:
        return Limits(**self.model_dump(exclude={"deny"}))


class Dataset(BaseModel):
    """An open-data deliberation dataset: ``scdl-csv`` (a CSV file following the SCDL
    "délibérations" schema) or ``opendatasoft`` (an Explore API v2.1 export, JSON or CSV)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    format: Literal["scdl-csv", "opendatasoft"]
    title: str = ""
    sources: list[str] = Field(default_factory=list)

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, v: Any) -> str:
        return _check_http_url(v)

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> Any:
        if v not in DATASET_FORMATS:
            raise ValueError(f"must be one of {', '.join(DATASET_FORMATS)}, got {v!r}")
        return v


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
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    fictional: bool = False
    sources: list[str] = Field(default_factory=list)

    @field_validator("slug", mode="before")
    @classmethod
    def _slug(cls, v: Any) -> str:
        if not isinstance(v, str) or not _SLUG_RE.match(v):
            raise ValueError(
                f"must be an ASCII slug of lower-case letters, digits and hyphens "
                f"([a-z0-9-]+, not starting with '-'), got {v!r}"
            )
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"must be a non-empty string, got {v!r}")
        return v.strip()

    @field_validator("siren", mode="before")
    @classmethod
    def _siren(cls, v: Any) -> str:
        if isinstance(v, int) and not isinstance(v, bool):
            # Unquoted in YAML: leading zeros would be lost, so insist on a string.
            raise ValueError(f"must be a quoted string of 9 digits (write \"{v}\"), got the number {v}")
        if not isinstance(v, str) or not _SIREN_RE.match(v):
            raise ValueError(f"must be 9 digits, got {v!r}")
        return v

    @field_validator("domains", "start_urls", "sitemaps", "allow", "deny", "sources", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _str_list(v)

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one domain")
        out = []
        for i, d in enumerate(v):
            host = d.strip().lower().rstrip(".")
            if not _HOST_RE.match(host):
                raise _FieldError(
                    f"domains[{i}]", f"must be a host name like 'grandlyon.com' (no scheme, port or path), got {d!r}"
                )
            out.append(host)
        return out

    @field_validator("start_urls")
    @classmethod
    def _start_urls(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one URL")
        return _each("start_urls", v, _check_http_url)

    @field_validator("sitemaps")
    @classmethod
    def _sitemaps(cls, v: list[str]) -> list[str]:
        return _each("sitemaps", v, _check_http_url)

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return _each(info.field_name or "", v, _check_regex)

    @field_validator("fictional", mode="before")
    @classmethod
    def _fictional(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, got {v!r}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "Metropole":
        # Real entries carry a real SIREN (Luhn check digit) and say where facts come from.
        if not self.fictional:
            if not _luhn_ok(self.siren):
                raise _FieldError("siren", f"fails the SIREN check digit (Luhn), got {self.siren!r}: a typo?")
            if not self.sources:
                raise _FieldError("sources", "must list at least one source for a real (non-fictional) entry")
        for field_name in ("start_urls", "sitemaps"):
            for i, url in enumerate(getattr(self, field_name)):
                host = _host_of(url)
                if host is None or not _host_in_domains(host, self.domains):
                    raise _FieldError(
                        f"{field_name}[{i}]",
                        f"host {host!r} of {url!r} is outside the entry's domains {self.domains}",
                    )
        return self




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
        seen: set[str] = set()
        out = []
        for s in slugs:
            if s not in seen:
                seen.add(s)
                out.append(by_slug[s])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (limits resolved) that :func:`registry_from_dict` reads back."""
        return self.model_dump(mode="json")


# --- loading -----------------------------------------------------------------------------

def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(entry)"


def _readable(err: dict[str, Any], known: list[str]) -> str:
    """One pydantic error as a short sentence."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return f"unknown field (known fields: {', '.join(known)})"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be >= {ctx.get('ge', ctx.get('gt'))}, got {err.get('input')!r}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, got {err.get('input')!r}"
    if kind == "list_type":
        return f"must be a list, got {type(err.get('input')).__name__} {err.get('input')!r}"
    if kind in ("string_type",):
        return f"must be a string, got {type(err.get('input')).__name__} {err.get('input')!r}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping, got {type(err.get('input')).__name__} {err.get('input')!r}"
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def _describe_errors(exc: ValidationError, known: list[str], prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs for a ValidationError, cross-field errors included."""
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, _FieldError):
            out.append((prefix + original.field, original.message))
            continue
        out.append((prefix + _field_path(loc), _readable(err, known)))
    return out


def _entry_label(index: int, raw: Any) -> str:
    slug = raw.get("slug") if isinstance(raw, dict) else None
    if isinstance(slug, str) and slug.strip():
        return f"entry {slug!r} (#{index})"
    return f"entry #{index}"


def _fail(source: str, where: str, problems: list[tuple[str, str]]) -> RegistryError:
    first_field, first_msg = problems[0]
    msg = f"{source}: {where}field {first_field!r}: {first_msg}"
    if len(problems) > 1:
        rest = "; ".join(f"field {f!r}: {m}" for f, m in problems[1:])
        msg += f" (also: {rest})"
    return RegistryError(msg)


def registry_from_dict(data: Any, source: str = "registry") -> Registry:
    """Validate a registry given as a dict (parsed YAML or :meth:`Registry.to_dict` output).

    ``source`` names the file in error messages. Raises RegistryError on any problem.
    """
    if not isinstance(data, dict):
        raise RegistryError(f"{source}: the registry must be a YAML mapping with a 'metropoles' list, got {type(data).__name__}")
    top_known = ["version", "defaults", "metropoles", "path"]
    unknown = [k for k in data if k not in top_known]
    if unknown:
        raise RegistryError(f"{source}: field {unknown[0]!r}: unknown top-level field (known fields: version, defaults, metropoles)")
    version = data.get("version", REGISTRY_VERSION)
    if version != REGISTRY_VERSION or isinstance(version, bool):
        raise RegistryError(f"{source}: field 'version': must be {REGISTRY_VERSION}, got {version!r}")

    raw_defaults = data.get("defaults") or {}
    try:
        defaults = Defaults.model_validate(raw_defaults)
    except ValidationError as exc:
        raise _fail(source, "", _describe_errors(exc, list(Defaults.model_fields), prefix="defaults.")) from None

    entries = data.get("metropoles")
    if entries is None:
        raise RegistryError(f"{source}: field 'metropoles': is required but missing")
    if not isinstance(entries, list) or not entries:
        raise RegistryError(f"{source}: field 'metropoles': must be a non-empty list of entries, got {entries!r}")

    known = list(Metropole.model_fields)
    metropoles: list[Metropole] = []
    first_slug: dict[str, int] = {}
    first_siren: dict[str, int] = {}
    base_limits = defaults.limits().model_dump()
    for index, raw in enumerate(entries, start=1):
        where = _entry_label(index, raw) + ": "
        if not isinstance(raw, dict):
            raise RegistryError(f"{source}: entry #{index}: must be a mapping of fields, got {type(raw).__name__} {raw!r}")
        raw = dict(raw)
        # Resolve limits: defaults first, then the entry's overrides (validated on their own
        # so that an error names `limits.<field>`).
        overrides_raw = raw.get("limits") or {}
        try:
            overrides = LimitOverrides.model_validate(overrides_raw)
        except ValidationError as exc:
            raise _fail(source, where, _describe_errors(exc, list(LimitOverrides.model_fields), prefix="limits.")) from None
        merged = dict(base_limits)
        merged.update({k: v for k, v in overrides.model_dump().items() if v is not None})
        raw["limits"] = merged
        try:
            entry = Metropole.model_validate(raw)
        except ValidationError as exc:
            raise _fail(source, where, _describe_errors(exc, known)) from None
        if defaults.deny:
            entry.deny = list(dict.fromkeys(defaults.deny + entry.deny))
        if entry.slug in first_slug:
            raise RegistryError(
                f"{source}: {where}field 'slug': duplicate slug {entry.slug!r} (already used by entry #{first_slug[entry.slug]})"
            )
        first_slug[entry.slug] = index
        if not entry.fictional:
            if entry.siren in first_siren:
                raise RegistryError(
                    f"{source}: {where}field 'siren': duplicate SIREN {entry.siren!r} (already used by entry #{first_siren[entry.siren]})"
                )
            first_siren[entry.siren] = index
        metropoles.append(entry)
    return Registry(version=REGISTRY_VERSION, defaults=defaults, metropoles=metropoles, path=str(data.get("path") or source))


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (PyYAML keeps the last one
    silently, which would hide e.g. a second `start_urls:` of an entry)."""


def _construct_mapping_no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # left for the constructor to reject
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in the same mapping (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates)


def load_registry(path: Path | str | None = None) -> Registry:
    """Load and validate a YAML registry (default: :func:`default_registry_path`).

    Raises RegistryError (one line naming file, entry and field) on unreadable files, YAML
    syntax errors and every schema problem.
    """
    p = Path(path) if path is not None else default_registry_path()
    source = str(path) if path is not None else str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{source}: registry file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{source}: cannot read the registry: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RegistryError(f"{source}: YAML syntax error{where}: {problem}") from None
    if data is None:
        raise RegistryError(f"{source}: the registry file is empty")
    if isinstance(data, dict) and "path" in data:
        raise RegistryError(f"{source}: field 'path': unknown top-level field (known fields: version, defaults, metropoles)")
    registry = registry_from_dict(data, source=source)
    logger.debug("loaded %d metropolises from %s", len(registry.metropoles), source)
    return registry


# --- URL helpers -------------------------------------------------------------------------

def url_allowed(metropole: Metropole, url: str) -> bool:
    """May the crawler of ``metropole`` follow ``url``?

    True when the URL is http(s), its host is one of the entry's domains or a subdomain of
    one, no ``deny`` regex matches it and, when ``allow`` is not empty, at least one
    ``allow`` regex matches it. Regexes are searched (``re.search``) in the whole URL, as
    Scrapy's LinkExtractor does, so ``/deliberations/`` matches a path segment.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https"):
        return False
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or not _host_in_domains(host, metropole.domains):
        return False
    if any(re.search(p, url) for p in metropole.deny):
        return False
    if metropole.allow and not any(re.search(p, url) for p in metropole.allow):
        return False
    return True


# Query parameters that identify a visit, not a resource: dropped so that the same page is
# fetched once. Compared lower-case; `utm_*` by prefix.
_TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid",
    "_hsenc", "_hsmi", "mkt_tok", "xtor", "at_medium", "at_campaign",
    "jsessionid", "phpsessid", "aspsessionid", "sessionid", "session_id", "cfid", "cftoken",
})
_TRACKING_PREFIXES = ("utm_", "aspsessionid")
_PATH_SESSION_RE = re.compile(r";(jsessionid|phpsessid|sessionid)=[^/?#;]*", re.IGNORECASE)
_PCT_RE = re.compile(r"%[0-9a-fA-F]{2}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are when percent-encoding a path or query (existing %XX escapes are
# kept, with upper-case hex digits).
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = "/%:@!$'()*+,;=-._~?"


def _is_tracking(key: str) -> bool:
    k = unquote_plus(key).strip().lower()
    return k in _TRACKING_PARAMS or k.startswith(_TRACKING_PREFIXES)


def normalise_url(url: str) -> str:
    """Canonical form of an http(s) URL, used to fetch and record each resource once.

    Lower-cases scheme and host, drops a trailing dot of the host, the fragment, the
    default port (80/443), tracking parameters (``utm_*``, ``fbclid``, ``gclid``, …) and
    session ids (``jsessionid``, ``PHPSESSID``, … as query parameters or ``;jsessionid=``
    path parameters); sorts query parameters by name (stable for repeated names); encodes
    non-ASCII characters and spaces as UTF-8 percent escapes with upper-case hex; an empty
    path becomes ``/``. Raw ``key=value`` pairs are kept as written otherwise, so
    ``%2F`` stays ``%2F``. Raises ValueError for a URL without scheme or host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        pass
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        netloc = f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"

    path = _PATH_SESSION_RE.sub("", parts.path) or "/"
    path = quote(path, safe=_SAFE_PATH)
    path = _PCT_RE.sub(lambda m: m.group(0).upper(), path)

    pairs = [p for p in parts.query.split("&") if p]
    kept = [p for p in pairs if not _is_tracking(p.split("=", 1)[0])]
    kept.sort(key=lambda p: p.split("=", 1)[0])
    query = "&".join(kept)
    query = quote(query, safe=_SAFE_QUERY + "&")
    query = _PCT_RE.sub(lambda m: m.group(0).upper(), query)
    return urlunsplit((scheme, netloc, path, query, ""))
