"""``barometre registry check``: what of the registry is live, before a crawl.

Stage: crawl (configuration). Input: a registry and the slugs to check. Output: a
:class:`CheckReport`, one row per URL: robots.txt of every site, each start URL, sitemap,
form page and dataset (a data.gouv.fr dataset and each of its resources), with the HTTP
status (or a status slug: ``robots-disallowed``, ``offsite``, ``blocked-address``,
``timeout``…), the final URL after redirects, the media type, and for datasets the rows read,
the rows with a usable document URL (and their share), the date range, the rows left out by
the dataset's filter, and the first problem.

Politely, once: each robots.txt is fetched first and a URL it disallows is reported, not
fetched; each URL is fetched once (a paged API: its first page, with the total it declares);
the crawl's settings apply (user agent, delays, per-domain concurrency, the fetch policy). The
check writes nothing to the corpus. Like a crawl it runs in a subprocess (Twisted's reactor
cannot restart): ``python -m crawler.check ARGS.json``.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from scrapy.http import Request, Response

from crawler.opendata import ReadOptions, parse_dataset
from crawler.opendata.datagouv import api_url, parse_datagouv
from crawler.outcomes import HANDLED_STATUSES, classify_failure
from crawler.spiders.base import RegistrySpider
from crawler.spiders.deliberations import read_format
from crawler.urls import normalise_url
from nlp.errors import BarometreError
from nlp.media import detect_media_type

log = logging.getLogger(__name__)

ROLES = ("robots", "start_url", "sitemap", "form", "dataset", "resource")


def dataset_figures(response: Response, dataset: Any, read: str) -> dict[str, Any]:
    """Rows, rows with a document URL, date range, filtered rows and the first problem of a
    dataset answer."""
    content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
    result = parse_dataset(response.body, read, response.url, content_type, ReadOptions.of(dataset))
    dates = sorted(r.delib_date for r in result.rows if r.delib_date)
    with_url = sum(1 for r in result.rows if r.url)
    problem = result.file_error or (result.errors[0].reason if result.errors else None)
    return {
        "format": result.format, "rows": len(result.rows), "rows_with_url": with_url,
        "share_with_url": round(with_url / len(result.rows), 3) if result.rows else 0.0,
        "date_min": dates[0] if dates else None, "date_max": dates[-1] if dates else None,
        "skipped": len(result.errors), "filtered": result.filtered, "declared_total": result.declared_total,
        "problem": problem[:300] if problem else None,
    }


class CheckSpider(RegistrySpider):
    """Fetches each registry URL once and yields one report row (a dict) per URL."""

    name = "registry-check"
    custom_settings = {"ROBOTSTXT_OBEY": False, "ITEM_PIPELINES": {"crawler.check.CheckCollector": 100},
                       "RETRY_TIMES": 1}

    async def start(self) -> Any:  # Scrapy >= 2.13
        for request in self.start_requests():
            yield request

    def targets(self, slug: str) -> list[tuple[str, str, int | None]]:
        """(role, URL, dataset index) of every URL of an entry, robots.txt aside."""
        m = self.metros[slug]
        out: list[tuple[str, str, int | None]] = [("start_url", u, None) for u in m.start_urls]
        out += [("sitemap", u, None) for u in m.sitemaps]
        out += [("form", f.url, None) for f in m.forms]
        for i, ds in enumerate(m.deliberation_datasets):
            out.append(("dataset", api_url(ds.url) if ds.format == "datagouv" else ds.url, i))
        return out

    def start_requests(self) -> Iterator[Request]:
        for slug in self.metros:
            by_origin: dict[str, list[tuple[str, str, int | None]]] = {}
            for role, url, index in self.targets(slug):
                parts = urlsplit(url)
                by_origin.setdefault(f"{parts.scheme}://{parts.netloc}", []).append((role, url, index))
            for origin, targets in by_origin.items():
                yield self.request(slug, "robots", f"{origin}/robots.txt", self.parse_robots,
                                   {"c_targets": targets}, errback=self.robots_failed)

    def request(self, slug: str, role: str, url: str, callback: Any, extra: dict[str, Any] | None = None,
                errback: Any = None) -> Request:
        m = self.metros[slug]
        # Errors are answers to report; redirects are still followed (handle_httpstatus_all
        # would stop them), so the final URL is known.
        meta = {"b_m": slug, "c_role": role, "c_url": url, "handle_httpstatus_list": HANDLED_STATUSES,
                "allow_offsite": True,
                "b_scope": [d for ds in m.deliberation_datasets for d in ds.domains],
                "download_maxsize": m.limits.max_file_bytes, **(extra or {})}
        return Request(normalise_url(url), callback=callback, errback=errback or self.failed, meta=meta,
                       dont_filter=True)

    # -- robots.txt ---------------------------------------------------------------------------
    def parse_robots(self, response: Response) -> Iterator[Any]:
        from protego import Protego

        yield self.row(response)
        rules = Protego.parse(response.text) if response.status == 200 else None
        agent = self.settings.get("USER_AGENT") or "*"
        for role, url, index in response.meta["c_targets"]:
            if rules is not None and not rules.can_fetch(normalise_url(url), agent):
                yield {"metropole": response.meta["b_m"], "role": role, "url": url, "status": "robots-disallowed"}
                continue
            yield self.target_request(response.meta["b_m"], role, url, index)

    def robots_failed(self, failure: Any) -> Iterator[Any]:
        yield from self.failed(failure)
        meta = failure.request.meta
        for role, url, index in meta["c_targets"]:
            yield self.target_request(meta["b_m"], role, url, index)

    def target_request(self, slug: str, role: str, url: str, index: int | None) -> Request:
        if role != "dataset":
            return self.request(slug, role, url, self.parse_page)
        dataset = self.metros[slug].deliberation_datasets[index]
        callback = self.parse_datagouv if dataset.format == "datagouv" else self.parse_dataset
        return self.request(slug, role, url, callback, {"c_ds": index, "c_read": read_format(dataset)})

    # -- answers --------------------------------------------------------------------------------
    def row(self, response: Response, **extra: Any) -> dict[str, Any]:
        meta = response.meta
        media = detect_media_type(response.body, (response.headers.get("Content-Type") or b"").decode("latin-1"),
                                  "", response.url)[0] if response.body else None
        return {"metropole": meta["b_m"], "role": meta["c_role"], "url": meta["c_url"], "status": response.status,
                "final_url": response.url, "redirects": len(meta.get("redirect_urls") or []),
                "media_type": media, "bytes": len(response.body), **extra}

    def parse_page(self, response: Response) -> Iterator[Any]:
        yield self.row(response)

    def parse_dataset(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        dataset = self.metros[meta["b_m"]].deliberation_datasets[meta["c_ds"]]
        figures = dataset_figures(response, dataset, meta["c_read"]) if response.status == 200 else None
        yield self.row(response, dataset=figures)

    def parse_datagouv(self, response: Response) -> Iterator[Any]:
        meta = response.meta
        if response.status != 200:
            yield self.row(response)
            return
        dataset = self.metros[meta["b_m"]].deliberation_datasets[meta["c_ds"]]
        found = parse_datagouv(response.body, response.url, dataset.resources)
        problem = found.errors[0].reason if found.errors else None
        yield self.row(response, dataset={"resources": len(found.resources), "not_read": len(found.skipped),
                                          "publisher": found.organization, "problem": problem})
        for resource in found.resources:
            yield self.request(meta["b_m"], "resource", resource.url, self.parse_dataset,
                               {"c_ds": meta["c_ds"], "c_read": read_format(dataset, resource.kind)})

    def failed(self, failure: Any) -> Iterator[Any]:
        meta = failure.request.meta
        status, message, _ = classify_failure(failure)
        yield {"metropole": meta["b_m"], "role": meta["c_role"], "url": meta["c_url"],
               "status": status or "error", "error": message}


class CheckCollector:
    """Item pipeline of the check: appends each report row to ``BAROMETRE_CHECK_OUT`` (JSONL)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def from_crawler(cls, crawler: Any) -> "CheckCollector":
        return cls(crawler.settings.get("BAROMETRE_CHECK_OUT"))

    def process_item(self, item: Any, spider: Any = None) -> Any:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(item), ensure_ascii=False, default=str) + "\n")
        return item


@dataclass
class CheckReport:
    """Rows of the check, in the registry's order (robots.txt first for each entry)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    returncode: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "returncode": self.returncode}

    def to_text(self) -> str:
        lines = []
        for r in self.rows:
            line = f"{r['metropole']:<24} {r['role']:<9} {str(r.get('status')):<17} {r['url']}"
            if r.get("final_url") and r["final_url"] != normalise_url(r["url"]):
                line += f"  -> {r['final_url']}"
            details = [r["media_type"]] if r.get("media_type") else []
            ds = r.get("dataset") or {}
            if "rows" in ds:
                details.append(f"{ds['rows']} rows, {ds['rows_with_url']} with a document URL "
                               f"({100 * ds['share_with_url']:.0f}%), {ds['date_min'] or '?'} .. {ds['date_max'] or '?'}")
                if ds.get("declared_total") and ds["declared_total"] > ds["rows"] + ds["skipped"] + ds["filtered"]:
                    details.append(f"first page of {ds['declared_total']}")
                if ds.get("filtered"):
                    details.append(f"{ds['filtered']} filtered out")
            if "resources" in ds:
                details.append(f"{ds['resources']} resources to read ({ds['publisher'] or 'no publisher'})")
            problem = r.get("error") or ds.get("problem")
            if problem:
                details.append(str(problem)[:160])
            lines.append(line + ("  [" + "; ".join(details) + "]" if details else ""))
        return "\n".join(lines)


def _order(rows: list[dict[str, Any]], metropoles: list[str]) -> list[dict[str, Any]]:
    rank = {m: i for i, m in enumerate(metropoles)}
    return sorted(rows, key=lambda r: (rank.get(r["metropole"], len(rank)), ROLES.index(r["role"])
                                       if r["role"] in ROLES else len(ROLES), r["url"]))


def run_check(registry: Path | str | dict[str, Any], metropoles: list[str] | None = None,
              overrides: dict[str, Any] | None = None, log_level: str = "INFO") -> CheckReport:
    """Check the selected entries in a subprocess (module docstring); raises RegistryError
    before anything starts, BarometreError when the check process fails."""
    from crawler.run import build_crawl_args

    with tempfile.TemporaryDirectory(prefix="barometre-check-") as tmp:
        options = {k: v for k, v in (overrides or {}).items() if k not in ("spiders",)}
        args = build_crawl_args(registry, Path(tmp), metropoles, False, options, False, log_level)
        args["out"] = str(Path(tmp) / "check.jsonl")
        args_path = Path(tmp) / "args.json"
        args_path.write_text(json.dumps(args, ensure_ascii=False), encoding="utf-8")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        returncode = subprocess.call([sys.executable, "-m", "crawler.check", str(args_path)], env=env,
                                     stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else None)
        out = Path(args["out"])
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    if returncode != 0:
        raise BarometreError(f"registry check: the check process exited with code {returncode} (see the log above)")
    return CheckReport(_order(rows, args["metropoles"]), returncode)


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def check_in_process(args: dict[str, Any]) -> int:
    """The body of the check subprocess. Returns an exit code."""
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    user = dict(args.get("settings") or {})
    if "BAROMETRE_CONTACT" in user and "USER_AGENT" not in user:
        user["USER_AGENT"] = settings.get("BAROMETRE_USER_AGENT_TEMPLATE").format(contact=user["BAROMETRE_CONTACT"])
    settings.setdict(user, priority="cmdline")
    settings.set("LOG_LEVEL", args.get("log_level", "INFO"), priority="cmdline")
    settings.set("BAROMETRE_CHECK_OUT", args["out"], priority="cmdline")
    process = CrawlerProcess(settings, install_root_handler=True)
    crawler = process.create_crawler(CheckSpider)
    process.crawl(crawler, registry=args["registry"], metropoles=args["metropoles"])
    process.start()
    reason = crawler.stats.get_value("finish_reason") if crawler.stats else None
    return 0 if reason in ("finished", None) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m crawler.check ARGS.json", file=sys.stderr)
        return 2
    return check_in_process(json.loads(Path(argv[0]).read_text(encoding="utf-8")))


if __name__ == "__main__":
    sys.exit(main())
