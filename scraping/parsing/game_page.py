"""Product pages: title, brand, release date, genre tab, and the character table with its portraits.

Product pages contain many images whose ``alt`` mentions キャラ; only images in column 1 of the character table, on
the page's site under ``/brandnew/``, are portraits. The site is the page's host, whether a link says http or https
(Getchu's https pages still write ``http://www.getchu.com/brandnew/...`` portrait URLs): see `on_site`. A
``/brandnew/`` image on another site is kept as the character's `offsite_url`, so the crawl reports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from parsel import Selector

from scraping.parsing.text import SPACES, clean, has_class, iso_date
from scraping.parsing.urls import game_id_from_url, on_site

__all__ = ["BUST_FILENAME_RE", "NOT_FOUND_MARKER", "Character", "GamePage", "bust_index", "parse_game_page"]

#: The bust portrait file name MakeGirlsMoe used: ``/brandnew/<id>/c<id>chara<K>.jpg``. The id in the folder and in
#: the name must agree; editions may point at another edition's folder, which is still standard.
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
        label = clean(cells[0].xpath("string(.)").get())
        if label.endswith(("：", ":")):
            out.setdefault(label.rstrip("：:").strip(SPACES), cells[1])
    for dt in root.xpath(".//dt[following-sibling::*[1][self::dd]]"):
        label = clean(dt.xpath("string(.)").get())
        if label:
            out.setdefault(label.rstrip("：:").strip(SPACES), dt.xpath("following-sibling::dd[1]")[0])
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
        line = next((ln.strip(SPACES) for ln in raw.splitlines() if ln.strip(SPACES)), "")
        if chrome:
            line = _SITE_SUFFIX_RE.sub("", line).strip(SPACES)
        while _CAMPAIGN_SUFFIX_RE.search(line):
            line = _CAMPAIGN_SUFFIX_RE.sub("", line)
        line = line.strip(SPACES)
        if line:
            return line, product
    return None, False


def _split_name(h2: Selector) -> tuple[str | None, str | None]:
    """(name, cv) from ``h2.chara-name``: ``[label<br>]<charalist>NAME</charalist> （yomi）　CV：VOICE`` or the older
    form without charalist, where the name is the text after the last <br>."""
    full = h2.xpath("string(.)").get() or ""
    cv_match = re.search(r"CV\s*[：:]\s*(.+)", full, re.DOTALL)
    cv = (clean(cv_match.group(1)) or None) if cv_match else None
    charalist = h2.xpath(".//charalist")
    if charalist:
        name = clean(charalist[0].xpath("string(.)").get())
        return name or None, cv
    inner = "".join(h2.xpath("./node()").getall())
    last = re.split(r"<br\s*/?>", inner, flags=re.IGNORECASE)[-1]
    line = clean(Selector(text=f"<div>{last}</div>").xpath("string(//div)").get())
    line = re.split(r"CV\s*[：:]", line, maxsplit=1)[0]
    line = re.split(r"[（(]", line, maxsplit=1)[0]
    name = line.strip(SPACES)
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
            h2 = row.xpath(f".//h2[{has_class('chara-name')}]")
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
    """Parse a product page: the classic ``soft.phtml`` layout, and approximately the newer ``/item/<id>/`` one.

    The /item/ layout is read with the same rules (キャラクター heading + table, label：value rows, og:title), which
    is what the offline fixture serves; the real character markup of that layout (2024 on) has not been seen.
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
    brand = clean(sel.xpath("string(//a[@id='brandsite'])").get())
    if not brand:
        cell = spec.get("ブランド") or spec.get("サークル")
        brand = clean(cell.xpath("string(.)").get()).replace(_BRAND_LIST_TEXT, "").strip(SPACES) if cell else ""

    day = clean(sel.xpath("string(//a[@id='tooltip-day'])").get())
    cell = spec.get("発売日")
    release_text = (clean(cell.xpath("string(.)").get()) if cell else "") or day or None
    release_date = iso_date(day) or iso_date(release_text)

    current_tab = f"//*[{has_class('ui-headtabs')}]//li[{has_class('current')}]/a/@href"
    older_tab = f"//li[{has_class('genretab')}][{has_class('current')}]/a/@href"
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
