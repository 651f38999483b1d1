"""The JSONL contract of ``barometre themes`` (stage: annotate, on any text).

Input: a JSONL file, one ``{"id", "text"}`` object per line. Output: a JSONL file, one
``{"id", "labels", "scores", "hits", ...}`` object per valid input line, in order.

Each line is decoded and parsed on its own (:func:`nlp.io.iter_jsonl`): a bad line (invalid
UTF-8, a lone surrogate, deep nesting, a huge number, no string ``text``) is reported with its
number and skipped, every valid line is written. The output is written atomically: an
interrupted run leaves the previous output (or none), never a partial file or a ``.tmp``.
"""
from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator

from nlp.errors import BarometreError
from nlp.io import atomic_open, iter_jsonl

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5_000_000


def read_items(in_path: Path, counts: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Valid ``{"id", "text"}`` items of a JSONL file. Bad lines are logged with their
    number, counted in ``counts["bad"]`` and listed (first 20) in ``counts["bad_lines"]``."""
    for line in iter_jsonl(in_path):
        counts["lines"] += 1
        problem = line.error
        item = line.value
        if problem is None:
            if not isinstance(item, dict):
                problem = "not a JSON object"
            elif not isinstance(item.get("text"), str):
                problem = "no string 'text' field"
            elif len(item["text"]) > MAX_TEXT_CHARS:
                problem = f"text longer than {MAX_TEXT_CHARS:,} characters"
        if problem is not None:
            logger.warning("%s:%d: %s; line skipped", in_path, line.lineno, problem)
            counts["bad"] += 1
            if len(counts["bad_lines"]) < 20:
                counts["bad_lines"].append(f"line {line.lineno}: {problem}")
            continue
        if "id" not in item:
            item = {**item, "id": f"line{line.lineno}"}
        yield item


def label_items(detector: Any, items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``{"id", "text", ...}`` dicts in, result records out, in order. ``detector`` is a
    :class:`~nlp.annotate.detector.ThemeDetector` (or anything with ``detect(texts)``)."""
    buffered: deque[dict[str, Any]] = deque()

    def texts() -> Iterator[str]:
        for item in items:
            buffered.append(item)
            yield item["text"]

    for det in detector.detect(texts()):
        item = buffered.popleft()
        yield {"id": item.get("id"), **det.to_record()}


def run_themes_jsonl(in_path: Path, out_path: Path, detector: Any) -> dict[str, Any]:
    """Annotate a JSONL file into ``out_path`` (see the module docstring). Returns counts:
    ``lines`` (non-blank input lines), ``written``, ``bad`` and the first ``bad_lines``."""
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():
        raise BarometreError(f"themes: input file {in_path} does not exist")
    counts: dict[str, Any] = {"lines": 0, "written": 0, "bad": 0, "bad_lines": []}
    with atomic_open(out_path, "w") as out:
        for rec in label_items(detector, read_items(in_path, counts)):
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            counts["written"] += 1
    if not counts["bad_lines"]:
        counts.pop("bad_lines")
    return counts
