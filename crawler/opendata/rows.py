"""From mapped cell values to :class:`~crawler.opendata.records.DeliberationRow`: checks,
warnings, skipped rows.

Stage: crawl. Choices that change counts (documented here and in the README):

- Skipped (an error): an empty id, a date that cannot be read, neither subject (objet) nor
  usable URL, an id already seen in an earlier accepted row (the first is kept).
- Kept with a warning: a SIRET that is not 14 digits passing the Luhn check, an empty date, a
  matter code not of the ACTES form ``d.d``, a URL that is not http(s), a vote count that is
  not a whole number.
"""
from __future__ import annotations

from typing import Any

from crawler.opendata.columns import VOTE_FIELDS
from crawler.opendata.records import DeliberationRow, ParseResult, RowError
from crawler.opendata.values import check_matiere, check_siret, check_url, parse_date, parse_int


class RowBuilder:
    """Turns mapped records into rows, errors and warnings; remembers accepted ids."""

    def __init__(self, result: ParseResult, base_url: str, has_date: bool = True) -> None:
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
        url, other_urls, url_problem = check_url(values.get("url", ""), self.base_url)
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
        matiere_code, matiere_problem = check_matiere(values.get("matiere_code", ""))
        if matiere_problem:
            warn.append(matiere_problem)
            extra["matiere_code_raw"] = values.get("matiere_code")
        siret, siret_ok, siret_problem = check_siret(values.get("coll_siret", ""))
        if siret_problem:
            warn.append(siret_problem)
        votes: dict[str, int | None] = {}
        for canonical, key in VOTE_FIELDS.items():
            raw = values.get(canonical, "")
            n, ok = parse_int(raw)
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

