"""Indicators stage: arithmetic on a small hand-computed corpus, bootstrap determinism,
maturity index and sensitivity, coverage of every metropolis × theme, written tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nlp.errors import ConfigError
from nlp.indicators import (
    IndicatorSettings, compute_indicators, g2_keyness, load_weights, normalise_name,
    tie_flags, write_indicators,
)
from nlp.schema import DOCUMENT_COLUMNS, HIT_COLUMNS, THEMES


def _doc(doc_id, metro, words, sentences, year, doc_type, status="ok"):
    return dict(document_id=doc_id, metropole=metro, url=f"https://{metro}.fr/{doc_id}.pdf",
                title=f"Titre {doc_id}", doc_type=doc_type,
                date=f"{year}-03-01" if year else None, year=year, n_pages=3,
                n_paragraphs=10, n_sentences=sentences, n_words=words,
                n_digital_paragraphs=2, extraction_status=status)


def _hit(doc_id, metro, theme, term, page, para, sent, negated=False, subtheme=None,
         sentence="La métropole agit pour le numérique."):
    return dict(document_id=doc_id, metropole=metro, url=f"https://{metro}.fr/{doc_id}.pdf",
                page=page, paragraph=para, sentence_index=sent, sentence=sentence, start=3,
                end=12, theme=theme, subtheme=subtheme, term_id=term, matched="métropole",
                negated=negated, digital_context=True, doc_type=None, year=None)


@pytest.fixture()
def corpus() -> tuple[pd.DataFrame, pd.DataFrame]:
    """3 metropolises (a, b, c), 5 documents (one failed), hits computed by hand below."""
    docs = pd.DataFrame([
        _doc("a1", "a", 1000, 50, 2020, "deliberation"),
        _doc("a2", "a", 3000, 150, 2021, "strategie"),
        _doc("b1", "b", 2000, 100, 2020, "deliberation"),
        _doc("c1", "c", 4000, 200, None, "rapport"),
        _doc("c2", "c", 0, 0, None, "rapport", status="pdf-encrypted"),
    ])[DOCUMENT_COLUMNS]
    hits = pd.DataFrame([
        # a: inclusion ×2 in one sentence (2 terms) + 1 negated; a2: inclusion ×1, strategie ×2
        _hit("a1", "a", "inclusion", "inclusion.aidant", 1, 0, 0),
        _hit("a1", "a", "inclusion", "inclusion.mediation", 1, 0, 0),
        _hit("a1", "a", "inclusion", "inclusion.aidant", 1, 1, 0, negated=True),
        _hit("a2", "a", "inclusion", "inclusion.aidant", 2, 0, 1),
        _hit("a2", "a", "strategie", "strategie.schema", 2, 1, 0),
        _hit("a2", "a", "strategie", "strategie.schema", 2, 2, 0),
        # b: strategie ×1, inclusion negated ×1
        _hit("b1", "b", "strategie", "strategie.feuille", 1, 0, 0),
        _hit("b1", "b", "inclusion", "inclusion.aidant", 1, 1, 0, negated=True),
        # c: donnees ×4 in 3 sentences with 3 terms, inclusion ×1, a barrier with sub-theme
        _hit("c1", "c", "donnees", "donnees.open", 1, 0, 0),
        _hit("c1", "c", "donnees", "donnees.plateforme", 1, 0, 0),
        _hit("c1", "c", "donnees", "donnees.open", 1, 0, 1),
        _hit("c1", "c", "donnees", "donnees.capteur", 3, 2, 0),
        _hit("c1", "c", "inclusion", "inclusion.aidant", 4, 0, 0),
        _hit("c1", "c", "frein_interne", "frein_interne.budget", 4, 1, 0,
             subtheme="budgetaire"),
    ])[HIT_COLUMNS]
    return docs, hits


def _value(res, metro, theme, measure, level="all", **kw):
    t = res.tidy
    sel = (t.level == level) & (t.metropole == metro) & (t.theme == theme) & \
        (t.measure == measure)
    for k, v in kw.items():
        sel &= t[k] == v
    row = t[sel]
    assert len(row) == 1, (metro, theme, measure, level, kw, len(row))
    return row.iloc[0]


def test_rates_counts_and_negation_by_hand(corpus):
    docs, hits = corpus
    res = compute_indicators(docs, hits, IndicatorSettings(draws=0))
    # a / inclusion: 3 positive hits over 1000 + 3000 words; 2 of 2 documents; 2 distinct
    # sentences over 200; 2 distinct terms; 1 negated (not in the rates)
    assert _value(res, "a", "inclusion", "n_hits").value == 3
    assert _value(res, "a", "inclusion", "hits_per_10k_words").value == pytest.approx(7.5)
    assert _value(res, "a", "inclusion", "doc_share").value == pytest.approx(1.0)
    assert _value(res, "a", "inclusion", "sentence_share").value == pytest.approx(2 / 200)
    assert _value(res, "a", "inclusion", "breadth").value == 2
    assert _value(res, "a", "inclusion", "n_negated").value == 1
    # b / inclusion: only a negated hit -> zero rates, negated counted apart
    assert _value(res, "b", "inclusion", "hits_per_10k_words").value == 0
    assert _value(res, "b", "inclusion", "n_negated").value == 1
    # c: the failed document (0 words) is out of the denominators
    assert _value(res, "c", "inclusion", "doc_share").value == pytest.approx(1.0)
    assert _value(res, "c", "inclusion", "n_documents_with_theme").n_documents == 1
    assert _value(res, "c", "donnees", "hits_per_10k_words").value == pytest.approx(10.0)
    assert _value(res, "c", "donnees", "n_sentences_with_theme").value == 3
    assert _value(res, "c", "donnees", "sentence_share").value == pytest.approx(3 / 200)
    assert _value(res, "c", "donnees", "breadth").value == 3
    # strategie: a = 2 hits / 4000 words, b = 1 / 2000 -> both 5 per 10k
    assert _value(res, "a", "strategie", "hits_per_10k_words").value == pytest.approx(5.0)
    assert _value(res, "b", "strategie", "hits_per_10k_words").value == pytest.approx(5.0)
    assert _value(res, "a", "strategie", "doc_share").value == pytest.approx(0.5)


def test_keyness_g2_by_hand(corpus):
    docs, hits = corpus
    res = compute_indicators(docs, hits, IndicatorSettings(draws=0))
    # a / inclusion: a=3 in c=4000 words vs b=1 in d=6000 words.
    # E1 = 4000·4/10000 = 1.6, E2 = 2.4; G² = 2(3 ln(3/1.6) + 1 ln(1/2.4)) = 2.0207142
    k = res.keyness.set_index(["metropole", "theme"])
    row = k.loc[("a", "inclusion")]
    assert row.g2 == pytest.approx(2.0207142, abs=1e-6)
    assert row.direction == "+"
    assert row.p_value == pytest.approx(stats.chi2.sf(2.0207142, 1), rel=1e-6)
    assert _value(res, "a", "inclusion", "keyness_g2").value == pytest.approx(2.0207142,
                                                                            abs=1e-6)
    # b has no inclusion hit: under-use, negative signed G²
    assert k.loc[("b", "inclusion")].direction == "-"
    assert _value(res, "b", "inclusion", "keyness_g2").value < 0
    # a theme absent everywhere: G² = 0, p = 1
    assert k.loc[("a", "agents")].g2 == 0
    assert k.loc[("a", "agents")].p_value == pytest.approx(1.0)


def test_g2_function_matches_textbook_formula():
    a, b, c, d = 30.0, 10.0, 10_000.0, 20_000.0
    e1, e2 = c * (a + b) / (c + d), d * (a + b) / (c + d)
    expected = 2 * (a * math.log(a / e1) + b * math.log(b / e2))
    g2, sign, p = g2_keyness(np.array([a]), np.array([b]), np.array([c]), np.array([d]))
    assert g2[0] == pytest.approx(expected)
    assert sign[0] == 1
    assert p[0] == pytest.approx(stats.chi2.sf(expected, 1))


def test_every_metropolis_and_theme_present_with_zeros(corpus):
    docs, hits = corpus
    res = compute_indicators(docs, hits, IndicatorSettings(draws=0, metropoles=("a", "b", "c",
                                                                                 "d")))
    all_ = res.tidy[res.tidy.level == "all"]
    cells = all_.groupby(["metropole", "theme"]).size()
    assert len(cells) == 4 * len(THEMES)
    assert set(all_.measure) >= {"hits_per_10k_words", "doc_share", "sentence_share",
                                 "n_hits", "n_negated", "breadth", "keyness_g2", "keyness_p"}
    assert _value(res, "a", "agents", "hits_per_10k_words").value == 0
    # a metropolis of the registry without any document: zero counts, undefined rates
    assert _value(res, "d", "agents", "n_hits").value == 0
    assert math.isnan(_value(res, "d", "agents", "hits_per_10k_words").value)
    assert len(res.wide) == 4


def test_by_year_and_doc_type(corpus):
    docs, hits = corpus
    res = compute_indicators(docs, hits, IndicatorSettings(draws=0))
    # a in 2020 = document a1 only: 2 inclusion hits over 1000 words
    assert _value(res, "a", "inclusion", "hits_per_10k_words", level="year",
                  year=2020).value == pytest.approx(20.0)
    assert _value(res, "a", "inclusion", "hits_per_10k_words", level="year",
                  year=2021).value == pytest.approx(1 / 3000 * 1e4)
    assert _value(res, "a", "inclusion", "breadth", level="year", year=2020).value == 2
    # c has no dated document: absent from the year level
    assert "c" not in set(res.by_year.metropole)
    assert _value(res, "a", "strategie", "n_hits", level="doc_type",
                  doc_type="strategie").value == 2
    # doc-type filter
    only = compute_indicators(docs, hits, IndicatorSettings(draws=0,
                                                            doc_types=("deliberation",)))
    assert _value(only, "a", "inclusion", "hits_per_10k_words").value == pytest.approx(20.0)


def test_bootstrap_deterministic_and_seed_dependent(corpus):
    docs, hits = corpus
    s1 = compute_indicators(docs, hits, IndicatorSettings(draws=200, seed=1))
    s1b = compute_indicators(docs, hits, IndicatorSettings(draws=200, seed=1))
    pd.testing.assert_frame_equal(s1.tidy, s1b.tidy)
    pd.testing.assert_frame_equal(s1.maturity, s1b.maturity)
    r1 = _value(s1, "a", "inclusion", "hits_per_10k_words")
    # a has two documents with different rates (20 and 3.3 per 10k): not degenerate
    assert r1.ci_low < r1.ci_high
    assert r1.ci_low >= 10 / 3 - 1e-9 and r1.ci_high <= 20 + 1e-9
    # b has one document: resampling it gives back the same rate
    rb = _value(s1, "b", "strategie", "hits_per_10k_words")
    assert rb.ci_low == rb.ci_high == pytest.approx(rb.value)


@pytest.fixture()
def known_rate_corpus() -> tuple[pd.DataFrame, pd.DataFrame]:
    """400 documents of one metropolis, hits drawn at a true rate of 5 per 10k words."""
    rng = np.random.default_rng(0)
    n = 400
    words = rng.integers(500, 1500, n)
    docs = pd.DataFrame([_doc(f"d{i}", "m", int(w), 40, 2022, "deliberation")
                         for i, w in enumerate(words)])
    k = rng.poisson(words * 5 / 1e4)
    hits = pd.DataFrame([_hit(f"d{i}", "m", "agents", "agents.x", 1, j, 0)
                         for i in range(n) for j in range(k[i])])
    return docs, hits


def test_bootstrap_seed_changes_draws(known_rate_corpus):
    docs, hits = known_rate_corpus
    r = [_value(compute_indicators(docs, hits, IndicatorSettings(draws=200, seed=s)),
                "m", "agents", "hits_per_10k_words") for s in (1, 1, 2)]
    assert (r[0].ci_low, r[0].ci_high) == (r[1].ci_low, r[1].ci_high)
    assert (r[0].ci_low, r[0].ci_high) != (r[2].ci_low, r[2].ci_high)
    assert r[0].value == r[2].value


def test_bootstrap_interval_covers_truth_on_synthetic_data(known_rate_corpus):
    """Many documents with a known rate: the 95% interval is narrow and holds the truth."""
    docs, hits = known_rate_corpus
    res = compute_indicators(docs, hits, IndicatorSettings(draws=500))
    r = _value(res, "m", "agents", "hits_per_10k_words")
    assert r.ci_low < 5.0 < r.ci_high
    assert r.ci_high - r.ci_low < 1.5


def test_maturity_index_weights_and_sensitivity(corpus, tmp_path):
    docs, hits = corpus
    w = tmp_path / "w.yaml"
    w.write_text("measure: hits_per_10k_words\nnormalisation: minmax\n"
                 "weights: {inclusion: 1, strategie: 1}\n", encoding="utf-8")
    res = compute_indicators(docs, hits, IndicatorSettings(draws=0, weights_path=w))
    m = res.maturity.set_index("metropole")
    # inclusion 7.5 / 0 / 2.5 -> 1, 0, 1/3; strategie 5 / 5 / 0 -> 1, 1, 0
    assert m.loc["a", "maturity_index"] == pytest.approx(100.0)
    assert m.loc["b", "maturity_index"] == pytest.approx(50.0)
    assert m.loc["c", "maturity_index"] == pytest.approx(100 / 6)
    assert list(m["rank"].loc[["a", "b", "c"]]) == [1, 2, 3]
    # barriers beside the index, not in it
    assert m.loc["c", "frein_interne__hits_per_10k_words"] == pytest.approx(2.5)
    comp = res.maturity_components.groupby("metropole").contribution.sum()
    assert comp.loc["b"] == pytest.approx(50.0)
    s = res.sensitivity.set_index(["dropped_theme", "metropole"])
    # dropping strategie leaves inclusion alone: c (33.3) passes b (0)
    assert s.loc[("strategie", "c"), "rank"] == 2
    assert s.loc[("strategie", "b"), "rank_change"] == 1
    assert s.loc[("strategie", "c"), "maturity_index"] == pytest.approx(100 / 3)
    # rank normalisation
    w.write_text("normalisation: rank\nweights: {inclusion: 1}\n", encoding="utf-8")
    res = compute_indicators(docs, hits, IndicatorSettings(draws=0, weights_path=w))
    m = res.maturity.set_index("metropole")
    assert list(m.maturity_index.loc[["a", "c", "b"]]) == pytest.approx([100, 50, 0])


def test_maturity_index_interval_and_ranks_have_intervals(corpus):
    docs, hits = corpus
    res = compute_indicators(docs, hits, IndicatorSettings(draws=300))
    m = res.maturity
    assert ((m.ci_low <= m.maturity_index + 1e-9) & (m.maturity_index <= m.ci_high + 1e-9)).all()
    assert m.maturity_index.between(0, 100).all()
    r = res.ranks[(res.ranks.theme == "inclusion") & (res.ranks.measure ==
                                                       "hits_per_10k_words")]
    assert (r.rank_low <= r["rank"]).all() and (r["rank"] <= r.rank_high).all()


def test_weights_file_validation(tmp_path):
    assert set(load_weights().weights) == {"strategie", "partenariats", "citoyennete",
                                           "agents", "relation_usager", "inclusion",
                                           "donnees", "cooperation_communes"}
    bad = tmp_path / "bad.yaml"
    for text, needle in [("weights: {frein_interne: 1}", "frein_interne"),
                         ("weights: {inclusoin: 1}", "inclusoin"),
                         ("weights: {inclusion: -1}", "inclusion"),
                         ("weights: {inclusion: 0}", "at least one"),
                         ("measure: foo\nweights: {inclusion: 1}", "measure")]:
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=needle):
            load_weights(bad)


def test_tie_flags():
    rank = np.array([1.0, 2.0, 3.0, 4.0])
    lo = np.array([1.0, 1.0, 3.0, 4.0])
    hi = np.array([2.0, 3.0, 3.0, 4.0])
    prev, nxt = tie_flags(rank, lo, hi)
    assert list(prev) == [False, True, True, False]
    assert list(nxt) == [True, True, False, False]


def test_comparison_profiles_distances_clusters(corpus):
    docs, hits = corpus
    res = compute_indicators(docs, hits, IndicatorSettings(draws=0, n_clusters=2))
    prof = res.profiles.set_index("metropole")[list(THEMES)]
    assert prof.sum(axis=1).to_numpy() == pytest.approx([1, 1, 1])
    d = res.distances.set_index(["metropole_a", "metropole_b"]).js_distance
    assert d.between(0, 1).all() and len(d) == 3
    # a (inclusion + strategie) is closer to b (strategie) than to c (mostly donnees)? both
    # share strategie; c shares only inclusion: check against scipy directly
    from scipy.spatial.distance import jensenshannon
    assert d.loc[("a", "b")] == pytest.approx(jensenshannon(prof.loc["a"], prof.loc["b"],
                                                            base=2))
    assert set(res.clusters.cluster) <= {1, 2}
    assert len(res.linkage) == 2


def test_subthemes_and_evidence(corpus):
    docs, hits = corpus
    hits = hits.copy()
    hits.loc[0, "sentence"] = "<script>alert(1)</script> aidant numérique"
    res = compute_indicators(docs, hits, IndicatorSettings(draws=0, evidence_per_cell=1))
    sub = res.subthemes
    row = sub[(sub.metropole == "c") & (sub.subtheme == "budgetaire") &
              (sub.measure == "hits_per_10k_words")]
    assert row.value.iloc[0] == pytest.approx(2.5)
    assert {"acculturation", "craintes", "fracture"} <= set(sub.subtheme)
    ev = res.evidence
    cell = ev[(ev.level == "all") & (ev.metropole == "a") & (ev.theme == "inclusion")]
    assert (~cell.negated).sum() == 1 and cell.negated.sum() == 1
    assert {"url", "page", "date", "sentence", "start", "end"} <= set(ev.columns)
    assert ev[ev.metropole == "a"].date.notna().all()


def test_write_indicators(corpus, tmp_path):
    docs, hits = corpus
    res = compute_indicators(docs, hits, IndicatorSettings(draws=50))
    paths = write_indicators(res, tmp_path)
    names = {p.name for p in paths}
    for n in ("indicators.csv", "indicators.parquet", "indicators_wide.csv",
              "indicators_wide.parquet", "keyness.csv", "maturity_index.parquet",
              "sensitivity.csv", "data_dictionary.md", "data_dictionary.csv"):
        assert n in names
    back = pd.read_parquet(tmp_path / "tables" / "indicators.parquet")
    assert len(back) == len(res.tidy)
    csv = pd.read_csv(tmp_path / "tables" / "indicators.csv")
    assert len(csv[csv.level == "all"].groupby(["metropole", "theme"])) == 3 * len(THEMES)
    dd = (tmp_path / "data_dictionary.md").read_text(encoding="utf-8")
    for m in ("hits_per_10k_words", "doc_share", "sentence_share", "breadth", "keyness_g2",
              "maturity_index", "js_distance", "minmax"):
        assert m in dd


@pytest.mark.parametrize("name,expected", [
    ("Métropole de Lyon", "lyon"), ("Eurométropole de Strasbourg", "strasbourg"),
    ("Métropole du Grand Nancy", "grand nancy"), ("MÉTROPOLE  EUROPÉENNE DE LILLE", "lille"),
    ("Saint-Étienne Métropole", "saint etienne"), ("Métropole d'Aix-Marseille-Provence",
                                                   "aix marseille provence"),
])
def test_normalise_name(name, expected):
    assert normalise_name(name) == expected


def test_edge_cases_no_text_and_no_documents(corpus):
    from nlp.errors import BarometreError

    docs, hits = corpus
    failed = docs.assign(n_words=0, extraction_status="pdf-encrypted")
    res = compute_indicators(failed, hits.iloc[:0], IndicatorSettings(draws=20))
    assert len(res.tidy[res.tidy.level == "all"].groupby(["metropole", "theme"])) == \
        3 * len(THEMES)
    assert res.maturity.maturity_index.isna().all()
    assert any("without words" in w for w in res.warnings)
    with pytest.raises(BarometreError, match="empty"):
        compute_indicators(docs.iloc[:0], hits.iloc[:0])
