"""Demo corpus: load the fictional metropolises and their source documents.

Stage: none (demo data for ``barometre demo``). Input: the data files under
``nlp/demo/content/`` (``metropoles.json``, one folder per metropolis, ``_commun/`` templates).
Output: :class:`DemoMetropole` and :class:`SourceDoc` objects that :mod:`nlp.demo.site` renders
to HTML pages and PDFs.

Source document format (UTF-8 text, French prose written for the demo)::

    type: deliberation            # deliberation | proces_verbal | strategie | rapport | page_web
    format: pdf                   # pdf | html
    title: Objet of the document
    date: 2021-03-12              # ISO date of the séance / publication
    number: 2021-0045             # deliberations: number (DELIB_ID)
    matiere: 8.9 | Culture        # deliberations: SCDL matière code | name
    rapporteur: Mme ...           # deliberations
    vote: 92 88 85 0 3            # deliberations: effectif, réel, pour, contre, abstention
    budget: 2021 | Budget principal   # optional
    published: linked             # linked (default) | csv-only | unpublished (CSV row, no file)
    ---
    # A heading
    A paragraph, possibly long; blank lines separate blocks.

    - a bullet item
    @vu                           # deliberations: section markers, each line is one item
    Vu la délibération ... ;
    @considerant
    Considérant que ... ;
    @articles
    Approuve ...

``numé-|rique`` inside a word forces a hyphenated line break at that point in the PDF (the
text layer then shows ``numé-`` at a line end and ``rique`` on the next line); HTML drops the
marker. Files under ``_commun/`` are templates filled with ``str.format_map`` from the
metropolis's ``noise`` parameters (realistic non-digital deliberations shared by all).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from nlp.errors import BarometreError

CONTENT_DIR = Path(__file__).resolve().parent / "content"
FICTIONAL_MARK = "Métropole fictive — corpus de démonstration de barometre"
FORCED_BREAK = "-|"
DOC_TYPES = ("deliberation", "proces_verbal", "strategie", "rapport", "page_web")
PUBLISHED = ("linked", "csv-only", "unpublished")


class DemoContentError(BarometreError):
    """A demo content file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Block:
    """One block of a document body: ``kind`` is ``h1``, ``h2``, ``p`` or ``li``."""

    kind: str
    text: str


@dataclass
class SourceDoc:
    """One source document of the demo corpus, before rendering."""

    metropole: str
    stem: str
    doc_type: str
    format: str
    title: str
    date: date
    meta: dict[str, str]
    blocks: list[Block] = field(default_factory=list)
    vu: list[str] = field(default_factory=list)
    considerant: list[str] = field(default_factory=list)
    articles: list[str] = field(default_factory=list)
    source_file: str = ""

    @property
    def published(self) -> str:
        return self.meta.get("published", "linked")


@dataclass(frozen=True)
class DemoMetropole:
    """A fictional metropolis: identity, designed emphasis and the parameters of its pages."""

    slug: str
    name: str
    city: str
    siren: str
    siret: str
    president: str
    address: str
    emphasis: str
    tagline: str
    intro: str
    params: dict[str, str]


def load_metropoles(content_dir: Path = CONTENT_DIR) -> list[DemoMetropole]:
    """Read ``metropoles.json``: the list of fictional metropolises, in display order."""
    path = content_dir / "metropoles.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, entry in enumerate(data):
        try:
            out.append(DemoMetropole(
                slug=entry["slug"], name=entry["name"], city=entry["city"],
                siren=entry["siren"], siret=entry["siret"], president=entry["president"],
                address=entry["address"], emphasis=entry["emphasis"],
                tagline=entry["tagline"], intro=entry["intro"],
                params={k: str(v) for k, v in entry.get("params", {}).items()},
            ))
        except KeyError as exc:
            raise DemoContentError(f"{path}: entry {i}: missing field {exc.args[0]!r}") from exc
    return out


def parse_source(text: str, metropole: str, stem: str, origin: str) -> SourceDoc:
    """Parse one source file (front matter, ``---``, body) into a :class:`SourceDoc`."""
    head, sep, body = text.partition("\n---\n")
    if not sep:
        raise DemoContentError(f"{origin}: no '---' line between front matter and body")
    meta: dict[str, str] = {}
    for line in head.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise DemoContentError(f"{origin}: front matter line without ':': {line!r}")
        meta[key.strip()] = value.strip()
    for key in ("type", "format", "title", "date"):
        if key not in meta:
            raise DemoContentError(f"{origin}: missing front-matter field {key!r}")
    if meta["type"] not in DOC_TYPES:
        raise DemoContentError(f"{origin}: field 'type': {meta['type']!r} not in {DOC_TYPES}")
    if meta["format"] not in ("pdf", "html"):
        raise DemoContentError(f"{origin}: field 'format' must be pdf or html")
    if meta.get("published", "linked") not in PUBLISHED:
        raise DemoContentError(f"{origin}: field 'published' must be one of {PUBLISHED}")
    try:
        when = date.fromisoformat(meta["date"])
    except ValueError as exc:
        raise DemoContentError(f"{origin}: field 'date': {exc}") from exc
    if meta["type"] == "deliberation":
        for key in ("number", "matiere", "vote", "rapporteur"):
            if key not in meta:
                raise DemoContentError(f"{origin}: deliberation without field {key!r}")
        if not re.fullmatch(r"\d\.\d{1,2} \| .+", meta["matiere"]):
            raise DemoContentError(f"{origin}: field 'matiere' must read 'N.N | name'")
        if len(meta["vote"].split()) != 5:
            raise DemoContentError(f"{origin}: field 'vote' needs 5 integers")

    doc = SourceDoc(metropole=metropole, stem=stem, doc_type=meta["type"],
                    format=meta["format"], title=meta["title"], date=when, meta=meta,
                    source_file=origin)
    section = "body"
    for raw in re.split(r"\n\s*\n", body.strip()):
        lines = [ln.strip() for ln in raw.strip().splitlines() if ln.strip()]
        paragraph: list[str] = []
        for line in lines + ["@"]:  # the sentinel flushes the last paragraph
            if line.startswith("@") or line.startswith("#") or line.startswith("- ") \
                    or section != "body":
                if paragraph:
                    doc.blocks.append(Block("p", " ".join(paragraph)))
                    paragraph = []
            if line == "@":
                break
            if line.startswith("@"):
                section = line[1:].strip()
                if section not in ("vu", "considerant", "articles", "body"):
                    raise DemoContentError(f"{origin}: unknown section marker {line!r}")
            elif section != "body":
                # One item per line inside @vu / @considerant / @articles.
                getattr(doc, section).append(line)
            elif line.startswith("## "):
                doc.blocks.append(Block("h2", line[3:].strip()))
            elif line.startswith("# "):
                doc.blocks.append(Block("h1", line[2:].strip()))
            elif line.startswith("- "):
                doc.blocks.append(Block("li", line[2:].strip()))
            else:
                paragraph.append(line)
    return doc


def load_documents(metro: DemoMetropole, content_dir: Path = CONTENT_DIR) -> list[SourceDoc]:
    """Load a metropolis's own documents and its filled-in shared templates, sorted by stem."""
    docs = []
    folder = content_dir / metro.slug
    for path in sorted(folder.glob("*.txt")):
        docs.append(parse_source(path.read_text(encoding="utf-8"), metro.slug, path.stem,
                                 str(path.relative_to(content_dir))))
    values = {"name": metro.name, "city": metro.city, "president": metro.president,
              **metro.params}
    for path in sorted((content_dir / "_commun").glob("*.txt")):
        origin = str(path.relative_to(content_dir))
        try:
            text = path.read_text(encoding="utf-8").format_map(values)
        except KeyError as exc:
            raise DemoContentError(
                f"{origin}: template needs parameter {exc.args[0]!r} for {metro.slug}") from exc
        doc = parse_source(text, metro.slug, "", origin)
        doc.stem = doc.meta.get("stem") or path.stem
        docs.append(doc)
    stems = [d.stem for d in docs]
    if len(set(stems)) != len(stems):
        raise DemoContentError(f"{folder}: duplicate document stems")
    return sorted(docs, key=lambda d: d.stem)


def plain(text: str) -> str:
    """Text without the forced-break marker (for HTML, CSV and titles)."""
    return text.replace(FORCED_BREAK, "")
