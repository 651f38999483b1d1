"""Barometer join: matching rules (slug, SIREN, name variants), delimiters and BOM, the
unmatched-rows report, Spearman correlations with bootstrap intervals, written tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nlp.errors import BarometreError
from nlp.indicators import IndicatorSettings, join_scores, write_join

REGISTRY = pd.DataFrame([
    ("lyon", "Métropole de Lyon", "200046977"),
    ("strasbourg", "Eurométropole de Strasbourg", "246700488"),
    ("nancy", "Métropole du Grand Nancy", "245400676"),
    ("saint-etienne", "Saint-Étienne Métropole", "244200770"),
    ("lille", "Métropole Européenne de Lille", "200093201"),
    ("rennes", "Rennes Métropole", "243500139"),
], columns=["slug", "name", "siren"])


@pytest.fixture()
def wide() -> pd.DataFrame:
    """A wide indicators table (as written by write_indicators) for the six metropolises."""
    slugs = list(REGISTRY.slug)
    return pd.DataFrame({
        "metropole": slugs,
        "n_documents": [10, 12, 8, 9, 11, 7],
        "inclusion__hits_per_10k_words": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "inclusion__doc_share": [0.1, 0.3, 0.2, 0.5, 0.4, 0.6],
        "maturity_index": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    })


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_matching_rules_and_unmatched_report(tmp_path, wide):
    scores = _write(tmp_path / "scores.csv", "\ufeff" + "\n".join([
        "territoire;code;score_global;score_services",
        "lyon;;12,5;3",                             # slug
        "Strasbourg (EMS);246700488;14;4",          # SIREN (name alone would not match)
        "Grand Nancy;;16;5",                        # normalised name without "Métropole du"
        "SAINT-ETIENNE MÉTROPOLE;;18;6",            # case + accents + "Métropole"
        "Métropole européenne de Lille;;20;7",      # name variant
        "Paris;;22;8",                              # not in the registry
        "Lyon;;30;9",                               # duplicate of line 2
    ]))
    res = join_scores(wide, scores, REGISTRY, IndicatorSettings(draws=200))
    j = res.joined.set_index("metropole")
    assert set(j.index) == {"lyon", "strasbourg", "nancy", "saint-etienne", "lille"}
    assert j.loc["lyon", "matched_by"] == "slug"
    assert j.loc["strasbourg", "matched_by"] == "siren"
    assert j.loc["nancy", "matched_by"] == "name"
    assert j.loc["lyon", "score__score_global"] == pytest.approx(12.5)   # decimal comma
    assert j.loc["lille", "inclusion__hits_per_10k_words"] == 5.0
    assert j.loc["lyon", "name"] == "Métropole de Lyon"
    assert res.score_columns == ["score_global", "score_services"]
    u = res.unmatched.set_index("line")
    assert set(u.index) == {7, 8}
    assert "no metropolis" in u.loc[7, "reason"]
    assert "duplicate" in u.loc[8, "reason"] and "line 2" in u.loc[8, "reason"]
    assert res.missing == ["rennes"]
    assert "UNMATCHED: 2 row(s)" in res.report and "Paris" in res.report
    assert "rennes" in res.report


def test_comma_delimiter_siren_numeric_column_and_correlations(tmp_path, wide):
    rows = ["siren,nom,score"] + [f"{s},{n},{v}" for s, n, v in zip(
        REGISTRY.siren, REGISTRY.name, [3, 1, 2, 5, 4, 6])]
    scores = _write(tmp_path / "s.csv", "\n".join(rows))
    res = join_scores(wide, scores, REGISTRY, IndicatorSettings(draws=300, seed=3))
    assert len(res.joined) == 6 and res.unmatched.empty and res.missing == []
    assert set(res.joined.matched_by) == {"siren"}
    c = res.correlations.set_index(["indicator", "score"])
    row = c.loc[("inclusion__hits_per_10k_words", "score")]
    expected = stats.spearmanr([1, 2, 3, 4, 5, 6], [3, 1, 2, 5, 4, 6])
    assert row.rho == pytest.approx(expected.statistic)
    assert row.p_value == pytest.approx(expected.pvalue)
    assert row.n == 6
    assert -1 <= row.ci_low <= row.rho <= row.ci_high <= 1
    assert ("maturity_index", "score") in c.index
    # same seed, same intervals
    again = join_scores(wide, scores, REGISTRY, IndicatorSettings(draws=300, seed=3))
    pd.testing.assert_frame_equal(res.correlations, again.correlations)
    paths = write_join(res, tmp_path / "out")
    names = {p.name for p in paths}
    assert {"joined_scores.csv", "joined_scores.parquet", "joined_scores_long.csv",
            "correlations.csv", "unmatched_scores.csv"} <= names
    long = pd.read_csv(tmp_path / "out" / "tables" / "joined_scores_long.csv")
    assert set(long.kind) == {"score", "indicator"}


def test_ambiguous_row_and_latin1(tmp_path, wide):
    # the slug says lyon, the name says rennes: ambiguous, reported, not joined
    scores = _write(tmp_path / "s.csv", "slug;nom;score\nlyon;Rennes Métropole;1\n"
                    "nancy;Métropole du Grand Nancy;2\n", encoding="latin-1")
    res = join_scores(wide, scores, REGISTRY, IndicatorSettings(draws=0))
    assert list(res.joined.metropole) == ["nancy"]
    assert "ambiguous" in res.unmatched.reason.iloc[0]
    assert np.isnan(res.correlations.rho).all()  # n < 3: no correlation


def test_bad_scores_files(tmp_path, wide):
    with pytest.raises(BarometreError, match="not found"):
        join_scores(wide, tmp_path / "missing.csv", REGISTRY)
    p = _write(tmp_path / "noscore.csv", "slug;commentaire\nlyon;bien\n")
    with pytest.raises(BarometreError, match="no numeric score column"):
        join_scores(wide, p, REGISTRY)


def test_join_from_written_tables(tmp_path):
    """The CLI path: indicators written to outputs/, then joined from the folder."""
    from nlp.indicators import compute_indicators, write_indicators
    from nlp.schema import DOCUMENT_COLUMNS, HIT_COLUMNS

    rng = np.random.default_rng(1)
    docs, hits = [], []
    for i, slug in enumerate(list(REGISTRY.slug) * 3):
        docs.append(dict(document_id=f"d{i}", metropole=slug, url=f"https://x.fr/{i}",
                         title="t", doc_type="deliberation", date=None, year=None, n_pages=1,
                         n_paragraphs=5, n_sentences=50, n_words=1000,
                         n_digital_paragraphs=1, extraction_status="ok"))
        for j in range(int(rng.integers(0, 6))):
            hits.append(dict(document_id=f"d{i}", metropole=slug, url="u", page=1,
                             paragraph=j, sentence_index=0, sentence="s", start=0, end=1,
                             theme="inclusion", subtheme=None, term_id="inclusion.x",
                             matched="s", negated=False, digital_context=True, doc_type=None,
                             year=None))
    res = compute_indicators(pd.DataFrame(docs)[DOCUMENT_COLUMNS],
                             pd.DataFrame(hits)[HIT_COLUMNS], IndicatorSettings(draws=20))
    write_indicators(res, tmp_path)
    scores = _write(tmp_path / "s.csv", "slug,score\n" + "\n".join(
        f"{s},{k}" for k, s in enumerate(REGISTRY.slug)))
    joined = join_scores(tmp_path, scores, REGISTRY, IndicatorSettings(draws=50))
    assert len(joined.joined) == 6
    row = joined.joined.set_index("metropole").loc["lyon"]
    assert row["inclusion__hits_per_10k_words"] == pytest.approx(
        res.wide.set_index("metropole").loc["lyon", "inclusion__hits_per_10k_words"])
    assert "maturity_index" in set(joined.correlations.indicator)
