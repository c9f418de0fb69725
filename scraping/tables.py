"""The scrape stage's tables, built from the items a crawl logged (`items.jsonl`, scraping/pipelines.py).

One builder per output: `manifest_rows` (the raw manifest, one row per distinct image), `reject_rows` (failed
downloads and duplicate images), `page_rows` (pages.parquet: one row per character, or per page without one)
and `crawl_metrics`. Every table is sorted, so the same items give the same bytes whatever order the crawl
logged them in. flows/scrape.py reads the items, calls these and writes the tables.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.schemas import PAGE_STATUSES, UNREAD_STATUSES
from preprocessing.ingest.reasons import Reason

log = logging.getLogger("twingan.scrape")

Item = dict[str, Any]
#: A portrait's key: (game id, image URL). One character item per key is kept (the first logged).
CharacterKey = tuple[int, str]

#: pages.parquet's character columns, all None on the row of a page without characters.
CHARACTER_COLUMNS = (
    "character_index",
    "character_name",
    "cv",
    "image_url",
    "fullbody_url",
    "standard_name",
    "image_status",
    "image_id",
)


@dataclass
class CrawlItems:
    """What a crawl logged: pages by game, characters by (game, image URL), listing pages by URL."""

    pages: dict[int, Item]
    characters: dict[CharacterKey, Item]
    listings: dict[str, Item]

    @property
    def gated_months(self) -> set[str]:
        """Months with a listing page the age gate kept (and no later record that read it)."""
        return {listing["month"] for listing in self.listings.values() if listing["status"] == "gated"}

    @property
    def failed_listings(self) -> list[Item]:
        """Listing pages that could not be fetched or decoded (and no later record that read them), by URL."""
        return [self.listings[url] for url in sorted(self.listings) if self.listings[url]["status"] == "failed"]


def _keep(known: Item | None, item: Item) -> bool:
    """Whether `item` replaces the record `known` of the same page: the first wins, except that a record that did not
    read the page (gated, failed) gives way to a later one that did (a resumed or restarted crawl got through)."""
    return known is None or (known["status"] in UNREAD_STATUSES and item["status"] not in UNREAD_STATUSES)


def read_items(path: Path) -> CrawlItems:
    """The logged items; a resumed or restarted crawl may have logged some twice (see `_keep`)."""
    items = CrawlItems({}, {}, {})
    if not path.exists():
        return items
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:  # the last line of a hard-killed run may be cut
                log.warning("scrape: %s line %d is not JSON (a cut write); skipped", path.name, number)
                continue
            if item.get("kind") == "page":
                if _keep(items.pages.get(item["game_id"]), item):
                    items.pages[item["game_id"]] = item
            elif item.get("kind") == "character":
                items.characters.setdefault((item["game_id"], item["image_url"]), item)
            elif item.get("kind") == "listing" and _keep(items.listings.get(item["url"]), item):
                items.listings[item["url"]] = item
    return items


def check_page_statuses(pages: dict[int, Item]) -> None:
    """ValueError for a page status pages.parquet does not declare (core.schemas.PAGE_STATUSES)."""
    unknown = sorted({page["status"] for page in pages.values()} - set(PAGE_STATUSES))
    if unknown:
        raise ValueError(f"crawl_pages: page status {unknown} is not one of {PAGE_STATUSES} (core/schemas.py)")


def _image(item: Item) -> dict[str, Any]:
    """A character's download outcome; one the images pipeline never reported counts as not downloaded."""
    return item.get("image") or {"status": "failed", "reason": "not_downloaded"}


def failed_images(characters: dict[CharacterKey, Item]) -> list[Item]:
    """The characters whose portrait was not stored, in log order."""
    return [item for item in characters.values() if _image(item).get("status") != "stored"]


def stored_images(characters: dict[CharacterKey, Item]) -> dict[str, list[Item]]:
    """The characters whose portrait was stored, grouped by the image's SHA-256 (in SHA-256 order).

    Each group is sorted by (page URL, image URL): its first character is the one the manifest keeps, the
    others are duplicates of it."""
    stored: dict[str, list[Item]] = {}
    for item in characters.values():
        image = _image(item)
        if image.get("status") == "stored":
            stored.setdefault(image["sha256"], []).append(item)
    return {sha: sorted(stored[sha], key=lambda i: (i["page_url"], i["image_url"])) for sha in sorted(stored)}


def manifest_rows(domain: str, stored: dict[str, list[Item]]) -> list[Item]:
    """The raw manifest (core.schemas.RAW_MANIFEST): one row per distinct image, `source_uri` = game page,
    `member` = image URL, and how many other characters had the same bytes."""
    manifest = []
    for sha, (first, *others) in stored.items():
        image = first["image"]
        manifest.append(
            {
                "id": sha,
                "domain": domain,
                "source_uri": first["page_url"],
                "member": first["image_url"],
                "path": image["path"],
                "format": image["format"],
                "mode": image["mode"],
                "width": image["width"],
                "height": image["height"],
                "exif_orientation": image.get("exif_orientation", 1),
                "byte_size": image["byte_size"],
                "duplicates": len(others),
            }
        )
    return manifest


def reject_rows(failed: Iterable[Item], stored: dict[str, list[Item]]) -> list[Item]:
    """rejects.parquet (core.schemas.RAW_REJECTS): failed downloads with their reason, then the duplicates of
    each stored image, sorted by (image URL, page URL, reason)."""
    rejects: list[Item] = []
    for item in failed:
        image = _image(item)
        rejects.append(
            {
                "source_uri": item["page_url"],
                "member": item["image_url"],
                "reason": image.get("reason", "download_error"),
                "detail": image.get("detail", ""),
                "byte_size": None,
                "sha256": None,
                "duplicate_of": None,
            }
        )
    for sha, (first, *others) in stored.items():
        for other in others:
            rejects.append(
                {
                    "source_uri": other["page_url"],
                    "member": other["image_url"],
                    "reason": Reason.DUPLICATE.value,
                    "detail": f"same bytes as {first['image_url']}",
                    "byte_size": first["image"]["byte_size"],
                    "sha256": sha,
                    "duplicate_of": sha,
                }
            )
    rejects.sort(key=lambda row: (row["member"], row["source_uri"], row["reason"]))
    return rejects


def image_statuses(stored: dict[str, list[Item]]) -> dict[CharacterKey, str]:
    """`stored` for the character each manifest row keeps, `duplicate` for the others with the same bytes."""
    status: dict[CharacterKey, str] = {}
    for first, *others in stored.values():
        status[(first["game_id"], first["image_url"])] = "stored"
        for other in others:
            status[(other["game_id"], other["image_url"])] = "duplicate"
    return status


def _page_columns(game_id: int, page: Item) -> Item:
    """The columns of pages.parquet that describe the game page, repeated on each of its character rows."""
    return {
        "game_id": game_id,
        "page_url": page["page_url"],
        "page_status": page["status"],
        "page_failure": (page.get("failure") or "unknown") if page["status"] == "failed" else None,
        "title": page.get("title"),
        "brand": page.get("brand"),
        "release_date": page.get("release_date"),
        "release_text": page.get("release_text"),
        "genre_tab": page.get("genre_tab"),
    }


def page_rows(
    pages: dict[int, Item], characters: dict[CharacterKey, Item], image_status: dict[CharacterKey, str]
) -> list[Item]:
    """pages.parquet (core.schemas.CRAWL_PAGES): game and character metadata, one row per character of each page
    (by character index, then image URL) and one row for a page without characters, by game id.

    A character's image_status is `stored` or `duplicate` (`image_statuses`), else why its download failed."""
    by_game: dict[int, list[Item]] = {}
    for (game_id, _), character in characters.items():
        by_game.setdefault(game_id, []).append(character)
    rows = []
    for game_id, page in sorted(pages.items()):
        own = sorted(by_game.get(game_id, ()), key=lambda c: (c.get("character_index") or 0, c["image_url"]))
        base = _page_columns(game_id, page)
        if not own:
            rows.append({**base, **dict.fromkeys(CHARACTER_COLUMNS)})
        for c in own:
            image = c.get("image") or {}
            status = image_status.get((game_id, c["image_url"])) or image.get("reason", "not_downloaded")
            rows.append(
                {
                    **base,
                    "character_index": c.get("character_index"),
                    "character_name": c.get("character_name"),
                    "cv": c.get("cv"),
                    "image_url": c["image_url"],
                    "fullbody_url": c.get("fullbody_url"),
                    "standard_name": c.get("standard_name"),
                    "image_status": status,
                    "image_id": image.get("sha256") if image.get("status") == "stored" else None,
                }
            )
    return rows


def crawl_metrics(items: CrawlItems, manifest: list[Item], rows: list[Item], failed: list[Item]) -> Item:
    """metrics/scrape/<crawl>.json: pages by status, failed pages by reason, month listings the gate kept or that
    failed, portraits, images stored and their duplicates, image errors by reason, bytes stored."""
    page_counts = Counter(page["status"] for page in items.pages.values())
    page_failures = Counter(row["page_failure"] for row in rows if row["page_status"] == "failed")
    listing_failures = Counter(listing.get("failure") or "unknown" for listing in items.failed_listings)
    image_errors = Counter(_image(item).get("reason", "download_error") for item in failed)
    return {
        "pages": len(items.pages),
        "pages_by_status": {k: page_counts.get(k, 0) for k in PAGE_STATUSES},
        "pages_failed_by_reason": dict(sorted(page_failures.items())),
        "listings_gated": len(items.gated_months),
        "listings_failed": len(items.failed_listings),
        "listings_failed_by_reason": dict(sorted(listing_failures.items())),
        "portraits": len(items.characters),
        "images_stored": len(manifest),
        "duplicates": sum(row["duplicates"] for row in manifest),
        "image_errors": dict(sorted(image_errors.items())),
        "bytes_stored": sum(row["byte_size"] for row in manifest),
    }
