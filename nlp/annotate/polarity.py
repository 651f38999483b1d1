"""Polarity and attribution of lexicon hits (stage: annotate).

Input: the rules of ``lexicons/polarity.yaml`` (:class:`PolarityRules`, plain data) and, per
hit, the lower-case token hashes and punctuation flags of its sentence. Output, per hit:
whether a negation governs it, whether a cue of lack / delay / abandonment does, whether the
clause is about another actor. :mod:`nlp.annotate.annotator` turns these into whether and as
what a hit counts (DESIGN.md §5 "What an indicator counts"):

- a driver hit under a negation or a lack cue is not the driver; under a cue of lack, delay
  or abandonment, or of absence ("aucun", "absence de", "faute de"), it counts as the barrier
  of ``lack_counts_as`` ("la collectivité ne dispose d'aucune feuille de route numérique"); a
  plain "ne … pas" or "sans" only removes the driver (measured: mapping every negation to a
  barrier agreed with the human labels in 30% of paragraphs);
- a barrier hit is never negated: "absence de", "manque de", "sans" are the barrier itself;
- a negation inside a purpose clause ("pour ne pas exclure") states an aim, not an absence;
- a hit in a clause about another actor ("les métropoles voisines ont un portail open data")
  does not count for the metropolis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nlp.errors import LexiconError

POLARITY_FIELDS = {"id", "kind", "label", "version", "description", "negation", "lack",
                   "other_actors", "lack_counts_as", "examples"}
EXAMPLE_KINDS = ("negated", "lacking", "not_negated", "other_actor")
# Words that bring the text back to its own author between another actor and a hit
# ("d'autres villes l'ont fait ; la métropole lance son portail").
SELF_REFERENCES = ("la métropole", "notre métropole", "la ville", "notre ville", "la collectivité",
                   "notre collectivité", "nous", "notre", "nos", "la commune", "l'agglomération")
# Verbs that turn a lack cue into an aim ("combler le retard", "pallier le manque").
REMEDIES = ("combler", "rattraper", "réduire", "résorber", "pallier", "contre", "remédier",
            "surmonter", "compenser", "éviter", "limiter")
CLAUSE_BREAKS = frozenset({",", ";", ":", "(", ")", "«", "»", "—", "–", "?", "!", "."})


@dataclass(frozen=True)
class PolarityRules:
    """Cue lists (lower-case words or phrases) and the driver → barrier map. The defaults are
    the negation rules alone (no lack, no attribution), for lexicon folders without a
    polarity file."""

    negation_window: int = 4
    negation_cues: tuple[str, ...] = ("aucun", "aucune", "sans", "nul", "nulle", "absence", "faute")
    negation_adverbs: tuple[str, ...] = ("pas", "plus", "guère", "point", "jamais", "ni")
    negation_particles: tuple[str, ...] = ("ne", "n'")
    negation_clause: tuple[str, ...] = ("aucun", "aucune", "pas", "jamais", "plus", "rien", "nul",
                                        "nulle", "guère")
    purpose: tuple[str, ...] = ()
    absence_cues: tuple[str, ...] = ("aucun", "aucune", "absence", "faute", "nul", "nulle")
    lack_window: int = 6
    lack_cues: tuple[str, ...] = ()
    other_actors: tuple[str, ...] = ()
    lack_counts_as: tuple[tuple[str, str], ...] = ()
    examples: tuple[tuple[str, str, str], ...] = ()  # (kind, theme, sentence)
    version: int = 0
    path: str = ""

    @property
    def lack_map(self) -> dict[str, str]:
        return dict(self.lack_counts_as)


def _words(value: Any, path: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise LexiconError(f"lexicon {path}: {what} must be a list of non-empty strings")
    return tuple(v.strip().lower().replace("’", "'") for v in value)


def _window(value: Any, path: str, what: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
        raise LexiconError(f"lexicon {path}: {what} must be an integer from 1 to 20, got {value!r}")
    return value


def parse_polarity(data: dict[str, Any], path: Path | str) -> PolarityRules:
    """Validate the parsed YAML of a ``kind: polarity`` file (see ``lexicons/README.md``)."""
    path = str(path)
    unknown = set(data) - POLARITY_FIELDS
    if unknown:
        raise LexiconError(f"lexicon {path}: unknown field(s) {sorted(unknown)} "
                           f"(allowed: {sorted(POLARITY_FIELDS)})")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LexiconError(f"lexicon {path}: version must be a positive integer, got {version!r}")
    defaults = PolarityRules()
    neg = data.get("negation") or {}
    lack = data.get("lack") or {}
    others = data.get("other_actors") or {}
    for name, section in (("negation", neg), ("lack", lack), ("other_actors", others)):
        if not isinstance(section, dict):
            raise LexiconError(f"lexicon {path}: {name} must be a mapping")
    mapping = data.get("lack_counts_as") or {}
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in mapping.items()):
        raise LexiconError(f"lexicon {path}: lack_counts_as must map driver ids to barrier labels")
    examples: list[tuple[str, str, str]] = []
    raw_examples = data.get("examples") or {}
    if not isinstance(raw_examples, dict) or set(raw_examples) - set(EXAMPLE_KINDS):
        raise LexiconError(f"lexicon {path}: examples must be a mapping with keys among {EXAMPLE_KINDS}")
    for kind, items in raw_examples.items():
        for item in items or []:
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise LexiconError(f"lexicon {path}: examples.{kind} entries are [theme, sentence] pairs")
            examples.append((kind, item[0], item[1]))

    def get(section: dict[str, Any], key: str, default: tuple[str, ...], what: str) -> tuple[str, ...]:
        return _words(section[key], path, what) if key in section else default

    return PolarityRules(
        negation_window=_window(neg.get("window"), path, "negation.window", defaults.negation_window),
        negation_cues=get(neg, "cues", defaults.negation_cues, "negation.cues"),
        negation_adverbs=get(neg, "adverbs", defaults.negation_adverbs, "negation.adverbs"),
        negation_particles=get(neg, "particles", defaults.negation_particles, "negation.particles"),
        negation_clause=get(neg, "clause", defaults.negation_clause, "negation.clause"),
        purpose=get(neg, "purpose", (), "negation.purpose"),
        absence_cues=get(neg, "absence", defaults.absence_cues, "negation.absence"),
        lack_window=_window(lack.get("window"), path, "lack.window", defaults.lack_window),
        lack_cues=get(lack, "cues", (), "lack.cues"),
        other_actors=get(others, "phrases", (), "other_actors.phrases"),
        lack_counts_as=tuple(sorted(mapping.items())),
        examples=tuple(examples), version=version, path=path,
    )


def _by_first(phrases: tuple[tuple[int, ...], ...]) -> dict[int, list[tuple[int, ...]]]:
    out: dict[int, list[tuple[int, ...]]] = {}
    for p in phrases:
        if p:
            out.setdefault(p[0], []).append(p)
    return out


def _occurrences(lowers: list[int], a: int, b: int, by_first: dict[int, list[tuple[int, ...]]],
                 with_phrase: bool = False):
    """Start positions (and phrases, ``with_phrase``) of the phrases found entirely inside
    ``lowers[a:b]``: one dictionary look-up per token instead of one scan per phrase."""
    for k in range(a, b):
        for phrase in by_first.get(lowers[k], ()):
            n = len(phrase)
            if k + n <= b and tuple(lowers[k:k + n]) == phrase:
                yield (k, phrase) if with_phrase else k


def check_lack_map(rules: PolarityRules, driver_ids: set[str], barrier_labels: set[str]) -> None:
    """Every key of ``lack_counts_as`` is a driver theme, every value a barrier label."""
    for driver, barrier in rules.lack_counts_as:
        if driver not in driver_ids:
            raise LexiconError(f"lexicon {rules.path}: lack_counts_as: {driver!r} is not a driver theme")
        if barrier not in barrier_labels:
            raise LexiconError(f"lexicon {rules.path}: lack_counts_as.{driver}: {barrier!r} is not a "
                               f"barrier label (one of {', '.join(sorted(barrier_labels))})")


@dataclass
class CompiledPolarity:
    """:class:`PolarityRules` as hash sets and hash sequences of one vocab.

    ``tokenize``: the pipeline's tokenizer, so that phrases split as the texts do
    ("d'autres" → "d'", "autres").
    """

    rules: PolarityRules
    add: Callable[[str], int]
    tokenize: Callable[[str], list[str]]
    cues: frozenset[int] = field(init=False)
    adverbs: frozenset[int] = field(init=False)
    particles: frozenset[int] = field(init=False)
    clause: frozenset[int] = field(init=False)
    absence: frozenset[int] = field(init=False)
    restrictive: frozenset[int] = field(init=False)
    soft: frozenset[int] = field(init=False)
    breaks: frozenset[int] = field(init=False)
    purpose: tuple[tuple[int, ...], ...] = field(init=False)
    lack: tuple[tuple[int, ...], ...] = field(init=False)
    others: tuple[tuple[int, ...], ...] = field(init=False)
    selves: tuple[tuple[int, ...], ...] = field(init=False)
    comma: frozenset[int] = field(init=False)
    ni: int = field(init=False)
    remedies: frozenset[int] = field(init=False)
    _lack_first: dict[int, list[tuple[int, ...]]] = field(init=False)
    _others_first: dict[int, list[tuple[int, ...]]] = field(init=False)
    _selves_first: dict[int, list[tuple[int, ...]]] = field(init=False)

    def __post_init__(self) -> None:
        r = self.rules

        def words(ws: tuple[str, ...]) -> frozenset[int]:
            out = set()
            for w in ws:
                out.add(self.add(w))
                if "'" in w:
                    out.add(self.add(w.replace("'", "’")))
            return frozenset(out)

        def phrases(ps: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
            out = []
            for p in ps:
                for variant in {p, p.replace("'", "’")}:
                    out.append(tuple(self.add(t.lower()) for t in self.tokenize(variant)))
            return tuple(sorted(set(out), key=len, reverse=True))

        self.cues, self.adverbs = words(r.negation_cues), words(r.negation_adverbs)
        self.particles, self.clause = words(r.negation_particles), words(r.negation_clause)
        self.absence = words(r.absence_cues)
        self.restrictive = words(("que", "qu'"))
        self.soft = words(("'", "-", "’"))
        self.breaks = words(tuple(CLAUSE_BREAKS))
        self.purpose, self.lack = phrases(r.purpose), phrases(r.lack_cues)
        self.others, self.selves = phrases(r.other_actors), phrases(SELF_REFERENCES)
        self.comma = words((",",))
        self.ni = self.add("ni")
        self.remedies = words(REMEDIES)
        self._lack_first = _by_first(self.lack)
        self._others_first = _by_first(self.others)
        self._selves_first = _by_first(self.selves)

    # -- the three questions -----------------------------------------------------------
    def negated(self, lowers: list[int], punct: list[int], start: int, sent_start: int) -> bool:
        """A negation governs the hit at token ``start`` (see :meth:`negation`)."""
        return bool(self.negation(lowers, punct, start, sent_start))

    def negation(self, lowers: list[int], punct: list[int], start: int, sent_start: int) -> str:
        """How a negation governs the hit at token ``start`` (same sentence): ``"absence"``
        when a cue of absence comes in the few tokens before it ("aucun partenariat",
        "absence de schéma directeur", "faute de moyens"), ``"negation"`` for the other cues
        ("sans conseiller numérique"), "ne … pas" before it ("il n'existe pas de stratégie")
        or the hit inside a negated clause ("aucun partenariat n'a été conclu avec les
        opérateurs"), ``""`` otherwise. A negation right after a purpose marker ("pour ne pas
        exclure") and the restrictive "ne … que" ("accessibles qu'aux titulaires d'un
        compte") are not absences."""
        window = self.rules.negation_window
        lo = max(sent_start, start - window)
        for i in range(start - 1, lo - 1, -1):
            low = lowers[i]
            if low in self.cues:
                if self._after_purpose(lowers, i, sent_start):
                    return ""
                return "absence" if low in self.absence else "negation"
            if low in self.adverbs:
                for j in range(max(sent_start, i - window), i):
                    if lowers[j] in self.particles:
                        return "" if self._after_purpose(lowers, j, sent_start) else "negation"
                if low == self.ni and self._coordinated_ni(lowers, punct, i, sent_start):
                    return "negation"
            if punct[i] and low not in self.soft:
                return ""
        particle = None
        for i in range(start - 1, max(sent_start, start - 2 * window) - 1, -1):
            if punct[i] and lowers[i] not in self.soft:
                break
            if lowers[i] in self.particles:
                particle = i
                break
        if particle is None or self._after_purpose(lowers, particle, sent_start):
            return ""
        between = lowers[particle + 1:start]
        if any(t in self.restrictive for t in between) and not any(t in self.clause for t in between):
            return ""
        clause = [lowers[j] for j in range(sent_start, start) if j != particle and lowers[j] in self.clause]
        if not clause:
            return ""
        return "absence" if any(c in self.absence for c in clause) else "negation"

    def _coordinated_ni(self, lowers: list[int], punct: list[int], i: int, sent_start: int) -> bool:
        """The "ni" at token ``i`` continues a negated list: "il n'existe ni schéma
        directeur, ni comité de pilotage, ni direction du numérique" negates every item,
        however far the "n'" is. True when, going back over commas, an earlier "ni" of the
        same sentence has a negation particle within the window before it."""
        window = self.rules.negation_window
        for k in range(i - 1, sent_start - 1, -1):
            if punct[k] and lowers[k] not in self.soft and lowers[k] not in self.comma:
                return False
            if lowers[k] == self.ni and any(lowers[j] in self.particles
                                            for j in range(max(sent_start, k - window), k)):
                return not self._after_purpose(lowers, k, sent_start)
        return False

    def _after_purpose(self, lowers: list[int], i: int, sent_start: int) -> bool:
        """A purpose marker ends right before token ``i`` (or before "de" before it)."""
        for end in (i, i - 1):
            for phrase in self.purpose:
                a = end - len(phrase)
                if a >= sent_start and tuple(lowers[a:end]) == phrase:
                    return True
        return False

    def lacking(self, lowers: list[int], start: int, end: int, sent_start: int, sent_end: int) -> bool:
        """A cue of lack, delay, failure or abandonment within ``lack_window`` tokens of the
        hit: before it in the same clause (no punctuation between), or after it in the same
        sentence part (commas allowed: "le schéma directeur, adopté en 2020, a pris du
        retard"; not across ``;`` ``:`` or brackets). A cue right after a remedy verb
        ("combler le retard", "lutter contre le manque") is an aim, not a lack."""
        if not self.lack:
            return False
        w = self.rules.lack_window
        lo = start
        while lo > max(sent_start, start - w) and lowers[lo - 1] not in self.breaks:
            lo -= 1
        hi = end
        while hi < min(sent_end, end + w) and (lowers[hi] not in self.breaks or lowers[hi] in self.comma):
            hi += 1
        for a, b in ((lo, start), (end, hi)):
            for k in _occurrences(lowers, a, b, self._lack_first):
                if not self._after_remedy(lowers, k, sent_start):
                    return True
        return False

    def _after_remedy(self, lowers: list[int], i: int, sent_start: int) -> bool:
        return any(lowers[j] in self.remedies for j in range(max(sent_start, i - 3), i))

    def other_actor(self, lowers: list[int], start: int, sent_start: int) -> bool:
        """The sentence names another actor before the hit ("les métropoles voisines ont …",
        "d'autres collectivités ont déjà déployé …"), and no self-reference ("la métropole",
        "nous") comes between that actor and the hit."""
        if not self.others:
            return False
        ends = [k + len(p) for k, p in _occurrences(lowers, sent_start, start, self._others_first, with_phrase=True)]
        if not ends:
            return False
        return not any(True for _ in _occurrences(lowers, max(ends), start, self._selves_first))
