"""Tests of the offline Getchu mock itself (tests/getchu_site), with http.client only.

Why: the spider tests trust this mock and its expected manifest; if the mock drifted from the behaviour of the
real site it stands in for, the spider tests would pass or fail for the wrong reasons.
"""

from __future__ import annotations

import hashlib
import html
import http.client
import io
import json
import re
import socket
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import pytest
from PIL import Image

from tests.getchu_site import DEFAULT_ROBOTS, MockGetchu
from tests.getchu_site.images import scenario_images

COOKIE = "getchu_adalt_flag=getchu.com"


def get(
    site: MockGetchu, path: str, referer: str | None = None, cookie: str | None = None, method: str = "GET"
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request, no redirect following, no cookie jar: the raw behaviour of the mock."""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    headers = {"User-Agent": "mock-test/1.0"}
    if referer:
        headers["Referer"] = referer
    if cookie:
        headers["Cookie"] = cookie
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def text(body: bytes) -> str:
    return body.decode("euc_jis_2004")


class _Links(HTMLParser):
    """Collects (tag, attrs) of every start tag; comments are skipped, like a real parser would."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(body: bytes) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Links()
    parser.feed(text(body))
    return parser.tags


@pytest.fixture(scope="module")
def site() -> Iterator[MockGetchu]:
    """A shared default site for read-only checks (tests that consume once-only failures make their own)."""
    with MockGetchu() as s:
        yield s


# --- gate and cookie ---------------------------------------------------------------------------------------------


def test_gate_redirects_and_gate_page_links_back_with_gc(site: MockGetchu) -> None:
    status, headers, _ = get(site, "/soft.phtml?id=900101")
    assert status == 302
    location = headers["Location"]
    assert location == "/php/attestation.html?aurl=" + quote(site.base + "/soft.phtml?id=900101", safe="")
    status, headers, body = get(site, location)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=EUC-JP"
    page = text(body)
    assert "<title>年齢認証" in page and "【R-18コンテンツ】" in page and "【もどる】" in page
    yes = re.search(r'<a href="([^"]+)">【すすむ】</a>', page)
    assert yes and html.unescape(yes.group(1)) == site.base + "/soft.phtml?id=900101&gc=gc"
    assert get(site, "/php/search.phtml?search_brand_id=5001")[0] == 302


def test_gate_yes_text_knob() -> None:
    with MockGetchu(yes_text="[は い]") as s:
        page = text(get(s, "/php/attestation.html?aurl=" + quote(s.base + "/item/1/", safe=""))[2])
        assert f'<a href="{s.base}/item/1/?gc=gc">[は い]</a>' in page


def test_cookie_and_gc_pass_the_gate(site: MockGetchu) -> None:
    status, headers, _ = get(site, "/top.html?gc=gc")
    assert status == 200 and headers["Set-Cookie"] == "getchu_adalt_flag=getchu.com; path=/"
    assert get(site, "/pc/?gc=gc")[1]["Set-Cookie"] == "getchu_adalt_flag=getchu.com; path=/"
    assert get(site, "/top.html")[1]["Set-Cookie"] is None
    status, headers, _ = get(site, "/soft.phtml?id=900101", cookie=COOKIE)
    assert status == 200 and headers["Set-Cookie"] is None
    assert get(site, "/soft.phtml?id=900101", cookie="getchu_adalt_flag=1")[0] == 302
    assert get(site, "/soft.phtml?id=900101", cookie=f"ITEM_HISTORY=900104; {COOKIE}")[0] == 200
    status, headers, _ = get(site, "/soft.phtml?id=900101&gc=gc")
    assert status == 200 and headers["Set-Cookie"] == "getchu_adalt_flag=getchu.com; path=/"
    with MockGetchu(gate=False) as open_site:
        assert get(open_site, "/soft.phtml?id=900101")[0] == 200


def test_month_lists_are_not_gated_unless_asked(site: MockGetchu) -> None:
    assert get(site, "/all/month_title.html?genre=pc_soft&gage=adult&year=2016&month=1")[0] == 200
    with MockGetchu(gate_adult_months=True) as s:
        assert get(s, "/all/month_title.html?genre=pc_soft&gage=adult&year=2016&month=1")[0] == 302
        assert get(s, "/all/month_title.html?genre=pc_soft&gage=all&year=2016&month=1")[0] == 200


# --- hotlink, flaky, redirects, robots ------------------------------------------------------------------------------


def test_hotlink_needs_a_referer_on_this_site(site: MockGetchu) -> None:
    path = "/brandnew/900101/c900101chara1.jpg"
    status, headers, _ = get(site, path)
    assert status == 403 and headers["Content-Type"].startswith("text/html")
    assert get(site, path, referer="http://www.getchu.com/soft.phtml?id=900101")[0] == 403
    assert get(site, path, referer=site.base + "0/soft.phtml")[0] == 403
    status, headers, body = get(site, path, referer=site.base + "/soft.phtml?id=900101")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    with MockGetchu(hotlink=False) as s:
        assert get(s, path)[0] == 200


def test_flaky_pages_fail_once_per_server_instance() -> None:
    for _ in range(2):  # a new instance re-arms the failures
        with MockGetchu() as s:
            assert get(s, "/soft.phtml?id=900109", cookie=COOKIE)[0] == 500
            assert get(s, "/soft.phtml?id=900109", cookie=COOKIE)[0] == 200
            status, headers, _ = get(s, "/soft.phtml?id=900113", cookie=COOKIE)
            assert status == 503 and headers["Retry-After"] == "1"
            assert get(s, "/soft.phtml?id=900113", cookie=COOKIE)[0] == 200
            s.reset_counters()
            assert get(s, "/soft.phtml?id=900109", cookie=COOKIE)[0] == 500
    with MockGetchu(flaky={}, unavailable={}) as s:
        assert get(s, "/soft.phtml?id=900109", cookie=COOKIE)[0] == 200
        assert get(s, "/soft.phtml?id=900113", cookie=COOKIE)[0] == 200
    with MockGetchu(flaky={900101: 2}) as s:
        assert [get(s, "/soft.phtml?id=900101&gc=gc")[0] for _ in range(3)] == [500, 500, 200]


def test_item_redirect_drops_the_query_and_lands_on_the_gate(site: MockGetchu) -> None:
    status, headers, _ = get(site, "/soft.phtml?id=900110&gc=gc")
    assert status == 301 and headers["Location"] == "/item/900110/"
    assert get(site, "/soft.phtml?id=900110", cookie=COOKIE)[1]["Location"] == "/item/900110/"
    status, headers, _ = get(site, "/item/900110/")
    assert status == 302
    aurl = parse_qs(urlsplit(headers["Location"]).query)["aurl"][0]
    assert aurl == site.base + "/item/900110/"
    status, headers, body = get(site, "/item/900110/?gc=gc")
    assert status == 200 and headers["Set-Cookie"]
    page = text(body)
    assert 'src="/brandnew/900110/c900110chara1.jpg"' in page and 'class="item-Samplecard"' in page
    assert get(site, "/item/900110/", cookie=COOKIE)[0] == 200
    with MockGetchu(item_redirect=set()) as s:
        assert get(s, "/soft.phtml?id=900110&gc=gc")[0] == 200


def test_robots_and_nsearch(site: MockGetchu) -> None:
    status, headers, body = get(site, "/robots.txt")
    assert status == 200 and headers["Content-Type"] == "text/plain" and body.decode() == DEFAULT_ROBOTS
    assert get(site, "/php/nsearch.phtml?search_keyword=x", cookie=COOKIE)[0] == 403
    with MockGetchu(robots="User-agent: *\nDisallow: /\n") as s:
        assert get(s, "/robots.txt")[2] == b"User-agent: *\nDisallow: /\n"
    with MockGetchu(robots=None) as s:
        assert get(s, "/robots.txt")[0] == 404


# --- pages ---------------------------------------------------------------------------------------------------------


def test_encoding_trap_page_900105(site: MockGetchu) -> None:
    status, headers, body = get(site, "/soft.phtml?id=900105", cookie=COOKIE)
    assert status == 200 and headers["Content-Type"] == "text/html; charset=EUC-JP"
    page = body.decode("euc_jis_2004")  # strict
    for needle in ("①", "㌢", "～", "テスト①～ ＜早期予約キャンペーン特典＞", "<charalist>①ノ瀬 ひかり</charalist>"):
        assert needle in page
    assert b"&#39641;" in body  # 髙 is outside JIS X 0213: a numeric reference, as on the real site
    with pytest.raises(UnicodeDecodeError):
        body.decode("euc_jp")


def test_charset_only_in_meta_for_900112(site: MockGetchu) -> None:
    status, headers, body = get(site, "/soft.phtml?id=900112", cookie=COOKIE)
    assert status == 200 and headers["Content-Type"] == "text/html"
    assert b'content="text/html; charset=EUC-JP"' in body


def test_missing_shell_and_music_pages(site: MockGetchu) -> None:
    status, _, body = get(site, "/soft.phtml?id=900106", cookie=COOKIE)
    assert status == 404 and "お探しのページは見つかりません" in text(body)
    status, _, body = get(site, "/soft.phtml?id=900107", cookie=COOKIE)
    assert status == 200 and "soft_table" not in text(body) and "soft-title" not in text(body)
    page = text(get(site, "/soft.phtml?id=900201", cookie=COOKIE)[2])
    assert '<li class="current"><a href="/music/">' in page and "キャラクター" not in page
    assert "キャラクター</div>" not in text(get(site, "/soft.phtml?id=900104", cookie=COOKIE)[2])
    assert get(site, "/soft.phtml?id=123", cookie=COOKIE)[0] == 404
    assert get(site, "/nothing-here")[0] == 404


def test_slow_page_and_throttle() -> None:
    with MockGetchu(throttle_ms=300) as s:
        start = time.monotonic()
        assert get(s, "/soft.phtml?id=900111", cookie=COOKIE)[0] == 200
        assert time.monotonic() - start >= 0.3
        assert get(s, "/top.html")[0] == 200  # 0.3 s since the last HTML arrival
        assert get(s, "/top.html")[0] == 503
        assert get(s, "/robots.txt")[0] == 200  # robots and images are not throttled


def test_month_list_2016_01(site: MockGetchu) -> None:
    status, headers, body = get(site, "/all/month_title.html?genre=pc_soft&gage=all&year=2016&month=1")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=EUC-JP"
    assert b"\r\n" in body and b"\n" not in body.replace(b"\r\n", b"")
    page = text(body)
    assert page == text(get(site, "/all/month_title.html?genre=pc_soft&gage=all&year=2016&month=01")[2])
    titled = re.findall(r'<A href="/soft.phtml\?id=(\d+) " class="black">', page)
    assert [int(i) for i in titled] == [*range(900101, 900112)]
    assert '<A href="/soft.phtml?id=900101" class="blues">★' in page
    assert f'<a href="{site.base}/soft.phtml?id=900201">' in page
    assert f'<a href="{site.base}/soft.phtml?id=900202">' in page
    comment = re.search(r"<!-- (<a href=\"../soft.phtml\?id=900299\">.*?) -->", page)
    assert comment and page.count("900299") == 1
    assert 'href="http://www.getchu.com/soft.phtml?id=816056"' in page
    assert "https://order.zams.biz/comike/cart.phtml?gc=gc&article_id=900101" in page
    assert "<A HREF=./month_title.html?genre=pc_soft&gage=&year=2015&month=12>" in page
    assert "<A HREF=./month_title.html?genre=pc_soft&gage=&year=2016&month=02>" in page
    assert re.findall(r"(\d+年\d+月\d+日発売タイトル)", page) == [
        "2016年1月29日発売タイトル",
        "2016年1月30日発売タイトル",
    ]
    assert page.count('<FORM action="./month_title.html?"') == 2


def test_month_lists_2016_02_03_and_others(site: MockGetchu) -> None:
    feb = text(get(site, "/all/month_title.html?genre=pc_soft&gage=&year=2016&month=02")[2])
    assert '<div class="product">' in feb and '<a href="/soft.phtml?id=900113" class="black">' in feb
    assert '<A href="/soft.phtml?id=900101 " class="black">' in feb  # re-listed
    assert '<A href="/soft.phtml?id=900112 " class="black">' in feb
    for query in ("year=2016&month=3", "year=2099&month=5", "year=2016&month=1&genre=anime_dvd", "year=x&month=13"):
        if "genre" not in query:
            query = "genre=pc_soft&" + query
        status, _, body = get(site, f"/all/month_title.html?{query}")
        assert status == 200 and "category_pc_t2" not in text(body) and "soft.phtml?id=9001" not in text(body)
    price = text(get(site, "/all/price.html?genre=pc_soft&year=2016&month=1&gage=&gall=all")[2])
    assert price.count('<tr bgcolor="#ffffff">') == 11 and '<a href="../soft.phtml?id=900105"' in price


def test_brand_and_search_pagination(site: MockGetchu) -> None:
    brands = text(get(site, "/all/brand.html?genre=pc_soft")[2])
    assert f'href="{site.base}/php/search.phtml?search_brand_id=5001"' in brands
    assert f'href="{site.base}/php/search.phtml?search_brand_id=5002"' in brands
    found = []
    path = "/php/search.phtml?search_brand_id=5001&genre=pc_soft&list_count=2&pageID=1"
    for _ in range(3):
        page = text(get(site, path, cookie=COOKIE)[2])
        results = page.split('<ul class="display">')[1].split("</ul>")[0] if '<ul class="display">' in page else ""
        found += [int(i) for i in re.findall(r'<a href="../soft.phtml\?id=(\d+)" class="blueb">', results)]
        assert 'href="../soft.phtml?id=900201"' in page  # the recommendation block, never a result
        nxt = re.search(r'<a href="([^"]+)">次へ', page)
        if nxt is None:
            assert "該当する作品はありませんでした" in page
            break
        path = urljoin("/php/search.phtml", html.unescape(nxt.group(1)))
    assert found == [900101, 900102, 900103, 900104]
    assert "pageID=3" in path


# --- images --------------------------------------------------------------------------------------------------------


def test_image_bytes_sizes_and_duplicates(site: MockGetchu) -> None:
    ref = site.base + "/soft.phtml?id=900101"
    a = get(site, "/brandnew/900101/c900101chara1.jpg", referer=ref)[2]
    b = get(site, "/brandnew/900102/c900102chara1.jpg", referer=ref)[2]
    assert a == b
    with Image.open(io.BytesIO(a)) as im:
        assert im.size == (250, 300) and im.format == "JPEG" and not im.info.get("exif")
    sizes = {
        "c900101charab1.jpg": (400, 800),
        "c900101charab1_s.jpg": (100, 200),
        "rc900101package.jpg": (280, 400),
        "c900101package_ss.jpg": (120, 170),
        "c900101sample1.jpg": (800, 600),
        "c900101sample1_s.jpg": (200, 150),
    }
    for name, size in sizes.items():
        with Image.open(io.BytesIO(get(site, f"/brandnew/900101/{name}", referer=ref)[2])) as im:
            assert im.size == size
    bodies = {path: e.body for path, e in scenario_images().items()}
    by_sha: dict[str, list[str]] = {}
    for path, body in bodies.items():
        by_sha.setdefault(hashlib.sha256(body).hexdigest(), []).append(path)
    dups = sorted(sorted(paths) for paths in by_sha.values() if len(paths) > 1)
    assert dups == [
        [f"/brandnew/900101/c900101chara{k}.jpg", f"/brandnew/900102/c900102chara{k}.jpg"] for k in range(1, 5)
    ]
    assert scenario_images() is scenario_images()  # built once per process


def test_broken_images_of_900108() -> None:
    with MockGetchu() as s:
        ref = s.base + "/soft.phtml?id=900108"

        def fetch(k: int) -> tuple[int, http.client.HTTPMessage, bytes]:
            return get(s, f"/brandnew/900108/c900108chara{k}.jpg", referer=ref)

        assert fetch(2)[0] == 404
        status, headers, body = fetch(3)
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<html" in body
        status, headers, body = fetch(4)
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        with pytest.raises(OSError), Image.open(io.BytesIO(body)) as im:
            im.load()
        assert fetch(5)[0] == 200 and get(s, "/brandnew/900108/c900108chara5.jpg")[0] == 403
        assert [fetch(6)[0], fetch(6)[0], fetch(6)[0]] == [500, 200, 200]
        big = fetch(7)[2]
        with Image.open(io.BytesIO(big)) as im:
            assert im.size == (6000, 6000)
        assert len(big) < 400_000
        heavy = fetch(8)[2]
        assert len(heavy) > s.expected["limits"]["max_bytes"]
        with Image.open(io.BytesIO(heavy)) as im:
            im.load()
            assert im.size[0] * im.size[1] < s.expected["limits"]["max_pixels"]


def test_every_linked_image_exists_and_expected_matches_pages() -> None:
    """Each /brandnew/ URL on a product page is served (unless listed as failing) and the manifest agrees."""
    with MockGetchu(flaky={}, unavailable={}, slow={}) as site:
        _check_pages_against_manifest(site)


def _check_pages_against_manifest(site: MockGetchu) -> None:
    exp = site.expected
    failed, transient = exp["failed_images"], exp["transient"]
    for key, product in exp["products"].items():
        page_url = product["url"] if key != "900110" else f"{site.base}/item/{key}/"
        status, _, body = get(site, urlsplit(page_url).path + "?" + urlsplit(page_url).query, cookie=COOKIE)
        assert status == 200, key
        urls = set()
        for _tag, attrs in tags(body):
            for name in ("src", "data-original", "href"):
                value = attrs.get(name)
                if value and "/brandnew/" in value:
                    urls.add(urljoin(page_url, value))
        for url in urls:
            assert url.startswith(site.base + "/brandnew/"), url
            status = get(site, urlsplit(url).path, referer=page_url)[0]
            if url in transient:
                assert status == 500
                status = get(site, urlsplit(url).path, referer=page_url)[0]
            assert status == (404 if failed.get(url) == "http_404" else 200), url
        for c in product["characters"]:
            if c["image_url"]:
                assert c["image_url"] in urls, (key, c)
            if c["fullbody_url"]:
                assert c["fullbody_url"] in urls
            if c["sha256"]:
                got = get(site, urlsplit(c["image_url"]).path, referer=page_url)[2]
                assert hashlib.sha256(got).hexdigest() == c["sha256"]
            assert c["name"] in text(body).replace("&#39641;", "髙")


def test_expected_manifest(site: MockGetchu, tmp_path: Path) -> None:
    exp = site.expected
    assert json.loads(site.write_expected(tmp_path / "expected.json").read_text("utf-8")) == exp
    p = exp["products"]
    assert p["900105"]["title"] == "テスト①～"
    assert p["900112"]["title"] == "ヘッダー無しの夜"
    assert p["900101"]["release_date"] == "2016-01-29"
    assert p["900113"]["release_date"] is None and p["900113"]["release_text"] == "2016年2月下旬予定"
    assert p["900101"]["months"] == ["2016-01", "2016-02"]
    assert [c["k"] for c in p["900103"]["characters"]] == [1, 2, 4, 5, 6]
    assert p["900103"]["characters"][-1]["image_url"] is None
    assert [c["standard_name"] for c in p["900111"]["characters"]] == [True, False]
    assert [c["name"] for c in p["900105"]["characters"]] == ["①ノ瀬 ひかり", "髙嶺 すず"]
    assert p["900101"]["characters"][0]["fullbody_url"] == site.base + "/brandnew/900101/c900101charab1.jpg"
    assert [c["sha256"] for c in p["900102"]["characters"]] == [c["sha256"] for c in p["900101"]["characters"]]
    assert exp["missing_ids"] == [900106, 900107] and exp["no_character_ids"] == [900104]
    assert sorted(exp["failed_images"].values()) == sorted(
        ["http_404", "not_an_image", "corrupt", "too_many_pixels", "too_large"]
    )
    assert exp["limits"] == {"max_pixels": 20_000_000, "max_bytes": 2_000_000}
    assert "/php/nsearch.phtml" in exp["must_not_request"] and "https://order.zams.biz/" in exp["must_not_request"]
    assert exp["totals"] == {
        "products": 11,
        "characters": 34,
        "portraits": 33,
        "portraits_ok": 28,
        "unique_urls": 33,
        "unique_sha256": 24,
        "imageless_characters": 1,
    }
    ok = [c for q in p.values() for c in q["characters"] if c["sha256"]]
    assert {c["image_url"] for c in ok} & set(exp["failed_images"]) == set()


# --- server plumbing ---------------------------------------------------------------------------------------------


def test_request_log_and_silence(capfd: pytest.CaptureFixture[str]) -> None:
    with MockGetchu() as s:
        get(s, "/soft.phtml?id=900101", cookie=COOKIE)
        get(s, "/brandnew/900101/c900101chara1.jpg", referer=s.base + "/soft.phtml?id=900101", cookie=COOKIE)
        get(s, "/top.html", method="HEAD")
        log = s.requests
        assert [(r["method"], r["path"], r["status"]) for r in log] == [
            ("GET", "/soft.phtml?id=900101", 200),
            ("GET", "/brandnew/900101/c900101chara1.jpg", 200),
            ("HEAD", "/top.html", 200),
        ]
        assert log[1]["referer"] == s.base + "/soft.phtml?id=900101" and log[1]["cookie"] == COOKIE
        assert log[0]["user_agent"] == "mock-test/1.0" and log[0]["referer"] is None
        assert log[0]["time"] <= log[1]["time"] <= log[2]["time"]
        s.reset_log()
        assert s.requests == [] and s.errors == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_fixed_port_can_be_reused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for _ in range(2):
        with MockGetchu(port=port) as s:
            assert s.port == port and s.base == f"http://127.0.0.1:{port}"
            assert get(s, "/top.html")[0] == 200


def test_scale_mode() -> None:
    with MockGetchu(scale=30) as s:
        exp = s.expected
        assert exp["mode"] == "scale" and exp["totals"]["portraits"] == 90 and exp["totals"]["unique_sha256"] == 90
        assert sum(exp["month_counts"].values()) == 30 and exp["month_counts"]["2017-01"] == 3
        page = text(get(s, "/all/month_title.html?genre=pc_soft&gage=all&year=2017&month=1")[2])
        assert re.findall(r'<A href="/soft.phtml\?id=(\d+) "', page) == ["1000000", "1000001", "1000002"]
        assert "soft.phtml?id=1000029 " in text(get(s, "/all/month_title.html?genre=pc_soft&year=2017&month=10")[2])
        assert "category_pc_t2" not in text(get(s, "/all/month_title.html?genre=pc_soft&year=2016&month=1")[2])
        assert get(s, "/soft.phtml?id=1000005")[0] == 302
        status, _, body = get(s, "/soft.phtml?id=1000005", cookie=COOKIE)
        assert status == 200 and text(body).count('alt="キャラ') == 3
        assert get(s, "/soft.phtml?id=1000030", cookie=COOKIE)[0] == 404
        assert get(s, "/soft.phtml?id=900101", cookie=COOKIE)[0] == 404
        ref = s.base + "/soft.phtml?id=1000005"
        assert get(s, "/brandnew/1000005/c1000005chara1.jpg")[0] == 403
        shots = [get(s, f"/brandnew/1000005/c1000005chara{k}.jpg", referer=ref)[2] for k in (1, 2, 3)]
        assert len({hashlib.sha256(b).hexdigest() for b in shots}) == 3
        assert shots[0] == get(s, "/brandnew/1000005/c1000005chara1.jpg", referer=ref)[2]
        with Image.open(io.BytesIO(shots[0])) as im:
            assert im.size == (64, 77)
        assert get(s, "/brandnew/1000005/c1000005chara4.jpg", referer=ref)[0] == 404
