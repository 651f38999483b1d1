"""Fixtures of the report tests: synthetic outputs (see ``report_outputs.py``) and the report
built from them once per module."""
from __future__ import annotations

from pathlib import Path

import pytest

from report_outputs import NAMES, synthetic_outputs


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_outputs(tmp_path_factory.mktemp("outputs"))


@pytest.fixture(scope="module")
def report(outputs: Path) -> Path:
    from nlp.report import build_report

    return build_report(outputs, names=NAMES)
