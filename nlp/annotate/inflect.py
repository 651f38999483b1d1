"""Inflections: the fast path's stand-in for a lemmatizer, generated from the lexicon.

Stage: annotate (building the matchers). Input: lexicon lemmas. Output: the word forms that
map to each lemma (plural, feminine, verb forms, unaccented and case variants), checked
against the lookup tables of the installed spaCy model when there are some.
"""
from __future__ import annotations

import functools
import logging
from typing import Any

from nlp.io import fold_accents

logger = logging.getLogger(__name__)

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


def case_variants(form: str) -> set[str]:
    return {form, form.capitalize(), form.upper(), fold_accents(form), fold_accents(form).capitalize(),
            fold_accents(form).upper()}


def apostrophe_variants(text: str) -> list[str]:
    base = text
    for a in APOSTROPHES[1:]:
        base = base.replace(a, "'")
    out = [base]
    if "'" in base:
        out.append(base.replace("'", "’"))
    return out


@functools.lru_cache(maxsize=4)
def lookup_lemmatizer(model: str) -> Any:
    """A function ``form -> set of lemmas`` (empty set: form unknown) built from the
    lemmatizer lookup tables (``lemma_lookup``, ``lemma_exc``) of the spaCy package ``model``,
    or ``None`` when the package or its tables are absent (then rules alone are used).
    Read once per process and model: the tables are read-only and take seconds to load.
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

