"""Output tables as Parquet datasets partitioned by metropolis (issue 14, nlp/tableio.py): the
round trip keeps columns, dtypes and values; plain pandas and pyarrow read a dataset whole;
a failure while writing leaves the old version; old single-file tables still read; partitions
written by separate worker processes are committed by the client in one swap."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from nlp.io import (MISSING_PARTITION, partition_name, read_table, staged_dataset, table_columns, write_partition,
                    write_table)


def _frame() -> pd.DataFrame:
    """The kinds of columns the annotate and indicators tables hold, rows of three metropolises
    interleaved (as the annotate stage writes them: by document), one without a metropole."""
    return pd.DataFrame({
        "document_id": ["d1", "d1", "d2", "d3", "d4", "d5"],
        "metropole": ["nantes", "lyon", "lyon", None, "nantes", "aix-marseille-provence"],
        "year": pd.array([2021, 2021, None, 2019, 2020, 2018], dtype="Int64"),
        "page": [1, 2, 3, 4, 5, 6],
        "share": [0.5, np.nan, 0.25, 1.0, 0.0, 0.75],
        "counts": [True, False, True, True, False, False],
        "title": ["Délibération", None, "PV", None, "Rapport", None],
        "labels": [["donnees"], [], ["inclusion", "donnees"], [], ["strategie"], []],
        "mixed": [1, "a", None, 2.5, "b", "c"],  # mixed values: stringified, None kept
    })


def _single_file(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``df`` written as one Parquet file (the layout before datasets) and read back."""
    write_table(df, path)
    assert path.is_file()
    return pd.read_parquet(path)


def _grouped(df: pd.DataFrame) -> pd.DataFrame:
    """The rows in a dataset's reading order: by partition folder name, stable within."""
    order = np.argsort(df["metropole"].map(partition_name).to_numpy(), kind="stable")
    return df.iloc[order].reset_index(drop=True)


def test_round_trip_keeps_columns_dtypes_and_values(tmp_path: Path) -> None:
    df = _frame()
    path = tmp_path / "tables" / "hits.parquet"
    assert write_table(df, path, partition_by="metropole") == [path]
    assert path.is_dir()
    parts = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert parts == ["%missing/part-0.parquet", "aix-marseille-provence/part-0.parquet",
                     "lyon/part-0.parquet", "nantes/part-0.parquet"]
    got = read_table(path)
    before = _single_file(df, tmp_path / "single.parquet")
    assert list(got.columns) == list(df.columns)
    assert got["metropole"].dtype == object and str(got["year"].dtype) == "Int64"
    pd.testing.assert_frame_equal(got, _grouped(before))
    assert got["mixed"].tolist()[:2] == ["2.5", "c"]  # stringified, as in a single file
    pd.testing.assert_frame_equal(read_table(path, columns=["year", "metropole"]),
                                  _grouped(before)[["year", "metropole"]])
    assert table_columns(path) == list(df.columns)


def test_plain_pandas_and_pyarrow_read_the_dataset_whole(tmp_path: Path) -> None:
    """What lets readers outside the project (and pipeline.py) skip read_table: pandas and
    pyarrow see the same table, metropole a plain string column, no Hive column added."""
    path = tmp_path / "documents.parquet"
    write_table(_frame(), path, partition_by="metropole")
    ours = read_table(path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), ours)
    pd.testing.assert_frame_equal(pq.read_table(path).to_pandas(), ours)
    dataset = ds.dataset(path, format="parquet")
    assert str(dataset.schema.field("metropole").type) == "string"
    pd.testing.assert_frame_equal(dataset.to_table().to_pandas(), ours)
    lyon = dataset.to_table(filter=ds.field("metropole") == "lyon").to_pandas()
    assert lyon["document_id"].tolist() == ["d1", "d2"]
    single = tmp_path / "single.parquet"
    write_table(_frame(), single)
    pd.testing.assert_frame_equal(pd.read_parquet(single), read_table(single))


def test_partition_names_are_slugs_or_escaped() -> None:
    assert partition_name("lyon") == "lyon" and partition_name("aix-marseille-provence") == "aix-marseille-provence"
    for missing in (None, np.nan, pd.NA, ""):
        assert partition_name(missing) == MISSING_PARTITION
    assert partition_name("../etc") == "%2E%2E%2Fetc"
    assert partition_name("_x") == "%5Fx" and partition_name(".x") == "%2Ex"  # pyarrow skips '_' and '.'
    assert partition_name("Lyon") != partition_name("lyon")
    assert partition_name("%missing") != MISSING_PARTITION
    assert partition_name("métropole") == "m%C3%A9tropole"


def test_odd_metropole_values_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"metropole": ["../../escape", "Saint-Étienne", "%missing", None, "a=b"], "n": range(5)})
    path = tmp_path / "t.parquet"
    write_table(df, path, partition_by="metropole")
    assert {p.parent.parent for p in path.rglob("*.parquet")} == {path}  # nothing outside, no deeper
    got = read_table(path)
    assert sorted(got["metropole"].fillna("<none>")) == sorted(df["metropole"].fillna("<none>"))
    pd.testing.assert_frame_equal(pd.read_parquet(path), got)  # "a=b" did not make a Hive folder


def test_a_failure_mid_write_leaves_the_old_dataset(tmp_path: Path) -> None:
    path = tmp_path / "hits.parquet"
    old = _frame()
    write_table(old, path, partition_by="metropole")
    before = read_table(path)
    # "lyon" is written first; the second partition's folder name is longer than any
    # filesystem allows (ENAMETOOLONG): a real failure after part of the new version exists.
    new = pd.DataFrame({"metropole": ["lyon", "z" * 400], "n": [1, 2]})
    with pytest.raises(OSError):
        write_table(new, path, partition_by="metropole")
    pd.testing.assert_frame_equal(read_table(path), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hits.parquet"]  # no staging left


def test_a_failing_worker_partition_commits_nothing(tmp_path: Path) -> None:
    path = tmp_path / "paragraphs.parquet"
    write_table(_frame(), path, partition_by="metropole")
    before = read_table(path)
    with pytest.raises(Exception, match="int|str|bytes|convert"):
        with staged_dataset(path) as staging:
            write_partition(pd.DataFrame({"metropole": ["lyon"], "labels": [["a"]]}), staging, "lyon")
            # a list column mixing numbers and text: Arrow cannot serialise it
            write_partition(pd.DataFrame({"metropole": ["nantes"], "labels": [[1, "a"]]}), staging, "nantes")
    pd.testing.assert_frame_equal(read_table(path), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paragraphs.parquet"]


def test_a_swap_cut_between_its_renames_reads_and_repairs(tmp_path: Path) -> None:
    """A dataset cannot be renamed over another in one step: the old one is renamed aside
    first. The state a crash between the two renames leaves (nothing at the path, the old
    version aside) reads as the old version, and the next write puts things right."""
    path = tmp_path / "hits.parquet"
    write_table(_frame(), path, partition_by="metropole")
    before = read_table(path)
    path.rename(tmp_path / ".hits.parquet.4242.17.old")
    pd.testing.assert_frame_equal(read_table(path), before)
    assert table_columns(path) == list(before.columns)
    write_table(_frame().iloc[:2], path, partition_by="metropole")
    assert len(read_table(path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hits.parquet"]


def test_old_single_file_outputs_still_read_and_are_replaced(tmp_path: Path) -> None:
    df = _frame()
    path = tmp_path / "documents.parquet"
    df.assign(mixed=df["mixed"].astype(str)).to_parquet(path, index=False)  # as pandas wrote them
    old = read_table(path)
    pd.testing.assert_frame_equal(old, pd.read_parquet(path))
    write_table(df, path, partition_by="metropole")  # a file replaced by a dataset
    assert path.is_dir()
    pd.testing.assert_frame_equal(read_table(path).drop(columns="mixed"), _grouped(old).drop(columns="mixed"))
    write_table(df, path)  # and back: a table without partitioning is one file again
    assert path.is_file() and len(read_table(path)) == len(df)


def test_an_empty_table_keeps_its_columns_and_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "hits.parquet"
    write_table(_frame().iloc[:0], path, partition_by="metropole")
    got = read_table(path)
    assert got.empty and list(got.columns) == list(_frame().columns)
    assert str(got["year"].dtype) == "Int64"
    pd.testing.assert_frame_equal(pd.read_parquet(path), got)


def _worker_frames() -> dict[str, pd.DataFrame]:
    """Per metropolis, the rows one worker holds. Nantes' titles are all missing and its lists
    all empty: converted alone, those columns get Arrow type null / list<null>."""
    df = _frame().drop(columns="mixed")
    frames = {m: df[df["metropole"] == m] for m in ("lyon", "nantes", "aix-marseille-provence")}
    frames["nantes"] = frames["nantes"].assign(title=None, labels=[[] for _ in range(len(frames["nantes"]))])
    return frames


def test_partitions_written_by_workers_then_committed(tmp_path: Path) -> None:
    path = tmp_path / "outputs" / "tables" / "hits.parquet"
    write_table(pd.DataFrame({"metropole": ["brest"], "n": [0]}), path, partition_by="metropole")
    old = read_table(path)
    frames = _worker_frames()
    lyon_a, lyon_b = frames["lyon"].iloc[:1], frames["lyon"].iloc[1:]
    jobs = [(lyon_a, "lyon", "w0"), (lyon_b, "lyon", "w1"), (frames["nantes"], "nantes", 0),
            (frames["aix-marseille-provence"], "aix-marseille-provence", 0)]
    with staged_dataset(path) as staging:
        # Separate processes, as Dask workers are: each writes its own metropolis's part.
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            written = list(pool.map(write_partition, *zip(*[(df, staging, m, part) for df, m, part in jobs])))
        assert {p.relative_to(staging).as_posix() for p in written} == {
            "lyon/part-w0.parquet", "lyon/part-w1.parquet", "nantes/part-0.parquet",
            "aix-marseille-provence/part-0.parquet"}
        assert str(pq.read_schema(staging / "nantes" / "part-0.parquet").field("title").type) == "null"
        pd.testing.assert_frame_equal(read_table(path), old)  # nothing visible before the commit
    got = read_table(path)
    expected = pd.concat([frames["aix-marseille-provence"], lyon_a, lyon_b, frames["nantes"]], ignore_index=True)
    pd.testing.assert_frame_equal(got, _single_file(expected, tmp_path / "expected.parquet"))
    assert got["metropole"].dtype == object and got["title"].dtype == object
    pd.testing.assert_frame_equal(pd.read_parquet(path), got)  # one schema after the commit
    assert not [p for p in path.parent.iterdir() if p.name != "hits.parquet"]


def test_a_worker_cannot_write_another_metropolis(tmp_path: Path) -> None:
    with staged_dataset(tmp_path / "t.parquet") as staging:
        with pytest.raises(ValueError, match="must be 'lyon'"):
            write_partition(pd.DataFrame({"metropole": ["lyon", "nantes"], "n": [1, 2]}), staging, "lyon")
        with pytest.raises(ValueError, match="letters, digits"):
            write_partition(pd.DataFrame({"metropole": ["lyon"], "n": [1]}), staging, "lyon", part="../x")
        write_partition(pd.DataFrame({"metropole": ["lyon"], "n": [1]}), staging, "lyon")
    assert read_table(tmp_path / "t.parquet")["n"].tolist() == [1]
