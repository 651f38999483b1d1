"""run_extract: extract every document of a corpus store, incrementally, in killable workers.

Stage: extract. Input: a :class:`~nlp.store.CorpusStore` (documents and sources), the
:class:`~nlp.extract.core.ExtractSettings`. Output: one stored extraction per document (JSON
under ``corpus/text`` + a row in ``extractions``), each saved as soon as it arrives so that an
interrupted run loses nothing; the counts per status of the work done.

Incremental: an extraction is keyed by (document id, engine, engine version, cleaning version)
and is not redone unless one of them changes or ``force`` is set. One exception: a document
stored as ``no-text-layer`` is redone when OCR is now enabled.

Limits: each document runs in a worker process (``settings.workers`` of them, started by
fork) that the parent kills when it passes ``timeout_s`` (status ``timeout``; its process
group goes too, Tesseract included). A worker's address space is capped with
``resource.setrlimit(RLIMIT_AS)`` at its size when started plus ``max_memory_mb``: an
allocation beyond that fails inside the worker (status ``memory``). A worker that dies any
other way is recorded as ``error`` with its exit code. In every case the batch goes on with a
fresh worker.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from nlp.extract import clean
from nlp.extract.core import ExtractSettings, extract_file, planned_key
from nlp.schema import Extraction
from nlp.store import CorpusStore

log = logging.getLogger(__name__)

MB = 1024 * 1024


def _vm_size() -> int:
    """Current virtual memory size of this process in bytes (Linux), 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _set_limits(max_memory_mb: int) -> None:
    import resource

    # Relative to the forked image: the parent may hold big libraries already mapped.
    limit = _vm_size() + max_memory_mb * MB
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _worker_main(conn: Connection, settings: ExtractSettings) -> None:
    """Loop of a worker process: receive (doc id, path, hints), send (doc id, result dict)."""
    os.setpgrp()  # its own process group, so that a kill takes Tesseract along
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    try:
        _set_limits(settings.max_memory_mb)
    except (ValueError, OSError) as exc:  # pragma: no cover - platform without RLIMIT_AS
        log.warning("cannot set the memory limit: %s", exc)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        doc_id, path, hints = msg
        try:
            result: dict[str, Any] = extract_file(Path(path), settings, hints).to_dict()
        except MemoryError:
            result = {"__failure__": "memory",
                      "message": f"memory limit reached ({settings.max_memory_mb} MB per worker)"}
        except BaseException as exc:  # a bug in a reader must not stop the batch
            result = {"__failure__": "error", "message": f"{type(exc).__name__}: {exc}"}
        try:
            conn.send((doc_id, result))
        except MemoryError:
            conn.send((doc_id, {"__failure__": "memory", "message": "result too large for the memory limit"}))


class _Worker:
    def __init__(self, ctx: Any, settings: ExtractSettings) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, settings), daemon=True)
        self.proc.start()
        child.close()
        self.task: tuple[str, tuple[str, str]] | None = None
        self.deadline = 0.0
        self.started = 0.0

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.kill()
        else:
            self.conn.close()


def _hints(store: CorpusStore, doc_id: str, media_type: str) -> dict[str, Any]:
    """What the store knows about a document, for its metadata (first source first)."""
    hints: dict[str, Any] = {"media_type": media_type}
    for src in store.sources(doc_id):
        for key in ("url", "page_title", "last_modified"):
            if src.get(key) and key not in hints:
                hints[key] = src[key]
        for key, value in (src.get("metadata") or {}).items():
            if isinstance(value, (str, int, float)) and key not in hints:
                hints[key] = value
    return hints


def _death(code: int | None, max_memory_mb: int) -> tuple[str, str]:
    """Status and message for a worker that died without answering."""
    if code == -signal.SIGKILL:  # not us (we record a timeout ourselves): the OOM killer
        return "memory", "worker killed by SIGKILL (out of memory)"
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return "error", (f"worker crashed ({name}); native parsers crash this way when an "
                         f"allocation fails, e.g. at the memory limit ({max_memory_mb} MB)")
    return "error", f"worker died (exit code {code})"


def _failure(status: str, message: str, key: tuple[str, str], seconds: float) -> Extraction:
    return Extraction(status=status, engine=key[0], engine_version=key[1],
                      cleaning_version=clean.CLEANING_VERSION, error=message, seconds=round(seconds, 3))


def run_extract(
    store: CorpusStore,
    settings: ExtractSettings,
    metropoles: list[str] | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Extract the documents of ``store`` (optionally only those of ``metropoles``).

    Output: counts per status of the extractions done in this run, plus ``unchanged`` for the
    documents whose stored extraction is current (none of them is re-read).
    """
    from tqdm import tqdm

    counts: Counter = Counter()
    ocr_on = settings.ocr_enabled()
    todo: list[tuple[str, str, dict[str, Any], tuple[str, str]]] = []
    for doc in store.documents(metropoles):
        path = store.root / doc.path
        hints = _hints(store, doc.id, doc.media_type)
        if not path.exists():
            store.save_extraction(doc.id, _failure("error", f"file missing: {doc.path}", ("none", "0"), 0))
            counts["error"] += 1
            continue
        try:
            _, key = planned_key(path, settings, hints)
        except OSError as exc:  # unreadable file: recorded, the batch goes on
            store.save_extraction(doc.id, _failure("error", f"cannot read {doc.path}: {exc}", ("none", "0"), 0))
            counts["error"] += 1
            continue
        row = store.get_extraction_row(doc.id, key[0], key[1], clean.CLEANING_VERSION)
        if row and not settings.force and not (row["status"] == "no-text-layer" and ocr_on):
            counts["unchanged"] += 1
            continue
        todo.append((doc.id, str(path), hints, key))
    if not todo:
        return dict(counts)

    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    n_workers = max(1, min(settings.workers, len(todo)))
    workers = [_Worker(ctx, settings) for _ in range(n_workers)]
    queue = list(reversed(todo))
    # On stderr, and only for a person watching (DESIGN.md §6: off when not a TTY).
    bar = tqdm(total=len(todo), unit="doc", desc="extract", file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()), dynamic_ncols=True)

    def record(doc_id: str, extraction: Extraction) -> None:
        store.save_extraction(doc_id, extraction)
        counts[extraction.status] += 1
        bar.update(1)

    try:
        while queue or any(w.task for w in workers):
            for i, w in enumerate(workers):
                if w.task is None and queue:
                    doc_id, path, hints, key = queue.pop()
                    try:
                        w.conn.send((doc_id, path, hints))
                    except (BrokenPipeError, OSError):
                        w.kill()
                        workers[i] = w = _Worker(ctx, settings)
                        w.conn.send((doc_id, path, hints))
                    w.task = (doc_id, key)
                    w.deadline = time.monotonic() + settings.timeout_s
                    w.started = time.monotonic()
            busy = [w for w in workers if w.task]
            if not busy:
                continue
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=timeout + 0.01)
            for i, w in enumerate(workers):
                if w.task is None:
                    continue
                doc_id, key = w.task
                if w.conn in ready:
                    try:
                        got_id, result = w.conn.recv()
                    except (EOFError, OSError):
                        w.proc.join(1)
                        code = w.proc.exitcode
                        status, msg = _death(code, settings.max_memory_mb)
                        record(doc_id, _failure(status, msg, key, time.monotonic() - w.started))
                        w.kill()
                        workers[i] = _Worker(ctx, settings)
                        continue
                    if "__failure__" in result:
                        record(got_id, _failure(result["__failure__"], result["message"], key,
                                                time.monotonic() - w.started))
                    else:
                        record(got_id, Extraction.from_dict(result))
                    w.task = None
                elif time.monotonic() >= w.deadline:
                    log.info("document %s passed the time limit (%ss): worker killed", doc_id, settings.timeout_s)
                    w.kill()
                    record(doc_id, _failure(
                        "timeout", f"extraction passed the time limit of {settings.timeout_s:g} s",
                        key, settings.timeout_s,
                    ))
                    workers[i] = _Worker(ctx, settings)
    finally:
        bar.close()
        for w in workers:
            if w.task is None:
                w.stop()
            else:  # interrupted: nothing to wait for
                w.kill()
    return dict(counts)
