"""Tests of scraping/parsing/: decoding, listing layouts, product pages, age gate, URL helpers; and of the
small judgements around them: the reason recorded for a page that could not be fetched (scraping/failures.py) and
what the HTTP cache keeps (scraping/middlewares.py).

Synthetic snippets are written here, one per layout or trap, from the structure of Getchu's pages (EUC-JP with NEC
and JIS X 0213 characters, the month-list and search layouts, classic and /item/ product pages, missing pages, the
age gate). Real saved pages, where the checkout has them beside it in ../shared/research/getchu_pages, are read in
place (never copied into the repo, they are not ours) to check the selectors against real markup; those tests skip
with a reason when the folder is absent.
"""

from __future__ import annotations

import ast
import csv
import random
import re
from pathlib import Path

import pytest
from parsel import Selector

from scraping.parsing import (
    BUST_FILENAME_RE,
    LISTING_LAYOUTS,
    Character,
    ListingEntry,
    PageDecodeError,
    bust_index,
    decode_page,
    game_id_from_url,
    gate_target,
    is_age_gate,
    page_charset,
    parse_game_page,
    parse_listing,
    with_age_flag,
)

PAGES = Path(__file__).resolve().parents[2] / "shared" / "research" / "getchu_pages"
HOST = "http://127.0.0.1:8000"


def euc(text: str) -> bytes:
    """Page bytes as the site (and the fixture) serve them: EUC-JP with NEC / JIS X 0213 characters."""
    return text.encode("euc_jis_2004")


# ----------------------------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------------------------

TRAP = "身長：160㌢　①ヒロイン　高～"


def test_decode_page_reads_nec_row13_and_jis_x0213() -> None:
    body = euc(f"<p>{TRAP}</p>")
    with pytest.raises(UnicodeDecodeError):
        body.decode("euc_jp")  # ① (0xADA1) is outside plain EUC-JP: the body needs euc_jis_2004
    assert decode_page(body) == f"<p>{TRAP}</p>"
    assert decode_page(body, "EUC-JP") == f"<p>{TRAP}</p>"


def test_errors_replace_garbles_the_rest_of_the_run_but_decode_page_does_not() -> None:
    body = euc(TRAP)
    garbled = body.decode("euc_jp", errors="replace")
    assert "\ufffd" in garbled
    # Not just the NEC characters are lost: the decoder resynchronises on the wrong byte and eats what follows.
    assert "ヒロイン" not in garbled
    assert decode_page(body) == TRAP


def test_numeric_reference_for_a_char_outside_the_tables_is_resolved_by_the_parser() -> None:
    with pytest.raises(UnicodeEncodeError):
        "髙".encode("euc_jis_2004")  # why the site writes it as &#39641;
    text = decode_page(euc("<p>&#39641;橋 ①</p>"))
    assert "&#39641;" in text
    assert Selector(text=text).xpath("string(//p)").get() == "髙橋 ①"


def test_cp932_is_the_last_resort() -> None:
    body = "<p>テスト①</p>".encode("cp932")
    with pytest.raises(UnicodeDecodeError):
        body.decode("euc_jis_2004")
    assert decode_page(body) == "<p>テスト①</p>"


def test_declared_non_japanese_charset_is_tried_first() -> None:
    body = "<p>テスト – ①</p>".encode()
    assert decode_page(body, "utf-8") == "<p>テスト – ①</p>"
    # A wrong declaration falls back to the Japanese chain instead of failing.
    assert decode_page(euc(TRAP), "utf-8") == TRAP
    # An unknown label is ignored.
    assert decode_page(euc(TRAP), "x-no-such-charset") == TRAP


def test_declared_single_byte_charset_cannot_win_over_euc() -> None:
    """ISO-8859-1 decodes any bytes; trying it first would garble every EUC-JP page served with a default header."""
    assert decode_page(euc(TRAP), "iso-8859-1") == TRAP
    assert decode_page(b"caf\xe9 \xff", "iso-8859-1") == "café ÿ"  # still used when nothing Japanese fits


def test_utf8_bom_is_honoured() -> None:
    assert decode_page(b"\xef\xbb\xbf<p>abc</p>") == "<p>abc</p>"


def test_undecodable_body_raises_page_decode_error_naming_the_encodings() -> None:
    noise = random.Random(0).randbytes(512)
    with pytest.raises(PageDecodeError) as info:
        decode_page(noise, "utf-8")
    assert isinstance(info.value, ValueError)
    assert info.value.tried == ("utf_8", "euc_jis_2004", "euc_jp", "cp932")
    assert "euc_jis_2004" in str(info.value)


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html; charset=EUC-JP", b"<meta charset='utf-8'>", "euc-jp"),
        ('text/html; charset="Shift_JIS"', b"", "shift_jis"),
        ("text/html", b'<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP">', "euc-jp"),
        (None, b'<html><head><meta charset="utf-8"></head>', "utf-8"),
        ("text/html", b"<html><body>no charset</body></html>", None),
        (None, b" " * 2100 + b'<meta charset="utf-8">', None),  # only the first 2 KB are sniffed
    ],
)
def test_page_charset(content_type: str | None, body: bytes, expected: str | None) -> None:
    assert page_charset(content_type, body) == expected


# ----------------------------------------------------------------------------------------------------------------------
# URL helpers and the age gate
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://www.getchu.com/soft.phtml?id=840803", 840803),
        ("http://www.getchu.com/soft.phtml?id=840803 ", 840803),
        ("/soft.phtml?id=840803 &gc=gc", 840803),
        ("../soft.phtml?id=840803%20", 840803),
        ("https://www.getchu.com/soft.phtml?gc=gc&id=7", 7),
        ("https://www.getchu.com/item/1355679/", 1355679),
        ("https://www.getchu.com/item/1355679/?gc=gc", 1355679),
        ("https://www.getchu.com/item/1355679", 1355679),
        ("https://www.getchu.com/soft.phtml?id=abc", None),
        ("https://www.getchu.com/soft.phtml", None),
        ("https://www.getchu.com/soft_sampleimage.phtml?id=5", None),
        ("https://order.zams.biz/comike/cart.phtml?gc=gc&article_id=846113", None),
        ("./month_title.html?genre=pc_soft&gage=&year=2015&month=06", None),
    ],
)
def test_game_id_from_url(url: str, expected: int | None) -> None:
    assert game_id_from_url(url) == expected


def test_is_age_gate() -> None:
    gate_html = decode_page(euc("<html><head><title>年齢認証</title></head><body>【すすむ】</body></html>"))
    assert is_age_gate(gate_html, f"{HOST}/soft.phtml?id=1")
    assert is_age_gate("<html></html>", f"{HOST}/php/attestation.html?aurl=x")
    assert not is_age_gate("<html><head><title>テスト - Getchu.com</title></head></html>", f"{HOST}/soft.phtml?id=1")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://www.getchu.com/php/attestation.html?aurl=https%3A%2F%2Fwww.getchu.com%2Fitem%2F1355679%2F",
            "https://www.getchu.com/item/1355679/",
        ),
        (
            f"{HOST}/php/attestation.html?aurl=http%3A%2F%2F127.0.0.1%3A8000%2Fsoft.phtml%3Fid%3D900101%26x%3D1",
            f"{HOST}/soft.phtml?id=900101&x=1",
        ),
        (  # pasted raw: the target's own '&' parameters belong to it
            "http://www.getchu.com/php/attestation.html?aurl=http://www.getchu.com/php/search.phtml?genre=anime&pageID=2",
            "http://www.getchu.com/php/search.phtml?genre=anime&pageID=2",
        ),
        (f"{HOST}/php/attestation.html?aurl=%2Fsoft.phtml%3Fid%3D5", f"{HOST}/soft.phtml?id=5"),
        (  # an http aurl on the https gate (2012-2020 gates wrote http://): the same site, on the gate's scheme
            "https://www.getchu.com/php/attestation.html?aurl=http%3A%2F%2Fwww.getchu.com%2Fitem%2F1355679%2F",
            "https://www.getchu.com/item/1355679/",
        ),
        (f"{HOST}/php/attestation.html", None),
        (f"{HOST}/soft.phtml?id=5&aurl=x", None),
    ],
)
def test_gate_target(url: str, expected: str | None) -> None:
    assert gate_target(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{HOST}/soft.phtml?id=5", f"{HOST}/soft.phtml?id=5&gc=gc"),
        (f"{HOST}/soft.phtml?id=5&gc=gc", f"{HOST}/soft.phtml?id=5&gc=gc"),
        (f"{HOST}/soft.phtml?gc=gc&id=5", f"{HOST}/soft.phtml?gc=gc&id=5"),
        (f"{HOST}/item/900110/", f"{HOST}/item/900110/?gc=gc"),
        (f"{HOST}/soft.phtml?id=5 ", f"{HOST}/soft.phtml?id=5&gc=gc"),
        (f"{HOST}/soft.phtml?id=5&gc=1", f"{HOST}/soft.phtml?id=5&gc=gc"),
        (f"{HOST}/soft.phtml?id=5#chara2", f"{HOST}/soft.phtml?id=5&gc=gc#chara2"),
        (  # EUC-JP percent escapes are kept byte for byte
            f"{HOST}/php/search.phtml?search_keyword=%A5%C6%A5%B9%A5%C8&pageID=2",
            f"{HOST}/php/search.phtml?search_keyword=%A5%C6%A5%B9%A5%C8&pageID=2&gc=gc",
        ),
    ],
)
def test_with_age_flag(url: str, expected: str) -> None:
    assert with_age_flag(url) == expected
    assert with_age_flag(with_age_flag(url)) == expected


# ----------------------------------------------------------------------------------------------------------------------
# Listings
# ----------------------------------------------------------------------------------------------------------------------

MONTH_URL = f"{HOST}/all/month_title.html?genre=pc_soft&gage=all&year=2016&month=1"


def box(game_id: int, title: str, *, novelty: str | None = None) -> str:
    """One 2015-style item box: title link with a trailing space in href, novelty, image link, brand, carts."""
    novelty_html = f'<A href="/soft.phtml?id={game_id}" class="blues">★{novelty}★</a><br>' if novelty else ""
    return f"""
<div style="float: left; width:210px; height:365px;">
<TABLE><TR><TD valign="middle" align="center">
<A href="/soft.phtml?id={game_id} " class="black">
{title}　</A><br>
{novelty_html}
<A href="/soft.phtml?id={game_id}"  >
<IMG src="http://www.getchu.com/brandnew/{game_id}/c{game_id}package_ss.jpg" border="0" width="120"></A><br>
ブランド<br><SPAN class=black>（定価￥9,180）</SPAN><BR></TD></TR>
<TR><TD><div><A HREF="https://order.zams.biz/comike/cart.phtml?gc=gc&article_id={game_id}"><IMG
 src="../common/images/s_cart.gif"></A><div><!--CART-->
<!--<A HREF="https://order.zams.biz/comike/cart.phtml?article_id={game_id}">cart</A>-->
</TD></TR></TABLE>
</div>"""


def day(header: str, *boxes: str) -> str:
    return f"""
<div class="category_pc_t">
<div class="category_pc_t2">
{header}</div>
</div>
<div class="category_pc_b">
<TABLE width="100%"><TR><TD>{"".join(boxes)}</TD></TR></TABLE>
</div>"""


def month_page(main: str) -> str:
    """A month_title page modelled on the real 2015 pages: menu, sidebar CDs, commented link, form, month links."""
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html lang="ja"><HEAD><TITLE>2016年01月発売タイトル - Getchu.com</TITLE>
<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP"></HEAD><body>
<TABLE><TR><TD valign="top"><div>
<div class="category_pc_t"><div class="category_pc_t2">メニュー</div></div>
<div class="category_pc_b"><div class="list-menu"><ul>
<li class="blue"><A HREF="/all/month_title.html?genre=pc_soft" class="black">月別発売タイトル</A></li>
<li class="blue"><A HREF="/soft.phtml?id=900290" class="black">おすすめ</A></li>
</ul></div></div>
<div class="category_pc_t">
<div class="category_pc_t2"><a href="/all/genre.html?pageID=&sub_genre_id=366" class="black">ゲーム関連CD</a></div>
</div>
<div class="category_pc_b" style="text-align:center;">
<a href="{HOST}/soft.phtml?id=900201"><img src="{HOST}/brandnew/900201/c900201package_100.jpg"><br>
サウンドトラック</a><br>
<a href="{HOST}/soft.phtml?id=900202" class="black"><img src="{HOST}/brandnew/900202/c900202package_100.jpg"><br>
ボーカルCD</a><br>
</div>
<!--
<a href="../soft.phtml?id=900299"><img src="../mbanner/img/865.jpg" border="0"></a>
-->
</div></TD>
<TD valign="top" align="left" width="100%">
<div class="pc_headword"><span>月別発売タイトル一覧・ゲーム （2016年01月）</span>
<a href="price.html?genre=pc_soft&year=2016&month=01&gage=&gall=all">リスト形式</a></div>
<FORM action="./month_title.html?" method="GET"><SELECT name="genre"><OPTION value="pc_soft" selected>ゲーム</OPTION>
</SELECT><input type="submit" value="表示"></FORM>
<div class="charanum"><ul>
<li><A HREF=./month_title.html?genre=pc_soft&gage=&year=2015&month=12>＜2015年12月のタイトル</A></li>
<li class="charavisited">2016年01月のタイトル</li>
<li><A HREF=./month_title.html?genre=pc_soft&gage=&year=2016&month=02>2016年02月のタイトル＞</A></li>
</ul></div>
{main}
<div class="charanum"><ul>
<li><A HREF=./month_title.html?genre=pc_soft&gage=&year=2016&month=02>2016年02月のタイトル＞</A></li>
</ul></div>
</TD></TR></TABLE>
<div id="footer"><a href="{HOST}/top.html">トップへ戻る</a></div>
</body></html>"""


def test_listing_box_2015() -> None:
    main = day(
        "2016年1月29日発売タイトル",
        box(900101, "テスト①～ 初回限定版", novelty="描き下ろしB2タペストリー"),
        box(900102, "テスト①～ 通常版"),
        # An absolute link to another host inside the region (the real host while the fixture serves 127.0.0.1).
        '<div><A href="http://www.getchu.com/soft.phtml?id=816056" class="black">offsite</A></div>',
        box(900103, "旧レイアウト"),
    ) + day(
        "2016年1月30日発売タイトル",
        box(900105, "エンコード罠"),
        box(900101, "テスト①～ 初回限定版"),  # listed twice: the first one wins
        '<div class="product"><A href="../soft.phtml?id=900106" class="black">新しい箱　</A></div>',
    )
    html = decode_page(euc(month_page(main)))
    listing = parse_listing(html, MONTH_URL)
    assert listing.layout == "box2015"
    assert listing.empty is False
    assert listing.next_pages == ()  # prev/next MONTH links are other listings
    assert listing.entries == (
        ListingEntry(900101, f"{HOST}/soft.phtml?id=900101", "テスト①～ 初回限定版", "2016-01-29"),
        ListingEntry(900102, f"{HOST}/soft.phtml?id=900102", "テスト①～ 通常版", "2016-01-29"),
        ListingEntry(900103, f"{HOST}/soft.phtml?id=900103", "旧レイアウト", "2016-01-29"),
        ListingEntry(900105, f"{HOST}/soft.phtml?id=900105", "エンコード罠", "2016-01-30"),
        ListingEntry(900106, f"{HOST}/soft.phtml?id=900106", "新しい箱", "2016-01-30"),
    )


def test_listing_canonical_url_uses_the_listing_scheme_and_host() -> None:
    main = day("2015年1月9日発売タイトル", box(840803, "お楽しみCDボーナスパック23"))
    listing = parse_listing(month_page(main), "https://www.getchu.com/all/month_title.html?year=2015&month=1")
    assert [e.url for e in listing.entries] == ["https://www.getchu.com/soft.phtml?id=840803"]


def test_listing_on_https_keeps_http_absolute_links_of_the_same_host() -> None:
    """Getchu writes absolute links as http://www.getchu.com/..., even on https pages: an https listing's own site."""
    main = day(
        "2016年1月29日発売タイトル",
        box(900101, "相対リンク"),
        '<div><A href="http://www.getchu.com/soft.phtml?id=900102 " class="black">絶対リンク</A></div>',
        '<div><A href="http://www.getchu.com:8080/soft.phtml?id=900103" class="black">別ポート</A></div>',
        '<div><A href="http://ssl.getchu.com/soft.phtml?id=900104" class="black">別ホスト</A></div>',
    )
    url = "https://www.getchu.com/all/month_title.html?genre=pc_soft&gage=all&year=2016&month=1"
    listing = parse_listing(month_page(main), url)
    assert [(e.game_id, e.url, e.title) for e in listing.entries] == [
        (900101, "https://www.getchu.com/soft.phtml?id=900101", "相対リンク"),
        (900102, "https://www.getchu.com/soft.phtml?id=900102", "絶対リンク"),
    ]


def test_search_pages_on_https_follow_http_absolute_pagination_over_https() -> None:
    real = "http://www.getchu.com"
    html = search_page([900101, 900102], page=1, last=3).replace(HOST, real)
    url = SEARCH_URL.replace(HOST, "https://www.getchu.com")
    listing = parse_listing(html, url)
    assert [e.url for e in listing.entries] == [
        "https://www.getchu.com/soft.phtml?id=900101",
        "https://www.getchu.com/soft.phtml?id=900102",
    ]
    base = "https://www.getchu.com/php/search.phtml?search_brand_id=5001&genre=pc_soft&list_count=2&pageID="
    assert listing.next_pages == (f"{base}2", f"{base}3")


def test_listing_empty_month() -> None:
    listing = parse_listing(month_page(""), f"{HOST}/all/month_title.html?genre=pc_soft&gage=all&year=2016&month=3")
    assert (listing.layout, listing.entries, listing.next_pages, listing.empty) == ("box2015", (), (), True)


def test_listing_unknown_layout_is_not_reported_as_empty() -> None:
    listing = parse_listing("<html><body><p>メンテナンス中</p></body></html>", f"{HOST}/somewhere.html")
    assert (listing.layout, listing.entries, listing.empty) == ("unknown", (), False)


def test_listing_product_layout_2016() -> None:
    html = f"""<html><body>
<div class="category_pc_b"><a href="{HOST}/soft.phtml?id=900201" class="black">サイドバーCD</a></div>
<div class="product_list">
 <div class="product"><a href="/soft.phtml?id=1001 " class="black">作品A　</a>
   <a href="/soft.phtml?id=1001"><img src="/brandnew/1001/c1001package_ss.jpg"></a>
   <a href="/soft.phtml?id=1001" class="blues">★特典★</a></div>
 <div class="product"><a href="https://www.getchu.com/soft.phtml?id=1002" class="black">作品B</a>
   <a href="https://order.zams.biz/comike/cart.phtml?gc=gc&article_id=1002" class="black">カート</a></div>
 <div class="product"><a href="https://www.getchu.com/soft.phtml?id=1003" class="black">作品C </a></div>
</div></body></html>"""
    listing = parse_listing(
        html, "https://www.getchu.com/all/month_title.html?genre=pc_soft&gage=adult&year=2023&month=1"
    )
    assert listing.layout == "product"
    assert [(e.game_id, e.title, e.release_date) for e in listing.entries] == [
        (1001, "作品A", None),
        (1002, "作品B", None),
        (1003, "作品C", None),
    ]
    assert listing.next_pages == ()


def test_listing_td_dd_layout_2019() -> None:
    html = """<html><body><table>
<tr><td class="dd"><a href="/soft.phtml?id=2001"><img src="/brandnew/2001/c2001package_ss.jpg" alt=""></a>
    <a href="/soft.phtml?id=2001">作品D</a></td></tr>
<tr><td class="dd"><a href="/soft.phtml?id=2002 ">作品E　</a></td></tr>
<tr><td class="dd"><a href="http://evil.example/soft.phtml?id=2003">偽物</a></td></tr>
</table><div class="side"><a href="/soft.phtml?id=2999">サイド</a></div></body></html>"""
    listing = parse_listing(html, "http://www.getchu.com/all/month_title.html?genre=pc_soft&gage=all&year=2019&month=1")
    assert listing.layout == "td_dd"
    assert [(e.game_id, e.title) for e in listing.entries] == [(2001, "作品D"), (2002, "作品E")]


SEARCH_URL = f"{HOST}/php/search.phtml?search_brand_id=5001&genre=pc_soft&list_count=2&pageID=1"


def search_page(ids: list[int], *, page: int, last: int) -> str:
    items = "".join(
        f"""<li><div id="detail_block"><span class="orangeb">PCゲーム</span>
<a href="../soft.phtml?id={i}" class="blueb">検索結果{i}</a></div></li>"""
        for i in ids
    )
    pager = "".join(
        f'<a href="{HOST}/php/search.phtml?search_brand_id=5001&genre=pc_soft&list_count=2&pageID={p}">{p}</a> '
        for p in range(1, last + 1)
    )
    if page < last:
        pager += f'<a href="./search.phtml?search_brand_id=5001&genre=pc_soft&list_count=2&pageID={page + 1}">次へ</a>'
    return f"""<html><body>
<div class="sidebar"><a href="/all/genre.html?pageID=2&sub_genre_id=366">CD</a>
<a href="/php/search.phtml?genre=pc_soft&sort=create_date">新規登録商品</a></div>
<div class="search_container"><div class="pager">{pager}</div>
<ul class="display">{items}</ul>
<div class="recommend"><ul><li><a href="../soft.phtml?id=900201" class="blueb">おすすめ</a></li></ul></div>
<div class="pager">{pager}</div></div></body></html>"""


def test_listing_search_with_pagination() -> None:
    listing = parse_listing(search_page([900101, 900102], page=1, last=3), SEARCH_URL)
    assert listing.layout == "search"
    assert [(e.game_id, e.url, e.title) for e in listing.entries] == [
        (900101, f"{HOST}/soft.phtml?id=900101", "検索結果900101"),
        (900102, f"{HOST}/soft.phtml?id=900102", "検索結果900102"),
    ]
    base = f"{HOST}/php/search.phtml?search_brand_id=5001&genre=pc_soft&list_count=2&pageID="
    assert listing.next_pages == (f"{base}2", f"{base}3")


def test_listing_search_last_page_points_back_only() -> None:
    url = SEARCH_URL.replace("pageID=1", "pageID=2")
    listing = parse_listing(search_page([900112], page=2, last=2), url)
    assert [e.game_id for e in listing.entries] == [900112]
    assert listing.next_pages == (SEARCH_URL,)  # page 1 is a page of the same listing; the spider dedupes requests


def test_listing_search_legacy_blueb() -> None:
    html = """<html><body><table>
<tr><td><a href="../soft.phtml?id=3001" class="blueb">旧検索A</a></td></tr>
<tr><td><a href="../soft.phtml?id=3002" class="blueb">旧検索B</a></td></tr></table>
<a href="search.phtml?search_brand_id=1&pageID=2">2</a></body></html>"""
    listing = parse_listing(html, "http://www.getchu.com/php/search.phtml?search_brand_id=1&list_count=5000")
    assert listing.layout == "search_legacy"
    assert [e.game_id for e in listing.entries] == [3001, 3002]
    assert listing.next_pages == ("http://www.getchu.com/php/search.phtml?search_brand_id=1&pageID=2",)


def test_listing_search_empty_ignores_recommendations() -> None:
    html = decode_page(
        euc(
            """<html><body><div class="search_container"><p>該当する作品はありませんでした</p>
<ul class="display"><li><div id="detail_block"><a href="../soft.phtml?id=900201" class="blueb">おすすめCD</a></div></li>
</ul><a href="../soft.phtml?id=900202" class="blueb">おすすめ2</a></div></body></html>"""
        )
    )
    listing = parse_listing(html, SEARCH_URL.replace("pageID=1", "pageID=3"))
    assert (listing.layout, listing.entries, listing.next_pages, listing.empty) == ("search", (), (), True)


def test_listing_empty_marker_in_a_comment_does_not_empty_the_page() -> None:
    html = search_page([900101], page=1, last=1).replace("<body>", "<body><!-- 該当する作品はありませんでした -->")
    listing = parse_listing(html, SEARCH_URL)
    assert (listing.layout, [e.game_id for e in listing.entries], listing.empty) == ("search", [900101], False)


def test_layouts_table_names_are_unique() -> None:
    names = [layout.name for layout in LISTING_LAYOUTS]
    assert len(names) == len(set(names))
    assert names == ["box2015", "product", "td_dd", "search", "search_legacy"]


# ----------------------------------------------------------------------------------------------------------------------
# Product pages
# ----------------------------------------------------------------------------------------------------------------------


def chara_row(
    k: int | None,
    img: str | None,
    name_html: str,
    *,
    fullbody: str | None = None,
    img_attrs: str = "",
    alt: str | None = None,
) -> str:
    """A character row of a classic soft.phtml: anchor + img in td1, h2.chara-name in td2, full-body link in td3."""
    anchor = f'<a name="chara{k}" id="chara{k}"></a>' if k is not None else ""
    alt = alt if alt is not None else f"キャラ{k}"
    image = f'<IMG src="{img}" alt="{alt}" width="250" height="300" {img_attrs}>' if img is not None else ""
    td3 = (
        f'<TD valign="middle"><a class="highslide" href="{fullbody}"><img src="{fullbody[:-4]}_s.jpg"></a></TD>'
        if fullbody
        else ""
    )
    return f"""<TR><TD valign="middle" align="center">{anchor}{image}</TD>
<TD valign="middle" align="left" class="chara-text"><DL style="line-height:150%"><DT><STRONG><h2 class="chara-name">
{name_html}</h2></STRONG></DT><DD>身長：160㌢。プロフィール。</DD></DL></TD>{td3}</TR>
<TR><TD colspan="3"><hr></TD></TR>"""


def game_page(
    gid: int,
    rows: str | None,
    *,
    title: str = "テスト①～ ＜早期予約キャンペーン特典＞",
    brand_cell: str | None = None,
    date_cell: str = '<a id="tooltip-day" href="/php/search.phtml?start_date=2016/01/29" '
    'title="同じ発売日の同ジャンル商品を開く">2016/01/29</a>',
    tab: str = "/pc/",
    cover_alt: str = "パッケージ画像",
    extra: str = "",
) -> str:
    """A classic soft.phtml page: tabs, #soft_table with cover/title/spec rows, sections, samples, banners."""
    brand_cell = brand_cell or (
        '<a id="brandsite" class="glance" title="このブランドの公式サイトを開く" href="http://brand.example/">'
        'テストブランド</a> <nobr><a href="./php/search.phtml?search_brand_id=5001">'
        "（このブランドの作品一覧）</a></nobr>"
    )
    chara = (
        f'<div class="tabletitle">&nbsp;キャラクター</div>\n<table width="100%">{rows}</table>'
        if rows is not None
        else ""
    )
    return f"""<html><head><meta http-equiv="Content-Type" content="text/html; charset=EUC-JP">
<title>{title} - Getchu.com</title></head><body>
<div class="ui-headtabs"><ul><li class="genretab"><a href="/top.html">TOP</a></li>
<li class="genretab current"><a href="{tab}">カテゴリ</a></li>
<li class="genretab"><a href="/music/">音楽</a></li></ul></div>
<table id="soft_table"><tr><td rowspan="2"><a class="highslide" href="./brandnew/{gid}/c{gid}package.jpg">
<img src="./brandnew/{gid}/rc{gid}package.jpg" alt="{cover_alt}" width="280" height="400"></a></td>
<th><h1 id="soft-title">{title}
<nobr><a href="./php/search.phtml?search_title=x">（このタイトルの関連商品）</a></nobr></h1></th></tr>
<tr><th><table>
<TR><TD valign="top" align="right">ブランド：</TD><TD align="top">{brand_cell}</TD></TR>
<TR><TD valign="top" align="right" class="right">定価：</TD><TD align="top">￥9,800</TD></TR>
<TR><TD valign="top" align="right">発売日：</TD><TD align="top">{date_cell}</TD></TR>
</table></th></tr></table>
<div class="tabletitle tabletitle_1">&nbsp;ストーリー</div><div>物語。</div>
{chara}
<a name="sample" id="sample"></a>
<div class="tabletitle">&nbsp;サンプル画像</div>
<div><a class="highslide" href="./brandnew/{gid}/c{gid}sample1.jpg"><img src="./brandnew/{gid}/c{gid}sample1_s.jpg"
 alt="キャラ サンプル"></a></div>
<div class="tabletitle">&nbsp;キャンペーン</div>
<div><img src="./brandnew/{gid}/c{gid}banner1.jpg" alt="キャラバナー"></div>
{extra}
<div class="recommend"><a href="./soft.phtml?id=900104"><img src="./brandnew/900104/c900104package_s.jpg"></a></div>
</body></html>"""


def parse(html: str, url: str):
    """Round trip through EUC-JP bytes like a real response, then parse."""
    return parse_game_page(decode_page(euc(html)), url)


def test_game_page_normal_with_charalist_cv_fullbody() -> None:
    gid = 900101
    rows = "".join(
        chara_row(
            k,
            f"./brandnew/{gid}/c{gid}chara{k}.jpg",
            f"{label}<br><charalist>{name}</charalist> （{yomi}）　CV：{cv}",
            fullbody=f"./brandnew/{gid}/c{gid}charab{k}.jpg",
        )
        for k, label, name, yomi, cv in [
            (1, "ヒロイン", "①号 &#39641;子", "いちごう たかこ", "声優Ａ"),
            (2, "幼なじみ", "桜　ミク", "さくら みく", "声優Ｂ"),
            (3, "主人公", "エドワード", "エド", "和音"),
        ]
    )
    page = parse(game_page(gid, rows), f"{HOST}/soft.phtml?id={gid}&gc=gc")
    assert page.game_id == gid
    assert page.title == "テスト①～"
    assert page.brand == "テストブランド"
    assert (page.release_date, page.release_text) == ("2016-01-29", "2016/01/29")
    assert page.genre_tab == "/pc/"
    assert page.missing is False
    assert page.characters == tuple(
        Character(
            k,
            name,
            cv,
            f"{HOST}/brandnew/{gid}/c{gid}chara{k}.jpg",
            f"{HOST}/brandnew/{gid}/c{gid}charab{k}.jpg",
            True,
        )
        for k, name, cv in [(1, "①号 髙子", "声優Ａ"), (2, "桜　ミク", "声優Ｂ"), (3, "エドワード", "和音")]
    )


def test_game_page_old_layout_without_charalist() -> None:
    gid = 666077
    rows = (
        chara_row(
            1,
            f"./brandnew/{gid}/c{gid}chara1.jpg",
            "日常の象徴。剣道部所属。<br>綾瀬 香純 （あやせ かすみ）　CV：佐本二厘",
        )
        + chara_row(2, f"./brandnew/{gid}/c{gid}chara2.jpg", "名無し　CV:なし")
        + chara_row(3, f"./brandnew/{gid}/c{gid}chara3.jpg", " ")
    )
    page = parse(
        game_page(
            gid,
            rows,
            title="Dies irae",
            brand_cell='light <nobr><a href="./php/search.phtml?search_brand_id=9">'
            "（このブランドの作品一覧）</a></nobr>",
            date_cell="2009年12月23日",
        ),
        f"http://www.getchu.com/soft.phtml?id={gid}",
    )
    assert page.title == "Dies irae"
    assert page.brand == "light"
    assert (page.release_date, page.release_text) == ("2009-12-23", "2009年12月23日")
    assert [(c.index, c.name, c.cv) for c in page.characters] == [
        (1, "綾瀬 香純", "佐本二厘"),
        (2, "名無し", "なし"),
        (3, None, None),
    ]


def test_game_page_gap_imageless_lazy_and_src_forms() -> None:
    gid = 900103
    rows = (
        chara_row(1, f"../brandnew/{gid}/c{gid}chara1.jpg", "<charalist>一</charalist>")
        + chara_row(2, f"{HOST}/brandnew/{gid}/c{gid}chara2.jpg", "<charalist>二</charalist>")
        + chara_row(3, None, "<charalist>三</charalist>")  # no art yet
        + chara_row(4, f"//127.0.0.1:8000/brandnew/{gid}/c{gid}chara4.jpg", "<charalist>四</charalist>")
        + chara_row(
            5,
            "common/images/space.gif",
            "<charalist>五</charalist>",
            img_attrs=f'class="lazy" data-original="./brandnew/{gid}/c{gid}chara5.jpg"',
        )
        + chara_row(None, f"/brandnew/{gid}/c{gid}chara7.jpg", "<charalist>七</charalist>")  # gap: no chara6
    )
    page = parse(game_page(gid, rows), f"{HOST}/soft.phtml?id={gid}&gc=gc")
    assert [(c.index, c.name, c.image_url) for c in page.characters] == [
        (1, "一", f"{HOST}/brandnew/{gid}/c{gid}chara1.jpg"),
        (2, "二", f"{HOST}/brandnew/{gid}/c{gid}chara2.jpg"),
        (3, "三", None),
        (4, "四", f"{HOST}/brandnew/{gid}/c{gid}chara4.jpg"),
        (5, "五", f"{HOST}/brandnew/{gid}/c{gid}chara5.jpg"),
        (7, "七", f"{HOST}/brandnew/{gid}/c{gid}chara7.jpg"),
    ]
    assert [c.standard_name for c in page.characters] == [True, True, False, True, True, True]
    assert all(c.fullbody_url is None for c in page.characters)


def test_game_page_on_https_keeps_portraits_written_http_absolute() -> None:
    """The bug: on an https page, a portrait written http://www.getchu.com/brandnew/... (one of the real site's forms)
    was judged off-site (port 80 against 443), so the character and its portrait were lost."""
    gid = 900103
    real = "http://www.getchu.com"
    rows = (
        chara_row(
            1,
            f"{real}/brandnew/{gid}/c{gid}chara1.jpg",
            "<charalist>一</charalist>",
            fullbody=f"{real}/brandnew/{gid}/c{gid}charab1.jpg",
        )
        + chara_row(2, f"./brandnew/{gid}/c{gid}chara2.jpg", "<charalist>二</charalist>")
        + chara_row(3, f"//www.getchu.com/brandnew/{gid}/c{gid}chara3.jpg", "<charalist>三</charalist>")
        + chara_row(4, f"http://www.getchu.com:80/brandnew/{gid}/c{gid}chara4.jpg", "<charalist>四</charalist>")
        + chara_row(5, f"https://www.getchu.com/brandnew/{gid}/c{gid}chara5.jpg", "<charalist>五</charalist>")
    )
    page = parse(game_page(gid, rows), f"https://www.getchu.com/soft.phtml?id={gid}&gc=gc")
    https = f"https://www.getchu.com/brandnew/{gid}"
    assert page.characters == tuple(
        Character(k, name, None, f"{https}/c{gid}chara{k}.jpg", f"{https}/c{gid}charab1.jpg" if k == 1 else None, True)
        for k, name in enumerate("一二三四五", 1)
    )
    # The same markup on an http page: every form is that page's site, now on http.
    http_page = parse(game_page(gid, rows), f"http://www.getchu.com/soft.phtml?id={gid}")
    assert [c.image_url for c in http_page.characters] == [
        f"{real}/brandnew/{gid}/c{gid}chara{k}.jpg" for k in range(1, 6)
    ]


@pytest.mark.parametrize(
    ("page_url", "src", "image_url", "offsite_url"),
    [
        # The stand-in site over https: http on the host's default port is its plain-http address, the same site.
        ("https://127.0.0.1:8443/soft.phtml?id=7", "http://127.0.0.1/brandnew/7/c7chara1.jpg",
         "https://127.0.0.1:8443/brandnew/7/c7chara1.jpg", None),
        ("https://www.getchu.com/soft.phtml?id=7", "http://WWW.Getchu.com/brandnew/7/c7chara1.jpg",
         "https://www.getchu.com/brandnew/7/c7chara1.jpg", None),
        ("https://www.getchu.com/soft.phtml?id=7", "https://www.getchu.com:443/brandnew/7/c7chara1.jpg",
         "https://www.getchu.com/brandnew/7/c7chara1.jpg", None),
        # Another site: another host, another port of the same host, or a non-default port across schemes.
        ("https://www.getchu.com/soft.phtml?id=7", "http://img.getchu.com/brandnew/7/c7chara1.jpg",
         None, "http://img.getchu.com/brandnew/7/c7chara1.jpg"),
        ("https://www.getchu.com/soft.phtml?id=7", "http://www.getchu.com:8080/brandnew/7/c7chara1.jpg",
         None, "http://www.getchu.com:8080/brandnew/7/c7chara1.jpg"),
        ("http://127.0.0.1:8000/soft.phtml?id=7", "http://127.0.0.1:9000/brandnew/7/c7chara1.jpg",
         None, "http://127.0.0.1:9000/brandnew/7/c7chara1.jpg"),
        ("http://127.0.0.1:8000/soft.phtml?id=7", "http://127.0.0.1/brandnew/7/c7chara1.jpg",
         None, "http://127.0.0.1/brandnew/7/c7chara1.jpg"),
        ("https://www.getchu.com/soft.phtml?id=7", "http://www.getchu.com:bad/brandnew/7/c7chara1.jpg",
         None, "http://www.getchu.com:bad/brandnew/7/c7chara1.jpg"),  # a port that is no port: not this site
        # Not a portrait on any site: neither kept nor reported.
        ("https://www.getchu.com/soft.phtml?id=7", "http://www.example.org/common/images/demo_m.gif", None, None),
        ("https://www.getchu.com/soft.phtml?id=7", "ftp://www.getchu.com/brandnew/7/c7chara1.jpg", None, None),
    ],
)  # fmt: skip
def test_portrait_site_rule(page_url: str, src: str, image_url: str | None, offsite_url: str | None) -> None:
    page = parse(game_page(7, chara_row(1, src, "<charalist>一</charalist>")), page_url)
    assert [(c.image_url, c.offsite_url) for c in page.characters] == [(image_url, offsite_url)]


def test_game_page_decoys_are_not_portraits() -> None:
    gid = 900111
    chara1 = f"./brandnew/{gid}/c{gid}chara1.jpg"
    rows = (
        chara_row(1, chara1, "<charalist>本物</charalist>　CV：声優")
        + chara_row(1, chara1, "<charalist>本物（再掲）</charalist>")  # the same URL twice counts once
        + chara_row(2, f"./brandnew/{gid}/otome_chara.jpg", "<charalist>乙女</charalist>")
        + chara_row(3, "/common/images/demo_m.gif", "<charalist>動画</charalist>", alt="キャラクター紹介ムービー")
        + chara_row(4, f"http://www.getchu.com/brandnew/{gid}/c{gid}chara4.jpg", "<charalist>別ホスト</charalist>")
    )
    extra = f"""<div class="tabletitle">&nbsp;キャラクター紹介ムービー</div>
<div><img src="/common/images/demo_m.gif" alt="キャラクター紹介ムービー"></div>
<div class="banner"><a href="./soft.phtml?id={gid}"><img src="{chara1}" alt="キャラ1"></a></div>"""
    page = parse(game_page(gid, rows, cover_alt="キャラソンCD付き", extra=extra), f"{HOST}/soft.phtml?id={gid}")
    assert [(c.index, c.name, c.image_url, c.standard_name) for c in page.characters] == [
        (1, "本物", f"{HOST}/brandnew/{gid}/c{gid}chara1.jpg", True),
        (2, "乙女", f"{HOST}/brandnew/{gid}/otome_chara.jpg", False),  # kept, flagged non-standard
        (3, "動画", None, False),
        (4, "別ホスト", None, True),  # another site: not a portrait, but reported (offsite_url), not dropped
    ]
    assert [c.offsite_url for c in page.characters] == [
        None,
        None,
        None,
        f"http://www.getchu.com/brandnew/{gid}/c{gid}chara4.jpg",
    ]
    urls = {c.image_url for c in page.characters if c.image_url}
    assert not any("package" in u or "sample" in u or "banner" in u or u.endswith(".gif") for u in urls)


def test_game_page_without_character_section() -> None:
    page = parse(game_page(900201, None, title="サウンドトラック", tab="/music/"), f"{HOST}/soft.phtml?id=900201")
    assert (page.title, page.genre_tab, page.characters, page.missing) == ("サウンドトラック", "/music/", (), False)


def test_game_page_character_heading_without_table_does_not_steal_the_next_section() -> None:
    html = game_page(900104, None, extra='<div class="tabletitle">&nbsp;キャラクター</div><p>準備中</p>')
    html = html.replace(
        "</body>",
        '<div class="tabletitle">&nbsp;特典</div><table><tr><td valign="middle">'
        '<img src="./brandnew/900104/c900104chara1.jpg"></td></tr></table></body>',
    )
    assert parse(html, f"{HOST}/soft.phtml?id=900104").characters == ()


def test_game_page_empty_shell_is_missing() -> None:
    html = '<html><head><title>Getchu.com</title></head><body><div id="header"><a href="/top.html">TOP</a></div>'
    page = parse(html, f"{HOST}/soft.phtml?id=900107")
    assert page.missing is True
    assert (page.game_id, page.title, page.characters) == (900107, None, ())


def test_game_page_shell_with_logo_h1_is_still_missing() -> None:
    html = "<html><head><title>Getchu.com</title></head><body><h1>Getchu.com</h1><p>no product</p></body></html>"
    assert parse(html, f"{HOST}/soft.phtml?id=900107").missing is True


def test_game_page_title_falls_back_to_the_title_tag() -> None:
    html = game_page(900120, "", title="x").replace('<h1 id="soft-title">x', "<p>x").replace("</h1>", "</p>")
    html = html.replace("<title>x - Getchu.com</title>", "<title>題名だけの作品 ＜特典＞ - Getchu.com</title>")
    page = parse(html, f"{HOST}/soft.phtml?id=900120")
    assert (page.title, page.missing) == ("題名だけの作品", False)


def test_game_page_404_body_is_missing() -> None:
    html = "<html><head><title>404</title></head><body><h1>お探しのページは見つかりません</h1></body></html>"
    page = parse(html, f"{HOST}/soft.phtml?id=900106")
    assert page.missing is True
    assert (page.game_id, page.title, page.characters) == (900106, None, ())


def test_game_page_date_without_day() -> None:
    page = parse(game_page(900113, "", date_cell="2016年2月下旬予定"), f"{HOST}/soft.phtml?id=900113")
    assert (page.release_date, page.release_text) == (None, "2016年2月下旬予定")
    assert page.missing is False


def test_item_layout_page() -> None:
    gid = 900110
    rows = chara_row(1, f"/brandnew/{gid}/c{gid}chara1.jpg", "<charalist>新一</charalist>") + chara_row(
        2, f"/brandnew/{gid}/c{gid}chara2.jpg", "<charalist>新二</charalist>　CV：声"
    )
    html = f"""<html><head><meta property="og:title" content="新レイアウト作品 ＜特典付き＞">
<meta property="og:url" content="{HOST}/item/{gid}/">
<meta property="og:image" content="{HOST}/brandnew/{gid}/c{gid}package.jpg">
<title>新レイアウト作品 | Getchu.com</title></head><body>
<div class="ui-headtabs"><ul><li class="current"><a href="{HOST}/pc/">PC</a></li></ul></div>
<div class="item-Header"><h1>新レイアウト作品 ＜特典付き＞</h1></div>
<table class="item-Spec"><tr><th>ブランド：</th><td>新ブランド</td></tr>
<tr><th>発売日：</th><td>2016/03/04</td></tr></table>
<div class="tabletitle">&nbsp;キャラクター</div><table>{rows}</table>
<div class="item-Samplecard"><a href="//127.0.0.1:8000/brandnew/{gid}/c{gid}sample1.jpg"><img alt="キャラ"
 src="//127.0.0.1:8000/brandnew/{gid}/c{gid}sample1_s.jpg"></a></div></body></html>"""
    page = parse(html, f"{HOST}/item/{gid}/?gc=gc")
    assert (page.game_id, page.title, page.brand, page.release_date) == (
        gid,
        "新レイアウト作品",
        "新ブランド",
        "2016-03-04",
    )
    assert page.genre_tab == "/pc/"
    assert page.missing is False
    assert [(c.index, c.name, c.cv, c.image_url) for c in page.characters] == [
        (1, "新一", None, f"{HOST}/brandnew/{gid}/c{gid}chara1.jpg"),
        (2, "新二", "声", f"{HOST}/brandnew/{gid}/c{gid}chara2.jpg"),
    ]
    # The id falls back to og:url when the final URL does not carry it.
    assert parse(html, f"{HOST}/item/").game_id == gid


# ----------------------------------------------------------------------------------------------------------------------
# Real pages (read in place from ../shared; never copied into the repo)
# ----------------------------------------------------------------------------------------------------------------------

#: "titles listed" per page, from getchu_pages/README.txt.
REAL_MONTHS = {
    "month_title_pc_soft_2014_12.html": 91,
    "month_title_pc_soft_2015_01.html": 60,
    "month_title_pc_soft_2015_02.html": 51,
    "month_title_pc_soft_2015_03.html": 75,
    "month_title_pc_soft_2015_04.html": 33,
    "month_title_pc_soft_2015_05.html": 30,
}


def real_dir(name: str) -> Path:
    folder = PAGES / name
    if not folder.is_dir():
        pytest.skip(f"real Getchu pages not available: {folder} is absent (../shared is not beside the repo)")
    return folder


@pytest.mark.parametrize(("filename", "expected"), sorted(REAL_MONTHS.items()))
def test_real_month_pages(filename: str, expected: int) -> None:
    body = (real_dir("project-orgel") / filename).read_bytes()
    year, month = (int(x) for x in re.search(r"(\d{4})_(\d{2})", filename).groups())
    url = f"http://www.getchu.com/all/month_title.html?genre=pc_soft&gage=&year={year}&month={month:02d}"
    html = decode_page(body, page_charset("text/html", body))
    assert html == body.decode("euc_jp")  # README: identical to plain euc_jp on these pages

    # The sidebar block (ゲーム関連CD, up to the end of the left menu column) holds 16 ids including a commented one.
    side = html[html.index("ゲーム関連CD") : html.index("<!-- menu -->", html.index("ゲーム関連CD"))]
    sidebar_ids = {int(i) for i in re.findall(r"soft\.phtml\?id=(\d+)", side)}
    assert len(sidebar_ids) == 16

    listing = parse_listing(html, url)
    assert (listing.layout, listing.empty, listing.next_pages) == ("box2015", False, ())
    ids = [e.game_id for e in listing.entries]
    assert len(ids) == len(set(ids)) == expected
    assert not set(ids) & sidebar_ids
    all_ids = {int(i) for i in re.findall(r"soft\.phtml\?id=(\d+)", html)}
    assert all_ids == set(ids) | sidebar_ids  # nothing on the page is lost either
    for entry in listing.entries:
        assert entry.url == f"http://www.getchu.com/soft.phtml?id={entry.game_id}"
        assert entry.release_date is not None and entry.release_date.startswith(f"{year}-{month:02d}-")
        assert entry.title and entry.title == entry.title.strip(" \t\r\n\u3000")
        assert not entry.title.startswith("★")


def crawl_log() -> list[dict[str, str]]:
    with open(real_dir("BrynGibson") / "img_urls.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_real_crawl_log_ids_and_bust_filenames() -> None:
    rows = crawl_log()
    assert len(rows) == 13065
    for row in rows:
        gid = game_id_from_url(row["url"])
        assert gid is not None and row["url"].endswith(f"soft.phtml?id={gid}")
    urls = [u for row in rows if row["img_urls"] for u in ast.literal_eval(row["img_urls"])]
    assert len(urls) == 51916
    standard = [u for u in urls if bust_index(u) is not None]
    # Measured: 51,863 / 51,916 = 0.99898. The rest are covers, demo_m.gif, custom names and the crawler's own
    # string-concatenation bugs (http://www.getchu.comhttp://wwwgetchu.com/...).
    assert len(standard) / len(urls) >= 0.998
    for url in standard:
        m = BUST_FILENAME_RE.search(url)
        assert m is not None and url.endswith(f"/c{m.group(1)}chara{m.group(2)}.jpg")
    assert bust_index("http://www.getchu.com/brandnew/1291/c1291chara5.jpg") == 5
    for odd in (
        "http://www.getchu.com/common/images/demo_m.gif",
        "http://www.getchu.com/brandnew/1291/rc1291package.jpg",
        "http://www.getchu.com./brandnew/1291/otome_chara.jpg",
        "http://www.getchu.com/brandnew/1291/c1292chara1.jpg",  # folder and file name disagree
    ):
        assert bust_index(odd) is None


# ----------------------------------------------------------------------------------------------------------------------
# Pages that could not be fetched, and what the HTTP cache keeps
# ----------------------------------------------------------------------------------------------------------------------


def _http_error(status: int) -> Exception:
    from scrapy.http import Response
    from scrapy.spidermiddlewares.httperror import HttpError

    return HttpError(Response(f"{HOST}/soft.phtml?id=1", status=status), "Ignoring non-200 response")


def _failures() -> list[tuple[Exception, str]]:
    from scrapy import exceptions as scrapy_errors
    from scrapy.exceptions import IgnoreRequest
    from twisted.internet import error as tx
    from twisted.web._newclient import ResponseNeverReceived

    return [
        (_http_error(503), "http_503"),
        (_http_error(403), "http_403"),
        (scrapy_errors.DownloadTimeoutError("Getting ... took longer than 30.0 seconds."), "timeout"),
        (tx.TimeoutError(), "timeout"),
        (tx.TCPTimedOutError(), "timeout"),
        (scrapy_errors.CannotResolveHostError("www.getchu.invalid"), "dns"),
        (tx.DNSLookupError("www.getchu.invalid"), "dns"),
        (scrapy_errors.DownloadConnectionRefusedError("refused"), "connection"),
        (scrapy_errors.DownloadFailedError("[<twisted.python.failure.Failure ...ConnectionLost>]"), "connection"),
        (scrapy_errors.ResponseDataLossError(), "connection"),
        (tx.ConnectionLost(), "connection"),
        (tx.ConnectionRefusedError(), "connection"),
        (ResponseNeverReceived([]), "connection"),
        (IgnoreRequest("Forbidden by robots.txt"), "robots"),
        (IgnoreRequest("Filtered offsite request to 'example.org'"), "offsite"),
        (IgnoreRequest("max redirections reached"), "redirects"),
        (scrapy_errors.DownloadCancelledError("size (9) larger than download max size (8)"), "too_large"),
        (ValueError("something else"), "download_error"),
    ]


def test_failure_reason_names_why_a_page_was_not_fetched() -> None:
    """The short reason kept in pages.parquet (page_failure) and the metrics, from what Scrapy hands an errback."""
    from twisted.python.failure import Failure

    from scraping.failures import failure_reason

    for error, reason in _failures():
        assert failure_reason(Failure(error)) == reason, error
        assert failure_reason(error) == reason, error


def test_the_http_cache_keeps_what_the_site_said_not_failures_to_read_it() -> None:
    """A 404 or 410 says the page is gone and a 301 where it moved: kept, so a re-run is offline and gives the same
    bytes. Any other error status (a 403 from a firewall, a 501 or 520 not among the retried codes) and the age gate
    are failures to read the page: not kept, or they would replay as `failed` on every later run."""
    from scrapy import Request
    from scrapy.http import Response
    from scrapy.settings import Settings

    from scraping.middlewares import CrawlCachePolicy

    policy = CrawlCachePolicy(Settings({"HTTPCACHE_IGNORE_HTTP_CODES": [503]}))
    url = f"{HOST}/soft.phtml?id=1&gc=gc"

    def kept(status: int, location: str | None = None) -> bool:
        headers = {"Location": location} if location else {}
        return policy.should_cache_response(Response(url, status=status, headers=headers), Request(url))

    assert kept(200) and kept(404) and kept(410) and kept(301, "/item/1/")
    assert not kept(302, "/php/attestation.html?aurl=x")
    for status in (400, 401, 403, 429, 451, 500, 501, 503, 520):
        assert not kept(status), status
