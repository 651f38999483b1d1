"""From mapped cell values to :class:`~crawler.opendata.records.DeliberationRow`: checks,
warnings, skipped rows, duplicate and mangled ids, publisher filters.

Stage: crawl. Choices that change counts (documented here and in the README):

- Skipped (an error): an empty id, a date that cannot be read, neither subject (objet) nor
  usable URL, an exact duplicate of an earlier row (every cell equal).
- Kept with a warning: a SIRET that is not 14 digits passing the Luhn check, an empty date, a
  matter code not of the ACTES form ``d.d``, a URL that is not http(s), a vote count that is
  not a whole number.
- Kept under a new id: rows that share an id but differ (a spreadsheet turned
  ``2022.00103`` and ``2022.001030`` into ``2022,00103``): each gets
  ``<id>~<8 hex digits of the SHA-256 of date, subject and URL>``, the original id stays in
  ``extra["delib_id_original"]``, and one warning names the rows.
- Filtered out (counted, not errors): rows that do not match the dataset's ``filter`` (a
  dataset that mixes publishers: the city and the metropolis, the council and the bureau).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from crawler.opendata.columns import VOTE_FIELDS
from crawler.opendata.records import DeliberationRow, ParseResult, RowError
from crawler.opendata.values import check_matiere, check_siret, check_url, parse_date, parse_int


@dataclass(frozen=True)
class RowFilter:
    """Rows kept: every ``field`` (a canonical field such as ``coll_siret`` or ``delib_id``,
    or a local column under its normalised name) has a value that the regex searches."""

    patterns: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, mapping: dict[str, str] | None) -> "RowFilter | None":
        return cls(tuple(sorted(mapping.items()))) if mapping else None

    def matches(self, row: DeliberationRow) -> bool:
        for field, pattern in self.patterns:
            value = getattr(row, field, None) if field in _ROW_ATTRS else row.extra.get(field)
            if value is None or not re.search(pattern, str(value)):
                return False
        return True

    def describe(self) -> str:
        return ", ".join(f"{f} ~ /{p}/" for f, p in self.patterns)


_ROW_ATTRS = {"delib_id", "delib_date", "matiere_code", "matiere_nom", "objet", "url", "coll_nom", "coll_siret"}


def disambiguated_id(delib_id: str, row: DeliberationRow) -> str:
    """``<id>~<8 hex>``: the id plus a hash of what tells two deliberations apart."""
    key = "\x1f".join(str(x or "") for x in (row.delib_date, row.objet, row.url))
    return f"{delib_id}~{hashlib.sha256(key.encode('utf-8')).hexdigest()[:8]}"


class RowBuilder:
    """Turns mapped records into rows, errors and warnings (see the module docstring)."""

    def __init__(self, result: ParseResult, base_url: str, has_date: bool = True,
                 keep: RowFilter | None = None, first_row: int = 1) -> None:
        self.result = result
        self.base_url = base_url
        self.has_date = has_date  # without a date column, one file-level warning is enough
        self.keep = keep
        self.first_row = first_row
        self._seen: dict[str, list[tuple[int, tuple[Any, ...], DeliberationRow]]] = {}
        self._mangled: dict[str, list[int]] = {}

    def add(self, row_number: int, values: dict[str, str], others: dict[str, str]) -> None:
        res = self.result
        built = self._build(row_number, values, others)
        if built is None:
            return
        row, warn = built
        if self.keep is not None and not self.keep.matches(row):
            res.filtered += 1
            return
        signature = (tuple(sorted(values.items())), tuple(sorted(others.items())))
        if not self._unique(row, signature):
            return
        res.rows.append(row)
        res.warnings.extend(RowError(row_number, w) for w in warn)

    def finish(self) -> None:
        """File-level notes once every row is read: mangled ids, filtered rows."""
        res = self.result
        for delib_id, rows in self._mangled.items():
            res.warnings.append(RowError(rows[0], (
                f"DELIB_ID {delib_id!r} is shared by rows {', '.join(map(str, rows))} with different date, "
                "subject or URL (an id mangled by a spreadsheet?): each kept as "
                f"'{delib_id}~<hash>', the original id in delib_id_original")))
        if self.keep is not None and res.filtered:
            res.warnings.append(RowError(0, f"{res.filtered} rows filtered out (filter: {self.keep.describe()})"))

    # -- checks ---------------------------------------------------------------------------
    def _build(self, row_number: int, values: dict[str, str],
               others: dict[str, str]) -> tuple[DeliberationRow, list[str]] | None:
        res = self.result
        warn: list[str] = []
        delib_id = values.get("delib_id", "")
        if not delib_id:
            res.errors.append(RowError(row_number, "empty DELIB_ID; row skipped"))
            return None
        delib_date, problem = parse_date(values.get("delib_date"))
        if problem:
            res.errors.append(RowError(row_number, f"DELIB_DATE: {problem}; row skipped"))
            return None
        if delib_date is None and self.has_date:
            warn.append("empty DELIB_DATE; row kept without a date")
        objet = values.get("objet") or None
        if (objet and len(delib_id) >= 3 and delib_id[-1].isdigit() and len(objet) > len(delib_id)
                and objet.startswith(delib_id) and objet[len(delib_id)].isalpha()):
            # Rennes's export glues the id to the subject ("C2026_108Administration…"): an id
            # ending with a digit, then a letter. A subject that only starts like the id ("2 rue
            # X" for id 2, "Adoption" for id "A") is left alone.
            objet = objet[len(delib_id):]
        url, other_urls, url_problem = check_url(values.get("url", ""), self.base_url)
        if not objet and not url:
            res.errors.append(RowError(row_number, "neither DELIB_OBJET nor a usable DELIB_URL; row skipped"))
            return None
        extra: dict[str, Any] = {}
        if url_problem:
            warn.append(url_problem)
            if other_urls:
                extra["other_urls"] = other_urls
            else:
                extra["url_raw"] = values.get("url")
        matiere_code, siret, siret_ok = self._checked_fields(values, extra, warn)
        votes = self._votes(values, extra, warn)
        extra.update({k: v for k, v in others.items() if v})
        row = DeliberationRow(
            row_number=row_number, delib_id=delib_id, delib_date=delib_date, matiere_code=matiere_code,
            matiere_nom=values.get("matiere_nom") or None, objet=objet, url=url,
            coll_nom=values.get("coll_nom") or None, coll_siret=siret, coll_siret_valid=siret_ok,
            votes=votes, extra=extra,
        )
        return row, warn

    @staticmethod
    def _checked_fields(values: dict[str, str], extra: dict[str, Any], warn: list[str]) -> tuple[Any, Any, bool]:
        matiere_code, matiere_problem = check_matiere(values.get("matiere_code", ""))
        if matiere_problem:
            warn.append(matiere_problem)
            extra["matiere_code_raw"] = values.get("matiere_code")
        siret, siret_ok, siret_problem = check_siret(values.get("coll_siret", ""))
        if siret_problem:
            warn.append(siret_problem)
        for canonical in ("budget_annee", "budget_nom", "pref_id"):
            if values.get(canonical):
                extra[canonical] = values[canonical]
        if values.get("pref_date"):
            iso, problem = parse_date(values["pref_date"])
            extra["pref_date"] = iso or values["pref_date"]
            if problem:
                warn.append(f"PREF_DATE: {problem}; kept as written")
        return matiere_code, siret, siret_ok

    @staticmethod
    def _votes(values: dict[str, str], extra: dict[str, Any], warn: list[str]) -> dict[str, int | None]:
        votes: dict[str, int | None] = {}
        for canonical, key in VOTE_FIELDS.items():
            raw = values.get(canonical, "")
            n, ok = parse_int(raw)
            if not ok:
                warn.append(f"{canonical.upper()} {raw!r} is not a whole number; set to None")
                extra[f"{canonical}_raw"] = raw
            votes[key] = n
        return votes

    # -- duplicates -----------------------------------------------------------------------
    def _unique(self, row: DeliberationRow, signature: tuple[Any, ...]) -> bool:
        """False (an error recorded) for an exact duplicate; a row sharing its id with a
        different row is kept, both under disambiguated ids."""
        original = row.delib_id
        earlier = self._seen.setdefault(original, [])
        for first_row, first_signature, _ in earlier:
            if first_signature == signature:
                self.result.errors.append(RowError(
                    row.row_number, f"exact duplicate of row {first_row} (DELIB_ID {original!r}); row skipped"))
                return False
        earlier.append((row.row_number, signature, row))
        if len(earlier) > 1:
            taken = {r.delib_id for _, _, r in earlier}
            for _, _, r in earlier:
                if r.delib_id == original or r is row:
                    new_id = disambiguated_id(original, r)
                    r.delib_id = new_id if new_id not in taken else f"{new_id}-{r.row_number}"
                    taken.add(r.delib_id)
                    r.extra["delib_id_original"] = original
            self._mangled[original] = [n for n, _, _ in earlier]
        return True
