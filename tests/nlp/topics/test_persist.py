"""Tests of nlp/topics/persist.py: the saved model (safetensors) and ``--assign``, and no work on
an unchanged corpus (issue 14.7): unchanged inputs reuse everything, changed paragraph labels
reuse the model, changed chunks or settings refit."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from nlp.topics import assign_topics, run_topics
from nlp.topics import stage as stage_module
from topic_corpus import SENTENCES, inputs, synthetic_corpus, topic_settings


def test_assign_new_paragraphs_with_saved_model(fitted, corpus):
    out, _ = fitted
    paragraphs, documents = corpus
    assert not list((out / "models" / "topics").glob("*.pkl")) and not list(
        (out / "models" / "topics").glob("*.pickle"))
    dt = pd.read_parquet(out / "tables" / "doc_topics.parquet")
    sample = paragraphs[paragraphs["is_digital"]].head(40)
    assigned = assign_topics(out / "models" / "topics", sample, documents)
    assert len(assigned) == 40 and assigned["label"].notna().all()
    merged = assigned.merge(dt[["chunk_id", "topic"]], on="chunk_id", suffixes=("", "_fit"))
    # Assignment by nearest centroid agrees with the fitted topics on most known chunks.
    assert (merged["topic"] == merged["topic_fit"]).mean() > 0.8
    fresh = pd.DataFrame([("new", "x", 1, 0, SENTENCES["citoyennete"][0] + " " + SENTENCES["citoyennete"][1], True, [])],
                         columns=["document_id", "metropole", "page", "paragraph", "text", "is_digital", "themes"])
    topic = int(assign_topics(out / "models" / "topics", fresh)["topic"].iloc[0])
    tmap = pd.read_parquet(out / "tables" / "topic_theme_map.parquet")
    row = tmap[(tmap["topic"] == topic) & (tmap["theme"] == "citoyennete")]
    assert float(row["share_chunks"].iloc[0]) > 0.5


def test_assign_without_a_model_is_a_clear_error(tmp_path, corpus):
    from nlp.errors import BarometreError

    with pytest.raises(BarometreError, match="run `barometre topics` first"):
        assign_topics(tmp_path, corpus[0].head(3))


def _tables(out):
    return {name: pd.read_parquet(out / "tables" / f"{name}.parquet")
            for name in ("topics", "doc_topics", "topics_per_metropole", "topic_theme_map")}


def _refuse_work(monkeypatch, names=("fit_topics", "compute_lemmas", "compute_embeddings")):
    """From here on, calling any of ``names`` in the stage fails the test."""
    for name in names:
        monkeypatch.setattr(stage_module, name, lambda *a, **k: pytest.fail(f"{name} was called"))


def test_unchanged_inputs_do_no_work(pipeline, tmp_path, monkeypatch):
    paragraphs, documents = synthetic_corpus(60, seed=2)
    first = run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(), pipeline=pipeline)
    assert first["reused"] is None
    before = _tables(tmp_path)
    _refuse_work(monkeypatch, ("fit_topics", "compute_lemmas", "compute_embeddings",
                               "build_chunks", "compute_tables", "compute_figures"))
    # Rows in another order are the same inputs.
    again = run_topics(inputs(paragraphs.iloc[::-1], documents), tmp_path, topic_settings(),
                       pipeline=pipeline)
    assert again["reused"] == "all" and again["n_topics"] == first["n_topics"]
    assert again["timings_of_fit"] == first["timings"]
    for name, frame in _tables(tmp_path).items():
        pd.testing.assert_frame_equal(frame, before[name])


def test_changed_labels_reuse_the_model_with_a_fresh_fits_tables(pipeline, tmp_path, monkeypatch):
    paragraphs, documents = synthetic_corpus(60, seed=2)
    relabelled = paragraphs.assign(themes=[["agents"] if i % 2 else list(t)
                                           for i, t in enumerate(paragraphs["themes"])])
    run_topics(inputs(relabelled, documents), tmp_path / "fresh", topic_settings(),
               pipeline=pipeline)
    run_topics(inputs(paragraphs, documents), tmp_path / "reused", topic_settings(),
               pipeline=pipeline)
    _refuse_work(monkeypatch)
    summary = run_topics(inputs(relabelled, documents), tmp_path / "reused", topic_settings(),
                         pipeline=pipeline)
    assert summary["reused"] == "model"
    reused, fresh = _tables(tmp_path / "reused"), _tables(tmp_path / "fresh")
    for name in reused:
        pd.testing.assert_frame_equal(reused[name], fresh[name])


@pytest.mark.parametrize("change", ["text", "settings"])
def test_changed_chunks_or_settings_refit(pipeline, tmp_path, change):
    paragraphs, documents = synthetic_corpus(60, seed=2)
    run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(), pipeline=pipeline)
    settings = topic_settings()
    if change == "text":
        paragraphs = paragraphs.copy()
        paragraphs.loc[0, "text"] = SENTENCES["agents"][0] + " " + SENTENCES["agents"][1]
    else:
        settings = topic_settings(top_n_words=8)
    summary = run_topics(inputs(paragraphs, documents), tmp_path, settings, pipeline=pipeline)
    assert summary["reused"] is None


def test_a_run_that_fails_half_way_is_not_taken_for_a_finished_one(pipeline, tmp_path,
                                                                  monkeypatch):
    paragraphs, documents = synthetic_corpus(60, seed=2)
    run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(), pipeline=pipeline)
    changed = paragraphs.assign(themes=[["agents"]] * len(paragraphs))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(stage_module, "write_tables", broken)
    with pytest.raises(OSError):
        run_topics(inputs(changed, documents), tmp_path, topic_settings(), pipeline=pipeline)
    monkeypatch.undo()
    # The keys were dropped before anything was rewritten: the original inputs are not
    # "unchanged" any more, so their tables are recomputed rather than trusted.
    again = run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(), pipeline=pipeline)
    assert again["reused"] is None


def test_no_reuse_when_the_cache_is_off(pipeline, tmp_path):
    paragraphs, documents = synthetic_corpus(60, seed=2)
    run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(), pipeline=pipeline)
    again = run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(use_cache=False),
                       pipeline=pipeline)
    assert again["reused"] is None
    meta = json.loads((tmp_path / "models" / "topics" / "barometre_topics.json").read_text())
    assert meta["inputs_key"] and meta["model_key"] and meta["summary"]["n_topics"] == again["n_topics"]


def test_cli_assign_writes_the_assignments_from_the_saved_model(fitted, corpus, lexicons, tmp_path):
    """``barometre topics --assign``: the persisted tables in, ``doc_topics_assigned`` out; a
    missing input table is the annotate stage's clear error."""
    import shutil

    from nlp.cli import main

    out = tmp_path / "outputs"
    assert main(["topics", "--assign", "--outputs-dir", str(out), "--no-progress"]) == 1
    shutil.copytree(fitted[0] / "models", out / "models")
    paragraphs, documents = corpus
    (out / "tables").mkdir(parents=True)
    paragraphs.head(12).to_parquet(out / "tables" / "paragraphs.parquet")
    documents.to_parquet(out / "tables" / "documents.parquet")
    lex = lexicons if lexicons is not None else pd.DataFrame(
        columns=["theme", "kind", "subtheme", "term_id", "match", "term"])
    lex.to_parquet(out / "tables" / "lexicon_terms.parquet")
    assert main(["topics", "--assign", "--outputs-dir", str(out), "--no-progress"]) == 0
    assigned = pd.read_parquet(out / "tables" / "doc_topics_assigned.parquet")
    assert len(assigned) == 12 and assigned["topic"].notna().all()
