"""Tests of nlp/topics/lexicons.py: the theme lexicons come from the annotate stage's
``lexicon_terms`` table (validated there), never from the YAML files; guided topics."""
from __future__ import annotations

import pandas as pd
import pytest

from nlp.errors import BarometreError
from nlp.schema import THEMES
from nlp.topics import run_topics, theme_terms
from topic_corpus import LEXICONS, inputs, synthetic_corpus, topic_settings


def test_theme_terms_keep_theme_lexicons_and_term_texts():
    table = pd.DataFrame([
        ("inclusion", "theme", None, "inclusion.cn", "lemma", "conseiller numérique"),
        ("inclusion", "theme", None, "inclusion.p", "pattern", ""),
        ("numerique", "context", None, "numerique.x", "lower", "numérique"),
        ("donnees", "theme", None, "donnees.od", "lower", "open data"),
        ("inconnu", "theme", None, "inconnu.x", "lower", "x"),
    ], columns=["theme", "kind", "subtheme", "term_id", "match", "term"])
    assert theme_terms(table) == {"inclusion": ["conseiller numérique"], "donnees": ["open data"]}
    assert theme_terms(None) == {} and theme_terms(table.iloc[:0]) == {}


@pytest.mark.skipif(not LEXICONS.is_dir(), reason="lexicons/ not present")
def test_shipped_lexicons_give_every_theme_terms(lexicons):
    terms = theme_terms(lexicons)
    assert "inclusion" in terms and terms["inclusion"]
    assert set(terms) <= set(THEMES) and len(terms) >= 8


@pytest.mark.skipif(not LEXICONS.is_dir(), reason="lexicons/ not present")
def test_seeding_with_lexicons_maps_topics_back_to_seeds(lexicons, pipeline, tmp_path):
    paragraphs, documents = synthetic_corpus(60, seed=5)
    summary = run_topics(inputs(paragraphs, documents, lexicons), tmp_path,
                         topic_settings(seed_with_lexicons=True), pipeline=pipeline)
    assert "inclusion" in summary["seeded_themes"]
    tmap = pd.read_parquet(tmp_path / "tables" / "topic_theme_map.parquet")
    seeded = tmap[tmap["theme"].isin(summary["seeded_themes"])]
    assert seeded["seed_similarity"].notna().all()


def test_seeding_without_lexicons_is_a_clear_error(pipeline, tmp_path):
    paragraphs, documents = synthetic_corpus(60)
    with pytest.raises(BarometreError, match="no theme term"):
        run_topics(inputs(paragraphs, documents, None), tmp_path,
                   topic_settings(seed_with_lexicons=True), pipeline=pipeline)


def test_the_stage_imports_no_other_stage_and_no_yaml_reader():
    """Issue 12's rules for this package: it depends on the shared modules ``schema``, ``io``,
    ``errors``, ``config``, ``reuse``, ``compute`` and ``spacy_pipelines`` only (never on another stage, ``crawler``, ``pipeline``/``cli``), and reads no
    lexicon YAML (no ``yaml`` module, no ``load_yaml``)."""
    import ast
    from pathlib import Path

    import nlp.topics

    allowed = {"nlp.schema", "nlp.io", "nlp.errors", "nlp.config", "nlp.reuse", "nlp.compute",
               "nlp.spacy_pipelines"}
    for module in Path(nlp.topics.__file__).parent.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                assert "load_yaml" not in {a.name for a in node.names}, module.name
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"yaml", "crawler"}, f"{module.name}: {name}"
                if name.startswith("nlp.") and not name.startswith("nlp.topics"):
                    assert name in allowed, f"{module.name} imports {name}"
