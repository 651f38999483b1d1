"""Layered settings, the CLI's error handling, and the local import stage."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nlp.cli import main
from nlp.config import load_settings
from nlp.errors import ConfigError
from nlp.importer import import_folder
from nlp.store import CorpusStore


def test_layers_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("corpus_dir: from-file\noutputs_dir: out-file\nworkers: 1\nindicators: {draws: 50}\n")
    env = {"BAROMETRE_OUTPUTS_DIR": "out-env", "BAROMETRE_WORKERS": "2"}
    s = load_settings({"workers": 3}, config_path=cfg, env=env)
    assert s.corpus_dir == Path("from-file")  # file beats default
    assert s.outputs_dir == Path("out-env")  # environment beats file
    assert s.workers == 3  # flag beats environment
    assert s.indicators == {"draws": 50}
    assert load_settings({}, env={}).corpus_dir == Path("corpus")


@pytest.mark.parametrize("content, message", [
    ("workers: [1\n", "invalid YAML"),
    ("wrokers: 2\n", "unknown setting 'wrokers'"),
    ("workers: zero\n", "setting 'workers'"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_bad_config_file_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, config_path=cfg, env={})


def test_cli_bad_config_exits_1_with_one_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("wrokers: 2\n")
    assert main(["report", "--config", str(cfg), "--outputs-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown setting 'wrokers'" in err and "Traceback" not in err


def test_cli_bad_argument_exits_1() -> None:
    proc = subprocess.run([sys.executable, "-m", "nlp.cli", "extract", "--workers", "many"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "invalid int value" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "nlp.cli", "nosuchcommand"], capture_output=True, text=True)
    assert proc.returncode == 1


def test_cli_help_lists_every_subcommand() -> None:
    proc = subprocess.run([sys.executable, "-m", "nlp.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for name in ("crawl", "import", "extract", "annotate", "indicators", "report", "run", "demo",
                 "themes", "eval", "kwic", "topics", "text"):
        assert name in proc.stdout


def test_missing_inputs_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["indicators", "--outputs-dir", str(tmp_path / "none")]) == 1
    assert "run `barometre annotate` first" in capsys.readouterr().err


def test_import_folder_stores_supported_files_and_records_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.pdf").write_bytes(b"%PDF-1.4 a")
    (folder / "sub" / "copy.pdf").write_bytes(b"%PDF-1.4 a")  # same bytes: one document
    (folder / "page.html").write_text("<html><head><title>T</title></head><body>x</body></html>")
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    store = CorpusStore(tmp_path / "corpus")
    counts = import_folder(store, folder, "valombre", progress=False)
    assert counts == {"ok": 2, "duplicate": 1, "empty": 1, "unsupported-type": 1}
    assert len(store.documents()) == 2
    assert {s["origin"] for s in store.sources()} == {"import"}
    assert len(store.sources()) == 3  # the duplicate keeps its own provenance row
    statuses = {Path(f["url"]).name: f["status"] for f in store.fetches()}
    assert statuses["empty.pdf"] == "empty" and statuses["image.png"] == "unsupported-type"
