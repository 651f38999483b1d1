"""Benchmark: the lexicons' token patterns through the anchor matcher against spaCy's Matcher.

Run by hand (not a test): ``BAROMETRE_SHARED_DATA=../shared/data .venv/bin/python
bench/bench_tokenmatch.py [--rounds 5]``.

Two fast-path annotators over the same lexicons, in one process: the shipped one, whose token
patterns go through :mod:`nlp.annotate.tokenmatch` (tried from their anchor words), and one
whose token patterns go through spaCy's ``Matcher`` (the same translated patterns, one
matcher per rule, ``greedy="LONGEST"``: what the annotator did before). Everything else is
shared (tokenizer, phrase matchers, prefilter, polarity). Corpus: the gold paragraphs, the
real web pages and the real PDF texts of ``../shared/data`` (as ``bench_annotate.py``). The
rounds alternate the two so that load from other work hits both alike; each keeps its best
round. It also checks that both give the same hits on every text.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from spacy.matcher import Matcher  # noqa: E402

from nlp.annotate.annotator import ThemeAnnotator  # noqa: E402
from nlp.annotate.compiler import Prefilter  # noqa: E402
from nlp.annotate.lexicons import load_lexicons  # noqa: E402
from nlp.config import shared_data_dir  # noqa: E402

from bench_annotate import corpus  # noqa: E402  (the same texts as that benchmark)


class SpacyRule:
    """One rule's token patterns in a spaCy ``Matcher``, behind the anchor matcher's interface."""

    def __init__(self, rule_matcher: Any, compiled: Any, vocab: Any) -> None:
        self.rule = rule_matcher.rule
        self.matcher = Matcher(vocab)
        self.matcher.add(self.rule.id, [compiled._translate_pattern(p, self.rule) for p in self.rule.patterns],
                         greedy="LONGEST")

    def match(self, cols: Any, a: int, b: int) -> list[tuple[int, int]]:
        doc = cols.doc
        target = doc if (a, b) == (0, len(doc)) else doc[a:b]
        return [(a + s, a + e) for _key, s, e in self.matcher(target)]


def with_spacy_matcher(annotator: ThemeAnnotator) -> ThemeAnnotator:
    c = annotator.compiled
    vocab = annotator.pipeline.vocab
    c._free = [(SpacyRule(m, c, vocab), reqs) for m, reqs in c._free]
    c._gated = [(SpacyRule(m, c, vocab), reqs) for m, reqs in c._gated]
    c._free_filter, c._gated_filter = Prefilter(c._free), Prefilter(c._gated)
    return annotator


def hits(annotations: list[Any]) -> list[Any]:
    return [[(h.term_id, h.start, h.end, h.reason) for h in a.hits] for a in annotations]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = shared_data_dir()
    if not (data / "gold" / "dev.jsonl").exists():
        print(f"no shared data at {data}: set BAROMETRE_SHARED_DATA", file=sys.stderr)
        return 2
    texts = corpus(data)
    words = sum(len(t.split()) for t in texts)
    lexicons = load_lexicons(ROOT / "lexicons")
    paths = {"anchor matcher (shipped)": ThemeAnnotator(lexicons),
             "spaCy Matcher": with_spacy_matcher(ThemeAnnotator(lexicons))}
    out = {name: list(a.annotate(texts, batch_size=64)) for name, a in paths.items()}  # warm-up
    same = hits(out["anchor matcher (shipped)"]) == hits(out["spaCy Matcher"])
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, annotator in paths.items():
            start = time.process_time()
            list(annotator.annotate(texts, batch_size=64))
            times[name].append(time.process_time() - start)
    print(f"{len(texts)} texts, {words:,} words; best of {args.rounds} interleaved rounds; fast path, lexicons only")
    print(f"{'token patterns through':28} {'CPU s':>7} {'words/CPU-s':>12}")
    for name, ts in times.items():
        print(f"{name:28} {min(ts):7.3f} {words / min(ts):12,.0f}")
    ratio = min(times["spaCy Matcher"]) / min(times["anchor matcher (shipped)"])
    print(f"\nanchor matcher: {ratio:.2f}x the speed of spaCy's Matcher; same hits on every text: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
