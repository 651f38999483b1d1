"""Tests of nlp/topics/lemmas.py: content lemmas for topic words, full and sampled."""
from __future__ import annotations

from nlp.topics import TopicSettings, lemmatize, sampled_lemmatize
from nlp.topics.lemmas import compute_lemmas, make_vectorizer, topic_stop_words


def test_sampled_lemmatizer_agrees_with_full_pipeline(corpus, pipeline):
    texts = corpus[0]["text"].tolist()[:120]
    full = lemmatize(texts, pipeline)
    fast, stats = sampled_lemmatize(texts, pipeline, sample_size=60, seed=1)
    assert stats["sample"] == 60 and stats["forms_learnt"] > 100
    same = sum(a == b for f, s in zip(full, fast) for a, b in zip(f.split(), s.split()))
    total = sum(len(f.split()) for f in full)
    assert same / total > 0.9
    # In-context lemmas, not the context-free lookup's "donner" for "données".
    assert "donnée" in " ".join(fast) and "donner" not in " ".join(fast)
    again, _ = sampled_lemmatize(texts, pipeline, sample_size=60, seed=1)
    assert again == fast


def test_lemmas_drop_stop_words_boilerplate_and_proper_nouns(pipeline):
    out = lemmatize(["Le conseil de la Métropole de Rouen approuve la délibération sur les "
                     "données ouvertes."], pipeline)[0].split()
    assert "donnée" in out
    assert not set(out) & {"le", "de", "conseil", "délibération", "rouen"}
    assert not set(out) & topic_stop_words()


def test_auto_mode_switches_to_the_sampled_lemmatizer(corpus, pipeline):
    texts = corpus[0]["text"].tolist()[:50]
    _, info = compute_lemmas(texts, pipeline, TopicSettings(lemma_full_max=100))
    assert info["mode"] == "spacy"
    _, info = compute_lemmas(texts, pipeline, TopicSettings(lemma_full_max=40, lemma_sample_size=20))
    assert info["mode"] == "sampled" and info["sample"] == 20


def test_topic_words_vectorizer_keeps_accents_and_bigrams():
    cv = make_vectorizer(TopicSettings()).fit(["médiation numérique donnée ouvert"])
    assert "médiation numérique" in cv.vocabulary_ and "donnée" in cv.vocabulary_


def test_the_lemmatising_pipeline_caches_a_corpus_s_word_forms(pipeline):
    """spaCy's tokenizer memoises only the first 10,000 distinct chunks it meets by default;
    the topic stage's pipeline keeps room for a corpus's word forms (nlp.spacy_pipelines)."""
    from nlp.spacy_pipelines import TOKENIZER_CACHE_CHUNKS

    assert pipeline.tokenizer.max_cache_size == TOKENIZER_CACHE_CHUNKS > 10_000
