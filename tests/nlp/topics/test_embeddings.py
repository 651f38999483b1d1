"""Tests of the topic stage's embedders and embedding cache (nlp/topics/embeddings.py, issue 6).

The sentence-transformers backend is tested with a tiny randomly initialised BERT and a
WordPiece vocabulary written here, saved to tmp_path and loaded from disk with the Hub
switched off: nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlp.topics.embeddings import (
    Embedder, EmbedderError, EmbeddingCache, SentenceTransformerEmbedder, SpacyVectorEmbedder,
    TfidfSvdEmbedder, make_embedder, text_hash,
)

TEXTS = [
    "La métropole recrute des conseillers numériques pour accompagner les habitants.",
    "Les agents suivent une formation aux outils collaboratifs.",
    "La plateforme de données ouvertes publie les jeux de données des transports.",
    "Des capteurs mesurent la qualité de l'air pour le jumeau numérique.",
    "Les usagers font leurs démarches en ligne sur le portail.",
    "Le budget participatif en ligne recueille les projets des habitants.",
    "Les conseillers numériques tiennent des permanences dans les mairies.",
    "Le télétravail des agents s'appuie sur des outils collaboratifs sécurisés.",
]


def test_tfidf_svd_is_deterministic_normalised_and_round_trips(tmp_path):
    a = TfidfSvdEmbedder(dim=5, seed=1).fit(TEXTS)
    b = TfidfSvdEmbedder(dim=5, seed=1).fit(TEXTS)
    ea, eb = a.embed(TEXTS), b.embed(TEXTS)
    assert isinstance(a, Embedder) and a.id == b.id and "unfitted" not in a.id
    assert ea.shape == (len(TEXTS), 5) and ea.dtype == np.float32
    np.testing.assert_array_equal(ea, eb)
    np.testing.assert_allclose(np.linalg.norm(ea, axis=1), 1.0, rtol=1e-5)
    a.save(tmp_path / "emb")
    loaded = TfidfSvdEmbedder.load(tmp_path / "emb")
    assert loaded.id == a.id
    np.testing.assert_allclose(loaded.embed(TEXTS), ea, atol=1e-6)
    # Another corpus is another fit, hence another id (cached vectors are never mixed up).
    assert TfidfSvdEmbedder(dim=5, seed=1).fit(TEXTS[:-1]).id != a.id
    # Related texts are closer than unrelated ones.
    sim = ea @ ea.T
    assert sim[0, 6] > sim[0, 2]


def test_tfidf_svd_fit_embed_is_fit_then_embed():
    a = TfidfSvdEmbedder(dim=5, seed=1)
    fitted = a.fit_embed(TEXTS)
    b = TfidfSvdEmbedder(dim=5, seed=1).fit(TEXTS)
    assert a.id == b.id
    np.testing.assert_array_equal(fitted, b.embed(TEXTS))  # bit for bit
    assert TfidfSvdEmbedder(dim=5, seed=1, n_iter=2).fit(TEXTS).n_iter == 2


def test_embedder_keys_are_known_before_fitting(tmp_path):
    from nlp.topics.embeddings import embedder_key

    assert embedder_key("tfidf-svd", 1) != embedder_key("tfidf-svd", 2)
    assert embedder_key("spacy").startswith("spacy-fr_core_news_md-")
    with pytest.raises(EmbedderError, match="not a local directory"):
        embedder_key("st:/nonexistent/model")


def test_tfidf_svd_errors_are_user_facing(tmp_path):
    with pytest.raises(EmbedderError):
        TfidfSvdEmbedder().fit([])
    with pytest.raises(EmbedderError):
        TfidfSvdEmbedder.load(tmp_path / "missing")
    with pytest.raises(EmbedderError, match="unknown embedder"):
        make_embedder("word2vec")


def test_spacy_vectors_average_content_words_only(pipeline):
    emb = SpacyVectorEmbedder(pipeline=pipeline)
    assert emb.id.startswith("spacy-fr_core_news_md-")
    vecs = emb.embed(["les agents", "agents", "de la et le", ""])
    assert vecs.shape == (4, 300)
    # Function words do not move the vector: "les agents" == "agents".
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-6)
    assert np.linalg.norm(vecs[3]) == 0.0  # empty text: zero row, no NaN
    doc = pipeline("Les agents de la métropole")
    expected = np.mean([t.vector for t in doc if t.text in ("agents", "métropole")], axis=0)
    np.testing.assert_allclose(emb.embed_doc(doc), expected, rtol=1e-5)


def test_embedding_cache_reuses_vectors_by_hash_and_embedder(tmp_path):
    class Counting:
        id = "counting-v1"

        def __init__(self):
            self.seen: list[str] = []

        def embed(self, texts):
            self.seen.extend(texts)
            return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    cache = EmbeddingCache(tmp_path)
    emb = Counting()
    m1, n1 = cache.embed(emb, ["abc", "aa", "abc"])
    assert n1 == 2 and sorted(emb.seen) == ["aa", "abc"]
    m2, n2 = cache.embed(emb, ["aa", "zzz", "abc"])
    assert n2 == 1 and emb.seen[-1] == "zzz"  # only the new text was embedded
    np.testing.assert_array_equal(m2[0], m1[1])
    np.testing.assert_array_equal(m2[2], m1[0])
    emb.id = "counting-v2"  # another embedder id: nothing reused
    _, n3 = cache.embed(emb, ["aa"])
    assert n3 == 1
    # Rows already computed (e.g. by a fit on these texts) are stored, not recomputed.
    emb.id, seen = "counting-v3", len(emb.seen)
    given = np.array([[9.0, 9.0], [8.0, 8.0]], dtype=np.float32)
    m4, n4 = cache.embed(emb, ["q", "r"], computed=given)
    assert n4 == 2 and len(emb.seen) == seen
    np.testing.assert_array_equal(m4, given)
    np.testing.assert_array_equal(cache.embed(emb, ["r"])[0], given[1:])
    assert text_hash("aa") != text_hash("aA")


# --- tiny sentence-transformers model built here ------------------------------------------
WORDS = ("la métropole recrute des conseillers numériques pour accompagner les habitants agents "
         "suivent une formation aux outils collaboratifs plateforme de données ouvertes publie "
         "jeux transports capteurs usagers démarches en ligne portail").split()


def build_tiny_st_model(dest: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocab, wrapped as a sentence-transformer."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    hf_dir = dest / "hf"
    hf_dir.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(WORDS)) + \
        [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyzéèàç"] + list("abcdefghijklmnopqrstuvwxyzéèàç")
    (hf_dir / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(hf_dir / "vocab.txt"), do_lower_case=True,
                                  strip_accents=False)
    config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=64)
    pooling = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
    st_dir = dest / "tiny-st"
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(st_dir))
    return st_dir


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory):
    return build_tiny_st_model(tmp_path_factory.mktemp("st"))


def test_sentence_transformer_from_local_path_offline(tiny_st, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    emb = make_embedder(f"st:{tiny_st}")
    assert isinstance(emb, SentenceTransformerEmbedder) and isinstance(emb, Embedder)
    assert emb.id.startswith("st-tiny-st-")
    vecs = emb.embed(TEXTS)
    assert vecs.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(SentenceTransformerEmbedder(tiny_st).embed(TEXTS), vecs, atol=1e-6)
    assert emb.embed([TEXTS[0], TEXTS[0]])[0] == pytest.approx(emb.embed([TEXTS[0]])[0], abs=1e-6)


def test_sentence_transformer_never_takes_a_hub_name():
    with pytest.raises(EmbedderError, match="not a local directory"):
        SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")


def test_topic_stage_with_local_sentence_transformer(tiny_st, pipeline, tmp_path, monkeypatch):
    from nlp.topics import TopicInputs, TopicSettings, assign_topics, run_topics

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = [("d1", "m1", 1, i, f"{TEXTS[i % len(TEXTS)]} {TEXTS[(i + i // 8 + 1) % len(TEXTS)]}", True, [])
            for i in range(40)]
    paragraphs = pd.DataFrame(rows, columns=["document_id", "metropole", "page", "paragraph",
                                             "text", "is_digital", "themes"])
    summary = run_topics(TopicInputs(paragraphs), tmp_path,
                         TopicSettings(embedder=f"st:{tiny_st}", figures=False), pipeline=pipeline)
    assert summary["embedder"].startswith("st-tiny-st-")
    assert summary["method"] == "small-corpus fallback" and summary["n_topics"] >= 2
    assert (tmp_path / "cache" / "embeddings").is_dir()
    assigned = assign_topics(tmp_path / "models" / "topics", paragraphs.head(5))
    fitted = pd.read_parquet(tmp_path / "tables" / "doc_topics.parquet")
    merged = assigned.merge(fitted[["chunk_id", "topic"]], on="chunk_id", suffixes=("", "_fit"))
    assert len(merged) == 5 and (merged["topic"] == merged["topic_fit"]).mean() >= 0.6
