"""Loading the registry: YAML with limits, validation, one-line error messages.

Stage: crawl (configuration). Input: a YAML file (or a dict, e.g. a registry passed to a
crawl subprocess as JSON). Output: a validated :class:`~crawler.registry.models.Registry`.
The YAML is read by :func:`nlp.io.load_yaml` (size, nesting, alias expansion and number
limits: no billion-laughs hang, no 5,000-digit integer), then every problem is raised as one
:class:`nlp.errors.RegistryError` naming the file, the entry and the field.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crawler.registry.checks import FieldError
from crawler.registry.models import REGISTRY_VERSION, Defaults, LimitOverrides, Metropole, Registry
from nlp.errors import BarometreError, RegistryError
from nlp.io import load_yaml

logger = logging.getLogger(__name__)

MAX_ENTRIES = 1000
MAX_REGISTRY_BYTES = 4 * 1024 * 1024


def default_registry_path() -> Path:
    """Path of the registry shipped with the package (``crawler/metropoles.yaml``)."""
    return Path(__file__).resolve().parents[1] / "metropoles.yaml"


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(entry)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _readable(err: dict[str, Any], known: list[str]) -> str:
    """One pydantic error as a short sentence (the offending value cut to a few words)."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return f"unknown field (known fields: {', '.join(known)})"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be >= {ctx.get('ge', ctx.get('gt'))}, got {_short(value)}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be <= {ctx.get('le', ctx.get('lt')):,}, got {_short(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float", "int_parsing_size"):
        return f"must be a whole number, got {_short(value)}"
    if kind == "list_type":
        return f"must be a list, got {type(value).__name__} {_short(value)}"
    if kind == "string_type":
        return f"must be a string, got {type(value).__name__} {_short(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping, got {type(value).__name__} {_short(value)}"
    if kind == "bool_type" or kind == "bool_parsing":
        return f"must be true or false, got {_short(value)}"
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg[:300]


def _describe_errors(exc: ValidationError, known: list[str], prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs for a ValidationError, cross-field errors included."""
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, FieldError):
            # A FieldError of a nested model (a dataset) names its field inside that model:
            # raised by a field validator (loc ends with the field) or a model validator (loc
            # ends with the item's index).
            parent = loc if loc and isinstance(loc[-1], int) else loc[:-1]
            nested = _field_path(parent) + "." if parent else ""
            out.append((prefix + nested + original.field, original.message))
            continue
        out.append((prefix + _field_path(loc), _readable(err, known)))
    return out[:5]


def _entry_label(index: int, raw: Any) -> str:
    slug = raw.get("slug") if isinstance(raw, dict) else None
    if isinstance(slug, str) and slug.strip() and len(slug) <= 64:
        return f"entry {slug!r} (#{index})"
    return f"entry #{index}"


def _fail(source: str, where: str, problems: list[tuple[str, str]]) -> RegistryError:
    first_field, first_msg = problems[0]
    msg = f"{source}: {where}field {first_field!r}: {first_msg}"
    if len(problems) > 1:
        rest = "; ".join(f"field {f!r}: {m}" for f, m in problems[1:])
        msg += f" (also: {rest})"
    return RegistryError(msg)


def _entry(source: str, index: int, raw: Any, base_limits: dict[str, Any], defaults: Defaults) -> Metropole:
    where = _entry_label(index, raw) + ": "
    if not isinstance(raw, dict):
        raise RegistryError(f"{source}: entry #{index}: must be a mapping of fields, got "
                            f"{type(raw).__name__} {_short(raw)}")
    raw = dict(raw)
    # Resolve limits: defaults first, then the entry's overrides (validated on their own
    # so that an error names `limits.<field>`).
    try:
        overrides = LimitOverrides.model_validate(raw.get("limits") or {})
    except ValidationError as exc:
        raise _fail(source, where, _describe_errors(exc, list(LimitOverrides.model_fields), "limits.")) from None
    merged = dict(base_limits)
    merged.update({k: v for k, v in overrides.model_dump().items() if v is not None})
    raw["limits"] = merged
    try:
        entry = Metropole.model_validate(raw)
    except ValidationError as exc:
        raise _fail(source, where, _describe_errors(exc, list(Metropole.model_fields))) from None
    if defaults.deny:
        entry.deny = list(dict.fromkeys(defaults.deny + entry.deny))
    return entry


def registry_from_dict(data: Any, source: str = "registry") -> Registry:
    """Validate a registry given as a dict (parsed YAML or :meth:`Registry.to_dict` output).

    ``source`` names the file in error messages. Raises RegistryError on any problem.
    """
    if not isinstance(data, dict):
        raise RegistryError(f"{source}: the registry must be a YAML mapping with a 'metropoles' list, "
                            f"got {type(data).__name__}")
    unknown = [k for k in data if k not in ("version", "defaults", "metropoles", "path")]
    if unknown:
        raise RegistryError(f"{source}: field {_short(unknown[0])}: unknown top-level field "
                            "(known fields: version, defaults, metropoles)")
    version = data.get("version", REGISTRY_VERSION)
    if version != REGISTRY_VERSION or isinstance(version, bool):
        raise RegistryError(f"{source}: field 'version': must be {REGISTRY_VERSION}, got {_short(version)}")
    try:
        defaults = Defaults.model_validate(data.get("defaults") or {})
    except ValidationError as exc:
        raise _fail(source, "", _describe_errors(exc, list(Defaults.model_fields), prefix="defaults.")) from None
    entries = data.get("metropoles")
    if entries is None:
        raise RegistryError(f"{source}: field 'metropoles': is required but missing")
    if not isinstance(entries, list) or not entries:
        raise RegistryError(f"{source}: field 'metropoles': must be a non-empty list of entries, got {_short(entries)}")
    if len(entries) > MAX_ENTRIES:
        raise RegistryError(f"{source}: field 'metropoles': {len(entries)} entries, more than {MAX_ENTRIES}")
    metropoles: list[Metropole] = []
    first_slug: dict[str, int] = {}
    first_siren: dict[str, int] = {}
    base_limits = defaults.limits().model_dump()
    for index, raw in enumerate(entries, start=1):
        entry = _entry(source, index, raw, base_limits, defaults)
        where = _entry_label(index, raw) + ": "
        if entry.slug in first_slug:
            raise RegistryError(f"{source}: {where}field 'slug': duplicate slug {entry.slug!r} "
                                f"(already used by entry #{first_slug[entry.slug]})")
        first_slug[entry.slug] = index
        if not entry.fictional:
            if entry.siren in first_siren:
                raise RegistryError(f"{source}: {where}field 'siren': duplicate SIREN {entry.siren!r} "
                                    f"(already used by entry #{first_siren[entry.siren]})")
            first_siren[entry.siren] = index
        metropoles.append(entry)
    return Registry(version=REGISTRY_VERSION, defaults=defaults, metropoles=metropoles,
                    path=str(data.get("path") or source))


def load_registry(path: Path | str | None = None) -> Registry:
    """Load and validate a YAML registry (default: :func:`default_registry_path`).

    Raises RegistryError (one line naming file, entry and field) on unreadable or oversized
    files, invalid UTF-8, YAML syntax errors, alias bombs, deep nesting, huge numbers and every
    schema problem.
    """
    p = Path(path) if path is not None else default_registry_path()
    source = str(path) if path is not None else str(p)
    if not p.exists():
        raise RegistryError(f"{source}: registry file not found")
    try:
        data = load_yaml(p, source, max_bytes=MAX_REGISTRY_BYTES)
    except RegistryError:
        raise
    except BarometreError as exc:
        raise RegistryError(str(exc)) from None
    if data is None:
        raise RegistryError(f"{source}: the registry file is empty")
    if isinstance(data, dict) and "path" in data:
        raise RegistryError(f"{source}: field 'path': unknown top-level field "
                            "(known fields: version, defaults, metropoles)")
    registry = registry_from_dict(data, source=source)
    logger.debug("loaded %d metropolises from %s", len(registry.metropoles), source)
    return registry
