"""The topic stage: BERTopic on French paragraph chunks, offline, reproducible, tied to themes.

Stage: topics. Reads only what the annotate stage persisted —
``outputs/tables/paragraphs.parquet``, ``documents.parquet`` and ``lexicon_terms.parquet``
(the lexicons as annotate validated them; never the YAML files) — and writes:

- ``outputs/tables/topics.{parquet,csv}``, ``doc_topics.parquet``, ``document_topics.parquet``,
  ``topics_per_metropole.parquet``, ``topics_over_time.parquet``,
  ``topic_theme_map.{parquet,csv}`` (:mod:`nlp.topics.tables`);
- ``outputs/models/topics/`` — the model (safetensors), the embedder's state, the fit state and
  the reuse keys (:mod:`nlp.topics.persist`; ``barometre topics --assign`` uses it);
- ``outputs/topics/*.html`` — BERTopic's interactive figures, plotly.js inlined
  (:mod:`nlp.topics.figures`; the report links them);
- ``outputs/cache/embeddings/`` — embeddings keyed by (chunk hash, embedder id).

Modules, in the order the stage runs them (:func:`run_topics` in :mod:`nlp.topics.stage`):
``chunks`` (paragraphs → sorted, de-duplicated chunks), ``lemmas`` (topic words' lemmas),
``lexicons`` (theme terms from the lexicon table), ``embeddings`` (offline embedders behind the
``Embedder`` protocol, on-disk cache), ``model`` (UMAP with exact neighbours + HDBSCAN, or the
small-corpus k-means fallback; outlier reduction), ``quality`` (diversity, NPMI), ``tables``,
``figures``, ``persist``; ``settings`` holds :class:`TopicSettings`.
"""
from nlp.topics.chunks import build_chunks, is_boilerplate, split_long, split_sentences
from nlp.topics.embeddings import Embedder, make_embedder
from nlp.topics.lemmas import lemmatize, sampled_lemmatize
from nlp.topics.lexicons import theme_terms
from nlp.topics.persist import assign_topics
from nlp.topics.quality import npmi_coherence, topic_diversity
from nlp.topics.settings import OUTLIER, TopicModelError, TopicSettings
from nlp.topics.stage import TopicInputs, read_inputs, run_topics

__all__ = [
    "OUTLIER", "Embedder", "TopicInputs", "TopicModelError", "TopicSettings", "assign_topics",
    "build_chunks", "is_boilerplate", "lemmatize", "make_embedder", "npmi_coherence",
    "read_inputs", "run_topics", "sampled_lemmatize", "split_long", "split_sentences",
    "theme_terms", "topic_diversity",
]
