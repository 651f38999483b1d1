"""End to end: the bundled demo served on 127.0.0.1, crawled by the real spider in a
subprocess, extracted, annotated with real spaCy, topics, indicators, report; then a second
run over the unchanged site, which must download and extract nothing again."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nlp.io import read_table
from nlp.schema import THEMES

pytestmark = pytest.mark.slow


def _barometre(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nlp.cli", *args, "--no-progress"],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"barometre {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-5000:]}"
    return proc


def _rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("demo")
    corpus, outputs = root / "corpus", root / "outputs"
    first = _barometre("demo", "--corpus-dir", str(corpus), "--outputs-dir", str(outputs))
    db = corpus / "corpus.sqlite"
    before = {
        "documents": _rows(db, "SELECT id FROM documents ORDER BY id"),
        "extractions": _rows(db, "SELECT document_id, engine, engine_version, cleaning_version, created_at "
                                 "FROM extractions ORDER BY document_id"),
        "indicators": (outputs / "tables" / "indicators.csv").read_bytes(),
    }
    second = _barometre("demo", "--corpus-dir", str(corpus), "--outputs-dir", str(outputs), "--no-topics")
    return {"corpus": corpus, "outputs": outputs, "first": first, "second": second, "before": before, "db": db}


def test_demo_writes_report_and_indicators_for_every_metropole_and_theme(demo_run: dict) -> None:
    from nlp.demo import demo_registry

    outputs = demo_run["outputs"]
    report = outputs / "report" / "index.html"
    assert report.exists() and report.stat().st_size > 10_000
    slugs = {m["slug"] for m in demo_registry("http://127.0.0.1:1")["metropoles"]}
    assert len(slugs) >= 4
    ind = pd.read_csv(outputs / "tables" / "indicators.csv")
    covered = set(zip(ind["metropole"], ind["theme"]))
    assert {(m, t) for m in slugs for t in THEMES} <= covered
    info = json.loads((outputs / "run_info.json").read_text())
    for stage in ("crawl", "extract", "annotate", "topics", "indicators", "report"):
        assert stage in info["timings"], stage
    assert info["corpus"]["documents"] >= 4 * 8


def test_every_demo_metropole_has_its_documents_with_provenance(demo_run: dict) -> None:
    rows = _rows(demo_run["db"], "SELECT metropole, COUNT(DISTINCT document_id) FROM sources GROUP BY metropole")
    counts = dict(rows)
    assert len(counts) >= 4 and min(counts.values()) >= 8, counts
    missing = _rows(demo_run["db"], "SELECT COUNT(*) FROM sources WHERE url IS NULL OR fetched_at IS NULL "
                                    "OR http_status IS NULL")
    assert missing == [(0,)]


def _overall(ind: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Rows of one measure over all years and document types."""
    overall = ind[ind["measure"] == measure]
    for col in ("year", "doc_type"):
        if col in overall.columns:
            overall = overall[overall[col].isna() | (overall[col].astype(str).isin(["all", "", "nan"]))]
    return overall


@pytest.mark.parametrize("measure", ["paragraph_share", "hits_per_10k_words"])
def test_designed_contrasts_come_out(demo_run: dict, measure: str) -> None:
    """On the primary measure (share of analysed paragraphs) and on the secondary one."""
    from nlp.demo import DESIGNED_LEADERS

    overall = _overall(pd.read_csv(demo_run["outputs"] / "tables" / "indicators.csv"), measure)
    for theme, leader in DESIGNED_LEADERS.items():
        sub = overall[overall["theme"] == theme].set_index("metropole")["value"]
        assert sub.idxmax() == leader, f"{theme}: expected {leader} first, got\n{sub.sort_values()}"


def test_brumeval_s_stated_lacks_of_strategy_count_as_barriers(demo_run: dict) -> None:
    """Brumeval's minutes and diagnosis say what it lacks ("absence de gouvernance du
    numérique", "il n'existe ni schéma directeur, ni comité de pilotage"): those hits never
    count as strategy; the ones stated as a lack count as its internal barrier (issue 11).
    (Brumeval still has the highest strategy paragraph share of the demo with the model
    themes@167a9657b4ab, 0.125 vs 0.119 for Valombre, with a bootstrap probability of rank 1 of
    0.38: it does adopt and steer a schéma directeur, which the guidelines label strategy.)"""
    hits = read_table(demo_run["outputs"] / "tables" / "hits.parquet")
    mine = hits[(hits["metropole"] == "brumeval") & (hits["theme"] == "strategie")]
    denied = mine[mine["negated"].astype(bool) | mine["lacking"].astype(bool)]
    assert len(denied) >= 3, mine[["matched", "negated", "lacking", "sentence"]].to_string()
    assert (denied["count_theme"] != "strategie").all()
    assert (denied["count_theme"] == "frein_interne").any()


def test_counted_hits_come_from_digital_contexts(demo_run: dict) -> None:
    """Aubeclair's partnerships and every internal-barrier hit outside Brumeval that counts
    come from a digital context; out-of-context hits stay in the table, flagged, not counted."""
    hits = read_table(demo_run["outputs"] / "tables" / "hits.parquet")
    counted = hits[hits["count_theme"].notna()]
    chosen = counted[((counted["metropole"] == "aubeclair") & (counted["count_theme"] == "partenariats"))
                     | ((counted["metropole"] != "brumeval") & (counted["count_theme"] == "frein_interne"))]
    assert len(chosen) > 0
    assert chosen["digital_context"].astype(bool).all(), chosen[["metropole", "theme", "sentence"]].to_string()
    out_of_context = hits[~hits["digital_context"].astype(bool)]
    assert len(out_of_context) > 0 and out_of_context["count_theme"].isna().all()


def test_demo_topics_are_mapped_to_themes(demo_run: dict) -> None:
    """Issue 6's acceptance on the demo: topics, each mapped to the themes its chunks carry,
    per metropolis and per year."""
    tables = demo_run["outputs"] / "tables"
    topics = read_table(tables / "topics.parquet")
    tmap = read_table(tables / "topic_theme_map.parquet")
    assert set(tmap["topic"]) == set(topics["topic"]) and set(tmap["theme"]) == set(THEMES)
    real = topics[topics["topic"] != -1]
    assert len(real) >= 2
    # Most topics have a dominant theme carried by their chunks' labels.
    assert (real["best_theme_share"] > 0.3).mean() >= 0.5
    assert tmap["lexical_overlap"].max() > 0
    assert read_table(tables / "topics_per_metropole.parquet")["metropole"].nunique() == 4
    assert read_table(tables / "topics_over_time.parquet")["year"].nunique() >= 2


def test_second_run_downloads_and_extracts_nothing_again(demo_run: dict) -> None:
    db = demo_run["db"]
    before = demo_run["before"]
    assert _rows(db, "SELECT id FROM documents ORDER BY id") == before["documents"]
    assert _rows(db, "SELECT document_id, engine, engine_version, cleaning_version, created_at "
                     "FROM extractions ORDER BY document_id") == before["extractions"]
    # Every document URL was answered 304 (conditional request) or not requested at all.
    statuses = dict(_rows(db, "SELECT status, COUNT(*) FROM fetches WHERE kind = 'document' GROUP BY status"))
    assert statuses.get("not-modified", 0) > 0, statuses
    assert statuses.get("ok", 0) == 0, statuses
    out = demo_run["second"].stdout
    assert "annotated: " not in out or "annotated: 0" in out
    # Same corpus, same seed: the indicators are identical.
    assert (demo_run["outputs"] / "tables" / "indicators.csv").read_bytes() == before["indicators"]
    # Nothing the indicators read changed: reused, not recomputed (issue 14.7).
    info = json.loads((demo_run["outputs"] / "run_info.json").read_text())
    assert info["stages"]["indicators"].get("reused") is True, info["stages"]["indicators"]
