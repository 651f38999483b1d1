"""Scoring (nlp.annotate.evaluate) and the training helpers it rests on: metrics computed by
hand, document-level bootstrap intervals, sampling weights, polarity scores, grouped folds,
threshold choice, and reading labelled files (JSONL and coded CSV)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nlp.annotate import training as T
from nlp.annotate.evaluate import evaluate_sets, format_report, polarity_scores, read_validation, write_validation
from nlp.errors import BarometreError
from nlp.schema import THEMES

GOLD = [["numerique", "strategie"], ["numerique", "inclusion"], [], ["numerique", "strategie", "inclusion"]]
PRED = [["numerique", "strategie"], ["numerique", "strategie"], ["numerique"], ["numerique", "inclusion"]]
DOCS = ["d1", "d1", "d2", "d3"]


def test_scores_match_a_hand_computation():
    report = evaluate_sets("t", GOLD, PRED, DOCS, draws=0, ids=["1", "2", "3", "4"])
    rows = report.labels.set_index("label")
    s = rows.loc["strategie"]  # tp 1, fp 1 (item 2), fn 1 (item 4)
    assert (s.tp, s.fp, s.fn, s.tn) == (1, 1, 1, 1)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5) and s.f1 == pytest.approx(0.5)
    i = rows.loc["inclusion"]
    assert (i.precision, i.recall) == (1.0, 0.5) and i.f1 == pytest.approx(2 / 3)
    n = rows.loc["numerique"]  # tp 3, fp 1 (item 3), tn 0
    assert n.precision == pytest.approx(0.75) and n.recall == 1.0 and n.specificity == 0.0
    # macro over the themes that occur (gold or predicted): strategie and inclusion
    assert report.macro_f1 == pytest.approx((0.5 + 2 / 3) / 2)
    assert [e["id"] for e in report.errors] == ["2", "3", "4"]
    assert report.errors[0] == {"id": "2", "missing": ["inclusion"], "spurious": ["strategie"]}
    text = format_report(report, max_errors=5)
    assert "macro-F1" in text and "[2] missing=inclusion spurious=strategie" in text


def test_bootstrap_resamples_documents_and_brackets_the_point():
    report = evaluate_sets("t", GOLD * 10, PRED * 10, [f"{d}-{k}" for k in range(10) for d in DOCS], draws=300, seed=1)
    for r in report.labels.itertuples():
        if r.support:
            assert r.f1_low <= r.f1 + 1e-9 and r.f1 <= r.f1_high + 1e-9
    lo, hi = report.macro_ci
    assert lo <= report.macro_f1 <= hi
    # one document only: resampling documents cannot vary anything
    one = evaluate_sets("t", GOLD, PRED, ["same"] * 4, draws=100)
    r = one.labels.set_index("label").loc["strategie"]
    assert r.f1_low == pytest.approx(r.f1) and r.f1_high == pytest.approx(r.f1)


def test_weights_estimate_the_corpus_rates():
    # the second paragraph stands for 9 like it in the corpus: its miss weighs 9 times
    gold = [["numerique", "inclusion"], ["numerique", "inclusion"]]
    pred = [["numerique", "inclusion"], ["numerique"]]
    plain = evaluate_sets("t", gold, pred, ["a", "b"], draws=0).labels.set_index("label").loc["inclusion"]
    weighted = evaluate_sets("t", gold, pred, ["a", "b"], draws=0, weights=[1, 9]).labels.set_index("label").loc["inclusion"]
    assert plain.recall == pytest.approx(0.5) and weighted.recall == pytest.approx(0.1)
    # the printed table says which figures are corpus estimates and which are not
    genres = ["minutes", "minutes"]
    text = format_report(evaluate_sets("t", gold, pred, ["a", "b"], draws=0, weights=[1, 9], genres=genres))
    assert "weighted by the sample's weights" in text and "by genre (unweighted):" in text
    text = format_report(evaluate_sets("t", gold, pred, ["a", "b"], draws=0, weights=[1, 1], genres=genres))
    assert "weighted" not in text and "by genre: minutes" in text


def test_polarity_scores_count_driver_pairs_only():
    labels = [["strategie", "numerique"], ["strategie", "frein_interne"], ["donnees"]]
    gold_neg = [["strategie"], [], []]
    pred_neg = [["strategie"], ["strategie"], []]
    p = polarity_scores(labels, gold_neg, pred_neg, T.DRIVERS)
    assert (p["tp"], p["fp"], p["fn"]) == (1, 1, 0) and p["precision"] == 0.5 and p["recall"] == 1.0


def test_validation_file_round_trip(tmp_path):
    report = evaluate_sets("t", GOLD, PRED, DOCS, draws=0)
    path = write_validation(report, tmp_path / "v" / "validation.json", "coded.csv")
    counts = read_validation(path)
    assert counts["strategie"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    assert json.loads(path.read_text())["source"] == "coded.csv"


def test_group_folds_never_split_a_document():
    groups = [f"d{i // 3}" for i in range(60)] + ["big"] * 20
    folds = T.group_folds(groups, 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    owner = {}
    for k, test in enumerate(folds):
        for i in test:
            assert owner.setdefault(groups[i], k) == k
    assert T.group_folds(groups, 5, seed=3)[0].tolist() == folds[0].tolist()  # deterministic


def test_threshold_meets_the_precision_target_when_it_can():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1, 1, 0, 1, 0, 0])
    assert T.choose_threshold(p, y, 0.0) == pytest.approx(0.6)     # best F1: 3 tp, 1 fp
    assert T.choose_threshold(p, y, 0.9) == pytest.approx(0.8)     # precision 1.0 reached
    assert T.choose_threshold(p, np.zeros(6, int), 0.5) > 1.0      # never positive


def test_load_labelled_jsonl_and_coded_csv(tmp_path):
    j = tmp_path / "g.jsonl"
    j.write_text("\n".join([
        json.dumps({"id": "a", "text": "x", "labels": ["frein_interne.budgetaire"], "doc_id": "D"}),
        json.dumps({"id": "b", "text": "y", "labels": None}),  # sampled, not coded yet
    ]) + "\n", encoding="utf-8")
    ex = T.load_labelled(j)
    assert [e.id for e in ex] == ["a"]
    assert ex[0].labels == ["frein_interne", "frein_interne.budgetaire", "numerique"]  # closed upward
    c = tmp_path / "coded.csv"
    c.write_text("\ufeffid;document_id;text;numerique;inclusion;negated;weight\n"
                 "s1;D1;Un texte;1;1;;2,5\ns2;D1;Un autre;;;;1\ns3;D2;Rien;0;0;;1\n", encoding="utf-8")
    ex = T.load_labelled(c)
    assert [(e.id, e.labels, e.weight) for e in ex] == [("s1", ["inclusion", "numerique"], 2.5), ("s3", [], 1.0)]


@pytest.mark.parametrize("content, message", [
    ('{"id": "1", "text": "a", "labels": ["inconnu"]}\n', "unknown label"),
    ('{"id": "1", "text": "a"}\n{oops\n', ":2: invalid JSON"),
    ('{"id": "1", "labels": []}\n', "string 'text'"),
])
def test_load_labelled_errors_name_file_and_line(tmp_path, content, message):
    p = tmp_path / "bad.jsonl"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(BarometreError, match=message):
        T.load_labelled(p)


def test_coded_csv_with_a_bad_cell_is_refused(tmp_path):
    c = tmp_path / "coded.csv"
    c.write_text("id,text,numerique\ns1,t,peut-être\n", encoding="utf-8")
    with pytest.raises(BarometreError, match=r"coded.csv:2: column numerique"):
        T.load_labelled(c)


def test_the_training_set_schema_and_labels():
    """Every paragraph of the shipped training set has its text, labels from the guidelines,
    a document, a genre, a source (URL, or repository + path + commit), a licence note, both
    independent annotations, and polarity only on driver themes it is labelled with."""
    rows = [json.loads(line) for line in T.TRAINING_FILE.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 1500 and len({r["doc_id"] for r in rows}) >= 150
    _check_labelled_rows(rows, GENRES)
    counts = {lab: sum(lab in r["labels"] for r in rows) for lab in T.LABELS}
    assert all(counts[t] >= 60 for t in THEMES), counts


GENRES = {"deliberation", "minutes", "web_page", "strategy", "activity_report", "press", "public_report"}
CODED_MINUTES = T.TRAINING_FILE.parent / "coded_minutes.jsonl"


def test_the_coded_minutes_sample_is_apart_from_the_training_set():
    """The coded sample of communes' minutes (README, "Themes") has the training set's schema
    plus its stratum weight, and shares no document and no source file with the training set."""
    rows = [json.loads(line) for line in CODED_MINUTES.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 146
    _check_labelled_rows(rows, GENRES | {"other"})
    assert all(r["weight"] > 0 and r["stratum"] for r in rows)
    training = [json.loads(line) for line in T.TRAINING_FILE.read_text(encoding="utf-8").splitlines()]
    assert not {r["doc_id"] for r in rows} & {r["doc_id"] for r in training}
    files = {(r["source"].get("repo"), r["source"].get("path")) for r in training}
    assert not {(r["source"]["repo"], r["source"]["path"]) for r in rows} & files
    examples = T.load_labelled(CODED_MINUTES)  # what `barometre eval --gold` reads
    assert len(examples) == 146 and {e.weight for e in examples} == {r["weight"] for r in rows}


def _check_labelled_rows(rows: list[dict], genres: set[str]) -> None:
    ids = set()
    for r in rows:
        assert r["id"] not in ids
        ids.add(r["id"])
        assert r["text"].strip() and r["genre"] in genres and r["licence"]
        assert set(r["labels"]) <= set(T.LABELS) and T.close_labels(r["labels"]) == sorted(r["labels"])
        assert set(r["negated"]) <= set(r["labels"]) & set(T.DRIVERS)
        src = r["source"]
        assert src.get("url") or (src.get("repo") and src.get("path") and len(src.get("commit") or "") == 40)
        for who in ("a", "b"):
            assert set(r["annotations"][who]["labels"]) <= set(T.LABELS)
        assert r["annotations"]["final"] in ("agreed", "adjudicated")


def test_the_shipped_model_names_its_training_data_portably():
    """The shipped model's provenance is relative to the repository (not the build machine's
    path) and points at the training file that is there."""
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    meta = json.loads((repo / "nlp" / "annotate" / "model" / "model.json").read_text(encoding="utf-8"))
    files = meta["meta"]["training_data"]["files"]
    assert files and all(not Path(f).is_absolute() and (repo / f).is_file() for f in files), files


def test_textcat_thresholds_are_chosen_on_training_documents_only(monkeypatch):
    """The spaCy textcat comparison is held to the linear model's protocol: each label's
    threshold is chosen on documents kept aside from the training fold, never on the test
    fold (a fixed 0.5 had left the rare labels without recall: a misconfigured baseline)."""
    examples = T.load_labelled(T.TRAINING_FILE)[:160]
    groups = [e.doc_id for e in examples]
    folds = T.group_folds(groups, 2, 42)
    seen: list[int] = []
    real = T.choose_threshold

    def spy(p, y, min_precision):
        seen.append(len(y))
        return real(p, y, min_precision)

    monkeypatch.setattr(T, "choose_threshold", spy)
    cv = T.cross_validate_textcat(examples, groups, 42, n_splits=2, epochs=2)
    labels = len(T.LABELS)
    assert len(seen) == 2 * labels
    for k, test in enumerate(folds):
        train = [i for i in range(len(examples)) if i not in set(test.tolist())]
        aside = T.group_folds([groups[i] for i in train], 5, 43)[0]
        assert seen[k * labels:(k + 1) * labels] == [len(aside)] * labels
        assert {groups[train[i]] for i in aside}.isdisjoint({groups[i] for i in test})
    # closed label sets: a theme brings numerique
    assert all("numerique" in p for p in cv.predicted if set(p) - {"numerique"})


@pytest.mark.filterwarnings("error")
def test_a_label_nobody_has_gives_nan_without_numpy_warnings():
    """A coded sample where a theme has no gold and no predicted paragraph (and a genre with
    no theme at all) is scored without numpy's all-NaN warnings in the user's terminal."""
    gold = [["numerique", "agents"], ["numerique"], [], ["numerique", "agents"]]
    pred = [["numerique", "agents"], [], [], ["numerique"]]
    report = evaluate_sets("x", gold, pred, ["d1", "d1", "d2", "d3"], genres=["pv", "pv", "web", "web"], draws=50)
    table = report.labels.set_index("label")
    assert np.isnan(table.loc["inclusion", "f1"]) and np.isnan(table.loc["inclusion", "f1_low"])
    assert table.loc["agents", "f1"] == pytest.approx(2 / 3)
    assert report.macro_f1 == pytest.approx(2 / 3)
