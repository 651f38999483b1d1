"""Seeded fuzzing of the crawler's hostile inputs (issue 13): registries and dataset files.

Generators for each class of ../shared/repro that reaches the crawler: YAML alias bombs and
deep nesting, huge numbers, regexes that overflow or backtrack, URLs whose host is not the one
it seems, invalid UTF-8; dataset CSVs with huge fields, stray quotes and separators, invalid
bytes, and JSON exports of every shape. Every input must end with a validated registry or one
line naming the file (RegistryError), or a ParseResult whose problems are row-numbered, in
bounded time, never a traceback.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from crawler.opendata import parse_dataset
from crawler.registry import load_registry
from nlp.errors import RegistryError

SEED = 20240613
ENTRY = {"slug": "fuzz", "name": "Fuzz", "siren": "123456789", "fictional": True,
         "domains": ["example.org"], "start_urls": ["https://example.org/"]}


def _bomb(rng: random.Random) -> str:
    depth, width = rng.randint(3, 9), rng.randint(2, 10)
    parts = ['&a0 ["lol"]']
    for i in range(1, depth):
        parts = [f"&a{i} [" + ", ".join([parts[0]] + [f"*a{i - 1}"] * (width - 1)) + "]"]
    where = rng.choice(["slug", "name", "domains", "deny"])
    return f"version: 1\nmetropoles:\n  - slug: x\n    {where}: {parts[0]}\n"


def _nested(rng: random.Random) -> str:
    n = rng.randint(50, 3000)
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
    return "version: 1\nmetropoles: " + opener * n + "1" + closer * n + "\n"


def _number(rng: random.Random) -> str:
    field = rng.choice(["max_pages", "max_depth", "max_file_bytes", "max_total_bytes"])
    digits = rng.choice([rng.randint(10, 60), rng.randint(65, 6000)])
    sign = rng.choice(["", "-", "+"])
    entry = dict(ENTRY, limits={field: "NUMBER"})
    return yaml.safe_dump({"version": 1, "metropoles": [entry]}).replace("NUMBER", sign + "9" * digits)


def _regex(rng: random.Random) -> str:
    atom = rng.choice(["a", "[a-z]", "(ab|c)", r"\d", "."])
    pattern = rng.choice([
        f"{atom}{{{rng.randint(1, 10 ** rng.randint(1, 12))}}}",
        f"({atom}+)+$", f"({atom}*)*x", f"(?:{atom}|{atom}{atom})*+?", f"({atom}{{2,}}){{3,}}",
        "(" * rng.randint(1, 5), atom * rng.randint(1, 700), f"(?i)/{atom}/(x|y)?$",
    ])
    entry = dict(ENTRY, **{rng.choice(["allow", "deny"]): [pattern]})
    return yaml.safe_dump({"version": 1, "metropoles": [entry]})


def _url(rng: random.Random) -> str:
    trick = rng.choice(["\\@", "\\", "\t", "\x00", " ", "@", ":99999999", "%00", "\u3002", "#@"])
    url = f"http://localhost:1{trick}example.org/x" if rng.random() < 0.5 else f"http://example.org/{trick}x"
    field = rng.choice(["start_urls", "sitemaps"])
    entry = dict(ENTRY, **{field: [url]}) if field == "start_urls" else dict(ENTRY, sitemaps=[url])
    return json.dumps({"version": 1, "metropoles": [entry]})  # JSON is YAML: keeps the raw characters


def _bytes(rng: random.Random) -> bytes:
    text = yaml.safe_dump({"version": 1, "metropoles": [ENTRY]}).encode()
    pos = rng.randrange(len(text))
    return text[:pos] + bytes(rng.randrange(128, 256) for _ in range(rng.randint(1, 4))) + text[pos:]


GENERATORS: list[Callable[[random.Random], Any]] = [_bomb, _nested, _number, _regex, _url, _bytes]


@pytest.mark.slow
def test_fuzzed_registries_end_with_a_registry_or_one_line(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    outcomes = {"ok": 0, "refused": 0}
    for i in range(300):
        doc = GENERATORS[i % len(GENERATORS)](rng)
        path = tmp_path / f"r{i}.yaml"
        path.write_bytes(doc if isinstance(doc, bytes) else doc.encode("utf-8", "surrogatepass"))
        start = time.monotonic()
        try:
            load_registry(path)
            outcomes["ok"] += 1
        except RegistryError as exc:
            msg = str(exc)
            assert "\n" not in msg and len(msg) < 2000 and msg.startswith(str(path)), (i, msg[:300])
            outcomes["refused"] += 1
        assert time.monotonic() - start < 3, (i, GENERATORS[i % len(GENERATORS)].__name__)
    assert outcomes["refused"] > 200


def _csv(rng: random.Random) -> bytes:
    sep = rng.choice([";", ",", "\t", "|"])
    rows = [sep.join(["DELIB_ID", "DELIB_DATE", "DELIB_OBJET", "DELIB_URL"])]
    for k in range(rng.randint(0, 30)):
        objet = rng.choice(["Objet", '"Objet ' + "x" * rng.choice([10, 140_000]) + '"', '"non fermé', '"a""b"',
                            "é" * 5, "_x0001_", sep * 3])
        date = rng.choice(["2024-01-02", "31/02/2024", "44644", "", "demain"])
        url = rng.choice(["https://x.fr/a.pdf", "/rel.pdf", "ftp://x", "", "http://127.0.0.1/\\@x"])
        rows.append(sep.join([rng.choice([str(k), "", "1"]), date, objet, url]))
    data = "\r\n".join(rows).encode(rng.choice(["utf-8", "utf-8-sig", "cp1252", "utf-16"]), "replace")
    if rng.random() < 0.3:
        pos = rng.randrange(len(data) or 1)
        data = data[:pos] + bytes([rng.randrange(256)]) * rng.randint(1, 3) + data[pos:]
    return data


def _json(rng: random.Random) -> bytes:
    rec = {"delib_id": rng.choice(["1", 2, None, [], {}]), "delib_objet": rng.choice(["x", None, 3.5]),
           "delib_url": rng.choice(["https://x.fr/a.pdf", {"url": "https://x.fr/b.pdf"}, {"id": "f"}, 1e308])}
    doc = rng.choice([[rec] * rng.randint(0, 5), {"results": [rec], "total_count": rng.choice([1, 10 ** 40, "x"])},
                      {"records": [{"fields": rec}, "junk"]}, {"nhits": -1}, "[" * 5000, 12])
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return text.encode() if rng.random() < 0.8 else text.encode()[: rng.randint(0, len(text))]


@pytest.mark.slow
def test_fuzzed_datasets_give_row_numbered_problems(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    for i in range(200):
        data, fmt = (_csv(rng), "scdl-csv") if i % 2 == 0 else (_json(rng), "opendatasoft")
        start = time.monotonic()
        result = parse_dataset(data, fmt, "https://data.example.org/d")
        assert time.monotonic() - start < 3, i
        for problem in result.errors + result.warnings:
            assert isinstance(problem.row_number, int) and problem.row_number >= 0
            assert "\n" not in problem.reason, (i, problem.reason[:200])
        assert len(result.rows) <= result.records or result.records == 0
