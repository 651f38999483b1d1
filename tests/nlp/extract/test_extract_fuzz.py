"""Fuzzing the extract inputs: seeded mutations of PDFs, HTML pages, Markdown, DOCX and ODT files run
through ``run_extract`` (the worker pool and its limits, as in production). Every input must end
with a status of :data:`~nlp.schema.EXTRACT_STATUSES` other than ``error`` (``error`` means an
exception escaped a reader: a traceback), within the time limit and the memory cap.

The generators stand for the classes of ../shared/repro (broken page trees, bombs, broken office
XML, deep and wide HTML, odd encodings) plus blind byte mutations. ``BAROMETRE_FUZZ_N`` (inputs
per kind, default 60) and ``BAROMETRE_FUZZ_SEED`` run a longer campaign by hand.
"""
from __future__ import annotations

import io
import os
import random
import re
import time
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import pytest

from nlp.extract import ExtractSettings, run_extract
from pdf_builders import build_pdf
from nlp.schema import EXTRACT_STATUSES

N_PER_KIND = int(os.environ.get("BAROMETRE_FUZZ_N", "60"))
SEED = int(os.environ.get("BAROMETRE_FUZZ_SEED", "20241127"))
SETTINGS = ExtractSettings(ocr=False, timeout_s=30, max_memory_mb=384, workers=2)

WORDS = ("la métropole adopte sa stratégie numérique inclusion des usagers conseil municipal "
         "délibération médiation données ouvertes tiers-lieux accès démarches en ligne").split()


def sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


# --- generic byte mutations ---------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        op = rng.randrange(7)
        i = rng.randrange(len(b))
        if op == 0:  # flip bytes
            for k in range(rng.randint(1, 16)):
                if i + k < len(b):
                    b[i + k] = rng.randrange(256)
        elif op == 1:  # delete a chunk
            del b[i:i + rng.randint(1, 2000)]
        elif op == 2:  # duplicate a chunk
            j = min(len(b), i + rng.randint(1, 2000))
            b[i:i] = b[i:j] * rng.randint(1, 5)
        elif op == 3:  # insert random bytes
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif op == 4:  # truncate
            del b[i:]
        elif op == 5:  # interesting values
            b[i:i] = rng.choice([b"\x00" * 8, b"\xff\xfe", b"\xef\xbb\xbf", b"99999999999", b"-1",
                                 b"<<", b">>", b"(", b")", b"[", b"]", b"<", b">", b"&", b"\\"])
        else:  # swap two chunks
            j = rng.randrange(len(b))
            n = rng.randint(1, 500)
            x, y = bytes(b[i:i + n]), bytes(b[j:j + n])
            b[i:i + n], b[j:j + n] = y, x
    return bytes(b)


# --- PDFs ---------------------------------------------------------------------------------------
def _pdf(objects: dict[int, bytes], trailer_extra: bytes = b"") -> bytes:
    return build_pdf(objects, trailer_extra=trailer_extra)


def _stream(data: bytes, compress: bool) -> bytes:
    if compress:
        data = zlib.compress(data)
        return b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream"
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def structured_pdf(rng: random.Random) -> bytes:
    """A small valid PDF, then one structural mutation of the kinds that broke readers."""
    n_pages = rng.randint(1, 6)
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>",
               3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"}
    kids = []
    for p in range(n_pages):
        page, content = 10 + 2 * p, 11 + 2 * p
        kids.append(page)
        lines = b"".join(b"BT /F1 11 Tf 56 %d Td (%s) Tj ET\n" % (760 - 16 * k, sentence(rng).encode("latin-1", "replace"))
                         for k in range(rng.randint(1, 30)))
        objects[page] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                         b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content)
        objects[content] = _stream(lines, rng.random() < 0.5)
    kid_refs = [b"%d 0 R" % k for k in kids]
    count = n_pages
    kind = rng.randrange(10)
    if kind == 0:  # a loop in the page tree
        kid_refs.insert(rng.randrange(len(kid_refs) + 1), b"2 0 R")
    elif kind == 1:  # the same page listed many times
        kid_refs = [kid_refs[0]] * rng.randint(100, 800)
        count = len(kid_refs)
    elif kind == 2:  # a lying /Count
        count = rng.choice([0, -1, 10**9, 2**31, n_pages * 1000])
    elif kind == 3:  # a kid that is not a page
        kid_refs.append(b"3 0 R")
        count += 1
    elif kind == 4:  # a decompression bomb (capped small: the cap under test is 384 MB)
        bomb = b"BT /F1 11 Tf 56 700 Td (bombe) Tj ET\n" + b" " * rng.randint(1, 20) * 1024 * 1024
        objects[11] = _stream(bomb, True)
    elif kind == 5:  # a wrong /Length
        objects[11] = objects[11].replace(b"/Length ", b"/Length 9", 1)
    elif kind == 6:  # a missing object
        del objects[rng.choice([3, 11, 10])]
    elif kind == 7:  # nested page tree nodes, deep
        depth = rng.randint(50, 3000)
        for d in range(depth):
            objects[1000 + d] = b"<< /Type /Pages /Kids [%d 0 R] /Count 1 /Parent %d 0 R >>" % (
                1001 + d if d + 1 < depth else kids[0], 999 + d if d else 2)
        kid_refs, count = [b"1000 0 R"], 1
    elif kind == 8:  # an unknown filter, or a broken flate stream
        objects[11] = rng.choice([
            b"<< /Length 10 /Filter /NoSuchFilter >>\nstream\n0123456789\nendstream",
            b"<< /Length 10 /Filter /FlateDecode >>\nstream\n0123456789\nendstream",
            b"<< /Length 5 /Filter [/FlateDecode /ASCIIHexDecode /LZWDecode] >>\nstream\nzzzzz\nendstream",
        ])
    # kind 9: left valid
    objects[2] = b"<< /Type /Pages /Kids [" + b" ".join(kid_refs) + b"] /Count %d >>" % count
    return _pdf(objects)


# --- HTML ---------------------------------------------------------------------------------------
def html_page(rng: random.Random) -> bytes:
    paragraphs = "".join(f"<p>{sentence(rng, rng.randint(5, 40))}</p>" for _ in range(rng.randint(1, 8)))
    body = f"<article><h1>{sentence(rng, 5)}</h1>{paragraphs}</article>"
    kind = rng.randrange(10)
    if kind == 0:  # deep nesting
        depth = rng.choice([255, 256, 300, 2047, 2049, 5000, 20000])
        tag = rng.choice(["div", "span", "section", "b"])
        body = f"<{tag}>" * depth + body + f"</{tag}>" * rng.choice([depth, 0, depth // 2])
    elif kind == 1:  # a tag with very many attributes
        n = rng.choice([300, 5000, 50000])
        body = body.replace("<article>", "<article " + " ".join(f"a{i}='v{i}'" for i in range(n)) + ">", 1)
    elif kind == 2:  # tag soup
        soup = ["<p>", "</div>", "<table>", "<td>", "</tr>", "<li>", "<!--", "-->", "<![CDATA[", "]]>",
                "<script>", "</script>", "<style>", "&amp;", "&#0;", "&#x110000;", "&nbsp;", "<br/>", "<"]
        body = "".join(rng.choice(soup) + (sentence(rng, 3) if rng.random() < 0.5 else "") for _ in range(rng.randint(10, 500)))
    elif kind == 3:  # a huge word without spaces, or a huge number of paragraphs
        body = rng.choice(["<p>" + "x" * rng.randint(10**4, 10**6) + "</p>", "<p>a</p>" * rng.randint(1000, 50000)])
    elif kind == 4:  # an unclosed script swallowing the page
        body = "<script>var a = 1;" + body
    page = (f"<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'><title>{sentence(rng, 4)}</title>"
            f"</head><body>{body}</body></html>")
    encoding = rng.choice(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252"])
    data = page.encode(encoding, errors="replace")
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    if kind >= 8:
        data = mutate_bytes(data, rng)
    return data


# --- Markdown -------------------------------------------------------------------------------------
def markdown_page(rng: random.Random) -> bytes:
    """A static site's page: front matter (valid, broken, an alias bomb), headings, lists, a
    table, code; or one of the shapes that stop a Markdown parser (nesting past its limit,
    delimiter storms, a huge table)."""
    front = rng.choice([
        f'---\ntitle: "{sentence(rng, 4)}"\ndate: 2021-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}\n---\n',
        "---\ntitle: [non fermé\n---\n", "---\n- a\n- b\n---\n", "",
        "---\na: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh")) + "---\n",
    ])
    body = f"# {sentence(rng, 5)}\n\n" + "".join(
        rng.choice([f"{sentence(rng, rng.randint(5, 40))}\n\n", f"- {sentence(rng, 6)}\n- **{sentence(rng, 3)}**\n\n",
                    "| a | b |\n|---|---|\n| 1 | 2 |\n\n", f"[{sentence(rng, 3)}](https://example.org)\n\n",
                    "```\ncode\n```\n\n", f"<div>{sentence(rng, 4)}</div>\n\n"])
        for _ in range(rng.randint(1, 12)))
    kind = rng.randrange(10)
    if kind == 0:  # nesting past the parser's limit
        depth = rng.choice([19, 21, 100, 5000, 50000])
        body = rng.choice(["> " * depth + sentence(rng, 8) + "\n",
                           "".join("  " * i + f"- {sentence(rng, 3)}\n" for i in range(min(depth, 2000)))]) + body
    elif kind == 1:  # delimiter storms
        body += rng.choice(["*a " * 50000, "[" * 50000 + "x", "`" * 50000, "<" * 100000, "_" * 100000]) + "\n"
    elif kind == 2:  # a huge table
        body += "| a | b |\n|---|---|\n" + "| x | y |\n" * rng.choice([1000, 50000])
    page = front + body
    encoding = rng.choice(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"])
    data = page.encode(encoding, errors="replace")
    if kind >= 8:
        data = mutate_bytes(data, rng)
    return data


# --- DOCX and ODT ---------------------------------------------------------------------------------
W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
ODT_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"')


def _mutate_xml(xml: str, rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:  # cut short
        return xml[: rng.randrange(len(xml))]
    if kind == 1:  # a stray markup character
        i = rng.randrange(len(xml))
        return xml[:i] + rng.choice(["<", ">", "&", "</x>", "<!--", "]]>", "&undefined;", "\x00"]) + xml[i:]
    if kind == 2:  # an entity bomb
        bomb = ('<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
                + "".join(f'<!ENTITY a{i} "{("&a" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
                + "]>")
        return bomb + xml.replace("</w:t>", "&a9;</w:t>", 1).replace("</text:p>", "&a9;</text:p>", 1)
    if kind == 3:  # deep nesting
        depth = rng.choice([300, 3000, 30000])
        i = xml.index(">", xml.index("<", 1)) + 1
        return xml[:i] + "<x>" * depth + "</x>" * depth + xml[i:]
    if kind == 4:  # an external entity
        return ('<!DOCTYPE d [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
                + xml.replace("</w:t>", "&ext;</w:t>", 1).replace("</text:p>", "&ext;</text:p>", 1))
    if kind == 5:  # another encoding declared than used
        return '<?xml version="1.0" encoding="UTF-16"?>' + xml
    return xml  # left valid


def office_file(rng: random.Random, kind: str) -> bytes:
    paragraphs = [sentence(rng, rng.randint(4, 30)) for _ in range(rng.randint(1, 10))]
    if kind == "docx":
        xml = (f"<w:document {W_NS}><w:body>"
               + "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
               + "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>A</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:body></w:document>")
        main, first = "word/document.xml", ("[Content_Types].xml", "<Types/>")
    else:
        xml = (f"<office:document-content {ODT_NS}><office:body><office:text>"
               + "".join(f"<text:p>{p}<text:s/></text:p>" for p in paragraphs)
               + "</office:text></office:body></office:document-content>")
        main, first = "content.xml", ("mimetype", "application/vnd.oasis.opendocument.text")
    xml = _mutate_xml(xml, rng)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as z:
        z.writestr(zipfile.ZipInfo(first[0]), first[1])
        if rng.random() > 0.05:
            z.writestr(main, xml.encode("utf-8", errors="surrogatepass"))
        if rng.random() < 0.3:  # metadata, possibly broken too
            meta = "docProps/core.xml" if kind == "docx" else "meta.xml"
            z.writestr(meta, _mutate_xml('<m xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Titre</dc:title></m>', rng))
        if rng.random() < 0.1:  # a big member: compressed zeros
            z.writestr("big.bin", b"\0" * rng.randint(1, 30) * 1024 * 1024)
    data = buffer.getvalue()
    if rng.random() < 0.25:
        data = mutate_bytes(data, rng)
    return data


GENERATORS: dict[str, tuple[str, Callable[[random.Random], bytes]]] = {
    "pdf-structure": (".pdf", structured_pdf),
    "pdf-bytes": (".pdf", lambda rng: mutate_bytes(structured_pdf(random.Random(rng.random())), rng)),
    "html": (".html", html_page),
    "markdown": (".md", markdown_page),
    "docx": (".docx", lambda rng: office_file(rng, "docx")),
    "odt": (".odt", lambda rng: office_file(rng, "odt")),
}


def generate(folder: Path, n_per_kind: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, (suffix, make) in GENERATORS.items():
        rng = random.Random(f"{seed}-{kind}")
        for i in range(n_per_kind):
            path = folder / f"{kind}-{i:04d}{suffix}"
            path.write_bytes(make(rng))
            out.append(path)
    return out


@pytest.mark.timeout(600)
def test_fuzzed_inputs_all_end_with_a_status(tmp_path: Path, store_with) -> None:
    files = generate(tmp_path / "inputs", N_PER_KIND, SEED)
    store = store_with(tmp_path, files)
    names = {}
    for doc in store.documents():
        names[doc.id] = [Path(s["url"]).name for s in store.sources(doc.id)]
    start = time.monotonic()
    counts = run_extract(store, SETTINGS, progress=False)
    elapsed = time.monotonic() - start
    rows = {r["document_id"]: r for r in store.latest_extractions()}
    assert set(rows) == set(names)  # every input has its status
    failures = []
    for doc_id, row in rows.items():
        if row["status"] not in EXTRACT_STATUSES or row["status"] == "error":
            failures.append((names[doc_id], row["status"], row["error"]))
        assert row["seconds"] <= SETTINGS.timeout_s + 5, (names[doc_id], row["seconds"])
        if row["error"]:
            assert "\n" not in row["error"] and "Traceback" not in row["error"], names[doc_id]
    assert not failures, failures[:10]
    slowest = sorted(rows.values(), key=lambda r: -r["seconds"])[:8]
    print("\nslowest:", [(names[r["document_id"]][0], r["status"], r["seconds"]) for r in slowest])
    print(f"\n{len(files)} fuzzed inputs ({len(rows)} distinct) in {elapsed:.1f} s: {dict(sorted(counts.items()))}")
    # Text survives where the mutation left it: most valid-by-construction inputs are read.
    assert counts.get("ok", 0) + counts.get("not-french", 0) >= len(rows) // 4


def test_generators_are_seeded(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", 3, SEED)
    b = generate(tmp_path / "b", 3, SEED)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert re.match(r"pdf-structure-0000\.pdf", a[0].name)


@pytest.mark.timeout(600)
def test_fuzzed_pdfs_under_pdfplumber(tmp_path: Path, store_with) -> None:
    """The same PDF generators through the other engine (fewer inputs, 20 pages each at most:
    pdfminer reads ~20 pages/s)."""
    rng = random.Random(f"{SEED}-plumber")
    folder = tmp_path / "inputs"
    folder.mkdir()
    files = []
    for i in range(max(10, N_PER_KIND // 3)):
        data = structured_pdf(rng)
        if i % 2:
            data = mutate_bytes(data, rng)
        path = folder / f"plumber-{i:04d}.pdf"
        path.write_bytes(data)
        files.append(path)
    store = store_with(tmp_path, files)
    settings = ExtractSettings(engine="pdfplumber", ocr=False, timeout_s=60, max_memory_mb=384,
                               workers=2, max_pages=20)
    run_extract(store, settings, progress=False)
    rows = store.latest_extractions()
    assert len(rows) == len(store.documents())
    bad = [(r["status"], r["error"]) for r in rows if r["status"] not in EXTRACT_STATUSES or r["status"] == "error"]
    assert not bad, bad[:10]
