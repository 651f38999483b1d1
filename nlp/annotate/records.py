"""Records of the annotate stage: one :class:`Hit` per lexicon match, one
:class:`TextAnnotation` per text, and their serialisation (one function, used by the tables,
the JSONL contract and the KWIC export)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Why a hit does not count as its own theme for the metropolis ("" = it does).
REASONS = ("", "out-of-context", "negated", "lacking", "other-actor", "lack-as-barrier")


@dataclass
class Hit:
    """One lexicon match with its evidence and whether, and as what, it counts.

    ``start``/``end``: character span of the match inside ``sentence``;
    ``text_start``/``text_end``: the same span inside the whole text. ``negated``: a negation
    governs a driver hit (never set on barrier hits: a lack is the barrier). ``lacking``: a
    cue of lack, delay or abandonment governs a driver hit. ``other_actor``: the clause is
    about another actor. ``digital_context``: the sentence or its neighbours are digital.
    ``count_theme``/``count_subtheme``: what the hit counts as for the metropolis (its own
    theme, the barrier a lacking driver stands for, or ``None``); ``reason`` says why it does
    not count as its own theme (see :data:`REASONS`).
    """

    sentence_index: int
    sentence: str
    start: int
    end: int
    text_start: int
    text_end: int
    theme: str
    subtheme: str | None
    term_id: str
    matched: str
    negated: bool = False
    digital_context: bool = False
    lacking: bool = False
    other_actor: bool = False
    count_theme: str | None = None
    count_subtheme: str | None = None
    reason: str = ""

    @property
    def counts(self) -> bool:
        """The hit counts for the metropolis (as ``count_theme``)."""
        return self.count_theme is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field plus ``counts`` (the JSONL and table form)."""
        d = asdict(self)
        d["counts"] = self.counts
        return d


@dataclass
class TextAnnotation:
    """Result of annotating one text with the lexicons. ``labels``: gold-style labels from the
    counting hits (``numerique``, theme ids, dotted sub-themes), sorted; ``context_hits``:
    hits of the digital-context lexicon."""

    sentences: list[tuple[int, int]]
    n_words: int
    is_digital: bool
    hits: list[Hit] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    context_hits: list[Hit] = field(default_factory=list)

    @property
    def n_sentences(self) -> int:
        return len(self.sentences)

    @property
    def themes(self) -> list[str]:
        """Theme ids with at least one counting hit."""
        return [lab for lab in self.labels if "." not in lab and lab != "numerique"]
