"""Records passed between stages, and the columns of the tables each stage writes.

This module is the contract between stages (DESIGN.md §3). A stage reads only what the
stage before it persisted; these dataclasses and column lists say what that is.

- crawl   -> store rows (``documents``, ``sources``, ``fetch_log``) + files under ``corpus/files``
- extract -> :class:`Extraction` (JSON under ``corpus/text``) + a row in ``extractions``
- annotate -> ``outputs/tables/{documents,paragraphs,hits}.parquet`` (columns below)
- topics / indicators / report read those tables.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# --- status slugs -----------------------------------------------------------------------
# Failures are data (DESIGN.md §3). Every stage records one of these per item.
STATUS_OK = "ok"
FETCH_STATUSES = (
    "ok", "not-modified", "http-404", "http-4xx", "http-5xx", "http-429", "timeout",
    "too-large", "dns-error", "connection-error", "robots-disallowed", "unsupported-type",
    "offsite", "blocked-address", "other-publisher", "error",
)
EXTRACT_STATUSES = (
    "ok", "empty", "pdf-encrypted", "pdf-malformed", "no-text-layer", "ocr", "timeout",
    "memory", "not-french", "unsupported-type", "html-as-pdf", "docx-malformed", "odt-malformed",
    "error",
)

# --- themes (DESIGN.md §5) ---------------------------------------------------------------
THEMES: dict[str, str] = {
    "strategie": "Stratégie et gouvernance numériques",
    "relation_usager": "Relation usager",
    "inclusion": "Inclusion numérique",
    "partenariats": "Partenariats",
    "cooperation_communes": "Coopération métropole–communes",
    "citoyennete": "Dimension citoyenne",
    "agents": "Agents",
    "donnees": "Données et territoire intelligent",
    "frein_interne": "Freins internes",
    "frein_externe": "Freins externes",
}
DRIVER_THEMES = tuple(t for t in THEMES if not t.startswith("frein_"))
BARRIER_THEMES = ("frein_interne", "frein_externe")
DIGITAL_LABEL = "numerique"

DOC_TYPES = ("deliberation", "proces_verbal", "strategie", "rapport", "page_web", "autre")


# --- extract ------------------------------------------------------------------------------
@dataclass
class Page:
    """One page of cleaned text. ``number`` is 1-based (a web page is page 1)."""

    number: int
    text: str
    paragraphs: list[str] = field(default_factory=list)
    method: str = "text"  # "text" (text layer / HTML) or "ocr"
    ocr_confidence: float | None = None


@dataclass
class Table:
    """A table found on a page, kept apart from the prose: rows as lists of cell strings."""

    page: int
    rows: list[list[str]]


@dataclass
class Extraction:
    """Result of extracting one document (a plain function of (document, settings)).

    ``status`` is a slug of :data:`EXTRACT_STATUSES`; ``metadata`` holds ``title``,
    ``doc_type``, ``doc_type_confidence``, ``date`` (ISO), ``date_source``, ``language``,
    ``language_confidence``, ``delib_number``, ``delib_object`` where found.
    """

    status: str
    engine: str
    engine_version: str
    cleaning_version: str
    pages: list[Page] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.pages if p.text)

    @property
    def chars(self) -> int:
        return sum(len(p.text) for p in self.pages)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Extraction":
        d = dict(d)
        d["pages"] = [Page(**p) for p in d.get("pages", [])]
        d["tables"] = [Table(**t) for t in d.get("tables", [])]
        return cls(**d)


# --- annotate: columns of outputs/tables/*.parquet ---------------------------------------
# The labels of the gold guidelines: the digital gate, the themes, the barrier sub-themes.
SUBTHEMES: dict[str, tuple[str, ...]] = {
    "frein_interne": ("acculturation", "technique", "politique", "budgetaire"),
    "frein_externe": ("craintes", "fracture"),
}
LABELS: tuple[str, ...] = (DIGITAL_LABEL, *THEMES, *(f"{t}.{s}" for t, subs in SUBTHEMES.items() for s in subs))


def score_column(label: str) -> str:
    """Column of ``paragraphs.parquet`` holding the calibrated probability of ``label``."""
    return f"p__{label}"


# One row per (document, metropole): the denominators of every indicator.
DOCUMENT_COLUMNS = [
    "document_id", "metropole", "url", "title", "doc_type", "date", "year", "fetched_at",
    "n_pages", "n_paragraphs", "n_analysed_paragraphs", "n_sentences", "n_words",
    "n_digital_paragraphs", "analysed", "extraction_status",
]
# One row per paragraph: the unit of the gold labels, of the detector and of the indicators.
# ``labels``: the detector's labels (model version in ``model``); ``negated``: driver themes
# among them spoken of only as absent, lacking or another actor's; ``themes``: the themes that
# count for the metropolis (labels minus negated); ``analysed``: the paragraph is in the
# indicators' base (prose, not navigation or boilerplate); ``p__<label>``: probabilities.
PARAGRAPH_COLUMNS = [
    "document_id", "metropole", "page", "paragraph", "text", "n_words", "n_sentences",
    "is_digital", "analysed", "labels", "negated", "themes", "lexicon_labels", "model",
]
# One row per lexicon hit (KWIC evidence), with whether and as what it counts.
HIT_COLUMNS = [
    "document_id", "metropole", "url", "page", "paragraph", "sentence_index", "sentence",
    "start", "end",  # character span of the match inside ``sentence``
    "theme", "subtheme", "term_id", "matched", "negated", "lacking", "other_actor",
    "digital_context", "counts", "count_theme", "count_subtheme", "reason",
    "doc_type", "year",
]
