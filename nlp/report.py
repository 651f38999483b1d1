"""Stage "report": one self-contained HTML page + PNG plots from the indicator tables.

Inputs (under ``outputs_dir``): ``tables/documents.parquet`` and ``tables/hits.parquet``
(annotate), the tables of :mod:`nlp.indicators` (``indicators``, ``keyness``, ``ranks``,
``maturity_index``, ``sensitivity``, ``subthemes``, ``profiles``, ``clusters``, ``linkage``,
``evidence``, …; computed in memory with default settings when absent), optionally
``tables/topics*.parquet``, ``tables/topic_theme_map.parquet``, ``report/topics/*.html``,
``tables/correlations.parquet`` (barometer join), ``tables/crawl_summary.csv`` and
``run_info.json``.

Outputs: ``outputs_dir/plots/*.png`` and ``outputs_dir/report/index.html``. The page needs no
network: CSS inline, plots embedded as base64 PNG data URIs, no JavaScript. Every text that
comes from crawled documents goes through Jinja2's autoescape, and links are only made for
http(s) URLs.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import jinja2
import pandas as pd

from nlp import plots
from nlp.errors import BarometreError
from nlp.schema import BARRIER_THEMES, THEMES

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).with_name("templates")
KWIC_CONTEXT = 300  # characters kept on each side of the match

SECTIONS = [
    ("apercu", "Aperçu du corpus"), ("carte", "Carte de chaleur"), ("profils", "Profils"),
    ("classement", "Classements"), ("maturite", "Indice de maturité"), ("freins", "Freins"),
    ("specificites", "Spécificités"), ("evolution", "Évolution et types"),
    ("topics", "Thèmes latents"), ("barometre", "Baromètre"), ("preuves", "Preuves"),
    ("execution", "Exécution"),
]


# --------------------------------------------------------------------------- formatting
def fmt(value: Any, digits: int = 1) -> str:
    """French number: decimal comma, thin grouping; '–' for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or \
            value is pd.NA:
        return "–"
    if isinstance(value, (int,)) or (isinstance(value, float) and value.is_integer()
                                     and digits == 0):
        return f"{int(value):,}".replace(",", "\u202f")
    return f"{float(value):,.{digits}f}".replace(",", "\u202f").replace(".", ",")


def fmt_ci(lo: Any, hi: Any, digits: int = 1) -> str:
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return ""
    return f"[{fmt(lo, digits)} ; {fmt(hi, digits)}]"


def anchor(*parts: Any) -> str:
    """An HTML id built from slugs (anything outside [A-Za-z0-9_-] becomes '-')."""
    return "ev-" + "-".join(re.sub(r"[^A-Za-z0-9_-]", "-", str(p)) for p in parts)


def safe_url(url: Any) -> bool:
    """Only http(s) URLs become links (a crawled ``javascript:`` URL must not)."""
    try:
        return isinstance(url, str) and urlsplit(url).scheme in ("http", "https")
    except ValueError:
        return False


def kwic(sentence: Any, start: Any, end: Any) -> tuple[str, str, str]:
    """(left, match, right) of a sentence around [start, end), context capped."""
    s = "" if sentence is None or (isinstance(sentence, float) and math.isnan(sentence)) \
        else str(sentence)
    try:
        a, b = int(start), int(end)
    except (TypeError, ValueError):
        return s[:2 * KWIC_CONTEXT], "", ""
    a, b = max(0, min(a, len(s))), max(0, min(b, len(s)))
    if b < a:
        a, b = b, a
    left, right = s[:a], s[b:]
    if len(left) > KWIC_CONTEXT:
        left = "…" + left[-KWIC_CONTEXT:]
    if len(right) > KWIC_CONTEXT:
        right = right[:KWIC_CONTEXT] + "…"
    return left, s[a:b], right


def figure_to_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _table(header: list[str], rows: list[list[Any]], left: int = 1, note: str = ""
           ) -> dict[str, Any]:
    return {"header": header, "rows": rows, "left": left, "note": note}


# --------------------------------------------------------------------------- loading
def _read(tables: Path, name: str) -> pd.DataFrame | None:
    p = tables / f"{name}.parquet"
    if p.is_file():
        return pd.read_parquet(p)
    c = tables / f"{name}.csv"
    if c.is_file():
        return pd.read_csv(c)
    return None


def load_tables(outputs_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table the report uses; the indicator tables are computed in memory (default
    settings) when ``barometre indicators`` has not written them."""
    tables = Path(outputs_dir) / "tables"
    docs = _read(tables, "documents")
    if docs is None:
        raise BarometreError(f"{tables / 'documents.parquet'} not found: run "
                             "`barometre annotate` (and `barometre indicators`) first")
    out: dict[str, pd.DataFrame] = {"documents": docs}
    names = ["indicators", "keyness", "ranks", "maturity_index", "maturity_components",
             "sensitivity", "subthemes", "profiles", "distances", "clusters", "linkage",
             "evidence"]
    found = {n: _read(tables, n) for n in names}
    if found["indicators"] is None:
        from nlp.indicators import IndicatorSettings, compute_indicators

        hits = _read(tables, "hits")
        if hits is None:
            raise BarometreError(f"{tables / 'hits.parquet'} not found: run "
                                 "`barometre annotate` first")
        log.warning("no indicator tables in %s: computing them with default settings", tables)
        res = compute_indicators(docs, hits, IndicatorSettings())
        found = {"indicators": res.tidy, "keyness": res.keyness, "ranks": res.ranks,
                 "maturity_index": res.maturity,
                 "maturity_components": res.maturity_components,
                 "sensitivity": res.sensitivity, "subthemes": res.subthemes,
                 "profiles": res.profiles, "distances": res.distances,
                 "clusters": res.clusters, "linkage": res.linkage, "evidence": res.evidence}
    out.update({k: (v if v is not None else pd.DataFrame()) for k, v in found.items()})
    for opt in ("topics", "topics_per_metropole", "topic_theme_map", "correlations",
                "joined_scores", "unmatched_scores"):
        df = _read(tables, opt)
        if df is not None:
            out[opt] = df
    crawl = tables / "crawl_summary.csv"
    if crawl.is_file():
        out["crawl_summary"] = pd.read_csv(crawl)
    hits = _read(tables, "hits")
    out["hits_summary"] = pd.DataFrame({
        "n_hits": [len(hits) if hits is not None else 0],
        "n_negated": [int(hits["negated"].fillna(False).astype(bool).sum())
                      if hits is not None and "negated" in hits else 0]})
    settings_json = tables / "indicators_settings.json"
    out["_indicator_settings"] = pd.DataFrame([json.loads(settings_json.read_text(
        encoding="utf-8"))]) if settings_json.is_file() else pd.DataFrame()
    return out


# --------------------------------------------------------------------------- sections
def _cell_tables(tidy: pd.DataFrame, level: str, key: str | None, names: Mapping[str, str],
                 measures: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """HTML tables metropolis × theme (value + interval, link to the evidence panel)."""
    out = []
    t = tidy[tidy["level"] == level]
    if t.empty:
        return out
    groups = [(None, t)] if key is None else list(t.groupby(key, sort=True))
    for kval, g in groups:
        for measure, label, digits in measures:
            m = g[g["measure"] == measure]
            if m.empty:
                continue
            rows = []
            idx = m.set_index(["metropole", "theme"])
            for metro in sorted(m["metropole"].unique()):
                cells = []
                for theme in THEMES:
                    if (metro, theme) not in idx.index:
                        cells.append({"value": "–", "ci": "", "anchor": None})
                        continue
                    r = idx.loc[(metro, theme)]
                    cells.append({"value": fmt(r["value"], digits),
                                  "ci": fmt_ci(r["ci_low"], r["ci_high"], digits),
                                  "anchor": anchor(metro, theme)})
                rows.append({"name": names.get(metro, metro), "cells": cells})
            title = label if kval is None else \
                f"{plots.DOC_TYPE_LABELS.get(kval, kval)} — {label}" if key == "doc_type" \
                else f"{kval} — {label}"
            out.append({"title": title, "header": [plots.SHORT_THEME[t] for t in THEMES],
                        "rows": rows})
    return out


def _rank_text(r: pd.Series) -> dict[str, Any]:
    if pd.isna(r["rank"]):
        return {"text": "–", "cls": "", "ci": ""}
    tied = bool(r.get("tied", False))
    ci = ""
    if pd.notna(r.get("rank_low")):
        ci = f"[{int(r['rank_low'])}–{int(r['rank_high'])}]"
    return {"text": f"{'=' if tied else ''}{int(r['rank'])}", "cls": "tie" if tied else "",
            "ci": ci}


def _ranks_table(ranks: pd.DataFrame, measure: str, names: Mapping[str, str]
                 ) -> dict[str, Any]:
    r = ranks[ranks["measure"] == measure]
    if r.empty:
        return _table([], [])
    idx = r.set_index(["metropole", "theme"])
    rows = []
    for metro in sorted(r["metropole"].unique()):
        row: list[Any] = [names.get(metro, metro)]
        for theme in THEMES:
            row.append(_rank_text(idx.loc[(metro, theme)]) if (metro, theme) in idx.index
                       else "–")
        rows.append(row)
    return _table(["Métropole"] + [plots.SHORT_THEME[t] for t in THEMES], rows)


def _evidence(evidence: pd.DataFrame, tidy: pd.DataFrame, names: Mapping[str, str],
              metros: list[str]) -> list[dict[str, Any]]:
    """Evidence panels: per metropolis, per theme: sampled sentences (positive, negated,
    per year, per doc type)."""
    counts = tidy[(tidy["level"] == "all") & tidy["measure"].isin(["n_hits", "n_negated"])]
    counts = counts.pivot_table(index=["metropole", "theme"], columns="measure",
                                values="value", aggfunc="first") if not counts.empty else None

    def item(r: pd.Series) -> dict[str, Any]:
        left, match, right = kwic(r.get("sentence"), r.get("start"), r.get("end"))
        url = r.get("url")
        return {"left": left, "match": match, "right": right,
                "url": "" if url is None or (isinstance(url, float) and math.isnan(url))
                else str(url), "url_safe": safe_url(url),
                "page": "–" if pd.isna(r.get("page")) else str(r.get("page")),
                "date": "date inconnue" if r.get("date") is None or pd.isna(r.get("date"))
                else str(r.get("date")),
                "title": "" if r.get("title") is None or pd.isna(r.get("title"))
                else str(r.get("title")),
                "doc_type": plots.DOC_TYPE_LABELS.get(r.get("doc_type"),
                                                      str(r.get("doc_type") or "")),
                "term_id": str(r.get("term_id") or ""), "negated": bool(r.get("negated"))}

    out = []
    ev = evidence if not evidence.empty else pd.DataFrame(
        columns=["level", "metropole", "theme", "negated", "year", "doc_type"])
    by_cell = {k: g for k, g in ev.groupby(["metropole", "theme"], sort=False)}
    for metro in metros:
        cells = []
        n_metro = 0
        for theme in THEMES:
            g = by_cell.get((metro, theme))
            n_hits = n_neg = 0
            if counts is not None and (metro, theme) in counts.index:
                n_hits = int(counts.loc[(metro, theme)].get("n_hits", 0) or 0)
                n_neg = int(counts.loc[(metro, theme)].get("n_negated", 0) or 0)
            groups = []
            if g is not None:
                allv = g[g["level"] == "all"]
                pos = allv[~allv["negated"].astype(bool)]
                neg = allv[allv["negated"].astype(bool)]
                if len(pos):
                    groups.append({"title": "Échantillon", "entries": [item(r) for _, r in
                                                                     pos.iterrows()]})
                if len(neg):
                    groups.append({"title": "Occurrences niées (hors indicateurs)",
                                   "entries": [item(r) for _, r in neg.iterrows()]})
                for y, gy in sorted(g[g["level"] == "year"].groupby("year"),
                                    key=lambda kv: kv[0]):
                    groups.append({"title": f"Année {int(y)}",
                                   "entries": [item(r) for _, r in gy.iterrows()]})
                for d, gd in g[g["level"] == "doc_type"].groupby("doc_type"):
                    groups.append({"title": f"Type : {plots.DOC_TYPE_LABELS.get(d, d)}",
                                   "entries": [item(r) for _, r in gd.iterrows()]})
            if not groups:
                groups.append({"title": "Aucune occurrence", "entries": []})
            n_metro += sum(len(x["entries"]) for x in groups)
            cells.append({"anchor": anchor(metro, theme), "theme_label": THEMES[theme],
                          "n_hits": n_hits, "n_negated": n_neg, "groups": groups})
        out.append({"name": names.get(metro, metro), "n": n_metro, "cells": cells})
    return out


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and len(d) > 20:
        rows.append((prefix, f"[{len(d)} éléments] " + json.dumps(d[:20], ensure_ascii=False,
                                                                   default=str)))
    else:
        rows.append((prefix, d if isinstance(d, str) else json.dumps(d, ensure_ascii=False,
                                                                      default=str)))
    return rows


def _run_info_tables(run_info: dict[str, Any]) -> list[dict[str, Any]]:
    """One key/value table per top-level entry of run_info.json (scalars grouped first)."""
    titles = {"corpus": "Instantané du corpus", "corpus_snapshot": "Instantané du corpus",
              "lexicons": "Lexiques (versions)", "lexicon_versions": "Lexiques (versions)",
              "models": "Modèles", "settings": "Paramètres", "indicateurs":
              "Paramètres des indicateurs", "versions": "Versions des logiciels",
              "timings": "Durées par étape (s)", "stages": "Résumés des étapes"}
    order = list(titles)
    scalars = [[k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False,
                                                           default=str)]
               for k, v in run_info.items() if not isinstance(v, (dict, list))]
    out = [{"title": "Général", "table": _table(["Clé", "Valeur"], scalars, left=2)}] \
        if scalars else []
    nested = [k for k, v in run_info.items() if isinstance(v, (dict, list))]
    nested.sort(key=lambda k: order.index(k) if k in order else len(order))
    for key in nested:
        rows = [[k, v] for k, v in _flatten(run_info[key])][:400]
        out.append({"title": titles.get(key, key),
                    "table": _table(["Clé", "Valeur"], rows, left=2)})
    return out


def _df_table(df: pd.DataFrame, max_rows: int = 200, digits: int = 3) -> dict[str, Any]:
    rows = []
    for _, r in df.head(max_rows).iterrows():
        row = []
        for v in r.tolist():
            if isinstance(v, float):
                row.append(fmt(v, digits))
            elif isinstance(v, (list, tuple)) or hasattr(v, "tolist"):
                row.append(", ".join(map(str, list(v)[:10])))
            else:
                row.append("" if v is None else str(v))
        rows.append(row)
    note = f"{len(df) - max_rows} ligne(s) de plus dans le fichier." if len(df) > max_rows \
        else ""
    return _table([str(c) for c in df.columns], rows, left=len(df.columns), note=note)


# --------------------------------------------------------------------------- build
def build_report(outputs_dir: Path, names: dict[str, str] | None = None) -> Path:
    """Build ``outputs_dir/report/index.html`` and ``outputs_dir/plots/*.png`` from the
    tables under ``outputs_dir/tables`` and ``outputs_dir/run_info.json``.

    ``names``: slug → display name (from the registry); the slug is shown otherwise.
    Returns the path of the HTML page.
    """
    outputs_dir = Path(outputs_dir)
    names = dict(names or {})
    t = load_tables(outputs_dir)
    docs, tidy = t["documents"], t["indicators"]
    plots_dir = outputs_dir / "plots"
    report_dir = outputs_dir / "report"
    plots_dir.mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    ind_settings = t["_indicator_settings"]
    st = ind_settings["settings"].iloc[0] if "settings" in ind_settings else {}
    weights = ind_settings["weights"].iloc[0] if "weights" in ind_settings else None
    warnings = list(ind_settings["warnings"].iloc[0]) if "warnings" in ind_settings else []

    figures: dict[str, list[dict[str, str]]] = {}

    def add(group: str, name: str, fig: Any, alt: str) -> None:
        png = figure_to_png(fig)
        path = plots_dir / f"{name}.png"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(png)
        tmp.replace(path)
        figures.setdefault(group, []).append(
            {"alt": alt, "data": base64.b64encode(png).decode("ascii")})

    all_ = tidy[tidy["level"] == "all"] if not tidy.empty else tidy
    metros = sorted(set(docs["metropole"].astype(str)) | set(all_.get("metropole", [])))

    # -- overview
    add("overview", "documents_par_metropole", plots.documents_overview(docs, names),
        "Documents par métropole et type")
    add("overview", "documents_par_annee", plots.documents_per_year(docs),
        "Documents par année")
    add("overview", "statuts_extraction", plots.extraction_statuses(docs),
        "Statuts d'extraction")
    analysed = docs[pd.to_numeric(docs["n_words"], errors="coerce").fillna(0) > 0]
    hits_summary = t["hits_summary"].iloc[0]
    kpis = [
        {"label": "métropoles", "value": fmt(len(metros), 0)},
        {"label": "documents", "value": fmt(len(docs), 0)},
        {"label": "documents analysés (texte extrait)", "value": fmt(len(analysed), 0)},
        {"label": "mots analysés", "value": fmt(int(analysed["n_words"].sum()), 0)},
        {"label": "occurrences (non niées)",
         "value": fmt(int(hits_summary["n_hits"] - hits_summary["n_negated"]), 0)},
        {"label": "occurrences niées", "value": fmt(int(hits_summary["n_negated"]), 0)},
    ]
    corpus_rows = []
    for m in metros:
        d = docs[docs["metropole"] == m]
        a = analysed[analysed["metropole"] == m]
        years = pd.to_numeric(d["year"], errors="coerce").dropna()
        nh = all_[(all_["metropole"] == m) & (all_["measure"] == "n_hits")]["value"].sum() \
            if not all_.empty else 0
        corpus_rows.append([names.get(m, m), fmt(len(d), 0), fmt(len(a), 0),
                            fmt(int(a["n_words"].sum()), 0), fmt(int(nh), 0),
                            f"{int(years.min())}–{int(years.max())}" if len(years) else "–",
                            ", ".join(f"{k} : {v}" for k, v in
                                      d["extraction_status"].value_counts().items())])
    corpus_table = _table(["Métropole", "Documents", "Analysés", "Mots", "Occurrences",
                           "Années", "Statuts d'extraction"], corpus_rows, left=1)
    crawl_table = _df_table(t["crawl_summary"]) if "crawl_summary" in t else None

    # -- heatmap
    rank_measure = st.get("rank_measure", "hits_per_10k_words") if isinstance(st, dict) \
        else "hits_per_10k_words"
    if not all_.empty:
        for measure, fmt_s in (("hits_per_10k_words", "{:.1f}"), ("doc_share", "{:.2f}")):
            piv = all_[all_["measure"] == measure].pivot(index="metropole", columns="theme",
                                                         values="value")
            piv = piv[[x for x in THEMES if x in piv.columns]]
            add("heatmap", f"carte_{measure}", plots.heatmap(
                piv, f"Métropole × thème : {plots.MEASURE_LABELS[measure]}",
                plots.MEASURE_LABELS[measure], names, fmt=fmt_s),
                f"Carte de chaleur : {plots.MEASURE_LABELS[measure]}")
    measures = [("hits_per_10k_words", "occurrences pour 10 000 mots", 1),
                ("doc_share", "part des documents", 2),
                ("sentence_share", "part des phrases", 4)]
    cell_tables = _cell_tables(tidy, "all", None, names, measures)

    # -- profiles
    if not t["profiles"].empty:
        add("profiles", "profils_radar", plots.radar_profiles(t["profiles"], names),
            "Profils thématiques")
    add("profiles", "dendrogramme", plots.dendrogram(t["linkage"], t["clusters"], names),
        "Classification des profils")
    clusters_table = _table([], [])
    if not t["clusters"].empty:
        c = t["clusters"].sort_values(["cluster", "leaf_order"])
        clusters_table = _table(["Groupe", "Métropoles"], [
            [str(k), ", ".join(names.get(m, m) for m in g["metropole"])]
            for k, g in c.groupby("cluster")], left=2)

    # -- rankings
    ranks_table = _ranks_table(t["ranks"], rank_measure, names)
    for theme in THEMES:
        r = t["ranks"]
        r = r[(r["measure"] == rank_measure) & (r["theme"] == theme)] if not r.empty else r
        if r.empty:
            continue
        ci = all_[(all_["measure"] == rank_measure) & (all_["theme"] == theme)][
            ["metropole", "ci_low", "ci_high"]]
        add("rankings", f"classement_{theme}", plots.ranking(
            r.merge(ci, on="metropole", how="left"), "value", f"Classement : {THEMES[theme]}",
            plots.MEASURE_LABELS[rank_measure], names),
            f"Classement : {THEMES[theme]}")

    # -- maturity
    mat = t["maturity_index"]
    maturity_table = _table([], [])
    if not mat.empty:
        add("maturity", "indice_maturite", plots.ranking(
            mat.rename(columns={"maturity_index": "value"}), "value",
            "Indice de maturité textuelle", plots.MEASURE_LABELS["maturity_index"], names),
            "Indice de maturité textuelle")
        rows = []
        for _, r in mat.sort_values("rank").iterrows():
            row = [names.get(r["metropole"], r["metropole"]), _rank_text(r),
                   {"text": fmt(r["maturity_index"], 1), "cls": "",
                    "ci": fmt_ci(r["ci_low"], r["ci_high"], 1)}]
            for b in BARRIER_THEMES:
                col = f"{b}__hits_per_10k_words"
                row.append({"text": fmt(r.get(col), 2), "cls": "",
                            "ci": fmt_ci(r.get(col + "__ci_low"), r.get(col + "__ci_high"), 2)})
            row.append(fmt(r["n_documents"], 0))
            rows.append(row)
        maturity_table = _table(["Métropole", "Rang", "Indice (0–100)",
                                 "Freins internes /10 000 mots", "Freins externes /10 000 mots",
                                 "Documents"], rows)
    if weights:
        wtxt = ", ".join(f"{THEMES.get(k, k)} : {v:g}" for k, v in
                         weights.get("weights", {}).items())
        maturity_note = (
            f"Moyenne pondérée, ramenée à 0–100, des thèmes moteurs ({wtxt}). Mesure : "
            f"{plots.MEASURE_LABELS.get(weights.get('measure'), weights.get('measure'))} ; "
            f"normalisation entre métropoles : {weights.get('normalisation')} "
            "(minmax : (x − min)/(max − min) ; rank : rangs). L'indice est relatif aux "
            "métropoles comparées ; son intervalle bootstrap refait la normalisation à chaque "
            "tirage.")
    else:
        maturity_note = ("Moyenne pondérée, ramenée à 0–100, des thèmes moteurs normalisés "
                         "entre métropoles (poids : nlp/maturity_weights.yaml).")
    sens = t["sensitivity"]
    sensitivity_table = _table([], [])
    if not sens.empty:
        add("maturity", "sensibilite", plots.sensitivity(sens, names),
            "Sensibilité du classement aux poids")
        scen = [s for s in sens["dropped_theme"].unique() if s != "(aucune)"]
        piv = sens.pivot(index="metropole", columns="dropped_theme", values="rank")
        base = piv["(aucune)"] if "(aucune)" in piv else None
        rows = []
        for m in (base.sort_values().index if base is not None else piv.index):
            row: list[Any] = [names.get(m, m),
                              fmt(base.loc[m], 0) if base is not None else "–"]
            for s in scen:
                v = piv.loc[m, s]
                delta = v - base.loc[m] if base is not None else float("nan")
                row.append(f"{fmt(v, 0)} ({'+' if delta > 0 else ''}{fmt(delta, 0)})"
                           if pd.notna(v) else "–")
            rows.append(row)
        max_shift = sens[sens["dropped_theme"] != "(aucune)"]["rank_change"].abs().max()
        sensitivity_table = _table(
            ["Métropole", "Rang de référence"] + [f"sans {plots.SHORT_THEME.get(s, s)}"
                                                  for s in scen], rows,
            note=f"Déplacement maximal : {fmt(max_shift, 0)} rang(s).")

    # -- barriers
    sub = t["subthemes"]
    add("barriers", "freins", plots.barriers(sub, names), "Freins par sous-thème")
    barriers_table = _table([], [])
    if not sub.empty:
        s = sub[(sub["measure"] == "hits_per_10k_words") & sub["theme"].isin(BARRIER_THEMES)]
        if not s.empty:
            cols = sorted(s[["theme", "subtheme"]].drop_duplicates().itertuples(index=False))
            idx = s.set_index(["metropole", "theme", "subtheme"])
            rows = []
            for m in sorted(s["metropole"].unique()):
                row = [names.get(m, m)]
                for th, su in cols:
                    r = idx.loc[(m, th, su)]
                    row.append({"text": fmt(r["value"], 2), "cls": "",
                                "ci": fmt_ci(r["ci_low"], r["ci_high"], 2),
                                "href": "#" + anchor(m, th)})
                rows.append(row)
            barriers_table = _table(["Métropole"] + [f"{plots.SHORT_THEME[a]} : {b}"
                                                     for a, b in cols], rows,
                                    note="Occurrences pour 10 000 mots [intervalle bootstrap].")

    # -- keyness
    key = t["keyness"]
    keyness_table = _table([], [])
    if not key.empty:
        add("keyness", "specificites", plots.keyness_heatmap(key, names), "Spécificités")
        rows = []
        for m, g in key.groupby("metropole"):
            sig = g[g["p_value"] < 0.05]
            over = sig[sig["direction"] == "+"].sort_values("g2", ascending=False)
            under = sig[sig["direction"] == "-"].sort_values("g2", ascending=False)
            rows.append([names.get(m, m),
                         "; ".join(f"{THEMES.get(x, x)} (G² {fmt(v, 1)})"
                                   for x, v in zip(over["theme"], over["g2"])) or "–",
                         "; ".join(f"{THEMES.get(x, x)} (G² {fmt(v, 1)})"
                                   for x, v in zip(under["theme"], under["g2"])) or "–"])
        keyness_table = _table(["Métropole", "Sur-emploi (p < 0,05)",
                                "Sous-emploi (p < 0,05)"], rows, left=3)

    # -- evolution and doc types
    by_year = tidy[tidy["level"] == "year"] if not tidy.empty else tidy
    add("evolution", "evolution_annees", plots.evolution(by_year, "hits_per_10k_words", names),
        "Évolution par année")
    by_dt = tidy[tidy["level"] == "doc_type"] if not tidy.empty else tidy
    if not by_dt.empty:
        add("evolution", "types_documents", plots.doc_type_heatmap(by_dt),
            "Occurrences par type de document")
    doc_type_tables = _cell_tables(tidy, "doc_type", "doc_type", names, measures[:1])
    year_tables = _cell_tables(tidy, "year", "year", names, measures[:1])

    # -- topics
    topics = None
    if "topics" in t and not t["topics"].empty:
        tp = t["topics"]
        cols = [c for c in ("topic", "size", "share", "label", "top_terms", "best_theme",
                            "best_theme_share", "npmi", "representative_sentence")
                if c in tp.columns]
        links = []
        tdir = report_dir / "topics"
        if tdir.is_dir():
            links = [{"href": f"topics/{p.name}", "name": p.stem}
                     for p in sorted(tdir.glob("*.html"))]
        tm = t.get("topic_theme_map")
        theme_map = None
        if tm is not None and not tm.empty:
            theme_map = _df_table(tm, max_rows=100)
        topics = {"table": _df_table(tp[cols], max_rows=60), "theme_map": theme_map,
                  "links": links}
        if "topics_per_metropole" in t:
            add("topics", "themes_latents", plots.topics_heatmap(
                t["topics_per_metropole"], tp, names), "Thèmes latents par métropole")

    # -- barometer join
    join = None
    if "correlations" in t and not t["correlations"].empty:
        corr = t["correlations"]
        add("join", "correlations", plots.correlations_heatmap(corr),
            "Corrélations indicateurs × baromètre")
        lines = []
        if "joined_scores" in t:
            lines.append(f"{len(t['joined_scores'])} métropole(s) appariée(s).")
        if "unmatched_scores" in t and not t["unmatched_scores"].empty:
            lines.append(f"{len(t['unmatched_scores'])} ligne(s) non appariée(s) :")
            lines += [f"  ligne {r.line} : {r.identifiers} → {r.reason}"
                      for r in t["unmatched_scores"].itertuples()]
        c = corr.sort_values("rho", key=lambda s: -s.abs())
        join = {"report": "\n".join(lines) or "Scores joints.",
                "table": _table(["Indicateur", "Score", "n", "rho de Spearman", "p",
                                 "intervalle bootstrap"],
                                [[r.indicator, r.score, fmt(r.n, 0), fmt(r.rho, 2),
                                  fmt(r.p_value, 3), fmt_ci(r.ci_low, r.ci_high, 2)]
                                 for r in c.head(60).itertuples()], left=2)}

    # -- evidence
    evidence = _evidence(t["evidence"], tidy, names, metros)

    # -- run info
    run_info_path = outputs_dir / "run_info.json"
    run_info: dict[str, Any] = {}
    if run_info_path.is_file():
        try:
            run_info = json.loads(run_info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON: not shown", run_info_path)
    if isinstance(st, dict) and st:
        run_info = {**run_info, "indicateurs": {"settings": st, "weights": weights}}
    if not isinstance(run_info, dict):
        run_info = {"run_info": run_info}

    present = {"topics": topics is not None, "barometre": join is not None}
    sections = [{"id": i, "title": title} for i, title in SECTIONS if present.get(i, True)]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=True)
    html = env.get_template("report.html.j2").render(
        title="Baromètre textuel de la maturité numérique des métropoles",
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sections=sections, kpis=kpis, warnings=warnings, figures=_Figures(figures),
        corpus_table=corpus_table, crawl_table=crawl_table,
        confidence=f"{int(round(100 * float(st.get('confidence', 0.95))))} %"
        if isinstance(st, dict) else "95 %",
        draws=st.get("draws", "–") if isinstance(st, dict) else "–",
        cell_tables=cell_tables, clusters_table=clusters_table,
        rank_measure_label=plots.MEASURE_LABELS.get(rank_measure, rank_measure),
        ranks_table=ranks_table, maturity_table=maturity_table, maturity_note=maturity_note,
        sensitivity_table=sensitivity_table, barriers_table=barriers_table,
        keyness_table=keyness_table, doc_type_tables=doc_type_tables,
        year_tables=year_tables, topics=topics,
        join=join,
        evidence_cap=st.get("evidence_per_cell", 5) if isinstance(st, dict) else 5,
        evidence=evidence, run_info_tables=_run_info_tables(run_info),
    )
    out = report_dir / "index.html"
    tmp = out.with_name("index.html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    log.info("report written to %s (%d plots)", out, sum(len(v) for v in figures.values()))
    return out


class _Figures(dict):
    """Figure groups; a group without figures renders as an empty list."""

    def __getattr__(self, key: str) -> list[dict[str, str]]:
        return self.get(key, [])

    def __getitem__(self, key: str) -> list[dict[str, str]]:
        return self.get(key, [])
