"""Tests of nlp/topics/model.py: UMAP with exact neighbours (and on a sample for large
corpora), HDBSCAN, the small-corpus fallback."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

from nlp.topics import run_topics
from nlp.topics.model import ExactUMAP, exact_knn
from topic_corpus import inputs, synthetic_corpus, topic_settings


def _assignments(out):
    dt = pd.read_parquet(out / "tables" / "doc_topics.parquet")
    return dt[["chunk_id", "topic", "topic_before_reduction"]].sort_values("chunk_id").reset_index(drop=True)


def test_exact_knn_matches_brute_force():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    data, queries = rng.normal(size=(300, 12)), rng.normal(size=(70, 12))
    idx, dist = exact_knn(queries, data, 7, block=16)
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=7, metric="cosine",
                                         algorithm="brute").fit(data).kneighbors(queries)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-5)
    self_idx, self_dist = exact_knn(data, data, 3)
    assert (self_idx[:, 0] == np.arange(300)).all() and np.allclose(self_dist[:, 0], 0, atol=1e-5)


def test_exact_umap_replaces_nn_descent_and_transforms_new_points():
    """Above UMAP's exact-neighbour size the wrapper gives it exact neighbours and an exact
    search index (``exact_below`` lowered and UMAP's own exact path for small data switched
    off, to exercise the large-corpus path on a small test)."""
    from umap import UMAP

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 20)) * 4
    data = np.vstack([c + rng.normal(size=(80, 20)) for c in centres]).astype(np.float32)

    def fit() -> ExactUMAP:
        umap = UMAP(n_neighbors=10, n_components=2, random_state=3, metric="cosine",
                    force_approximation_algorithm=True)
        return ExactUMAP(umap, None, 3, exact_below=0).fit(data)

    a, b = fit(), fit()
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    assert a.umap_model.precomputed_knn[0].shape == (240, 10)
    assert not a.umap_model._small_data  # the neighbours given were used
    new = a.transform(data[:5] + 0.01)
    assert new.shape == (5, 2) and np.isfinite(new).all()
    np.testing.assert_array_equal(a.transform(data), a.embedding_)


def test_small_corpus_falls_back_and_says_so(pipeline, tmp_path):
    paragraphs, documents = synthetic_corpus(33, seed=3)
    summary = run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(),
                         pipeline=pipeline)
    assert summary["n_chunks_fitted"] == 30
    assert summary["method"] == "small-corpus fallback"
    assert "k-means" in summary["method_message"] and "30 chunks" in summary["method_message"]
    assert summary["n_topics"] >= 2 and summary["outlier_share_before"] == 0.0
    assert (tmp_path / "tables" / "topics.parquet").is_file()


def test_umap_fitted_on_a_sample_for_large_corpora(corpus, pipeline, tmp_path):
    summary = run_topics(inputs(*corpus), tmp_path, topic_settings(umap_sample=150),
                         pipeline=pipeline)
    assert "fitted on 150 sampled chunks" in summary["method_message"]
    dt = pd.read_parquet(tmp_path / "tables" / "doc_topics.parquet")
    assert normalized_mutual_info_score(dt["themes"].map(lambda t: t[0]), dt["topic"]) > 0.6
    again = run_topics(inputs(*corpus), tmp_path / "again", topic_settings(umap_sample=150),
                       pipeline=pipeline)
    assert again["n_topics"] == summary["n_topics"]
    pd.testing.assert_frame_equal(_assignments(tmp_path), _assignments(tmp_path / "again"))


def test_cluster_epsilon_is_passed_to_hdbscan_and_said(corpus, pipeline, tmp_path):
    summary = run_topics(inputs(*corpus), tmp_path, topic_settings(cluster_epsilon=0.3),
                         pipeline=pipeline)
    assert "cluster_selection_epsilon=0.3" in summary["method_message"]
    assert summary["outlier_share_after"] <= summary["outlier_share_before"]
