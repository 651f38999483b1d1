"""What a hit counts as (nlp.annotate.polarity + annotator): one hit per mention, barriers
never negated, negation in a purpose clause, other actors, lack of a driver counted as the
barrier, and the rules' own examples. Built from real phrasing (the indicators issue and the
guidelines); each of these failed on the annotator before the polarity rules."""
from __future__ import annotations

import pytest


def counted(ann, theme):
    return [h for h in ann.hits if h.count_theme == theme]


def test_polarity_file_examples(annotator, lexicons):
    assert lexicons.polarity.version >= 1 and lexicons.polarity.examples
    for kind, theme, sentence in lexicons.polarity.examples:
        ann = annotator.annotate_one(sentence)
        own = [h for h in ann.hits if h.theme == theme]
        assert own, (kind, sentence)
        if kind == "negated":
            assert all(h.negated and h.count_theme != theme for h in own), sentence
        elif kind == "lacking":
            assert all((h.lacking or h.negated) and h.count_theme != theme for h in own), sentence
        elif kind == "not_negated":
            assert any(h.count_theme == theme and not h.negated for h in own), sentence
        elif kind == "other_actor":
            assert all(h.other_actor and not h.counts for h in own), sentence


@pytest.mark.parametrize("sentence", [
    "Une absence d'interopérabilité entre les logiciels métiers ralentit la dématérialisation.",
    "La transformation numérique menée sans accompagnement suscite des résistances au changement chez les agents.",
    "La direction du numérique expose sans fard ses contraintes budgétaires pour le projet de plateforme numérique.",
])
def test_a_barrier_stated_as_a_lack_is_the_barrier(annotator, sentence):
    ann = annotator.annotate_one(sentence)
    barriers = [h for h in ann.hits if h.theme == "frein_interne"]
    assert barriers and all(not h.negated for h in barriers)
    assert "frein_interne" in ann.labels


def test_negation_in_a_purpose_clause_is_not_an_absence(annotator):
    ann = annotator.annotate_one(
        "La métropole forme des médiateurs numériques pour ne pas exclure les personnes éloignées du numérique.")
    assert counted(ann, "inclusion") and "inclusion" in ann.labels
    assert not any(h.negated for h in ann.hits if h.theme == "inclusion")


@pytest.mark.parametrize("sentence, driver, barrier", [
    ("La collectivité ne dispose d'aucune feuille de route numérique.", "strategie", "frein_interne"),
    ("Le projet de guichet unique numérique a été abandonné en 2022.", "relation_usager", "frein_interne"),
    ("Sur le schéma directeur du numérique, nous sommes en retard.", "strategie", "frein_interne"),
])
def test_lack_of_a_driver_counts_as_the_barrier(annotator, sentence, driver, barrier):
    ann = annotator.annotate_one(sentence)
    own = [h for h in ann.hits if h.theme == driver]
    assert own and not counted(ann, driver)
    assert any(h.reason == "lack-as-barrier" and h.count_theme == barrier for h in own)
    assert driver not in ann.labels and barrier in ann.labels


def test_a_remedy_is_not_a_lack(annotator):
    ann = annotator.annotate_one(
        "Pour combler le retard, la métropole adopte un schéma directeur du numérique.")
    assert counted(ann, "strategie")


def test_what_others_have_is_not_the_metropolis_s(annotator):
    ann = annotator.annotate_one(
        "Les métropoles voisines ont un portail open data, un budget participatif en ligne.")
    own = [h for h in ann.hits if h.theme in ("donnees", "citoyennete")]
    assert own and all(h.other_actor and h.reason == "other-actor" for h in own)
    assert "donnees" not in ann.labels and "citoyennete" not in ann.labels
    back = annotator.annotate_one(
        "D'autres collectivités l'ont fait ; la métropole ouvre à son tour un portail open data.")
    assert counted(back, "donnees")


def test_one_mention_is_one_hit(annotator):
    # nested and overlapping spans of one theme were counted two or three times
    for text, theme in (("Le schéma directeur du numérique est adopté par le conseil.", "strategie"),
                        ("La métropole lance une plateforme de participation citoyenne.", "citoyennete")):
        ann = annotator.annotate_one(text)
        spans = [(h.text_start, h.text_end) for h in ann.hits if h.theme == theme]
        assert len(spans) == 1, (text, [(h.term_id, h.matched) for h in ann.hits if h.theme == theme])


def test_out_of_context_hits_are_kept_but_do_not_count(annotator):
    ann = annotator.annotate_one("Une convention de partenariat est signée avec le club de rugby.")
    hits = [h for h in ann.hits if h.theme == "partenariats"]
    assert hits and all(h.reason == "out-of-context" and not h.counts for h in hits)
    ann = annotator.annotate_one("Les contraintes budgétaires obligent à reporter les travaux de voirie.")
    assert not any(h.counts for h in ann.hits if h.theme == "frein_interne")


def test_every_item_of_a_negated_ni_list_is_negated(annotator):
    """"ni X, ni Y, ni Z" after "n'": every item is denied, however far the particle (the
    demo's Brumeval minutes; the same form is common in audit reports)."""
    ann = annotator.annotate_one(
        "Avant 2020, il n'existe ni schéma directeur, ni comité de pilotage, ni direction du numérique transversale.")
    strategy = [h for h in ann.hits if h.theme == "strategie"]
    assert len(strategy) >= 2 and all(h.negated for h in strategy), [(h.matched, h.negated) for h in strategy]
    ann = annotator.annotate_one("Le comité de pilotage du numérique se réunit, ni plus ni moins, deux fois par an.")
    assert any(not h.negated for h in ann.hits if h.theme == "strategie")
