"""The report's sections around the indicators, one function each (stage: report): corpus
overview, method and provenance, topics, barometer join, evidence panels, run information.

Each function takes the :class:`~nlp.report.artifacts.Context` and returns what the template
shows (tables, figures, panels) with their CSV links, or ``None`` when its optional inputs are
absent (topics, barometer). Inputs: the annotate stage's ``documents`` (and ``hits`` for
counts), the indicators' ``evidence`` and ``indicators_settings.json``, the topics stage's
tables and HTML figures, the join's tables, ``run_info.json`` and the validation file.
"""
from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from nlp.io import kwic_window
from nlp.report import plots
from nlp.report.artifacts import Context
from nlp.report.formatting import (P_METHOD_LABELS, STATUS_LABELS, date_text, doc_type_label, evidence_anchor,
                                   interval, is_missing, measure_label, number, percent, plain, pvalue,
                                   reason_label, safe_url, short_hash, short_theme, theme_label)
from nlp.report.sections import PRIMARY, cells
from nlp.schema import THEMES

OK_STATUSES = ("ok", "ocr")


def overview(ctx: Context) -> dict[str, Any]:
    """Key figures, the corpus per metropolis, documents by type / year / extraction status."""
    docs = ctx.inputs["documents"]
    base = cells(ctx).drop_duplicates("metropole").set_index("metropole")
    kpis = [("métropoles", len(ctx.metropoles)), ("documents", len(docs)),
            ("documents analysés", base["n_documents"].sum()),
            ("paragraphes analysés", base["n_paragraphs"].sum()), ("mots analysés", base["n_words"].sum())]
    hits = ctx.inputs["hits"]
    if len(hits):
        counted = hits["counts"].fillna(False).astype(bool)
        kpis += [("occurrences du lexique comptées", int(counted.sum())),
                 ("occurrences non comptées", int((~counted).sum()))]
    data = pd.DataFrame([_corpus_row(m, docs[docs["metropole"] == m], base) for m in ctx.metropoles])
    rows = [[ctx.name(r.metropole), number(r.documents, 0), number(r.analysed_documents, 0),
             number(r.analysed_paragraphs, 0), number(r.analysed_words, 0),
             f"{int(r.first_year)}–{int(r.last_year)}" if not is_missing(r.first_year) else "–",
             " ; ".join(f"{k} : {number(v, 0)}" for k, v in r.statuses.items())] for r in data.itertuples()]
    header = ["Métropole", "Documents", "Analysés", "Paragraphes analysés", "Mots analysés", "Années",
              "Statuts d'extraction"]
    tables = [ctx.table("corpus", header, rows, data.drop(columns="statuses"), ["documents", "indicators"],
                        provenance=False,
                        note="Analysés : documents de prose (hors pages de liste ou de navigation) ayant au "
                             "moins un paragraphe analysé ; c'est la base de tous les indicateurs.")]
    if "crawl_summary" in ctx.inputs.tables:
        tables.append(_crawl_table(ctx))
    warnings = [_warning_fr(w) for w in ctx.inputs.settings.get("warnings") or []]
    return {"kpis": [{"label": k, "value": number(v, 0)} for k, v in kpis], "tables": tables,
            "figures": _overview_figures(ctx, docs), "warnings": warnings}


def _corpus_row(m: str, d: pd.DataFrame, base: pd.DataFrame) -> dict[str, Any]:
    years = pd.to_numeric(d["year"], errors="coerce").dropna()
    b = base.loc[m] if m in base.index else {}
    statuses = d["extraction_status"].value_counts()
    return {"metropole": m, "documents": len(d), "analysed_documents": b.get("n_documents"),
            "analysed_paragraphs": b.get("n_paragraphs"), "analysed_words": b.get("n_words"),
            "first_year": years.min() if len(years) else None, "last_year": years.max() if len(years) else None,
            "extraction_statuses": "; ".join(f"{k}: {v}" for k, v in statuses.items()), "statuses": statuses}


def _overview_figures(ctx: Context, docs: pd.DataFrame) -> list[dict[str, Any]]:
    by_type = docs.assign(doc_type=docs["doc_type"].fillna("autre")).groupby(
        ["metropole", "doc_type"]).size().rename("n").reset_index()
    mat = by_type.pivot_table(index="metropole", columns="doc_type", values="n", aggfunc="sum", fill_value=0)
    mat.index, mat.columns = [ctx.name(m) for m in mat.index], [doc_type_label(c) for c in mat.columns]
    years = pd.to_numeric(docs["year"], errors="coerce")
    per_year = years.dropna().astype(int).value_counts().sort_index().rename("n")
    undated = number(int(years.isna().sum()), 0)
    statuses = docs["extraction_status"].fillna("inconnu").value_counts().rename("n")
    colors = ["#55a868" if s in OK_STATUSES else "#c44e52" for s in statuses.index]
    return [
        ctx.figure("documents_par_metropole",
                   lambda: plots.stacked_bars(mat, "Documents par métropole et type", "documents", "type"),
                   by_type, "Documents par métropole et type", None, ["documents"]),
        ctx.figure("documents_par_annee",
                   lambda: plots.bars(per_year, f"Documents par année ({undated} sans date)", "documents"),
                   per_year.rename_axis("year").reset_index(), "Documents par année", None, ["documents"]),
        ctx.figure("statuts_extraction",
                   lambda: plots.bars(statuses, "Statuts d'extraction", "documents", horizontal=True, colors=colors),
                   statuses.rename_axis("extraction_status").reset_index(), "Statuts d'extraction", None,
                   ["documents"]),
    ]


def _crawl_table(ctx: Context) -> dict[str, Any]:
    crawl = ctx.inputs["crawl_summary"]
    cols = [c for c in crawl.columns if c == "metropole" or pd.to_numeric(crawl[c], errors="coerce").fillna(0).any()]
    names = {"metropole": "Métropole", "pages_seen": "Pages visitées", "documents": "Documents", "bytes": "Octets"}
    header = [names.get(c, c.replace("type_", "type ").replace("status_", "statut ")) for c in cols]
    rows = [[ctx.name(r["metropole"])] + [number(pd.to_numeric(r[c], errors="coerce"), 0) for c in cols[1:]]
            for _, r in crawl[cols].iterrows()]
    return ctx.table("collecte", header, rows, crawl[cols], ["crawl_summary"], provenance=False,
                     title="Collecte (crawl)")


def _warning_fr(text: str) -> str:
    m = re.match(r"(\d+) document row\(s\) left out of the analysed base", str(text))
    if m:
        return (f"{number(int(m.group(1)), 0)} ligne(s) de document hors de la base analysée (pages de liste ou de "
                "navigation, ou sans paragraphe de prose).")
    return f"Avertissement de l'étape indicateurs : {text}"


def method(ctx: Context) -> dict[str, Any]:
    """How the figures are made and where they come from: measures, intervals, the correction
    and its validation, the model version."""
    s = ctx.settings
    rows = [["Mesure principale", f"{measure_label(PRIMARY)} ({PRIMARY}), en % des paragraphes analysés"],
            ["Niveau de confiance des intervalles", percent(s.get("confidence"), 0)],
            ["Tirages bootstrap (documents rééchantillonnés dans chaque cellule)", number(s.get("draws"), 0)],
            ["Graine", number(s.get("seed"), 0)],
            ["Minimum de documents analysés par cellule (sinon : petite cellule, non classée)",
             number(s.get("min_documents"), 0)],
            ["Correction de l'erreur du détecteur", ctx.inputs.settings.get("correction") or "aucune"],
            ["Étiquettes des paragraphes", ctx.provenance.model_text]]
    weights = s.get("type_weights") or {}
    rows.append(["Poids des types de documents (part ajustée)",
                 " ; ".join(f"{doc_type_label(k)} : {number(v, 1)}" for k, v in weights.items()) or "–"])
    data = pd.DataFrame(rows, columns=["setting", "value"])
    tables = [ctx.table("methode", ["Paramètre", "Valeur"], rows, data, left=2, provenance=False)]
    val = _validation_table(ctx)
    if val:
        tables.append(val)
    return {"tables": tables, "header": ctx.provenance.header()}


def _validation_table(ctx: Context) -> dict[str, Any] | None:
    v = ctx.inputs.validation
    if not v:
        return None
    recs = [r for r in (v.get("effective") or v.get("labels") or []) if r.get("label") in THEMES]
    rows, data = [], []
    for r in recs:
        tp, fp, fn, tn = (float(r.get(k, 0)) for k in ("tp", "fp", "fn", "tn"))
        sens = tp / (tp + fn) if tp + fn else float("nan")
        spec = tn / (tn + fp) if tn + fp else float("nan")
        data.append({"label": r["label"], "tp": tp, "fp": fp, "fn": fn, "tn": tn, "sensitivity": sens,
                     "specificity": spec})
        rows.append([theme_label(r["label"])] + [number(x, 0) for x in (tp, fp, fn, tn)]
                    + [percent(sens), percent(spec)])
    path = ctx.inputs.validation_path
    return ctx.table("validation", ["Thème", "VP", "FP", "FN", "VN", "Sensibilité", "Spécificité"], rows,
                     pd.DataFrame(data), provenance=False, title="Validation utilisée pour la correction",
                     note=f"Fichier : {path.relative_to(ctx.inputs.outputs_dir) if path else '–'} ; "
                          f"source : {v.get('source', '–')}. VP/FP/FN/VN : vrais et faux positifs et négatifs.")


def topics(ctx: Context) -> dict[str, Any] | None:
    """The topics stage's tables (topics, per metropolis, theme map) and links to its HTML
    figures under ``outputs/topics/``; ``None`` without a topics table."""
    if not ctx.inputs.has("topics"):
        return None
    tp = ctx.inputs["topics"]
    rows = [[number(r.get("topic"), 0), number(r.get("size"), 0), percent(r.get("share")), str(r.get("label", "")),
             ", ".join(map(str, r["top_terms"])) if _listish(r.get("top_terms")) else str(r.get("top_terms") or ""),
             theme_label(r["best_theme"]) if not is_missing(r.get("best_theme")) else "–",
             number(r.get("npmi"), 2)] for _, r in tp.iterrows()]
    header = ["Thème latent", "Segments", "Part", "Étiquette", "Mots", "Thème le plus proche", "Cohérence NPMI"]
    table = ctx.table("themes_latents", header, rows, tp, ["topics"], left=0, provenance=False)
    labels = tp.set_index("topic")["label"].astype(str) if "label" in tp else pd.Series(dtype=str)
    figures = [f for f in (_topics_per_metropole(ctx, labels), _topic_theme_map(ctx, labels)) if f]
    links = [{"href": f"../topics/{p.name}", "label": p.stem} for p in ctx.inputs.topic_figures]
    return {"table": table, "figures": figures, "links": links}


def _topic_columns(topics: Any, labels: pd.Series) -> list[str]:
    return [f"{c} : {labels.get(c, '')[:25]}" for c in topics]


def _topics_per_metropole(ctx: Context, labels: pd.Series) -> dict[str, Any] | None:
    per = ctx.inputs["topics_per_metropole"]
    if not len(per) or "share" not in per:
        return None
    t = per[per["topic"] != -1]
    top = t.groupby("topic")["n_chunks"].sum().nlargest(15).index
    piv = t[t["topic"].isin(top)].pivot_table(index="metropole", columns="topic", values="share",
                                              aggfunc="first").fillna(0)
    piv.index, piv.columns = [ctx.name(m) for m in piv.index], _topic_columns(piv.columns, labels)
    return ctx.figure("themes_latents", lambda: plots.heatmap(
        100 * piv, "Thèmes latents : part des segments de chaque métropole (%)", "%", lambda v: number(v, 0)),
        per, "Thèmes latents par métropole", None, ["topics_per_metropole"],
        note="Thèmes latents du modèle de sujets, trouvés sans le détecteur de thèmes.")


def _topic_theme_map(ctx: Context, labels: pd.Series) -> dict[str, Any] | None:
    tm = ctx.inputs["topic_theme_map"]
    if not len(tm) or "share_chunks" not in tm:
        return None
    tm = tm[tm["topic"] != -1]
    piv = tm.pivot_table(index="topic", columns="theme", values="share_chunks", aggfunc="first")
    piv = piv.reindex(columns=[t for t in THEMES if t in piv.columns])
    piv.index, piv.columns = _topic_columns(piv.index, labels), [short_theme(t) for t in piv.columns]
    return ctx.figure("themes_latents_x_themes", lambda: plots.heatmap(
        100 * piv, "Thèmes latents × thèmes : part des segments portant des occurrences du thème (%)", "%",
        lambda v: number(v, 0)), tm, "Thèmes latents et thèmes du lexique", False, ["topic_theme_map"])


def _listish(v: Any) -> bool:
    return isinstance(v, (list, tuple)) or (hasattr(v, "tolist") and not isinstance(v, str))


UNMATCHED_FR = {
    "matches none of the metropolises in the indicators": "ne correspond à aucune métropole des indicateurs",
    "no score row for this metropolis": "aucune ligne de score pour cette métropole",
}


def _indicator_label(name: str) -> str:
    if name == "maturity_index":
        return "Indice de maturité"
    theme, _, measure = str(name).partition("__")
    return f"{short_theme(theme)} — {measure_label(measure)}" if measure else str(name)


def barometer(ctx: Context) -> dict[str, Any] | None:
    """Coverage per score, unmatched rows, correlations (n, rho, exact p for n ≤ 10, Holm, BH),
    the n < 8 warning, no interval below n = 5; ``None`` without a join."""
    if "correlations" not in ctx.inputs.tables:
        return None
    tables = []
    cov = ctx.inputs["scores_coverage"]
    if len(cov):
        rows = [[str(r["score"]), number(r["n"], 0), str(r.get("metropoles") or "–"), str(r.get("levels") or "–")]
                for _, r in cov.iterrows()]
        header = ["Score", "Métropoles avec une valeur", "Lesquelles", "Niveaux"]
        tables.append(ctx.table("couverture_scores", header, rows, cov, ["scores_coverage"], left=1,
                                provenance=False, title="Couverture par score"))
    un = ctx.inputs["unmatched_scores"]
    rows = [["fichier de scores" if r["side"] == "scores" else "indicateurs",
             number(r["line"], 0) if not is_missing(r.get("line")) else "–", str(r["identifier"]),
             str(r["indicator"]) if not is_missing(r.get("indicator")) else "–", _unmatched_reason(r["reason"])]
            for _, r in un.iterrows()]
    tables.append(ctx.table("non_apparies", ["Côté", "Ligne", "Identifiant", "Indicateur", "Raison"], rows, un,
                            ["unmatched_scores"], left=5, provenance=False, title="Lignes non appariées"))
    corr = ctx.inputs["correlations"]
    tables.append(_correlation_table(ctx, corr))
    figures = []
    if len(corr) and corr["rho"].notna().any():
        piv = corr.pivot_table(index="indicator", columns="score", values="rho", aggfunc="first")
        piv.index = [_indicator_label(i) for i in piv.index]
        figures.append(ctx.figure("correlations", lambda: plots.heatmap(
            piv, "Corrélations de Spearman : indicateurs × scores du baromètre", "ρ", lambda v: number(v, 2),
            diverging=True, min_width=9), corr, "Corrélations", False, ["correlations"]))
    small = corr[corr["n"] < 8] if len(corr) else corr
    warning = (f"{number(len(small), 0)} corrélation(s) sur {number(len(corr), 0)} reposent sur moins de 8 "
               "métropoles : ce sont des descriptions, pas des preuves. Aucun intervalle n'est donné sous n = 5."
               if len(small) else "")
    joined = ctx.inputs.tables.get("joined_scores")
    return {"tables": tables, "figures": figures, "warning": warning,
            "n_matched": number(len(joined), 0) if joined is not None else "–"}


def _unmatched_reason(reason: Any) -> str:
    text = str(reason)
    if text.startswith("ambiguous: matches "):
        return "ambiguë : correspond à " + text.removeprefix("ambiguous: matches ")
    return UNMATCHED_FR.get(text, text)


def _correlation_table(ctx: Context, corr: pd.DataFrame) -> dict[str, Any]:
    c = corr.assign(_a=-corr["rho"].abs().fillna(-1)).sort_values(["_a", "indicator", "score"]).drop(columns="_a")
    rows = []
    for _, r in c.iterrows():
        n = int(r["n"])
        ci = interval(r["ci_low"], r["ci_high"], 2) if n >= 5 else "pas d'intervalle (n < 5)"
        warn = f"⚠ n = {n} < 8 : trop peu de métropoles pour conclure" if n < 8 else ""
        method = P_METHOD_LABELS.get(str(r["p_method"]), str(r["p_method"]))
        rows.append([_indicator_label(r["indicator"]), str(r["score"]), number(n, 0), number(r["rho"], 2),
                     {"text": pvalue(r["p_value"]), "ci": method}, pvalue(r["p_holm"]), pvalue(r["q_bh"]),
                     ci or "–", {"text": warn, "cls": "warn" if warn else ""}])
    n_tests = int(corr["n_tests"].max()) if len(corr) and "n_tests" in corr else 0
    header = ["Indicateur", "Score", "n", "ρ de Spearman", "p (méthode)", "p Holm", "q BH", "Intervalle bootstrap",
              "Avertissement"]
    return ctx.table("correlations", header, rows, corr, ["correlations", "joined_scores"], left=2,
                     title="Corrélations",
                     note=f"{number(n_tests, 0)} test(s) ; p exacte (toutes les permutations) pour n ≤ 10, "
                          "approximation t au-delà ; corrections pour tests multiples : Holm (p Holm, erreur de "
                          "type I par famille) et Benjamini–Hochberg (q BH, taux de fausses découvertes).")


def evidence(ctx: Context) -> dict[str, Any]:
    """One panel per metropolis × theme: sampled sentences with the match highlighted
    (:func:`nlp.io.kwic_window`), counted or not and why, with their sources."""
    ev = ctx.inputs["evidence"]
    ev = ev.assign(anchor=[evidence_anchor(m, t) for m, t in zip(ev["metropole"], ev["theme"])])
    by_cell = {k: g for k, g in ev.groupby(["metropole", "theme"], sort=False)}
    values = cells(ctx).set_index(["metropole", "theme"])
    metros = []
    for m in ctx.metropoles:
        panels = []
        for th in THEMES:
            g = by_cell.get((m, th), ev.iloc[:0])
            v = values.loc[(m, th)] if (m, th) in values.index else None
            groups = [{"status": STATUS_LABELS[s], "entries": [_entry(r) for _, r in g[g["status"] == s].iterrows()]}
                      for s in STATUS_LABELS if (g["status"] == s).any()]
            value = "" if v is None else f"{percent(v['value'])} {interval(v['ci_low'], v['ci_high'], 1, True)}"
            panels.append({"anchor": evidence_anchor(m, th), "theme": theme_label(th), "groups": groups,
                           "n": len(g), "value": value.strip()})
        metros.append({"name": ctx.name(m), "panels": panels, "n": sum(p["n"] for p in panels)})
    links = ctx.out.links("preuves", ev, ["evidence"])
    return {"metropoles": metros, "links": links, "cap": number(ctx.settings.get("evidence_per_cell"), 0),
            "provenance": ctx.provenance.sentence(False)}


def _entry(r: Any) -> dict[str, Any]:
    if is_missing(r.get("start")) or is_missing(r.get("end")):
        left, match, right = _text(r.get("sentence")), "", ""
    else:
        left, match, right = kwic_window(r.get("sentence"), r.get("start"), r.get("end"))
    url = _text(r.get("url")) or None
    doc = _text(r.get("document_id"))
    status = str(r["status"])
    reason = reason_label(r.get("reason"))
    label = f"non compté ({reason})" if status == "non compté" else (
        f"compté ({reason})" if status == "compté" and reason else STATUS_LABELS.get(status, status))
    return {"left": left, "match": match, "right": right, "status": label,
            "cls": {"compté": "counted", "non compté": "notcounted"}.get(status, "model"),
            "url": url or "", "url_safe": safe_url(url), "title": _text(r.get("title")),
            "page": number(r.get("page"), 0), "date": date_text(r.get("date")),
            "fetched": date_text(r.get("fetched_at")), "hash": doc, "hash_short": short_hash(doc),
            "term": _text(r.get("term_id"))}


def _text(value: Any) -> str:
    return "" if is_missing(value) else str(value)


RUN_INFO_TITLES = {"settings": "Paramètres de l'exécution", "versions": "Versions des logiciels",
                   "lexicons": "Lexiques (versions)", "models": "Modèles", "corpus": "Instantané du corpus",
                   "timings": "Durées par étape (s)", "stages": "Résumés des étapes"}


def run_information(ctx: Context) -> list[dict[str, Any]]:
    """``run_info.json`` and the indicators' settings as key/value tables (numbers in French,
    identifiers as code)."""
    info = dict(ctx.inputs.run_info)
    blocks = [("indicateurs", "Paramètres des indicateurs (indicators_settings.json)",
               {k: v for k, v in ctx.inputs.settings.items() if k != "warnings"})]
    blocks += [(k, t, info.pop(k)) for k, t in RUN_INFO_TITLES.items() if k in info]
    rest = {k: v for k, v in info.items()}
    if rest:
        blocks.insert(0, ("general", "Général", rest))
    out = []
    for key, title, content in blocks:
        pairs = _flatten(content)
        rows = [[{"text": k, "code": True}, _value_cell(v)] for k, v in pairs]
        data = pd.DataFrame([(k, json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else v)
                             for k, v in pairs], columns=["key", "value"])
        out.append(ctx.table(f"execution_{key}", ["Clé", "Valeur"], rows, data, left=2, provenance=False,
                             title=title))
    return out


def _value_cell(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, (int, float)):
        return plain(v)
    return {"text": str(v), "code": True}


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        if not d:
            return [(prefix, "{}")] if prefix else []
        return [kv for k, v in d.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(d, list):
        if all(not isinstance(x, (dict, list)) for x in d) and len(d) <= 30:
            return [(prefix, " ; ".join(plain(x) if isinstance(x, (int, float)) else str(x) for x in d) or "[]")]
        return [kv for i, x in enumerate(d[:30]) for kv in _flatten(x, f"{prefix}[{i}]")] + (
            [(prefix, f"… {len(d) - 30} de plus")] if len(d) > 30 else [])
    return [(prefix, d)]
