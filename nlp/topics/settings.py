"""Settings and errors of the topic stage (stage: topics).

Input: the ``topics`` section of a run's settings (config file, environment, flags), built by
:func:`nlp.config.build_stage_settings`. Output: a frozen :class:`TopicSettings`, recorded in
the run summary and hashed (:meth:`TopicSettings.fit_dict`) into the keys that let a re-run
over unchanged inputs reuse the saved model and tables.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nlp.errors import BarometreError
from nlp.topics.embeddings import SPACY_MODEL

OUTLIER = -1

# Settings that change neither the fitted model nor the tables: left out of the reuse keys.
_NOT_IN_KEYS = frozenset({"use_cache", "n_process", "batch_size", "figures",
                          "documents_figure_max"})


class TopicModelError(BarometreError):
    """The topic stage cannot run on this input (too few chunks, missing table or columns…)."""


@dataclass(frozen=True)
class TopicSettings:
    """Settings of one topic run (all recorded in the run summary).

    ``embedder``: ``"tfidf-svd"`` | ``"tfidf-svd:<dim>"`` | ``"spacy"`` | ``"st:<local path>"``.
    ``all_paragraphs``: fit on every paragraph, not only ``is_digital`` ones.
    ``min_topic_size``: HDBSCAN's min cluster size; ``None`` = ``max(10, sqrt(n)/2)``.
    ``min_samples``: HDBSCAN's min_samples; ``None`` = ``max(1, min_topic_size // 10)`` (low
    values leave fewer outliers: 14% instead of 58% on the real digital paragraphs).
    ``cluster_selection``: ``"eom"``, ``"leaf"`` or ``"auto"`` (eom, then leaf when eom finds
    fewer than 3 topics — on the real digital paragraphs eom returns 2 clusters).
    ``nr_topics``: BERTopic topic reduction (``None``, an int, or ``"auto"``).
    ``seed_with_lexicons``: guided BERTopic, one seed topic per theme lexicon (the lexicons as
    the annotate stage validated them, from ``tables/lexicon_terms.parquet``).
    ``small_corpus_threshold``: below this many chunks, PCA + k-means instead of UMAP + HDBSCAN.
    ``min_chunks``: below this many chunks, stop with a clear message.
    ``outlier_threshold``: cosine similarity an outlier needs to join its nearest topic.
    ``umap_sample``: above this many chunks UMAP is fitted on a seeded sample of that size
    and applied to the rest (``None``: always on every chunk).
    ``umap_epochs``: UMAP's optimisation epochs (``None``: UMAP's default, 200 above 10,000
    points, 500 below).
    ``cluster_epsilon``: HDBSCAN's ``cluster_selection_epsilon`` (UMAP units): clusters closer
    than this are not split further, which leaves fewer chunks as outliers (0.2: 14% instead
    of 18% on 50,000 paragraphs; the real gold corpus's topics are unchanged — see
    ``bench/bench_topics.py``).
    ``svd_iter``: power iterations of the TF-IDF+SVD embedder's randomised SVD.
    ``lemmatizer``: lemmas for topic words: ``"spacy"`` (full pipeline on every chunk),
    ``"sampled"`` (in-context form → lemma table from ``lemma_sample_size`` chunks, then a
    lookup; for large corpora) or ``"auto"`` (spacy up to ``lemma_full_max`` chunks).
    ``use_cache``: reuse cached embeddings and, over unchanged inputs, the saved model (no
    refit) and the written tables (no work at all).
    """

    embedder: str = "tfidf-svd"
    all_paragraphs: bool = False
    seed: int = 42
    min_topic_size: int | None = None
    nr_topics: int | str | None = None
    seed_with_lexicons: bool = False
    reduce_outliers: bool = True
    outlier_threshold: float = 0.0
    max_chunk_words: int = 200
    min_chunk_words: int = 8
    drop_boilerplate: bool = True
    min_samples: int | None = None
    cluster_selection: str = "auto"
    small_corpus_threshold: int = 200
    min_chunks: int = 10
    n_neighbors: int = 15
    n_components: int = 5
    top_n_words: int = 10
    lemmatizer: str = "auto"
    umap_sample: int | None = 15000
    umap_epochs: int | None = None
    cluster_epsilon: float = 0.2
    svd_iter: int = 7
    lemma_sample_size: int = 2000
    lemma_full_max: int = 4000
    proper_nouns_in_topic_words: bool = False
    ngram_max: int = 2
    figures: bool = True
    documents_figure_max: int = 5000
    use_cache: bool = True
    spacy_model: str = SPACY_MODEL
    n_process: int = 1
    batch_size: int = 256

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-able."""
        return asdict(self)

    def key_dict(self) -> dict[str, Any]:
        """The settings the fitted model and the tables depend on (the reuse keys' part)."""
        return {k: v for k, v in asdict(self).items() if k not in _NOT_IN_KEYS}
