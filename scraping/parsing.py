"""Pure parsing of Getchu pages: decoding, month/search listings, product pages, the age gate.

Everything here is a plain function of (bytes or text, URL) so it can be tested on synthetic snippets and on the
saved real pages without Scrapy. The spider fetches; this module decides what a page says.

Why it is written this way (see ../shared/research/getchu.md):
- Getchu serves EUC-JP with NEC row-13 and JIS X 0213 characters. Python's ``euc_jp`` rejects them and
  ``errors="replace"`` (what ``response.text`` does) loses sync and garbles the rest of the run, so bodies are decoded
  strictly with ``euc_jis_2004`` first (section 3.4).
- The listing markup drifted several times (section 0.6), so each layout's selectors live in one table,
  ``LISTING_LAYOUTS``, and every game is canonicalised by its numeric id.
- Listing pages carry links that are not part of the listing (sidebar CDs, menus, commented-out HTML, cart links on
  another host, recommendations on empty searches); only links inside the listing region are entries (section 4.1).
- Product pages contain many images whose ``alt`` mentions キャラ; only images in column 1 of the character table,
  on the page's site under ``/brandnew/``, are portraits (section 4.2). The site is the page's host, whether a link
  says http or https (the https pages still write ``http://www.getchu.com/...``, section 2.2): see `on_site`.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urljoin, urlsplit, urlunsplit

from parsel import Selector

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

# --------------------------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------------------------

#: Strict decoding order for Getchu bodies. euc_jis_2004 is a superset of what the site emits (NEC row 13, JIS X 0213)
#: and gives the same text as euc_jp on pages euc_jp can read; cp932 is the last resort for a Shift-JIS page.
JAPANESE_ENCODINGS: tuple[str, ...] = ("euc_jis_2004", "euc_jp", "cp932")

# Codec names (after codecs.lookup) of the EUC / Shift-JIS family: a header naming one of them adds nothing to the chain
# above, and trying plain euc_jp/shift_jis first would fail on the NEC characters anyway.
_JAPANESE_FAMILY = frozenset(
    {
        "euc_jp",
        "euc_jis_2004",
        "euc_jisx0213",
        "shift_jis",
        "shift_jis_2004",
        "shift_jisx0213",
        "cp932",
        "iso2022_jp",
    }
)
# Single-byte charsets decode any byte string, so "trying them first" would always win and garble EUC-JP text.
# Servers send ISO-8859-1 as a default when misconfigured; such a declaration is tried only after the Japanese chain.
_CATCH_ALL = frozenset({"iso8859_1", "cp1252", "iso8859_15"})

_CHARSET_RE = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_META_RE = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)


class PageDecodeError(ValueError):
    """No encoding decoded the body strictly. Carries the encodings tried so the log says what was attempted."""

    def __init__(self, tried: Iterable[str]) -> None:
        self.tried = tuple(tried)
        super().__init__(f"page does not decode strictly with any of: {', '.join(self.tried)}")


def _codec_name(label: str | None) -> str | None:
    """Python's canonical codec name for a charset label, or None for an unknown label (never raises)."""
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().strip("\"'")).name.replace("-", "_")
    except LookupError:
        return None


def page_charset(content_type: str | None, body: bytes) -> str | None:
    """The charset a page declares: the Content-Type header's first, else a ``<meta>`` in the first 2 KB.

    The fixture and some real responses send ``text/html`` with no charset and put it only in ``<meta>``
    (both ``http-equiv`` and HTML5 ``charset=`` forms). Returned lower-cased as written (e.g. ``"euc-jp"``).
    """
    if content_type:
        m = _CHARSET_RE.search(content_type.encode("latin-1", "ignore"))
        if m:
            return m.group(1).decode("ascii").lower()
    for meta in _META_RE.finditer(body[:2048]):
        m = _CHARSET_RE.search(meta.group(0))
        if m:
            return m.group(1).decode("ascii").lower()
    return None


def decode_page(body: bytes, declared: str | None = None) -> str:
    """Decode a Getchu body strictly: `declared` first unless it is EUC/Shift-JIS, then euc_jis_2004, euc_jp, cp932.

    Never ``errors="replace"``: a replaced byte makes the EUC decoder resynchronise on the wrong byte and garbles every
    following character (research 3.4), which would silently corrupt titles and character names. A declared
    single-byte charset (ISO-8859-1 and friends) decodes anything, so it is tried after the Japanese chain instead.
    Raises PageDecodeError naming every encoding tried.
    """
    order: list[str] = ["utf_8_sig"] if body.startswith(codecs.BOM_UTF8) else []
    late: list[str] = []
    name = _codec_name(declared)
    if name and name not in _JAPANESE_FAMILY:
        (late if name in _CATCH_ALL else order).append(name)
    order.extend(JAPANESE_ENCODINGS)
    order.extend(late)
    tried: list[str] = []
    for enc in order:
        if enc in tried:
            continue
        tried.append(enc)
        try:
            return body.decode(enc)
        except UnicodeDecodeError:
            continue
    raise PageDecodeError(tried)


# --------------------------------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------------------------------

_ITEM_PATH_RE = re.compile(r"/item/(\d+)/?$")
_GATE_PATH = "/php/attestation.html"
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def game_id_from_url(url: str) -> int | None:
    """The numeric product id of ``soft.phtml?id=N`` or ``/item/N/``, else None.

    Title links on month pages carry a trailing space inside the href (``/soft.phtml?id=840803 ``); it is tolerated,
    both at the end of the URL and inside the id value.
    """
    parts = urlsplit(url.strip())
    path = parts.path
    if path.rsplit("/", 1)[-1] == "soft.phtml":
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "id":
                value = value.strip()
                return int(value) if value.isascii() and value.isdigit() else None
        return None
    m = _ITEM_PATH_RE.search(path)
    return int(m.group(1)) if m else None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _port(parts: SplitResult) -> int | None:
    """The port a URL reaches: the written one, else its scheme's default (None for a malformed port)."""
    try:
        port = parts.port
    except ValueError:
        return None
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def on_site(url: str, page_url: str) -> str | None:
    """`url` as the page's own site serves it (the page's scheme and host:port), or None when it is another site.

    The same scheme, host and port is the site. So is the same host under the other of http and https at that
    scheme's default port: Getchu's https pages still write ``http://www.getchu.com/brandnew/...`` (research 2.2),
    and comparing ports (80 against 443) judged every such portrait off-site. Those are fetched over the page's
    scheme, as the page was, and any on-site URL is written with the page's netloc so that one image has one URL
    whichever form a page used. Another host, another port of the same scheme, or a scheme other than http(s) is
    another site.
    """
    parts, page = urlsplit(url.strip()), urlsplit(page_url.strip())
    if parts.scheme not in _DEFAULT_PORTS or page.scheme not in _DEFAULT_PORTS:
        return None
    if not parts.hostname or parts.hostname != page.hostname:
        return None
    port, page_port = _port(parts), _port(page)
    if port is None or page_port is None:
        return None
    if parts.scheme == page.scheme:
        if port != page_port:
            return None
    elif port != _DEFAULT_PORTS[parts.scheme]:
        return None
    netloc = page.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(scheme=page.scheme, netloc=netloc))


def is_gate_url(url: str) -> bool:
    """True for a URL of the age-gate page itself (``/php/attestation.html``), e.g. where a redirect points."""
    return urlsplit(url.strip()).path.endswith(_GATE_PATH)


def is_age_gate(html: str, url: str) -> bool:
    """True for the age-verification page: its path (after redirects) or a <title> containing 年齢認証."""
    if is_gate_url(url):
        return True
    m = _TITLE_RE.search(html)
    return bool(m and "年齢認証" in m.group(1))


def gate_target(url: str) -> str | None:
    """The page the gate stands in front of: the ``aurl`` query value of a gate URL, unquoted and absolute.

    The server percent-encodes aurl (``aurl=http%3A%2F%2F...``), which parse_qsl undoes. Older gates pasted the URL
    raw, so its own ``&`` parameters fall into the gate's query: then everything after ``aurl=`` is the target.
    A relative aurl is joined against the gate URL, and an aurl on the gate's own site under the other of http and
    https is put on the gate's scheme (`on_site`). None when `url` is not a gate URL or has no aurl.
    """
    parts = urlsplit(url.strip())
    if not is_gate_url(url):
        return None
    raw = re.search(r"(?:^|&)aurl=(.*)$", parts.query)
    if not raw:
        return None
    value = raw.group(1)
    # Pasted raw, the value may contain '&' and EUC-JP %xx escapes that must stay as they are.
    raw_form = re.match(r"(?i)(https?://|/)", value)
    target = (value if raw_form else unquote(value.split("&", 1)[0])).strip()
    if not target:
        return None
    absolute = urljoin(url.strip(), target)
    return on_site(absolute, url) or absolute


def with_age_flag(url: str) -> str:
    """`url` with ``gc=gc`` in its query (other parameters kept verbatim, in order; idempotent).

    ``gc=gc`` is the query form of the age acknowledgement (research 3.1). Parameters are not re-encoded, so
    EUC-JP percent-escapes in search keywords survive.
    """
    parts = urlsplit(url.strip())
    pairs = [p for p in parts.query.split("&") if p]
    if "gc=gc" in pairs:
        return urlunsplit(parts)
    pairs = [p for p in pairs if p.split("=", 1)[0] != "gc"]
    pairs.append("gc=gc")
    return urlunsplit(parts._replace(query="&".join(pairs)))


def _canonical_game_url(listing_url: str, game_id: int) -> str:
    parts = urlsplit(listing_url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{netloc}/soft.phtml?id={game_id}"


# --------------------------------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------------------------------

#: ASCII whitespace plus the full-width space and NBSP that Getchu pads titles and labels with.
_SPACES = " \t\r\n\f\v\u3000\xa0"
_DATE_RE = re.compile(r"(\d{4})\s*[/年.\-]\s*(\d{1,2})\s*[/月.\-]\s*(\d{1,2})")


def _clean(text: str | None) -> str:
    """Collapse whitespace runs that contain a line break into one space and strip ASCII/full-width padding."""
    if not text:
        return ""
    return re.sub(r"[ \t\u3000\xa0]*[\r\n]+[ \t\r\n\u3000\xa0]*", " ", text).strip(_SPACES)


def _iso_date(text: str | None) -> str | None:
    """ISO date from ``YYYY/MM/DD`` or ``YYYY年M月D日`` text; None for partial dates like 「2016年2月下旬予定」."""
    if not text:
        return None
    m = _DATE_RE.search(text)
    if not m:
        return None
    try:
        return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return None


def _cls(name: str) -> str:
    """XPath predicate for a class token (CSS ``.name`` semantics) usable inside the layouts table."""
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


# --------------------------------------------------------------------------------------------------------------------
# Listings
# --------------------------------------------------------------------------------------------------------------------


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


_DAY_HEADERS = f"//div[{_cls('category_pc_t2')}]"

LISTING_LAYOUTS: tuple[ListingLayout, ...] = (
    # 2014-2015 month_title box layout [seen]; the `.product` boxes are included so a page mixing both still parses.
    ListingLayout(
        name="box2015",
        links=f"//div[{_cls('category_pc_b')}]//a[{_cls('black')}] | //*[{_cls('product')}]//a[{_cls('black')}]",
        headers=_DAY_HEADERS,
        region_needs_header=True,
        paginated=False,
        page_path=r"/month_title\.html$",
    ),
    # 2016-2023 month_title (Sinnsi, zhifengle) [code]: no day-header requirement, `.product` is already the region.
    ListingLayout(
        name="product",
        links=f"//*[{_cls('product')}]//a[{_cls('black')}]",
        headers=_DAY_HEADERS,
        region_needs_header=False,
        paginated=False,
        page_path=r"/month_title\.html$",
    ),
    # 2019-2020 month_title with gage=all&gc=gc (Mckinsey666) [code].
    ListingLayout(
        name="td_dd",
        links=f"//td[{_cls('dd')}]//a",
        headers=_DAY_HEADERS,
        region_needs_header=False,
        paginated=False,
        page_path=r"/month_title\.html$",
    ),
    # Newer search results (S15): only #detail_block inside ul.display, so recommendation blocks are not results.
    ListingLayout(
        name="search",
        links=f"//ul[{_cls('display')}]/li//*[@id='detail_block']//a[{_cls('blueb')}]",
        headers=None,
        region_needs_header=False,
        paginated=True,
        page_path=r"/search\.phtml$",
    ),
    # Older search / brand listing (S2, S12): every a.blueb is a result title.
    ListingLayout(
        name="search_legacy",
        links=f"//a[{_cls('blueb')}]",
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
    text = _clean(link.xpath("string(.)").get())
    if not text:
        text = _clean(link.xpath(".//img/@alt").get())
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
            text = _clean(node.xpath("string(.)").get())
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
            found[game_id] = ListingEntry(game_id, _canonical_game_url(url, game_id), text, _iso_date(header))
        elif not entry.title and text:
            # First occurrence was an image-only link (td.dd rows); keep its position, take the first real title.
            found[game_id] = ListingEntry(entry.game_id, entry.url, text, entry.release_date or _iso_date(header))
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


# --------------------------------------------------------------------------------------------------------------------
# Product pages
# --------------------------------------------------------------------------------------------------------------------

#: The bust portrait file name MakeGirlsMoe used: ``/brandnew/<id>/c<id>chara<K>.jpg`` (research 2.2). The id in the
#: folder and in the name must agree; editions may point at another edition's folder, which is still standard.
BUST_FILENAME_RE = re.compile(r"/brandnew/(\d+)/c\1chara(\d+)\.jpg$", re.IGNORECASE)
_SPACER_RE = re.compile(r"(?:^|/)(?:space|spacer|blank|dot|clear)\.gif$|^data:", re.IGNORECASE)
_CHARA_ANCHOR_RE = re.compile(r"^chara(\d+)$")
NOT_FOUND_MARKER = "お探しのページは見つかりません"
_RELATED_LINK_TEXT = "（このタイトルの関連商品）"
_BRAND_LIST_TEXT = "（このブランドの作品一覧）"
_CAMPAIGN_SUFFIX_RE = re.compile(r"[ \t\u3000\xa0]*＜[^＜＞]*＞[ \t\u3000\xa0]*$")
_SITE_SUFFIX_RE = re.compile(r"\s*(?:[-|｜/]\s*)?(?:Getchu\.com|げっちゅ屋)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Character:
    """One row of the キャラクター table. image_url is None for a row without (acceptable) art.

    offsite_url: the row's /brandnew/ portrait when it lies on another site (refused by the host rule, so
    image_url is None); the spider reports such characters instead of dropping them without a trace.
    """

    index: int | None
    name: str | None
    cv: str | None
    image_url: str | None
    fullbody_url: str | None
    standard_name: bool
    offsite_url: str | None = None


@dataclass(frozen=True)
class GamePage:
    """What a product page says. missing=True for deleted ids (404 body) and empty 200 shells."""

    game_id: int | None
    title: str | None
    brand: str | None
    release_date: str | None
    release_text: str | None
    genre_tab: str | None
    characters: tuple[Character, ...]
    missing: bool


def bust_index(url: str) -> int | None:
    """K of a standard bust portrait URL (``…/brandnew/<id>/c<id>chara<K>.jpg``), else None."""
    m = BUST_FILENAME_RE.search(urlsplit(url).path)
    return int(m.group(2)) if m else None


def _brandnew_url(src: str | None, page_url: str) -> str | None:
    """The absolute http(s) URL of `src` (every src form resolves via urljoin) if its path is under /brandnew/."""
    if not src or not src.strip():
        return None
    parts = urlsplit(urljoin(page_url, src.strip()))
    if parts.scheme not in ("http", "https") or not parts.path.startswith("/brandnew/"):
        return None
    return urlunsplit(parts._replace(fragment=""))


def _portrait_url(src: str | None, page_url: str) -> str | None:
    """The image URL if it is on the page's site under /brandnew/, on the page's scheme and host (`on_site`)."""
    absolute = _brandnew_url(src, page_url)
    return on_site(absolute, page_url) if absolute else None


def _offsite_portrait(src: str | None, page_url: str) -> str | None:
    """The absolute URL of a /brandnew/ image on another site: refused by the host rule, but reported, not dropped."""
    absolute = _brandnew_url(src, page_url)
    return absolute if absolute and on_site(absolute, page_url) is None else None


def _img_src(img: Selector) -> str | None:
    """The real source of an img: lazy loaders keep it in data-original (src is a spacer such as space.gif)."""
    src = (img.attrib.get("src") or "").strip()
    lazy = (img.attrib.get("data-original") or img.attrib.get("data-src") or "").strip()
    if lazy and (not src or _SPACER_RE.search(src)):
        return lazy
    return src or lazy or None


def _spec_values(sel: Selector) -> dict[str, Selector]:
    """Label → value cell of the spec rows (``<td>ブランド：</td><td>…</td>``, or th/td, or dt/dd on /item/ pages)."""
    scope = sel.xpath("//table[@id='soft_table']")
    root = scope[0] if scope else sel
    out: dict[str, Selector] = {}
    for row in root.xpath(".//tr[count(td|th) >= 2]"):
        cells = row.xpath("./td|./th")
        label = _clean(cells[0].xpath("string(.)").get())
        if label.endswith(("：", ":")):
            out.setdefault(label.rstrip("：:").strip(_SPACES), cells[1])
    for dt in root.xpath(".//dt[following-sibling::*[1][self::dd]]"):
        label = _clean(dt.xpath("string(.)").get())
        if label:
            out.setdefault(label.rstrip("：:").strip(_SPACES), dt.xpath("following-sibling::dd[1]")[0])
    return out


def _title(sel: Selector) -> tuple[str | None, bool]:
    """(title, is_product_title). The <title> fallback does not count as evidence that the product exists.

    Sources in order: h1#soft-title (its first line, without the 関連商品 link), og:title, the first h1 (/item/
    pages), <title>. The last two may be site chrome, so a bare site name there is no title.
    """
    h1 = sel.xpath("//h1[@id='soft-title']")
    candidates: list[tuple[str | None, bool, bool]] = []  # (raw text, is product evidence, may be site chrome)
    if h1:
        text = "".join(h1[0].xpath(".//text()[not(ancestor::a[contains(., '関連商品')])]").getall())
        candidates.append((text, True, False))
    candidates.append((sel.xpath("//meta[@property='og:title']/@content").get(), True, False))
    candidates.append((sel.xpath("string((//h1)[1])").get(), True, True))
    candidates.append((sel.xpath("string((//title)[1])").get(), False, True))
    for raw, product, chrome in candidates:
        if not raw:
            continue
        raw = raw.replace(_RELATED_LINK_TEXT, "")
        line = next((ln.strip(_SPACES) for ln in raw.splitlines() if ln.strip(_SPACES)), "")
        if chrome:
            line = _SITE_SUFFIX_RE.sub("", line).strip(_SPACES)
        while _CAMPAIGN_SUFFIX_RE.search(line):
            line = _CAMPAIGN_SUFFIX_RE.sub("", line)
        line = line.strip(_SPACES)
        if line:
            return line, product
    return None, False


def _split_name(h2: Selector) -> tuple[str | None, str | None]:
    """(name, cv) from ``h2.chara-name``: ``[label<br>]<charalist>NAME</charalist> （yomi）　CV：VOICE`` or the older
    form without charalist, where the name is the text after the last <br>."""
    full = h2.xpath("string(.)").get() or ""
    cv_match = re.search(r"CV\s*[：:]\s*(.+)", full, re.DOTALL)
    cv = (_clean(cv_match.group(1)) or None) if cv_match else None
    charalist = h2.xpath(".//charalist")
    if charalist:
        name = _clean(charalist[0].xpath("string(.)").get())
        return name or None, cv
    inner = "".join(h2.xpath("./node()").getall())
    last = re.split(r"<br\s*/?>", inner, flags=re.IGNORECASE)[-1]
    line = _clean(Selector(text=f"<div>{last}</div>").xpath("string(//div)").get())
    line = re.split(r"CV\s*[：:]", line, maxsplit=1)[0]
    line = re.split(r"[（(]", line, maxsplit=1)[0]
    name = line.strip(_SPACES)
    return name or None, cv


def _character_tables(sel: Selector) -> list[Selector]:
    """The table right after each キャラクター heading, provided no other section heading lies in between."""
    tables: list[Selector] = []
    headings = sel.xpath("//div[contains(@class, 'tabletitle')][contains(., 'キャラクター')]")
    for heading in headings:
        table = heading.xpath("following-sibling::table[1]") or heading.xpath("following::table[1]")
        if not table:
            continue
        owner = table[0].xpath("preceding::div[contains(@class, 'tabletitle')][1]")
        if owner and owner[0].root is heading.root and all(t.root is not table[0].root for t in tables):
            tables.append(table[0])
    return tables


def _characters(sel: Selector, page_url: str) -> tuple[Character, ...]:
    """Rows of the character table(s); only column-1 images on this site under /brandnew/ count as portraits.

    A /brandnew/ image on another site is kept as the row's offsite_url (and the row as a character), so that the
    crawl can report it rather than lose the character without a trace."""
    out: list[Character] = []
    seen_images: set[str] = set()
    for table in _character_tables(sel):
        rows = table.xpath("./tr | ./tbody/tr | ./thead/tr")
        for row in rows:
            if row.xpath(".//hr"):
                continue  # separator row
            cells = row.xpath("./td | ./th")
            middle = row.xpath("./td[translate(@valign, 'MIDLE', 'midle')='middle']")
            h2 = row.xpath(f".//h2[{_cls('chara-name')}]")
            if not cells or not (middle or h2):
                continue
            image_url = offsite_url = None
            for img in cells[0].xpath(".//img"):
                src = _img_src(img)
                image_url = _portrait_url(src, page_url)
                if image_url:
                    offsite_url = None
                    break
                offsite_url = offsite_url or _offsite_portrait(src, page_url)
            if image_url is None and offsite_url is None and not h2:
                continue  # not a character row (no portrait and no name)
            shown = image_url or offsite_url
            if shown is not None:
                if shown in seen_images:
                    continue
                seen_images.add(shown)
            anchor_index = None
            for name_attr in row.xpath(".//a/@name | .//a/@id").getall():
                m = _CHARA_ANCHOR_RE.match(name_attr.strip())
                if m:
                    anchor_index = int(m.group(1))
                    break
            file_index = bust_index(shown) if shown else None
            name, cv = _split_name(h2[0]) if h2 else (None, None)
            fullbody = None
            if len(cells) >= 3:
                for href in cells[2].xpath(".//a/@href").getall():
                    fullbody = _portrait_url(href, page_url)
                    if fullbody:
                        break
            out.append(
                Character(
                    index=file_index if file_index is not None else anchor_index,
                    name=name,
                    cv=cv,
                    image_url=image_url,
                    fullbody_url=fullbody,
                    standard_name=file_index is not None,
                    offsite_url=offsite_url,
                )
            )
    return tuple(out)


def parse_game_page(html: str, url: str) -> GamePage:
    """Parse a product page (classic ``soft.phtml`` of research 4.2, approximate ``/item/<id>/`` of 4.3).

    The /item/ layout is read with the same rules (キャラクター heading + table, label：value rows, og:title), which
    is what the offline fixture serves; the real 2024+ character markup is not known (research 8).
    """
    sel = Selector(text=html)
    game_id = game_id_from_url(url)
    if game_id is None:
        for candidate in sel.xpath("//meta[@property='og:url']/@content | //link[@rel='canonical']/@href").getall():
            game_id = game_id_from_url(urljoin(url, candidate.strip()))
            if game_id is not None:
                break

    title, product_title = _title(sel)
    has_table = bool(sel.xpath("//table[@id='soft_table']"))
    not_found = bool(sel.xpath(f"//text()[contains(., '{NOT_FOUND_MARKER}')]"))  # visible text, not comments
    missing = not_found or (not has_table and not product_title)
    if missing:
        title = None  # a shell's or a 404 page's heading is site chrome, not a product title

    spec = _spec_values(sel)
    brand = _clean(sel.xpath("string(//a[@id='brandsite'])").get())
    if not brand:
        cell = spec.get("ブランド") or spec.get("サークル")
        brand = _clean(cell.xpath("string(.)").get()).replace(_BRAND_LIST_TEXT, "").strip(_SPACES) if cell else ""

    day = _clean(sel.xpath("string(//a[@id='tooltip-day'])").get())
    cell = spec.get("発売日")
    release_text = (_clean(cell.xpath("string(.)").get()) if cell else "") or day or None
    release_date = _iso_date(day) or _iso_date(release_text)

    current_tab = f"//*[{_cls('ui-headtabs')}]//li[{_cls('current')}]/a/@href"
    older_tab = f"//li[{_cls('genretab')}][{_cls('current')}]/a/@href"
    tab = sel.xpath(f"{current_tab} | {older_tab}").get()
    genre_tab = urlsplit(urljoin(url, tab.strip())).path if tab and tab.strip() else None

    return GamePage(
        game_id=game_id,
        title=title,
        brand=brand or None,
        release_date=release_date,
        release_text=release_text,
        genre_tab=genre_tab,
        characters=() if missing else _characters(sel, url),
        missing=missing,
    )
