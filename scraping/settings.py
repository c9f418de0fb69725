"""Scrapy settings of a crawl, built from its `scrape.<name>` section of params.yaml.

Politeness is the default: robots.txt obeyed, one download slot per host with `download_delay` as a
hard floor (not randomised below it, and AutoThrottle never goes under it), an identifying user agent
with a contact URL, retries on 5xx and timeouts with exponential backoff (scraping/middlewares.py).
Pages go through Scrapy's HTTP cache (errors other than 404/410 and the age gate are not cached, so they
are retried next time); a crawl is resumable through JOBDIR.

A Scrapy project keeps its settings as constants of a settings module; here `crawl_settings` builds them,
because they come from params.yaml. `use_bundled_public_suffixes` is the one change to Scrapy itself, made
by the stage where it builds the crawler (flows/scrape.py `run_crawl`), not on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.params import CrawlParams

RETRY_CODES = [500, 502, 503, 504, 522, 524, 408, 429]


def crawl_settings(params: CrawlParams, *, staging: Path, cache: Path, jobdir: Path) -> dict[str, Any]:
    return {
        "BOT_NAME": "twingan",
        "SPIDER_MODULES": ["scraping.spiders"],
        "USER_AGENT": params.user_agent.format(contact=params.contact_url),
        "ROBOTSTXT_OBEY": params.obey_robots,
        "DOWNLOAD_DELAY": params.download_delay,
        "RANDOMIZE_DOWNLOAD_DELAY": False,  # randomising goes down to 0.5x the delay
        "CONCURRENT_REQUESTS": params.concurrency_per_domain,
        "CONCURRENT_REQUESTS_PER_DOMAIN": params.concurrency_per_domain,
        "AUTOTHROTTLE_ENABLED": params.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(params.download_delay, 0.1),
        "AUTOTHROTTLE_MAX_DELAY": 60.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": params.autothrottle_target_concurrency,
        "RETRY_ENABLED": True,
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "scraping.middlewares.BackoffRetryMiddleware": 550,
        },
        "RETRY_BACKOFF_BASE": params.retry_backoff_seconds,
        "RETRY_BACKOFF_MAX": 60.0,
        "RETRY_TIMES": params.retries,
        "RETRY_HTTP_CODES": RETRY_CODES,
        "DOWNLOAD_TIMEOUT": params.timeout_seconds,
        "DOWNLOAD_MAXSIZE": max(params.max_image_bytes, 16 * 1024 * 1024),  # pages; images get their own
        "COOKIES_ENABLED": True,
        "HTTPCACHE_ENABLED": params.http_cache,
        "HTTPCACHE_DIR": str(cache / "http"),
        "HTTPCACHE_POLICY": "scraping.middlewares.CrawlCachePolicy",  # never expire; no gate, no error but 404/410
        "HTTPCACHE_IGNORE_HTTP_CODES": RETRY_CODES,  # (CrawlCachePolicy refuses every other error status too)
        "HTTPCACHE_GZIP": True,
        "JOBDIR": str(jobdir),
        "CLOSESPIDER_PAGECOUNT": params.close_after_pages,
        "MEDIA_ALLOW_REDIRECTS": True,
        "FILES_STORE": str(staging),
        "ITEM_PIPELINES": {
            "scraping.pipelines.PortraitImagesPipeline": 200,
            "scraping.pipelines.ItemLogPipeline": 900,
        },
        "TWINGAN_ITEMS_FILE": str(staging / "items.jsonl"),
        "TWINGAN_MAX_IMAGE_BYTES": params.max_image_bytes,
        "TWINGAN_MAX_IMAGE_PIXELS": params.max_image_pixels,
        "LOG_LEVEL": "INFO",
        "LOG_FORMATTER": "scrapy.logformatter.LogFormatter",
        "TELNETCONSOLE_ENABLED": False,
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
        "FEED_EXPORT_ENCODING": "utf-8",
    }


def use_bundled_public_suffixes() -> None:
    """Make Scrapy's cookie middleware use tldextract's bundled public suffix list, never a download.

    The middleware asks tldextract for public suffixes, and tldextract downloads the list from
    publicsuffix.org on first use: a request to a host the crawl never named (and a stall where there is
    no network). Its bundled snapshot is enough to tell a public suffix from a site. This replaces a
    private attribute of the middleware's module (`cookies._split_domain`), so it is called only where the
    crawler is built, never on import.
    """
    try:
        from scrapy.downloadermiddlewares import cookies
        from tldextract import TLDExtract
    except ImportError:  # pragma: no cover - scrapy is a dependency
        return
    cookies._split_domain = TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)
