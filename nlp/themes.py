"""Theme detection with spaCy and the YAML lexicons (stage: annotate).

Input: texts (paragraphs or whole documents) and a validated :class:`~nlp.lexicons.LexiconSet`.
Output: one :class:`TextAnnotation` per text: sentence spans, word count, whether the text is
about digital matters, every lexicon hit with its evidence (sentence, character spans, theme,
sub-theme, term id, negated flag, digital context), and gold-style labels (``numerique``,
theme ids, dotted sub-themes such as ``frein_interne.technique``).

Two paths share the same rules (negation, exclusions, digital context, nesting):

- ``mode="fast"`` (default): ``spacy.blank("fr")`` tokenizer + rule-based ``sentencizer``.
  ``lemma`` terms are matched on the token NORM, which is set per *lexeme* (so at no cost
  per token) from inflections generated from the lexicon (plural, feminine, verb forms,
  unaccented spellings): "conseillères numériques" has the norms "conseiller numérique".
- ``mode="full"``: the full ``fr_core_news_md`` pipeline; ``lemma`` terms are matched on
  LEMMA with patterns processed by the same pipeline (spaCy#4100), sentences from the parser.

The JSONL contract (``{"id", "text"}`` in, ``{"id", "labels", "hits"}`` out) is
:func:`label_texts` / :func:`run_themes_jsonl`.
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import unicodedata
from bisect import bisect_right
from collections import deque
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import spacy
import numpy as np
from spacy.attrs import IDX, IS_PUNCT, IS_SPACE, LENGTH, LOWER, NORM, ORTH
from spacy.pipeline import Sentencizer
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

from nlp.errors import BarometreError, LexiconError
from nlp.lexicons import Lexicon, LexiconSet, TermRule, load_lexicons

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "fr_core_news_md"
APOSTROPHES = ("'", "’", "`", "ʼ")
# Words never inflected inside multi-word lemma terms.
FUNCTION_WORDS = frozenset(
    "de des du d' la le les l' à au aux en et ou pour par sur dans avec un une sans entre "
    "contre vers chez a est son sa ses leur leurs ce cette ces sous ne pas plus nos notre".split()
)
IRREGULAR_VERBS: dict[str, set[str]] = {
    "être": set("est sont était étaient sera seront serait seraient été soit soient".split()),
    "avoir": set("a ont avait avaient aura auront aurait eu eue eus eues ait aient".split()),
    "faire": set("fait font faisait faisaient fera feront ferait faite faits faites".split()),
    "pouvoir": set("peut peuvent pouvait pouvaient pourra pourront pourrait pu".split()),
    "permettre": set("permet permettent permettait permis permise permettra permettrait".split()),
    "mettre": set("met mettent mettait mis mise mises mettra".split()),
    "prendre": set("prend prennent prenait pris prise prises prendra".split()),
    "suffire": set("suffit suffisent suffisait suffira suffi".split()),
}
# Negation cues (DESIGN: "aucun partenariat n'a été conclu", "sans conseiller numérique",
# "il n'existe pas de stratégie"). Scope: a few tokens before the hit, same sentence.
NEG_CUES = frozenset({"aucun", "aucune", "sans", "ni", "jamais", "nul", "nulle", "absence", "faute"})
NEG_ADVERBS = frozenset({"pas", "plus", "guère", "point"})
NEG_PARTICLES = frozenset({"ne", "n'", "n’"})
NEG_WINDOW = 4
OPENING_MARKS = frozenset({"«", "“", "(", "[", '"', "‘", "—", "–", "-", "•"})
NEG_CLAUSE = frozenset({"aucun", "aucune", "pas", "jamais", "plus", "rien", "nul", "nulle", "guère"})


# --------------------------------------------------------------------------------------
# records
@dataclass
class Hit:
    """One lexicon match with its evidence.

    ``start``/``end``: character span of the match inside ``sentence``;
    ``text_start``/``text_end``: the same span inside the whole text.
    ``negated``: a negation cue governs the match ("aucun partenariat"); negated hits are
    kept as evidence but give no label. ``digital_context``: the sentence or its neighbours
    are about digital matters; a hit of a theme that requires the context and lacks it gives
    no label either.
    """

    sentence_index: int
    sentence: str
    start: int
    end: int
    text_start: int
    text_end: int
    theme: str
    subtheme: str | None
    term_id: str
    matched: str
    negated: bool
    digital_context: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TextAnnotation:
    """Result of annotating one text: see module docstring. ``labels`` are sorted."""

    sentences: list[tuple[int, int]]
    n_words: int
    is_digital: bool
    hits: list[Hit] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    context_hits: list[Hit] = field(default_factory=list)

    @property
    def n_sentences(self) -> int:
        return len(self.sentences)

    @property
    def themes(self) -> list[str]:
        """Theme ids with at least one counted (non-negated, in-context) hit."""
        return [lab for lab in self.labels if "." not in lab and lab != "numerique"]


# --------------------------------------------------------------------------------------
# inflections: the fast path's stand-in for a lemmatizer, generated from the lexicon
def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _nominal_forms(w: str) -> set[str]:
    """Plural and feminine forms of a French noun/adjective lemma (over-generation is harmless)."""
    out = {w}
    fem: set[str] = set()
    if w.endswith("e"):
        pass
    elif w.endswith("if"):
        fem.add(w[:-2] + "ive")
    elif w.endswith("eux"):
        fem.add(w[:-3] + "euse")
    elif w.endswith("teur"):
        fem |= {w[:-4] + "trice", w[:-3] + "euse"}
    elif w.endswith("eur"):
        fem.add(w[:-3] + "euse")
    elif w.endswith("ier") or w.endswith("er"):
        fem.add(w[:-2] + "ère")
    elif w.endswith(("ien", "on", "el", "et", "en")):
        fem.add(w + w[-1] + "e")
    elif w.endswith("c"):
        fem.add(w[:-1] + "que")
    else:
        fem.add(w + "e")
    for form in {w} | fem:
        out.add(form)
        if form.endswith(("s", "x", "z")):
            continue
        if form.endswith(("eau", "au", "eu")):
            out |= {form + "x", form + "s"}
        elif form.endswith("al"):
            out |= {form[:-2] + "aux", form + "s"}
        elif form.endswith("ail"):
            out |= {form[:-3] + "aux", form + "s"}
        else:
            out.add(form + "s")
    return out


def _verb_forms(w: str) -> set[str]:
    """Common conjugated forms of a French -er/-ir verb lemma."""
    out: set[str] = set()
    if len(w) >= 5 and w.endswith("er"):
        stem = w[:-2]
        soft = stem + ("e" if stem.endswith("g") else "")
        soft = soft[:-1] + "ç" if stem.endswith("c") else soft
        for suf in ("e", "es", "ent", "ez", "é", "ée", "és", "ées", "er", "ai", "a", "èrent",
                    "ions", "iez", "era", "eront", "erait", "eraient", "erons", "erez", "é"):
            out.add(stem + suf)
        for suf in ("ons", "ant", "ait", "aient", "a", "ais"):
            out.add(soft + suf)
    elif len(w) >= 5 and w.endswith("ir"):
        stem = w[:-2]
        for suf in ("is", "it", "issent", "issons", "issez", "i", "ie", "ies", "issant",
                    "issait", "issaient", "ira", "iront", "irait", "issement"):
            out.add(stem + suf)
    elif len(w) >= 5 and w.endswith("re"):
        stem = w[:-2]  # répondre, permettre, produire: candidates, filtered by the lookup tables
        for suf in ("s", "", "t", "ons", "ez", "ent", "ait", "aient", "u", "ue", "us", "ues", "ant",
                    "ra", "ront", "rait", "raient", "is", "it", "ise", "ises"):
            out.add(stem + suf)
    out |= IRREGULAR_VERBS.get(w, set())
    return out


def inflections(word: str) -> tuple[set[str], set[str]]:
    """(nominal forms, verbal forms) of a lemma, lower-case, hyphenated words inflected at the end."""
    w = word.lower()
    if w in FUNCTION_WORDS or not any(c.isalpha() for c in w):
        return {w}, set()
    return _nominal_forms(w), _verb_forms(w)


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


def _case_variants(form: str) -> set[str]:
    return {form, form.capitalize(), form.upper(), strip_accents(form), strip_accents(form).capitalize(),
            strip_accents(form).upper()}


def _apostrophe_variants(text: str) -> list[str]:
    base = text
    for a in APOSTROPHES[1:]:
        base = base.replace(a, "'")
    out = [base]
    if "'" in base:
        out.append(base.replace("'", "’"))
    return out


def _lookup_lemmatizer(model: str) -> Any:
    """A function ``form -> set of lemmas`` (empty set: form unknown) built from the
    lemmatizer lookup tables (``lemma_lookup``, ``lemma_exc``) of the spaCy package ``model``,
    or ``None`` when the package or its tables are absent (then rules alone are used).
    """
    try:
        from spacy.lookups import Lookups
        from spacy.util import get_package_path

        base = get_package_path(model)
    except Exception:  # not installed: rule-generated forms only
        logger.info("no lookup tables from %s: inflections generated by rule only", model)
        return None
    paths = sorted(base.glob("*/lemmatizer/lookups")) + sorted(base.glob("lemmatizer/lookups"))
    if not paths:
        return None
    lookups = Lookups().from_disk(paths[0])
    tables = []
    if lookups.has_table("lemma_lookup"):
        tables.append(lookups.get_table("lemma_lookup"))
    if lookups.has_table("lemma_exc"):
        tables.extend(lookups.get_table("lemma_exc").values())

    def lemmas_of(form: str) -> set[str]:
        out: set[str] = set()
        for table in tables:
            value = table.get(form)
            if value:
                out.update(value if isinstance(value, list) else [value])
        return out

    return lemmas_of


# --------------------------------------------------------------------------------------
# the annotator
class ThemeAnnotator:
    """Compile a :class:`LexiconSet` into spaCy matchers and annotate texts.

    ``mode``: ``"fast"`` (tokenizer + sentencizer, lexicon-generated inflections) or
    ``"full"`` (the whole ``model`` pipeline, lemmas from its lemmatizer).
    ``context_window``: a hit is in digital context when a sentence within this many
    sentences of it is digital (``None``: anywhere in the text).
    ``max_length``: texts longer than this are processed in pieces split at paragraph
    boundaries (defaults to the pipeline's ``max_length``).
    """

    def __init__(
        self,
        lexicons: LexiconSet,
        model: str = DEFAULT_MODEL,
        *,
        mode: str = "fast",
        context_window: int | None = 1,
        max_length: int | None = None,
        pipeline: Language | None = None,
        lemma_pipeline: Language | None = None,
    ) -> None:
        if mode not in ("fast", "full"):
            raise BarometreError(f"unknown annotation mode {mode!r} (fast or full)")
        self.lexicons = lexicons
        self.mode = mode
        self.model_name = model
        self.context_window = context_window
        if pipeline is not None:
            self.pipeline = pipeline
        elif mode == "fast":
            self.pipeline = spacy.blank("fr")
        else:
            try:
                self.pipeline = spacy.load(model)
            except OSError as exc:
                raise BarometreError(
                    f"spaCy model {model!r} is not installed (pip install {model.replace('_', '-')})"
                ) from exc
        self.max_length = max_length or self.pipeline.max_length
        add = self.pipeline.vocab.strings.add
        self._neg_hashes = tuple(
            frozenset(add(w) for w in words)
            for words in (NEG_CUES, NEG_ADVERBS, NEG_PARTICLES, NEG_CLAUSE, {"'", "’", "-"})
        )
        if mode == "fast":
            # Lexeme flags (computed once per word type, read in C by Doc.to_array) for the
            # fast sentence splitter: sentence-final marks and blank lines, opening marks.
            final_chars = set(Sentencizer.default_punct_chars)
            self._flag_final = self.pipeline.vocab.add_flag(
                lambda text: text in final_chars or (text.isspace() and text.count("\n") >= 2))
            self._flag_open = self.pipeline.vocab.add_flag(lambda text: text in OPENING_MARKS)
        else:
            # The parser gives the sentences; no flag is added to a (possibly shared) model vocab.
            self._flag_final = self._flag_open = IS_PUNCT
        # Fast path: lemma terms are lemmatized once, at build time, by the real model
        # (spaCy#4100: what the matcher compares must come from the same lemmatizer),
        # then expanded to inflected forms; the model is not kept.
        self._lemma_pipeline = lemma_pipeline
        self._term_lemma: dict[str, list[str]] = {}
        self._rules: dict[str, TermRule] = {}
        self._lexicon_of: dict[str, Lexicon] = {lex.id: lex for lex in lexicons}
        self._build_matchers()
        self._lemma_pipeline = None

    # ---- building ------------------------------------------------------------------
    def _build_matchers(self) -> None:
        vocab = self.pipeline.vocab
        self._lower = PhraseMatcher(vocab, attr="LOWER")
        self._norm = PhraseMatcher(vocab, attr="NORM" if self.mode == "fast" else "LEMMA")
        # Token patterns are the costly part of matching. Those of theme rules that need
        # the digital context (and do not provide it) are run only on the sentences within
        # the context window of a digital sentence; the others run on the whole text.
        self._matcher = Matcher(vocab)
        self._gated: list[tuple[Matcher, list[list[tuple[str, frozenset[int]]]]]] = []
        rules = self.lexicons.all_rules
        if self.mode == "fast":
            self._install_norms(rules)
        else:
            self._lemma_pipeline = self.pipeline
            self._term_lemma = self._lemmatize_terms(_lemma_inputs(rules))
        lemma_docs_needed = [r for r in rules if r.match == "lemma"]
        lemma_patterns = self._lemma_patterns(lemma_docs_needed)
        for rule in rules:
            self._rules[rule.id] = rule
            if rule.match == "lower":
                docs = [self.pipeline.make_doc(v) for t in rule.terms for v in _apostrophe_variants(t)]
                self._lower.add(rule.id, docs)
            elif rule.match == "lemma":
                self._norm.add(rule.id, lemma_patterns[rule.id])
            elif self._add_as_phrases(rule):
                continue
            else:
                lex = self._lexicon_of[rule.lexicon]
                gated = (lex.kind == "theme" and lex.requires_digital_context and not rule.digital
                         and not rule.exclude and self.context_window is not None)
                translated = [self._translate_pattern(p, rule) for p in rule.patterns]
                if gated:
                    # One matcher per gated rule, run only on spans holding every mandatory
                    # word of one of its patterns (checked on token arrays, no Python per token).
                    own = Matcher(vocab)
                    own.add(rule.id, translated, greedy="LONGEST")
                    self._gated.append((own, [_required_values(p, vocab) for p in translated]))
                else:
                    self._matcher.add(rule.id, translated, greedy="LONGEST")

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
            key = _apostrophe_variants(text)[0]
            written = [t.lower_ for t in self.pipeline.make_doc(key)]
            for w, lem in zip(written, self._term_lemma[key]):
                words.append(lem)
                if w != lem:
                    written_of.setdefault(lem, set()).add(w)
        lemmas = [w for w in dict.fromkeys(words) if w not in FUNCTION_WORDS]
        lemmas_of = _lookup_lemmatizer(self.model_name)

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
            for variant in _case_variants(form):
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
        terms = list(dict.fromkeys(_apostrophe_variants(t)[0] for t in terms))
        model = self._lemma_pipeline
        if model is None:
            try:
                model = spacy.load(self.model_name, exclude=["parser", "ner"])
            except OSError:
                logger.warning("model %s not installed: lemma terms taken as written", self.model_name)
                model = None
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
        for term in list(out):
            for variant in _apostrophe_variants(term):
                out[variant] = out[term]
        return out

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
                    words = [self._owner.get(w, w) for w in self._term_lemma[_apostrophe_variants(term)[0]]]
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

    # ---- annotating ----------------------------------------------------------------
    def annotate(self, texts: Iterable[str], batch_size: int = 64, n_process: int = 1) -> Iterator[TextAnnotation]:
        """Annotate texts in order. ``n_process > 1`` uses a pool of forked workers."""
        if n_process > 1:
            yield from _annotate_parallel(self, texts, batch_size, n_process)
            return
        meta: deque[tuple[int, int, str]] = deque()

        def texts_only() -> Iterator[str]:
            for idx, off, piece in self._pieces(texts):
                meta.append((idx, off, piece))
                yield piece

        # Pieces of one long text come out consecutively; group them back together.
        current: list[tuple[int, str, Doc]] = []
        current_idx = -1
        for doc in self.pipeline.pipe(texts_only(), batch_size=batch_size):
            idx, off, piece = meta.popleft()
            if idx != current_idx and current:
                yield self._annotate_docs(current)
                current = []
            current_idx = idx
            current.append((off, piece, doc))
        if current:
            yield self._annotate_docs(current)

    def annotate_one(self, text: str) -> TextAnnotation:
        return next(self.annotate([text]))

    def _pieces(self, texts: Iterable[str]) -> Iterator[tuple[int, int, str]]:
        for idx, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text #{idx} is {type(text).__name__}, not str")
            if len(text) < self.max_length:
                yield idx, 0, text
                continue
            for off, piece in split_long_text(text, self.max_length - 1):
                yield idx, off, piece

    def _sentences(self, doc: Doc, arr: Any) -> tuple[list[int], list[tuple[int, int]]]:
        """Sentence start tokens and (start, end) character spans of a doc.

        Full path: the parser's sentences. Fast path: the rules of spaCy's ``sentencizer``
        (a sentence ends after a sentence-final punctuation token, and any punctuation that
        follows it), plus a break at blank lines, computed on token arrays with numpy
        instead of Python objects per token.
        """
        n = len(doc)
        if n == 0:
            return [], []
        if self.mode == "full":
            sents = list(doc.sents)
            return [s.start for s in sents], [(s.start_char, s.end_char) for s in sents]
        idx, length = arr[:, 0], arr[:, 1]
        punct, space = arr[:, 3].astype(bool), arr[:, 4].astype(bool)
        pending, opening = arr[:, 5].astype(bool), arr[:, 6].astype(bool)
        starts = [0]
        carry = False
        prev = -2
        # Only tokens that are punctuation or space can open a break: walk those alone.
        for i in np.flatnonzero((pending | punct | space)[:-1]).tolist():
            if i != prev + 1:
                carry = False
            carry = carry or bool(pending[i])
            if carry and (not punct[i + 1] or opening[i + 1]) and not space[i + 1]:
                starts.append(i + 1)
                carry = False
            prev = i
        ends = starts[1:] + [n]
        chars = []
        for a, b in zip(starts, ends):
            last = b - 1
            while last > a and space[last]:
                last -= 1
            chars.append((int(idx[a]), int(idx[last] + length[last])))
        return starts, chars

    def _annotate_docs(self, parts: list[tuple[int, str, Doc]]) -> TextAnnotation:
        """Annotate one text given as one or more (offset, piece text, doc) pieces.

        Token attributes are read once per doc into a numpy array (character offsets,
        lengths, lower-case hashes, flags) so that sentences, spans and negation need no
        Python object per token.
        """
        sentences: list[tuple[int, int]] = []
        sent_texts: list[str] = []
        theme_hits: list[tuple[int, Hit, TermRule]] = []
        ctx_hits: list[Hit] = []
        n_words = 0
        excluded: set[tuple[int, str]] = set()
        for off, doc_text, doc in parts:
            if not len(doc):
                continue
            arr = doc.to_array([IDX, LENGTH, LOWER, IS_PUNCT, IS_SPACE, self._flag_final, self._flag_open])
            base_sent = len(sentences)
            sent_starts, sent_chars = self._sentences(doc, arr)
            for a, b in sent_chars:
                sentences.append((off + a, off + b))
                sent_texts.append(doc_text[a:b])
            n_words += int(len(doc) - ((arr[:, 3] + arr[:, 4]) > 0).sum())
            spans = self._matches(doc, sent_starts)
            if not spans:
                continue
            idx, length = arr[:, 0].tolist(), arr[:, 1].tolist()
            lowers, punct = arr[:, 2].tolist(), arr[:, 3].tolist()
            for rule, start, end in spans:
                s_local = bisect_right(sent_starts, start) - 1
                s_idx = base_sent + s_local
                if rule.exclude:
                    excluded.add((s_idx, rule.lexicon))
                    continue
                sent_char = sent_chars[s_local][0]
                a, b = idx[start], idx[end - 1] + length[end - 1]
                hit = Hit(
                    sentence_index=s_idx, sentence=sent_texts[s_idx],
                    start=a - sent_char, end=b - sent_char, text_start=off + a, text_end=off + b,
                    theme=rule.lexicon, subtheme=rule.subtheme, term_id=rule.id, matched=doc_text[a:b],
                    negated=self._is_negated(lowers, punct, start, sent_starts[s_local]),
                    digital_context=False,
                )
                if self._lexicon_of[rule.lexicon].kind == "context":
                    ctx_hits.append(hit)
                else:
                    theme_hits.append((s_idx, hit, rule))
        digital_sents = {h.sentence_index for h in ctx_hits}
        digital_sents |= {s for s, h, r in theme_hits if r.digital and (s, r.lexicon) not in excluded}
        hits: list[Hit] = []
        labels: set[str] = set()
        for s_idx, hit, rule in theme_hits:
            if (s_idx, rule.lexicon) in excluded:
                continue
            lex = self._lexicon_of[rule.lexicon]
            if self.context_window is None:
                hit.digital_context = bool(digital_sents)
            else:
                hit.digital_context = any(
                    abs(s_idx - d) <= self.context_window for d in digital_sents
                )
            hits.append(hit)
            if hit.negated or (lex.requires_digital_context and not hit.digital_context):
                continue
            labels.add(lex.id)
            if hit.subtheme:
                labels.add(f"{lex.id}.{hit.subtheme}")
        for hit in ctx_hits:
            hit.digital_context = True
        is_digital = bool(digital_sents)
        context = self.lexicons.context
        if context is not None and (is_digital or labels):
            labels.add(context.id)
        hits.sort(key=lambda h: (h.text_start, h.text_end))
        return TextAnnotation(
            sentences=sentences, n_words=n_words, is_digital=is_digital or bool(labels),
            hits=hits, labels=sorted(labels), context_hits=ctx_hits,
        )

    def _is_negated(self, lowers: list[int], punct: list[int], start: int, sent_start: int) -> bool:
        """A negation cue governs the match at token ``start``, inside its sentence.

        Either a cue in the few tokens before the match ("aucun partenariat", "sans conseiller
        numérique", "absence de schéma directeur", "pas de stratégie" with a "ne/n'" before:
        "il n'existe pas de stratégie"), or the match sits in a negated clause whose negator
        came earlier ("aucun partenariat n'a été conclu avec les opérateurs": "ne/n'" in the
        few tokens before the match and "aucun/pas/jamais/plus/rien" earlier in the sentence).
        ``lowers`` are lower-case hashes, ``punct`` punctuation flags of the doc's tokens.
        """
        cues, adverbs, particles, clause, soft = self._neg_hashes
        lo = max(sent_start, start - NEG_WINDOW)
        for i in range(start - 1, lo - 1, -1):
            low = lowers[i]
            if low in cues:
                return True
            if low in adverbs:
                for j in range(max(sent_start, i - NEG_WINDOW), i):
                    if lowers[j] in particles:
                        return True
            if punct[i] and low not in soft:
                return False
        particle = None
        for i in range(start - 1, max(sent_start, start - 2 * NEG_WINDOW) - 1, -1):
            if punct[i] and lowers[i] not in soft:
                break
            if lowers[i] in particles:
                particle = i
                break
        if particle is None:
            return False
        return any(lowers[j] in clause for j in range(sent_start, start) if j != particle)

    def _matches(self, doc: Doc, sent_starts: list[int]) -> list[tuple[TermRule, int, int]]:
        """All rule matches of a doc, nested matches resolved to the longest.

        Nesting is resolved separately among theme hits, context hits and exclusions, so
        that "conseiller numérique" (inclusion) and "numérique" (context) both count.
        Gated token patterns (see ``_build_matchers``) run only near digital sentences, so
        their out-of-context hits are not recorded (phrase hits out of context are).
        """
        strings = self.pipeline.vocab.strings
        found: dict[tuple[str, int, int], TermRule] = {}
        for matcher in (self._lower, self._norm, self._matcher):
            if not len(matcher):
                continue
            for key, start, end in matcher(doc):
                rule = self._rules[strings[key]]
                found[(rule.id, start, end)] = rule
        if self._gated and self.context_window is not None:
            digital = sorted({
                bisect_right(sent_starts, start) - 1
                for (_rid, start, _end), rule in found.items()
                if rule.digital or self._lexicon_of[rule.lexicon].kind == "context"
            })
            ranges: list[list[int]] = []
            w = self.context_window
            for d in digital:
                lo, hi = max(0, d - w), min(len(sent_starts) - 1, d + w)
                if ranges and lo <= ranges[-1][1] + 1:
                    ranges[-1][1] = max(ranges[-1][1], hi)
                else:
                    ranges.append([lo, hi])
            if ranges:
                values = doc.to_array([NORM, LOWER, ORTH])
            for lo, hi in ranges:
                start_tok = sent_starts[lo]
                end_tok = sent_starts[hi + 1] if hi + 1 < len(sent_starts) else len(doc)
                present = {
                    "NORM": set(values[start_tok:end_tok, 0].tolist()),
                    "LOWER": set(values[start_tok:end_tok, 1].tolist()),
                    "ORTH": set(values[start_tok:end_tok, 2].tolist()),
                }
                span = None
                for matcher, requirements in self._gated:
                    if not any(all(present[attr] & allowed for attr, allowed in req) for req in requirements):
                        continue
                    span = span if span is not None else doc[start_tok:end_tok]
                    for key, start, end in matcher(span):
                        rule = self._rules[strings[key]]
                        found[(rule.id, start_tok + start, start_tok + end)] = rule
        groups: dict[str, list[tuple[TermRule, int, int]]] = {}
        for (_rid, start, end), rule in found.items():
            kind = "exclude" if rule.exclude else self._lexicon_of[rule.lexicon].kind
            groups.setdefault(kind, []).append((rule, start, end))
        out: list[tuple[TermRule, int, int]] = []
        for items in groups.values():
            items.sort(key=lambda x: (x[1], -(x[2] - x[1])))
            for rule, start, end in items:
                nested = any(
                    (s <= start and end <= e) and (e - s) > (end - start)
                    for _r, s, e in items
                )
                if not nested:
                    out.append((rule, start, end))
        out.sort(key=lambda x: (x[1], x[2]))
        return out


def split_long_text(text: str, limit: int) -> Iterator[tuple[int, str]]:
    """Split ``text`` into pieces of at most ``limit`` characters, at paragraph breaks when
    possible (then line breaks, sentence ends, spaces, and as a last resort anywhere).

    Yields ``(offset, piece)`` with ``text[offset:offset+len(piece)] == piece``.
    """
    pos = 0
    n = len(text)
    while pos < n:
        if n - pos <= limit:
            yield pos, text[pos:]
            return
        window = text[pos:pos + limit]
        cut = -1
        for sep in ("\n\n", "\n", ". ", " "):
            i = window.rfind(sep)
            if i > limit // 4:
                cut = i + len(sep)
                break
        if cut <= 0:
            cut = limit
        yield pos, text[pos:pos + cut]
        pos += cut


def build_annotator(lexicon_dir: Path, model: str = DEFAULT_MODEL, mode: str = "fast",
                    context_window: int | None = 1) -> ThemeAnnotator:
    """Load and validate the lexicons of ``lexicon_dir`` and compile an annotator."""
    return ThemeAnnotator(load_lexicons(Path(lexicon_dir)), model=model, mode=mode,
                          context_window=context_window)


# --------------------------------------------------------------------------------------
# parallel annotation (fork: the compiled annotator is inherited, nothing is re-loaded)
_WORKER: ThemeAnnotator | None = None


def _init_worker(annotator: ThemeAnnotator) -> None:
    global _WORKER
    _WORKER = annotator


def _work(chunk: list[str]) -> list[TextAnnotation]:
    assert _WORKER is not None
    return list(_WORKER.annotate(chunk))


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _annotate_parallel(annotator: ThemeAnnotator, texts: Iterable[str], batch_size: int,
                       n_process: int) -> Iterator[TextAnnotation]:
    ctx = mp.get_context("fork")
    with ctx.Pool(n_process, initializer=_init_worker, initargs=(annotator,)) as pool:
        for result in pool.imap(_work, _chunks(texts, batch_size)):
            yield from result


# --------------------------------------------------------------------------------------
# JSONL contract
def hit_to_dict(hit: Hit) -> dict[str, Any]:
    return hit.to_dict()


def label_texts(annotator: ThemeAnnotator, items: Iterable[dict[str, Any]], batch_size: int = 64,
                n_process: int = 1) -> Iterator[dict[str, Any]]:
    """``{"id", "text", ...}`` dicts in, ``{"id", "labels", "hits", "is_digital", "n_words"}`` out, in order."""
    buffered: deque[dict[str, Any]] = deque()

    def texts():
        for item in items:
            buffered.append(item)
            yield item["text"]

    for ann in annotator.annotate(texts(), batch_size=batch_size, n_process=n_process):
        item = buffered.popleft()
        yield {
            "id": item.get("id"),
            "labels": ann.labels,
            "hits": [h.to_dict() for h in ann.hits],
            "is_digital": ann.is_digital,
            "n_words": ann.n_words,
        }


def read_jsonl_items(in_path: Path, counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    """Valid ``{"id", "text"}`` lines of a JSONL file; bad lines are logged with their number and counted."""
    with open(in_path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            counts["lines"] += 1
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                logger.warning("%s:%d: invalid JSON (%s), line skipped", in_path, lineno, exc.msg)
                counts["bad"] += 1
                continue
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                logger.warning("%s:%d: no string 'text' field, line skipped", in_path, lineno)
                counts["bad"] += 1
                continue
            if "id" not in item:
                item = {**item, "id": f"line{lineno}"}
            yield item


def run_themes_jsonl(in_path: Path, out_path: Path, lexicon_dir: Path, *, model: str = DEFAULT_MODEL,
                     mode: str = "fast", n_process: int = 1,
                     annotator: ThemeAnnotator | None = None) -> dict[str, int]:
    """Annotate a JSONL file (``{"id", "text"}`` per line) into ``out_path``
    (``{"id", "labels", "hits", ...}`` per line, same order, bad lines skipped).

    Returns counts: ``lines`` (non-blank input lines), ``written``, ``bad``. The output is
    written to a temporary name and renamed into place.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():
        raise BarometreError(f"input file {in_path} does not exist")
    if annotator is None:
        annotator = ThemeAnnotator(load_lexicons(Path(lexicon_dir)), model=model, mode=mode)
    counts = {"lines": 0, "written": 0, "bad": 0}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for rec in label_texts(annotator, read_jsonl_items(in_path, counts), n_process=n_process):
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            counts["written"] += 1
    tmp.replace(out_path)
    return counts


def check_lemma_terms(lexicons: LexiconSet, pipeline: Language) -> list[str]:
    """Problems of ``lemma`` terms and LEMMA pattern values against a real lemmatizer.

    A term written in a non-lemma form ("conseillers numériques") or a LEMMA value the
    lemmatizer never produces ("données") could never match on LEMMA (spaCy#4100). Returns
    one message per problem, naming file and term; empty when all is well.
    """
    problems: list[str] = []
    checks: list[tuple[TermRule, str]] = []
    for rule in lexicons.all_rules:
        if rule.match == "lemma":
            checks += [(rule, t) for t in rule.terms]
        elif rule.match == "pattern":
            for pattern in rule.patterns:
                for tok in pattern:
                    v = tok.get("LEMMA")
                    vals = v.get("IN", []) if isinstance(v, dict) else ([v] if v else [])
                    checks += [(rule, x) for x in vals]
    texts = [f"Il est question de {t} dans ce rapport." for _r, t in checks]
    prefix = len(pipeline.make_doc("Il est question de"))
    for (rule, term), doc in zip(checks, pipeline.pipe(texts)):
        n = len(pipeline.make_doc(term))
        lemmas = [t.lemma_.lower() for t in doc[prefix:prefix + n]]
        written = [t.lower_ for t in pipeline.make_doc(term)]
        if lemmas != written:
            problems.append(
                f"lexicon {rule.source}, term {rule.id!r}: {term!r} is lemmatized as "
                f"{' '.join(lemmas)!r}; on LEMMA it matches only through that form"
            )
    return problems

