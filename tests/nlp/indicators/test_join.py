"""The barometer join (nlp.indicators.join): matching against the metropolises of the
indicators, every unmatched row listed, exact permutation p-values, corrections, warnings and
no interval for tiny n, long and wide input, and the real external indicators of
../shared/data/facts/external_scores.csv joined as they are."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nlp.config import shared_data_dir
from nlp.errors import BarometreError
from nlp.indicators.join import join_scores, read_scores, spearman_exact

EXTERNAL = shared_data_dir() / "facts" / "external_scores.csv"
SLUGS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda",
         "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi"]


def targets(n):
    return pd.DataFrame({"slug": SLUGS[:n], "name": [f"Métropole de {s.capitalize()}" for s in SLUGS[:n]],
                         "siren": [f"24{i:07d}" for i in range(n)]})


def wide(n, seed=0):
    rng = np.random.default_rng(seed)
    x = np.arange(n, dtype=float)
    return pd.DataFrame({"metropole": SLUGS[:n], "maturity_index": x * 10,
                         "inclusion__paragraph_share": rng.random(n)})


def test_exact_p_value_for_a_perfect_correlation_of_four():
    rho, p = spearman_exact(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40]))
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 24)  # 0.083, not 0.000


@pytest.mark.parametrize("n", [4, 8, 22])
def test_join_warnings_exact_p_and_corrections(tmp_path, n):
    scores = tmp_path / "scores.csv"
    pd.DataFrame({"slug": SLUGS[:n], "score_a": np.arange(n) * 2.0 + 1,
                  "score_b": np.random.default_rng(1).random(n)}).to_csv(scores, index=False, sep=";")
    res = join_scores(wide(n), scores, targets(n), draws=200)
    c = res.correlations.set_index(["indicator", "score"])
    row = c.loc[("maturity_index", "score_a")]
    assert row.n == n and row.rho == pytest.approx(1.0)
    if n <= 10:
        assert row.p_method == "exact permutation" and row.p_value == pytest.approx(2 / math.factorial(n))
    else:
        assert row.p_method == "t approximation"
    assert (res.correlations["n_tests"] == 4).all()
    assert (res.correlations["p_holm"] >= res.correlations["p_value"] - 1e-12).all()
    assert (res.correlations["q_bh"] >= res.correlations["p_value"] - 1e-12).all()
    if n < 8:
        assert "too few metropolises" in row.warning and "WARNING" in res.report
    else:
        assert row.warning == ""
    if n < 5:
        assert np.isnan(row.ci_low) and np.isnan(row.ci_high)
    else:
        assert row.ci_low <= row.rho <= row.ci_high + 1e-9


def test_matching_is_against_the_indicators_metropolises(tmp_path):
    scores = tmp_path / "s.csv"
    scores.write_text("nom,score\nMétropole de Lyon,3\nMétropole d'Alpha,1\n240000001,2\n", encoding="utf-8")
    res = join_scores(wide(4), scores, targets(4), draws=0)
    assert set(res.long["metropole"]) == {"alpha", "beta"}
    um = res.unmatched
    assert ((um.side == "scores") & um.identifier.str.contains("Lyon")).any()
    assert set(um.loc[um.side == "indicators", "identifier"]) == {"gamma", "delta"}
    nothing = tmp_path / "n.csv"
    nothing.write_text("slug,score\nlyon,1\nparis,2\n", encoding="utf-8")
    with pytest.raises(BarometreError, match="no row matches a metropolis of the indicators"):
        join_scores(wide(4), nothing, targets(4), draws=0)


def test_trailing_separator_and_decimal_commas(tmp_path):
    scores = tmp_path / "s.csv"
    scores.write_bytes("\ufeffslug;score;\nalpha;1,5;\nbeta;2,5;\ngamma;;\n".encode("utf-8"))
    long, form = read_scores(scores)
    assert form == "wide" and long["value"].tolist()[:2] == [1.5, 2.5] and np.isnan(long["value"].iloc[2])


def test_gaps_stay_gaps_and_level_is_carried(tmp_path):
    scores = tmp_path / "long.csv"
    scores.write_text("slug,indicator,year,value,unit,level,source\n"
                      "alpha,x,2021,5,n,metropole,s\nbeta,x,2021,,n,metropole,s\ngamma,x,2021,7,n,central city,s\n",
                      encoding="utf-8")
    res = join_scores(wide(4), scores, targets(4), draws=0)
    assert res.form == "long"
    col = res.wide.set_index("metropole")["score__x@2021"]
    assert np.isnan(col.loc["beta"]) and col.loc["alpha"] == 5
    assert set(res.long["level"]) == {"metropole", "central city"}
    cov = res.coverage.set_index("score").loc["x@2021"]
    assert cov.n == 2


@pytest.mark.skipif(not EXTERNAL.is_file(), reason="../shared/data/facts/external_scores.csv is absent")
def test_the_real_external_indicators_join_as_they_are():
    raw = pd.read_csv(EXTERNAL)
    slugs = sorted(raw["slug"].unique())
    t = pd.DataFrame({"slug": slugs, "name": slugs, "siren": [None] * len(slugs)})
    w = pd.DataFrame({"metropole": slugs, "maturity_index": np.linspace(0, 100, len(slugs))})
    res = join_scores(w, EXTERNAL, t, draws=100)
    assert res.form == "long" and len(res.long) == len(raw)
    cov = res.coverage.set_index("indicator")
    per = raw.groupby("indicator")["value"].count()
    for ind, n in per.items():
        assert cov.loc[ind, "n"].sum() == n  # coverage as in the file, gaps never read as zeros
    assert "level" in res.long.columns and res.long["level"].notna().all()
    small = res.correlations[res.correlations["n"] < 8]
    assert (small["warning"] != "").all()
