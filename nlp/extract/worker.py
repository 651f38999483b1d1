"""run_extract: extract every document of a corpus store, incrementally, in killable workers.

Stage: extract. Input: a :class:`~nlp.store.CorpusStore` (documents and sources), the
:class:`~nlp.extract.core.ExtractSettings`. Output: one stored extraction per document (JSON
under ``corpus/text`` + a row in ``extractions``), each saved as soon as it arrives so that an
interrupted run loses nothing; the counts per status of the work done.

Where the work runs (``compute``, :mod:`nlp.compute`): in this process by default, with
``settings.workers`` forked workers; on a Dask cluster (LocalCluster, an existing scheduler,
SLURM), as one task per partition of documents (:func:`extract_partition`), each with one
forked worker under the same limits. Workers write the extraction files into the corpus
folder (shared storage) and return small records; this process alone commits them to the
manifest, in batches.

Incremental: an extraction is keyed by (document id, engine, engine version, cleaning version)
and is not redone unless one of them changes or ``force`` is set. One exception: a document
stored as ``no-text-layer`` is redone when OCR is now enabled.

Limits (the same for ``barometre text``, through :func:`extract_isolated`): each document runs
in a forked worker process (``settings.workers`` of them) that the parent kills when it passes
``timeout_s`` (status ``timeout``; its process group goes too, Tesseract included). Memory is
capped twice: its resident memory, which the parent reads while it waits and kills the worker
for when it grows more than ``max_memory_mb`` (status ``memory``); and, as a backstop for
allocations faster than that polling, the worker's address space (``RLIMIT_AS``) at its size
when started plus twice ``max_memory_mb``, so that an allocation beyond fails inside the worker
(``MemoryError``: status ``memory``). A worker that dies
by a crash signal is ``memory`` when its peak resident memory (from ``wait4``) had reached half
its limit (native parsers such as PDFium abort when an allocation fails), ``error`` with the
signal otherwise. In every case the batch goes on with a fresh worker.

Workers die with their parent: each asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``; Tesseract subprocesses too), and holds no copy of any parent-side
pipe end, so that an idle worker also sees end-of-file and exits. A ``kill -9`` of ``barometre
extract`` leaves no process behind; its temporary files are swept when the store is opened next.
"""
from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import time
from collections import Counter
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Iterable

from nlp.compute import ComputeSettings, client_for, map_partitions, n_workers, partition, partition_size
from nlp.extract import clean
from nlp.extract.core import ExtractSettings, extract_file, one_line, planned_key
from nlp.extract.limits import MB, cap_address_space, die_with_parent, reset_peak_rss, rss_bytes
from nlp.schema import Extraction
from nlp.store import CorpusStore, write_extraction_file

log = logging.getLogger(__name__)

# How often the parent looks at its busy workers' resident memory (seconds).
MEMORY_POLL_S = 0.1
# Signals native code dies of when an allocation fails (abort, or a deliberate crash).
_CRASH_SIGNALS = {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGTRAP}
# Exit code of a worker whose own loop failed (not a document: those are answered).
_WORKER_BUG_EXIT = 70


def _worker_main(conn: Connection, settings: ExtractSettings) -> None:
    """Loop of a worker process: receive (doc id, path, hints), send (doc id, result dict)."""
    os.setpgrp()  # its own process group, so that a kill takes Tesseract along
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    if faulthandler.is_enabled():  # an abort at the memory limit is expected, not a bug to dump
        faulthandler.disable()
    # Address space at twice the cap: the parent's resident-memory watchdog is the limit; this
    # is the backstop for allocations faster than its polling. At 1x, a parent that had loaded
    # spaCy left PDFium failing its reservations while the worker's resident growth was well
    # under half the cap, and a flate bomb read as a parser crash ("error") instead of "memory".
    cap_address_space(2 * settings.max_memory_mb)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if msg is None:
            return
        doc_id, path, hints = msg
        reset_peak_rss()
        try:
            result: dict[str, Any] = extract_file(Path(path), settings, hints).to_dict()
        except MemoryError:
            result = {"__failure__": "memory",
                      "message": f"memory limit reached ({settings.max_memory_mb} MB per worker)"}
        except BaseException as exc:  # a bug in a reader must not stop the batch
            result = {"__failure__": "error", "message": one_line(f"{type(exc).__name__}: {exc}")}
        try:
            conn.send((doc_id, result))
        except MemoryError:
            conn.send((doc_id, {"__failure__": "memory", "message": "result too large for the memory limit"}))


class _Worker:
    """One forked worker process and the parent's end of its pipe.

    ``siblings``: the parent-side pipe ends of the other live workers, closed in the child so
    that no worker keeps another's pipe open (each pipe then reaches end-of-file when the
    parent dies, and a worker's death is seen by the parent as end-of-file)."""

    def __init__(self, settings: ExtractSettings, siblings: Iterable[Connection] = ()) -> None:
        parent_conn, child_conn = Pipe()
        parent_pid = os.getpid()
        self.base_rss = rss_bytes()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                die_with_parent(parent_pid)
                for conn in (parent_conn, *siblings):
                    conn.close()
                _worker_main(child_conn, settings)
            except BaseException:  # pragma: no cover - the loop itself failed
                code = _WORKER_BUG_EXIT
            finally:
                os._exit(code)
        child_conn.close()
        self.pid = pid
        self.conn = parent_conn
        self.task: tuple[str, tuple[str, str]] | None = None
        self.deadline = 0.0
        self.started = 0.0
        self.exit_code: int | None = None
        self.peak_rss = 0

    def send(self, task: tuple[str, str, dict[str, Any]]) -> None:
        """Hand the idle worker a document. Its own resident size now is the document's
        baseline: a forked child maps fewer pages than its parent (file-backed pages are
        faulted in lazily), so the parent's size would hide the document's growth."""
        self.base_rss = rss_bytes(self.pid) or self.base_rss
        self.conn.send(task)

    def rss_growth(self) -> int:
        """Resident memory above what the worker started with, in bytes."""
        return max(0, rss_bytes(self.pid) - self.base_rss)

    def reap(self, block_s: float = 5.0) -> None:
        """Collect the exit status and peak resident memory of the (dead or dying) worker."""
        if self.exit_code is not None:
            return
        deadline = time.monotonic() + block_s
        while True:
            try:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exit_code = -1
                return
            if pid == self.pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                self.peak_rss = usage.ru_maxrss * 1024  # kilobytes on Linux
                return
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def kill(self) -> None:
        for kill in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                kill()
            except (ProcessLookupError, PermissionError):
                pass
        self.reap()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.reap(5.0)
        if self.exit_code is None:
            self.kill()
        else:
            self.conn.close()


def _death(worker: _Worker, max_memory_mb: int) -> tuple[str, str]:
    """Status and message for a worker that died without answering."""
    code = worker.exit_code
    peak_mb = max(0, worker.peak_rss - worker.base_rss) / MB
    if code == -signal.SIGKILL:  # not us (we record a timeout ourselves): the OOM killer
        return "memory", "worker killed by SIGKILL (the system ran out of memory)"
    if code is not None and code < 0:
        sig = signal.Signals(-code)
        if sig in _CRASH_SIGNALS and peak_mb >= max_memory_mb / 2:
            return "memory", (f"memory limit reached ({max_memory_mb} MB per worker): the worker "
                              f"crashed ({sig.name}) after using {peak_mb:.0f} MB, as native "
                              f"parsers do when an allocation is refused")
        return "error", (f"worker crashed ({sig.name}) after using {peak_mb:.0f} MB, under its "
                         f"memory limit of {max_memory_mb} MB: a crash of a native parser")
    return "error", f"worker died (exit code {code})"


def _failure(status: str, message: str, key: tuple[str, str], seconds: float) -> Extraction:
    return Extraction(status=status, engine=key[0], engine_version=key[1],
                      cleaning_version=clean.CLEANING_VERSION, error=message, seconds=round(seconds, 3))


Task = tuple[str, str, dict[str, Any], tuple[str, str]]  # (doc id, path, hints, (engine, version))


class _Pool:
    """Worker processes running :func:`extract_file` under the time and memory limits."""

    def __init__(self, settings: ExtractSettings, n_workers: int) -> None:
        self.settings = settings
        self.cap = settings.max_memory_mb * MB
        self.workers: list[_Worker] = []
        for _ in range(n_workers):
            self.workers.append(self._spawn())

    def _spawn(self, replacing: _Worker | None = None) -> _Worker:
        return _Worker(self.settings, [w.conn for w in self.workers if w is not replacing and not w.conn.closed])

    def _replace(self, i: int) -> _Worker:
        self.workers[i] = w = self._spawn(self.workers[i])
        return w

    def close(self) -> None:
        for w in self.workers:
            if w.conn.closed:
                continue
            if w.task is None:
                w.stop()
            else:  # interrupted: nothing to wait for
                w.kill()

    def run(self, tasks: list[Task], record: Callable[[str, Extraction], None]) -> None:
        """Run every task; ``record(doc_id, extraction)`` receives each result as it comes
        (an exception there stops the run: the caller's :meth:`close` kills the workers)."""
        settings = self.settings
        queue = list(reversed(tasks))
        workers = self.workers
        while queue or any(w.task for w in workers):
            for i, w in enumerate(workers):
                if w.task is None and queue:
                    doc_id, path, hints, key = queue.pop()
                    try:
                        w.send((doc_id, path, hints))
                    except (BrokenPipeError, OSError):
                        w.kill()
                        w = self._replace(i)
                        w.send((doc_id, path, hints))
                    w.task = (doc_id, key)
                    w.started = time.monotonic()
                    w.deadline = w.started + settings.timeout_s
            busy = [w for w in workers if w.task]
            timeout = max(0.0, min(min(w.deadline for w in busy) - time.monotonic(), MEMORY_POLL_S))
            ready = wait([w.conn for w in busy], timeout=timeout + 0.005)
            now = time.monotonic()
            for i, w in enumerate(workers):
                if w.task is None:
                    continue
                doc_id, key = w.task
                if w.conn in ready:
                    try:
                        got_id, result = w.conn.recv()
                    except (EOFError, OSError):
                        w.reap()
                        status, msg = _death(w, settings.max_memory_mb)
                        w.task = None
                        w.conn.close()
                        self._replace(i)
                        record(doc_id, _failure(status, msg, key, now - w.started))
                        continue
                    w.task = None
                    if "__failure__" in result:
                        extraction = _failure(result["__failure__"], result["message"], key, now - w.started)
                    else:
                        extraction = Extraction.from_dict(result)
                    # Memory a document left behind (freed but kept by the allocator) would count
                    # against the next one: start afresh after a heavy document.
                    if w.rss_growth() > self.cap / 2:
                        w.stop()
                        self._replace(i)
                    record(got_id, extraction)
                elif now >= w.deadline:
                    log.info("document %s passed the time limit (%ss): worker killed", doc_id, settings.timeout_s)
                    w.task = None
                    w.kill()
                    self._replace(i)
                    record(doc_id, _failure(
                        "timeout", f"extraction passed the time limit of {settings.timeout_s:g} s",
                        key, settings.timeout_s,
                    ))
                elif w.rss_growth() > self.cap:
                    log.info("document %s passed the memory limit (%s MB): worker killed",
                             doc_id, settings.max_memory_mb)
                    w.task = None
                    w.kill()
                    self._replace(i)
                    record(doc_id, _failure(
                        "memory", f"memory limit reached ({settings.max_memory_mb} MB per worker): "
                                  "resident memory passed it, worker killed", key, now - w.started,
                    ))


def extract_isolated(path: Path, settings: ExtractSettings, hints: dict[str, Any] | None = None) -> Extraction:
    """:func:`extract_file` in a worker process under the time and memory limits of
    ``settings`` (what ``barometre text`` runs): never raises for a bad document, and a
    document that hangs or swells ends as ``timeout`` or ``memory`` like in ``run_extract``."""
    path = Path(path)
    hints = dict(hints or {})
    try:
        # In the parent: the engines it imports are then shared with the worker, not counted
        # against the worker's memory limit.
        _, key = planned_key(path, settings, hints)
    except OSError as exc:
        return _failure("error", f"cannot read {path}: {exc}", ("none", "0"), 0)
    results: list[Extraction] = []
    pool = _Pool(settings, 1)
    try:
        pool.run([(str(path), str(path), hints, key)], lambda _id, extraction: results.append(extraction))
    finally:
        pool.close()
    return results[0]


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


def extract_partition(tasks: list[Task], settings: ExtractSettings, corpus_root: str, forks: int = 1,
                      on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Extract a partition of documents: the unit of work the compute layer schedules.

    Input: tasks (doc id, path, hints, planned (engine, version)), the settings, the corpus
    folder (shared storage), ``forks`` killable workers to run them in. Each document runs in
    a forked worker under the time and memory limits (os.fork works inside a Dask worker,
    which is a daemonic process that multiprocessing would refuse children). Output: each
    extraction's JSON written into the corpus folder and its manifest record (small) returned,
    or handed to ``on_record`` as it comes; the manifest itself is the caller's to write.
    """
    records: list[dict[str, Any]] = []
    if not tasks:
        return records
    # Import the engines here, before the fork (as run_extract's planned_key does in its
    # process): the child shares them and its memory cap counts only the document's work.
    try:
        planned_key(Path(tasks[0][1]), settings, tasks[0][2])
    except OSError:
        pass

    def record(doc_id: str, extraction: Extraction) -> None:
        rec = write_extraction_file(Path(corpus_root), doc_id, extraction)
        if on_record is None:
            records.append(rec)
        else:
            on_record(rec)

    pool = _Pool(settings, max(1, min(forks, len(tasks))))
    try:
        pool.run(tasks, record)
    finally:
        pool.close()
    return records


class _Committer:
    """The one writer of the manifest: commits records in batches (one transaction per
    ``batch`` records or ``every_s`` seconds), counts statuses, moves the progress bar."""

    def __init__(self, store: CorpusStore, counts: Counter, bar: Any, batch: int = 64, every_s: float = 2.0) -> None:
        self.store, self.counts, self.bar = store, counts, bar
        self.batch, self.every_s = batch, every_s
        self.pending: list[dict[str, Any]] = []
        self.last = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        self.pending.append(record)
        self.counts[record["status"]] += 1
        self.bar.update(1)
        if len(self.pending) >= self.batch or time.monotonic() - self.last >= self.every_s:
            self.flush()

    def add_all(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.add(record)
        self.flush()

    def flush(self) -> None:
        if self.pending:
            self.store.commit_extractions(self.pending)
            self.pending = []
        self.last = time.monotonic()


def _plan(store: CorpusStore, settings: ExtractSettings, metropoles: list[str] | None,
          counts: Counter) -> tuple[list[Task], list[dict[str, Any]]]:
    """The documents to extract (their stored extraction is missing or outdated) and the
    records of those that cannot even be read (file missing or unreadable)."""
    ocr_on = settings.ocr_enabled()
    todo: list[Task] = []
    failed: list[dict[str, Any]] = []
    for doc in store.documents(metropoles):
        path = store.root / doc.path
        hints = _hints(store, doc.id, doc.media_type)
        if not path.exists():
            failure = _failure("error", f"file missing: {doc.path}", ("none", "0"), 0)
        else:
            try:
                _, key = planned_key(path, settings, hints)
            except OSError as exc:  # unreadable file: recorded, the batch goes on
                failure = _failure("error", f"cannot read {doc.path}: {exc}", ("none", "0"), 0)
            else:
                row = store.get_extraction_row(doc.id, key[0], key[1], clean.CLEANING_VERSION)
                if row and not settings.force and not (row["status"] == "no-text-layer" and ocr_on):
                    counts["unchanged"] += 1
                else:
                    todo.append((doc.id, str(path), hints, key))
                continue
        failed.append(write_extraction_file(store.root, doc.id, failure))
        counts["error"] += 1
    return todo, failed


def run_extract(
    store: CorpusStore,
    settings: ExtractSettings,
    metropoles: list[str] | None = None,
    progress: bool = True,
    compute: ComputeSettings | None = None,
) -> dict[str, int]:
    """Extract the documents of ``store`` (optionally only those of ``metropoles``).

    ``compute``: where the work runs (default: in this process, in ``settings.workers``
    forked workers). On a Dask cluster, each partition of documents is one task
    (:func:`extract_partition`, one forked worker per task); the workers write the files and
    this process alone commits their records, partition by partition.
    Output: counts per status of the extractions done in this run, plus ``unchanged`` for the
    documents whose stored extraction is current (none of them is re-read).
    """
    from tqdm import tqdm

    counts: Counter = Counter()
    todo, failed = _plan(store, settings, metropoles, counts)
    if failed:
        store.commit_extractions(failed)
    if not todo:
        return dict(counts)
    compute = compute or ComputeSettings(scheduler="inprocess")
    # On stderr, and only for a person watching (DESIGN.md §6: off when not a TTY).
    bar = tqdm(total=len(todo), unit="doc", desc="extract", file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()), dynamic_ncols=True)
    # In process, each record is committed as it comes (an interrupted run, even kill -9,
    # keeps every extraction done); a cluster's records come a partition at a time.
    committer = _Committer(store, counts, bar, batch=1 if compute.mode(len(todo)) == "inprocess" else 64)
    try:
        with client_for(compute, len(todo)) as client:
            if client is None:
                extract_partition(todo, settings, str(store.root), forks=settings.workers, on_record=committer.add)
            else:
                parts = partition(todo, partition_size(compute, len(todo), n_workers(client)))
                for result in map_partitions(extract_partition, parts, settings, str(store.root), client=client,
                                             retries=compute.retries, name="extract"):
                    committer.add_all(result.value)
    finally:
        committer.flush()  # interrupted: what was done is kept
        bar.close()
    return dict(counts)
