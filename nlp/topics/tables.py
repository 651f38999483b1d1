"""The topic stage's tables (stage: topics).

Input: the chunks (:func:`nlp.topics.chunks.build_chunks`), a :class:`~nlp.topics.model.Fit`,
the fitted chunks' embeddings and lemma strings, the theme lexicons' lemmas. Output (pure,
nothing written until :func:`write_tables`):

- ``topics`` — one row per topic: size, top terms, label, representative sentence, NPMI
  coherence, best-matching theme;
- ``doc_topics`` — one row per chunk: topic, probability, similarity, topic before outlier
  reduction (duplicates carry the topic of the chunk they duplicate);
- ``document_topics`` — per document × topic counts and shares;
- ``topics_per_metropole``, ``topics_over_time`` — counts, shares and the words of each topic
  in that metropolis / year (BERTopic's c-TF-IDF of the class averaged with the global one);
- ``topic_theme_map`` — per topic × theme: share of the topic's chunks carrying the theme (the
  detector's paragraph labels, ``themes``), lexical overlap of top words with the theme
  lexicon, seed similarity.

The chunk × n-gram count matrix is computed once and serves the words per metropolis and per
year and the NPMI (BERTopic's ``topics_per_class``/``topics_over_time`` re-tokenise the whole
corpus once per class: a minute on 50,000 paragraphs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlp.io import atomic_open, write_table
from nlp.schema import THEMES
from nlp.topics.chunks import split_sentences
from nlp.topics.embeddings import Embedder
from nlp.topics.model import Fit, centroids, cosine, topic_labels, topic_words
from nlp.topics.quality import npmi_from_counts, topic_diversity
from nlp.topics.settings import OUTLIER, TopicSettings

TABLES = ("topics", "doc_topics", "document_topics", "topics_per_metropole",
          "topics_over_time", "topic_theme_map")
CSV_TABLES = ("topics", "topic_theme_map")


@dataclass
class TopicTables:
    """The stage's tables, plus what the figures need (BERTopic-shaped words per class)."""

    frames: dict[str, pd.DataFrame]
    npmi: dict[int, float]
    diversity: float
    per_class: pd.DataFrame | None = None
    per_year: pd.DataFrame | None = None
    labels: dict[int, str] = field(default_factory=dict)


# --- words per class from one count matrix ---------------------------------------------------
def count_matrix(model: Any, lemma_docs: list[str]) -> Any:
    """Chunk × n-gram counts with the fitted model's own vectorizer (one pass over the corpus)."""
    return model.vectorizer_model.transform(lemma_docs).tocsr()


def _top_words(matrix: Any, words: np.ndarray, n: int) -> list[str]:
    """Per row of a sparse matrix, its ``n`` highest-scoring words joined (BERTopic's format:
    a missing word is an empty string)."""
    out = []
    for le, ri in zip(matrix.indptr[:-1], matrix.indptr[1:]):
        data, cols = matrix.data[le:ri], matrix.indices[le:ri]
        keep = data > 0
        data, cols = data[keep], cols[keep]
        order = np.lexsort((cols, -data))[:n]
        picked = [str(words[c]) for c in cols[order]] + [""] * (n - len(order))
        out.append(", ".join(picked))
    return out


def class_scores(model: Any, counts: Any, topics: np.ndarray, classes: list[Any]
                 ) -> tuple[pd.DataFrame, Any]:
    """Each topic's c-TF-IDF within each class, as ``BERTopic.topics_per_class`` computes it
    (the class's c-TF-IDF, l1-normalised, averaged with the global one), from chunk counts.

    Returns (``Class``, ``Topic``, ``Frequency`` per row; the sparse score matrix, one row per
    (class, topic), one column per n-gram of the model's vectorizer).
    """
    from scipy import sparse
    from sklearn.preprocessing import normalize

    frame = pd.DataFrame({"Topic": np.asarray(topics, dtype=int), "Class": classes})
    groups = frame.groupby(["Class", "Topic"], sort=True).indices
    keys = pd.DataFrame(list(groups), columns=["Class", "Topic"])
    keys["Frequency"] = [len(v) for v in groups.values()]
    rows = np.concatenate([np.full(len(v), i) for i, v in enumerate(groups.values())])
    cols = np.concatenate(list(groups.values()))
    member = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(keys), len(frame)))
    local = normalize(model.ctfidf_model.transform(member @ counts), axis=1, norm="l1")
    global_ = normalize(model.c_tf_idf_, axis=1, norm="l1")
    row_of = {t: i for i, t in enumerate(sorted(set(model.topic_sizes_)))}
    return keys, ((global_[[row_of[t] for t in keys["Topic"]]] + local) / 2.0).tocsr()


def words_per_class(model: Any, counts: Any, topics: np.ndarray, classes: list[Any],
                    n_words: int = 5) -> pd.DataFrame:
    """The ``n_words`` best words of each topic within each class (:func:`class_scores`; ties
    in alphabetical order). Returns BERTopic's columns ``Topic``, ``Words``, ``Frequency``,
    ``Class``, so that its figures take them."""
    keys, scores = class_scores(model, counts, topics, classes)
    words = model.vectorizer_model.get_feature_names_out()
    return pd.DataFrame({"Topic": keys["Topic"], "Words": _top_words(scores, words, n_words),
                         "Frequency": keys["Frequency"], "Class": keys["Class"]})


# --- per-topic descriptions ------------------------------------------------------------------
def seed_similarities(embedder: Embedder, centroid_of: dict[int, np.ndarray],
                      seed_themes: list[str], seeds: list[list[str]]
                      ) -> dict[tuple[int, str], float]:
    """(topic, theme) → cosine of the topic centroid with the theme's seed words' embedding."""
    if not seeds:
        return {}
    sims = cosine(np.vstack(list(centroid_of.values())),
                  embedder.embed([" ".join(w) for w in seeds]))
    return {(x, theme): float(sims[i, j]) for i, x in enumerate(centroid_of)
            for j, theme in enumerate(seed_themes)}


def representative_sentences(embedder: Embedder, topics: np.ndarray, texts: list[str],
                             chunk_ids: list[str], embeddings: np.ndarray,
                             centroid_of: dict[int, np.ndarray]) -> dict[int, tuple[str, str]]:
    """Per topic: the sentence (of its 3 most central chunks) closest to the topic centroid."""
    candidates: list[tuple[int, str, str]] = []
    for t in sorted(x for x in centroid_of if x != OUTLIER):
        idx = np.flatnonzero(topics == t)
        sims = cosine(embeddings[idx], centroid_of[t][None, :]).ravel()
        for i in idx[np.argsort(-sims, kind="mergesort")[:3]]:
            sents = [s for s in split_sentences(texts[i]) if 6 <= len(s.split()) <= 80]
            candidates.extend((t, s, chunk_ids[i]) for s in sents or [texts[i]])
    if not candidates:
        return {}
    vecs = embedder.embed([c[1] for c in candidates])
    best: dict[int, tuple[float, str, str]] = {}
    for (t, sent, cid), vec in zip(candidates, vecs):
        sim = float(cosine(vec[None, :], centroid_of[t][None, :])[0, 0])
        if t not in best or sim > best[t][0] + 1e-9:
            best[t] = (sim, sent, cid)
    return {t: (s, c) for t, (_, s, c) in best.items()}


def theme_map(topic_ids: list[int], topics: np.ndarray, themes: list[list[str]],
              words: dict[int, list[str]], lexicon_lemmas: dict[str, set[str]],
              seed_sims: dict[tuple[int, str], float]) -> pd.DataFrame:
    """Topic × theme: share of the topic's chunks labelled with the theme, lexical overlap."""
    rows = []
    for t in topic_ids:
        idx = np.flatnonzero(topics == t)
        for theme in THEMES:
            n_hit = sum(1 for i in idx if theme in themes[i])
            lex = lexicon_lemmas.get(theme, set())
            top = words.get(t, [])
            # A topic word matches when it is a lexicon term, or contains one as whole words.
            matched = [w for w in top if w in lex or any(f" {term} " in f" {w} " for term in lex)]
            rows.append({
                "topic": t, "theme": theme, "theme_label": THEMES[theme],
                "n_chunks": len(idx), "n_chunks_with_theme": n_hit,
                "share_chunks": n_hit / len(idx) if len(idx) else float("nan"),
                "lexical_overlap": len(matched) / len(top) if top and lex else float("nan"),
                "overlap_terms": ", ".join(matched),
                "seed_similarity": seed_sims.get((t, theme), float("nan")),
            })
    return pd.DataFrame(rows)


def topic_table(topic_ids: list[int], topics: np.ndarray, words: dict[int, list[str]],
                labels: dict[int, str], reps: dict[int, tuple[str, str]],
                npmi: dict[int, float], tmap: pd.DataFrame) -> pd.DataFrame:
    """One row per topic: size, share, top terms, label, representative sentence, NPMI and the
    theme most of its chunks carry."""
    sizes = pd.Series(topics).value_counts()
    rows = []
    for x in topic_ids:
        tm = tmap[(tmap["topic"] == x) & (tmap["n_chunks_with_theme"] > 0)]
        best = tm.sort_values(["share_chunks", "theme"], ascending=[False, True]).head(1)
        rows.append({
            "topic": x, "size": int(sizes.get(x, 0)), "share": float(sizes.get(x, 0) / len(topics)),
            "top_terms": words.get(x, []), "label": labels[x],
            "representative_sentence": reps.get(x, ("", ""))[0],
            "representative_chunk_id": reps.get(x, ("", ""))[1],
            "npmi": npmi.get(x, float("nan")),
            "best_theme": best["theme"].iloc[0] if len(best) else None,
            "best_theme_share": float(best["share_chunks"].iloc[0]) if len(best) else 0.0,
        })
    return pd.DataFrame(rows)


# --- per chunk, document, metropolis, year -----------------------------------------------------
def chunk_topics(chunks: pd.DataFrame, fit_rows: pd.DataFrame, fit: Fit,
                 embeddings: np.ndarray, centroid_of: dict[int, np.ndarray],
                 labels: dict[int, str]) -> pd.DataFrame:
    """Chunk → topic for every chunk, duplicates taking the topic of the chunk they repeat."""
    sim = np.full(len(fit.topics), np.nan)
    for x, c in centroid_of.items():
        idx = np.flatnonzero(fit.topics == x)
        sim[idx] = cosine(embeddings[idx], c[None, :]).ravel()
    per_fit = pd.DataFrame({
        "_key": fit_rows["chunk_id"], "topic": fit.topics,
        "topic_before_reduction": fit.topics_before,
        # HDBSCAN membership strength; undefined for chunks moved in from the outliers.
        "probability": np.where(fit.topics_before == fit.topics, fit.probability, np.nan),
        "similarity": sim,
    })
    key = chunks["duplicate_of"].fillna(chunks["chunk_id"])
    out = chunks.drop(columns=["hash"]).assign(_key=key).merge(per_fit, on="_key", how="left")
    out = out.drop(columns="_key")
    out["label"] = out["topic"].map(labels)
    return out


def _shares(doc_topics: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    counts = doc_topics.groupby([*by, "topic"]).size().rename("n_chunks").reset_index()
    counts["share"] = counts["n_chunks"] / counts.groupby(by)["n_chunks"].transform("sum")
    return counts


def _with_words(counts: pd.DataFrame, per_class: pd.DataFrame | None, by: str,
                labels: dict[int, str]) -> pd.DataFrame:
    if per_class is not None and not per_class.empty:
        words = per_class.rename(columns={"Topic": "topic", "Class": by, "Words": "words"})
        counts = counts.merge(words[[by, "topic", "words"]], on=[by, "topic"], how="left")
    else:
        counts["words"] = None
    counts["label"] = counts["topic"].map(labels)
    return counts


# --- all tables --------------------------------------------------------------------------------
def compute_tables(chunks: pd.DataFrame, fit_rows: pd.DataFrame, fit: Fit, embedder: Embedder,
                   embeddings: np.ndarray, lemma_docs: list[str],
                   lexicon_lemmas: dict[str, set[str]],
                   seeds: tuple[list[str], list[list[str]]], settings: TopicSettings
                   ) -> TopicTables:
    """Every table of the stage (see the module docstring) and the quality figures.

    ``seeds``: (themes, seed word lists) of guided BERTopic, empty lists when unguided.
    """
    model, topics = fit.model, fit.topics
    words = topic_words(model, settings.top_n_words)
    topic_ids = sorted(set(topics.tolist()))
    labels = topic_labels(words, topic_ids)
    centroid_of = dict(zip(topic_ids, centroids(embeddings, topics)))
    counts = count_matrix(model, lemma_docs)
    vocabulary = model.vectorizer_model.vocabulary_
    npmi = npmi_from_counts(words, counts, vocabulary, settings.top_n_words)
    reps = representative_sentences(embedder, topics, fit_rows["text"].tolist(),
                                     fit_rows["chunk_id"].tolist(), embeddings, centroid_of)
    tmap = theme_map(topic_ids, topics, fit_rows["themes"].tolist(), words, lexicon_lemmas,
                     seed_similarities(embedder, centroid_of, *seeds))
    doc_topics = chunk_topics(chunks, fit_rows, fit, embeddings, centroid_of, labels)
    per_class = words_per_class(model, counts, topics, fit_rows["metropole"].tolist())
    has_year = fit_rows["year"].notna().to_numpy()
    per_year, over_time = None, pd.DataFrame(
        columns=["year", "topic", "n_chunks", "share", "words", "label"])
    if has_year.any():
        idx = np.flatnonzero(has_year)
        per_year = words_per_class(model, counts[idx], topics[idx],
                                   [int(y) for y in fit_rows["year"].iloc[idx]])
        years = doc_topics.dropna(subset=["year"]).astype({"year": int})
        over_time = _with_words(_shares(years, ["year"]), per_year, "year", labels)
    frames = {
        "topics": topic_table(topic_ids, topics, words, labels, reps, npmi, tmap),
        "doc_topics": doc_topics,
        "document_topics": _shares(doc_topics, ["document_id", "metropole"]),
        "topics_per_metropole": _with_words(_shares(doc_topics, ["metropole"]), per_class,
                                            "metropole", labels),
        "topics_over_time": over_time,
        "topic_theme_map": tmap,
    }
    if per_year is not None:
        per_year = per_year.rename(columns={"Class": "Timestamp"})
    return TopicTables(frames, npmi, topic_diversity(words, settings.top_n_words),
                       per_class, per_year, labels)


def write_tables(tables: TopicTables, tables_dir: Path) -> list[str]:
    """Write every table as Parquet (``topics`` and ``topic_theme_map`` also as CSV), each
    atomically; returns the written paths."""
    written: list[str] = []
    for name in TABLES:
        path = Path(tables_dir) / f"{name}.parquet"
        written += [str(p) for p in write_table(tables.frames[name], path)]
        if name in CSV_TABLES:
            with atomic_open(path.with_suffix(".csv"), "w") as fh:
                _flat(tables.frames[name]).to_csv(fh, index=False)
            written.append(str(path.with_suffix(".csv")))
    return written


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists as "a; b; c" (a CSV cell holds one string)."""
    flat = frame.copy()
    is_list = lambda v: isinstance(v, (list, tuple, np.ndarray))  # noqa: E731
    for col in flat.columns:
        if flat[col].map(is_list).any():
            flat[col] = flat[col].map(lambda v: "; ".join(map(str, v)) if is_list(v) else v)
    return flat
