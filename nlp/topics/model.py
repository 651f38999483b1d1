"""The topic model itself: BERTopic with seeded, offline parts (stage: topics).

Input: the fitted chunks' lemma strings, their embeddings (one L2-normalised row per chunk,
in chunk-id order) and the embedder. Output: a :class:`Fit` — the BERTopic model (topic
words, labels, centroid topic embeddings), each chunk's topic before and after outlier
reduction, HDBSCAN's membership strength, and a description of what was run.

Why it is built this way (BERTopic users' known problems): every random step is seeded and
runs on chunks sorted by id, so the same corpus gives the same topics whatever its order;
topic words come from a ``CountVectorizer`` over lemmas with a French stop list
(``language="french"``, never "english" which strips accents); below a few hundred chunks
HDBSCAN/UMAP give nonsense, so a PCA + k-means fallback is used and said; outliers are
reassigned (``reduce_outliers`` + ``update_topics``) and their share reported before and after.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nlp.topics.embeddings import Embedder
from nlp.topics.lemmas import make_vectorizer
from nlp.topics.settings import OUTLIER, TopicModelError, TopicSettings

logger = logging.getLogger(__name__)


@dataclass
class Fit:
    """A fitted topic model and the chunks' assignments (arrays in chunk-id order)."""

    model: Any
    topics_before: np.ndarray
    topics: np.ndarray
    probability: np.ndarray
    info: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def outliers_before(self) -> float:
        return float(np.mean(self.topics_before == OUTLIER)) if len(self.topics) else 0.0

    @property
    def outliers_after(self) -> float:
        return float(np.mean(self.topics == OUTLIER)) if len(self.topics) else 0.0


def backend(embedder: Embedder) -> Any:
    """Wrap an :class:`Embedder` as a BERTopic backend (used for seed words and topic words)."""
    from bertopic.backend import BaseEmbedder

    class _Adapter(BaseEmbedder):
        def __init__(self, inner: Embedder) -> None:
            super().__init__()
            self.inner = inner

        def embed(self, documents: list[str], verbose: bool = False) -> np.ndarray:
            return self.inner.embed(list(documents))

    return _Adapter(embedder)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b``."""
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return an @ bn.T


def centroids(embeddings: np.ndarray, topics: np.ndarray) -> np.ndarray:
    """Mean embedding per topic, in sorted topic order (the outlier topic first if present)."""
    topics = np.asarray(topics)
    return np.vstack([embeddings[topics == t].mean(axis=0) for t in sorted(set(topics.tolist()))])


def topic_words(model: Any, top_n: int) -> dict[int, list[str]]:
    """Topic → its top words (c-TF-IDF order), the outlier topic included."""
    return {int(t): [w for w, _ in (ws or [])[:top_n] if w]
            for t, ws in model.get_topics().items()}


def topic_labels(words: dict[int, list[str]], topic_ids: list[int]) -> dict[int, str]:
    """A readable label per topic: its four first words."""
    return {x: (", ".join(words.get(x, [])[:4]) if x != OUTLIER else "hors thème (outliers)")
            for x in topic_ids}


# --- reduction and clustering -------------------------------------------------------------------
def _choose_k(reduced: np.ndarray, seed: int, k_max: int) -> int:
    """k for k-means by the best silhouette over 2..k_max (deterministic)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best_k, best = 2, -2.0
    for k in range(2, max(2, k_max) + 1):
        labels = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(reduced)
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(reduced, labels)
        if score > best + 1e-9:
            best_k, best = k, score
    return best_k


def _auto_hdbscan_class() -> type:
    """HDBSCAN that retries with leaf selection when excess-of-mass finds < 3 clusters.

    Excess of mass favours the largest clusters: when one group of chunks lies far from the
    rest (a technical annex, say), it returns that group and one blob. A subclass (not a
    wrapper) so BERTopic still treats it as HDBSCAN.
    """
    from hdbscan import HDBSCAN

    class AutoHDBSCAN(HDBSCAN):
        min_topics = 3
        selection_used = "eom"

        def fit(self, X: Any, y: Any = None) -> "AutoHDBSCAN":
            self.cluster_selection_method = "eom"
            super().fit(X)
            if self.labels_.max() + 1 < self.min_topics:
                self.cluster_selection_method = "leaf"
                super().fit(X)
            self.selection_used = self.cluster_selection_method
            return self

    return AutoHDBSCAN


def _seeded_sample(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


# UMAP finds neighbours exactly below this many points and by NN-descent (pynndescent) above.
UMAP_EXACT_BELOW = 4096


def exact_knn(queries: np.ndarray, data: np.ndarray, k: int, block: int = 2048
              ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``data`` to each row of ``queries`` by cosine distance, exactly
    (blocked matrix products). Returns (indices int32, distances float32), nearest first."""
    def unit(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float32)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    q, d = unit(queries), unit(data)
    k = min(k, len(d))
    indices = np.empty((len(q), k), dtype=np.int32)
    dists = np.empty((len(q), k), dtype=np.float32)
    for s in range(0, len(q), block):
        sims = q[s:s + block] @ d.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, part, axis=1)
        # Ties broken by index, so the neighbours never depend on the partition's order.
        order = np.lexsort((part, -top), axis=1)
        indices[s:s + block] = np.take_along_axis(part, order, axis=1)
        dists[s:s + block] = 1.0 - np.take_along_axis(top, order, axis=1)
    np.maximum(dists, 0.0, out=dists)
    return indices, dists


class _ExactIndex:
    """What ``UMAP.transform`` asks of its NN-descent index, answered by :func:`exact_knn`."""

    _angular_trees = True

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def query(self, queries: np.ndarray, k: int, epsilon: float = 0.1
              ) -> tuple[np.ndarray, np.ndarray]:
        return exact_knn(queries, self.data, k)


class ExactUMAP:
    """UMAP fitted on a seeded sample of the chunks (or all of them), with exact neighbours.

    Above 4,096 points UMAP finds neighbours with pynndescent, whose numba compilation costs
    more than a minute in every new process (it is not cached); exact neighbours by blocked
    matrix products take seconds at these sizes and are better (below ``exact_below`` points
    UMAP computes them exactly itself, so small corpora are fitted as before). UMAP is
    single-threaded once seeded (the price of reproducibility): above ``sample_size`` chunks
    it is fitted on a seeded sample and the other chunks are placed by ``UMAP.transform``
    (sampled chunks keep their fitted coordinates). BERTopic only calls ``fit`` then
    ``transform``.
    """


    def __init__(self, umap_model: Any, sample_size: int | None, seed: int,
                 exact_below: int = UMAP_EXACT_BELOW) -> None:
        self.umap_model = umap_model
        self.sample_size = sample_size
        self.seed = seed
        self.exact_below = exact_below
        self._train: np.ndarray | None = None
        self._n_fit = 0

    @property
    def embedding_(self) -> np.ndarray:
        return self.umap_model.embedding_

    def fit(self, X: np.ndarray, y: Any = None) -> "ExactUMAP":
        import warnings

        cache_umap_kernels()
        X = np.asarray(X, dtype=np.float32)
        idx = (_seeded_sample(len(X), self.sample_size, self.seed)
               if self.sample_size and len(X) > self.sample_size else np.arange(len(X)))
        train = X[idx]
        exact = len(train) >= self.exact_below
        if exact:
            self.umap_model.precomputed_knn = exact_knn(train, train, self.umap_model.n_neighbors)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(knn_search_index|n_jobs value).*")
            self.umap_model.fit(train, y=None if y is None else np.asarray(y)[idx])
        if exact:
            self.umap_model._knn_search_index = _ExactIndex(train)
        self._train, self._n_fit = idx, len(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if self._train is None or len(X) != self._n_fit:
            return self.umap_model.transform(X)
        out = np.empty((len(X), self.umap_model.n_components), dtype=np.float32)
        out[self._train] = self.umap_model.embedding_
        rest = np.setdiff1d(np.arange(len(X)), self._train)
        if len(rest):
            out[rest] = self.umap_model.transform(X[rest])
        return out


@functools.cache
def cache_umap_kernels() -> None:
    """Let numba cache the UMAP kernels that umap-learn compiles in every new process.

    ``smooth_knn_dist``, ``compute_membership_strengths`` and the (seeded, single-threaded)
    layout epoch are jitted without ``cache=True``: their compilation costs seconds per run.
    ``Dispatcher.enable_caching`` (numba's API) stores the machine code beside the module,
    like pynndescent's own kernels; the code, hence the result, is the same.
    """
    try:
        import umap.layouts as layouts
        import umap.umap_ as umap_

        for kernel in (umap_.smooth_knn_dist, umap_.compute_membership_strengths,
                       umap_.init_transform, layouts._nb_optimize_layout_euclidean_single_epoch):
            kernel.enable_caching()
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation, never a failure
        logger.info("UMAP kernels not cached (%s): compiled in this process", exc)


def _small_corpus_models(n: int, dim: int, settings: TopicSettings, embeddings: np.ndarray
                         ) -> tuple[Any, Any, dict[str, Any]]:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    n_comp = max(2, min(settings.n_components, n - 2, dim))
    reduced = PCA(n_components=n_comp, random_state=settings.seed).fit_transform(embeddings)
    k_max = min(10, max(2, n // 8))
    k = _choose_k(reduced, settings.seed, k_max)
    info = {"method": "small-corpus fallback",
            "message": (f"{n} chunks is fewer than {settings.small_corpus_threshold}: "
                        f"UMAP+HDBSCAN replaced by PCA({n_comp}) + k-means (k={k}, best "
                        f"silhouette over 2..{k_max}); k-means leaves no outliers"),
            "reduction": f"PCA(n_components={n_comp})", "clustering": f"KMeans(k={k})"}
    return (PCA(n_components=n_comp, random_state=settings.seed),
            KMeans(n_clusters=k, random_state=settings.seed, n_init=10), info)


def models_for(n: int, dim: int, settings: TopicSettings, embeddings: np.ndarray
               ) -> tuple[Any, Any, dict[str, Any]]:
    """Dimension reduction + clustering models for ``n`` chunks, and what was chosen."""
    if n < settings.small_corpus_threshold:
        return _small_corpus_models(n, dim, settings, embeddings)
    from hdbscan import HDBSCAN
    from umap import UMAP

    if settings.cluster_selection not in ("auto", "eom", "leaf"):
        raise TopicModelError(f"cluster_selection must be auto, eom or leaf, not "
                              f"{settings.cluster_selection!r}")
    min_size = settings.min_topic_size or max(10, int(math.sqrt(n) / 2))
    min_samples = settings.min_samples or max(1, min_size // 10)
    neighbours = min(settings.n_neighbors, n - 1)
    # random_state makes UMAP deterministic (and single-threaded: the price of issue 6 §5).
    umap = UMAP(n_neighbors=neighbours, n_components=settings.n_components, min_dist=0.0,
                metric="cosine", random_state=settings.seed, n_epochs=settings.umap_epochs)
    sample = settings.umap_sample if settings.umap_sample and n > settings.umap_sample else None
    cls = _auto_hdbscan_class() if settings.cluster_selection == "auto" else HDBSCAN
    hdb = cls(min_cluster_size=min_size, min_samples=min_samples, metric="euclidean",
              cluster_selection_method="eom" if settings.cluster_selection == "auto"
              else settings.cluster_selection,
              cluster_selection_epsilon=float(settings.cluster_epsilon), prediction_data=True)
    desc = f"HDBSCAN(min_cluster_size={min_size}, min_samples={min_samples}"
    if settings.cluster_epsilon:
        desc += f", cluster_selection_epsilon={settings.cluster_epsilon}"
    umap_desc = f"UMAP(n_neighbors={neighbours})" + (
        f" fitted on {sample} sampled chunks" if sample else "")
    info = {"method": "bertopic", "message": f"{umap_desc} + {desc}, selection=<sel>)",
            "reduction": f"UMAP(n_neighbors={neighbours}, n_components={settings.n_components})",
            "clustering": desc + ", selection=<sel>)"}
    return ExactUMAP(umap, sample, settings.seed), hdb, info


# --- the fit --------------------------------------------------------------------------------------
def _reduce_outliers(model: Any, lemma_docs: list[str], before: np.ndarray,
                     embeddings: np.ndarray, settings: TopicSettings) -> np.ndarray:
    """Outliers moved to their nearest topic (by embedding), topic words updated to match."""
    from bertopic.vectorizers import ClassTfidfTransformer

    if not settings.reduce_outliers or not np.any(before == OUTLIER):
        return before.copy()
    reduced = model.reduce_outliers(lemma_docs, before.tolist(), strategy="embeddings",
                                    embeddings=embeddings, threshold=settings.outlier_threshold)
    model.update_topics(lemma_docs, topics=list(reduced), top_n_words=settings.top_n_words,
                        vectorizer_model=make_vectorizer(settings),
                        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True))
    return np.asarray(reduced, dtype=int)


def fit_topics(lemma_docs: list[str], embeddings: np.ndarray, embedder: Embedder,
               settings: TopicSettings, seeds: list[list[str]], progress: bool = False) -> Fit:
    """Fit BERTopic on the chunks (lemma strings for topic words, ``embeddings`` for the
    clusters), reduce outliers, set centroid topic embeddings and labels.

    ``seeds``: seed word lists for guided BERTopic (empty: unguided). Returns a :class:`Fit`
    whose ``timings`` has ``fit_s`` and ``reduce_outliers_s``.
    """
    import time

    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer

    t = time.perf_counter()
    umap_model, cluster_model, info = models_for(len(lemma_docs), embeddings.shape[1], settings,
                                                 embeddings)
    model = BERTopic(
        language="french",  # never "english": it strips every accented letter
        embedding_model=backend(embedder), umap_model=umap_model, hdbscan_model=cluster_model,
        vectorizer_model=make_vectorizer(settings),
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
        top_n_words=settings.top_n_words, nr_topics=settings.nr_topics,
        seed_topic_list=seeds or None, calculate_probabilities=False, verbose=progress,
    )
    # Guided modelling edits the embeddings in place: give BERTopic a copy.
    topics_fit, probs = model.fit_transform(lemma_docs, embeddings=embeddings.copy())
    before = np.asarray(topics_fit, dtype=int)
    selection = str(getattr(model.hdbscan_model, "cluster_selection_method", None))
    info = {k: v.replace("<sel>", selection) for k, v in info.items()}
    timings = {"fit_s": round(time.perf_counter() - t, 3)}

    t = time.perf_counter()
    topics = _reduce_outliers(model, lemma_docs, before, embeddings, settings)
    # Topic embeddings = centroids of the final members (used by --assign to place new chunks).
    model.topic_embeddings_ = centroids(embeddings, topics)
    labels = topic_labels(topic_words(model, settings.top_n_words), sorted(set(topics.tolist())))
    model.set_topic_labels({x: f"{x}: {label}" for x, label in labels.items()})
    prob = np.asarray(probs, dtype=float) if probs is not None else np.full(len(before), np.nan)
    if prob.ndim > 1:
        prob = prob.max(axis=1)
    timings["reduce_outliers_s"] = round(time.perf_counter() - t, 3)
    return Fit(model, before, topics, prob, info, timings)
