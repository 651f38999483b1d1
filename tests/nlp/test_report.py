"""Report stage: the HTML report builds from a small synthetic outputs dir, is self-contained,
escapes crawled text, and (browser test) opens from disk in headless Chromium with no
console error, no network request, its sections present, and no injected script run."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlp.indicators import IndicatorSettings, compute_indicators, join_scores, write_indicators, \
    write_join
from nlp.report import build_report, kwic, safe_url
from nlp.schema import DOC_TYPES, DOCUMENT_COLUMNS, HIT_COLUMNS, THEMES

XSS_SENTENCE = ("Avant <script>window.__xss = 1; console.error('xss ran')</script> la "
                "médiation numérique <img src=x onerror=\"window.__xss = 2\"> après.")
CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ["apercu", "carte", "profils", "classement", "maturite", "freins", "specificites",
            "evolution", "topics", "barometre", "preuves", "execution"]


def synthetic_outputs(root: Path, seed: int = 0) -> Path:
    """A small outputs/ dir: annotate tables (3 metropolises), indicator tables, topic
    tables, a barometer join, run_info.json; one hit sentence carries a script injection."""
    rng = np.random.default_rng(seed)
    tables = root / "tables"
    tables.mkdir(parents=True)
    metros = ["lyon", "nantes", "rennes"]
    docs, hits = [], []
    for i in range(36):
        m = metros[i % 3]
        year = int(rng.choice([2020, 2021, 2022]))
        words = int(rng.integers(800, 3000))
        docs.append(dict(document_id=f"doc{i:03d}", metropole=m,
                         url=f"https://www.{m}.fr/docs/{i}.pdf",
                         title=f"Délibération n°{i} <b>titre</b>",
                         doc_type=str(rng.choice(DOC_TYPES[:4])),
                         date=f"{year}-05-{i % 28 + 1:02d}",
                         year=year, n_pages=5, n_paragraphs=20, n_sentences=words // 20,
                         n_words=words, n_digital_paragraphs=3, extraction_status="ok"))
        for j in range(int(rng.integers(3, 15))):
            theme = str(rng.choice(list(THEMES)))
            sentence = f"La métropole engage le volet {theme} du numérique (phrase {j})."
            start = sentence.index(theme)
            sub = {"frein_interne": "budgetaire", "frein_externe": "fracture"}.get(theme)
            hits.append(dict(document_id=f"doc{i:03d}", metropole=m, url=docs[-1]["url"],
                             page=int(rng.integers(1, 5)), paragraph=j, sentence_index=0,
                             sentence=sentence, start=start, end=start + len(theme),
                             theme=theme, subtheme=sub, term_id=f"{theme}.t{j % 3}",
                             matched=theme, negated=bool(rng.random() < 0.1),
                             digital_context=True, doc_type=None, year=None))
    docs.append(dict(document_id="failed", metropole="rennes", url="https://www.rennes.fr/x.pdf",
                     title=None, doc_type="autre", date=None, year=None, n_pages=0,
                     n_paragraphs=0, n_sentences=0, n_words=0, n_digital_paragraphs=0,
                     extraction_status="pdf-encrypted"))
    # the only inclusion hit of nantes: always in the evidence sample
    start = XSS_SENTENCE.index("médiation")
    hits = [h for h in hits if not (h["metropole"] == "nantes" and h["theme"] == "inclusion")]
    hits.append(dict(document_id="doc001", metropole="nantes",
                     url="javascript:window.__xss=3", page=2, paragraph=99, sentence_index=0,
                     sentence=XSS_SENTENCE, start=start, end=start + len("médiation numérique"),
                     theme="inclusion", subtheme=None, term_id="inclusion.mediation",
                     matched="médiation numérique", negated=False, digital_context=True,
                     doc_type=None, year=None))
    documents = pd.DataFrame(docs)[DOCUMENT_COLUMNS]
    hits_df = pd.DataFrame(hits)[HIT_COLUMNS]
    documents.to_parquet(tables / "documents.parquet", index=False)
    hits_df.to_parquet(tables / "hits.parquet", index=False)
    res = compute_indicators(documents, hits_df, IndicatorSettings(draws=100))
    write_indicators(res, root)
    pd.DataFrame({"topic": [-1, 0, 1], "size": [5, 20, 11], "share": [0.14, 0.55, 0.31],
                  "label": ["hors thème (outliers)", "données, plateforme", "usager, service"],
                  "top_terms": [["x"], ["données", "plateforme"], ["usager", "service"]],
                  "best_theme": [None, "donnees", "relation_usager"]}
                 ).to_parquet(tables / "topics.parquet", index=False)
    pd.DataFrame({"metropole": ["lyon", "lyon", "nantes", "rennes"], "topic": [0, 1, 0, 1],
                  "n_chunks": [5, 3, 6, 4], "share": [0.6, 0.4, 1.0, 1.0]}
                 ).to_parquet(tables / "topics_per_metropole.parquet", index=False)
    pd.DataFrame({"metropole": metros, "documents_ok": [12, 12, 12], "errors": [0, 1, 2]}
                 ).to_csv(tables / "crawl_summary.csv", index=False)
    scores = root / "scores.csv"
    scores.write_text("nom;score\nMétropole de Lyon;3\nNantes Métropole;1\nRennes;2\nParis;4\n",
                      encoding="utf-8")
    registry = pd.DataFrame({"slug": metros, "name": ["Métropole de Lyon", "Nantes Métropole",
                                                       "Rennes Métropole"],
                             "siren": ["200046977", "244400404", "243500139"]})
    write_join(join_scores(res, scores, registry, IndicatorSettings(draws=50)), root)
    (root / "run_info.json").write_text(json.dumps({
        "settings": {"seed": 42, "indicators": {"draws": 100}},
        "versions": {"python": "3.11", "pandas": pd.__version__},
        "lexicons": {"inclusion": 1, "strategie": 2},
        "corpus": {"documents": 37, "hash": "abc"}, "timings": {"annotate": 1.5},
    }), encoding="utf-8")
    return root


NAMES = {"lyon": "Métropole de Lyon", "nantes": "Nantes Métropole",
         "rennes": "Rennes <Métropole>"}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = synthetic_outputs(tmp_path_factory.mktemp("outputs"))
    return build_report(root, names=NAMES)


def test_report_builds_self_contained(report):
    root = report.parents[1]
    assert report == root / "report" / "index.html"
    html = report.read_text(encoding="utf-8")
    for sec in SECTIONS:
        assert f'id="{sec}"' in html, sec
    pngs = sorted(p.name for p in (root / "plots").glob("*.png"))
    for name in ("carte_hits_per_10k_words.png", "profils_radar.png", "indice_maturite.png",
                 "sensibilite.png", "specificites.png", "freins.png", "dendrogramme.png",
                 "documents_par_metropole.png", "themes_latents.png", "correlations.png"):
        assert name in pngs
    assert html.count("data:image/png;base64,") >= len(pngs)
    # nothing fetched from elsewhere: no external src/href, no stylesheet link, no script
    assert not re.search(r'(src|href)="(?!data:|#|https?://www\.(lyon|nantes|rennes)\.fr/)',
                         html)
    assert "<script" not in html and "<link" not in html
    assert "Métropole de Lyon" in html and "Rennes &lt;Métropole&gt;" in html
    assert "Stratégie et gouvernance numériques" in html  # French labels


def test_report_escapes_crawled_text(report):
    html = report.read_text(encoding="utf-8")
    assert "&lt;script&gt;window.__xss = 1" in html
    assert "&lt;img src=x onerror=" in html
    assert "<mark>médiation numérique</mark>" in html
    assert 'href="javascript:' not in html
    assert "&lt;b&gt;titre&lt;/b&gt;" in html


def test_report_shows_run_info_topics_join_and_ties(report):
    html = report.read_text(encoding="utf-8")
    assert "Lexiques (versions)" in html and "Instantané du corpus" in html
    assert "données, plateforme" in html
    assert "Paris" in html  # unmatched barometer row reported
    assert "rho de Spearman" in html
    assert 'class="tie"' in html  # three metropolises, wide intervals: some ranks tie


def test_report_without_optional_tables_and_without_indicators(tmp_path):
    root = synthetic_outputs(tmp_path / "out")
    for name in ("topics", "topics_per_metropole", "correlations", "joined_scores",
                 "unmatched_scores"):
        for ext in ("parquet", "csv"):
            (root / "tables" / f"{name}.{ext}").unlink(missing_ok=True)
    # no indicator tables either: computed in memory
    for p in (root / "tables").glob("indicators*"):
        p.unlink()
    (root / "run_info.json").unlink()
    html = build_report(root).read_text(encoding="utf-8")
    assert 'id="topics"' not in html and 'id="barometre"' not in html
    assert 'id="maturite"' in html and "lyon" in html


def test_kwic_and_safe_url():
    assert kwic("abc MATCH def", 4, 9) == ("abc ", "MATCH", " def")
    left, match, right = kwic("x" * 1000 + "M" + "y" * 1000, 1000, 1001)
    assert match == "M" and left.startswith("…") and len(left) < 400 and right.endswith("…")
    assert kwic(None, None, None) == ("", "", "")
    assert safe_url("https://a.fr/x.pdf") and not safe_url("javascript:alert(1)")
    assert not safe_url(None) and not safe_url("data:text/html,<script>")


@pytest.mark.browser
def test_report_in_headless_chromium(report, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed (/usr/bin/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    console: list[tuple[str, str]] = []
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(tmp_path / "report_top.png"))
            for sec in SECTIONS:
                assert page.locator(f"section#{sec}").count() == 1, sec
                assert page.locator(f"section#{sec} h2").inner_text().strip()
            # every embedded plot decoded
            broken = page.evaluate("[...document.images].filter(i => !i.complete || "
                                   "i.naturalWidth === 0).length")
            assert broken == 0
            assert page.evaluate("document.images.length") >= 10
            # a heatmap cell links to its evidence panel: following the link opens it
            link = page.locator('a.cell[href="#ev-nantes-inclusion"]').first
            assert link.count() == 1
            link.click()
            panel = page.locator("#ev-nantes-inclusion")
            panel.wait_for(state="visible", timeout=5000)
            assert "<script>window.__xss = 1" in panel.inner_text()
            assert panel.locator("mark").first.inner_text() == "médiation numérique"
            assert page.evaluate("window.__xss === undefined")
            page.locator("#maturite").scroll_into_view_if_needed()
            page.evaluate("document.getElementById('maturite').scrollIntoView()")
            page.screenshot(path=str(tmp_path / "report_maturite.png"))
            panel.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "report_evidence.png"))
        finally:
            browser.close()
    assert not dialogs
    errors = [c for c in console if c[0] in ("error", "pageerror")]
    assert errors == []
    external = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert external == []
    assert (tmp_path / "report_top.png").stat().st_size > 10_000
