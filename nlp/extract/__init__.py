"""Stage extract: documents of the corpus -> clean text, tables and metadata per page.

Input: files of the corpus store (PDF, HTML, DOCX, ODT, Markdown, TXT) and what the store knows of them.
Output: one :class:`nlp.schema.Extraction` per document, saved through the store.

Modules: :mod:`~nlp.extract.engines` (pdfium / pdfplumber behind ``extract(path) -> pages``),
:mod:`~nlp.extract.ocr` (Tesseract), :mod:`~nlp.extract.clean` (headers, stamps, margins,
hyphenation, paragraphs; :data:`CLEANING_VERSION`), :mod:`~nlp.extract.formats` (HTML via
trafilatura, DOCX, ODT, Markdown, TXT), :mod:`~nlp.extract.metadata` (language, type, date, act number),
:mod:`~nlp.extract.core` (:func:`extract_file`, :func:`text_command`),
:mod:`~nlp.extract.worker` (:func:`run_extract`: incremental, killable worker processes;
:func:`extract_isolated`: one file under the same limits) and :mod:`~nlp.extract.limits`
(workers that die with their parent, memory caps).
"""
from nlp.extract.clean import CLEANING_VERSION
from nlp.extract.core import (
    DEFAULT_PDF_ENGINE,
    ENGINE_CHOICES,
    ExtractSettings,
    engine_key,
    extract_file,
    planned_key,
    text_command,
)
from nlp.extract.worker import extract_isolated, run_extract

__all__ = [
    "CLEANING_VERSION",
    "DEFAULT_PDF_ENGINE",
    "ENGINE_CHOICES",
    "ExtractSettings",
    "engine_key",
    "extract_file",
    "extract_isolated",
    "planned_key",
    "run_extract",
    "text_command",
]
