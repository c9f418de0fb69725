"""What the Getchu spider yields: one `GamePageItem` per product page, one `CharacterItem` per portrait, and a
`ListingItem` per month listing page: read (`ok`), kept by the age gate (`gated`) or not fetched (`failed`), so a
lost listing is counted, not silent, and a later read of it (a resumed crawl) cancels an earlier loss.

Plain dicts with known keys (Scrapy items are dicts underneath); `scraping/tables.py` turns the collected
items into `pages.parquet` and the raw manifest, so their keys are the columns of those tables.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class GamePageItem(TypedDict):
    kind: str  # "page"
    game_id: int
    page_url: str
    status: str  # one of core.schemas.PAGE_STATUSES
    failure: NotRequired[str]  # status failed: why (scraping/failures.py), pages.parquet's page_failure
    title: str | None
    brand: str | None
    release_date: str | None
    release_text: str | None
    genre_tab: str | None
    characters: int


class CharacterItem(TypedDict, total=False):
    kind: str  # "character"
    game_id: int
    page_url: str
    title: str | None
    brand: str | None
    release_date: str | None
    character_index: int | None
    character_name: str | None
    cv: str | None
    image_url: str
    fullbody_url: str | None
    standard_name: bool
    image: dict[str, Any]  # set by the images pipeline: status, reason, path, sha256, size, format, ...
    # (set by the spider instead for a portrait on another site: failed, reason "offsite"; it is not fetched)


class ListingItem(TypedDict):
    kind: str  # "listing"
    month: str  # YYYY-MM
    url: str  # the listing page as first requested (before the gate retry and redirects): one key per page
    status: str  # ok | gated | failed
    failure: NotRequired[str]  # status failed: why (scraping/failures.py)
