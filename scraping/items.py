"""What the Getchu spider yields: one `GamePageItem` per product page, one `CharacterItem` per portrait.

Plain dicts with known keys (Scrapy items are dicts underneath); `flows/scrape.py` turns the collected
items into `pages.parquet` and the raw manifest, so their keys are the columns of those tables.
"""

from __future__ import annotations

from typing import Any, TypedDict


class GamePageItem(TypedDict):
    kind: str  # "page"
    game_id: int
    page_url: str
    status: str  # ok | no_characters | missing | not_a_game
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
