"""The analysis package's structure rules (issue 12; README "Code map"), checked so that they
stay true:

- a stage package (``extract``, ``annotate``, ``topics``, ``indicators``, ``report``) imports
  no other stage package: stages depend only on the core (``store``, ``schema``, ``config``,
  ``io``, ``errors``, ``media``) and read what the stage before them persisted;
- nothing under ``nlp/`` but ``pipeline.py`` and ``cli.py`` imports ``crawler``;
- no raw SQL outside the store layer (``nlp/store.py`` and its job manifests, ``nlp/manifests.py``);
- no module over 600 lines, no function over 80 (the demo's generated content excepted).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

NLP = Path(__file__).resolve().parents[2] / "nlp"
STAGES = ("extract", "annotate", "topics", "indicators", "report")
MODULES = sorted(p for p in NLP.rglob("*.py") if "__pycache__" not in p.parts)
GENERATED = {"demo/content.py"}  # the demo corpus's text, written as data


def _rel(path: Path) -> str:
    return path.relative_to(NLP).as_posix()


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _stage_of(path: Path) -> str | None:
    parts = path.relative_to(NLP).parts
    return parts[0] if len(parts) > 1 and parts[0] in STAGES else None


@pytest.mark.parametrize("path", [p for p in MODULES if _stage_of(p)], ids=_rel)
def test_stages_do_not_import_each_other(path: Path) -> None:
    own = _stage_of(path)
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "nlp" and len(parts) > 1 and parts[1] in STAGES:
            assert parts[1] == own, f"{_rel(path)} imports {name}: stages read persisted tables, never another stage"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_only_pipeline_and_cli_import_the_crawler(path: Path) -> None:
    if _rel(path) in ("pipeline.py", "cli.py"):
        return
    assert not any(n == "crawler" or n.startswith("crawler.") for n in _imports(path)), _rel(path)


@pytest.mark.parametrize("path", [p for p in MODULES if _rel(p) not in ("store.py", "manifests.py")], ids=_rel)
def test_no_raw_sql_outside_the_store(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\.execute\(|\bSELECT\s+\S+.*\bFROM\b|\bINSERT\s+INTO\b", text), _rel(path)


@pytest.mark.parametrize("path", [p for p in MODULES if _rel(p) not in GENERATED], ids=_rel)
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= 600, f"{_rel(path)}: {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 80, f"{_rel(path)}: {node.name} has {length} lines"


def test_the_rules_hold_when_checked_by_python(tmp_path) -> None:
    """The same import rule checked by the interpreter: importing each stage package does
    not load another stage package."""
    import subprocess
    import sys

    for stage in STAGES:
        code = (f"import sys, nlp.{stage}; "
                f"others = [m for m in sys.modules if m.split('.')[:2] != ['nlp', '{stage}'] "
                f"and len(m.split('.')) > 1 and m.split('.')[0] == 'nlp' and m.split('.')[1] in {STAGES!r}]; "
                f"assert not others, others; assert 'crawler' not in sys.modules")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"nlp.{stage}: {proc.stderr[-2000:]}"


def test_test_module_names_are_unique() -> None:
    """tests/ has no packages, so pytest imports test modules by basename: two modules with
    the same name in different folders stop collection with 'import file mismatch' (it
    broke CI once)."""
    tests = NLP.parent / "tests"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
