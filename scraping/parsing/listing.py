"""Month lists and search results: which links on a listing page are its products, and its further pages.

The listing markup drifted several times (a 2014-15 box layout with release-day headers, `.product` boxes, `td.dd`
rows, search results in ``ul.display``), so each layout's selectors live in one table, ``LISTING_LAYOUTS``, and every
game is canonicalised by its numeric id (`canonical_game_url`). Listing pages carry links that are not part of the
listing (sidebar CDs, menus, commented-out HTML, cart links on another host, recommendations on empty searches); only
links inside the listing region are entries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

from parsel import Selector

from scraping.parsing.text import clean, has_class, iso_date
from scraping.parsing.urls import canonical_game_url, game_id_from_url, on_site

__all__ = ["LISTING_LAYOUTS", "SEARCH_EMPTY_MARKER", "Listing", "ListingEntry", "ListingLayout", "parse_listing"]


@dataclass(frozen=True)
class ListingEntry:
    """One product on a listing page, canonicalised to ``<scheme>://<listing host>/soft.phtml?id=<id>``."""

    game_id: int
    url: str
    title: str
    release_date: str | None


@dataclass(frozen=True)
class Listing:
    """A parsed listing. `layout` names the LISTING_LAYOUTS row that matched ("unknown" when none did)."""

    layout: str
    entries: tuple[ListingEntry, ...]
    next_pages: tuple[str, ...]
    empty: bool


@dataclass(frozen=True)
class ListingLayout:
    """Where one listing layout keeps its entries. One row per known layout, tried in order; first with entries wins.

    - links: XPath of the title anchors.
    - headers: XPath of day headers (「YYYY年M月D日発売タイトル」); in document order each link takes the last header
      before it as its release day.
    - region_needs_header: the listing region starts at the first release-day header and a link belongs to it only
      when the header right before it is a release-day header. This is what keeps the sidebar ゲーム関連CD block and
      the menu (also ``div.category_pc_b`` / ``a.black``) out of the 2015 box layout.
    - paginated: the layout has pageID / 「次へ」 pagination (search); month lists have none (their prev/next-month
      links are other listings, not pages of this one).
    - page_path: URL path pattern of pages of this kind; an entry-less page on such a path is reported as this
      layout with empty=True.
    """

    name: str
    links: str
    headers: str | None
    region_needs_header: bool
    paginated: bool
    page_path: str


_DAY_HEADERS = f"//div[{has_class('category_pc_t2')}]"

LISTING_LAYOUTS: tuple[ListingLayout, ...] = (
    # 2014-2015 month_title box layout, as saved pages of those months show it; the `.product` boxes are included so a
    # page mixing both still parses.
    ListingLayout(
        name="box2015",
        links=(
            f"//div[{has_class('category_pc_b')}]//a[{has_class('black')}]"
            f" | //*[{has_class('product')}]//a[{has_class('black')}]"
        ),
        headers=_DAY_HEADERS,
        region_needs_header=True,
        paginated=False,
        page_path=r"/month_title\.html$",
    ),
    # 2016-2023 month_title, known from other crawlers' selectors (the Sinnsi gem, zhifengle/blog's Scrapy spider): no
    # day-header requirement, `.product` is already the region.
    ListingLayout(
        name="product",
        links=f"//*[{has_class('product')}]//a[{has_class('black')}]",
        headers=_DAY_HEADERS,
        region_needs_header=False,
        paginated=False,
        page_path=r"/month_title\.html$",
    ),
    # 2019-2020 month_title with gage=all&gc=gc, known from the scraper of bchao1/Anime-Face-Dataset.
    ListingLayout(
        name="td_dd",
        links=f"//td[{has_class('dd')}]//a",
        headers=_DAY_HEADERS,
        region_needs_header=False,
        paginated=False,
        page_path=r"/month_title\.html$",
    ),
    # Newer search results: only #detail_block inside ul.display, so the recommendation blocks mixed in are not results.
    ListingLayout(
        name="search",
        links=f"//ul[{has_class('display')}]/li//*[@id='detail_block']//a[{has_class('blueb')}]",
        headers=None,
        region_needs_header=False,
        paginated=True,
        page_path=r"/search\.phtml$",
    ),
    # Older search / brand listing (as One-sixth/getchu_character_picture_grabber and narumiruna/Getchu read it):
    # every a.blueb is a result title.
    ListingLayout(
        name="search_legacy",
        links=f"//a[{has_class('blueb')}]",
        headers=None,
        region_needs_header=False,
        paginated=True,
        page_path=r"/search\.phtml$",
    ),
)

#: Text of a search that found nothing; the page then shows recommendations that must not become entries.
SEARCH_EMPTY_MARKER = "該当する作品はありませんでした"
_RELEASE_HEADER_RE = re.compile(r"発売")
_NOVELTY_RE = re.compile(r"^★.*★$", re.DOTALL)


def _is_novelty(link: Selector, text: str) -> bool:
    """Novelty (pre-order bonus) links: class ``blues`` or text 「★…★」. They repeat a product id with a non-title."""
    classes = (link.attrib.get("class") or "").split()
    return "blues" in classes or bool(_NOVELTY_RE.match(text))


def _link_text(link: Selector) -> str:
    text = clean(link.xpath("string(.)").get())
    if not text:
        text = clean(link.xpath(".//img/@alt").get())
    return text


def _walk(sel: Selector, layout: ListingLayout) -> Iterator[tuple[Selector, str | None]]:
    """Yield (title link, current release-day header text) in document order; links outside the region are dropped.

    Walking links and headers together in document order (one XPath union) is robust to the unclosed ``<div>`` tags
    of the real pages, which make ancestor-based scoping unreliable.
    """
    headers = sel.xpath(layout.headers) if layout.headers else []
    header_roots = {h.root for h in headers}  # `headers` stays referenced, so lxml hands back these same proxies
    expr = layout.links if layout.headers is None else f"{layout.links} | {layout.headers}"
    header: str | None = None
    for node in sel.xpath(expr):
        if node.root in header_roots:
            text = clean(node.xpath("string(.)").get())
            header = text if _RELEASE_HEADER_RE.search(text) else None
            continue
        if layout.region_needs_header and header is None:
            continue
        yield node, header


def _entries(sel: Selector, layout: ListingLayout, url: str) -> list[ListingEntry]:
    """Entries of one layout: on-site product links, canonical URL, deduped by id keeping the first position."""
    found: dict[int, ListingEntry] = {}
    for link, header in _walk(sel, layout):
        href = (link.attrib.get("href") or "").strip()
        if not href:
            continue
        absolute = on_site(urljoin(url, href), url)
        if absolute is None:
            continue  # offsite: order.zams.biz carts, the real host when served from a fixture, ...
        game_id = game_id_from_url(absolute)
        if game_id is None:
            continue
        text = _link_text(link)
        if _is_novelty(link, text):
            continue
        entry = found.get(game_id)
        if entry is None:
            found[game_id] = ListingEntry(game_id, canonical_game_url(url, game_id), text, iso_date(header))
        elif not entry.title and text:
            # First occurrence was an image-only link (td.dd rows); keep its position, take the first real title.
            found[game_id] = ListingEntry(entry.game_id, entry.url, text, entry.release_date or iso_date(header))
    return list(found.values())


def _page_number(url: str) -> str:
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == "pageID":
            return value.strip() or "1"
    return "1"


def _next_pages(sel: Selector, url: str) -> tuple[str, ...]:
    """Pagination links of the same listing: same site and path, with a pageID other than ours, or text 「次へ」.

    Links are returned on the listing's own scheme and host (`on_site`), so an ``http://`` page link on an https
    listing is followed over https."""
    here = urlsplit(url)
    current = _page_number(url)
    out: dict[str, None] = {}
    for link in sel.xpath("//a[@href]"):
        absolute = on_site(urljoin(url, (link.attrib.get("href") or "").strip()), url)
        if absolute is None:
            continue
        parts = urlsplit(absolute)
        if parts.path != here.path or absolute == url:
            continue
        has_page = any(k == "pageID" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
        is_next = "次へ" in (link.xpath("string(.)").get() or "")
        if (has_page and _page_number(absolute) != current) or is_next:
            out.setdefault(urlunsplit(parts._replace(fragment="")), None)
    return tuple(out)


def parse_listing(html: str, url: str) -> Listing:
    """Parse a month list or search result page into product entries (see LISTING_LAYOUTS for the layouts).

    The first layout that yields entries wins. A search page saying 「該当する作品はありませんでした」 is empty
    whatever else it links (its recommendations are other products). A page with no entries on a known listing path
    is empty for the first layout of that path; anything else is layout "unknown" with empty=False, so the caller can
    tell layout drift from an empty month.
    """
    sel = Selector(text=html)
    path = urlsplit(url).path
    if sel.xpath(f"//text()[contains(., '{SEARCH_EMPTY_MARKER}')]"):  # visible text only, not comments
        return Listing(layout="search", entries=(), next_pages=(), empty=True)
    for layout in LISTING_LAYOUTS:
        entries = _entries(sel, layout, url)
        if entries:
            next_pages = _next_pages(sel, url) if layout.paginated else ()
            return Listing(layout=layout.name, entries=tuple(entries), next_pages=next_pages, empty=False)
    for layout in LISTING_LAYOUTS:
        if re.search(layout.page_path, path):
            return Listing(layout=layout.name, entries=(), next_pages=(), empty=True)
    return Listing(layout="unknown", entries=(), next_pages=(), empty=False)
