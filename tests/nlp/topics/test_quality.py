"""Tests of nlp/topics/quality.py: topic diversity and NPMI coherence, computed by hand."""
from __future__ import annotations

import math

import pytest

from nlp.topics import npmi_coherence, topic_diversity


def test_diversity_and_npmi_by_hand():
    assert topic_diversity({0: ["a", "b"], 1: ["b", "c"], -1: ["z", "z"]}) == 0.75
    docs = ["a b", "a b", "c", "c d"]
    npmi = npmi_coherence({0: ["a", "b"], 1: ["c", "d"], 2: ["a", "d"]}, docs, ngram_max=1)
    assert npmi[0] == pytest.approx(1.0)  # a and b always together
    # c in 2 docs, d in 1, together in 1: P=1/4; PMI=log(0.25/(0.5*0.25))=log 2; NPMI=log2/log4
    assert npmi[1] == pytest.approx(math.log(2) / math.log(4))
    assert npmi[2] == -1.0  # never together


def test_npmi_from_the_shared_count_matrix_equals_its_own_count():
    """The stage computes NPMI from the count matrix it shares with the words per class: the
    same figures as counting the topic words alone."""
    from sklearn.feature_extraction.text import CountVectorizer

    from nlp.topics.quality import npmi_from_counts

    docs = ["donnée ouvert portail", "donnée ouvert", "agent formation", "agent télétravail formation",
            "portail usager démarche", "démarche ligne usager"]
    words = {0: ["donnée", "ouvert", "donnée ouvert"], 1: ["agent", "formation", "télétravail"],
             2: ["usager", "démarche", "portail"]}
    cv = CountVectorizer(lowercase=False, token_pattern=r"(?u)[^\s]+", ngram_range=(1, 2)).fit(docs)
    shared = npmi_from_counts(words, cv.transform(docs), cv.vocabulary_)
    assert shared == pytest.approx(npmi_coherence(words, docs, ngram_max=2))
