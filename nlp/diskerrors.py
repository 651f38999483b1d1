"""What a disk error under the corpus store means, in words (split out of :mod:`nlp.store`).

Core module. Input: an exception raised while writing the store (``OSError`` or
``sqlite3.OperationalError``). Output: one line naming the store, the action and the cause
(:class:`~nlp.errors.StoreError`), instead of a traceback. Used as a decorator of the store's
writing methods and around the files the compute layer's workers write.
"""
from __future__ import annotations

import errno
import functools
import os
import sqlite3
from pathlib import Path
from typing import Any

from nlp.errors import StoreError

# Errors of the disk under the store, not of the store's logic: reported as one line
# (StoreError) instead of a traceback. The store stays consistent in every case: files are
# renamed into place before their row is committed, and a failed transaction rolls back.
_DISK_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied (read-only folder?)",
    errno.EPERM: "operation not permitted (read-only folder?)",
}
_SQLITE_DISK_ERRORS = {
    "database or disk is full": "the disk is full",
    "attempt to write a readonly database": "the database is read-only",
    "unable to open database file": "the database file cannot be opened or created (read-only folder?)",
    "disk i/o error": "disk input/output error (disk full or failing?)",
    "readonly database": "the database is read-only",
}


def disk_problem(exc: BaseException) -> str | None:
    """What a disk-full or read-only error means, in words; None for any other error."""
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{_DISK_ERRNOS[exc.errno]}{where}"
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        for needle, meaning in _SQLITE_DISK_ERRORS.items():
            if needle in message:
                return meaning
    return None


def read_only(root: Path) -> str | None:
    """Why the store's folder cannot be written, when that is the case (SQLite's own messages
    do not say)."""
    for folder in (root, *root.parents):
        if folder.exists():
            break
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"the file system holding {folder} is mounted read-only"
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return f"the folder {folder} is not writable"
    return None


def disk_errors(action: str) -> Any:
    """Decorator of a store method that writes: a disk-full or read-only error becomes a
    one-line :class:`StoreError` naming the store and ``action``."""
    def decorate(method: Any) -> Any:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except (OSError, sqlite3.OperationalError) as exc:
                problem = disk_problem(exc)
                if problem is None:
                    raise
                root = getattr(self, "root", None) or Path(args[0] if args else ".")
                raise StoreError(f"corpus store {root}: cannot {action}: {read_only(root) or problem}") from None

        return wrapper

    return decorate


def as_store_error(exc: BaseException, root: Path, action: str) -> BaseException:
    """``exc`` as the one-line :class:`StoreError` the decorator gives, when it is a disk
    problem (``exc`` itself otherwise): for the functions that write the store's files
    without a store object (a worker's files)."""
    problem = disk_problem(exc)
    if problem is None:
        return exc
    return StoreError(f"corpus store {root}: cannot {action}: {read_only(Path(root)) or problem}")

