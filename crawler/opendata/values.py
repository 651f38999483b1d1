"""Cell values of deliberation datasets: clean text, dates, SIRET, matter codes, votes, URLs.

Stage: crawl. Each function takes the raw cell text and returns the clean value and, where the
value is doubtful, a problem (kept as a warning with the row, or a reason to skip it).
"""
from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

from crawler.opendata.columns import norm_name
from nlp.io import luhn_ok

_OOXML_ESCAPE_RE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_NEEDS_CLEAN_RE = re.compile(r"_x[0-9A-Fa-f]{4}_|[^\S ]|  |^ | $")
_WS_RE = re.compile(r"\s+")


def decode_ooxml(text: str) -> str:
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


def clean(value: Any, *, keep_lines: bool = False) -> str:
    """A cell as clean text: Excel escapes decoded, spaces collapsed, blank lines dropped;
    line breaks kept when ``keep_lines`` (the subject), else joined with a space."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if not _NEEDS_CLEAN_RE.search(text):
        return text  # most cells: nothing to do (parsing big files is mostly this function)
    text = decode_ooxml(text).replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    lines = [_WS_RE.sub(" ", ln).strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    return ("\n" if keep_lines else " ").join(lines)

def check_siret(raw: str) -> tuple[str | None, bool, str | None]:
    """(value to keep, valid?, problem) for a COLL_SIRET cell."""
    if not raw:
        return None, False, None
    compact = re.sub(r"[\s.\u202f-]", "", raw)
    if re.fullmatch(r"\d{14}", compact):
        if luhn_ok(compact):
            return compact, True, None
        return compact, False, f"COLL_SIRET {raw!r} fails the SIRET check digit (Luhn); row kept, SIRET marked invalid"
    if re.fullmatch(r"\d+([.,]\d+)?[eE][+]?\d+", compact):
        return raw, False, (f"COLL_SIRET {raw!r} was turned into scientific notation by a spreadsheet (digits lost); "
                            "row kept, SIRET marked invalid")
    if re.fullmatch(r"\d{13}", compact):
        return raw, False, f"COLL_SIRET {raw!r} has 13 digits (a leading zero lost?); row kept, SIRET marked invalid"
    return raw, False, f"COLL_SIRET {raw!r} is not 14 digits; row kept, SIRET marked invalid"


_MATIERE_RE = re.compile(r"^\d\.\d{1,2}$")


def check_matiere(raw: str) -> tuple[str | None, str | None]:
    if not raw:
        return None, None
    code = raw.replace(",", ".").strip()
    if _MATIERE_RE.match(code):
        return code, None
    return None, f"DELIB_MATIERE_CODE {raw!r} is not an ACTES code like '8.4'; kept in extra"


def parse_int(raw: str) -> tuple[int | None, bool]:
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
    s = clean(raw)
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
            month = _FR_MONTHS.get(norm_name(m.group(2)).rstrip("_"))
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


def check_url(raw: str, base: str) -> tuple[str | None, list[str], str | None]:
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


