"""Lexicons compiled into spaCy matchers (stage: annotate).

Input: a validated :class:`~nlp.annotate.lexicons.LexiconSet` and the pipeline whose vocab the
matchers use (the annotator's own: nothing is written into a vocab it does not own). Output:
:class:`CompiledLexicons`, whose :meth:`~CompiledLexicons.find` returns every rule match of a
doc with nested matches resolved to the longest.

Fast path (``mode="fast"``): ``lemma`` terms are lemmatised once, at build time, by the real
model (spaCy#4100: what the matcher compares must come from the same lemmatizer), expanded to
their inflected forms, and matched on the token NORM (set per lexeme, so at no cost per token).
Full path: the model's own LEMMA. The term lemma table (``term_lemma``) is plain data: a
compiled lexicon can be rebuilt from it in a worker process without loading the model.
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter
from typing import Any

import spacy
from spacy.attrs import LOWER, NORM, ORTH
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from nlp.annotate.inflect import (FUNCTION_WORDS, APOSTROPHES, apostrophe_variants, case_variants,
                                  inflections, lookup_lemmatizer)
from nlp.annotate.lexicons import Lexicon, LexiconSet, TermRule
from nlp.annotate.tokenmatch import DocColumns, RuleMatcher, Unsupported
from nlp.errors import LexiconError

logger = logging.getLogger(__name__)

Match = tuple[TermRule, int, int]


def _product(choices: list[list[str]]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for options in choices:
        out = [prefix + [o] for prefix in out for o in options]
    return out


def _required_values(pattern: list[dict[str, Any]], vocab: Any) -> list[tuple[str, frozenset[int]]]:
    """For each mandatory token of a (translated) pattern that tests a word value, the
    attribute and the hashes of the allowed values; a span lacking one cannot match."""
    out: list[tuple[str, frozenset[int]]] = []
    for tok in pattern:
        if tok.get("OP") in ("?", "*") or str(tok.get("OP", "")).startswith("{0"):
            continue
        for key, attr in (("NORM", "NORM"), ("LOWER", "LOWER"), ("TEXT", "ORTH"), ("ORTH", "ORTH")):
            value = tok.get(key)
            if isinstance(value, str):
                out.append((attr, frozenset([vocab.strings.add(value)])))
            elif isinstance(value, dict) and set(value) == {"IN"}:
                out.append((attr, frozenset(vocab.strings.add(v) for v in value["IN"])))
    return out


def _lemma_inputs(rules: list[TermRule]) -> list[str]:
    """Texts whose lemmas matching needs: ``lemma`` terms and LEMMA values of token patterns."""
    out: list[str] = []
    for rule in rules:
        if rule.match == "lemma":
            out.extend(rule.terms)
        elif rule.match == "pattern":
            for pattern in rule.patterns:
                for tok in pattern:
                    value = tok.get("LEMMA")
                    if isinstance(value, dict):
                        out.extend(v for op in ("IN", "NOT_IN") for v in value.get(op, []))
                    elif isinstance(value, str):
                        out.append(value)
    return list(dict.fromkeys(out))


# Lemmas of lexicon terms per spaCy model, as this process computed them (term -> lemmas):
# the same terms give the same lemmas with the same model, and loading the model to compute
# them again costs several seconds per annotator.
_TERM_LEMMAS: dict[str, dict[str, list[str]]] = {}


def _with_variants(lemmas: dict[str, list[str]]) -> dict[str, list[str]]:
    """``lemmas`` (term -> lemmas) with each term's apostrophe variants mapped alike."""
    for term in list(lemmas):
        for variant in apostrophe_variants(term):
            lemmas[variant] = lemmas[term]
    return lemmas


class Prefilter:
    """Which token-pattern matchers can match a span, from the words present in it.

    Each pattern's mandatory words (:func:`_required_values`) are indexed by (attribute,
    word hash); a span's distinct words are looked up once and a matcher is active when
    one of its patterns has all its requirements met. One dictionary look-up per distinct
    word instead of one set test per rule and requirement (measured 0.6 s of a 1.6 s
    annotation of 100,000 words before)."""

    ATTRS = ("NORM", "LOWER", "ORTH")

    def __init__(self, entries: list[tuple[Any, list[list[tuple[str, frozenset[int]]]]]]) -> None:
        self.matchers = [m for m, _r in entries]
        # One index per attribute (NORM, LOWER, ORTH): word hash -> requirement ids.
        self.index: list[dict[int, list[int]]] = [{} for _ in self.ATTRS]
        self.owner: list[tuple[int, int]] = []   # requirement id -> (matcher, pattern)
        self.need: dict[tuple[int, int], int] = {}
        self.always: set[int] = set()
        for e, (_m, patterns) in enumerate(entries):
            for p, reqs in enumerate(patterns):
                if not reqs:
                    self.always.add(e)
                self.need[(e, p)] = len(reqs)
                for attr, allowed in reqs:
                    rid = len(self.owner)
                    self.owner.append((e, p))
                    code = self.ATTRS.index(attr)
                    for h in allowed:
                        self.index[code].setdefault(h, []).append(rid)
        self.words = [frozenset(ix) for ix in self.index]

    def active(self, values: Any, a: int, b: int) -> list[Any]:
        """The matchers that may match tokens ``a:b`` (``values``: NORM, LOWER, ORTH columns)."""
        if not self.matchers:
            return []
        met: set[int] = set()
        for code in range(3):
            # The span's words that some requirement names, by a set intersection in C.
            index = self.index[code]
            for h in self.words[code].intersection(values[a:b, code].tolist()):
                met.update(index[h])
        count = Counter(map(self.owner.__getitem__, met))
        need = self.need
        on = set(self.always)
        on.update(e for (e, p), n in count.items() if n == need[(e, p)])
        return [self.matchers[e] for e in sorted(on)]


class CompiledLexicons:
    """The rules of a :class:`LexiconSet` as matchers on ``pipeline``'s vocab.

    ``mode``: ``"fast"`` (NORM = lexicon lemma for every inflected form) or ``"full"``
    (LEMMA from the pipeline). ``context_window``: token patterns of rules that need the
    digital context run only within this many sentences of a digital one (``None``: always).
    ``term_lemma``: precomputed term → lemmas table (from :meth:`state`); when absent the
    terms are lemmatised with ``lemma_pipeline`` or the installed ``model_name``.
    """

    def __init__(self, lexicons: LexiconSet, pipeline: Language, *, mode: str, model_name: str,
                 context_window: int | None, lemma_pipeline: Language | None = None,
                 term_lemma: dict[str, list[str]] | None = None) -> None:
        self.lexicons = lexicons
        self.pipeline = pipeline
        self.mode = mode
        self.model_name = model_name
        self.context_window = context_window
        self._lemma_pipeline = lemma_pipeline
        self._given_term_lemma = term_lemma
        self._term_lemma: dict[str, list[str]] = {}
        self._owner: dict[str, str] = {}
        self.rules: dict[str, TermRule] = {}
        self.lexicon_of: dict[str, Lexicon] = {lex.id: lex for lex in lexicons}
        self._build_matchers()
        self._lemma_pipeline = None

    @property
    def term_lemma(self) -> dict[str, list[str]]:
        """Term → lemma of each of its tokens: what a worker needs to rebuild the matchers."""
        return dict(self._term_lemma)

    def _build_matchers(self) -> None:
        vocab = self.pipeline.vocab
        self._lower = PhraseMatcher(vocab, attr="LOWER")
        self._norm = PhraseMatcher(vocab, attr="NORM" if self.mode == "fast" else "LEMMA")
        # Token patterns are the costly part of matching. Those of theme rules that need
        # the digital context (and do not provide it) are run only on the sentences within
        # the context window of a digital sentence; the others run on the whole text.
        # Every token-pattern rule gets its own matcher and the words one of its patterns
        # cannot do without: a doc (or a context window) lacking them is not searched,
        # which keeps the many wide patterns of the lexicons off most paragraphs.
        self._free: list[tuple[RuleMatcher, list[list[tuple[str, frozenset[int]]]]]] = []
        self._gated: list[tuple[RuleMatcher, list[list[tuple[str, frozenset[int]]]]]] = []
        self._build_rules()
        self._free_filter = Prefilter(self._free)
        self._gated_filter = Prefilter(self._gated)

    def _build_rules(self) -> None:
        vocab = self.pipeline.vocab
        rules = self.lexicons.all_rules
        if self.mode == "fast":
            self._install_norms(rules)
        else:
            self._lemma_pipeline = self.pipeline
            self._term_lemma = self._lemmatize_terms(_lemma_inputs(rules))
        lemma_docs_needed = [r for r in rules if r.match == "lemma"]
        lemma_patterns = self._lemma_patterns(lemma_docs_needed)
        for rule in rules:
            self.rules[rule.id] = rule
            if rule.match == "lower":
                docs = [self.pipeline.make_doc(v) for t in rule.terms for v in apostrophe_variants(t)]
                self._lower.add(rule.id, docs)
            elif rule.match == "lemma":
                self._norm.add(rule.id, lemma_patterns[rule.id])
            elif self._add_as_phrases(rule):
                continue
            else:
                lex = self.lexicon_of[rule.lexicon]
                gated = (lex.kind == "theme" and lex.requires_digital_context and not rule.digital
                         and not rule.exclude and self.context_window is not None)
                translated = [self._translate_pattern(p, rule) for p in rule.patterns]
                # One matcher per rule, run only on spans holding every mandatory word of one
                # of its patterns (checked on token arrays, no Python per token); gated rules
                # only near digital sentences. It tries the patterns from their anchor words
                # only (nlp.annotate.tokenmatch: spaCy's Matcher semantics, greedy LONGEST).
                try:
                    own = RuleMatcher(rule, translated, vocab.strings.add)
                except Unsupported as exc:
                    raise LexiconError(f"lexicon {rule.source}, term {rule.id!r}: {exc} is not "
                                       f"supported in token patterns") from exc
                entry = (own, [_required_values(p, vocab) for p in translated])
                (self._gated if gated else self._free).append(entry)

    def _add_as_phrases(self, rule: TermRule) -> bool:
        """Token patterns without operators, all on LEMMA or all on LOWER, with at most 2,000
        combinations, are expanded into phrase patterns: the PhraseMatcher is much faster
        than the Matcher and gives the same matches. Returns False when not applicable."""
        expanded: list[list[str]] = []
        attrs = set()
        for pattern in rule.patterns:
            choices: list[list[str]] = []
            for tok in pattern:
                if len(tok) != 1 or not set(tok) <= {"LEMMA", "LOWER"}:
                    return False
                (attr, value), = tok.items()
                attrs.add(attr)
                if isinstance(value, str):
                    choices.append([value])
                elif isinstance(value, dict) and set(value) == {"IN"}:
                    choices.append(list(value["IN"]))
                else:
                    return False
            size = 1
            for c in choices:
                size *= len(c)
            if size > 2000:
                return False
            expanded.extend(_product(choices))
        if len(attrs) != 1:
            return False
        attr = attrs.pop()
        docs = []
        for words in expanded:
            if attr == "LOWER":
                docs.append(Doc(self.pipeline.vocab, words=words))
            elif self.mode == "fast":
                norms = []
                for w in words:
                    lem = self._term_lemma.get(w, [w])
                    norms.append(self._owner.get(lem[0], lem[0]) if len(lem) == 1 else w)
                docs.append(Doc(self.pipeline.vocab, words=norms))
            else:
                return False  # full path: LEMMA values are normalised by the Matcher translation
        (self._lower if attr == "LOWER" else self._norm).add(rule.id, docs)
        return True

    def _install_norms(self, rules: list[TermRule]) -> None:
        """Fast path: map every inflected form of the lexicon's lemmas to the lemma, as NORM.

        Lexeme attributes are shared by all tokens of a string, so this costs nothing per
        token. Forms come from the lemmatizer lookup tables of ``self.model_name`` (inverted:
        every word form whose lookup lemma is the lexicon's lemma) when that package is
        installed, plus plural/feminine forms generated by rule; verb forms are generated by
        rule only for lemmas the tables do not know. Priority: a word that is itself a lemma
        of the lexicon keeps its NORM, then generated nominal forms, then table forms, then
        generated verb forms -- so "données" stays "donnée" even though the tables know it
        as a participle of "donner", and "usages" does not become "usager".
        """
        vocab = self.pipeline.vocab
        self._term_lemma = self._lemmatize_terms(_lemma_inputs(rules))
        words: list[str] = []
        written_of: dict[str, set[str]] = {}
        for text in _lemma_inputs(rules):
            key = apostrophe_variants(text)[0]
            written = [t.lower_ for t in self.pipeline.make_doc(key)]
            for w, lem in zip(written, self._term_lemma[key]):
                words.append(lem)
                if w != lem:
                    written_of.setdefault(lem, set()).add(w)
        lemmas = [w for w in dict.fromkeys(words) if w not in FUNCTION_WORDS]
        lemmas_of = lookup_lemmatizer(self.model_name)

        def plausible_verb_form(form: str, lemma: str) -> bool:
            # A rule-generated verb form the lookup tables know as a form of another lemma
            # ("usages" is "usage", not a form of "usager") is dropped.
            if lemmas_of is None:
                return True
            known = lemmas_of(form)
            return not known or lemma in known

        owner: dict[str, str] = {w: w for w in lemmas}
        # The written word maps to the model's lemma even when that lemma is odd
        # ("data" -> "dater"): matching then sees what the lemmatizer sees.
        for lemma in lemmas:
            for written in sorted(written_of.get(lemma, ())):
                for form in {written} | inflections(written)[0]:
                    owner.setdefault(form, lemma)
        for lemma in lemmas:
            for form in inflections(lemma)[0]:
                owner.setdefault(form, lemma)
        for lemma in lemmas:
            for form in inflections(lemma)[1]:
                if plausible_verb_form(form, lemma):
                    owner.setdefault(form, lemma)
        for form, lemma in owner.items():
            for variant in case_variants(form):
                vocab[variant].norm_ = lemma
        for a in APOSTROPHES[1:]:
            for word in ("d", "l", "n", "qu", "s", "c", "j", "m", "t", "jusqu", "lorsqu", "puisqu"):
                for w in (word, word.capitalize(), word.upper()):
                    vocab[w + a].norm_ = word + "'"
        self._owner = owner

    def _lemmatize_terms(self, terms: list[str]) -> dict[str, list[str]]:
        """Lower-case lemmas of each term's tokens, from the model's lemmatizer, the term
        inside a carrier sentence (a bare phrase is tagged less reliably). Without the model,
        the written words are taken as lemmas (and a warning is logged)."""
        terms = list(dict.fromkeys(apostrophe_variants(t)[0] for t in terms))
        model = self._lemma_pipeline
        # Lemmas known without loading the model: the state this annotator was rebuilt from (a
        # worker process), or what this process computed earlier with the same model (loading
        # it again costs seconds per annotator: a notebook, a test building several).
        for known in (self._given_term_lemma, _TERM_LEMMAS.get(self.model_name) if model is None else None):
            if known is not None and all(t in known for t in terms):
                return _with_variants({t: list(known[t]) for t in terms})
        loaded = model is None
        if model is None:
            try:
                model = spacy.load(self.model_name, exclude=["parser", "ner"])
            except OSError:
                logger.warning("model %s not installed: lemma terms taken as written", self.model_name)
                model, loaded = None, False  # the written words stand in: nothing to remember
        out: dict[str, list[str]] = {}
        prefix = "Il est question de"
        n_prefix = len(self.pipeline.make_doc(prefix))
        docs = model.pipe(f"{prefix} {t} dans ce rapport." for t in terms) if model is not None else [None] * len(terms)
        for term, doc in zip(terms, docs):
            written = [t.lower_ for t in self.pipeline.make_doc(term)]
            if doc is None:
                out[term] = written
                continue
            toks = list(doc)[n_prefix:n_prefix + len(written)]
            lem = [(t.lemma_ or t.lower_).lower() for t in toks]
            # Keep function words and elisions as written (the lemmatizer turns "l'" into "le").
            out[term] = [w if w in FUNCTION_WORDS or w.endswith("'") else l for w, l in zip(written, lem)]
        if loaded:
            _TERM_LEMMAS.setdefault(self.model_name, {}).update((t, list(out[t])) for t in terms)
        return _with_variants(out)

    def _lemma_patterns(self, rules: list[TermRule]) -> dict[str, list[Doc]]:
        """Pattern docs for lemma rules.

        Fast path: docs whose NORMs are the written lemmas. Full path: the terms are run
        through the same pipeline (spaCy#4100), once alone and once inside a carrier
        sentence, because the tagger may lemmatize a short phrase differently; both lemma
        sequences are kept, and a pipeline without lemmas raises :class:`LexiconError`.
        """
        out: dict[str, list[Doc]] = {}
        if self.mode == "fast":
            for rule in rules:
                docs = []
                for term in rule.terms:
                    words = [self._owner.get(w, w) for w in self._term_lemma[apostrophe_variants(term)[0]]]
                    docs.append(Doc(self.pipeline.vocab, words=words))
                out[rule.id] = docs
            return out
        texts, owners = [], []
        for rule in rules:
            for term in rule.terms:
                texts += [term, f"Il est question de {term} dans ce rapport."]
                owners += [(rule, term, False), (rule, term, True)]
        prefix_len = len(self.pipeline.make_doc("Il est question de"))
        for (rule, term, carried), doc in zip(owners, self.pipeline.pipe(texts)):
            tokens = list(doc)
            if carried:
                tokens = tokens[prefix_len:prefix_len + len(self.pipeline.make_doc(term))]
            lemmas = [t.lemma_ for t in tokens]
            if not all(lemmas):
                raise LexiconError(
                    f"lexicon {rule.source}, term {rule.id!r}: lemma term {term!r} can never "
                    f"match: the pipeline {self.model_name!r} computes no lemmas"
                )
            pattern = Doc(self.pipeline.vocab, words=[t.text for t in tokens], lemmas=lemmas)
            out.setdefault(rule.id, []).append(pattern)
        return out

    def _translate_pattern(self, pattern: tuple[dict[str, Any], ...], rule: TermRule) -> list[dict[str, Any]]:
        """Fast path: LEMMA in a token pattern becomes NORM (lexeme norms set from the lexicon)."""
        out = []
        for tok in pattern:
            tok = dict(tok)
            if "LEMMA" in tok:
                value = tok.pop("LEMMA")
                if self.mode == "fast":
                    def conv(v: str) -> list[str]:
                        lem = self._term_lemma.get(v, [v])
                        return [self._owner.get(lem[0], lem[0])] if len(lem) == 1 else [v]
                    key = "NORM"
                else:
                    def conv(v: str) -> list[str]:
                        lem = self._term_lemma.get(v, [v])
                        return list(dict.fromkeys([v, lem[0]])) if len(lem) == 1 else [v]
                    key = "LEMMA"
                if isinstance(value, dict):
                    value = {op: ([c for v in vs for c in conv(v)] if op in ("IN", "NOT_IN") else vs)
                             for op, vs in value.items()}
                else:
                    forms = conv(value)
                    value = forms[0] if len(forms) == 1 else {"IN": forms}
                tok[key] = value
            out.append(tok)
        return out

    def find(self, doc: Doc, sent_starts: list[int]) -> list[Match]:
        """All rule matches of a doc, nested matches resolved to the longest.

        Nesting is resolved within each theme's hits, among context hits and among
        exclusions, so that "conseiller numérique" (inclusion) and "numérique" (context) both
        count, and a long hit of one theme never hides a nested hit of another theme.
        Gated token patterns (see ``_build_matchers``) run only near digital sentences, so
        their out-of-context hits are not recorded (phrase hits out of context are).
        """
        strings = self.pipeline.vocab.strings
        found: dict[tuple[str, int, int], TermRule] = {}
        for matcher in (self._lower, self._norm):
            if not len(matcher):
                continue
            for key, start, end in matcher(doc):
                rule = self.rules[strings[key]]
                found[(rule.id, start, end)] = rule
        values = doc.to_array([NORM, LOWER, ORTH])
        cols: DocColumns | None = None
        for matcher in self._free_filter.active(values, 0, len(doc)):
            cols = cols or DocColumns(doc, values, [NORM, LOWER, ORTH], strings)
            for start, end in matcher.match(cols, 0, len(doc)):
                found[(matcher.rule.id, start, end)] = matcher.rule
        if self._gated and self.context_window is not None:
            digital = sorted({
                bisect_right(sent_starts, start) - 1
                for (_rid, start, _end), rule in found.items()
                if rule.digital or self.lexicon_of[rule.lexicon].kind == "context"
            })
            ranges: list[list[int]] = []
            w = self.context_window
            for d in digital:
                lo, hi = max(0, d - w), min(len(sent_starts) - 1, d + w)
                if ranges and lo <= ranges[-1][1] + 1:
                    ranges[-1][1] = max(ranges[-1][1], hi)
                else:
                    ranges.append([lo, hi])
            for lo, hi in ranges:
                start_tok = sent_starts[lo]
                end_tok = sent_starts[hi + 1] if hi + 1 < len(sent_starts) else len(doc)
                for matcher in self._gated_filter.active(values, start_tok, end_tok):
                    cols = cols or DocColumns(doc, values, [NORM, LOWER, ORTH], strings)
                    for start, end in matcher.match(cols, start_tok, end_tok):
                        found[(matcher.rule.id, start, end)] = matcher.rule
        groups: dict[str, list[tuple[TermRule, int, int]]] = {}
        for (_rid, start, end), rule in found.items():
            # Nesting is resolved within one lexicon (and among exclusions, among context
            # terms): a long hit of one theme never hides a nested hit of another theme.
            kind = "exclude" if rule.exclude else self.lexicon_of[rule.lexicon].kind
            key = kind if kind == "context" else f"{kind}:{rule.lexicon}"
            groups.setdefault(key, []).append((rule, start, end))
        out: list[tuple[TermRule, int, int]] = []
        for items in groups.values():
            out += not_nested(items)
        out.sort(key=lambda x: (x[1], x[2]))
        return out



def not_nested(items: list[tuple[Any, int, int]]) -> list[tuple[Any, int, int]]:
    """The ``(payload, start, end)`` spans that no strictly longer span of ``items`` contains
    (identical spans are all kept), in (start, longest first) order.

    In that order a span is nested when one before it starts earlier and ends at or after its
    end, or starts with it and ends after it: one pass, linear in the spans (comparing each span
    with every other made long texts quadratic)."""
    items = sorted(items, key=lambda x: (x[1], -(x[2] - x[1])))
    out = []
    ends_before, group_start, group_end = -1, -1, -1
    for item in items:
        start, end = item[1], item[2]
        if start != group_start:
            ends_before, group_start, group_end = max(ends_before, group_end), start, -1
        if ends_before < end and group_end <= end:
            out.append(item)
        group_end = max(group_end, end)
    return out
