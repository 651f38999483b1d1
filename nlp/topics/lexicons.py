"""The theme lexicons, as the annotate stage validated them, for the topic stage.

Input: ``outputs/tables/lexicon_terms.parquet`` (columns ``theme``, ``kind``, ``subtheme``,
``term_id``, ``match``, ``term``), written by ``barometre annotate`` from the validated
lexicons — this stage never reads the lexicon YAML files. Output: theme id → its terms, their
lemmas (same lemmatisation as the topic words), and the seed topics of guided BERTopic.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from nlp.schema import THEMES
from nlp.topics.lemmas import doc_lemmas, topic_stop_words

LEXICON_TERM_COLUMNS = ["theme", "kind", "subtheme", "term_id", "match", "term"]


def theme_terms(lexicon_terms: pd.DataFrame | None) -> dict[str, list[str]]:
    """Theme id → its ``lemma``/``lower`` terms (token patterns have no term text; the digital
    context lexicon is left out: it is what selected the chunks)."""
    if lexicon_terms is None or lexicon_terms.empty:
        return {}
    df = lexicon_terms
    if "kind" in df.columns:
        df = df[df["kind"].fillna("theme") == "theme"]
    df = df[df["theme"].isin(list(THEMES)) & (df["match"] != "pattern")]
    out: dict[str, list[str]] = {}
    for theme, term in zip(df["theme"], df["term"]):
        if isinstance(term, str) and term.strip():
            out.setdefault(str(theme), []).append(term.strip())
    return out


def lemmatize_lexicons(lexicons: dict[str, list[str]], pipeline: Any) -> dict[str, set[str]]:
    """Theme → set of lemma strings of its terms (same lemmatisation as the topic words)."""
    out: dict[str, set[str]] = {}
    stops = topic_stop_words()
    for theme, terms in lexicons.items():
        lemmas = {doc_lemmas(doc, stops, proper_nouns=True) for doc in pipeline.pipe(terms)}
        out[theme] = {lem for lem in lemmas if lem}
    return out


def seed_topics(lexicon_lemmas: dict[str, set[str]]) -> tuple[list[str], list[list[str]]]:
    """(themes, seed word lists) for guided BERTopic, one seed topic per theme with terms."""
    themes, seeds = [], []
    for theme in sorted(lexicon_lemmas):
        words = sorted(lexicon_lemmas[theme])
        if words:
            themes.append(theme)
            seeds.append(words)
    return themes, seeds
