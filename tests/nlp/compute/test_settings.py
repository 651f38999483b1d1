"""The compute setting: where it comes from (file < environment < flag), what it accepts, the
in-process fallback of ``local`` for small corpora, the partition helper, and the SLURM path
up to the job script (a real SLURM is tested in test_slurm.py, where one can start)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nlp.cli import build_parser
from nlp.compute import (ComputeSettings, client_for, compute_settings, map_partitions, partition,
                         partition_size)
from nlp.config import REPO_ROOT, load_settings
from nlp.errors import BarometreError, ConfigError


def test_flag_beats_environment_beats_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("compute:\n  scheduler: inprocess\n  retries: 5\n", encoding="utf-8")
    assert compute_settings(load_settings({}, cfg, env={}).compute).scheduler == "inprocess"
    env = {"BAROMETRE_SCHEDULER": "tcp://10.0.0.5:8786"}
    from_env = compute_settings(load_settings({}, cfg, env=env).compute)
    assert (from_env.scheduler, from_env.retries) == ("tcp://10.0.0.5:8786", 5)
    flag = load_settings({"compute.scheduler": "slurm"}, cfg, env=env)
    assert compute_settings(flag.compute).scheduler == "slurm"
    assert compute_settings(load_settings({}, None, env={}).compute).scheduler == "local"


def test_scheduler_string_shorthand_and_cli_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("compute: tcp://scheduler.lab:8786\n", encoding="utf-8")
    assert compute_settings(load_settings({}, cfg, env={}).compute).scheduler == "tcp://scheduler.lab:8786"
    for command in ("extract", "annotate", "run", "demo"):
        args = build_parser().parse_args([command, "--scheduler", "inprocess"])
        assert args.scheduler == "inprocess"


@pytest.mark.parametrize("section, key", [
    ({"scheduler": "cloud"}, "compute.scheduler"),
    ({"scheduler": "http://host:8786"}, "compute.scheduler"),
    ({"workers": 0}, "compute.workers"),
    ({"retries": -1}, "compute.retries"),
    ({"speed": 3}, "unknown key"),
    ({"slurm": {"cores": 0}}, "compute.slurm.cores"),
    ({"slurm": {"minimum_jobs": 5, "maximum_jobs": 2}}, "compute.slurm.minimum_jobs"),
    ({"slurm": {"partition": "short"}}, "unknown key"),
])
def test_bad_values_are_one_named_error(section: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compute_settings(section)


def test_bad_scheduler_fails_when_settings_load() -> None:
    with pytest.raises(ConfigError, match="compute.scheduler"):
        load_settings({}, None, env={"BAROMETRE_SCHEDULER": "nowhere"})


def test_local_runs_in_process_below_the_threshold() -> None:
    s = ComputeSettings(local_min_documents=100)
    assert s.mode(99) == "inprocess" and s.mode(100) == "local" and s.mode(None) == "local"
    assert ComputeSettings(scheduler="inprocess").mode(10_000) == "inprocess"
    assert ComputeSettings(scheduler="tcp://h:1").mode(1) == "address"
    with client_for(ComputeSettings(), n_items=3) as client:
        assert client is None


def test_partitions_keep_order_and_in_process_map() -> None:
    items = list(range(10))
    assert partition(items, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert partition_size(ComputeSettings(), 1000, 2) == 32
    assert partition_size(ComputeSettings(), 40, 2) == 5
    assert partition_size(ComputeSettings(partition_size=7), 1000, 2) == 7
    results = list(map_partitions(lambda part, k: [x * k for x in part], partition(items, 4), 10))
    assert [r.index for r in results] == [0, 1, 2] and results[2].value == [80, 90]


def test_slurm_without_dask_jobqueue_is_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(BarometreError, match="dask-jobqueue"):
        with client_for(ComputeSettings(scheduler="slurm")):
            pass


def test_slurm_job_script_carries_the_settings() -> None:
    if importlib.util.find_spec("dask_jobqueue") is None:
        pytest.skip("dask-jobqueue is not installed (pip install 'barometre[slurm]')")
    section = {"scheduler": "slurm", "slurm": {
        "cores": 4, "memory": "8GB", "walltime": "01:30:00", "queue": "short", "account": "proj42",
        "processes": 2, "job_extra_directives": ["--exclusive"]}}
    # In a subprocess: building a SLURMCluster starts a scheduler, which this process must not keep.
    code = ("import json, sys; from nlp.compute import compute_settings, slurm_job_script; "
            "print(slurm_job_script(compute_settings(json.loads(sys.argv[1])).slurm))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(section)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for expected in ("#SBATCH -p short", "#SBATCH -A proj42", "#SBATCH -t 01:30:00", "#SBATCH --exclusive",
                     "--nworkers 2", "--nthreads 2"):
        assert expected in proc.stdout, (expected, proc.stdout)
