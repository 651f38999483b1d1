"""Figures of the report (stage: report), in French, with the decimal comma.

Inputs: small DataFrames prepared by :mod:`nlp.report.sections` — the very data each figure
shows, which the report also writes as the figure's CSV — with display labels already set.
Output: a :class:`matplotlib.figure.Figure`. These functions never write a file (the report
saves and embeds them). Figures use the object API on the Agg canvas (no pyplot state, no
display); every numeric axis and colour bar is formatted with the decimal comma.
"""
from __future__ import annotations

import math
from typing import Callable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from nlp.report.formatting import number

BLUE, LIGHT, GREY = "#2f5d9b", "#8da0cb", "#9a9a9a"


def tick_text(value: float, _pos: object = None) -> str:
    """An axis tick with the decimal comma ("0,25", "1 000")."""
    v = float(value)
    if v.is_integer():
        return number(int(v), 0)
    return f"{v:.4g}".replace(".", ",").replace("-", "−")


COMMA = FuncFormatter(tick_text)
YEAR = FuncFormatter(lambda v, _pos=None: str(int(v)) if float(v).is_integer() else "")


def _fig(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _axes(fig: Figure, *args: int) -> matplotlib.axes.Axes:
    ax = fig.add_subplot(*args)
    ax.xaxis.set_major_formatter(COMMA)  # replaced by labels where an axis is categorical
    ax.yaxis.set_major_formatter(COMMA)
    return ax


def empty(message: str) -> Figure:
    """A small figure that says why there is nothing to draw."""
    fig = _fig(6, 1.2)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def stacked_bars(matrix: pd.DataFrame, title: str, xlabel: str, legend: str) -> Figure:
    """Horizontal stacked bars: one bar per row of ``matrix``, one segment per column."""
    if matrix.empty:
        return empty("Aucune donnée")
    fig = _fig(8, max(2.5, 0.32 * len(matrix) + 1.3))
    ax = _axes(fig)
    left = np.zeros(len(matrix))
    cmap = matplotlib.colormaps["tab10"]
    y = np.arange(len(matrix))
    for i, col in enumerate(matrix.columns):
        vals = matrix[col].to_numpy(float)
        ax.barh(y, vals, left=left, label=str(col), color=cmap(i % 10))
        left += np.nan_to_num(vals)
    ax.set_yticks(y, [str(i) for i in matrix.index])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title=legend)
    return fig


def bars(values: pd.Series, title: str, label: str, horizontal: bool = False,
         colors: list[str] | None = None) -> Figure:
    """One bar per entry of ``values`` (index = display labels)."""
    if values.empty:
        return empty("Aucune donnée")
    pos, names = np.arange(len(values)), [str(i) for i in values.index]
    if horizontal:
        fig = _fig(8, max(2, 0.3 * len(values) + 1))
        ax = _axes(fig)
        ax.barh(pos, values.to_numpy(float), color=colors or BLUE)
        ax.set_yticks(pos, names)
        ax.invert_yaxis()
        ax.set_xlabel(label)
    else:
        fig = _fig(8, 3)
        ax = _axes(fig)
        ax.bar(pos, values.to_numpy(float), color=colors or BLUE)
        ax.set_xticks(pos, names, rotation=45)
        ax.set_ylabel(label)
    ax.set_title(title)
    return fig


def heatmap(matrix: pd.DataFrame, title: str, colorbar: str, cell_text: Callable[[float], str],
            diverging: bool = False, marks: pd.DataFrame | None = None,
            greyed: pd.DataFrame | None = None, min_width: float = 7) -> Figure:
    """A labelled matrix (index and columns are display labels). ``marks``: True where '*' is
    added to the value; ``greyed``: True where the cell is drawn grey (small cells)."""
    if matrix.empty:
        return empty("Aucune donnée")
    data = matrix.to_numpy(dtype=float)
    label_in = 0.075 * max((len(str(i)) for i in matrix.index), default=0)  # room for the row labels
    fig = _fig(max(min_width, 0.95 * matrix.shape[1] + 3.5 + label_in), max(2.5, 0.4 * matrix.shape[0] + 2))
    ax = fig.add_subplot()
    finite = data[np.isfinite(data)]
    if diverging:
        lim = max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-9)
        im = ax.imshow(data, aspect="auto", cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=0, vmin=-lim, vmax=lim))
    else:
        im = ax.imshow(data, aspect="auto", cmap="YlGnBu")
    if greyed is not None:
        grey = np.ma.masked_where(~greyed.to_numpy(bool), np.ones_like(data))
        ax.imshow(grey, aspect="auto", cmap=matplotlib.colors.ListedColormap(["#d9d9d9"]), vmin=0, vmax=1)
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=40, ha="right")
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index])
    if matrix.size <= 600:
        _annotate(ax, data, finite, cell_text, diverging, marks, greyed)
    cb = fig.colorbar(im, ax=ax, label=colorbar, shrink=0.8)
    cb.ax.yaxis.set_major_formatter(COMMA)
    ax.set_title(title)
    return fig


def _annotate(ax: matplotlib.axes.Axes, data: np.ndarray, finite: np.ndarray, cell_text: Callable[[float], str],
              diverging: bool, marks: pd.DataFrame | None, greyed: pd.DataFrame | None) -> None:
    hi = float(np.nanmax(np.abs(finite))) if finite.size else 0.0
    lo = float(np.nanmin(finite)) if finite.size else 0.0
    top = float(np.nanmax(finite)) if finite.size else 0.0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            if not np.isfinite(v):
                continue
            mark = "*" if marks is not None and bool(marks.iat[i, j]) else ""
            small = greyed is not None and bool(greyed.iat[i, j])
            dark = (abs(v) > 0.6 * hi) if diverging else (v > lo + 0.6 * (top - lo))
            ax.text(j, i, cell_text(v) + mark, ha="center", va="center", fontsize=7,
                    color="#555555" if small else ("white" if dark else "black"))


def forest(data: pd.DataFrame, title: str, xlabel: str) -> Figure:
    """Values with their intervals, one row per item, top to bottom in the order given.
    Columns: ``label``, ``value``, ``ci_low``, ``ci_high``, ``muted`` (drawn grey and hollow:
    small or unranked cells)."""
    t = data[data["value"].notna()]
    if t.empty:
        return empty("Aucune donnée")
    fig = _fig(8, max(2.5, 0.34 * len(t) + 1.3))
    ax = _axes(fig)
    y = np.arange(len(t))[::-1]
    for yi, (_, r) in zip(y, t.iterrows()):
        muted = bool(r.get("muted", False))
        lo = max(0.0, r["value"] - r["ci_low"]) if pd.notna(r["ci_low"]) else 0.0
        hi = max(0.0, r["ci_high"] - r["value"]) if pd.notna(r["ci_high"]) else 0.0
        ax.errorbar([r["value"]], [yi], xerr=[[lo], [hi]], fmt="o", capsize=3,
                    color=GREY if muted else BLUE, ecolor=GREY if muted else LIGHT,
                    mfc="white" if muted else BLUE)
    ax.set_yticks(y, list(t["label"]), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def interval_panels(data: pd.DataFrame, title: str, ylabel: str, categorical: bool, ncols: int = 5) -> Figure:
    """One panel per ``panel`` (theme); in each, one series per ``series`` (metropolis) over
    ``x`` (year, or a category), the value with its interval as error bars; ``small`` points
    are hollow (small cells)."""
    if data.empty or data["value"].notna().sum() == 0:
        return empty("Aucune donnée")
    panels = list(dict.fromkeys(data["panel"]))
    series = list(dict.fromkeys(data["series"]))
    xs = list(dict.fromkeys(sorted(data["x"]))) if not categorical else list(dict.fromkeys(data["x"]))
    pos = {x: i for i, x in enumerate(xs)} if categorical else {x: float(x) for x in xs}
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _fig(3.3 * ncols, 2.7 * nrows + 0.9)
    cmap = matplotlib.colormaps["tab10" if len(series) <= 10 else "tab20"]
    width = 0.6 / max(1, len(series))
    for k, panel in enumerate(panels):
        ax = _axes(fig, nrows, ncols, k + 1)
        sub = data[data["panel"] == panel]
        for i, s in enumerate(series):
            _series(ax, sub[sub["series"] == s], pos, (i - (len(series) - 1) / 2) * width, cmap(i % cmap.N), s,
                    line=not categorical)
        ax.set_title(str(panel), fontsize=9)
        if categorical:
            ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=90, fontsize=7)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
            ax.xaxis.set_major_formatter(YEAR)
        ax.tick_params(labelsize=7)
    legend: dict[str, object] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=min(6, len(series)), fontsize=7)
    fig.suptitle(f"{title}\n({ylabel} ; barres : intervalle ; points creux : petites cellules)", fontsize=10)
    return fig


def _series(ax: matplotlib.axes.Axes, s: pd.DataFrame, pos: dict, offset: float, color: object, label: str,
            line: bool) -> None:
    s = s[s["value"].notna()]
    if s.empty:
        return
    x = np.array([pos[v] for v in s["x"]], dtype=float) + offset
    order = np.argsort(x)
    x, s = x[order], s.iloc[order]
    v = s["value"].to_numpy(float)
    lo = np.clip(v - s["ci_low"].to_numpy(float), 0, None)
    hi = np.clip(s["ci_high"].to_numpy(float) - v, 0, None)
    err = np.nan_to_num(np.vstack([lo, hi]))
    if line:
        ax.plot(x, v, lw=0.8, color=color, alpha=0.6)
    small = s["small"].to_numpy(bool)
    for mask, face in ((~small, color), (small, "white")):
        if mask.any():
            ax.errorbar(x[mask], v[mask], yerr=err[:, mask], fmt="o", ms=4, capsize=2, lw=0.8,
                        color=color, mfc=face, label=label)
            label = None  # one legend entry per series


def radar(profiles: pd.DataFrame, title: str, ncols: int = 4) -> Figure:
    """One radar per row (index = display names, columns = theme labels, values 0–1)."""
    prof = profiles.dropna(how="all")
    if prof.empty or prof.shape[1] < 3:
        return empty("Aucun profil")
    n = len(prof)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = _fig(3.2 * ncols, 3.2 * nrows + 0.4)
    angles = np.linspace(0, 2 * np.pi, prof.shape[1], endpoint=False)
    closed = np.concatenate([angles, angles[:1]])
    vmax = float(np.nanmax(prof.to_numpy(float))) or 1.0
    for k, (label, row) in enumerate(prof.iterrows()):
        ax = fig.add_subplot(nrows, ncols, k + 1, projection="polar")
        vals = np.nan_to_num(row.to_numpy(float))
        vals = np.concatenate([vals, vals[:1]])
        ax.plot(closed, vals, color=BLUE)
        ax.fill(closed, vals, color=BLUE, alpha=0.25)
        ax.set_xticks(angles, [str(c) for c in prof.columns], fontsize=6)
        ax.set_ylim(0, vmax)
        ax.set_yticklabels([])
        ax.set_title(str(label), fontsize=9)
    fig.suptitle(title)
    return fig


def dendrogram(linkage: np.ndarray, labels: list[str], title: str) -> Figure:
    """Dendrogram of a scipy linkage matrix, leaves labelled."""
    from scipy.cluster import hierarchy

    if len(labels) < 2 or linkage.size == 0:
        return empty("Classification impossible (moins de deux profils)")
    fig = _fig(8, max(2.5, 0.32 * len(labels) + 1.2))
    ax = _axes(fig)
    hierarchy.dendrogram(linkage, labels=labels, orientation="left", ax=ax, color_threshold=None)
    ax.xaxis.set_major_formatter(COMMA)
    ax.set_xlabel("distance de Jensen–Shannon (lien moyen)")
    ax.set_title(title)
    return fig
