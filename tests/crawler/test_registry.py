"""Tests of crawler/registry.py: the shipped registry, every validation error, URL helpers."""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest

from nlp.config import shared_data_dir, shared_repro_dir
import yaml

from crawler.registry import (
    Metropole,
    Registry,
    default_registry_path,
    load_registry,
    registry_from_dict,
)
from crawler.urls import url_allowed
from nlp.errors import BarometreError, RegistryError

REPO = Path(__file__).resolve().parents[2]


_shared_data = shared_data_dir


# --- the shipped registry ----------------------------------------------------------------

def test_shipped_registry_has_22_metropolises_with_unique_sirens():
    reg = load_registry()
    assert default_registry_path() == REPO / "crawler" / "metropoles.yaml"
    assert len(reg.metropoles) == 22
    sirens = [m.siren for m in reg.metropoles]
    assert len(set(sirens)) == 22
    assert len(set(reg.slugs())) == 22
    assert not any(m.fictional for m in reg.metropoles)
    assert all(m.sources for m in reg.metropoles)
    lyon = reg.get("lyon")
    assert lyon.siren == "200046977" and lyon.name == "Métropole de Lyon"
    assert reg.get("lille").siren == "200093201"  # the post-2020 SIREN, not 245900410


def test_shipped_registry_start_urls_are_followable_and_limits_resolved():
    reg = load_registry()
    for m in reg.metropoles:
        assert m.start_urls
        for url in m.start_urls:
            assert url_allowed(m, url), (m.slug, url)
        assert m.limits.max_pages == 300 and m.limits.max_depth == 4
        assert m.limits.max_file_bytes == 50 * 1024 * 1024
        assert "numérique" in m.limits.keywords
        # the defaults' deny patterns apply to every entry
        assert not url_allowed(m, f"https://{m.domains[0]}/agenda/2024-05")


def test_shipped_registry_matches_the_sourced_facts():
    facts = _shared_data() / "facts" / "metropoles.csv"
    if not facts.exists():
        pytest.skip("../shared/data is absent")
    rows = {r["slug"]: r for r in csv.DictReader(facts.open(encoding="utf-8"))}
    reg = load_registry()
    assert set(rows) == set(reg.slugs())
    for m in reg.metropoles:
        row = rows[m.slug]
        assert m.siren == row["siren"]
        assert m.name == row["name"]
        assert row["sources"] in ";".join(m.sources)  # every source kept, in order
        for d in row["website_domains"].split(";"):
            assert d in m.domains
        for url in (row["deliberations_url"], row["strategy_url"]):
            # third-party copies (doczz, readkong, fdocuments) are deliberately not crawled
            if url and url_allowed(m, url):
                assert url in m.start_urls


def test_select_and_round_trip_through_json():
    reg = load_registry()
    assert [m.slug for m in reg.select(["nantes", "lyon", "nantes"])] == ["nantes", "lyon"]
    assert len(reg.select(None)) == 22
    with pytest.raises(RegistryError) as exc:
        reg.select(["lyon", "paris"])
    assert "'paris'" in str(exc.value) and "known slugs" in str(exc.value) and "lyon" in str(exc.value)
    assert isinstance(exc.value, BarometreError)
    data = json.loads(json.dumps(reg.to_dict()))
    again = registry_from_dict(data, source="<json>")
    assert isinstance(again, Registry)
    assert [m.model_dump() for m in again.metropoles] == [m.model_dump() for m in reg.metropoles]
    assert isinstance(again.metropoles[0], Metropole)


# --- validation errors -------------------------------------------------------------------

def _entry(**over):
    e = {
        "slug": "demo",
        "name": "Métropole de démonstration",
        "siren": "000000000",
        "domains": ["127.0.0.1"],
        "start_urls": ["http://127.0.0.1:8080/"],
        "fictional": True,
    }
    e.update(over)
    return e


def _write(tmp_path: Path, doc) -> Path:
    p = tmp_path / "reg.yaml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return p


def _error(tmp_path: Path, doc) -> str:
    p = _write(tmp_path, doc)
    with pytest.raises(RegistryError) as exc:
        load_registry(p)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(str(p) + ": ")
    return msg


def _two(second: dict) -> dict:
    return {"version": 1, "metropoles": [_entry(), second]}


def test_minimal_fictional_registry_loads(tmp_path):
    reg = load_registry(_write(tmp_path, {"version": 1, "metropoles": [_entry()]}))
    m = reg.metropoles[0]
    assert m.limits.max_pages == 300 and m.sitemaps == [] and m.deny == []


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    msg = _error(tmp_path, "version: 1\nmetropoles:\n  - slug: a\n    name: [unclosed\n")
    assert "YAML syntax error at line" in msg


def test_yaml_duplicate_key_is_an_error(tmp_path):
    msg = _error(tmp_path, "version: 1\nmetropoles:\n  - slug: lyon\n    name: L\n    siren: '000000000'\n"
                           "    domains: [127.0.0.1]\n    start_urls: ['http://127.0.0.1/']\n"
                           "    start_urls: ['http://127.0.0.1/b']\n    fictional: true\n")
    assert "YAML syntax error at line 8" in msg and "'start_urls' appears twice" in msg and "line 7" in msg


def test_missing_field(tmp_path):
    e = _entry(slug="lyon")
    del e["siren"]
    msg = _error(tmp_path, _two(e))
    assert "entry 'lyon' (#2)" in msg and "field 'siren'" in msg and "missing" in msg


def test_missing_slug_names_the_index(tmp_path):
    e = _entry()
    del e["slug"]
    msg = _error(tmp_path, _two(e))
    assert "entry #2:" in msg and "field 'slug'" in msg and "missing" in msg


def test_unknown_field(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="lyon", start_url="http://127.0.0.1/")))
    assert "entry 'lyon' (#2)" in msg and "field 'start_url'" in msg and "unknown field" in msg
    assert "start_urls" in msg  # the known fields are listed


def test_unknown_top_level_field(tmp_path):
    msg = _error(tmp_path, {"version": 1, "metropole": [], "metropoles": [_entry()]})
    assert "field 'metropole'" in msg and "unknown" in msg


@pytest.mark.parametrize("slug", ["Lyon", "lyon_métropole", "-lyon", "a b", ""])
def test_bad_slug(tmp_path, slug):
    msg = _error(tmp_path, _two(_entry(slug=slug)))
    assert ("(#2)" in msg or "entry #2:" in msg) and "field 'slug'" in msg and "[a-z0-9-]+" in msg


def test_duplicate_slug(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="demo", siren="000000018")))
    assert "entry 'demo' (#2)" in msg and "field 'slug'" in msg and "duplicate" in msg and "#1" in msg


def test_duplicate_siren_between_real_entries(tmp_path):
    a = _entry(slug="lyon", siren="200046977", fictional=False, domains=["grandlyon.com"],
               start_urls=["https://www.grandlyon.com/"], sources=["x"])
    b = dict(a, slug="lyon-bis")
    msg = _error(tmp_path, {"version": 1, "metropoles": [a, b]})
    assert "entry 'lyon-bis' (#2)" in msg and "field 'siren'" in msg and "duplicate" in msg


def test_siren_not_9_digits(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="lyon", siren="2000469")))
    assert msg.endswith("entry 'lyon' (#2): field 'siren': must be 9 digits, got '2000469'")


def test_siren_unquoted_number(tmp_path):
    msg = _error(tmp_path, "version: 1\nmetropoles:\n  - slug: lyon\n    name: L\n    siren: 200046977\n"
                           "    domains: [grandlyon.com]\n    start_urls: ['https://grandlyon.com/']\n"
                           "    sources: [x]\n")
    assert "entry 'lyon' (#1)" in msg and "field 'siren'" in msg and "quoted" in msg


def test_siren_failing_luhn_for_real_entry(tmp_path):
    e = _entry(slug="lyon", siren="200046978", fictional=False, domains=["grandlyon.com"],
               start_urls=["https://www.grandlyon.com/"], sources=["x"])
    msg = _error(tmp_path, _two(e))
    assert "entry 'lyon' (#2)" in msg and "field 'siren'" in msg and "Luhn" in msg


def test_real_entry_needs_sources(tmp_path):
    e = _entry(slug="lyon", siren="200046977", fictional=False, domains=["grandlyon.com"],
               start_urls=["https://www.grandlyon.com/"])
    msg = _error(tmp_path, _two(e))
    assert "entry 'lyon' (#2)" in msg and "field 'sources'" in msg


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "127.0.0.1/x", "javascript:alert(1)", "http:///nohost"])
def test_start_url_not_http(tmp_path, url):
    msg = _error(tmp_path, _two(_entry(slug="lyon", start_urls=["http://127.0.0.1/", url])))
    assert "entry 'lyon' (#2)" in msg and "field 'start_urls[1]'" in msg


def test_start_url_outside_domains(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="lyon", domains=["grandlyon.com"],
                                       start_urls=["https://www.grandlyon.com/", "https://grandlyon.com.evil.org/"])))
    assert "entry 'lyon' (#2)" in msg and "field 'start_urls[1]'" in msg and "outside" in msg


def test_sitemap_outside_domains(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="lyon", sitemaps=["https://example.org/sitemap.xml"])))
    assert "entry 'lyon' (#2)" in msg and "field 'sitemaps[0]'" in msg and "outside" in msg


def test_bad_domain(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="lyon", domains=["https://grandlyon.com/"])))
    assert "entry 'lyon' (#2)" in msg and "field 'domains[0]'" in msg and "host name" in msg


@pytest.mark.parametrize("field", ["allow", "deny"])
def test_bad_regex(tmp_path, field):
    msg = _error(tmp_path, _two(_entry(slug="lyon", **{field: ["/ok/", "(unclosed"]})))
    assert "entry 'lyon' (#2)" in msg and f"field '{field}[1]'" in msg and "invalid regular expression" in msg


def test_bad_regex_in_defaults(tmp_path):
    msg = _error(tmp_path, {"version": 1, "defaults": {"deny": ["[z-a]"]}, "metropoles": [_entry()]})
    assert "field 'defaults.deny[0]'" in msg and "invalid regular expression" in msg


def test_bad_dataset_format(tmp_path):
    ds = [{"url": "http://127.0.0.1/d.csv", "format": "scdl-csv"},
          {"url": "http://127.0.0.1/d.json", "format": "excel"}]
    msg = _error(tmp_path, _two(_entry(slug="lyon", deliberation_datasets=ds)))
    assert "entry 'lyon' (#2)" in msg and "field 'deliberation_datasets[1].format'" in msg
    assert "scdl-csv" in msg and "opendatasoft" in msg and "'excel'" in msg


def test_bad_dataset_url(tmp_path):
    ds = [{"url": "file:///etc/passwd", "format": "scdl-csv"}]
    msg = _error(tmp_path, _two(_entry(slug="lyon", deliberation_datasets=ds)))
    assert "field 'deliberation_datasets[0].url'" in msg and "http(s)" in msg


def test_negative_limit_in_entry(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="lyon", limits={"max_pages": -1})))
    assert "entry 'lyon' (#2)" in msg and "field 'limits.max_pages'" in msg and ">= 0" in msg


def test_negative_limit_in_defaults(tmp_path):
    msg = _error(tmp_path, {"version": 1, "defaults": {"max_depth": -2}, "metropoles": [_entry()]})
    assert "field 'defaults.max_depth'" in msg and ">= 0" in msg


def test_unknown_limit(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="lyon", limits={"max_page": 3})))
    assert "entry 'lyon' (#2)" in msg and "field 'limits.max_page'" in msg and "unknown" in msg


def test_limit_override_merges_with_defaults(tmp_path):
    doc = {"version": 1, "defaults": {"max_pages": 50, "keywords": ["numérique"], "deny": ["/agenda/"]},
           "metropoles": [_entry(limits={"max_depth": 1}, deny=["/recherche"])]}
    m = load_registry(_write(tmp_path, doc)).metropoles[0]
    assert (m.limits.max_pages, m.limits.max_depth, m.limits.keywords) == (50, 1, ["numérique"])
    assert m.deny == ["/agenda/", "/recherche"]


def test_entry_not_a_mapping_and_empty_list(tmp_path):
    msg = _error(tmp_path, {"version": 1, "metropoles": [_entry(), "lyon"]})
    assert "entry #2" in msg and "mapping" in msg
    msg = _error(tmp_path, {"version": 1, "metropoles": []})
    assert "field 'metropoles'" in msg


def test_wrong_version_and_missing_file(tmp_path):
    msg = _error(tmp_path, {"version": 2, "metropoles": [_entry()]})
    assert "field 'version'" in msg
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "nope.yaml")


def test_errors_in_several_fields_stay_on_one_line(tmp_path):
    msg = _error(tmp_path, _two(_entry(slug="lyon", siren="12", start_urls=["ftp://x/"])))
    assert "field 'siren'" in msg and "field 'start_urls[0]'" in msg


# --- URL helpers -------------------------------------------------------------------------

def _metropole(**over) -> Metropole:
    doc = {"version": 1, "metropoles": [_entry(domains=["grandlyon.com"], start_urls=["https://grandlyon.com/"], **over)]}
    return registry_from_dict(copy.deepcopy(doc), "t").metropoles[0]


def test_url_allowed_domains_and_subdomains():
    m = _metropole()
    assert url_allowed(m, "https://grandlyon.com/")
    assert url_allowed(m, "https://www.grandlyon.com/actions/x")
    assert url_allowed(m, "http://data.GrandLyon.com./x")
    assert not url_allowed(m, "https://grandlyon.com.evil.org/")
    assert not url_allowed(m, "https://notgrandlyon.com/")
    assert not url_allowed(m, "mailto:contact@grandlyon.com")
    assert not url_allowed(m, "ftp://grandlyon.com/x")


def test_url_allowed_allow_and_deny():
    m = _metropole(allow=["/deliberations/", r"\.pdf$"], deny=["/deliberations/archives/"])
    assert url_allowed(m, "https://www.grandlyon.com/deliberations/2024")
    assert url_allowed(m, "https://www.grandlyon.com/x/y.pdf")
    assert not url_allowed(m, "https://www.grandlyon.com/actualites")
    assert not url_allowed(m, "https://www.grandlyon.com/deliberations/archives/2001")


# --- hostile registries (issue 13) ----------------------------------------------------------

REPRO = shared_repro_dir()


def _repro(name: str) -> Path:
    path = REPRO / name
    if not path.exists():
        pytest.skip(f"../shared/repro is absent ({name})")
    return path


@pytest.mark.parametrize("name,expected", [
    ("registry_backslash_start_url__domain_bypass.yaml", "field 'start_urls[1]': contains a backslash"),
    ("registry_billion_laughs_entry__2GB.yaml", "YAML expands to more than"),
    ("registry_billion_laughs_slug__hang.yaml", "YAML expands to more than"),
    ("registry_deep_nesting__RecursionError.yaml", "YAML nested"),
    ("registry_regex_overflow__OverflowError.yaml", "field 'deny[0]'"),
    ("registry_5000_digit_int__ValueError.yaml", "number of 5000 digits is too large"),
])
def test_repro_registries_end_with_one_line(name: str, expected: str) -> None:
    import time

    path = _repro(name)
    start = time.monotonic()
    with pytest.raises(RegistryError) as exc:
        load_registry(path)
    msg = str(exc.value)
    assert time.monotonic() - start < 5
    assert "\n" not in msg and len(msg) < 1000 and msg.startswith(str(path) + ": ")
    assert expected in msg


@pytest.mark.parametrize("url", [
    "http://localhost:18732\\@127.0.0.1:18731/bs", "http://127.0.0.1\\evil/", "http://127.0.0.1/a\tb",
    "http://user:pw@127.0.0.1/", "http://127.0.0.1/" + "a" * 2100,
])
def test_urls_that_would_not_go_where_they_seem_are_refused(tmp_path, url):
    msg = _error(tmp_path, _two(_entry(slug="lyon", start_urls=["http://127.0.0.1/", url])))
    assert "entry 'lyon' (#2)" in msg and "field 'start_urls[1]'" in msg


@pytest.mark.parametrize("pattern,expected", [
    ("a{99999999999}", "repetition count"), ("x{2000}", "repetition count"), ("(a+)+$", "nests"),
    ("(?:a|b*)*c", "nests"), ("((ab)*)+", "nests"), ("a" * 501, "longer than"), ("(", "invalid"),
])
def test_regexes_that_could_hang_or_overflow_are_refused(tmp_path, pattern, expected):
    msg = _error(tmp_path, _two(_entry(slug="lyon", deny=["/ok/", pattern])))
    assert "field 'deny[1]'" in msg and expected in msg


def test_ordinary_regexes_are_accepted(tmp_path):
    ok = [r"(?i)/(agenda|calendrier)(/|\?|$)", r"\.(jpe?g|png)(\?|$)", r"^https://x\.fr/[a-z-]+/\d{4}/",
          r"[?&](q|s)=", r"/deliberations/.*\.pdf$"]
    reg = load_registry(_write(tmp_path, {"version": 1, "metropoles": [_entry(deny=ok)]}))
    assert reg.metropoles[0].deny == ok


@pytest.mark.parametrize("field,value,expected", [
    ("max_pages", 10 ** 12, "<= 10,000,000"), ("max_depth", 1000, "<= 100"),
    ("max_total_bytes", 10 ** 30, "<="), ("max_file_bytes", -1, ">= 0"), ("max_pages", 1.5, "whole number"),
    ("max_pages", True, "whole number"), ("max_pages", "many", "whole number"),
])
def test_limits_are_range_checked(tmp_path, field, value, expected):
    msg = _error(tmp_path, _two(_entry(slug="lyon", limits={field: value})))
    assert f"field 'limits.{field}'" in msg and expected in msg


def test_dataset_outside_the_entry_needs_its_own_domains(tmp_path):
    ds = {"url": "https://data.example.org/ds.csv", "format": "scdl-csv"}
    msg = _error(tmp_path, _two(_entry(slug="lyon", deliberation_datasets=[ds])))
    assert "field 'deliberation_datasets[0].url'" in msg and "outside the allowed domains" in msg
    ok = dict(ds, domains=["data.example.org"])
    m = load_registry(_write(tmp_path, {"version": 1, "metropoles": [_entry(deliberation_datasets=[ok])]})).metropoles[0]
    assert m.deliberation_datasets[0].scope(m.domains) == ["127.0.0.1", "data.example.org"]
    msg = _error(tmp_path, _two(_entry(slug="lyon", deliberation_datasets=[dict(ds, domains=["https://x/"])])))
    assert "field 'deliberation_datasets[0].domains[0]'" in msg and "host name" in msg


def test_invalid_utf8_and_oversized_registry(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"version: 1\nmetropoles:\n  - slug: \xff\n")
    with pytest.raises(RegistryError, match="invalid UTF-8 at line 3"):
        load_registry(p)
    p.write_bytes(b"# " + b"x" * (5 * 1024 * 1024))
    with pytest.raises(RegistryError, match="larger than"):
        load_registry(p)


# --- dataset declarations (issue 15) ----------------------------------------------------------

def _dataset_error(tmp_path, **ds):
    return _error(tmp_path, _two(_entry(slug="lyon", deliberation_datasets=[{"url": "http://127.0.0.1/d", **ds}])))


def test_dataset_declarations_load(tmp_path):
    ds = [
        {"url": "https://www.data.gouv.fr/fr/datasets/x/", "format": "datagouv", "domains": ["data.gouv.fr"],
         "filter": {"coll_siret": "^243500139", "delib_id": "^C"}, "resources": "DELIBERATION-20(2[2-9])"},
        {"url": "http://127.0.0.1/v.txt", "format": "local-csv", "header": False, "record_lines": 2,
         "encoding": "utf-16", "delimiter": "\t", "columns": {"delib_date": 0, "objet": 1, "delib_id": 3}},
    ]
    m = load_registry(_write(tmp_path, {"version": 1, "metropoles": [_entry(deliberation_datasets=ds)]})).metropoles[0]
    gouv, local = m.deliberation_datasets
    assert gouv.filter == {"coll_siret": "^243500139", "delib_id": "^C"} and gouv.resources.startswith("DELIB")
    assert (local.header, local.record_lines, local.columns["delib_id"]) == (False, 2, 3)


@pytest.mark.parametrize("ds,field,expected", [
    ({"format": "local-csv"}, "columns", "needs its column mapping"),
    ({"format": "local-csv", "columns": {"objet": 1}}, "columns", "must name delib_id"),
    ({"format": "local-csv", "header": False, "columns": {"delib_id": "N°", "objet": 1}}, "columns", "positions"),
    ({"format": "scdl-csv", "columns": {"delib_id": True, "objet": 1}}, "columns.delib_id", "column name or a 0-based"),
    ({"format": "scdl-csv", "columns": {"delib_id": 5000, "objet": 1}}, "columns.delib_id", "between 0 and 1000"),
    ({"format": "scdl-csv", "filter": {"coll_siret": "(a+)+$"}}, "filter.coll_siret", "nests"),
    ({"format": "scdl-csv", "filter": {"Coll Siret": "x"}}, "filter", "field names"),
    ({"format": "scdl-csv", "resources": "2024"}, "resources", "only a datagouv"),
    ({"format": "scdl-csv", "record_lines": 9}, "record_lines", "<= 5"),
    ({"format": "scdl-csv", "encoding": "klingon"}, "encoding", "unknown encoding"),
    ({"format": "scdl-csv", "delimiter": "::"}, "delimiter", "must be one of"),
])
def test_dataset_declaration_errors(tmp_path, ds, field, expected):
    msg = _dataset_error(tmp_path, **ds)
    assert f"field 'deliberation_datasets[0].{field}" in msg and expected in msg, msg


def test_forms_declared_inside_the_entry(tmp_path):
    ok = [{"url": "http://127.0.0.1/webdelib/", "field": "seance_id", "options": "Conseil", "formdata": {"type": "d"}}]
    m = load_registry(_write(tmp_path, {"version": 1, "metropoles": [_entry(forms=ok)]})).metropoles[0]
    assert m.forms[0].field == "seance_id" and m.forms[0].max_options == 200
    msg = _error(tmp_path, _two(_entry(slug="lyon", forms=[{"url": "https://elsewhere.org/f"}])))
    assert "field 'forms[0].url'" in msg and "outside" in msg
    msg = _error(tmp_path, _two(_entry(slug="lyon", forms=[{"url": "http://127.0.0.1/f", "options": "(x+)+"}])))
    assert "field 'forms[0].options'" in msg and "nests" in msg


def test_every_shipped_registry_url_has_a_source():
    """Issue 15: start URLs and sitemaps carry a comment saying where they were seen; datasets
    and forms list their sources."""
    text = default_registry_path().read_text(encoding="utf-8")
    lines = text.splitlines()
    reg = load_registry()
    for m in reg.metropoles:
        for url in m.start_urls + m.sitemaps:
            line = next(ln for ln in lines if f'"{url}"' in ln)
            assert "#" in line.split(f'"{url}"', 1)[1], (m.slug, url)
        for item in m.deliberation_datasets + m.forms:
            assert item.sources, (m.slug, item.url)
    with_data = {m.slug for m in reg.metropoles if m.deliberation_datasets}
    assert with_data == {"rennes", "tours", "brest"}
    assert {m.slug for m in reg.metropoles if m.shared_domains} == {"brest", "strasbourg"}
