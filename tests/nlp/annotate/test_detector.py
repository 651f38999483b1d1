"""The trained detector (nlp.annotate.model, detector, jsonl): the shipped model loads without
executing code and labels with probabilities and evidence; a model is deterministic given its
data and seed; the JSONL contract survives bad lines."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from nlp.annotate import training as T
from nlp.annotate.detector import ThemeDetector
from nlp.annotate.features import Resources, raw_features
from nlp.annotate.jsonl import run_themes_jsonl
from nlp.annotate.model import PACKAGED_MODEL_DIR, ThemeModel
from nlp.annotate.records import TextAnnotation
from nlp.errors import BarometreError
from nlp.schema import LABELS


@pytest.fixture(scope="module")
def resources():
    return Resources()


@pytest.fixture(scope="module")
def detector(annotator, resources):
    return ThemeDetector(annotator, ThemeModel.load(), resources)


def test_the_shipped_model_is_plain_data():
    # no pickled object array: every member loads with allow_pickle=False
    with np.load(PACKAGED_MODEL_DIR / "weights.npz", allow_pickle=False) as z:
        assert all(z[name].dtype != object for name in z.files)
    model = ThemeModel.load()
    doc = json.loads((PACKAGED_MODEL_DIR / "model.json").read_text(encoding="utf-8"))
    assert model.version == doc["version"] and model.version.startswith("themes@")
    assert set(model.labels) == set(LABELS)
    meta = model.meta
    assert meta["training_data"]["n_paragraphs"] >= 1500 and meta["lexicon_versions"]


def test_detection_has_probabilities_evidence_and_version(detector):
    texts = ["La métropole recrute six conseillers numériques pour accompagner les habitants éloignés du numérique.",
             "Le conseil approuve le compte administratif de l'exercice 2022.",
             "La collectivité ne dispose d'aucune feuille de route numérique."]
    dets = list(detector.detect(texts))
    assert "inclusion" in dets[0].labels and "numerique" in dets[0].labels
    assert dets[1].labels == []
    for d in dets:
        assert set(d.scores) == set(LABELS) and all(0.0 <= p <= 1.0 for p in d.scores.values())
        assert d.model == detector.version
        for lab in d.labels:  # every positive label carries evidence a reader can check
            assert d.evidence.get(lab), (lab, d.labels)
    assert dets[0].scores["inclusion"] > dets[1].scores["inclusion"]
    assert "strategie" not in dets[2].labels or "strategie" in dets[2].negated


def test_evidence_without_a_hit_is_the_best_sentence(detector):
    """A label the model gives without a counting hit is shown by the paragraph's sentence the
    model scores highest for it (each sentence scored alone), the same whether the batch holds
    one paragraph or several."""
    texts = ["Premier point sans objet. La ville publie ses budgets et ses délibérations en ligne.",
             "La séance est ouverte à 18 heures. Les habitants votent en ligne pour le budget participatif.",
             "Une seule phrase sur la transparence de l'action publique."]
    anns = [detector.annotator.annotate_one(t) for t in texts]
    missing = [(i, ["citoyennete"]) for i in range(len(texts))]
    together = [{} for _ in texts]
    detector._sentence_evidence(texts, anns, missing, together)  # noqa: SLF001
    model = detector.model
    j = model.labels.index("citoyennete")
    for i, (text, ann) in enumerate(zip(texts, anns)):
        alone = [{}]
        detector._sentence_evidence([text], [ann], [(0, ["citoyennete"])], alone)  # noqa: SLF001
        assert together[i] == alone[0]
        ev = together[i]["citoyennete"]
        assert len(ev) == 1 and ev[0]["kind"] == "sentence"
        sentences = [text[a:b] for a, b in ann.sentences]
        assert ev[0]["sentence"] == sentences[ev[0]["sentence_index"]]
        if len(sentences) > 1:
            scores = []
            for k, sentence in enumerate(sentences):
                own = [h for h in ann.hits if h.sentence_index == k]
                ctx = [h for h in ann.context_hits if h.sentence_index == k]
                sub = TextAnnotation(sentences=[ann.sentences[k]], n_words=0, is_digital=bool(ctx), hits=own,
                                     labels=sorted({h.count_theme for h in own if h.count_theme}), context_hits=ctx)
                z = model.decision(model.space.transform([raw_features(sentence, sub, detector.resources)]))
                scores.append(float(z[0, j]))
            assert ev[0]["sentence_index"] == int(np.argmax(scores))
        else:
            assert ev[0]["sentence_index"] == 0


def test_a_model_is_deterministic_given_data_and_seed(tmp_path, annotator, resources):
    examples = T.load_labelled(T.TRAINING_FILE)[:300]
    raws, _ = T.featurize(examples, annotator, resources)
    Y = T.label_matrix(examples)
    groups = [e.doc_id for e in examples]
    cfg = T.TrainConfig(inner_folds=3)
    a = T.fit_model(raws, Y, groups, cfg)
    b = T.fit_model(raws, Y, groups, cfg)
    va, vb = a.save(tmp_path / "a"), b.save(tmp_path / "b")
    assert va == vb
    loaded = ThemeModel.load(tmp_path / "a")
    X = loaded.space.transform(raws[:20])
    assert np.allclose(loaded.proba(X), a.proba(a.space.transform(raws[:20])))
    assert pickle.loads(pickle.dumps(loaded)).version == va


def test_an_unreadable_model_is_a_clear_error(tmp_path):
    with pytest.raises(BarometreError, match="no theme model"):
        ThemeModel.load(tmp_path)
    (tmp_path / "model.json").write_text('{"format": 99}', encoding="utf-8")
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(BarometreError, match="unreadable|format"):
        ThemeModel.load(tmp_path)


def test_jsonl_contract_and_bad_lines(tmp_path, detector):
    src = tmp_path / "in.jsonl"
    good = json.dumps({"id": "a", "text": "La métropole recrute des conseillers numériques."}, ensure_ascii=False)
    src.write_bytes(b"\xef\xbb\xbf" + good.encode() + b"\n" + b"\n".join([
        b"{not json",
        json.dumps({"id": "b"}).encode(),
        b'{"id": "c", "text": "caf\xe9"}',                              # latin-1 byte
        b'{"id": "d", "text": "\\ud800"}',                            # lone surrogate
        b"[" * 200 + b"]" * 200,                                        # deep nesting
        b'{"id": "e", "text": "x", "n": ' + b"9" * 5000 + b"}",        # 5,000-digit integer
        json.dumps({"id": "f", "text": "Le conseil approuve le compte administratif."}).encode(),
    ]) + b"\n")
    out = tmp_path / "out.jsonl"
    counts = run_themes_jsonl(src, out, detector)
    assert counts["written"] == 2 and counts["bad"] == 6 and counts["lines"] == 8
    assert any("line 4" in b and "UTF-8" in b for b in counts["bad_lines"])
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "f"]
    assert {"id", "labels", "hits", "scores", "evidence", "model"} <= set(rows[0])
    assert "inclusion" in rows[0]["labels"] and set(rows[0]["scores"]) == set(LABELS)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_jsonl_missing_input_is_a_user_error(tmp_path, detector):
    with pytest.raises(BarometreError, match="does not exist"):
        run_themes_jsonl(tmp_path / "none.jsonl", tmp_path / "o.jsonl", detector)


@pytest.mark.parametrize("text, analysed", [
    ("Vu le code général des collectivités territoriales, et notamment son article L. 5211-1 ;", False),
    ("Vu le rapport de diagnostic de maturité numérique présenté le 28 janvier 2021 ;", False),
    ("Vu l’avis favorable de la commission numérique réunie le 3 mars 2021 ;", False),
    ("Vu sous cet angle, la stratégie numérique de la métropole vise d'abord les usagers éloignés.", True),
    ("Considérant que l'acculturation numérique des agents conditionne la réussite du schéma directeur ;", True),
    ("- Schéma directeur des systèmes d'information et du numérique 2021-2026 (PDF, 15 avril 2021)", False),
    ("Télécharger le rapport d'activité de la direction du numérique 2022 [PDF - 2 Mo]", False),
    ("La métropole publie chaque année un rapport (pdf) sur la donnée publique, puis le présente en conseil "
     "métropolitain avec les associations de médiation numérique du territoire et les communes membres.", True),
    ("Le numérique au service des habitants", False),  # under 8 words
    # OCR debris of scanned council minutes (regardscitoyens/CM-chemere, operation-libre-aiglun)
    ("COCCEETENE CE CEEEEEEEE EEE EEE EEE CCE EEE TEE ECC CCE CCE EE", False),
    ("eUIELSS/UL7 1e1diu09 uou sdiue L Je[du09 sde jeçduoo sde] je1dw09 sde Es je[diuo9 sde EX", False),
    ("GLOZ 81qW899p LL NP [EdiaIunuw |IBSU09 np npuSI-8}du09 np ZQ.U SXSUUY suloseq ep edA} jueAIns", False),
    # ... but OCR'd prose with its slips, proper names and capitals is prose
    ("Monsieur le maire expose au conseil municipal la nécessité de renouveler le parc informatique "
     "des enseignants du groupe scolaire Julien Delaye devenu obsolète.", True),
    ("DÉLIBÉRATION DU CONSEIL MUNICIPAL RELATIVE À LA DÉMATÉRIALISATION DES ACTES ADMINISTRATIFS", True),
    ("10 % du coût de la constructio n avec un max de 150000 €", True),
])
def test_what_counts_as_an_analysed_paragraph(text, analysed, resources):
    """Visas and lines that only name a linked file are references, not prose: they leave the
    indicators' base (issue 11: listing and boilerplate out of the analysed base); so does
    text that does not read as French words (OCR debris), measured as annotate measures it."""
    from nlp.annotate.features import known_letter_share
    from nlp.annotate.parts import is_analysed

    share = known_letter_share(text, resources.vectors)
    assert is_analysed(text, len(text.split()), share) is analysed, share


def test_no_labelled_training_paragraph_reads_as_debris(resources):
    """The readability floor leaves every labelled training paragraph in the analysed base."""
    from nlp.annotate.features import known_letter_share
    from nlp.annotate.parts import MIN_KNOWN_LETTERS

    low = [e.id for e in T.load_labelled(T.TRAINING_FILE)
           if e.labels and known_letter_share(e.text, resources.vectors) < MIN_KNOWN_LETTERS]
    assert low == []


# Paragraphs of the OCR'd council minutes of Chemeré and Aiglun (regardscitoyens/CM-chemere,
# regardscitoyens/operation-libre-aiglun), run through import → extract → annotate: the model
# labelled them although no lexicon found anything in them.
NO_EVIDENCE = [
    "COCCEETENE CE CEEEEEEEE EEE EEE EEE CCE EEE TEE ECC CCE CCE EE",  # was partenariats
    "ESTOUBLON | _ 32s3€] 646 € MARCOUX er",  # was agents, relation_usager
    "10 % du coût de la constructio n avec un max de 150000 €",  # was frein_interne
    "24 rue du Béziau G 281, 282, 283, 286, 287 et 1106",  # was frein_externe
]


def test_no_label_without_lexicon_evidence(detector):
    """A label needs the lexicons to have found its theme in the paragraph (an in-context hit,
    whatever its polarity) and ``numerique`` any hit: text the lexicons find nothing in gets
    no label, however the model scores it."""
    assert detector.model.evidence_guard
    for det in detector.detect(NO_EVIDENCE):
        assert det.hits == [] and det.labels == [], (det.labels, det.scores)


def test_the_evidence_mask_reads_every_polarity(annotator, resources):
    from nlp.annotate.features import evidence_mask

    texts = ["La collectivité ne dispose d'aucune feuille de route numérique.",  # absent → also its barrier
             "Sur le schéma directeur du numérique, nous sommes en retard.",  # lacking → its barrier
             "La métropole ouvre un portail open data.",
             "Le conseil approuve le compte administratif de l'exercice 2022."]
    lexicons = [raw_features(t, annotator.annotate_one(t), resources).lexicon for t in texts]
    labels = ["numerique", "strategie", "donnees", "frein_interne", "frein_interne.politique"]
    mask = {lab: col for lab, col in zip(labels, evidence_mask(lexicons, labels).T)}
    assert mask["strategie"].tolist() == [True, True, False, False]
    assert mask["frein_interne"].tolist() == mask["frein_interne.politique"].tolist() == [True, True, False, False]
    assert mask["donnees"].tolist() == [False, False, True, False]
    assert mask["numerique"].tolist() == [True, True, True, False]


def test_a_guarded_model_needs_the_mask_and_an_older_model_does_not():
    model = ThemeModel.load()
    P = np.ones((1, len(model.labels)))
    with pytest.raises(BarometreError, match="evidence"):
        model.decide(P)
    assert model.decide(P, np.zeros_like(P, dtype=bool)) == [[]]
    older = ThemeModel(model.labels, model.space, model.coef, model.intercept, model.platt, model.thresholds,
                       {"config": {k: v for k, v in model.meta["config"].items() if k != "evidence_guard"}})
    assert not older.evidence_guard and older.decide(P) == [sorted(model.labels)]
