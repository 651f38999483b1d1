"""Compare the topic stage's embedders on real French paragraphs (issue 6, deliverable 2).

Run by hand: ``.venv/bin/python bench/compare_embedders.py [--st PATH ...] [--all-paragraphs]``.

Corpus: the gold paragraphs of ``../shared/data/gold/dev.jsonl`` (theme labels; ``numerique``
→ digital) + paragraphs of the real PDFs under ``../shared/data/real-pdfs/pdf`` (pdfplumber
text; a paragraph ends at a line ending in . ! ? : ; or at a blank line). Non-gold paragraphs
are marked digital by a keyword rule (the theme stage does this in the real pipeline).

For each embedder, the full topic stage (``run_topics``) is run and the table printed:
topics, outlier share before/after reduction, diversity, mean NPMI, and the alignment of the
topics with the gold themes on the gold paragraphs (NMI and purity against each paragraph's
first theme label, before outlier reduction, outliers excluded).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.topics import TopicInputs, TopicSettings, run_topics  # noqa: E402

DIGITAL_RE = re.compile(
    r"num[ée]ri|digital|donn[ée]es|informati|internet|en ligne|smart|d[ée]mat[ée]riali|cyber"
    r"|logiciel|site web|wifi|wi-fi|fibre|t[ée]l[ée]service|open data|plateforme|cnil", re.I)


from nlp.config import shared_data_dir as shared_data  # noqa: E402


def _pdf_paragraphs(path: Path) -> list[tuple[int, str]]:
    import pdfplumber

    out: list[tuple[int, str]] = []
    try:
        with pdfplumber.open(path) as pdf:
            for number, page in enumerate(pdf.pages, start=1):
                text = page.extract_text() or ""
                current: list[str] = []
                for line in text.splitlines() + [""]:
                    line = line.strip()
                    if line:
                        current.append(line)
                    if (not line or re.search(r"[.!?:;]$", line)) and current:
                        para = re.sub(r"-\s+(?=[a-zà-ÿ])", "", " ".join(current))
                        out.append((number, para))
                        current = []
    except Exception as exc:  # encrypted / malformed PDFs are part of the test set
        print(f"skip {path.name}: {type(exc).__name__}", file=sys.stderr)
    return out


def load_dev_corpus(cache: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paragraphs, documents) tables in the annotate stage's shape, from the real data."""
    data = shared_data()
    cache = cache or Path(tempfile.gettempdir()) / "barometre_dev_corpus.parquet"
    if cache.is_file():
        paragraphs = pd.read_parquet(cache)
    else:
        rows = []
        for i, line in enumerate((data / "gold" / "dev.jsonl").read_text(encoding="utf-8").splitlines()):
            rec = json.loads(line)
            labels = [l for l in rec["labels"] if "." not in l]
            rows.append({"document_id": f"gold-{rec['source']}", "metropole": rec["collectivite"] or "national",
                         "page": 1, "paragraph": i, "text": rec["text"],
                         "is_digital": "numerique" in labels,
                         "themes": [l for l in labels if l != "numerique"], "gold_id": rec["id"]})
        for pdf in sorted((data / "real-pdfs" / "pdf").rglob("*.pdf")):
            for j, (page, para) in enumerate(_pdf_paragraphs(pdf)):
                rows.append({"document_id": f"pdf-{pdf.stem}", "metropole": pdf.parent.name,
                             "page": page, "paragraph": j, "text": para,
                             "is_digital": bool(DIGITAL_RE.search(para)), "themes": [],
                             "gold_id": None})
        paragraphs = pd.DataFrame(rows)
        paragraphs["n_words"] = paragraphs["text"].str.split().str.len()
        paragraphs["n_sentences"] = 1
        paragraphs.to_parquet(cache, index=False)
    docs = paragraphs[["document_id", "metropole"]].drop_duplicates().copy()
    years = docs["document_id"].str.extract(r"(20[0-2]\d)")[0]
    docs["year"] = pd.to_numeric(years, errors="coerce").astype("Int64")
    docs["doc_type"] = np.where(docs["document_id"].str.startswith("pdf-"), "deliberation", "page_web")
    return paragraphs, docs


def alignment(paragraphs: pd.DataFrame, outputs: Path) -> dict[str, float]:
    """NMI and purity of topics (before outlier reduction, outliers excluded) vs gold themes."""
    from sklearn.metrics import normalized_mutual_info_score

    dt = pd.read_parquet(outputs / "tables" / "doc_topics.parquet")
    gold = paragraphs[paragraphs["gold_id"].notna()]
    gold = gold[gold["themes"].map(len) > 0]
    key = gold["document_id"] + "|" + gold["paragraph"].astype(str)
    first = dict(zip(key, gold["themes"].map(lambda t: t[0])))
    dt = dt[dt["chunk"] == 0]
    dt = dt.assign(key=dt["document_id"] + "|" + dt["paragraph"].astype(str))
    dt = dt[dt["key"].isin(first)]
    out = {"gold_chunks": len(dt)}
    for col, name in (("topic_before_reduction", "before"), ("topic", "after")):
        d = dt[dt[col] != -1]
        labels = d["key"].map(first)
        if len(d) < 2:
            out[f"nmi_{name}"] = out[f"purity_{name}"] = float("nan")
            continue
        out[f"nmi_{name}"] = normalized_mutual_info_score(labels, d[col])
        # Chance level: the same topic sizes, shuffled (NMI grows with the number of topics).
        rng = np.random.default_rng(0)
        out[f"nmi_random_{name}"] = float(np.mean([normalized_mutual_info_score(
            labels, rng.permutation(d[col].to_numpy())) for _ in range(20)]))
        purity = d.assign(l=labels.values).groupby(col)["l"].agg(lambda s: s.value_counts().iloc[0]).sum() / len(d)
        out[f"purity_{name}"] = purity
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--st", action="append", default=[], help="local sentence-transformers dir")
    parser.add_argument("--all-paragraphs", action="store_true")
    parser.add_argument("--embedders", default="tfidf-svd,spacy")
    parser.add_argument("--outlier-threshold", type=float, default=0.0)
    parser.add_argument("--show-topics", action="store_true")
    args = parser.parse_args()
    paragraphs, docs = load_dev_corpus()
    print(f"corpus: {len(paragraphs)} paragraphs ({paragraphs['gold_id'].notna().sum()} gold), "
          f"{int(paragraphs['is_digital'].sum())} digital", file=sys.stderr)
    specs = [s for s in args.embedders.split(",") if s] + [f"st:{p}" for p in args.st]
    rows = []
    for spec in specs:
        with tempfile.TemporaryDirectory() as tmp:
            settings = TopicSettings(embedder=spec, all_paragraphs=args.all_paragraphs,
                                     figures=False, use_cache=False,
                                     outlier_threshold=args.outlier_threshold)
            t = time.perf_counter()
            summary = run_topics(TopicInputs(paragraphs, docs), Path(tmp), settings)
            wall = time.perf_counter() - t
            al = alignment(paragraphs, Path(tmp))
            if args.show_topics:
                topics = pd.read_parquet(Path(tmp) / "tables" / "topics.parquet")
                for r in topics.itertuples():
                    print(f"  [{spec}] {r.topic:>2} n={r.size:<4} npmi={r.npmi:+.2f} "
                          f"{r.best_theme or '-':<20} {r.label}", file=sys.stderr)
        rows.append({
            "embedder": spec, "chunks": summary["n_chunks_fitted"], "method": summary["method"],
            "topics": summary["n_topics"],
            "outliers before": f"{summary['outlier_share_before']:.0%}",
            "outliers after": f"{summary['outlier_share_after']:.0%}",
            "diversity": f"{summary['diversity']:.2f}", "mean NPMI": f"{summary['mean_npmi']:.3f}",
            "NMI gold (before)": f"{al['nmi_before']:.3f}",
            "NMI chance (before)": f"{al['nmi_random_before']:.3f}", "purity gold (before)": f"{al['purity_before']:.2f}",
            "NMI gold (after)": f"{al['nmi_after']:.3f}", "purity gold (after)": f"{al['purity_after']:.2f}",
            "gold chunks": al["gold_chunks"],
            "embed s": summary["timings"]["embed_s"], "fit s": summary["timings"]["fit_s"],
            "total s": round(wall, 1),
        })
    print(markdown_table(rows))


def markdown_table(rows: list[dict]) -> str:
    """A GitHub markdown table (no dependency on tabulate)."""
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
