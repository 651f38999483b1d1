"""Helpers of the compute-layer tests: copy a corpus, run extract + annotate with a compute
setting, compare two runs' outputs, and a real Dask scheduler with worker processes on
127.0.0.1 (subprocesses on a free port, killed at the end)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from nlp.compute import ComputeSettings
from nlp.config import REPO_ROOT
from nlp.store import CorpusStore


def copy_corpus(source: Path, target: Path) -> Path:
    """A fresh copy of a corpus folder (documents only, nothing extracted yet)."""
    shutil.copytree(source, target)
    return target


def run_stages(corpus: Path, outputs: Path, compute: ComputeSettings, annotate: bool = True) -> dict[str, Any]:
    """Extract then annotate ``corpus`` with ``compute``; returns both stages' counts."""
    from nlp.annotate import AnnotateSettings, run_annotate
    from nlp.extract import ExtractSettings, run_extract

    with CorpusStore(corpus) as store:
        out = {"extract": run_extract(store, ExtractSettings(ocr=False, workers=2), progress=False,
                                      compute=compute)}
        if annotate:
            out["annotate"] = run_annotate(store, outputs, REPO_ROOT / "lexicons", AnnotateSettings(),
                                           progress=False, compute=compute)
    return out


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


def assert_same_outputs(a: Path, b: Path, tables: bool = True) -> None:
    """Same extractions (rows and texts) and, with ``tables``, byte-identical Parquet tables."""
    assert extraction_state(a / "corpus") == extraction_state(b / "corpus")
    if tables:
        names = sorted(p.name for p in (a / "outputs" / "tables").glob("*.parquet"))
        assert names == sorted(p.name for p in (b / "outputs" / "tables").glob("*.parquet")) and names
        for name in names:
            assert (a / "outputs" / "tables" / name).read_bytes() == (b / "outputs" / "tables" / name).read_bytes(), name


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

    def client(self, timeout: float = 60.0) -> Any:
        from distributed import Client

        client = Client(self.address, timeout=timeout)
        client.wait_for_workers(len(self.workers), timeout=timeout)
        return client

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
