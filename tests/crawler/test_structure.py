"""The crawler's structure rules (issue 12), checked so that they stay true.

- no module of ``crawler/`` over 600 lines, no function over 80;
- no raw SQL outside ``nlp/store.py``: the crawler uses the store's typed API;
- spiders yield requests and items: they never write to the store, nor look for it on the
  spider (``hasattr(spider, "store")``); the store is the crawl state's
  (:mod:`crawler.state`), written by the pipeline only;
- imports run one way: ``crawler`` imports the nlp core (store and its job manifests, schema,
  io, errors, media, config, compute), never a stage package.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

CRAWLER = Path(__file__).resolve().parents[2] / "crawler"
MODULES = sorted(CRAWLER.rglob("*.py"))
NLP_CORE = {"nlp", "nlp.store", "nlp.manifests", "nlp.schema", "nlp.io", "nlp.errors", "nlp.media", "nlp.config",
            "nlp.compute"}


def _rel(path: Path) -> str:
    return str(path.relative_to(CRAWLER.parent))


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= 600, f"{_rel(path)}: {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 80, f"{_rel(path)}: {node.name} has {length} lines"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_raw_sql_and_no_store_on_the_spider(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\.conn\b|\.execute\(|\bSELECT\b|\bINSERT\b|\bUPDATE\s+\w+\s+SET\b", text), _rel(path)
    assert "hasattr(spider" not in text and "spider.store" not in text, _rel(path)


@pytest.mark.parametrize("path", sorted((CRAWLER / "spiders").glob("*.py")), ids=_rel)
def test_spiders_do_not_write(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for write in ("add_document", "add_source", "record_fetch", "transaction(", "save_extraction"):
        assert write not in text, f"{_rel(path)} writes to the store ({write})"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_crawler_imports_only_the_nlp_core(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name == "nlp" or name.startswith("nlp."):
                assert name in NLP_CORE, f"{_rel(path)} imports {name}"
