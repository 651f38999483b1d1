"""The validation loop a researcher runs on their own corpus (issue 10.5), through the CLI:
``sample`` → code the CSV in a spreadsheet → ``eval --gold`` (the validation the indicators
use) → ``train --gold`` (a new model version, used from then on by ``themes`` and ``annotate``)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nlp.annotate import training as training_module
from nlp.annotate.training import TRAINING_FILE
from nlp.cli import main
from nlp.io import write_table
from nlp.schema import LABELS

pytestmark = pytest.mark.slow


def _corpus_tables(outputs: Path, rows: list[dict]) -> None:
    """Annotate-stage tables of a small corpus made of real labelled paragraphs (two
    metropolises, one document per source document)."""
    paras, docs = [], {}
    for i, r in enumerate(rows):
        metropole = "alpha" if i % 2 else "beta"
        doc = f"{metropole}-{r['doc_id']}"
        docs[doc] = {"document_id": doc, "metropole": metropole, "doc_type": "deliberation",
                     "url": f"https://example.org/{doc}.pdf"}
        paras.append({"document_id": doc, "metropole": metropole, "page": 1, "paragraph": i, "text": r["text"],
                      "analysed": True, "labels": [x for x in r["labels"] if "." not in x]})
    write_table(pd.DataFrame(paras), outputs / "tables" / "paragraphs.parquet")
    write_table(pd.DataFrame(list(docs.values())), outputs / "tables" / "documents.parquet")


def _smaller_training_file(training: list[dict], path: Path, per_label: int = 12, negatives: int = 60) -> Path:
    """A real subset of the shipped training set (every label's first ``per_label`` positive
    paragraphs and ``negatives`` unlabelled ones): ``train`` featurises its base set with
    spaCy, and the whole set (5,600 paragraphs) would cost this test a minute."""
    keep: dict[str, dict] = {}
    for label in LABELS:
        for r in [r for r in training if label in r["labels"]][:per_label]:
            keep[r["id"]] = r
    for r in [r for r in training if not r["labels"]][:negatives]:
        keep[r["id"]] = r
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep.values()), encoding="utf-8")
    return path


def test_sample_code_eval_train_then_the_new_model_labels(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    training = [json.loads(line) for line in TRAINING_FILE.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in training if r["labels"]][:40] + [r for r in training if not r["labels"]][:20]
    monkeypatch.setattr(training_module, "TRAINING_FILE", _smaller_training_file(training, tmp_path / "base.jsonl"))
    truth = {r["text"]: r["labels"] for r in rows}
    outputs = tmp_path / "outputs"
    _corpus_tables(outputs, rows)
    common = ["--outputs-dir", str(outputs), "--corpus-dir", str(tmp_path / "corpus"), "--no-progress"]

    coded = tmp_path / "coded.csv"
    assert main(["sample", "--n", "30", "--stratify", "theme", "--out", str(coded), *common]) == 0
    raw = coded.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # opens in a spreadsheet as UTF-8
    sheet = pd.read_csv(coded, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert len(sheet) == 30 and {"text", "url", "page"} <= set(sheet.columns)
    label_cols = [c for c in sheet.columns if c in LABELS]
    assert "numerique" in label_cols and "frein_interne.budgetaire" in label_cols
    # the researcher codes each paragraph (here: the labels two annotators gave it)
    for col in label_cols:
        sheet[col] = ["1" if col in truth[t] else "0" for t in sheet["text"]]
    sheet.to_csv(coded, sep=";", index=False, encoding="utf-8-sig")

    assert main(["eval", "--gold", str(coded), "--draws", "50", *common]) == 0
    validation = json.loads((outputs / "validation" / "validation.json").read_text(encoding="utf-8"))
    assert validation["source"] == str(coded) and validation["labels"]

    model_dir = outputs / "models" / "themes"
    assert main(["train", "--gold", str(coded), "--no-validate", *common]) == 0
    meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    shipped = json.loads((Path(__file__).resolve().parents[3] / "nlp" / "annotate" / "model" / "model.json")
                         .read_text(encoding="utf-8"))
    assert meta["version"] != shipped["version"]
    assert str(coded) in meta["meta"]["training_data"]["files"], meta["meta"]["training_data"]

    jsonl, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    jsonl.write_text(json.dumps({"id": "x", "text": rows[0]["text"]}, ensure_ascii=False) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["themes", "--jsonl", str(jsonl), "--out", str(out), *common[:2], "--no-progress"]) == 0
    record = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert record["model"] == meta["version"]  # the new model labels from now on
