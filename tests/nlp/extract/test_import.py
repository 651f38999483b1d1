"""The import stage (nlp.importer): a folder of local documents into the corpus store."""
from __future__ import annotations

from pathlib import Path

from nlp.importer import import_folder
from nlp.store import CorpusStore


def test_import_folder_stores_supported_files_and_records_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.pdf").write_bytes(b"%PDF-1.4 a")
    (folder / "sub" / "copy.pdf").write_bytes(b"%PDF-1.4 a")  # same bytes: one document
    (folder / "page.html").write_text("<html><head><title>T</title></head><body>x</body></html>")
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    store = CorpusStore(tmp_path / "corpus")
    counts = import_folder(store, folder, "valombre", progress=False)
    assert counts == {"ok": 2, "duplicate": 1, "empty": 1, "unsupported-type": 1}
    assert len(store.documents()) == 2
    assert {s["origin"] for s in store.sources()} == {"import"}
    assert len(store.sources()) == 3  # the duplicate keeps its own provenance row
    statuses = {Path(f["url"]).name: f["status"] for f in store.fetches()}
    assert statuses["empty.pdf"] == "empty" and statuses["image.png"] == "unsupported-type"
