"""Stage "indicators": per-metropolis text indicators with honest uncertainty.

- :mod:`~nlp.indicators.base`: the analysed base (prose paragraphs of analysed documents)
  and its per-document counts;
- :mod:`~nlp.indicators.bootstrap`: the within-cell document bootstrap every figure shares;
- :mod:`~nlp.indicators.measures`: paragraph and document shares, hits per 10,000 words,
  mix-adjusted and error-corrected shares, by metropolis (× year, × document type);
- :mod:`~nlp.indicators.ranks`, :mod:`~nlp.indicators.maturity`,
  :mod:`~nlp.indicators.keyness`, :mod:`~nlp.indicators.comparison`: ranks with mid-ranks and
  rank probabilities, the index and its sensitivity, document-level keyness, profiles;
- :mod:`~nlp.indicators.evidence`: the sentences behind each cell, counted or not and why;
- :mod:`~nlp.indicators.join`: barometer scores joined, exact tests, corrections;
- :mod:`~nlp.indicators.dictionary`: the data dictionary (``dictionary.yaml``);
- :mod:`~nlp.indicators.stage`: ``compute_indicators`` / ``write_indicators``.

This package imports no other stage.
"""
from nlp.indicators.stage import IndicatorResult, IndicatorSettings, compute_indicators, load_correction, write_indicators

__all__ = ["IndicatorResult", "IndicatorSettings", "compute_indicators", "load_correction", "write_indicators"]
