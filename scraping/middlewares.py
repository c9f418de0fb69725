"""Downloader middlewares.

`BackoffRetryMiddleware`: Scrapy's retry middleware retries a 5xx or a timeout at once. A site that
answers 503 is usually overloaded, and hammering it again is impolite and rarely works. This subclass
raises the delay of the site's download slot on every retry, exponentially (`RETRY_BACKOFF_BASE * 2^(n-1)`
seconds, at most `RETRY_BACKOFF_MAX`), so the retry and everything else queued for that site wait;
successful responses then halve the extra delay back toward the configured `DOWNLOAD_DELAY`.
"""

from __future__ import annotations

from typing import Any

from scrapy import Request
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response


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
