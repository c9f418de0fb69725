"""Pasting translated faces back onto the photo they came from.

Every aligned crop carries the 2x3 matrix that maps photo pixels to crop pixels (preprocessing/faces/
align.py), so a translated portrait goes back through the same matrix used the other way
(`cv2.warpAffine` with WARP_INVERSE_MAP samples the crop at each photo pixel's crop position). A square
crop pasted with hard edges leaves a visible seam where the generated background meets the photo, so the
portrait is blended through a feathered mask: a rounded square that fades to zero over the outer
`feather` fraction of the crop. Pixels where the mask is zero (everything outside the crop's footprint)
keep their exact photo values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

import cv2
import numpy as np

DEFAULT_FEATHER = 0.1  # fade over the outer 10% of the crop
_SQUARENESS = 4.0  # superellipse exponent: 2 is an ellipse, larger is closer to the square crop


@lru_cache(maxsize=8)
def feather_mask(size: int, feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """(size, size) float32 in [0, 1]: 1 in the middle, a smooth fall to 0 over the outer `feather` of the
    crop on every side, 0 on the outermost pixels and beyond. A superellipse rather than a circle, so the crop's
    corners (hair, shoulders) are kept rather than cut round."""
    if not 0 < feather <= 0.5:
        raise ValueError(f"feather must be in (0, 0.5], got {feather}")
    centres = (np.arange(size, dtype=np.float64) + 0.5) / size * 2 - 1  # pixel centres in (-1, 1)
    u, v = np.meshgrid(np.abs(centres), np.abs(centres))
    radius = (u**_SQUARENESS + v**_SQUARENESS) ** (1 / _SQUARENESS)
    edge = 1 - 1 / size  # the outermost pixel centres: zero there, so the crop's edge never shows
    ramp = np.clip((edge - radius) / (2 * feather), 0, 1)
    mask = (ramp * ramp * (3 - 2 * ramp)).astype(np.float32)  # smoothstep: no kink where the fade starts
    mask.flags.writeable = False  # cached and shared between calls
    return mask


def _footprint(matrix: np.ndarray, size: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The photo window [x0, x1) x [y0, y1) that a crop of `size` covers, clipped; None when outside."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[-1, -1], [size, -1], [-1, size], [size, size]], dtype=np.float64)
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = max(math.floor(points[:, 0].min()), 0), max(math.floor(points[:, 1].min()), 0)
    x1, y1 = min(math.ceil(points[:, 0].max()) + 1, width), min(math.ceil(points[:, 1].max()) + 1, height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def paste_face(
    photo: np.ndarray, portrait: np.ndarray, matrix: np.ndarray, *, feather: float = DEFAULT_FEATHER
) -> np.ndarray:
    """`photo` (HxWx3 uint8) with `portrait` (SxSx3 uint8) pasted where `matrix` (photo -> portrait
    pixels, 2x3) says it came from, as a new array."""
    out = np.array(photo, dtype=np.uint8, copy=True)
    _paste_into(out, portrait, matrix, feather)
    return out


def _paste_into(out: np.ndarray, portrait: np.ndarray, matrix: np.ndarray, feather: float) -> None:
    """In place; only the crop's footprint is warped, so a small face in a large photo costs little."""
    height, width = out.shape[:2]
    size = portrait.shape[0]
    if portrait.shape != (size, size, 3) or portrait.dtype != np.uint8:
        raise ValueError(f"portrait must be a square SxSx3 uint8 array, got {portrait.shape} {portrait.dtype}")
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    window = _footprint(matrix, size, width, height)
    if window is None:
        return
    x0, y0, x1, y1 = window
    # Window pixel (x, y) is photo pixel (x + x0, y + y0): fold the offset into the photo -> crop matrix.
    local = np.hstack([matrix[:, :2], (matrix[:, :2] @ np.array([x0, y0], float) + matrix[:, 2])[:, None]])
    flags = cv2.WARP_INVERSE_MAP
    shape = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(portrait.astype(np.float32), local, shape, flags=flags | cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    mask = cv2.warpAffine(feather_mask(size, feather), local, shape, flags=flags | cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    mask = np.clip(mask, 0, 1)[:, :, None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region + mask * (np.clip(face, 0, 255) - region)
    out[y0:y1, x0:x1] = np.where(mask > 0, np.rint(blended), region).astype(np.uint8)


def paste_faces(
    photo: np.ndarray,
    faces: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    feather: float = DEFAULT_FEATHER,
) -> np.ndarray:
    """Paste (portrait, matrix) pairs in the order given, into a copy of `photo`: where two crops overlap,
    the later one wins."""
    out = np.array(photo, dtype=np.uint8, copy=True)
    for portrait, matrix in faces:
        _paste_into(out, portrait, matrix, feather)
    return out


__all__ = ["DEFAULT_FEATHER", "feather_mask", "paste_face", "paste_faces"]
