"""Tests of the topic stage as a whole (nlp/topics/stage.py, issues 6, 12, 14): what it reads
(persisted tables only), what it writes and where, determinism and order independence."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nlp.errors import BarometreError
from nlp.topics import read_inputs, run_topics
from topic_corpus import inputs, synthetic_corpus, topic_settings


def _assignments(out: Path) -> pd.DataFrame:
    dt = pd.read_parquet(out / "tables" / "doc_topics.parquet")
    return dt[["chunk_id", "topic", "topic_before_reduction"]].sort_values("chunk_id").reset_index(drop=True)


def test_run_writes_tables_model_figures_and_summary(fitted):
    out, summary = fitted
    json.dumps(summary)  # JSON-able, for run_info.json
    assert summary["method"] == "bertopic" and summary["reused"] is None
    assert 3 <= summary["n_topics"] <= 12
    assert summary["outlier_share_after"] <= summary["outlier_share_before"]
    assert summary["outlier_share_after"] == 0.0  # reduce_outliers with threshold 0
    assert 0 < summary["diversity"] <= 1 and -1 <= summary["mean_npmi"] <= 1
    assert summary["versions"]["bertopic"].startswith("0.17")
    assert summary["timings"]["embed_s"] >= 0 and summary["timings"]["fit_s"] > 0
    for name in ("topics", "doc_topics", "document_topics", "topics_per_metropole",
                 "topics_over_time", "topic_theme_map"):
        assert (out / "tables" / f"{name}.parquet").is_file()
        assert str(out / "tables" / f"{name}.parquet") in summary["tables"]
    assert (out / "models" / "topics" / "topic_embeddings.safetensors").is_file()
    assert (out / "models" / "topics" / "ctfidf.safetensors").is_file()
    # Figures belong to this stage's folder, not the report's (issue 12).
    html = out / "topics" / "barchart.html"
    assert not (out / "report").exists()
    assert html.is_file() and "plotly" in html.read_text(encoding="utf-8")[:5_000_000].lower()
    assert html.stat().st_size > 1_000_000  # plotly.js inlined: opens offline
    assert str(html) in summary["figures"]
    assert {"topics_per_metropole.html", "topics_over_time.html", "documents.html"} <= {
        Path(f).name for f in summary["figures"]}


def test_two_runs_give_identical_assignments(fitted, fitted_again):
    pd.testing.assert_frame_equal(_assignments(fitted[0]), _assignments(fitted_again[0]))
    a = pd.read_parquet(fitted[0] / "tables" / "topics.parquet")
    b = pd.read_parquet(fitted_again[0] / "tables" / "topics.parquet")
    assert a["label"].tolist() == b["label"].tolist()


def test_shuffled_input_gives_the_same_result(fitted, fitted_shuffled):
    pd.testing.assert_frame_equal(_assignments(fitted[0]), _assignments(fitted_shuffled[0]))
    assert fitted[1]["n_topics"] == fitted_shuffled[1]["n_topics"]


def test_too_small_corpus_is_a_clear_error(pipeline, tmp_path):
    paragraphs, documents = synthetic_corpus(8)
    with pytest.raises(BarometreError, match="at least 10"):
        run_topics(inputs(paragraphs, documents), tmp_path, topic_settings(), pipeline=pipeline)


def test_inputs_are_the_annotate_stages_tables(tmp_path, corpus, lexicons):
    """A missing table is an error naming the command to run; nothing is recomputed."""
    paragraphs, documents = corpus
    tables = tmp_path / "tables"
    tables.mkdir()
    with pytest.raises(BarometreError, match=r"no paragraphs table .*barometre annotate"):
        read_inputs(tmp_path)
    paragraphs.to_parquet(tables / "paragraphs.parquet")
    documents.to_parquet(tables / "documents.parquet")
    with pytest.raises(BarometreError, match=r"no lexicon_terms table .*barometre annotate"):
        read_inputs(tmp_path)
    lex = lexicons if lexicons is not None else pd.DataFrame(
        columns=["theme", "kind", "subtheme", "term_id", "match", "term"])
    lex.to_parquet(tables / "lexicon_terms.parquet")
    got = read_inputs(tmp_path, metropoles=["brunoy"])
    assert set(got.paragraphs["metropole"]) == {"brunoy"} and len(got.lexicon_terms) == len(lex)
    assert set(got.documents["metropole"]) == {"brunoy"}


def test_stage_topics_reads_the_persisted_tables(tmp_path, lexicons):
    """``barometre topics`` (pipeline.stage_topics) runs on the tables under outputs/tables
    and records its summary in run_info.json."""
    from nlp.config import load_settings
    from nlp.pipeline import stage_topics

    paragraphs, documents = synthetic_corpus(60, seed=4)
    tables = tmp_path / "tables"
    tables.mkdir()
    paragraphs.to_parquet(tables / "paragraphs.parquet")
    documents.to_parquet(tables / "documents.parquet")
    lex = lexicons if lexicons is not None else pd.DataFrame(
        columns=["theme", "kind", "subtheme", "term_id", "match", "term"])
    lex.to_parquet(tables / "lexicon_terms.parquet")
    settings = load_settings({"outputs_dir": tmp_path, "progress": False,
                              "topics": {"figures": False}}, env={})
    summary = stage_topics(settings)
    assert summary["n_chunks_fitted"] == 54 and summary["reused"] is None
    assert stage_topics(settings)["reused"] == "all"
    info = json.loads((tmp_path / "run_info.json").read_text(encoding="utf-8"))
    assert info["stages"]["topics"]["reused"] == "all" and "topics" in info["timings"]
