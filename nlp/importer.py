"""Import stage: add a folder of local documents (PDF, HTML, DOCX/ODT, Markdown, TXT) for a metropolis.

Researchers often already hold documents; this puts them in the same corpus store as crawled
ones, with a ``file://`` source URL and ``origin = 'import'`` so their provenance stays visible.

Input: a corpus store, a folder, a metropolis slug. Output: counts per status
(``ok`` = new document, ``duplicate`` = bytes already stored, ``unsupported-type``,
``too-large``, ``empty``, ``error``), and a row in ``fetches`` for every file tried.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from nlp import media
from nlp.errors import BarometreError
from nlp.store import CorpusStore, utcnow

log = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def import_folder(
    store: CorpusStore,
    folder: Path,
    metropole: str,
    *,
    recursive: bool = True,
    max_file_bytes: int = 200 * 1024 * 1024,
    progress: bool = True,
) -> dict[str, int]:
    """Store every supported file under ``folder`` as a document of ``metropole``.

    Files are read one at a time (memory stays bounded by ``max_file_bytes``); a bad file is
    recorded and skipped, the others go on.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BarometreError(f"import: {folder} is not a folder")
    if not SLUG_RE.match(metropole):
        raise BarometreError(f"import: metropole slug {metropole!r} must match [a-z0-9-]+")
    pattern = "**/*" if recursive else "*"
    paths = sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))
    counts: Counter[str] = Counter()
    for path in tqdm(paths, desc="import", unit="file", disable=not progress):
        url = path.resolve().as_uri()
        status, doc_id, error = _import_one(store, path, metropole, url, max_file_bytes)
        counts[status] += 1
        store.record_fetch(metropole, url, status if status != "duplicate" else "ok",
                           kind="document", document_id=doc_id, error=error,
                           nbytes=path.stat().st_size)
        if error:
            log.warning("import %s: %s (%s)", path, status, error)
    return dict(counts)


def _import_one(store: CorpusStore, path: Path, metropole: str, url: str,
                max_file_bytes: int) -> tuple[str, str | None, str | None]:
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty", None, "zero-byte file"
        if size > max_file_bytes:
            return "too-large", None, f"{size} bytes > limit {max_file_bytes}"
        data = path.read_bytes()
    except OSError as exc:
        return "error", None, f"cannot read: {exc.strerror}"
    # The crawler's detection (bytes first, then name): one rule for both ways in.
    media_type, _charset, ext = media.detect_media_type(data, url=path.name)
    if media_type not in media.DOCUMENT_TYPES and not media.is_html(media_type):
        return "unsupported-type", None, f"media type {media_type}"
    doc_id, created = store.add_document(data, media_type, ext)
    store.add_source(
        doc_id, metropole, url, page_title=path.stem, fetched_at=utcnow(), origin="import",
        metadata={"filename": path.name},
    )
    return ("ok" if created else "duplicate"), doc_id, None
