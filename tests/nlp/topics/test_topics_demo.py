"""The topic stage on the demo corpus (issue 6 acceptance: topics with a mapping to themes).

Paragraphs come from the demo documents (``nlp/demo/content``: four fictional metropolises),
marked digital and given themes by the real theme annotator over the real lexicons, as the
annotate stage does (and the lexicons as its ``lexicon_terms`` table); the topic stage then
runs on the digital ones.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nlp.schema import THEMES
from nlp.topics import TopicInputs, TopicSettings, run_topics
from topic_corpus import lexicon_table

ROOT = Path(__file__).resolve().parents[3]
LEXICONS = ROOT / "lexicons"


def demo_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    from nlp.demo.content import load_documents, load_metropoles
    from nlp.annotate.annotator import ThemeAnnotator
    from nlp.annotate.lexicons import load_lexicons

    rows, docs = [], []
    for metro in load_metropoles():
        for doc in load_documents(metro):
            doc_id = f"{metro.slug}/{doc.stem}"
            docs.append((doc_id, metro.slug, doc.date.year, doc.doc_type))
            texts = [b.text for b in doc.blocks if b.kind in ("p", "li")] + doc.considerant + doc.articles
            for j, text in enumerate(texts):
                rows.append((doc_id, metro.slug, 1, j, text))
    paragraphs = pd.DataFrame(rows, columns=["document_id", "metropole", "page", "paragraph", "text"])
    annotator = ThemeAnnotator(load_lexicons(LEXICONS), mode="fast")
    notes = list(annotator.annotate(paragraphs["text"].tolist()))
    paragraphs["is_digital"] = [a.is_digital for a in notes]
    paragraphs["themes"] = [a.themes for a in notes]
    paragraphs["n_words"] = [a.n_words for a in notes]
    paragraphs["n_sentences"] = [a.n_sentences for a in notes]
    documents = pd.DataFrame(docs, columns=["document_id", "metropole", "year", "doc_type"])
    return paragraphs, documents


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    if not LEXICONS.is_dir():
        pytest.skip("lexicons/ not present")
    pytest.importorskip("nlp.demo.content")
    paragraphs, documents = demo_tables()
    out = tmp_path_factory.mktemp("demo_topics")
    summary = run_topics(TopicInputs(paragraphs, documents, lexicon_table()), out,
                         TopicSettings(figures=False))
    return paragraphs, out, summary


def test_demo_corpus_gives_topics_mapped_to_themes(demo_run):
    paragraphs, out, summary = demo_run
    assert paragraphs["is_digital"].sum() >= 30
    assert summary["n_topics"] >= 2
    assert summary["lexicon_themes"] and set(summary["lexicon_themes"]) <= set(THEMES)
    topics = pd.read_parquet(out / "tables" / "topics.parquet")
    tmap = pd.read_parquet(out / "tables" / "topic_theme_map.parquet")
    assert set(tmap["topic"]) == set(topics["topic"])
    assert set(tmap["theme"]) == set(THEMES)
    # Most topics have a dominant theme carried by their chunks' annotator hits.
    real = topics[topics["topic"] != -1]
    assert (real["best_theme_share"] > 0.3).mean() >= 0.5
    assert tmap["lexical_overlap"].max() > 0
    per_metro = pd.read_parquet(out / "tables" / "topics_per_metropole.parquet")
    assert per_metro["metropole"].nunique() == 4
    over_time = pd.read_parquet(out / "tables" / "topics_over_time.parquet")
    assert over_time["year"].nunique() >= 2
