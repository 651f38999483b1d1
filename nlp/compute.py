"""The compute layer: where the per-document work of a stage runs (issue 14).

Core module (no stage imported). Used by extract and annotate, whose per-document work is a
plain function of (partition of documents, settings) -> small records.

Input: the ``compute`` settings section (config file key ``compute``, environment
``BAROMETRE_SCHEDULER``, flag ``--scheduler``; the flag wins), as a :class:`ComputeSettings`.
Output: :func:`client_for` gives a ``distributed.Client`` (or ``None``: run in this process);
:func:`map_partitions` runs a function over partitions of items on it and yields the results
as they complete.

``scheduler`` is one of:

- ``local`` (default): a ``dask.distributed.LocalCluster`` of worker processes (one per core,
  one thread each; nothing to start). A stage with fewer than ``local_min_documents``
  documents to process runs in process instead: starting the cluster and loading the models
  in every worker costs more than it saves on a small corpus (README, "Running on a
  cluster", gives the measurement);
- ``inprocess``: no Dask at all, the work runs here (tests, debugging, small corpora);
- ``tcp://host:port`` (or ``tls://``): an existing scheduler whose workers can import
  barometre and see the corpus folder at the same path (shared storage);
- ``slurm``: a ``dask_jobqueue.SLURMCluster`` from the ``slurm`` sub-section (cores, memory,
  walltime, queue, account, processes, minimum_jobs/maximum_jobs for adaptive scaling).

One writer: workers write content-addressed files and return small records; only the client
commits them (the SQLite manifest has one writer). A partition whose worker died is run
again by the scheduler (up to its ``allowed-failures``), one whose function raised is retried
``retries`` times, and :func:`map_partitions` hands each partition's result to the caller
once, however many times it was computed.
"""
from __future__ import annotations

import logging
import math
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterator, Mapping, Sequence

from nlp.errors import BarometreError, ConfigError

log = logging.getLogger(__name__)

SCHEDULERS = ("local", "inprocess", "slurm")
_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+(:\d{1,5})?/?$")
# Measured on the demo (59 documents) and bench/bench_scale.py on a 2-core machine: below a
# few hundred documents the ~2 s cluster start plus a spaCy model load in every worker
# (~5-10 s) costs more than a second core saves (README, "Running on a cluster").
LOCAL_MIN_DOCUMENTS = 300


@dataclass(frozen=True)
class SlurmSettings:
    """A SLURM job template for ``dask_jobqueue.SLURMCluster``: each job runs ``processes``
    Dask workers (default: one per core) within ``cores``/``memory`` for ``walltime``; the
    cluster adapts between ``minimum_jobs`` and ``maximum_jobs`` jobs to the work queued."""

    cores: int = 8
    memory: str = "16GB"
    walltime: str = "02:00:00"
    queue: str | None = None
    account: str | None = None
    processes: int | None = None
    minimum_jobs: int = 0
    maximum_jobs: int = 4
    job_extra_directives: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    local_directory: str | None = None
    log_directory: str | None = None
    python: str | None = None
    # Network interface the scheduler and the workers listen on (e.g. "ib0" for InfiniBand,
    # "lo" for a single-node test); None: the one dask-jobqueue picks.
    interface: str | None = None

    def __post_init__(self) -> None:
        for name in ("cores", "maximum_jobs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"setting 'compute.slurm.{name}': must be a whole number >= 1")
        if not isinstance(self.minimum_jobs, int) or not 0 <= self.minimum_jobs <= self.maximum_jobs:
            raise ConfigError("setting 'compute.slurm.minimum_jobs': must be between 0 and maximum_jobs")
        if self.processes is not None and not (isinstance(self.processes, int) and 1 <= self.processes <= self.cores):
            raise ConfigError("setting 'compute.slurm.processes': must be between 1 and cores")
        # YAML lists arrive as lists: keep the settings hashable and frozen.
        object.__setattr__(self, "job_extra_directives", tuple(self.job_extra_directives))
        object.__setattr__(self, "job_script_prologue", tuple(self.job_script_prologue))


@dataclass(frozen=True)
class ComputeSettings:
    """Where and how the per-document work runs (see the module docstring).

    ``workers``: LocalCluster worker processes (default: one per core); ``partition_size``:
    documents per task (default: chosen so that every worker gets several tasks, at most
    ``max_partition_size``); ``retries``: re-runs of a partition whose function raised;
    ``local_min_documents``: below this many documents to process, ``local`` runs in process.
    """

    scheduler: str = "local"
    workers: int | None = None
    partition_size: int | None = None
    max_partition_size: int = 32
    retries: int = 2
    local_min_documents: int = LOCAL_MIN_DOCUMENTS
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def __post_init__(self) -> None:
        problem = scheduler_problem(self.scheduler)
        if problem:
            raise ConfigError(f"setting 'compute.scheduler': {problem} (got {self.scheduler!r})")
        for name, low in (("workers", 1), ("partition_size", 1), ("max_partition_size", 1),
                          ("retries", 0), ("local_min_documents", 0)):
            value = getattr(self, name)
            if value is None and name in ("workers", "partition_size"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"setting 'compute.{name}': must be a whole number >= {low} (got {value!r})")
        if isinstance(self.slurm, Mapping):
            object.__setattr__(self, "slurm", _build(SlurmSettings, self.slurm, "compute.slurm"))

    def mode(self, n_items: int | None = None) -> str:
        """``inprocess``, ``local``, ``address`` or ``slurm``: what :func:`client_for` starts
        for ``n_items`` documents to process (``local`` falls back to in process below
        ``local_min_documents``)."""
        if self.scheduler == "local" and n_items is not None and n_items < self.local_min_documents:
            return "inprocess"
        if self.scheduler in SCHEDULERS:
            return self.scheduler
        return "address"

    def local_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


def scheduler_problem(value: Any) -> str | None:
    """What is wrong with a ``compute.scheduler`` value (None when it is valid)."""
    if not isinstance(value, str) or not value.strip():
        return "must be local, inprocess, slurm or a scheduler address such as tcp://host:8786"
    if value in SCHEDULERS or _ADDRESS.match(value):
        return None
    return "must be local, inprocess, slurm or a scheduler address such as tcp://host:8786"


def _build(cls: type, section: Mapping[str, Any], name: str) -> Any:
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"settings section '{name}': unknown key(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(allowed))})")
    try:
        return cls(**dict(section))
    except TypeError as exc:
        raise ConfigError(f"settings section '{name}': {exc}") from None


def compute_settings(section: Mapping[str, Any] | str | None) -> ComputeSettings:
    """The :class:`ComputeSettings` of a ``compute`` settings section: a mapping, or a plain
    scheduler string (``compute: tcp://host:8786``). Raises :class:`ConfigError`."""
    if section is None:
        return ComputeSettings()
    if isinstance(section, str):
        section = {"scheduler": section}
    return _build(ComputeSettings, section, "compute")


# -- clients ---------------------------------------------------------------------------
@contextmanager
def client_for(settings: ComputeSettings, n_items: int | None = None, *, local: bool = True) -> Iterator[Any]:
    """A ``distributed.Client`` for ``settings`` (closed, and its cluster stopped, on exit),
    or ``None`` when the work should run in this process (``inprocess``, or ``local`` with
    fewer than ``local_min_documents`` items).

    ``local=False``: a stage whose work per partition is seconds of vectorised or batched
    computing (the indicators' bootstrap, topic lemmatising and embedding) runs on the cluster
    of a scheduler address or SLURM only, never on a LocalCluster started for it: on 2 cores the
    bootstrap on one took 2.95× the in-process time at 4,400 documents and 1.49× at 44,000
    (bench/bench_indicators.py --scheduler local, tables identical)."""
    mode = settings.mode(n_items)
    if mode == "inprocess" or (mode == "local" and not local):
        yield None
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a dependency of the package
        raise BarometreError("compute: dask.distributed is not installed (pip install 'dask[distributed]')") from None
    if not log.isEnabledFor(logging.DEBUG):
        # distributed sets its own loggers to INFO when imported: its start and stop
        # chatter is not the run's business unless debugging (-vv).
        logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if mode == "local":
        from distributed import LocalCluster

        # One single-threaded process per core: spaCy and the PDF engines hold the GIL, and
        # processes let the extract worker fork its killable children (os.fork, not
        # multiprocessing, which refuses children of daemonic processes).
        cluster = LocalCluster(n_workers=settings.local_workers(), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.WARNING)
        client = Client(cluster)
    elif mode == "slurm":
        cluster = _slurm_cluster(settings.slurm)
        client = Client(cluster)
    else:
        try:
            client = Client(settings.scheduler, timeout=30)
        except OSError as exc:
            raise BarometreError(f"compute: cannot reach the Dask scheduler at {settings.scheduler}: {exc}") from None
    log.info("compute: %s, scheduler %s", mode, getattr(client.scheduler, "address", settings.scheduler))
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _slurm_cluster(s: SlurmSettings) -> Any:
    """A SLURMCluster from the documented settings, adapting between min and max jobs."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise BarometreError(
            "compute: scheduler 'slurm' needs dask-jobqueue, which is not installed "
            "(pip install 'barometre[slurm]' or pip install 'dask-jobqueue>=0.9,<1')") from None
    kwargs: dict[str, Any] = {
        "cores": s.cores, "memory": s.memory, "walltime": s.walltime,
        "processes": s.processes or s.cores,
        "job_extra_directives": list(s.job_extra_directives),
        "job_script_prologue": list(s.job_script_prologue),
    }
    for name in ("queue", "account", "local_directory", "log_directory", "python", "interface"):
        if getattr(s, name):
            kwargs[name] = getattr(s, name)
    cluster = SLURMCluster(**kwargs)
    cluster.adapt(minimum_jobs=s.minimum_jobs, maximum_jobs=s.maximum_jobs)
    return cluster


def slurm_job_script(s: SlurmSettings) -> str:
    """The batch script SLURM would run for one job of these settings (to check them
    without submitting anything: ``sbatch`` directives, worker command line)."""
    cluster = _slurm_cluster(SlurmSettings(**{**{f.name: getattr(s, f.name) for f in fields(s)},
                                              "minimum_jobs": 0}))
    try:
        return cluster.job_script()
    finally:
        cluster.close()


# -- partitions ------------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionResult:
    """One partition's result: its index in the submitted order, the function's return
    value, and the worker that computed it (None in process)."""

    index: int
    value: Any
    worker: str | None = None


def partition(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` cut into consecutive lists of at most ``size`` (order kept)."""
    return [list(items[i:i + size]) for i in range(0, len(items), max(1, size))]


def partition_size(settings: ComputeSettings, n_items: int, n_workers: int) -> int:
    """Documents per task: the setting, else about four tasks per worker (the tail of the
    stage stays short and a lost task costs little), at most ``max_partition_size``."""
    if settings.partition_size:
        return settings.partition_size
    return max(1, min(settings.max_partition_size, math.ceil(n_items / max(1, 4 * n_workers))))


def n_workers(client: Any) -> int:
    """Worker threads the client's cluster has now (one per process as barometre runs them;
    at least 1: an adaptive cluster may have none yet)."""
    if client is None:
        return 1
    try:
        # nthreads() lists every worker (scheduler_info() reports only the first few).
        return max(1, sum(client.nthreads().values()))
    except Exception:  # pragma: no cover - a scheduler that does not answer: keep going
        return 1


def _run_partition(fn: Callable[..., Any], part: list[Any], args: tuple, kwargs: dict) -> tuple[Any, str | None]:
    """Runs on a worker: the partition's result and the worker's address (kept so that a
    run can say which worker computed what, e.g. after a retry)."""
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        address = None
    return fn(part, *args, **kwargs), address


def map_partitions(fn: Callable[..., Any], parts: Sequence[list[Any]], *args: Any, client: Any = None,
                   retries: int = 2, name: str = "partition", **kwargs: Any) -> Iterator[PartitionResult]:
    """``fn(part, *args, **kwargs)`` for every partition, yielded as each completes.

    Input: the partitions (lists of items, e.g. documents), the client (None: run them here,
    in order). Output: one :class:`PartitionResult` per partition, exactly once. A
    partition whose function raised is retried ``retries`` times; one whose worker died is
    rescheduled by the scheduler. A partition that still fails raises
    :class:`BarometreError` after the others were cancelled: the results already yielded
    stand (stages are incremental: a re-run does the rest).
    """
    if client is None:
        for i, part in enumerate(parts):
            yield PartitionResult(i, fn(part, *args, **kwargs))
        return
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:10]
    futures = {}
    for i, part in enumerate(parts):
        # A fresh key per run: a re-run must compute, not reuse a result the scheduler holds.
        fut = client.submit(_run_partition, fn, part, args, kwargs, key=f"{name}-{run_id}-{i}",
                            retries=retries, pure=False)
        futures[fut.key] = (i, fut)
    delivered: set[int] = set()
    try:
        for fut in as_completed([f for _i, f in futures.values()]):
            i = futures[fut.key][0]
            if i in delivered:  # recomputed after its holder died: committed already
                continue
            try:
                value, worker = fut.result()
            except BarometreError:  # already one line naming what went wrong (disk full...)
                raise
            except Exception as exc:
                raise BarometreError(f"compute: partition {i} of {name} failed after retries: "
                                     f"{type(exc).__name__}: {exc}") from exc
            delivered.add(i)
            log.debug("%s: partition %d done on %s", name, i, worker)
            fut.release()  # nothing left on the cluster for it to lose
            yield PartitionResult(i, value, worker)
    finally:
        pending = [f for i, f in futures.values() if i not in delivered]
        if pending:
            client.cancel(pending)


def map_in_order(fn: Callable[..., Any], items: Sequence[Any], *args: Any, client: Any,
                 name: str) -> list[Any]:
    """``fn(part, *args)`` over consecutive partitions of ``items``, about four per worker, on
    ``client``'s cluster (:func:`map_partitions`); the results in the order of the partitions."""
    size = max(1, math.ceil(len(items) / (4 * n_workers(client))))
    results = {r.index: r.value for r in map_partitions(fn, partition(items, size), *args, client=client, name=name)}
    return [results[i] for i in sorted(results)]

