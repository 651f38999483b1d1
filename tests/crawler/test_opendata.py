"""Tests of crawler/opendata on the real files in ../shared/data and on small messy byte strings."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from nlp.config import shared_data_dir

from crawler.opendata import (
    DeliberationRow,
    parse_dataset,
    parse_date,
    parse_deliberations_csv,
    parse_opendatasoft,
    parse_scdl_csv,
)

REPO = Path(__file__).resolve().parents[2]


_shared_data = shared_data_dir


def _real(rel: str) -> bytes:
    p = _shared_data() / rel
    if not p.exists():
        pytest.skip(f"../shared/data is absent ({rel})")
    return p.read_bytes()


SCDL_HEADER = ("COLL_NOM,COLL_SIRET,DELIB_ID,DELIB_DATE,DELIB_MATIERE_CODE,DELIB_MATIERE_NOM,DELIB_OBJET,"
               "BUDGET_ANNEE,BUDGET_NOM,PREF_ID,PREF_DATE,VOTE_EFFECTIF,VOTE_REEL,VOTE_POUR,VOTE_CONTRE,"
               "VOTE_ABSTENTION,DELIB_URL")


# --- real files ----------------------------------------------------------------------------

def test_saint_etienne_2022_real_file():
    # 80 data records (81 rows with the header, quoted line breaks in DELIB_OBJET), student
    # re-typed: 17 ids appear more than once (19 later rows), every matter code is empty. None
    # of those rows is an exact copy: they are distinct deliberations whose ids a spreadsheet
    # mangled (issue 15), so all 80 are kept, the shared ids disambiguated.
    res = parse_scdl_csv(_real("scdl/saint-etienne-metropole_deliberations_2022_SCDL.csv"), "se.csv")
    assert (res.encoding, res.delimiter, res.schema, res.records) == ("utf-8", ",", "scdl", 80)
    assert len(res.rows) == 80 and res.errors == []
    assert len({r.delib_id for r in res.rows}) == 80
    shared = [r for r in res.rows if "delib_id_original" in r.extra]
    assert len(shared) == 36 and len({r.extra["delib_id_original"] for r in shared}) == 17
    assert len(res.warnings) == 17 and all("mangled" in w.reason for w in res.warnings)
    # 2022.00103: one for nominations, one for cash deposits; three subjects share 2022.00118
    r10, r11 = (next(r for r in res.rows if r.row_number == n) for n in (10, 11))
    assert r10.objet.startswith("DESIGNATIONS DES REPRESENTANTS") and r11.objet.startswith("TRAITEMENT DES ECARTS")
    assert r10.extra["delib_id_original"] == r11.extra["delib_id_original"] == "2022.00103"
    assert r10.delib_id.startswith("2022.00103~") and r10.delib_id != r11.delib_id
    assert "rows 24, 25, 26" in next(w.reason for w in res.warnings if "'2022.00118'" in w.reason)
    assert Counter(r.delib_date for r in res.rows) == {"2022-03-24": 51, "2022-01-27": 28, "2022-03-25": 1}
    assert all(r.matiere_code is None for r in res.rows)
    assert all(r.coll_siret == "24420077000117" and r.coll_siret_valid for r in res.rows)
    assert sum("\n" in r.objet for r in res.rows) == 15  # 13 among the 61 rows kept before issue 15
    first = res.rows[0]
    assert first.row_number == 2 and first.delib_id == "2022.00028"
    assert first.objet.startswith("PLAN DE RELANCE METROPOLITAIN 2021-2023 - ATTRIBUTION D’UN FONDS\nDE CONCOURS")
    assert first.votes == {"effectif": 123, "reel": 89, "pour": 101, "contre": 0, "abstention": 4}
    assert first.extra["budget_nom"] == "Administration Générale du Budget Principal"
    assert first.extra["pref_date"] == "2022-04-04" and first.extra["nombre_de_deliberation"] == "1"
    row77 = next(r for r in res.rows if r.row_number == 77)
    assert row77.votes == {"effectif": 123, "reel": 108, "pour": None, "contre": None, "abstention": None}
    last = res.rows[-1]
    assert (last.row_number, last.delib_id) == (81, "2022.00052")
    assert first.delib_id == "2022.00028" and "delib_id_original" not in first.extra


def test_scdl_template_real_file():
    res = parse_scdl_csv(_real("scdl/modele_donnees-deliberations_SCDL.csv"), "modele.csv")
    assert len(res.rows) == 1 and res.errors == [] and res.warnings == []
    r = res.rows[0]
    assert (r.delib_id, r.delib_date, r.matiere_code, r.matiere_nom) == ("2022.00022", "2022-01-20", None,
                                                                          "COMMANDE PUBLIQUE")
    assert r.url == "https://www.saint-etienne-metropole.fr/file/3275266/download?token=_Z8KaTEp"
    assert r.votes == {"effectif": 71, "reel": 60, "pour": 62, "contre": 0, "abstention": 0}
    meta = res.to_metadata(r)
    assert json.loads(json.dumps(meta)) == meta
    assert meta["dataset_source"] == "modele.csv" and meta["dataset_row"] == 2 and meta["delib_id"] == "2022.00022"


def test_montpellier_local_format_real_file():
    # 160 deliberations of two council meetings, ';'-separated, local columns, titles with
    # Excel's _x0001_ escapes (125 of them) where the source had line breaks.
    raw = _real("open-data/VilleMTP_MTP_Delibs.csv")
    assert raw.count(b"_x0001_") > 0
    res = parse_deliberations_csv(raw, "mtp.csv")
    assert (res.delimiter, res.schema, res.records) == (";", "local", 160)
    assert res.columns == {"delib_id": "Numéro de délibération", "delib_date": "Date CM", "objet": "Titre"}
    assert len(res.rows) == 160 and res.errors == [] and res.warnings == []
    assert Counter(r.delib_date for r in res.rows) == {"2013-11-25": 102, "2013-12-16": 58}
    assert not any("_x0001_" in r.objet for r in res.rows)
    assert sum("\n" in r.objet for r in res.rows) == 125
    assert [r.delib_id for r in res.rows][:3] == ["464", "465", "466"] and res.rows[-1].delib_id == "623"
    first = res.rows[0]
    assert first.extra == {"numero_de_projet_de_deliberation": "1", "elu_s": "Hélène MANDROUX",
                           "direction": "Direction du Secrétariat Général", "etat": "DELIBERATION EXECUTOIRE",
                           "numero_poseidon": "67218"}
    row6 = next(r for r in res.rows if r.row_number == 6)
    assert row6.objet == ("Gestion Multimodale des Déplacements dans l'Agglomération de Montpellier\n"
                          "Participation financière de la Ville de Montpellier")
    assert all(r.url is None and r.coll_siret is None for r in res.rows)


# --- messy synthetic cases -------------------------------------------------------------------

def test_bom_and_semicolon():
    data = ("\ufeffDELIB_ID;DELIB_DATE;DELIB_OBJET;DELIB_URL\r\n"
            "D1;24/03/2022;Stratégie numérique, feuille de route;https://x.fr/d1.pdf\r\n").encode("utf-8")
    res = parse_scdl_csv(data)
    assert (res.encoding, res.delimiter) == ("utf-8-sig", ";")
    assert res.columns["delib_id"] == "DELIB_ID"  # the BOM is not part of the first name
    (r,) = res.rows
    assert (r.delib_id, r.delib_date, r.objet, r.url) == ("D1", "2022-03-24", "Stratégie numérique, feuille de route",
                                                          "https://x.fr/d1.pdf")


def test_quoted_line_breaks_count_records_not_lines():
    data = ('delib_id,delib_objet,delib_date\n'
            '1,"Objet sur\ntrois\nlignes",2022-01-01\n'
            '2,"Objet, une ligne",2022-01-02\n'
            '3,,pas une date\n').encode()
    res = parse_scdl_csv(data)
    assert [r.row_number for r in res.rows] == [2, 3]
    assert res.rows[0].objet == "Objet sur\ntrois\nlignes"
    assert len(res.errors) == 1 and res.errors[0].row_number == 4  # physical line 6, record 4
    assert "cannot read date 'pas une date'" in res.errors[0].reason


def test_exact_duplicates_dropped_mangled_ids_disambiguated():
    from crawler.opendata.rows import disambiguated_id

    data = ("DELIB_ID;DELIB_DATE;DELIB_OBJET;DELIB_URL\n"
            "A;2022-01-27;premier;https://x.fr/a1.pdf\n"
            "B;2022-01-27;autre;https://x.fr/b.pdf\n"
            "A;2022-01-27;premier;https://x.fr/a1.pdf\n"       # an exact copy of row 2
            "A;2022-03-24;second;https://x.fr/a2.pdf\n"        # another deliberation, same id
            "A;2022-03-24;troisième;https://x.fr/a3.pdf\n").encode()
    res = parse_scdl_csv(data)
    assert [(e.row_number, e.reason) for e in res.errors] == [
        (4, "exact duplicate of row 2 (DELIB_ID 'A'); row skipped")]
    assert [r.objet for r in res.rows] == ["premier", "autre", "second", "troisième"]
    a_rows = [r for r in res.rows if r.objet != "autre"]
    assert [r.delib_id for r in a_rows] == [disambiguated_id("A", r) for r in a_rows]
    assert len({r.delib_id for r in a_rows}) == 3 and all(r.delib_id.startswith("A~") for r in a_rows)
    assert all(r.extra["delib_id_original"] == "A" for r in a_rows)
    assert res.rows[1].delib_id == "B" and "delib_id_original" not in res.rows[1].extra
    (warning,) = res.warnings
    assert warning.row_number == 2 and "rows 2, 5, 6" in warning.reason
    # the hash depends on date, subject and URL only: stable across runs and files
    again = parse_scdl_csv(data.replace(b"autre", b"AUTRE"))
    assert [r.delib_id for r in again.rows if r.objet != "AUTRE"] == [r.delib_id for r in a_rows]


def test_mangled_siret_kept_and_marked_invalid():
    data = (SCDL_HEADER + "\n"
            "Ville,\"2,44201E+13\",X1,2022-03-24,,,Objet 1,,,,,,,,,,\n"
            "Ville,244 200 770 00117,X2,2022-03-24,,,Objet 2,,,,,,,,,,\n"
            "Ville,24420077000118,X3,2022-03-24,,,Objet 3,,,,,,,,,,\n").encode()
    res = parse_scdl_csv(data)
    assert [r.delib_id for r in res.rows] == ["X1", "X2", "X3"] and res.errors == []
    assert (res.rows[0].coll_siret, res.rows[0].coll_siret_valid) == ("2,44201E+13", False)
    assert (res.rows[1].coll_siret, res.rows[1].coll_siret_valid) == ("24420077000117", True)
    assert res.rows[2].coll_siret_valid is False
    assert [w.row_number for w in res.warnings] == [2, 4]
    assert "scientific notation" in res.warnings[0].reason and "Luhn" in res.warnings[1].reason


def test_windows_1252():
    text = "Numéro de délibération;Date de séance;Intitulé;Lien\n12;05/07/2021;Création d’un tiers-lieu numérique;\n"
    res = parse_deliberations_csv(text.encode("cp1252"))
    assert res.encoding == "cp1252"
    (r,) = res.rows
    assert (r.delib_id, r.delib_date, r.objet, r.url) == ("12", "2021-07-05", "Création d’un tiers-lieu numérique", None)


def test_utf8_read_as_cp1252_is_repaired():
    mojibake = "delib_id,delib_objet\n1,Délibération sur l’inclusion numérique\n".encode("utf-8").decode("cp1252")
    res = parse_scdl_csv(mojibake.encode("utf-8"))
    assert res.rows[0].objet == "Délibération sur l’inclusion numérique"
    assert any("repaired" in w.reason for w in res.warnings)


def test_empty_and_bad_matter_codes():
    data = ("DELIB_ID,DELIB_MATIERE_CODE,DELIB_OBJET\n1,,a\n2,\"8,4\",b\n3,7.10,c\n4,Finances,d\n").encode()
    res = parse_scdl_csv(data)
    assert [r.matiere_code for r in res.rows] == [None, "8.4", "7.10", None]
    assert res.rows[3].extra["matiere_code_raw"] == "Finances"
    # an empty code is normal, not a warning; a missing date column is said once (row 0)
    assert [w.row_number for w in res.warnings] == [0, 5]
    assert res.warnings[0].reason == "no DELIB_DATE column: rows have no date"


def test_excel_escapes_and_field_count_errors():
    data = ("DELIB_ID;DELIB_OBJET;DELIB_DATE\n"
            "1;Foncier_x0001_Acquisition_x0001__x0001_Rue X;2013-11-25\n"
            "2;trop;de;champs\n"
            "3;pas assez\n"
            "4;ok;2013-11-25;;\n"
            ";;\n"
            "5;;2013-11-25\n").encode()
    res = parse_scdl_csv(data)
    assert res.rows[0].objet == "Foncier\nAcquisition\nRue X"
    assert [r.delib_id for r in res.rows] == ["1", "4"]  # trailing empty fields are tolerated
    reasons = {e.row_number: e.reason for e in res.errors}
    assert set(reasons) == {3, 4, 7}  # row 6 is blank: skipped silently
    assert "4 fields where the header has 3" in reasons[3] and "2 fields" in reasons[4]
    assert "neither DELIB_OBJET nor a usable DELIB_URL" in reasons[7]


def test_votes_dates_and_relative_urls():
    data = ("DELIB_ID,DELIB_DATE,DELIB_OBJET,VOTE_POUR,VOTE_CONTRE,VOTE_ABSTENTION,DELIB_URL,PREF_DATE\n"
            "1,2022-03-24T00:00:00+01:00,a,62.0,0,unanimité,/files/1.pdf,31/03/2022\n"
            "2,,b,,,,ftp://x/2.pdf,\n"
            "3,31/02/2022,c,,,,,\n").encode()
    res = parse_scdl_csv(data, source="https://data.example.fr/exports/deliberations.csv")
    r1, r2 = res.rows
    assert r1.delib_date == "2022-03-24" and r1.votes["pour"] == 62 and r1.votes["abstention"] is None
    assert r1.extra["vote_abstention_raw"] == "unanimité" and r1.extra["pref_date"] == "2022-03-31"
    assert r1.url == "https://data.example.fr/files/1.pdf"
    assert r2.delib_date is None and r2.url is None and r2.extra["url_raw"] == "ftp://x/2.pdf"
    assert [e.row_number for e in res.errors] == [4] and "does not exist" in res.errors[0].reason
    assert {w.row_number for w in res.warnings} == {2, 3}


def test_url_cells():
    data = ("DELIB_ID;DELIB_OBJET;DELIB_URL\n"
            "1;a;www.x.fr/1.pdf\n"
            '2;b;"https://x.fr/2.pdf ; https://x.fr/2-annexe.pdf"\n'
            "3;c;Voir le PDF\n"
            "4;;Voir le PDF\n"
            "5;e;docs/5.pdf\n").encode()
    res = parse_scdl_csv(data, source="https://data.x.fr/d/export.csv")
    urls = {r.delib_id: r.url for r in res.rows}
    assert urls == {"1": "https://www.x.fr/1.pdf", "2": "https://x.fr/2.pdf", "3": None,
                    "5": "https://data.x.fr/d/docs/5.pdf"}
    assert res.rows[1].extra["other_urls"] == ["https://x.fr/2-annexe.pdf"]
    assert res.rows[2].extra["url_raw"] == "Voir le PDF"
    assert [(e.row_number, e.reason) for e in res.errors] == [
        (5, "neither DELIB_OBJET nor a usable DELIB_URL; row skipped")]
    # without an http(s) source, a relative path cannot be resolved
    assert parse_scdl_csv(data, source="export.csv").rows[3].url is None


def test_no_header_and_unclosed_quote():
    res = parse_scdl_csv(b"nom,prenom\nDupont,Jean\n")
    assert res.rows == [] and res.file_error and "DELIB_ID" in res.file_error
    res = parse_scdl_csv(b"")
    assert res.file_error == "the file is empty"
    data = b'DELIB_ID,DELIB_OBJET\n1,ok\n2,"jamais ferme\n3,suite\n'
    res = parse_scdl_csv(data)
    assert [r.delib_id for r in res.rows] == ["1"]
    assert [e.row_number for e in res.errors] == [3] and "never closed" in res.errors[0].reason
    # a quote after a closed quoted field is kept (lenient reading), not an unclosed quote
    res = parse_scdl_csv(b'DELIB_ID,DELIB_OBJET\n1,"Le ""Pass"" num" erique\n2,ok\n')
    assert [r.objet for r in res.rows] == ['Le "Pass" num erique', "ok"] and res.errors == []


def test_header_after_a_title_line():
    data = b"Deliberations 2022 - export\n\nDELIB_ID;DELIB_OBJET\nA;x\n"
    res = parse_scdl_csv(data)
    assert [(r.row_number, r.delib_id) for r in res.rows] == [(4, "A")]
    assert [w.row_number for w in res.warnings] == [0, 1]
    assert res.warnings[1].reason == "row 1 before the header skipped"


@pytest.mark.parametrize("raw,iso", [
    ("2022-03-24", "2022-03-24"), ("24/03/2022", "2022-03-24"), ("24-03-2022", "2022-03-24"),
    ("24.03.2022", "2022-03-24"), ("24/03/22", "2022-03-24"), ("2022/03/24", "2022-03-24"),
    ("2022-03-23T23:00:00+00:00", "2022-03-24"), ("2022-03-24 10:00:00", "2022-03-24"),
    ("44644", "2022-03-24"), ("24 mars 2022", "2022-03-24"), ("1er avril 2022", "2022-04-01"),
    ("jeudi 24 mars 2022", "2022-03-24"), ("", None),
])
def test_parse_date(raw, iso):
    assert parse_date(raw) == (iso, None)


@pytest.mark.parametrize("raw", ["03/24/2022", "2022-02-30", "hier", "24/03/1200"])
def test_parse_date_problems(raw):
    value, problem = parse_date(raw)
    assert value is None and problem


# --- Opendatasoft -------------------------------------------------------------------------------

ODS_RECORDS = [
    {"coll_nom": "Métropole X", "coll_siret": "24420077000117", "delib_id": "2024-001",
     "delib_date": "2024-02-01", "delib_matiere_code": "8.4", "delib_matiere_nom": "Aménagement",
     "delib_objet": "Schéma directeur du numérique", "vote_pour": 60, "vote_contre": 2, "vote_abstention": 1,
     "delib_url": "https://data.x.fr/files/2024-001.pdf", "geo_point_2d": {"lon": 4.8, "lat": 45.7}},
    {"coll_nom": "Métropole X", "coll_siret": 2.44201e13, "delib_id": "2024-002", "delib_date": "2024-02-01",
     "delib_objet": "Conseillers numériques", "delib_url": {"url": "https://data.x.fr/files/2024-002.pdf",
                                                             "filename": "2024-002.pdf"}},
    {"coll_nom": "Métropole X", "delib_id": "2024-001", "delib_date": "2024-02-01", "delib_objet": "doublon"},
    {"coll_nom": "Métropole X", "delib_id": "", "delib_objet": "sans identifiant"},
]


def _check_ods(res):
    assert res.format == "opendatasoft-json" and res.schema == "scdl"
    assert [r.delib_id.split("~")[0] for r in res.rows] == ["2024-001", "2024-002", "2024-001"]
    r1, r2 = res.rows[:2]
    assert (r1.row_number, r1.matiere_code, r1.votes["pour"], r1.coll_siret_valid) == (1, "8.4", 60, True)
    assert r1.extra["geo_point_2d"] == '{"lat": 45.7, "lon": 4.8}'
    assert r2.url == "https://data.x.fr/files/2024-002.pdf" and r2.coll_siret_valid is False
    assert [(e.row_number, e.reason) for e in res.errors] == [(4, "empty DELIB_ID; row skipped")]
    # record 3 shares record 1's id with another subject: both kept, disambiguated
    (other,) = [r for r in res.rows if r.row_number == 3]
    assert other.extra["delib_id_original"] == r1.extra["delib_id_original"] == "2024-001"
    assert json.loads(json.dumps(res.to_metadata(r2)))["url"] == r2.url


def test_opendatasoft_exports_json():
    _check_ods(parse_opendatasoft(json.dumps(ODS_RECORDS).encode(), "ods.json"))


def test_opendatasoft_records_shape_and_pagination_warning():
    doc = {"total_count": 1234, "results": ODS_RECORDS}
    res = parse_opendatasoft(json.dumps(doc).encode("utf-8"), "ods-records.json")
    _check_ods(res)
    assert res.declared_total == 1234
    assert any(w.row_number == 0 and "4 of 1234" in w.reason for w in res.warnings)
    # older API versions
    v1 = {"nhits": 4, "records": [{"recordid": "r", "fields": r} for r in ODS_RECORDS]}
    _check_ods(parse_opendatasoft(json.dumps(v1).encode()))
    v2 = {"records": [{"record": {"id": "r", "fields": r}} for r in ODS_RECORDS]}
    _check_ods(parse_opendatasoft(json.dumps(v2).encode()))


def test_opendatasoft_jsonl_and_bad_json():
    jsonl = "\n".join(json.dumps(r) for r in ODS_RECORDS).encode()
    _check_ods(parse_opendatasoft(jsonl, fmt="jsonl"))
    res = parse_opendatasoft(b'{"results": [', "broken.json")
    assert res.rows == [] and res.file_error.startswith("invalid JSON")
    res = parse_opendatasoft(b'{"foo": 1}')
    assert "not an Opendatasoft export" in res.file_error


def test_opendatasoft_exports_csv():
    data = ("\ufeffcoll_nom;coll_siret;delib_id;delib_date;delib_objet;delib_url\r\n"
            "Métropole X;24420077000117;2024-001;2024-02-01;\"Schéma directeur\r\ndu numérique\";https://x.fr/1.pdf\r\n"
            "Métropole X;24420077000117;2024-002;01/02/2024;Conseillers numériques;\r\n").encode("utf-8")
    res = parse_opendatasoft(data, "ods.csv", fmt="csv")
    assert (res.format, res.delimiter, res.encoding) == ("opendatasoft-csv", ";", "utf-8-sig")
    assert [(r.row_number, r.delib_date) for r in res.rows] == [(2, "2024-02-01"), (3, "2024-02-01")]
    assert res.rows[0].objet == "Schéma directeur\ndu numérique"


def test_parse_dataset_dispatch():
    js = json.dumps(ODS_RECORDS).encode()
    assert parse_dataset(js, "opendatasoft").format == "opendatasoft-json"
    assert parse_dataset(b"delib_id;delib_objet\n1;x\n", "opendatasoft").format == "opendatasoft-csv"
    assert parse_dataset(js, "opendatasoft", content_type="application/json; charset=utf-8").rows
    res = parse_dataset(b"DELIB_ID,DELIB_OBJET\n1,x\n", "scdl-csv", "a.csv")
    assert res.format == "scdl-csv" and isinstance(res.rows[0], DeliberationRow)
    with pytest.raises(ValueError):
        parse_dataset(b"", "excel")


# --- the SCDL schemas themselves ------------------------------------------------------------------

@pytest.mark.parametrize("schema_file", [
    "scdl/scdl_deliberations_schema_1_1_0.json",
    "scdl/scdl_deliberations_schema_2_0_0.json",
    "scdl/scdl_deliberations_schema_latest.json",
])
def test_every_schema_version_is_read_from_its_own_examples(schema_file):
    import csv
    import io

    schema = json.loads(_real(schema_file))
    fields = [f["name"] for f in schema["fields"]]
    assert len(fields) == 17  # 1.1 puts BUDGET_* before DELIB_ID; matching is by name
    examples = {f["name"]: (f.get("example") or "").split(", ")[0] for f in schema["fields"]}
    examples["DELIB_URL"] = examples["DELIB_URL"] or "https://data.maville.fr/deliberations/files/200417_1.pdf"
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";")
    w.writerow(fields)
    w.writerow([examples[f] for f in fields])
    res = parse_scdl_csv(buf.getvalue().encode("utf-8"), schema_file)
    assert res.schema == "scdl" and len(res.columns) == 17 and res.errors == []
    (r,) = res.rows
    assert (r.delib_id, r.delib_date, r.coll_nom) == ("1DL15494", "2017-10-15", "Ville de Poitiers")
    assert r.matiere_code == examples["DELIB_MATIERE_CODE"]
    assert r.votes == {"effectif": 43, "reel": 40, "pour": 25, "contre": 10, "abstention": 5}
    assert r.extra["pref_id"] == "PREF038" and r.extra["pref_date"] == "2017-02-03"
    assert r.coll_siret == examples["COLL_SIRET"] and r.coll_siret_valid
    # the patterns our checks use are the schema's
    patterns = {f["name"]: f.get("constraints", {}).get("pattern") for f in schema["fields"]}
    assert patterns["COLL_SIRET"] == r"^\d{14}$" and patterns["DELIB_MATIERE_CODE"] == r"^\d\.\d{1,2}$"


# --- hostile inputs (issue 13) ---------------------------------------------------------------

def test_a_field_over_131072_characters_keeps_the_later_rows():
    import csv

    huge = "Considérant " * 20_000  # 240,000 characters in one quoted field
    data = ("DELIB_ID;DELIB_OBJET;DELIB_URL\n1;court;https://x.fr/1.pdf\n"
            f'2;"{huge}";https://x.fr/2.pdf\n3;après;https://x.fr/3.pdf\n4;fin;https://x.fr/4.pdf\n').encode()
    before = csv.field_size_limit()
    res = parse_scdl_csv(data)
    assert [r.delib_id for r in res.rows] == ["1", "2", "3", "4"] and res.errors == []
    assert len(res.rows[1].objet) == len(huge.strip())
    assert csv.field_size_limit() == before  # the process-wide limit is restored


# --- issue 15: local formats, filters, Opendatasoft v1 and paging, data.gouv.fr ----------------

from crawler.opendata import ReadOptions, RowFilter  # noqa: E402
from crawler.opendata.datagouv import api_url, parse_datagouv  # noqa: E402
from crawler.opendata.opendatasoft import next_page_url, page_position  # noqa: E402


def test_local_format_in_utf16_with_two_lines_per_record():
    """A city export in UTF-16 (BOM, tabs): date and title on one line, the decision and its
    number on the next; no header. Read through a column mapping by position."""
    lines = ["25/11/2013\tVoeu de soutien à Mme Christiane TAUBIRA",
             "DELIBERATION EXECUTOIRE\t464",
             "",
             "25/11/2013\tDébat d'Orientation Budgétaire 2014",
             "DELIBERATION EXECUTOIRE\t466",
             "16/12/2013\tFeuille de route numérique : médiation",
             "AJOURNEE\t470",
             "16/12/2013\tUne ligne sans la suivante"]
    data = "\r\n".join(lines).encode("utf-16")
    options = ReadOptions(header=False, record_lines=2,
                          columns={"delib_date": 0, "objet": 1, "decision": 2, "delib_id": 3})
    res = parse_deliberations_csv(data, "ville.csv", fmt="local-csv", options=options)
    assert (res.encoding, res.delimiter, res.format) == ("utf-16", "\t", "local-csv")
    assert [(r.row_number, r.delib_id, r.delib_date) for r in res.rows] == [
        (1, "464", "2013-11-25"), (2, "466", "2013-11-25"), (3, "470", "2013-12-16")]
    assert res.rows[0].objet == "Voeu de soutien à Mme Christiane TAUBIRA"
    assert res.rows[2].extra["decision"] == "AJOURNEE"
    assert [(e.row_number, e.reason) for e in res.errors] == [(4, "the last record has 1 of its 2 lines; row skipped")]


def test_local_format_by_header_name_and_declared_encoding():
    text = "N° acte|Séance|Libellé|Fichier\r\nA-1|03/02/2021|Tiers-lieu numérique|/docs/a1.pdf\r\n"
    options = ReadOptions(columns={"delib_id": "N° acte", "delib_date": "Séance", "objet": "Libellé",
                                   "url": "Fichier"}, encoding="latin-1", delimiter="|")
    res = parse_deliberations_csv(text.encode("latin-1"), "https://x.fr/d/l.csv", fmt="local-csv", options=options)
    (r,) = res.rows
    assert (r.delib_id, r.delib_date, r.objet, r.url) == ("A-1", "2021-02-03", "Tiers-lieu numérique",
                                                          "https://x.fr/docs/a1.pdf")
    assert res.columns == {"delib_id": "N° acte", "delib_date": "Séance", "objet": "Libellé", "url": "Fichier"}
    bad = parse_deliberations_csv(b"a|b\r\n1|2\r\n", "l.csv", options=options)
    assert bad.rows == [] and "named by the registry's column mapping" in bad.file_error


def test_montpellier_real_file_through_a_declared_mapping():
    raw = _real("open-data/VilleMTP_MTP_Delibs.csv")
    options = ReadOptions(columns={"delib_id": "Numéro de délibération", "delib_date": "Date CM", "objet": "Titre",
                                   "instance_etat": "Etat"})
    res = parse_deliberations_csv(raw, "mtp.csv", fmt="local-csv", options=options)
    assert len(res.rows) == 160 and res.errors == []
    assert res.rows[0].extra["instance_etat"] == "DELIBERATION EXECUTOIRE"


def test_publisher_filter_keeps_the_metropolis_rows():
    data = ("COLL_NOM;COLL_SIRET;DELIB_ID;DELIB_DATE;DELIB_OBJET;DELIB_URL\n"
            "Rennes Métropole;24350013900189;C 21.001;2021-01-28;Stratégie numérique;https://x.fr/1.pdf\n"
            "Ville de Bruz;21350047300012;2021-01;2021-01-25;Voirie;https://x.fr/2.pdf\n"
            "Rennes Métropole;24350013900189;B 21.002;2021-02-04;Subvention;https://x.fr/3.pdf\n").encode()
    keep = RowFilter.of({"coll_siret": "^243500139"})
    res = parse_scdl_csv(data, "megalis.csv", options=ReadOptions(keep=keep))
    assert [r.delib_id for r in res.rows] == ["C 21.001", "B 21.002"] and res.filtered == 1
    assert any("1 rows filtered out (filter: coll_siret ~ /^243500139/)" in w.reason for w in res.warnings)
    council = parse_scdl_csv(data, options=ReadOptions(keep=RowFilter.of({"coll_siret": "^243500139",
                                                                          "delib_id": "^C"})))
    assert [r.delib_id for r in council.rows] == ["C 21.001"] and council.filtered == 2
    # a row left out is not a duplicate of a kept one: a city and its metropolis may share ids
    same = data.replace(b"2021-01;", b"C 21.001;")
    assert [r.delib_id for r in parse_scdl_csv(same, options=ReadOptions(keep=keep)).rows] == ["C 21.001", "B 21.002"]


TOURS_V1 = {  # the shape of a real v1 record (yletaillanter/ToursDeliberations, model/Deliberation.kt)
    "datasetid": "deliberations-tours-metropole-val-de-loire",
    "recordid": "43e3d7d579076a06fc577a1044dfeb5c6c9c1942",
    "fields": {
        "type_seance": "Conseil Métropolitain", "delib_matiere_code": "5.1.2",
        "delib_objet": "DETERMINATION DU NOMBRE DE VICE-PRESIDENTS ET DES AUTRES MEMBRES DU BUREAU",
        "coll_nom": "Tours Métropole Val de Loire", "delib_id": "C_21_07_11_002",
        "cr_url": {"format": "pdf", "filename": "1626905209_cr_30638.pdf", "width": 300,
                   "id": "e8783871774f15f0235f55c238d8e991", "height": 300, "thumbnail": False},
        "vote_effectif": 87,
        "delib_url": {"format": "pdf", "filename": "1626905209_30637.pdf", "width": 300,
                      "id": "884eeb7e670e958b4360e3bbf06889e1", "height": 300, "thumbnail": False},
        "coll_siret": 24370075400035, "delib_date": "2021-07-21",
        "delib_matiere_nom": "Institutions et vie politique Election executif Fixation du nombre des adjoints",
        "vote_pour": 73, "vote_reel": 87, "vote_abstention": 7, "vote_contre": 5,
        "pref_id": "SPREF0372", "pref_date": "2021-07-21"},
    "record_timestamp": "2021-07-21T23:25:00+00:00",
}


def test_opendatasoft_v1_record_attachments_become_the_document_url():
    source = ("https://data.tours-metropole.fr/api/records/1.0/search/"
              "?dataset=deliberations-tours-metropole-val-de-loire&rows=100&start=0")
    res = parse_opendatasoft(json.dumps({"nhits": 1, "records": [TOURS_V1]}).encode(), source)
    (r,) = res.rows
    base = "https://data.tours-metropole.fr/explore/dataset/deliberations-tours-metropole-val-de-loire/files"
    assert r.url == f"{base}/884eeb7e670e958b4360e3bbf06889e1/download/"
    assert r.extra["cr_url"] == f"{base}/e8783871774f15f0235f55c238d8e991/download/"
    assert r.extra["type_seance"] == "Conseil Métropolitain"
    assert r.coll_siret == "24370075400035" and r.votes["pour"] == 73
    # v2.1: a file field carries its URL; without one it is built from the dataset
    v21 = "https://data.x.fr/api/explore/v2.1/catalog/datasets/delibs/records?limit=100"
    rec = dict(TOURS_V1["fields"], delib_url={"id": "abc", "filename": "a.pdf", "mimetype": "application/pdf"})
    assert parse_opendatasoft(json.dumps({"total_count": 1, "results": [rec]}).encode(), v21).rows[0].url == \
        "https://data.x.fr/api/explore/v2.1/catalog/datasets/delibs/files/abc"


def test_records_api_paging():
    v21 = "https://data.rennesmetropole.fr/api/explore/v2.1/catalog/datasets/d/records?limit=100&order_by=delib_date"
    page = parse_opendatasoft(json.dumps({"total_count": 230, "results": [{"delib_id": str(i), "delib_objet": "x"}
                                                                         for i in range(100)]}).encode(), v21)
    assert page.warnings == [] and page_position(v21) == ("offset", 0, 100)
    second = next_page_url(v21, page)
    assert second == v21 + "&offset=100"
    assert next_page_url(second.replace("offset=100", "offset=200"), page) is None  # 200 + 100 >= 230
    third = parse_opendatasoft(json.dumps({"total_count": 230, "results": [{"delib_id": "z", "delib_objet": "x"}]}).encode(),
                               second, options=ReadOptions(first_row=101))
    assert third.rows[0].row_number == 101
    big = parse_opendatasoft(json.dumps({"total_count": 50_000, "results": [{"delib_id": "1", "delib_objet": "x"}]
                                         * 100}).encode(), v21.replace("limit=100", "limit=100&offset=9900"))
    assert next_page_url(v21.replace("limit=100", "limit=100&offset=9900"), big) is None
    assert "first 10,000 only" in big.warnings[-1].reason
    v1 = "https://data.tours-metropole.fr/api/records/1.0/search/?dataset=d&rows=100"
    page = parse_opendatasoft(json.dumps({"nhits": 150, "records": [TOURS_V1] * 100}).encode(), v1)
    assert next_page_url(v1, page) == v1 + "&start=100"
    # an export is not paged
    assert page_position("https://data.x.fr/api/explore/v2.1/catalog/datasets/d/exports/json") is None


MEGALIS = {  # shape of https://www.data.gouv.fr/api/1/datasets/60645c94e2bfd21cdc16c0be/
    "id": "60645c94e2bfd21cdc16c0be", "slug": "deliberations-des-collectivites-adherentes-de-megalis-bretagne",
    "title": "Délibérations des collectivités adhérentes de Mégalis Bretagne",
    "organization": {"id": "534fff8ba3a7292c64a77ed3", "name": "Mégalis Bretagne"},
    "resources": [
        {"id": "r1", "title": "DELIBERATION-2021.csv", "format": "xml", "filetype": "file", "mime": None,
         "url": "https://static.data.gouv.fr/resources/x/20220101/deliberation-2021.csv"},
        {"id": "r2", "title": "DELIBERATION-2022.csv", "format": "csv", "filetype": "file", "mime": "text/csv",
         "url": "https://static.data.gouv.fr/resources/x/20230101/deliberation-2022.csv"},
        {"id": "r3", "title": "Documentation", "format": "pdf", "filetype": "file",
         "url": "https://static.data.gouv.fr/resources/x/doc.pdf"},
    ],
}


def test_datagouv_dataset_resolves_to_its_data_resources():
    assert api_url("https://www.data.gouv.fr/fr/datasets/deliberations-des-collectivites-adherentes-de-megalis-"
                   "bretagne/") == ("https://www.data.gouv.fr/api/1/datasets/"
                                    "deliberations-des-collectivites-adherentes-de-megalis-bretagne/")
    assert api_url("https://www.data.gouv.fr/api/1/datasets/60645c94e2bfd21cdc16c0be/").endswith("60645c94e2bfd21cdc16c0be/")
    ds = parse_datagouv(json.dumps(MEGALIS).encode(), "https://www.data.gouv.fr/api/1/datasets/x/")
    assert ds.organization == "Mégalis Bretagne"
    # the first resource says "xml" but is a CSV (as Mégalis uploads them)
    assert [(r.title, r.kind) for r in ds.resources] == [("DELIBERATION-2021.csv", "csv"), ("DELIBERATION-2022.csv", "csv")]
    assert [r.title for r in ds.skipped] == ["Documentation"] and ds.errors == []
    only_2022 = parse_datagouv(json.dumps(MEGALIS).encode(), "x", select="-2022")
    assert [r.title for r in only_2022.resources] == ["DELIBERATION-2022.csv"]
    assert "no CSV or JSON resource matches" in parse_datagouv(json.dumps(MEGALIS).encode(), "x", "2030").errors[0].reason
    assert parse_datagouv(b"<html>", "x").errors[0].reason.startswith("not a data.gouv.fr dataset answer")


def test_subject_glued_to_its_id_is_cut():
    # Rennes Métropole's export: "C2026_108Administration générale…" (bruz-en-action strips it too)
    res = parse_scdl_csv("delib_id;delib_objet\nC2026_108;C2026_108Administration générale\n2;2 rue X\n"
                         "A;Adoption du budget\n".encode())
    assert [r.objet for r in res.rows] == ["Administration générale", "2 rue X", "Adoption du budget"]
