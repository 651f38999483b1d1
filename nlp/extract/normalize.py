"""Character-level cleaning and prefecture stamps, for one fragment or a page at once.

Part of cleaning (:mod:`nlp.extract.clean`, whose docstring says what is repaired and why):
NFC and compatibility characters folded, invisible characters dropped, odd spaces and bullets
unified (:func:`normalize_text`); overprinted "fake bold" text halved
(:func:`repair_doubled_glyphs`); stamp phrases and act ids removed (:func:`strip_stamps`).
The page-level forms (:func:`normalize_page`, :func:`stamp_candidates`) give what the
per-fragment functions give, in one pass of each pattern over the page's text: run per
fragment, these patterns were most of cleaning's time.
"""
from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right

# --- character level ----------------------------------------------------------------------
# Compatibility characters folded with NFKC (the rest of the text only gets NFC, which keeps
# "²", "º", "…" as they are): ligatures ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ, mathematical alphanumerics (𝑝𝑟𝑜𝑓𝑜𝑛𝑑𝑒𝑢𝑟
# in Word equations), full-width forms, typographic spaces, modifier letters used as
# superscripts (1ᵉʳ).
_COMPAT_RE = re.compile(
    "[\ufb00-\ufb06\U0001d400-\U0001d7ff\uff01-\uff5e\u2000-\u200a\u1d2c-\u1d6a\u02b0-\u02b8]"
)
# Invisible characters dropped, odd spaces made plain.
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_ODD_SPACES = "\u00a0\u202f\u2007\t"
# Private-use and control characters from symbol fonts are bullets in practice.
_BULLETS = ("\x01-\x08\x0b\x0c\x0e-\x1f\uf000-\uf0ff\u25aa\u25cf\u25a0\u2022\u2023\u2043\u25e6\u2219"
            "\u27a2\u2713\u2714")
_BULLET_CHARS = re.compile(f"[{_BULLETS}]")
# Every character replaced above, in one pattern: one pass over the text instead of four
# (str.translate with a dict was the slowest step of cleaning). No replacement creates a
# character another one replaces, so one pass gives what the four in a row gave.
_CHAR_FIX = re.compile(f"[{_COMPAT_RE.pattern[1:-1]}{_INVISIBLE}{_ODD_SPACES}{_BULLETS}]")
_CHAR_FIXES: dict[str, str] = {}


def _fix_char(m: re.Match) -> str:
    c = m.group(0)
    out = _CHAR_FIXES.get(c)
    if out is None:
        if _COMPAT_RE.match(c):
            out = unicodedata.normalize("NFKC", c)
        elif c in _INVISIBLE:
            out = ""
        elif c in _ODD_SPACES:
            out = " "
        else:
            out = "•"
        _CHAR_FIXES[c] = out
    return out


def _normalize(text: str) -> str:
    """:func:`normalize_text` without the final strip (works on many lines at once)."""
    ascii_only = text.isascii()
    text = _CHAR_FIX.sub(_fix_char, text)
    if not ascii_only:
        text = unicodedata.normalize("NFC", text)
    return _MULTI_SPACE.sub(" ", text) if "  " in text else text


def normalize_text(text: str) -> str:
    """NFC, compatibility characters folded, invisible characters dropped, bullets unified."""
    return _normalize(text).strip()


_WORD = re.compile(r"\S+")
_MULTI_SPACE = re.compile(r" {2,}")
_DOUBLED_HINT = re.compile(r"(\S)\1(\S)\2")


def _is_doubled(word: str) -> bool:
    return len(word) >= 2 and len(word) % 2 == 0 and word[0::2] == word[1::2]


def repair_doubled_glyphs(line: str) -> str:
    """Undo overprinted (fake-bold) text extracted twice: "AAccccuusséé ddee" -> "Accusé de".

    Decided per line: when most words of two characters or more have every character doubled,
    each doubled word is halved. A lone word needs six characters ("ccoouurrss") so that
    ordinary words ("coco", "elle") are never touched.
    """
    if not _DOUBLED_HINT.search(line):  # fast path: no "aabb" run anywhere
        return line
    words = _WORD.findall(line)
    if not words:
        return line
    long_words = [w for w in words if len(w) >= 2]
    doubled = [w for w in long_words if _is_doubled(w)]
    if long_words and len(doubled) >= max(2, 0.6 * len(long_words)):
        return _WORD.sub(lambda m: m.group(0)[0::2] if _is_doubled(m.group(0)) else m.group(0), line)
    if any(len(w) >= 6 for w in doubled):
        return _WORD.sub(
            lambda m: m.group(0)[0::2] if len(m.group(0)) >= 6 and _is_doubled(m.group(0)) else m.group(0),
            line,
        )
    return line


# --- noise patterns -----------------------------------------------------------------------
def _loose(phrase: str) -> str:
    # pdfminer sometimes cuts a word of a stamp ("Ac te", "R éception"): allow one space
    # between any two letters of a stamp phrase.
    out = []
    for c in phrase:
        if c == " ":
            out.append(r"\s*")
        elif c in "eéèê":
            out.append(r"[eéèê]\s?")
        else:
            out.append(re.escape(c) + r"\s?")
    return "".join(out)


_STAMP_PHRASES = [
    "accusé de réception", "ministère de l'intérieur", "acte certifié exécutoire",
    "envoi préfecture", "réception en préfecture", "réception par le préfet",
    "date de télétransmission", "date de réception préfecture", "affiché le",
]
STAMP_RE = re.compile(
    "|".join(_loose(p).replace("'", ".") for p in _STAMP_PHRASES)
    + r"|\b\d\s?\d{2}-\d{9}-[\d/]{8,9}-[\w.-]+-(?:DE|AR|AI|CC|BF|AU)\b"
    + r"|\bID\s*:\s*\d{3}-\d{9}"
    + r"|^\s*en\s+pr[ée]fecture\b",  # the second line of a two-line "Date de réception" label
    re.I,
)
# Cheap pre-filter: every stamp pattern holds one of these intact, even when pdfminer cuts
# a word of it ("Ac te Certifié", "R éception en Préfecture").
_STAMP_HINT = re.compile(r"accus|minist|certifi|pr[ée]fe|transmission|affich|\d{9}|ID\s*:", re.I)
# What is left of a fragment once its stamp phrases are gone, when it was all stamp.
_STAMP_REST = re.compile(r"^[\s:;,.–—\-/\d]*$")


def strip_stamps(text: str) -> tuple[str, bool]:
    """Remove prefecture-stamp phrases and act ids from a fragment.

    Output: the remaining text ("" when the fragment was only stamp, dates included) and
    whether anything was removed.
    """
    if not _STAMP_HINT.search(text) or not STAMP_RE.search(text):
        return text, False
    rest = STAMP_RE.sub(" ", text)
    rest = STAMP_RE.sub(" ", rest.strip())  # what the first pass uncovered at the start
    if _STAMP_REST.match(rest):
        return "", True
    # Dates right after a stamp label ("Envoi Préfecture : 26/05/2014") go with it.
    rest = re.sub(r"^\s*:?\s*\d{1,2}/\d{1,2}/\d{2,4}", " ", rest)
    rest = re.sub(r"\s*:\s*\d{1,2}/\d{1,2}/\d{2,4}", " ", rest)
    return re.sub(r"\s{2,}", " ", rest).strip(" –-"), True



# --- a page at once ---------------------------------------------------------------------
def normalize_page(texts: list[str]) -> list[str]:
    """:func:`normalize_text` and :func:`repair_doubled_glyphs` of every fragment text of a
    page, done on the page's text at once (one pass of each pattern instead of one per
    fragment: the same result, since none of them reaches across a line break)."""
    joined = "\n".join(texts)
    if "\r" in joined or joined.count("\n") != len(texts) - 1:  # a text with its own breaks
        return [repair_doubled_glyphs(normalize_text(t)) for t in texts]
    joined = _normalize(joined)
    out = [t.strip() for t in joined.split("\n")]
    if len(out) != len(texts):  # NFKC made a line break of something: do it piece by piece
        return [repair_doubled_glyphs(normalize_text(t)) for t in texts]
    if _DOUBLED_HINT.search(joined):
        out = [repair_doubled_glyphs(t) for t in out]
    return out


# _STAMP_HINT's alternatives, looked for with str.find in lower-cased text (the regex with
# re.I tries every alternative at every position: as slow as all the rest of cleaning).
_STAMP_NEEDLES = ("accus", "minist", "certifi", "préfe", "prefe", "transmission", "affich")
_NINE_DIGITS = re.compile(r"\d{9}")
_ID_COLON = re.compile(r"id\s*:")
# (re.I also matches 's' with U+017F and 'i' with U+0131, which lower() keeps apart; U+0130
# lower-cases to two characters: pages with those go through the regex.)


def _stamp_hint_spans(joined: str) -> list[tuple[int, int]]:
    """Spans of ``joined`` where :data:`_STAMP_HINT` matches (or more)."""
    low = joined.lower()
    if len(low) != len(joined) or "\u017f" in joined or "\u0131" in joined:
        return [m.span() for m in _STAMP_HINT.finditer(joined)]
    spans = []
    for needle in _STAMP_NEEDLES:
        i = low.find(needle)
        while i != -1:
            spans.append((i, i + len(needle)))
            i = low.find(needle, i + 1)
    spans += [m.span() for m in _NINE_DIGITS.finditer(joined)]
    spans += [m.span() for m in _ID_COLON.finditer(low)]
    return spans


def stamp_candidates(texts: list[str]) -> set[int]:
    """Indexes of the texts where a stamp phrase may be (the cheap hint found on the page)."""
    joined = "\n".join(texts)
    spans = _stamp_hint_spans(joined)
    if not spans:
        return set()
    starts = [0]
    for t in texts[:-1]:
        starts.append(starts[-1] + len(t) + 1)
    out = set()
    for start, end in spans:
        out.add(bisect_right(starts, start) - 1)
        out.add(bisect_right(starts, max(start, end - 1)) - 1)
    return out
