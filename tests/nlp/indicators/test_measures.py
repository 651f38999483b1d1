"""Indicators on a small hand-computed corpus: the analysed base, paragraph and document
shares, counting hits only, mix adjustment, the Rogan–Gladen correction, mid-ranks and small
cells, the index's fixed normalisation, document-level keyness, written tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nlp.errors import ConfigError
from nlp.indicators import IndicatorSettings, compute_indicators, write_indicators
from nlp.indicators.evidence import sample_evidence
from nlp.indicators.keyness import benjamini_hochberg
from nlp.indicators.maturity import load_config, normalise
from nlp.indicators.measures import Correction, rogan_gladen
from nlp.indicators.ranks import tie_flags
from nlp.io import read_table, write_table
from nlp.schema import DOCUMENT_COLUMNS, HIT_COLUMNS, LABELS, PARAGRAPH_COLUMNS, THEMES, score_column


def _doc(doc_id, metro, year=2021, doc_type="deliberation", analysed=True):
    return dict(document_id=doc_id, metropole=metro, url=f"https://{metro}.fr/{doc_id}.pdf", title=doc_id,
                doc_type=doc_type, date=f"{year}-03-01" if year else None, year=year, fetched_at="2026-01-02T00:00:00",
                n_pages=1, n_paragraphs=4, n_analysed_paragraphs=4, n_sentences=8, n_words=400,
                n_digital_paragraphs=1, analysed=analysed, extraction_status="ok")


def _para(doc_id, metro, k, themes=(), labels=None, negated=(), analysed=True, words=100):
    labels = list(labels if labels is not None else (["numerique", *themes] if themes else []))
    row = dict(document_id=doc_id, metropole=metro, page=1, paragraph=k, text=f"texte {doc_id} {k}",
               n_words=words, n_sentences=2, is_digital=bool(labels), analysed=analysed, labels=labels,
               negated=list(negated), themes=list(themes), lexicon_labels=[], model="themes@test")
    row.update({score_column(lab): float(lab in labels) for lab in LABELS})
    return row


def _hit(doc_id, metro, k, theme, counts=True, reason="", count_theme=None):
    return dict(document_id=doc_id, metropole=metro, url=f"https://{metro}.fr/{doc_id}.pdf", page=1, paragraph=k,
                sentence_index=0, sentence="La métropole agit pour le numérique.", start=3, end=12, theme=theme,
                subtheme=None, term_id=f"{theme}.x", matched="métropole", negated=False, lacking=False,
                other_actor=reason == "other-actor", digital_context=reason != "out-of-context", counts=counts,
                count_theme=(count_theme or theme) if counts else None, count_subtheme=None, reason=reason,
                doc_type="deliberation", year=2021)


@pytest.fixture()
def corpus():
    """Metropolis a: 2 documents × 4 paragraphs; b: 1 document; c: a listing page only."""
    docs = [_doc("a1", "a"), _doc("a2", "a", doc_type="strategie"), _doc("b1", "b"), _doc("c1", "c", analysed=False)]
    paras = [
        _para("a1", "a", 0, ["inclusion"]), _para("a1", "a", 1, ["inclusion", "strategie"]),
        _para("a1", "a", 2), _para("a1", "a", 3, analysed=False, themes=["inclusion"]),  # short: out of the base
        _para("a2", "a", 0, ["strategie"]), _para("a2", "a", 1), _para("a2", "a", 2), _para("a2", "a", 3),
        _para("b1", "b", 0, labels=["numerique", "strategie"], negated=["strategie"], themes=[]),  # stated absent
        _para("b1", "b", 1, ["donnees"]), _para("b1", "b", 2), _para("b1", "b", 3),
        _para("c1", "c", 0, ["donnees"]),
    ]
    hits = [_hit("a1", "a", 0, "inclusion"), _hit("a1", "a", 1, "inclusion"),
            _hit("a1", "a", 2, "partenariats", counts=False, reason="out-of-context"),
            _hit("b1", "b", 1, "donnees"), _hit("b1", "b", 2, "donnees", counts=False, reason="other-actor"),
            _hit("b1", "b", 0, "strategie", counts=True, reason="lack-as-barrier", count_theme="frein_interne")]
    return (pd.DataFrame(docs)[DOCUMENT_COLUMNS], pd.DataFrame(paras),
            pd.DataFrame(hits)[HIT_COLUMNS])


def value(res, metro, theme, measure, level="all"):
    t = res.tables["indicators"]
    row = t[(t.level == level) & (t.metropole == metro) & (t.theme == theme) & (t.measure == measure)]
    assert len(row) == 1
    return row.iloc[0]


def test_shares_and_rates_by_hand(corpus):
    res = compute_indicators(*corpus, IndicatorSettings(draws=0, min_documents=1))
    # a: 7 analysed paragraphs (a1-3 is too short), inclusion in 2, strategie in 2
    assert value(res, "a", "inclusion", "paragraph_share").value == pytest.approx(2 / 7)
    assert value(res, "a", "strategie", "paragraph_share").value == pytest.approx(2 / 7)
    assert value(res, "a", "inclusion", "document_share").value == pytest.approx(1 / 2)
    assert value(res, "a", "strategie", "document_share").value == pytest.approx(2 / 2)
    # hits per 10k words: counting hits only (2 inclusion hits over 700 words)
    assert value(res, "a", "inclusion", "hits_per_10k_words").value == pytest.approx(2 / 700 * 1e4)
    assert value(res, "a", "partenariats", "hits_per_10k_words").value == 0  # out of context
    # b: strategie stated absent is not strategie; its lack counts as the barrier's hit
    assert value(res, "b", "strategie", "paragraph_share").value == 0
    assert value(res, "b", "frein_interne", "hits_per_10k_words").value == pytest.approx(1 / 400 * 1e4)
    assert value(res, "b", "donnees", "hits_per_10k_words").value == pytest.approx(1 / 400 * 1e4)  # other actor left out
    # c: a listing page leaves the base; the metropolis is still listed, with no value
    assert np.isnan(value(res, "c", "donnees", "paragraph_share").value)
    assert any("left out of the analysed base" in w for w in res.warnings)


def test_every_metropolis_and_theme_and_small_cells(corpus):
    res = compute_indicators(*corpus, IndicatorSettings(draws=50, min_documents=2))
    t = res.tables["indicators"]
    assert {(m, th) for m in "abc" for th in THEMES} <= set(zip(t.metropole, t.theme))
    a, b = value(res, "a", "inclusion", "paragraph_share"), value(res, "b", "donnees", "paragraph_share")
    assert not a.small_cell and b.small_cell
    ranks = res.tables["ranks"]
    rb = ranks[(ranks.metropole == "b") & (ranks.measure == "paragraph_share")]
    assert not rb["ranked"].any() and rb["rank"].isna().all()
    assert "fewer than 2" in rb["reason"].iloc[0]


def test_mix_adjustment_weights_document_types(corpus):
    docs, paras, hits = corpus
    res = compute_indicators(docs, paras, hits, IndicatorSettings(draws=0, min_documents=1))
    # a: deliberation share of strategie 1/3, strategie-document share 1/4; equal weights
    assert value(res, "a", "strategie", "paragraph_share_adjusted").value == pytest.approx((1 / 3 + 1 / 4) / 2)
    res2 = compute_indicators(docs, paras, hits, IndicatorSettings(
        draws=0, min_documents=1, type_weights={"deliberation": 3.0, "strategie": 1.0}))
    assert value(res2, "a", "strategie", "paragraph_share_adjusted").value == pytest.approx((3 / 3 + 1 / 4) / 4)


def test_rogan_gladen_correction_and_its_interval(corpus):
    assert rogan_gladen(np.array(0.3), np.array(0.8), np.array(0.9)) == pytest.approx((0.3 + 0.9 - 1) / 0.7)
    assert np.isnan(rogan_gladen(np.array(0.3), np.array(0.5), np.array(0.52)))  # no better than chance
    assert rogan_gladen(np.array(0.01), np.array(0.8), np.array(0.9)) == 0.0  # clipped
    corr = Correction({"inclusion": {"tp": 40, "fp": 10, "fn": 10, "tn": 940}}, "test validation")
    res = compute_indicators(*corpus, IndicatorSettings(draws=200, min_documents=1), corr)
    row = value(res, "a", "inclusion", "paragraph_share_corrected")
    sens, spec = 0.8, 940 / 950
    assert row.value == pytest.approx((2 / 7 + spec - 1) / (sens + spec - 1))
    assert row.ci_low < row.value < row.ci_high and row.corrected_from == "test validation"
    assert np.isnan(value(res, "a", "strategie", "paragraph_share_corrected").value)  # no counts for it


def test_mid_ranks_for_ties_and_tie_flags():
    from nlp.indicators.ranks import rank_table

    point = np.array([[0.0], [0.0], [0.5], [0.0]])
    draws = np.zeros((100, 4, 1))
    draws[:, 2, 0] = 0.5
    ranks, probs = rank_table(["a", "b", "c", "d"], ["t"], "m", point, draws, np.ones(4, bool), 0.95, 1)
    r = ranks.set_index("metropole")
    assert r.loc["c", "rank"] == 1 and r.loc["a", "rank"] == 3  # (2 + 3 + 4) / 3
    assert r.loc["a", "rank_low"] == 3 and r.loc["a", "rank_high"] == 3  # not [2–4]
    assert r.loc["c", "p_first"] == 1.0
    p = probs[probs.metropole == "a"].set_index("rank")["probability"]
    assert p.sum() == pytest.approx(1.0) and p.loc[1] == 0
    prev, nxt = tie_flags(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 3.0]), np.array([2.0, 2.0, 3.0]))
    assert prev.tolist() == [False, True, False] and nxt.tolist() == [True, False, False]


def test_index_normalisation_does_not_hinge_on_the_leader():
    ref = np.array([0.05, 0.05])
    x = np.array([[0.10, 0.05], [0.05, 0.05], [0.0, 0.0]])
    n1 = normalise(x, "reference", ref)
    assert n1[1].tolist() == [0.5, 0.5] and n1[2].tolist() == [0.0, 0.0]
    # adding a huge leader moves nobody else under the reference normalisation...
    x2 = np.vstack([x, [[0.9, 0.9]]])
    assert np.allclose(normalise(x2, "reference", ref)[:3], n1)
    # ...but does under min-max
    assert not np.allclose(normalise(x2, "minmax", ref)[:3], normalise(x, "minmax", ref))


def test_maturity_config_validation(tmp_path):
    cfg = load_config()
    assert cfg.normalisation == "reference" and cfg.measure == "paragraph_share"
    assert set(cfg.weights) <= set(cfg.reference)
    bad = tmp_path / "m.yaml"
    bad.write_text("weights: {frein_interne: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="barrier themes"):
        load_config(bad)
    bad.write_text("weights: {strategie: 1}\nnormalisation: reference\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no reference share"):
        load_config(bad)


def test_index_sensitivity_covers_measure_normalisation_and_weights(corpus):
    res = compute_indicators(*corpus, IndicatorSettings(draws=100, min_documents=1))
    scen = set(res.tables["sensitivity"]["scenario"])
    assert "baseline" in scen and "normalisation=minmax" in scen and "measure=document_share" in scen
    assert {f"without={t}" for t in ("strategie", "inclusion")} <= scen
    mi = res.tables["maturity_index"].set_index("metropole")
    assert mi.loc["a", "maturity_index"] > mi.loc["b", "maturity_index"]
    probs = res.tables["maturity_rank_probabilities"]
    assert probs.groupby("metropole")["probability"].sum().round(6).eq(1).all()


def test_keyness_is_document_level_and_corrected():
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, np.nan]))
    assert q[0] == pytest.approx(0.03) and q[1] == pytest.approx(0.04) and np.isnan(q[3])
    # one document with a thousand paragraphs of the theme is one document, not a thousand
    docs = pd.DataFrame([_doc(f"{m}{i}", m) for m in "ab" for i in range(6)])[DOCUMENT_COLUMNS]
    paras = []
    for m in "ab":
        for i in range(6):
            themes = ["inclusion"] if (m == "a" and i == 0) else []
            paras += [_para(f"{m}{i}", m, k, themes) for k in range(40 if (m == "a" and i == 0) else 4)]
    res = compute_indicators(docs, pd.DataFrame(paras), pd.DataFrame(columns=HIT_COLUMNS),
                             IndicatorSettings(draws=400, min_documents=1))
    k = res.tables["keyness"].set_index(["metropole", "theme"]).loc[("a", "inclusion")]
    assert k.log2_ratio > 0 and not k.significant


def test_written_tables_have_csv_beside_parquet_and_a_dictionary(tmp_path, corpus):
    res = compute_indicators(*corpus, IndicatorSettings(draws=20, min_documents=1))
    write_indicators(res, tmp_path)
    tables = tmp_path / "tables"
    for name in res.tables:
        assert (tables / f"{name}.parquet").exists() and (tables / f"{name}.csv").exists(), name
        # a table whose rows carry a metropolis is a dataset partitioned by it, the others one file
        assert (tables / f"{name}.parquet").is_dir() == ("metropole" in res.tables[name].columns), name
    assert (tables / "indicators.parquet" / "a" / "part-0.parquet").is_file()
    text = (tmp_path / "data_dictionary.md").read_text(encoding="utf-8")
    for measure in ("paragraph_share", "document_share", "hits_per_10k_words", "paragraph_share_adjusted",
                    "paragraph_share_corrected"):
        assert f"`{measure}`" in text
    for table in res.tables:
        assert f"## `{table}`" in text, table
    ev = res.tables["evidence"]
    assert {"compté", "non compté"} <= set(ev["status"]) and ev["fetched_at"].notna().all()
    assert set(ev.loc[ev.status == "non compté", "reason"]) >= {"out-of-context"}


def test_evidence_sample_is_the_same_from_a_single_file_or_a_dataset(tmp_path):
    """The evidence draw is seeded; its rows must not depend on the order the tables come in:
    the annotate stage writes them by document, a per-metropolis dataset reads them back
    grouped by metropolis."""
    metros, ids = ("a", "b"), [f"d{i}" for i in range(6)]
    docs = pd.DataFrame([_doc(d, m) for d in ids for m in metros])[DOCUMENT_COLUMNS]
    paras = pd.DataFrame([_para(d, m, k, ["inclusion"]) for d in ids for m in metros for k in range(3)])
    hits = pd.DataFrame([_hit(d, m, k, "inclusion") for d in ids for m in metros for k in range(3)]
                        + [_hit(d, m, k, "donnees", counts=False, reason="out-of-context")
                           for d in ids for m in metros for k in range(3)])[HIT_COLUMNS]
    read_back = []
    for name, frame in (("documents", docs), ("paragraphs", paras), ("hits", hits)):
        write_table(frame, tmp_path / f"{name}.parquet", partition_by="metropole")
        read_back.append(read_table(tmp_path / f"{name}.parquet"))
    assert read_back[2]["metropole"].tolist() != hits["metropole"].tolist()  # another row order
    ours = sample_evidence(hits, paras, docs, list(THEMES), per_cell=3, seed=5)
    theirs = sample_evidence(read_back[2], read_back[1], read_back[0], list(THEMES), per_cell=3, seed=5)
    assert len(ours) == 2 * 2 * 3  # per metropolis, 3 of 18 counted and 3 of 18 not counted
    pd.testing.assert_frame_equal(ours, theirs)
