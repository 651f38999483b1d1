"""Alternatives to the shipped detector that were measured and left out, by grouped CV on the
NON-sealed part (the sealed documents stay unread).

Run by hand (not a test): ``.venv/bin/python bench/detector_alternatives.py [--only NAME ...]``
(``trees`` takes about 25 minutes on 2 cores, the others 1–3 minutes).

- ``trees``: per label, gradient-boosted trees (scikit-learn's HistGradientBoosting) on the
  dense lexicon evidence (the named counts of ``features.lexicon_counts``) and the averaged
  word vectors, alone and averaged with the linear model's calibrated probability; the
  evidence guard, thresholds chosen on inner out-of-fold predictions and the closure of the
  label sets as for the shipped model (``ThemeModel.decide``; 3 inner folds here). Trees can learn interactions such as "a partnership term next
  to a sports word" that a linear model cannot.
- ``pruning``: the lexicon labels with, inside each training fold, the (theme, term) pairs
  whose paragraph precision on that fold is below ``tau`` dropped before labelling the
  test fold (supported by at least ``min`` paragraphs; "sole": counted only where the term
  is the theme's only term in the paragraph).
- ``polarity``: the gold ``negated`` field of driver themes predicted by a trained
  classifier (logistic regression on the detector's features plus the theme, class weights
  balanced, threshold chosen on inner folds) over the (paragraph, gold driver label) pairs,
  against the hit-level polarity rules (``detector.paragraph_negated``).

Prints macro-F1 over the ten themes and per-theme precision (``trees``, ``pruning``), and
precision / recall / F1 of ``negated`` (``polarity``). Folds as ``barometre eval``
(``training.group_folds``, seed of ``TrainConfig``).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.annotate import training as T  # noqa: E402
from nlp.annotate.detector import paragraph_negated  # noqa: E402
from nlp.annotate.evaluate import evaluate_sets, polarity_scores  # noqa: E402
from nlp.annotate.features import FeatureSpace, evidence_mask  # noqa: E402
from nlp.annotate.model import close_labels  # noqa: E402
from nlp.annotate.validation import Toolkit, is_sealed  # noqa: E402


def report(name: str, ex: list, predicted: list[list[str]]) -> None:
    r = evaluate_sets(name, [e.labels for e in ex], predicted, [e.doc_id for e in ex], draws=0)
    t = r.labels.set_index("label")
    print(f"{name:34s} macro-F1 {r.macro_f1:.3f} | precision "
          + " ".join(f"{lab[:8]}={t.loc[lab, 'precision']:.2f}" for lab in T.THEME_LABELS), flush=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def run_trees(ex: list, raws: list, cfg: T.TrainConfig) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    def trees(X: np.ndarray, y: np.ndarray) -> HistGradientBoostingClassifier:
        m = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, max_leaf_nodes=15,
                                           min_samples_leaf=10, l2_regularization=1.0, random_state=0)
        return m.fit(X, y)

    def dense(rs: list, keys: dict[str, int]) -> np.ndarray:
        M = np.zeros((len(rs), len(keys) + len(rs[0].vector)), np.float32)
        for i, r in enumerate(rs):
            for k, v in r.lexicon.items():
                if k in keys:
                    M[i, keys[k]] = v
            M[i, len(keys):] = r.vector
        return M

    labels = list(T.LABELS)
    Y, groups = T.label_matrix(ex), np.array([e.doc_id for e in ex])
    E = evidence_mask([r.lexicon for r in raws], labels)
    P = {k: np.zeros((len(ex), len(labels))) for k in ("linear", "trees", "average")}
    thresholds: dict[str, list] = {k: [] for k in P}
    for test in T.group_folds(groups, 5, cfg.seed):
        train = np.setdiff1d(np.arange(len(ex)), test)
        space = FeatureSpace.fit([raws[i] for i in train], min_df=cfg.min_df)
        Xtr, Xte = space.transform([raws[i] for i in train]), space.transform([raws[i] for i in test])
        seen = Counter(k for i in train for k in raws[i].lexicon)
        keys = {k: n for n, k in enumerate(sorted(k for k, c in seen.items() if c >= 2))}
        Dtr, Dte = dense([raws[i] for i in train], keys), dense([raws[i] for i in test], keys)
        oof = {"linear": np.zeros((len(train), len(labels))), "trees": np.zeros((len(train), len(labels)))}
        for inner in T.group_folds(groups[train], 3, cfg.seed + 1):
            fit_on = np.setdiff1d(np.arange(len(train)), inner)
            for j in range(len(labels)):
                c, b = T._fit_label(Xtr[fit_on], Y[train][fit_on, j], cfg)
                oof["linear"][inner, j] = Xtr[inner] @ c + b
                oof["trees"][inner, j] = trees(Dtr[fit_on], Y[train][fit_on, j]).predict_proba(Dtr[inner])[:, 1]
        th = {k: np.zeros(len(labels)) for k in P}
        for j in range(len(labels)):
            a, b = T._platt(oof["linear"][:, j], Y[train, j])
            inner_p = {"linear": sigmoid(a * oof["linear"][:, j] + b), "trees": oof["trees"][:, j]}
            inner_p["average"] = (inner_p["linear"] + inner_p["trees"]) / 2
            for k, p in inner_p.items():
                th[k][j] = T.choose_threshold(np.where(E[train, j], p, 0.0), Y[train, j], 0.0)
            c, bb = T._fit_label(Xtr, Y[train, j], cfg)
            P["linear"][test, j] = sigmoid(a * (Xte @ c + bb) + b)
            P["trees"][test, j] = trees(Dtr, Y[train, j]).predict_proba(Dte)[:, 1]
            P["average"][test, j] = (P["linear"][test, j] + P["trees"][test, j]) / 2
        for k in P:
            thresholds[k].append((test, th[k]))
        print("fold done", flush=True)
    for k in P:
        predicted: list[list[str]] = [[] for _ in ex]
        for test, th in thresholds[k]:
            for i in test:
                predicted[i] = close_labels([lab for lab, v in zip(labels, (P[k][i] >= th) & E[i]) if v])
        report(f"{k} (evidence guard)", ex, predicted)


def run_pruning(ex: list, kit: Toolkit, cfg: T.TrainConfig) -> None:
    anns = list(kit.annotator.annotate([e.text for e in ex]))
    hits = [[(h.count_theme, h.count_subtheme, h.term_id) for h in a.hits if h.count_theme] for a in anns]
    digital = ["numerique" in a.labels for a in anns]

    def labelled(k: int, drop: set) -> list[str]:
        keep = [h for h in hits[k] if (h[0], h[2]) not in drop]
        s = {h[0] for h in keep} | {f"{h[0]}.{h[1]}" for h in keep if h[1]}
        return sorted(s | {"numerique"}) if s or digital[k] else []

    report("lexicons (no pruning)", ex, [labelled(k, set()) for k in range(len(ex))])
    groups = np.array([e.doc_id for e in ex])
    folds = T.group_folds(groups, 5, cfg.seed)
    for tau in (0.2, 0.3, 0.4, 0.5):
        for sole in (False, True):
            for support in (3, 6):
                predicted: list[list[str]] = [[] for _ in ex]
                dropped = []
                for test in folds:
                    held = set(test.tolist())
                    stats: dict = defaultdict(lambda: [0, 0])
                    for k in range(len(ex)):
                        if k in held:
                            continue
                        by_theme = defaultdict(set)
                        for theme, _sub, term in hits[k]:
                            by_theme[theme].add(term)
                        for theme, terms in by_theme.items():
                            if sole and len(terms) > 1:
                                continue
                            for term in terms:
                                stats[(theme, term)][0] += 1
                                stats[(theme, term)][1] += theme in ex[k].labels
                    drop = {key for key, (n, tp) in stats.items() if n >= support and tp / n < tau}
                    dropped.append(len(drop))
                    for k in test:
                        predicted[k] = labelled(k, drop)
                report(f"tau={tau} sole={sole} min={support} ({np.mean(dropped):.0f} dropped)", ex, predicted)


def run_polarity(ex: list, raws: list, kit: Toolkit, cfg: T.TrainConfig) -> None:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    drivers = list(T.DRIVERS)
    anns = list(kit.annotator.annotate([e.text for e in ex]))
    rules = [paragraph_negated(list(e.labels), a.hits, set(drivers)) for e, a in zip(ex, anns)]
    s = polarity_scores([e.labels for e in ex], [e.negated for e in ex], rules, drivers)
    print(f"rules (hit polarity)               precision {s['precision']:.3f} recall {s['recall']:.3f} "
          f"({s['pairs_negated_gold']} negated pairs)", flush=True)
    pairs = [(i, t) for i, e in enumerate(ex) for t in e.labels if t in drivers]
    y = np.array([t in ex[i].negated for i, t in pairs], dtype=int)
    rows, groups = np.array([i for i, _ in pairs]), np.array([e.doc_id for e in ex])
    theme = sparse.csr_matrix(np.array([[t == d for d in drivers] for _, t in pairs], float))

    def fit(X, yy, C):
        return LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(X, yy)

    def prf(p: np.ndarray, yy: np.ndarray) -> tuple[float, float, float]:
        tp, fp, fn = (p & (yy == 1)).sum(), (p & (yy == 0)).sum(), (~p & (yy == 1)).sum()
        return tp / max(1, tp + fp), tp / max(1, tp + fn), 2 * tp / max(1, 2 * tp + fp + fn)

    for C in (0.1, 0.3, 1.0):
        pred = np.zeros(len(pairs), bool)
        for test_docs in T.group_folds(groups, 5, cfg.seed):
            held = set(groups[test_docs])
            test = np.array([g in held for g in groups[rows]])
            train = np.where(~test)[0]
            space = FeatureSpace.fit([raws[i] for i in np.unique(rows[train])], min_df=cfg.min_df)
            X = sparse.hstack([space.transform([raws[i] for i in rows]), theme]).tocsr()
            oof = np.zeros(len(train))
            for inner in T.group_folds(groups[rows[train]], 4, cfg.seed + 1):
                fit_on = np.setdiff1d(np.arange(len(train)), inner)
                oof[inner] = fit(X[train[fit_on]], y[train[fit_on]], C).predict_proba(X[train[inner]])[:, 1]
            best = max(np.linspace(0.05, 0.95, 37), key=lambda th: prf(oof >= th, y[train])[2])
            pred[test] = fit(X[train], y[train], C).predict_proba(X[test])[:, 1] >= best
        p, r, f = prf(pred, y)
        print(f"trained classifier C={C:<4}            precision {p:.3f} recall {r:.3f} F1 {f:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=["trees", "pruning", "polarity"],
                        default=["pruning", "polarity", "trees"])
    args = parser.parse_args()
    cfg = T.TrainConfig()
    ex = [e for e in T.load_labelled(T.TRAINING_FILE) if not is_sealed(e.doc_id)]
    kit = Toolkit.build(ROOT / "lexicons")
    print(f"non-sealed part: {len(ex)} paragraphs, {len({e.doc_id for e in ex})} documents", flush=True)
    raws = T.featurize(ex, kit.annotator, kit.resources)[0] if {"trees", "polarity"} & set(args.only) else []
    if "pruning" in args.only:
        run_pruning(ex, kit, cfg)
    if "polarity" in args.only:
        run_polarity(ex, raws, kit, cfg)
    if "trees" in args.only:
        run_trees(ex, raws, cfg)


if __name__ == "__main__":
    main()
