"""Did each collection round of the training set help? One fixed test set for every version.

Run by hand (not a test): ``.venv/bin/python bench/training_rounds.py`` (about 3 minutes).

The training set grew in three rounds (``nlp/annotate/training/README.md``): the first 4,271
paragraphs (ids below ``tr04272``), round 2 (up to ``tr04981``), round 3 (the rest). The
sealed fifth changes as documents are added, so the sealed-fifth figures of ``barometre eval``
at each round are not comparable. Here every version is scored on the same paragraphs: the
sealed fifth of the FIRST round (904 paragraphs, 140 documents), the model fitted on the
non-sealed documents of that version (no sealed document of any round is used for fitting).
A measurement only: no setting is chosen from it. Prints macro-F1 over the ten themes with its
document-bootstrap interval, and F1 per label.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.annotate import training as T  # noqa: E402
from nlp.annotate.evaluate import evaluate_sets  # noqa: E402
from nlp.annotate.validation import Toolkit, is_sealed  # noqa: E402

ROUNDS = (("first round (4,271)", "tr04272"), ("+ round 2 (4,981)", "tr04982"), ("+ round 3 (5,624)", "tr99999"))


def main() -> None:
    ex = T.load_labelled(T.TRAINING_FILE)
    kit = Toolkit.build(ROOT / "lexicons")
    raws, lex = T.featurize(ex, kit.annotator, kit.resources)
    Y = T.label_matrix(ex)
    test = [i for i, e in enumerate(ex) if is_sealed(e.doc_id) and e.id < ROUNDS[0][1]]
    cfg = T.TrainConfig()
    print(f"test set: the first round's sealed fifth, {len(test)} paragraphs, "
          f"{len({ex[i].doc_id for i in test})} documents")
    for name, cut in ROUNDS:
        train = [i for i, e in enumerate(ex) if not is_sealed(e.doc_id) and e.id < cut]
        model = T.fit_model([raws[i] for i in train], Y[train], [ex[i].doc_id for i in train], cfg)
        _, pred = T.predict(model, [raws[i] for i in test], cfg)
        r = evaluate_sets(name, [ex[i].labels for i in test], pred, [ex[i].doc_id for i in test], draws=1000)
        t = r.labels.set_index("label")
        print(f"{name}: fitted on {len(train)} paragraphs; macro-F1 {r.macro_f1:.3f} "
              f"[{r.macro_ci[0]:.3f}, {r.macro_ci[1]:.3f}]; "
              + " ".join(f"{lab.split('.')[-1]}={t.loc[lab, 'f1']:.2f}" for lab in t.index), flush=True)
    lr = evaluate_sets("lexicons", [ex[i].labels for i in test], [lex[i] for i in test],
                       [ex[i].doc_id for i in test], draws=0)
    print(f"lexicons alone on the same paragraphs: macro-F1 {lr.macro_f1:.3f}")


if __name__ == "__main__":
    main()
