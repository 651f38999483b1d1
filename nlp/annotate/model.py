"""The trained theme model: per-label linear classifiers with calibrated probabilities and
tuned thresholds (stage: annotate).

Input: feature rows (:class:`~nlp.annotate.features.FeatureSpace`). Output, per paragraph and
label: a calibrated probability (Platt scaling fitted on out-of-fold scores) and a decision
(probability ≥ the label's threshold, tuned inside the training folds, and lexicon evidence
for the label in the paragraph: an in-context hit of the theme, any hit for ``numerique``),
closed upward (a sub-label implies its theme, a theme implies ``numerique``).

Saved as a folder that loads without executing code: ``model.json`` (labels, vocabulary,
thresholds, provenance, validation figures) and ``weights.npz`` (plain float arrays, read
with ``allow_pickle=False``). The version is the model name plus the hash of both files'
content, and is recorded with every label the model produces.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from nlp.annotate.features import FeatureSpace, evidence_mask
from nlp.errors import BarometreError
from nlp.io import atomic_write

logger = logging.getLogger(__name__)

PACKAGED_MODEL_DIR = Path(__file__).with_name("model")
MODEL_FORMAT = 1
DIGITAL = "numerique"


@dataclass
class ThemeModel:
    """Linear scores ``X @ coef.T + intercept`` → calibrated probabilities
    ``sigmoid(a·z + b)`` → decisions ``p ≥ threshold``. ``meta`` holds the provenance
    (training data hash, seed, lexicon fingerprint, library versions) and validation figures."""

    labels: list[str]
    space: FeatureSpace
    coef: np.ndarray
    intercept: np.ndarray
    platt: np.ndarray
    thresholds: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unsaved"))

    def decision(self, X: sparse.spmatrix) -> np.ndarray:
        return np.asarray(X @ self.coef.T, dtype=np.float64) + self.intercept

    def proba(self, X: sparse.spmatrix) -> np.ndarray:
        """Calibrated probability per row and label, shape ``(n, len(labels))``."""
        z = self.decision(X)
        return 1.0 / (1.0 + np.exp(-(self.platt[:, 0] * z + self.platt[:, 1])))

    @property
    def evidence_guard(self) -> bool:
        """Whether a label also needs lexicon evidence (:func:`~nlp.annotate.features.evidence_mask`);
        models trained before the guard existed decide on the threshold alone."""
        return bool(self.meta.get("config", {}).get("evidence_guard", False))

    def supported(self, lexicons: list[dict[str, float]]) -> np.ndarray | None:
        """The evidence :meth:`decide` needs for paragraphs with these lexicon counts
        (``RawFeatures.lexicon``): their :func:`evidence_mask`, or None for a model without
        the guard."""
        return evidence_mask(lexicons, self.labels) if self.evidence_guard else None

    def decide(self, proba: np.ndarray, evidence: np.ndarray | None = None) -> list[list[str]]:
        """Label sets from probabilities: thresholds, and with :attr:`evidence_guard` the
        lexicon evidence (``evidence``: :meth:`supported`, required then), then upward
        closure."""
        on = np.asarray(proba) >= self.thresholds
        if self.evidence_guard:
            if evidence is None:
                raise BarometreError(f"theme model {self.version} decides with lexicon evidence: "
                                     "pass the evidence mask")
            on &= evidence
        return [close_labels([lab for lab, v in zip(self.labels, row) if v]) for row in on]

    # -- persistence ----------------------------------------------------------------
    def save(self, directory: Path, name: str = "themes") -> str:
        """Write ``model.json`` and ``weights.npz`` under ``directory``; returns the version."""
        directory = Path(directory)
        arrays = {"coef": self.coef.astype(np.float32), "intercept": self.intercept.astype(np.float64),
                  "platt": self.platt.astype(np.float64), "thresholds": self.thresholds.astype(np.float64)}
        arrays.update({f"space_{k}": v for k, v in self.space.arrays().items()})
        import io as _io

        buf = _io.BytesIO()
        np.savez_compressed(buf, **arrays)
        weights = buf.getvalue()
        meta = {k: v for k, v in self.meta.items() if k != "version"}
        doc = {"format": MODEL_FORMAT, "name": name, "labels": self.labels,
               "space": self.space.to_dict(), "meta": meta}
        body = json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True)
        digest = hashlib.sha256(body.encode("utf-8") + _array_digest(arrays).encode()).hexdigest()[:12]
        version = f"{name}@{digest}"
        doc["version"] = version
        atomic_write(directory / "weights.npz", weights)
        atomic_write(directory / "model.json", json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True))
        self.meta["version"] = version
        return version

    @classmethod
    def load(cls, directory: Path | None = None) -> "ThemeModel":
        """Load a saved model folder (default: the one shipped with the package)."""
        directory = Path(directory) if directory is not None else PACKAGED_MODEL_DIR
        try:
            doc = json.loads((directory / "model.json").read_text(encoding="utf-8"))
            with np.load(directory / "weights.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise BarometreError(f"no theme model in {directory} (build one with `barometre train`)") from None
        except (OSError, ValueError, EOFError, KeyError, json.JSONDecodeError) as exc:
            raise BarometreError(f"theme model in {directory} is unreadable: {exc}") from None
        if doc.get("format") != MODEL_FORMAT:
            raise BarometreError(f"theme model in {directory} has format {doc.get('format')!r}; "
                                 f"this barometre reads format {MODEL_FORMAT}: retrain it")
        space = FeatureSpace.from_dict(doc["space"], {k[6:]: v for k, v in arrays.items()
                                                      if k.startswith("space_")})
        meta = dict(doc.get("meta", {}))
        meta["version"] = doc.get("version", "unknown")
        meta["path"] = str(directory)
        return cls(labels=list(doc["labels"]), space=space, coef=arrays["coef"],
                   intercept=arrays["intercept"], platt=arrays["platt"],
                   thresholds=arrays["thresholds"], meta=meta)


def _array_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def close_labels(labels: list[str] | set[str]) -> list[str]:
    """Upward closure: a sub-label implies its theme; any theme implies ``numerique``."""
    out = set(labels)
    for lab in list(out):
        if "." in lab:
            out.add(lab.split(".", 1)[0])
    if out - {DIGITAL}:
        out.add(DIGITAL)
    return sorted(out)
