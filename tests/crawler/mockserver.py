"""A fixture web site for the crawler tests: a real HTTP server on 127.0.0.1, port 0.

Start it with :func:`start_server` (a thread; ``MockServer.url``, ``.stop()``) or
``python tests/crawler/mockserver.py`` (prints its URL). Every request is recorded (method,
path, Host header, request headers, start/end time, status) and the number of requests in
flight is tracked: ``GET /_control/log`` returns ``{"requests": [...], "max_inflight": n}``,
``GET /_control/reset`` clears them, ``GET /_control/latency?s=0.3`` adds a delay to every
answer (used to interrupt a crawl mid-way). The same data is on ``MockServer.requests``.

Static answers carry ``ETag`` (hash of the body) and ``Last-Modified``; a request with a
matching ``If-None-Match`` or ``If-Modified-Since`` gets ``304 Not Modified``.

URLs (``P`` = the server's own ``http://127.0.0.1:<port>``):

- ``/robots.txt``: ``Disallow: /private/`` and ``Sitemap: P/sitemap.xml``.
- ``/sitemap.xml``: urlset listing ``/sitemap-only.html`` and ``/docs/sitemap-doc.pdf``,
  reachable from nowhere else.
- ``/sitemap-only.html``: "Stratégie numérique : feuille de route" page (relevant, stored).
- ``/``: home page (start URL), links to everything below.
- ``/deliberations?page=1..3``: paginated deliberation listing, 2 detail links per page and a
  "Page suivante" link (page 3 has none).
- ``/deliberations/detail/1..6``: detail page "Délibération n°k" linking to ``/docs/delib-k.pdf``.
- ``/docs/delib-1..6.pdf``: distinct small PDFs (application/pdf).
- ``/strategie-numerique.html``: "Schéma directeur du numérique" HTML strategy page (stored).
- ``/plan-du-site.html``: irrelevant page ("Plan du site", no keyword): followed, not stored.
- ``/latin1.html``: page served as ``text/html; charset=windows-1252`` with accented
  windows-1252 bytes (é, è, œ, ’ and €): stored byte for byte.
- ``/redirect/1`` → 302 ``/redirect/2`` → 301 ``/docs/final.pdf`` (a PDF).
- ``/redirect-out``: 302 to ``http://localhost:<port>/outside.html`` (a redirect leaving the
  entry's domains; linked from nowhere, used by the fetch-policy tests).
- ``/download.php?id=12``: a PDF served as ``application/octet-stream``, with
  ``Content-Disposition: attachment`` and no extension in the URL.
- ``/docs/same-a.pdf`` and ``/copies/same-b.pdf``: the same PDF bytes at two URLs.
- ``/missing.pdf``: 404.
- ``/flaky.pdf``: 500 the first time (per server), then the PDF.
- ``/busy.pdf``: 429 with ``Retry-After: 1`` the first time, then the PDF.
- ``/slow.pdf``: answers after 3 s (past the tests' 1 s timeout).
- ``/docs/big.pdf``: a 300,000-byte PDF with ``Content-Length`` (over the tests' size limit).
- ``http://localhost:<port>/outside.html``: out-of-domain link (same server, other host name).
- ``/private/secret.pdf`` and ``/private/page.html``: disallowed by robots.txt.
- ``/agenda?month=YYYY-MM``: an infinite calendar (each month links to the next and previous).
- ``/data/deliberations.csv``: an SCDL CSV (``;``, BOM) with 4 rows: 3 with DELIB_URLs to
  ``/delib-files/2024-00k.pdf`` and one bad row (no DELIB_ID).
- ``/delib-files/2024-001..3.pdf``: the deliberations of the CSV (PDF).
- ``/data/hostile.csv``: an SCDL CSV whose DELIB_URLs point where the crawler must not go:
  ``http://localhost:<port>/delib-files/2024-003.pdf`` (another host name of this server),
  ``http://169.254.169.254/latest/meta-data/`` (the cloud metadata address),
  ``http://127.0.0.2:<port>/x.pdf`` (loopback), ``http://10.1.2.3/x.pdf`` (private), plus one
  good row (``/delib-files/2024-001.pdf``).
- ``/data/ods-export.json``: an Opendatasoft Explore v2.1 JSON export (2 records, lower-case
  SCDL field names) whose ``delib_url`` point at ``/delib-files/2024-001..2.pdf``.
- Open-data portals and awkward sites (``tests/crawler/portals.py``, whose docstring says which
  real source each reproduces):

  - ``/api/explore/v2.1/catalog/datasets/deliberations-test-metropole/records?limit=&offset=``:
    Opendatasoft v2.1 records, 25 in all (``total_count``), ``limit`` at most 100 (else 400),
    ``delib_url`` to ``/ods-files/<n>.pdf``; the first request for a page after the first is
    answered 429 with ``X-RateLimit-Reset`` one second ahead and no ``Retry-After``.
  - ``/api/records/1.0/search/?dataset=deliberations-test-v1&rows=&start=``: Opendatasoft v1
    search, 12 records (``nhits``), file fields ``delib_url`` / ``cr_url`` without URL, served
    at ``/explore/dataset/deliberations-test-v1/files/f<NNN>/download/`` (and ``cr<NNN>``).
  - ``/api/1/datasets/megalis-delibs/``: a data.gouv.fr dataset answer: a CSV resource declared
    ``format: xml`` (``/static/resources/megalis/deliberation-2024.csv``: SCDL, ``;``, quoted, 3
    rows of the fixture metropolis (SIREN 100000009) and 3 of a commune (200000172), DELIB_URLs
    ``/megalis/<siren>/Deliberation/2024/<n>.pdf``) and a PDF notice;
    ``/api/1/datasets/moved-delibs/`` 301 → the former; ``/api/1/datasets/gone-delibs/`` 404.
  - ``/data/ville-utf16.txt``: a local export in UTF-16 (BOM, tabs, no header), two lines per
    record: date, title, document URL (``/ville-files/1..3.pdf``); decision, number.
  - ``/data/mangled.csv``: two deliberations sharing the mangled id ``2022,00103`` (documents
    ``/mangled/1.pdf`` and ``/mangled/2.pdf``) and an exact copy of the second row.
  - ``/webdelib/``: a form (POST to ``/webdelib/seances``, hidden ``_token``, a ``seance_id``
    select with an empty choice and sessions 12 and 13); the answer lists
    ``/webdelib/files/<seance>-<1|2>.pdf``; a POST without the token or a GET gets 403/405.
  - ``/partage/``: a page of a domain shared by a city and its metropolis, linking
    ``/partage/metropole.pdf`` ("… CONSEIL DE LA METROPOLE … SIREN 100000009"),
    ``/partage/ville.pdf`` ("VILLE DE TESTVILLE … CONSEIL MUNICIPAL … Le Maire") and
    ``/partage/neutre.pdf`` (says neither).
- ``/gen/<n>``: generated site for the benchmark: page n links to pages 2n+1 and 2n+2 (up to
  ``?max=N``, default 10000) and ``/gen/<n>`` is a few hundred bytes of HTML.
"""
from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import portals

LAST_MODIFIED = formatdate(1700000000, usegmt=True)
SLOW_SECONDS = 3.0


def make_pdf(text: str, pad_to: int = 0) -> bytes:
    """A small real PDF (fpdf2) with ``text``; padded with a comment to ``pad_to`` bytes."""
    from datetime import datetime, timezone

    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2024, 1, 1, tzinfo=timezone.utc))
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    data = bytes(pdf.output())
    if pad_to > len(data):
        data += b"%" + b"x" * (pad_to - len(data) - 2) + b"\n"
    return data


def html(title: str, body: str, charset: str = "utf-8") -> str:
    return (f"<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"{charset}\"><title>{title}</title>"
            f"</head><body><h1>{title}</h1>{body}</body></html>")


class Site:
    """The fixture site's content, built once per server."""

    def __init__(self) -> None:
        self.pdfs: dict[str, bytes] = {}
        for k in range(1, 7):
            self.pdfs[f"/docs/delib-{k}.pdf"] = make_pdf(f"Deliberation numero {k} du conseil metropolitain.")
        for k in range(1, 4):
            self.pdfs[f"/delib-files/2024-00{k}.pdf"] = make_pdf(f"Deliberation SCDL 2024-00{k}: inclusion numerique.")
        self.pdfs["/docs/final.pdf"] = make_pdf("Document reached through a redirect chain.")
        self.pdfs["/download.php"] = make_pdf("Rapport served as application/octet-stream.")
        same = make_pdf("The same report at two URLs.")
        self.pdfs["/docs/same-a.pdf"] = same
        self.pdfs["/copies/same-b.pdf"] = same
        self.pdfs["/flaky.pdf"] = make_pdf("Served after one 500.")
        self.pdfs["/busy.pdf"] = make_pdf("Served after one 429.")
        self.pdfs["/slow.pdf"] = make_pdf("Too slow.")
        self.pdfs["/docs/big.pdf"] = make_pdf("Too big.", pad_to=300_000)
        self.pdfs["/docs/sitemap-doc.pdf"] = make_pdf("Listed in the sitemap only.")
        self.pdfs["/private/secret.pdf"] = make_pdf("Disallowed by robots.txt.")
        self.latin1 = html(
            "Stratégie numérique – données ouvertes",
            "<p>Café, élève, cœur, l’été : 10 €.</p>",
            charset="windows-1252",
        ).encode("cp1252")


class Handler(BaseHTTPRequestHandler):
    server: "MockHTTPServer"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one round trip per answer, not a delayed ACK wait

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.body = b""
        self.handle_request("GET")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(min(length, 1_000_000))
        self.handle_request("POST")

    def handle_request(self, method: str) -> None:
        srv = self.server
        entry = {"method": method, "path": self.path, "host": self.headers.get("Host", ""),
                 "headers": dict(self.headers.items()), "start": time.time()}
        self._entry = entry
        with srv.lock:
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
            srv.requests.append(entry)
        try:
            if srv.latency and not self.path.startswith("/_control"):
                time.sleep(srv.latency)
            status = self.route(entry)
        except (BrokenPipeError, ConnectionResetError):
            status = -1
        finally:
            self.done()
        entry["status"] = status

    # -- helpers ----------------------------------------------------------------------------
    def send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None,
             conditional: bool = True) -> int:
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if conditional and status == 200:
            if self.headers.get("If-None-Match") == etag or (
                self.headers.get("If-Modified-Since") == LAST_MODIFIED and not self.headers.get("If-None-Match")
            ):
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.done()
                return 304
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if conditional and status == 200:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", LAST_MODIFIED)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.done()
        self.wfile.write(body)
        return status

    def done(self) -> None:
        """Mark the request answered (before the body goes out: the client may start its next
        request as soon as it has read it, before this thread runs again)."""
        entry = self._entry
        if "end" not in entry:
            entry["end"] = time.time()
            with self.server.lock:
                self.server.inflight -= 1

    def page(self, title: str, links: list[tuple[str, str]], extra: str = "") -> int:
        items = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in links)
        return self.send(200, html(title, f"{extra}<ul>{items}</ul>").encode(), "text/html; charset=utf-8")

    def redirect(self, status: int, location: str) -> int:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.done()
        return status

    def first_time(self, path: str) -> bool:
        with self.server.lock:
            seen = path in self.server.hits
            self.server.hits.add(path)
        return not seen

    # -- routes -----------------------------------------------------------------------------
    def route(self, entry: dict[str, Any]) -> int:
        srv = self.server
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        base = f"http://127.0.0.1:{srv.server_port}"
        site = srv.site
        if path == "/_control/log":
            with srv.lock:
                data = {"requests": [dict(r) for r in srv.requests if not r["path"].startswith("/_control")],
                        "max_inflight": srv.max_inflight}
            return self.send(200, json.dumps(data).encode(), "application/json", conditional=False)
        if path == "/_control/reset":
            srv.reset()
            return self.send(200, b"ok", "text/plain", conditional=False)
        if path == "/_control/latency":
            srv.latency = float(query.get("s", ["0"])[0])
            return self.send(200, b"ok", "text/plain", conditional=False)
        if entry["host"].startswith("localhost") and not path.startswith(("/delib-files/", "/ods-files/")):
            return self.page("Hors domaine : stratégie numérique", [])
        status = portals.route(self, path, query, base)
        if status is not None:
            return status
        if path == "/robots.txt":
            body = f"User-agent: *\nDisallow: /private/\n\nSitemap: {base}/sitemap.xml\n"
            return self.send(200, body.encode(), "text/plain")
        if path == "/sitemap.xml":
            urls = "".join(f"<url><loc>{base}{u}</loc></url>" for u in ("/sitemap-only.html", "/docs/sitemap-doc.pdf"))
            body = ('<?xml version="1.0" encoding="UTF-8"?>'
                    f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>')
            return self.send(200, body.encode(), "application/xml")
        if path == "/":
            return self.page("Accueil – Métropole de test", [
                ("/deliberations?page=1", "Délibérations du conseil métropolitain"),
                ("/strategie-numerique.html", "Notre stratégie numérique"),
                ("/plan-du-site.html", "Plan du site"),
                ("/latin1.html", "Données ouvertes"),
                ("/agenda?month=2024-01", "Agenda"),
                ("/private/page.html", "Espace privé"),
                ("/private/secret.pdf", "Document privé"),
                ("/missing.pdf", "Rapport disparu"),
                ("/flaky.pdf", "Rapport instable"),
                ("/busy.pdf", "Rapport très demandé"),
                ("/slow.pdf", "Rapport lent"),
                ("/docs/big.pdf", "Rapport volumineux"),
                ("/redirect/1", "Rapport déplacé"),
                ("/download.php?id=12", "Télécharger le rapport"),
                ("/docs/same-a.pdf", "Rapport (copie A)"),
                ("/copies/same-b.pdf", "Rapport (copie B)"),
                (f"http://localhost:{srv.server_port}/outside.html", "Site partenaire"),
                ("mailto:contact@example.org", "Écrire"),
            ])
        if path == "/deliberations":
            n = int(query.get("page", ["1"])[0])
            if not 1 <= n <= 3:
                return self.send(404, b"no such page", "text/plain", conditional=False)
            links = [(f"/deliberations/detail/{k}", f"Délibération n°{k}") for k in (2 * n - 1, 2 * n)]
            if n < 3:
                links.append((f"/deliberations?page={n + 1}", "Page suivante"))
            return self.page(f"Délibérations – page {n}", links)
        if path.startswith("/deliberations/detail/"):
            k = int(path.rsplit("/", 1)[1])
            return self.page(f"Délibération n°{k} du conseil métropolitain",
                             [(f"/docs/delib-{k}.pdf", f"Télécharger la délibération {k} (PDF)")])
        if path == "/strategie-numerique.html":
            return self.page("Schéma directeur du numérique 2024-2030", [("/", "Accueil")],
                             "<p>La métropole adopte sa stratégie numérique et d'inclusion numérique.</p>")
        if path == "/sitemap-only.html":
            return self.page("Stratégie numérique : feuille de route", [])
        if path == "/plan-du-site.html":
            return self.page("Plan du site", [("/", "Accueil")])
        if path == "/latin1.html":
            return self.send(200, site.latin1, "text/html; charset=windows-1252")
        if path == "/agenda":
            month = query.get("month", ["2024-01"])[0]
            y, m = (int(x) for x in month.split("-"))
            nxt = f"{y + (m == 12)}-{m % 12 + 1:02d}"
            prv = f"{y - (m == 1)}-{(m - 2) % 12 + 1:02d}"
            return self.page(f"Agenda {month}", [(f"/agenda?month={prv}", "Mois précédent"),
                                                 (f"/agenda?month={nxt}", "Mois suivant")])
        if path == "/redirect-out":
            return self.redirect(302, f"http://localhost:{srv.server_port}/outside.html")
        if path.startswith("/redirect/"):
            k = int(path.rsplit("/", 1)[1])
            target = "/redirect/2" if k == 1 else "/docs/final.pdf"
            self.send_response(302 if k == 1 else 301)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.done()
            return 302 if k == 1 else 301
        if path == "/download.php":
            return self.send(200, site.pdfs["/download.php"], "application/octet-stream",
                             {"Content-Disposition": 'attachment; filename="rapport"'})
        if path == "/flaky.pdf" and self.first_time(path):
            return self.send(500, b"oops", "text/plain", conditional=False)
        if path == "/busy.pdf" and self.first_time(path):
            return self.send(429, b"slow down", "text/plain", {"Retry-After": "1"}, conditional=False)
        if path == "/slow.pdf":
            time.sleep(SLOW_SECONDS)
        if path == "/data/ods-export.json":
            return self.send(200, ods_json(base), "application/json; charset=utf-8")
        if path == "/data/deliberations.csv":
            return self.send(200, scdl_csv(base), "text/csv; charset=utf-8")
        if path == "/data/hostile.csv":
            return self.send(200, hostile_csv(base, srv.server_port), "text/csv; charset=utf-8")
        if path.startswith("/gen/"):
            n = int(path.rsplit("/", 1)[1])
            limit = int(query.get("max", ["10000"])[0])
            kids = [c for c in (2 * n + 1, 2 * n + 2) if c < limit]
            links = "".join(f'<a href="/gen/{c}?max={limit}">Page {c}</a> ' for c in kids)
            body = html(f"Page {n}", f"<p>{'Texte de remplissage. ' * 10}</p>{links}")
            return self.send(200, body.encode(), "text/html; charset=utf-8")
        if path in site.pdfs:
            return self.send(200, site.pdfs[path], "application/pdf")
        return self.send(404, b"not found", "text/plain", conditional=False)


def scdl_csv(base: str) -> bytes:
    """An SCDL deliberations CSV (BOM, ';') whose DELIB_URLs point at this server."""
    header = ("COLL_NOM;COLL_SIRET;DELIB_ID;DELIB_DATE;DELIB_MATIERE_CODE;DELIB_MATIERE_NOM;DELIB_OBJET;"
              "BUDGET_ANNEE;BUDGET_NOM;PREF_ID;PREF_DATE;VOTE_EFFECTIF;VOTE_REEL;VOTE_POUR;VOTE_CONTRE;"
              "VOTE_ABSTENTION;DELIB_URL")
    rows = [header]
    for k in range(1, 4):
        rows.append(f"Métropole de test;10000000900009;2024-00{k};2024-03-1{k};8.9;Autres domaines;"
                    f"\"Inclusion numérique : convention n°{k}\";;;;;90;88;80;5;3;{base}/delib-files/2024-00{k}.pdf")
    rows.append(f"Métropole de test;10000000900009;;2024-03-20;8.9;Autres domaines;Sans identifiant;;;;;"
                f"90;88;80;5;3;{base}/delib-files/2024-009.pdf")
    return ("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8")


def hostile_csv(base: str, port: int) -> bytes:
    """An SCDL CSV whose DELIB_URLs point outside the entry or at internal addresses."""
    urls = [f"{base}/delib-files/2024-001.pdf", f"http://localhost:{port}/delib-files/2024-003.pdf",
            "http://169.254.169.254/latest/meta-data/", f"http://127.0.0.2:{port}/x.pdf", "http://10.1.2.3/x.pdf"]
    rows = ["DELIB_ID;DELIB_DATE;DELIB_OBJET;DELIB_URL"]
    rows += [f"H-{k};2024-05-0{k};Objet {k};{url}" for k, url in enumerate(urls, start=1)]
    return ("\r\n".join(rows) + "\r\n").encode("utf-8")


def ods_json(base: str) -> bytes:
    """An Opendatasoft Explore API v2.1 JSON export (``/exports/json``) of deliberations."""
    records = [
        {"coll_nom": "Métropole de test", "coll_siret": "10000000900009", "delib_id": f"ODS-{k}",
         "delib_date": f"2024-04-0{k}", "delib_matiere_code": "5.2", "delib_matiere_nom": "Fonctionnement des assemblées",
         "delib_objet": f"Feuille de route numérique, volet {k}", "vote_pour": 70 + k,
         "delib_url": f"{base}/delib-files/2024-00{k}.pdf"}
        for k in (1, 2)
    ]
    return json.dumps(records, ensure_ascii=False).encode("utf-8")


class MockHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.site = Site()
        self.portals = portals.Portals()
        self.latency = 0.0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict[str, Any]] = []
            self.inflight = 0
            self.max_inflight = 0
            self.hits: set[str] = set()


class MockServer:
    """The fixture server running in a background thread."""

    def __init__(self) -> None:
        self.httpd = MockHTTPServer()
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.httpd.lock:
            return [dict(r) for r in self.httpd.requests]

    @property
    def max_inflight(self) -> int:
        return self.httpd.max_inflight

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def reset(self) -> None:
        self.httpd.reset()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_server() -> MockServer:
    return MockServer()


if __name__ == "__main__":
    server = start_server()
    print(server.url, flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()
        sys.exit(0)
