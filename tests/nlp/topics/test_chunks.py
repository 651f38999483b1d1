"""Tests of nlp/topics/chunks.py: paragraphs → sorted, de-duplicated chunks."""
from __future__ import annotations

import pandas as pd
import pytest

from nlp.topics import TopicSettings, build_chunks, is_boilerplate, split_long


def test_split_long_keeps_sentences_and_bounds_length():
    text = " ".join(f"Phrase numéro {i} sur le numérique et les usagers." for i in range(60))
    chunks = split_long(text, 50)
    assert len(chunks) > 1
    assert all(len(c.split()) <= 50 for c in chunks)
    assert " ".join(chunks).split() == text.split()  # nothing lost, nothing added
    assert split_long("Court texte.", 50) == ["Court texte."]
    one_long = " ".join(["mot"] * 120)
    assert [len(c.split()) for c in split_long(one_long, 50)] == [50, 50, 20]


@pytest.mark.parametrize("text, expected", [
    ("Vu le code général des collectivités territoriales ;", True),
    ("Adopté à l'unanimité des membres présents.", True),
    ("Pour extrait conforme, le Président.", True),
    ("Martial ALVAREZ - Christian AMIRATY - Philippe ARDHUIN - François BERNARDINI - Gérard BRAMOULLÉ", True),
    ("La métropole recrute six conseillers numériques pour accompagner les habitants.", False),
    ("Considérant que la métropole souhaite développer l'inclusion numérique ;", False),
])
def test_boilerplate(text, expected):
    assert is_boilerplate(text) is expected


def test_build_chunks_filters_sorts_and_marks_duplicates(corpus):
    paragraphs, documents = corpus
    extra = pd.DataFrame([
        ("zz", "aubeville", 1, 0, "Vu le code général des collectivités territoriales et la loi du 7 octobre 2016 ;", True, []),
        ("zz", "aubeville", 1, 1, paragraphs["text"].iloc[0], True, ["inclusion"]),
        ("zz", "aubeville", 1, 2, "Trop court.", True, []),
    ], columns=["document_id", "metropole", "page", "paragraph", "text", "is_digital", "themes"])
    chunks, counts = build_chunks(pd.concat([paragraphs, extra]), documents, TopicSettings())
    assert counts["paragraphs_selected"] == int(paragraphs["is_digital"].sum()) + 3
    assert counts["chunks_dropped_boilerplate"] == 1 and counts["chunks_dropped_short"] == 1
    assert not chunks["is_digital"].eq(False).any()
    assert list(chunks["chunk_id"]) == sorted(chunks["chunk_id"], key=lambda c: tuple(
        int(p) if p.isdigit() else p for p in c.split(":")))
    dup = chunks[chunks["document_id"] == "zz"]
    assert dup["duplicate_of"].iloc[0] == chunks["chunk_id"].iloc[0]
    assert chunks.loc[chunks["document_id"] != "zz", "year"].notna().all()
    assert chunks.loc[chunks["document_id"] == "zz", "year"].isna().all()
    all_chunks, _ = build_chunks(paragraphs, documents, TopicSettings(all_paragraphs=True))
    assert len(all_chunks) > len(chunks) - 1


def test_build_chunks_does_not_depend_on_input_order(corpus):
    paragraphs, documents = corpus
    a, _ = build_chunks(paragraphs, documents, TopicSettings())
    b, _ = build_chunks(paragraphs.sample(frac=1.0, random_state=3), documents.iloc[::-1],
                        TopicSettings())
    pd.testing.assert_frame_equal(a, b)


def test_missing_columns_are_a_clear_error():
    from nlp.topics import TopicModelError

    with pytest.raises(TopicModelError, match="lacks column"):
        build_chunks(pd.DataFrame({"document_id": ["d"], "text": ["t"]}), None, TopicSettings())
