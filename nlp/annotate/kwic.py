"""Concordance (KWIC) of theme hits, for checking the evidence by hand (``barometre kwic``).

Input: ``outputs/tables/hits.parquet`` and ``documents.parquet`` (annotate stage). Output: one
row per hit: metropole, left context, match, right context, theme, sub-theme, term, whether it
counts for the metropolis and why not (out of digital context, negated, lacking, another
actor's) or as what (a lacking driver counts as a barrier), source URL, page, document date,
title, retrieval date and document hash.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from nlp.errors import BarometreError
from nlp.io import kwic_window, read_table
from nlp.schema import THEMES

KWIC_COLUMNS = ["metropole", "left", "match", "right", "theme", "subtheme", "term_id", "counts",
                "count_theme", "count_subtheme", "reason", "negated", "url", "page", "date", "title",
                "fetched_at", "document_id", "sentence"]
REASON_FR = {"out-of-context": "hors contexte numérique", "negated": "nié", "lacking": "manque",
             "other-actor": "autre acteur", "lack-as-barrier": "manque → frein"}


def kwic_table(outputs_dir: Path, theme: str, metropoles: list[str] | None = None,
               subtheme: str | None = None, negated: bool | None = None,
               counting: bool | None = None) -> pd.DataFrame:
    """Hits of ``theme`` (optionally one sub-theme, some metropolises, only negated or only
    affirmed, only counting or only not counting), sorted by metropole, URL, page, position."""
    tables = Path(outputs_dir) / "tables"
    hits_path = tables / "hits.parquet"
    if not hits_path.exists():
        raise BarometreError(f"kwic: no {hits_path}; run `barometre annotate` first")
    hits = read_table(hits_path)
    known = set(hits["theme"].unique()) | set(THEMES)
    if theme not in known:
        raise BarometreError(f"kwic: unknown theme {theme!r} (known: {', '.join(sorted(known))})")
    sel = hits[hits["theme"] == theme]
    if subtheme:
        sel = sel[sel["subtheme"] == subtheme]
    if metropoles:
        sel = sel[sel["metropole"].isin(metropoles)]
    if negated is not None:
        sel = sel[sel["negated"] == negated]
    if counting is not None:
        sel = sel[sel["counts"] == counting]
    docs_path = tables / "documents.parquet"
    if docs_path.exists():
        docs = read_table(docs_path, columns=["document_id", "metropole", "date", "title", "fetched_at"])
        sel = sel.merge(docs, on=["document_id", "metropole"], how="left")
    else:
        sel = sel.assign(date=None, title=None, fetched_at=None)
    sel = sel.sort_values(["metropole", "url", "page", "paragraph", "sentence_index", "start"])
    windows = [kwic_window(s, a, b) for s, a, b in zip(sel["sentence"], sel["start"], sel["end"])]
    out = sel.assign(left=[w[0] for w in windows], match=[w[1] for w in windows], right=[w[2] for w in windows])
    return out[KWIC_COLUMNS].reset_index(drop=True)


def print_kwic(table: pd.DataFrame, limit: int = 50) -> None:
    """Print a concordance aligned on the match, with each hit's source and status under it."""
    width = shutil.get_terminal_size((120, 20)).columns
    side = max(20, (width - 30) // 2)
    rows = table if not limit else table.head(limit)
    for r in rows.itertuples():
        left = r.left.replace("\n", " ")[-side:].rjust(side)
        right = r.right.replace("\n", " ")[:side]
        print(f"{left} [{r.match}] {right}")
        sub = f".{r.subtheme}" if isinstance(r.subtheme, str) and r.subtheme else ""
        status = "compté" if r.counts and not r.reason else REASON_FR.get(r.reason, r.reason or "non compté")
        if r.counts and r.reason:
            status += f" ({r.count_theme}{'.' + r.count_subtheme if isinstance(r.count_subtheme, str) else ''})"
        print(f"    {r.metropole} · {r.theme}{sub} · {r.term_id} · {status} · p.{r.page} · "
              f"{r.date or 's.d.'} · {r.url}")
    if limit and len(table) > limit:
        print(f"... {len(table) - limit} more (use --limit 0 or --out FILE.csv)")
    print(f"{len(table)} hits")
