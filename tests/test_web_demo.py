"""The web demo (inference/web_demo.py): the request handler directly, and the page in headless Chromium.

The handler tests call DemoModel.handle as the page does and always run. The browser test serves the page
on a free port of 127.0.0.1 and drives it with Playwright in Debian's Chromium: upload, tick a tag,
Translate, read the gallery and the status, then a photo without a face, a file that is no image and one
with too many pixels. The models are tiny files made here with random weights (tests/builders/models.py); the
photos are drawn anime faces (AnimeFace finds them), scikit-image's astronaut photo (dlib finds her) and,
when ../shared is present, real photographs. `twingan demo` itself runs as a subprocess, stopped by SIGINT
and SIGTERM at start-up and while serving.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.demo_data import draw_anime_face
from inference.translate import Translator, resize_portrait
from inference.web_demo import DemoInputError, DemoModel, build_app, launch, tag_groups
from tests.builders.images import oversize_png
from tests.builders.models import FACE_COLOURS, anime_group, smooth_photo, tiny_model
from tests.builders.params import write_params
from twingan.cli import app as cli

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; CI installs it (`apt-get install chromium`)
# Chromium does not start as root with its sandbox (CI and this machine run tests as root): --no-sandbox, which
# Playwright also adds by default; stated here so the test does not rest on that default. The rest keep the
# browser off the network and its first-run work.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]  # fmt: skip


@pytest.fixture(autouse=True)
def _without_twisteds_empty_declaration_on_abc() -> None:
    """The scraper's tests import Twisted's reactor into this worker, which leaves an empty zope.interface
    `__provides__` (ClassProvides, declaring nothing) on `abc.ABC`. Gradio's components look up every class
    attribute on the instance, and that descriptor raises AttributeError there, so building a page fails.
    `twingan demo` never imports Twisted; here the empty declaration is dropped, which declares nothing less.
    """
    import abc

    provides = abc.ABC.__dict__.get("__provides__")
    if provides is not None and not list(provides):
        del abc.ABC.__provides__


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Domains human (dlib_hog) and anime (animeface), 16 px, random weights."""
    return tiny_model(tmp_path_factory.mktemp("web_demo") / "twingan.pt")


@pytest.fixture(scope="module")
def demo(model_path: Path) -> DemoModel:
    return DemoModel.from_file(model_path, device="cpu")


@pytest.fixture(scope="module")
def group() -> np.ndarray:
    """Three drawn anime faces side by side (green, brown and black hair)."""
    return np.asarray(anime_group())


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


# ------------------------------------------------------------------------------------------ handler


def test_handler_translates_every_face_as_the_cli_does(demo: DemoModel, group: np.ndarray, tmp_path: Path) -> None:
    reply = demo.handle(group, "anime", "human", ["green hair"], None, True)
    assert reply.status.startswith("3 faces found in the 784x280 photo; anime -> human, green hair"), reply.status
    assert [caption for _, caption in reply.gallery] == ["face 1", "face 2", "face 3", "pasted into the photo"]
    *portraits, (pasted, _) = reply.gallery
    assert all(p.shape == (256, 256, 3) and p.dtype == np.uint8 for p, _ in portraits)
    assert pasted.shape == group.shape and pasted.dtype == np.uint8

    # The file path of `twingan translate` gives the same pixels: same crops, same model, same paste.
    photo = tmp_path / "group.png"
    Image.fromarray(group).save(photo)
    translator = Translator.from_file(demo.path, source="anime", target="human", device="cpu")
    [result] = translator.translate_photos([photo], tags=["green hair"], paste=True)
    assert len(result.faces) == 3
    for face, (shown, _) in zip(result.faces, portraits, strict=True):
        np.testing.assert_array_equal(shown, resize_portrait(face.portrait, 256))
    np.testing.assert_array_equal(pasted, result.pasted)
    changed = np.any(pasted != group, axis=2)
    assert changed.any() and not changed[:, :4].any()  # faces replaced, the canvas edge untouched

    # The tag is a real condition: another tag gives other portraits, no tag and no paste gives no photo.
    other = demo.handle(group, "anime", "human", ["black hair"], None, False)
    assert len(other.gallery) == 3 and not np.array_equal(other.gallery[0][0], portraits[0][0])
    assert "no tags" in demo.handle(group, "anime", "human", [], None, False).status


def test_handler_human_photo_with_a_reference(demo: DemoModel) -> None:
    """The astronaut photo through dlib; a drawn character's colours become tags and are named."""
    reference = np.asarray(draw_anime_face(256, *FACE_COLOURS[0]))  # green hair, blue eyes
    reply = demo.handle(astronaut(), "human", "anime", ["smile"], reference, False)
    found = int(re.match(r"(\d+) faces? found", reply.status).group(1))
    assert found >= 1 and len(reply.gallery) == found
    assert "human -> anime, green hair, blue eyes, smile; reference: the anime face at" in reply.status, reply.status
    plain = demo.handle(astronaut(), "human", "anime", ["smile"], None, False)
    assert not np.array_equal(plain.gallery[0][0], reply.gallery[0][0])


def test_handler_photo_without_a_face(demo: DemoModel) -> None:
    reply = demo.handle(smooth_photo(), "anime", "human", ["green hair"], None, True)
    assert reply.gallery == []
    assert reply.status.startswith("No anime face found in the photo (animeface found none in 320x240)"), reply.status


def test_handler_bad_uploads_give_a_message(demo: DemoModel, group: np.ndarray, tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_bytes(b"these are notes, not pixels")
    (tmp_path / "empty.jpg").write_bytes(b"")
    Image.fromarray(group).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:2000])
    for name in ("notes.png", "empty.jpg", "cut.png"):
        payload = {"path": str(tmp_path / name), "orig_name": name, "meta": {"_type": "gradio.FileData"}}
        reply = demo.handle(payload, "anime", "human", [], None, True)
        assert reply.gallery == [] and reply.status.startswith(f"Could not read the photo '{name}' as an image ("), (
            reply.status
        )
    reply = demo.handle(group, "anime", "human", [], {"path": str(tmp_path / "notes.png"), "orig_name": "ref.png"})
    assert reply.status.startswith("Could not read the reference picture 'ref.png'"), reply.status
    assert demo.handle(None, "anime", "human").status == "Upload a photo first, then press Translate"
    assert demo.handle({"path": None}, "anime", "human").status == "Upload a photo first, then press Translate"
    assert "must be an 8-bit grey, RGB or RGBA image" in demo.handle(group.astype(np.float32), "anime", "human").status
    # A payload path the handler reads like the page's, grey and RGBA arrays work too.
    payload = {"path": str(tmp_path / "whole.png"), "orig_name": "whole.png"}
    assert demo.handle(payload, "anime", "human").status.startswith("3 faces found")
    rgba = np.dstack([group, np.full(group.shape[:2], 255, np.uint8)])
    assert demo.handle(rgba, "anime", "human").status.startswith("3 faces found")


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every image PIL decodes (ImageFile.load) and refuses ones over 10 million pixels, so a test
    sees a decode of the oversize PNG at once instead of waiting for it."""
    from PIL import ImageFile

    decoded: list[str] = []
    original = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> object:
        decoded.append(f"{self.size[0]}x{self.size[1]}")
        if self.size[0] * self.size[1] > 10_000_000:
            raise MemoryError(f"the test refuses to decode {self.size[0]}x{self.size[1]}")
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return decoded


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_handler_refuses_too_many_pixels_before_decoding(
    demo: DemoModel, group: np.ndarray, tmp_path: Path, no_decoding: list[str]
) -> None:
    """Uploads have the bound of ingest (ingest.max_pixels, 50,000,000 by default), checked from the header
    before the pixels are decoded; the message names the upload, not the server's cache path."""
    from core.params import IngestParams

    cache = tmp_path / "gradio" / "0123abcd"  # where Gradio keeps an upload: its cache, then a hash folder
    cache.mkdir(parents=True)
    huge = oversize_png(cache / "huge.png")
    assert huge.stat().st_size < 1_000_000
    for payload, name in (({"path": str(huge), "orig_name": "holiday.png"}, "photo 'holiday.png'"),
                          ({"path": str(huge)}, "uploaded photo")):  # fmt: skip
        reply = demo.handle(payload, "anime", "human", [], None, True)
        assert reply.gallery == [] and reply.status == (
            f"The {name} has 12000x12000 = 144,000,000 pixels, more than the 50,000,000 this page accepts "
            "(ingest.max_pixels): scale it down and upload it again"
        ), reply.status
    reply = demo.handle(group, "anime", "human", [], {"path": str(huge), "orig_name": "ref.png"})
    assert reply.status.startswith("The reference picture 'ref.png' has 12000x12000 = 144,000,000 pixels"), reply.status
    assert no_decoding == [], f"decoded before the bound was checked: {no_decoding}"
    assert demo.max_pixels == IngestParams().max_pixels == 50_000_000

    # The bound is the model's option (the CLI passes ingest.max_pixels of params.yaml); at the bound it is fine.
    small = DemoModel(demo.model, demo.info, path=demo.path, device="cpu", max_pixels=784 * 280)
    assert small.handle(group, "anime", "human").status.startswith("3 faces found")
    Image.fromarray(group).save(cache / "group.png")
    assert small.handle({"path": str(cache / "group.png")}, "anime", "human").status.startswith("3 faces found")
    tight = DemoModel(demo.model, demo.info, path=demo.path, device="cpu", max_pixels=784 * 280 - 1)
    status = tight.handle({"path": str(cache / "group.png"), "orig_name": "group.png"}, "anime", "human").status
    assert status.startswith("The photo 'group.png' has 784x280 = 219,520 pixels, more than the 219,519"), status


def test_handler_guards_pils_own_bomb_check(demo: DemoModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a bound above PIL's (Image.MAX_IMAGE_PIXELS), PIL refuses at open: same kind of message."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    loose = DemoModel(demo.model, demo.info, path=demo.path, device="cpu", max_pixels=10**9)
    path = oversize_png(tmp_path / "bomb.png", side=100)  # 10,000 pixels: over twice PIL's 1000, an error
    status = loose.handle({"path": str(path), "orig_name": "bomb.png"}, "anime", "human").status
    assert status.startswith("The photo 'bomb.png' has more pixels than PIL decodes safely (Image size (10000 pixels) "
                             "exceeds limit of 2000 pixels"), status  # fmt: skip
    assert str(tmp_path) not in status


def test_handler_messages_name_the_upload_not_the_servers_path(demo: DemoModel, tmp_path: Path) -> None:
    """PIL's messages carry the file's path (Gradio's cache: /tmp/gradio/<hash>/...); the page shows the name."""
    cache = tmp_path / "gradio" / "0123abcd"
    cache.mkdir(parents=True)
    (cache / "notes.png").write_bytes(b"these are notes, not pixels")
    for payload, start in (({"path": str(cache / "notes.png"), "orig_name": "my notes.png"},
                            "Could not read the photo 'my notes.png' as an image (UnidentifiedImageError: "),
                           ({"path": str(cache / "notes.png")},
                            "Could not read the uploaded photo as an image (UnidentifiedImageError: ")):  # fmt: skip
        status = demo.handle(payload, "anime", "human").status
        assert status.startswith(start) and str(tmp_path) not in status and "0123abcd" not in status, status


def test_handler_bad_choices_give_a_message(demo: DemoModel, group: np.ndarray) -> None:
    status = demo.handle(group, "anime", "human", ["purple hair"]).status
    assert status.startswith("Unknown tag(s) 'purple hair'; this model knows: blonde hair, green hair"), status
    assert demo.handle(group, "anime", "anime").status == "Pick a target domain other than 'anime': one of human"
    assert demo.handle(group, "cat", "anime").status.startswith("Unknown source domain 'cat'")


def test_handler_reference_needing_missing_illust2vec(group: np.ndarray, tmp_path: Path) -> None:
    """A model conditioned on features needs illust2vec for a reference: the status names the file and the fix;
    tags alone still work."""
    demo = DemoModel.from_file(tiny_model(tmp_path / "features.pt", feature_dim=8), device="cpu", illust2vec=tmp_path)
    status = demo.handle(group, "anime", "human", [], group).status
    assert status.startswith(f"{tmp_path / 'illust2vec_ver200.caffemodel'}: missing"), status
    assert "twingan fetch illust2vec" in status
    assert demo.handle(group, "anime", "human", ["smile"]).status.startswith("3 faces found")


def test_build_app_checks_the_domains(model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(DemoInputError, match=r"'cat'.*can detect faces of: human, anime"):
        build_app(model_path, source="cat", device="cpu", warm_up=False)
    with pytest.raises(DemoInputError, match="target domain 'human': pick one of anime"):
        build_app(model_path, source="human", target="human", device="cpu", warm_up=False)
    only_anime = tiny_model(tmp_path / "anime-only.pt", faces={"anime": {"detector": "animeface", "align": {
        "method": "box", "size": 64, "margin": 1.5, "shift_up": 0.1}}})  # fmt: skip
    with pytest.raises(DemoInputError, match="can detect faces of: anime"):
        build_app(only_anime, source="human", device="cpu", warm_up=False)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: no model file"):
        build_app(tmp_path / "missing.pt")


def test_tag_groups() -> None:
    assert tag_groups(["green hair", "smile", "blue eyes", "black hair"]) == [
        ("Hair colour", ["green hair", "black hair"]),
        ("Eye colour", ["blue eyes"]),
        ("Other tags", ["smile"]),
    ]
    assert tag_groups(["smile"]) == [("Other tags", ["smile"])]


def test_handler_real_photos(real_data: Path, demo: DemoModel) -> None:
    """Real photographs (a 3913x1901 one among them) through the page's path give the faces and the pasted
    photo that the file path of `twingan translate` gives, with the same translator."""
    photos = sorted((real_data / "human").glob("*.jpg"))[:3]
    assert photos, f"no photos in {real_data / 'human'}"
    translator = demo.translator("human", "anime")
    found = 0
    for photo, result in zip(photos, translator.translate_photos(photos, paste=True), strict=True):
        reply = demo.handle(
            {"path": str(photo), "orig_name": photo.name}, "human", "anime", ["blonde hair"], None, True
        )
        if result.skipped:
            assert reply.status.startswith("No human face found"), (photo, reply.status)
            continue
        found += 1
        faces = len(result.faces)
        assert reply.status.startswith(f"{faces} face{'s' if faces > 1 else ''} found"), (photo, reply.status)
        assert len(reply.gallery) == faces + 1 and reply.gallery[-1][0].shape == result.pasted.shape
    assert found >= 2, f"dlib found faces in fewer than 2 of {', '.join(p.name for p in photos)}"


# -------------------------------------------------------------------------------------------- browser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas deprecations inside Gradio
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_page_in_headless_chromium(model_path: Path, group: np.ndarray, tmp_path: Path, no_decoding: list[str]) -> None:
    if not CHROMIUM.is_file():
        reason = f"Debian's Chromium ({CHROMIUM}) is absent: `apt-get install -y chromium` to run the browser test"
        if os.environ.get("TWINGAN_REQUIRE_CHROMIUM"):  # CI sets it: there a skip would hide a missing browser
            pytest.fail(f"{reason} (TWINGAN_REQUIRE_CHROMIUM is set)")
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    Image.fromarray(group).save(tmp_path / "group.png")
    Image.fromarray(smooth_photo()).save(tmp_path / "no-face.png")
    (tmp_path / "notes.png").write_bytes(b"these are notes, not pixels")
    oversize_png(tmp_path / "huge.png")  # 168 KB, 12000x12000: over the page's bound, which is ingest's
    uploads = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")  # Gradio's cache
    started = time.perf_counter()
    app = build_app(model_path, source="anime", device="cpu")
    try:
        _, url = launch(app, host="127.0.0.1", port=free_port(), block=False)
        requests: list[str] = []
        errors: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                                                 chromium_sandbox=False)  # fmt: skip
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1100})
                page.on("request", lambda request: requests.append(request.url))
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(url)
                status = page.locator("#status textarea")
                expect(page.locator("#target input")).to_have_value("human")
                page.locator("#source input").click()  # switching the source offers the other targets
                page.get_by_role("option", name="human").click()
                expect(page.locator("#target input")).to_have_value("anime")
                page.locator("#source input").click()
                page.get_by_role("option", name="anime").click()
                expect(page.locator("#target input")).to_have_value("human")

                page.locator("#photo input[type=file]").set_input_files(tmp_path / "group.png")
                page.get_by_label("green hair").check()
                page.locator("#translate").click()
                expect(status).to_have_value(re.compile(r"^3 faces found .*anime -> human, green hair"), timeout=60_000)
                expect(page.locator("#gallery img")).to_have_count(4)  # three faces and the pasted photo
                shot = tmp_path / "web_demo.png"
                page.screenshot(path=str(shot), full_page=True)

                for name, message in (("no-face.png", r"^No anime face found in the photo"),
                                      ("notes.png", r"^Could not read the photo 'notes.png' as an image"),
                                      ("huge.png", r"^The photo 'huge.png' has 12000x12000 = 144,000,000 pixels, "
                                                   r"more than the 50,000,000 this page accepts")):  # fmt: skip
                    page.get_by_label("Remove Image").first.click()
                    page.locator("#photo input[type=file]").set_input_files(tmp_path / name)
                    page.locator("#translate").click()
                    expect(status).to_have_value(re.compile(message), timeout=60_000)
                    expect(page.locator("#gallery img")).to_have_count(0)
                    shown = status.input_value()
                    assert uploads not in shown and "/gradio/" not in shown, f"the server's path is shown: {shown}"
            finally:
                browser.close()
    finally:
        app.close()
    print(f"browser test: {time.perf_counter() - started:.1f} s, screenshot {shot}")

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[1] == 1280 and pixels.std() > 20  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # photos and portraits, not just flat UI
    hosts = {urlparse(u).hostname for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {"127.0.0.1"}, f"the page fetched from other hosts: {sorted(hosts)}"
    assert not errors, errors
    assert "12000x12000" not in no_decoding, "the server decoded the oversize upload"


def test_cli_demo_errors(model_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--model", str(tmp_path / "no.pt")])
    assert result.exit_code == 2 and "no.pt: no model file" in result.output, result.output
    result = runner.invoke(cli, ["demo", "--model", str(model_path), "--from", "cat", "--device", "cpu"])
    assert result.exit_code == 2 and "source domain 'cat'" in result.output, result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(cli, ["demo", "--model", str(model_path), "--from", "anime", "--device", "cpu",
                                     "--port", str(port), "--params", str(tmp_path / "absent.yaml")])  # fmt: skip
    assert result.exit_code == 2 and f"cannot serve on 127.0.0.1:{port}: the port is in use" in result.output, (
        result.output
    )


# What the child runs before `python -m twingan`. A shell without job control starts a background job
# (`pytest ... &` in a script) with SIGINT ignored (POSIX), children inherit that, and Python leaves an
# inherited SIG_IGN alone, rightly: `twingan demo` must not undo its parent's choice. So the child is given
# what a terminal's foreground job gets, Python's own handler, or, with TWINGAN_TEST_SIGINT_IGNORED, what a
# background job gets; set by its own first line, not by a preexec_fn, which runs between fork and exec and
# can deadlock a parent with threads (this one has Gradio's). TWINGAN_TEST_SIGINT_AT sends it a SIGINT at
# one moment of its start-up: while the command imports the demo (the first second: torch, Gradio); there
# too but from inside a __del__, where Python drops the KeyboardInterrupt (printing "Exception ignored"), as
# it does when the signal lands in one of importlib's weakref callbacks while torch imports; or inside
# Gradio's launch just after its server thread started.
CHILD = """
import os, runpy, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN if os.environ.get("TWINGAN_TEST_SIGINT_IGNORED") else
              signal.default_int_handler)
moment = os.environ.get("TWINGAN_TEST_SIGINT_AT")
if moment == "import":
    sent = []
    def interrupt_on_import(event, args):
        if event == "import" and args[0] == "inference.web_demo" and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
    sys.addaudithook(interrupt_on_import)
elif moment == "dropped":
    class Interrupting:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
    sent = []
    def interrupt_in_a_del(event, args):
        if event == "import" and args[0] == "inference.web_demo" and not sent:
            sent.append(True)
            Interrupting()
    sys.addaudithook(interrupt_in_a_del)
elif moment == "launch":
    import twingan.cli  # its environment (analytics off) before Gradio is imported
    import gradio.http_server as http_server
    start_server = http_server.start_server
    def interrupting_start_server(*args, **kwargs):
        started = start_server(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return started
    http_server.start_server = interrupting_start_server
runpy.run_module("twingan", run_name="__main__", alter_sys=True)
"""


class DemoProcess:
    """`twingan demo` in a subprocess, as a user runs it, its output collected line by line; uploads go to
    a cache folder of the test's (GRADIO_TEMP_DIR), so the test can see them deleted on a clean stop."""

    def __init__(self, model_path: Path, tmp_path: Path, *, sigint_ignored: bool = False,
                 sigint_at: str | None = None) -> None:  # fmt: skip
        self.port = free_port()
        self.uploads = tmp_path / "gradio"
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.uploads), "COLUMNS": "200"}  # no wrapped log lines
        env.pop("TWINGAN_TEST_SIGINT_IGNORED", None)
        env.pop("TWINGAN_TEST_SIGINT_AT", None)
        if sigint_ignored:
            env["TWINGAN_TEST_SIGINT_IGNORED"] = "1"
        if sigint_at:
            env["TWINGAN_TEST_SIGINT_AT"] = sigint_at
        command = [sys.executable, "-c", CHILD, "demo", "--model", str(model_path), "--from", "anime",
                   "--port", str(self.port), "--device", "cpu", "--params", str(tmp_path / "absent.yaml")]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None and text not in self.output:
            time.sleep(0.2)
        assert text in self.output, self.output or f"no output in {timeout} s"

    def page(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=30) as response:
            return response.read().decode()

    def upload(self, path: Path) -> Path:
        """POST a file to the page's upload route, as the browser does when a photo is chosen; returns where the
        server keeps it."""
        boundary = "twingan-test-boundary"
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{path.name}"\r\n\r\n'
        body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        url = f"http://127.0.0.1:{self.port}/gradio_api/upload"
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            [stored] = json.loads(response.read())
        return Path(stored)

    def stop(self, signum: int, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def __enter__(self) -> DemoProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=10)


def test_cli_demo_serves_until_ctrl_c(model_path: Path, group: np.ndarray, tmp_path: Path) -> None:
    """`twingan demo` as a user runs it at a terminal: the page answers on the port, Ctrl+C (SIGINT) closes the
    server, which deletes the uploads from Gradio's cache, and the status is 0."""
    Image.fromarray(group).save(tmp_path / "group.png")
    with DemoProcess(model_path, tmp_path) as demo:
        demo.wait_for("serving the demo on")
        assert "Twin-GAN demo" in demo.page()
        stored = demo.upload(tmp_path / "group.png")
        assert stored.is_file() and demo.uploads in stored.parents, stored
        assert demo.stop(signal.SIGINT) == 0, demo.output
    assert f"serving the demo on http://127.0.0.1:{demo.port}/ (Ctrl+C stops it)" in demo.output
    assert f"closed the server on http://127.0.0.1:{demo.port}/" in demo.output and "stopped" in demo.output
    assert not stored.exists(), "the upload outlived the server"


def test_cli_demo_stops_cleanly_on_sigterm(model_path: Path, group: np.ndarray, tmp_path: Path) -> None:
    """systemd and `docker stop` send SIGTERM: the server is closed as on Ctrl+C (the uploads deleted) and the
    status is 0. Here it runs as a background job does, SIGINT ignored: that stays so (its parent chose it),
    the start-up line says how to stop it instead, and a SIGINT leaves the page serving."""
    Image.fromarray(group).save(tmp_path / "group.png")
    with DemoProcess(model_path, tmp_path, sigint_ignored=True) as demo:
        demo.wait_for("serving the demo on")
        stored = demo.upload(tmp_path / "group.png")
        demo.process.send_signal(signal.SIGINT)
        time.sleep(1)
        assert demo.process.poll() is None and "Twin-GAN demo" in demo.page(), demo.output
        assert demo.stop(signal.SIGTERM) == 0, demo.output
    assert f"(Ctrl+C is ignored here: `kill {demo.process.pid}` stops it)" in demo.output, demo.output
    assert f"closed the server on http://127.0.0.1:{demo.port}/" in demo.output and "stopped" in demo.output
    assert not stored.exists(), "the upload outlived the server"


@pytest.mark.parametrize("moment", ["import", "dropped", "launch"])
def test_cli_demo_ctrl_c_while_starting_exits_0(model_path: Path, tmp_path: Path, moment: str) -> None:
    """Ctrl+C in the first second (the command still importing torch and Gradio), also one whose
    KeyboardInterrupt Python drops, or while Gradio starts its server stops the demo as a later Ctrl+C does:
    status 0, no traceback, a started server closed, and not a page that serves on."""
    with DemoProcess(model_path, tmp_path, sigint_at=moment) as demo:
        try:
            code = demo.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 60 s after the SIGINT: {demo.output}")
    assert code == 0, f"status {code}: {demo.output}"
    assert "stopped" in demo.output, demo.output
    if moment == "dropped":  # Python's own report of the KeyboardInterrupt it dropped, nothing else
        assert "Exception ignored in: <function Interrupting.__del__" in demo.output, demo.output
    else:
        assert "Traceback" not in demo.output, demo.output
    if moment == "launch":
        assert f"closed the server on http://127.0.0.1:{demo.port}/" in demo.output, demo.output


def test_launch_holds_a_sigint_until_gradio_has_started(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGINT can land in Gradio's launch after its server thread started and before Blocks records the
    server; close() then cannot stop it and the page keeps serving. launch holds SIGINT while Gradio starts
    and delivers it after, so the server is closed and the port refuses connections."""
    import gradio.http_server as http_server

    start_server = http_server.start_server

    def interrupting_start_server(*args: Any, **kwargs: Any) -> Any:
        started = start_server(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return started

    monkeypatch.setattr(http_server, "start_server", interrupting_start_server)
    app = build_app(model_path, source="anime", device="cpu", warm_up=False)
    port = free_port()
    # Python's own handler, also when pytest runs as a background job (SIGINT ignored); put back below.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            launch(app, host="127.0.0.1", port=port, block=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        app.close()


def test_cli_demo_takes_the_pixel_bound_of_params(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's bound on uploads is ingest.max_pixels of the params file, or its default without one."""
    import inference.web_demo as web_demo

    seen: list[object] = []

    def build_app_then_stop(model: object, **options: object) -> None:
        seen.append(options.get("max_pixels"))
        raise KeyboardInterrupt  # as if Ctrl+C came while the page was built: status 0

    monkeypatch.setattr(web_demo, "build_app", build_app_then_stop)
    params = write_params(tmp_path / "p", {"dog": {"source": {"kind": "folder", "path": "photos"}}},
                          ingest={"max_pixels": 4096})  # fmt: skip
    for params_file in (params, tmp_path / "absent.yaml"):
        result = CliRunner().invoke(cli, ["demo", "--model", str(model_path), "--params", str(params_file)])
        assert result.exit_code == 0, result.output
    assert seen == [4096, 50_000_000]


def test_ctrl_c_while_gradio_starts_closes_it_and_the_cli_exits_0(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT can land inside Gradio's launch (it polls its own server before returning): the half-started
    server is closed and `twingan demo` still ends with status 0, as it does after the page is up."""

    class StartingApp:
        closed = False

        def launch(self, **_: object) -> None:
            raise KeyboardInterrupt

        def close(self, verbose: bool = True) -> None:
            self.closed = True

    starting = StartingApp()
    with pytest.raises(KeyboardInterrupt):
        launch(starting)
    assert starting.closed

    import inference.web_demo as web_demo

    monkeypatch.setattr(web_demo, "launch", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt()))
    result = CliRunner().invoke(cli, ["demo", "--model", str(model_path), "--from", "anime", "--device", "cpu",
                                      "--params", str(tmp_path / "absent.yaml")])  # fmt: skip
    assert result.exit_code == 0, result.output
