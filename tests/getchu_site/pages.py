"""Scenario data and HTML builders for the offline Getchu mock.

Why: the spider must be tested against the quirks of the real site (EUC-JP with NEC characters, old and new
character-table markup, decoys, offsite links) without shipping real pages. Everything here is synthesised from
the structure of the real site's month lists, search results, product pages and age gate; one data table drives
both the pages and the expected-results manifest, so the two cannot drift apart.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlsplit

ENCODING = "euc_jis_2004"
GATE_COOKIE = "getchu_adalt_flag"
GATE_COOKIE_VALUE = "getchu.com"
REAL_HOST = "http://www.getchu.com"
OFFSITE_REAL_PRODUCT = f"{REAL_HOST}/soft.phtml?id=816056"
CART = "https://order.zams.biz/comike/cart.phtml"
NO_RESULTS = "該当する作品はありませんでした"
SCALE_YEAR = 2017
SCALE_FIRST_ID = 1_000_000


@dataclass(frozen=True)
class Brand:
    """A maker; `site` None means the page shows the name as plain text (no a#brandsite)."""

    id: int
    name: str
    site: str | None


@dataclass(frozen=True)
class Chara:
    """One row of the character table.

    `file` is the bust file name under /brandnew/<id>/ ("" = the standard c<id>chara<k>.jpg, None = no image);
    `src` is how the page writes it: dot, dotdot, abs, proto, root, lazy (spacer src + data-original) or real
    (absolute on the real www.getchu.com: another site when the mock serves 127.0.0.1). `abs` is absolute the way
    the real site writes it, ``http://`` even on its https pages, see `written_base`.
    """

    k: int
    name: str
    yomi: str
    cv: str
    label: str = ""
    file: str | None = ""
    src: str = "dot"
    fullbody: bool = False
    profile: str = ""

    def bust_file(self, pid: int) -> str | None:
        """The bust file name, or None for a row without an image."""
        if self.file is None:
            return None
        return self.file or f"c{pid}chara{self.k}.jpg"


@dataclass(frozen=True)
class Product:
    """One product id and its scenario.

    layout: classic (charalist), old (no charalist), item (approximate /item/ layout), music (CD, no characters),
    shell (200 with no product), missing (404).
    """

    id: int
    title: str
    brand_id: int
    date: str | None
    layout: str = "classic"
    title_suffix: str = ""
    date_text: str = ""
    charas: tuple[Chara, ...] = ()
    samples: int = 0
    banner: bool = False
    related: tuple[int, ...] = ()
    decoys: bool = False
    charset_header: bool = True
    dup_of: int | None = None
    price: str = "9,504"

    @property
    def tab(self) -> str:
        """The highlighted genre tab: music CDs live under /music/, games under /pc/."""
        return "/music/" if self.layout == "music" else "/pc/"

    @property
    def release_date(self) -> str | None:
        """The expected ISO date, None when the page only has an undated text such as 「2月下旬予定」."""
        return self.date.replace("/", "-") if self.date else None


@dataclass(frozen=True)
class DayBlock:
    """A release-day header and its products; style "product" is the later `div.product a.black` markup."""

    header: str
    ids: tuple[int, ...]
    style: str = "box"
    novelty: tuple[int, ...] = field(default=())
    offsite_in: tuple[int, ...] = field(default=())


BRANDS: dict[int, Brand] = {
    5001: Brand(5001, "テストブランドＡ", "https://brand-a.example/"),
    5002: Brand(5002, "サンプルソフトＢ", "https://brand-b.example/"),
    5003: Brand(5003, "テスト音楽レーベル", None),
}
LISTED_BRANDS = (5001, 5002)

_C101 = (
    Chara(1, "星野 あかり", "ほしの あかり", "春野ひなた", "幼なじみ", profile="身長：158㌢　明るく元気な幼なじみ。"),
    Chara(2, "月島 しずく", "つきしま しずく", "秋山みお", "生徒会長", profile="身長：163㌢　完璧主義の生徒会長。"),
    Chara(3, "小鳥遊 ゆい", "たかなし ゆい", "夏目こはる", "後輩", profile="身長：149㌢　写真部の後輩。"),
    Chara(4, "エリス・ノーザンライト", "えりす・のーざんらいと", "冬川まどか", "転校生", profile="北国からの転校生。"),
)


def _with(charas: tuple[Chara, ...], **changes: object) -> tuple[Chara, ...]:
    """The same rows with some fields replaced (editions share characters, not markup)."""
    return tuple(replace(c, **changes) for c in charas)  # type: ignore[arg-type]


PRODUCTS: dict[int, Product] = {
    p.id: p
    for p in (
        Product(
            900101,
            "ほしぞらテスト・レコード 初回限定版",
            5001,
            "2016/01/29",
            charas=_with(_C101, fullbody=True),
            samples=3,
            banner=True,
            related=(900104,),
        ),
        Product(
            900102, "ほしぞらテスト・レコード 通常版", 5001, "2016/01/29", charas=_C101, dup_of=900101, price="8,424"
        ),
        Product(
            900103,
            "旧式レイアウトの物語",
            5001,
            "2016/01/29",
            layout="old",
            charas=(
                Chara(1, "朝霧 かすみ", "あさぎり かすみ", "佐倉ふたば", "日常の象徴。剣道部所属。", src="dotdot"),
                Chara(2, "夕凪 ことね", "ゆうなぎ ことね", "水無月れい", "図書委員。", src="abs"),
                Chara(4, "神楽坂 みこと", "かぐらざか みこと", "霧島あおい", "神社の巫女。", src="proto"),
                Chara(5, "白銀 ルナ", "しろがね るな", "天音ゆき", "謎の少女。", src="lazy"),
                Chara(6, "黒川 先生", "くろかわ せんせい", "大和たける", "担任教師。", file=None),
            ),
        ),
        Product(900104, "ほしぞらテスト・レコード ファンディスク", 5001, "2016/01/29", samples=2, price="5,184"),
        Product(
            900105,
            "テスト①～",
            5002,
            "2016/01/30",
            title_suffix=" ＜早期予約キャンペーン特典＞",
            charas=(
                Chara(
                    1, "①ノ瀬 ひかり", "いちのせ ひかり", "髙木みく", "ヒロイン①", profile="身長：160㌢　好物～苺～。"
                ),
                Chara(2, "髙嶺 すず", "たかみね すず", "遠野ゆら～", "ヒロイン②", profile="身長：148㌢　①番の親友。"),
            ),
        ),
        Product(900106, "存在しない作品", 5002, "2016/01/30", layout="missing"),
        Product(900107, "中身のない作品", 5002, "2016/01/30", layout="shell"),
        Product(
            900108,
            "画像エラーの館",
            5002,
            "2016/01/30",
            charas=(
                Chara(1, "一条 いろは", "いちじょう いろは", "藤宮あや"),
                Chara(2, "二宮 にこ", "にのみや にこ", "若葉しの"),
                Chara(3, "三枝 みつき", "さえぐさ みつき", "桐谷まい"),
                Chara(4, "四谷 しおり", "よつや しおり", "朝比奈かな"),
                Chara(5, "五十嵐 いつき", "いがらし いつき", "柚木りん"),
                Chara(6, "六道 りく", "りくどう りく", "紫藤なお"),
                Chara(7, "七瀬 ななみ", "ななせ ななみ", "真白ゆめ"),
                Chara(8, "八雲 やよい", "やくも やよい", "東条さき"),
            ),
        ),
        Product(
            900109,
            "フレーキー・デイズ",
            5002,
            "2016/01/30",
            charas=(
                Chara(1, "日向 まひる", "ひなた まひる", "春日あおば", "主人公の妹"),
                Chara(2, "宵宮 よる", "よいみや よる", "黒羽しずか", "夜の図書館の主"),
            ),
        ),
        Product(
            900110,
            "新レイアウトの約束",
            5002,
            "2016/01/30",
            layout="item",
            samples=2,
            charas=(
                Chara(1, "新見 あらた", "にいみ あらた", "如月こころ", src="root"),
                Chara(2, "古川 のぞみ", "ふるかわ のぞみ", "早乙女みう", src="root"),
            ),
        ),
        Product(
            900111,
            "キャラソン・パラダイス",
            5002,
            "2016/01/30",
            decoys=True,
            charas=(
                Chara(1, "歌川 ひびき", "うたがわ ひびき", "鈴原かのん", "歌姫"),
                Chara(2, "乙女 ここな", "おとめ ここな", "花守みのり", "アイドル候補生", file="otome_chara.jpg"),
            ),
        ),
        Product(
            900112,
            "ヘッダー無しの夜",
            5002,
            "2016/02/05",
            title_suffix="　",
            charset_header=False,
            charas=(
                Chara(1, "夜桜 さくら", "よざくら さくら", "白河りお", "ヒロイン", profile="身長：152㌢"),
                Chara(2, "朧 かげろう", "おぼろ かげろう", "宮下ちか", "先輩"),
                Chara(3, "灯 ともり", "あかり ともり", "水瀬なぎ", "後輩"),
            ),
        ),
        Product(
            900113,
            "未定日のラプソディ",
            5002,
            None,
            date_text="2016年2月下旬予定",
            charas=(
                Chara(1, "未来 みらい", "みらい みらい", "天城そら"),
                Chara(2, "予定 さだめ", "よてい さだめ", "神崎ゆず"),
            ),
        ),
        Product(900201, "ほしぞらテスト・レコード サウンドトラック", 5003, "2016/01/29", layout="music", price="3,024"),
        Product(
            900202, "キャラソン・パラダイス ボーカルコレクション", 5003, "2016/01/30", layout="music", price="3,024"
        ),
        Product(
            900299,
            "コメントの中の幻",
            5001,
            "2016/01/29",
            charas=(Chara(1, "幻 まぼろし", "まぼろし まぼろし", "影山しのぶ"),),
        ),
    )
}

#: With MockGetchu(offsite_portrait=True), 900111 gains this character: a portrait on another site (the real host),
#: which the crawl must report (image failure "offsite"), not fetch and not drop.
OFFSITE_CHARA = Chara(3, "外山 とおこ", "そとやま とおこ", "遠坂みなと", "留学生", src="real")


def with_offsite_portrait(products: dict[int, Product]) -> dict[int, Product]:
    """The products with OFFSITE_CHARA added to 900111's character table."""
    p = products[900111]
    return {**products, p.id: replace(p, charas=(*p.charas, OFFSITE_CHARA))}


SIDEBAR_CDS = (900201, 900202)
COMMENTED_OUT = 900299
MONTH_LISTS: dict[tuple[int, int], tuple[DayBlock, ...]] = {
    (2016, 1): (
        DayBlock(
            "2016年1月29日発売タイトル", (900101, 900102, 900103, 900104), novelty=(900101,), offsite_in=(900104,)
        ),
        DayBlock("2016年1月30日発売タイトル", (900105, 900106, 900107, 900108, 900109, 900110, 900111)),
    ),
    (2016, 2): (
        DayBlock("2016年2月5日発売タイトル", (900112, 900101)),
        DayBlock("2016年2月26日発売タイトル", (900113,), style="product"),
    ),
    (2016, 3): (),
}
BRAND_LISTS: dict[int, tuple[int, ...]] = {
    5001: (900101, 900102, 900103, 900104),
    5002: (900105, 900108, 900109, 900110, 900111, 900112, 900113),
}


# --- helpers -------------------------------------------------------------------------------------------------


def encode(text: str, crlf: bool = False) -> bytes:
    """EUC-JP bytes as the real site sends them; characters outside JIS X 0213 (髙) become numeric references."""
    if crlf:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return text.replace("髙", "&#39641;").encode(ENCODING)


def esc(text: str) -> str:
    """HTML-escape text and attribute values."""
    return html.escape(text, quote=True)


def quote_euc(text: str) -> str:
    """Percent-encode EUC-JP bytes, as the site does for search keywords."""
    return quote(text.replace("髙", "高").encode(ENCODING))


def _head(title: str, extra: str = "") -> str:
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n'
        '<html lang="ja">\n<head>\n'
        '<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP">\n'
        f"<title>{esc(title)}</title>\n{extra}</head>\n"
    )


def _site_header(base: str, current_tab: str) -> str:
    tabs = [
        ("/top.html", "トップ"),
        ("/pc/", "PCゲーム"),
        ("/anime/", "アニメ"),
        ("/music/", "音楽"),
        ("/dvdpg/", "DVD-PG"),
    ]
    current = ' class="current"'
    items = "\n".join(
        f'<li{current if href == current_tab else ""}><a href="{href}">{label}</a></li>' for href, label in tabs
    )
    return (
        '<div id="header">\n'
        f'<a href="{base}/top.html"><img src="/common/images/logo.gif" alt="Getchu.com" border="0"></a>\n'
        '<a href="/php/nsearch.phtml?search_keyword=">詳細検索</a>\n'
        '<form action="/php/nsearch.phtml" method="get"><input type="text" name="search_keyword"></form>\n'
        f'<ul class="ui-headtabs">\n{items}\n</ul>\n</div>\n'
    )


_FOOTER = (
    '<div id="footer">Copyright (C) テスト用モックサイト. <a href="/top.html">トップへ</a></div>\n</body>\n</html>\n'
)


# --- small pages ---------------------------------------------------------------------------------------------


def top_page(base: str) -> str:
    """The cheap page a crawler hits first to get the age cookie."""
    return (
        _head("Getchu.com：美少女ゲーム・アニメ・同人の通販")
        + "<body>\n"
        + _site_header(base, "/top.html")
        + '<div id="wrapper">\n<p>ようこそ。</p>\n'
        + '<a href="./all/month_title.html?genre=pc_soft&amp;gage=all&amp;year=2016&amp;month=1">月別発売タイトル</a>\n'
        + '<a href="./all/brand.html?genre=pc_soft">ブランド一覧</a>\n</div>\n'
        + _FOOTER
    )


def gate_page(aurl: str, yes_text: str) -> str:
    """The age gate (``/php/attestation.html``): the yes link is the original URL plus gc=gc."""
    yes = aurl + ("&gc=gc" if "?" in aurl else "?gc=gc")
    return (
        _head("年齢認証 - Getchu.com")
        + '<body>\n<div id="attestation">\n'
        + "<h1>年齢認証ページ</h1>\n"
        + "<p>これから先のページには年齢制限のある【R-18コンテンツ】が含まれています。</p>\n"
        + "<p>18歳未満の方はご覧いただけません。あなたは18歳以上ですか？</p>\n"
        + f'<span style="font-size:160%;font-weight:bold;"><a href="{esc(yes)}">{esc(yes_text)}</a></span>\n'
        + '&nbsp;&nbsp;<span style="font-size:160%;font-weight:bold;">'
        + '<a href="http://www.google.co.jp/">【もどる】</a></span>\n'
        + "</div>\n</body>\n</html>\n"
    )


def message_page(title: str, message: str) -> str:
    """A small error page (404, 403, 500, 503, hotlink)."""
    return _head(title) + f'<body>\n<div id="wrapper">\n<p class="error">{esc(message)}</p>\n</div>\n</body>\n</html>\n'


def not_found_page() -> str:
    """What a deleted id answers (with status 404)."""
    return message_page("ページが見つかりません - Getchu.com", "お探しのページは見つかりません。")


def shell_page(base: str) -> str:
    """A 200 page with no product in it: some ids of the real site answer so (no #soft_table, no title)."""
    return _head("Getchu.com") + "<body>\n" + _site_header(base, "/pc/") + '<div id="wrapper">\n</div>\n' + _FOOTER


# --- product pages -------------------------------------------------------------------------------------------


def written_base(base: str) -> str:
    """How the site writes its own absolute links: the real site's https pages still say ``http://www.getchu.com``.

    For the mock over https (``https://127.0.0.1:PORT``) that is ``http://127.0.0.1``: the host on plain http's
    default port, as ``http://www.getchu.com`` is to ``https://www.getchu.com``. Over http, the base itself.
    """
    parts = urlsplit(base)
    if parts.scheme != "https" or not parts.hostname:
        return base
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}"


def _img_src(form: str, pid: int, file: str, base: str) -> str:
    host = base.split("://", 1)[1]
    path = f"brandnew/{pid}/{file}"
    forms = {
        "dot": f'src="./{path}"',
        "dotdot": f'src="../{path}"',
        "abs": f'src="{written_base(base)}/{path}"',
        "real": f'src="{REAL_HOST}/{path}"',
        "proto": f'src="//{host}/{path}"',
        "root": f'src="/{path}"',
        "lazy": f'src="common/images/space.gif" data-original="./{path}" class="lazy"',
    }
    return forms[form]


def _name_html(p: Product, c: Chara) -> str:
    label = f"{esc(c.label)}<br>" if c.label else ""
    if p.layout == "old":
        return f"{label}{esc(c.name)} （{esc(c.yomi)}）　CV：{esc(c.cv)}"
    return f"{label}<charalist>{esc(c.name)}</charalist> （{esc(c.yomi)}）　CV：{esc(c.cv)}"


def _chara_section(p: Product, base: str, prefix: str) -> str:
    rows: list[str] = []
    if p.decoys:
        rows.append(
            '<tr><td colspan="3" align="center"><a href="/php/movie.phtml?id=900111">'
            '<img src="/common/images/demo_m.gif" alt="キャラクター紹介ムービー" border="0"></a></td></tr>'
        )
    for i, c in enumerate(p.charas):
        if i:
            rows.append('<tr><td colspan="3"><hr size="1" noshade></td></tr>')
        anchor = f'<a name="chara{c.k}" id="chara{c.k}"></a>'
        file = c.bust_file(p.id)
        if file is None:
            td1 = f'<td valign="middle" align="center" width="250">{anchor}&nbsp;</td>'
        else:
            src = _img_src(c.src, p.id, file, base)
            td1 = (
                f'<td valign="middle" align="center" width="250">{anchor}<img {src} alt="キャラ{c.k}" '
                'width="250" height="300" style="border:none;"></td>'
            )
        profile = f"<dd>{esc(c.profile)}</dd>" if c.profile else "<dd></dd>"
        td2 = (
            '<td valign="middle" class="chara-text"><dl><dt><strong>'
            f'<h2 class="chara-name">{_name_html(p, c)}</h2></strong></dt>{profile}</dl></td>'
        )
        td3 = ""
        if c.fullbody:
            big = f"{prefix}brandnew/{p.id}/c{p.id}charab{c.k}.jpg"
            small = f"{prefix}brandnew/{p.id}/c{p.id}charab{c.k}_s.jpg"
            td3 = (
                f'\n<td valign="middle" align="center"><a href="{big}" class="highslide" '
                f'onclick="return hs.expand(this)"><img src="{small}" width="100" height="200" alt="全身" '
                'border="0"></a></td>'
            )
        rows.append(f"<tr>\n{td1}\n{td2}{td3}\n</tr>")
    body = "\n".join(rows)
    return (
        '<div class="tabletitle">&nbsp;キャラクター</div>\n'
        f'<table width="100%" border="0" cellspacing="0" cellpadding="4">\n{body}\n</table>\n'
    )


def _samples_classic(p: Product, prefix: str) -> str:
    links = "\n".join(
        f'<a href="{prefix}brandnew/{p.id}/c{p.id}sample{k}.jpg" class="highslide" onclick="return hs.expand(this)">'
        f'<img src="{prefix}brandnew/{p.id}/c{p.id}sample{k}_s.jpg" width="200" height="150" alt="サンプル画像{k}" '
        'border="0"></a>'
        for k in range(1, p.samples + 1)
    )
    return (
        '<a name="sample" id="sample"></a>\n<div class="tabletitle">&nbsp;サンプル画像</div>\n'
        f'<div class="tablebody">\n{links}\n</div>\n'
    )


def _samples_item(p: Product) -> str:
    cards = "\n".join(
        f'<div class="item-Samplecard"><a href="/brandnew/{p.id}/c{p.id}sample{k}.jpg" class="item-Samplecard-link">'
        f'<img src="/brandnew/{p.id}/c{p.id}sample{k}_s.jpg" alt="サンプル{k}"></a></div>'
        for k in range(1, p.samples + 1)
    )
    return (
        '<section class="item-Samples">\n<h2 class="item-Section-title">サンプル画像</h2>\n'
        f'<div class="item-Samplecard-container">\n{cards}\n</div>\n</section>\n'
    )


def _spec_rows(p: Product, base: str, prefix: str) -> str:
    brand = BRANDS[p.brand_id]
    list_link = (
        f'<nobr><a href="{prefix}php/search.phtml?search_brand_id={brand.id}">（このブランドの作品一覧）</a></nobr>'
    )
    if brand.site:
        brand_html = (
            f'<a href="{brand.site}" id="brandsite" class="glance" title="このブランドの公式サイトを開く" '
            f'target="_blank">{esc(brand.name)}</a> {list_link}'
        )
    else:
        brand_html = f"{esc(brand.name)} {list_link}"
    if p.date:
        day = f"{p.date}"
        date_html = (
            f'<a href="{prefix}php/search.phtml?genre=pc_soft&amp;start_date={day}&amp;end_date={day}" '
            f'id="tooltip-day" class="glance" title="同じ発売日の同ジャンル商品を開く">{day}</a>'
        )
    else:
        date_html = esc(p.date_text)
    label = "アーティスト：" if p.layout == "music" else "原画："
    media = "CD" if p.layout == "music" else "DVD-ROM"
    rows = [
        ("ブランド：", brand_html),
        ("定価：", f"￥{p.price}（税込）"),
        ("発売日：", date_html),
        ("メディア：", media),
        ("ジャンル：", "サウンドトラック" if p.layout == "music" else "恋愛アドベンチャー"),
        ("品番：", f"TEST-{p.id}"),
        (label, "テスト絵師"),
        ("カテゴリ：", "テスト用"),
    ]
    return "\n".join(
        f'<tr><td valign="top" align="right" class="right">{k}</td><td align="top">{v}</td></tr>' for k, v in rows
    )


def product_page(p: Product, base: str, at_item_path: bool = False) -> str:
    """A product page in the classic (or old, or music) layout; `at_item_path` adds <base> for /item/<id>/."""
    if p.layout == "item":
        return item_page(p, base)
    prefix = "./"
    raw_title = p.title + p.title_suffix
    brand = BRANDS[p.brand_id]
    extra = (
        f'<meta name="description" content="タイトル：{esc(raw_title)},ブランド：{esc(brand.name)},'
        f'発売日：{esc(p.date or p.date_text)}">\n'
        f'<meta name="keywords" content="{esc(raw_title)},{esc(brand.name)},PCゲーム">\n'
        f'<meta property="og:image" content="{base}/brandnew/{p.id}/c{p.id}package.jpg">\n'
    )
    if at_item_path:
        extra += f'<base href="{base}/">\n'
    cover_alt = "キャラソンCD付き" if p.decoys else "パッケージ画像"
    cover = (
        f'<a href="{prefix}brandnew/{p.id}/c{p.id}package.jpg" class="highslide" onclick="return hs.expand(this)">'
        f'<img src="{prefix}brandnew/{p.id}/rc{p.id}package.jpg" width="280" height="400" alt="{cover_alt}" '
        'border="0"></a>'
    )
    related = (
        f'<nobr><a href="{prefix}php/search.phtml?search_keyword={quote_euc(p.title)}&amp;check_key_dtl=1&amp;submit=" '
        'class="glance">（このタイトルの関連商品）</a></nobr>'
    )
    parts = [
        _head(f"{raw_title} | Getchu.com", extra),
        "<body>\n",
        _site_header(base, p.tab),
        '<div id="wrapper">\n',
        '<table id="soft_table" width="100%" border="0" cellspacing="0" cellpadding="0">\n',
        f'<tr>\n<td rowspan="2" valign="top" align="center" width="290">{cover}</td>\n',
        f'<th align="left" valign="top"><h1 id="soft-title">{esc(raw_title)}\n{related}</h1></th>\n</tr>\n',
        f'<tr><th align="left" valign="top"><table border="0" cellspacing="0" cellpadding="2">\n'
        f"{_spec_rows(p, base, prefix)}\n</table></th></tr>\n</table>\n",
        '<div class="tabletitle">&nbsp;商品紹介</div>\n<div class="tablebody">テスト用の商品紹介文です。</div>\n',
    ]
    if p.decoys:
        parts.append(
            '<div class="tablebody"><img src="./brandnew/900111/c900111package_s.jpg" alt="キャラソンCD付き"'
            ' width="120"> 初回特典キャラソンCD付き！</div>\n'
        )
    if p.charas:
        parts.append(_chara_section(p, base, prefix))
    if p.samples:
        parts.append(_samples_classic(p, prefix))
    if p.banner:
        parts.append(
            '<div class="tabletitle">&nbsp;キャンペーン情報</div>\n<div class="tablebody">'
            f'<a href="{prefix}php/search.phtml?genre=pc_soft&amp;campaign=1"><img src="{prefix}brandnew/{p.id}/'
            f'c{p.id}banner1.jpg" width="600" height="120" alt="キャンペーンバナー" border="0"></a></div>\n'
        )
    if p.decoys:
        parts.append(
            '<div class="tabletitle">&nbsp;キャンペーン</div>\n<div class="tablebody">'
            '<a href="./php/search.phtml?genre=pc_soft&amp;campaign=2"><img src="./brandnew/900111/c900111chara1.jpg"'
            ' alt="キャラ1 キャンペーン" width="125" height="150" border="0"></a> キャラソン発売記念！</div>\n'
        )
    if p.related:
        links = "\n".join(
            f'<li><a href="{prefix}soft.phtml?id={rid}">{esc(PRODUCTS[rid].title)}</a></li>' for rid in p.related
        )
        parts.append(
            '<div class="recommend">\n<div class="tabletitle">&nbsp;この商品の関連商品</div>\n'
            f"<ul>\n{links}\n</ul>\n</div>\n"
        )
    parts.append("</div>\n")
    parts.append(_FOOTER)
    return "".join(parts)


def item_page(p: Product, base: str) -> str:
    """An approximation of the 2024+ /item/<id>/ layout: root-relative URLs and .item-Samplecard samples.

    The character markup of the real new layout has not been seen, so the character table keeps the classic
    structure; the title, brand and date keep their classic ids so the same parser works.
    """
    extra = (
        f'<meta property="og:title" content="{esc(p.title)}">\n'
        f'<meta property="og:image" content="{base}/brandnew/{p.id}/c{p.id}package.jpg">\n'
        f'<link rel="canonical" href="{base}/item/{p.id}/">\n'
    )
    parts = [
        _head(f"{p.title} | Getchu.com", extra),
        "<body>\n",
        _site_header(base, p.tab),
        '<main class="item-Main">\n<div class="item-Headline">\n',
        f'<div class="item-Cover"><a href="/brandnew/{p.id}/c{p.id}package.jpg">'
        f'<img src="/brandnew/{p.id}/rc{p.id}package.jpg" alt="パッケージ画像"></a></div>\n',
        f'<table id="soft_table"><tr><th><h1 id="soft-title" class="item-Title">{esc(p.title)}</h1></th></tr>\n',
        f"<tr><th><table>\n{_spec_rows(p, base, '/')}\n</table></th></tr></table>\n</div>\n",
        _chara_section(p, base, "/"),
        _samples_item(p),
        f'<a class="item-Cart" href="{CART}?gc=gc&amp;article_id={p.id}">カートに入れる</a>\n',
        "</main>\n",
        _FOOTER,
    ]
    return "".join(parts)


# --- month lists ---------------------------------------------------------------------------------------------


def _month_form(year: int, month: int, genre: str, gage: str) -> str:
    genres = [("pc_soft", "ゲーム"), ("dvd_game", "PlayersGame"), ("doujin", "同人"), ("anime_dvd", "アニメ")]
    gages = [("", "----"), ("all", "全て"), ("adult", "アダルト"), ("normal", "一般")]

    def opts(pairs: list[tuple[str, str]], current: str) -> str:
        return "".join(f'<OPTION value="{v}"{" selected" if v == current else ""}>{t}</OPTION>' for v, t in pairs)

    years = [(str(y), str(y)) for y in range(2014, 2018)]
    months = [(str(m), str(m)) for m in range(1, 13)]
    return (
        '<div class="month_form">\n<FORM action="./month_title.html?" method="get">\n'
        f'<SELECT name="genre">{opts(genres, genre)}</SELECT>\n'
        f'<SELECT name="gage">{opts(gages, gage)}</SELECT>\n'
        f'<SELECT name="year">{opts(years, str(year))}</SELECT>年\n'
        f'<SELECT name="month">{opts(months, str(month))}</SELECT>月\n'
        '<input type="submit" value="表示">\n</FORM>\n</div>\n'
    )


def _month_nav(year: int, month: int) -> str:
    py, pm = (year - 1, 12) if month == 1 else (year, month - 1)
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    return (
        '<div class="charanum">\n<ul>\n'
        f"<li><A HREF=./month_title.html?genre=pc_soft&gage=&year={py}&month={pm:02d}>"
        f"＜{py}年{pm:02d}月のタイトル</A></li>\n"
        f'<li class="charavisited">{year}年{month:02d}月のタイトル</li>\n'
        f"<li><A HREF=./month_title.html?genre=pc_soft&gage=&year={ny}&month={nm:02d}>"
        f"{ny}年{nm:02d}月のタイトル＞</A></li>\n"
        "</ul>\n</div>\n"
    )


@dataclass(frozen=True)
class ListEntry:
    """What a list page needs about one product (scenario or synthetic benchmark game)."""

    id: int
    title: str
    brand: str
    price: str


def list_entry(pid: int) -> ListEntry:
    """The list entry of a scenario product."""
    p = PRODUCTS[pid]
    return ListEntry(pid, p.title + p.title_suffix, BRANDS[p.brand_id].name, p.price)


def _box(e: ListEntry, base: str, novelty: bool, offsite: bool) -> str:
    nov = f'<A href="/soft.phtml?id={e.id}" class="blues">★げっちゅ屋特典：テレホンカード★</a><br>\n' if novelty else ""
    nov_cart = (
        f'<div><A HREF="{CART}?gc=gc&article_id={e.id}&novelty[{e.id}]=1">特典付きでカートへ</A></div>\n'
        if novelty
        else ""
    )
    off = f'<div class="related"><a href="{OFFSITE_REAL_PRODUCT}">前作はこちら</a></div>\n' if offsite else ""
    return (
        '<div style="float: left; width:210px; height:365px;">\n'
        '<TABLE style="width:210px; height:365px; border: 1px; border-style: none dotted dotted none; '
        'border-color: #CCCCCC; margin:0px; padding:0px; ">\n'
        '<TR><TD valign="middle" align="center">\n'
        f'<A href="/soft.phtml?id={e.id} " class="black">\n{esc(e.title)}　</A><br>\n'
        f"{nov}"
        f'<A href="/soft.phtml?id={e.id}"  >\n'
        f'<IMG src="{base}/brandnew/{e.id}/c{e.id}package_ss.jpg" border="0" width="120"></A><br>\n'
        f"{esc(e.brand)}<br>\n"
        f"<SPAN class=black>（定価￥{e.price}）</SPAN><BR></TD></TR>\n"
        "<TR><TD>\n"
        '<div class="cart_block">通販価格：<span class="redb">￥8,000</span></div>\n'
        f'<div><A HREF="{CART}?gc=gc&article_id={e.id}"><IMG src="../common/images/s_cart.gif" width="65" '
        'height="18" border="0" class="mini_cart"></A></div><!--CART-->\n'
        f"{nov_cart}{off}"
        "</TD></TR>\n</TABLE>\n</div>\n"
    )


def _product_box(e: ListEntry, base: str) -> str:
    return (
        '<div class="product">\n'
        f'<div class="product_img"><a href="/soft.phtml?id={e.id}"><img src="{base}/brandnew/{e.id}/'
        f'c{e.id}package_ss.jpg" width="120"></a></div>\n'
        f'<div class="product_title"><a href="/soft.phtml?id={e.id}" class="black">{esc(e.title)}</a></div>\n'
        f'<div class="product_brand">{esc(e.brand)}</div>\n'
        f'<div class="product_price">（定価￥{e.price}）</div>\n'
        f'<div class="product_cart"><a href="{CART}?gc=gc&article_id={e.id}">カートに入れる</a></div>\n'
        "</div>\n"
    )


def _day_block(header: str, entries: list[ListEntry], base: str, style: str, novelty: tuple, offsite: tuple) -> str:
    head = f'<div class="category_pc_t">\n<div class="category_pc_t2">\n{esc(header)}</div>\n</div>\n<!--item box-->\n'
    if style == "product":
        boxes = "".join(_product_box(e, base) for e in entries)
        return head + f'<div class="product_list">\n{boxes}<br clear="all">\n</div>\n'
    boxes = "".join(_box(e, base, e.id in novelty, e.id in offsite) for e in entries)
    return (
        head + '<div class="category_pc_b">\n<TABLE width="100%" border="0" cellspacing="1" cellpadding="0">\n'
        f"<TR>\n<TD>\n{boxes}</TD></TR></TABLE>\n</div>\n"
    )


def month_page(
    base: str,
    year: int,
    month: int,
    days: list[tuple[DayBlock, list[ListEntry]]],
    genre: str = "pc_soft",
    gage: str = "",
) -> str:
    """A month_title.html box-layout page, as in 2014-15: menus and a CD sidebar before the day blocks."""
    sidebar = "".join(
        f'<a href="{base}/soft.phtml?id={cd}"><img src="{base}/brandnew/{cd}/c{cd}package_100.jpg" width="100" '
        f'border="0"></a><br>\n<a href="{base}/soft.phtml?id={cd}">{esc(PRODUCTS[cd].title)}</a><br>\n'
        for cd in SIDEBAR_CDS
    )
    ghost = PRODUCTS[COMMENTED_OUT]
    left = (
        '<td valign="top" width="180">\n'
        '<div class="category_pc_b">\n<div class="list-menu">\n<ul>\n'
        '<li class="blue"><a href="../php/search.phtml?genre=pc_soft&amp;sort=create_date" class="black">'
        "新規登録商品</a></li>\n"
        '<li class="blue"><a href="./month_title.html?genre=pc_soft&amp;gage=all" class="black">'
        "月別発売タイトル</a></li>\n"
        '<li class="blue"><a href="./brand.html?genre=pc_soft" class="black">ブランド一覧</a></li>\n'
        "</ul>\n</div>\n</div>\n"
        '<div class="category_pc_b">\n<div class="sidetitle">ゲーム関連CD</div>\n'
        f"{sidebar}"
        f'<!-- <a href="../soft.phtml?id={ghost.id}">{esc(ghost.title)}</a><br> -->\n'
        "</div>\n</td>\n"
    )
    headword = (
        f'<div class="pc_headword">月別発売タイトル一覧・ゲーム （{year}年{month:02d}月）\n'
        f'<a href="./price.html?genre=pc_soft&amp;year={year}&amp;month={month:02d}&amp;gage=&amp;gall=all">'
        "リスト形式</a></div>\n"
    )
    form = _month_form(year, month, genre, gage)
    nav = _month_nav(year, month)
    blocks = "".join(_day_block(d.header, es, base, d.style, d.novelty, d.offsite_in) for d, es in days)
    if not days:
        blocks = '<div class="category_pc_b">\n<p>該当する商品はありません。</p>\n</div>\n'
    main = f'<td valign="top">\n{headword}{form}{nav}<!--選択-->\n{blocks}<br clear="all">\n{form}{nav}</td>\n'
    return (
        _head(f"{year}年{month:02d}月発売タイトル - Getchu.com")
        + "<body>\n"
        + _site_header(base, "/pc/")
        + f'<table width="100%" border="0"><tr>\n{left}{main}</tr></table>\n'
        + _FOOTER
    )


def price_page(base: str, year: int, month: int, rows: list[tuple[str, ListEntry]]) -> str:
    """The same month as a list (price.html): one tr[bgcolor="#ffffff"] per product."""
    trs = "".join(
        '<tr bgcolor="#ffffff">'
        f'<td>{day}</td><td><a href="../soft.phtml?id={e.id}" class="black">{esc(e.title)}</a></td>'
        f"<td>{esc(e.brand)}</td><td>DVD-ROM</td><td>￥{e.price}</td><td></td><td></td><td>○</td></tr>\n"
        for day, e in rows
    )
    return (
        _head(f"{year}年{month:02d}月発売タイトル（リスト形式） - Getchu.com")
        + "<body>\n"
        + _site_header(base, "/pc/")
        + '<table width="100%" border="0" cellspacing="1" cellpadding="2" bgcolor="#cccccc">\n'
        + '<tr bgcolor="#eeeeee"><th>発売日</th><th>タイトル</th><th>ブランド</th><th>メディア</th><th>定価</th>'
        + "<th></th><th></th><th>在庫</th></tr>\n"
        + trs
        + "</table>\n"
        + _FOOTER
    )


# --- brand and search pages ----------------------------------------------------------------------------------


def brand_page(base: str) -> str:
    """all/brand.html: the brands, linking the brand search with absolute URLs like the real site."""
    links = "".join(
        f'<li><a href="{base}/php/search.phtml?search_brand_id={b}">{esc(BRANDS[b].name)}</a></li>\n'
        for b in LISTED_BRANDS
    )
    return (
        _head("ブランド一覧 - Getchu.com")
        + "<body>\n"
        + _site_header(base, "/pc/")
        + f'<div class="brand_list">\n<ul>\n{links}</ul>\n</div>\n'
        + _FOOTER
    )


def search_page(base: str, entries: list[ListEntry], next_href: str | None, kind: str = "PCゲーム") -> str:
    """php/search.phtml results (ul.display li #detail_block a.blueb) plus a recommendation block to ignore."""
    if entries:
        items = "".join(
            '<li>\n<div class="content_block">\n<div id="detail_block">\n'
            f'<a href="../soft.phtml?id={e.id}" class="blueb">{esc(e.title)}</a>\n'
            f'<span class="orangeb">{kind}</span>\n'
            f"<p>ブランド：{esc(e.brand)}</p>\n</div>\n</div>\n</li>\n"
            for e in entries
        )
        results = f'<ul class="display">\n{items}</ul>\n'
    else:
        results = f'<p class="no_result">{NO_RESULTS}。</p>\n'
    pager = f'<div class="pager"><a href="{esc(next_href)}">次へ&gt;&gt;</a></div>\n' if next_href else ""
    rec = PRODUCTS[SIDEBAR_CDS[0]]
    recommend = (
        '<div class="recommend_block">\n<div class="tabletitle">&nbsp;おすすめ商品</div>\n'
        f'<ul>\n<li><a href="../soft.phtml?id={rec.id}" class="blueb">{esc(rec.title)}</a></li>\n</ul>\n</div>\n'
    )
    return (
        _head("検索結果 - Getchu.com")
        + "<body>\n"
        + _site_header(base, "/pc/")
        + f'<div class="search_container">\n{results}{pager}</div>\n{recommend}'
        + _FOOTER
    )


# --- benchmark (scale mode) ----------------------------------------------------------------------------------


def scale_product(pid: int, month: int) -> Product:
    """A synthetic benchmark game: 3 characters, standard file names, classic layout."""
    i = pid - SCALE_FIRST_ID
    charas = tuple(
        Chara(k, f"ベンチ{k}号 {i}", f"べんち{k}ごう {i}", f"声優{k}", f"役{k}", profile="身長：150㌢")
        for k in (1, 2, 3)
    )
    return Product(pid, f"ベンチマークゲーム {i}", 5001, f"{SCALE_YEAR}/{month:02d}/15", charas=charas, price="7,344")


def clean_title(raw: str) -> str:
    """The title without a trailing ＜…＞ campaign suffix or trailing spaces (what the spider should emit)."""
    return re.sub(r"\s*＜[^＞]*＞\s*$", "", raw).strip()
