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


# Detector weights (`twingan fetch <model>`): pinned in preprocessing/faces/weights.py, served here from a local
# mirror with the <model>/<file> layout of `--base-url`.

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
needs_shared_models = pytest.mark.skipif(
    not SHARED_MODELS.is_dir(), reason="../shared/models absent: the real detector weights the pins describe"
)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    site = tmp_path / "mirror"
    site.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site
    server.shutdown()
    server.server_close()


def _serve(site: Path, model: str, name: str, data: bytes) -> None:
    (site / model).mkdir(exist_ok=True)
    (site / model / name).write_bytes(data)


@needs_shared_models
def test_detector_weights_are_fetched_checked_and_not_fetched_twice(tmp_path: Path, mirror, monkeypatch) -> None:
    from preprocessing.faces.weights import MODELS, weights_file
    from twingan.fetch import fetch_detector_weights

    url, site = mirror
    data = (SHARED_MODELS / "lbpcascade_animeface" / "lbpcascade_animeface.xml").read_bytes()
    _serve(site, "lbpcascade_animeface", "lbpcascade_animeface.xml", data)
    root = tmp_path / "weights"
    written = fetch_detector_weights("lbpcascade_animeface", root, base_url=url)
    assert written == [root / "lbpcascade_animeface" / "lbpcascade_animeface.xml"]
    assert written[0].read_bytes() == data
    assert not list((root / "lbpcascade_animeface").glob(".*"))  # no staging file left
    assert MODELS["lbpcascade_animeface"].licence == "MIT"

    (site / "lbpcascade_animeface" / "lbpcascade_animeface.xml").unlink()  # a second fetch needs no network
    assert fetch_detector_weights("lbpcascade_animeface", root, base_url=url) == written

    monkeypatch.setenv("TWINGAN_DETECTOR_WEIGHTS", str(root))  # where the detectors look
    found = weights_file("lbpcascade_animeface", "lbpcascade_animeface.xml")
    assert found.path == written[0]
    assert found.sha256 == hashlib.sha256(data).hexdigest()


def test_detector_weights_with_other_bytes_are_refused_and_replace_nothing(tmp_path: Path, mirror) -> None:
    from twingan.fetch import fetch_detector_weights

    url, site = mirror
    root = tmp_path / "weights"
    _serve(site, "lbpcascade_animeface", "lbpcascade_animeface.xml", b"<opencv_storage>not it</opencv_storage>")
    with pytest.raises(FetchError, match=r"animeface.xml: SHA-256 .* does not match the pin .*nothing replaced"):
        fetch_detector_weights("lbpcascade_animeface", root, base_url=url)
    assert not list((root / "lbpcascade_animeface").iterdir())  # neither a file nor a staging copy

    kept = root / "lbpcascade_animeface" / "lbpcascade_animeface.xml"
    kept.write_bytes(b"a user's older copy")
    with pytest.raises(FetchError, match="does not match the pin"):
        fetch_detector_weights("lbpcascade_animeface", root, base_url=url)
    assert kept.read_bytes() == b"a user's older copy"


def test_detector_weights_larger_than_the_pin_are_cut_off(tmp_path: Path, mirror) -> None:
    from preprocessing.faces.weights import pinned
    from twingan.fetch import fetch_detector_weights

    url, site = mirror
    size = pinned("lbpcascade_animeface", "lbpcascade_animeface.xml").size
    _serve(site, "lbpcascade_animeface", "lbpcascade_animeface.xml", b"x" * (size + 1))
    with pytest.raises(FetchError, match=rf"larger than the pinned {size:,} bytes; nothing written"):
        fetch_detector_weights("lbpcascade_animeface", tmp_path / "weights", base_url=url)
    assert not list((tmp_path / "weights" / "lbpcascade_animeface").iterdir())


def test_weights_without_a_stated_licence_need_consent_and_unknown_models_are_named(tmp_path: Path, mirror) -> None:
    from twingan.fetch import describe_models, fetch_detector_weights

    url, _ = mirror
    with pytest.raises(FetchError, match=r"pycatfd: no licence stated .*--accept-no-licence"):
        fetch_detector_weights("pycatfd", tmp_path / "weights", base_url=url)
    assert not (tmp_path / "weights").exists()
    with pytest.raises(FetchError, match=r"unknown model 'facenet' \(known: .*yunet"):
        fetch_detector_weights("facenet", tmp_path / "weights")
    lines = describe_models()
    assert any(line.startswith("yunet: 2 file(s)") and "Apache-2.0" in line for line in lines)
    assert any(line.startswith("pycatfd:") and "no licence stated" in line for line in lines)


def test_fetch_command_lists_licences_and_refuses_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twingan.cli import app

    listed = CliRunner().invoke(app, ["fetch", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "retinaface_mobilenet025:" in listed.output and "MIT" in listed.output
    refused = CliRunner().invoke(app, ["fetch", "afd_anime_hog", "--dest", str(tmp_path)])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and "no licence stated" in refused.output
