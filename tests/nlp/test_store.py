"""Corpus store: content addressing, provenance, atomic writes, concurrent writers, migrations."""
from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nlp.errors import StoreError
from nlp.schema import Extraction, Page
from nlp.store import SCHEMA_VERSION, CorpusStore, sha256_bytes

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_same_bytes_at_two_urls_is_one_document_with_two_sources(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path)
    a, created_a = store.add_document(PDF, "application/pdf")
    store.add_source(a, "valombre", "http://127.0.0.1/a.pdf", referer="http://127.0.0.1/", anchor_text="Délibération")
    b, created_b = store.add_document(PDF, "application/pdf")
    store.add_source(b, "valombre", "http://127.0.0.1/download.php?id=1", http_status=200, etag='"x"')
    assert a == b == sha256_bytes(PDF)
    assert (created_a, created_b) == (True, False)
    assert len(store.documents()) == 1
    sources = store.sources(document_id=a)
    assert [s["url"] for s in sources] == ["http://127.0.0.1/a.pdf", "http://127.0.0.1/download.php?id=1"]
    assert sources[0]["anchor_text"] == "Délibération" and sources[1]["etag"] == '"x"'
    path = store.document_path(a)
    assert path.read_bytes() == PDF and path.name == f"{a}.pdf" and path.parent.name == a[:2]


def test_resighting_a_source_updates_it_without_duplicating(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path)
    doc, _ = store.add_document(PDF, "application/pdf")
    store.add_source(doc, "m", "http://h/a.pdf", anchor_text="first", http_status=200)
    store.add_source(doc, "m", "http://h/a.pdf", anchor_text=None, http_status=304)
    (row,) = store.sources()
    assert row["anchor_text"] == "first" and row["http_status"] == 304


def _kill_script(root: Path, where: str) -> str:
    return textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        import nlp.store as st
        store = st.CorpusStore({str(root)!r})
        if {where!r} == "before-rename":
            st.os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        else:  # after the file is in place, before its row is committed
            real = store.transaction
            def boom():
                os.kill(os.getpid(), signal.SIGKILL)
            store.transaction = boom
        store.add_document({PDF!r}, "application/pdf")
    """)


@pytest.mark.parametrize("where", ["before-rename", "after-rename"])
def test_write_killed_midway_leaves_no_partial_file_and_no_dangling_row(tmp_path: Path, where: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _kill_script(tmp_path, where)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    store = CorpusStore(tmp_path)
    assert store.documents() == []
    final = tmp_path / "files" / sha256_bytes(PDF)[:2] / f"{sha256_bytes(PDF)}.pdf"
    if where == "before-rename":
        assert not final.exists()  # only a temporary file may remain, never the final name
    else:
        assert final.read_bytes() == PDF  # complete file, no row: harmless and recoverable
    doc, created = store.add_document(PDF, "application/pdf")
    assert created and store.document_path(doc).read_bytes() == PDF
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _writer(root: str, worker: int, n: int) -> None:
    store = CorpusStore(root, timeout=60)
    for i in range(n):
        # Half the documents are shared between the writers: same bytes, different URLs.
        payload = f"shared-{i}" if i % 2 == 0 else f"own-{worker}-{i}"
        doc, _ = store.add_document(b"%PDF-1.4 " + payload.encode(), "application/pdf")
        store.add_source(doc, "m", f"http://w{worker}/{i}.pdf")
        store.record_fetch("m", f"http://w{worker}/{i}.pdf", "ok", document_id=doc)
    store.close()


def test_concurrent_writers_never_corrupt_the_store(tmp_path: Path) -> None:
    # Four processes open the same fresh store at once (creation, WAL switch and migration
    # race each other), then write: half the documents are shared between all of them.
    n, writers = 120, 4
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n)) for w in range(1, writers + 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = CorpusStore(tmp_path)
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(store.documents()) == n // 2 + writers * n // 2  # 60 shared + 4 × 60 own
    assert len(store.sources()) == writers * n
    assert len(store.fetches()) == writers * n
    for doc in store.documents():
        assert sha256_bytes(store.document_path(doc.id).read_bytes()) == doc.id


def test_schema_version_and_migration_from_empty_and_future(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path)
    assert store.schema_version == SCHEMA_VERSION
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    CorpusStore(tmp_path).close()  # reopening does not migrate twice
    conn = sqlite3.connect(tmp_path / "corpus.sqlite")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this barometre"):
        CorpusStore(tmp_path)


def test_extractions_are_keyed_and_round_trip(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path)
    doc, _ = store.add_document(PDF, "application/pdf")
    ext = Extraction(status="ok", engine="pdfium", engine_version="5", cleaning_version="1",
                     pages=[Page(1, "Bonjour.", ["Bonjour."])], metadata={"doc_type": "deliberation"})
    store.save_extraction(doc, ext)
    row = store.get_extraction_row(doc, "pdfium", "5", "1")
    assert row["status"] == "ok" and row["chars"] == len("Bonjour.")
    assert store.get_extraction_row(doc, "pdfium", "5", "2") is None
    back = store.load_extraction(row)
    assert back.pages[0].paragraphs == ["Bonjour."] and back.metadata["doc_type"] == "deliberation"
    (latest,) = store.latest_extractions()
    assert latest["document_id"] == doc and latest["metadata"] == {"doc_type": "deliberation"}


def test_snapshot_identifies_the_corpus_state(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path)
    empty = store.snapshot()
    store.add_document(PDF, "application/pdf")
    one = store.snapshot()
    assert empty["documents"] == 0 and one["documents"] == 1 and one["hash"] != empty["hash"]
    assert json.dumps(one)


def test_a_savepoint_block_is_all_or_nothing_inside_the_transaction(tmp_path: Path) -> None:
    """transaction(savepoint=True) nested in an open transaction (a crawl's batch): a failed
    block leaves none of its rows, the writes before it stay and commit with the batch."""
    store = CorpusStore(tmp_path)
    with store.transaction():
        store.record_fetch("m", "http://h/a", "ok")
        with pytest.raises(RuntimeError):
            with store.transaction(savepoint=True):
                store.record_fetch("m", "http://h/b", "ok")
                with store.transaction():  # re-entrant inside the savepoint
                    store.record_fetch("m", "http://h/c", "ok")
                raise RuntimeError("item failed")
        with store.transaction(savepoint=True):
            store.record_fetch("m", "http://h/d", "ok")
        other = CorpusStore(tmp_path)  # another connection sees nothing before the commit
        assert other.fetches() == []
    assert [f["url"] for f in other.fetches()] == ["http://h/a", "http://h/d"]
    with store.transaction(savepoint=True):  # outside a transaction: a plain one
        store.record_fetch("m", "http://h/e", "ok")
    assert len(other.fetches()) == 3
