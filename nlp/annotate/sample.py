"""A sample of the researcher's own corpus for manual coding (``barometre sample``).

Input: ``outputs/tables/paragraphs.parquet`` and ``documents.parquet`` (annotate stage).
Output: ``FILE.csv`` (``;``-separated, UTF-8 with BOM: a spreadsheet opens it) and
``FILE.jsonl`` with, per sampled paragraph: ``id``, its document, metropolis, type, source URL
and page, the text, one EMPTY column per label to fill with 0/1, ``negated`` and ``notes``, and
``weight`` (the inverse of its inclusion probability in its stratum).

The coder sees no prediction of the detector (coding must not be anchored on it). Strata:
``theme`` (the detector's label sets: each theme, and paragraphs with none, sampled evenly, so
rare themes are coded often enough), ``metropole`` or ``doc_type``; without stratification a
simple random sample. Because a stratified sample over-represents some paragraphs, ``weight``
lets ``barometre eval --gold`` estimate the corpus's recall and specificity, not the sample's.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlp.errors import BarometreError
from nlp.io import atomic_write
from nlp.schema import LABELS, THEMES

STRATA = ("theme", "metropole", "doc_type")
SAMPLE_COLUMNS = ["id", "document_id", "metropole", "doc_type", "url", "page", "paragraph", "text",
                  *LABELS, "negated", "notes", "stratum", "weight"]


def _stratum_of(row: pd.Series, how: str) -> str:
    if how == "theme":
        labs = [t for t in THEMES if t in set(row["labels"])]
        return labs[0] if labs else "(aucun thème)"
    return str(row[how])


def draw_sample(paragraphs: pd.DataFrame, documents: pd.DataFrame, n: int, stratify: str | None,
                seed: int) -> pd.DataFrame:
    """``n`` analysed paragraphs (seeded), evenly over the strata when ``stratify`` is given,
    each with its sampling ``weight``."""
    if stratify is not None and stratify not in STRATA:
        raise BarometreError(f"sample: --stratify must be one of {', '.join(STRATA)}")
    paras = paragraphs[paragraphs["analysed"].astype(bool)] if "analysed" in paragraphs else paragraphs
    meta = documents[["document_id", "metropole", "doc_type", "url"]].drop_duplicates(["document_id", "metropole"])
    paras = paras.merge(meta, on=["document_id", "metropole"], how="left")
    if paras.empty:
        raise BarometreError("sample: no analysed paragraph: run `barometre annotate` first")
    rng = np.random.default_rng(seed)
    paras = paras.assign(stratum=[_stratum_of(r, stratify) for _, r in paras.iterrows()] if stratify else "all")
    groups = {k: g.index.to_numpy() for k, g in paras.groupby("stratum", sort=True)}
    quota = _quotas({k: len(v) for k, v in groups.items()}, n)
    picked, weights = [], []
    for key, idx in groups.items():
        take = quota[key]
        if take:
            chosen = rng.choice(np.sort(idx), size=take, replace=False)
            picked.extend(chosen.tolist())
            weights.extend([len(idx) / take] * take)
    out = paras.loc[picked].assign(weight=weights)
    out = out.sort_values(["metropole", "document_id", "page", "paragraph"], kind="stable").reset_index(drop=True)
    out["id"] = [f"s{i:05d}" for i in range(1, len(out) + 1)]
    return out


def _quotas(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Even allocation of ``n`` over strata, capped by each stratum's size, the remainder
    passed on to strata that still have paragraphs."""
    quota = dict.fromkeys(sizes, 0)
    left = min(n, sum(sizes.values()))
    while left > 0:
        open_ = [k for k in sizes if quota[k] < sizes[k]]
        share = max(1, left // len(open_))
        for k in open_:
            add = min(share, sizes[k] - quota[k], left)
            quota[k] += add
            left -= add
            if left == 0:
                break
    return quota


def write_sample(sample: pd.DataFrame, out: Path) -> list[Path]:
    """``out`` with suffix ``.csv`` and ``.jsonl`` (see the module docstring)."""
    out = Path(out)
    base = out.with_suffix("") if out.suffix in (".csv", ".jsonl") else out
    rows = []
    for r in sample.itertuples(index=False):
        d = r._asdict()
        rows.append({c: ("" if c in LABELS or c in ("negated", "notes") else d.get(c)) for c in SAMPLE_COLUMNS})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SAMPLE_COLUMNS, delimiter=";")
    writer.writeheader()
    writer.writerows(rows)
    csv_path, jsonl_path = base.with_suffix(".csv"), base.with_suffix(".jsonl")
    atomic_write(csv_path, "\ufeff" + buf.getvalue())
    lines = []
    for row in rows:
        rec: dict[str, Any] = {k: v for k, v in row.items() if k not in LABELS}
        rec["labels"] = None  # to fill: a list of label ids
        rec["negated"] = None
        lines.append(json.dumps(rec, ensure_ascii=False, default=str))
    atomic_write(jsonl_path, "\n".join(lines) + "\n")
    return [csv_path, jsonl_path]
