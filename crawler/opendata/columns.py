"""Column names of deliberation datasets: the SCDL names, their local variants, the mapping.

Stage: crawl. Columns are found by name, case, accents and punctuation ignored, so that order
and extra columns do not matter and common local variants are accepted (e.g. Montpellier's
``Numéro de délibération`` -> delib_id, ``Date CM`` -> delib_date, ``Titre`` -> objet).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable

from nlp.io import fold_accents

# Canonical field -> accepted column names, normalised by norm_name (lower case, accents
# removed, runs of other characters -> "_"), most specific first. Row fields take the core
# ones; the others end in ``extra`` under the canonical name.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "delib_id": (
        "delib_id", "id_delib", "identifiant_deliberation", "identifiant_de_la_deliberation",
        "numero_de_deliberation", "numero_deliberation", "numero_de_la_deliberation",
        "num_deliberation", "num_delib", "n_deliberation", "no_deliberation", "n_de_deliberation",
        "numero_acte", "identifiant", "numero", "reference", "id",
    ),
    "delib_date": (
        "delib_date", "date_deliberation", "date_de_deliberation", "date_de_la_deliberation",
        "date_adoption", "date_d_adoption", "date_decision", "date_de_decision", "date_seance",
        "date_de_seance", "date_de_la_seance", "date_conseil", "date_du_conseil", "date_cm", "date",
    ),
    "matiere_code": ("delib_matiere_code", "matiere_code", "code_matiere", "code_de_matiere", "code_de_la_matiere"),
    "matiere_nom": ("delib_matiere_nom", "matiere_nom", "nom_matiere", "nom_de_matiere", "nom_de_la_matiere",
                    "matiere", "thematique"),
    "objet": ("delib_objet", "objet", "objet_de_la_deliberation", "objet_deliberation", "titre", "intitule",
              "libelle", "title"),
    "url": ("delib_url", "url_deliberation", "url", "lien", "lien_deliberation", "lien_document", "url_document",
            "document_url", "lien_vers_le_document", "document", "fichier", "pdf"),
    "coll_nom": ("coll_nom", "nom_collectivite", "nom_de_la_collectivite", "collectivite", "coll_name"),
    "coll_siret": ("coll_siret", "siret", "siret_collectivite", "siret_de_la_collectivite", "code_siret"),
    "budget_annee": ("budget_annee", "annee_budget", "annee_du_budget"),
    "budget_nom": ("budget_nom", "nom_budget", "nom_du_budget"),
    "pref_id": ("pref_id", "id_prefecture", "identifiant_prefecture"),
    "pref_date": ("pref_date", "date_prefecture", "date_reception_prefecture", "date_de_reception_en_prefecture",
                  "date_transmission_prefecture"),
    "vote_effectif": ("vote_effectif", "effectif", "membres_en_exercice", "nb_membres"),
    "vote_reel": ("vote_reel", "votants", "nb_votants", "nombre_de_votants"),
    "vote_pour": ("vote_pour", "votes_pour", "nb_pour", "pour"),
    "vote_contre": ("vote_contre", "votes_contre", "nb_contre", "contre"),
    "vote_abstention": ("vote_abstention", "votes_abstention", "abstentions", "abstention", "nb_abstentions",
                        "nb_abstention"),
}
VOTE_FIELDS = {"vote_effectif": "effectif", "vote_reel": "reel", "vote_pour": "pour",
               "vote_contre": "contre", "vote_abstention": "abstention"}
# Canonical fields that become attributes of DeliberationRow (the rest goes to ``extra``).
ROW_FIELDS = ("delib_id", "delib_date", "matiere_code", "matiere_nom", "objet", "url", "coll_nom", "coll_siret")
SCDL_COLUMNS = (
    "coll_nom", "coll_siret", "delib_id", "delib_date", "delib_matiere_code", "delib_matiere_nom", "delib_objet",
    "budget_annee", "budget_nom", "pref_id", "pref_date", "vote_effectif", "vote_reel", "vote_pour", "vote_contre",
    "vote_abstention", "delib_url",
)


def norm_name(name: str) -> str:
    """Column name key: lower case, no accents, other characters runs -> '_'."""
    # NFKD first: compatibility forms too ("nº" -> "no", ligatures), then the one accent fold.
    s = fold_accents(unicodedata.normalize("NFKD", name.replace("\ufeff", "")))
    s = s.encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def map_columns(names: list[str]) -> tuple[dict[str, int], dict[int, str]]:
    """(canonical field -> column index, other column index -> extra key) for a header."""
    keys = [norm_name(n) for n in names]
    taken: set[int] = set()
    mapping: dict[str, int] = {}
    for canonical, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            idx = next((i for i, k in enumerate(keys) if k == alias and i not in taken), None)
            if idx is not None:
                mapping[canonical] = idx
                taken.add(idx)
                break
    others: dict[int, str] = {}
    used: set[str] = set(mapping)
    for i, k in enumerate(keys):
        if i in taken:
            continue
        key = k or f"column_{i + 1}"
        while key in used:
            key += "_"
        used.add(key)
        others[i] = key
    return mapping, others


def schema_of(names: Iterable[str]) -> str:
    """"scdl" when at least four column names are SCDL's, else "local"."""
    keys = {norm_name(n) for n in names}
    return "scdl" if len(keys & set(SCDL_COLUMNS)) >= 4 else "local"
