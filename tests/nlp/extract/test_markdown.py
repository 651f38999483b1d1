"""Markdown documents (a static site's pages, minutes kept on a forge): media type from the
name or the headers, import, and extraction through markdown-it-py into paragraphs, tables,
title and date; nothing lost to hostile nesting."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from nlp import media
from nlp.extract import ExtractSettings, extract_file, formats
from nlp.importer import import_folder
from nlp.store import CorpusStore

# The shape of a Jekyll post of a commune's site (front matter, headings, a link, a list, a
# table, a code block and a raw HTML block), French prose written for this test.
POST = """---
layout: post
title: "Compte rendu du conseil municipal du 12 mars 2019"
date: 2019-03-12 20:30:00 +0100
categories:
    - village
---

# Conseil municipal du 12 mars 2019

Présents : **M. Dupont**, Mme Martin, M. Durand.

## 1. Site internet de la commune

Le conseil approuve la refonte du [site internet](https://example.org/site) de la commune
et la mise en ligne des *démarches administratives*.

- Adhésion au service commun informatique de la communauté de communes ;
- Formation des agents au logiciel de gestion du courrier.

| Poste | Montant |
|---|---|
| Site internet | 2 400 € |
| Formation | 800 € |

```
{% include footer.html %}
```

<div class="note">Prochaine séance le 9 avril 2019.</div>
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_markdown_media_type_from_name_or_headers() -> None:
    body = POST.encode("utf-8")
    assert media.detect_media_type(body, url="2019-03-12-conseil.md")[:3:2] == (media.MARKDOWN, "md")
    assert media.detect_media_type(body, url="notes.markdown")[0] == media.MARKDOWN
    # a forge's raw view serves README.md as text/plain
    raw = media.detect_media_type(body, "text/plain; charset=utf-8", url="https://forge.example/raw/main/cr.md")
    assert raw == (media.MARKDOWN, "utf-8", "md")
    assert media.detect_media_type(body, "text/markdown; charset=utf-8", url="https://x.example/cr")[0] == media.MARKDOWN
    assert media.detect_media_type(b"Le conseil.", "text/plain", url="https://x.example/cr.txt")[0] == "text/plain"
    assert media.MARKDOWN in media.DOCUMENT_TYPES


def test_a_markdown_post_gives_its_prose_table_title_and_date(tmp_path: Path) -> None:
    path = _write(tmp_path, "2019-03-12-conseil-municipal.md", POST)
    assert formats.sniff(path) == "md"
    paragraphs, tables, info = formats.read_markdown(path)
    assert paragraphs == [
        "Conseil municipal du 12 mars 2019",
        "Présents : M. Dupont, Mme Martin, M. Durand.",
        "1. Site internet de la commune",
        "Le conseil approuve la refonte du site internet de la commune et la mise en ligne des "
        "démarches administratives.",
        "Adhésion au service commun informatique de la communauté de communes ;",
        "Formation des agents au logiciel de gestion du courrier.",
        "Prochaine séance le 9 avril 2019.",
    ]
    assert tables == [[["Poste", "Montant"], ["Site internet", "2 400 €"], ["Formation", "800 €"]]]
    assert info == {"title": "Compte rendu du conseil municipal du 12 mars 2019",
                    "html_date": "2019-03-12 20:30:00 +0100"}
    out = extract_file(path, ExtractSettings(ocr=False))
    assert out.status == "ok" and out.engine == "markdown" and out.engine_version.startswith("markdown-it-py-")
    assert out.metadata["title"] == info["title"] and out.metadata["date"] == "2019-03-12"
    assert "include" not in out.pages[0].text and "**" not in out.pages[0].text


def test_declared_markdown_without_the_extension_and_html_inside(tmp_path: Path) -> None:
    path = _write(tmp_path, "document", "Texte avec <b>du gras</b> en HTML.\n\n<p>Un bloc HTML.</p>\n")
    assert formats.sniff(path) == "html"  # undeclared, the tags say HTML
    assert formats.sniff(path, "text/markdown; charset=utf-8") == "md"
    out = extract_file(path, ExtractSettings(ocr=False), {"media_type": "text/markdown"})
    assert out.status == "ok" and out.pages[0].paragraphs == ["Texte avec du gras en HTML.", "Un bloc HTML."]
    # the same in UTF-16 with its byte-order mark: still Markdown
    wide = tmp_path / "wide.md"
    wide.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    assert formats.sniff(wide) == "md"


def test_bad_front_matter_is_dropped_and_the_text_kept(tmp_path: Path) -> None:
    alias_bomb = "\n".join(["---", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
                            *(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)),
                            "---", "Le corps du texte reste lisible."])
    for name, text in (("bomb.md", alias_bomb), ("broken.md", "---\ntitle: [non fermé\n---\nLe corps du texte.\n"),
                       ("list.md", "---\n- a\n- b\n---\nLe corps du texte.\n")):
        path = _write(tmp_path, name, text)
        started = time.monotonic()
        paragraphs, _tables, info = formats.read_markdown(path)
        assert time.monotonic() - started < 10
        assert "title" not in info and paragraphs and paragraphs[-1].startswith("Le corps du texte"), (name, paragraphs)


@pytest.mark.parametrize("text", [
    "> " * 50_000 + "un texte cité très profondément\n",
    "".join("  " * i + f"- élément {i}\n" for i in range(400)),
])
def test_nesting_past_the_parser_limit_loses_no_text(tmp_path: Path, text: str) -> None:
    """markdown-it stops descending past its nesting limit and drops what lies below: such a
    file is read as plain text instead (``reader: fallback``)."""
    path = _write(tmp_path, "deep.md", text)
    paragraphs, _tables, info = formats.read_markdown(path)
    joined = " ".join(paragraphs)
    assert info.get("reader") == "fallback"
    assert "profondément" in joined or "élément 399" in joined


def test_binary_named_md_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "image.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert formats.sniff(path) == "unknown"
    assert extract_file(path, ExtractSettings(ocr=False)).status == "unsupported-type"


def test_import_keeps_markdown_pages_as_documents(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    _write(folder / "_posts", "2019-03-12-conseil-municipal.md", POST)
    _write(folder / "pages", "ecole.markdown", "# L'école\n\nL'école accueille 144 élèves.\n")
    (folder / "sitemap.xml").write_text("<?xml version='1.0'?><urlset/>", encoding="utf-8")
    with CorpusStore(tmp_path / "corpus") as store:
        counts = import_folder(store, folder, "couthenans", progress=False)
        assert counts == {"ok": 2, "unsupported-type": 1}
        docs = store.documents()
        assert {d.media_type for d in docs} == {media.MARKDOWN}
        assert all(store.document_path(d.id).suffix == ".md" for d in docs)
