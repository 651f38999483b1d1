"""The sentences behind every metropolis × theme cell, for a reader to check (stage:
indicators).

Input: the hits and paragraphs of the analysed base and the documents' provenance. Output: a
seeded, capped sample per cell of (1) hits that count for the theme (a lacking driver counts
under its barrier), (2) hits that do NOT count, with the reason (out of digital context,
negated, lacking, another actor's), (3) paragraphs the model labelled without any lexicon hit
(the paragraph is the evidence). Every row carries its source URL, page, document date,
retrieval date and document hash (the document id is the SHA-256 of its bytes).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

EVIDENCE_COLUMNS = ["metropole", "theme", "status", "reason", "subtheme", "term_id", "matched", "sentence",
                    "start", "end", "url", "title", "date", "fetched_at", "document_id", "page", "paragraph"]
STATUSES = ("compté", "non compté", "modèle")


def sample_evidence(hits: pd.DataFrame, paragraphs: pd.DataFrame, docs: pd.DataFrame, themes: list[str],
                    per_cell: int, seed: int) -> pd.DataFrame:
    """See the module docstring; at most ``per_cell`` rows per cell and status."""
    # The seeded draw below is tied to row order: put the rows in the annotate stage's order
    # (document, then metropole; a stable sort keeps each document's rows as they were), so
    # the sample is the same whether the tables were read from one file or from a dataset
    # partitioned by metropolis (whose rows come grouped by metropolis).
    hits, paragraphs = (f.sort_values(["document_id", "metropole"], kind="stable") if len(f) else f
                        for f in (hits, paragraphs))
    keyset = set(zip(docs["document_id"], docs["metropole"]))
    h = hits[[k in keyset for k in zip(hits["document_id"], hits["metropole"])]] if len(hits) else hits
    rows = []
    if len(h):
        counted = h[h["counts"].astype(bool)].assign(
            theme=lambda f: f["count_theme"], subtheme=lambda f: f["count_subtheme"], status="compté",
            reason=lambda f: f["reason"].replace({"lack-as-barrier": "manque → frein"}))
        not_counted = h[~h["counts"].astype(bool) | (h["reason"] == "lack-as-barrier")].assign(status="non compté")
        rows += [counted, not_counted]
    rows.append(_model_only(paragraphs, h, keyset))
    frame = pd.concat([r for r in rows if len(r)], ignore_index=True) if any(len(r) for r in rows) else pd.DataFrame()
    if frame.empty:
        return pd.DataFrame(columns=EVIDENCE_COLUMNS)
    frame = frame[frame["theme"].isin(themes)]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    frame = frame.iloc[np.argsort(rng.random(len(frame)), kind="stable")]
    frame = frame.drop_duplicates(["metropole", "theme", "status", "document_id", "page", "paragraph", "sentence"])
    frame = frame[frame.groupby(["metropole", "theme", "status"]).cumcount() < per_cell]
    meta = docs[["document_id", "metropole", "url", "title", "date", "fetched_at"]]
    frame = frame.drop(columns=[c for c in ("url", "title", "date", "fetched_at") if c in frame.columns]).merge(
        meta, on=["document_id", "metropole"], how="left")
    for c in EVIDENCE_COLUMNS:
        if c not in frame.columns:
            frame[c] = None
    order = {s: i for i, s in enumerate(STATUSES)}
    frame = frame.assign(_o=frame["status"].map(order)).sort_values(["metropole", "theme", "_o"], kind="stable")
    return frame[EVIDENCE_COLUMNS].reset_index(drop=True)


def _model_only(paragraphs: pd.DataFrame, hits: pd.DataFrame, keyset: set) -> pd.DataFrame:
    """Paragraphs where a theme counts although no hit of it counts there."""
    if paragraphs.empty:
        return pd.DataFrame()
    have = set()
    if len(hits):
        c = hits[hits["counts"].astype(bool)]
        have = set(zip(c["document_id"], c["metropole"], c["page"], c["paragraph"], c["count_theme"]))
    rows = []
    for r in paragraphs.itertuples(index=False):
        if (r.document_id, r.metropole) not in keyset or not getattr(r, "analysed", True):
            continue
        for t in (list(r.themes) if r.themes is not None else []):
            if (r.document_id, r.metropole, r.page, r.paragraph, t) not in have:
                rows.append({"metropole": r.metropole, "theme": t, "status": "modèle",
                             "reason": "étiqueté par le modèle sans occurrence du lexique", "sentence": r.text[:400],
                             "start": None, "end": None, "document_id": r.document_id, "page": r.page,
                             "paragraph": r.paragraph, "matched": None, "term_id": None, "subtheme": None})
    return pd.DataFrame(rows)
