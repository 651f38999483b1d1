"""BERTopic's interactive figures (stage: topics).

Input: the fitted model, the words per metropolis and per year (BERTopic's frames), the
chunks' texts and embeddings. Output: :func:`compute_figures` returns plotly figures by name
(and why any could not be built) and writes nothing; :func:`write_figures` writes each as a
self-contained HTML file (plotly.js inlined, so it opens offline) under ``outputs/topics/``,
which the report links to.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from nlp.io import atomic_write
from nlp.topics.settings import OUTLIER, TopicSettings

logger = logging.getLogger(__name__)


def _documents_figure(model: Any, texts: list[str], embeddings: np.ndarray,
                      settings: TopicSettings) -> Any:
    from umap import UMAP

    from nlp.topics.model import ExactUMAP

    reducer = ExactUMAP(UMAP(n_neighbors=min(15, len(texts) - 1), n_components=2, min_dist=0.0,
                             metric="cosine", random_state=settings.seed), None, settings.seed)
    reduced = reducer.fit(embeddings).embedding_
    hover = [t if len(t) < 200 else t[:200] + "…" for t in texts]
    return model.visualize_documents(hover, reduced_embeddings=reduced, custom_labels=True,
                                     hide_annotations=False)


def compute_figures(model: Any, texts: list[str], embeddings: np.ndarray,
                    per_class: pd.DataFrame | None, per_year: pd.DataFrame | None,
                    settings: TopicSettings) -> tuple[dict[str, Any], dict[str, str]]:
    """Figures by name (``barchart``, ``topics``, ``hierarchy``, ``heatmap``,
    ``topics_per_metropole``, ``topics_over_time`` when there are several years, ``documents``
    up to ``documents_figure_max`` chunks), and ``{name: reason}`` for those that failed: a
    figure is optional, a failing one is skipped and said."""
    n_topics = len([t for t in model.get_topics() if t != OUTLIER])
    builders: dict[str, Callable[[], Any]] = {
        "barchart": lambda: model.visualize_barchart(top_n_topics=min(16, n_topics), n_words=8,
                                                      custom_labels=True),
        "topics": lambda: model.visualize_topics(custom_labels=True),
        "hierarchy": lambda: model.visualize_hierarchy(custom_labels=True),
        "heatmap": lambda: model.visualize_heatmap(custom_labels=True),
    }
    if per_class is not None and not per_class.empty:
        builders["topics_per_metropole"] = lambda: model.visualize_topics_per_class(
            per_class, top_n_topics=min(12, n_topics), custom_labels=True)
    if per_year is not None and not per_year.empty and per_year["Timestamp"].nunique() > 1:
        builders["topics_over_time"] = lambda: model.visualize_topics_over_time(
            per_year, top_n_topics=min(12, n_topics), custom_labels=True)
    if len(texts) <= settings.documents_figure_max:
        builders["documents"] = lambda: _documents_figure(model, texts, embeddings, settings)
    figures, skipped = {}, {}
    for name, build in builders.items():
        try:
            figures[name] = build()
        except Exception as exc:  # noqa: BLE001 - a figure is optional; say why it is missing
            logger.warning("topic figure %s skipped: %s", name, exc)
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return figures, skipped


def write_figures(figures: dict[str, Any], directory: Path) -> list[str]:
    """Write each figure as ``<directory>/<name>.html`` (plotly.js inlined), removing figures of
    an earlier run that this one did not make; returns the paths."""
    directory = Path(directory)
    if directory.is_dir():
        for old in directory.glob("*.html"):
            if old.stem not in figures:
                old.unlink()
    written = []
    for name, fig in figures.items():
        path = Path(directory) / f"{name}.html"
        atomic_write(path, fig.to_html(include_plotlyjs=True, full_html=True))
        written.append(str(path))
    return written
