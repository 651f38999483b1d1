"""Quality figures of a topic model (stage: topics).

Input: each topic's top words and the chunks' lemma strings. Output: topic diversity (share
of unique words among the top words, Dieng et al. 2020) and NPMI coherence per topic, from
document co-occurrences in the corpus itself (no external reference corpus).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from nlp.topics.settings import OUTLIER


def topic_diversity(topic_words: dict[int, list[str]], top_k: int = 10) -> float:
    """Share of unique words among the top-k words of all topics (outlier topic excluded)."""
    words = [w for t, ws in topic_words.items() if t != OUTLIER for w in ws[:top_k]]
    return float(len(set(words)) / len(words)) if words else float("nan")


def _pair_npmi(p_ij: float, p_i: float, p_j: float) -> float:
    if p_ij <= 0 or p_i == 0 or p_j == 0:
        return -1.0
    if p_ij >= 1.0:
        return 1.0
    return math.log(p_ij / (p_i * p_j)) / -math.log(p_ij)


def npmi_from_counts(topic_words: dict[int, list[str]], counts: Any,
                     vocabulary: dict[str, int], top_k: int = 10) -> dict[int, float]:
    """NPMI of each topic's top-k words from a chunk × term count matrix (columns indexed by
    ``vocabulary``); a word absent from the vocabulary is left out of its topic's pairs.

    P(w) = share of chunks containing w; NPMI(a, b) = log(P(a,b)/(P(a)P(b))) / -log P(a,b),
    −1 when a and b never co-occur. A topic's coherence is the mean over its word pairs.
    """
    vocab = sorted({w for t, ws in topic_words.items() if t != OUTLIER for w in ws[:top_k]
                    if w in vocabulary})
    if not vocab or counts.shape[0] == 0:
        return {}
    x = counts[:, [vocabulary[w] for w in vocab]].astype(bool).astype(np.float64).tocsc()
    n = x.shape[0]
    p = np.asarray(x.sum(axis=0)).ravel() / n
    co = (x.T @ x).toarray() / n
    index = {w: i for i, w in enumerate(vocab)}
    out: dict[int, float] = {}
    for topic, words in topic_words.items():
        if topic == OUTLIER:
            continue
        ids = [index[w] for w in words[:top_k] if w in index]
        scores = [_pair_npmi(co[i, j], p[i], p[j])
                  for a, i in enumerate(ids) for j in ids[a + 1:]]
        out[topic] = float(np.mean(scores)) if scores else float("nan")
    return out


def npmi_coherence(topic_words: dict[int, list[str]], lemma_docs: list[str],
                   ngram_max: int = 2, top_k: int = 10) -> dict[int, float]:
    """NPMI of each topic's top-k words, from document co-occurrences in ``lemma_docs``
    (see :func:`npmi_from_counts`)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vocab = sorted({w for t, ws in topic_words.items() if t != OUTLIER for w in ws[:top_k]})
    if not vocab or not lemma_docs:
        return {}
    cv = CountVectorizer(lowercase=False, token_pattern=r"(?u)[^\s]+",
                         ngram_range=(1, ngram_max), vocabulary=vocab)
    return npmi_from_counts(topic_words, cv.transform(lemma_docs), cv.vocabulary_, top_k)
