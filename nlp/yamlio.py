"""YAML read with limits (shared by the settings, the registry, the lexicons and the
maturity weights): size, UTF-8, nesting depth, alias expansion, repeated keys and huge
integers are each one message naming the file, never a hang, a traceback or a message
hundreds of MB long. Re-exported by :mod:`nlp.io`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from nlp.errors import BarometreError

# -- YAML ------------------------------------------------------------------------------

# Numbers longer than this are refused (Python's int() of 5,000 digits is slow, and its error
# message carries the digits).
MAX_INT_DIGITS = 64
MAX_YAML_BYTES = 8 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping and integers too long to be a
    setting (PyYAML would convert a 5,000-digit integer, then Python refuses it)."""


def _construct_mapping(loader: _LimitedLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in the same mapping (first on line {seen[key]})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


def _construct_int(loader: _LimitedLoader, node: yaml.ScalarNode) -> Any:
    digits = re.sub(r"[^0-9a-fA-F]", "", str(node.value))
    if len(digits) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"number of {len(digits)} digits is too large", node.start_mark)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_LimitedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LimitedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _check_node_graph(node: yaml.Node, source: str) -> None:
    """Refuse a YAML graph whose expansion is too large (aliases multiply it: "billion
    laughs") or too deep. Sizes are counted with aliases expanded, memoised per node, so the
    check itself is linear in the file."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if key in sizes and not done:
            continue
        children: list[yaml.Node] = []
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [n for pair in current.value for n in pair]
        if not done:
            if key in depths and depths[key] == -1:
                raise BarometreError(f"{source}: YAML aliases form a cycle")
            depths[key] = -1  # in progress
            stack.append((current, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        size = 1 + sum(sizes.get(id(c), 1) for c in children)
        depth = 1 + max((depths.get(id(c), 1) for c in children), default=0)
        if size > MAX_YAML_NODES:
            raise BarometreError(f"{source}: YAML expands to more than {MAX_YAML_NODES:,} values "
                                 "(aliases referring to aliases?): refused")
        if depth > MAX_YAML_DEPTH:
            raise BarometreError(f"{source}: YAML nested deeper than {MAX_YAML_DEPTH} levels: refused")
        sizes[key], depths[key] = size, depth


_YAML_QUOTED_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'|#[^\n]*')
_BRACKETS_RE = re.compile(r"[\[\]{}]")


def flow_depth_exceeds(text: str, limit: int) -> bool:
    """Do the flow collections of YAML ``text`` (``[`` and ``{``, outside quotes and comments)
    nest deeper than ``limit``? A cheap look before parsing: PyYAML's scanner spends time
    quadratic in the flow depth (3 s for 2,000 levels) before its recursion fails."""
    depth = 0
    for ch in _BRACKETS_RE.findall(_YAML_QUOTED_RE.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth = max(0, depth - 1)
    return False


def yaml_error_message(exc: yaml.YAMLError) -> str:
    """'at line L, column C: problem' for a PyYAML error (one line, bounded length)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"YAML syntax error{where}: {str(problem)[:200]}"


def load_yaml(source: Path | str | bytes, name: str | None = None, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Parse YAML safely with limits; ``source`` is a path or the file's bytes, ``name`` how
    messages name it. Raises :class:`BarometreError` with one line naming the file for: a
    missing or unreadable file, more than ``max_bytes``, invalid UTF-8, a syntax error, a key
    repeated in a mapping, nesting deeper than :data:`MAX_YAML_DEPTH`, an expansion larger
    than :data:`MAX_YAML_NODES` values, a number of more than :data:`MAX_INT_DIGITS` digits.
    """
    if isinstance(source, bytes):
        data, name = source, name or "<yaml>"
    else:
        path = Path(source)
        name = name or str(path)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise BarometreError(f"{name}: {size:,} bytes: larger than the {max_bytes:,} a settings file may have")
            data = path.read_bytes()
        except FileNotFoundError:
            raise BarometreError(f"{name}: file not found") from None
        except IsADirectoryError:
            raise BarometreError(f"{name}: is a folder, not a file") from None
        except OSError as exc:
            raise BarometreError(f"{name}: cannot read: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise BarometreError(f"{name}: {len(data):,} bytes: larger than the {max_bytes:,} a settings file may have")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BarometreError(f"{name}: invalid UTF-8 at line {line} (byte {exc.start}); save the file as UTF-8") from None
    if flow_depth_exceeds(text, MAX_YAML_DEPTH):
        raise BarometreError(f"{name}: YAML nested deeper than {MAX_YAML_DEPTH} levels: refused")
    loader = None
    try:
        # Inside the try: the reader already refuses control characters when it is built.
        loader = _LimitedLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node_graph(node, name)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise BarometreError(f"{name}: {yaml_error_message(exc)}") from None
    except RecursionError:
        raise BarometreError(f"{name}: YAML nested too deeply: refused") from None
    finally:
        if loader is not None:
            loader.dispose()
