"""Batched writes of a crawl (crawler.state.CrawlState.writing / commit, the store pipeline):
each item all or nothing, the batch committed when full, old or closed, the links log on disk
before the rows that say its pages are done, and the stats counting committed items only."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from crawler.items import FetchRecord
from crawler.pipelines import StorePipeline
from crawler.state import CrawlState
from nlp.store import CorpusStore


class _Stats:
    def __init__(self) -> None:
        self.values: Counter[str] = Counter()

    def inc_value(self, key: str, n: int = 1) -> None:
        self.values[key] += n


def _pipeline(tmp_path: Path, seconds: float = 60.0, rows: int = 3) -> tuple[StorePipeline, CrawlState]:
    state = CrawlState(CorpusStore(tmp_path / "corpus"), {}, started=None, resume=False,
                       jobdir=tmp_path / "job", commit_seconds=seconds, commit_rows=rows)
    crawler = type("Crawler", (), {"stats": _Stats()})()
    pipeline = StorePipeline(crawler)
    pipeline._state = state
    return pipeline, state


def _committed(tmp_path: Path) -> list[str]:
    with CorpusStore(tmp_path / "corpus") as other:  # another connection: committed rows only
        return [f["url"] for f in other.fetches()]


def test_items_are_committed_in_batches_with_their_links_first(tmp_path: Path) -> None:
    pipeline, state = _pipeline(tmp_path, rows=3)
    links = tmp_path / "job" / "links.jsonl"
    for i in range(2):
        state.log_links("m", f"http://h/{i}", [[f"http://h/{i}/a", "page", 1, "", "", 0, None]])
        pipeline.process_item(FetchRecord("m", f"http://h/{i}", "ok", "page"))
    assert _committed(tmp_path) == [] and pipeline.crawler.stats.values == {}
    pipeline.process_item(FetchRecord("m", "http://h/2", "http-404", "page", http_status=404))
    assert _committed(tmp_path) == ["http://h/0", "http://h/1", "http://h/2"]
    assert [json.loads(line)["u"] for line in links.read_text().splitlines()] == ["http://h/0", "http://h/1"]
    assert pipeline.crawler.stats.values == {"barometre/fetch/ok": 2, "barometre/fetch/http-404": 1}
    pipeline.process_item(FetchRecord("m", "http://h/3", "ok", "page"))
    pipeline.close_spider()  # the last, partial batch
    assert _committed(tmp_path)[-1] == "http://h/3"
    assert pipeline.crawler.stats.values["barometre/fetch/ok"] == 3
    state.close()


def _fail_on(state: CrawlState, monkeypatch: Any, suffix: str) -> None:
    """The store fails to record the fetch of a URL ending with ``suffix`` (a disk error)."""
    real = state.store.record_fetch

    def record_fetch(metropole: str, url: str, *args: Any, **kwargs: Any) -> None:
        if url.endswith(suffix):
            raise RuntimeError("disk trouble")
        real(metropole, url, *args, **kwargs)

    monkeypatch.setattr(state.store, "record_fetch", record_fetch)


def test_a_failed_item_leaves_no_row_and_the_batch_goes_on(tmp_path: Path, monkeypatch: Any) -> None:
    pipeline, state = _pipeline(tmp_path, rows=100)
    pipeline.process_item(FetchRecord("m", "http://h/a", "ok", "page"))
    _fail_on(state, monkeypatch, "/alias")
    with pytest.raises(RuntimeError):  # the first URL of the item was written, then undone
        pipeline.process_item(FetchRecord("m", "http://h/b", "ok", "page", aliases=["http://h/alias"]))
    pipeline.process_item(FetchRecord("m", "http://h/c", "ok", "page"))
    state.close()  # closing the crawl state commits what is pending
    assert _committed(tmp_path) == ["http://h/a", "http://h/c"]


def test_an_old_batch_is_committed_and_zero_seconds_commits_every_item(tmp_path: Path) -> None:
    pipeline, state = _pipeline(tmp_path, seconds=0.0, rows=500)
    pipeline.process_item(FetchRecord("m", "http://h/a", "ok", "page"))
    assert _committed(tmp_path) == ["http://h/a"]
    state.commit_seconds = 60.0
    pipeline.process_item(FetchRecord("m", "http://h/b", "ok", "page"))
    assert _committed(tmp_path) == ["http://h/a"]
    state._batch_started -= 61  # the timer's test: the batch is older than commit_seconds
    assert state.commit_due()
    pipeline._commit_logged()
    assert _committed(tmp_path) == ["http://h/a", "http://h/b"]
    assert not state.commit_due() and state.commit() is False
    state.close()


def test_fetch_records_are_written_as_a_callback_yields_them(tmp_path: Path, monkeypatch: Any,
                                                              caplog: Any) -> None:
    """FetchRecordMiddleware hands each fetch record to the pipeline's writer as it comes and
    passes every other output on, in order; a record whose write fails is logged, leaves no
    row, and the callback's other outputs go on; with no writer the records stay items."""
    from scrapy import Request

    from crawler.pipelines import FetchRecordMiddleware

    pipeline, state = _pipeline(tmp_path, seconds=0.0, rows=100)
    middleware = FetchRecordMiddleware(crawler=None)
    middleware._state = state
    first, last = Request("http://h/next"), Request("http://h/last")
    records = [FetchRecord("m", "http://h/a", "ok", "page"), FetchRecord("m", "http://h/b", "http-404", "page"),
               FetchRecord("m", "http://h/c", "ok", "page")]
    assert list(middleware.process_spider_output(None, iter([records[0], first, records[1]]))) == [
        records[0], first, records[1]]  # no writer yet: Scrapy's item pipeline gets them

    pipeline.open_spider()  # the pipeline becomes the crawl's writer
    assert state.writer == pipeline.process_item
    _fail_on(state, monkeypatch, "/b")
    with caplog.at_level("ERROR"):
        passed = list(middleware.process_spider_output(None, iter([records[0], first, records[1], last, records[2]])))
    assert passed == [first, last]
    assert "Error processing" in caplog.text and "disk trouble" in caplog.text
    assert _committed(tmp_path) == ["http://h/a", "http://h/c"]  # zero seconds: committed at once
    assert pipeline.stats.values == Counter({"barometre/fetch/ok": 2})
    state.close()
