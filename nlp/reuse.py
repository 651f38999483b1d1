"""No work on an unchanged corpus: a stage's outputs are reused when its inputs are unchanged.

Used by the stages whose whole output is a function of files already on disk (indicators,
report): the stage computes a *key* from the bytes of its input files, its settings and the
source of its code, and keeps, next to its outputs, a small record
``outputs/.stages/<stage>.json`` = {key, outputs: {relative path: sha256}, summary}; a table
written as a per-metropolis dataset (a folder, nlp.tableio) counts by every file in it, so a
changed partition changes its digest. A re-run
whose key matches and whose recorded outputs are all still there, unchanged, returns the saved
summary and writes nothing. Anything else (a changed table, setting, lexicon or line of the
stage's code; an output deleted or edited by hand) recomputes.

The record is written last, after every output: a run killed half-way leaves either no
record or the previous one, whose output digests then no longer match, so it recomputes.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nlp.io import atomic_write

RECORD_DIR = ".stages"
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (tables can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def path_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder (a Parquet dataset): the relative name and
    bytes of every file under it, sorted, so that adding, removing, renaming or changing one
    partition changes it."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(p.relative_to(path).as_posix().encode() + b"\0" + file_digest(p).encode())
    return h.hexdigest()


def code_digest(package: Path, patterns: tuple[str, ...] = ("*.py", "*.yaml", "*.html", "*.css", "*.js")) -> str:
    """sha256 over a package's source and data files (names and bytes, sorted): a change to
    the code that computes an output changes the key of that output."""
    h = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in Path(package).rglob(pattern)
                    if "__pycache__" not in p.parts})
    for p in files:
        h.update(p.relative_to(package).as_posix().encode())
        h.update(file_digest(p).encode())
    return h.hexdigest()


def frame_digest(frame: Any, columns: Iterable[str]) -> str:
    """sha256 of a DataFrame's ``columns`` (those present; lists as "a|b"), independent of row
    order; "absent" for no frame. Shared by the stages' reuse keys (topics, indicators, report)."""
    import numpy as np
    import pandas as pd

    if frame is None:
        return "absent"
    cols = [c for c in columns if c in frame.columns]
    flat = pd.DataFrame({c: frame[c].map(lambda v: "|".join(map(str, v))
                                          if isinstance(v, (list, tuple, np.ndarray)) else str(v))
                         for c in cols})
    rows = np.sort(pd.util.hash_pandas_object(flat, index=False).to_numpy())
    return hashlib.sha256(rows.tobytes() + "\0".join(cols).encode()).hexdigest()


def table_digest(path: Path, drop: tuple[str, ...]) -> str:
    """sha256 of a Parquet table's content (file or dataset) without the columns ``drop`` (see
    :func:`frame_digest`)."""
    from nlp.tableio import read_table

    df = read_table(path)
    return frame_digest(df, [c for c in df.columns if c not in drop])


def stage_key(inputs: Iterable[Path], config: Mapping[str, Any], code: Iterable[Path] = (),
              ignore_columns: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """The key of one stage run.

    Inputs: ``inputs``, files or datasets whose bytes the stage reads (a missing one counts as
    absent, not an error: optional inputs); ``config``, the stage's effective settings (JSON-serialisable,
    ``str()`` otherwise); ``code``, package folders whose source computes the outputs;
    ``ignore_columns``: file name → columns of that Parquet table the key leaves out (the
    table counts by its content less those columns).
    Output: a hex sha256."""
    ignore_columns = ignore_columns or {}
    h = hashlib.sha256()
    for path in sorted({Path(p) for p in inputs}, key=str):
        h.update(str(path.name).encode())
        if not path.exists():
            h.update(b"absent")
        elif path.name in ignore_columns:
            h.update(table_digest(path, ignore_columns[path.name]).encode())
        else:
            h.update(path_digest(path).encode())
    h.update(json.dumps(config, sort_keys=True, default=str, ensure_ascii=False).encode())
    for package in code:
        h.update(code_digest(Path(package)).encode())
    return h.hexdigest()


def _record_path(outputs_dir: Path, stage: str) -> Path:
    return Path(outputs_dir) / RECORD_DIR / f"{stage}.json"


def reusable(outputs_dir: Path, stage: str, key: str) -> dict[str, Any] | None:
    """The saved summary of ``stage`` when its record has this ``key`` and every output it
    lists is present with the same bytes; ``None`` otherwise (including an unreadable
    record, which only costs a recomputation)."""
    try:
        record = json.loads(_record_path(outputs_dir, stage).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("outputs"), dict):
        return None
    for rel, digest in record["outputs"].items():
        path = Path(outputs_dir) / rel
        if not path.exists() or path_digest(path) != digest:
            return None
    summary = record.get("summary")
    return summary if isinstance(summary, dict) else {}


def record(outputs_dir: Path, stage: str, key: str, outputs: Iterable[Path], summary: Mapping[str, Any]) -> None:
    """Remember that ``outputs`` (files or datasets under ``outputs_dir``) were produced from ``key``,
    with the stage's ``summary``. Written atomically, after the outputs."""
    outputs_dir = Path(outputs_dir)
    digests = {Path(p).resolve().relative_to(outputs_dir.resolve()).as_posix(): path_digest(Path(p))
               for p in outputs if Path(p).exists()}
    payload = {"key": key, "outputs": dict(sorted(digests.items())), "summary": dict(summary)}
    path = _record_path(outputs_dir, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(payload, ensure_ascii=False, indent=1, default=str).encode("utf-8"))


def forget(outputs_dir: Path, stage: str) -> None:
    """Drop a stage's record (before its outputs are rewritten, so that a run killed
    half-way is never mistaken for a finished one)."""
    _record_path(outputs_dir, stage).unlink(missing_ok=True)
