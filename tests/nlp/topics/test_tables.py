"""Tests of nlp/topics/tables.py on the fitted synthetic corpus: topics line up with the
planted themes through the paragraph labels, words per metropolis as BERTopic computes them,
shares that add up."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import normalized_mutual_info_score

from topic_corpus import LEXICONS, METROPOLES, THEMES5, inputs, synthetic_corpus, topic_settings


def test_topics_line_up_with_the_planted_themes(fitted):
    out, _ = fitted
    dt = pd.read_parquet(out / "tables" / "doc_topics.parquet")
    gold = dt["themes"].map(lambda t: t[0])
    assert normalized_mutual_info_score(gold, dt["topic"]) > 0.6
    tmap = pd.read_parquet(out / "tables" / "topic_theme_map.parquet")
    assert {"topic", "theme", "share_chunks", "lexical_overlap", "overlap_terms"} <= set(tmap.columns)
    best = tmap.sort_values("share_chunks", ascending=False).groupby("topic").head(1)
    # Every planted theme is the dominant theme of at least one topic, with a clear majority.
    assert set(best["theme"]) >= set(THEMES5)
    assert (best["share_chunks"] > 0.6).mean() > 0.8
    if LEXICONS.is_dir():
        assert tmap["lexical_overlap"].max() > 0  # some top terms are lexicon terms


def test_shares_add_up_and_every_chunk_has_a_topic(fitted):
    out, summary = fitted
    tables = out / "tables"
    doc_topics = pd.read_parquet(tables / "doc_topics.parquet")
    assert doc_topics["topic"].notna().all() and len(doc_topics) == summary["n_chunks"]
    per_metro = pd.read_parquet(tables / "topics_per_metropole.parquet")
    assert set(per_metro["metropole"]) == set(METROPOLES)
    assert np.allclose(per_metro.groupby("metropole")["share"].sum(), 1.0)
    assert per_metro["n_chunks"].sum() == len(doc_topics)
    docs = pd.read_parquet(tables / "document_topics.parquet")
    assert np.allclose(docs.groupby(["document_id", "metropole"])["share"].sum(), 1.0)
    over_time = pd.read_parquet(tables / "topics_over_time.parquet")
    assert set(over_time["year"]) == {2019, 2020, 2021, 2022}
    assert over_time["words"].notna().all() and per_metro["words"].notna().all()


def test_words_per_metropole_are_bertopics_topics_per_class(pipeline, tmp_path):
    """The words per class come from one count matrix instead of BERTopic re-tokenising the
    corpus once per class; they are the words ``BERTopic.topics_per_class`` picks, up to the
    order of equal scores. (With bigrams, BERTopic also counts a bigram straddling two chunks
    it joins, which a count per chunk does not: unigrams here, to compare scores exactly.)"""
    from nlp.topics import run_topics
    from nlp.topics.persist import load_embedder, load_fit_state, load_model, read_meta
    from nlp.topics.tables import class_scores, count_matrix

    paragraphs, documents = synthetic_corpus(120, seed=6)
    run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(ngram_max=1),
               pipeline=pipeline)
    model_dir = tmp_path / "models" / "topics"
    model = load_model(model_dir, load_embedder(model_dir, read_meta(model_dir)))
    state = load_fit_state(model_dir)
    dt = pd.read_parquet(tmp_path / "tables" / "doc_topics.parquet")
    classes = dt.loc[dt["duplicate_of"].isna(), "metropole"].tolist()
    lemmas = state["lemmas"].tolist()
    keys, scores = class_scores(model, count_matrix(model, lemmas), state["topic"].to_numpy(), classes)
    theirs = model.topics_per_class(lemmas, classes)
    ours = pd.read_parquet(tmp_path / "tables" / "topics_per_metropole.parquet")
    assert len(theirs) == len(keys) == len(ours)
    column = model.vectorizer_model.vocabulary_
    for i, key in enumerate(keys.itertuples()):
        row = scores.getrow(i).toarray().ravel()
        their = theirs[(theirs["Class"] == key.Class) & (theirs["Topic"] == key.Topic)].iloc[0]
        mine = ours[(ours["metropole"] == key.Class) & (ours["topic"] == key.Topic)].iloc[0]
        assert their["Frequency"] == key.Frequency
        pick = lambda words: sorted(row[column[w]] for w in words.split(", ") if w)  # noqa: E731
        assert pick(mine["words"]) == pytest.approx(pick(their["Words"]))


def test_topic_table_describes_every_topic(fitted):
    out, summary = fitted
    topics = pd.read_parquet(out / "tables" / "topics.parquet")
    assert (out / "tables" / "topics.csv").is_file()
    assert set(topics["topic"]) >= set(range(summary["n_topics"]))
    for row in topics.itertuples():
        assert len(row.top_terms) > 0 and row.label
        assert row.representative_sentence and len(row.representative_sentence.split()) >= 6
    # French topic words keep their accents (BERTopic's "english" mode strips them).
    words = {w for terms in topics["top_terms"] for w in terms}
    assert any(ch in w for w in words for ch in "éèàçô")
    assert not words & {"le", "de", "la", "délibération", "conseil"}
    csv = pd.read_csv(out / "tables" / "topics.csv")
    assert "; " in csv["top_terms"].iloc[0]  # lists flattened for spreadsheets
    assert topics["npmi"].dropna().between(-1, 1).all()
    assert summary["mean_npmi"] == pytest.approx(topics.loc[topics["topic"] != -1, "npmi"].mean(), abs=1e-4)
