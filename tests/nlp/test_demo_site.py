"""The bundled demo site: deterministic build, served over HTTP on 127.0.0.1, PDFs with the
layout of real deliberations, an SCDL CSV whose URLs resolve, the registry that points at it."""
from __future__ import annotations

import csv
import hashlib
import html
import io
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pdfplumber
import pytest

from nlp.demo import (DESIGNED_LEADERS, FICTIONAL_MARK, DemoSite, build_site, demo_registry,
                      serve)
from nlp.demo.content import DemoContentError, parse_source
from nlp.demo.pdf import hyphen_points
from nlp.demo.site import SCDL_COLUMNS, absolutize_scdl_csv
from nlp.errors import BarometreError
from nlp.schema import THEMES


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> DemoSite:
    return build_site(tmp_path_factory.mktemp("demo") / "site")


@pytest.fixture(scope="module")
def server(site: DemoSite):
    with serve(site.root) as srv:
        yield srv


@pytest.fixture(scope="module")
def pdf_pages(site: DemoSite) -> dict[str, list[str]]:
    """pdfplumber text of every PDF of the site, by URL path (extracted once per module)."""
    out = {}
    for doc in site.documents:
        if doc.format == "pdf":
            with pdfplumber.open(site.root / doc.path.lstrip("/")) as pdf:
                out[doc.path] = [page.extract_text() or "" for page in pdf.pages]
    return out


def _get(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# --- build -------------------------------------------------------------------------------
def test_two_builds_are_byte_identical(site: DemoSite, tmp_path: Path) -> None:
    again = build_site(tmp_path / "again")
    first, second = _files(site.root), _files(again.root)
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert different == []
    assert [d.sha256 for d in site.documents] == [d.sha256 for d in again.documents]
    # Last-Modified is derived from the document dates, so it survives a rebuild too.
    pdf = site.documents[0].path.lstrip("/")
    assert (site.root / pdf).stat().st_mtime == (again.root / pdf).stat().st_mtime


def test_rebuild_replaces_a_previous_site_but_refuses_a_foreign_folder(tmp_path: Path) -> None:
    dest = tmp_path / "site"
    build_site(dest)
    (dest / "stale.html").write_text("old")
    build_site(dest)
    assert not (dest / "stale.html").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BarometreError, match="not empty"):
        build_site(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_each_metropole_has_enough_varied_dated_documents(site: DemoSite) -> None:
    assert len(site.metropoles) >= 4
    years = set()
    for slug in site.metropoles:
        docs = site.documents_of(slug)
        assert len(docs) >= 8, slug
        types = {d.doc_type for d in docs}
        assert {"deliberation", "page_web", "proces_verbal", "rapport"} <= types, slug
        assert any(d.format == "pdf" for d in docs) and any(d.format == "html" for d in docs)
        assert len({d.date[:4] for d in docs}) >= 3, slug
        years |= {int(d.date[:4]) for d in docs}
    assert set(range(2019, 2025)) <= years
    assert {d.doc_type for d in site.documents} == {
        "deliberation", "page_web", "strategie", "proces_verbal", "rapport"}
    assert set(DESIGNED_LEADERS) >= {"inclusion", "donnees", "frein_interne", "citoyennete"}
    assert set(DESIGNED_LEADERS.values()) <= set(site.metropoles)
    assert set(DESIGNED_LEADERS) <= set(THEMES)


def test_every_page_and_pdf_carries_the_fictional_mark(site: DemoSite, pdf_pages) -> None:
    for path in site.root.rglob("*.html"):
        assert FICTIONAL_MARK in path.read_text(encoding="utf-8"), path
    for doc in site.documents:
        if doc.format == "pdf":
            pages = pdf_pages[doc.path]
            assert all(FICTIONAL_MARK in text for text in pages), doc.path


def test_pdfs_have_letterhead_running_header_footer_and_page_numbers(site: DemoSite,
                                                                    pdf_pages) -> None:
    multi_page = {slug: 0 for slug in site.metropoles}
    for doc in site.documents:
        if doc.format != "pdf":
            continue
        pages = pdf_pages[doc.path]
        name = {"valombre": "Métropole de Valombre", "cantelune": "Métropole de Cantelune",
                "brumeval": "Métropole de Brumeval",
                "aubeclair": "Métropole d'Aubeclair"}[doc.metropole]
        assert name.upper() in pages[0], doc.path  # letterhead on page 1
        for i, text in enumerate(pages, start=1):
            lines = text.splitlines()
            assert lines[0].startswith(name + " — "), (doc.path, i, lines[0])  # running header
            assert f"Page {i}/{len(pages)}" in lines[-1], (doc.path, i, lines[-1])  # footer
        if len(pages) > 1:
            multi_page[doc.metropole] += 1
        if doc.doc_type == "deliberation":
            full = "\n".join(pages)
            assert "Vu le Code général des collectivités territoriales" in full
            assert "Après en avoir délibéré, DÉCIDE :" in full
            assert re.search(r"Séance du \d{1,2}(er)? \w+ 20\d\d", full)
            assert "Article 1 : " in full
            # the prefecture's acknowledgement stamp, with an @ctes act id, on page 1
            assert "Accusé de réception en préfecture" in pages[0]
            assert re.search(r"\b099-\d{9}-\d{8}-[\w]+-DE\b", pages[0]), doc.path
    assert all(n >= 1 for n in multi_page.values()), multi_page


def test_pdf_text_layer_has_hyphenated_line_ends(site: DemoSite, pdf_pages) -> None:
    forced = {slug: False for slug in site.metropoles}
    hyphenated_lines = 0
    for doc in site.documents:
        if doc.format != "pdf":
            continue
        text = "\n".join(pdf_pages[doc.path])
        if "numé-\nrique" in text:
            forced[doc.metropole] = True
        hyphenated_lines += len(re.findall(r"[a-zé]{3,}-\n[a-zé]{3,}", text))
    assert all(forced.values()), forced  # the split the extract stage must undo
    assert hyphenated_lines >= 50  # and many automatic ones


def test_hyphenation_points_follow_french_syllables() -> None:
    assert 4 in hyphen_points("numérique")  # numé-rique
    assert all(p >= 3 for p in hyphen_points("dématérialisation"))
    assert hyphen_points("Valombre") == []  # proper nouns are never split
    assert hyphen_points("court") == []
    assert all("tableaux"[p - 1:p + 1] != "bl" for p in hyphen_points("tableaux"))
    assert 3 in hyphen_points("communes")  # com-munes


def test_corpus_holds_negations_and_non_digital_noise(site: DemoSite, pdf_pages) -> None:
    """Sentences a theme detector must not count: negated mentions, and non-digital
    deliberations using theme words (road works under "contraintes budgétaires", a sports
    subsidy with a "convention de partenariat")."""
    text = "\n".join("\n".join(p) for p in pdf_pages.values()).replace("\n", " ")
    text += " ".join(html.unescape(p.read_text(encoding="utf-8"))
                     for p in site.root.rglob("*.html"))
    assert "Aucun partenariat n'a été conclu" in text
    assert "n'a pas recruté de conseiller numérique" in text
    for slug in site.metropoles:
        titles = [d.title for d in site.documents_of(slug)]
        assert any(t.startswith("Requalification de l'") for t in titles)
        assert any("convention de partenariat" in t for t in titles)
    assert "contraintes budgétaires qui pèsent sur le programme pluriannuel de voirie" in text


def test_content_errors_name_the_file_and_field() -> None:
    with pytest.raises(DemoContentError, match=r"x\.txt.*'date'"):
        parse_source("type: rapport\nformat: pdf\ntitle: T\ndate: 2021-13-40\n---\nTexte.\n",
                     "m", "x", "x.txt")
    with pytest.raises(DemoContentError, match=r"x\.txt.*'vote'"):
        parse_source("type: deliberation\nformat: pdf\ntitle: T\ndate: 2021-01-01\n"
                     "number: 1\nmatiere: 9.1 | Autres\nrapporteur: R\n---\nTexte.\n",
                     "m", "x", "x.txt")


# --- serve -------------------------------------------------------------------------------
def test_every_linked_url_returns_200_except_the_documented_broken_one(
        site: DemoSite, server) -> None:
    base = server.base_url
    seen: set[str] = set()
    queue = [base + "/"]
    broken: set[str] = set()
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        status, headers, body = _get(url)
        path = urlparse(url).path
        if path in site.broken_links:
            assert status == 404
            broken.add(path)
            continue
        assert status == 200, url
        if headers["Content-Type"].startswith("text/html"):
            parser = _Links()
            parser.feed(body.decode("utf-8"))
            for href in parser.links:
                target = urljoin(url, href).split("#")[0]
                if urlparse(target).netloc == urlparse(base).netloc:
                    queue.append(target)
    assert broken == set(site.broken_links) == {"/brumeval/deliberations/2020-06-retiree.pdf"}
    linked = {d.path for d in site.documents if d.published == "linked"}
    assert linked <= {urlparse(u).path for u in seen}
    # csv-only deliberations are reachable through the dataset, not through links
    csv_only = {d.path for d in site.documents if d.published == "csv-only"}
    assert csv_only and not csv_only & {urlparse(u).path for u in seen}
    assert {p for p in site.pages} <= {urlparse(u).path for u in seen}


def test_content_types_head_and_conditional_requests(site: DemoSite, server) -> None:
    base = server.base_url
    expected = {"/": "text/html", "/robots.txt": "text/plain", "/sitemap.xml": "application/xml",
                site.csv_paths["valombre"]: "text/csv",
                next(d.path for d in site.documents if d.format == "pdf"): "application/pdf"}
    for path, ctype in expected.items():
        status, headers, body = _get(base + path)
        assert status == 200 and headers["Content-Type"].startswith(ctype), path
        assert int(headers["Content-Length"]) == len(body)
        h_status, h_headers, h_body = _get(base + path, method="HEAD")
        assert h_status == 200 and h_body == b"" and h_headers["ETag"] == headers["ETag"]
        assert h_headers["Content-Length"] == headers["Content-Length"]
        status, _, body = _get(base + path, headers={"If-None-Match": headers["ETag"]})
        assert status == 304 and body == b""
        status, _, _ = _get(base + path, headers={"If-None-Match": '"other"'})
        assert status == 200
        status, _, _ = _get(base + path, headers={"If-Modified-Since": headers["Last-Modified"]})
        assert status == 304
        status, _, _ = _get(base + path,
                            headers={"If-Modified-Since": "Mon, 01 Jan 2018 00:00:00 GMT"})
        assert status == 200
    pdf = next(d for d in site.documents if d.format == "pdf")
    _, headers, body = _get(base + pdf.path)
    assert hashlib.sha256(body).hexdigest() == pdf.sha256
    assert _get(base + "/nulle-part.html")[0] == 404
    assert _get(base + "/../../etc/passwd")[0] == 404
    assert _get(base + "/.barometre-demo-site")[0] == 404
    status, headers, _ = _get(base + "/valombre/deliberations", method="HEAD")
    assert status == 200  # urllib followed the redirect to the folder's index


def test_robots_disallows_private_sections_that_exist(site: DemoSite, server) -> None:
    from urllib.robotparser import RobotFileParser

    base = server.base_url
    _, _, body = _get(base + "/robots.txt")
    robots = RobotFileParser()
    robots.parse(body.decode().splitlines())
    assert f"Sitemap: {base}/sitemap.xml" in body.decode()
    assert len(site.private_paths) == len(site.metropoles) + 1
    for path in site.private_paths:
        assert _get(base + path)[0] == 200  # exists ...
        assert not robots.can_fetch("barometre", base + path)  # ... and must not be crawled
    for path in site.pages + [d.path for d in site.documents]:
        assert robots.can_fetch("barometre", base + path), path


def test_sitemap_lists_absolute_urls_of_linked_documents(site: DemoSite, server) -> None:
    base = server.base_url
    _, _, body = _get(base + "/sitemap.xml")
    locs = re.findall(r"<loc>([^<]+)</loc>", body.decode())
    assert all(loc.startswith(base + "/") for loc in locs)
    paths = {urlparse(loc).path for loc in locs}
    assert {d.path for d in site.documents if d.published == "linked"} <= paths
    for loc in locs[:10]:
        assert _get(loc, method="HEAD")[0] == 200


def test_deliberations_csv_is_scdl_with_absolute_urls_that_resolve(site: DemoSite,
                                                                   server) -> None:
    base = server.base_url
    for slug in site.metropoles:
        status, headers, body = _get(base + site.csv_paths[slug])
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
        assert list(rows[0].keys()) == SCDL_COLUMNS
        delib_paths = {d.path for d in site.documents_of(slug) if d.doc_type == "deliberation"}
        urls = [r["DELIB_URL"] for r in rows if r["DELIB_URL"]]
        assert {urlparse(u).path for u in urls} == delib_paths
        assert len(rows) > len(urls)  # plus a deliberation whose act is not published
        for row in rows:
            assert re.fullmatch(r"\d{14}", row["COLL_SIRET"])
            assert re.fullmatch(r"\d\.\d{1,2}", row["DELIB_MATIERE_CODE"])
            assert re.fullmatch(r"20\d\d-\d\d-\d\d", row["DELIB_DATE"])
            assert row["COLL_NOM"] and row["DELIB_ID"] and row["DELIB_OBJET"]
            assert int(row["VOTE_POUR"]) + int(row["VOTE_CONTRE"]) + int(
                row["VOTE_ABSTENTION"]) <= int(row["VOTE_REEL"]) <= int(row["VOTE_EFFECTIF"])
        for url in urls:
            assert url.startswith(base + f"/{slug}/")
            status, headers, pdf = _get(url)
            assert status == 200 and pdf.startswith(b"%PDF"), url
    # On disk the CSV holds root-relative paths; another base URL gives other absolute URLs.
    raw = (site.root / site.csv_paths["valombre"].lstrip("/")).read_bytes()
    assert b",/valombre/deliberations/" in raw
    other = absolutize_scdl_csv(raw, "http://127.0.0.1:9/")
    assert b",http://127.0.0.1:9/valombre/deliberations/" in other
    assert absolutize_scdl_csv(b"a,b\r\n1,/x\r\n", "http://h") == b"a,b\r\n1,/x\r\n"


def test_registry_points_each_metropole_at_its_own_prefix(site: DemoSite, server) -> None:
    base = server.base_url
    registry = demo_registry(base)
    assert registry["version"] == 1
    entries = {m["slug"]: m for m in registry["metropoles"]}
    assert list(entries) == site.metropoles
    for slug, m in entries.items():
        assert m["fictional"] is True and m["domains"] == ["127.0.0.1"]
        assert re.fullmatch(r"\d{9}", m["siren"])
        own = re.compile(m["allow"][0])
        assert all(own.match(u) for u in m["start_urls"])
        assert own.match(f"{base}/{slug}/deliberations/x.pdf")
        assert not any(own.match(f"{base}/{o}/") for o in entries if o != slug)
        (dataset,) = m["deliberation_datasets"]
        assert dataset["format"] == "scdl-csv" and _get(dataset["url"])[0] == 200
        assert _get(m["start_urls"][0])[0] == 200
        assert _get(m["sitemaps"][0])[0] == 200


def test_registry_loads_with_the_crawler_validator(server, tmp_path: Path) -> None:
    registry_mod = pytest.importorskip("crawler.registry")
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(demo_registry(server.base_url), allow_unicode=True),
                    encoding="utf-8")
    loaded = registry_mod.load_registry(path)
    assert [m.slug for m in loaded.metropoles] == ["valombre", "cantelune", "brumeval",
                                                   "aubeclair"]


def test_server_stops_and_a_missing_site_is_a_user_error(site: DemoSite, tmp_path: Path) -> None:
    with serve(site.root) as srv:
        url = srv.base_url + "/"
        assert _get(url)[0] == 200
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    with pytest.raises(BarometreError, match="no built demo site"):
        serve(tmp_path)


# --- the designed contrasts --------------------------------------------------------------
def _body_text(site: DemoSite, doc, pdf_pages: dict[str, list[str]]) -> str:
    """Document text roughly as the extract stage gives it: running header, footer and
    letterhead dropped, hyphenated line ends joined; for HTML the <main> element only."""
    if doc.format == "html":
        page = (site.root / doc.path.lstrip("/")).read_text(encoding="utf-8")
        main = page[page.index("<main>"):page.index("</main>")]
        return html.unescape(re.sub(r"<[^>]+>", " ", main))
    kept = []
    for i, text in enumerate(pdf_pages[doc.path]):
        lines = text.splitlines()[1:-1]
        kept.extend(lines[3:] if i == 0 else lines)
    return re.sub(r"(\w)-\n(\w)", r"\1\2", "\n".join(kept)).replace("\n", " ")


@pytest.mark.slow
def test_designed_leaders_lead_their_theme_with_the_project_lexicons(site: DemoSite,
                                                                    pdf_pages) -> None:
    """Each designed leader has at least twice the counted hits per 10,000 words of the
    runner-up on its theme, and the largest share of documents with the theme."""
    lexicons = pytest.importorskip("nlp.annotate.lexicons")
    themes = pytest.importorskip("nlp.annotate.annotator")
    lexicon_dir = Path(__file__).resolve().parents[2] / "lexicons"
    annotator = themes.ThemeAnnotator(lexicons.load_lexicons(lexicon_dir), mode="fast")
    words = {slug: 0 for slug in site.metropoles}
    hits = {t: dict.fromkeys(site.metropoles, 0) for t in DESIGNED_LEADERS}
    docs_with = {t: dict.fromkeys(site.metropoles, 0) for t in DESIGNED_LEADERS}
    for doc in site.documents:
        result = annotator.annotate_one(_body_text(site, doc, pdf_pages))
        words[doc.metropole] += result.n_words
        for theme in DESIGNED_LEADERS:
            hits[theme][doc.metropole] += sum(
                1 for h in result.hits if h.count_theme == theme)
            docs_with[theme][doc.metropole] += theme in result.themes
    for theme, leader in DESIGNED_LEADERS.items():
        rate = {m: hits[theme][m] / words[m] * 10_000 for m in site.metropoles}
        share = {m: docs_with[theme][m] / len(site.documents_of(m)) for m in site.metropoles}
        runner_up = max(v for m, v in rate.items() if m != leader)
        assert rate[leader] >= 2 * runner_up, (theme, rate)
        assert share[leader] == max(share.values()), (theme, share)
        assert share[leader] > max(v for m, v in share.items() if m != leader), (theme, share)
