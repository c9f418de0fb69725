"""The Parquet schema of a crawl's `pages.parquet` (its images use the raw manifest schema)."""

from __future__ import annotations

import pyarrow as pa

from twingan.parquet import declare

CRAWL_PAGES = declare(
    "crawl_pages",
    1,
    [
        # One row per portrait; a game page without portraits (or missing) has one row with no character.
        pa.field("game_id", pa.int64(), nullable=False),
        pa.field("page_url", pa.string(), nullable=False),
        pa.field("page_status", pa.string(), nullable=False),  # ok | no_characters | missing | not_a_game
        pa.field("title", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("release_date", pa.string()),  # ISO date when the page gives one
        pa.field("release_text", pa.string()),
        pa.field("genre_tab", pa.string()),
        pa.field("character_index", pa.int32()),
        pa.field("character_name", pa.string()),
        pa.field("cv", pa.string()),
        pa.field("image_url", pa.string()),
        pa.field("fullbody_url", pa.string()),
        pa.field("standard_name", pa.bool_()),
        pa.field("image_status", pa.string()),  # stored | duplicate | the failure reason
        pa.field("image_id", pa.string()),  # sha256: the id in manifest.parquet
    ],
)
