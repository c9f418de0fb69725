"""Getchu: monthly release listings -> game pages -> one item per character portrait.

The spider only decides what to request and what to yield. Decoding (EUC-JP with NEC and JIS X 0213
characters) and every selector live in `scraping/parsing.py`, one place per page layout.

Age gate: the first request seeds the `getchu_adalt_flag` cookie (`top.html?gc=gc`), every gated
request also carries the cookie and `gc=gc`, and a response that still lands on the gate (the newer
`soft.phtml` -> `/item/N/` redirect drops the query) is re-requested once with `gc=gc` added to its
`aurl` target. Links leave the listing only for the same host (OffsiteMiddleware enforces it too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response

from scraping.items import CharacterItem, GamePageItem
from scraping.parsing import (
    PageDecodeError,
    decode_page,
    game_id_from_url,
    gate_target,
    is_age_gate,
    page_charset,
    parse_game_page,
    parse_listing,
    with_age_flag,
)

AGE_COOKIE = {"getchu_adalt_flag": "getchu.com"}
MISSING_STATUSES = [404, 410]  # a deleted product: recorded as missing, not retried
GAME_TABS = (None, "/pc/", "/dvdpg/", "/dl/")  # pages reached by accident under another tab are skipped


class GetchuSpider(scrapy.Spider):
    name = "getchu"

    def __init__(
        self, base_url: str, months: list[tuple[int, int]], genre: str = "pc_soft", gage: str = "all", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")
        self.months = months
        self.genre = genre
        self.gage = gage
        self.allowed_domains = [urlsplit(self.base_url).hostname or ""]

    def listing_url(self, year: int, month: int) -> str:
        return f"{self.base_url}/all/month_title.html?genre={self.genre}&gage={self.gage}&year={year}&month={month:02d}"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield scrapy.Request(
            f"{self.base_url}/top.html?gc=gc",
            callback=self.parse_seed,
            cookies=AGE_COOKIE,
            dont_filter=True,
            priority=100,
        )

    def parse_seed(self, response: Response) -> Iterator[scrapy.Request]:
        for year, month in self.months:
            yield scrapy.Request(
                self.listing_url(year, month),
                callback=self.parse_listing,
                cookies=AGE_COOKIE,
                cb_kwargs={"month": f"{year}-{month:02d}"},
            )

    def _text(self, response: Response) -> str | None:
        try:
            return decode_page(
                response.body, page_charset(response.headers.get("Content-Type", b"").decode("latin-1"), response.body)
            )
        except PageDecodeError as error:
            self.crawler.stats.inc_value("scrape/pages/undecodable")
            self.logger.error("cannot decode %s: %s", response.url, error)
            return None

    def _past_gate(self, response: Response, html: str, callback: Any, **cb_kwargs: Any) -> scrapy.Request | None:
        """The request that gets past the age gate, once; None when this response is not the gate."""
        if not is_age_gate(html, response.url):
            return None
        self.crawler.stats.inc_value("scrape/gate/hit")
        target = gate_target(response.url) or response.request.url
        if response.meta.get("gate_retried"):
            self.crawler.stats.inc_value("scrape/gate/stuck")
            self.logger.error("still on the age gate after gc=gc: %s", target)
            return None
        return scrapy.Request(
            with_age_flag(target),
            callback=callback,
            cookies=AGE_COOKIE,
            dont_filter=True,
            meta={"gate_retried": True},
            cb_kwargs=cb_kwargs,
        )

    def parse_listing(self, response: Response, month: str) -> Iterator[scrapy.Request]:
        html = self._text(response)
        if html is None:
            return
        retry = self._past_gate(response, html, self.parse_listing, month=month)
        if retry is not None or is_age_gate(html, response.url):
            if retry is not None:
                yield retry
            return
        listing = parse_listing(html, response.url)
        self.crawler.stats.inc_value("scrape/listings")
        self.crawler.stats.inc_value(f"scrape/listings/layout/{listing.layout}")
        if listing.empty:
            self.crawler.stats.inc_value("scrape/listings/empty")
        for entry in listing.entries:
            yield scrapy.Request(
                with_age_flag(entry.url),
                callback=self.parse_game,
                cookies=AGE_COOKIE,
                meta={"handle_httpstatus_list": MISSING_STATUSES},
            )
        for page in listing.next_pages:
            yield scrapy.Request(page, callback=self.parse_listing, cookies=AGE_COOKIE, cb_kwargs={"month": month})

    def parse_game(self, response: Response) -> Iterator[Any]:
        html = self._text(response)
        if html is None:
            return
        retry = self._past_gate(response, html, self.parse_game)
        if retry is not None or is_age_gate(html, response.url):
            if retry is not None:
                yield retry
            return
        page = parse_game_page(html, response.url)
        game_id = page.game_id or game_id_from_url(response.url) or game_id_from_url(response.request.url) or 0
        status = "ok"
        if page.missing or response.status in MISSING_STATUSES:
            status = "missing"
        elif page.genre_tab not in GAME_TABS:
            status = "not_a_game"
        elif not any(c.image_url for c in page.characters):
            status = "no_characters"
        self.crawler.stats.inc_value(f"scrape/pages/{status}")
        portraits = [c for c in page.characters if c.image_url] if status == "ok" else []
        game = {"game_id": game_id, "page_url": response.url, "title": page.title, "brand": page.brand,
                "release_date": page.release_date}  # fmt: skip
        yield GamePageItem(kind="page", **game, status=status, release_text=page.release_text,
                           genre_tab=page.genre_tab, characters=len(portraits))  # fmt: skip
        for character in portraits:
            if not character.standard_name:
                self.crawler.stats.inc_value("scrape/portraits/non_standard_name")
            yield CharacterItem(kind="character", **game, character_index=character.index,
                                character_name=character.name, cv=character.cv,
                                image_url=character.image_url or "", fullbody_url=character.fullbody_url,
                                standard_name=character.standard_name)  # fmt: skip
