"""The web demo (training/web_demo.py): the request handler directly, and the page in headless Chromium.

The handler tests call DemoModel.handle as the page does and always run. The browser test serves the page
on a free port of 127.0.0.1 and drives it with Playwright in Debian's Chromium: upload, tick a tag,
Translate, read the gallery and the status, then a photo without a face and a file that is no image. The
models are tiny files made here with random weights (tests/tiny_models.py); the photos are drawn anime
faces (AnimeFace finds them), scikit-image's astronaut photo (dlib finds her) and, when ../shared is
present, real photographs.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.tiny_models import FACE_COLOURS, anime_group, smooth_photo, tiny_model
from training.translate import Translator, resize_portrait
from training.web_demo import DemoInputError, DemoModel, build_app, launch, tag_groups
from twingan.cli import app as cli
from twingan.demo_data import draw_anime_face

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


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
def test_page_in_headless_chromium(model_path: Path, group: np.ndarray, tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent: `apt-get install chromium` to run the browser test")
    from playwright.sync_api import expect, sync_playwright

    Image.fromarray(group).save(tmp_path / "group.png")
    Image.fromarray(smooth_photo()).save(tmp_path / "no-face.png")
    (tmp_path / "notes.png").write_bytes(b"these are notes, not pixels")
    started = time.perf_counter()
    app = build_app(model_path, source="anime", device="cpu")
    try:
        _, url = launch(app, host="127.0.0.1", port=free_port(), block=False)
        requests: list[str] = []
        errors: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
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
                                      ("notes.png", r"^Could not read the photo 'notes.png' as an image")):  # fmt: skip
                    page.get_by_label("Remove Image").first.click()
                    page.locator("#photo input[type=file]").set_input_files(tmp_path / name)
                    page.locator("#translate").click()
                    expect(status).to_have_value(re.compile(message), timeout=60_000)
                    expect(page.locator("#gallery img")).to_have_count(0)
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


def test_cli_demo_serves_until_ctrl_c(model_path: Path, tmp_path: Path) -> None:
    """`twingan demo` as a user runs it: the page answers on the port, Ctrl+C (SIGINT) stops it with status 0."""
    port = free_port()
    command = [sys.executable, "-m", "twingan", "demo", "--model", str(model_path), "--from", "anime",
               "--port", str(port), "--device", "cpu", "--params", str(tmp_path / "absent.yaml")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read_output() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120

        def serving() -> bool:
            return any("serving the demo" in line for line in lines)

        while time.monotonic() < deadline and process.poll() is None and not serving():
            time.sleep(0.2)
        assert serving(), "".join(lines) or "no output in 120 s"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            page = response.read().decode()
        assert "Twin-GAN demo" in page
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
    output = "".join(lines)
    assert process.returncode == 0, output
    assert f"serving the demo on http://127.0.0.1:{port}/" in output


def test_ctrl_c_while_gradio_starts_closes_it_and_the_cli_exits_0(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT can land inside Gradio's launch (it polls its own server before returning): the half-started
    server is closed and `twingan demo` still ends with status 0, as it does after the page is up."""

    class StartingApp:
        closed = False

        def launch(self, **_: object) -> None:
            raise KeyboardInterrupt

        def close(self) -> None:
            self.closed = True

    starting = StartingApp()
    with pytest.raises(KeyboardInterrupt):
        launch(starting)
    assert starting.closed

    import training.web_demo as web_demo

    monkeypatch.setattr(web_demo, "launch", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt()))
    result = CliRunner().invoke(cli, ["demo", "--model", str(model_path), "--from", "anime", "--device", "cpu",
                                      "--params", str(tmp_path / "absent.yaml")])  # fmt: skip
    assert result.exit_code == 0, result.output
