"""The `scrape@<crawl>` stage: a Getchu crawl into `data/scrape/<crawl>/`.

Writes (published in one rename when the crawl has finished):
  images/<id[:2]>/<id>.<ext>  every distinct portrait, bytes as downloaded, named by SHA-256
  manifest.parquet           the raw manifest (core.schemas.RAW_MANIFEST): one row per distinct
                             image, `source_uri` = game page, `member` = image URL
  rejects.parquet            failed downloads with their reason, and duplicate images
  pages.parquet              game and character metadata (core.schemas.CRAWL_PAGES); a page the age
                             gate kept has page_status `gated`, one that could not be fetched or decoded
                             `failed` with the reason in page_failure, a portrait on another site
                             image_status `offsite` (and a reject row)
and `metrics/scrape/<crawl>.json` (pages by status, failed pages by reason, month listings the gate kept
or that failed, image errors by reason). A crawl with failed pages or listings still publishes: what it
read, and what it did not, with why; errors are not cached, so the next run fetches those again. A
domain reads the crawl with `source: {kind: folder, path: data/scrape/<crawl>/images}`; ids are SHA-256s,
so each image joins back to its page.

The crawl itself is Scrapy's job (concurrency, politeness, retries); this module runs it and writes the
tables, which scraping/tables.py builds from the items the crawl logged. State kept between runs in
`data/scrape-cache/<crawl>/` (a persistent DVC output): `http/`, the HTTP cache, so a re-run over crawled
months reads nothing from the site and yields the same bytes; and `job/`, Scrapy's JOBDIR while a crawl
is stopped halfway (Ctrl-C, SIGTERM, `close_after_pages`): the next run continues it. After a hard kill
the JOBDIR may have lost requests in flight, so it is dropped and the crawl starts over from the HTTP
cache; items already collected are kept and deduplicated.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.atomic import partial_dir, publish_dir, write_json_atomic
from core.layout import Layout
from core.params import CrawlParams, LoadedParams
from core.parquet import table_from_rows, write_table
from core.schemas import CRAWL_PAGES, RAW_MANIFEST, RAW_REJECTS
from preprocessing.ingest.outputs import prune_store
from scraping.tables import (
    check_page_statuses,
    crawl_metrics,
    failed_images,
    image_statuses,
    manifest_rows,
    page_rows,
    read_items,
    reject_rows,
    stored_images,
)

log = logging.getLogger("twingan.scrape")

PAUSED_MARK = "paused.json"  # written into JOBDIR when Scrapy stopped cleanly before the end


class CrawlIncomplete(RuntimeError):
    """The crawl stopped before the end (it resumes on the next run); nothing was published."""


@dataclass(frozen=True)
class CrawlPaths:
    out: Path
    staging: Path
    cache: Path
    jobdir: Path
    metrics: Path

    @classmethod
    def for_crawl(cls, loaded: LoadedParams, name: str) -> CrawlPaths:
        at = Layout(loaded.root)
        out, cache = at.scrape(name), at.scrape_cache(name)
        return cls(out, partial_dir(out), cache, cache / "job", at.metrics("scrape", name))


def _prepare(paths: CrawlPaths, crawl: CrawlParams) -> None:
    """Keep what a stopped run left only if it belongs to the same crawl parameters."""
    fingerprint = crawl.model_dump(mode="json", exclude={"close_after_pages"})
    mark = paths.staging / "crawl.json"
    if paths.staging.exists() and (not mark.exists() or json.loads(mark.read_text()) != fingerprint):
        shutil.rmtree(paths.staging)
        shutil.rmtree(paths.jobdir, ignore_errors=True)
    if paths.jobdir.exists() and not (paths.jobdir / PAUSED_MARK).exists():
        log.warning("scrape: the last crawl was killed hard; restarting it from the HTTP cache")
        shutil.rmtree(paths.jobdir)
    (paths.jobdir / PAUSED_MARK).unlink(missing_ok=True)
    paths.staging.mkdir(parents=True, exist_ok=True)
    paths.cache.mkdir(parents=True, exist_ok=True)
    write_json_atomic(mark, fingerprint)


def run_crawl(crawl: CrawlParams, paths: CrawlPaths) -> dict[str, Any]:
    """Run the spider to its end in this process (Twisted's reactor runs once per process)."""
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    from scraping.settings import crawl_settings, use_bundled_public_suffixes
    from scraping.spiders.getchu import GetchuSpider

    # The cookie middleware would otherwise download the public suffix list from publicsuffix.org, a host the
    # crawl never named (and a stall without network): the one change to Scrapy, made here rather than on import.
    use_bundled_public_suffixes()
    # Our logging (twingan/cli.py) stays in charge: Scrapy's own root handler would print everything twice.
    process = CrawlerProcess(
        crawl_settings(crawl, staging=paths.staging, cache=paths.cache, jobdir=paths.jobdir), install_root_handler=False
    )
    # Scrapy lowers the root logger to NOTSET; without this its per-request DEBUG lines would go through our
    # handler, which costs much of the crawl's CPU time (see the `scrape.py` section of benchmarks/README.md).
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("scrapy").setLevel(logging.WARNING)
    for name in ("scrapy.extensions.logstats", "scrapy.core.engine"):
        logging.getLogger(name).setLevel(logging.INFO)  # progress every minute, and start/stop
    crawler = process.create_crawler(GetchuSpider)
    closed: dict[str, Any] = {}

    def on_closed(spider: Any, reason: str) -> None:
        closed["reason"] = reason
        closed["stats"] = dict(crawler.stats.get_stats())

    crawler.signals.connect(on_closed, signal=signals.spider_closed)
    process.crawl(crawler, base_url=crawl.base_url, months=crawl.months(), genre=crawl.genre, gage=crawl.gage)
    process.start()
    return closed


def build_tables(crawl: CrawlParams, items_file: Path) -> dict[str, Any]:
    """Manifest, rejects, pages and metrics from the logged items: sorted, so the bytes are reproducible."""
    items = read_items(items_file)
    check_page_statuses(items.pages)
    stored, failed = stored_images(items.characters), failed_images(items.characters)
    manifest = manifest_rows(crawl.domain, stored)
    rejects = reject_rows(failed, stored)
    pages = page_rows(items.pages, items.characters, image_statuses(stored))
    metrics = crawl_metrics(items, manifest, pages, failed)
    return {"manifest": manifest, "rejects": rejects, "pages": pages, "metrics": metrics}


def _counts(by_reason: dict[str, int]) -> str:
    """`{"http_503": 2, "timeout": 1}` as "http_503 x2, timeout x1", for a log line."""
    return ", ".join(f"{reason} x{count}" for reason, count in by_reason.items()) or "none"


def run_scrape(loaded: LoadedParams, name: str) -> dict[str, Any]:
    crawl = loaded.crawl(name)
    paths = CrawlPaths.for_crawl(loaded, name)
    _prepare(paths, crawl)
    log.info(
        "scrape@%s: %s, months %s..%s (%d)",
        name,
        crawl.base_url,
        crawl.first_month,
        crawl.last_month,
        len(crawl.months()),
    )
    closed = run_crawl(crawl, paths)
    write_json_atomic(
        paths.cache / "last_run_stats.json",
        {k: v for k, v in closed.get("stats", {}).items() if isinstance(v, (int, float, str))},
    )
    reason = closed.get("reason", "unknown")
    if reason != "finished":
        paths.jobdir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(paths.jobdir / PAUSED_MARK, {"reason": reason})
        raise CrawlIncomplete(f"scrape@{name}: crawl stopped ({reason}); run it again to continue where it stopped")

    tables = build_tables(crawl, paths.staging / "items.jsonl")
    recorded = {"crawl": name, "params": crawl.model_dump(mode="json", exclude={"close_after_pages"})}
    # Images of failed or duplicate downloads; items.jsonl and crawl.json go once the tables are written.
    prune_store(paths.staging, tables["manifest"], also_keep=("items.jsonl", "crawl.json"))
    write_table(
        table_from_rows(tables["manifest"], RAW_MANIFEST), paths.staging / "manifest.parquet", RAW_MANIFEST, recorded
    )
    write_table(
        table_from_rows(tables["rejects"], RAW_REJECTS), paths.staging / "rejects.parquet", RAW_REJECTS, recorded
    )
    write_table(table_from_rows(tables["pages"], CRAWL_PAGES), paths.staging / "pages.parquet", CRAWL_PAGES, recorded)
    (paths.staging / "items.jsonl").unlink(missing_ok=True)
    (paths.staging / "crawl.json").unlink(missing_ok=True)
    publish_dir(paths.staging, paths.out)
    shutil.rmtree(paths.jobdir, ignore_errors=True)
    write_json_atomic(paths.metrics, tables["metrics"])
    m = tables["metrics"]
    if m["pages_by_status"]["gated"] or m["listings_gated"]:
        log.warning(
            "scrape@%s: the age gate kept %d game pages and %d month listings even with gc=gc (page_status "
            "'gated' in pages.parquet): the site's gate may have changed",
            name,
            m["pages_by_status"]["gated"],
            m["listings_gated"],
        )
    if m["pages_by_status"]["failed"] or m["listings_failed"]:
        undecodable = "undecodable" in {*m["pages_failed_by_reason"], *m["listings_failed_by_reason"]}
        log.warning(
            "scrape@%s: %d game page(s) and %d listing page(s) could not be read (pages: %s; listings: %s): "
            "page_status 'failed' and page_failure in pages.parquet, counts in the metrics. Errors are not cached, "
            "so running the crawl again fetches them%s",
            name,
            m["pages_by_status"]["failed"],
            m["listings_failed"],
            _counts(m["pages_failed_by_reason"]),
            _counts(m["listings_failed_by_reason"]),
            " (not the undecodable ones: the HTTP cache keeps them as the site served them)" if undecodable else "",
        )
    log.info(
        "scrape@%s: %d pages, %d portraits, %d images stored (%d duplicates), errors %s -> %s",
        name,
        m["pages"],
        m["portraits"],
        m["images_stored"],
        m["duplicates"],
        m["image_errors"] or "none",
        paths.out.relative_to(loaded.root),
    )
    return m
