"""The theme detector: lexicon evidence + the trained model → paragraph labels with
probabilities and checkable evidence (stage: annotate).

Input: paragraph texts. Output: one :class:`Detection` per text:

- ``labels``: the model's decisions (``numerique``, themes, dotted sub-themes), or the
  lexicon's labels when no model is used;
- ``scores``: the calibrated probability of every label;
- ``hits``: every lexicon hit with its counting flags (:class:`~nlp.annotate.records.Hit`);
- ``negated``: driver themes among ``labels`` that the paragraph speaks of only as absent,
  lacking or another actor's (every hit of the theme says so; GUIDELINES.md "Polarity");
- ``evidence``: per positive label, the hits that count for it, or, where the model decided
  without a hit, the sentence that scores highest for that label alone;
- ``model``: the model version (``"lexicons"`` without a model).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable, Iterator

import numpy as np

from nlp.annotate.annotator import ThemeAnnotator
from nlp.annotate.features import Resources, raw_features
from nlp.annotate.model import ThemeModel
from nlp.annotate.records import Hit, TextAnnotation

logger = logging.getLogger(__name__)

LEXICON_ONLY = "lexicons"


@dataclass
class Detection:
    """Result for one paragraph (see the module docstring)."""

    labels: list[str]
    scores: dict[str, float]
    hits: list[Hit]
    negated: list[str]
    evidence: dict[str, list[dict[str, Any]]]
    lexicon_labels: list[str]
    n_words: int
    n_sentences: int
    is_digital: bool
    model: str
    annotation: TextAnnotation | None = field(default=None, repr=False)

    def to_record(self) -> dict[str, Any]:
        """The JSONL form (``barometre themes``)."""
        return {"labels": self.labels, "scores": {k: round(v, 4) for k, v in self.scores.items()},
                "negated": self.negated, "hits": [h.to_dict() for h in self.hits],
                "evidence": self.evidence, "lexicon_labels": self.lexicon_labels,
                "is_digital": self.is_digital, "n_words": self.n_words, "model": self.model}


def paragraph_negated(labels: list[str], hits: list[Hit], drivers: set[str]) -> list[str]:
    """Driver themes of ``labels`` whose every in-context hit does not count as the theme
    (negated, lacking, other actor) — at least one such hit, none counting."""
    out = []
    for theme in labels:
        if theme not in drivers:
            continue
        own = [h for h in hits if h.theme == theme and h.reason != "out-of-context"]
        if own and not any(h.count_theme == theme for h in own):
            out.append(theme)
    return out


class ThemeDetector:
    """Annotate with the lexicons, then label with ``model`` (``None``: lexicon labels)."""

    def __init__(self, annotator: ThemeAnnotator, model: ThemeModel | None = None,
                 resources: Resources | None = None) -> None:
        self.annotator = annotator
        self.model = model
        self.resources = resources or (Resources(annotator.model_name) if model is not None else None)
        self.drivers = {lex.id for lex in annotator.lexicons.themes if lex.family == "driver"}
        if model is not None:
            self._check_lexicons(model)

    @property
    def version(self) -> str:
        return self.model.version if self.model is not None else LEXICON_ONLY

    def _check_lexicons(self, model: ThemeModel) -> None:
        trained = model.meta.get("lexicon_versions")
        current = self.annotator.lexicons.versions
        if trained and trained != current:
            logger.warning("the theme model %s was trained with lexicon versions %s; the lexicons "
                           "now are %s: its figures may not hold (retrain with `barometre train`)",
                           model.version, trained, current)

    def detect(self, texts: Iterable[str], batch_size: int = 256) -> Iterator[Detection]:
        """One :class:`Detection` per text, in order."""
        it = iter(texts)
        while True:
            chunk = list(islice(it, batch_size))
            if not chunk:
                return
            anns = list(self.annotator.annotate(chunk, batch_size=64))
            yield from self._detect_batch(chunk, anns)

    def _detect_batch(self, texts: list[str], anns: list[TextAnnotation]) -> list[Detection]:
        if self.model is None:
            return [self._make(ann, ann.labels, {lab: 1.0 for lab in ann.labels}, text)
                    for text, ann in zip(texts, anns)]
        model = self.model
        X = model.space.transform(raw_features(t, a, self.resources) for t, a in zip(texts, anns))
        proba = model.proba(X)
        decided = model.decide(proba)
        out = []
        for text, ann, row, labels in zip(texts, anns, proba, decided):
            scores = {lab: float(p) for lab, p in zip(model.labels, row)}
            out.append(self._make(ann, labels, scores, text))
        return out

    def _make(self, ann: TextAnnotation, labels: list[str], scores: dict[str, float], text: str) -> Detection:
        return Detection(
            labels=labels, scores=scores, hits=ann.hits,
            negated=paragraph_negated(labels, ann.hits, self.drivers),
            evidence=self._evidence(text, ann, labels), lexicon_labels=ann.labels,
            n_words=ann.n_words, n_sentences=ann.n_sentences, is_digital=ann.is_digital or bool(labels),
            model=self.version, annotation=ann)

    def _evidence(self, text: str, ann: TextAnnotation, labels: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Per positive label: its counting hits, else the best sentence for that label."""
        out: dict[str, list[dict[str, Any]]] = {}
        missing = []
        for lab in labels:
            theme, _, sub = lab.partition(".")
            if lab == "numerique":
                items = [{"kind": "hit", "term_id": h.term_id, "matched": h.matched,
                          "sentence_index": h.sentence_index} for h in ann.context_hits[:3]]
            else:
                items = [{"kind": "hit", "term_id": h.term_id, "matched": h.matched,
                          "sentence_index": h.sentence_index}
                         for h in ann.hits if h.count_theme == theme and (not sub or h.count_subtheme == sub)]
            if items:
                out[lab] = items[:5]
            else:
                missing.append(lab)
        if missing and self.model is not None and ann.sentences:
            out.update(self._sentence_evidence(text, ann, missing))
        return out

    def _sentence_evidence(self, text: str, ann: TextAnnotation, labels: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The sentence with the highest model score for each label (the sentence alone)."""
        model = self.model
        assert model is not None and self.resources is not None
        sentences = [text[a:b] for a, b in ann.sentences]
        if len(sentences) == 1:
            return {lab: [{"kind": "sentence", "sentence_index": 0, "sentence": sentences[0]}] for lab in labels}
        sub_anns = []
        for i in range(len(sentences)):
            own = [h for h in ann.hits if h.sentence_index == i]
            ctx = [h for h in ann.context_hits if h.sentence_index == i]
            sub_anns.append(TextAnnotation(sentences=[ann.sentences[i]], n_words=0, is_digital=bool(ctx),
                                           hits=own, labels=sorted({h.count_theme for h in own if h.count_theme}),
                                           context_hits=ctx))
        X = model.space.transform(raw_features(s, a, self.resources) for s, a in zip(sentences, sub_anns))
        z = model.decision(X)
        out = {}
        for lab in labels:
            j = model.labels.index(lab) if lab in model.labels else None
            if j is None:
                continue
            best = int(np.argmax(z[:, j]))
            out[lab] = [{"kind": "sentence", "sentence_index": best, "sentence": sentences[best]}]
        return out
