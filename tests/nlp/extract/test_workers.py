"""Worker processes of the extract stage, tested for real: ``barometre extract`` killed with
SIGKILL leaves no worker behind (busy or idle), a killed run's temporary files are swept when
the store is opened next, and ``barometre text`` runs under the same time and memory limits."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nlp.config import REPO_ROOT
from nlp.errors import BarometreError
from nlp.extract import ExtractSettings, run_extract, text_command
from nlp.store import CorpusStore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# The real CLI, with extract_file slowed down for the files named "slow*" (the worker is
# forked, so it runs the patched function): a worker is then busy for as long as the test
# wants, while the other one finishes its document and waits for the next.
DRIVER = textwrap.dedent("""
    import sys, time
    import nlp.extract.worker as worker
    if sys.argv[2] == "no-pdeathsig":  # only the end-of-file path left
        worker.die_with_parent = lambda parent_pid=None, sig=None: False
    real = worker.extract_file
    def slow(path, settings, hints=None):
        if path.name.startswith("slow") or hints.get("page_title", "").startswith("slow"):
            time.sleep(600)
        return real(path, settings, hints)
    worker.extract_file = slow
    from nlp.cli import main
    sys.exit(main(["extract", "--corpus-dir", sys.argv[1], "--workers", "2", "--no-progress",
                   "--timeout", "900"]))
""")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by whoever adopted it counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _rows(corpus: Path) -> int:
    try:
        with sqlite3.connect(f"file:{corpus / 'corpus.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM extractions").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("mode", ["pdeathsig", "no-pdeathsig"])
def test_kill_9_of_extract_leaves_no_worker(tmp_path: Path, pdfs: dict, store_with, mode: str) -> None:
    slow = tmp_path / "slow.txt"
    slow.write_text("Le conseil municipal adopte la stratégie numérique de la ville.\n" * 20)
    fast = pdfs["table"].path
    store = store_with(tmp_path, [slow, fast])
    store.close()
    corpus = tmp_path / "corpus"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, str(driver), str(corpus), mode], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        # One worker busy with the slow file, the other idle after the fast one.
        _wait_for(lambda: _rows(corpus) >= 1 and len(_children(proc.pid)) >= 2, 60,
                  "two workers and one saved extraction")
        workers = _children(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if mode == "pdeathsig":
            # Busy or idle, every worker goes with its parent.
            _wait_for(lambda: not any(_alive(w) for w in workers), 10, "the workers to die")
        else:
            # Without prctl, the idle worker still exits: its pipe reaches end-of-file because
            # no other process holds the parent's end.
            _wait_for(lambda: sum(_alive(w) for w in workers) <= 1, 10, "the idle worker to exit")
    finally:
        for pid in [proc.pid, *workers]:  # whatever a failure left behind
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        proc.wait(10)
    # The interrupted run resumes: the fast file is not redone, the slow one is extracted.
    with CorpusStore(corpus) as again:
        assert run_extract(again, ExtractSettings(ocr=False), progress=False) == {"ok": 1, "unchanged": 1}


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_files_swept_at_startup(tmp_path: Path, pdfs: dict, store_with) -> None:
    store = store_with(tmp_path, [pdfs["table"].path])
    store.close()
    corpus = tmp_path / "corpus"
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [corpus / "text" / "ab" / f".x.json.{dead}.123.tmp", corpus / "files" / "cd" / f".y.pdf.{dead}.456.tmp"]
        live = corpus / "text" / "ab" / f".z.json.{sleeper.pid}.789.tmp"
        for path in [*stale, live]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"partial")
        with CorpusStore(corpus) as again:  # what `barometre extract` opens first
            assert run_extract(again, ExtractSettings(ocr=False), progress=False) == {"ok": 1}
        assert not any(p.exists() for p in stale)  # a killed writer's leftovers: gone at once
        assert live.exists()  # a live writer's file is left alone
    finally:
        sleeper.kill()
        sleeper.wait()


# --- barometre text: the same limits ----------------------------------------------------------
def test_text_command_time_limit(pdfs: dict) -> None:
    settings = ExtractSettings(engine="pdfplumber", timeout_s=1)
    data = json.loads(text_command(pdfs["minutes_255"].path, engine="pdfplumber", as_json=True, settings=settings))
    assert data["status"] == "timeout"
    with pytest.raises(BarometreError, match="timeout"):
        text_command(pdfs["minutes_255"].path, engine="pdfplumber", settings=settings)


def test_text_command_memory_limit(tmp_path: Path) -> None:
    big = tmp_path / "huge.txt"
    big.write_bytes(b"Le conseil municipal approuve la convention. " * 1_500_000)  # ~68 MB
    data = json.loads(text_command(big, as_json=True, settings=ExtractSettings(max_memory_mb=40)))
    assert data["status"] == "memory" and "40 MB" in data["error"]
    # The default limits let it through.
    assert json.loads(text_command(big, as_json=True))["status"] == "ok"


def test_text_command_leaves_no_process(pdfs: dict) -> None:
    before = set(_children(os.getpid()))
    text_command(pdfs["table"].path)
    with pytest.raises(BarometreError):
        text_command(pdfs["minutes_255"].path, engine="pdfplumber", settings=ExtractSettings(timeout_s=0.5))
    assert set(_children(os.getpid())) - before == set()
