"""The real spider, pipeline and stage against a mock Getchu on 127.0.0.1 (tests/getchu_site).

Each crawl runs `twingan scrape` in a subprocess, as `dvc repro` does (Twisted's reactor runs once per
process). The mock keeps a request log, so the tests check what the site saw as well as what was written.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from core.parquet import read_table, table_from_rows
from core.schemas import CRAWL_PAGES, RAW_MANIFEST, RAW_REJECTS
from tests.builders.params import write_params
from tests.builders.repo import REPO
from tests.getchu_site import DEFAULT_ROBOTS, MockGetchu

BIN = Path(sys.executable).parent
FAST = {
    "download_delay": 0,
    "autothrottle": False,
    "concurrency_per_domain": 4,
    "retries": 2,
    "retry_backoff_seconds": 0.3,
    "timeout_seconds": 10,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def project(root: Path, site: MockGetchu, limits: dict[str, int], **crawl: Any) -> Path:
    (root / "photos").mkdir(parents=True, exist_ok=True)
    settings = {
        "base_url": site.base,
        "first_month": "2016-01",
        "last_month": "2016-03",
        "max_image_bytes": limits["max_bytes"],
        "max_image_pixels": limits["max_pixels"],
        **FAST,
        **crawl,
    }
    write_params(root, {"anime": {"source": {"kind": "folder", "path": "photos"}}}, scrape={"t": settings})
    return root


def scrape(root: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / "pytest-scrape"))
    return subprocess.run(
        [str(BIN / "twingan"), "scrape", "--crawl", "t"],
        cwd=root,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def outputs(root: Path) -> dict[str, bytes]:
    out = root / "data" / "scrape" / "t"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def same_crawl(root: Path, base: str) -> dict[str, Any]:
    """A crawl's outputs with its site's address taken out, to compare crawls of mocks on other ports."""
    out = root / "data" / "scrape" / "t"
    tables = {}
    for name in ("manifest.parquet", "rejects.parquet", "pages.parquet"):
        rows = pq.read_table(out / name).to_pylist()
        tables[name] = json.loads(json.dumps(rows, ensure_ascii=False).replace(base, "BASE"))
    images = {p.name: p.read_bytes() for p in (out / "images").rglob("*") if p.is_file()}
    return {"tables": tables, "images": images}


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One full crawl of the scenario site, shared by the assertions below."""
    port = free_port()
    with MockGetchu(port=port) as site:
        root = project(tmp_path_factory.mktemp("crawl"), site, site.expected["limits"])
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        return {
            "root": root,
            "requests": list(site.requests),
            "expected": site.expected,
            "port": port,
            "base": site.base,
            "stderr": done.stderr,
        }


def test_portraits_names_and_pages_match_the_site(crawled: dict[str, Any]) -> None:
    check_portraits(crawled["root"], crawled["expected"])


def check_portraits(root: Path, expected: dict[str, Any]) -> None:
    """Every portrait, name and page status of the crawl at `root` is the one the site's manifest says."""
    out = root / "data/scrape/t"
    pages = read_table(out / "pages.parquet", CRAWL_PAGES).to_pylist()
    manifest = read_table(out / "manifest.parquet", RAW_MANIFEST).to_pylist()
    by_game: dict[int, list[dict[str, Any]]] = {}
    for row in pages:
        by_game.setdefault(row["game_id"], []).append(row)
    for game_id in expected["missing_ids"]:
        assert {r["page_status"] for r in by_game[int(game_id)]} == {"missing"}
    for game_id in expected["no_character_ids"]:
        if int(game_id) in by_game:
            assert all(r["image_url"] is None for r in by_game[int(game_id)])
    for game_id, game in expected["products"].items():
        rows = [r for r in by_game.get(int(game_id), []) if r["image_url"]]
        urls = [c["image_url"] for c in game["characters"] if c["image_url"]]
        assert sorted(r["image_url"] for r in rows) == sorted(urls), game_id
        assert {r["title"] for r in rows} <= {game["title"]}, game_id
        assert {r["release_date"] for r in rows} <= {game["release_date"]}, game_id
        names = {r["image_url"]: (r["character_name"], r["cv"]) for r in rows}
        for character in game["characters"]:
            if character["image_url"] and character.get("name"):
                assert names[character["image_url"]] == (character["name"], character["cv"])  # exact unicode
    stored = {row["id"] for row in manifest}
    wanted = {c["sha256"] for g in expected["products"].values() for c in g["characters"] if c.get("sha256")}
    assert stored == wanted and len(stored) == expected["totals"]["unique_sha256"]
    for row in manifest:
        assert (out / row["path"]).is_file() and row["domain"] == "anime"


def test_failed_images_are_reported_with_their_reason(crawled: dict[str, Any]) -> None:
    check_failed_images(crawled["root"], crawled["expected"])


def check_failed_images(root: Path, expected: dict[str, Any]) -> None:
    """Each failing image has its reject row and reason; the metrics count portraits and stored images."""
    out = root / "data/scrape/t"
    rejects = read_table(out / "rejects.parquet", RAW_REJECTS).to_pylist()
    reasons = {row["member"]: row["reason"] for row in rejects if row["reason"] != "duplicate"}
    for url, reason in expected["failed_images"].items():
        assert reasons.get(url) == reason, url
    assert set(reasons) == set(expected["failed_images"])  # nothing else failed (a transient 500 is retried)
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert metrics["images_stored"] == len(read_table(out / "manifest.parquet", RAW_MANIFEST))
    assert metrics["portraits"] == expected["totals"]["portraits"]
    assert sum(metrics["image_errors"].values()) == len(expected["failed_images"])
    assert metrics["duplicates"] >= 4  # the 通常版 edition reuses the 初回限定版 art byte for byte


def test_the_site_saw_a_polite_careful_crawler(crawled: dict[str, Any]) -> None:
    log = crawled["requests"]
    paths = [entry["path"] for entry in log]
    for forbidden in crawled["expected"]["must_not_request"]:
        assert not any(forbidden in path for path in paths), forbidden
    images = [e for e in log if "/brandnew/" in e["path"]]
    assert images and all(e["referer"] and e["referer"].startswith("http://127.0.0.1") for e in images)
    ok_pages = [e["path"] for e in log if "soft.phtml" in e["path"] and e["status"] == 200]
    assert len(ok_pages) == len(set(ok_pages)), "a product page was fetched twice"
    ok_images = [e["path"] for e in images if e["status"] == 200]
    assert len(ok_images) == len(set(ok_images)), "an image was downloaded twice"
    assert all("twingan-scraper" in (e["user_agent"] or "") for e in log)


def test_retries_back_off_instead_of_hammering_the_site(crawled: dict[str, Any]) -> None:
    flaky = [e for e in crawled["requests"] if e["path"].startswith("/soft.phtml?id=900109")]
    assert [e["status"] for e in flaky] == [500, 200]
    assert flaky[1]["time"] - flaky[0]["time"] >= 0.3  # retry_backoff_seconds


def test_a_rerun_with_the_http_cache_is_byte_identical_and_offline(crawled: dict[str, Any]) -> None:
    root = crawled["root"]
    before = outputs(root)
    with MockGetchu(port=crawled["port"]) as site:
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        fetched = [e["path"] for e in site.requests if e["status"] == 200 and "robots.txt" not in e["path"]]
    # Only a download cancelled at max_image_bytes is asked for again: it never completed, so it is not cached.
    too_large = [url.split("127.0.0.1:", 1)[1].split("/", 1)[1] for url, why in
                 crawled["expected"]["failed_images"].items() if why == "too_large"]  # fmt: skip
    assert sorted(fetched) == sorted(f"/{path}" for path in too_large), "a re-run read what the HTTP cache had"
    assert outputs(root) == before


def test_a_stopped_crawl_resumes_and_ends_like_an_uninterrupted_one(crawled: dict[str, Any], tmp_path: Path) -> None:
    port = free_port()
    with MockGetchu(port=port) as site:
        root = project(tmp_path / "resume", site, site.expected["limits"], close_after_pages=8)
        first = scrape(root)
        assert first.returncode == 3, first.stderr[-2000:]
        assert not (root / "data/scrape/t").exists()  # nothing half-done is published
        assert (root / "data/scrape-cache/t/job").is_dir()
        params = (root / "params.yaml").read_text().replace("close_after_pages: 8", "close_after_pages: 0")
        (root / "params.yaml").write_text(params)
        second = scrape(root)
        assert second.returncode == 0, second.stderr[-3000:]
        images = [e["path"] for e in site.requests if "/brandnew/" in e["path"] and e["status"] == 200]
        base = site.base
    assert len(images) == len(set(images)), "an image was downloaded twice across the stop"
    assert same_crawl(root, base) == same_crawl(crawled["root"], crawled["base"])


def test_kill_9_mid_crawl_then_rerun_completes(crawled: dict[str, Any], tmp_path: Path) -> None:
    port = free_port()
    with MockGetchu(port=port) as site:
        root = project(
            tmp_path / "killed", site, site.expected["limits"], download_delay=0.05, concurrency_per_domain=1
        )
        env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / "pytest-scrape"))
        child = subprocess.Popen(
            [str(BIN / "twingan"), "scrape", "--crawl", "t"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while sum("/brandnew/" in e["path"] for e in site.requests) < 5 and time.monotonic() < deadline:
            assert child.poll() is None, "the crawl ended before it could be killed"
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert not (root / "data/scrape/t").exists()
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        base = site.base
    assert same_crawl(root, base) == same_crawl(crawled["root"], crawled["base"])


def test_robots_txt_that_disallows_everything_is_obeyed(tmp_path: Path) -> None:
    with MockGetchu(port=free_port(), robots="User-agent: *\nDisallow: /\n") as site:
        root = project(tmp_path / "robots", site, site.expected["limits"])
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        assert {e["path"] for e in site.requests} == {"/robots.txt"}
    assert pq.read_table(root / "data/scrape/t/manifest.parquet").num_rows == 0
    # Not an empty crawl that looks complete: each month listing it could not fetch is counted, with why.
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert (metrics["listings_failed"], metrics["listings_failed_by_reason"]) == (3, {"robots": 3})


def test_download_delay_bounds_the_request_rate(tmp_path: Path) -> None:
    delay = 0.25
    with MockGetchu(port=free_port()) as site:
        root = project(
            tmp_path / "polite",
            site,
            site.expected["limits"],
            download_delay=delay,
            concurrency_per_domain=1,
            last_month="2016-01",
            close_after_pages=12,
        )
        scrape(root)
        times = sorted(e["time"] for e in site.requests if e["path"] != "/robots.txt")
    # The server logs arrival times, so a request held up by a busy machine arrives late and the next one
    # looks early; the rate bound is on every window: n requests after a given one take at least n delays,
    # less one arrival's jitter.
    assert len(times) >= 9, times
    jitter = 0.6 * delay
    for i, j in itertools.combinations(range(len(times)), 2):
        assert times[j] - times[i] >= (j - i) * delay - jitter, (i, j, [b - a for a, b in itertools.pairwise(times)])


def test_extending_the_month_range_fetches_only_the_new_months(tmp_path: Path) -> None:
    with MockGetchu(port=free_port()) as site:
        root = project(tmp_path / "grow", site, site.expected["limits"], last_month="2016-01")
        assert scrape(root).returncode == 0
        january = {e["path"] for e in site.requests if e["status"] == 200}
        site.reset_log()
        params = (root / "params.yaml").read_text().replace("last_month: 2016-01", "last_month: 2016-03")
        (root / "params.yaml").write_text(params)
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        refetched = {e["path"] for e in site.requests if e["status"] == 200} & january
    too_large = {"/" + u.split("/", 3)[3] for u, why in site.expected["failed_images"].items() if why == "too_large"}
    assert refetched <= too_large | {"/robots.txt"}, refetched  # only what never completed is asked again
    months = {row["page_url"] for row in pq.read_table(root / "data/scrape/t/pages.parquet").to_pylist()}
    assert any("900112" in url for url in months)  # a February game is now in


def test_dvc_runs_the_crawl_and_the_anime_domain_ingests_it(tmp_path: Path) -> None:
    from tests.builders.repo import copy_repo, dvc, ran

    root = copy_repo(tmp_path / "repo")
    with MockGetchu(port=free_port()) as site:
        params = yaml.safe_load((root / "params.yaml").read_text())
        limits = site.expected["limits"]
        params["scrape"] = {"t": {"base_url": site.base, "first_month": "2016-01", "last_month": "2016-02",
                                  "max_image_bytes": limits["max_bytes"], "max_image_pixels": limits["max_pixels"],
                                  **FAST}}  # fmt: skip
        params["domains"] = {"anime": {"source": {"kind": "folder", "path": "data/scrape/t/images"}}}
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        first = dvc(root, "repro", "ingest@anime")
        assert ran(first) == ["scrape@t", "ingest@anime"], first
        assert ran(dvc(root, "repro", "ingest@anime")) == []
    crawl = read_table(root / "data/scrape/t/manifest.parquet", RAW_MANIFEST).to_pylist()
    anime = read_table(root / "data/raw/anime/manifest.parquet", RAW_MANIFEST).to_pylist()
    assert {row["id"] for row in anime} == {row["id"] for row in crawl}  # same bytes, same ids: lineage joins
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert metrics["images_stored"] == len(crawl) and metrics["pages_by_status"]["missing"] == 2


# --- https pages, portraits on other sites, and the age gate ---------------------------------------------------


def test_https_pages_keep_portraits_written_http_absolute_and_report_offsite_ones(tmp_path: Path) -> None:
    """Getchu's https pages write some portraits as http://www.getchu.com/brandnew/...: the same site.

    Over https the stand-in writes its `abs` portraits (900103's character 2) as http://127.0.0.1/brandnew/...;
    they must be fetched over https from the page's host and stored like every other. A portrait on a really other
    site (offsite_portrait: 900111's character 3 on www.getchu.com) is not fetched, but reported: a reject row
    (reason offsite), its row in pages.parquet and a count in the metrics, instead of vanishing with its character.
    """
    with MockGetchu(port=free_port(), tls=True, offsite_portrait=True) as site:
        assert site.base.startswith("https://")
        root = project(tmp_path / "https", site, site.expected["limits"])
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        expected, log, base = site.expected, site.requests, site.base
    check_portraits(root, expected)
    check_failed_images(root, expected)
    pages = read_table(root / "data/scrape/t/pages.parquet", CRAWL_PAGES).to_pylist()
    by_url = {row["image_url"]: row for row in pages if row["image_url"]}
    rewritten = f"{base}/brandnew/900103/c900103chara2.jpg"  # the page wrote http://127.0.0.1/brandnew/...
    assert by_url[rewritten]["image_status"] == "stored" and by_url[rewritten]["character_name"] == "夕凪 ことね"
    offsite = "http://www.getchu.com/brandnew/900111/c900111chara3.jpg"
    assert (by_url[offsite]["image_status"], by_url[offsite]["page_status"]) == ("offsite", "ok")
    assert by_url[offsite]["character_name"] == "外山 とおこ" and by_url[offsite]["image_id"] is None
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert metrics["image_errors"]["offsite"] == 1
    images = [e for e in log if "/brandnew/" in e["path"]]
    assert "/brandnew/900103/c900103chara2.jpg" in {e["path"] for e in images if e["status"] == 200}
    assert all(e["referer"].startswith(base + "/") for e in images)


ROBOTS_FORBID_GATE = DEFAULT_ROBOTS + "Disallow: /php/attestation.html\n"


def test_a_redirect_to_a_gate_robots_forbid_still_gets_past_the_gate(crawled: dict[str, Any], tmp_path: Path) -> None:
    """The cookie stops working: /soft.phtml?id=900110&gc=gc 301s to /item/900110/ (query dropped), which 302s to the
    gate. robots.txt forbids the gate, so the redirect is dropped (IgnoreRequest) before any callback: the spider's
    errback must still run the gate fallback (the redirect's aurl with gc=gc) so the page is read, not lost."""
    with MockGetchu(port=free_port(), honour_cookie=False, robots=ROBOTS_FORBID_GATE) as site:
        root = project(tmp_path / "cookie", site, site.expected["limits"])
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        paths = [e["path"] for e in site.requests]
    assert not any(path.startswith("/php/attestation.html") for path in paths)  # robots.txt obeyed
    assert "/item/900110/?gc=gc" in paths
    pages = read_table(root / "data/scrape/t/pages.parquet", CRAWL_PAGES).to_pylist()
    game = [row for row in pages if row["game_id"] == 900110]
    assert {row["page_status"] for row in game} == {"ok"}
    assert sorted(row["image_status"] for row in game) == ["stored", "stored"]
    normal = read_table(crawled["root"] / "data/scrape/t/pages.parquet", CRAWL_PAGES).to_pylist()
    assert {r["game_id"]: r["page_status"] for r in pages} == {r["game_id"]: r["page_status"] for r in normal}


@pytest.mark.parametrize("robots", [ROBOTS_FORBID_GATE, DEFAULT_ROBOTS], ids=["gate_forbidden", "gate_allowed"])
def test_pages_the_gate_keeps_are_recorded_gated_and_counted(tmp_path: Path, robots: str) -> None:
    """A gate that lets neither the cookie nor gc=gc through: every game page ends on the gate, whether robots.txt
    forbids fetching the gate (the redirect fails before a callback) or not (the gate page is read, the gc=gc retry
    lands on it again). Each page is recorded with status gated and counted, never dropped; and since a gate is not
    cached, the next run, once the gate lets the crawl in again, reads the pages instead of replaying the gate."""
    port = free_port()
    with MockGetchu(port=port, honour_cookie=False, honour_gc=False, robots=robots) as site:
        root = project(tmp_path / "gated", site, site.expected["limits"])
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        expected = site.expected
        paths = [e["path"] for e in site.requests]
    gate_fetched = any(path.startswith("/php/attestation.html") for path in paths)
    assert gate_fetched == (robots == DEFAULT_ROBOTS)
    listed = sorted({int(i) for ids in expected["months"].values() for i in ids})
    pages = read_table(root / "data/scrape/t/pages.parquet", CRAWL_PAGES).to_pylist()
    assert sorted(row["game_id"] for row in pages) == listed
    assert {row["page_status"] for row in pages} == {"gated"}
    assert all(row["image_url"] is None and row["page_url"].startswith(f"http://127.0.0.1:{port}/") for row in pages)
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert metrics["pages_by_status"] == {"ok": 0, "no_characters": 0, "missing": 0, "not_a_game": 0,
                                          "gated": len(listed), "failed": 0}  # fmt: skip
    assert metrics["pages"] == len(listed) and metrics["listings_gated"] == 0
    assert "age gate kept" in done.stderr
    if robots != ROBOTS_FORBID_GATE:
        return
    with MockGetchu(port=port) as site:  # the gate lets the cookie through again
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
    pages = read_table(root / "data/scrape/t/pages.parquet", CRAWL_PAGES).to_pylist()
    assert "gated" not in {row["page_status"] for row in pages}
    check_portraits(root, site.expected)


def test_a_month_listing_the_gate_keeps_is_counted(tmp_path: Path) -> None:
    with MockGetchu(
        port=free_port(), gate_adult_months=True, honour_cookie=False, honour_gc=False, robots=ROBOTS_FORBID_GATE
    ) as site:
        root = project(tmp_path / "adult", site, site.expected["limits"], gage="adult", last_month="2016-02")
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert (metrics["listings_gated"], metrics["pages"]) == (2, 0)


# --- pages and listings that cannot be read ---------------------------------------------------------------------

#: Game pages of January that fail on every request, and how (tests/getchu_site/server.py `broken_pages`).
BROKEN_PAGES: dict[int, int | str] = {900102: 403, 900103: 503, 900104: "silent", 900105: "hang_up"}


def test_pages_and_listings_that_cannot_be_read_are_recorded_failed_and_fetched_next_run(
    crawled: dict[str, Any], tmp_path: Path
) -> None:
    """A game page answering 403, or 503 after every retry, one that never answers (timeout) and one whose connection
    closes unanswered, and the February listing answering 503: the crawl still publishes what it read, and each page
    it could not read is a pages.parquet row (page_status failed, the reason in page_failure), each listing a count,
    with a warning, instead of vanishing into Scrapy's stats. None of it is cached: once the site answers again, the
    next run fetches exactly those and ends like a crawl that never failed."""
    port = free_port()
    with MockGetchu(port=port, broken_pages=BROKEN_PAGES, broken_months={"2016-02": 503}) as site:
        root = project(tmp_path / "failing", site, site.expected["limits"], timeout_seconds=2)
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]  # published: what it read, and rows for what it did not
        expected, log, base = site.expected, site.requests, site.base
    pages = read_table(root / "data/scrape/t/pages.parquet", CRAWL_PAGES).to_pylist()
    failed = [row for row in pages if row["page_status"] == "failed"]
    assert {str(row["game_id"]): row["page_failure"] for row in failed} == expected["failed_pages"]
    assert len(failed) == len(BROKEN_PAGES)  # one row each, no character rows
    for row in failed:
        assert row["page_url"].startswith(f"{base}/soft.phtml?id={row['game_id']}")
        assert (row["title"], row["image_url"], row["image_id"]) == (None, None, None)
    assert {row["page_failure"] for row in pages if row["page_status"] != "failed"} == {None}
    # The February listing failed, so 900112 and 900113 (listed nowhere else) are not known at all: it is counted.
    assert {row["game_id"] for row in pages} == set(expected["months"]["2016-01"])
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert metrics["pages_by_status"]["failed"] == len(BROKEN_PAGES)
    assert metrics["pages_failed_by_reason"] == {"connection": 1, "http_403": 1, "http_503": 1, "timeout": 1}
    assert (metrics["listings_failed"], metrics["listings_failed_by_reason"]) == (1, {"http_503": 1})
    assert "could not be read" in done.stderr and "http_503" in done.stderr
    # Failures Scrapy retries (5xx, a dropped connection) were retried first (retries: 2); a 403 is not retried.
    assert [e["status"] for e in log if "id=900102&" in e["path"]] == [403]
    assert [e["status"] for e in log if "id=900103&" in e["path"]] == [503] * 3
    hung_up = [e["status"] for e in log if "id=900105&" in e["path"]]  # Twisted may retry a reused connection too
    assert set(hung_up) == {None} and len(hung_up) >= 3
    assert [e["status"] for e in log if "month=02" in e["path"]] == [503] * 3

    with MockGetchu(port=port) as site:  # the site answers again
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
        fetched = [e["path"] for e in site.requests if e["status"] == 200]
        expected = site.expected
    for game_id in BROKEN_PAGES:
        assert any(path.startswith(f"/soft.phtml?id={game_id}&") for path in fetched), game_id  # not a cached error
    assert any("month=02" in path for path in fetched)
    check_portraits(root, expected)
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert (metrics["pages_by_status"]["failed"], metrics["pages_failed_by_reason"]) == (0, {})
    assert (metrics["listings_failed"], metrics["listings_failed_by_reason"]) == (0, {})
    assert same_crawl(root, base) == same_crawl(crawled["root"], crawled["base"])


def test_an_undecodable_page_or_listing_is_recorded_failed_and_rebuilt_byte_identical(tmp_path: Path) -> None:
    """A 200 that no encoding decodes (a game page, and the March listing) is recorded failed as `undecodable` rather
    than only logged. It is what the site served, complete, so the HTTP cache keeps it like any page: a re-run
    replays it and rebuilds the same bytes without asking the site again."""
    port = free_port()
    broken = {"broken_pages": {900105: "garbled"}, "broken_months": {"2016-03": "garbled"}}
    with MockGetchu(port=port, **broken) as site:
        root = project(tmp_path / "garbled", site, site.expected["limits"])
        done = scrape(root)
        assert done.returncode == 0, done.stderr[-3000:]
    pages = read_table(root / "data/scrape/t/pages.parquet", CRAWL_PAGES).to_pylist()
    game = [row for row in pages if row["game_id"] == 900105]
    assert [(row["page_status"], row["page_failure"], row["image_url"]) for row in game] == [
        ("failed", "undecodable", None)
    ]
    metrics = json.loads((root / "metrics/scrape/t.json").read_text())
    assert (metrics["pages_by_status"]["failed"], metrics["pages_failed_by_reason"]) == (1, {"undecodable": 1})
    assert (metrics["listings_failed"], metrics["listings_failed_by_reason"]) == (1, {"undecodable": 1})
    before = outputs(root)
    with MockGetchu(port=port, **broken) as site:
        assert scrape(root).returncode == 0
        asked = [e["path"] for e in site.requests]
    assert not any("id=900105" in path or "month=03" in path for path in asked)
    assert outputs(root) == before


def test_a_later_record_that_read_the_page_wins_over_a_failed_one(tmp_path: Path) -> None:
    """items.jsonl of a crawl restarted after a hard kill, or resumed, may log a game or a listing twice: a record
    that read it (any status but gated or failed) wins over one that did not, whichever came first."""
    from core.params import CrawlParams
    from flows.scrape import build_tables

    def page(game_id: int, status: str, failure: str | None = None) -> dict[str, Any]:
        url = f"http://127.0.0.1:1/soft.phtml?id={game_id}&gc=gc"
        item = {"kind": "page", "game_id": game_id, "page_url": url, "status": status, "title": None, "brand": None,
                "release_date": None, "release_text": None, "genre_tab": None, "characters": 0}  # fmt: skip
        return {**item, "failure": failure} if failure else item

    def listing(url: str, status: str, failure: str | None = None) -> dict[str, Any]:
        item = {"kind": "listing", "month": "2016-01", "url": url, "status": status}
        return {**item, "failure": failure} if failure else item

    items = [
        page(1, "failed", "timeout"),
        page(2, "no_characters"),
        page(3, "failed", "connection"),
        listing("L1", "failed", "http_500"),
        listing("L2", "failed", "timeout"),
        listing("L3", "ok"),
        page(1, "no_characters"),  # the restarted crawl read it
        page(2, "failed", "http_503"),  # a later failure does not undo what was read
        listing("L1", "ok"),
        listing("L3", "failed", "dns"),
    ]
    log = tmp_path / "items.jsonl"
    log.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    tables = build_tables(CrawlParams(), log)
    rows = {row["game_id"]: (row["page_status"], row["page_failure"]) for row in tables["pages"]}
    assert rows == {1: ("no_characters", None), 2: ("no_characters", None), 3: ("failed", "connection")}
    metrics = tables["metrics"]
    assert (metrics["pages_by_status"]["failed"], metrics["pages_failed_by_reason"]) == (1, {"connection": 1})
    assert (metrics["listings_failed"], metrics["listings_failed_by_reason"]) == (1, {"timeout": 1})
    table_from_rows(tables["pages"], CRAWL_PAGES)  # the rows fit the declared schema
