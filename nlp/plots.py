"""Stage "report": matplotlib figures of the indicator tables (French labels).

Inputs: the DataFrames written by :mod:`nlp.indicators` (and the annotate stage's documents
table). Every function returns a :class:`matplotlib.figure.Figure` and never writes a file:
:mod:`nlp.report` saves them (PNG under ``outputs/plots/``) and embeds them in the report.
Figures are built with the object API on the Agg canvas (no pyplot state, no display).
"""
from __future__ import annotations

import logging
import math
from typing import Mapping

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nlp.schema import BARRIER_THEMES, THEMES

log = logging.getLogger(__name__)

MEASURE_LABELS = {
    "hits_per_10k_words": "occurrences pour 10 000 mots",
    "doc_share": "part des documents",
    "sentence_share": "part des phrases",
    "maturity_index": "indice de maturité (0–100)",
}
DOC_TYPE_LABELS = {
    "deliberation": "délibération", "proces_verbal": "procès-verbal", "strategie": "stratégie",
    "rapport": "rapport", "page_web": "page web", "autre": "autre",
}
SHORT_THEME = {
    "strategie": "Stratégie", "relation_usager": "Relation usager", "inclusion": "Inclusion",
    "partenariats": "Partenariats", "cooperation_communes": "Coop. communes",
    "citoyennete": "Citoyenneté", "agents": "Agents", "donnees": "Données",
    "frein_interne": "Freins internes", "frein_externe": "Freins externes",
}


def _fig(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _name(slug: str, names: Mapping[str, str] | None) -> str:
    return (names or {}).get(slug, slug)


def _empty(message: str) -> Figure:
    fig = _fig(6, 1.2)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def documents_overview(documents: pd.DataFrame, names: Mapping[str, str] | None = None
                       ) -> Figure:
    """Documents per metropolis, stacked by document type (horizontal bars)."""
    if documents.empty:
        return _empty("Aucun document")
    tab = pd.crosstab(documents["metropole"], documents["doc_type"].fillna("autre"))
    tab = tab.loc[tab.sum(axis=1).sort_values().index]
    fig = _fig(8, max(2.5, 0.3 * len(tab) + 1.2))
    ax = fig.add_subplot()
    left = np.zeros(len(tab))
    cmap = matplotlib.colormaps["tab10"]
    for i, col in enumerate(tab.columns):
        ax.barh([_name(m, names) for m in tab.index], tab[col], left=left,
                label=DOC_TYPE_LABELS.get(col, col), color=cmap(i % 10))
        left += tab[col].to_numpy()
    ax.set_xlabel("documents")
    ax.set_title("Documents par métropole et type")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title="type")
    return fig


def documents_per_year(documents: pd.DataFrame) -> Figure:
    """Documents per year (documents without a date counted apart in the title)."""
    years = pd.to_numeric(documents.get("year"), errors="coerce")
    undated = int(years.isna().sum())
    counts = years.dropna().astype(int).value_counts().sort_index()
    if counts.empty:
        return _empty(f"Aucun document daté ({undated} sans date)")
    fig = _fig(8, 3)
    ax = fig.add_subplot()
    ax.bar(counts.index.astype(str), counts.to_numpy(), color="#4c72b0")
    ax.set_ylabel("documents")
    ax.set_title(f"Documents par année ({undated} sans date)")
    ax.tick_params(axis="x", rotation=45)
    return fig


def extraction_statuses(documents: pd.DataFrame) -> Figure:
    """Counts per extraction status."""
    counts = documents.get("extraction_status", pd.Series(dtype=str)).fillna("inconnu"
                                                                            ).value_counts()
    if counts.empty:
        return _empty("Aucun statut d'extraction")
    fig = _fig(8, max(2, 0.3 * len(counts) + 1))
    ax = fig.add_subplot()
    ax.barh(counts.index[::-1], counts.to_numpy()[::-1],
            color=["#55a868" if s in ("ok", "ocr") else "#c44e52" for s in counts.index[::-1]])
    ax.set_xlabel("documents")
    ax.set_title("Statuts d'extraction")
    return fig


def heatmap(matrix: pd.DataFrame, title: str, colorbar: str,
            names: Mapping[str, str] | None = None, fmt: str = "{:.1f}",
            diverging: bool = False, marks: pd.DataFrame | None = None,
            min_width: float = 7) -> Figure:
    """Heatmap of a metropolis × column matrix (index = slugs, columns = theme ids or labels).
    ``marks``: same shape, True where a '*' is added (e.g. significant keyness)."""
    if matrix.empty:
        return _empty("Aucune donnée")
    data = matrix.to_numpy(dtype=float)
    fig = _fig(max(min_width, 0.9 * matrix.shape[1] + 3),
               max(2.5, 0.38 * matrix.shape[0] + 1.8))
    ax = fig.add_subplot()
    finite = data[np.isfinite(data)]
    if diverging:
        lim = max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-9)
        im = ax.imshow(data, aspect="auto", cmap="RdBu_r",
                       norm=TwoSlopeNorm(vcenter=0, vmin=-lim, vmax=lim))
    else:
        im = ax.imshow(data, aspect="auto", cmap="viridis")
    ax.set_xticks(range(matrix.shape[1]),
                  [SHORT_THEME.get(c, str(c)) for c in matrix.columns], rotation=40, ha="right")
    ax.set_yticks(range(matrix.shape[0]), [_name(m, names) for m in matrix.index])
    if matrix.size <= 400:
        hi = np.nanmax(finite) if finite.size else 0
        lo = np.nanmin(finite) if finite.size else 0
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                v = data[i, j]
                if not np.isfinite(v):
                    continue
                mark = "*" if marks is not None and bool(marks.iat[i, j]) else ""
                light = (abs(v) > 0.6 * max(abs(hi), abs(lo))) if diverging else \
                    (v < lo + 0.5 * (hi - lo))
                text = fmt.format(v)
                if text.startswith("-") and not text.strip("-0.,"):
                    text = text[1:]  # "-0" from a tiny negative value
                ax.text(j, i, text + mark, ha="center", va="center", fontsize=7,
                        color="white" if light else "black")
    fig.colorbar(im, ax=ax, label=colorbar, shrink=0.8)
    ax.set_title(title)
    return fig


def radar_profiles(profiles: pd.DataFrame, names: Mapping[str, str] | None = None,
                   ncols: int = 4) -> Figure:
    """One radar per metropolis: share of its hits per theme (profile)."""
    themes = [t for t in THEMES if t in profiles.columns]
    prof = profiles[profiles["n_hits"] > 0] if "n_hits" in profiles else profiles
    if prof.empty or not themes:
        return _empty("Aucun profil (aucune occurrence)")
    n = len(prof)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = _fig(3.2 * ncols, 3.2 * nrows)
    angles = np.linspace(0, 2 * np.pi, len(themes), endpoint=False)
    closed = np.concatenate([angles, angles[:1]])
    vmax = float(np.nanmax(prof[themes].to_numpy())) or 1.0
    for k, (_, row) in enumerate(prof.iterrows()):
        ax = fig.add_subplot(nrows, ncols, k + 1, projection="polar")
        vals = row[themes].to_numpy(dtype=float)
        vals = np.concatenate([vals, vals[:1]])
        ax.plot(closed, vals, color="#4c72b0")
        ax.fill(closed, vals, color="#4c72b0", alpha=0.25)
        ax.set_xticks(angles, [SHORT_THEME[t] for t in themes], fontsize=6)
        ax.set_ylim(0, vmax)
        ax.set_yticklabels([])
        ax.set_title(_name(row["metropole"], names), fontsize=9)
    fig.suptitle("Profils thématiques (part des occurrences par thème)")
    return fig


def ranking(table: pd.DataFrame, value: str, title: str, xlabel: str,
            names: Mapping[str, str] | None = None, ci: tuple[str, str] = ("ci_low", "ci_high")
            ) -> Figure:
    """Forest plot: value with its interval per metropolis, sorted, labelled with the rank and
    its interval ('=' marks a rank tied with a neighbour)."""
    t = table[table[value].notna()].sort_values("rank", ascending=False)
    if t.empty:
        return _empty("Aucune donnée")
    fig = _fig(8, max(2.5, 0.32 * len(t) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(t))
    lo = (t[value] - t[ci[0]]).clip(lower=0).fillna(0)
    hi = (t[ci[1]] - t[value]).clip(lower=0).fillna(0)
    ax.errorbar(t[value].to_numpy(float), y, xerr=[lo.to_numpy(float), hi.to_numpy(float)],
                fmt="o", color="#4c72b0", ecolor="#8da0cb",
                capsize=3)
    labels = []
    for _, r in t.iterrows():
        rank = f"{'=' if r.get('tied', False) else ''}{int(r['rank'])}"
        interval = ""
        if pd.notna(r.get("rank_low")):
            interval = f" [{int(r['rank_low'])}–{int(r['rank_high'])}]"
        labels.append(f"{rank}{interval}  {_name(r['metropole'], names)}")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def sensitivity(sens: pd.DataFrame, names: Mapping[str, str] | None = None) -> Figure:
    """Rank of each metropolis when each driver's weight is dropped (heatmap of ranks)."""
    if sens.empty:
        return _empty("Aucune analyse de sensibilité")
    piv = sens.pivot(index="metropole", columns="dropped_theme", values="rank")
    order = ["(aucune)"] + [c for c in piv.columns if c != "(aucune)"]
    piv = piv[order].sort_values("(aucune)")
    piv.columns = ["référence" if c == "(aucune)" else f"sans {SHORT_THEME.get(c, c)}"
                   for c in piv.columns]
    return heatmap(piv, "Rang de l'indice quand un poids est retiré", "rang", names,
                   fmt="{:.0f}")


def barriers(subthemes: pd.DataFrame, names: Mapping[str, str] | None = None) -> Figure:
    """Barrier sub-themes: hits per 10,000 words per metropolis (grouped bars)."""
    s = subthemes[(subthemes["measure"] == "hits_per_10k_words")
                  & subthemes["theme"].isin(BARRIER_THEMES)]
    if s.empty:
        return _empty("Aucun frein mesuré")
    s = s.assign(col=s["theme"].map(SHORT_THEME) + " : " + s["subtheme"].astype(str))
    piv = s.pivot_table(index="metropole", columns="col", values="value", aggfunc="first")
    return heatmap(piv, "Freins par sous-thème (occurrences pour 10 000 mots)",
                   "pour 10 000 mots", names, fmt="{:.2f}")


def keyness_heatmap(keyness: pd.DataFrame, names: Mapping[str, str] | None = None) -> Figure:
    """Signed G² per metropolis × theme ('*': p < 0.05); red = over-use, blue = under-use."""
    if keyness.empty:
        return _empty("Aucune spécificité")
    piv = keyness.pivot(index="metropole", columns="theme", values="signed_g2")
    piv = piv[[t for t in THEMES if t in piv.columns]]
    sig = keyness.pivot(index="metropole", columns="theme", values="p_value")[piv.columns] < 0.05
    return heatmap(piv, "Spécificités (G² signé ; * p < 0,05)", "G² signé", names,
                   fmt="{:.0f}", diverging=True, marks=sig)


def dendrogram(linkage: pd.DataFrame, clusters: pd.DataFrame,
               names: Mapping[str, str] | None = None) -> Figure:
    """Average-linkage dendrogram of the Jensen–Shannon distances between profiles."""
    from scipy.cluster import hierarchy

    if linkage.empty or len(clusters) < 2:
        return _empty("Classification impossible (moins de deux profils)")
    labels = [_name(m, names) for m in clusters.sort_values("linkage_index")["metropole"]]
    fig = _fig(8, max(2.5, 0.3 * len(labels) + 1))
    ax = fig.add_subplot()
    hierarchy.dendrogram(linkage[["left", "right", "distance", "size"]].to_numpy(float),
                         labels=labels, orientation="left", ax=ax, color_threshold=None)
    ax.set_xlabel("distance de Jensen–Shannon (lien moyen)")
    ax.set_title("Classification des profils thématiques")
    return fig


def evolution(by_year: pd.DataFrame, measure: str = "hits_per_10k_words",
              names: Mapping[str, str] | None = None, ncols: int = 5) -> Figure:
    """One panel per theme: the measure per year, one line per metropolis."""
    t = by_year[by_year["measure"] == measure] if not by_year.empty else by_year
    if t.empty or t["year"].nunique() < 2:
        return _empty("Évolution indisponible (moins de deux années datées)")
    themes = [x for x in THEMES if x in set(t["theme"])]
    nrows = math.ceil(len(themes) / ncols)
    fig = _fig(3.2 * ncols, 2.6 * nrows + 0.8)
    metros = sorted(t["metropole"].unique())
    cmap = matplotlib.colormaps["tab20"]
    for k, theme in enumerate(themes):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        sub = t[t["theme"] == theme]
        for i, m in enumerate(metros):
            s = sub[sub["metropole"] == m].sort_values("year")
            ax.plot(s["year"].astype(int), s["value"], marker=".", lw=1,
                    color=cmap(i % 20), label=_name(m, names))
        ax.set_title(SHORT_THEME[theme], fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.tick_params(labelsize=7)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(metros)),
               fontsize=7)
    fig.suptitle(f"Évolution par année ({MEASURE_LABELS.get(measure, measure)})")
    return fig


def doc_type_heatmap(by_doc_type: pd.DataFrame) -> Figure:
    """Hits per 10,000 words per document type × theme, all metropolises pooled."""
    t = by_doc_type[by_doc_type["measure"] == "n_hits"] if not by_doc_type.empty else \
        by_doc_type
    if t.empty:
        return _empty("Aucun type de document")
    hits = t.pivot_table(index="doc_type", columns="theme", values="value", aggfunc="sum")
    words = t.drop_duplicates(["metropole", "doc_type"]).groupby("doc_type")["n_words"].sum()
    rate = hits.div(words, axis=0) * 1e4
    rate = rate[[x for x in THEMES if x in rate.columns]]
    rate.index = [DOC_TYPE_LABELS.get(i, i) for i in rate.index]
    return heatmap(rate, "Occurrences pour 10 000 mots par type de document (toutes "
                   "métropoles)", MEASURE_LABELS["hits_per_10k_words"], fmt="{:.1f}")


def topics_heatmap(per_metro: pd.DataFrame, topics: pd.DataFrame | None = None,
                   names: Mapping[str, str] | None = None, max_topics: int = 15) -> Figure:
    """Share of each metropolis's chunks per topic (largest topics first, outliers out)."""
    if per_metro.empty or "share" not in per_metro:
        return _empty("Aucun thème latent")
    t = per_metro[per_metro["topic"] != -1]
    top = t.groupby("topic")["n_chunks"].sum().nlargest(max_topics).index
    piv = t[t["topic"].isin(top)].pivot_table(index="metropole", columns="topic",
                                              values="share", aggfunc="first").fillna(0)
    if topics is not None and "label" in topics:
        lab = topics.set_index("topic")["label"].astype(str)
        piv.columns = [f"{c}: {lab.get(c, '')[:25]}" for c in piv.columns]
    return heatmap(piv, "Thèmes latents (BERTopic) : part des segments par métropole",
                   "part", names, fmt="{:.2f}")


def correlations_heatmap(corr: pd.DataFrame, max_rows: int = 40) -> Figure:
    """Spearman rho between indicators (rows) and barometer scores (columns)."""
    if corr.empty:
        return _empty("Aucune corrélation")
    piv = corr.pivot(index="indicator", columns="score", values="rho")
    piv = piv.loc[piv.abs().max(axis=1).sort_values(ascending=False).index[:max_rows]]

    def label(indicator: str) -> str:
        theme, _, measure = indicator.partition("__")
        if not measure:
            return MEASURE_LABELS.get(indicator, indicator)
        return f"{SHORT_THEME.get(theme, theme)} — {MEASURE_LABELS.get(measure, measure)}"

    piv.index = [label(i) for i in piv.index]
    return heatmap(piv, "Corrélations de Spearman\nindicateurs × scores du baromètre", "rho",
                   fmt="{:.2f}", diverging=True, min_width=9)
