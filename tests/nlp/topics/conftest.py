"""Shared fixtures of the topic tests. Fitted runs are session-scoped (UMAP's first use in a
process costs seconds of numba compilation) and shared by the test modules that read them."""
from __future__ import annotations

import pytest

from nlp.topics import run_topics
from topic_corpus import inputs, lexicon_table, synthetic_corpus, topic_settings


@pytest.fixture(scope="session")
def pipeline():
    from nlp.topics.embeddings import load_spacy_pipeline

    return load_spacy_pipeline()


@pytest.fixture(scope="session")
def lexicons():
    return lexicon_table()


@pytest.fixture(scope="session")
def corpus():
    return synthetic_corpus(330)


@pytest.fixture(scope="session")
def fitted(corpus, lexicons, pipeline, tmp_path_factory):
    """(outputs dir, summary) of a run with figures on the 330-paragraph corpus."""
    out = tmp_path_factory.mktemp("topics_a")
    return out, run_topics(inputs(*corpus, lexicons), out, topic_settings(figures=True),
                           pipeline=pipeline)


@pytest.fixture(scope="session")
def fitted_again(corpus, lexicons, pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("topics_b")
    return out, run_topics(inputs(*corpus, lexicons), out, topic_settings(), pipeline=pipeline)


@pytest.fixture(scope="session")
def fitted_shuffled(corpus, lexicons, pipeline, tmp_path_factory):
    paragraphs, documents = corpus
    shuffled = paragraphs.sample(frac=1.0, random_state=7).reset_index(drop=True)
    out = tmp_path_factory.mktemp("topics_c")
    return out, run_topics(inputs(shuffled, documents.iloc[::-1], lexicons), out,
                           topic_settings(), pipeline=pipeline)
