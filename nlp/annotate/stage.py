"""Stage "annotate" over the corpus: paragraph labels and lexicon hits for every document.

Input: the corpus store (latest extraction of each document, sources for provenance), the
lexicon folder and the theme model. Output, in ``outputs/tables/`` (columns in
:mod:`nlp.schema`), each a Parquet dataset partitioned by metropolis (``hits.parquet/lyon/…``,
:mod:`nlp.tableio`; read with ``read_table`` or plain pandas):

- ``documents.parquet``: one row per (document, metropole): the denominators;
- ``paragraphs.parquet``: one row per paragraph: detector labels, probabilities, polarity;
- ``hits.parquet``: one row per lexicon hit, with its sentence and counting flags;
- ``lexicon_terms.parquet`` (one file: no metropole).

The workers write the tables (issue 14 item 2): the client reads the store once and gives each
document a small job record (extraction status, text path, pages, metadata, its first source
in each metropolis, its cache file; :class:`nlp.annotate.parts.DocJob`); each task takes
``batch_size`` consecutive jobs, loads or annotates them, and writes its rows of each table as
one part per metropolis present into staging folders the client opened
(:func:`nlp.tableio.staged_dataset`); the client commits the three datasets when every
partition is done. Jobs are ordered by the document's first metropolis, then store order
(document id): a partition mostly covers one metropolis, and a part's name is its first job's
index, so the part files (names and bytes) do not depend on the scheduler or the number of
workers. Read back (``read_table``: folders in name order, parts in name order), a
metropolis's rows come in job order: first the documents it shares with a metropolis whose
name sorts before its own, then its own, each group by document id.

Per-document results are cached under ``outputs/cache/annotate/<key>/``, the key hashing the
lexicon files, the model version and this module's version: a re-run over unchanged inputs
loads no model and annotates nothing; a new lexicon or model re-annotates everything.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
from tqdm import tqdm

from nlp.annotate.parts import TABLES, DocJob, LazyDetector, annotate_part, frames_of
from nlp.compute import ComputeSettings, client_for, map_partitions, partition
from nlp.errors import BarometreError
from nlp.io import atomic_write, write_table
from nlp.store import CorpusStore
from nlp.tableio import staged_dataset

log = logging.getLogger(__name__)

# Bump when what annotate computes from the detector's output changes (here and in parts.py).
ANNOTATE_VERSION = "3"  # 3: unreadable paragraphs (OCR debris) leave the analysed base
TEXT_STATUSES = ("ok", "ocr")


@dataclass(frozen=True)
class AnnotateSettings:
    """Settings of the annotate stage. ``model_dir``: a trained theme model folder (default:
    the one shipped with the package); ``use_model``: False = lexicon labels only;
    ``batch_size``: documents per annotate task (one part file per table and metropolis
    present in it); ``n_process``: kept for old config files; the compute layer (nlp.compute) decides where
    documents are annotated now."""

    model: str = "fr_core_news_md"
    model_dir: Path | None = None
    use_model: bool = True
    # Documents per annotate task, on every scheduler: the partitions (hence the tables' part
    # files) depend on it alone, never on the worker count (compute.partition_size governs
    # extract only).
    batch_size: int = 64
    force: bool = False
    n_process: int = 1


def lexicon_fingerprint(lexicon_dir: Path) -> str:
    """Hash of every lexicon file's name and bytes (one definition, used by every stage)."""
    h = hashlib.sha256()
    for path in sorted(Path(lexicon_dir).glob("*.y*ml")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def model_fingerprint(settings: AnnotateSettings) -> str:
    """Version of the model the settings select ("lexicons" without one), read from its
    ``model.json`` without loading it."""
    if not settings.use_model:
        return "lexicons"
    from nlp.annotate.model import PACKAGED_MODEL_DIR

    path = Path(settings.model_dir or PACKAGED_MODEL_DIR) / "model.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        raise BarometreError(f"annotate: no readable theme model at {path.parent} "
                             "(build one with `barometre train`, or set annotate.use_model: false)") from None


def cache_key(lexicon_dir: Path, settings: AnnotateSettings) -> str:
    h = hashlib.sha256(f"{ANNOTATE_VERSION}|{settings.model}|{model_fingerprint(settings)}|"
                       f"{lexicon_fingerprint(lexicon_dir)}".encode())
    return h.hexdigest()[:16]


def build_detector(lexicon_dir: Path, settings: AnnotateSettings) -> Any:
    """The lexicon annotator and (unless ``use_model`` is off) the trained model."""
    from nlp.annotate.annotator import ThemeAnnotator
    from nlp.annotate.detector import ThemeDetector
    from nlp.annotate.lexicons import load_lexicons
    from nlp.annotate.model import ThemeModel

    log.info("loading lexicons from %s and spaCy model %s", lexicon_dir, settings.model)
    annotator = ThemeAnnotator(load_lexicons(Path(lexicon_dir)), model=settings.model)
    model = ThemeModel.load(settings.model_dir) if settings.use_model else None
    return ThemeDetector(annotator, model)


def lexicon_terms(lexicon_dir: Path) -> pd.DataFrame:
    """The validated lexicons as a table (theme, subtheme, term_id, match, term): what later
    stages (topics) read instead of the YAML files."""
    from nlp.annotate.lexicons import load_lexicons

    rows = [(lex.id, lex.kind, rule.subtheme, rule.id, rule.match, term)
            for lex in load_lexicons(Path(lexicon_dir)) for rule in lex.rules for term in rule.terms]
    return pd.DataFrame(rows, columns=["theme", "kind", "subtheme", "term_id", "match", "term"])


# -- the stage -------------------------------------------------------------------------
def run_annotate(store: CorpusStore, outputs_dir: Path, lexicon_dir: Path,
                 settings: AnnotateSettings | None = None, metropoles: list[str] | None = None,
                 progress: bool = True, compute: ComputeSettings | None = None) -> dict[str, Any]:
    """Annotate the corpus and write the three tables. ``compute``: where the per-document
    work runs (default: in this process). Returns counts: ``annotated`` (new work),
    ``cached`` (reused), ``skipped-<extraction status>``, ``not-extracted``, hits.

    The tasks (:func:`nlp.annotate.parts.annotate_part`, ``batch_size`` documents each on
    every scheduler) write their own parts of the three datasets into staging folders that
    this function opens and commits when every partition is done: an exception leaves the old
    tables in place. A table with no row is written empty, with its columns and dtypes."""
    settings = settings or AnnotateSettings()
    compute = compute or ComputeSettings(scheduler="inprocess")
    cache_dir = Path(outputs_dir) / "cache" / "annotate" / cache_key(lexicon_dir, settings)
    counts: Counter[str] = Counter()
    jobs = doc_jobs(store, cache_dir, settings, counts, metropoles)
    tables = Path(outputs_dir) / "tables"
    empty = frames_of({})
    with contextlib.ExitStack() as stack:
        staging = {name: str(stack.enter_context(staged_dataset(tables / f"{name}.parquet", empty=empty[name])))
                   for name in TABLES}
        for part_counts in _run_parts(store, jobs, staging, lexicon_dir, settings, compute, progress):
            counts.update(part_counts)
    write_table(lexicon_terms(lexicon_dir), tables / "lexicon_terms.parquet")
    counts.pop("documents", None)
    for name in ("hits", "hits-counting", "paragraphs"):
        counts[name] += 0  # present even when no partition ran
    counts["model"] = model_fingerprint(settings)  # type: ignore[assignment]
    _persist_validation(settings, Path(outputs_dir))
    return dict(counts)


def _persist_validation(settings: AnnotateSettings, outputs_dir: Path) -> None:
    """Copy the model's own validation counts (grouped cross-validation, stored in its
    ``model.json``) to ``outputs/validation/model_cv.json``: the indicators read it to correct
    prevalences, without reaching into this stage's model files."""
    target = outputs_dir / "validation" / "model_cv.json"
    if not settings.use_model:
        target.unlink(missing_ok=True)
        return
    from nlp.annotate.model import PACKAGED_MODEL_DIR

    doc = json.loads((Path(settings.model_dir or PACKAGED_MODEL_DIR) / "model.json").read_text(encoding="utf-8"))
    validation = doc.get("meta", {}).get("validation") or {}
    if not validation.get("labels"):
        target.unlink(missing_ok=True)
        return
    atomic_write(target, json.dumps({**validation, "model": doc.get("version"),
                                     "source": validation.get("method", "model validation")},
                                    ensure_ascii=False, indent=1))


def doc_jobs(store: CorpusStore, cache_dir: Path, settings: AnnotateSettings, counts: Counter[str],
             metropoles: list[str] | None) -> list[DocJob]:
    """One :class:`DocJob` per document with an extraction, in job order: by the document's
    first metropolis (name order), then store order (document id); documents without a
    source (no row to write, annotated for the cache all the same) last. So a partition
    mostly covers one metropolis, and a national corpus gives about (documents / batch_size
    + metropolises) part files per table, not tasks × metropolises. Counts ``not-extracted``
    and ``skipped-<status>`` (documents whose extraction holds no text: rows, no annotation)."""
    extractions = {r["document_id"]: r for r in store.latest_extractions(metropoles)}
    # One query for every source (ordered by id): the first source per metropolis cites it.
    sources: dict[str, dict[str, dict[str, Any]]] = {}
    for s in store.sources(metropoles=metropoles):
        sources.setdefault(s["document_id"], {}).setdefault(s["metropole"], s)
    keyed = []
    for position, doc in enumerate(store.documents(metropoles)):
        row = extractions.get(doc.id)
        if row is None:
            counts["not-extracted"] += 1
            continue
        cache = None
        if row["status"] in TEXT_STATUSES:
            cache = cache_dir / doc.id[:2] / f"{doc.id}.{row['key']}.json"
        else:
            counts[f"skipped-{row['status']}"] += 1
        meta = row["metadata"] or {}
        cited = tuple((m, {k: s.get(k) for k in ("url", "page_title", "fetched_at")})
                      for m, s in sorted(sources.get(doc.id, {}).items()))
        job = DocJob(index=0, document_id=doc.id, status=row["status"], text_path=row["text_path"],
                     pages=int(row.get("pages") or 0), doc_type=meta.get("doc_type") or "autre",
                     date=meta.get("date"), title=meta.get("title"), sources=cited,
                     cache=None if cache is None else str(cache),
                     fresh=cache is not None and (settings.force or not cache.exists()))
        keyed.append(((0, cited[0][0]) if cited else (1, ""), position, job))
    keyed.sort(key=lambda k: k[:2])
    return [dataclasses.replace(job, index=i) for i, (_k, _p, job) in enumerate(keyed)]


def _run_parts(store: CorpusStore, jobs: list[DocJob], staging: dict[str, str], lexicon_dir: Path,
               settings: AnnotateSettings, compute: ComputeSettings, progress: bool) -> Iterator[dict[str, int]]:
    """Run :func:`annotate_part` over ``batch_size`` consecutive jobs at a time on the compute
    layer; yields each partition's counts once, as it completes. A cluster is started only
    for documents to annotate (``fresh``; none: in process, no model loaded unless needed)."""
    parts = partition(jobs, max(1, settings.batch_size))  # never the worker count: see parts.py
    n_fresh = sum(job.fresh for job in jobs)
    bar = tqdm(total=len(jobs), desc="annotate", unit="doc", disable=not progress)
    try:
        with client_for(compute, n_fresh) if n_fresh else contextlib.nullcontext() as client:
            if client is None:
                detector: Any = LazyDetector(build_detector, lexicon_dir, settings)
            else:
                # One task builds the detector (a spaCy model load); the workers fetch its
                # result (a pickled annotator rebuilds without the model). A task, not
                # scattered data: if its holder dies, Dask recomputes it.
                detector = client.submit(build_detector, Path(lexicon_dir), settings, pure=False,
                                         key=f"annotate-detector-{uuid.uuid4().hex[:10]}")
            for result in map_partitions(annotate_part, parts, staging, str(store.root), detector,
                                         client=client, retries=compute.retries, name="annotate"):
                bar.update(result.value.get("documents", 0))
                yield result.value
    finally:
        bar.close()
