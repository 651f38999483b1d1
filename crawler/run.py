"""Entry point of a crawl: ``run_crawl`` (called by ``barometre crawl``) and the subprocess.

Stage: crawl. Input: a registry (YAML path or ``Registry.to_dict()``), the corpus directory,
the outputs directory, the slugs to crawl, resume flag, overrides. Output: documents and
``fetches`` rows in the corpus store, ``outputs/tables/crawl_summary.csv`` and a
:class:`CrawlSummary` (per metropolis: pages seen, documents stored, by media type, by
status, bytes).

A Scrapy crawl cannot be started twice in one process (Twisted's reactor), so
:func:`run_crawl` validates the registry here (a :class:`nlp.errors.RegistryError` reaches the
user), then runs ``python -m crawler.run ARGS.json`` in a subprocess that runs the site spider
then the deliberations spider, one after the other (so the per-domain politeness limits hold
across both), with their logs on stderr. With a scheduler address or SLURM
(:class:`nlp.compute.ComputeSettings`), the crawl runs instead as one job per metropolis on the
cluster (:mod:`crawler.jobs`), each the same subprocess with its own state directory and manifest.

``overrides``: UPPER_CASE keys are Scrapy settings (e.g. ``DOWNLOAD_DELAY``,
``AUTOTHROTTLE_ENABLED``, ``CONCURRENT_REQUESTS_PER_DOMAIN``); lower-case keys are crawl
options: ``contact`` (goes in the user agent), ``user_agent`` (replaces it), ``max_pages``,
``max_depth``, ``max_file_bytes``, ``max_total_bytes``, ``keywords`` (override every
selected entry's limits), ``spiders`` (default ``["site", "deliberations"]``),
``page_threshold``, ``keep_undecided`` (documents of a shared domain whose publisher is
undecided count for the metropolis), ``allow_addresses`` (addresses or networks the fetch policy lets requests
go to although they are not public, e.g. ``["127.0.0.1"]`` for a local server).
"""
from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlp.errors import BarometreError
from nlp.schema import FETCH_STATUSES

log = logging.getLogger(__name__)

SPIDERS = ("site", "deliberations")
LIMIT_OPTIONS = ("max_pages", "max_depth", "max_file_bytes", "max_total_bytes", "keywords")
# Media type columns of the summary (anything else counts as "other").
MEDIA_COLUMNS = {
    "application/pdf": "pdf",
    "text/html": "html",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/msword": "doc",
}


class CrawlError(BarometreError):
    """The crawl process failed (its log on stderr says why)."""


@dataclass
class CrawlSummary:
    """Per-metropolis crawl figures (rows of ``crawl_summary.csv``) and where they were written."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    csv_path: Path | None = None
    returncode: int = 0
    # Per-metropolis jobs (crawler.jobs): slugs, exit code, seconds, worker, rows merged.
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return summary_columns()

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metropole": "TOTAL"}
        for col in self.columns[1:]:
            out[col] = sum(int(r.get(col) or 0) for r in self.rows)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for run_info.json)."""
        out = {"rows": self.rows, "totals": self.totals(),
               "csv_path": str(self.csv_path) if self.csv_path else None,
               "returncode": self.returncode}
        if self.jobs:
            out["jobs"] = [{k: v for k, v in j.items() if k != "log_tail"} for j in self.jobs]
        return out

    def to_text(self) -> str:
        """A plain-text table for the terminal (only non-empty status columns)."""
        cols = ["metropole", "pages_seen", "documents", "bytes"] + [
            c for c in self.columns[4:] if any(r.get(c) for r in self.rows)
        ]
        rows = self.rows + [self.totals()]
        widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
        lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
        lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols) for r in rows]
        return "\n".join(lines)


def summary_columns() -> list[str]:
    return (
        ["metropole", "pages_seen", "documents", "bytes", "undecided"]
        + [f"type_{v}" for v in dict.fromkeys(MEDIA_COLUMNS.values())] + ["type_other"]
        + [f"status_{s}" for s in FETCH_STATUSES]
    )


def summarise(corpus_dir: Path, metropoles: list[str]) -> CrawlSummary:
    """Summary read back from the store (complete after a resumed crawl too).

    ``pages_seen``: HTML pages tried (``fetches`` of kind page); ``documents``/``bytes``:
    distinct stored documents with a source for the metropolis (pages kept included);
    ``undecided``: documents of a shared domain whose publisher is undecided (not counted in
    ``documents``);
    ``type_*``: those documents by media type; ``status_*``: ``fetches`` rows by status.
    """
    from nlp.store import CorpusStore

    summary = CrawlSummary()
    with CorpusStore(corpus_dir) as store:
        for m in metropoles:
            fetches = store.fetches([m])
            docs = store.documents([m])
            row: dict[str, Any] = dict.fromkeys(summary_columns(), 0)
            row["metropole"] = m
            row["pages_seen"] = sum(1 for f in fetches if f["kind"] == "page")
            row["documents"] = len(docs)
            row["bytes"] = sum(d.size for d in docs)
            row["undecided"] = len({s["document_id"] for s in store.sources(metropoles=[m], include_undecided=True)
                                    if s.get("attribution") == "undecided"} - {d.id for d in docs})
            for d in docs:
                col = MEDIA_COLUMNS.get(d.media_type.split(";")[0])
                row[f"type_{col}" if col else "type_other"] += 1
            for status, n in Counter(f["status"] for f in fetches).items():
                key = f"status_{status}"
                row[key] = row.get(key, 0) + n
            summary.rows.append(row)
    return summary


def write_summary_csv(summary: CrawlSummary, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(dict.fromkeys(summary.columns + [k for r in summary.rows for k in r]))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=cols)
        writer.writeheader()
        writer.writerows(summary.rows)
    summary.csv_path = path
    return path


def reset_jobdir(jobdir: Path) -> None:
    """Forget a previous crawl's queue (a crawl without ``--resume`` starts afresh)."""
    if jobdir.exists():
        shutil.rmtree(jobdir)


def jobdir_for(state_dir: Path, spider: str) -> Path:
    """Scrapy JOBDIR of a spider in a crawl's state directory (``corpus/.crawl`` for the
    single-process crawl, the job's directory for a per-metropolis job; kept for ``--resume``)."""
    return Path(state_dir) / "jobs" / spider


def _apply_limit_overrides(registry: dict[str, Any], slugs: list[str], options: dict[str, Any]) -> None:
    for entry in registry["metropoles"]:
        if entry["slug"] in slugs:
            for key in LIMIT_OPTIONS:
                if options.get(key) is not None:
                    entry.setdefault("limits", {})[key] = options[key]


def build_crawl_args(
    registry: Path | str | dict[str, Any],
    corpus_dir: Path,
    metropoles: list[str] | None = None,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    log_level: str = "INFO",
) -> dict[str, Any]:
    """Validate the registry, selection and overrides; return the JSON-able arguments of the
    crawl subprocess (``python -m crawler.run ARGS.json``). Raises RegistryError /
    BarometreError on bad input."""
    from crawler.registry import load_registry, registry_from_dict

    reg = registry_from_dict(registry, "registry") if isinstance(registry, dict) else load_registry(Path(registry))
    selected = [m.slug for m in reg.select(metropoles)]
    overrides = dict(overrides or {})
    options = {k: v for k, v in overrides.items() if not k.isupper()}
    settings = {k: v for k, v in overrides.items() if k.isupper()}
    unknown = set(options) - set(LIMIT_OPTIONS) - {"contact", "user_agent", "spiders", "page_threshold",
                                                   "allow_addresses", "keep_undecided"}
    if unknown:
        raise BarometreError(f"unknown crawl option(s): {', '.join(sorted(unknown))}")
    spiders = list(options.get("spiders") or SPIDERS)
    bad = [s for s in spiders if s not in SPIDERS]
    if bad:
        raise BarometreError(f"unknown spider(s) {bad}; known: {', '.join(SPIDERS)}")
    reg_dict = reg.to_dict()
    reg_dict.pop("path", None)
    _apply_limit_overrides(reg_dict, selected, options)
    # Validate the overridden limits here too, so a bad value is a user error, not a crash.
    registry_from_dict(json.loads(json.dumps(reg_dict)), "registry (with overrides)")
    if options.get("contact"):
        settings["BAROMETRE_CONTACT"] = options["contact"]
    if options.get("user_agent"):
        settings["USER_AGENT"] = options["user_agent"]
    if options.get("keep_undecided") is not None:
        settings["BAROMETRE_KEEP_UNDECIDED"] = bool(options["keep_undecided"])
    if options.get("allow_addresses"):
        settings["BAROMETRE_ALLOWED_ADDRESSES"] = [str(a) for a in options["allow_addresses"]]
    if options.get("page_threshold") is not None:
        settings["BAROMETRE_PAGE_THRESHOLD"] = float(options["page_threshold"])
    if not progress:
        settings.setdefault("BAROMETRE_PROGRESS_INTERVAL", 0)
    return {
        "registry": reg_dict, "metropoles": selected, "corpus_dir": str(Path(corpus_dir).resolve()),
        "resume": bool(resume), "settings": settings, "spiders": spiders, "log_level": log_level,
    }


def crawl_command(args_path: Path | str) -> tuple[list[str], dict[str, str]]:
    """Command line and environment of the crawl subprocess."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return [sys.executable, "-m", "crawler.run", str(args_path)], env


def write_crawl_args(args: dict[str, Any]) -> Path:
    """Write the subprocess arguments under ``corpus/.crawl/`` and return the file."""
    state_dir = Path(args["corpus_dir"]) / ".crawl"
    state_dir.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="crawl-args-", suffix=".json", dir=state_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(args, f, ensure_ascii=False)
    return Path(path)


def run_crawl(
    registry: Path | str | dict[str, Any],
    corpus_dir: Path,
    outputs_dir: Path,
    metropoles: list[str] | None = None,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    log_level: str = "INFO",
    compute: Any = None,
) -> CrawlSummary:
    """Crawl the selected metropolises in a subprocess, or as per-metropolis jobs on a Dask
    cluster; return and write the summary.

    Input: a registry (YAML path or ``Registry.to_dict()``), the corpus and outputs
    directories, slugs (None: all), ``resume`` (go on with an interrupted crawl), overrides
    (module docstring), progress lines on/off, log level, the compute settings
    (:class:`nlp.compute.ComputeSettings`: a scheduler address or ``slurm`` runs one job per
    metropolis there, :mod:`crawler.jobs`; ``local``/``inprocess`` or None crawl in one
    process on this machine, which crawls many sites at once: the network bounds it, not the
    cores). Output: the summary, also written to ``outputs_dir/tables/crawl_summary.csv``.

    Raises RegistryError (invalid registry, unknown slug) before anything starts, and
    CrawlError when the crawl process fails (the summary CSV is still written from what the
    store holds). A Ctrl-C stops the crawl cleanly (its queue is kept for ``resume=True``)
    and is re-raised after the summary is written.
    """
    args = build_crawl_args(registry, corpus_dir, metropoles, resume, overrides, progress, log_level)
    Path(corpus_dir).mkdir(parents=True, exist_ok=True)
    if compute is not None and compute.mode() in ("address", "slurm"):
        return _run_jobs(args, Path(outputs_dir), compute)
    args_path = write_crawl_args(args)
    command, env = crawl_command(args_path)
    interrupted = False
    # Logs go to stderr (the child's stdout is sent there too): stdout is for results.
    proc = subprocess.Popen(command, env=env,
                            stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else None)
    try:
        returncode = proc.wait()
    except KeyboardInterrupt:
        # The child got the same SIGINT and shuts down cleanly (JOBDIR saved): wait for it.
        interrupted = True
        returncode = proc.wait()
    finally:
        args_path.unlink(missing_ok=True)
    summary = summarise(Path(corpus_dir), args["metropoles"])
    summary.returncode = returncode
    write_summary_csv(summary, Path(outputs_dir) / "tables" / "crawl_summary.csv")
    if interrupted:
        raise KeyboardInterrupt
    if returncode != 0:
        raise CrawlError(f"the crawl process exited with code {returncode} (see the log above); "
                         f"resume it with --resume")
    return summary


def _run_jobs(args: dict[str, Any], outputs_dir: Path, compute: Any) -> CrawlSummary:
    """The crawl as per-metropolis jobs (crawler.jobs); the summary is written either way."""
    from crawler.jobs import run_jobs

    error: CrawlError | None = None
    try:
        records = run_jobs(args, compute)
    except CrawlError as exc:
        error, records = exc, []
    summary = summarise(Path(args["corpus_dir"]), args["metropoles"])
    summary.jobs = records
    summary.returncode = 1 if error else 0
    write_summary_csv(summary, outputs_dir / "tables" / "crawl_summary.csv")
    if error:
        raise error
    return summary


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def _crawl_started(args: dict[str, Any], corpus_dir: Path, state_dir: Path, manifest: str | None) -> str:
    """When this crawl began (``state_dir/crawl.json``): kept across resumes; what the store
    recorded since is done."""
    from crawler.state import crawl_start_time, manifest_options
    from nlp.store import CorpusStore

    marker = state_dir / "crawl.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    if args.get("resume") and marker.exists():
        return json.loads(marker.read_text(encoding="utf-8"))["started_at"]
    with CorpusStore(corpus_dir, **manifest_options(manifest)) as store:
        started = crawl_start_time(store)
    marker.write_text(json.dumps({"started_at": started}), encoding="utf-8")
    return started


def crawl_in_process(args: dict[str, Any]) -> int:
    """Run the spiders in this process (the body of the subprocess). Returns an exit code."""
    from scrapy.crawler import Crawler, CrawlerProcess
    from scrapy.settings import Settings
    from scrapy.utils.reactor import install_reactor
    from twisted.internet import defer

    from crawler.spiders.deliberations import DeliberationsSpider
    from crawler.spiders.site import SiteSpider
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    # Crawlers are built here (one JOBDIR each), so the reactor is installed here too.
    install_reactor(settings["TWISTED_REACTOR"])
    user = dict(args.get("settings") or {})
    if "BAROMETRE_CONTACT" in user and "USER_AGENT" not in user:
        user["USER_AGENT"] = settings.get("BAROMETRE_USER_AGENT_TEMPLATE").format(contact=user["BAROMETRE_CONTACT"])
    settings.setdict(user, priority="cmdline")
    settings.set("LOG_LEVEL", args.get("log_level", "INFO"), priority="cmdline")
    corpus_dir = Path(args["corpus_dir"])
    # A per-metropolis job (crawler.jobs) has its own state directory and manifest.
    state_dir = Path(args.get("state_dir") or corpus_dir / ".crawl")
    manifest = args.get("manifest")
    settings.set("BAROMETRE_CORPUS_DIR", str(corpus_dir), priority="cmdline")
    settings.set("BAROMETRE_MANIFEST", manifest, priority="cmdline")
    settings.set("BAROMETRE_RESUME", bool(args.get("resume")), priority="cmdline")
    started = _crawl_started(args, corpus_dir, state_dir, manifest)
    settings.set("BAROMETRE_CRAWL_STARTED", started, priority="cmdline")
    classes = {"site": SiteSpider, "deliberations": DeliberationsSpider}
    plan = []
    for name in args.get("spiders") or SPIDERS:
        cls = classes[name]
        if name == "deliberations" and not any(
            e.get("deliberation_datasets") for e in args["registry"]["metropoles"] if e["slug"] in args["metropoles"]
        ):
            continue
        jobdir = jobdir_for(state_dir, name)
        if not args.get("resume"):
            reset_jobdir(jobdir)
        s = settings.copy()
        s.set("JOBDIR", str(jobdir), priority="cmdline")
        plan.append((cls, s))

    process = CrawlerProcess(settings, install_root_handler=True)
    failures: list[str] = []

    @defer.inlineCallbacks
    def chain() -> Any:
        from twisted.internet import reactor

        try:
            for cls, s in plan:
                crawler = Crawler(cls, s)
                yield process.crawl(crawler, registry=args["registry"], metropoles=args["metropoles"])
                reason = crawler.stats.get_value("finish_reason") if crawler.stats else None
                if reason not in ("finished", None):
                    failures.append(f"{cls.name}: {reason}")
                    if reason == "shutdown":
                        break
        except Exception:
            log.exception("crawl failed")
            failures.append("exception")
        finally:
            reactor.stop()

    from twisted.internet import reactor

    from crawler.jobs import LockedError, MetropoleLocks

    reactor.callWhenRunning(chain)
    try:
        # No two processes crawl a metropolis at once (another client, a job's retry).
        with MetropoleLocks(corpus_dir, args["metropoles"], wait=float(args.get("lock_wait") or 0)):
            _start_frozen(process)
    except LockedError as exc:
        log.error("%s", exc)
        return 75  # EX_TEMPFAIL: try again once the other crawl has ended
    if failures:
        log.error("crawl ended early: %s", "; ".join(failures))
        return 130 if any("shutdown" in f for f in failures) else 1
    return 0


def _start_frozen(process: Any) -> None:
    """Run ``process`` (a CrawlerProcess) until the crawls end, after moving the objects alive
    now (modules, settings, registry, classes: they live as long as the process) out of the
    garbage collector's sight (``gc.freeze``), so that each full collection during the crawl
    walks only what the crawl allocates. Reference counting still frees them; only a
    reference cycle among them that becomes garbage later would stay."""
    import gc

    gc.collect()
    gc.freeze()
    process.start(stop_after_crawl=False)


def _die_with_parent() -> None:
    """Linux, when started by a crawl job (crawler.jobs.run_job sets BAROMETRE_PARENT_PID):
    SIGTERM — Scrapy's clean shutdown, queue saved — when the Dask worker that started this
    crawl dies, so that no orphan crawl races the job's retry."""
    parent = os.environ.get("BAROMETRE_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not glibc/musl
        return
    if os.getppid() != int(parent):  # the worker died before prctl took effect
        sys.exit(75)


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m crawler.run ARGS.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        args = json.load(f)
    return crawl_in_process(args)


if __name__ == "__main__":
    sys.exit(main())
