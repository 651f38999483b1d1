"""Focused crawling: relevance of links and pages, and guards against crawler traps.

Stage: crawl. Input: URLs, anchor texts, page titles and the metropolis's keywords.
Output: a relevance score (drives request priority and which HTML pages are kept), a guess
of whether a link points to a document, and a yes/no from :class:`TrapGuard`.

Scoring (documented so a researcher can cite it): the text is lower-cased, stripped of
accents and of URL punctuation; each keyword (same normalisation; multi-word keywords are
matched as phrases) found counts ``weight`` points per field where it occurs:
anchor text 2, page title (and first heading) 2, URL 1. The score of a link is its URL +
its anchor text + half the score of the title of the page it was found on (context).
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from urllib.parse import unquote, urlsplit

from nlp.io import fold_accents
from nlp.media import DOCUMENT_EXTENSIONS, url_extension

DEFAULT_KEYWORDS: tuple[str, ...] = (
    "numérique", "numériques", "digital", "délibération", "délibérations", "conseil métropolitain",
    "conseil de la métropole", "compte rendu", "procès-verbal", "stratégie", "schéma directeur",
    "feuille de route", "inclusion", "médiation", "données", "open data", "opendata",
    "smart city", "territoire intelligent", "innovation", "transformation", "dématérialisation",
    "services en ligne", "e-administration", "cybersécurité", "système d'information",
    "participation citoyenne", "recueil des actes", "rapport d'activité", "séance",
)
# URL path words that usually mean "this link returns a file".
_DOCUMENT_HINTS = re.compile(
    r"(download|telecharg|fichier|getfile|get_file|attachment|pieces?-jointes?)",
    re.IGNORECASE,
)
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


@functools.lru_cache(maxsize=8192)
def normalise_text(text: str) -> str:
    """Lower-case, accents removed, punctuation collapsed to single spaces.

    Cached: menus repeat the same anchors and titles on every page of a site, and the
    Unicode decomposition is the costliest step of scoring a link."""
    text = text or ""
    if not text.isascii():  # ASCII text (most URLs) is its own NFKC form, with no accents
        text = fold_accents(unicodedata.normalize("NFKC", text))
    return " " + _PUNCT.sub(" ", text.lower()).strip() + " "


def prepare_keywords(keywords: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Normalised, de-duplicated keywords (falls back on :data:`DEFAULT_KEYWORDS`)."""
    out = []
    for k in keywords or DEFAULT_KEYWORDS:
        n = normalise_text(k)
        if n.strip() and n not in out:
            out.append(n)
    return tuple(out)


def keyword_hits(text: str, keywords: tuple[str, ...]) -> int:
    """Number of distinct (normalised) keywords found as whole words in ``text``."""
    norm = normalise_text(text)
    return sum(1 for k in keywords if k in norm)


def url_text(url: str) -> str:
    """The words of a URL's path and query (for matching keywords)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return unquote(parts.path + " " + parts.query)


def link_score(url: str, anchor: str, context_title: str, keywords: tuple[str, ...]) -> float:
    """Relevance of a link: URL (1 per keyword) + anchor (2) + half the page title's (2)."""
    return (
        keyword_hits(url_text(url), keywords)
        + 2 * keyword_hits(anchor, keywords)
        + 0.5 * 2 * keyword_hits(context_title, keywords)
    )


def page_score(url: str, title: str, heading: str, anchor: str, keywords: tuple[str, ...]) -> float:
    """Relevance of a fetched HTML page: URL (1) + title/heading (2) + the anchor that led to it (2)."""
    return (
        keyword_hits(url_text(url), keywords)
        + 2 * keyword_hits(f"{title} {heading}", keywords)
        + 2 * keyword_hits(anchor, keywords)
    )


def looks_like_document(url: str) -> bool:
    """Guess, from the URL alone, that a link returns a file (a guess: the bytes decide)."""
    ext = url_extension(url)
    if ext in DOCUMENT_EXTENSIONS:
        return True
    return ext not in ("html", "htm") and bool(_DOCUMENT_HINTS.search(url))


_DIGITS = re.compile(r"\d+")


class TrapGuard:
    """Caps the URL variations a trap can generate (infinite calendars, faceted search).

    Two counters, per metropolis: distinct query strings per (host, path) —
    ``max_query_variants`` — and distinct URLs per path *shape* (digits replaced by ``N``,
    query names only) — ``max_pattern_urls``. A URL past either cap is refused. Depth limits
    apply on top. Memory: one small set per path, bounded by the caps.
    """

    def __init__(self, max_query_variants: int = 50, max_pattern_urls: int = 500) -> None:
        self.max_query_variants = max_query_variants
        self.max_pattern_urls = max_pattern_urls
        self._queries: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self._patterns: dict[tuple[str, str], set[str]] = defaultdict(set)

    @staticmethod
    def shape(url: str) -> tuple[str, str, str]:
        parts = urlsplit(url)
        names = "&".join(sorted({q.split("=", 1)[0] for q in parts.query.split("&") if q}))
        return parts.netloc, _DIGITS.sub("N", parts.path), names

    def allow(self, metropole: str, url: str) -> bool:
        """Record ``url`` and say whether it is within the caps (already-seen URLs pass)."""
        parts = urlsplit(url)
        host, shape_path, names = self.shape(url)
        qkey = (metropole, parts.netloc, parts.path)
        pkey = (metropole, f"{host}{shape_path}?{names}")
        queries, pattern = self._queries[qkey], self._patterns[pkey]
        if parts.query and parts.query not in queries and len(queries) >= self.max_query_variants:
            return False
        if url not in pattern and len(pattern) >= self.max_pattern_urls:
            return False
        if parts.query:
            queries.add(parts.query)
        pattern.add(url)
        return True
