"""Document metadata from the text, the title, the URL and what the crawl knew.

Stage: extract. Input: the raw text of the first pages (before cleaning, so that the margin
column with the act number still counts), the cleaned text, and ``hints`` from the store (url,
page_title, media_type, last_modified, SCDL fields such as DELIB_DATE, DELIB_OBJET, DELIB_ID).
Output: a dict with the keys listed in :class:`nlp.schema.Extraction` — ``title``,
``doc_type``, ``doc_type_confidence``, ``date`` (ISO), ``date_source``, ``language``,
``language_confidence``, ``delib_number``, ``delib_object`` — only those found.

Everything here is a transparent rule (stop-word ratios, regular expressions, keyword scores),
so a researcher can see why a document got its type or date.
"""
from __future__ import annotations

import re
from collections import Counter
import unicodedata
from datetime import date
from email.utils import parsedate_to_datetime
from typing import Any

from nlp.schema import DOC_TYPES

# --- language -----------------------------------------------------------------------------
_STOPWORDS = {
    "fr": set("le la les de des du un une et est en au aux pour que qui dans par sur pas ne se "
              "ce cette il elle ils nous vous son sa ses leur leurs avec sont été être a ont "
              "plus ou mais où dont ainsi lors après avant entre".split()),
    "en": set("the of and to in is that for it as was with be by on not this are from at or "
              "an have has which their been were will would its".split()),
    "de": set("der die das und ist nicht mit den dem des ein eine zu von für auf sich im "
              "auch wird werden sind".split()),
    "es": set("el los las del y en que por con para una es se no su al lo como más pero "
              "sus esta este".split()),
    "it": set("il di che è e la per un una non sono della del gli le con si questo alla "
              "nel anche".split()),
}
# Words for language detection: r"[a-zàâäçéèêëîïôöùûüÿœæß]+" with re.I, written out as the
# exact set of characters re.I lets it match (upper case, and U+0130, U+0131, U+017F, U+1E9E,
# U+212A that Unicode case rules tie to those letters): case-sensitive matching is twice as
# fast. tests/nlp/extract/test_extract.py checks the two against every code point.
_TOKEN_I = re.compile(r"[a-zàâäçéèêëîïôöùûüÿœæß]+", re.I)
_TOKEN = re.compile("[a-zA-Z\xc0\xc2\xc4\xc6-\xcb\xce\xcf\xd4\xd6\xd9\xdb\xdc\xdf\xe0\xe2\xe4\xe6-\xeb"
                    "\xee\xef\xf4\xf6\xf9\xfb\xfc\xff\u0130\u0131\u0152\u0153\u0178\u017f\u1e9e\u212a]+")


def detect_language(text: str, max_tokens: int = 5000) -> tuple[str | None, float]:
    """``(language, confidence)`` by stop-word ratio; ``(None, 0.0)`` when too little text.

    Confidence is the share of the winning language among all stop-word hits (0-1).
    """
    tokens = list(map(str.lower, _TOKEN.findall(text[: max_tokens * 8])[:max_tokens]))
    if len(tokens) < 20:
        return None, 0.0
    counts = Counter(tokens)
    hits = {lang: sum(n for t, n in counts.items() if t in words) for lang, words in _STOPWORDS.items()}
    total = sum(hits.values())
    if total < 5:
        return None, 0.0
    lang = max(hits, key=hits.__getitem__)
    return lang, round(hits[lang] / total, 3)


# --- dates --------------------------------------------------------------------------------
MONTHS = {
    "janvier": 1, "février": 2, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6,
    "juillet": 7, "août": 8, "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11,
    "décembre": 12, "decembre": 12,
}
_DAY = r"(?:lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)?\s*"
_DATE_WORDS = rf"{_DAY}(\d{{1,2}})(?:er)?\s+({'|'.join(MONTHS)})\s+(\d{{4}})"
_DATE_NUM = r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})"
_SEANCE = re.compile(
    rf"(?:s[ée]ance|r[ée]union|conseil[\w\s]{{0,40}}?)\s*(?:publique\s*|ordinaire\s*|extraordinaire\s*)?"
    rf"(?:du|en date du|le)\s*(?:{_DATE_WORDS}|{_DATE_NUM})",
    re.I,
)
_ANY_DATE = re.compile(rf"\b(?:{_DATE_WORDS})", re.I)


def _mk_date(y: str, m: str | int, d: str) -> str | None:
    try:
        month = MONTHS[m.lower()] if isinstance(m, str) and not m.isdigit() else int(m)
        return date(int(y), month, int(d)).isoformat()
    except (ValueError, KeyError):
        return None


def _match_date(m: re.Match) -> str | None:
    g = m.groups()
    if g[0]:
        return _mk_date(g[2], g[1], g[0])
    return _mk_date(g[5], g[4], g[3])


def parse_any_date(value: str) -> str | None:
    """ISO date from an ISO string, a French date, dd/mm/yyyy or an HTTP date."""
    value = value.strip()
    m = re.match(r"(\d{4})-(\d{2})-(\d{2})", value)
    if m:
        return _mk_date(m.group(1), m.group(2), m.group(3))
    m = re.search(_DATE_NUM, value)
    if m:
        return _mk_date(m.group(3), m.group(2), m.group(1))
    m = _ANY_DATE.search(value)
    if m:
        return _mk_date(m.group(3), m.group(2), m.group(1))
    try:
        return parsedate_to_datetime(value).date().isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def find_date(text: str, hints: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(iso date, source)``: séance date in the text, SCDL DELIB_DATE, a page date found by
    the HTML extractor, a date in the first lines, then HTTP Last-Modified."""
    head = text[:6000]
    m = _SEANCE.search(head)
    if m and (d := _match_date(m)):
        return d, "text:seance"
    for key in ("DELIB_DATE", "delib_date", "SEANCE_DATE"):  # SCDL column / crawler's row dict
        if hints.get(key) and (d := parse_any_date(str(hints[key]))):
            return d, "scdl"
    if hints.get("html_date") and (d := parse_any_date(str(hints["html_date"]))):
        return d, "html"
    m = _ANY_DATE.search(head[:1500])
    if m and (d := _mk_date(m.group(3), m.group(2), m.group(1))):
        return d, "text:first"
    for key in ("last_modified", "Last-Modified"):
        if hints.get(key) and (d := parse_any_date(str(hints[key]))):
            return d, "http-last-modified"
    return None, None


# --- deliberation number and object ---------------------------------------------------------
_DELIB_NUM = re.compile(
    r"(?:d[ée]lib[ée]ration|DE|acte)?\s*\bn\s*[°oº]\s*:?\s*((?:[A-Z]{1,4}[-_ ]?)?\d{2,4}(?:[./_-]\d{1,6}|\s*/\s*\d{1,6}){1,3}(?:-[A-Z]{1,3}\b)?)"
    r"|\b(DE-\d{4}[/-]\d{1,4})\b",
    re.I,
)
_OBJET = re.compile(r"^\s*objet\s*:\s*(.+)$", re.I | re.M)
_RAPPORTE = re.compile(r"\b(?:rapporte|expose|pr[ée]sente le rapport suivant)\s*:", re.I)


def _hint(hints: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if hints.get(key) not in (None, ""):
            return hints[key]
    return None


def find_deliberation(text: str, hints: dict[str, Any], paragraphs_text: str | None = None) -> dict[str, str]:
    """Number and object of a deliberation: SCDL fields first, then the text.

    ``paragraphs_text``: the cleaned text (paragraphs separated by blank lines), where the
    title before "… rapporte :" is looked for; ``text`` by default.
    """
    out: dict[str, str] = {}
    # SCDL columns (DELIB_ID, DELIB_OBJET) or the crawler's parsed row (delib_id, objet).
    number = _hint(hints, "DELIB_ID", "delib_id")
    if number:
        out["delib_number"] = str(number).strip()
    objet = _hint(hints, "DELIB_OBJET", "objet", "delib_objet")
    if objet:
        out["delib_object"] = re.sub(r"\s+", " ", str(objet)).strip()
    head = text[:5000]
    if "delib_number" not in out:
        for m in _DELIB_NUM.finditer(head):
            num = re.sub(r"\s+", "", m.group(1) or m.group(2))
            # "n° 2121-20" of the CGCT is a law article, not an act number.
            before = head[max(0, m.start() - 20): m.start()].lower()
            if "article" in before or "loi" in before or not re.search(r"\d{2}", num):
                continue
            out["delib_number"] = num
            rest = head[m.end(): m.end() + 300].split("\n")[0]
            rest = re.sub(r"^\s*[-–—:]\s*", "", rest).strip()
            if "delib_object" not in out and len(rest) > 10 and m.group(0).strip()[0] in "NnDd":
                out["delib_object"] = rest
            break
    if "delib_object" not in out:
        m = _OBJET.search(head)
        if m and len(m.group(1).strip()) > 5:
            out["delib_object"] = m.group(1).strip()
    if "delib_object" not in out:
        # "Monsieur le Maire … rapporte :" follows the act's title (Montpellier's layout).
        paragraphs = [p.strip() for p in (paragraphs_text or head)[:8000].split("\n\n")]
        for i, para in enumerate(paragraphs[1:], start=1):
            if _RAPPORTE.search(para):
                prev = paragraphs[i - 1]
                if 10 < len(prev) <= 250 and not re.match(r"(?i)(absents?|pr[ée]sents?|excus)", prev):
                    out["delib_object"] = prev
                break
    return out


# --- document type --------------------------------------------------------------------------
_TYPE_RULES: dict[str, list[tuple[str, float]]] = {
    "deliberation": [
        (r"extrait (?:du|des) registres? des d[ée]lib[ée]rations", 3.0),
        (r"\bd[ée]lib[ée]ration\b", 1.0), (r"\ble conseil (?:municipal|m[ée]tropolitain|communautaire)?,? ?(?:apr[èe]s en avoir )?d[ée]lib[ée]r[ée]", 2.0),
        (r"\bd[ée]cide\b|\bapprouve\b|\bautorise\b", 0.5), (r"\bvu (?:le|la|les|l')", 0.5),
        (r"/d[ée]lib", 1.5), (r"\bdelib", 1.0),
    ],
    "proces_verbal": [
        (r"proc[èe]s[- ]verbal", 3.0), (r"compte[- ]rendu (?:de la s[ée]ance|du conseil|sommaire)", 3.0),
        (r"\bcompte[- ]rendu\b", 1.0), (r"ordre du jour", 1.0), (r"secr[ée]taire de s[ée]ance", 1.0),
        (r"\bpv\b|/pv[-_/]|proces-verbal|compte-rendu|\bcr[-_ ]cm\b", 1.5),
    ],
    "strategie": [
        (r"strat[ée]gie (?:num[ée]rique|digitale|smart|data)", 3.0),
        (r"sch[ée]ma directeur", 3.0), (r"feuille de route", 2.5), (r"plan (?:d.actions?|strat[ée]gique)", 1.5),
        (r"\bstrat[ée]gie\b", 1.0), (r"ambitions?", 0.5),
    ],
    "rapport": [
        (r"\brapport (?:d.activit[ée]|annuel|de d[ée]veloppement durable|d.orientation)", 3.0),
        (r"\brapport\b", 1.0), (r"\bbilan\b", 1.0), (r"\b[ée]tude\b", 0.5), (r"sommaire", 0.5),
    ],
}


_TYPE_RULES_RX = {kind: [(re.compile(p, re.I), w) for p, w in rules] for kind, rules in _TYPE_RULES.items()}
# The same rules for the lower-cased text start, case-sensitive: they find what the re.I ones
# find there (the patterns are lower case), several times faster (literal prefixes). re.I
# also matches 'i' with U+0131 and 's' with U+017F, which lower() keeps: such a text goes
# through the re.I rules.
_TYPE_RULES_LOWER = {kind: [(re.compile(p), rx, w) for (p, _), (rx, w) in zip(rules, _TYPE_RULES_RX[kind])]
                     for kind, rules in _TYPE_RULES.items()}


def classify_document(title: str, url: str, text: str, is_html: bool) -> tuple[str, float]:
    """``(doc_type, confidence)`` from keyword scores on title (x3), URL (x2) and text start.

    Confidence is the winner's share of all scores (0-1); ``autre`` when nothing matched.
    A web page with no stronger signal is ``page_web``.
    """
    scores = dict.fromkeys(DOC_TYPES, 0.0)
    head = re.sub(r"\s+", " ", text[:4000]).lower()
    plain = "\u0131" not in head and "\u017f" not in head
    for kind, rules in _TYPE_RULES_LOWER.items():
        for lower_rx, rx, weight in rules:
            if title and rx.search(title):
                scores[kind] += 3 * weight
            if url and rx.search(url):
                scores[kind] += 2 * weight
            scores[kind] += weight * min(len((lower_rx if plain else rx).findall(head)), 3)
    if is_html:
        scores["page_web"] += 4.0
    total = sum(scores.values())
    if total == 0:
        return "autre", 0.0
    best = max(scores, key=scores.__getitem__)
    return best, round(scores[best] / total, 3)


def _first_title_line(text: str) -> str | None:
    for line in text.splitlines()[:15]:
        line = line.strip()
        if 10 <= len(line) <= 200 and sum(c.isalpha() for c in line) > 0.6 * len(line):
            return line
    return None


def document_metadata(raw_head: str, clean_text: str, hints: dict[str, Any] | None,
                      is_html: bool = False, title: str | None = None) -> dict[str, Any]:
    """All metadata for one document. ``raw_head``: uncleaned text of the first pages."""
    hints = {k: v for k, v in (hints or {}).items() if v not in (None, "")}
    meta: dict[str, Any] = {}
    both = f"{raw_head}\n{clean_text[:6000]}"
    # The title the document gives itself, else the one its source gave it (link or page
    # title), else its act object, else its first title-like line.
    title = title or hints.get("page_title") or _hint(hints, "DELIB_OBJET", "objet")
    lang, conf = detect_language(clean_text)
    if lang:
        meta["language"] = lang
        meta["language_confidence"] = conf
    doc_type, conf = classify_document(str(title or ""), str(hints.get("url", "")), both, is_html)
    meta["doc_type"] = doc_type
    meta["doc_type_confidence"] = conf
    d, source = find_date(both, hints)
    if d:
        meta["date"] = d
        meta["date_source"] = source
    if doc_type == "deliberation" or _hint(hints, "DELIB_ID", "delib_id"):
        # Numbers are looked for in the raw text too (the margin column holds them); the
        # object in the clean paragraphs.
        meta.update(find_deliberation(f"{raw_head}\n\n{clean_text[:6000]}", hints, clean_text))
    title = title or meta.get("delib_object") or _first_title_line(clean_text)
    if title:
        meta["title"] = unicodedata.normalize("NFC", re.sub(r"\s+", " ", str(title)).strip())
    return {k: meta[k] for k in ("title", *[k for k in meta if k != "title"]) if k in meta}
