"""Parsers for open-data lists of council deliberations (SCDL CSV, Opendatasoft, local CSVs).

Stage: crawl. Input: the bytes of a deliberations dataset downloaded by the crawler (see
``deliberation_datasets`` in ``crawler/metropoles.yaml``). Output: a
:class:`ScdlParseResult` holding one :class:`DeliberationRow` per good record (its document
URL, date, subject and votes, attached as metadata to the downloaded deliberation) and one
:class:`RowError` per bad record, which is reported and skipped while the good rows go on.

Formats read:

- SCDL "délibérations" CSV (schema versions 1.1, 2.0 and 2.1.5/latest have the same 17
  columns, in a different order in 1.1): ``COLL_NOM, COLL_SIRET, DELIB_ID, DELIB_DATE,
  DELIB_MATIERE_CODE, DELIB_MATIERE_NOM, DELIB_OBJET, BUDGET_ANNEE, BUDGET_NOM, PREF_ID,
  PREF_DATE, VOTE_EFFECTIF, VOTE_REEL, VOTE_POUR, VOTE_CONTRE, VOTE_ABSTENTION, DELIB_URL``.
  Columns are found by name (case, accents and punctuation ignored) so order and extra
  columns do not matter, and common variants are accepted (e.g. Montpellier's local format:
  ``Numéro de délibération`` -> delib_id, ``Date CM`` -> delib_date, ``Titre`` -> objet; the
  other columns go to ``extra``).
- Opendatasoft Explore API v2.1: ``/exports/json`` (a list of records), ``/exports/jsonl``,
  ``/records`` (``{"total_count": …, "results": […]}``), the older v1/v2.0 ``records`` shapes,
  and ``/exports/csv`` (``;``-separated, with a BOM).

Messy real files are expected: a BOM; ``;``, ``,``, tab or ``|`` separators (sniffed from the
header); line breaks inside quoted fields; UTF-8, windows-1252 or UTF-8 mis-decoded as
windows-1252 ("DÃ©libÃ©ration"); Excel escapes such as ``_x0001_`` (decoded: control
characters become line breaks); dates as ISO, ``DD/MM/YYYY``, ``DD/MM/YY``, Excel serial
numbers or "24 mars 2022"; empty matter codes; duplicate ids; SIRETs mangled by a spreadsheet
into ``2,44201E+13``.

Choices (documented here because they change counts):

- Row numbers are those a spreadsheet shows: records, not physical lines (a record whose
  quoted field spans three lines is one row), header = row 1, first data record = row 2;
  blank records count as rows and are skipped silently. For JSON, the record's 1-based
  position in the list. 0 means the whole file.
- Skipped (an error): a record with more or fewer fields than the header (trailing empty
  fields excepted), a record opening a quote that is never closed, an empty id, a date that
  cannot be read, neither subject (objet) nor usable URL, an id already seen in an earlier
  accepted row (the first is kept).
- Kept with a warning: a SIRET that is not 14 digits passing the Luhn check (e.g. the
  scientific-notation ``2,44201E+13``): the row is kept and ``coll_siret_valid`` is False, the
  raw value stays in ``coll_siret`` (the deliberation itself is still real and useful, only
  the issuer's id is lost and the issuer is known from the registry); an empty date
  (``delib_date`` None); a matter code not of the ACTES form ``d.d`` (``matiere_code`` None,
  raw value in ``extra``); a URL that is not http(s) (``url`` None, raw value in ``extra``;
  a relative path is resolved against the dataset's URL, ``www.…`` gets ``https://``, a cell
  with several URLs gives the first and ``extra["other_urls"]``); a vote count that is not a
  whole number (None). A missing date column is one warning for the file (row 0).
- ``objet`` keeps its line breaks (one per source line or Excel escape, blank lines
  dropped); the other text fields are joined into one line.

Public functions: :func:`parse_scdl_csv`, :func:`parse_deliberations_csv` (same parser),
:func:`parse_opendatasoft`, :func:`parse_dataset` (dispatch on the registry's dataset format),
:func:`parse_date`.
"""
from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import logging
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit

logger = logging.getLogger(__name__)

# --- column names --------------------------------------------------------------------------

# Canonical field -> accepted column names, normalised by _norm_name (lower case, accents
# removed, runs of other characters -> "_"), most specific first. Row fields take the core
# ones; the others end in ``extra`` under the canonical name.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "delib_id": (
        "delib_id", "id_delib", "identifiant_deliberation", "identifiant_de_la_deliberation",
        "numero_de_deliberation", "numero_deliberation", "numero_de_la_deliberation",
        "num_deliberation", "num_delib", "n_deliberation", "no_deliberation", "n_de_deliberation",
        "numero_acte", "identifiant", "numero", "reference", "id",
    ),
    "delib_date": (
        "delib_date", "date_deliberation", "date_de_deliberation", "date_de_la_deliberation",
        "date_adoption", "date_d_adoption", "date_decision", "date_de_decision", "date_seance",
        "date_de_seance", "date_de_la_seance", "date_conseil", "date_du_conseil", "date_cm", "date",
    ),
    "matiere_code": ("delib_matiere_code", "matiere_code", "code_matiere", "code_de_matiere", "code_de_la_matiere"),
    "matiere_nom": ("delib_matiere_nom", "matiere_nom", "nom_matiere", "nom_de_matiere", "nom_de_la_matiere",
                    "matiere", "thematique"),
    "objet": ("delib_objet", "objet", "objet_de_la_deliberation", "objet_deliberation", "titre", "intitule",
              "libelle", "title"),
    "url": ("delib_url", "url_deliberation", "url", "lien", "lien_deliberation", "lien_document", "url_document",
            "document_url", "lien_vers_le_document", "document", "fichier", "pdf"),
    "coll_nom": ("coll_nom", "nom_collectivite", "nom_de_la_collectivite", "collectivite", "coll_name"),
    "coll_siret": ("coll_siret", "siret", "siret_collectivite", "siret_de_la_collectivite", "code_siret"),
    "budget_annee": ("budget_annee", "annee_budget", "annee_du_budget"),
    "budget_nom": ("budget_nom", "nom_budget", "nom_du_budget"),
    "pref_id": ("pref_id", "id_prefecture", "identifiant_prefecture"),
    "pref_date": ("pref_date", "date_prefecture", "date_reception_prefecture", "date_de_reception_en_prefecture",
                  "date_transmission_prefecture"),
    "vote_effectif": ("vote_effectif", "effectif", "membres_en_exercice", "nb_membres"),
    "vote_reel": ("vote_reel", "votants", "nb_votants", "nombre_de_votants"),
    "vote_pour": ("vote_pour", "votes_pour", "nb_pour", "pour"),
    "vote_contre": ("vote_contre", "votes_contre", "nb_contre", "contre"),
    "vote_abstention": ("vote_abstention", "votes_abstention", "abstentions", "abstention", "nb_abstentions",
                        "nb_abstention"),
}
VOTE_FIELDS = {"vote_effectif": "effectif", "vote_reel": "reel", "vote_pour": "pour",
               "vote_contre": "contre", "vote_abstention": "abstention"}
# Canonical fields that become attributes of DeliberationRow (the rest goes to ``extra``).
ROW_FIELDS = ("delib_id", "delib_date", "matiere_code", "matiere_nom", "objet", "url", "coll_nom", "coll_siret")
SCDL_COLUMNS = (
    "coll_nom", "coll_siret", "delib_id", "delib_date", "delib_matiere_code", "delib_matiere_nom", "delib_objet",
    "budget_annee", "budget_nom", "pref_id", "pref_date", "vote_effectif", "vote_reel", "vote_pour", "vote_contre",
    "vote_abstention", "delib_url",
)


def _norm_name(name: str) -> str:
    """Column name key: lower case, no accents, other characters runs -> '_'."""
    s = unicodedata.normalize("NFKD", name.replace("\ufeff", "")).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def _map_columns(names: list[str]) -> tuple[dict[str, int], dict[int, str]]:
    """(canonical field -> column index, other column index -> extra key) for a header."""
    keys = [_norm_name(n) for n in names]
    taken: set[int] = set()
    mapping: dict[str, int] = {}
    for canonical, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            idx = next((i for i, k in enumerate(keys) if k == alias and i not in taken), None)
            if idx is not None:
                mapping[canonical] = idx
                taken.add(idx)
                break
    others: dict[int, str] = {}
    used: set[str] = set(mapping)
    for i, k in enumerate(keys):
        if i in taken:
            continue
        key = k or f"column_{i + 1}"
        while key in used:
            key += "_"
        used.add(key)
        others[i] = key
    return mapping, others


# --- records -------------------------------------------------------------------------------

@dataclass
class RowError:
    """A problem with one record: ``row_number`` as a spreadsheet shows it (0 = whole file)."""

    row_number: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.reason}" if self.row_number else self.reason


@dataclass
class DeliberationRow:
    """One deliberation listed in a dataset.

    ``delib_date`` is ISO ``YYYY-MM-DD`` or None; ``url`` is the document's http(s) URL
    (DELIB_URL) or None; ``votes`` has the keys effectif, reel, pour, contre, abstention
    (int or None); ``extra`` holds the other non-empty columns (budget_annee, budget_nom,
    pref_id, pref_date (ISO), and any local column under its normalised name) plus ``*_raw``
    values that failed a check. ``coll_siret_valid`` says whether ``coll_siret`` is 14 digits
    passing the Luhn check.
    """

    row_number: int
    delib_id: str
    delib_date: str | None = None
    matiere_code: str | None = None
    matiere_nom: str | None = None
    objet: str | None = None
    url: str | None = None
    coll_nom: str | None = None
    coll_siret: str | None = None
    coll_siret_valid: bool = False
    votes: dict[str, int | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScdlParseResult:
    """Outcome of parsing one dataset.

    ``rows``: good records; ``errors``: skipped records (and file-level problems, row 0);
    ``warnings``: kept records with a problem; ``format``: scdl-csv | opendatasoft-csv |
    opendatasoft-json; ``schema``: "scdl" when the columns are SCDL names, else "local";
    ``columns``: canonical field -> column name as found; ``records``: data records read
    (blank ones excluded); ``declared_total``: the API's ``total_count`` when given (a
    paginated ``/records`` answer holds fewer records than this).
    """

    source: str = ""
    format: str = ""
    schema: str = ""
    encoding: str | None = None
    delimiter: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    rows: list[DeliberationRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    records: int = 0
    declared_total: int | None = None

    @property
    def file_error(self) -> str | None:
        """The reason the whole file could not be read, if so."""
        return next((e.reason for e in self.errors if e.row_number == 0), None)

    def to_metadata(self, row: DeliberationRow) -> dict[str, Any]:
        """JSON-able metadata for the source row of the document at ``row.url``."""
        meta: dict[str, Any] = {
            "dataset_source": self.source,
            "dataset_format": self.format,
            "dataset_row": row.row_number,
        }
        d = row.to_dict()
        d.pop("row_number")
        meta.update(d)
        return meta

    def summary(self) -> dict[str, Any]:
        """Counts for logs and the crawl summary."""
        return {
            "source": self.source, "format": self.format, "schema": self.schema, "encoding": self.encoding,
            "delimiter": self.delimiter, "records": self.records, "rows": len(self.rows),
            "errors": len(self.errors), "warnings": len(self.warnings), "declared_total": self.declared_total,
        }


# --- value cleaning -----------------------------------------------------------------------

_OOXML_ESCAPE_RE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_MOJIBAKE_RE = re.compile("Ã[\u0080-\u00bf©¨ª«®ôâ§¢‰€]|â€[™œ\u009d“”˜¦]")


_NEEDS_CLEAN_RE = re.compile(r"_x[0-9A-Fa-f]{4}_|[^\S ]|  |^ | $")
_WS_RE = re.compile(r"\s+")


def _decode_ooxml(text: str) -> str:
    # Excel writes control characters of a cell as _xHHHH_ (ECMA-376): Montpellier's titles
    # carry _x0001_ where the source had a line break.
    def repl(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        if ch == "\t":
            return " "
        if unicodedata.category(ch) == "Cc":
            return "\n"
        return ch
    return _OOXML_ESCAPE_RE.sub(repl, text)


def _clean(value: Any, *, keep_lines: bool = False) -> str:
    """A cell as clean text: Excel escapes decoded, spaces collapsed, blank lines dropped;
    line breaks kept when ``keep_lines`` (the subject), else joined with a space."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if not _NEEDS_CLEAN_RE.search(text):
        return text  # most cells: nothing to do (parsing big files is mostly this function)
    text = _decode_ooxml(text).replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    lines = [_WS_RE.sub(" ", ln).strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    return ("\n" if keep_lines else " ").join(lines)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _check_siret(raw: str) -> tuple[str | None, bool, str | None]:
    """(value to keep, valid?, problem) for a COLL_SIRET cell."""
    if not raw:
        return None, False, None
    compact = re.sub(r"[\s.\u202f-]", "", raw)
    if re.fullmatch(r"\d{14}", compact):
        if _luhn_ok(compact):
            return compact, True, None
        return compact, False, f"COLL_SIRET {raw!r} fails the SIRET check digit (Luhn); row kept, SIRET marked invalid"
    if re.fullmatch(r"\d+([.,]\d+)?[eE][+]?\d+", compact):
        return raw, False, (f"COLL_SIRET {raw!r} was turned into scientific notation by a spreadsheet (digits lost); "
                            "row kept, SIRET marked invalid")
    if re.fullmatch(r"\d{13}", compact):
        return raw, False, f"COLL_SIRET {raw!r} has 13 digits (a leading zero lost?); row kept, SIRET marked invalid"
    return raw, False, f"COLL_SIRET {raw!r} is not 14 digits; row kept, SIRET marked invalid"


_MATIERE_RE = re.compile(r"^\d\.\d{1,2}$")


def _check_matiere(raw: str) -> tuple[str | None, str | None]:
    if not raw:
        return None, None
    code = raw.replace(",", ".").strip()
    if _MATIERE_RE.match(code):
        return code, None
    return None, f"DELIB_MATIERE_CODE {raw!r} is not an ACTES code like '8.4'; kept in extra"


def _parse_int(raw: str) -> tuple[int | None, bool]:
    """(value, ok) for a vote count; '' -> (None, True)."""
    s = raw.strip().replace("\u00a0", "").replace(" ", "")
    if not s or s in {"-", "NA", "N/A", "n/a", "null", "NULL"}:
        return None, True
    m = re.fullmatch(r"(\d+)(?:[.,]0+)?", s)  # "62.0" from Excel
    if m:
        return int(m.group(1)), True
    return None, False


_FR_MONTHS = {
    "janvier": 1, "janv": 1, "fevrier": 2, "fevr": 2, "fev": 2, "mars": 3, "avril": 4, "avr": 4, "mai": 5,
    "juin": 6, "juillet": 7, "juil": 7, "aout": 8, "septembre": 9, "sept": 9, "octobre": 10, "oct": 10,
    "novembre": 11, "nov": 11, "decembre": 12, "dec": 12,
}


@functools.lru_cache(maxsize=1)
def _paris() -> Any:
    """The Europe/Paris time zone, or None without a tz database (dates then stay in UTC)."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Paris")
    except Exception:
        return None


def parse_date(raw: Any) -> tuple[str | None, str | None]:
    """Read a date as found in deliberation datasets: (ISO ``YYYY-MM-DD`` or None, problem).

    Accepts ``YYYY-MM-DD`` (with an optional time; a UTC timestamp such as Opendatasoft's
    ``2022-03-23T23:00:00+00:00`` is converted to the Paris date, 2022-03-24), ``YYYY/MM/DD``,
    ``DD/MM/YYYY`` (also ``-`` or ``.``), ``DD/MM/YY`` (2000+YY below 70), Excel serial day
    numbers (20000-80000) and French dates such as "24 mars 2022" or "1er avril 2022". Day
    before month always: "03/24/2022" is a problem, not March 24th. An empty value gives
    (None, None).
    """
    if raw is None:
        return None, None
    s = _clean(raw)
    if not s:
        return None, None
    try:
        m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?", s)
        if m:
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if m.group(4) is not None and m.group(7):
                dt = datetime.fromisoformat(
                    f"{y:04d}-{mo:02d}-{d:02d}T{int(m.group(4)):02d}:{m.group(5)}:{m.group(6) or '00'}"
                    + ("+00:00" if m.group(7) == "Z" else m.group(7) if ":" in m.group(7) else m.group(7)[:3] + ":" + m.group(7)[3:])
                )
                tz = _paris()
                return (dt.astimezone(tz).date() if tz else dt.date()).isoformat(), None
            return _checked(date(y, mo, d)), None
        m = re.fullmatch(r"(\d{4})/(\d{1,2})/(\d{1,2})", s)
        if m:
            return _checked(date(int(m.group(1)), int(m.group(2)), int(m.group(3)))), None
        m = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?", s)
        if m:
            d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if len(m.group(3)) == 2:
                y += 2000 if y < 70 else 1900
            return _checked(date(y, mo, d)), None
        m = re.fullmatch(r"(\d{5})(?:\.0+)?", s)
        if m and 20000 <= int(m.group(1)) <= 80000:
            return _checked(date(1899, 12, 30) + timedelta(days=int(m.group(1)))), None
        m = re.fullmatch(r"(?:[a-zéû]+\.?\s+)?(\d{1,2})(?:er)?\s+([a-zA-Zéèûô.]+)\s+(\d{4})", s, re.IGNORECASE)
        if m:
            month = _FR_MONTHS.get(_norm_name(m.group(2)).rstrip("_"))
            if month:
                return _checked(date(int(m.group(3)), month, int(m.group(1)))), None
    except ValueError:
        return None, f"date {s!r} does not exist"
    return None, f"cannot read date {s!r} (expected YYYY-MM-DD or DD/MM/YYYY)"


def _checked(d: date) -> str:
    if not 1790 <= d.year <= 2100:
        raise ValueError(d)
    return d.isoformat()


_URL_IN_TEXT_RE = re.compile(r"https?://[^\s;,<>\"']+", re.IGNORECASE)
_RELATIVE_URL_RE = re.compile(r"^(?:\.{0,2}/)?[\w.~%-]+(?:/[\w.~%=&?+-]*)*$")


def _check_url(raw: str, base: str) -> tuple[str | None, list[str], str | None]:
    """(document URL or None, other URLs in the cell, problem) for a DELIB_URL cell.

    A relative path is resolved against ``base`` when that is an http(s) URL (the dataset's
    own URL); ``www.x.fr/…`` gets ``https://``; a cell holding several URLs gives the first
    and lists the others."""
    if not raw:
        return None, [], None
    url = raw.strip()
    found = _URL_IN_TEXT_RE.findall(url)
    if len(found) > 1:
        return found[0], found[1:], f"DELIB_URL holds {len(found)} URLs; the first is used, the others are in extra"
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return url, [], None
    if not parts.scheme and url.lower().startswith("www.") and " " not in url:
        return "https://" + url, [], None
    if (not parts.scheme and base.lower().startswith(("http://", "https://"))
            and (url.startswith(("/", "./", "../")) or "/" in url or "." in url) and _RELATIVE_URL_RE.match(url)):
        return urljoin(base, url), [], None
    return None, [], f"DELIB_URL {raw!r} is not an http(s) URL; kept in extra"


# --- building rows ------------------------------------------------------------------------

class _RowBuilder:
    """Turns mapped records into rows, errors and warnings; remembers accepted ids."""

    def __init__(self, result: ScdlParseResult, base_url: str, has_date: bool = True) -> None:
        self.result = result
        self.base_url = base_url
        self.has_date = has_date  # without a date column, one file-level warning is enough
        self.first_row: dict[str, int] = {}

    def add(self, row_number: int, values: dict[str, str], others: dict[str, str]) -> None:
        res = self.result
        warn: list[str] = []
        delib_id = values.get("delib_id", "")
        if not delib_id:
            res.errors.append(RowError(row_number, "empty DELIB_ID; row skipped"))
            return
        delib_date, problem = parse_date(values.get("delib_date"))
        if problem:
            res.errors.append(RowError(row_number, f"DELIB_DATE: {problem}; row skipped"))
            return
        if delib_date is None and self.has_date:
            warn.append("empty DELIB_DATE; row kept without a date")
        objet = values.get("objet") or None
        url, other_urls, url_problem = _check_url(values.get("url", ""), self.base_url)
        if not objet and not url:
            res.errors.append(RowError(row_number, "neither DELIB_OBJET nor a usable DELIB_URL; row skipped"))
            return
        if delib_id in self.first_row:
            res.errors.append(RowError(
                row_number, f"duplicate DELIB_ID {delib_id!r} (first seen in row {self.first_row[delib_id]}); row skipped"))
            return
        extra: dict[str, Any] = {}
        if url_problem:
            warn.append(url_problem)
            if other_urls:
                extra["other_urls"] = other_urls
            else:
                extra["url_raw"] = values.get("url")
        matiere_code, matiere_problem = _check_matiere(values.get("matiere_code", ""))
        if matiere_problem:
            warn.append(matiere_problem)
            extra["matiere_code_raw"] = values.get("matiere_code")
        siret, siret_ok, siret_problem = _check_siret(values.get("coll_siret", ""))
        if siret_problem:
            warn.append(siret_problem)
        votes: dict[str, int | None] = {}
        for canonical, key in VOTE_FIELDS.items():
            raw = values.get(canonical, "")
            n, ok = _parse_int(raw)
            if not ok:
                warn.append(f"{canonical.upper()} {raw!r} is not a whole number; set to None")
                extra[f"{canonical}_raw"] = raw
            votes[key] = n
        for canonical in ("budget_annee", "budget_nom", "pref_id"):
            if values.get(canonical):
                extra[canonical] = values[canonical]
        if values.get("pref_date"):
            iso, problem = parse_date(values["pref_date"])
            extra["pref_date"] = iso or values["pref_date"]
            if problem:
                warn.append(f"PREF_DATE: {problem}; kept as written")
        extra.update({k: v for k, v in others.items() if v})
        self.first_row[delib_id] = row_number
        res.rows.append(DeliberationRow(
            row_number=row_number, delib_id=delib_id, delib_date=delib_date, matiere_code=matiere_code,
            matiere_nom=values.get("matiere_nom") or None, objet=objet, url=url,
            coll_nom=values.get("coll_nom") or None, coll_siret=siret, coll_siret_valid=siret_ok,
            votes=votes, extra=extra,
        ))
        res.warnings.extend(RowError(row_number, w) for w in warn)


def _schema_of(names: Iterable[str]) -> str:
    keys = {_norm_name(n) for n in names}
    return "scdl" if len(keys & set(SCDL_COLUMNS)) >= 4 else "local"


# --- CSV ----------------------------------------------------------------------------------

def _decode(data: bytes, result: ScdlParseResult) -> str:
    """Text of a CSV file: UTF-8 (BOM or not), UTF-16 with BOM, else windows-1252/latin-1;
    UTF-8 that was once mis-decoded as windows-1252 is repaired."""
    if data.startswith(codecs.BOM_UTF8):
        raw, enc = data[len(codecs.BOM_UTF8):], "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        result.encoding = "utf-16"
        return data.decode("utf-16", errors="replace")
    else:
        raw, enc = data, "utf-8"
    try:
        text = raw.decode("utf-8")
        result.encoding = enc
    except UnicodeDecodeError:
        if enc == "utf-8-sig":
            text = raw.decode("utf-8", errors="replace")
            result.encoding = enc
            result.warnings.append(RowError(0, "invalid UTF-8 after a UTF-8 BOM; bad bytes replaced by U+FFFD"))
        else:
            try:
                text = raw.decode("cp1252")
                result.encoding = "cp1252"
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
                result.encoding = "latin-1"
    if _MOJIBAKE_RE.search(text):
        try:
            fixed = text.encode("cp1252").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            fixed = None
        if fixed is not None:
            result.warnings.append(RowError(0, "text was UTF-8 decoded as windows-1252 (e.g. 'Ã©'); repaired"))
            result.encoding = f"{result.encoding}+mojibake-repaired"
            text = fixed
    if "\x00" in text:
        result.warnings.append(RowError(0, "NUL characters removed"))
        text = text.replace("\x00", "")
    return text


def _first_records_text(text: str, n: int = 10) -> list[str]:
    """The first ``n`` non-blank logical lines of ``text`` (line breaks inside quotes kept)."""
    out: list[str] = []
    quoted = False
    start = 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch in "\r\n" and not quoted:
            if text[start:i].strip():
                out.append(text[start:i])
                if len(out) >= n:
                    return out
            start = i + 1
    if text[start:].strip():
        out.append(text[start:])
    return out


def _sniff_delimiter(text: str) -> str:
    """The separator: the most frequent of ; , tab | outside quotes in the header. The header
    is taken to be the first of the first lines with the most separators, so a title line
    above it (no separator) does not decide."""
    best_delim, best_count = ",", 0
    for line in _first_records_text(text):
        counts = {d: 0 for d in (";", ",", "\t", "|")}
        quoted = False
        for ch in line:
            if ch == '"':
                quoted = not quoted
            elif not quoted and ch in counts:
                counts[ch] += 1
        delim = max(counts, key=lambda d: (counts[d], d == ";"))
        if counts[delim] > best_count:
            best_delim, best_count = delim, counts[delim]
    return best_delim


def _read_records(text: str, delim: str, result: ScdlParseResult) -> tuple[list[list[str]], bool]:
    """(records, ends inside an unclosed quote?). A CSV error stops the reading; it is
    reported on the record after the last one read."""
    def reader(strict: bool) -> Any:
        return csv.reader(io.StringIO(text, newline=""), delimiter=delim, quotechar='"', doublequote=True,
                          strict=strict)
    records: list[list[str]] = []
    it = reader(False)
    while True:
        try:
            records.append(next(it))
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(RowError(
                len(records) + 1, f"CSV error: {exc} (an unclosed quote?); the rest of the file was not read"))
            break
    # The lenient reader ends an unclosed quoted field at the end of the file silently; the
    # strict one says so (it also rejects `"a" b`, which the lenient reading keeps).
    unclosed = False
    try:
        for _ in reader(True):
            pass
    except csv.Error as exc:
        unclosed = "unexpected end of data" in str(exc)
    return records, unclosed


def parse_deliberations_csv(data: bytes, source: str = "", *, fmt: str = "scdl-csv") -> ScdlParseResult:
    """Parse a deliberations CSV (SCDL or a local variant) given as bytes.

    ``source`` (the dataset URL or path) appears in the result and resolves relative
    DELIB_URLs when it is an http(s) URL. ``fmt`` is recorded as the result's format.
    Never raises on bad content: problems are in ``errors`` / ``warnings``.
    """
    result = ScdlParseResult(source=source, format=fmt)
    text = _decode(data, result)
    if not text.strip():
        result.errors.append(RowError(0, "the file is empty"))
        return result
    delim = _sniff_delimiter(text)
    result.delimiter = delim
    records, unclosed = _read_records(text, delim, result)
    header: list[str] | None = None
    mapping: dict[str, int] = {}
    others: dict[int, str] = {}
    builder = _RowBuilder(result, source)
    preamble: list[int] = []
    for row_number, record in enumerate(records, start=1):
        if not any(cell.strip() for cell in record):
            continue
        if unclosed and row_number == len(records) and header is not None:
            result.records += 1
            result.errors.append(RowError(row_number, (
                "a quote opened in this record is never closed: it swallowed the rest of the file; row skipped")))
            break
        if header is None:
            names = [_clean(c) for c in record]
            m, o = _map_columns(names)
            if "delib_id" in m and ("objet" in m or "url" in m):
                header, mapping, others = names, m, o
                builder.has_date = "delib_date" in m
                if not builder.has_date:
                    result.warnings.append(RowError(0, "no DELIB_DATE column: rows have no date"))
                result.schema = _schema_of(names)
                result.columns = {k: names[i] for k, i in m.items()}
                if preamble:
                    span = f"row {preamble[0]}" if len(preamble) == 1 else f"rows {preamble[0]}-{preamble[-1]}"
                    result.warnings.append(RowError(preamble[0], f"{span} before the header skipped"))
                continue
            preamble.append(row_number)
            if len(preamble) >= 10:
                break
            continue
        result.records += 1
        n = len(header)
        if len(record) > n and not any(c.strip() for c in record[n:]):
            record = record[:n]  # trailing separators written by spreadsheets
        if len(record) != n:
            result.errors.append(RowError(
                row_number, f"{len(record)} fields where the header has {n} (a stray separator or quote?); row skipped"))
            continue
        values = {k: _clean(record[i], keep_lines=(k == "objet")) for k, i in mapping.items()}
        extra = {key: _clean(record[i]) for i, key in others.items()}
        builder.add(row_number, values, extra)
    if header is None:
        result.errors.append(RowError(0, (
            "no header with a deliberation id column and a subject or URL column found "
            "(expected SCDL names such as DELIB_ID, DELIB_OBJET, DELIB_URL)")))
    _log(result)
    return result


def parse_scdl_csv(data: bytes, source: str = "") -> ScdlParseResult:
    """Parse an SCDL "délibérations" CSV (1.1, 2.0, 2.1.x) or a local variant: see
    :func:`parse_deliberations_csv`."""
    return parse_deliberations_csv(data, source, fmt="scdl-csv")


# --- Opendatasoft -------------------------------------------------------------------------

def _ods_value(value: Any) -> str:
    """An Opendatasoft JSON value as cell text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # integral floats (ids, SIRETs, counts exported as numbers) without ".0"
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, dict):
        # a file field: {"url": …, "filename": …, "mimetype": …}
        for key in ("url", "href", "link"):
            if isinstance(value.get(key), str):
                return value[key]
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, list):
        return "; ".join(_ods_value(v) for v in value)
    return str(value)


def _ods_records(doc: Any) -> tuple[list[Any], int | None]:
    """(records, declared total) from the JSON shapes of the Explore API."""
    if isinstance(doc, list):
        return doc, None
    if isinstance(doc, dict):
        total = doc.get("total_count", doc.get("nhits"))
        total = total if isinstance(total, int) else None
        if isinstance(doc.get("results"), list):  # v2.1 /records
            return doc["results"], total
        if isinstance(doc.get("records"), list):  # v2.0 {"record": {"fields"}} or v1 {"fields"}
            out = []
            for rec in doc["records"]:
                if isinstance(rec, dict) and isinstance(rec.get("record"), dict):
                    rec = rec["record"]
                if isinstance(rec, dict) and isinstance(rec.get("fields"), dict):
                    rec = rec["fields"]
                out.append(rec)
            return out, total
    raise ValueError("not an Opendatasoft export: expected a list of records, {'results': [...]} or {'records': [...]}")


def parse_opendatasoft(data: bytes, source: str = "", fmt: str = "json") -> ScdlParseResult:
    """Parse an Opendatasoft Explore API v2.1 export of a deliberations dataset.

    ``fmt``: "json" (``/exports/json`` list, ``/records`` object, v1/v2.0 ``records``; JSON
    Lines are also accepted) or "csv" (``/exports/csv``: ``;`` and a BOM, read by
    :func:`parse_deliberations_csv`). Fields are matched by name like CSV columns (the portal
    lower-cases SCDL names: ``delib_id``, ``delib_objet``…). Row numbers are 1-based record
    positions. Never raises on bad content.
    """
    if fmt == "csv":
        return parse_deliberations_csv(data, source, fmt="opendatasoft-csv")
    if fmt not in ("json", "jsonl"):
        raise ValueError(f"fmt must be 'json' or 'csv', got {fmt!r}")
    result = ScdlParseResult(source=source, format="opendatasoft-json", encoding="utf-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        result.errors.append(RowError(0, f"not UTF-8 JSON: {exc}"))
        return result
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        try:
            doc = [json.loads(ln) for ln in lines]
        except json.JSONDecodeError:
            result.errors.append(RowError(0, f"invalid JSON: {exc}"))
            return result
        if not lines:
            result.errors.append(RowError(0, "the file is empty"))
            return result
    try:
        records, total = _ods_records(doc)
    except ValueError as exc:
        result.errors.append(RowError(0, str(exc)))
        return result
    result.declared_total = total
    if total is not None and total > len(records):
        result.warnings.append(RowError(0, (
            f"the answer holds {len(records)} of {total} records (a paginated /records page); "
            "use /exports/json for the whole dataset")))
    builder = _RowBuilder(result, source)
    names_seen: dict[str, None] = {}
    # Records of one export share their keys: map each distinct key list once.
    mappings: dict[tuple[str, ...], tuple[dict[str, int], dict[int, str]]] = {}
    for position, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            result.records += 1
            result.errors.append(RowError(position, f"record is a {type(rec).__name__}, not an object; skipped"))
            continue
        if not rec:
            continue
        result.records += 1
        names = list(rec)
        names_seen.update(dict.fromkeys(names))
        key = tuple(names)
        if key not in mappings:
            mappings[key] = _map_columns(names)
        mapping, others = mappings[key]
        values = {k: _clean(_ods_value(rec[names[i]]), keep_lines=(k == "objet")) for k, i in mapping.items()}
        extra = {key: _clean(_ods_value(rec[names[i]])) for i, key in others.items()}
        if "delib_id" not in mapping:
            result.errors.append(RowError(position, f"no deliberation id field among {names}; skipped"))
            continue
        builder.add(position, values, extra)
    if names_seen:
        m, _ = _map_columns(list(names_seen))
        result.schema = _schema_of(names_seen)
        result.columns = {k: list(names_seen)[i] for k, i in m.items()}
    _log(result)
    return result


def parse_dataset(data: bytes, dataset_format: str, source: str = "", content_type: str | None = None) -> ScdlParseResult:
    """Parse a dataset listed in the registry (``format``: scdl-csv | opendatasoft).

    For ``opendatasoft`` the JSON or CSV export is told apart by ``content_type`` when given,
    else by the first non-blank byte (``[`` or ``{`` -> JSON).
    """
    if dataset_format == "scdl-csv":
        return parse_scdl_csv(data, source)
    if dataset_format == "opendatasoft":
        ct = (content_type or "").lower()
        if "json" in ct:
            return parse_opendatasoft(data, source, fmt="json")
        if "csv" in ct or "text/plain" in ct:
            return parse_opendatasoft(data, source, fmt="csv")
        head = data.lstrip(codecs.BOM_UTF8).lstrip()[:1]
        return parse_opendatasoft(data, source, fmt="json" if head in (b"[", b"{") else "csv")
    raise ValueError(f"unknown dataset format {dataset_format!r} (expected scdl-csv or opendatasoft)")


def _log(result: ScdlParseResult) -> None:
    logger.info(
        "%s: %d rows kept, %d skipped, %d warnings (%s, %s)", result.source or "dataset", len(result.rows),
        len(result.errors), len(result.warnings), result.format, result.encoding,
    )
