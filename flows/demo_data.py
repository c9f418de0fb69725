"""The `demo_data` stage: the inputs of the embedded demo profile, made on any fresh machine.

Nothing here is downloaded and nothing is copied from elsewhere:
- human: real photographs bundled in the scikit-image wheel (the astronaut Eileen Collins, the
  cameraman) and its 100 real LFW face crops (25x25, grayscale), packed as a zip the way CelebA ships
  `img_align_celeba.zip`. Variants of the astronaut photo (EXIF-rotated, CMYK, 16-bit, palette,
  alpha) and, with `include_bad_files`, a few deliberately broken files under `bad/` show what ingest
  does with such inputs.
- anime: SYNTHETIC faces drawn by this module with PIL primitives (hair, face, large eyes with iris,
  pupil and highlight, brows, mouth), varied in colours and size. No character art can be obtained
  legitimately offline; every file is named `synthetic_*`.
- cat: scikit-image's real photograph of Chelsea the cat, plus crops and mirror images of it (named
  `chelsea_crop_*`, derived from the one real photo).
"""

from __future__ import annotations

import io
import logging
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.atomic import staged_dir
from core.params import DemoDataParams, LoadedParams

log = logging.getLogger("twingan.demo_data")

# A fixed timestamp keeps the zip byte-identical between runs.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

HAIR_COLOURS = {
    "black": (30, 28, 35),
    "brown": (110, 70, 40),
    "blonde": (240, 215, 120),
    "red": (200, 50, 40),
    "pink": (245, 150, 190),
    "blue": (70, 110, 220),
    "green": (80, 170, 90),
    "silver": (200, 205, 215),
    "purple": (140, 80, 180),
    "orange": (245, 140, 50),
}
EYE_COLOURS = {
    "blue": (40, 90, 210),
    "red": (190, 30, 40),
    "green": (40, 150, 70),
    "brown": (120, 70, 30),
    "purple": (130, 60, 170),
    "yellow": (220, 180, 40),
    "aqua": (40, 190, 200),
}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def _jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, **options)
    return buffer.getvalue()


def draw_anime_face(
    size: int,
    hair: tuple[int, int, int],
    eyes: tuple[int, int, int],
    skin: tuple[int, int, int] = (255, 228, 210),
    background: tuple[int, int, int] = (250, 250, 245),
    tilt: float = 0.0,
) -> Image.Image:
    """A cartoon face in the proportions of anime character art, drawn on a `size` square.

    AnimeFace (the anime face detector) finds these with high likelihood on Pillow < 12, so they also
    serve as the must-find fixture for that detector.
    """
    scale = size / 400.0

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return (round(x0 * scale), round(y0 * scale), round(x1 * scale), round(y1 * scale))

    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse(box(70, 40, 330, 330), fill=hair)  # hair mass behind the face
    draw.rectangle(box(70, 180, 330, 380), fill=hair)  # hair falling to the shoulders
    draw.ellipse(box(110, 100, 290, 320), fill=skin)  # face
    draw.polygon(
        [
            (round(x * scale), round(y * scale))
            for x, y in ((100, 90), (300, 90), (290, 170), (250, 130), (200, 175), (150, 130), (110, 170))
        ],
        fill=hair,
    )  # fringe
    dark = tuple(max(0, c - 90) for c in hair)
    for cx in (160, 240):
        draw.line(box(cx - 28, 178, cx + 22, 172), fill=dark, width=max(2, round(5 * scale)))  # brow
        draw.ellipse(
            box(cx - 26, 190, cx + 26, 252), fill=(255, 255, 255), outline=(40, 30, 30), width=max(1, round(3 * scale))
        )  # eye white
        draw.ellipse(box(cx - 19, 198, cx + 19, 250), fill=eyes)  # iris
        draw.ellipse(box(cx - 9, 214, cx + 9, 238), fill=(15, 10, 20))  # pupil
        draw.ellipse(box(cx - 14, 202, cx - 4, 214), fill=(255, 255, 255))  # highlight
    draw.arc(box(185, 272, 215, 292), 20, 160, fill=(170, 60, 60), width=max(1, round(3 * scale)))
    if tilt:
        image = image.rotate(tilt, resample=Image.Resampling.BICUBIC, fillcolor=background)
    return image


def _human_members(include_bad: bool) -> Iterator[tuple[str, bytes]]:
    from skimage import data as samples

    astronaut = Image.fromarray(samples.astronaut())
    yield "astronaut.png", _png(astronaut)
    yield "cameraman.png", _png(Image.fromarray(samples.camera()))
    faces = samples.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    for index, face in enumerate(faces):
        yield f"lfw/face_{index:03d}.png", _png(Image.fromarray(np.uint8(np.clip(face * 255 + 0.5, 0, 255))))
    # Real pixels stored the awkward ways that real photo folders contain.
    small = astronaut.resize((256, 256), Image.Resampling.LANCZOS)
    rotated = small.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    yield "variants/astronaut_exif_rotated.jpg", _jpeg(rotated, exif=exif.tobytes())
    yield "variants/astronaut_cmyk.jpg", _jpeg(small.convert("CMYK"))
    sixteen = (np.asarray(small.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    yield "variants/astronaut_16bit.png", _png(Image.fromarray(sixteen))
    yield "variants/astronaut_palette.png", _png(small.quantize(64))
    rgba = small.convert("RGBA")
    rgba.putalpha(Image.new("L", small.size, 200))
    yield "variants/astronaut_alpha.png", _png(rgba)
    if include_bad:
        whole = _jpeg(small)
        yield "bad/truncated.jpg", whole[: len(whole) // 2]
        yield "bad/empty.jpg", b""
        yield "bad/not_an_image.png", b"this text file pretends to be a PNG\n"
        yield "bad/copy_of_astronaut.png", _png(astronaut)  # an exact duplicate


def _anime_faces(params: DemoDataParams) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(params.seed)
    hair_names, eye_names = sorted(HAIR_COLOURS), sorted(EYE_COLOURS)
    for index in range(params.anime_faces):
        hair, eyes = rng.choice(hair_names), rng.choice(eye_names)
        size = rng.choice((256, 320, 400, 512))
        face = draw_anime_face(size, HAIR_COLOURS[hair], EYE_COLOURS[eyes], tilt=rng.uniform(-8, 8))
        yield f"synthetic_{index:03d}_{hair}_hair_{eyes}_eyes.png", _png(face)


def _cat_photos(params: DemoDataParams) -> Iterator[tuple[str, bytes]]:
    from skimage import data as samples

    chelsea = Image.fromarray(samples.chelsea())
    yield "chelsea.png", _png(chelsea)
    rng = random.Random(params.seed + 1)
    width, height = chelsea.size
    for index in range(params.cat_crops):
        side = rng.randint(int(0.6 * height), height)
        x0, y0 = rng.randint(0, width - side), rng.randint(0, height - side)
        crop = chelsea.crop((x0, y0, x0 + side, y0 + side))
        if index % 2:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        yield f"chelsea_crop_{index:03d}.jpg", _jpeg(crop)


def _write_zip(path: Path, members: Iterator[tuple[str, bytes]]) -> int:
    count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, payload in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, payload)
            count += 1
    return count


def _write_folder(folder: Path, members: Iterator[tuple[str, bytes]], readme: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.txt").write_text(readme, encoding="utf-8")
    count = 0
    for name, payload in members:
        (folder / name).write_bytes(payload)
        count += 1
    return count


def write_demo_data(params: DemoDataParams, root: Path) -> dict[str, int]:
    """Build the demo inputs in a staging folder and publish them in one rename."""
    final = root / params.out
    with staged_dir(final) as staging:
        counts = {
            "human": _write_zip(staging / "human.zip", _human_members(params.include_bad_files)),
            "anime": _write_folder(
                staging / "anime",
                _anime_faces(params),
                "SYNTHETIC anime faces drawn by flows/demo_data.py (not real character art).\n",
            ),
            "cat": _write_folder(
                staging / "cat",
                _cat_photos(params),
                "chelsea.png is scikit-image's sample photograph; chelsea_crop_* are crops of it.\n",
            ),
        }
    log.info("demo_data: wrote %s to %s", ", ".join(f"{k} {v}" for k, v in counts.items()), params.out)
    return counts


def run_demo_data(loaded: LoadedParams) -> dict[str, int]:
    """`twingan demo-data`: the demo profile's inputs where params.demo_data.out says."""
    return write_demo_data(loaded.params.demo_data, loaded.root)
