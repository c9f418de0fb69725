"""`twingan fetch`: downloads from a release (here a local server), pinned by SHA-256."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from twingan.fetch import RELEASES, SUMS_FILE, FetchError, fetch_release, read_sums


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def release_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    site = tmp_path / "site"
    site.mkdir()
    for item in RELEASES["illust2vec"].files:
        data = f"bytes of {item.name}".encode()
        if item.gunzip_to:
            data = gzip.compress(json.dumps(["1girl", "solo"]).encode(), mtime=0)
        (site / item.name).write_bytes(data)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site
    server.shutdown()
    server.server_close()


def test_first_fetch_pins_the_hashes_and_unpacks_the_tag_list(tmp_path: Path, release_site) -> None:
    url, _ = release_site
    dest = tmp_path / "models/illust2vec"
    written = fetch_release("illust2vec", dest, base_url=url)
    assert {p.name for p in written} == {f.name for f in RELEASES["illust2vec"].files} | {"tag_list.json"}
    assert json.loads((dest / "tag_list.json").read_text()) == ["1girl", "solo"]
    sums = read_sums(dest / SUMS_FILE)
    for name, sha in sums.items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == sha
    assert not list(dest.glob(".*"))  # no staging files left

    fetch_release("illust2vec", dest, base_url=url)  # a second fetch verifies against the pins
    assert read_sums(dest / SUMS_FILE) == sums


def test_a_changed_file_is_refused_and_nothing_is_replaced(tmp_path: Path, release_site) -> None:
    url, site = release_site
    dest = tmp_path / "models/illust2vec"
    fetch_release("illust2vec", dest, base_url=url)
    good = (dest / "illust2vec_tag_ver200.caffemodel").read_bytes()
    (site / "illust2vec_tag_ver200.caffemodel").write_bytes(b"tampered")
    with pytest.raises(FetchError, match=r"illust2vec_tag_ver200.caffemodel: SHA-256 .* does not match the pin"):
        fetch_release("illust2vec", dest, base_url=url)
    assert (dest / "illust2vec_tag_ver200.caffemodel").read_bytes() == good
    assert not list(dest.glob(".*"))


def test_a_missing_file_or_server_names_the_url(tmp_path: Path, release_site) -> None:
    url, site = release_site
    (site / "illust2vec_ver200.caffemodel").unlink()
    with pytest.raises(FetchError, match=r"/illust2vec_ver200.caffemodel: download failed: HTTP Error 404"):
        fetch_release("illust2vec", tmp_path / "out", base_url=url)
    with pytest.raises(FetchError, match=r"127.0.0.1:9/tag_list.json.gz: download failed"):
        fetch_release("illust2vec", tmp_path / "out2", base_url="http://127.0.0.1:9", timeout=5)
    with pytest.raises(ValueError, match="unknown model 'facenet'"):
        fetch_release("facenet", tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / SUMS_FILE).write_text("not a sum line\n")
    with pytest.raises(FetchError, match=r"SHA256SUMS:1: expected"):
        fetch_release("illust2vec", tmp_path / "bad", base_url=url)
