"""A crawl job's own manifest: seeded from the corpus store, merged back into it.

Core module of the store layer (the one other place with SQL, beside nlp/store.py). Used by
:mod:`crawler.jobs`: a per-metropolis crawl job on a cluster writes its ``documents``,
``sources`` and ``fetches`` rows to its own SQLite file (a :class:`nlp.store.CorpusStore`
opened with ``manifest=``), never to ``corpus.sqlite``; the client, the store's one writer,
seeds that file before the job and merges it after.

Input: an open :class:`CorpusStore` (the client's) and the manifest path. Output: rows copied
or changed per table.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nlp.errors import StoreError
from nlp.store import CorpusStore


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})")]


@contextmanager
def _attached(store: CorpusStore, path: Path) -> Iterator[sqlite3.Connection]:
    """``path`` attached to the store's connection as ``job`` (detached on exit)."""
    store.conn.execute("ATTACH DATABASE ? AS job", (str(path),))
    try:
        version = store.conn.execute("PRAGMA job.user_version").fetchone()[0]
        if version != store.schema_version:
            raise StoreError(f"crawl job manifest {path} has schema version {version}, "
                             f"the corpus store {store.schema_version}")
        yield store.conn
    finally:
        store.conn.execute("DETACH DATABASE job")


def seed_manifest(store: CorpusStore, manifest: Path, slugs: list[str]) -> dict[str, int]:
    """A fresh job manifest at ``manifest`` holding the store's rows for ``slugs``: their
    ``fetches`` and ``sources`` and the ``documents`` these point to (what earlier crawls
    found: conditional requests and the resume bookkeeping read them). Output: rows copied per
    table. Runs on the client, the store's only writer."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{manifest}{suffix}").unlink(missing_ok=True)
    CorpusStore(store.root, manifest=manifest, journal_mode="DELETE").close()  # the schema
    marks = ",".join("?" * len(slugs))
    counts: dict[str, int] = {}
    with _attached(store, manifest) as conn, store.transaction():
        conn.execute(f"""INSERT INTO job.documents SELECT * FROM main.documents WHERE id IN (
                             SELECT document_id FROM main.sources WHERE metropole IN ({marks})
                             UNION SELECT document_id FROM main.fetches
                             WHERE metropole IN ({marks}) AND document_id IS NOT NULL)""", slugs * 2)
        counts["documents"] = conn.execute("SELECT changes()").fetchone()[0]
        for table in ("sources", "fetches"):
            conn.execute(f"INSERT INTO job.{table} SELECT * FROM main.{table} WHERE metropole IN ({marks})", slugs)
            counts[table] = conn.execute("SELECT changes()").fetchone()[0]
    return counts


def merge_manifest(store: CorpusStore, manifest: Path) -> dict[str, int]:
    """Commit a job manifest's rows into the store, in one transaction. Idempotent: documents
    are inserted once (same id, same file); a source is keyed by (document, metropolis, URL)
    and takes the job's values; a fetch is keyed by (metropolis, URL) and takes the job's row
    unless the store's is newer. Output: rows the merge inserted or changed, per table."""
    counts: dict[str, int] = {}
    with _attached(store, manifest) as conn, store.transaction():
        conn.execute("INSERT OR IGNORE INTO main.documents SELECT * FROM job.documents")
        counts["documents"] = conn.execute("SELECT changes()").fetchone()[0]
        cols = [c for c in _columns(conn, "main", "sources") if c != "id"]
        keys = ("document_id", "metropole", "url")
        conn.execute(
            f"INSERT INTO main.sources ({', '.join(cols)}) SELECT {', '.join(cols)} FROM job.sources WHERE true "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
            + " WHERE " + " OR ".join(f"{c} IS NOT excluded.{c}" for c in cols if c not in keys))
        counts["sources"] = conn.execute("SELECT changes()").fetchone()[0]
        cols = _columns(conn, "main", "fetches")
        keys = ("metropole", "url")
        conn.execute(
            f"INSERT INTO main.fetches ({', '.join(cols)}) SELECT {', '.join(cols)} FROM job.fetches WHERE true "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
            + " WHERE excluded.fetched_at >= fetches.fetched_at AND ("
            + " OR ".join(f"{c} IS NOT excluded.{c}" for c in cols if c not in keys) + ")")
        counts["fetches"] = conn.execute("SELECT changes()").fetchone()[0]
    return counts
