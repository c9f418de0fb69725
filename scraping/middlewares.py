"""Downloader middlewares, and the HTTP cache policy.

`BackoffRetryMiddleware`: Scrapy's retry middleware retries a 5xx or a timeout at once. A site that
answers 503 is usually overloaded, and hammering it again is impolite and rarely works. This subclass
raises the delay of the site's download slot on every retry, exponentially (`RETRY_BACKOFF_BASE * 2^(n-1)`
seconds, at most `RETRY_BACKOFF_MAX`), so the retry and everything else queued for that site wait;
successful responses then halve the extra delay back toward the configured `DOWNLOAD_DELAY`.

`CrawlCachePolicy`: crawled pages never expire (Scrapy's DummyPolicy), but only what the site said is
cached, not a failure to read it. Not cached: the age gate (a redirect to `/php/attestation.html`, and the
gate page itself), since whether a page is gated depends on the cookie of that moment; and every error
status except 404 and 410 (a page or image that is gone, recorded as such), so a 403 from a firewall or a
501 or 520 that is not among the retried codes is fetched again next time, like a 503 or a timeout.
Cached, either would replay on every later run and the page would stay `gated` or `failed` even once the
site answers. A complete 200 the spider cannot decode is cached like any page: it is what the site served.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from scrapy import Request
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.extensions.httpcache import DummyPolicy
from scrapy.http import Response

from scraping.parsing import is_gate_url


class BackoffRetryMiddleware(RetryMiddleware):
    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.base = settings.getfloat("RETRY_BACKOFF_BASE", 2.0)
        self.ceiling = settings.getfloat("RETRY_BACKOFF_MAX", 60.0)
        self.floor = settings.getfloat("DOWNLOAD_DELAY", 0.0)
        self.raised: set[str] = set()  # slots whose delay this middleware raised

    def _slot(self, request: Request) -> tuple[str | None, Any]:
        key = request.meta.get("download_slot")
        engine = getattr(self.crawler, "engine", None)
        if key is None or engine is None:
            return None, None
        return key, engine.downloader.slots.get(key)

    def _retry(self, request: Request, reason: Any) -> Request | None:
        retried = super()._retry(request, reason)
        key, slot = self._slot(request)
        if retried is not None and slot is not None and key is not None:
            wait = min(self.ceiling, self.base * 2 ** (retried.meta.get("retry_times", 1) - 1))
            if wait > slot.delay:
                slot.delay = wait
                self.raised.add(key)
                self.crawler.stats.inc_value("scrape/backoff/raised")
        return retried

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Any:
        result = super().process_response(request, response)
        if result is response and 200 <= response.status < 400:
            key, slot = self._slot(request)
            if key in self.raised and slot is not None:
                slot.delay = max(self.floor, self.floor + (slot.delay - self.floor) / 2)
                if slot.delay - self.floor < 0.01:
                    slot.delay = self.floor
                    self.raised.discard(key)
        return result


#: The error statuses that are an answer (the page is gone), cached like a page; any other error status is not.
CACHED_ERRORS = (404, 410)


class CrawlCachePolicy(DummyPolicy):
    """DummyPolicy that never stores the age gate or an error status but 404/410: see the module docstring."""

    def should_cache_response(self, response: Response, request: Request) -> bool:
        if response.status >= 400 and response.status not in CACHED_ERRORS:
            return False
        if is_gate_url(response.url):
            return False
        location = response.headers.get("Location")
        redirect = urljoin(response.url, location.decode("latin-1")) if location else ""
        if 300 <= response.status < 400 and is_gate_url(redirect):
            return False
        return super().should_cache_response(response, request)
