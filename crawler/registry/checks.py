"""Field checks of the registry: URLs, host names, regular expressions, numbers.

Stage: crawl (configuration). Every check takes a raw YAML value and returns the clean value
or raises ``ValueError`` with a short message (the loader adds file, entry and field). The
registry is input a user may get from anywhere, so the checks refuse what would make the
crawler fetch outside the entry or hang: a backslash or control character in a URL (browsers
and Scrapy read ``http://a\\@b/`` as host ``a``; ``urlsplit`` as host ``b``), a regex whose
matching can take exponential time (nested quantifiers) or whose compilation overflows
(``a{99999999999}``), a number outside its range.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

try:  # the parser behind re.compile (public as sre_parse before Python 3.11)
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from crawler.urls import host_of

# A host name (labels of letters, digits, hyphens) or a dotted IPv4 address; no scheme, port
# or path: the domain is matched against URL hosts, subdomains included.
_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
MAX_URL_CHARS = 2000
MAX_REGEX_CHARS = 500
MAX_REGEX_REPEAT = 1000
_BOUNDS_RE = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


class FieldError(ValueError):
    """An error that names its own field path, e.g. ``start_urls[1]`` (raised inside a
    validator, where pydantic would only know the field as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def each(field: str, values: list[Any], check: Any) -> list[Any]:
    """Apply ``check`` to each list item; an error names the item (``field[i]``)."""
    out = []
    for i, value in enumerate(values):
        try:
            out.append(check(value))
        except FieldError:
            raise
        except ValueError as exc:
            raise FieldError(f"{field}[{i}]", str(exc)) from None
    return out


def str_list(value: Any) -> Any:
    """YAML turns ``domains: grandlyon.com`` into a string; a list is what is meant."""
    if isinstance(value, str):
        return [value]
    if value is None:
        return []
    return value


def reject_bool(value: Any) -> Any:
    """YAML ``yes``/``no`` are booleans, which pydantic would silently turn into 1/0."""
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, got {value!r}")
    return value


def check_http_url(value: Any) -> str:
    """An absolute http(s) URL with a host, no white space, backslash or control character."""
    if not isinstance(value, str):
        raise ValueError(f"must be an http(s) URL string, got {type(value).__name__} {value!r}"[:300])
    url = value.strip()
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"is longer than {MAX_URL_CHARS} characters")
    if "\\" in url:
        raise ValueError(f"contains a backslash, which browsers and Scrapy read as '/' (the host "
                         f"would not be the one it seems to be): {value!r}")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError(f"contains white space or a control character: {value!r}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc}): {value!r}") from None
    del port
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    if not parts.hostname or host_of(url) is None:
        raise ValueError(f"has no host name: {value!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"must not carry a user name or password ('user@host'): {value!r}")
    return url


def check_host(value: Any) -> str:
    """A host name like ``grandlyon.com`` (lower-cased, trailing dot dropped)."""
    if not isinstance(value, str):
        raise ValueError(f"must be a host name string, got {type(value).__name__} {value!r}"[:300])
    host = value.strip().lower().rstrip(".")
    if not _HOST_RE.match(host):
        raise ValueError(f"must be a host name like 'grandlyon.com' (no scheme, port or path), got {value!r}")
    return host


def check_regex(value: Any) -> str:
    """A regular expression that compiles, of bounded length and repetition counts, without
    nested quantifiers (``(a+)+``: exponential backtracking on a URL that almost matches)."""
    if not isinstance(value, str):
        raise ValueError(f"must be a regular expression string, got {type(value).__name__} {value!r}"[:300])
    if len(value) > MAX_REGEX_CHARS:
        raise ValueError(f"regular expression longer than {MAX_REGEX_CHARS} characters")
    for m in _BOUNDS_RE.finditer(value):
        for bound in m.groups():
            if bound and (len(bound) > 6 or int(bound) > MAX_REGEX_REPEAT):
                raise ValueError(f"regular expression {value!r}: repetition count {bound} over {MAX_REGEX_REPEAT}")
    try:
        tree = _sre_parse.parse(value)
        re.compile(value)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    if _nested_repeat(tree.data if hasattr(tree, "data") else list(tree), inside=False, depth=0):
        raise ValueError(f"regular expression {value!r} nests a repeated group inside another repetition "
                         "(like '(a+)+'), whose matching time can explode: write it without the nesting")
    return value


def _nested_repeat(items: list[Any], inside: bool, depth: int) -> bool:
    """Does the parsed pattern repeat (max > 1) something that itself repeats?"""
    if depth > 100:
        return True
    for op, av in items:
        name = str(op)
        if name in _REPEATS:
            lo, hi, sub = av
            repeats = hi is _sre_parse.MAXREPEAT or hi > 1
            if repeats and inside:
                return True
            if _nested_repeat(_items(sub), inside or repeats, depth + 1):
                return True
        else:
            for sub in _children(name, av):
                if _nested_repeat(_items(sub), inside, depth + 1):
                    return True
    return False


def _items(sub: Any) -> list[Any]:
    return sub.data if hasattr(sub, "data") else list(sub)


def _children(name: str, av: Any) -> list[Any]:
    if name == "SUBPATTERN":
        return [av[-1]]
    if name == "BRANCH":
        return list(av[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return [av[1]]
    if name == "ATOMIC_GROUP":
        return [av]
    if name == "GROUPREF_EXISTS":
        return [p for p in av[1:] if p is not None]
    return []
