"""Getchu: monthly release listings -> game pages -> one item per character portrait.

The spider only decides what to request and what to yield. Decoding (EUC-JP with NEC and JIS X 0213
characters) and every selector live in `scraping/parsing/`, one place per page layout.

Age gate: the first request seeds the `getchu_adalt_flag` cookie (`top.html?gc=gc`), every gated
request also carries the cookie and `gc=gc`, and a response that still lands on the gate (the newer
`soft.phtml` -> `/item/N/` redirect drops the query) is re-requested once with `gc=gc` added to its
`aurl` target. Where robots.txt forbids `/php/attestation.html`, a redirect to the gate is never
fetched: Scrapy's robots middleware raises IgnoreRequest before any callback runs, so the errback
`not_fetched` runs the same fallback from the redirect's `aurl`. A page still gated after that
is recorded with status `gated` (a listing as a `ListingItem`) and counted, never dropped.

Any other page that cannot be read (an HTTP error but the 404/410 recorded as missing, a timeout or a
lost connection after Scrapy's retries, robots.txt, a body no encoding decodes) is recorded too: a
game page with status `failed` and the reason (scraping/failures.py), a listing as a failed
`ListingItem`. Every listing page read yields an `ok` ListingItem, so a resumed crawl that reads a
listing an earlier run lost cancels the loss. A seed request that fails still sends the listings.
Links leave the listing only for the same site (OffsiteMiddleware enforces it too); a portrait on
another site is reported as an `offsite` image failure, not fetched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.response import response_status_message
from twisted.python.failure import Failure

from scraping.failures import failure_reason
from scraping.items import CharacterItem, GamePageItem, ListingItem
from scraping.parsing import (
    PageDecodeError,
    decode_page,
    game_id_from_url,
    gate_target,
    is_age_gate,
    is_gate_url,
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
            errback=self.seed_failed,
            cookies=AGE_COOKIE,
            dont_filter=True,
            priority=100,
        )

    def parse_seed(self, response: Response) -> Iterator[scrapy.Request]:
        yield from self._month_listings()

    def seed_failed(self, failure: Failure) -> list[scrapy.Request]:
        """Errback of the seed: it only seeds the cookie, which every request also carries, so the listings are
        requested anyway; if the site is down they fail in turn and are counted, instead of a crawl of nothing."""
        self.crawler.stats.inc_value("scrape/seed/failed")
        self.logger.warning("the seed request failed (%s); requesting the listings anyway", failure_reason(failure))
        return list(self._month_listings())

    def _month_listings(self) -> Iterator[scrapy.Request]:
        for year, month in self.months:
            yield self._listing_request(self.listing_url(year, month), f"{year}-{month:02d}")

    def _listing_request(
        self, url: str, month: str, *, gate_retried: bool = False, listing_url: str | None = None
    ) -> scrapy.Request:
        """A month listing; `listing_url` is the listing page as first requested, which names it in its
        ListingItem whatever URL finally answers."""
        meta = {"listing_url": listing_url or url}
        return self._request(url, self.parse_listing, meta, gate_retried, cb_kwargs={"month": month})

    def _game_request(self, url: str, *, gate_retried: bool = False) -> scrapy.Request:
        """A game page; a 404 or 410 comes to the callback (recorded missing) instead of being dropped."""
        return self._request(url, self.parse_game, {"handle_httpstatus_list": MISSING_STATUSES}, gate_retried)

    def _request(
        self, url: str, callback: Any, meta: dict[str, Any], gate_retried: bool, cb_kwargs: dict[str, Any] | None = None
    ) -> scrapy.Request:
        """A page request with the age cookie, whose failures are recorded (`not_fetched`); `gate_retried` marks
        the one retry past the age gate (not deduplicated)."""
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.not_fetched,
            cookies=AGE_COOKIE,
            cb_kwargs=cb_kwargs or {},
            meta={**meta, "gate_retried": True} if gate_retried else meta,
            dont_filter=gate_retried,
        )

    def _text(self, response: Response) -> str | None:
        """The decoded page, or None (logged and counted) when no encoding decodes it: the caller records it failed."""
        try:
            return decode_page(
                response.body, page_charset(response.headers.get("Content-Type", b"").decode("latin-1"), response.body)
            )
        except PageDecodeError as error:
            self.crawler.stats.inc_value("scrape/pages/undecodable")
            self.logger.warning("cannot decode %s (recorded as failed): %s", response.url, error)
            return None

    def _failed(self, request: scrapy.Request, reason: str, url: str | None = None) -> Iterator[Any]:
        """The record of a page that was not read: a failed ListingItem, or a GamePageItem with status failed.

        `request` is the request that failed (its callback says which kind of page), `url` where it failed when that
        is not the request's own URL (a response after redirects)."""
        url = url or request.url
        if request.callback == self.parse_listing:
            self.crawler.stats.inc_value("scrape/listings/failed")
            self.crawler.stats.inc_value(f"scrape/listings/failed/{reason}")
            yield ListingItem(kind="listing", month=request.cb_kwargs["month"],
                              url=request.meta.get("listing_url", url), status="failed", failure=reason)  # fmt: skip
            return
        self.crawler.stats.inc_value("scrape/pages/failed")
        self.crawler.stats.inc_value(f"scrape/pages/failed/{reason}")
        first = (request.meta.get("redirect_urls") or [request.url])[0]
        game_id = game_id_from_url(url) or game_id_from_url(first) or 0
        yield GamePageItem(kind="page", game_id=game_id, page_url=url, status="failed", title=None, brand=None,
                           release_date=None, release_text=None, genre_tab=None, characters=0,
                           failure=reason)  # fmt: skip

    def _on_gate(self, gate_url: str, request: scrapy.Request) -> Iterator[Any]:
        """Past the age gate: the request for its target with gc=gc, once; after that, the page is recorded gated.

        `gate_url` is where the gate was met (a fetched gate page, or a redirect to it that was not fetched);
        `request` is the request that met it, whose callback says whether a listing or a game page was lost.
        """
        self.crawler.stats.inc_value("scrape/gate/hit")
        target = gate_target(gate_url) or request.url
        is_listing = request.callback == self.parse_listing
        if not request.meta.get("gate_retried"):
            if is_listing:
                month, listing = request.cb_kwargs["month"], request.meta.get("listing_url")
                yield self._listing_request(with_age_flag(target), month, gate_retried=True, listing_url=listing)
            else:
                yield self._game_request(with_age_flag(target), gate_retried=True)
            return
        self.crawler.stats.inc_value("scrape/gate/stuck")
        self.logger.error("still on the age gate after gc=gc (recorded as gated): %s", target)
        if is_listing:
            self.crawler.stats.inc_value("scrape/listings/gated")
            listing = request.meta.get("listing_url", target)
            yield ListingItem(kind="listing", month=request.cb_kwargs["month"], url=listing, status="gated")
            return
        self.crawler.stats.inc_value("scrape/pages/gated")
        first = (request.meta.get("redirect_urls") or [request.url])[0]
        game_id = game_id_from_url(target) or game_id_from_url(first) or 0
        yield GamePageItem(kind="page", game_id=game_id, page_url=target, status="gated", title=None, brand=None,
                           release_date=None, release_text=None, genre_tab=None, characters=0)  # fmt: skip

    def not_fetched(self, failure: Failure) -> list[Any]:
        """Errback of listings and game pages: what Scrapy gives up on after its retries is recorded, not dropped.

        A redirect to the gate that robots.txt forbids fails as IgnoreRequest before any callback sees it, so the
        gate fallback runs here, from the redirect's aurl. Anything else (an HttpError for a status the callback does
        not take, a timeout, a lost connection, robots.txt) is recorded as failed with its reason, and logged."""
        request = failure.request  # type: ignore[attr-defined]
        if failure.check(IgnoreRequest) and not failure.check(HttpError) and is_gate_url(request.url):
            self.crawler.stats.inc_value("scrape/gate/not_fetched")
            return list(self._on_gate(request.url, request))
        reason = failure_reason(failure)
        why = response_status_message(failure.value.response.status) if failure.check(HttpError) else None
        self.logger.warning("could not fetch %s (recorded as failed, %s): %s", request.url, reason,
                            why or failure.getErrorMessage())  # fmt: skip
        return list(self._failed(request, reason))

    def parse_listing(self, response: Response, month: str) -> Iterator[Any]:
        html = self._text(response)
        if html is None:
            yield from self._failed(response.request, "undecodable", response.url)
            return
        if is_age_gate(html, response.url):
            yield from self._on_gate(response.url, response.request)
            return
        listing = parse_listing(html, response.url)
        yield ListingItem(kind="listing", month=month, url=response.meta.get("listing_url", response.url), status="ok")
        self.crawler.stats.inc_value("scrape/listings")
        self.crawler.stats.inc_value(f"scrape/listings/layout/{listing.layout}")
        if listing.empty:
            self.crawler.stats.inc_value("scrape/listings/empty")
        for entry in listing.entries:
            yield self._game_request(with_age_flag(entry.url))
        for page in listing.next_pages:
            yield self._listing_request(page, month)

    def parse_game(self, response: Response) -> Iterator[Any]:
        html = self._text(response)
        if html is None:
            yield from self._failed(response.request, "undecodable", response.url)
            return
        if is_age_gate(html, response.url):
            yield from self._on_gate(response.url, response.request)
            return
        page = parse_game_page(html, response.url)
        game_id = page.game_id or game_id_from_url(response.url) or game_id_from_url(response.request.url) or 0
        status = "ok"
        if page.missing or response.status in MISSING_STATUSES:
            status = "missing"
        elif page.genre_tab not in GAME_TABS:
            status = "not_a_game"
        elif not any(c.image_url or c.offsite_url for c in page.characters):
            status = "no_characters"
        self.crawler.stats.inc_value(f"scrape/pages/{status}")
        portraits = [c for c in page.characters if c.image_url or c.offsite_url] if status == "ok" else []
        game = {"game_id": game_id, "page_url": response.url, "title": page.title, "brand": page.brand,
                "release_date": page.release_date}  # fmt: skip
        yield GamePageItem(kind="page", **game, status=status, release_text=page.release_text,
                           genre_tab=page.genre_tab, characters=len(portraits))  # fmt: skip
        for character in portraits:
            if not character.standard_name:
                self.crawler.stats.inc_value("scrape/portraits/non_standard_name")
            item = CharacterItem(kind="character", **game, character_index=character.index,
                                 character_name=character.name, cv=character.cv,
                                 image_url=character.image_url or character.offsite_url or "",
                                 fullbody_url=character.fullbody_url,
                                 standard_name=character.standard_name)  # fmt: skip
            if character.image_url is None:  # on another site: reported as a failed image, never fetched
                self.crawler.stats.inc_value("scrape/portraits/offsite")
                site = urlsplit(response.url).netloc
                item["image"] = {"status": "failed", "reason": "offsite", "detail": f"not on {site}, the page's site"}
            yield item
