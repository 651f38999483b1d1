"""The indicators' bootstrap as Dask tasks (partitions of cells) on a real scheduler and two
real workers on 127.0.0.1: every indicator table is identical to the in-process run's (a
cell's draws depend only on the seed, its key and its documents), and the stage sends the
draws to the cluster only for a scheduler address or SLURM."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from compute_runs import DaskCluster

from nlp.compute import ComputeSettings, client_for
from nlp.indicators import IndicatorSettings, compute_indicators


def _tables(reference: Path) -> tuple[pd.DataFrame, ...]:
    tables = reference / "outputs" / "tables"
    return tuple(pd.read_parquet(tables / f"{n}.parquet") for n in ("documents", "paragraphs", "hits"))


def test_bootstrap_on_a_tcp_scheduler_gives_the_in_process_tables(reference: Path, dask_cluster: DaskCluster) -> None:
    docs, paras, hits = _tables(reference)
    settings = IndicatorSettings(draws=200, seed=7)
    here = compute_indicators(docs, paras, hits, settings)
    with client_for(ComputeSettings(scheduler=dask_cluster.address), local=False) as client:
        assert client is not None
        there = compute_indicators(docs, paras, hits, settings, client=client)
        # The draws ran as tasks on the cluster (the scheduler knows the task prefix).
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        assert "bootstrap" in prefixes, prefixes
    assert set(here.tables) == set(there.tables)
    for name, table in here.tables.items():
        pd.testing.assert_frame_equal(table, there.tables[name], obj=name)
    # The intervals come from draws: a table that ignored them would pass trivially.
    ind = here.tables["indicators"]
    assert (ind["ci_high"] > ind["ci_low"]).any()


def test_the_bootstrap_stays_here_for_local_and_inprocess() -> None:
    for scheduler in ("local", "inprocess"):
        with client_for(ComputeSettings(scheduler=scheduler), local=False) as client:
            assert client is None
