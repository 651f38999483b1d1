"""Tests of the topic stage (nlp/topics.py, issue 6).

A synthetic corpus of French paragraphs on five distinct digital themes (plus off-topic
paragraphs) exercises the UMAP + HDBSCAN path; a 30-chunk corpus the small-corpus fallback;
the demo corpus (annotated by the real theme annotator) the mapping to themes. Fitted runs are
module-scoped: UMAP's numba compilation costs ~15 s on first use.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlp.errors import BarometreError
from nlp.topics import (
    TopicSettings, assign_topics, build_chunks, is_boilerplate, load_lexicon_terms,
    npmi_coherence, run_topics, split_long, topic_diversity,
)

ROOT = Path(__file__).resolve().parents[2]
LEXICONS = ROOT / "lexicons"

SENTENCES = {
    "inclusion": [
        "La métropole recrute six conseillers numériques pour accompagner les habitants éloignés du numérique.",
        "Les ateliers de médiation numérique aident les seniors à utiliser une tablette et une messagerie.",
        "Le Pass numérique finance des heures d'accompagnement dans les tiers-lieux du territoire.",
        "Un espace public numérique ouvre dans chaque quartier prioritaire avec des médiateurs formés.",
        "Les aidants numériques accompagnent les personnes en difficulté avec l'illectronisme.",
        "La lutte contre la fracture numérique passe par des permanences de médiation en bibliothèque.",
        "Des ordinateurs reconditionnés sont distribués aux familles qui n'ont pas d'équipement.",
        "Les médiateurs numériques organisent des ateliers d'initiation à internet pour les demandeurs d'emploi.",
        "L'inclusion numérique des publics fragiles mobilise les centres sociaux et les associations de médiation.",
        "Les conseillers numériques tiennent des permanences dans les mairies des communes rurales.",
    ],
    "donnees": [
        "La plateforme de données ouvertes publie les jeux de données des transports et de l'énergie.",
        "Des capteurs mesurent la qualité de l'air et le trafic pour alimenter le jumeau numérique du territoire.",
        "L'hypervision urbaine croise les données des capteurs de stationnement et de l'éclairage public.",
        "Le portail open data compte désormais deux cents jeux de données réutilisables sous licence ouverte.",
        "La ville intelligente repose sur une plateforme de données partagée entre les opérateurs de réseaux.",
        "Le jumeau numérique modélise les réseaux d'eau et les bâtiments à partir des données géographiques.",
        "Les capteurs connectés des bennes optimisent les tournées de collecte des déchets.",
        "La gouvernance des données territoriales fixe les règles de partage entre les opérateurs.",
        "Un entrepôt de données consolide les mesures des capteurs de bruit et de pollution.",
        "Les données de mobilité sont ouvertes aux entreprises et aux chercheurs sur le portail open data.",
    ],
    "agents": [
        "Les agents suivent une formation aux outils collaboratifs et à la messagerie instantanée.",
        "Le télétravail est ouvert aux agents deux jours par semaine grâce aux ordinateurs portables.",
        "Un plan de formation accompagne les agents dans la conduite du changement numérique.",
        "La direction des ressources humaines déploie un espace collaboratif pour les équipes.",
        "Les agents disposent d'une plateforme de formation en ligne sur la bureautique.",
        "La dématérialisation des parapheurs simplifie le travail des agents et des élus.",
        "Le télétravail des agents s'appuie sur une visioconférence sécurisée et des outils collaboratifs.",
        "Des référents numériques accompagnent les équipes dans l'usage des nouveaux logiciels métiers.",
        "La formation des agents aux compétences numériques devient une priorité du plan de formation.",
        "Les équipes adoptent un intranet collaboratif pour partager les documents de travail.",
    ],
    "relation_usager": [
        "Les usagers effectuent leurs démarches en ligne depuis leur compte citoyen sur le portail.",
        "Le guichet unique numérique permet de demander une carte de stationnement en quelques clics.",
        "La connexion par FranceConnect simplifie l'accès aux démarches administratives en ligne.",
        "La gestion de la relation usager suit chaque demande déposée sur le portail des services.",
        "Le portail des démarches en ligne propose l'inscription à la cantine et aux crèches.",
        "Les usagers suivent l'avancement de leur demande dans leur compte en ligne.",
        "Le paiement en ligne des factures d'eau est disponible sur le portail usager.",
        "L'accueil omnicanal répond aux usagers par téléphone, par courriel et sur le portail.",
        "La prise de rendez-vous en ligne réduit l'attente au guichet de l'état civil.",
        "Les démarches en ligne de l'urbanisme permettent de déposer un permis de construire dématérialisé.",
    ],
    "citoyennete": [
        "La plateforme de participation citoyenne recueille les avis des habitants sur le projet de parc.",
        "Le budget participatif en ligne a reçu trois cents projets proposés par les habitants.",
        "Une consultation en ligne invite les citoyens à voter pour les aménagements de leur quartier.",
        "La concertation numérique complète les réunions publiques sur le plan de mobilité.",
        "Les habitants déposent leurs idées sur la plateforme de démocratie participative.",
        "Le vote du budget participatif se déroule en ligne et dans les mairies de quartier.",
        "Les outils de civic tech permettent aux citoyens de suivre les décisions du conseil.",
        "La plateforme de concertation publie la synthèse des contributions des habitants.",
        "Un panel citoyen débat en ligne des priorités du plan climat.",
        "La participation des habitants aux consultations en ligne progresse chaque année.",
    ],
}
OFF_TOPIC = [
    "La chaussée de la rue des Lilas sera reprise sur trois cents mètres avec un nouvel enrobé.",
    "Les travaux d'assainissement du quartier nord débuteront au printemps prochain.",
    "Le marché de fourniture de mobilier scolaire est attribué pour quatre ans.",
    "La piscine municipale fermera deux semaines pour la vidange annuelle des bassins.",
]
METROPOLES = ["aubeville", "brunoy", "corvanne", "dalmont"]
THEMES5 = list(SENTENCES)


def synthetic_corpus(n_paragraphs: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paragraphs, documents) in the annotate stage's shape, on five digital themes."""
    rng = random.Random(seed)
    rows = []
    docs = {}
    for i in range(n_paragraphs):
        doc = f"doc{i // 6:03d}"
        metro = METROPOLES[(i // 6) % len(METROPOLES)]
        docs[doc] = (metro, 2019 + (i // 6) % 4)
        if i % 10 == 9:
            text = " ".join(rng.sample(OFF_TOPIC, 3))
            rows.append((doc, metro, 1 + i % 3, i, text, False, []))
            continue
        theme = THEMES5[rng.randrange(len(THEMES5))]
        text = " ".join(rng.sample(SENTENCES[theme], 3))
        rows.append((doc, metro, 1 + i % 3, i, text, True, [theme]))
    paragraphs = pd.DataFrame(rows, columns=["document_id", "metropole", "page", "paragraph",
                                             "text", "is_digital", "themes"])
    paragraphs["n_words"] = paragraphs["text"].str.split().str.len()
    paragraphs["n_sentences"] = 3
    documents = pd.DataFrame([(d, m, y, "deliberation") for d, (m, y) in docs.items()],
                             columns=["document_id", "metropole", "year", "doc_type"])
    return paragraphs, documents


@pytest.fixture(scope="module")
def pipeline():
    from nlp.embeddings import load_spacy_pipeline

    return load_spacy_pipeline()


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(330)


def _settings(**kw) -> TopicSettings:
    base = dict(embedder="tfidf-svd", lexicon_dir=LEXICONS if LEXICONS.is_dir() else None,
                small_corpus_threshold=200, figures=False)
    base.update(kw)
    return TopicSettings(**base)


@pytest.fixture(scope="module")
def fitted(corpus, pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("topics_a")
    summary = run_topics(*corpus, out, _settings(figures=True), pipeline=pipeline)
    return out, summary


@pytest.fixture(scope="module")
def fitted_again(corpus, pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("topics_b")
    return out, run_topics(*corpus, out, _settings(), pipeline=pipeline)


@pytest.fixture(scope="module")
def fitted_shuffled(corpus, pipeline, tmp_path_factory):
    paragraphs, documents = corpus
    shuffled = paragraphs.sample(frac=1.0, random_state=7).reset_index(drop=True)
    out = tmp_path_factory.mktemp("topics_c")
    return out, run_topics(shuffled, documents.iloc[::-1], out, _settings(), pipeline=pipeline)


def _assignments(out: Path) -> pd.DataFrame:
    dt = pd.read_parquet(out / "tables" / "doc_topics.parquet")
    return dt[["chunk_id", "topic", "topic_before_reduction"]].sort_values("chunk_id").reset_index(drop=True)


# --- chunks ----------------------------------------------------------------------------------
def test_split_long_keeps_sentences_and_bounds_length():
    text = " ".join(f"Phrase numéro {i} sur le numérique et les usagers." for i in range(60))
    chunks = split_long(text, 50)
    assert len(chunks) > 1
    assert all(len(c.split()) <= 50 for c in chunks)
    assert " ".join(chunks).split() == text.split()  # nothing lost, nothing added
    assert split_long("Court texte.", 50) == ["Court texte."]
    one_long = " ".join(["mot"] * 120)
    assert [len(c.split()) for c in split_long(one_long, 50)] == [50, 50, 20]


@pytest.mark.parametrize("text, expected", [
    ("Vu le code général des collectivités territoriales ;", True),
    ("Adopté à l'unanimité des membres présents.", True),
    ("Pour extrait conforme, le Président.", True),
    ("Martial ALVAREZ - Christian AMIRATY - Philippe ARDHUIN - François BERNARDINI - Gérard BRAMOULLÉ", True),
    ("La métropole recrute six conseillers numériques pour accompagner les habitants.", False),
    ("Considérant que la métropole souhaite développer l'inclusion numérique ;", False),
])
def test_boilerplate(text, expected):
    assert is_boilerplate(text) is expected


def test_build_chunks_filters_sorts_and_marks_duplicates(corpus):
    paragraphs, documents = corpus
    extra = pd.DataFrame([
        ("zz", "aubeville", 1, 0, "Vu le code général des collectivités territoriales et la loi du 7 octobre 2016 ;", True, []),
        ("zz", "aubeville", 1, 1, paragraphs["text"].iloc[0], True, ["inclusion"]),
        ("zz", "aubeville", 1, 2, "Trop court.", True, []),
    ], columns=["document_id", "metropole", "page", "paragraph", "text", "is_digital", "themes"])
    chunks, counts = build_chunks(pd.concat([paragraphs, extra]), documents, TopicSettings())
    assert counts["paragraphs_selected"] == int(paragraphs["is_digital"].sum()) + 3
    assert counts["chunks_dropped_boilerplate"] == 1 and counts["chunks_dropped_short"] == 1
    assert not chunks["is_digital"].eq(False).any()
    assert list(chunks["chunk_id"]) == sorted(chunks["chunk_id"], key=lambda c: tuple(
        int(p) if p.isdigit() else p for p in c.split(":")))
    dup = chunks[chunks["document_id"] == "zz"]
    assert dup["duplicate_of"].iloc[0] == chunks["chunk_id"].iloc[0]
    assert chunks.loc[chunks["document_id"] != "zz", "year"].notna().all()
    assert chunks.loc[chunks["document_id"] == "zz", "year"].isna().all()
    all_chunks, _ = build_chunks(paragraphs, documents, TopicSettings(all_paragraphs=True))
    assert len(all_chunks) > len(chunks) - 1


# --- quality figures -------------------------------------------------------------------------
def test_diversity_and_npmi_by_hand():
    assert topic_diversity({0: ["a", "b"], 1: ["b", "c"], -1: ["z", "z"]}) == 0.75
    docs = ["a b", "a b", "c", "c d"]
    npmi = npmi_coherence({0: ["a", "b"], 1: ["c", "d"], 2: ["a", "d"]}, docs, ngram_max=1)
    assert npmi[0] == pytest.approx(1.0)  # a and b always together
    # c in 2 docs, d in 1, together in 1: P=1/4; PMI=log(0.25/(0.5*0.25))=log 2; NPMI=log2/log4
    assert npmi[1] == pytest.approx(math.log(2) / math.log(4))
    assert npmi[2] == -1.0  # never together


# --- the fitted stage --------------------------------------------------------------------------
def test_run_writes_tables_model_figures_and_summary(fitted):
    out, summary = fitted
    json.dumps(summary)  # JSON-able, for run_info.json
    assert summary["method"] == "bertopic"
    assert 3 <= summary["n_topics"] <= 12
    assert summary["outlier_share_after"] <= summary["outlier_share_before"]
    assert summary["outlier_share_after"] == 0.0  # reduce_outliers with threshold 0
    assert 0 < summary["diversity"] <= 1 and -1 <= summary["mean_npmi"] <= 1
    assert summary["versions"]["bertopic"].startswith("0.17")
    assert summary["timings"]["embed_s"] >= 0 and summary["timings"]["fit_s"] > 0
    tables = out / "tables"
    topics = pd.read_parquet(tables / "topics.parquet")
    assert (tables / "topics.csv").is_file()
    assert set(topics["topic"]) >= set(range(summary["n_topics"]))
    for row in topics.itertuples():
        assert len(row.top_terms) > 0 and row.label
        assert row.representative_sentence and len(row.representative_sentence.split()) >= 6
    # French topic words keep their accents (BERTopic's "english" mode strips them).
    words = {w for terms in topics["top_terms"] for w in terms}
    assert any(ch in w for w in words for ch in "éèàçô")
    assert not words & {"le", "de", "la", "délibération", "conseil"}
    doc_topics = pd.read_parquet(tables / "doc_topics.parquet")
    assert doc_topics["topic"].notna().all() and len(doc_topics) == summary["n_chunks"]
    per_metro = pd.read_parquet(tables / "topics_per_metropole.parquet")
    assert set(per_metro["metropole"]) == set(METROPOLES)
    assert np.allclose(per_metro.groupby("metropole")["share"].sum(), 1.0)
    over_time = pd.read_parquet(tables / "topics_over_time.parquet")
    assert set(over_time["year"]) == {2019, 2020, 2021, 2022}
    assert (out / "models" / "topics" / "topic_embeddings.safetensors").is_file()
    assert (out / "models" / "topics" / "ctfidf.safetensors").is_file()
    html = out / "report" / "topics" / "barchart.html"
    assert html.is_file() and "plotly" in html.read_text(encoding="utf-8")[:5_000_000].lower()
    assert html.stat().st_size > 1_000_000  # plotly.js inlined: opens offline
    assert str(html) in summary["figures"]


def test_topics_line_up_with_the_planted_themes(fitted):
    out, _ = fitted
    from sklearn.metrics import normalized_mutual_info_score

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


def test_two_runs_give_identical_assignments(fitted, fitted_again):
    pd.testing.assert_frame_equal(_assignments(fitted[0]), _assignments(fitted_again[0]))
    a = pd.read_parquet(fitted[0] / "tables" / "topics.parquet")
    b = pd.read_parquet(fitted_again[0] / "tables" / "topics.parquet")
    assert a["label"].tolist() == b["label"].tolist()


def test_shuffled_input_gives_the_same_result(fitted, fitted_shuffled):
    pd.testing.assert_frame_equal(_assignments(fitted[0]), _assignments(fitted_shuffled[0]))
    assert fitted[1]["n_topics"] == fitted_shuffled[1]["n_topics"]


def test_assign_new_paragraphs_with_saved_model(fitted, corpus):
    out, _ = fitted
    paragraphs, documents = corpus
    dt = pd.read_parquet(out / "tables" / "doc_topics.parquet")
    sample = paragraphs[paragraphs["is_digital"]].head(40)
    assigned = assign_topics(out / "models" / "topics", sample, documents)
    assert len(assigned) == 40 and assigned["label"].notna().all()
    merged = assigned.merge(dt[["chunk_id", "topic"]], on="chunk_id", suffixes=("", "_fit"))
    # Assignment by nearest centroid agrees with the fitted topics on most known chunks.
    assert (merged["topic"] == merged["topic_fit"]).mean() > 0.8
    fresh = pd.DataFrame([("new", "x", 1, 0, SENTENCES["citoyennete"][0] + " " + SENTENCES["citoyennete"][1], True, [])],
                         columns=["document_id", "metropole", "page", "paragraph", "text", "is_digital", "themes"])
    topic = int(assign_topics(out / "models" / "topics", fresh)["topic"].iloc[0])
    tmap = pd.read_parquet(out / "tables" / "topic_theme_map.parquet")
    row = tmap[(tmap["topic"] == topic) & (tmap["theme"] == "citoyennete")]
    assert float(row["share_chunks"].iloc[0]) > 0.5


def test_small_corpus_falls_back_and_says_so(pipeline, tmp_path):
    paragraphs, documents = synthetic_corpus(33, seed=3)
    summary = run_topics(paragraphs, documents, tmp_path, _settings(), pipeline=pipeline)
    assert summary["n_chunks_fitted"] == 30
    assert summary["method"] == "small-corpus fallback"
    assert "k-means" in summary["method_message"] and "30 chunks" in summary["method_message"]
    assert summary["n_topics"] >= 2 and summary["outlier_share_before"] == 0.0
    assert (tmp_path / "tables" / "topics.parquet").is_file()


def test_too_small_corpus_is_a_clear_error(pipeline, tmp_path):
    paragraphs, documents = synthetic_corpus(8)
    with pytest.raises(BarometreError, match="at least 10"):
        run_topics(paragraphs, documents, tmp_path, _settings(), pipeline=pipeline)


@pytest.mark.skipif(not LEXICONS.is_dir(), reason="lexicons/ not present")
def test_seeding_with_lexicons_maps_topics_back_to_seeds(pipeline, tmp_path):
    lex = load_lexicon_terms(LEXICONS)
    assert "inclusion" in lex and lex["inclusion"]
    paragraphs, documents = synthetic_corpus(60, seed=5)
    summary = run_topics(paragraphs, documents, tmp_path,
                         _settings(seed_with_lexicons=True), pipeline=pipeline)
    assert "inclusion" in summary["seeded_themes"]
    tmap = pd.read_parquet(tmp_path / "tables" / "topic_theme_map.parquet")
    seeded = tmap[tmap["theme"].isin(summary["seeded_themes"])]
    assert seeded["seed_similarity"].notna().all()


def test_seeding_without_lexicons_is_a_clear_error(pipeline, tmp_path):
    paragraphs, documents = synthetic_corpus(60)
    with pytest.raises(BarometreError, match="no lexicon"):
        run_topics(paragraphs, documents, tmp_path,
                   _settings(seed_with_lexicons=True, lexicon_dir=tmp_path / "none"),
                   pipeline=pipeline)


def test_sampled_lemmatizer_agrees_with_full_pipeline(corpus, pipeline):
    from nlp.topics import lemmatize, sampled_lemmatize

    texts = corpus[0]["text"].tolist()[:120]
    full = lemmatize(texts, pipeline)
    fast, stats = sampled_lemmatize(texts, pipeline, sample_size=60, seed=1)
    assert stats["sample"] == 60 and stats["forms_learnt"] > 100
    same = sum(a == b for f, s in zip(full, fast) for a, b in zip(f.split(), s.split()))
    total = sum(len(f.split()) for f in full)
    assert same / total > 0.9
    # In-context lemmas, not the context-free lookup's "donner" for "données".
    assert "donnée" in " ".join(fast) and "donner" not in " ".join(fast)
    again, _ = sampled_lemmatize(texts, pipeline, sample_size=60, seed=1)
    assert again == fast


def test_umap_fitted_on_a_sample_for_large_corpora(corpus, pipeline, tmp_path):
    from sklearn.metrics import normalized_mutual_info_score

    summary = run_topics(*corpus, tmp_path, _settings(umap_sample=150), pipeline=pipeline)
    assert "fitted on 150 sampled chunks" in summary["method_message"]
    dt = pd.read_parquet(tmp_path / "tables" / "doc_topics.parquet")
    assert normalized_mutual_info_score(dt["themes"].map(lambda t: t[0]), dt["topic"]) > 0.6
    again = run_topics(*corpus, tmp_path / "again", _settings(umap_sample=150), pipeline=pipeline)
    assert again["n_topics"] == summary["n_topics"]
    pd.testing.assert_frame_equal(_assignments(tmp_path), _assignments(tmp_path / "again"))
