"""The analysed base of the indicators and its per-document count matrix (stage: indicators).

Input: the annotate stage's ``documents``, ``paragraphs`` and ``hits`` tables. Output:
:class:`Base`: the analysed documents (prose documents, not listing or navigation pages, with
at least one analysed paragraph, optionally of some types) and, per document and theme:

- ``para``: analysed paragraphs where the theme COUNTS (the detector's label, not stated as
  absent, lacking or another actor's: the paragraph table's ``themes``);
- ``label``: analysed paragraphs with the theme's label, polarity ignored (what the
  detector's validation measures);
- ``hits``: lexicon hits that count as the theme (in digital context, with polarity and
  attribution applied, one per mention);
- the denominators: analysed paragraphs and their words.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nlp.errors import BarometreError

log = logging.getLogger(__name__)


@dataclass
class Base:
    """Analysed documents (``docs``, one row per document × metropole, in matrix order) and
    the ``N × T`` count matrices. ``columns`` names the themes (or sub-theme labels)."""

    docs: pd.DataFrame
    columns: list[str]
    para: np.ndarray
    label: np.ndarray
    hits: np.ndarray
    n_paragraphs: np.ndarray
    n_words: np.ndarray
    metropoles: list[str]
    warnings: list[str] = field(default_factory=list)

    def stacked(self) -> np.ndarray:
        """[para | documents with | label | hits | n_paragraphs | n_words | 1]: one matrix for
        the bootstrap (see :mod:`nlp.indicators.measures` for the column layout)."""
        N = len(self.docs)
        return np.hstack([self.para, (self.para > 0).astype(float), self.label, self.hits,
                          self.n_paragraphs[:, None], self.n_words[:, None], np.ones((N, 1))])


def _listish(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [str(v) for v in value]  # type: ignore[union-attr]


def build_base(documents: pd.DataFrame, paragraphs: pd.DataFrame, hits: pd.DataFrame,
               columns: list[str], *, doc_types: tuple[str, ...] | None = None,
               metropoles: tuple[str, ...] | None = None, subthemes: bool = False) -> Base:
    """The analysed base and its matrices for ``columns`` (themes, or dotted sub-theme labels
    when ``subthemes``)."""
    warnings: list[str] = []
    docs = documents.copy()
    if "analysed" not in docs.columns:
        raise BarometreError("indicators: the documents table has no 'analysed' column: it was written "
                             "by an older barometre; run `barometre annotate` again")
    excluded = docs[~docs["analysed"].astype(bool)]
    if len(excluded):
        warnings.append(f"{len(excluded)} document row(s) left out of the analysed base (listing or "
                        "navigation pages, or no prose paragraph)")
    docs = docs[docs["analysed"].astype(bool)]
    if doc_types:
        docs = docs[docs["doc_type"].isin(doc_types)]
    docs = docs.drop_duplicates(["document_id", "metropole"])
    docs = docs.sort_values(["metropole", "document_id"], kind="stable").reset_index(drop=True)
    docs["year"] = pd.to_numeric(docs["year"], errors="coerce").astype("Int64")
    docs["doc_type"] = docs["doc_type"].fillna("autre").astype(str)
    metros = sorted(set(documents["metropole"].astype(str)) | set(metropoles or ()))
    if not metros:
        raise BarometreError("indicators: the documents table is empty (no metropolis): run "
                             "`barometre extract` and `barometre annotate` first")
    row_of = {(d, m): i for i, (d, m) in enumerate(zip(docs["document_id"], docs["metropole"]))}
    N, T = len(docs), len(columns)
    col = {c: j for j, c in enumerate(columns)}
    para, label = np.zeros((N, T)), np.zeros((N, T))
    n_par, n_words = np.zeros(N), np.zeros(N)
    analysed = paragraphs[paragraphs["analysed"].astype(bool)] if "analysed" in paragraphs else paragraphs
    for r in analysed[["document_id", "metropole", "themes", "labels", "n_words"]].itertuples(index=False):
        i = row_of.get((r.document_id, r.metropole))
        if i is None:
            continue
        n_par[i] += 1
        n_words[i] += r.n_words
        labels = _listish(r.labels)
        counted = [lab for lab in labels if "." in lab] if subthemes else _listish(r.themes)
        for c in counted:
            if c in col:
                para[i, col[c]] += 1
        for c in labels:
            if c in col:
                label[i, col[c]] += 1
    hit_m = _hit_matrix(hits, analysed, row_of, col, subthemes, N, T)
    return Base(docs=docs, columns=list(columns), para=para, label=label, hits=hit_m, n_paragraphs=n_par,
                n_words=n_words, metropoles=metros, warnings=warnings)


def _hit_matrix(hits: pd.DataFrame, analysed: pd.DataFrame, row_of: dict, col: dict, subthemes: bool,
                N: int, T: int) -> np.ndarray:
    """Counting hits per document and theme, in analysed paragraphs only."""
    out = np.zeros((N, T))
    if hits.empty:
        return out
    keep = set(zip(analysed["document_id"], analysed["metropole"], analysed["page"], analysed["paragraph"]))
    h = hits[hits["counts"].astype(bool)] if "counts" in hits else hits.iloc[:0]
    for r in h[["document_id", "metropole", "page", "paragraph", "count_theme", "count_subtheme"]].itertuples(index=False):
        if (r.document_id, r.metropole, r.page, r.paragraph) not in keep:
            continue
        i = row_of.get((r.document_id, r.metropole))
        name = f"{r.count_theme}.{r.count_subtheme}" if subthemes else r.count_theme
        if i is not None and name in col:
            out[i, col[name]] += 1
    return out
