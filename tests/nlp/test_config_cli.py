"""Layered settings and the CLI's error handling (the import stage: tests/nlp/extract/test_import.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nlp.cli import main
from nlp.config import load_settings
from nlp.errors import ConfigError


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
    ("workers: [1\n", "YAML syntax error at line"),
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


@pytest.mark.parametrize("command, content, key", [
    ("indicators", "indicators: {draws: .nan}", "indicators.draws"),
    ("indicators", "indicators: {draws: true}", "indicators.draws"),
    ("indicators", "indicators: {confidence: .inf}", "indicators.confidence"),
    ("indicators", "indicators: {min_documents: -4}", "indicators.min_documents"),
    ("indicators", "indicators: {type_weights: {pdf: .nan}}", "indicators.type_weights"),
    ("indicators", "indicators: {draws: " + "9" * 5000 + "}", "line 1, column 21: number of 5000 digits"),
    ("topics", "topics: {n_neighbors: -1}", "topics.n_neighbors"),
    ("topics", "topics: {outlier_threshold: .nan}", "topics.outlier_threshold"),
    ("topics", "topics: {figures: 'yes'}", "topics.figures"),
    ("annotate", "annotate: {batch_size: 1.5}", "annotate.batch_size"),
], ids=lambda v: v[:40] if isinstance(v, str) else v)
def test_stage_values_are_checked_one_message_naming_file_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture, command: str, content: str, key: str) -> None:
    """Every stage section's values are type-checked against its settings dataclass: NaN,
    infinity, a negative count, a boolean for a number, a 5,000-digit integer are one line
    naming the file and the key, exit 1 (issue 13.4), before any work."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content + "\n")
    assert main([command, "--config", str(cfg), "--outputs-dir", str(tmp_path / "o"),
                 "--corpus-dir", str(tmp_path / "c"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 400, err
    assert str(cfg) in err and key in err, err
