"""Image files, good and bad, made by the tests themselves."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A smooth, photo-like RGB image (gradients plus noise), distinct per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 255 / max(1, width - 1), y * 255 / max(1, height - 1), np.full_like(x, (seed * 37) % 256)], axis=-1
    )
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(seed: int = 0, width: int = 64, height: int = 48, **options: object) -> bytes:
    return encode(photo(width, height, seed), "JPEG", quality=90, **options)


def png(seed: int = 0, width: int = 64, height: int = 48) -> bytes:
    return encode(photo(width, height, seed), "PNG")


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def exif_rotated_jpeg(seed: int = 0) -> bytes:
    """Stored 48 wide x 64 high with orientation 6: upright it is 64 x 48."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo(64, 48, seed).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif.tobytes())


def cmyk_jpeg(seed: int = 0) -> bytes:
    return encode(photo(64, 48, seed).convert("CMYK"), "JPEG", quality=95)


def png16(values: np.ndarray) -> bytes:
    return encode(Image.fromarray(values.astype(np.uint16)), "PNG")


def palette_png_with_transparency() -> bytes:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 4, 8))
    return encode(image, "PNG", transparency=0)  # index 0 (red) is transparent


def rgba_png() -> bytes:
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.paste((0, 128, 0, 255), (4, 0, 8, 8))
    return encode(image, "PNG")


def grayscale_png(seed: int = 0) -> bytes:
    return encode(photo(32, 32, seed).convert("L"), "PNG")


def huge_png(width: int, height: int) -> bytes:
    """A bilevel image of many pixels in few bytes: what a decompression bomb looks like."""
    return encode(Image.new("1", (width, height)), "PNG")


def ppm(seed: int = 0) -> bytes:
    return encode(photo(16, 16, seed), "PPM")


def zip_with_bad_crc(name: str, payload: bytes) -> bytes:
    """A stored (uncompressed) zip whose member data was damaged after writing."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(name, payload)
    data = bytearray(buffer.getvalue())
    start = data.index(payload[:16])
    data[start + 100] ^= 0xFF
    assert zlib.crc32(bytes(data[start : start + len(payload)])) != zlib.crc32(payload)
    return bytes(data)


def oversize_png(path: Path, side: int = 12000) -> Path:
    """A side x side PNG of one grey: 144,000,000 pixels at the default side, a few hundred KB on disk
    (a decompression bomb in miniature), 432 MB once decoded to RGB."""
    Image.new("L", (side, side), 128).save(path, optimize=True)
    return path
