"""Publisher attribution on domains shared by a city and its metropolis.

Stage: crawl. Input: a document found on one of the entry's ``shared_domains`` (brest.fr and
strasbourg.eu serve both the city and the metropolis), its bytes, and for a dataset row its
publisher fields. Output: an :class:`Attribution`: ``metropole`` (the document says it is the
metropolis's), ``other`` (it says it is another publisher's: not the metropolis's document),
or ``undecided`` (it says neither, or both as much).

What a document says, in this order:

1. the dataset's publisher fields, when the document comes from a dataset row: the SIREN in
   ``COLL_SIRET`` (its first nine digits) against the entry's SIREN, else ``COLL_NOM``;
2. its letterhead: the first 2,000 characters of its text (a PDF's first two pages read with
   pypdfium2, an HTML page's title, first heading and text), accents and case folded, where
   the metropolis's markers ("Conseil de la Métropole", "conseil métropolitain", "bureau
   métropolitain", its name, its SIREN) and the other publisher's ("Conseil municipal", "le
   Maire", "Mairie de", the entry's ``shared_with`` name) are counted; its name and SIREN
   count double. A side wins with at least 2 points and more than the other side.

Undecided documents are stored but flagged (``sources.attribution = 'undecided'``) and the
store leaves them out of the metropolis's documents unless the crawl keeps them (option
``keep_undecided``: flagged ``kept``); documents of another publisher are not stored for the
metropolis (``fetches`` status ``other-publisher``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nlp.io import bom_encoding, fold_accents

HEAD_CHARS = 2000
METROPOLE_MARKERS = ("conseil de la metropole", "conseil metropolitain", "bureau metropolitain",
                     "bureau de la metropole", "president de la metropole", "presidente de la metropole",
                     "conseil de l eurometropole", "assemblee metropolitaine")
OTHER_MARKERS = ("conseil municipal", "le maire", "la maire", "mairie de", "adjoint au maire",
                 "adjointe au maire", "hotel de ville")


@dataclass(frozen=True)
class Attribution:
    """``decision``: metropole | other | undecided; ``evidence``: what decided, in words."""

    decision: str
    evidence: str

    def to_dict(self) -> dict[str, str]:
        return {"decision": self.decision, "evidence": self.evidence}


def fold(text: str) -> str:
    """Lower case, accents folded, punctuation as spaces, runs of spaces collapsed."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", fold_accents(text).lower()).split())


def _siren_pattern(siren: str) -> re.Pattern[str]:
    return re.compile(r"\b" + r"\s?".join(siren[i:i + 3] for i in (0, 3, 6)) + r"\b")


def from_publisher_fields(metadata: dict[str, Any], siren: str, name: str) -> Attribution | None:
    """The decision a dataset row's COLL_SIRET / COLL_NOM gives, or None if they say nothing."""
    siret = re.sub(r"\D", "", str(metadata.get("coll_siret") or ""))
    if len(siret) >= 9:
        if siret[:9] == siren:
            return Attribution("metropole", f"dataset publisher SIREN {siren}")
        return Attribution("other", f"dataset publisher SIREN {siret[:9]} (not {siren})")
    publisher = fold(str(metadata.get("coll_nom") or ""))
    if publisher:
        if publisher == fold(name) or "metropole" in publisher.split():
            return Attribution("metropole", f"dataset publisher {metadata.get('coll_nom')!r}")
        if publisher.startswith(("ville ", "commune ", "mairie ")):
            return Attribution("other", f"dataset publisher {metadata.get('coll_nom')!r}")
    return None


def from_text(text: str, siren: str, name: str, shared_with: str | None = None) -> Attribution:
    """The decision the letterhead of ``text`` gives (module docstring)."""
    head = " " + fold(text[:HEAD_CHARS * 2])[:HEAD_CHARS] + " "
    mine = [m for m in METROPOLE_MARKERS if f" {m} " in head]
    theirs = [m for m in OTHER_MARKERS if f" {m} " in head]
    score_mine, score_theirs = len(mine), len(theirs)
    folded_name = fold(name)
    if folded_name and f" {folded_name} " in head:
        mine.append(name)
        score_mine += 2
    if _siren_pattern(siren).search(text[:HEAD_CHARS * 2]):
        mine.append(f"SIREN {siren}")
        score_mine += 2
    if shared_with and f" {fold(shared_with)} " in head:
        theirs.append(shared_with)
        score_theirs += 2
    if score_mine >= 2 and score_mine > score_theirs:
        return Attribution("metropole", "says " + ", ".join(repr(m) for m in mine))
    if score_theirs >= 2 and score_theirs > score_mine:
        return Attribution("other", "says " + ", ".join(repr(m) for m in theirs))
    said = ", ".join(repr(m) for m in mine + theirs) or "nothing about its publisher"
    return Attribution("undecided", f"says {said}")


def document_text(body: bytes, media_type: str, charset: str | None = None) -> str:
    """The first words of a document, enough for its letterhead: a PDF's first two pages, an
    HTML page's text, a plain-text or Markdown file's first lines; '' for anything else or
    anything unreadable (the document then stays undecided)."""
    if media_type == "application/pdf":
        return _pdf_head(body)
    if media_type in ("text/html", "application/xhtml+xml"):
        try:
            import lxml.html

            root = lxml.html.fromstring(body.decode(charset or "utf-8", errors="replace"))
            for bad in root.xpath("//script|//style"):
                bad.drop_tree()
            return " ".join(" ".join(root.itertext()).split())[:HEAD_CHARS * 2]
        except Exception:  # a page lxml cannot read says nothing
            return ""
    if media_type in ("text/plain", "text/markdown"):
        head = body[: HEAD_CHARS * 8]  # a cut character at the end is dropped, not guessed
        encoding = bom_encoding(head) or charset or "utf-8"
        try:
            return " ".join(head.decode(encoding, errors="ignore").split())[: HEAD_CHARS * 2]
        except LookupError:  # a charset Python does not know
            return ""
    return ""


def _pdf_head(body: bytes) -> str:
    try:
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(body)
        try:
            parts = []
            for index in range(min(2, len(pdf))):
                page = pdf[index]
                textpage = page.get_textpage()
                parts.append(textpage.get_text_range())
                textpage.close()
                page.close()
            return "\n".join(parts)[:HEAD_CHARS * 2]
        finally:
            pdf.close()
    except Exception:  # encrypted, malformed: undecided, the extract stage will say why
        return ""
