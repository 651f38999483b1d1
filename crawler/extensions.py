"""Extension: periodic progress lines on stderr during a crawl.

Stage: crawl. Input: the crawler's stats. Output: one log line every
``BAROMETRE_PROGRESS_INTERVAL`` seconds (pages, documents stored, statuses, memory), and the
peak resident memory in the final stats (``barometre/rss_max_mb``).
"""
from __future__ import annotations

import logging
import resource
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

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


class ProgressLog:
    def __init__(self, crawler: Any, interval: float) -> None:
        self.crawler = crawler
        self.interval = interval
        self.task: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "ProgressLog":
        interval = crawler.settings.getfloat("BAROMETRE_PROGRESS_INTERVAL", 10.0)
        if interval <= 0:
            raise NotConfigured
        ext = cls(crawler, interval)
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def opened(self, spider: Any) -> None:
        from twisted.internet import task

        self.task = task.LoopingCall(self.report, spider)
        self.task.start(self.interval, now=False)

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
        self.crawler.stats.set_value("barometre/rss_max_mb",
                                     resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
