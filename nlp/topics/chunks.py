"""Paragraphs → chunks, the unit the topic model is fitted on (stage: topics).

Input: the annotate stage's ``paragraphs`` table (``document_id``, ``metropole``, ``page``,
``paragraph``, ``text``, ``is_digital``, ``themes``) and ``documents`` table (``year``).
Output: a chunk table sorted by id (so the fit never depends on input order), long paragraphs
split into whole sentences that fit an embedder's window, procedure ("Vu le code…", votes,
lists of names) and very short chunks dropped, duplicates marked.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

import pandas as pd

from nlp.topics.embeddings import text_hash
from nlp.topics.settings import TopicModelError, TopicSettings

# Chunks that are procedure, not content: dropped before fitting (issue 6, deliverable 1).
# Formulas that open a chunk ("Vu le code général des collectivités…", attendance, votes)...
_BOILERPLATE_START = re.compile(
    r"^\s*(vu\b|après en avoir délibéré|le conseil,? après"
    r"|(présents?|absents?|excusés?|pouvoirs?|votants?|nombre de (membres|conseillers))\s*:"
    r"|(pour|contre|abstentions?)\s*:\s*\d)", re.IGNORECASE)
# ... and formulas found anywhere, each behind a word it cannot match without: a regex that
# starts with \b is tried at every position, a substring test is not (10 s → 1 s on 50,000).
_BOILERPLATE_ANYWHERE = [(needle, re.compile(p, re.IGNORECASE)) for needle, p in (
    ("unanimit", r"\b(adopt[ée]e?s?|approuv[ée]e?s?) à l['’]unanimité\b"),
    ("conforme", r"\bpour extrait conforme\b"), ("réception", r"\baccusé de réception\b"),
    ("registre", r"\bont signé au registre\b"), ("exécutoire", r"\bcertifié exécutoire\b"),
    ("séance", r"\bsecrétaire de séance\b"),
)]
_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+(?=[«\"(A-ZÀ-ÖØ-Þ0-9])")
_WORD = re.compile(r"\w+", re.UNICODE)

CHUNK_COLUMNS = ["chunk_id", "document_id", "metropole", "page", "paragraph", "chunk", "text",
                 "n_words", "is_digital", "themes", "year", "hash", "duplicate_of"]


def _norm_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def is_boilerplate(text: str) -> bool:
    """True for procedural text (visas, votes, signatures, attendance, lists of names)."""
    if _BOILERPLATE_START.match(text):
        return True
    low = text.lower()
    if any(needle in low and regex.search(text) for needle, regex in _BOILERPLATE_ANYWHERE):
        return True
    # A list of names ("Martial ALVAREZ - …"): over 60% of 8+ words (numbers aside) capitalised.
    words = _WORD.findall(text)
    n_words = len(words) - sum(map(str.isdigit, words))
    if n_words < 8 or sum(map(str.isupper, text)) <= 0.6 * n_words:
        return False  # (a capitalised word has a capital letter: too few capitals, no list)
    return sum(1 for w in words if w[0].isupper()) / n_words > 0.6


def split_sentences(text: str) -> list[str]:
    """Sentence split on final punctuation followed by a capital (good enough for chunking)."""
    return [s.strip() for s in _SENT_SPLIT.split(text) if s.strip()]


def split_long(text: str, max_words: int) -> list[str]:
    """Split a paragraph into chunks of whole sentences of at most ``max_words`` words.

    A single sentence longer than ``max_words`` is cut by words (embedders truncate otherwise,
    silently losing the end of the text — BERTopic#1486).
    """
    if len(text.split()) <= max_words:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    count = 0
    for sent in split_sentences(text):
        words = sent.split()
        if len(words) > max_words:
            if current:
                chunks.append(" ".join(current))
                current, count = [], 0
            for i in range(0, len(words), max_words):
                chunks.append(" ".join(words[i:i + max_words]))
            continue
        if count + len(words) > max_words and current:
            chunks.append(" ".join(current))
            current, count = [], 0
        current.append(sent)
        count += len(words)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _document_years(documents: pd.DataFrame | None) -> dict[str, int]:
    if documents is None or documents.empty or "year" not in documents.columns:
        return {}
    years = documents[["document_id", "year"]].dropna()
    years = years.sort_values(["document_id", "year"]).drop_duplicates("document_id")
    return {str(d): int(y) for d, y in zip(years["document_id"], years["year"])}


def _themes_list(themes: Any) -> list[str]:
    if isinstance(themes, str):
        return [themes] if themes else []
    return [str(t) for t in themes] if themes is not None else []


def _selected(paragraphs: pd.DataFrame, settings: TopicSettings) -> pd.DataFrame:
    missing = {"document_id", "page", "paragraph", "text"} - set(paragraphs.columns)
    if missing:
        raise TopicModelError(f"paragraphs table lacks column(s) {sorted(missing)}")
    df = paragraphs.copy()
    defaults = {"metropole": "", "is_digital": True}
    for col, value in defaults.items():
        if col not in df.columns:
            df[col] = value
    if "themes" not in df.columns:
        df["themes"] = [[] for _ in range(len(df))]
    if not settings.all_paragraphs:
        df = df[df["is_digital"].fillna(False).astype(bool)]
    return df


def build_chunks(paragraphs: pd.DataFrame, documents: pd.DataFrame | None,
                 settings: TopicSettings) -> tuple[pd.DataFrame, dict[str, int]]:
    """Paragraphs → sorted, de-duplicated chunks.

    Returns ``(chunks, counts)``. ``chunks`` has one row per chunk (:data:`CHUNK_COLUMNS`),
    sorted by (document_id, metropole, page, paragraph, chunk); ``hash`` is the SHA-256 of the
    lower-cased text and ``duplicate_of`` the chunk id of the first identical chunk, or
    ``None``: only rows with ``duplicate_of`` null are fitted. ``counts`` says how many
    paragraphs were selected and how many chunks each filter dropped.
    """
    df = _selected(paragraphs, settings)
    counts = {"paragraphs": len(paragraphs), "paragraphs_selected": len(df)}
    years = _document_years(documents)
    rows: list[dict[str, Any]] = []
    dropped_boiler = dropped_short = 0
    for rec in df.itertuples(index=False):
        text = _norm_text(str(rec.text or ""))
        if not text:
            dropped_short += 1
            continue
        themes = _themes_list(rec.themes)
        for k, chunk in enumerate(split_long(text, settings.max_chunk_words)):
            n_words = len(chunk.split())
            if settings.drop_boilerplate and is_boilerplate(chunk):
                dropped_boiler += 1
                continue
            if n_words < settings.min_chunk_words:
                dropped_short += 1
                continue
            rows.append({
                "document_id": str(rec.document_id), "metropole": str(rec.metropole or ""),
                "page": int(rec.page), "paragraph": int(rec.paragraph), "chunk": k,
                "text": chunk, "n_words": n_words, "is_digital": bool(rec.is_digital),
                "themes": themes, "year": years.get(str(rec.document_id)),
            })
    counts["chunks_dropped_boilerplate"] = dropped_boiler
    counts["chunks_dropped_short"] = dropped_short
    if not rows:
        counts["chunks"] = counts["chunks_unique"] = 0
        return pd.DataFrame(columns=CHUNK_COLUMNS), counts
    chunks = _sorted_with_ids(pd.DataFrame(rows))
    counts["chunks"] = len(chunks)
    counts["chunks_unique"] = int(chunks["duplicate_of"].isna().sum())
    return chunks[CHUNK_COLUMNS], counts


def _sorted_with_ids(chunks: pd.DataFrame) -> pd.DataFrame:
    """Sort by position, give ids, mark duplicates (by lower-cased text) of earlier chunks."""
    # Input-order independence: everything downstream follows this order (issue 6, §5).
    chunks = chunks.sort_values(["document_id", "metropole", "page", "paragraph", "chunk"],
                                kind="mergesort").reset_index(drop=True)
    chunks["chunk_id"] = [f"{d}:{m}:{p}:{g}:{c}" for d, m, p, g, c in zip(
        chunks["document_id"], chunks["metropole"], chunks["page"], chunks["paragraph"],
        chunks["chunk"])]
    chunks["hash"] = [text_hash(t.lower()) for t in chunks["text"]]
    first: dict[str, str] = {}
    dup_of: list[str | None] = []
    for cid, h in zip(chunks["chunk_id"], chunks["hash"]):
        dup_of.append(first.get(h))
        first.setdefault(h, cid)
    chunks["duplicate_of"] = dup_of
    return chunks


def fit_rows_of(chunks: pd.DataFrame) -> pd.DataFrame:
    """The chunks the model is fitted on: the first of each group of identical chunks."""
    return chunks[chunks["duplicate_of"].isna()].reset_index(drop=True)
