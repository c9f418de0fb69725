"""The seed's failure case (a): a photo's background colour leaking into the translated hair colour.

The same faces are composited onto differently coloured backgrounds and translated; if the model reads the
hair colour from the whole crop, the output's hair follows the background. The person is cut out with OpenCV's
GrabCut (no model to download), started from a rectangle inside the crop: the eye-aligned crops put the
head in the middle and the background at the edges. The hair colour of each output is measured as the anime
tags stage measures it (AnimeFace's hair box, in CIELAB), and the metric is how far it moves, in CIELAB
Delta E (76), from the output of the photo on its own background; about 2.3 is a just noticeable difference,
and hair colours the palette names differently are 20 to 60 apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from preprocessing.tags.vocabulary import srgb_to_lab

# Backgrounds a photo is put on: far apart in colour, as a wall, a sky or a studio backdrop would be.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (240, 240, 240),
    "black": (15, 15, 15),
    "red": (200, 30, 30),
    "green": (40, 160, 60),
    "blue": (30, 70, 210),
}


def person_mask(rgb: np.ndarray, margin: float = 0.08, iterations: int = 4) -> np.ndarray:
    """(H, W) bool, True on the person: GrabCut from the crop less `margin` on each side (deterministic)."""
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    rect = (
        round(margin * width),
        round(margin * height),
        round((1 - 2 * margin) * width),
        round((1 - margin) * height),
    )  # fmt: skip  (the bottom: neck and shoulders reach the edge)
    cv2.setRNGSeed(0)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    cv2.grabCut(bgr, mask, rect, background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def composited(rgb: np.ndarray, mask: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    """The person of `rgb` on a plain `colour`, the edge softened over a pixel."""
    soft = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)[:, :, None]
    out = soft * rgb.astype(np.float32) + (1 - soft) * np.asarray(colour, np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def hair_shift(hair: Sequence[Sequence[Any] | None], names: Sequence[Sequence[str | None]]) -> dict[str, Any]:
    """`hair[i]`: the output hair colours (RGB, or None when AnimeFace measured none) of face i, first on its own
    background then on each of BACKGROUNDS; `names[i]` the palette's names of them. The median over faces of the
    largest Delta E from the own background's colour, and the share of faces whose hair name changes."""
    shifts, changed = [], []
    for colours, named in zip(hair, names, strict=True):
        own, others = colours[0], [c for c in colours[1:] if c is not None]
        if own is None or not others:
            continue
        lab = srgb_to_lab(np.asarray([own, *others], np.float64).reshape(-1, 1, 3)).reshape(-1, 3)
        shifts.append(float(np.max(np.linalg.norm(lab[1:] - lab[0], axis=1))))
        changed.append(any(n is not None and n != named[0] for n in named[1:]))
    if not shifts:
        return {"background_hair_faces": 0}
    return {
        "background_hair_faces": len(shifts),
        "background_hair_shift_delta_e": round(float(np.median(shifts)), 2),
        "background_hair_shift_p90": round(float(np.percentile(shifts, 90)), 2),
        "background_hair_name_changed": round(float(np.mean(changed)), 4),
    }


__all__ = ["BACKGROUNDS", "composited", "hair_shift", "person_mask"]
