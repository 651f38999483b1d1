"""OCR of pages without a text layer: PDFium renders, the Tesseract CLI reads.

Stage: extract. Input: a PDF path and the numbers of its pages that have no text layer.
Output: :class:`~nlp.extract.engines.RawPage` objects whose lines come from Tesseract's TSV
output (word boxes grouped by block/paragraph/line), ``method="ocr"`` and the mean word
confidence (0-100) as ``ocr_confidence``; cleaning then treats them like any other page.

Tesseract runs as a subprocess (``tesseract IMG stdout -l fra tsv``): no Python binding to
install, and a page that hangs it is bounded by the worker's time limit like any parser.
Install it on Debian/Ubuntu with ``apt-get install tesseract-ocr tesseract-ocr-fra``.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from nlp.extract.engines import ExtractFailure, Fragment, RawLine, RawPage
from nlp.extract.limits import die_with_parent_preexec

log = logging.getLogger(__name__)

OCR_DPI = 300
INSTALL_HINT = (
    "install Tesseract with its French model (apt-get install tesseract-ocr tesseract-ocr-fra) "
    "and run with --ocr"
)


def tesseract_path() -> str | None:
    """Path of the ``tesseract`` executable, or None when it is not on PATH."""
    return shutil.which("tesseract")


def tesseract_version() -> str | None:
    """``tesseract 5.3.0`` or None."""
    exe = tesseract_path()
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].strip() if first else None


def tesseract_languages() -> set[str]:
    exe = tesseract_path()
    if not exe:
        return set()
    out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30)
    return {x.strip() for x in out.stdout.splitlines()[1:] if x.strip()}


def ocr_pages(path: Path, numbers: list[int], lang: str = "fra", dpi: int = OCR_DPI) -> list[RawPage]:
    """OCR the 1-based pages ``numbers`` of the PDF at ``path``.

    Raises :class:`ExtractFailure` (``no-text-layer``) when Tesseract or its language model is
    missing, with the message saying how to install them.
    """
    import pypdfium2

    exe = tesseract_path()
    if not exe:
        raise ExtractFailure("no-text-layer", f"pages without a text layer; {INSTALL_HINT}")
    pdf = pypdfium2.PdfDocument(str(path))
    out = []
    try:
        with tempfile.TemporaryDirectory(prefix="barometre-ocr-") as tmp:
            for number in numbers:
                page = pdf[number - 1]
                try:
                    width, height = page.get_size()
                    image = page.render(scale=dpi / 72, grayscale=True).to_pil()
                finally:
                    page.close()
                png = os.path.join(tmp, f"p{number}.png")
                image.save(png)
                out.append(_tesseract_page(exe, png, number, width, height, dpi / 72, lang))
    finally:
        pdf.close()
    return out


def _tesseract_page(exe: str, png: str, number: int, width: float, height: float,
                    scale: float, lang: str) -> RawPage:
    env = dict(os.environ, OMP_THREAD_LIMIT="1")  # one core per worker: workers parallelise
    # Tesseract dies with the worker that started it (a killed `barometre extract` leaves
    # nothing behind); a time limit kills the worker's whole process group anyway.
    proc = subprocess.run(
        [exe, png, "stdout", "-l", lang, "--psm", "3", "tsv"],
        capture_output=True, text=True, env=env, preexec_fn=die_with_parent_preexec,
    )
    if proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()[-1:] or ["tesseract failed"]
        if "Failed loading language" in proc.stderr or "Error opening data file" in proc.stderr:
            raise ExtractFailure(
                "no-text-layer",
                f"Tesseract has no '{lang}' model; {INSTALL_HINT}",
            )
        raise ExtractFailure("error", f"tesseract failed on page {number}: {msg[0]}")
    return parse_tsv(proc.stdout, number, width, height, scale)


def parse_tsv(tsv: str, number: int, width: float, height: float, scale: float) -> RawPage:
    """Turn Tesseract TSV (level 5 = words) into a RawPage with one fragment per line."""
    lines: dict[tuple[int, int, int], list[tuple[str, float, float, float, float, float]]] = {}
    reader = csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in reader:
        if row.get("level") != "5":
            continue
        text = (row.get("text") or "").strip()
        if not text:
            continue
        try:
            conf = float(row["conf"])
            left, top = float(row["left"]) / scale, float(row["top"]) / scale
            w, h = float(row["width"]) / scale, float(row["height"]) / scale
        except (KeyError, TypeError, ValueError):
            continue
        key = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
        lines.setdefault(key, []).append((text, conf, left, top, left + w, top + h))
    page = RawPage(number=number, width=width, height=height, method="ocr")
    confs = []
    for key in sorted(lines):
        words = lines[key]
        confs.extend(c for _, c, *_ in words if c >= 0)
        page.lines.append(RawLine([Fragment(
            " ".join(w[0] for w in words),
            min(w[2] for w in words), min(w[3] for w in words),
            max(w[4] for w in words), max(w[5] for w in words),
        )]))
    # Lines in reading order: Tesseract numbers blocks in its own reading order already.
    page.chars = sum(len(ln.text) for ln in page.lines)
    page.ocr_confidence = round(sum(confs) / len(confs), 1) if confs else 0.0
    return page
