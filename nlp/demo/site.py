"""Demo corpus: build the static demo website, serve it on 127.0.0.1, describe it as a registry.

Stage: none (input of ``barometre demo``). Inputs: the data files under ``nlp/demo/content``.
Outputs: a static site written by :func:`build_site`, served by :func:`serve`, and the registry
dict :func:`demo_registry` that points the real crawler at it.

Site map (``<m>`` is a metropolis slug: valombre, cantelune, brumeval, aubeclair)::

    /                               index of the fictional metropolises
    /robots.txt                     Disallow: /<m>/espace-agents/ and /prive/
    /sitemap.xml                    every public HTML page and linked PDF, with <lastmod>
    /prive/                         private page (exists, disallowed by robots.txt)
    /<m>/                           home of a metropolis (links to everything below)
    /<m>/numerique/<stem>.html      web pages of the digital strategy
    /<m>/documents/<stem>.pdf       strategy documents, reports, minutes (PDF)
    /<m>/deliberations/             list of deliberations (links to PDFs)
    /<m>/deliberations/<stem>.pdf   deliberation PDFs; one per metropolis is only reachable
                                    through the CSV (``published: csv-only``)
    /<m>/open-data/                 page linking to the CSV of deliberations
    /<m>/open-data/deliberations.csv  SCDL "délibérations" CSV; on disk DELIB_URL holds
                                    root-relative paths, the server fills in its base URL
    /<m>/espace-agents/             private page (exists, disallowed by robots.txt)

One deliberately broken link: ``/brumeval/deliberations/`` links to
``/brumeval/deliberations/2020-06-retiree.pdf``, which does not exist (404, to exercise the
crawler's failure statuses). It is listed in :attr:`DemoSite.broken_links`.

Every page and PDF carries :data:`~nlp.demo.content.FICTIONAL_MARK`. The build is
deterministic: two builds give byte-identical files (the corpus store is content-addressed,
so a re-run of the demo must not see new documents). The served CSV depends on the port.
"""
from __future__ import annotations

import csv
import email.utils
import hashlib
import html
import io
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from nlp.demo.content import (CONTENT_DIR, FICTIONAL_MARK, DemoMetropole, SourceDoc,
                              load_documents, load_metropoles, plain)
from nlp.demo.pdf import french_date, render_pdf, transmission_date
from nlp.errors import BarometreError

log = logging.getLogger(__name__)

SITE_MARKER = ".barometre-demo-site"
SCDL_COLUMNS = [
    "COLL_NOM", "COLL_SIRET", "DELIB_ID", "DELIB_DATE", "DELIB_MATIERE_CODE",
    "DELIB_MATIERE_NOM", "DELIB_OBJET", "BUDGET_ANNEE", "BUDGET_NOM", "PREF_ID", "PREF_DATE",
    "VOTE_EFFECTIF", "VOTE_REEL", "VOTE_POUR", "VOTE_CONTRE", "VOTE_ABSTENTION", "DELIB_URL",
]
# Theme id (DESIGN.md §5) -> slug of the metropolis whose documents were written to lead it.
DESIGNED_LEADERS: dict[str, str] = {
    "inclusion": "valombre",
    "donnees": "cantelune",
    "frein_interne": "brumeval",
    "citoyennete": "aubeclair",
}
BROKEN_LINK = "/brumeval/deliberations/2020-06-retiree.pdf"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".pdf": "application/pdf",
    ".csv": "text/csv; charset=utf-8", ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8", ".css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class DemoDocument:
    """One document of the built site (a content document rendered to HTML or PDF)."""

    metropole: str
    path: str          # root-relative URL path, e.g. /valombre/documents/x.pdf
    doc_type: str
    title: str
    date: str          # ISO
    format: str        # pdf | html
    published: str     # linked | csv-only
    sha256: str


@dataclass
class DemoSite:
    """What :func:`build_site` wrote: where, which documents, which URLs."""

    root: Path
    metropoles: list[str]
    documents: list[DemoDocument] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)         # every public HTML page path
    private_paths: list[str] = field(default_factory=list)  # exist, disallowed by robots.txt
    broken_links: list[str] = field(default_factory=list)   # linked on purpose, 404
    csv_paths: dict[str, str] = field(default_factory=dict)  # slug -> CSV path

    def documents_of(self, slug: str) -> list[DemoDocument]:
        return [d for d in self.documents if d.metropole == slug]


# --- build -------------------------------------------------------------------------------
def build_site(dest: Path, content_dir: Path = CONTENT_DIR) -> DemoSite:
    """Write the whole static demo site into ``dest`` and describe it.

    ``dest`` must be empty, absent, or a previous demo build (recognised by a marker file,
    then replaced). Deterministic: the same content gives byte-identical files.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        if not (dest / SITE_MARKER).exists():
            raise BarometreError(f"{dest} is not empty and is not a barometre demo site; "
                                 "choose an empty folder")
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    metros = load_metropoles(content_dir)
    site = DemoSite(root=dest, metropoles=[m.slug for m in metros])
    sitemap: list[tuple[str, str]] = []

    docs_of = {m.slug: load_documents(m, content_dir) for m in metros}
    # Files get the date of their document as mtime (others the latest date of the corpus),
    # so Last-Modified is the same after a rebuild and conditional requests still get 304.
    latest = max(d.date for docs in docs_of.values() for d in docs)

    def write(path: str, data: bytes | str, when: date | None = None) -> bytes:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        target = dest / path.lstrip("/")
        if path.endswith("/"):
            target = target / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw)
        stamp = _timestamp(when or latest)
        os.utime(target, (stamp, stamp))
        return raw

    for metro in metros:
        _build_metropole(metro, docs_of[metro.slug], metros, site, sitemap, write)

    write("/", _page(None, metros, "Métropoles fictives — corpus de démonstration",
                     _index_body(metros), "/"))
    site.pages.append("/")
    write("/prive/", _page(None, metros, "Espace privé", "<p>Accès réservé aux "
                           "administrateurs du site de démonstration. Cette page ne doit pas "
                           "être collectée (robots.txt).</p>", "/prive/"))
    site.private_paths.append("/prive/")
    robots = ["# Site de démonstration de barometre (métropoles fictives)", "User-agent: *"]
    robots += [f"Disallow: /{m.slug}/espace-agents/" for m in metros]
    robots += ["Disallow: /prive/", "", "Sitemap: /sitemap.xml", ""]
    write("/robots.txt", "\n".join(robots))
    write("/sitemap.xml", _sitemap(sitemap))
    write("/" + SITE_MARKER, "barometre demo site\n")
    log.info("demo site built in %s: %d documents, %d pages", dest, len(site.documents),
             len(site.pages))
    return site


def _build_metropole(metro: DemoMetropole, docs: list[SourceDoc], metros: list[DemoMetropole],
                     site: DemoSite, sitemap: list[tuple[str, str]], write: Any) -> None:
    prefix = f"/{metro.slug}/"
    rows: list[dict[str, str]] = []
    for doc in docs:
        if doc.format == "html":
            path = f"{prefix}numerique/{doc.stem}.html"
        elif doc.doc_type == "deliberation":
            path = f"{prefix}deliberations/{doc.stem}.pdf"
        else:
            path = f"{prefix}documents/{doc.stem}.pdf"
        if doc.doc_type == "deliberation":
            rows.append(_scdl_row(metro, doc, "" if doc.published == "unpublished" else path))
        if doc.published == "unpublished":
            continue  # a CSV row without a published file
        if doc.format == "html":
            raw = write(path, _page(metro, metros, plain(doc.title), _doc_html(doc), path,
                                    doc.date), doc.date)
            site.pages.append(path)
        else:
            raw = write(path, render_pdf(doc, metro), doc.date)
        site.documents.append(DemoDocument(
            metropole=metro.slug, path=path, doc_type=doc.doc_type, title=plain(doc.title),
            date=doc.date.isoformat(), format=doc.format, published=doc.published,
            sha256=hashlib.sha256(raw).hexdigest()))
        if doc.published == "linked":
            sitemap.append((path, doc.date.isoformat()))

    mine = [d for d in site.documents if d.metropole == metro.slug and d.published == "linked"]
    home = _home_body(metro, mine)
    write(prefix, _page(metro, metros, metro.name, home, prefix))
    delibs = [d for d in mine if d.doc_type == "deliberation"]
    write(f"{prefix}deliberations/",
          _page(metro, metros, "Délibérations du Conseil", _delib_body(metro, delibs),
                f"{prefix}deliberations/"))
    write(f"{prefix}open-data/", _page(metro, metros, "Données ouvertes",
                                       _opendata_body(metro), f"{prefix}open-data/"))
    write(f"{prefix}espace-agents/", _page(
        metro, metros, "Espace agents", "<p>Intranet des agents métropolitains : accès "
        "réservé. Page exclue de la collecte par robots.txt.</p>", f"{prefix}espace-agents/"))
    last = max(d.date for d in mine)
    for path in (prefix, f"{prefix}deliberations/", f"{prefix}open-data/"):
        site.pages.append(path)
        sitemap.append((path, last))
    site.private_paths.append(f"{prefix}espace-agents/")
    csv_path = f"{prefix}open-data/deliberations.csv"
    write(csv_path, _scdl_csv(rows))
    site.csv_paths[metro.slug] = csv_path
    if metro.slug == "brumeval":
        site.broken_links.append(BROKEN_LINK)


def _timestamp(when: date) -> float:
    return datetime(when.year, when.month, when.day, 12, 0, tzinfo=timezone.utc).timestamp()


def _scdl_row(metro: DemoMetropole, doc: SourceDoc, path: str) -> dict[str, str]:
    effectif, reel, pour, contre, abst = doc.meta["vote"].split()
    code, _, matiere = doc.meta["matiere"].partition(" | ")
    budget_year, _, budget_name = doc.meta.get("budget", "").partition(" | ")
    pref = transmission_date(doc)
    return {
        "COLL_NOM": metro.name, "COLL_SIRET": metro.siret, "DELIB_ID": doc.meta["number"],
        "DELIB_DATE": doc.date.isoformat(), "DELIB_MATIERE_CODE": code,
        "DELIB_MATIERE_NOM": matiere, "DELIB_OBJET": plain(doc.title),
        "BUDGET_ANNEE": budget_year, "BUDGET_NOM": budget_name, "PREF_ID": "PREF999",
        "PREF_DATE": pref.isoformat(), "VOTE_EFFECTIF": effectif, "VOTE_REEL": reel,
        "VOTE_POUR": pour, "VOTE_CONTRE": contre, "VOTE_ABSTENTION": abst, "DELIB_URL": path,
    }


def _scdl_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SCDL_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (r["DELIB_DATE"], r["DELIB_ID"])):
        writer.writerow(row)
    return buf.getvalue()


def absolutize_scdl_csv(data: bytes, base_url: str) -> bytes:
    """Rewrite root-relative ``DELIB_URL`` values (``/m/x.pdf``) as ``base_url + path``.

    CSVs without a ``DELIB_URL`` column are returned unchanged.
    """
    text = data.decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "DELIB_URL" not in reader.fieldnames:
        return data
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=reader.fieldnames, lineterminator="\r\n")
    writer.writeheader()
    base = base_url.rstrip("/")
    for row in reader:
        if row["DELIB_URL"].startswith("/"):
            row["DELIB_URL"] = base + row["DELIB_URL"]
        writer.writerow(row)
    return buf.getvalue().encode("utf-8")


# --- HTML ----------------------------------------------------------------------------------
def _e(text: str) -> str:
    return html.escape(plain(text), quote=True)


def _page(metro: DemoMetropole | None, metros: list[DemoMetropole], title: str, body: str,
          path: str, published: date | None = None) -> str:
    """A full HTML page with the site chrome (menu, breadcrumb, footer) around ``body``."""
    site_name = metro.name if metro else "Métropoles fictives"
    # Pages of the strategy section carry the section name in <title> and breadcrumb, as
    # real CMS pages do (and as the crawler's relevance score reads them).
    section = "Stratégie numérique" if "/numerique/" in path else ""
    if metro:
        p = f"/{metro.slug}/"
        menu = (f'<li><a href="{p}">Accueil</a></li>'
                f'<li><a href="{p}deliberations/">Délibérations</a></li>'
                f'<li><a href="{p}open-data/">Données ouvertes</a></li>'
                f'<li><a href="{p}espace-agents/">Espace agents</a></li>'
                '<li><a href="/">Toutes les métropoles</a></li>')
        crumb = f'<a href="/">Accueil</a> › <a href="{p}">{_e(metro.name)}</a>'
        if section:
            crumb += f" › {section}"
    else:
        menu = "".join(f'<li><a href="/{m.slug}/">{_e(m.name)}</a></li>' for m in metros)
        crumb = '<a href="/">Accueil</a>'
    return f"""<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<title>{_e(title)} — {section + " — " if section else ""}{_e(site_name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="description" content="{_e(FICTIONAL_MARK)}">
{f'<meta property="article:published_time" content="{published.isoformat()}">' if published else ""}
<style>body{{font-family:sans-serif;max-width:60rem;margin:auto;padding:0 1rem;color:#222}}
header{{border-bottom:3px solid #1e3c78}}nav ul{{list-style:none;padding:0}}
nav li{{display:inline;margin-right:1rem}}.fictive{{background:#fff3c4;padding:.3rem .6rem}}
footer{{border-top:1px solid #999;margin-top:2rem;font-size:.85rem}}</style>
</head>
<body>
<div class="fictive" role="note">{_e(FICTIONAL_MARK)}</div>
<header>
<p class="site-name"><strong>{_e(site_name)}</strong></p>
<nav aria-label="Menu principal"><ul>{menu}</ul></nav>
</header>
<p class="breadcrumb">{crumb}</p>
<main>
<h1>{_e(title)}</h1>
{body}
</main>
<footer>
<p>{_e(FICTIONAL_MARK)}. Les collectivités, personnes, chiffres et délibérations de ce site
sont inventés ; toute ressemblance avec une métropole existante serait fortuite.</p>
<p><a href="/">Plan du site</a> · <a href="/sitemap.xml">sitemap.xml</a> ·
Mentions légales : site statique généré par barometre.</p>
</footer>
</body>
</html>
"""


def _doc_html(doc: SourceDoc) -> str:
    parts = [f'<p class="date">Publié le {french_date(doc.date)}</p>']
    in_list = False
    for block in doc.blocks:
        if block.kind == "li" and not in_list:
            parts.append("<ul>")
            in_list = True
        elif block.kind != "li" and in_list:
            parts.append("</ul>")
            in_list = False
        tag = {"h1": "h2", "h2": "h3", "p": "p", "li": "li"}[block.kind]
        parts.append(f"<{tag}>{_e(block.text)}</{tag}>")
    if in_list:
        parts.append("</ul>")
    return "\n".join(parts)


def _home_body(metro: DemoMetropole, docs: list[DemoDocument]) -> str:
    pages = [d for d in docs if d.format == "html"]
    files = [d for d in docs if d.format == "pdf" and d.doc_type != "deliberation"]
    out = [f"<p><em>{_e(metro.tagline)}</em></p>", f"<p>{_e(metro.intro)}</p>",
           "<h2>Notre stratégie numérique</h2>", "<ul>"]
    out += [f'<li><a href="{d.path}">{_e(d.title)}</a></li>' for d in pages]
    out += ["</ul>", "<h2>Documents à télécharger</h2>", "<ul>"]
    out += [f'<li><a href="{d.path}">{_e(d.title)}</a> (PDF, '
            f'{french_date(date.fromisoformat(d.date))})</li>' for d in files]
    out += ["</ul>", "<h2>Vie institutionnelle</h2>", "<ul>",
            f'<li><a href="/{metro.slug}/deliberations/">Délibérations du Conseil de la '
            "Métropole</a></li>",
            f'<li><a href="/{metro.slug}/open-data/">Données ouvertes : liste des '
            "délibérations (format SCDL)</a></li>", "</ul>"]
    return "\n".join(out)


def _delib_body(metro: DemoMetropole, delibs: list[DemoDocument]) -> str:
    out = ["<p>Retrouvez ci-dessous les délibérations du Conseil de la Métropole publiées "
           "en ligne. La liste complète figure dans le jeu de données ouvertes.</p>",
           "<table><thead><tr><th>Séance</th><th>Objet</th></tr></thead><tbody>"]
    for d in sorted(delibs, key=lambda d: (d.date, d.path), reverse=True):
        out.append(f'<tr><td>{french_date(date.fromisoformat(d.date))}</td>'
                   f'<td><a href="{d.path}">{_e(d.title)}</a> (PDF)</td></tr>')
    if metro.slug == "brumeval":
        out.append('<tr><td>18 juin 2020</td><td><a href="' + BROKEN_LINK + '">Désignation '
                   "des représentants au syndicat mixte (document retiré)</a> (PDF)</td></tr>")
    out.append("</tbody></table>")
    out.append(f'<p><a href="/{metro.slug}/open-data/">Toutes les délibérations en données '
               "ouvertes</a></p>")
    return "\n".join(out)


def _opendata_body(metro: DemoMetropole) -> str:
    return (
        "<p>La Métropole publie la liste de ses délibérations au format du Socle commun des "
        "données locales (SCDL, schéma « délibérations »), sous Licence Ouverte 2.0. Chaque "
        "ligne donne l'objet, la date de séance, la matière, le résultat du vote et le lien "
        "vers l'acte.</p>\n"
        f'<p><a href="/{metro.slug}/open-data/deliberations.csv">Télécharger la liste des '
        "délibérations (CSV, SCDL)</a></p>")


def _index_body(metros: list[DemoMetropole]) -> str:
    out = ["<p>Ce site est un <strong>corpus de démonstration</strong> de l'outil de "
           "recherche barometre. Les quatre métropoles ci-dessous sont <strong>fictives"
           "</strong> : leurs documents ont été rédigés pour montrer des profils contrastés "
           "de maturité numérique.</p>", "<ul>"]
    out += [f'<li><a href="/{m.slug}/">{_e(m.name)}</a> — {_e(m.tagline)}</li>'
            for m in metros]
    out.append("</ul>")
    return "\n".join(out)


def _sitemap(entries: list[tuple[str, str]]) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for path, lastmod in entries:
        # Root-relative <loc> is not valid in a sitemap: the server makes it absolute.
        lines.append(f"<url><loc>{html.escape(path)}</loc><lastmod>{lastmod}</lastmod></url>")
    lines.append("</urlset>")
    return "\n".join(lines) + "\n"


def absolutize_sitemap(data: bytes, base_url: str) -> bytes:
    """Prefix root-relative ``<loc>`` values (and robots' ``Sitemap:``) with ``base_url``."""
    base = base_url.rstrip("/").encode()
    data = re.sub(rb"<loc>/", b"<loc>" + base + b"/", data)
    return re.sub(rb"(?m)^Sitemap: /", b"Sitemap: " + base + b"/", data)


# --- serve -------------------------------------------------------------------------------
class _Handler(SimpleHTTPRequestHandler):
    """Static files with ETag / Last-Modified, quiet logs, base URL filled into CSV/sitemap."""

    base_url = ""  # set on a per-server subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        body = self._respond()
        if body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond()

    def _respond(self) -> bytes:
        target = Path(self.translate_path(self.path))
        url_path = self.path.split("?", 1)[0].split("#", 1)[0]
        if target.is_dir():
            if not url_path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", url_path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return b""
            target = target / "index.html"
        if not target.is_file() or target.name == SITE_MARKER:
            self.send_error(HTTPStatus.NOT_FOUND, "Not found")
            return b""
        data = target.read_bytes()
        if target.suffix == ".csv":
            data = absolutize_scdl_csv(data, self.base_url)
        elif target.name in ("sitemap.xml", "robots.txt"):
            data = absolutize_sitemap(data, self.base_url)
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        mtime = int(target.stat().st_mtime)
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        not_modified = False
        if inm is not None:
            not_modified = etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        elif ims is not None:
            try:
                since = email.utils.parsedate_to_datetime(ims)
                not_modified = since is not None and int(since.timestamp()) >= mtime
            except (TypeError, ValueError, IndexError, OverflowError):
                not_modified = False
        if not_modified:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.end_headers()
            return b""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type",
                         CONTENT_TYPES.get(target.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
        self.end_headers()
        return data


class DemoServer:
    """A threaded HTTP server for a built demo site; use as a context manager.

    ``base_url`` (``http://127.0.0.1:PORT``, no trailing slash) is known once started.
    """

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0):
        self.directory = Path(directory).resolve()
        if not (self.directory / "index.html").is_file():
            raise BarometreError(f"{self.directory} holds no built demo site (no index.html)")
        self.host = host
        self.requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "DemoServer":
        directory = str(self.directory)
        holder: dict[str, str] = {}

        class Handler(_Handler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=directory, **kwargs)

            @property
            def base_url(self) -> str:  # type: ignore[override]
                return holder["base"]

        try:
            self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        except OSError as exc:
            raise BarometreError(f"cannot serve the demo site on {self.host}:"
                                 f"{self.requested_port}: {exc}") from exc
        self._server.daemon_threads = True
        holder["base"] = self.base_url
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="barometre-demo-server", daemon=True)
        self._thread.start()
        log.info("demo site served at %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "DemoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(directory: Path, host: str = "127.0.0.1", port: int = 0) -> DemoServer:
    """A :class:`DemoServer` for ``directory`` (not started: ``with serve(d) as srv: ...``)."""
    return DemoServer(directory, host, port)


# --- registry ----------------------------------------------------------------------------
def demo_registry(base_url: str, content_dir: Path = CONTENT_DIR) -> dict[str, Any]:
    """The crawler registry (``crawler/metropoles.yaml`` format) for the served demo site.

    ``base_url`` is :attr:`DemoServer.base_url`. Each metropolis is confined to its own path
    prefix by an ``allow`` regex; its SCDL CSV is listed as a deliberation dataset.
    """
    base = base_url.rstrip("/")
    host = re.sub(r"^https?://", "", base).split("/")[0].split(":")[0]
    entries = []
    for m in load_metropoles(content_dir):
        entries.append({
            "slug": m.slug, "name": m.name, "siren": m.siren, "domains": [host],
            "start_urls": [f"{base}/{m.slug}/"], "sitemaps": [f"{base}/sitemap.xml"],
            "deliberation_datasets": [{"url": f"{base}/{m.slug}/open-data/deliberations.csv",
                                       "format": "scdl-csv"}],
            "allow": [f"^{re.escape(base)}/{m.slug}/"], "deny": [], "limits": {},
            "fictional": True,
            "sources": [f"{FICTIONAL_MARK} (nlp/demo/content/{m.slug})"],
        })
    return {
        "version": 1,
        # No ``keywords``: the crawler's default relevance keywords apply, as for real sites.
        "defaults": {"max_pages": 200, "max_depth": 4, "max_file_bytes": 10_000_000,
                     "max_total_bytes": 500_000_000},
        "metropoles": entries,
    }
