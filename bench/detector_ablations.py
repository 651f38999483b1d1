"""Variants of the trained theme detector, by grouped cross-validation on the NON-sealed part.

Run by hand (not a test): ``.venv/bin/python bench/detector_ablations.py [--only NAME ...]``
(about 10 minutes on 2 cores).

Every variant is fitted and scored with the same grouped 5-fold CV (folds by document) on the
training paragraphs outside the sealed fifth (``nlp.annotate.validation.is_sealed``), so the
sealed documents stay unread; calibration and thresholds are chosen inside each training fold
as in ``barometre train``. Prints macro-F1 over the ten themes, F1 per label and the lowest
theme precision. ``default`` is the shipped configuration (``TrainConfig()``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.annotate import training as T  # noqa: E402
from nlp.annotate.evaluate import evaluate_sets  # noqa: E402
from nlp.annotate.validation import Toolkit, is_sealed  # noqa: E402

VARIANTS = {
    "default": T.TrainConfig(),
    "no evidence guard": T.TrainConfig(evidence_guard=False),
    "C=0.3": T.TrainConfig(C=0.3),
    "C=3": T.TrainConfig(C=3.0),
    "lexicon features x3": T.TrainConfig(lexicon_weight=3.0),
    "lexicon features x0.5": T.TrainConfig(lexicon_weight=0.5),
    "no word vectors": T.TrainConfig(use_vectors=False),
    "no class weights": T.TrainConfig(class_weight=None),
    "precision floor 0.75": T.TrainConfig(min_precision=0.75),
    "no lexicon features": T.TrainConfig(use_lexicon=False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="variants to run")
    args = parser.parse_args()
    ex = [e for e in T.load_labelled(T.TRAINING_FILE) if not is_sealed(e.doc_id)]
    kit = Toolkit.build(ROOT / "lexicons")
    raws, lex = T.featurize(ex, kit.annotator, kit.resources)
    Y = T.label_matrix(ex)
    groups = [e.doc_id for e in ex]
    print(f"non-sealed part: {len(ex)} paragraphs, {len(set(groups))} documents")
    rows = [("lexicons alone", lex, 0.0)]
    for name in args.only or list(VARIANTS):
        t0 = time.time()
        rows.append((name, T.cross_validate(raws, Y, groups, VARIANTS[name]).predicted, time.time() - t0))
    for name, predicted, secs in rows:
        r = evaluate_sets(name, [e.labels for e in ex], predicted, groups, draws=0)
        t = r.labels.set_index("label")
        low = min(T.THEME_LABELS, key=lambda lab: t.loc[lab, "precision"])
        print(f"{name:24s} macro-F1 {r.macro_f1:.3f}  ({secs:.0f} s)  lowest theme precision "
              f"{low} {t.loc[low, 'precision']:.2f}  "
              + " ".join(f"{lab.split('.')[-1][:8]}={t.loc[lab, 'f1']:.2f}" for lab in t.index if lab != "numerique"),
              flush=True)


if __name__ == "__main__":
    main()
