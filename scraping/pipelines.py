"""Item pipelines: download and check each portrait, store it by content, log every item to disk.

`PortraitImagesPipeline` is a FilesPipeline (it keeps the original bytes; ImagesPipeline would
re-encode them, which depends on the Pillow version and breaks byte-identical rebuilds):
- each image request carries the game page as Referer (Getchu answers 403 without it, and media
  requests bypass Scrapy's RefererMiddleware) and a byte bound (`download_maxsize`);
- a downloaded image must decode and stay under the pixel bound (decompression bombs), checked from
  its header before any pixel is decoded; it is stored as `images/<sha256[:2]>/<sha256>.<ext>`, so the
  same art reused across editions is stored once;
- the outcome (stored, or the reason it failed) is written into the item, never dropped silently; a
  portrait the spider found on another site arrives already failed (`offsite`) and is not fetched.
`ItemLogPipeline` appends every item to `items.jsonl` as it arrives, so a stopped crawl loses nothing
that was already collected; `scraping/tables.py` builds the tables from that file.
"""

from __future__ import annotations

import hashlib
import json
from io import BytesIO
from pathlib import Path
from typing import Any

from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest
from scrapy.pipelines.files import FilesPipeline
from scrapy.pipelines.media import FileException
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure

from preprocessing.ingest.inspect import ImageProblem, describe_image, store_path

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
SCRAPE_KEYS = ("max_image_bytes", "max_image_pixels", "the portrait formats")
try:  # Scrapy >= 2.13 names the cancellation of an oversized download
    from scrapy.exceptions import DownloadCancelledError

    _CANCELLED: tuple[type[BaseException], ...] = (DownloadCancelledError,)
except ImportError:  # pragma: no cover
    _CANCELLED = ()


class ImageRejected(FileException):
    """A downloaded file that is not a usable portrait; `reason` goes into the item and the stats."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> dict[str, Any]:
    """What ingest would record for these bytes (the same check: `describe_image`), or ImageRejected."""
    try:
        facts = describe_image(data, max_bytes, max_pixels, FORMATS, keys=SCRAPE_KEYS)
    except ImageProblem as problem:
        raise ImageRejected(problem.reason.value, problem.detail) from None
    return {
        "sha256": facts.sha256,
        "format": facts.format,
        "mode": facts.mode,
        "width": facts.width,
        "height": facts.height,
        "exif_orientation": facts.exif_orientation,
        "byte_size": facts.byte_size,
        "path": store_path(facts.sha256, facts.format),
    }


class PortraitImagesPipeline(FilesPipeline):
    @classmethod
    def from_crawler(cls, crawler: Any) -> PortraitImagesPipeline:
        pipeline = super().from_crawler(crawler)
        pipeline.max_bytes = crawler.settings.getint("TWINGAN_MAX_IMAGE_BYTES")
        pipeline.max_pixels = crawler.settings.getint("TWINGAN_MAX_IMAGE_PIXELS")
        pipeline.stats = crawler.stats
        return pipeline

    def get_media_requests(self, item: Any, info: Any) -> list[Request]:
        if item.get("kind") != "character" or not item.get("image_url") or item.get("image"):
            return []  # not a portrait, or one the spider already judged (an image on another site: not fetched)
        return [
            Request(
                item["image_url"], headers={"Referer": item["page_url"]}, meta={"download_maxsize": self.max_bytes + 1}
            )
        ]

    def media_to_download(self, request: Request, info: Any, *, item: Any = None) -> None:
        return None  # always fetch (from the HTTP cache on a re-run): the name is only known from the bytes

    def media_downloaded(self, response: Any, request: Request, info: Any, *, item: Any = None) -> dict[str, Any]:
        if response.status != 200:
            raise ImageRejected(f"http_{response.status}")
        checked = check_image(response.body, self.max_bytes, self.max_pixels)
        self.store.persist_file(
            checked["path"],
            BytesIO(response.body),
            info,
            meta={"Content-Type": response.headers.get("Content-Type", b"").decode()},
        )
        return {"url": request.url, "status": "stored", **checked}

    def media_failed(self, failure: Failure, request: Request, info: Any) -> None:
        if failure.check(ImageRejected):
            failure.raiseException()
        if failure.check(CancelledError, *_CANCELLED) or "max size" in failure.getErrorMessage():
            # Scrapy cancels a download that outgrows download_maxsize, before reading the rest
            raise ImageRejected("too_large", f"more than {self.max_bytes} bytes")
        if failure.check(IgnoreRequest):  # robots.txt, offsite, ...
            raise ImageRejected("filtered", failure.getErrorMessage())
        raise ImageRejected("download_error", f"{failure.type.__name__}: {failure.getErrorMessage()}")

    def item_completed(self, results: list[tuple[bool, Any]], item: Any, info: Any) -> Any:
        if item.get("kind") != "character":
            return item
        if not results:
            item["image"] = item.get("image") or {"status": "failed", "reason": "no_request"}
        else:
            ok, value = results[0]
            if ok:
                item["image"] = value
            else:
                reason = getattr(value.value, "reason", "download_error")
                item["image"] = {"status": "failed", "reason": reason, "detail": str(value.value)}
        outcome = item["image"]["status"] if item["image"]["status"] == "stored" else item["image"]["reason"]
        self.stats.inc_value(f"scrape/images/{outcome}")
        return item

    def file_path(self, request: Request, response: Any = None, info: Any = None, *, item: Any = None) -> str:
        return "images/" + hashlib.sha256(request.url.encode()).hexdigest()  # unused: media_downloaded stores


class ItemLogPipeline:
    """Append each item as one JSON line and flush: what a stopped crawl collected stays on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> ItemLogPipeline:
        return cls(Path(crawler.settings.get("TWINGAN_ITEMS_FILE")))

    def open_spider(self, spider: Spider | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the crawl

    def close_spider(self, spider: Spider | None = None) -> None:
        if self.handle:
            self.handle.close()

    def process_item(self, item: Any, spider: Spider | None = None) -> Any:
        self.handle.write(json.dumps(dict(item), ensure_ascii=False, sort_keys=True) + "\n")
        self.handle.flush()
        return item
