"""Theme lexicons: loading and validation (stage: annotate, input side).

Input: a directory of YAML files, one per theme (plus one ``kind: context`` lexicon for the
digital context), schema in ``lexicons/README.md`` and DESIGN.md §5.
Output: a validated, immutable :class:`LexiconSet` (plain data, picklable, so it can be sent
to worker processes) that :mod:`nlp.annotate.compiler` compiles into spaCy matchers. A
``kind: polarity`` file (``lexicons/polarity.yaml``) holds the polarity and attribution rules
(:mod:`nlp.annotate.polarity`).

Every problem raises :class:`nlp.errors.LexiconError` naming the file and, where relevant,
the term: malformed YAML, unknown fields, missing/empty fields, duplicate ids (also across
files), bad match modes, and terms that can never match under their mode (an upper-case
letter in a ``lower`` term, a token pattern on an attribute the matching pipeline does not
compute, ...). Checks that need the lemmatizer (spaCy#4100) live in
:func:`nlp.annotate.annotator.check_lemma_terms`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlp.annotate.polarity import PolarityRules, check_lack_map, parse_polarity
from nlp.errors import BarometreError, LexiconError
from nlp.io import load_yaml

logger = logging.getLogger(__name__)

MATCH_MODES = ("lemma", "lower", "pattern")
KINDS = ("theme", "context")
FAMILIES = ("driver", "barrier")
LEXICON_FIELDS = {
    "id", "label", "version", "description", "kind", "family", "requires_digital_context",
    "subthemes", "terms", "exclude", "examples",
}
TERM_FIELDS = {"id", "match", "terms", "patterns", "subtheme", "digital", "note"}
EXAMPLE_FIELDS = {"positive", "negative"}
# Token-pattern keys the matching pipelines can honour. LEMMA is computed by the full
# pipeline and emulated in the fast path (inflections generated from the lexicon); POS, TAG,
# DEP, MORPH, ENT_TYPE are not computed by the fast path, so a pattern on them could never
# match there.
PATTERN_KEYS = {
    "LOWER", "LEMMA", "TEXT", "ORTH", "OP", "IS_PUNCT", "IS_DIGIT", "IS_ALPHA", "LIKE_NUM",
    "IS_TITLE", "IS_UPPER", "IS_STOP", "LENGTH",
}
PATTERN_VALUE_OPS = {"IN", "NOT_IN", "REGEX", "==", ">=", "<=", ">", "<", "!="}
SLUG_RE = re.compile(r"^[a-z][a-z0-9_]*$")
TERM_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


@dataclass(frozen=True)
class TermRule:
    """One matching rule of a lexicon.

    ``match`` is ``lemma`` (``terms`` compared on lemmas: inflected forms match),
    ``lower`` (``terms`` compared on lower-case forms, exactly) or ``pattern`` (``patterns``
    are spaCy token patterns). ``digital`` marks terms that by themselves show that the
    sentence is about digital matters (e.g. "conseiller numérique", "télétravail").
    ``lexicon`` is the id of the lexicon the rule belongs to; ``exclude`` rules cancel the
    lexicon's hits in the same sentence.
    """

    id: str
    lexicon: str
    match: str
    terms: tuple[str, ...] = ()
    patterns: tuple[tuple[dict[str, Any], ...], ...] = ()
    subtheme: str | None = None
    digital: bool = False
    exclude: bool = False
    source: str = ""


@dataclass(frozen=True)
class Lexicon:
    """One lexicon file, validated. ``kind`` is ``theme`` or ``context`` (the digital context);
    ``family`` of a theme is ``driver`` or ``barrier`` (default: ``barrier`` for ids starting
    with ``frein``): a negated or lacking driver is not the driver, a barrier is never
    negated (:mod:`nlp.annotate.polarity`)."""

    id: str
    label: str
    version: int
    description: str
    kind: str
    family: str
    requires_digital_context: bool
    subthemes: dict[str, str]
    rules: tuple[TermRule, ...]
    exclude: tuple[TermRule, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class LexiconSet:
    """All lexicons of a directory: the themes (in file-name order) and the context lexicon."""

    lexicons: tuple[Lexicon, ...]
    directory: str = ""
    polarity: PolarityRules = field(default_factory=PolarityRules)
    _by_id: dict[str, Lexicon] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({lex.id: lex for lex in self.lexicons})

    def __getitem__(self, lexicon_id: str) -> Lexicon:
        return self._by_id[lexicon_id]

    def __iter__(self):
        return iter(self.lexicons)

    def __len__(self) -> int:
        return len(self.lexicons)

    @property
    def versions(self) -> dict[str, int]:
        """``{lexicon id: version}`` for run_info.json and the tables' provenance."""
        out = {lex.id: lex.version for lex in self.lexicons}
        if self.polarity.version:
            out["polarity"] = self.polarity.version
        return out

    @property
    def themes(self) -> tuple[Lexicon, ...]:
        return tuple(lex for lex in self.lexicons if lex.kind == "theme")

    @property
    def context(self) -> Lexicon | None:
        found = [lex for lex in self.lexicons if lex.kind == "context"]
        return found[0] if found else None

    @property
    def theme_ids(self) -> list[str]:
        return [lex.id for lex in self.themes]

    @property
    def label_ids(self) -> list[str]:
        """Every label this set can produce: context id, themes, dotted sub-themes."""
        out: list[str] = []
        if self.context is not None:
            out.append(self.context.id)
        for lex in self.themes:
            out.append(lex.id)
            out.extend(f"{lex.id}.{sub}" for sub in lex.subthemes)
        return out

    @property
    def all_rules(self) -> list[TermRule]:
        return [r for lex in self.lexicons for r in (*lex.rules, *lex.exclude)]


def _err(path: Path | str, msg: str, term: str | None = None) -> LexiconError:
    where = f"{path}" + (f", term {term!r}" if term else "")
    return LexiconError(f"lexicon {where}: {msg}")


def _string_list(value: Any, path: Path, what: str, term: str | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _err(path, f"{what} must be a non-empty list of strings", term)
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _err(path, f"{what} contains an empty or non-string entry {item!r}", term)
        out.append(item.strip())
    return tuple(out)


def _check_pattern(pattern: Any, path: Path, term: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(pattern, list) or not pattern:
        raise _err(path, "each pattern must be a non-empty list of token dicts", term)
    tokens = []
    for tok in pattern:
        if not isinstance(tok, dict):
            raise _err(path, f"pattern token {tok!r} is not a mapping", term)
        for key, value in tok.items():
            if key not in PATTERN_KEYS:
                raise _err(
                    path,
                    f"pattern attribute {key!r} can never match: the matching pipeline "
                    f"computes only {sorted(PATTERN_KEYS)}",
                    term,
                )
            if key == "OP":
                if value not in ("!", "?", "+", "*") and not re.fullmatch(r"\{\d*,?\d*\}", str(value)):
                    raise _err(path, f"bad OP {value!r}", term)
                continue
            if isinstance(value, dict):
                bad = set(value) - PATTERN_VALUE_OPS
                if bad:
                    raise _err(path, f"unknown pattern operator(s) {sorted(bad)}", term)
                for op in ("IN", "NOT_IN"):
                    if op in value and (not isinstance(value[op], list) or not value[op]):
                        raise _err(path, f"{key} {op} must be a non-empty list", term)
                values = [v for op in ("IN", "NOT_IN") for v in value.get(op, [])]
            else:
                values = [value]
            if key in ("LOWER", "LEMMA"):
                for v in values:
                    if not isinstance(v, str) or not v:
                        raise _err(path, f"{key} value {v!r} must be a non-empty string", term)
                    if v != v.lower():
                        raise _err(
                            path,
                            f"{key} value {v!r} has upper-case letters and can never match "
                            f"({key} values are lower-case)",
                            term,
                        )
        tokens.append(dict(tok))
    return tuple(tokens)


def _parse_rule(
    raw: Any, path: Path, lexicon_id: str, subthemes: dict[str, str], *, exclude: bool, index: int
) -> TermRule:
    if isinstance(raw, str) and exclude:
        # Shorthand for exclusions: a plain phrase compared on lower-case forms.
        raw = {"id": f"{lexicon_id}.exclude_{index}", "match": "lower", "terms": [raw]}
    if not isinstance(raw, dict):
        raise _err(path, f"term entry #{index + 1} must be a mapping, got {raw!r}")
    term_id = raw.get("id")
    label = term_id if isinstance(term_id, str) else f"#{index + 1}"
    unknown = set(raw) - TERM_FIELDS
    if unknown:
        raise _err(path, f"unknown field(s) {sorted(unknown)} (allowed: {sorted(TERM_FIELDS)})", label)
    if not isinstance(term_id, str) or not TERM_ID_RE.match(term_id):
        raise _err(path, "term id must be a dotted lower-case slug like 'theme.name'", label)
    match = raw.get("match")
    if match not in MATCH_MODES:
        raise _err(path, f"bad match mode {match!r} (one of {', '.join(MATCH_MODES)})", term_id)
    subtheme = raw.get("subtheme")
    if subtheme is not None and subtheme not in subthemes:
        raise _err(path, f"unknown subtheme {subtheme!r} (declared: {sorted(subthemes)})", term_id)
    digital = raw.get("digital", False)
    if not isinstance(digital, bool):
        raise _err(path, "digital must be true or false", term_id)
    terms: tuple[str, ...] = ()
    patterns: tuple[tuple[dict[str, Any], ...], ...] = ()
    if match == "pattern":
        if "terms" in raw:
            raise _err(path, "match: pattern takes 'patterns', not 'terms'", term_id)
        raw_patterns = raw.get("patterns")
        if not isinstance(raw_patterns, list) or not raw_patterns:
            raise _err(path, "patterns must be a non-empty list of token patterns", term_id)
        patterns = tuple(_check_pattern(p, path, term_id) for p in raw_patterns)
    else:
        if "patterns" in raw:
            raise _err(path, f"match: {match} takes 'terms', not 'patterns'", term_id)
        terms = _string_list(raw.get("terms"), path, "terms", term_id)
        if match == "lower":
            for t in terms:
                if t != t.lower():
                    raise _err(
                        path,
                        f"term {t!r} has upper-case letters and can never match in "
                        "'lower' mode (write it in lower case)",
                        term_id,
                    )
    return TermRule(
        id=term_id, lexicon=lexicon_id, match=match, terms=terms, patterns=patterns,
        subtheme=subtheme, digital=digital, exclude=exclude, source=str(path),
    )


def parse_lexicon(data: Any, path: Path) -> Lexicon:
    """Validate the parsed YAML of one lexicon file; ``path`` is used in error messages."""
    if not isinstance(data, dict):
        raise _err(path, "the file must hold a mapping (id, label, version, terms, ...)")
    unknown = set(data) - LEXICON_FIELDS
    if unknown:
        raise _err(path, f"unknown field(s) {sorted(unknown)} (allowed: {sorted(LEXICON_FIELDS)})")
    for required in ("id", "label", "version", "terms"):
        if required not in data:
            raise _err(path, f"missing field {required!r}")
    lex_id = data["id"]
    if not isinstance(lex_id, str) or not SLUG_RE.match(lex_id):
        raise _err(path, f"id {lex_id!r} must be an ASCII slug (a-z, 0-9, _)")
    if not isinstance(data["label"], str) or not data["label"].strip():
        raise _err(path, "label must be a non-empty string")
    version = data["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _err(path, f"version must be a positive integer, got {version!r}")
    kind = data.get("kind", "theme")
    if kind not in KINDS:
        raise _err(path, f"kind must be one of {KINDS}, got {kind!r}")
    family = data.get("family", "barrier" if lex_id.startswith("frein") else "driver")
    if family not in FAMILIES:
        raise _err(path, f"family must be one of {FAMILIES}, got {family!r}")
    requires = data.get("requires_digital_context", kind == "theme")
    if not isinstance(requires, bool):
        raise _err(path, "requires_digital_context must be true or false")
    subthemes = data.get("subthemes") or {}
    if not isinstance(subthemes, dict) or not all(
        isinstance(k, str) and SLUG_RE.match(k) and isinstance(v, str) for k, v in subthemes.items()
    ):
        raise _err(path, "subthemes must map slug ids to labels")
    raw_terms = data["terms"]
    if not isinstance(raw_terms, list) or not raw_terms:
        raise _err(path, "terms must be a non-empty list")
    rules = tuple(
        _parse_rule(r, path, lex_id, subthemes, exclude=False, index=i) for i, r in enumerate(raw_terms)
    )
    raw_excl = data.get("exclude") or []
    if not isinstance(raw_excl, list):
        raise _err(path, "exclude must be a list")
    excl = tuple(
        _parse_rule(r, path, lex_id, subthemes, exclude=True, index=i) for i, r in enumerate(raw_excl)
    )
    examples = data.get("examples") or {}
    if not isinstance(examples, dict) or set(examples) - EXAMPLE_FIELDS:
        raise _err(path, "examples must be a mapping with 'positive' and/or 'negative' lists")
    pos = _string_list(examples["positive"], path, "examples.positive", None) if examples.get("positive") else ()
    neg = _string_list(examples["negative"], path, "examples.negative", None) if examples.get("negative") else ()
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise _err(path, "description must be a string")
    return Lexicon(
        id=lex_id, label=data["label"].strip(), version=version, description=description.strip(),
        kind=kind, family=family, requires_digital_context=requires, subthemes=dict(subthemes), rules=rules,
        exclude=excl, positive=pos, negative=neg, path=str(path),
    )


def _read(path: Path) -> Any:
    try:
        return load_yaml(path)
    except BarometreError as exc:
        raise LexiconError(f"lexicon {exc}") from None


def load_lexicon_file(path: Path) -> Lexicon:
    """Read and validate one YAML lexicon file."""
    return parse_lexicon(_read(Path(path)), Path(path))


def load_lexicons(directory: Path) -> LexiconSet:
    """Load and validate every ``*.yaml``/``*.yml`` file of ``directory``.

    Input: a directory path. Output: a :class:`LexiconSet`. Raises :class:`LexiconError`
    when the directory is missing or empty, a file is invalid, two lexicons share an id,
    two terms share an id (across files too), or more than one context lexicon exists.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LexiconError(f"lexicon directory {directory} does not exist")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise LexiconError(f"lexicon directory {directory} holds no *.yaml file")
    lexicons: list[Lexicon] = []
    seen_lex: dict[str, str] = {}
    seen_terms: dict[str, str] = {}
    polarity: PolarityRules | None = None
    for path in files:
        data = _read(path)
        if isinstance(data, dict) and data.get("kind") == "polarity":
            if polarity is not None:
                raise _err(path, f"a second polarity file (the first is {polarity.path})")
            polarity = parse_polarity(data, path)
            continue
        lex = parse_lexicon(data, path)
        if lex.id in seen_lex:
            raise _err(path, f"duplicate lexicon id {lex.id!r} (also in {seen_lex[lex.id]})")
        seen_lex[lex.id] = str(path)
        for rule in (*lex.rules, *lex.exclude):
            if rule.id in seen_terms:
                raise _err(path, f"duplicate term id (also in {seen_terms[rule.id]})", rule.id)
            seen_terms[rule.id] = str(path)
        lexicons.append(lex)
    contexts = [lex for lex in lexicons if lex.kind == "context"]
    if len(contexts) > 1:
        raise LexiconError(
            "more than one context lexicon: " + ", ".join(lex.path for lex in contexts)
        )
    themes_needing = [lex.id for lex in lexicons if lex.kind == "theme" and lex.requires_digital_context]
    if themes_needing and not contexts:
        raise LexiconError(
            f"lexicons {themes_needing} require the digital context but {directory} has no "
            "lexicon with kind: context"
        )
    polarity = polarity or PolarityRules()
    themes = [lex for lex in lexicons if lex.kind == "theme"]
    check_lack_map(polarity, {lex.id for lex in themes if lex.family == "driver"},
                   {f"{lex.id}{'.' + sub if sub else ''}" for lex in themes if lex.family == "barrier"
                    for sub in ("", *lex.subthemes)})
    logger.debug("loaded %d lexicons from %s", len(lexicons), directory)
    return LexiconSet(lexicons=tuple(lexicons), directory=str(directory), polarity=polarity)
