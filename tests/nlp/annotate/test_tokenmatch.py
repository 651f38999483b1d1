"""The anchor token matcher (nlp.annotate.tokenmatch) against spaCy's Matcher, which it
replaces: the same matches, rule by rule, on real text, for the shipped lexicons' token
patterns, on whole docs and on the sentence windows the gated rules run on; and on
hand-written patterns that exercise every operator."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from spacy.attrs import LOWER, NORM, ORTH
from spacy.matcher import Matcher

from nlp.annotate.annotator import ThemeAnnotator
from nlp.annotate.lexicons import load_lexicons
from nlp.annotate.tokenmatch import DocColumns, RuleMatcher, Unsupported
from nlp.errors import LexiconError

ROOT = Path(__file__).resolve().parents[3]
TRAINING = ROOT / "nlp" / "annotate" / "training" / "paragraphs.jsonl"


def _texts(n: int) -> list[str]:
    """Real paragraphs of the training set (in the repository), spread over the file."""
    lines = [json.loads(x)["text"] for x in TRAINING.read_text(encoding="utf-8").splitlines() if x.strip()]
    step = max(1, len(lines) // n)
    return lines[::step][:n]


def _spacy_matcher(vocab, rule_id: str, patterns) -> Matcher:
    m = Matcher(vocab)
    m.add(rule_id, patterns, greedy="LONGEST")
    return m


def _spacy_pairs(m: Matcher, doc, a: int, b: int) -> list[tuple[int, int]]:
    target = doc if (a, b) == (0, len(doc)) else doc[a:b]
    return sorted((a + s, a + e) for _k, s, e in m(target))


def _ours(matcher: RuleMatcher, doc, a: int, b: int) -> list[tuple[int, int]]:
    values = doc.to_array([NORM, LOWER, ORTH])
    cols = DocColumns(doc, values, [NORM, LOWER, ORTH], doc.vocab.strings)
    return sorted(matcher.match(cols, a, b))


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_shipped_patterns_match_as_spacy_matcher_does(mode: str, model) -> None:
    """Every token-pattern rule of the shipped lexicons, on 600 (fast) or 150 (full) real
    paragraphs: identical matches on the whole doc and on a sentence window."""
    annotator = ThemeAnnotator(load_lexicons(ROOT / "lexicons"), mode=mode, lemma_pipeline=model)
    compiled = annotator.compiled
    entries = [m for m, _reqs in compiled._free + compiled._gated]
    assert len(entries) > 40  # the lexicons' "A … B" rules are token patterns
    vocab = annotator.pipeline.vocab
    spacy_matchers = {m.rule.id: _spacy_matcher(vocab, m.rule.id, [compiled._translate_pattern(p, m.rule)
                                                                   for p in m.rule.patterns])
                      for m in entries}
    matched = 0
    for doc in annotator.pipeline.pipe(_texts(600 if mode == "fast" else 150)):
        n = len(doc)
        windows = [(0, n)] + ([(n // 4, (3 * n) // 4)] if n > 8 else [])
        for m in entries:
            for a, b in windows:
                want = _spacy_pairs(spacy_matchers[m.rule.id], doc, a, b)
                assert _ours(m, doc, a, b) == want, (m.rule.id, doc.text[:200], a, b)
                matched += bool(want)
    assert matched > 50, "the comparison must see real matches, not only empty results"


HAND = [
    # (patterns, text)
    ([[{"LOWER": "schéma"}, {"IS_ALPHA": True, "OP": "{0,3}"}, {"LOWER": "numérique"}]],
     "Le schéma directeur du numérique et le schéma numérique ; schéma de la ville numérique."),
    ([[{"LOWER": "plan", "OP": "?"}, {"LOWER": "numérique"}, {"IS_PUNCT": True, "OP": "*"}]],
     "Le plan numérique, le numérique !! et plan plan numérique."),
    ([[{"LOWER": "données"}, {"LOWER": {"NOT_IN": ["personnelles"]}}]],
     "Les données personnelles et les données ouvertes."),
    ([[{"LOWER": {"REGEX": "^cyber"}}, {"LOWER": "attaque", "OP": "!"}]],
     "Une cyberattaque massive, une cybersécurité renforcée, cyber attaque."),
    ([[{"LOWER": "open"}, {"LOWER": "data", "OP": "+"}]], "open data data open data."),
    ([[{"LENGTH": {">=": 4}}, {"LOWER": "numérique"}]], "Le numérique et la stratégie numérique."),
    ([[{"LOWER": "fibre"}, {"OP": "{1,2}"}, {"LIKE_NUM": True}]], "La fibre optique 2025 et la fibre à très 2030."),
    ([[{"IS_ALPHA": True}, {"LOWER": "numérique"}], [{"LOWER": "la"}, {"LOWER": "stratégie"}]],
     "La stratégie numérique de la stratégie."),
]


@pytest.mark.parametrize("patterns,text", HAND)
def test_operators_match_as_spacy_matcher_does(patterns, text, model) -> None:
    doc = model.make_doc(text)

    class Rule:
        id = "hand.rule"

    ours = RuleMatcher(Rule(), patterns, model.vocab.strings.add)
    for a, b in [(0, len(doc)), (1, len(doc) - 1)]:
        want = _spacy_pairs(_spacy_matcher(model.vocab, "hand.rule", patterns), doc, a, b)
        assert _ours(ours, doc, a, b) == want


def test_a_meaningless_pattern_is_refused_at_load(model) -> None:
    class Rule:
        id = "hand.rule"

    with pytest.raises(Unsupported):
        RuleMatcher(Rule(), [[{"IS_ALPHA": {"REGEX": "x"}}]], model.vocab.strings.add)
    with pytest.raises(Unsupported):
        RuleMatcher(Rule(), [[{"LOWER": {">=": 3}}]], model.vocab.strings.add)


def test_the_compiler_names_the_term_of_a_refused_pattern(tmp_path, model) -> None:
    src = (ROOT / "lexicons")
    for f in src.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "agents.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("terms:\n", "terms:\n  - id: agents.bad_regex\n    match: pattern\n"
                        "    patterns:\n      - [{LOWER: agents}, {IS_ALPHA: {REGEX: x}}]\n", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LexiconError, match="agents.bad_regex"):
        ThemeAnnotator(load_lexicons(tmp_path), lemma_pipeline=model)
