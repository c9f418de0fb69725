"""Benchmark of the scrape stage against a plain `requests` loop, on the mock Getchu (tests/getchu_site).

Why: Scrapy's concurrent downloader should beat the loop most scrapers start from; this measures by how
much, with politeness switched off (no delay, no AutoThrottle) so that it measures the engines:

  baseline   one requests.Session, sequentially: the age-gate seed, each month listing, each game page,
             each portrait (with the Referer the site demands), parsed with the same scraping.parsing
             functions, images checked with the same pipeline check and written by SHA-256
  scrape     `twingan scrape` (the real stage, a subprocess as under `dvc repro`), 8 concurrent
             requests, HTTP cache off, then its tables and metrics written

The mock runs in its own process, so neither side shares a GIL with the server. It answers after
`--latency` seconds (default 50 ms: a site in the same region; Getchu from Europe is 250 ms or more);
with `--latency 0` the run measures CPU cost per request alone, where a sequential loop has nothing to
overlap and Scrapy's heavier machinery loses. Both sides fetch the same
URLs; the script checks they stored the same set of image SHA-256s. It prints pages/s, images/s, the
ratio, and the peak RSS of the scrape subprocess (the crawl keeps its queues and items on disk, so memory
should not grow with the site: run with --pages 5000 to see).

    .venv/bin/python benchmarks/scrape.py [--pages 5000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(port: int, pages: int, ready: Any, stop: Any, latency: float = 0.0) -> None:
    """The mock site, in its own process (so the server shares no GIL with either side)."""
    from tests.getchu_site import MockGetchu

    with MockGetchu(port=port, scale=pages, latency=latency):
        ready.set()
        stop.wait()


def run_baseline(base: str, months: list[tuple[int, int]], out: Path) -> tuple[int, int, set[str]]:
    """The sequential loop: returns (pages fetched, images fetched, SHA-256s stored)."""
    import requests

    from scraping.parsing import decode_page, is_age_gate, parse_game_page, parse_listing, with_age_flag
    from scraping.pipelines import ImageRejected, check_image

    session = requests.Session()
    session.headers["User-Agent"] = "twingan-benchmark-baseline"
    session.cookies.set("getchu_adalt_flag", "getchu.com")
    session.get(f"{base}/top.html?gc=gc", timeout=30)
    pages = images = 0
    stored: set[str] = set()
    for year, month in months:
        url = f"{base}/all/month_title.html?genre=pc_soft&gage=all&year={year}&month={month:02d}"
        listing = parse_listing(decode_page(session.get(url, timeout=30).content), url)
        pages += 1
        for entry in listing.entries:
            game_url = with_age_flag(entry.url)
            response = session.get(game_url, timeout=30)
            pages += 1
            html = decode_page(response.content)
            if response.status_code != 200 or is_age_gate(html, response.url):
                continue
            for character in parse_game_page(html, response.url).characters:
                if not character.image_url:
                    continue
                image = session.get(character.image_url, headers={"Referer": response.url}, timeout=30)
                images += 1
                if image.status_code != 200:
                    continue
                try:
                    checked = check_image(image.content, 5_000_000, 20_000_000)
                except ImageRejected:
                    continue
                target = out / checked["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(image.content)
                stored.add(hashlib.sha256(image.content).hexdigest())
    return pages, images, stored


def run_stage(base: str, root: Path, concurrency: int) -> tuple[float, float, set[str], dict[str, float]]:
    """`twingan scrape` in a subprocess: (seconds, peak RSS MiB, SHA-256s stored, metrics)."""
    import json

    import pyarrow.parquet as pq

    (root / "photos").mkdir(parents=True, exist_ok=True)
    params = {
        "domains": {"anime": {"source": {"kind": "folder", "path": "photos"}}},
        "scrape": {
            "bench": {
                "base_url": base,
                "first_month": "2017-01",
                "last_month": "2017-12",
                "download_delay": 0,
                "autothrottle": False,
                "http_cache": False,
                "concurrency_per_domain": concurrency,
                "retries": 1,
            }
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "twingan", "scrape", "--crawl", "bench"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"scrape failed:\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    manifest = pq.read_table(root / "data/scrape/bench/manifest.parquet")
    metrics = json.loads((root / "metrics/scrape/bench.json").read_text())
    return seconds, max(peak, before) / 1024, set(manifest.column("id").to_pylist()), metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=600, help="game pages on the mock site (3 portraits each)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--latency",
        type=float,
        default=0.05,
        help="seconds the mock waits before each response (a real site's round trip; 0: none)",
    )
    args = parser.parse_args()
    from core.environment import configure_environment

    configure_environment(REPO)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    server = context.Process(target=serve, args=(port, args.pages, ready, stop, args.latency), daemon=True)
    server.start()
    if not ready.wait(120):
        raise SystemExit("mock site did not start")
    try:
        with tempfile.TemporaryDirectory(prefix="scrape-bench-") as tmp:
            stage_s, peak_mib, stage_ids, metrics = run_stage(base, Path(tmp) / "stage", args.concurrency)
            started = time.perf_counter()
            pages, images, base_ids = run_baseline(base, [(2017, m) for m in range(1, 13)], Path(tmp) / "loop")
            base_s = time.perf_counter() - started
    finally:
        stop.set()
        server.join(10)
    print(
        f"scrape benchmark: mock Getchu with {args.pages} game pages, 12 month listings, {images} portraits, "
        f"{args.latency * 1000:.0f} ms latency per response"
    )
    print(f"{'':28} {'seconds':>8} {'pages/s':>8} {'images/s':>9}")
    print(f"{'baseline (requests loop)':28} {base_s:8.2f} {pages / base_s:8.1f} {images / base_s:9.1f}")
    print(
        f"{'scrape stage (Scrapy x' + str(args.concurrency) + ')':28} {stage_s:8.2f} {pages / stage_s:8.1f} "
        f"{images / stage_s:9.1f}"
    )
    print(
        f"speed-up, scrape stage vs baseline: {base_s / stage_s:.2f}x (stage time includes process start-up "
        "and writing its tables)"
    )
    print(
        f"peak RSS of the scrape subprocess: {peak_mib:.0f} MiB; stage metrics: pages {metrics['pages']}, "
        f"images stored {metrics['images_stored']}"
    )
    if stage_ids != base_ids:
        print(f"check FAILED: the stage stored {len(stage_ids)} images, the baseline {len(base_ids)}")
        return 1
    print(f"check OK: both stored the same {len(stage_ids)} images (by SHA-256)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
