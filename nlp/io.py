"""Small shared helpers every stage may use: atomic writes, text decoding, CSV dialects, JSONL
and YAML reading with limits, accent folding. No stage logic lives here.

- :func:`atomic_write` / :func:`atomic_open`: readers see either the old file or the whole new
  one (temporary name in the same folder, fsync, rename, folder fsync); a failure leaves no
  temporary file behind.
- Parquet tables and per-metropolis datasets (:func:`write_table`, :func:`read_table`,
  :func:`staged_dataset`, :func:`write_partition`) live in :mod:`nlp.tableio`, reachable from
  here too.
- :func:`decode_bytes`: text of a file whose encoding is unknown (BOMs, UTF-8, then
  charset-normalizer, then windows-1252); :func:`sniff_delimiter` and :func:`read_csv`: one
  place for CSV dialects (``,`` ``;`` tab ``|``, a title line above the header, trailing
  separators of spreadsheet exports).
- :func:`iter_jsonl`: a JSONL file read as bytes, each line decoded and parsed on its own, so
  one bad line (invalid UTF-8, a lone surrogate, deep nesting, a huge number) is reported with
  its number and the others are kept.
- :func:`load_yaml`: ``yaml.safe_load`` with limits on size, nesting, alias expansion (billion
  laughs) and number size, and a one-line :class:`~nlp.errors.BarometreError` naming the file.
- :func:`fold_accents`: "Métropole" → "Metropole".
- :func:`luhn_ok`: the check digit of SIREN and SIRET numbers.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
import shutil
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from nlp.errors import BarometreError
from nlp.yamlio import (MAX_INT_DIGITS, MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES,  # noqa: F401
                        flow_depth_exceeds, load_yaml, yaml_error_message)

# -- atomic writes ---------------------------------------------------------------------


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")


def _fsync_dir(directory: Path) -> None:
    # The rename itself is durable only once the folder entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed,
    fsynced and renamed to ``path``; on an exception it is removed and ``path`` is untouched.

    ``mode``: ``"w"`` (text, ``encoding``) or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    binary = "b" in mode
    try:
        with open(tmp, mode, **({} if binary else {"encoding": encoding, "newline": ""})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically (see :func:`atomic_open`)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


_TMP_PID_RE = re.compile(r"^\..+\.(\d+)\.\d+\.tmp$")


def sweep_stale_tmp(directory: Path | str, max_age_s: float = 3600.0, *, pattern: str = "**/.*.tmp",
                    dead_writers: bool = True) -> int:
    """Remove temporary files (and datasets' staging folders) left by killed writers under
    ``directory`` (``pattern``): those older than ``max_age_s`` seconds, and, when
    ``dead_writers``, those whose writer process (the pid in the name :func:`atomic_open`
    gives) no longer runs on this machine. A live writer's file is kept. Returns how many were
    removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    now = time.time()
    removed = 0
    for tmp in directory.glob(pattern):
        with contextlib.suppress(OSError):
            stale = now - tmp.stat().st_mtime >= max_age_s
            m = _TMP_PID_RE.match(tmp.name)
            if not stale and dead_writers and m and int(m.group(1)) != os.getpid():
                stale = not _pid_alive(int(m.group(1)))
            if stale:
                # A folder is a dataset's staging folder (nlp.tableio.staged_dataset).
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
                removed += 1
    return removed


# -- text ------------------------------------------------------------------------------


def fold_accents(text: str) -> str:
    """``text`` without combining marks ("Métropole" → "Metropole"); case is kept."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def luhn_ok(digits: str) -> bool:
    """True when the string of digits ``digits`` passes the Luhn check (SIREN, SIRET)."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass
class Decoded:
    """Result of :func:`decode_bytes`: the text, the encoding used, and notes for the user."""

    text: str
    encoding: str
    notes: list[str]


_MOJIBAKE_RE = re.compile("[ÃÂ][\u0080-\u00bf©¨ª«®¯´¹º»¼½¾§¢£¤¥¦]")


# Byte-order marks and the codec that reads each (UTF-32 first: its LE mark starts with UTF-16's).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def bom_encoding(head: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``head`` announces, or None."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return None


def decode_bytes(data: bytes) -> Decoded:
    """Decode a text file of unknown encoding.

    Order: a BOM (UTF-8, UTF-16, UTF-32) says it; else strict UTF-8; else windows-1252;
    else what ``charset_normalizer`` finds; else latin-1 (never fails). UTF-8 once mis-decoded as
    windows-1252 ("Ã©") is repaired; NUL characters are removed. Notes say what was done.
    """
    notes: list[str] = []
    enc = bom_encoding(data)
    if enc:
        text = data.decode(enc, errors="replace")
        if "\ufffd" in text:
            notes.append(f"invalid {enc} bytes after the byte-order mark replaced by U+FFFD")
        return Decoded(_clean_text(text, notes), enc, notes)
    try:
        return Decoded(_clean_text(data.decode("utf-8"), notes), "utf-8", notes)
    except UnicodeDecodeError:
        pass
    # Windows-1252 first: it is what French spreadsheets and exports use when they are not
    # UTF-8, and it decodes every byte but five. charset_normalizer guesses badly on short
    # French text (a two-line CSV comes out as mac_latin2 or cp1250), so it is asked only
    # when windows-1252 cannot be right.
    try:
        text, encoding = data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        encoding = "latin-1"
        try:
            from charset_normalizer import from_bytes

            best = from_bytes(data[:200_000]).best()
            if best is not None and best.encoding:
                encoding = best.encoding
        except Exception:  # pragma: no cover - detection is a hint, never a failure
            pass
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            encoding = "latin-1"
            text = data.decode("latin-1")
    notes.append(f"not UTF-8: decoded as {encoding}")
    return Decoded(_clean_text(text, notes), encoding, notes)


def _clean_text(text: str, notes: list[str]) -> str:
    if _MOJIBAKE_RE.search(text):
        try:
            fixed = text.encode("cp1252").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            fixed = None
        if fixed is not None:
            notes.append("text was UTF-8 decoded as windows-1252 (e.g. 'Ã©'); repaired")
            text = fixed
    if "\x00" in text:
        notes.append("NUL characters removed")
        text = text.replace("\x00", "")
    return text


def kwic_window(sentence: Any, start: Any, end: Any, width: int = 80) -> tuple[str, str, str]:
    """(left, match, right) of ``sentence`` around the character span [start, end), each side
    capped at ``width`` characters (an ellipsis marks a cut). Bad spans give the sentence as
    left context and an empty match. The one KWIC window of the project (kwic, evidence)."""
    s = "" if sentence is None or (isinstance(sentence, float) and sentence != sentence) else str(sentence)
    try:
        a, b = int(start), int(end)
    except (TypeError, ValueError):
        return s[:2 * width], "", ""
    a, b = max(0, min(a, len(s))), max(0, min(b, len(s)))
    if b < a:
        a, b = b, a
    left, right = s[:a], s[b:]
    if len(left) > width:
        left = "…" + left[-width:]
    if len(right) > width:
        right = right[:width] + "…"
    return left, s[a:b], right


# -- CSV -------------------------------------------------------------------------------

DELIMITERS = (";", ",", "\t", "|")


def first_records(text: str, n: int = 10) -> list[str]:
    """The first ``n`` non-blank logical lines of CSV ``text`` (line breaks inside quotes kept)."""
    out: list[str] = []
    quoted = False
    start = 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch in "\r\n" and not quoted:
            if text[start:i].strip():
                out.append(text[start:i])
                if len(out) >= n:
                    return out
            start = i + 1
    if text[start:].strip() and len(out) < n:
        out.append(text[start:])
    return out


def sniff_delimiter(text: str) -> str:
    """The separator of CSV ``text``: the most frequent of ``; , tab |`` outside quotes, in the
    line that has the most of them among the first lines (so that a title line above the
    header does not decide). ``;`` wins ties (French exports)."""
    best_delim, best_count = ",", 0
    for line in first_records(text):
        counts = dict.fromkeys(DELIMITERS, 0)
        quoted = False
        for ch in line:
            if ch == '"':
                quoted = not quoted
            elif not quoted and ch in counts:
                counts[ch] += 1
        delim = max(counts, key=lambda d: (counts[d], d == ";"))
        if counts[delim] > best_count:
            best_delim, best_count = delim, counts[delim]
    return best_delim


def read_csv(data: bytes, source: str, *, max_columns: int = 2000) -> tuple[Any, Decoded, str]:
    """A CSV file as a DataFrame of strings (empty cells as ``""``), its decoding and its
    delimiter. Trailing separators (spreadsheet exports) add no column; columns named only by
    an empty header with no value are dropped. Raises :class:`BarometreError` naming
    ``source`` when the file cannot be read as a table."""
    import pandas as pd

    decoded = decode_bytes(data)
    text = decoded.text
    delim = sniff_delimiter(text)
    header = first_records(text, 1)
    if header and header[0].count(delim) + 1 > max_columns:
        raise BarometreError(f"{source}: {header[0].count(delim) + 1} columns: more than the "
                             f"{max_columns} a table of this kind may have")
    try:
        df = pd.read_csv(io.StringIO(text), sep=delim, dtype=str, keep_default_na=False,
                         index_col=False, engine="python", skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise BarometreError(f"{source}: cannot read the CSV: {str(exc).splitlines()[0]}") from None
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    blank = [c for c in df.columns if (c == "" or c.startswith("Unnamed:")) and (df[c] == "").all()]
    df = df.drop(columns=blank)
    return df.apply(lambda s: s.str.strip()), decoded, delim


# -- JSONL -----------------------------------------------------------------------------

MAX_JSON_DEPTH = 64


@dataclass
class JsonLine:
    """One line of a JSONL file: its number, and either ``value`` or ``error``."""

    lineno: int
    value: Any = None
    error: str | None = None


def _json_depth_ok(raw: str, limit: int) -> bool:
    depth = 0
    in_str = esc = False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} digits")
    return int(text)


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def parse_json_line(raw: bytes, lineno: int) -> JsonLine:
    """Decode and parse one JSONL line on its own (see :func:`iter_jsonl`)."""
    if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return JsonLine(lineno, error=f"invalid UTF-8 at byte {exc.start}")
    if not _json_depth_ok(text, MAX_JSON_DEPTH):
        return JsonLine(lineno, error=f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        return JsonLine(lineno, error=f"invalid JSON ({exc.msg}, column {exc.colno})")
    except ValueError as exc:
        return JsonLine(lineno, error=f"number too large ({exc})")
    except RecursionError:
        return JsonLine(lineno, error="JSON nested too deeply")
    if _has_lone_surrogate(value):
        return JsonLine(lineno, error="a string holds a lone surrogate (\\ud800-\\udfff): not valid text")
    return JsonLine(lineno, value=value)


def iter_jsonl(path: Path | str) -> Iterator[JsonLine]:
    """Every non-blank line of a JSONL file as a :class:`JsonLine`, in order.

    The file is read as bytes and each line decoded and parsed on its own: invalid UTF-8, a
    lone surrogate, nesting deeper than :data:`MAX_JSON_DEPTH`, an integer of more than
    :data:`MAX_INT_DIGITS` digits or bad JSON make that line an error (with its number); a
    UTF-8 BOM at the start of the file is skipped. Memory is bounded by the longest line.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip() or raw.strip() == codecs.BOM_UTF8:
                continue
            yield parse_json_line(raw, lineno)


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution in ``names`` ("not installed" when absent), for
    the provenance records and cache keys of the stages."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


_TABLE_HELPERS = frozenset({"write_table", "write_dataset", "write_partition", "staged_dataset", "read_table",
                            "table_columns", "partition_name", "MISSING_PARTITION"})


def __getattr__(name: str) -> Any:
    # The Parquet helpers live in nlp/tableio.py, which imports the atomic writes above; they
    # are reached through this module too, imported on first use so that either module can be
    # imported first.
    if name in _TABLE_HELPERS:
        from nlp import tableio

        return getattr(tableio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
