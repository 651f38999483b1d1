"""Token patterns matched from their anchor words (stage: annotate).

Input: the token patterns of one lexicon rule, as :class:`~nlp.annotate.compiler.CompiledLexicons`
translates them (spaCy ``Matcher`` syntax restricted to the keys ``lexicons/README.md``
allows), and per doc the attribute columns of ``Doc.to_array``. Output: the rule's matches
as ``(start, end)`` token offsets, the same as a spaCy ``Matcher`` holding these patterns under
one key with ``greedy="LONGEST"``.

Why not the spaCy ``Matcher``: it runs its state machine over every token of every doc and
tests each pattern's predicates there (``IN`` sets, flags, the ``{0,3}`` gaps of the lexicons'
"A … B" patterns): measured, 45% of the fast annotation's time on the benchmark corpus went
into it. Here a pattern is tried only from the few positions where its *anchor* occurs (its
first mandatory token with a fixed set of words, which a doc lacks most of the time), and the
gap tokens are tested only there.

Semantics (spaCy's, checked hit for hit against the ``Matcher`` over the training paragraphs
and the benchmark corpus in ``tests/nlp/annotate/test_tokenmatch.py``):

- the keys of one token are all required; ``IN`` / ``NOT_IN`` / ``REGEX`` (``re.search`` on the
  attribute's text) and the comparisons (``LENGTH``) likewise;
- ``OP``: ``?`` (0–1), ``*`` (0+), ``+`` (1+), ``!`` (one token that does not match),
  ``{n}``, ``{n,m}``, ``{n,}``, ``{,m}``;
- every ``(start, end)`` a pattern can span is a candidate; then, over all patterns of the
  rule, the longest candidates win (ties: the earlier start) and a candidate sharing a token
  with a kept one is dropped: spaCy's ``greedy="LONGEST"`` filter.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

from spacy.attrs import (IS_ALPHA, IS_DIGIT, IS_PUNCT, IS_STOP, IS_TITLE, IS_UPPER, LEMMA, LENGTH,
                         LIKE_NUM, LOWER, NORM, ORTH)

# Pattern key -> spaCy attribute id (TEXT is ORTH, as in the Matcher).
STRING_ATTRS = {"LOWER": LOWER, "NORM": NORM, "LEMMA": LEMMA, "TEXT": ORTH, "ORTH": ORTH}
NUMBER_ATTRS = {"IS_PUNCT": IS_PUNCT, "IS_DIGIT": IS_DIGIT, "IS_ALPHA": IS_ALPHA,
                "LIKE_NUM": LIKE_NUM, "IS_TITLE": IS_TITLE, "IS_UPPER": IS_UPPER,
                "IS_STOP": IS_STOP, "LENGTH": LENGTH}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_UNBOUNDED = 1 << 30


class Unsupported(ValueError):
    """A pattern construct this matcher does not model (the lexicon is refused at load)."""


@dataclass(frozen=True)
class _Test:
    attr: int            # spaCy attribute id (a column of the doc arrays)
    kind: str            # "in", "not_in", "regex", "cmp"
    value: Any           # frozenset of hashes / compiled regex / (op, number)


@dataclass(frozen=True)
class _Element:
    tests: tuple[_Test, ...]
    low: int
    high: int
    negated: bool = False   # OP "!": one token that does not pass the tests


def _quantifier(op: str | None) -> tuple[int, int, bool]:
    if op in (None, "", "1"):
        return 1, 1, False
    if op == "!":
        return 1, 1, True
    if op == "?":
        return 0, 1, False
    if op == "*":
        return 0, _UNBOUNDED, False
    if op == "+":
        return 1, _UNBOUNDED, False
    m = re.fullmatch(r"\{(\d*)(,?)(\d*)\}", op)
    if not m or (not m.group(1) and not m.group(3)):
        raise Unsupported(f"operator {op!r}")
    low = int(m.group(1) or 0)
    if not m.group(2):
        return low, low, False
    return low, int(m.group(3)) if m.group(3) else _UNBOUNDED, False


def _tests(key: str, value: Any, add: Callable[[str], int]) -> list[_Test]:
    if key in STRING_ATTRS:
        attr = STRING_ATTRS[key]
        if isinstance(value, str):
            return [_Test(attr, "in", frozenset([add(value)]))]
        if not isinstance(value, dict):
            raise Unsupported(f"{key} value {value!r}")
        out = []
        for op, arg in value.items():
            if op == "IN":
                out.append(_Test(attr, "in", frozenset(add(v) for v in arg)))
            elif op == "NOT_IN":
                out.append(_Test(attr, "not_in", frozenset(add(v) for v in arg)))
            elif op == "REGEX":
                out.append(_Test(attr, "regex", re.compile(arg)))
            else:
                raise Unsupported(f"{key} operator {op!r}")
        return out
    if key in NUMBER_ATTRS:
        attr = NUMBER_ATTRS[key]
        if isinstance(value, bool) or isinstance(value, int):
            return [_Test(attr, "cmp", ("==", int(value)))]
        if isinstance(value, dict) and all(op in _COMPARE for op in value):
            return [_Test(attr, "cmp", (op, int(arg))) for op, arg in value.items()]
        if isinstance(value, dict) and set(value) <= {"IN", "NOT_IN"}:
            return [_Test(attr, "in" if op == "IN" else "not_in", frozenset(int(v) for v in arg))
                    for op, arg in value.items()]
        raise Unsupported(f"{key} value {value!r}")
    raise Unsupported(f"key {key!r}")


def _compile_pattern(pattern: list[dict[str, Any]], add: Callable[[str], int]) -> list[_Element]:
    elements = []
    for tok in pattern:
        low, high, negated = _quantifier(tok.get("OP"))
        tests = [t for key, value in tok.items() if key != "OP" for t in _tests(key, value, add)]
        elements.append(_Element(tuple(tests), low, high, negated))
    return elements


@dataclass
class _Plan:
    """One pattern and where to try it from: ``anchor_test`` is the word set of its first
    mandatory element that has one, reached after ``before_low`` to ``before_high`` tokens
    from the start of a match."""

    elements: list[_Element]
    anchor_test: _Test | None   # None: the pattern is tried from every token
    before_low: int = 0
    before_high: int = 0


def _plan(elements: list[_Element]) -> _Plan:
    before_low = before_high = 0
    for el in elements:
        if el.low >= 1 and not el.negated:
            fixed = [t for t in el.tests if t.kind == "in" and t.attr in STRING_ATTRS.values()]
            if fixed:
                return _Plan(elements, min(fixed, key=lambda t: len(t.value)), before_low, before_high)
        before_low += el.low
        before_high += el.high
        if before_high >= _UNBOUNDED:
            break
    return _Plan(elements, None)


class DocColumns:
    """The attribute columns of one doc (``Doc.to_array``) as Python lists, and where each
    value of an anchor attribute occurs, built on first use."""

    def __init__(self, doc: Any, values: Any, attrs: list[int], strings: Any) -> None:
        self.doc = doc
        self._cols = {a: values[:, k].tolist() for k, a in enumerate(attrs)}
        self._where: dict[int, dict[int, list[int]]] = {}
        self._present: dict[int, frozenset[int]] = {}
        self.strings = strings

    def column(self, attr: int) -> list[int]:
        """One attribute of every token (read from the doc the first time it is asked)."""
        col = self._cols.get(attr)
        if col is None:
            col = self._cols[attr] = self.doc.to_array([attr]).tolist()
        return col

    def present(self, attr: int) -> frozenset[int]:
        """The distinct values of an attribute in the doc."""
        got = self._present.get(attr)
        if got is None:
            got = self._present[attr] = frozenset(self.column(attr))
        return got

    def where(self, attr: int) -> dict[int, list[int]]:
        """value → the token positions holding it, for one attribute."""
        index = self._where.get(attr)
        if index is None:
            index = {}
            for i, v in enumerate(self.column(attr)):
                index.setdefault(v, []).append(i)
            self._where[attr] = index
        return index


def _passes(el: _Element, colmap: dict[int, list[int]], strings: Any, i: int) -> bool:
    ok = True
    for t in el.tests:
        v = colmap[t.attr][i]
        if t.kind == "in":
            ok = v in t.value
        elif t.kind == "not_in":
            ok = v not in t.value
        elif t.kind == "regex":
            ok = bool(t.value.search(strings[v]))
        else:
            op, arg = t.value
            ok = _COMPARE[op](v, arg)
        if not ok:
            break
    return ok != el.negated


class RuleMatcher:
    """The token patterns of one rule (see the module docstring). ``match(cols, a, b)``
    returns its matches inside tokens ``a:b`` after the longest-match filter.

    Raises :class:`Unsupported` for a construct spaCy accepts but that means nothing on
    these attributes (a ``REGEX`` on a flag, a comparison on a word)."""

    def __init__(self, rule: Any, patterns: list[list[dict[str, Any]]], add: Callable[[str], int]) -> None:
        self.rule = rule
        self.plans = [_plan(_compile_pattern(p, add)) for p in patterns]
        self._attrs = sorted(self.attrs())

    def attrs(self) -> set[int]:
        return {t.attr for plan in self.plans for el in plan.elements for t in el.tests}

    def match(self, cols: DocColumns, a: int, b: int) -> list[tuple[int, int]]:
        """The rule's matches inside tokens ``a:b`` (absolute offsets), after the
        longest-match filter."""
        pairs: set[tuple[int, int]] = set()
        colmap: dict[int, list[int]] = {}
        for plan in self.plans:
            starts = _starts(plan, cols, a, b)
            if not starts:
                continue
            if not colmap:
                colmap = {attr: cols.column(attr) for attr in self._attrs}
            ends = _Ends(plan.elements, colmap, cols.strings, b)
            for s in starts:
                pairs.update((s, e) for e in ends(0, s) if e > s)
        return longest_first(pairs)


def _starts(plan: _Plan, cols: DocColumns, a: int, b: int) -> set[int] | range:
    """Where in ``a:b`` a match of the plan's pattern can start: within the plan's prefix
    length before an occurrence of its anchor (every token when it has none)."""
    test = plan.anchor_test
    if test is None:
        return range(a, b)
    found = test.value.intersection(cols.present(test.attr))
    if not found:
        return set()  # the anchor word is nowhere in the doc (the common case)
    starts: set[int] = set()
    where = cols.where(test.attr)
    for value in found:
        for p in where[value]:
            if a <= p < b:
                starts.update(range(max(a, p - plan.before_high), p - plan.before_low + 1))
    return starts


class _Ends:
    """``ends(k, pos)``: every token offset (≤ ``b``) where elements ``k…`` of a pattern can
    end when element ``k`` starts at ``pos``; memoised, as it does not depend on where the
    match started."""

    def __init__(self, elements: list[_Element], colmap: dict[int, list[int]], strings: Any, b: int) -> None:
        self.elements, self.colmap, self.strings, self.b = elements, colmap, strings, b
        self.memo: dict[tuple[int, int], frozenset[int]] = {}

    def __call__(self, k: int, pos: int) -> frozenset[int]:
        got = self.memo.get((k, pos))
        if got is not None:
            return got
        if k == len(self.elements):
            got = frozenset([pos])
        else:
            el = self.elements[k]
            out: set[int] = set()
            if el.low == 0:
                out |= self(k + 1, pos)
            taken, q = 0, pos
            while taken < el.high and q < self.b and _passes(el, self.colmap, self.strings, q):
                q += 1
                taken += 1
                if taken >= el.low:
                    out |= self(k + 1, q)
            got = frozenset(out)
        self.memo[(k, pos)] = got
        return got


def longest_first(pairs: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """spaCy's ``greedy="LONGEST"`` filter: longest first, then earliest; a pair sharing a
    token with a kept one is dropped."""
    kept: list[tuple[int, int]] = []
    taken: set[int] = set()
    for s, e in sorted(pairs, key=lambda x: (x[1] - x[0], -x[0]), reverse=True):
        if not any(t in taken for t in range(s, e)):
            kept.append((s, e))
            taken.update(range(s, e))
    return kept
