"""Benchmark of the indicators stage (run by hand, not a test).

Synthetic annotate-stage tables of the target size (22 metropolises × 10 themes × 5 years,
200,000 hits, documents of a few thousand words) → ``compute_indicators`` with 1,000
bootstrap draws. Prints the time of each part side by side, and the ratio to the 30 s target.

    .venv/bin/python bench/bench_indicators.py [--hits 200000] [--docs 4400] [--draws 1000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlp.indicators import IndicatorSettings, compute_indicators, write_indicators  # noqa: E402
from nlp.schema import DOC_TYPES, THEMES  # noqa: E402


def synthetic_tables(n_metros: int = 22, n_docs: int = 4400, n_hits: int = 200_000,
                     years: tuple[int, ...] = (2019, 2020, 2021, 2022, 2023), seed: int = 0
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Documents and hits tables with the columns of nlp.schema, random but plausible."""
    rng = np.random.default_rng(seed)
    metros = [f"metro-{i:02d}" for i in range(n_metros)]
    themes = list(THEMES)
    doc_metro = rng.integers(0, n_metros, n_docs)
    n_words = rng.integers(300, 20_000, n_docs)
    docs = pd.DataFrame({
        "document_id": [f"{i:064x}" for i in range(n_docs)],
        "metropole": [metros[m] for m in doc_metro],
        "url": [f"https://example.org/doc/{i}.pdf" for i in range(n_docs)],
        "title": [f"Document {i}" for i in range(n_docs)],
        "doc_type": rng.choice(list(DOC_TYPES), n_docs),
        "year": rng.choice(list(years), n_docs),
        "n_pages": rng.integers(1, 40, n_docs),
        "n_paragraphs": n_words // 60, "n_sentences": n_words // 20, "n_words": n_words,
        "n_digital_paragraphs": n_words // 600, "extraction_status": "ok",
    })
    docs["date"] = docs["year"].astype(str) + "-06-01"
    # hits fall in documents proportionally to their length; theme mix varies by metropolis
    d = rng.choice(n_docs, n_hits, p=n_words / n_words.sum())
    mix = rng.dirichlet(np.ones(len(themes)) * 2, n_metros)
    u = rng.random(n_hits)
    cum = np.cumsum(mix, axis=1)[doc_metro[d]]
    t = (u[:, None] > cum).sum(axis=1).clip(0, len(themes) - 1)
    sub = np.where(np.array(themes)[t] == "frein_interne",
                   rng.choice(["acculturation", "technique", "politique", "budgetaire"], n_hits),
                   np.where(np.array(themes)[t] == "frein_externe",
                            rng.choice(["craintes", "fracture"], n_hits), None))
    hits = pd.DataFrame({
        "document_id": docs["document_id"].to_numpy()[d],
        "metropole": docs["metropole"].to_numpy()[d],
        "url": docs["url"].to_numpy()[d],
        "page": rng.integers(1, 20, n_hits), "paragraph": rng.integers(0, 30, n_hits),
        "sentence_index": rng.integers(0, 5, n_hits),
        "sentence": "La métropole déploie le numérique pour les usagers.",
        "start": 3, "end": 12, "theme": np.array(themes)[t], "subtheme": sub,
        "term_id": [f"{themes[x]}.term{k}" for x, k in zip(t, rng.integers(0, 15, n_hits))],
        "matched": "métropole", "negated": rng.random(n_hits) < 0.03,
        "digital_context": True,
        "doc_type": docs["doc_type"].to_numpy()[d], "year": docs["year"].to_numpy()[d],
    })
    return docs, hits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hits", type=int, default=200_000)
    ap.add_argument("--docs", type=int, default=4400)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--write", type=Path, default=None, help="also write tables there")
    args = ap.parse_args()
    t0 = time.perf_counter()
    docs, hits = synthetic_tables(n_docs=args.docs, n_hits=args.hits)
    t1 = time.perf_counter()
    res0 = compute_indicators(docs, hits, IndicatorSettings(draws=0))
    t2 = time.perf_counter()
    res = compute_indicators(docs, hits, IndicatorSettings(draws=args.draws))
    t3 = time.perf_counter()
    print(f"data: {len(docs)} documents, {len(hits)} hits, "
          f"{docs.metropole.nunique()} metropolises, {docs.year.nunique()} years "
          f"(generated in {t1 - t0:.1f} s)")
    print(f"compute_indicators, no bootstrap      : {t2 - t1:6.2f} s")
    print(f"compute_indicators, {args.draws} draws       : {t3 - t2:6.2f} s "
          f"({(t3 - t2) / 30:.2f} of the 30 s target; bootstrap adds "
          f"{(t3 - t2) / max(t2 - t1, 1e-9):.1f}× the no-bootstrap time)")
    print(f"tidy rows: {len(res.tidy)}, evidence rows: {len(res.evidence)}, "
          f"tidy rows without bootstrap: {len(res0.tidy)}")
    if args.write:
        t4 = time.perf_counter()
        write_indicators(res, args.write)
        print(f"write_indicators: {time.perf_counter() - t4:.2f} s")


if __name__ == "__main__":
    main()
