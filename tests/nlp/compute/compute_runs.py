"""Helpers of the compute-layer tests: copy a corpus, run extract + annotate with a compute
setting (in a subprocess: this file is also that subprocess's script), compare two runs'
outputs, and a real Dask scheduler with worker processes on 127.0.0.1 (subprocesses on a free
port, killed at the end)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script by run_stages: the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from nlp.compute import ComputeSettings
from nlp.config import REPO_ROOT
from nlp.store import CorpusStore


def copy_corpus(source: Path, target: Path) -> Path:
    """A fresh copy of a corpus folder (documents only, nothing extracted yet)."""
    shutil.copytree(source, target)
    return target


def _stages(corpus: Path, outputs: Path, compute: ComputeSettings) -> dict[str, Any]:
    from nlp.annotate import AnnotateSettings, run_annotate
    from nlp.extract import ExtractSettings, run_extract

    with CorpusStore(corpus) as store:
        out = {"extract": run_extract(store, ExtractSettings(ocr=False, workers=2), progress=False,
                                      compute=compute)}
        out["annotate"] = run_annotate(store, outputs, REPO_ROOT / "lexicons", AnnotateSettings(),
                                       progress=False, compute=compute)
    return out


def run_stages(corpus: Path, outputs: Path, compute: dict[str, Any], kill: dict[str, Any] | None = None,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Extract then annotate ``corpus`` with the ``compute`` settings section, in a
    subprocess (as a user runs barometre: the test process keeps no Dask client, cluster or
    model of the run). ``kill``: ``{"partition": i, "pids": {worker name: pid}}`` SIGKILLs the
    worker seen running extract partition ``i`` (see :func:`_main`). Returns the stages'
    counts, and with ``kill`` the victim's address and the partition's "done on" log line."""
    proc = subprocess.run([sys.executable, __file__, str(corpus), str(outputs), json.dumps(compute),
                           json.dumps(kill)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _kill_when_running(address: str, kill: dict[str, Any], runner: threading.Thread) -> str:
    """Wait until extract partition ``kill["partition"]`` runs on a worker, then SIGKILL that
    worker (well inside the partition); returns its address."""
    from distributed import Client

    with Client(address, timeout=60) as watch:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and runner.is_alive():
            for worker, keys in watch.processing().items():
                if any(k.startswith("extract-") and k.endswith(f"-{kill['partition']}") for k in keys):
                    name = watch.scheduler_info()["workers"][worker]["name"]
                    time.sleep(0.3)
                    os.killpg(kill["pids"][name], signal.SIGKILL)
                    return worker
            time.sleep(0.01)
    raise AssertionError("the partition to kill was never seen running")


def _main(argv: list[str]) -> int:
    """``compute_runs.py CORPUS OUTPUTS COMPUTE_JSON KILL_JSON``: run both stages, print the
    result as one JSON line."""
    from nlp.compute import compute_settings

    corpus, outputs = Path(argv[0]), Path(argv[1])
    compute, kill = compute_settings(json.loads(argv[2])), json.loads(argv[3])
    lines = _Lines()
    logging.getLogger("nlp.compute").addHandler(lines)
    logging.getLogger("nlp.compute").setLevel(logging.DEBUG)
    if not kill:
        print(json.dumps(_stages(corpus, outputs, compute)))
        return 0
    box: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: box.update(counts=_stages(corpus, outputs, compute)))
    runner.start()
    victim = _kill_when_running(compute.scheduler, kill, runner)
    runner.join(600)
    done = [m for m in lines.lines if m.startswith(f"extract: partition {kill['partition']} done")]
    print(json.dumps({**box["counts"], "victim": victim, "done_on": done}))
    return 0


def extraction_state(corpus: Path) -> dict[str, Any]:
    """Each document's extraction row and JSON, without what legitimately differs between
    runs (timings, commit times)."""
    out = {}
    with CorpusStore(corpus) as store:
        rows = store.latest_extractions()
        assert sum(store.counts("extractions").values()) == len(rows), "an extraction row was written twice"
        for row in rows:
            doc = json.loads((corpus / row["text_path"]).read_text(encoding="utf-8"))
            doc.pop("seconds", None)
            kept = {k: v for k, v in row.items() if k not in ("seconds", "created_at")}
            out[row["document_id"]] = (kept, doc)
    return out


def _table_files(tables: Path) -> dict[str, bytes]:
    """Every file of every Parquet table under ``tables`` (a single file, or each part of a
    per-metropolis dataset) by its relative name."""
    return {p.relative_to(tables).as_posix(): p.read_bytes()
            for table in tables.glob("*.parquet") for p in ([table] if table.is_file() else table.rglob("*.parquet"))}


def assert_same_outputs(a: Path, b: Path, tables: bool = True) -> None:
    """Same extractions (rows and texts) and, with ``tables``, byte-identical Parquet tables
    (the same partitions, each with the same bytes)."""
    assert extraction_state(a / "corpus") == extraction_state(b / "corpus")
    if tables:
        ours, theirs = _table_files(a / "outputs" / "tables"), _table_files(b / "outputs" / "tables")
        assert sorted(ours) == sorted(theirs) and any("/" in name for name in ours), sorted(ours)
        for name in ours:
            assert ours[name] == theirs[name], name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaskCluster:
    """A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, workdir: Path, n_workers: int = 2) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        # The workers import barometre (tasks are plain functions pickled by reference).
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
        self.scheduler = self._start([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--no-dashboard"], "scheduler")
        self.workers: dict[str, subprocess.Popen] = {}
        for i in range(n_workers):
            name = f"w{i}"
            # No nanny: the process killed by a test is the worker itself (a nanny would
            # restart it, which would hide nothing but blur what the test shows).
            self.workers[name] = self._start(
                [sys.executable, "-m", "dask", "worker", self.address, "--name", name, "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                 "--local-directory", str(workdir / name)], name)

    def _start(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")
        return subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=self.workdir)

    def wait(self, timeout: float = 60.0) -> None:
        """Until the scheduler has all the workers (asked from a subprocess: this process
        holds no Dask client)."""
        code = (f"from distributed import Client; c = Client({self.address!r}, timeout={timeout}); "
                f"c.wait_for_workers({len(self.workers)}, timeout={timeout}); c.close()")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout + 30)
        assert proc.returncode == 0, proc.stderr[-2000:] + self.logs()

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.workers.items()}

    def kill_worker(self, name: str) -> None:
        os.killpg(self.workers[name].pid, signal.SIGKILL)
        self.workers[name].wait(10)

    def close(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.workdir.glob("*.log"))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
