"""Hostile inputs of the text side (issue 13): the JSONL of ``barometre themes``, the scores CSV
of ``indicators --scores`` and the YAML settings file. Every reproducer of ../shared/repro of
these kinds ends with output or one message, and seeded fuzzing of each kind (a few hundred
inputs) ends the same way: no traceback, a status or a line-numbered message for each input.
The extract inputs are fuzzed in tests/nlp/extract/test_extract_fuzz.py, the registry and the
crawler's inputs in tests/crawler/test_fuzz.py."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from nlp.annotate.jsonl import run_themes_jsonl
from nlp.cli import main
from nlp.config import load_settings, shared_repro_dir
from nlp.errors import BarometreError
from nlp.indicators.join import read_scores

REPRO = shared_repro_dir()

VALID = [{"id": f"p{i}", "text": t} for i, t in enumerate([
    "La métropole déploie la médiation numérique dans ses quartiers.",
    "Le conseil adopte le budget annexe des transports.",
    "Les agents sont formés aux outils numériques et à la donnée.",
])]


@pytest.fixture(scope="module")
def lexicon_detector():
    """The detector of ``themes --lexicons-only`` (the shipped lexicons, real spaCy)."""
    from nlp.annotate.stage import AnnotateSettings, build_detector
    from nlp.config import DEFAULT_LEXICONS

    return build_detector(DEFAULT_LEXICONS, AnnotateSettings(use_model=False))


def _jsonl_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the reproducers ---------------------------------------------------------------------------
@pytest.mark.skipif(not REPRO.is_dir(), reason="../shared/repro is absent")
@pytest.mark.parametrize("name", ["jsonl_latin1_byte.jsonl", "jsonl_lone_surrogate.jsonl",
                                  "jsonl_deep_nesting.jsonl", "jsonl_5000_digit_int__ValueError.jsonl"])
def test_jsonl_reproducers_keep_every_valid_line(name: str, tmp_path: Path, lexicon_detector) -> None:
    src = REPRO / name
    out = tmp_path / "out.jsonl"
    counts = run_themes_jsonl(src, out, lexicon_detector)
    raw_lines = [line for line in src.read_bytes().splitlines() if line.strip()]
    written = _jsonl_lines(out)
    assert counts["bad"] >= 1 and len(written) == len(raw_lines) - counts["bad"]
    assert all(msg.startswith("line ") for msg in counts["bad_lines"])
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no .tmp left behind


@pytest.mark.skipif(not REPRO.is_dir(), reason="../shared/repro is absent")
def test_scores_reproducer_with_a_trailing_separator_is_read(tmp_path: Path) -> None:
    df, form = read_scores(REPRO / "scores_trailing_separator.csv")
    assert len(df) > 0 and not any(c == "" or c.startswith("Unnamed") for c in df.columns)


def test_jsonl_with_a_bom_keeps_its_first_line(tmp_path: Path) -> None:
    src, out = tmp_path / "bom.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(v, ensure_ascii=False) for v in VALID).encode())
    assert main(["themes", "--jsonl", str(src), "--out", str(out), "--lexicons-only", "--no-progress"]) == 0
    assert [r["id"] for r in _jsonl_lines(out)] == ["p0", "p1", "p2"]


def test_scores_csv_with_100000_columns_is_one_message(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(";".join(f"c{i}" for i in range(100_000)) + "\n" + ";".join("1" * 100_000) + "\n")
    with pytest.raises(BarometreError, match="100000 columns"):
        read_scores(path)


# --- seeded fuzzing ------------------------------------------------------------------------------
def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation of the kinds that broke the readers: a byte flipped or inserted, a
    cut, a BOM, a lone surrogate escape, deep nesting, a huge number, a separator doubled."""
    kind = rng.randrange(9)
    b = bytearray(data)
    pos = rng.randrange(len(b) + 1)
    if kind == 0 and b:
        b[min(pos, len(b) - 1)] = rng.randrange(256)
    elif kind == 1:
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
    elif kind == 2:
        del b[pos:]
    elif kind == 3:
        b[0:0] = b"\xef\xbb\xbf"
    elif kind == 4:
        b[pos:pos] = b"\\ud800"
    elif kind == 5:
        d = rng.choice([50, 300, 3000])
        b[pos:pos] = b"[" * d + b"]" * d
    elif kind == 6:
        b[pos:pos] = b"9" * rng.choice([20, 500, 5000])
    elif kind == 7:
        b[pos:pos] = rng.choice([b";", b",", b"\t", b'"', b"\n", b"\r", b"\x00", b"&a", b"*a", b"{", b"- "])
    else:
        b[pos:pos] = b[:rng.randrange(1, 200)]
    return bytes(b)


def _fuzz_inputs(seed_data: bytes, n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        data = seed_data
        for _ in range(rng.randrange(1, 4)):
            data = _mutate(data, rng)
        out.append(data)
    return out


def test_fuzz_jsonl_every_file_gives_output_and_line_numbered_messages(tmp_path: Path, lexicon_detector) -> None:
    seed = "\n".join(json.dumps(v, ensure_ascii=False) for v in VALID * 3).encode()
    for i, data in enumerate(_fuzz_inputs(seed, 150, seed=13)):
        src, out = tmp_path / f"f{i}.jsonl", tmp_path / f"f{i}.out.jsonl"
        src.write_bytes(data)
        counts = run_themes_jsonl(src, out, lexicon_detector)
        written = _jsonl_lines(out)
        assert counts["written"] == len(written) and counts["lines"] == counts["written"] + counts["bad"]
        assert all(msg.startswith("line ") for msg in counts.get("bad_lines", []))
    assert not list(tmp_path.glob("*.tmp*"))


def test_fuzz_settings_yaml_is_settings_or_one_message(tmp_path: Path) -> None:
    seed = (b"corpus_dir: corpus\nworkers: 2\nseed: 7\nextract: {timeout_s: 60, max_memory_mb: 512}\n"
            b"indicators:\n  draws: 200\n  type_weights: {pdf: 1.0}\nbase: &b {a: 1}\ntopics: {n_neighbors: 15}\n")
    outcomes = {"settings": 0, "message": 0}
    for i, data in enumerate(_fuzz_inputs(seed, 200, seed=14)):
        cfg = tmp_path / f"c{i}.yaml"
        cfg.write_bytes(data)
        try:
            load_settings({}, config_path=cfg, env={})
            outcomes["settings"] += 1
        except BarometreError as exc:
            message = str(exc)
            assert "\n" not in message and len(message) < 600, message[:2000]
            outcomes["message"] += 1
    assert outcomes["settings"] and outcomes["message"]


def test_fuzz_scores_csv_is_a_table_or_one_message(tmp_path: Path) -> None:
    seed = ("\ufeffMétropole;SIREN;Score global;Stratégie\n"
            "Lyon;200046977;62,5;7\nNantes;244400404;58,1;6\nRennes;243500139;55;5;\n").encode("utf-8")
    outcomes = {"table": 0, "message": 0}
    for i, data in enumerate(_fuzz_inputs(seed, 200, seed=15)):
        path = tmp_path / f"s{i}.csv"
        path.write_bytes(data)
        try:
            df, _form = read_scores(path)
            assert len(df.columns) <= 1000
            outcomes["table"] += 1
        except BarometreError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
            outcomes["message"] += 1
    assert outcomes["table"] and outcomes["message"]
