"""The corpus store: content-addressed files plus an SQLite manifest.

Stage: shared by crawl (writes documents, sources, fetches), import (writes documents,
sources), extract (reads documents, writes extractions) and every later stage (reads).

Layout under the corpus directory::

    corpus.sqlite                     manifest (WAL mode, schema version in PRAGMA user_version)
    files/<sha[:2]>/<sha256>.<ext>    document bytes, named by their SHA-256
    text/<sha[:2]>/<sha256>.<key>.json   extraction results (see nlp.schema.Extraction)

Guarantees:
- a document id is the SHA-256 of its bytes: the same bytes at two URLs are one document with
  two ``sources`` rows;
- nothing is half-written: files are written to a temporary name in the same directory,
  fsynced and renamed into place *before* their row is committed, so a crash leaves at worst an
  orphan temporary file (swept on the next open), never a row pointing at a partial file;
- several processes may write at once (a crawl and an import): each opens its own connection,
  WAL mode lets readers run beside one writer, writes take the lock up front
  (``BEGIN IMMEDIATE``) and wait for it (``busy_timeout``) instead of failing;
- many workers may feed it (nlp.compute): a worker writes an extraction's file with
  :func:`write_extraction_file` (no SQLite) and returns the small record; one writer, the
  client, commits records in batches (:meth:`CorpusStore.commit_extractions`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nlp.diskerrors import as_store_error, disk_errors as _disk_errors
from nlp.errors import StoreError
from nlp.io import atomic_write, sweep_stale_tmp
from nlp.media import EXT_BY_TYPE
from nlp.schema import Extraction

log = logging.getLogger(__name__)

DB_NAME = "corpus.sqlite"
# Temporary files older than this are leftovers of a killed writer, not a write in progress.
STALE_TMP_SECONDS = 3600

# Each entry upgrades the schema from version i to i+1. Never edit a released entry: append.
MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE documents (
        id          TEXT PRIMARY KEY,          -- SHA-256 of the bytes, hex
        media_type  TEXT NOT NULL,
        size        INTEGER NOT NULL,
        path        TEXT NOT NULL,             -- relative to the corpus directory
        first_seen  TEXT NOT NULL
    );
    CREATE TABLE sources (
        id            INTEGER PRIMARY KEY,
        document_id   TEXT NOT NULL REFERENCES documents(id),
        metropole     TEXT NOT NULL,
        url           TEXT NOT NULL,
        referer       TEXT,
        anchor_text   TEXT,
        page_title    TEXT,
        http_status   INTEGER,
        etag          TEXT,
        last_modified TEXT,
        headers       TEXT,                    -- JSON object of the response headers kept
        fetched_at    TEXT NOT NULL,
        origin        TEXT NOT NULL DEFAULT 'crawl',   -- crawl | import | scdl
        metadata      TEXT,                    -- JSON: SCDL fields, depth, relevance score...
        UNIQUE (document_id, metropole, url)
    );
    CREATE INDEX sources_metropole ON sources(metropole);
    CREATE INDEX sources_url ON sources(url);
    -- The latest outcome of every URL the crawler tried, stored or not: what makes a crawl
    -- resumable (Scrapy's JOBDIR alone loses in-flight requests) and re-crawls conditional.
    CREATE TABLE fetches (
        metropole     TEXT NOT NULL,
        url           TEXT NOT NULL,
        status        TEXT NOT NULL,           -- slug, see nlp.schema.FETCH_STATUSES
        http_status   INTEGER,
        kind          TEXT,                    -- page | document | dataset
        document_id   TEXT,
        etag          TEXT,
        last_modified TEXT,
        error         TEXT,
        referer       TEXT,
        depth         INTEGER,
        bytes         INTEGER,
        fetched_at    TEXT NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (metropole, url)
    );
    CREATE TABLE extractions (
        document_id      TEXT NOT NULL REFERENCES documents(id),
        engine           TEXT NOT NULL,
        engine_version   TEXT NOT NULL,
        cleaning_version TEXT NOT NULL,
        status           TEXT NOT NULL,
        pages            INTEGER,
        chars            INTEGER,
        error            TEXT,
        text_path        TEXT,                 -- relative to the corpus directory
        metadata         TEXT,                 -- JSON: title, doc_type, date, language...
        seconds          REAL,
        created_at       TEXT NOT NULL,
        PRIMARY KEY (document_id, engine, engine_version, cleaning_version)
    );
    """,
    # 2: who published a document found on a domain shared by a city and its metropolis
    # (crawler.attribution): NULL (not on a shared domain), 'metropole', 'undecided' (left out
    # of the metropolis's documents), 'kept' (undecided, kept by the user's choice).
    """
    ALTER TABLE sources ADD COLUMN attribution TEXT;
    """,
]
# Sources the metropolis's documents leave out unless asked (see migration 2).
UNATTRIBUTED = "undecided"
SCHEMA_VERSION = len(MIGRATIONS)


def utcnow() -> str:
    """Current UTC time as an ISO-8601 string (second precision)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def extraction_key(engine: str, engine_version: str, cleaning_version: str) -> str:
    """Short key of an extraction's (engine, engine version, cleaning version): later stages
    key their caches by it (rows of :meth:`CorpusStore.latest_extractions` carry it)."""
    return hashlib.sha256(f"{engine}|{engine_version}|{cleaning_version}".encode()).hexdigest()[:12]


# The fields of an extraction's manifest row that a worker computes (``created_at`` is the
# committer's), in column order.
EXTRACTION_RECORD = ("document_id", "engine", "engine_version", "cleaning_version", "status", "pages",
                     "chars", "error", "text_path", "metadata", "seconds")


def write_extraction_file(root: Path, document_id: str, extraction: Extraction) -> dict[str, Any]:
    """Write an extraction's JSON under ``root/text`` and return its manifest record.

    No SQLite: a worker on shared storage calls this, and the client commits the record
    (:meth:`CorpusStore.commit_extractions`). The file is written to a temporary name and
    renamed into place; its name is the document id and the extraction key, so a partition
    run twice (its worker died) writes the same file again, never a second one."""
    key = extraction_key(extraction.engine, extraction.engine_version, extraction.cleaning_version)
    rel = Path("text") / document_id[:2] / f"{document_id}.{key}.json"
    try:
        atomic_write(Path(root) / rel, json.dumps(extraction.to_dict(), ensure_ascii=False).encode("utf-8"))
    except OSError as exc:  # disk full, read-only: one line, as from the store's own methods
        error = as_store_error(exc, Path(root), "save an extraction")
        if error is exc:
            raise
        raise error from None
    return {"document_id": document_id, "engine": extraction.engine, "engine_version": extraction.engine_version,
            "cleaning_version": extraction.cleaning_version, "status": extraction.status,
            "pages": len(extraction.pages), "chars": extraction.chars, "error": extraction.error,
            "text_path": rel.as_posix(),
            "metadata": json.dumps(extraction.metadata, ensure_ascii=False, sort_keys=True, default=str),
            "seconds": extraction.seconds}


def read_extraction_file(root: Path, text_path: str) -> Extraction:
    """The extraction JSON at ``root/text_path`` (a row's ``text_path``): what a worker reads
    without opening the manifest."""
    with open(Path(root) / text_path, encoding="utf-8") as f:
        return Extraction.from_dict(json.load(f))


def _retry_locked(action: Any, timeout: float) -> Any:
    """Run ``action`` again while SQLite says the database is locked or busy, up to
    ``timeout`` seconds (then re-raise)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if ("locked" not in message and "busy" not in message) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


@dataclass(frozen=True)
class StoredDocument:
    """A document row of the manifest."""

    id: str
    media_type: str
    size: int
    path: str
    first_seen: str


class CorpusStore:
    """Handle on one corpus directory. Cheap to open; open one per process (or thread).

    Input: the corpus directory (created if missing). Every public method that writes commits
    before it returns, unless called inside :meth:`transaction`, which groups writes in one
    transaction (use it for batches).
    """

    @_disk_errors("open it for writing")
    def __init__(self, corpus_dir: Path | str, *, timeout: float = 60.0, manifest: Path | str | None = None,
                 journal_mode: str = "WAL") -> None:
        # ``manifest``: the SQLite file to use instead of ``corpus.sqlite`` (a crawl job's own
        # manifest, crawler.jobs: files still go to the shared corpus folder, rows to the job's
        # file). ``journal_mode``: "DELETE" for a manifest on a network filesystem, where WAL's
        # shared memory does not work.
        if journal_mode not in ("WAL", "DELETE"):
            raise ValueError(f"journal_mode must be WAL or DELETE, not {journal_mode!r}")
        self.root = Path(corpus_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.files_dir = self.root / "files"
        self.text_dir = self.root / "text"
        self.db_path = Path(manifest) if manifest is not None else self.root / DB_NAME
        try:
            self.conn = sqlite3.connect(self.db_path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:  # pragma: no cover - depends on the filesystem
            raise StoreError(f"cannot open corpus store {self.db_path}: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        # WAL is a property of the database file: set once. Switching needs an exclusive lock
        # and SQLite answers "database is locked" at once, without its busy handler, when
        # another process is creating or migrating the same store: retry until the timeout.
        _retry_locked(lambda: self.conn.execute(f"PRAGMA journal_mode = {journal_mode}"), timeout)
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self._depth = 0
        _retry_locked(self._migrate, timeout)
        self._sweep_stale_tmp()

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "CorpusStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self, savepoint: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction (re-entrant; nested with ``savepoint``: all or nothing)."""
        depth = self._depth
        if depth and not savepoint:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth = depth
            return
        begin, end, undo = ("SAVEPOINT block", "RELEASE block", ("ROLLBACK TO block", "RELEASE block")) \
            if depth else ("BEGIN IMMEDIATE", "COMMIT", ("ROLLBACK",))
        self.conn.execute(begin)
        self._depth = depth + 1
        try:
            yield self.conn
        except BaseException:
            for statement in undo:
                self.conn.execute(statement)
            raise
        else:
            self.conn.execute(end)
        finally:
            self._depth = depth

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.db_path} has schema version {version}, newer than this barometre "
                f"({SCHEMA_VERSION}): upgrade barometre to read it"
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for i in range(version, SCHEMA_VERSION):
                log.info("migrating corpus store %s to schema version %d", self.db_path, i + 1)
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {i + 1}")

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _sweep_stale_tmp(self) -> None:
        # Leftovers of killed writers: old ones, and at once those whose process is gone.
        for directory in (self.files_dir, self.text_dir):
            sweep_stale_tmp(directory, STALE_TMP_SECONDS, pattern="*/.*.tmp")

    # -- documents -----------------------------------------------------------------------
    @_disk_errors("store a document")
    def add_document(self, data: bytes, media_type: str, ext: str | None = None) -> tuple[str, bool]:
        """Store ``data`` once under its SHA-256.

        Input: the bytes, their media type, an optional file extension (derived from the
        media type when absent). Output: ``(document_id, created)`` where ``created`` is False
        when the same bytes were already stored.
        """
        doc_id = sha256_bytes(data)
        row = self.conn.execute("SELECT path FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is not None and (self.root / row["path"]).exists():
            return doc_id, False
        ext = (ext or EXT_BY_TYPE.get(media_type.split(";")[0].strip().lower(), "bin")).lstrip(".")
        rel = Path("files") / doc_id[:2] / f"{doc_id}.{ext}"
        # The file goes into place before its row: a crash in between leaves a file with no
        # row (harmless, found again by its hash), never a row without its file.
        atomic_write(self.root / rel, data)
        with self.transaction():
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO documents (id, media_type, size, path, first_seen) "
                "VALUES (?, ?, ?, ?, ?)",
                (doc_id, media_type, len(data), rel.as_posix(), utcnow()),
            )
        return doc_id, cur.rowcount == 1

    @_disk_errors("record a source")
    def add_source(
        self,
        document_id: str,
        metropole: str,
        url: str,
        *,
        referer: str | None = None,
        anchor_text: str | None = None,
        page_title: str | None = None,
        http_status: int | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        headers: dict[str, str] | None = None,
        fetched_at: str | None = None,
        origin: str = "crawl",
        metadata: dict[str, Any] | None = None,
        attribution: str | None = None,
    ) -> None:
        """Record where a document was found (one row per document × metropole × URL).

        A second sighting of the same (document, metropole, URL) updates the fetch fields and
        keeps the first referer/anchor/title when the new ones are empty. ``attribution``: see
        migration 2 (None: not on a shared domain).
        """
        with self.transaction():
            self.conn.execute(
                """
                INSERT INTO sources (document_id, metropole, url, referer, anchor_text, page_title,
                    http_status, etag, last_modified, headers, fetched_at, origin, metadata, attribution)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (document_id, metropole, url) DO UPDATE SET
                    referer = COALESCE(excluded.referer, referer),
                    anchor_text = COALESCE(excluded.anchor_text, anchor_text),
                    page_title = COALESCE(excluded.page_title, page_title),
                    http_status = excluded.http_status,
                    etag = excluded.etag,
                    last_modified = excluded.last_modified,
                    headers = COALESCE(excluded.headers, headers),
                    fetched_at = excluded.fetched_at,
                    metadata = COALESCE(excluded.metadata, metadata),
                    attribution = COALESCE(excluded.attribution, attribution)
                """,
                (
                    document_id, metropole, url, referer, anchor_text, page_title, http_status,
                    etag, last_modified, json.dumps(headers, ensure_ascii=False) if headers else None,
                    fetched_at or utcnow(), origin,
                    json.dumps(metadata, ensure_ascii=False, sort_keys=True) if metadata else None,
                    attribution,
                ),
            )

    def get_document(self, document_id: str) -> StoredDocument | None:
        row = self.conn.execute("SELECT * FROM documents WHERE id = ?", (document_id,)).fetchone()
        return StoredDocument(**dict(row)) if row else None

    def document_path(self, document_id: str) -> Path:
        doc = self.get_document(document_id)
        if doc is None:
            raise KeyError(document_id)
        return self.root / doc.path

    def documents(self, metropoles: list[str] | None = None, *,
                  include_undecided: bool = False) -> list[StoredDocument]:
        """Documents (sorted by id), optionally only those with a source in ``metropoles``
        (a source whose publisher is undecided does not count unless ``include_undecided``)."""
        if metropoles:
            marks = ",".join("?" * len(metropoles))
            attributed = "" if include_undecided else "AND (s.attribution IS NULL OR s.attribution != ?) "
            rows = self.conn.execute(
                f"SELECT DISTINCT d.* FROM documents d JOIN sources s ON s.document_id = d.id "
                f"WHERE s.metropole IN ({marks}) {attributed}ORDER BY d.id",
                list(metropoles) + ([] if include_undecided else [UNATTRIBUTED]),
            ).fetchall()
        else:
            rows = self.conn.execute("SELECT * FROM documents ORDER BY id").fetchall()
        return [StoredDocument(**dict(r)) for r in rows]

    def sources(self, document_id: str | None = None, metropoles: list[str] | None = None, *,
                include_undecided: bool = False) -> list[dict[str, Any]]:
        """Source rows as dicts (``headers``/``metadata`` decoded), ordered by id. A source
        whose publisher is undecided (``attribution = 'undecided'``) is left out unless
        ``include_undecided``: it is not the metropolis's until someone says so."""
        where: list[str] = []
        args: list[Any] = []
        if not include_undecided:
            where.append("(attribution IS NULL OR attribution != ?)")
            args.append(UNATTRIBUTED)
        if document_id:
            where.append("document_id = ?")
            args.append(document_id)
        if metropoles:
            where.append(f"metropole IN ({','.join('?' * len(metropoles))})")
            args.extend(metropoles)
        sql = "SELECT * FROM sources" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        out = []
        for r in self.conn.execute(sql, args).fetchall():
            d = dict(r)
            for key in ("headers", "metadata"):
                d[key] = json.loads(d[key]) if d[key] else {}
            out.append(d)
        return out

    def source_of(self, document_id: str, metropole: str, url: str | None = None) -> dict[str, Any] | None:
        """The source row of ``document_id`` for ``metropole`` (at ``url`` when given; the
        first one otherwise), decoded as :meth:`sources` does; None when there is none."""
        for s in self.sources(document_id=document_id, metropoles=[metropole], include_undecided=True):
            if url is None or s["url"] == url:
                return s
        return None

    # -- fetches (crawl bookkeeping) -----------------------------------------------------
    @_disk_errors("record a fetch")
    def record_fetch(
        self,
        metropole: str,
        url: str,
        status: str,
        *,
        http_status: int | None = None,
        kind: str | None = None,
        document_id: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        error: str | None = None,
        referer: str | None = None,
        depth: int | None = None,
        nbytes: int | None = None,
    ) -> None:
        """Record the latest outcome for ``url``; a later outcome replaces an earlier one.

        A ``not-modified`` outcome keeps the document id and validators already known.
        """
        with self.transaction():
            self.conn.execute(
                """
                INSERT INTO fetches (metropole, url, status, http_status, kind, document_id, etag,
                    last_modified, error, referer, depth, bytes, fetched_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (metropole, url) DO UPDATE SET
                    status = excluded.status,
                    http_status = excluded.http_status,
                    kind = COALESCE(excluded.kind, kind),
                    document_id = COALESCE(excluded.document_id, document_id),
                    etag = COALESCE(excluded.etag, etag),
                    last_modified = COALESCE(excluded.last_modified, last_modified),
                    error = excluded.error,
                    referer = COALESCE(referer, excluded.referer),
                    depth = MIN(COALESCE(depth, excluded.depth), COALESCE(excluded.depth, depth)),
                    bytes = COALESCE(excluded.bytes, bytes),
                    fetched_at = excluded.fetched_at,
                    attempts = attempts + 1
                """,
                (metropole, url, status, http_status, kind, document_id, etag, last_modified,
                 error, referer, depth, nbytes, utcnow()),
            )

    def get_fetch(self, metropole: str, url: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM fetches WHERE metropole = ? AND url = ?", (metropole, url)
        ).fetchone()
        return dict(row) if row else None

    def latest_fetch_time(self) -> str | None:
        """When the most recent ``fetches`` row was recorded (ISO, UTC), None when none is."""
        return self.conn.execute("SELECT MAX(fetched_at) FROM fetches").fetchone()[0]

    def fetches(self, metropoles: list[str] | None = None) -> list[dict[str, Any]]:
        if metropoles:
            rows = self.conn.execute(
                f"SELECT * FROM fetches WHERE metropole IN ({','.join('?' * len(metropoles))}) "
                "ORDER BY metropole, url",
                metropoles,
            ).fetchall()
        else:
            rows = self.conn.execute("SELECT * FROM fetches ORDER BY metropole, url").fetchall()
        return [dict(r) for r in rows]

    # -- extractions ---------------------------------------------------------------------
    def get_extraction_row(
        self, document_id: str, engine: str, engine_version: str, cleaning_version: str
    ) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM extractions WHERE document_id = ? AND engine = ? AND engine_version = ? "
            "AND cleaning_version = ?",
            (document_id, engine, engine_version, cleaning_version),
        ).fetchone()
        return dict(row) if row else None

    @_disk_errors("save an extraction")
    def save_extraction(self, document_id: str, extraction: Extraction) -> None:
        """Persist an extraction: its JSON (atomically) then its row (replacing an older one
        with the same key)."""
        self.commit_extractions([write_extraction_file(self.root, document_id, extraction)])

    @_disk_errors("save extractions")
    def commit_extractions(self, records: list[dict[str, Any]]) -> None:
        """Commit the rows of extractions whose JSON is already in place (records from
        :func:`write_extraction_file`, e.g. returned by workers), in one transaction: the
        manifest has one writer, and a batch costs one commit instead of one per document."""
        now = utcnow()
        with self.transaction():
            self.conn.executemany(
                """
                INSERT OR REPLACE INTO extractions (document_id, engine, engine_version,
                    cleaning_version, status, pages, chars, error, text_path, metadata, seconds,
                    created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [tuple(r[c] for c in EXTRACTION_RECORD) + (now,) for r in records],
            )

    def load_extraction(self, row: dict[str, Any]) -> Extraction:
        """Read the extraction JSON that an ``extractions`` row points to."""
        return read_extraction_file(self.root, row["text_path"])

    def latest_extractions(self, metropoles: list[str] | None = None) -> list[dict[str, Any]]:
        """For each document (optionally of some metropoles), its most recent extraction row,
        with ``metadata`` parsed and ``key`` (:func:`extraction_key`)."""
        docs = {d.id for d in self.documents(metropoles)}
        rows = self.conn.execute(
            "SELECT * FROM extractions ORDER BY document_id, created_at DESC, rowid DESC"
        ).fetchall()
        seen: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["document_id"] in docs and r["document_id"] not in seen:
                d = dict(r)
                d["metadata"] = json.loads(d["metadata"]) if d["metadata"] else {}
                d["key"] = extraction_key(d["engine"], d["engine_version"], d["cleaning_version"])
                seen[r["document_id"]] = d
        return [seen[k] for k in sorted(seen)]

    # -- summaries -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Document count and a hash of the sorted document ids: identifies a corpus state."""
        ids = [r[0] for r in self.conn.execute("SELECT id FROM documents ORDER BY id")]
        return {"documents": len(ids), "hash": hashlib.sha256("\n".join(ids).encode()).hexdigest()}

    def counts(self, table: str, column: str = "status") -> dict[str, int]:
        """Counts per value of ``column`` in ``table`` (for the end-of-stage summaries)."""
        if table not in {"fetches", "extractions", "documents", "sources"}:
            raise ValueError(table)
        rows = self.conn.execute(
            f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column} ORDER BY {column}"
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}
