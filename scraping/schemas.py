"""The Parquet schema of a crawl's `pages.parquet` (its images use the raw manifest schema)."""

from __future__ import annotations

import pyarrow as pa

from twingan.parquet import declare

#: Every `page_status`, in the order the metrics list them; a closed set, checked when pages.parquet is built.
#: ok (portraits found), no_characters (a game without portraits), missing (404 or an empty shell), not_a_game
#: (another genre tab), gated (the age gate kept the page even after gc=gc: nothing of it was read), failed (the
#: page could not be fetched or decoded, after the retries: nothing of it was read; why is in `page_failure`).
PAGE_STATUSES = ("ok", "no_characters", "missing", "not_a_game", "gated", "failed")

#: Pages the crawl did not read: a later record of the same game that did read it wins (flows/scrape.py).
UNREAD_STATUSES = ("gated", "failed")

# Version 2 added page_failure.
CRAWL_PAGES = declare(
    "crawl_pages",
    2,
    [
        # One row per portrait; a game page without portraits (or missing, gated, failed) has one row with no character.
        pa.field("game_id", pa.int64(), nullable=False),
        pa.field("page_url", pa.string(), nullable=False),
        pa.field("page_status", pa.string(), nullable=False),  # one of PAGE_STATUSES
        # For a failed page, why (scraping/failures.py): http_<status>, timeout, dns, connection, undecodable,
        # robots, ...; null for every other status.
        pa.field("page_failure", pa.string()),
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
        pa.field("image_status", pa.string()),  # stored | duplicate | the failure reason (offsite: not fetched)
        pa.field("image_id", pa.string()),  # sha256: the id in manifest.parquet
    ],
)
