"""A synthetic corpus for the topic tests: French paragraphs on five distinct digital themes
(plus off-topic paragraphs), in the annotate stage's table shapes, and the shipped lexicons as
the annotate stage's ``lexicon_terms`` table."""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from nlp.topics import TopicInputs, TopicSettings

ROOT = Path(__file__).resolve().parents[3]
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


def lexicon_table() -> pd.DataFrame | None:
    """The shipped lexicons as ``outputs/tables/lexicon_terms.parquet`` holds them (validated
    by the annotate stage's loader), or ``None`` without ``lexicons/``."""
    if not LEXICONS.is_dir():
        return None
    from nlp.annotate.stage import lexicon_terms

    return lexicon_terms(LEXICONS)


def inputs(paragraphs: pd.DataFrame, documents: pd.DataFrame | None = None,
           lexicons: pd.DataFrame | None = None) -> TopicInputs:
    return TopicInputs(paragraphs, documents, lexicons)


def topic_settings(**kw) -> TopicSettings:
    """Test settings: TF-IDF+SVD, no figures unless asked."""
    base = dict(embedder="tfidf-svd", small_corpus_threshold=200, figures=False)
    base.update(kw)
    return TopicSettings(**base)
