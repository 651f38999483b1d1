"""Parquet tables: single files, and datasets partitioned by metropolis (issue 14).

A table whose rows carry a ``metropole`` is written as a *dataset*: a folder with the name the
single file had (``tables/hits.parquet/``) holding one folder per metropolis, each with one or
more Parquet files::

    tables/hits.parquet/lyon/part-0.parquet
    tables/hits.parquet/nantes/part-0.parquet
    tables/hits.parquet/%missing/part-0.parquet      rows without a metropole

Why this layout and not Hive's ``metropole=lyon/``: the ``metropole`` column stays inside every
file and no folder name holds a ``=``, so plain ``pandas.read_parquet(folder)`` and
``pyarrow.dataset.dataset(folder)`` read the whole dataset with the same columns, dtypes and
values as the old single file. Hive folders would turn ``metropole`` into a dictionary
(pandas: categorical) column moved to the end, and pyarrow refuses a Hive folder whose files
also hold the column. A pyarrow filter on ``metropole`` still skips the other files' data
(each file's statistics hold one value). Rows come back grouped by metropolis, folders in name order, each
keeping its rows' order.

- :func:`write_table`: the one writer the stages call (a single file, or a dataset with
  ``partition_by``), CSV copy beside as one file;
- :func:`staged_dataset` + :func:`write_partition`: a dataset written by several writers (a
  worker writes its own metropolis) and committed by the client in one swap;
- :func:`read_table` / :func:`table_columns`: the one reader, for files and datasets alike.

``nlp.io`` re-exports these names (``from nlp.io import write_table`` keeps working).
"""
from __future__ import annotations

import contextlib
import glob
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

from nlp.io import _fsync_dir, _tmp_name, atomic_open, sweep_stale_tmp

MISSING_PARTITION = "%missing"
_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_PART_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# Object columns Parquet takes as they are: one scalar kind with None for missing (no NaN to
# turn into None), or only containers (lists of labels, dicts) with None.
_PLAIN_KINDS = frozenset({str, bool, type(None)})
_NESTED_KINDS = frozenset({list, tuple, dict, type(None)})


def partition_name(value: Any) -> str:
    """Folder name of the partition that holds rows whose metropole is ``value``: the slug itself
    (lowercase letters, digits, hyphens: what the registry validates), any other character
    percent-escaped as its UTF-8 bytes (``%XX``), so that no value names a folder outside the
    dataset, a hidden one or one pyarrow skips (leading ``.`` or ``_``). A missing or empty
    value gives :data:`MISSING_PARTITION` (``%missing``), which no escaped value can equal."""
    missing = value == "" if isinstance(value, str) else _isna(value)
    if missing:
        return MISSING_PARTITION
    return "".join(c if c in _SLUG_CHARS else "".join(f"%{b:02X}" for b in c.encode("utf-8"))
                   for c in str(value))


def _isna(value: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_scalar(value) and pd.isna(value))  # a list is not a missing value


def _parquet_ready(df: Any) -> Any:
    """A copy of ``df`` Parquet accepts: object columns holding mixed values are stringified
    (Parquet needs one type per column); ``None`` stays missing."""
    frame = df.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            # Most object columns already hold one kind (texts, or label lists) and missing
            # values as None: nothing to convert. Testing the value types first skips two
            # Python calls per cell (measured: 1.1 of the 4.5 client seconds of an annotate
            # re-run over 1,000 cached documents).
            kinds = set(map(type, frame[col].to_numpy()))
            if kinds <= _PLAIN_KINDS or kinds <= _NESTED_KINDS:
                continue
            values = frame[col].map(
                lambda v: v if v is None or isinstance(v, (str, bool, list, tuple, dict))
                or (isinstance(v, float) and math.isnan(v)) else str(v))
            if not values.map(lambda v: isinstance(v, (list, tuple, dict))).any():
                values = values.where(values.notna(), None)
            frame[col] = values
    return frame


# -- putting a new version in place ------------------------------------------------------


def _set_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.old"))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _swap(new: Path, path: Path) -> None:
    """Put ``new`` (a file or a folder) at ``path``. A file over a file is one atomic rename. A
    folder cannot be renamed over a non-empty folder or over a file (POSIX), so the old version
    is first renamed aside to ``.<name>.<pid>.<ns>.old`` and removed once the new one is in
    place: a crash between the two renames leaves the old version aside, which
    :func:`read_table` reads and the next writer puts back (:func:`_restore`)."""
    old = None
    if path.exists() and (path.is_dir() or new.is_dir()):
        old = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.old")
        os.rename(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)
        raise
    _fsync_dir(path.parent)
    if old is not None:
        _remove(old)


def _restore(path: Path) -> None:
    """Before writing ``path``: undo a swap cut between its two renames (nothing at ``path``,
    the old version aside: it goes back), and remove versions a finished swap left aside."""
    aside = _set_aside(path)
    if aside and not path.exists():
        os.rename(aside.pop(), path)
    for old in aside:
        _remove(old)


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[Path]:
    """A temporary file name beside ``path`` for a writer that wants a name (pyarrow, pandas);
    on a clean exit it is fsynced and swapped in (over an old file or dataset), on an exception
    removed, ``path`` untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _swap(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_part(table: Any, target: Path) -> None:
    import pyarrow.parquet as pq

    with _atomic_file(target) as tmp:
        pq.write_table(table, tmp)


# -- datasets --------------------------------------------------------------------------


@contextlib.contextmanager
def staged_dataset(path: Path | str, empty: Any = None) -> Iterator[Path]:
    """A new version of the dataset ``path``, built aside and put in place whole.

    Yields the staging folder, a hidden sibling of ``path`` (``.<name>.<pid>.<ns>.tmp``: same
    filesystem, so the commit is a rename), to fill with :func:`write_partition` from this
    process or from workers that see the same filesystem at the same path. On a clean exit the
    parts get one schema (:func:`_unify`) and the folder replaces ``path`` (an old single file
    or dataset) in one swap; on an exception it is removed and ``path`` is untouched. Readers
    see the old version or the new one, never a mix of old and new partitions. Staging folders
    of writers killed earlier (dead process, or over an hour old) are swept first.

    ``empty``: a DataFrame with the table's columns and dtypes (no rows needed), written as
    ``part-0.parquet`` when no part was written (a stage whose writers found no row still
    writes its table, as :func:`write_dataset` does); without it, no part is a ValueError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _restore(path)
    sweep_stale_tmp(path.parent, pattern=f".{glob.escape(path.name)}.*.tmp")
    staging = _tmp_name(path)
    staging.mkdir()
    try:
        yield staging
        # A part whose writer was killed mid-write (its task then ran again elsewhere) left
        # a hidden temporary file: not part of the table.
        for tmp in staging.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        files = sorted(staging.rglob("*.parquet"))
        if not files and empty is not None:
            import pyarrow as pa

            files = [staging / "part-0.parquet"]
            _write_part(pa.Table.from_pandas(_parquet_ready(empty.iloc[:0]), preserve_index=False), files[0])
        if not files:
            raise ValueError(f"{path}: no partition was written; nothing to commit")
        _unify(files)
        _fsync_dir(staging)
        _swap(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a swap


def _unify(files: list[Path]) -> None:
    """Give every part of a dataset one schema. A writer converts its own rows: a column empty
    in one metropolis comes out as Arrow type ``null`` there (or ``list<null>``), and whole-dataset
    readers take the first file's schema and refuse a part they cannot cast to it. Parts whose
    schema differs from the permissive union of all are rewritten cast to it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(f) for f in files]
    unified = pa.unify_schemas(schemas, promote_options="permissive")
    for f, schema in zip(files, schemas):
        if not schema.equals(unified):
            _write_part(pq.read_table(f).select(unified.names).cast(unified), f)


def write_partition(df: Any, staging: Path | str, metropole: Any, part: str | int = 0,
                    partition_by: str = "metropole") -> Path:
    """Write the rows of one metropolis into a staged dataset: what a worker calls for its own.

    Input: ``df``, rows whose ``partition_by`` column is ``metropole`` (all of them: a row of
    another metropolis is a ValueError, it would be read back under the wrong folder);
    ``staging``, the folder :func:`staged_dataset` yielded on the client; ``part``, this
    writer's name within the partition (letters, digits, ``-``, ``_``; give each writer of one
    metropolis its own). Output: the file written,
    ``staging/<partition_name(metropole)>/part-<part>.parquet``, atomically (a writer killed
    mid-write leaves no partial part; a task run twice rewrites the same name)."""
    import pyarrow as pa

    name = partition_name(metropole)
    if not _PART_RE.match(str(part)):
        raise ValueError(f"part {part!r}: letters, digits, '-' and '_' only")
    if partition_by not in df.columns or (df[partition_by].map(partition_name) != name).any():
        raise ValueError(f"write_partition: every row's {partition_by!r} must be {metropole!r}")
    target = Path(staging) / name / f"part-{part}.parquet"
    _write_part(pa.Table.from_pandas(_parquet_ready(df), preserve_index=False), target)
    return target


def write_dataset(df: Any, path: Path | str, partition_by: str = "metropole") -> Path:
    """Write ``df`` as the dataset ``path``: one folder per value of ``partition_by``
    (:func:`partition_name`), one file each (``path/lyon/part-0.parquet``), put in place whole
    (:func:`staged_dataset`). A frame with no rows is one ``path/part-0.parquet`` that keeps
    the columns and dtypes. Every part is cut from one Arrow table, so all share its schema.
    Returns ``path``. Written by the calling process; a stage whose workers hold per-metropolis
    rows writes with :func:`staged_dataset` and :func:`write_partition` instead."""
    return _write_dataset(_parquet_ready(df), Path(path), partition_by)


def _write_dataset(frame: Any, path: Path, partition_by: str) -> Path:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    with staged_dataset(path, empty=frame) as staging:  # no row: one empty part-0.parquet
        names = frame[partition_by].map(partition_name).to_numpy()
        for name, rows in frame.groupby(names, sort=True).indices.items():
            _write_part(table.take(rows), staging / name / "part-0.parquet")
    return path


def write_table(df: Any, path: Path | str, csv: bool = False, partition_by: str | None = None) -> list[Path]:
    """Write a DataFrame at ``path``: a dataset (:func:`write_dataset`) when ``partition_by``
    names one of its columns, else one Parquet file; with ``csv``, also one CSV file beside
    (``<name>.csv``, for spreadsheets, never partitioned). Each is put in place atomically,
    over an old file or dataset alike. Object columns holding mixed values are stringified
    (Parquet needs one type per column; ``None`` stays missing). Returns the written paths
    (a dataset counts as its folder)."""
    path = Path(path)
    frame = _parquet_ready(df)
    if partition_by is not None and partition_by in frame.columns:
        _write_dataset(frame, path, partition_by)
    else:
        _restore(path)
        with _atomic_file(path) as tmp:
            frame.to_parquet(tmp, index=False)
    written = [path]
    if csv:
        csv_path = path.with_suffix(".csv")
        with atomic_open(csv_path, "w") as fh:
            frame.to_csv(fh, index=False)
        written.append(csv_path)
    return written


# -- reading ---------------------------------------------------------------------------


def _readable(path: Path) -> Path:
    # Nothing at path but a version set aside: a swap was cut between its renames (_swap);
    # that version is the table until the next writer puts it back.
    if not path.exists():
        aside = _set_aside(path)
        if aside:
            return aside[-1]
    return path


def read_table(path: Path | str, columns: list[str] | None = None) -> Any:
    """A table as a DataFrame, from one Parquet file (tables without a metropole, and outputs
    written before datasets) or a dataset folder: the same columns, dtypes and values either
    way; a dataset's rows come grouped by metropolis (folders in name order, each keeping its
    rows' order). ``columns``: those to read (default all; an absent one is an error, see
    :func:`table_columns`). It is plain ``pandas.read_parquet``, which reads the dataset layout
    whole by design (tests/nlp/test_tableio.py asserts it); what it adds is the old version of a
    dataset whose swap was cut between its two renames."""
    import pandas as pd

    return pd.read_parquet(_readable(Path(path)), columns=columns)


def table_columns(path: Path | str) -> list[str]:
    """The column names of the table at ``path`` (file or dataset), read from its schema only."""
    import pyarrow.dataset as ds

    return list(ds.dataset(_readable(Path(path)), format="parquet").schema.names)
