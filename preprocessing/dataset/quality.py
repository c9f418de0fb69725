"""Measures of a face crop that the dataset's filters and deduplication use, and the filters.

Measured on the crop as the faces stage stored it, after bringing it to a fixed size (`MEASURE_SIZE`), so
that one threshold means the same for 128 and 256 px crops.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.params import DatasetParams
from preprocessing.tags.vocabulary import srgb_to_lab

MEASURE_SIZE = 128


@dataclass(frozen=True)
class CropQuality:
    phash: int  # 64-bit DCT perceptual hash (imagehash.phash), as an unsigned integer
    sharpness: float  # variance of the Laplacian of the grey crop at MEASURE_SIZE: low is blurry
    brightness: float  # mean luma (0-255)
    colours: tuple[float, ...]  # CIELAB of a 4x4 thumbnail, 48 numbers: pHash sees only grey levels


def colour_distance(first: CropQuality, second: CropQuality) -> float:
    """Mean CIELAB distance between the two 4x4 thumbnails: a palette swap of the same drawing (another
    character) is far, a re-encode or a resized copy is near."""
    a = np.asarray(first.colours).reshape(-1, 3)
    b = np.asarray(second.colours).reshape(-1, 3)
    return float(np.linalg.norm(a - b, axis=1).mean())


def decode_crop(data: bytes) -> np.ndarray:
    """RGB uint8 pixels of an encoded crop."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def measure(rgb: np.ndarray) -> CropQuality:
    import cv2
    import imagehash
    from PIL import Image

    size = (MEASURE_SIZE, MEASURE_SIZE)
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if rgb.shape[:2] != size else rgb
    grey = cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    phash = int(str(imagehash.phash(Image.fromarray(resized))), 16)
    thumbnail = cv2.resize(resized, (4, 4), interpolation=cv2.INTER_AREA)
    colours = tuple(round(float(v), 2) for v in srgb_to_lab(thumbnail).ravel())
    return CropQuality(phash=phash, sharpness=sharpness, brightness=float(grey.mean()), colours=colours)


def face_side_in_source(transform: Sequence[float], crop_size: int) -> float:
    """How many source pixels the crop's side covers: the 2x3 matrix maps source to crop pixels, so its
    scale (square root of the determinant) is crop pixels per source pixel."""
    a, b, _, d, e, _ = transform
    scale = math.sqrt(abs(a * e - b * d))
    return crop_size / scale if scale > 0 else 0.0


def box_aspect(box: Sequence[float]) -> float:
    """Long side over short side of the detector's box (1 for a square)."""
    width, height = box[2] - box[0], box[3] - box[1]
    if min(width, height) <= 0:
        return math.inf
    return max(width, height) / min(width, height)


def quality_reject(face: Mapping[str, Any], quality: CropQuality, settings: DatasetParams) -> dict[str, Any] | None:
    """The first filter a face fails, as a rejects.parquet row; None when it passes them all. `face` is a
    faces.parquet row with its `source_size` and `aspect` (face_side_in_source, box_aspect) added."""
    checks = (
        ("too_small", face["source_size"], settings.min_source_size, face["source_size"] < settings.min_source_size),
        ("aspect", face["aspect"], settings.max_aspect, face["aspect"] > settings.max_aspect),
        ("blurry", quality.sharpness, settings.min_sharpness, quality.sharpness < settings.min_sharpness),
        ("too_dark", quality.brightness, settings.min_brightness, quality.brightness < settings.min_brightness),
        ("too_bright", quality.brightness, settings.max_brightness, quality.brightness > settings.max_brightness),
    )
    for reason, value, threshold, failed in checks:
        if failed:
            return {"face_id": face["face_id"], "reason": reason, "value": min(float(value), 3.0e38),
                    "threshold": float(threshold)}  # fmt: skip
    return None
