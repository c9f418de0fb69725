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

from preprocessing.schemas import RAW_MANIFEST, RAW_REJECTS
from scraping.schemas import CRAWL_PAGES
from tests.conftest import REPO, write_params
from tests.getchu_site import MockGetchu
from twingan.parquet import read_table

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
    root, expected = crawled["root"], crawled["expected"]
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
    out = crawled["root"] / "data/scrape/t"
    rejects = read_table(out / "rejects.parquet", RAW_REJECTS).to_pylist()
    reasons = {row["member"]: row["reason"] for row in rejects if row["reason"] != "duplicate"}
    for url, reason in crawled["expected"]["failed_images"].items():
        assert reasons.get(url) == reason, url
    metrics = json.loads((crawled["root"] / "metrics/scrape/t.json").read_text())
    assert metrics["images_stored"] == len(read_table(out / "manifest.parquet", RAW_MANIFEST))
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
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 8 and min(gaps) >= 0.8 * delay, gaps


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
    from tests.test_pipeline import copy_repo, dvc, ran

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
