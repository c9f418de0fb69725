"""Pure parsing of Getchu pages, one module per thing parsed: page decoding (`encoding`), URLs and the age gate
(`urls`), month/search listings (`listing`), product pages (`game_page`), and the text helpers the last two share.

Everything here is a plain function of (bytes or text, URL) so it can be tested on synthetic snippets and on saved
real pages without Scrapy. The spider fetches; this package decides what a page says.
"""

from __future__ import annotations

from scraping.parsing.encoding import PageDecodeError, decode_page, page_charset
from scraping.parsing.game_page import BUST_FILENAME_RE, Character, GamePage, bust_index, parse_game_page
from scraping.parsing.listing import LISTING_LAYOUTS, Listing, ListingEntry, ListingLayout, parse_listing
from scraping.parsing.urls import game_id_from_url, gate_target, is_age_gate, is_gate_url, on_site, with_age_flag

__all__ = [
    "BUST_FILENAME_RE",
    "LISTING_LAYOUTS",
    "Character",
    "GamePage",
    "Listing",
    "ListingEntry",
    "ListingLayout",
    "PageDecodeError",
    "bust_index",
    "decode_page",
    "game_id_from_url",
    "gate_target",
    "is_age_gate",
    "is_gate_url",
    "on_site",
    "page_charset",
    "parse_game_page",
    "parse_listing",
    "with_age_flag",
]
