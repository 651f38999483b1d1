"""Topic lemmatising and per-text embedding as Dask tasks on a real scheduler and two real
workers on 127.0.0.1: the same lemma strings (full spaCy and sampled lemmatizer) and the same
embeddings as in this process, the work done by the workers' own spaCy pipelines."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from compute_runs import DaskCluster

from nlp.compute import ComputeSettings, client_for
from nlp.topics.embeddings import load_spacy_pipeline
from nlp.topics.lemmas import compute_lemmas
from nlp.topics.settings import TopicSettings
from nlp.topics.stage import compute_embeddings


def test_lemmas_and_embeddings_on_a_tcp_scheduler_are_the_in_process_ones(
        reference: Path, dask_cluster: DaskCluster, tmp_path: Path) -> None:
    paragraphs = pd.read_parquet(reference / "outputs" / "tables" / "paragraphs.parquet")
    texts = sorted(set(paragraphs["text"]))[:200]
    assert len(texts) >= 100
    pipeline = load_spacy_pipeline()
    full = TopicSettings(lemmatizer="spacy")
    sampled = dataclasses.replace(full, lemmatizer="sampled", lemma_sample_size=60)
    vectors = dataclasses.replace(full, embedder="spacy")
    here = {"full": compute_lemmas(texts, pipeline, full), "sampled": compute_lemmas(texts, pipeline, sampled)}
    _, emb_here, _ = compute_embeddings(texts, vectors, pipeline, None)
    with client_for(ComputeSettings(scheduler=dask_cluster.address), local=False) as client:
        there = {"full": compute_lemmas(texts, pipeline, full, client),
                 "sampled": compute_lemmas(texts, pipeline, sampled, client)}
        _, emb_there, n = compute_embeddings(texts, vectors, pipeline, tmp_path / "cache", client)
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert here == there
    assert here["sampled"][1]["mode"] == "sampled" and here["sampled"][0] != here["full"][0]
    assert n == len(texts) and np.allclose(emb_here, emb_there, atol=1e-6)
    assert {"topics_lemmatize_part", "topics_votes_part", "topics_lookup_part", "topics_embed_part"} <= set(prefixes)
