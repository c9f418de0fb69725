"""Decode stored images into upright 8-bit RGB: the one place that knows about odd pixel formats.

Ingest stores bytes exactly as received (so ids are checkable SHA-256s of the source files) and records
mode and EXIF orientation; every later stage reads pixels through `load_rgb`, so CMYK JPEGs, 16-bit
PNGs, palette and alpha images, grayscale and rotated phone photos all arrive the same way.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

EXIF_ORIENTATION = 0x0112
# Transparent pixels are composited onto white: character art (Getchu, sprites) sits on white.
ALPHA_BACKGROUND = (255, 255, 255)


def exif_orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(EXIF_ORIENTATION, 1))
    except (ValueError, TypeError, OSError, SyntaxError):
        return 1
    return value if 1 <= value <= 8 else 1


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """Orientations 5-8 swap the axes (they include a 90 degree turn)."""
    return (height, width) if orientation >= 5 else (width, height)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = ALPHA_BACKGROUND) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without clipping 16-bit data or dropping alpha to black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode != "F":
            # 16-bit data in a 32-bit container: scale by the range the format can hold.
            top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
            array = array / top * 255.0
        image = Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "La"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return canvas
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


# Photos from outside the pipeline (uploads, `twingan translate`, `neighbors`) get the bound that ingest
# puts on stored images by default (ingest.max_pixels; tests/test_web_demo.py keeps the two equal).
DEFAULT_MAX_PIXELS = 50_000_000


class TooManyPixels(ValueError):
    """An image whose header declares more pixels than a bound, refused before its pixels are decoded.

    `size` and `max_pixels` are set when the bound was the caller's; both are None when PIL's own
    decompression-bomb check refused the file first (Image.MAX_IMAGE_PIXELS, at open).
    """

    def __init__(self, message: str, size: tuple[int, int] | None = None, max_pixels: int | None = None) -> None:
        super().__init__(message)
        self.size, self.max_pixels = size, max_pixels


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Raise TooManyPixels when width x height exceeds max_pixels. Takes the header's size (Image.open
    reads only the header), so a small file that declares a huge canvas is refused before it costs
    memory: a PNG of a few hundred KB can declare 12000x12000 pixels, 432 MB once decoded to RGB."""
    if width * height > max_pixels:
        raise TooManyPixels(
            f"{width}x{height} = {width * height:,} pixels, more than {max_pixels:,}", (width, height), max_pixels
        )


def load_rgb(source: Path | bytes, max_pixels: int | None = None) -> Image.Image:
    """Upright 8-bit RGB pixels of an image (EXIF orientation applied).

    Stored images passed ingest's bound already; for a file from outside, give `max_pixels`: the count
    is checked from the header before anything is decoded, and PIL's own bomb check becomes the same
    TooManyPixels."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:  # bounded here, from the same header: PIL's warning would only repeat it
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(handle)
        with image:
            if max_pixels is not None:
                check_pixels(*image.size, max_pixels)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
    except Image.DecompressionBombError as error:
        raise TooManyPixels(str(error)) from None
