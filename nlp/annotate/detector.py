"""The theme detector: lexicon evidence + the trained model → paragraph labels with
probabilities and checkable evidence (stage: annotate).

Input: paragraph texts. Output: one :class:`Detection` per text:

- ``labels``: the model's decisions (``numerique``, themes, dotted sub-themes), or the
  lexicon's labels when no model is used. A model decides a label on its probability and,
  since the evidence guard, only where the lexicons found the theme in the paragraph
  (:func:`~nlp.annotate.features.evidence_mask`);
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
            return [self._make(ann, ann.labels, {lab: 1.0 for lab in ann.labels}, self._hit_evidence(ann, ann.labels)[0])
                    for ann in anns]
        model = self.model
        raws = [raw_features(t, a, self.resources) for t, a in zip(texts, anns)]
        proba = model.proba(model.space.transform(raws))
        decided = model.decide(proba, model.supported([r.lexicon for r in raws]))
        evidence, missing = [], []
        for i, (ann, labels) in enumerate(zip(anns, decided)):
            found, lacking = self._hit_evidence(ann, labels)
            evidence.append(found)
            if lacking and ann.sentences:
                missing.append((i, lacking))
        self._sentence_evidence(texts, anns, missing, evidence)
        out = []
        for ann, row, labels, ev in zip(anns, proba, decided, evidence):
            scores = {lab: float(p) for lab, p in zip(model.labels, row)}
            out.append(self._make(ann, labels, scores, ev))
        return out

    def _make(self, ann: TextAnnotation, labels: list[str], scores: dict[str, float],
              evidence: dict[str, list[dict[str, Any]]]) -> Detection:
        return Detection(
            labels=labels, scores=scores, hits=ann.hits,
            negated=paragraph_negated(labels, ann.hits, self.drivers),
            evidence=evidence, lexicon_labels=ann.labels,
            n_words=ann.n_words, n_sentences=ann.n_sentences, is_digital=ann.is_digital or bool(labels),
            model=self.version, annotation=ann)

    @staticmethod
    def _hit_evidence(ann: TextAnnotation, labels: list[str]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
        """Per positive label its counting hits (at most 5); and the labels without any."""
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
        return out, missing

    def _sentence_evidence(self, texts: list[str], anns: list[TextAnnotation],
                           missing: list[tuple[int, list[str]]],
                           evidence: list[dict[str, list[dict[str, Any]]]]) -> None:
        """For each label the model gave a paragraph without a counting hit, the paragraph's
        sentence with the highest model score for that label (the sentence scored alone).
        All the batch's sentences are scored in one pass; ``evidence`` is completed in place."""
        model = self.model
        assert model is not None and self.resources is not None
        sentences: list[str] = []
        sub_anns: list[TextAnnotation] = []
        spans: list[tuple[int, int]] = []   # per missing entry: its sentences in the lists above
        for i, labels in missing:
            text, ann = texts[i], anns[i]
            first = len(sentences)
            if len(ann.sentences) > 1:
                for k, (a, b) in enumerate(ann.sentences):
                    own = [h for h in ann.hits if h.sentence_index == k]
                    ctx = [h for h in ann.context_hits if h.sentence_index == k]
                    sentences.append(text[a:b])
                    sub_anns.append(TextAnnotation(sentences=[(a, b)], n_words=0, is_digital=bool(ctx), hits=own,
                                                   labels=sorted({h.count_theme for h in own if h.count_theme}),
                                                   context_hits=ctx))
            spans.append((first, len(sentences)))
        z = (model.decision(model.space.transform(raw_features(t, a, self.resources)
                                                  for t, a in zip(sentences, sub_anns)))
             if sentences else None)
        for (i, labels), (first, last) in zip(missing, spans):
            text, ann = texts[i], anns[i]
            for lab in labels:
                if last == first:  # one sentence: it carries the decision
                    a, b = ann.sentences[0]
                    evidence[i][lab] = [{"kind": "sentence", "sentence_index": 0, "sentence": text[a:b]}]
                    continue
                if lab not in model.labels:
                    continue
                assert z is not None
                j = model.labels.index(lab)
                best = int(np.argmax(z[first:last, j]))
                evidence[i][lab] = [{"kind": "sentence", "sentence_index": best, "sentence": sentences[first + best]}]
