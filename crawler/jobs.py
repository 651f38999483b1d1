"""Crawls as jobs, one per metropolis, on a Dask cluster (issue 14, item 3).

Stage: crawl. Politeness is per site, so a metropolis is the unit of distribution: with
``--scheduler tcp://…`` or ``slurm`` (:func:`crawler.run.run_crawl`), each job is the real
Scrapy process (``python -m crawler.run``) for one metropolis — or for the few metropolises
whose sites share a host (:func:`crawl_groups`: one process keeps the per-host limits) — run
as a Dask task on a worker. A job:

- has its own directory on the shared corpus, ``corpus/.crawl/by-metropole/<job>/``: Scrapy JOBDIRs,
  ``crawl.json`` (when the crawl began), ``crawl.log``, ``manifest.sqlite``;
- writes document files straight into the shared corpus (content-addressed, atomic rename:
  identical bytes are the same file) and its ``documents``/``sources``/``fetches`` rows to its
  own manifest, seeded by the client with the metropolis's rows of the corpus store (what was
  fetched before: conditional requests, resume) — the workers never open ``corpus.sqlite``;
- is merged into the store by the client when it ends (:func:`merge_manifest`: one writer;
  merging the same manifest twice changes nothing);
- holds a lock per metropolis (:class:`MetropoleLocks`, ``corpus/.crawl/locks/<slug>.lock``,
  taken by the crawl process itself, the single-process crawl included): a metropolis is never
  crawled by two processes at once, whichever client or machine started them;
- is resumable: ``--resume`` goes on with each job's queue and manifest; a job retried after
  its worker died (Dask reschedules it) resumes its own interrupted run instead of starting
  afresh.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from nlp.errors import BarometreError
from nlp.manifests import merge_manifest, seed_manifest
from nlp.store import CorpusStore

log = logging.getLogger(__name__)

MANIFEST = "manifest.sqlite"
# How long a job waits for a lock whose holder is alive on this host (the previous attempt of
# a retried job shutting down cleanly, saving its queue) before it gives up.
LOCK_WAIT_SECONDS = 120.0


class LockedError(BarometreError):
    """A metropolis is being crawled by another process (its lock says which)."""


# -- which metropolises crawl together ---------------------------------------------------
def entry_hosts(entry: dict[str, Any]) -> set[str]:
    """The hosts a registry entry's crawl sends most requests to: its domains, the hosts of its
    start URLs, sitemaps and forms (deliberation datasets are a few requests each: left out,
    so that a national portal does not tie every metropolis into one job)."""
    from crawler.urls import host_of

    hosts = {str(d).lower().rstrip(".") for d in entry.get("domains") or []}
    urls = [*(entry.get("start_urls") or []), *(entry.get("sitemaps") or []),
            *(f.get("url") for f in entry.get("forms") or [] if isinstance(f, dict))]
    hosts |= {h for h in map(host_of, [u for u in urls if u]) if h}
    return {h[4:] if h.startswith("www.") else h for h in hosts}


def crawl_groups(entries: Iterable[dict[str, Any]]) -> list[list[str]]:
    """Slugs of the registry ``entries`` grouped so that metropolises whose hosts are the same
    or nested (``a.fr`` and ``x.a.fr``) crawl in one job (one process keeps per-host
    politeness). Output: groups sorted, each group's slugs sorted; usually one slug each."""
    entries = list(entries)
    parent = {e["slug"]: e["slug"] for e in entries}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    owners: dict[str, list[str]] = defaultdict(list)
    hosts = {e["slug"]: entry_hosts(e) for e in entries}
    for slug, hs in hosts.items():
        for h in hs:
            owners[h].append(slug)
    for slug, hs in hosts.items():
        for h in hs:
            for candidate in _host_and_parents(h):
                for other in owners.get(candidate, ()):
                    parent[find(other)] = find(slug)
    groups: dict[str, list[str]] = defaultdict(list)
    for slug in parent:
        groups[find(slug)].append(slug)
    return sorted(sorted(g) for g in groups.values())


def _host_and_parents(host: str) -> list[str]:
    """``host`` and its parent domains, bare TLD excepted (an IP address: itself only)."""
    from crawler.policy import is_ip

    if is_ip(host):
        return [host]
    labels = host.split(".")
    return [host] + [".".join(labels[i:]) for i in range(1, len(labels) - 1)]


def job_name(slugs: list[str]) -> str:
    """The directory name of the job crawling ``slugs`` (slugs are [a-z0-9-])."""
    name = "+".join(sorted(slugs))
    if len(name) <= 80:
        return name
    import hashlib

    return f"{sorted(slugs)[0]}+{len(slugs) - 1}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def job_dir(corpus_dir: Path, slugs: list[str]) -> Path:
    """The state directory of the job crawling ``slugs`` (beside the single-process crawl's
    ``corpus/.crawl/jobs/<spider>``)."""
    return Path(corpus_dir) / ".crawl" / "by-metropole" / job_name(slugs)


# -- locks ----------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MetropoleLocks:
    """Exclusive locks on metropolises, one file each under ``corpus/.crawl/locks/``.

    A lock is a file created with ``O_CREAT | O_EXCL`` (atomic, NFS included) holding the
    holder's host, pid and start time. A lock whose holder is dead on this host is stale and
    taken over; a live holder on this host is waited for up to ``wait`` seconds (a retried job
    whose previous attempt is still shutting down); a holder on another host is never second-
    guessed: the message names it (delete the file once sure that crawl is gone).
    """

    def __init__(self, corpus_dir: Path, slugs: list[str], *, wait: float = LOCK_WAIT_SECONDS) -> None:
        self.dir = Path(corpus_dir) / ".crawl" / "locks"
        self.slugs = sorted(set(slugs))
        self.wait = wait
        self.held: list[Path] = []

    def __enter__(self) -> "MetropoleLocks":
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            for slug in self.slugs:  # sorted: two jobs never wait for each other in a cycle
                self.held.append(self._take(slug))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _take(self, slug: str) -> Path:
        path = self.dir / f"{slug}.lock"
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder(path)
                if holder.get("host") == me["host"] and not _alive(int(holder.get("pid") or 0)):
                    log.warning("crawl: taking over the stale lock of %s (process %s is gone)", slug, holder.get("pid"))
                    path.unlink(missing_ok=True)
                    continue
                if holder.get("host") == me["host"] and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                raise LockedError(
                    f"metropolis {slug} is being crawled by process {holder.get('pid')} on "
                    f"{holder.get('host')} since {holder.get('since')} (lock {path}); if that crawl "
                    f"is gone, delete the lock file") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            return path

    @staticmethod
    def _holder(path: Path) -> dict[str, Any]:
        try:
            holder = json.loads(path.read_text(encoding="utf-8"))
            return holder if isinstance(holder, dict) else {}
        except (OSError, ValueError):
            # Being written this instant, or emptied by a crash: treat as held by nobody known.
            return {}

    def release(self) -> None:
        for path in self.held:
            path.unlink(missing_ok=True)
        self.held = []


# -- a job, on a worker -------------------------------------------------------------------------
def run_job(part: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dask task: run each crawl job of ``part`` (its ``args`` are those of ``crawler.run``)
    as a real Scrapy process, logging to the job's ``crawl.log``. Output: one small record per
    job (slugs, return code, seconds, manifest path, last log lines on failure).

    A job that finds its own ``attempt`` file from this very run was interrupted (its worker
    died and Dask rescheduled it): it resumes instead of starting afresh."""
    from crawler.run import crawl_command

    records = []
    for job in part:
        args = dict(job["args"])
        state = Path(args["state_dir"])
        state.mkdir(parents=True, exist_ok=True)
        attempt = state / "attempt.json"
        try:
            previous = json.loads(attempt.read_text(encoding="utf-8")) if attempt.exists() else {}
        except (OSError, ValueError):  # cut by a kill while written: not this run's
            previous = {}
        if previous.get("run") == job["run"]:
            args["resume"] = True
        attempt.write_text(json.dumps({"run": job["run"], "host": socket.gethostname(),
                                       "pid": os.getpid()}), encoding="utf-8")
        args_path = state / "args.json"
        args_path.write_text(json.dumps(args, ensure_ascii=False), encoding="utf-8")
        command, env = crawl_command(args_path)
        started = time.monotonic()
        with open(state / "crawl.log", "ab") as logf:
            # The crawl ends itself if this worker dies (crawler.run, BAROMETRE_PARENT_PID): a
            # killed worker leaves no orphan crawl behind to race the job's retry.
            env["BAROMETRE_PARENT_PID"] = str(os.getpid())
            returncode = subprocess.run(command, env=env, stdout=logf, stderr=subprocess.STDOUT).returncode
        tail = ""
        if returncode != 0:
            with open(state / "crawl.log", "rb") as f:
                f.seek(max(0, (state / "crawl.log").stat().st_size - 2000))
                tail = f.read().decode("utf-8", "replace")
        records.append({"slugs": args["metropoles"], "returncode": returncode, "resumed": bool(args["resume"]),
                        "seconds": round(time.monotonic() - started, 2), "manifest": args["manifest"],
                        "host": socket.gethostname(), "log_tail": tail})
    return records


# -- the jobs, from the client -----------------------------------------------------------------
def plan_jobs(args: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """One job per group of :func:`crawl_groups` among the selected metropolises: its
    ``crawler.run`` arguments (own state directory and manifest, same registry, settings,
    spiders) and the run it belongs to."""
    selected = set(args["metropoles"])
    entries = [e for e in args["registry"]["metropoles"] if e["slug"] in selected]
    jobs = []
    for slugs in crawl_groups(entries):
        state = job_dir(Path(args["corpus_dir"]), slugs)
        jobs.append({"run": run_id, "args": {**args, "metropoles": slugs, "state_dir": str(state),
                                             "manifest": str(state / MANIFEST), "lock_wait": LOCK_WAIT_SECONDS}})
    return jobs


def prepare_job(store: CorpusStore, job: dict[str, Any]) -> None:
    """Before a job is submitted: a fresh crawl forgets the job's previous state and seeds its
    manifest from the store; a resumed one keeps both (seeding only a manifest never made)."""
    import shutil

    args = job["args"]
    state, manifest = Path(args["state_dir"]), Path(args["manifest"])
    if not args.get("resume") and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    if not manifest.exists():
        counts = seed_manifest(store, manifest, args["metropoles"])
        log.debug("crawl job %s seeded: %s", state.name, counts)


def run_jobs(args: dict[str, Any], compute: Any) -> list[dict[str, Any]]:
    """Run the crawl of ``args`` (``crawler.run`` arguments) as per-metropolis jobs on the
    cluster of ``compute`` (:class:`nlp.compute.ComputeSettings`), merging each job's manifest
    into the store as it ends. Output: the jobs' records, each with the rows its merge changed.
    Raises :class:`crawler.run.CrawlError` naming the failed jobs after every job has ended
    and every manifest was merged (what a failed job collected is kept; ``--resume`` goes on)."""
    import uuid

    from crawler.run import CrawlError
    from nlp.compute import client_for, map_partitions

    corpus = Path(args["corpus_dir"])
    jobs = plan_jobs(args, uuid.uuid4().hex[:12])
    with CorpusStore(corpus) as store:
        for job in jobs:
            prepare_job(store, job)
    records: list[dict[str, Any]] = []
    with client_for(compute) as client, CorpusStore(corpus) as store:
        # One job per task, a fresh task key per run; a job whose worker died is rescheduled.
        for result in map_partitions(run_job, [[j] for j in jobs], client=client,
                                     retries=compute.retries, name="crawl"):
            for record in result.value:
                record["merged"] = merge_manifest(store, Path(record["manifest"]))
                record["worker"] = result.worker
                log.info("crawl job %s: exit %s in %.1f s on %s, merged %s", "+".join(record["slugs"]),
                         record["returncode"], record["seconds"], record["host"], record["merged"])
                records.append(record)
    failed = [r for r in records if r["returncode"] != 0]
    if failed:
        details = "; ".join(f"{'+'.join(r['slugs'])}: exit {r['returncode']} ({r['log_tail'].strip().splitlines()[-1:] or ''})"
                            for r in failed)
        raise CrawlError(f"{len(failed)} of {len(records)} crawl job(s) failed: {details}; resume them with --resume")
    return records
