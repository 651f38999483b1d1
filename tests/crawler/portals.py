"""The open-data portals and awkward sites of the fixture server (tests/crawler/mockserver.py).

Each answer reproduces the real shape it stands for (field names, paging, attachments, rate
limits), as found in stored public material:

- Opendatasoft Explore v2.1 ``/records`` (Rennes Métropole's deliberations dataset, as read by
  Sylvain35170/bruz-en-action scripts/agents/agent_metropole_delibs.py): ``{"total_count",
  "results"}``, at most 100 records an answer (``limit`` over 100 is a 400 like the portal's),
  ``offset`` paging, lower-case SCDL fields, ``delib_id`` C… (conseil) or B… (bureau);
  the first request of the second page is refused with 429 and ``X-RateLimit-*`` headers
  (the portal's daily quota headers) and no ``Retry-After``.
- Opendatasoft v1 ``/api/records/1.0/search/?dataset=…&rows=…&start=…`` (Tours Métropole's,
  as read by yletaillanter/ToursDeliberations): ``{"nhits", "records": [{"datasetid",
  "recordid", "fields", "record_timestamp"}]}``, ``delib_url`` and ``cr_url`` are file fields
  without a URL, downloaded at ``/explore/dataset/<dataset>/files/<id>/download/``.
- data.gouv.fr API ``/api/1/datasets/<slug>/`` (Mégalis Bretagne's dataset, as published by
  megalis-bretagne/opendata-extraction app/tasks/datagouv_tasks.py): resources whose CSV is
  declared ``format: xml``, a PDF documentation resource, an SCDL CSV (``;``, every cell
  quoted) that mixes collectivities (filter on the SIREN).
- a local export in UTF-16 with two physical lines per record, no header; an SCDL CSV with a
  spreadsheet-mangled id; a WebDelib-like page where the session is chosen in a form (POST with
  a hidden token); pages and PDFs of a domain shared by a city and its metropolis; registry
  check targets (a moved dataset, a broken one).
"""
from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

SIREN = "100000009"  # the fixture metropolis (conftest.fixture_registry)
ODS_V21 = "/api/explore/v2.1/catalog/datasets/deliberations-test-metropole/records"
ODS_V1 = "/api/records/1.0/search/"
V1_DATASET = "deliberations-test-v1"
ODS_TOTAL, V1_TOTAL = 25, 12
FORM_TOKEN = "a1b2c3"
SESSIONS = {"12": "Conseil du 12 février 2024", "13": "Conseil du 28 mars 2024"}


def _pdf(text: str) -> bytes:
    from mockserver import make_pdf

    return make_pdf(text)


class Portals:
    """Content built once per server."""

    def __init__(self) -> None:
        self.pdfs: dict[str, bytes] = {}
        for n in range(1, ODS_TOTAL + 1):
            self.pdfs[f"/ods-files/{n}.pdf"] = _pdf(f"Deliberation ODS {n}: numerique.")
        for n in range(1, V1_TOTAL + 1):
            self.pdfs[f"/explore/dataset/{V1_DATASET}/files/f{n:03d}/download/"] = _pdf(f"Deliberation Tours {n}.")
            self.pdfs[f"/explore/dataset/{V1_DATASET}/files/cr{n:03d}/download/"] = _pdf(f"Compte rendu {n}.")
        for n in range(1, 4):
            self.pdfs[f"/megalis/{SIREN}/Deliberation/2024/{n}.pdf"] = _pdf(f"Deliberation Megalis {n}.")
            self.pdfs[f"/megalis/200000172/Deliberation/2024/{n}.pdf"] = _pdf(f"Deliberation commune {n}.")
        for n in range(1, 3):
            self.pdfs[f"/mangled/{n}.pdf"] = _pdf(f"Deliberation mangled {n}.")
        for n in range(1, 4):
            self.pdfs[f"/ville-files/{n}.pdf"] = _pdf(f"Deliberation de la ville {n}.")
        for seance in SESSIONS:
            for n in (1, 2):
                self.pdfs[f"/webdelib/files/{seance}-{n}.pdf"] = _pdf(f"Seance {seance} deliberation {n}.")
        self.pdfs["/partage/metropole.pdf"] = _pdf(
            "EXTRAIT DU REGISTRE DES DELIBERATIONS DU CONSEIL DE LA METROPOLE\nSeance du 12 fevrier 2024\n"
            "Metropole de test - SIREN 100000009\nFeuille de route numerique.")
        self.pdfs["/partage/ville.pdf"] = _pdf(
            "VILLE DE TESTVILLE\nEXTRAIT DU REGISTRE DES DELIBERATIONS DU CONSEIL MUNICIPAL\n"
            "Le Maire expose au conseil municipal le plan numerique des ecoles.")
        self.pdfs["/partage/neutre.pdf"] = _pdf("Guide pratique des demarches en ligne.")


def route(handler: Any, path: str, query: dict[str, list[str]], base: str) -> int | None:
    """Answer ``path`` if it is one of the portals' URLs (None: not ours)."""
    portals: Portals = handler.server.portals
    if path == ODS_V21:
        return _ods_records(handler, query, base)
    if path == ODS_V1 and query.get("dataset") == [V1_DATASET]:
        return _ods_v1(handler, query)
    if path in ("/api/1/datasets/megalis-delibs/", "/api/1/datasets/megalis-delibs"):
        return handler.send(200, json.dumps(_datagouv(base)).encode(), "application/json")
    if path == "/api/1/datasets/moved-delibs/":
        return handler.redirect(301, f"{base}/api/1/datasets/megalis-delibs/")
    if path == "/api/1/datasets/gone-delibs/":
        return handler.send(404, b'{"message": "Not Found"}', "application/json", conditional=False)
    if path == "/static/resources/megalis/deliberation-2024.csv":
        return handler.send(200, _megalis_csv(base), "text/csv")
    if path == "/static/resources/megalis/notice.pdf":
        return handler.send(200, _pdf("Notice"), "application/pdf")
    if path == "/data/ville-utf16.txt":
        return handler.send(200, ville_utf16(base), "text/plain")
    if path == "/data/mangled.csv":
        return handler.send(200, mangled_csv(base), "text/csv; charset=utf-8")
    if path.startswith("/webdelib/"):
        return _webdelib(handler, path)
    if path.startswith("/partage/") and path.endswith("/"):
        links = "".join(f'<a href="/partage/{n}.pdf">{n}</a>' for n in ("metropole", "ville", "neutre"))
        return handler.send(200, f"<html><head><title>Documents</title></head><body>{links}</body></html>".encode(),
                            "text/html; charset=utf-8")
    if path in portals.pdfs:
        headers = {"Content-Disposition": 'attachment; filename="deliberation.pdf"'} if "/files/" in path else None
        return handler.send(200, portals.pdfs[path], "application/pdf", headers)
    return None


def _ods_records(handler: Any, query: dict[str, list[str]], base: str) -> int:
    limit, offset = int(query.get("limit", ["10"])[0]), int(query.get("offset", ["0"])[0])
    if not -1 <= limit <= 100:
        body = {"error_code": "InvalidRESTParameterError",
                "message": f"Invalid value for limit API parameter: {limit} was found but -1 <= limit <= 100 is expected."}
        return handler.send(400, json.dumps(body).encode(), "application/json; charset=utf-8", conditional=False)
    if offset and handler.first_time(f"ods-page-{offset}"):
        headers = {"X-RateLimit-Limit": "10000", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": str(int(time.time()) + 1)}
        body = {"error_code": "TooManyRequests", "message": "Too many requests on the domain."}
        return handler.send(429, json.dumps(body).encode(), "application/json", headers, conditional=False)
    records = []
    for n in range(offset + 1, min(offset + limit, ODS_TOTAL) + 1):
        records.append({
            "coll_nom": "Métropole de test", "coll_siret": f"{SIREN}00017", "delib_id": f"{'C' if n % 2 else 'B'}2024_{n:03d}",
            "delib_date": f"2024-03-{n:02d}", "delib_matiere_code": "9.1", "delib_matiere_nom": "Autres domaines",
            "delib_objet": f"Délibération {n} : inclusion numérique", "vote_pour": 60, "vote_contre": None,
            "vote_abstention": None, "delib_url": f"{base}/ods-files/{n}.pdf"})
    return handler.send(200, json.dumps({"total_count": ODS_TOTAL, "results": records}).encode(),
                        "application/json; charset=utf-8", {"X-RateLimit-Remaining": "9990"})


def _ods_v1(handler: Any, query: dict[str, list[str]]) -> int:
    rows, start = int(query.get("rows", ["10"])[0]), int(query.get("start", ["0"])[0])
    records = []
    for n in range(start + 1, min(start + rows, V1_TOTAL) + 1):
        records.append({
            "datasetid": V1_DATASET, "recordid": f"{n:040d}",
            "fields": {
                "type_seance": "Conseil Métropolitain", "delib_matiere_code": "5.1.2", "coll_nom": "Métropole de test",
                "delib_objet": f"DELIBERATION {n} SUR LA STRATEGIE NUMERIQUE", "delib_id": f"C_24_02_12_{n:03d}",
                "cr_url": {"format": "pdf", "filename": f"cr_{n}.pdf", "width": 300, "id": f"cr{n:03d}", "height": 300,
                           "thumbnail": False},
                "vote_effectif": 87, "coll_siret": int(f"{SIREN}00017"), "delib_date": "2024-02-12",
                "delib_url": {"format": "pdf", "filename": f"delib_{n}.pdf", "width": 300, "id": f"f{n:03d}",
                              "height": 300, "thumbnail": False},
                "vote_pour": 73, "vote_reel": 87, "vote_abstention": 7, "vote_contre": 5},
            "record_timestamp": "2024-02-13T23:25:00+00:00"})
    body = {"nhits": V1_TOTAL, "parameters": {"dataset": V1_DATASET, "rows": rows, "start": start, "format": "json"},
            "records": records}
    return handler.send(200, json.dumps(body).encode(), "application/json; charset=utf-8")


def _datagouv(base: str) -> dict[str, Any]:
    return {
        "id": "60645c94e2bfd21cdc16c0be", "slug": "megalis-delibs",
        "title": "Délibérations des collectivités adhérentes de Mégalis Bretagne",
        "organization": {"id": "534fff8ba3a7292c64a77ed3", "name": "Mégalis Bretagne"},
        "page": f"{base}/fr/datasets/megalis-delibs/",
        "resources": [
            {"id": "r2024", "title": "DELIBERATION-2024.csv", "format": "xml", "filetype": "file", "mime": None,
             "url": f"{base}/static/resources/megalis/deliberation-2024.csv", "last_modified": "2024-04-01T02:00:00"},
            {"id": "rdoc", "title": "Notice", "format": "pdf", "filetype": "file", "mime": "application/pdf",
             "url": f"{base}/static/resources/megalis/notice.pdf", "last_modified": "2021-03-31T00:00:00"},
        ],
    }


def _megalis_csv(base: str) -> bytes:
    header = ("COLL_NOM;COLL_SIRET;DELIB_ID;DELIB_DATE;DELIB_MATIERE_CODE;DELIB_MATIERE_NOM;DELIB_OBJET;BUDGET_ANNEE;"
              "BUDGET_NOM;PREF_ID;PREF_DATE;VOTE_EFFECTIF;VOTE_REEL;VOTE_POUR;VOTE_CONTRE;VOTE_ABSTENTION;DELIB_URL")
    lines = [header]
    for siren, name in ((SIREN, "Métropole de test"), ("200000172", "Commune voisine")):
        for n in range(1, 4):
            cells = [name, f"{siren}00017", f"DE-2024-{n:03d}", f"2024-0{n}-15", "9.1", "Autres domaines",
                     f"Objet {n} ({name})", "", "", "", "", "", "", "", "", "",
                     f"{base}/megalis/{siren}/Deliberation/2024/{n}.pdf"]
            lines.append(";".join(f'"{c}"' for c in cells))
    return ("\n".join(lines) + "\n").encode("utf-8")


def ville_utf16(base: str) -> bytes:
    """A city's local export: UTF-16 with a BOM, tab-separated, no header, two physical lines
    per record (date and title; decision and number)."""
    lines = []
    for n, (date, title) in enumerate([("12/02/2024", "Feuille de route numérique"),
                                       ("12/02/2024", "Conseillers numériques : recrutement"),
                                       ("28/03/2024", "Tiers-lieu : convention")], start=1):
        lines += [f"{date}\t{title}\t{base}/ville-files/{n}.pdf", f"DELIBERATION EXECUTOIRE\tV-2024-{n:02d}"]
    return ("\r\n".join(lines) + "\r\n").encode("utf-16")


def mangled_csv(base: str) -> bytes:
    """Two deliberations whose ids a spreadsheet turned into the same one, and an exact copy."""
    rows = ["DELIB_ID;DELIB_DATE;DELIB_OBJET;DELIB_URL",
            f"2022,00103;2022-03-24;DESIGNATIONS DES REPRESENTANTS;{base}/mangled/1.pdf",
            f"2022,00103;2022-03-24;TRAITEMENT DES ECARTS SUR LES DEPOTS D'ESPECES;{base}/mangled/2.pdf",
            f"2022,00103;2022-03-24;TRAITEMENT DES ECARTS SUR LES DEPOTS D'ESPECES;{base}/mangled/2.pdf"]
    return ("\r\n".join(rows) + "\r\n").encode("utf-8")


def _webdelib(handler: Any, path: str) -> int:
    """A WebDelib-like listing: no link to the deliberations, the session is chosen in a form."""
    if path == "/webdelib/" and handler.command == "GET":
        options = '<option value="">-- choisir une séance --</option>' + "".join(
            f'<option value="{k}">{v}</option>' for k, v in SESSIONS.items())
        body = (f'<html><head><title>Délibérations</title></head><body><form id="recherche" method="post" '
                f'action="/webdelib/seances"><select name="seance_id">{options}</select>'
                f'<input type="hidden" name="_token" value="{FORM_TOKEN}"><input type="submit" value="Rechercher">'
                "</form></body></html>")
        return handler.send(200, body.encode(), "text/html; charset=utf-8")
    if path == "/webdelib/seances" and handler.command == "POST":
        form = parse_qs(handler.body.decode("utf-8"))
        seance = form.get("seance_id", [""])[0]
        if form.get("_token") != [FORM_TOKEN] or seance not in SESSIONS:
            return handler.send(403, b"invalid form", "text/plain", conditional=False)
        links = "".join(f'<li><a href="/webdelib/files/{seance}-{n}.pdf">Délibération {seance}-{n}</a></li>'
                        for n in (1, 2))
        body = f"<html><head><title>{SESSIONS[seance]}</title></head><body><ul>{links}</ul></body></html>"
        return handler.send(200, body.encode(), "text/html; charset=utf-8", conditional=False)
    if path in handler.server.portals.pdfs:
        return handler.send(200, handler.server.portals.pdfs[path], "application/pdf")
    return handler.send(405 if path == "/webdelib/seances" else 404, b"no", "text/plain", conditional=False)
