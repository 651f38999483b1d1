"""Extract settings validated (finite, positive, bounded: one message naming the file and the
key), and a full or read-only disk under ``import`` and ``extract``: one message, exit code 1,
the store consistent, and a later run on a healthy disk finishing the work.

The disk tests mount a small tmpfs where they can (root with CAP_SYS_ADMIN); elsewhere they make
the folder read-only and simulate ENOSPC."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from nlp.cli import main
from nlp.errors import ConfigError, StoreError
from nlp.extract import ExtractSettings

REPRO_CONFIGS = {
    "config_timeout_nan__accepted_no_limit.yaml": "extract.timeout_s",
    "config_mem_neg__accepted.yaml": "extract.max_memory_mb",
}


@pytest.mark.parametrize("content, key", [
    ("extract: {timeout_s: .nan}", "extract.timeout_s"),
    ("extract: {timeout_s: .inf}", "extract.timeout_s"),
    ("extract: {timeout_s: -3}", "extract.timeout_s"),
    ("extract: {timeout_s: 0}", "extract.timeout_s"),
    ("extract: {timeout_s: '120'}", "extract.timeout_s"),
    ("extract: {timeout_s: true}", "extract.timeout_s"),
    ("extract: {max_memory_mb: -1}", "extract.max_memory_mb"),
    ("extract: {max_memory_mb: 0}", "extract.max_memory_mb"),
    ("extract: {max_memory_mb: .nan}", "extract.max_memory_mb"),
    ("extract: {max_memory_mb: 1.5}", "extract.max_memory_mb"),
    ("extract: {max_memory_mb: 99999999999999999999}", "extract.max_memory_mb"),
    ("extract: {workers: 0}", "extract.workers"),
    ("extract: {max_pages: -5}", "extract.max_pages"),
    ("extract: {ocr: 'maybe'}", "extract.ocr"),
    ("extract: {ocr_lang: 'fra; rm -rf'}", "extract.ocr_lang"),
])
def test_bad_extract_values_are_one_message_naming_file_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture, content: str, key: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(content + "\n")
    assert main(["extract", "--config", str(config), "--corpus-dir", str(tmp_path / "corpus")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(config) in err and f"'{key}'" in err
    assert not (tmp_path / "corpus").exists()  # refused before anything was touched


def test_good_extract_values_pass(tmp_path: Path) -> None:
    config = tmp_path / "good.yaml"
    config.write_text("extract: {timeout_s: 30, max_memory_mb: 512.0, max_pages: null, ocr: false}\n")
    assert main(["extract", "--config", str(config), "--corpus-dir", str(tmp_path / "corpus"), "--no-progress"]) == 0


def test_bad_values_from_flags_and_python(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["extract", "--timeout", "nan", "--corpus-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "timeout_s" in err
    for kwargs in ({"timeout_s": float("nan")}, {"max_memory_mb": -1}, {"workers": 0}, {"engine": "nope"}):
        with pytest.raises(ConfigError):
            ExtractSettings(**kwargs)


def test_config_reproducers(repro: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, key in REPRO_CONFIGS.items():
        assert main(["extract", "--config", str(repro / name), "--corpus-dir", str(tmp_path / "c")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and name in err and f"'{key}'" in err, err
    # a settings file that is not UTF-8: one message naming the file and the line
    name = "config_invalid_utf8__UnicodeDecodeError.yaml"
    assert main(["extract", "--config", str(repro / name), "--corpus-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "invalid UTF-8 at line 1" in err, err


# --- a full or read-only disk ---------------------------------------------------------------------
@pytest.fixture(params=["tmpfs", "simulated"])
def small_disk(tmp_path: Path, request: pytest.FixtureRequest):
    """A 3 MB tmpfs (None where mounting is not allowed, and for the simulated variant),
    unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if request.param == "simulated":
        yield None
        return
    if os.geteuid() != 0 or not shutil.which("mount"):
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _documents(folder: Path, n: int, size: int) -> Path:
    """``n`` distinct files of ``size`` bytes that sniff as (malformed) PDFs."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = hashlib.sha256(str(i).encode()).digest() * (size // 32)
        (folder / f"doc{i}.pdf").write_bytes(b"%PDF-1.4\n" + body)
    return folder


def assert_consistent(corpus: Path) -> None:
    """Every row points at a complete file; no temporary file is left."""
    with sqlite3.connect(corpus / "corpus.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        for doc_id, path in db.execute("SELECT id, path FROM documents"):
            assert hashlib.sha256((corpus / path).read_bytes()).hexdigest() == doc_id
        for (text_path,) in db.execute("SELECT text_path FROM extractions"):
            json.loads((corpus / text_path).read_text(encoding="utf-8"))
    assert not list(corpus.rglob("*.tmp"))


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if " INFO " not in ln]
    assert len(err) == 1, err
    return err[0]


def test_full_disk_one_message_store_consistent(tmp_path: Path, small_disk: Path | None,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    docs = _documents(tmp_path / "docs", 6, 700_000)  # 4.2 MB for a 3 MB disk
    root = small_disk or tmp_path / "simulated"
    corpus = root / "corpus"
    if small_disk is None:  # simulate: the third document no longer fits
        import nlp.store

        real, calls = nlp.store.atomic_write, []

        def full(path, data):
            calls.append(path)
            if len(calls) > 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real(path, data)

        monkeypatch.setattr(nlp.store, "atomic_write", full)
    args = ["--corpus-dir", str(corpus), "--no-progress", "-q"]
    assert main(["import", str(docs), "--metropole", "testville", *args]) == 1
    assert "the disk is full" in _one_line(capsys)
    assert_consistent(corpus)

    # extract on the full disk: the extraction files no longer fit either.
    if small_disk is not None:
        filler = small_disk / "filler"
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:  # full, as wanted
            pass
    assert main(["extract", *args]) == 1
    assert "the disk is full" in _one_line(capsys)
    assert_consistent(corpus)

    # Space again: the same commands finish the work.
    monkeypatch.undo()
    if small_disk is not None:
        filler.unlink()
        shutil.rmtree(corpus / "files")  # make room: the documents come back from the folder
        (corpus / "files").mkdir()
        with sqlite3.connect(corpus / "corpus.sqlite") as db:
            db.execute("DELETE FROM sources")
            db.execute("DELETE FROM documents")
        docs_left = _documents(tmp_path / "fewer", 3, 700_000)
    else:
        docs_left = docs
    assert main(["import", str(docs_left), "--metropole", "testville", *args]) == 0
    assert main(["extract", *args]) == 0
    assert_consistent(corpus)


def test_read_only_corpus_one_message(tmp_path: Path, small_disk: Path | None,
                                      capsys: pytest.CaptureFixture) -> None:
    docs = _documents(tmp_path / "docs", 2, 10_000)
    root = small_disk or tmp_path / "plain"
    corpus = root / "corpus"
    args = ["--corpus-dir", str(corpus), "--no-progress", "-q"]
    assert main(["import", str(docs), "--metropole", "testville", *args]) == 0
    if small_disk is not None:
        ro = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
        assert ro.returncode == 0, ro.stderr
    elif os.geteuid() == 0:
        pytest.skip("simulated read-only: root ignores folder permissions (the tmpfs variant covers it)")
    else:
        for path in [corpus, *corpus.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        for command in (["import", str(docs), "--metropole", "testville"], ["extract"]):
            assert main([*command, *args]) == 1
            line = _one_line(capsys)
            assert "read-only" in line or "not writable" in line, line
    finally:
        if small_disk is not None:
            subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], capture_output=True)
        else:
            for path in [corpus, *corpus.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
    assert_consistent(corpus)
    assert main(["extract", *args]) == 0


def test_store_errors_are_store_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nlp.store
    from nlp.schema import Extraction
    from nlp.store import CorpusStore

    store = CorpusStore(tmp_path / "corpus")
    doc_id, _ = store.add_document(b"%PDF-1.4 x", "application/pdf")

    def enospc(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(nlp.store, "atomic_write", enospc)
    with pytest.raises(StoreError, match="disk is full"):
        store.add_document(b"%PDF-1.4 y", "application/pdf")
    with pytest.raises(StoreError, match="disk is full"):
        store.save_extraction(doc_id, Extraction(status="ok", engine="e", engine_version="1", cleaning_version="1"))
    # Any other error keeps its traceback: it is a bug, not the disk.
    monkeypatch.setattr(nlp.store, "atomic_write", lambda p, d: (_ for _ in ()).throw(OSError(errno.EBADF, "bad")))
    with pytest.raises(OSError):
        store.add_document(b"%PDF-1.4 z", "application/pdf")
