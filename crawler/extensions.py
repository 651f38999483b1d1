"""Extensions: progress lines on stderr during a crawl, memory probes, stats file; the log
formatter.

Stage: crawl. Input: the crawler's stats. Output: one log line every
``BAROMETRE_PROGRESS_INTERVAL`` seconds (pages, documents stored, statuses, memory); the
resident memory when the response count reaches each of ``BAROMETRE_RSS_MILESTONES``
(stats ``barometre/rss_mb_at_<n>``) and the peak (``barometre/rss_max_mb``); with
``BAROMETRE_STATS_FILE`` set, the final stats appended there as one JSON line per spider
(the benchmark reads them).
"""
from __future__ import annotations

import json
import logging
import resource
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.logformatter import LogFormatter, LogFormatterResult

log = logging.getLogger(__name__)


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc; peak elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class QuietLogFormatter(LogFormatter):
    """Scrapy's log formatter (setting ``LOG_FORMATTER``), minus the per-item "Scraped from"
    message when ``LOG_LEVEL`` is above DEBUG.

    Scrapy lets every logger pass DEBUG (the root logger is at NOTSET) and drops below-level
    records in its handler: each item would build a log record nobody sees. Every fetch is an
    item here (the store pipeline records it), so the record is built once per page. At
    ``LOG_LEVEL = DEBUG`` the message is logged as before.
    """

    def __init__(self, quiet_items: bool = False) -> None:
        self.quiet_items = quiet_items

    @classmethod
    def from_crawler(cls, crawler: Any) -> "QuietLogFormatter":
        level = crawler.settings.get("LOG_LEVEL") or "DEBUG"
        numeric = logging.getLevelName(level) if isinstance(level, str) else level
        return cls(quiet_items=isinstance(numeric, int) and numeric > logging.DEBUG)

    def scraped(self, item: Any, response: Any, spider: Any) -> LogFormatterResult | None:
        """Input: an item, the response it came from, the spider. Output: the log message
        arguments, or None (no message) when items are not logged at this level."""
        if self.quiet_items:
            return None
        return super().scraped(item, response, spider)


class ProgressLog:
    def __init__(self, crawler: Any, interval: float, milestones: list[int], stats_file: str | None) -> None:
        self.crawler = crawler
        self.interval = interval
        self.milestones = sorted(milestones)
        self.stats_file = stats_file
        self.responses = 0
        self.task: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "ProgressLog":
        s = crawler.settings
        interval = s.getfloat("BAROMETRE_PROGRESS_INTERVAL", 10.0)
        milestones = [int(x) for x in s.getlist("BAROMETRE_RSS_MILESTONES")]
        stats_file = s.get("BAROMETRE_STATS_FILE")
        if interval <= 0 and not milestones and not stats_file:
            raise NotConfigured
        ext = cls(crawler, interval, milestones, stats_file)
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        if milestones:
            crawler.signals.connect(ext.response_received, signal=signals.response_received)
        return ext

    def opened(self, spider: Any) -> None:
        from twisted.internet import task

        if self.interval > 0:
            self.task = task.LoopingCall(self.report, spider)
            self.task.start(self.interval, now=False)

    def response_received(self, *args: Any, **kwargs: Any) -> None:
        self.responses += 1
        if self.milestones and self.responses >= self.milestones[0]:
            n = self.milestones.pop(0)
            self.crawler.stats.set_value(f"barometre/rss_mb_at_{n}", round(rss_mb(), 1))

    def report(self, spider: Any) -> None:
        stats = self.crawler.stats.get_stats()
        statuses = {k.split("/")[-1]: v for k, v in stats.items() if k.startswith("barometre/fetch/")}
        log.info(
            "[%s] %d responses, %d documents stored (%d new), statuses %s, rss %.0f MiB",
            spider.name, stats.get("response_received_count", 0),
            stats.get("barometre/documents_stored", 0), stats.get("barometre/documents_new", 0),
            statuses, rss_mb(),
        )

    def closed(self, spider: Any, reason: str) -> None:
        if self.task and self.task.running:
            self.task.stop()
        stats = self.crawler.stats
        stats.set_value("barometre/rss_max_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if self.stats_file:
            with open(self.stats_file, "a", encoding="utf-8") as f:
                f.write(json.dumps({"spider": spider.name, "reason": reason, **stats.get_stats()},
                                   default=str) + "\n")
