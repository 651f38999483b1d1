"""Lexicon loading and validation (nlp.annotate.lexicons): the shipped files load, and every
validation error names the file and the term."""
from __future__ import annotations

from pathlib import Path

import pytest

from nlp.errors import BarometreError, LexiconError
from nlp.annotate.lexicons import load_lexicons
from nlp.schema import DIGITAL_LABEL, THEMES

LEXICON_DIR = Path(__file__).resolve().parents[3] / "lexicons"

CONTEXT = """\
id: numerique
label: Contexte numérique
version: 1
kind: context
terms:
  - id: numerique.mot
    match: lemma
    terms: ["numérique"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def theme(term_block: str, extra: str = "", lex_id: str = "demo") -> str:
    return f"id: {lex_id}\nlabel: Démo\nversion: 1\n{extra}terms:\n{term_block}"


GOOD_TERM = "  - id: demo.a\n    match: lemma\n    terms: [\"plateforme\"]\n"


def test_shipped_lexicons_load_and_cover_the_design_themes():
    lexicons = load_lexicons(LEXICON_DIR)
    assert set(lexicons.theme_ids) == set(THEMES)
    assert lexicons.context is not None and lexicons.context.id == DIGITAL_LABEL
    assert set(lexicons.versions) == set(THEMES) | {DIGITAL_LABEL, "polarity"}  # polarity.yaml is versioned too
    assert all(isinstance(v, int) and v >= 1 for v in lexicons.versions.values())
    labels = lexicons.label_ids
    for sub in ("frein_interne.acculturation", "frein_interne.technique", "frein_interne.politique",
                "frein_interne.budgetaire", "frein_externe.craintes", "frein_externe.fracture"):
        assert sub in labels
    for lex in lexicons:
        assert lex.positive and lex.negative, f"{lex.path} needs positive and negative examples"


def test_a_minimal_valid_directory(tmp_path):
    write(tmp_path, "numerique.yaml", CONTEXT)
    write(tmp_path, "demo.yaml", theme(GOOD_TERM))
    lexicons = load_lexicons(tmp_path)
    assert lexicons.versions == {"demo": 1, "numerique": 1}
    assert lexicons["demo"].requires_digital_context is True  # themes default to requiring it


@pytest.mark.parametrize(
    "term_block, extra, message",
    [
        ("  - id: demo.a\n    match: lemma\n    terms: []\n", "", "non-empty list"),
        ("  - id: demo.a\n    match: lemma\n    terms: [\"  \"]\n", "", "empty"),
        ("  - id: demo.a\n    match: lemma\n", "", "non-empty list"),
        ("  - id: demo.a\n    match: regex\n    terms: [\"x\"]\n", "", "bad match mode"),
        ("  - id: demo.a\n    match: lemma\n    terms: [\"x\"]\n    colour: red\n", "", "unknown field"),
        ("  - id: demo.a\n    match: lower\n    terms: [\"FranceConnect\"]\n", "", "can never match"),
        ("  - id: demo.a\n    match: pattern\n    patterns: [[{POS: NOUN}]]\n", "", "can never match"),
        ("  - id: demo.a\n    match: pattern\n    patterns: [[{LOWER: Numérique}]]\n", "", "can never match"),
        ("  - id: demo.a\n    match: pattern\n    patterns: [[]]\n", "", "non-empty list"),
        ("  - id: demo.a\n    match: pattern\n    terms: [\"x\"]\n", "", "takes 'patterns'"),
        ("  - id: demo.a\n    match: lemma\n    terms: [\"x\"]\n    subtheme: nope\n", "", "unknown subtheme"),
        ("  - id: Bad Id\n    match: lemma\n    terms: [\"x\"]\n", "", "dotted"),
        (GOOD_TERM + GOOD_TERM, "", "duplicate term id"),
    ],
)
def test_term_errors_name_file_and_term(tmp_path, term_block, extra, message):
    write(tmp_path, "numerique.yaml", CONTEXT)
    write(tmp_path, "demo.yaml", theme(term_block, extra))
    with pytest.raises(LexiconError) as info:
        load_lexicons(tmp_path)
    text = str(info.value)
    assert message in text
    assert "demo.yaml" in text
    assert isinstance(info.value, BarometreError)


@pytest.mark.parametrize(
    "content, message",
    [
        ("id: demo\nlabel: [unclosed\n", "YAML syntax error"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("id: demo\nlabel: Démo\nversion: 1\nterms:\n" + GOOD_TERM + "colour: red\n", "unknown field"),
        ("id: demo\nlabel: Démo\nterms:\n" + GOOD_TERM, "missing field 'version'"),
        ("id: demo\nlabel: Démo\nversion: 0\nterms:\n" + GOOD_TERM, "positive integer"),
        ("id: Démo\nlabel: Démo\nversion: 1\nterms:\n" + GOOD_TERM, "ASCII slug"),
        ("id: demo\nlabel: Démo\nversion: 1\nterms: []\n", "non-empty list"),
        ("id: demo\nlabel: Démo\nversion: 1\nkind: other\nterms:\n" + GOOD_TERM, "kind must be"),
    ],
)
def test_file_errors_name_the_file(tmp_path, content, message):
    write(tmp_path, "numerique.yaml", CONTEXT)
    write(tmp_path, "demo.yaml", content)
    with pytest.raises(LexiconError) as info:
        load_lexicons(tmp_path)
    assert message in str(info.value)
    assert "demo.yaml" in str(info.value)


def test_duplicate_term_id_across_files(tmp_path):
    write(tmp_path, "numerique.yaml", CONTEXT)
    write(tmp_path, "a.yaml", theme(GOOD_TERM, lex_id="demo"))
    write(tmp_path, "b.yaml", theme(GOOD_TERM, lex_id="other"))
    with pytest.raises(LexiconError) as info:
        load_lexicons(tmp_path)
    assert "demo.a" in str(info.value) and "a.yaml" in str(info.value) and "b.yaml" in str(info.value)


def test_duplicate_lexicon_id_across_files(tmp_path):
    write(tmp_path, "numerique.yaml", CONTEXT)
    write(tmp_path, "a.yaml", theme(GOOD_TERM))
    write(tmp_path, "b.yaml", theme("  - id: demo.b\n    match: lemma\n    terms: [\"x\"]\n"))
    with pytest.raises(LexiconError, match="duplicate lexicon id 'demo'"):
        load_lexicons(tmp_path)


def test_context_lexicon_required_and_unique(tmp_path):
    write(tmp_path, "demo.yaml", theme(GOOD_TERM))
    with pytest.raises(LexiconError, match="no lexicon with kind: context"):
        load_lexicons(tmp_path)
    write(tmp_path, "numerique.yaml", CONTEXT)
    write(tmp_path, "numerique2.yaml", CONTEXT.replace("id: numerique\n", "id: numerique2\n")
          .replace("numerique.mot", "numerique2.mot"))
    with pytest.raises(LexiconError, match="more than one context lexicon"):
        load_lexicons(tmp_path)


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(LexiconError, match="does not exist"):
        load_lexicons(tmp_path / "nope")
    with pytest.raises(LexiconError, match="no \\*.yaml"):
        load_lexicons(tmp_path)


def test_polarity_file_is_validated(tmp_path):
    from nlp.errors import LexiconError

    write(tmp_path, "numerique.yaml", CONTEXT)
    write(tmp_path, "demo.yaml", theme(GOOD_TERM))
    write(tmp_path, "polarity.yaml", "id: polarity\nkind: polarity\nversion: 1\nlack_counts_as: {demo: nowhere}\n")
    with pytest.raises(LexiconError, match="polarity.yaml: lack_counts_as.demo: 'nowhere' is not a barrier label"):
        load_lexicons(tmp_path)
    write(tmp_path, "polarity.yaml", "id: polarity\nkind: polarity\nversion: 1\nnegation: {window: 99}\n")
    with pytest.raises(LexiconError, match="negation.window must be an integer from 1 to 20"):
        load_lexicons(tmp_path)


def test_a_yaml_bomb_in_a_lexicon_is_one_message(tmp_path):
    write(tmp_path, "numerique.yaml", CONTEXT)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefg", "bcdefgh"))
    write(tmp_path, "demo.yaml", bomb)
    with pytest.raises(BarometreError, match="demo.yaml: YAML expands to more than"):
        load_lexicons(tmp_path)
