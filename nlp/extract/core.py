"""extract_file: one document and the settings in, one :class:`~nlp.schema.Extraction` out.

Stage: extract. Input: a local file (PDF, HTML, DOCX, ODT, Markdown, TXT), :class:`ExtractSettings`,
and optional ``hints`` from the store (url, page_title, media_type, last_modified, SCDL fields).
Output: an :class:`~nlp.schema.Extraction` with cleaned pages, tables, metadata and a status
slug; it never raises for a bad document (the status says what went wrong).

Statuses set here: ``ok``; ``ocr`` (text, some pages read by OCR); ``no-text-layer`` (scanned
and OCR off or unavailable: the message says how to enable it); ``empty`` (zero bytes or no
text at all); ``pdf-encrypted``; ``pdf-malformed``; ``html-as-pdf`` (a file served as a PDF
that is an HTML page: its text is extracted as HTML so that one can see what it was — usually
an error or login page — but the status keeps it out of the analysis); ``not-french`` (text
kept, language flagged); ``unsupported-type``; ``error`` (a bug: the message has the
exception). ``timeout`` and ``memory`` are set by the worker that runs this function
(:mod:`nlp.extract.worker`).

The engine recorded for a PDF is the one actually used (``pdfium`` or ``pdfplumber``), so that
``auto`` and an explicit choice of the same engine share their stored results.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nlp.config import extract_value_problem
from nlp.errors import BarometreError, ConfigError
from nlp.extract import clean, formats, metadata, ocr
from nlp.extract.engines import ENGINES, ExtractFailure, make_engine
from nlp.schema import Extraction, Page, Table

log = logging.getLogger(__name__)

# Chosen by measurement (bench/extract_quality.py, bench/bench_extract.py): pdfium after
# cleaning scores at least as well as pdfplumber on the reference texts, ~40x faster.
DEFAULT_PDF_ENGINE = "pdfium"
ENGINE_CHOICES = ("auto", *ENGINES)
# A document whose language is not French with at least this confidence is flagged.
NOT_FRENCH_MIN_CONFIDENCE = 0.5
# Bump when formats.read_html/read_docx/read_odt/read_markdown/read_txt change their output:
# part of the key of non-PDF extractions (HTML and Markdown: with their parser's version).
FORMAT_READERS_VERSION = "2"


@dataclass
class ExtractSettings:
    """Settings of the extract stage (one object per run, passed explicitly).

    - ``engine``: ``auto`` (pdfium, chosen by measurement), ``pdfium`` or ``pdfplumber``;
    - ``ocr``: True/False, or None for "on when the tesseract executable is found";
    - ``ocr_lang``: Tesseract language model(s), e.g. ``fra`` or ``fra+eng``;
    - ``timeout_s`` / ``max_memory_mb``: per-document limits enforced by the worker;
    - ``workers``: worker processes; ``force``: redo stored extractions;
    - ``max_pages``: read at most this many pages of each PDF (None: all);
    - ``ocr_max_pages``: OCR at most this many pages of a document (None: all).
    """

    engine: str = "auto"
    ocr: bool | None = None
    ocr_lang: str = "fra"
    timeout_s: float = 120.0
    max_memory_mb: int = 2048
    workers: int = 1
    force: bool = False
    max_pages: int | None = None
    ocr_max_pages: int | None = None

    def __post_init__(self) -> None:
        # The same checks as a config file's extract section (nlp.config), for values that
        # come from flags (--timeout nan) or from Python.
        for f in fields(self):
            problem = extract_value_problem(f.name, getattr(self, f.name))
            if problem:
                raise ConfigError(f"extract setting '{f.name}': {problem} (got {getattr(self, f.name)!r})")
        if self.engine not in ENGINE_CHOICES:
            raise ConfigError(
                f"unknown extraction engine {self.engine!r}: choose among {', '.join(ENGINE_CHOICES)}"
            )
        self.max_memory_mb = int(self.max_memory_mb)
        self.workers = int(self.workers)
        self.timeout_s = float(self.timeout_s)

    def ocr_enabled(self) -> bool:
        """Whether pages without a text layer are OCR'd in this run."""
        return bool(ocr.tesseract_path()) if self.ocr is None else bool(self.ocr)


def pdf_engine_name(settings: ExtractSettings) -> str:
    return DEFAULT_PDF_ENGINE if settings.engine == "auto" else settings.engine


_VERSION_CACHE: dict[str, str] = {}


def engine_key(kind: str, settings: ExtractSettings) -> tuple[str, str]:
    """``(engine, engine_version)`` that will extract a file of ``kind`` (from
    :func:`formats.sniff`): part of the key under which an extraction is stored."""
    if kind == "pdf":
        name = pdf_engine_name(settings)
        if name not in _VERSION_CACHE:  # versions are constants of the installed packages
            _VERSION_CACHE[name] = make_engine(name).version
        return name, _VERSION_CACHE[name]
    if kind == "html":
        import trafilatura

        return "trafilatura", f"trafilatura-{trafilatura.__version__}+readers-{FORMAT_READERS_VERSION}"
    if kind == "md":
        import markdown_it

        return "markdown", f"markdown-it-py-{markdown_it.__version__}+readers-{FORMAT_READERS_VERSION}"
    if kind in ("docx", "odt", "txt"):
        return kind, FORMAT_READERS_VERSION
    return "none", "0"


def _result(status: str, engine: tuple[str, str], error: str | None = None, **kw: Any) -> Extraction:
    return Extraction(
        status=status, engine=engine[0], engine_version=engine[1],
        cleaning_version=clean.CLEANING_VERSION, error=error, **kw,
    )


def _declared_pdf(path: Path, hints: dict[str, Any]) -> bool:
    return "pdf" in str(hints.get("media_type", "")).lower() or path.suffix.lower() == ".pdf"


def planned_key(path: Path, settings: ExtractSettings, hints: dict[str, Any] | None = None) -> tuple[str, tuple[str, str]]:
    """``(kind, (engine, engine_version))`` for a file, read from its first bytes only.

    :func:`extract_file` records exactly this engine and version, so a caller can look the
    extraction up in the store before running it (the incremental key).
    """
    hints = hints or {}
    kind = formats.sniff(path, hints.get("media_type"))
    declared_pdf = _declared_pdf(path, hints)
    if kind == "empty":
        return kind, engine_key("pdf" if declared_pdf else "txt", settings)
    if kind == "html" and declared_pdf:
        return kind, engine_key("pdf", settings)
    return kind, engine_key(kind, settings)


def extract_file(path: Path, settings: ExtractSettings, hints: dict[str, Any] | None = None) -> Extraction:
    """Extract one document. Never raises for a bad document: the status says what happened.

    Input: the file, the settings, ``hints`` (what the store knows: url, page_title,
    media_type, last_modified, SCDL fields). Output: the :class:`Extraction`.
    """
    start = time.perf_counter()
    path = Path(path)
    hints = dict(hints or {})
    try:
        kind, key = planned_key(path, settings, hints)
    except OSError as exc:
        return _result("error", ("none", "0"), f"cannot read {path}: {exc}")
    if kind == "empty":
        out = _result("empty", key, "zero-byte file")
    elif kind == "pdf":
        out = _extract_pdf(path, settings, hints)
    elif kind in ("html", "docx", "odt", "md", "txt"):
        try:
            out = _extract_other(path, kind, engine_key(kind, settings), hints)
        except ExtractFailure as exc:
            out = _result(exc.status, key, exc.message)
        if kind == "html" and _declared_pdf(path, hints):
            out.status = "html-as-pdf"
            out.error = "the file announced as a PDF is an HTML page (text extracted as HTML)"
        out.engine, out.engine_version = key
    else:
        out = _result("unsupported-type", key, f"unrecognised file type ({path.suffix or 'no extension'})")
    if out.error:
        out.error = one_line(out.error)
    out.seconds = round(time.perf_counter() - start, 4)
    return out


def one_line(message: str, limit: int = 500) -> str:
    """A message as one line of bounded length (parsers' messages may span lines)."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _extract_other(path: Path, kind: str, key: tuple[str, str], hints: dict[str, Any]) -> Extraction:
    reader = {"html": lambda p: formats.read_html(p, hints.get("url")), "docx": formats.read_docx,
              "odt": formats.read_odt, "md": formats.read_markdown, "txt": formats.read_txt}[kind]
    paragraphs, tables, info = reader(path)
    text = "\n\n".join(paragraphs)
    page = Page(number=1, text=text, paragraphs=paragraphs)
    meta = metadata.document_metadata(
        text[:5000], text, {**hints, **({"html_date": info["html_date"]} if "html_date" in info else {})},
        is_html=kind == "html", title=info.get("title"),
    )
    status = "ok" if text.strip() else "empty"
    out = _result(status, key, None if text.strip() else "no text found", pages=[page],
                  tables=[Table(page=1, rows=r) for r in tables], metadata=meta)
    _flag_language(out)
    return out


def _flag_language(out: Extraction) -> None:
    lang = out.metadata.get("language")
    if (out.status in ("ok", "ocr") and lang and lang != "fr"
            and out.metadata.get("language_confidence", 0) >= NOT_FRENCH_MIN_CONFIDENCE):
        out.status = "not-french"
        out.error = f"language detected: {lang} (confidence {out.metadata['language_confidence']})"


def _extract_pdf(path: Path, settings: ExtractSettings, hints: dict[str, Any]) -> Extraction:
    key = engine_key("pdf", settings)
    engine = make_engine(key[0])
    try:
        raw = engine.extract(path, settings.max_pages)
    except ExtractFailure as exc:
        return _result(exc.status, key, exc.message)

    blank = [p.number for p in raw if not p.has_text_layer and not p.unreadable]
    ocr_note = None
    if blank:
        todo = blank[: settings.ocr_max_pages] if settings.ocr_max_pages else blank
        if settings.ocr_enabled():
            try:
                by_number = {p.number: p for p in ocr.ocr_pages(path, todo, settings.ocr_lang)}
                raw = [by_number.get(p.number, p) for p in raw]
            except ExtractFailure as exc:
                ocr_note = exc.message
        elif settings.ocr is False:
            ocr_note = "pages without a text layer and OCR disabled: run with --ocr"
        else:
            ocr_note = f"pages without a text layer; {ocr.INSTALL_HINT}"

    pages_clean = clean.clean_pages(raw)
    pages = [Page(number=p.number, text=p.text, paragraphs=p.paragraphs, method=p.method,
                  ocr_confidence=p.ocr_confidence) for p in pages_clean]
    tables = [Table(page=p.number, rows=rows) for p in pages_clean for rows in p.tables]
    text = "\n\n".join(p.text for p in pages if p.text)

    raw_head = "\n".join(ln.text for p in raw[:2] for ln in p.lines)
    meta = metadata.document_metadata(raw_head, text, hints)
    removed: dict[str, int] = {}
    for p in pages_clean:
        for k, v in p.removed.items():
            removed[k] = removed.get(k, 0) + v
    meta["removed"] = removed
    ocr_pages = [p.number for p in pages if p.method == "ocr"]
    if ocr_pages:
        confs = [p.ocr_confidence for p in pages if p.ocr_confidence is not None]
        meta["ocr_pages"] = ocr_pages
        meta["ocr_confidence"] = round(sum(confs) / len(confs), 1) if confs else None
    still_blank = [p.number for p in raw if p.method != "ocr" and not p.has_text_layer and not p.unreadable]
    if still_blank:
        meta["pages_without_text"] = still_blank
    unreadable = [p.number for p in raw if p.unreadable]
    unreadable_note = None
    if unreadable:
        meta["pages_unreadable"] = unreadable
        unreadable_note = (f"{len(unreadable)} of {len(raw)} pages could not be loaded (broken page "
                           f"tree): {', '.join(map(str, unreadable[:10]))}{' …' if len(unreadable) > 10 else ''}")

    if not text.strip():
        if unreadable:
            return _result("pdf-malformed", key, unreadable_note, pages=pages, metadata=meta)
        if still_blank:
            out = _result("no-text-layer", key, ocr_note or "no text layer", pages=pages, metadata=meta)
        else:
            out = _result("empty", key, "the PDF holds no text", pages=pages, metadata=meta)
        return out
    status = "ocr" if ocr_pages else "ok"
    error = "; ".join(n for n in (unreadable_note, ocr_note if still_blank else None) if n) or None
    out = _result(status, key, error, pages=pages, tables=tables, metadata=meta)
    _flag_language(out)
    return out


def text_command(path: Path, engine: str = "auto", as_json: bool = False, ocr: bool | None = None,
                 settings: ExtractSettings | None = None) -> str:
    """``barometre text FILE``: the cleaned text of one local file, or with ``as_json`` a JSON
    object with its pages, tables, status, engine and metadata. Never touches a corpus.

    Runs like one document of ``barometre extract``: in a worker process under the same time
    and memory limits (``settings``, the extract settings of the run: ``timeout_s``,
    ``max_memory_mb``, ``max_pages``, ``ocr_lang``…; the defaults otherwise), so that a file
    that hangs or swells ends with the status ``timeout`` or ``memory``. ``engine`` and
    ``ocr`` override what ``settings`` says.

    Raises :class:`BarometreError` when the file does not exist, and in plain-text mode when
    the file yields no text (the message carries the status: ``pdf-encrypted``, ``timeout``…).
    """
    from dataclasses import replace

    from nlp.extract.worker import extract_isolated

    path = Path(path)
    if not path.is_file():
        raise BarometreError(f"no such file: {path}")
    settings = replace(settings or ExtractSettings(), engine=engine, ocr=ocr, workers=1)
    result = extract_isolated(path, settings)
    if as_json:
        return json.dumps(result.to_dict(), ensure_ascii=False, indent=2)
    if not result.text:
        # Plain-text mode has nowhere else to say why there is no text.
        raise BarometreError(f"{path}: {result.status}: {result.error or 'no text'}")
    if result.status not in ("ok", "ocr"):
        log.warning("%s: %s (%s)", path, result.status, result.error)
    return result.text
