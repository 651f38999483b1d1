"""Suite-wide fixtures.

A command run without ``--outputs-dir`` writes ``outputs/run_info.json`` under the current
folder: in a test that is the repository's own ``outputs/``, which a test must never touch
(it held a temporary corpus path after ``make test``). Every test gets its own outputs folder
through ``BAROMETRE_OUTPUTS_DIR``; a test that passes ``--outputs-dir`` or sets the variable
itself still wins.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture(autouse=True)
def _outputs_outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Its own MonkeyPatch: a test's ``monkeypatch.undo()`` must not bring the default back.
    outputs = tmp_path_factory.mktemp("default-outputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BAROMETRE_OUTPUTS_DIR", str(outputs))
        yield outputs
