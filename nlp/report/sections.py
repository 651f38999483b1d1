"""The report's sections on the indicators, one function each (stage: report).

Each function takes the :class:`~nlp.report.artifacts.Context` (inputs, output, provenance,
names) and returns what the template shows for its section: tables (rows of cells) and
figures, each with its CSV links. Inputs are the indicators' persisted tables only
(``indicators``, ``ranks``, ``rank_probabilities``, ``maturity_*``, ``sensitivity``,
``barriers``, ``subthemes``, ``keyness``, ``profiles``, ``distances``, ``clusters``,
``linkage``). The primary measure is ``paragraph_share`` (a percentage of the analysed
paragraphs); the others appear under their data-dictionary ids where they help.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Normalize, to_hex

from nlp.report import plots
from nlp.report.artifacts import Context
from nlp.report.formatting import (NORMALISATION_LABELS, SUBTHEME_LABELS, doc_type_label, evidence_anchor, interval,
                                   measure_interval, measure_label, measure_value, number, percent, pvalue, rank,
                                   rank_interval, reason_label, short_theme, theme_label)
from nlp.schema import BARRIER_THEMES, DRIVER_THEMES, SUBTHEMES, THEMES

PRIMARY = "paragraph_share"
SECONDARY = ("document_share", "hits_per_10k_words", "paragraph_share_adjusted", "paragraph_share_corrected")


def cells(ctx: Context, level: str = "all", measure: str = PRIMARY) -> pd.DataFrame:
    """Rows of the ``indicators`` table for one level and measure."""
    t = ctx.inputs["indicators"]
    return t[(t["level"] == level) & (t["measure"] == measure)]


def value_cell(measure: str, r: Any, href: str | None = None, style: str = "") -> dict[str, Any]:
    """A table cell: the value, its interval, greyed when the cell is small."""
    small = bool(r.get("small_cell", False))
    n = r.get("n_documents")
    return {"text": measure_value(measure, r["value"]), "ci": measure_interval(measure, r["ci_low"], r["ci_high"]),
            "href": href, "cls": "small" if small else "", "style": "" if small else style,
            "title": f"{number(n, 0)} document(s) analysé(s)" + (" : petite cellule, à lire avec prudence"
                                                                  if small else "")}


def _colour(norm: Normalize, v: float) -> str:
    if not np.isfinite(v):
        return ""
    rgba = colormaps["YlGnBu"](norm(v) * 0.85)
    light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return f"background:{to_hex(rgba)};color:{'#000' if light > 0.55 else '#fff'}"


def grid_rows(ctx: Context, idx: pd.DataFrame | None, columns: list[Any],
              cell: Callable[[str, Any, Any], Any]) -> list[list[Any]]:
    """Rows of a metropolis × column table: the metropolis's name, then ``cell(m, column, r)``
    for each column whose row ``r = idx.loc[(m, *column)]`` exists, "–" where it does not.
    ``idx``: the table indexed by (metropole, *column); a column is a key or a tuple of keys."""
    rows = []
    for m in ctx.metropoles:
        row: list[Any] = [ctx.name(m)]
        for c in columns:
            key = (m, *c) if isinstance(c, tuple) else (m, c)
            row.append(cell(m, c, idx.loc[key]) if idx is not None and key in idx.index else "–")
        rows.append(row)
    return rows


def heatmap(ctx: Context) -> dict[str, Any]:
    """Metropolis × theme as a coloured HTML table linking each cell to its evidence panel;
    the primary measure first, the secondary measures below."""
    tables = []
    for measure in (PRIMARY, *SECONDARY):
        t = cells(ctx, "all", measure)
        if t.empty or t["value"].notna().sum() == 0:
            continue
        big = t.loc[~t["small_cell"].astype(bool), "value"].to_numpy(float)
        finite = big[np.isfinite(big)]
        norm = Normalize(0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
        rows = grid_rows(ctx, t.set_index(["metropole", "theme"]), list(THEMES), lambda m, th, r: value_cell(
            measure, r, "#" + evidence_anchor(m, th), _colour(norm, float(r["value"]))))
        data = t.assign(evidence_anchor=[evidence_anchor(m, th) for m, th in zip(t["metropole"], t["theme"])])
        tables.append(ctx.table(f"carte_{measure}", ["Métropole"] + [short_theme(x) for x in THEMES], rows, data,
                                ["indicators"], title=f"{measure_label(measure).capitalize()} ({measure})",
                                corrected=measure == "paragraph_share_corrected"))
    return {"tables": tables, "min_documents": ctx.settings.get("min_documents", "–")}


def profiles(ctx: Context) -> dict[str, Any]:
    """Thematic profiles (radar), their Jensen–Shannon distances and the clustering."""
    prof = ctx.inputs["profiles"]
    themes = [t for t in THEMES if t in prof.columns]
    radar = prof.set_index("metropole")[themes]
    radar.index = [ctx.name(m) for m in radar.index]
    radar.columns = [short_theme(t) for t in themes]
    figures = [ctx.figure("profils_radar", lambda: plots.radar(radar, "Profils thématiques (parts des paragraphes "
                                                               "ramenées à une somme de 1)"),
                          prof, "Profils thématiques", False, ["profiles"])]
    link, clus = ctx.inputs["linkage"], ctx.inputs["clusters"]
    labels = [ctx.name(m) for m in clus.sort_values("linkage_index")["metropole"]] if len(clus) else []
    figures.append(ctx.figure("dendrogramme", lambda: plots.dendrogram(
        link[["left", "right", "distance", "size"]].to_numpy(float) if len(link) else np.zeros((0, 4)), labels,
        "Classification des profils"), clus, "Classification des profils", False, ["clusters", "linkage"]))
    rows = [[f"Groupe {number(k, 0)}", ", ".join(ctx.name(m) for m in g.sort_values("leaf_order")["metropole"])]
            for k, g in clus.groupby("cluster")] if len(clus) else []
    dist = ctx.inputs["distances"]
    metros = sorted(set(dist["metropole_a"]) | set(dist["metropole_b"])) if len(dist) else []
    d = {(a, b): v for a, b, v in zip(dist["metropole_a"], dist["metropole_b"], dist["js_distance"])}
    drows = [[ctx.name(a)] + [number(d.get((a, b), d.get((b, a), 0.0 if a == b else np.nan)), 2) for b in metros]
             for a in metros]
    return {"figures": figures, "tables": [
        ctx.table("groupes", ["Groupe", "Métropoles"], rows, clus, ["clusters"], left=2, provenance=False),
        ctx.table("distances", ["Métropole"] + [ctx.name(m) for m in metros], drows, dist, ["distances"],
                  note="Distance de Jensen–Shannon (base 2) : 0 = profils identiques, 1 = disjoints.")]}


def _rank_cell(r: Any) -> dict[str, Any]:
    if not bool(r.get("ranked", True)) or pd.isna(r.get("rank")):
        why = reason_label(r.get("reason")) or "valeur manquante"
        return {"text": f"non classé : {why}", "cls": "small", "title": why}
    tied = bool(r.get("tied", False))
    first = r.get("p_first")
    ci = rank_interval(r.get("rank_low"), r.get("rank_high"))
    if pd.notna(first):
        ci = f"{ci} · P(1er) {percent(first, 0)}".strip(" ·")
    return {"text": ("=" if tied else "") + rank(r["rank"]), "ci": ci, "cls": "tie" if tied else "",
            "title": "ex aequo : l'intervalle du rang chevauche celui d'un voisin" if tied else ""}


def _rank_label(ctx: Context, r: Any) -> str:
    if not bool(r.get("ranked", True)) or pd.isna(r.get("rank")):
        return f"non classé  {ctx.name(r['metropole'])}"
    tie = "=" if bool(r.get("tied", False)) else ""
    span = rank_interval(r.get("rank_low"), r.get("rank_high"))
    return f"{tie}{rank(r['rank'])} {span}  {ctx.name(r['metropole'])}"


def rankings(ctx: Context) -> dict[str, Any]:
    """Ranks of the primary measure with mid-ranks, ties, unranked cells and P(first)."""
    ranks = ctx.inputs["ranks"]
    r = ranks[ranks["measure"] == PRIMARY]
    rows = grid_rows(ctx, r.set_index(["metropole", "theme"]), list(THEMES), lambda m, th, row: _rank_cell(row))
    table = ctx.table("classements", ["Métropole"] + [short_theme(t) for t in THEMES], rows, r,
                      ["ranks", "rank_probabilities"])
    figures = []
    values = cells(ctx)
    for th in THEMES:
        ci = values.loc[values["theme"] == th, ["metropole", "ci_low", "ci_high", "small_cell"]]
        rt = r[r["theme"] == th].merge(ci, on="metropole", how="left")
        if rt.empty:
            continue
        rt = rt.assign(_o=rt["rank"].fillna(1e9)).sort_values(["_o", "metropole"])
        data = pd.DataFrame({"label": [_rank_label(ctx, x) for _, x in rt.iterrows()],
                             "value": 100 * rt["value"], "ci_low": 100 * rt["ci_low"], "ci_high": 100 * rt["ci_high"],
                             "muted": ~rt["ranked"].astype(bool)})
        figures.append(ctx.figure(f"classement_{th}", lambda: plots.forest(
            data, f"Classement : {theme_label(th)}", "part des paragraphes (%)"),
            rt.drop(columns="_o"), f"Classement : {theme_label(th)}", False, ["ranks"]))
    return {"table": table, "figures": figures}


def _scenario_label(name: str) -> str:
    kind, _, what = name.partition("=")
    if kind == "baseline":
        return "référence"
    if kind == "measure":
        return f"mesure : {measure_label(what)} ({what})"
    if kind == "normalisation":
        return f"normalisation : {NORMALISATION_LABELS.get(what, what)}"
    if kind == "without":
        return f"sans {theme_label(what)}"
    return name


def maturity(ctx: Context) -> dict[str, Any]:
    """The index with its interval, normalisation, components, rank probabilities, the
    barriers beside it, and the full sensitivity table."""
    mi = ctx.inputs["maturity_index"].copy()
    mi = mi.assign(_o=mi["rank"].fillna(1e9)).sort_values(["_o", "metropole"]).drop(columns="_o")
    probs = ctx.inputs["maturity_rank_probabilities"]
    k_max = int(probs["rank"].max()) if len(probs) else 0
    p = probs.pivot_table(index="metropole", columns="rank", values="probability", aggfunc="first") if len(probs) \
        else pd.DataFrame()
    bar = ctx.inputs["barriers"]
    bar = bar[bar["measure"] == PRIMARY].set_index(["metropole", "theme"]) if len(bar) else bar
    rows = []
    for _, r in mi.iterrows():
        m = r["metropole"]
        index = {"text": number(r["maturity_index"], 1), "ci": interval(r["ci_low"], r["ci_high"])}
        row: list[Any] = [ctx.name(m), index, _rank_cell(r)]
        row += [percent(p.loc[m, k], 0) if m in p.index and k in p.columns else "–" for k in range(1, k_max + 1)]
        row += [value_cell(PRIMARY, bar.loc[(m, b)], "#" + evidence_anchor(m, b)) if (m, b) in bar.index else "–"
                for b in BARRIER_THEMES]
        rows.append(row)
    header = (["Métropole", "Indice (0–100)", "Rang"] + [f"P(rang {k})" for k in range(1, k_max + 1)]
              + [short_theme(b) for b in BARRIER_THEMES])
    tables = [ctx.table("indice_maturite", header, rows, mi, ["maturity_index", "maturity_rank_probabilities",
                                                                "barriers"],
                        corrected=ctx.maturity.get("measure") == "paragraph_share_corrected")]
    tables.append(_config_table(ctx))
    tables.append(_components_table(ctx))
    tables.append(_sensitivity_table(ctx))
    return {"tables": tables, "figures": _maturity_figures(ctx, mi, p), "config": _config_text(ctx)}


def _config_text(ctx: Context) -> str:
    cfg = ctx.maturity
    norm = cfg.get("normalisation", "reference")
    meas = cfg.get("measure", PRIMARY)
    text = (f"Moyenne pondérée (0–100) des thèmes moteurs, mesure « {measure_label(meas)} » ({meas}), "
            f"normalisation : {NORMALISATION_LABELS.get(norm, norm)}.")
    if norm == "reference":
        text += (" Chaque part x devient x / (x + r), r étant une part de référence fixe tirée de la "
                 "configuration (0,5 à la référence, 0 sans le thème) : l'indice d'une métropole ne dépend pas "
                 "des autres métropoles comparées.")
    return text + " Les freins sont présentés à côté de l'indice, jamais soustraits."


def _config_table(ctx: Context) -> dict[str, Any]:
    cfg = ctx.maturity
    weights, ref = cfg.get("weights", {}), cfg.get("reference", {})
    total = sum(float(w) for w in weights.values()) or 1.0
    data = pd.DataFrame([{"theme": t, "weight": weights.get(t), "relative_weight": float(weights.get(t, 0)) / total,
                          "reference_share": ref.get(t)} for t in DRIVER_THEMES if t in weights or t in ref])
    rows = [[theme_label(r.theme), number(r.weight, 2), percent(r.relative_weight), percent(r.reference_share)]
            for r in data.itertuples()]
    header = ["Thème moteur", "Poids", "Poids relatif", "Part de référence r"]
    return ctx.table("indice_configuration", header, rows, data, note=f"Configuration : {cfg.get('source', '')}",
                     provenance=False, title="Normalisation et poids")


def _components_table(ctx: Context) -> dict[str, Any]:
    comp = ctx.inputs["maturity_components"]
    drivers = [t for t in DRIVER_THEMES if t in set(comp["theme"])]
    measure = ctx.maturity.get("measure", PRIMARY)
    rows = grid_rows(ctx, comp.set_index(["metropole", "theme"]), drivers, lambda m, t, r: {
        "text": number(r["contribution"], 1),
        "ci": f"{measure_value(measure, r['value'])} → {number(r['normalised'], 2)}"})
    return ctx.table("indice_composantes", ["Métropole"] + [short_theme(t) for t in drivers], rows, comp,
                     ["maturity_components"], title="Composantes",
                     note="Contribution en points à l'indice (elles s'additionnent) ; dessous : valeur de la mesure "
                          "→ valeur normalisée (0–1).")


def _sensitivity_table(ctx: Context) -> dict[str, Any]:
    sens = ctx.inputs["sensitivity"]
    metros = [m for m in ctx.metropoles if m in set(sens["metropole"])]
    rows = []
    for name, g in sens.groupby("scenario", sort=False):
        gi = g.set_index("metropole")
        row: list[Any] = [_scenario_label(str(name))]
        for m in metros:
            r = gi.loc[m]
            change = r["rank_change"]
            ci = "" if pd.isna(change) or change == 0 else f"({'+' if change > 0 else ''}{rank(change)})"
            row.append({"text": rank(r["rank"]), "ci": ci, "title": f"indice {number(r['maturity_index'], 1)}"})
        row.append(number(g["spearman_with_baseline"].iloc[0], 2))
        rows.append(row)
    header = ["Scénario"] + [ctx.name(m) for m in metros] + ["ρ de Spearman avec la référence"]
    return ctx.table("sensibilite", header, rows, sens, ["sensitivity"], title="Sensibilité du classement",
                     note="Rang de chaque métropole sous chaque variante : autre mesure, autre normalisation, "
                          "chaque poids retiré tour à tour (les autres renormalisés) ; entre parenthèses, le "
                          "déplacement par rapport à la référence (négatif = monte).")


def _maturity_figures(ctx: Context, mi: pd.DataFrame, probs: pd.DataFrame) -> list[dict[str, Any]]:
    corrected = ctx.maturity.get("measure") == "paragraph_share_corrected"
    data = pd.DataFrame({"label": [_rank_label(ctx, r) for _, r in mi.iterrows()], "value": mi["maturity_index"],
                         "ci_low": mi["ci_low"], "ci_high": mi["ci_high"], "muted": ~mi["ranked"].astype(bool)})
    figs = [ctx.figure("indice_maturite", lambda: plots.forest(data, "Indice de maturité textuelle", "indice (0–100)"),
                       mi, "Indice de maturité textuelle", corrected, ["maturity_index"])]
    comp = ctx.inputs["maturity_components"]
    if len(comp):
        piv = comp.pivot_table(index="metropole", columns="theme", values="contribution", aggfunc="first")
        piv = piv.reindex(index=[m for m in mi["metropole"] if m in piv.index],
                          columns=[t for t in DRIVER_THEMES if t in piv.columns])
        piv.index, piv.columns = [ctx.name(m) for m in piv.index], [short_theme(t) for t in piv.columns]
        figs.append(ctx.figure("indice_composantes", lambda: plots.stacked_bars(
            piv, "Composantes de l'indice (points)", "points", "thème moteur"), comp,
            "Composantes de l'indice", corrected, ["maturity_components"]))
    if len(probs):
        pm = probs.reindex(index=[m for m in mi["metropole"] if m in probs.index])
        pm.index, pm.columns = [ctx.name(m) for m in pm.index], [f"rang {int(k)}" for k in pm.columns]
        figs.append(ctx.figure("indice_probabilites_rang", lambda: plots.heatmap(
            100 * pm, "Probabilité de chaque rang (tirages bootstrap)", "%", lambda v: number(v, 0)),
            probs.reset_index(), "Probabilités des rangs", corrected, ["maturity_rank_probabilities"]))
    sens = ctx.inputs["sensitivity"]
    if len(sens):
        piv = sens.pivot_table(index="scenario", columns="metropole", values="rank", aggfunc="first")
        piv = piv.reindex(index=list(dict.fromkeys(sens["scenario"])),
                          columns=[m for m in mi["metropole"] if m in piv.columns])
        piv.index, piv.columns = [_scenario_label(s) for s in piv.index], [ctx.name(m) for m in piv.columns]
        figs.append(ctx.figure("sensibilite", lambda: plots.heatmap(piv, "Rang de l'indice selon la variante", "rang", rank),
                               sens, "Sensibilité du classement", corrected, ["sensitivity"]))
    return figs


def barriers(ctx: Context) -> dict[str, Any]:
    """Barrier themes and sub-themes (primary measure), with intervals and small cells."""
    sub = ctx.inputs["subthemes"]
    sub = sub[sub["measure"] == PRIMARY] if len(sub) else sub
    cols = [(t, s) for t, subs in SUBTHEMES.items() for s in subs]
    idx = sub.set_index(["metropole", "theme", "subtheme"]) if len(sub) else None
    rows = grid_rows(ctx, idx, cols, lambda m, ts, r: value_cell(PRIMARY, r, "#" + evidence_anchor(m, ts[0])))
    header = ["Métropole"] + [f"{short_theme(t)} : {SUBTHEME_LABELS.get(s, s)}" for t, s in cols]
    table = ctx.table("freins_sous_themes", header, rows, sub, ["subthemes", "barriers"],
                      title="Sous-thèmes des freins (part des paragraphes)")
    figures = []
    if len(sub):
        sub = sub.assign(col=[f"{short_theme(t)} : {SUBTHEME_LABELS.get(s, s)}"
                              for t, s in zip(sub["theme"], sub["subtheme"])])
        piv = sub.pivot_table(index="metropole", columns="col", values="value", aggfunc="first")
        small = sub.pivot_table(index="metropole", columns="col", values="small_cell", aggfunc="first")
        order = [c for c in header[1:] if c in piv.columns]
        piv, small = piv.reindex(columns=order), small.reindex(columns=order).fillna(False).astype(bool)
        piv.index = small.index = [ctx.name(m) for m in piv.index]
        figures.append(ctx.figure("freins", lambda: plots.heatmap(
            100 * piv, "Freins par sous-thème (part des paragraphes, % ; gris : petites cellules)", "%",
            lambda v: number(v, 1), greyed=small), sub.drop(columns="col"), "Freins par sous-thème", False,
            ["subthemes"]))
    return {"table": table, "figures": figures}


def keyness(ctx: Context) -> dict[str, Any]:
    """Document-level log ratio with interval and BH q-value; significant cells marked."""
    key = ctx.inputs["keyness"]
    def keyness_cell(m: str, th: str, r: Any) -> dict[str, Any]:
        sig = bool(r["significant"])
        return {"text": number(r["log2_ratio"], 2) + (" *" if sig else ""),
                "ci": f"{interval(r['ci_low'], r['ci_high'], 2)} q {pvalue(r['q_value'])}".strip(),
                "cls": ("small " if bool(r["small_cell"]) else "") + ("sig" if sig else ""),
                "href": "#" + evidence_anchor(m, th)}

    rows = grid_rows(ctx, key.set_index(["metropole", "theme"]), list(THEMES), keyness_cell)
    table = ctx.table("specificites", ["Métropole"] + [short_theme(t) for t in THEMES], rows, key, ["keyness"])
    piv = key.pivot_table(index="metropole", columns="theme", values="log2_ratio", aggfunc="first")
    order = [t for t in THEMES if t in piv.columns]
    sig = key.pivot_table(index="metropole", columns="theme", values="significant", aggfunc="first")
    small = key.pivot_table(index="metropole", columns="theme", values="small_cell", aggfunc="first")
    piv = piv.reindex(columns=order)
    sig, small = (x.reindex(columns=order).fillna(False).astype(bool) for x in (sig, small))
    for x in (piv, sig, small):
        x.index, x.columns = [ctx.name(m) for m in x.index], [short_theme(t) for t in x.columns]
    fig = ctx.figure("specificites", lambda: plots.heatmap(
        piv, "Spécificités : log2 du rapport des parts de paragraphes (* q < 0,05)", "log2 du rapport",
        lambda v: number(v, 1), diverging=True, marks=sig, greyed=small),
        key, "Spécificités", False, ["keyness"])
    return {"table": table, "figures": [fig]}


def _by_level(ctx: Context, level: str, key: str) -> pd.DataFrame:
    t = cells(ctx, level)
    return t[t[key].notna()] if len(t) else t


def evolution(ctx: Context) -> dict[str, Any]:
    """By year and by document type: the primary measure with intervals; small cells marked."""
    out: dict[str, Any] = {"figures": [], "tables": []}
    for level, key, title, categorical in (("year", "year", "Évolution par année", False),
                                           ("doc_type", "doc_type", "Par type de document", True)):
        t = _by_level(ctx, level, key)
        if t.empty:
            continue
        xs = t[key].astype(int) if not categorical else t[key].map(doc_type_label)
        data = pd.DataFrame({"panel": t["theme"].map(short_theme), "series": t["metropole"].map(ctx.name),
                             "x": xs, "value": 100 * t["value"], "ci_low": 100 * t["ci_low"],
                             "ci_high": 100 * t["ci_high"], "small": t["small_cell"].astype(bool)})
        out["figures"].append(ctx.figure(f"evolution_{level}", lambda: plots.interval_panels(
            data, title, "part des paragraphes, %", categorical), t, title, False, ["indicators"]))
        out["tables"].append(_level_table(ctx, t, key, title, categorical))
    return out


def _level_table(ctx: Context, t: pd.DataFrame, key: str, title: str, categorical: bool) -> dict[str, Any]:
    idx = t.set_index(["metropole", key, "theme"])
    rows = []
    for m in ctx.metropoles:
        for k in sorted(set(t.loc[t["metropole"] == m, key])):
            label = doc_type_label(k) if categorical else str(int(k))
            rows.append([f"{ctx.name(m)} — {label}"] + [
                value_cell(PRIMARY, idx.loc[(m, k, th)]) if (m, k, th) in idx.index else "–" for th in THEMES])
    return ctx.table(f"evolution_{key}", ["Métropole — " + ("type" if categorical else "année")]
                     + [short_theme(x) for x in THEMES], rows, t, ["indicators"], title=title)
