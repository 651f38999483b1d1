"""French display of the report's numbers, labels and links (stage: report).

Input: values from the indicator tables. Output: strings for the page. Every number shown
goes through :func:`number` (or :func:`percent`, :func:`interval`, :func:`pvalue`), so the
page has ONE decimal separator, the comma, and thin spaces between thousands; a missing value
is "–". Identifiers (slugs, measure ids, versions, hashes, paths) are not numbers: the
template sets them in ``<code>``.
"""
from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from nlp.schema import THEMES

NNBSP = "\u202f"  # narrow no-break space: thousands, and before % in French typography
MISSING = "–"

MEASURE_LABELS = {
    "paragraph_share": "part des paragraphes",
    "document_share": "part des documents",
    "hits_per_10k_words": "occurrences pour 10 000 mots",
    "paragraph_share_adjusted": "part des paragraphes ajustée des types de documents",
    "paragraph_share_corrected": "part des paragraphes corrigée de l'erreur du détecteur",
    "label_share": "part des paragraphes étiquetés (polarité ignorée)",
}
# Measures on a 0–1 scale, shown as percentages of paragraphs (or documents).
SHARE_MEASURES = ("paragraph_share", "document_share", "paragraph_share_adjusted", "paragraph_share_corrected",
                  "label_share")
DOC_TYPE_LABELS = {
    "deliberation": "délibération", "proces_verbal": "procès-verbal", "strategie": "stratégie",
    "rapport": "rapport", "page_web": "page web", "autre": "autre",
}
SHORT_THEME = {
    "strategie": "Stratégie", "relation_usager": "Relation usager", "inclusion": "Inclusion",
    "partenariats": "Partenariats", "cooperation_communes": "Coop. communes",
    "citoyennete": "Citoyenneté", "agents": "Agents", "donnees": "Données",
    "frein_interne": "Freins internes", "frein_externe": "Freins externes",
}
SUBTHEME_LABELS = {
    "acculturation": "acculturation", "technique": "technique", "politique": "politique",
    "budgetaire": "budgétaire", "craintes": "craintes", "fracture": "fracture numérique",
}
REASON_LABELS = {
    "out-of-context": "hors contexte numérique", "negated": "nié", "lacking": "manque, retard ou abandon",
    "other-actor": "autre acteur", "lack-as-barrier": "manque : compté comme frein",
    "manque → frein": "manque → frein",
}
STATUS_LABELS = {"compté": "compté", "non compté": "non compté", "modèle": "modèle"}
NORMALISATION_LABELS = {
    "reference": "référence fixe x / (x + r)", "minmax": "min–max entre métropoles",
    "rank": "rangs entre métropoles",
}
P_METHOD_LABELS = {"exact permutation": "exacte (toutes les permutations)", "t approximation": "approximation t"}


def is_missing(value: Any) -> bool:
    """None, NaN, NA or an infinite number."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(float(value))
    return False


def number(value: Any, digits: int = 1) -> str:
    """A French number: decimal comma, narrow spaces between thousands; "–" when missing.
    Integers (and ``digits=0``) get no decimals."""
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "oui" if value else "non"
    if isinstance(value, (int, np.integer)) or digits == 0:
        return f"{int(round(float(value))):,}".replace(",", NNBSP).replace("-", "−")
    text = f"{float(value):,.{digits}f}".replace(",", NNBSP).replace(".", ",")
    if text.startswith("-") and not text.strip("-0,"):
        text = text[1:]  # no "-0,0"
    return text.replace("-", "−")


def percent(share: Any, digits: int = 1) -> str:
    """A 0–1 share as a French percentage: 0.125 → "12,5 %"."""
    return MISSING if is_missing(share) else f"{number(100 * float(share), digits)}{NNBSP}%"


def interval(low: Any, high: Any, digits: int = 1, share: bool = False) -> str:
    """"[a ; b]" (percent points when ``share``); "" when either bound is missing."""
    if is_missing(low) or is_missing(high):
        return ""
    scale = 100.0 if share else 1.0
    return f"[{number(scale * float(low), digits)} ; {number(scale * float(high), digits)}]"


def measure_value(measure: str, value: Any) -> str:
    """A measure's value as shown: shares as percentages, rates with one decimal."""
    return percent(value) if measure in SHARE_MEASURES else number(value, 1)


def measure_interval(measure: str, low: Any, high: Any) -> str:
    """A measure's interval as shown ("[8,1 ; 17,0]", percent points for shares)."""
    return interval(low, high, 1, share=measure in SHARE_MEASURES)


def measure_label(measure: str) -> str:
    """French name of a measure (its id, as the data dictionary names it, is shown beside)."""
    return MEASURE_LABELS.get(measure, measure)


def pvalue(p: Any) -> str:
    """A p- or q-value: three decimals, "< 0,001" below."""
    if is_missing(p):
        return MISSING
    return f"< {number(0.001, 3)}" if float(p) < 0.001 else number(p, 3)


def rank(value: Any) -> str:
    """A mid-rank: "3" or "2,5"."""
    if is_missing(value):
        return MISSING
    v = float(value)
    return number(int(v), 0) if v.is_integer() else number(v, 1)


def rank_interval(low: Any, high: Any) -> str:
    """"[1–2,5]" (mid-ranks); "" when missing."""
    if is_missing(low) or is_missing(high):
        return ""
    return f"[{rank(low)}–{rank(high)}]"


def date_text(value: Any) -> str:
    """An ISO date or timestamp as shown (no fraction of seconds); "inconnue" when missing."""
    if is_missing(value) or str(value).strip() in ("", "None", "nan", "NaT"):
        return "inconnue"
    text = str(value).replace("T", " ")
    return re.sub(r"(\d\d:\d\d:\d\d)\.\d+", r"\1", text)


def theme_label(theme: Any) -> str:
    """The theme's French label (``nlp.schema.THEMES``)."""
    return THEMES.get(str(theme), str(theme))


def short_theme(theme: Any) -> str:
    """A short French label for table headers and axes."""
    return SHORT_THEME.get(str(theme), str(theme))


def doc_type_label(doc_type: Any) -> str:
    """French label of a document type."""
    return DOC_TYPE_LABELS.get(str(doc_type), str(doc_type)) if not is_missing(doc_type) else "autre"


def reason_label(reason: Any) -> str:
    """French reason a hit does not count (or counts as something else)."""
    if is_missing(reason) or not str(reason):
        return ""
    text = str(reason)
    m = re.fullmatch(r"fewer than (\d+) analysed documents", text)
    if m:
        return f"moins de {m.group(1)} documents analysés"
    return REASON_LABELS.get(text, text)


def safe_url(url: Any) -> bool:
    """Only http(s) URLs become links (a crawled ``javascript:`` URL must not)."""
    try:
        return isinstance(url, str) and urlsplit(url.strip()).scheme in ("http", "https") and url == url.strip()
    except ValueError:
        return False


def slug_part(value: Any) -> str:
    """A fragment of an HTML id: anything outside [A-Za-z0-9_-] becomes '-'."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", str(value))


def evidence_anchor(metropole: Any, theme: Any) -> str:
    """Id of the evidence panel of a metropolis × theme cell: ``ev-<metropole>-<theme>``."""
    return f"ev-{slug_part(metropole)}-{slug_part(theme)}"


def short_hash(value: Any, n: int = 12) -> str:
    """The first ``n`` characters of a document hash, with an ellipsis."""
    text = "" if is_missing(value) else str(value)
    return text if len(text) <= n else text[:n] + "…"


def plain(value: Any) -> str:
    """Any setting or figure as shown: numbers in French, the rest as text."""
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "oui" if value else "non"
    if isinstance(value, (int, np.integer)):
        return number(value, 0)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v) or abs(v) >= 1000 or v.is_integer():
            return number(v, 0 if v.is_integer() else 1)
        return f"{v:.6g}".replace(".", ",").replace("-", "−")
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value) or MISSING
    return str(value)
