"""The SLURM path against a real single-node SLURM (Debian slurm-wlm + munge, started by
.ci/slurm-single-node.sh for this test and stopped after): extract + annotate through
``compute.scheduler: slurm`` (dask-jobqueue submits the worker jobs with sbatch, adaptive
between 0 and 2 jobs) give the in-process run's rows, texts and tables. Skipped, with the
reason, where SLURM cannot start (not root, packages absent, daemons refusing)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from compute_runs import assert_same_outputs, copy_corpus, run_stages

from nlp.compute import compute_settings
from nlp.config import REPO_ROOT

SCRIPT = REPO_ROOT / ".ci" / "slurm-single-node.sh"


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if importlib.util.find_spec("dask_jobqueue") is None:  # not imported here: the run is a subprocess
        pytest.skip("dask-jobqueue is not installed (pip install 'barometre[slurm]')")
    if os.geteuid() != 0:
        pytest.skip("a single-node SLURM needs root to run slurmd")
    if not all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        pytest.skip("slurm-wlm and munge are not installed (make sysdeps installs them as root)")
    state = tmp_path / "slurm"
    proc = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=120)
    try:
        if proc.returncode != 0:
            pytest.skip(f"the single-node SLURM did not start: {proc.stderr.strip()[-500:]}")
        monkeypatch.setenv("SLURM_CONF", str(state / "slurm.conf"))
        yield state
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True, timeout=60)


def test_slurm_cluster_gives_the_in_process_tables(slurm: Path, source_corpus: Path, reference: Path,
                                                   tmp_path: Path) -> None:
    copy_corpus(source_corpus, tmp_path / "corpus")
    compute = {"scheduler": "slurm", "partition_size": 8, "slurm": {
        "cores": 1, "memory": "3GB", "walltime": "00:20:00", "queue": "debug", "processes": 1,
        "minimum_jobs": 0, "maximum_jobs": 2, "python": sys.executable,
        "job_script_prologue": [f"export PYTHONPATH={REPO_ROOT}"],
        "local_directory": str(tmp_path / "dask"), "log_directory": str(tmp_path / "jobs"),
        "interface": "lo"}}  # scheduler and workers on 127.0.0.1 only: no network in tests
    compute_settings(compute)  # valid as a config file's section
    counts = run_stages(tmp_path / "corpus", tmp_path / "outputs", compute,
                        env={"SLURM_CONF": str(slurm / "slurm.conf")})
    assert counts["extract"] == {"ok": 25}
    assert_same_outputs(reference, tmp_path)
    logs = list((tmp_path / "jobs").glob("*"))
    assert logs, "no SLURM job ran a worker"
