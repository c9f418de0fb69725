"""Deterministic image bytes for the offline Getchu mock.

Why: the spider tests compare the sha256 of downloaded files with the expected manifest, so every image must be
byte-stable across runs (fixed quality, no metadata, no unseeded randomness) and unique per URL, except the
deliberate edition duplicates (900102's portraits are 900101's bytes). The deliberately broken images of 900108
(html body, truncated JPEG, too many pixels, too many bytes) are made here too.
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from .pages import MONTH_LISTS, PRODUCTS, encode, message_page

JPEG_QUALITY = 85
BUST = (250, 300)
FULLBODY = (400, 800)
FULLBODY_S = (100, 200)
PACKAGE = (420, 600)
PACKAGE_RC = (280, 400)
PACKAGE_SS = (120, 170)
PACKAGE_S = (140, 200)
PACKAGE_100 = (100, 142)
SAMPLE = (800, 600)
SAMPLE_S = (200, 150)
BANNER = (600, 120)
SCALE_BUST = (64, 77)
HUGE_SIDE = 6000  # 36 Mpx flat grey: over max_pixels=20M, yet only ~140 kB
NOISE_SIDE = 1000  # 1 Mpx of noise at quality 95: ~2.4 MB, over max_bytes=2M

LIMITS = {"max_pixels": 20_000_000, "max_bytes": 2_000_000}


@dataclass(frozen=True)
class ImageEntry:
    """What the server answers for one image path; `fail_once` answers 500 to the first request."""

    body: bytes
    content_type: str = "image/jpeg"
    fail_once: bool = False


def _colour(key: str) -> tuple[int, int, int]:
    d = hashlib.sha256(key.encode()).digest()
    return 40 + d[0] % 176, 40 + d[1] % 176, 40 + d[2] % 176


def _save(img: Image.Image, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **options)
    return buf.getvalue()


@functools.cache
def _font() -> ImageFont.ImageFont:
    # The bitmap font is embedded in Pillow: no FreeType or system fonts, so the pixels do not depend on the host.
    return ImageFont.load_default_imagefont()


def render(key: str, size: tuple[int, int], label: str | None = None) -> bytes:
    """A solid background with a frame and `label` (default `key`) drawn as text; same key, same bytes."""
    bg = _colour(key)
    fg = tuple(255 - c for c in bg)
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    draw.rectangle((2, 2, size[0] - 3, size[1] - 3), outline=fg, width=2)
    text = label or key
    for i, line in enumerate(text.split("/")):
        draw.text((8, 8 + 14 * i), line, fill=fg, font=_font())
    return _save(img, quality=JPEG_QUALITY)


def tiny(key: str, size: tuple[int, int] = SCALE_BUST) -> bytes:
    """A cheap unique JPEG for the benchmark: a solid colour plus an 8x8 patch of noise derived from `key`."""
    img = Image.new("RGB", size, _colour(key))
    patch = Image.frombytes("RGB", (8, 8), hashlib.shake_256(key.encode()).digest(8 * 8 * 3))
    img.paste(patch, (size[0] // 2 - 4, size[1] // 3))
    return _save(img, quality=JPEG_QUALITY)


def huge_flat() -> bytes:
    """A valid 6000x6000 JPEG (decompression-bomb candidate) that stays small because it is one flat grey."""
    return _save(Image.new("L", (HUGE_SIDE, HUGE_SIDE), 180), quality=JPEG_QUALITY, optimize=True)


def noise(seed: int, side: int = NOISE_SIDE) -> bytes:
    """A valid JPEG over 2 MB: seeded noise does not compress."""
    data = random.Random(seed).randbytes(side * side * 3)
    return _save(Image.frombytes("RGB", (side, side), data), quality=95, subsampling=0)


@functools.cache
def gif() -> bytes:
    """A 1x1 GIF for /common/images/* (spacer, demo-movie icon, cart button)."""
    buf = io.BytesIO()
    Image.new("P", (1, 1), 0).save(buf, "GIF")
    return buf.getvalue()


def _path(pid: int, file: str) -> str:
    return f"/brandnew/{pid}/{file}"


FAILED_108 = {
    _path(900108, "c900108chara2.jpg"): "http_404",
    _path(900108, "c900108chara3.jpg"): "not_an_image",
    _path(900108, "c900108chara4.jpg"): "corrupt",
    _path(900108, "c900108chara7.jpg"): "too_many_pixels",
    _path(900108, "c900108chara8.jpg"): "too_large",
}
FAIL_ONCE_108 = _path(900108, "c900108chara6.jpg")


@functools.cache
def scenario_images() -> dict[str, ImageEntry]:
    """Every image of the scenario site by path. Independent of the port, so it is built once per process."""
    out: dict[str, ImageEntry] = {}

    def add(pid: int, file: str, size: tuple[int, int], key: str | None = None) -> None:
        key = key or f"{pid}/{file}"
        out[_path(pid, file)] = ImageEntry(render(key, size))

    listed = {pid for days in MONTH_LISTS.values() for d in days for pid in d.ids}
    for pid in sorted(listed):
        add(pid, f"c{pid}package_ss.jpg", PACKAGE_SS)
    for p in PRODUCTS.values():
        if p.layout in ("missing", "shell"):
            continue
        add(p.id, f"c{p.id}package.jpg", PACKAGE)
        add(p.id, f"rc{p.id}package.jpg", PACKAGE_RC)
        if p.layout == "music":
            add(p.id, f"c{p.id}package_100.jpg", PACKAGE_100)
        if p.decoys:
            add(p.id, f"c{p.id}package_s.jpg", PACKAGE_S)
        for c in p.charas:
            file = c.bust_file(p.id)
            if file:
                dup = PRODUCTS[p.dup_of].charas[p.charas.index(c)].bust_file(p.dup_of) if p.dup_of else None
                add(p.id, file, BUST, f"{p.dup_of}/{dup}" if dup else None)
            if c.fullbody:
                add(p.id, f"c{p.id}charab{c.k}.jpg", FULLBODY)
                add(p.id, f"c{p.id}charab{c.k}_s.jpg", FULLBODY_S)
        for k in range(1, p.samples + 1):
            add(p.id, f"c{p.id}sample{k}.jpg", SAMPLE)
            add(p.id, f"c{p.id}sample{k}_s.jpg", SAMPLE_S)
        if p.banner:
            add(p.id, f"c{p.id}banner1.jpg", BANNER)

    del out[_path(900108, "c900108chara2.jpg")]
    html_body = encode(message_page("エラー - Getchu.com", "画像を表示できません。"))
    out[_path(900108, "c900108chara3.jpg")] = ImageEntry(html_body, "text/html; charset=EUC-JP")
    whole = out[_path(900108, "c900108chara4.jpg")].body
    out[_path(900108, "c900108chara4.jpg")] = ImageEntry(whole[: len(whole) // 2])
    out[FAIL_ONCE_108] = ImageEntry(out[FAIL_ONCE_108].body, fail_once=True)
    out[_path(900108, "c900108chara7.jpg")] = ImageEntry(huge_flat())
    out[_path(900108, "c900108chara8.jpg")] = ImageEntry(noise(900108))
    return out
