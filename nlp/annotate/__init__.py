"""Stage "annotate": lexicon hits and paragraph theme labels.

- :mod:`~nlp.annotate.lexicons`: the YAML lexicons, validated (and ``polarity.yaml``);
- :mod:`~nlp.annotate.compiler`, :mod:`~nlp.annotate.inflect`: lexicons → spaCy matchers;
- :mod:`~nlp.annotate.annotator`: hits with sentence, span, polarity, attribution, context;
- :mod:`~nlp.annotate.component`: the same as a spaCy pipeline component;
- :mod:`~nlp.annotate.features`, :mod:`~nlp.annotate.model`, :mod:`~nlp.annotate.training`:
  the trained detector (lexicon evidence + lemma n-grams + vectors → calibrated labels);
- :mod:`~nlp.annotate.detector`: annotator + model → labels, probabilities, evidence;
- :mod:`~nlp.annotate.evaluate`, :mod:`~nlp.annotate.sample`: validation, grouped
  cross-validation, and the researcher's coding loop;
- :mod:`~nlp.annotate.stage`: ``run_annotate`` over the corpus store → tables, whose rows
  the tasks of :mod:`~nlp.annotate.parts` build and write (one part per metropolis);
- :mod:`~nlp.annotate.jsonl`, :mod:`~nlp.annotate.kwic`: ``themes`` and ``kwic`` commands.

This package imports no other stage; heavy libraries (spaCy) load only when used.
"""
from nlp.annotate.stage import AnnotateSettings, run_annotate

__all__ = ["AnnotateSettings", "run_annotate"]
