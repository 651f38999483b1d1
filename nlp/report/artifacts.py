"""The report's files beside the page, and what every figure says about its provenance
(stage: report).

- :class:`Output` writes, for every table and figure of the page, the data it shows as CSV
  under ``outputs/report/data/<name>.csv`` and every figure as PNG under
  ``outputs/plots/<name>.png`` (also embedded in the page as a data URI), and gives the
  relative links the page uses (they work when the folder is opened from disk). Files of an
  earlier build that this build did not write are removed, so no link points to stale data.
- :class:`Provenance` is the sentence every figure carries: corrected for the detector's
  error or not, from which validation, and which model version produced the labels.
- :class:`Context` bundles them with the inputs and the display names for the sections.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from nlp.io import atomic_write
from nlp.report.tables import Inputs


def _csv_ready(df: pd.DataFrame) -> pd.DataFrame:
    """Lists and arrays as "a; b" text (a CSV cell holds a string, not a Python repr)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple))
                                    or (hasattr(v, "tolist") and not isinstance(v, str)) else v)
    return out


@dataclass
class Output:
    """Files of one build under ``outputs_dir`` (see the module docstring)."""

    outputs_dir: Path
    written: set[Path] = field(default_factory=set)
    _keys: dict[str, str] | None = None  # figure keys of the previous build (read on first use)
    _new_keys: dict[str, str | None] = field(default_factory=dict)

    @property
    def report_dir(self) -> Path:
        return self.outputs_dir / "report"

    @property
    def data_dir(self) -> Path:
        return self.report_dir / "data"

    @property
    def plots_dir(self) -> Path:
        return self.outputs_dir / "plots"

    def csv(self, name: str, df: pd.DataFrame) -> str:
        """Write ``df`` as ``report/data/<name>.csv``; return the page's relative link."""
        path = self.data_dir / f"{_safe_name(name)}.csv"
        atomic_write(path, _csv_ready(df).to_csv(index=False))
        self.written.add(path)
        return f"data/{path.name}"

    def source(self, table: str) -> dict[str, str] | None:
        """Link to a stage's own CSV ``tables/<table>.csv`` when it exists."""
        path = self.outputs_dir / "tables" / f"{table}.csv"
        return {"href": f"../tables/{table}.csv", "label": f"tables/{table}.csv"} if path.is_file() else None

    def png(self, name: str, fig: Any, key: str | None = None) -> tuple[str, str]:
        """Save a figure (a matplotlib Figure, or a function that draws it) as
        ``plots/<name>.png``; return (base64 data, relative link).

        ``key``: what the figure shows (see :meth:`Context.figure`). When the PNG of an earlier
        build was drawn from the same key it is kept as it is: drawing is most of the report's
        time, and the same key draws the same picture."""
        path = self.plots_dir / f"{_safe_name(name)}.png"
        if self._keys is None:
            self._keys = _read_keys(self.plots_dir / FIGURE_KEYS)
        data = path.read_bytes() if key is not None and path.is_file() else b""
        if not (data and self._keys.get(path.name) == f"{key}:{hashlib.sha256(data).hexdigest()}"):
            if callable(fig) and not hasattr(fig, "savefig"):
                fig = fig()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            data = buf.getvalue()
            atomic_write(path, data)
        self._new_keys[path.name] = f"{key}:{hashlib.sha256(data).hexdigest()}" if key else None
        self.written.add(path)
        return base64.b64encode(data).decode("ascii"), f"../plots/{path.name}"

    def links(self, name: str, data: pd.DataFrame, sources: Iterable[str] = ()) -> list[dict[str, str]]:
        """CSV links of a table or figure: its own data, then the stages' tables it comes from."""
        out = [{"href": self.csv(name, data), "label": f"{name}.csv (données affichées)"}]
        out += [s for s in (self.source(t) for t in sources) if s]
        return out

    def prune(self) -> list[Path]:
        """Remove CSVs and PNGs of earlier builds that this build did not write, and record
        the keys of this build's figures."""
        keys = {k: v for k, v in self._new_keys.items() if v is not None}
        if keys or (self.plots_dir / FIGURE_KEYS).exists():
            atomic_write(self.plots_dir / FIGURE_KEYS, json.dumps(keys, indent=0, sort_keys=True))
        removed = []
        for folder, pattern in ((self.data_dir, "*.csv"), (self.plots_dir, "*.png")):
            if folder.is_dir():
                for path in folder.glob(pattern):
                    if path not in self.written:
                        path.unlink(missing_ok=True)
                        removed.append(path)
        return removed


FIGURE_KEYS = ".figure_keys.json"


def _read_keys(path: Path) -> dict[str, str]:
    try:
        keys = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return keys if isinstance(keys, dict) else {}


def figure_key(*parts: Any, data: pd.DataFrame) -> str:
    """sha256 over the report's code, ``parts`` (name, title, display names…) and the data a
    figure shows (its CSV), the inputs of its drawing."""
    h = hashlib.sha256(_code_digest().encode())
    h.update(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode())
    h.update(_csv_ready(data).to_csv(index=False).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    from nlp.reuse import code_digest

    return code_digest(Path(__file__).parent)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@dataclass
class Provenance:
    """Where the figures come from: ``correction`` (the validation the corrected share comes
    from, ``None`` when no correction was applied) and ``models`` (model versions)."""

    correction: str | None
    models: list[str]

    @property
    def model_text(self) -> str:
        if not self.models:
            return "version du modèle inconnue (run_info.json absent)"
        if self.models == ["lexicons"]:
            return "lexiques seuls (sans modèle)"
        return "modèle " + ", ".join(self.models)

    def sentence(self, corrected: bool | None) -> str:
        """``corrected``: the figure shows the corrected share (True), uncorrected measures
        (False), or no detector output at all (None)."""
        if corrected is None:
            return "Sans le détecteur de thèmes (décomptes de documents ou modèle de sujets) : rien à corriger."
        labels = f"Étiquettes des paragraphes : {self.model_text}."
        if corrected and self.correction:
            return ("Corrigé de l'erreur du détecteur (Rogan–Gladen) d'après la validation : "
                    f"{self.correction}. {labels}")
        if self.correction:
            return (f"Non corrigé de l'erreur du détecteur (la part corrigée, d'après la validation « "
                    f"{self.correction} », est donnée à part). {labels}")
        return f"Non corrigé de l'erreur du détecteur : aucune validation disponible. {labels}"

    def header(self) -> str:
        """The report's opening line: which figures are corrected, from which validation, and
        which model labelled the paragraphs (each said once)."""
        if not self.correction:
            return self.sentence(False)
        return ("Parts non corrigées de l'erreur du détecteur, sauf la part corrigée (Rogan–Gladen, "
                f"d'après la validation « {self.correction} »), donnée à part. "
                f"Étiquettes des paragraphes : {self.model_text}.")


@dataclass
class Context:
    """What every section function receives."""

    inputs: Inputs
    out: Output
    provenance: Provenance
    names: Mapping[str, str]
    metropoles: list[str]

    def name(self, slug: Any) -> str:
        return self.names.get(str(slug), str(slug))

    @property
    def settings(self) -> dict[str, Any]:
        return self.inputs.settings.get("settings") or {}

    @property
    def maturity(self) -> dict[str, Any]:
        return self.inputs.settings.get("maturity") or {}

    def figure(self, name: str, fig: Any, data: pd.DataFrame, title: str, corrected: bool | None,
               sources: Iterable[str] = (), note: str = "") -> dict[str, Any]:
        """A figure for the template: embedded PNG, its CSV and PNG links, its provenance.
        ``fig``: the Figure, or a function that builds it, called only when the figure's key
        (its name, title, note, display names and data, and the report's code) differs from
        the previous build's."""
        key = figure_key(name, title, note, sorted(self.names.items()), self.metropoles, data=data)
        b64, png = self.out.png(name, fig, key)
        links = self.out.links(name, data, sources) + [{"href": png, "label": f"{name}.png"}]
        return {"id": f"fig-{name}", "title": title, "data": b64, "links": links, "note": note,
                "provenance": self.provenance.sentence(corrected)}

    def table(self, name: str, header: list[str], rows: list[list[Any]], data: pd.DataFrame,
              sources: Iterable[str] = (), note: str = "", left: int = 1, title: str = "",
              corrected: bool | None = False, provenance: bool = True) -> dict[str, Any]:
        """A table for the template (cells: text, or dicts with text/ci/cls/href/style/title);
        ``provenance``: add the correction/model sentence (tables of indicator values)."""
        return {"id": f"tab-{name}", "title": title, "header": header, "rows": rows, "left": left,
                "note": note, "links": self.out.links(name, data, sources),
                "provenance": self.provenance.sentence(corrected) if provenance else ""}
