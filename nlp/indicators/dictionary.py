"""Writes the data dictionary (``outputs/data_dictionary.{md,csv}``) from
``nlp/indicators/dictionary.yaml`` and the maturity configuration used (stage: indicators)."""
from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nlp.io import atomic_write, load_yaml

DICTIONARY_FILE = Path(__file__).with_name("dictionary.yaml")


def load_dictionary() -> dict[str, Any]:
    return load_yaml(DICTIONARY_FILE)


def write_data_dictionary(outputs_dir: Path, maturity: Any = None) -> list[Path]:
    """``data_dictionary.md`` (for reading) and ``data_dictionary.csv`` (table, column,
    definition) under ``outputs_dir``."""
    d = load_dictionary()
    rows = [("measure", m, text) for m, text in d["measures"].items()]
    rows += [(table, col, text) for table, cols in d["tables"].items() for col, text in cols.items()]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["table", "column", "definition"])
    w.writerows(rows)
    lines = ["# Data dictionary (barometre indicators)", "", d["preamble"].strip(), "", "## Measures", "",
             "| measure | definition |", "|---|---|"]
    lines += [f"| `{m}` | {t} |" for m, t in d["measures"].items()]
    for table, cols in d["tables"].items():
        lines += ["", f"## `{table}`", "", "| column | definition |", "|---|---|"]
        lines += [f"| `{c}` | {t} |" for c, t in cols.items()]
    if maturity is not None:
        m = asdict(maturity)
        lines += ["", "## Maturity index configuration used", "",
                  f"measure `{m['measure']}`, normalisation `{m['normalisation']}`, file `{m['source']}`", ""]
        lines += [f"- `{t}`: weight {w:g}, reference share {m['reference'].get(t, float('nan')):g}"
                  for t, w in m["weights"].items()]
    out = Path(outputs_dir)
    atomic_write(out / "data_dictionary.csv", buf.getvalue())
    atomic_write(out / "data_dictionary.md", "\n".join(lines) + "\n")
    return [out / "data_dictionary.md", out / "data_dictionary.csv"]
