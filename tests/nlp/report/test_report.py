"""Report stage: the HTML report builds from synthetic outputs written by the real indicators
stage and barometer join (see conftest.py); it is self-contained, escapes crawled text, links
every table and figure to its CSV, links every heatmap cell to an existing evidence panel,
shows numbers with the decimal comma only, says where every figure comes from, never shows an
interval for n < 5 in the join, fails clearly on missing inputs (never recomputes), and
(browser test) opens from disk in headless Chromium with no console error, no network request,
its sections present, and no injected script run."""
from __future__ import annotations

import html as htmllib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from nlp.errors import BarometreError
from nlp.io import kwic_window, read_table, write_table
from nlp.report import build_report, safe_url
from nlp.report.panels import _entry
from nlp.report.plots import tick_text
from nlp.schema import THEMES

from report_outputs import METROS, MODEL, NAMES, VALIDATION_SOURCE

CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ["apercu", "methode", "carte", "profils", "classement", "maturite", "freins", "specificites",
            "evolution", "topics", "barometre", "preuves", "execution"]


class _Page(HTMLParser):
    """Visible text outside <code>/<style>, every href and src, ids, and each table block's and
    figure's links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.ids: set[str] = set()
        self.blocks: list[tuple[str, list[str]]] = []
        self._skip = 0
        self._depth: list[tuple[str, int]] = []
        self._open = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("code", "style"):
            self._skip += 1
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
            for _, links in self.blocks[-self._open:] if self._open else []:
                links.append(a["href"])
        if "src" in a:
            self.srcs.append(a["src"])
        if (tag == "div" and a.get("class") == "tbl") or tag == "figure":
            self.blocks.append((a.get("id", tag), []))
            self._depth.append((tag, 0))
            self._open += 1
        elif self._depth and tag == self._depth[-1][0]:
            self._depth[-1] = (tag, self._depth[-1][1] + 1)

    def handle_endtag(self, tag):
        if tag in ("code", "style"):
            self._skip -= 1
        if self._depth and tag == self._depth[-1][0]:
            t, n = self._depth[-1]
            if n == 0:
                self._depth.pop()
                self._open -= 1
            else:
                self._depth[-1] = (t, n - 1)

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


def test_report_builds_self_contained(report):
    root = report.parents[1]
    assert report == root / "report" / "index.html"
    html = report.read_text(encoding="utf-8")
    for sec in SECTIONS:
        assert f'<section id="{sec}"' in html, sec
    pngs = sorted(p.name for p in (root / "plots").glob("*.png"))
    for name in ("documents_par_metropole.png", "profils_radar.png", "dendrogramme.png", "classement_inclusion.png",
                 "indice_maturite.png", "indice_probabilites_rang.png", "sensibilite.png", "freins.png",
                 "specificites.png", "evolution_year.png", "evolution_doc_type.png", "themes_latents.png",
                 "correlations.png"):
        assert name in pngs, name
    assert html.count("data:image/png;base64,") == len(pngs)
    page = parse(html)
    assert all(s.startswith("data:image/png;base64,") for s in page.srcs)
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert "Métropole de Lyon" in html and "Rennes &lt;Métropole&gt;" in html
    assert "Stratégie et gouvernance numériques" in html  # French labels


def test_every_link_resolves_and_every_table_and_figure_has_its_csv(report):
    root = report.parents[1]
    page = parse(report.read_text(encoding="utf-8"))
    external = {f"https://www.{m}.fr/" for m in METROS}
    for href in page.hrefs:
        if href.startswith("#"):
            assert href[1:] in page.ids, href
        elif href.startswith("https://"):
            assert any(href.startswith(e) for e in external), href  # crawled source URLs only
        else:
            assert not re.match(r"^[a-z]+:", href), href
            assert (report.parent / unquote(href)).resolve().is_file(), href
    assert len(page.blocks) > 30
    for block, links in page.blocks:
        csvs = [h for h in links if h.endswith(".csv")]
        assert csvs, f"{block}: no CSV link"
        assert any(h.startswith("data/") for h in csvs), block
    # the stage's own tables are linked too, and the per-figure CSV holds what is drawn
    assert "../tables/indicators.csv" in page.hrefs and "../tables/keyness.csv" in page.hrefs
    shown = pd.read_csv(root / "report" / "data" / "carte_paragraph_share.csv")
    assert set(shown["measure"]) == {"paragraph_share"} and len(shown) == len(METROS) * len(THEMES)
    assert "../topics/barchart.html" in page.hrefs  # the topics stage's own figure, not regenerated


def test_heatmap_cells_link_to_existing_evidence_panels(report):
    html = report.read_text(encoding="utf-8")
    page = parse(html)
    carte = html[html.index('<section id="carte"'):html.index('<section id="profils"')]
    first = carte[carte.index('id="tab-carte_paragraph_share"'):carte.index("</table>")]
    links = re.findall(r'<a class="cell" href="#(ev-[^"]+)"', first)
    assert len(links) == len(METROS) * len(THEMES)
    assert set(links) == {f"ev-{m}-{t}" for m in METROS for t in THEMES}
    assert set(links) <= page.ids
    # coloured cells; small cells (brest: 3 documents < 5) greyed and said so
    assert 'style="background:#' in first
    assert re.search(r'<td class="small"[^>]*title="3 document\(s\) analysé\(s\) : petite cellule', first)
    assert "(paragraph_share)" in carte and "(hits_per_10k_words)" in carte and "(paragraph_share_corrected)" in carte


def test_single_decimal_separator(report):
    page = parse(report.read_text(encoding="utf-8"))
    text = re.sub(r"[ \t\r\n]+", " ", " ".join(page.text))
    text = re.sub(r"(https?|javascript):\S+", " ", text)
    assert not re.findall(r"\d\.\d", text), re.findall(r".{30}\d\.\d.{30}", text)[:5]
    assert re.search(r"\d,\d\u202f%", text)  # shares as French percentages
    assert tick_text(0.25) == "0,25" and tick_text(1500.0) == "1\u202f500" and tick_text(-0.5) == "−0,5"


def test_provenance_sentence_on_every_figure(report):
    html = htmllib.unescape(report.read_text(encoding="utf-8"))
    assert f"Corrigé de l'erreur du détecteur (Rogan–Gladen) d'après la validation : {VALIDATION_SOURCE}" in html
    assert f"modèle {MODEL}" in html
    figures = re.findall(r'<figure class="figure".*?</figure>', html, flags=re.S)
    assert len(figures) >= 13
    for fig in figures:
        with_model = "détecteur" in fig and f"modèle {MODEL}" in fig
        assert with_model or "Sans le détecteur de thèmes" in fig, fig[:200]
    for table, start in (("carte_paragraph_share_corrected", "Corrigé de l'erreur du détecteur (Rogan"),
                         ("carte_paragraph_share", "Non corrigé de l'erreur du détecteur (la part corrigée")):
        seg = html[html.index(f'id="tab-{table}"'):]
        assert re.search(r'<p class="prov">(.*?)</p>', seg).group(1).startswith(start), table
    assert "Validation utilisée pour la correction" in html and "validation/validation.json" in html
    # The opening line names the validation and the labelling model once each.
    header = re.search(r"<header>.*?</header>", html, flags=re.S).group(0)
    assert header.count(VALIDATION_SOURCE) == 1, header
    assert header.count(f"Étiquettes des paragraphes : modèle {MODEL}.") == 1, header
    assert "sauf la part corrigée (Rogan–Gladen" in header


def test_report_escapes_crawled_text(report):
    html = report.read_text(encoding="utf-8")
    assert "&lt;script&gt;window.__xss = 1" in html
    assert "&lt;img src=x onerror=" in html
    assert "<mark>médiation numérique</mark>" in html
    assert 'href="javascript:' not in html and "javascript:window.__xss=3" in html  # shown, not linked
    assert "&lt;b&gt;titre&lt;/b&gt;" in html


def test_evidence_panels_carry_status_reason_and_source(report):
    html = report.read_text(encoding="utf-8")
    ev = html[html.index('<section id="preuves"'):html.index('<section id="execution"')]
    assert "compté" in ev and "non compté (hors contexte numérique)" in ev and "modèle" in ev
    assert "compté (manque → frein)" in ev  # a lacking strategy counted as an internal barrier
    assert "récupéré le 2025-01-15 10:20:30" in ev and "document du 20" in ev
    full = "012" + "ab" * 30
    assert f'<code class="hash" title="{full}">{full[:12]}…</code>' in ev
    assert "../tables/evidence.csv" in ev and "data/preuves.csv" in ev


def test_rankings_maturity_and_join_sections(report):
    html = report.read_text(encoding="utf-8")
    assert "Lexiques (versions)" in html and "Instantané du corpus" in html
    assert "données, plateforme" in html
    assert 'class="tie"' in html  # four metropolises, wide intervals: some ranks tie
    assert "non classé : moins de 5 documents analysés" in html  # brest, with its reason
    assert "P(1er)" in html and "P(rang 1)" in html
    mat = html[html.index('<section id="maturite"'):html.index('<section id="freins"')]
    assert "Part de référence r" in mat and "2,8\u202f%" in mat  # strategie's reference share, from the config
    for scenario in ("référence", "mesure : part des documents", "normalisation : min–max entre métropoles",
                     "sans Inclusion numérique"):
        assert scenario in mat, scenario
    key = html[html.index('<section id="specificites"'):html.index('<section id="evolution"')]
    assert "q " in key and "Benjamini–Hochberg" in key
    baro = html[html.index('<section id="barometre"'):html.index('<section id="preuves"')]
    assert "Paris" in baro and "ne correspond à aucune métropole des indicateurs" in baro  # unmatched row
    assert "aucune ligne de score pour cette métropole" in baro  # brest has no score
    assert "ρ de Spearman" in baro and "p Holm" in baro and "q BH" in baro
    assert "exacte (toutes les permutations)" in baro
    assert 'class="warnbox"' in baro and "⚠ n = 3 &lt; 8" in baro


def test_no_interval_below_five_in_the_join_table(tmp_path, outputs):
    root = tmp_path / "out"
    shutil.copytree(outputs, root)
    corr = read_table(root / "tables" / "correlations.parquet")
    assert (corr["n"] == 3).all()
    corr["ci_low"], corr["ci_high"] = -0.5, 0.9  # even if a table carried one, it is not shown
    write_table(corr, root / "tables" / "correlations.parquet")
    html = build_report(root, NAMES).read_text(encoding="utf-8")
    table = html[html.index('id="tab-correlations"'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr>.*?</tr>", table, flags=re.S)[1:]
    assert len(rows) == len(corr)
    for row in map(htmllib.unescape, rows):
        assert "pas d'intervalle (n < 5)" in row and "[−0,50 ; 0,90]" not in row


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def test_old_single_file_tables_give_the_same_report(tmp_path, outputs, report):
    """Outputs written before the per-metropolis datasets (one Parquet file per table, rows in
    the order they were computed) build the same report as the datasets (rows grouped by
    metropolis)."""
    from report_outputs import synthetic_outputs

    datasets = {p.name for p in (outputs / "tables").iterdir() if p.is_dir()}
    assert {"documents.parquet", "hits.parquet", "indicators.parquet", "evidence.parquet"} <= datasets
    old = synthetic_outputs(tmp_path / "old", single_files=True)
    assert all((old / "tables" / name).is_file() for name in datasets)
    # The report says when it was generated (to the minute): the two builds may straddle one.
    def undated(html: str) -> str:
        return re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", "<generated>", html)

    assert undated(build_report(old, NAMES).read_text(encoding="utf-8")) == undated(report.read_text(encoding="utf-8"))


def test_missing_inputs_name_the_command_never_recompute(tmp_path, outputs):
    for victim, command in (("tables/indicators.parquet", "barometre indicators"),
                            ("tables/indicators_settings.json", "barometre indicators"),
                            ("tables/evidence.parquet", "barometre indicators"),
                            ("tables/documents.parquet", "barometre annotate")):
        root = tmp_path / victim.replace("/", "_")
        shutil.copytree(outputs, root)
        _remove(root / victim)  # a file, or a table's per-metropolis dataset
        with pytest.raises(BarometreError, match=re.escape(f"`{command}`")):
            build_report(root)
        assert not (root / "tables" / "indicators.parquet").exists() or victim != "tables/indicators.parquet"


def test_report_without_optional_inputs(tmp_path, outputs):
    root = tmp_path / "out"
    shutil.copytree(outputs, root)
    for name in ("topics", "topics_per_metropole", "correlations", "joined_scores", "joined_scores_long",
                 "unmatched_scores", "scores_coverage", "hits", "paragraphs"):
        for ext in ("parquet", "csv"):
            _remove(root / "tables" / f"{name}.{ext}")
    shutil.rmtree(root / "topics")
    (root / "run_info.json").unlink()
    # indicators computed without a validation: no correction, and the report says so
    shutil.rmtree(root / "validation")
    settings = json.loads((root / "tables" / "indicators_settings.json").read_text(encoding="utf-8"))
    settings["correction"] = None
    (root / "tables" / "indicators_settings.json").write_text(json.dumps(settings), encoding="utf-8")
    ind = read_table(root / "tables" / "indicators.parquet")
    write_table(ind[ind["measure"] != "paragraph_share_corrected"], root / "tables" / "indicators.parquet",
                partition_by="metropole")
    (root / "report" / "data").mkdir(parents=True, exist_ok=True)
    (root / "report" / "data" / "stale.csv").write_text("x\n", encoding="utf-8")
    html = build_report(root).read_text(encoding="utf-8")
    assert 'id="topics"' not in html and 'id="barometre"' not in html
    assert 'id="maturite"' in html and "lyon" in html
    text = htmllib.unescape(html)
    assert "Non corrigé de l'erreur du détecteur : aucune validation disponible" in text
    assert "Corrigé de l'erreur du détecteur (Rogan" not in text and "Validation utilisée" not in text
    assert "version du modèle inconnue" in text and "Aucun fichier run_info.json" in text
    assert not (root / "report" / "data" / "stale.csv").exists()  # no link to stale data
    assert not (root / "report" / "data" / "correlations.csv").exists()


def test_kwic_window_and_safe_url():
    long = "x" * 1000 + "M" + "y" * 1000
    row = pd.Series({"sentence": long, "start": 1000, "end": 1001, "status": "compté", "reason": "",
                     "url": "https://a.fr/x.pdf", "document_id": "f" * 64, "page": 3, "date": None,
                     "fetched_at": "2025-01-01T00:00:00"})
    e = _entry(row)
    assert (e["left"], e["match"], e["right"]) == kwic_window(long, 1000, 1001)  # the project's one window
    assert e["match"] == "M" and e["left"].startswith("…") and e["right"].endswith("…")
    assert e["url_safe"] and e["date"] == "inconnue" and e["hash_short"] == "f" * 12 + "…"
    model = _entry(row.copy().replace({"status": "modèle"}).drop(["start", "end"]))
    assert model["match"] == "" and model["left"] == long
    assert safe_url("https://a.fr/x.pdf") and safe_url("http://a.fr") and not safe_url("javascript:alert(1)")
    assert not safe_url(None) and not safe_url("data:text/html,<script>") and not safe_url(" javascript:x")


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
            broken = page.evaluate("[...document.images].filter(i => !i.complete || "
                                   "i.naturalWidth === 0).length")
            assert broken == 0  # every embedded plot decoded
            assert page.evaluate("document.images.length") >= 13
            # a heatmap cell links to its evidence panel: following the link opens it
            link = page.locator('#tab-carte_paragraph_share a.cell[href="#ev-nantes-inclusion"]')
            assert link.count() == 1
            link.click()
            panel = page.locator("#ev-nantes-inclusion")
            panel.wait_for(state="visible", timeout=5000)
            assert "<script>window.__xss = 1" in panel.inner_text()
            assert panel.locator("mark").first.inner_text() == "médiation numérique"
            assert page.evaluate("window.__xss === undefined")
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
