"""Concordance (KWIC) of theme hits, for checking the evidence by hand.

Input: ``outputs/tables/hits.parquet`` and ``documents.parquet`` (written by annotate).
Output: a table with one row per hit: metropole, left context, match, right context, theme,
sub-theme, term, negated flag, source URL, page, document date and title.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from nlp.errors import BarometreError
from nlp.schema import THEMES

KWIC_COLUMNS = ["metropole", "left", "match", "right", "theme", "subtheme", "term_id", "negated",
                "url", "page", "date", "title", "document_id", "sentence"]


def kwic_table(outputs_dir: Path, theme: str, metropoles: list[str] | None = None,
               subtheme: str | None = None, negated: bool | None = None) -> pd.DataFrame:
    """Hits of ``theme`` (optionally one sub-theme, some metropolises, only negated or only
    affirmed), sorted by metropole, URL, page and position."""
    tables = Path(outputs_dir) / "tables"
    hits_path = tables / "hits.parquet"
    if not hits_path.exists():
        raise BarometreError(f"kwic: no {hits_path}; run `barometre annotate` first")
    hits = pd.read_parquet(hits_path)
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
    docs_path = tables / "documents.parquet"
    if docs_path.exists():
        docs = pd.read_parquet(docs_path)[["document_id", "metropole", "date", "title"]]
        sel = sel.merge(docs, on=["document_id", "metropole"], how="left")
    else:
        sel = sel.assign(date=None, title=None)
    sel = sel.sort_values(["metropole", "url", "page", "paragraph", "sentence_index", "start"])
    left = [s[max(0, a - 80):a] for s, a in zip(sel["sentence"], sel["start"])]
    match = [s[a:b] for s, a, b in zip(sel["sentence"], sel["start"], sel["end"])]
    right = [s[b:b + 80] for s, b in zip(sel["sentence"], sel["end"])]
    out = sel.assign(left=left, match=match, right=right)
    return out[KWIC_COLUMNS].reset_index(drop=True)


def print_kwic(table: pd.DataFrame, limit: int = 50) -> None:
    """Print a concordance aligned on the match, with each hit's source under it."""
    width = shutil.get_terminal_size((120, 20)).columns
    side = max(20, (width - 30) // 2)
    rows = table if not limit else table.head(limit)
    for r in rows.itertuples():
        left = r.left.replace("\n", " ")[-side:].rjust(side)
        right = r.right.replace("\n", " ")[:side]
        neg = " [nié]" if r.negated else ""
        print(f"{left} [{r.match}] {right}")
        sub = f".{r.subtheme}" if isinstance(r.subtheme, str) and r.subtheme else ""
        print(f"    {r.metropole} · {r.theme}{sub} · {r.term_id}{neg} · p.{r.page} · {r.date or 's.d.'} · {r.url}")
    if limit and len(table) > limit:
        print(f"... {len(table) - limit} more (use --limit 0 or --out FILE.csv)")
    print(f"{len(table)} hits")
