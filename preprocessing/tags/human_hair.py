"""Hair colour of a human face, from the photo around its eyes.

The naive estimate (the median colour of a box above the eyes) is what fails on photos: a bright or
coloured backdrop shows through thin or short hair and beside the head, and a high forehead or a bald
head is skin. So the photo is first warped into a fixed frame around the eyes (wider than the training
crop, which cuts the top of the head), then:

1. skin is sampled from the cheeks and nose, and from the forehead unless a fringe covers it;
2. GrabCut separates the head from the backdrop, seeded with the face as sure foreground, the head's
   likely extent as probable foreground, and the frame's top corners and far sides as sure background
   (only where they lie inside the photo);
3. hair candidates are the crown band's pixels (above the forehead) that GrabCut keeps, plus those
   close to the skull whatever GrabCut says (it loses dark hair against a dark backdrop), less the
   skin-coloured ones;
4. the hair colour is the median of the lit half of the candidates (people name hair by its lit
   strands), named with reference shades for photographed hair.

Checked against hand labels of 97 real photos (tests/test_human_hair_real.py, figures in the tags issue
note and benchmarks/README.md).

When too few pixels qualify (bald, a hat, a head cut by the photo's border), no colour is returned, with
the reason: a missing tag is better than a wrong one for conditioning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocessing.tags.vocabulary import srgb_to_lab

FRAME = 128  # side of the eye-aligned frame, pixels: enough for a colour, and GrabCut is quadratic-ish
EYE_DISTANCE = 20.0  # pixels between the eye centres in the frame
EYE_CENTRE = (64.0, 70.0)  # midpoint of the eyes in the frame (x, y)
FOREHEAD_AS_SKIN = 20.0  # CIELAB distance from the cheeks under which the forehead counts as skin
MIN_HAIR_FRACTION = 0.03  # of the crown band, below which there is "no hair" to measure


@dataclass(frozen=True)
class HairEstimate:
    hair_rgb: tuple[int, int, int] | None
    skin_rgb: tuple[int, int, int] | None
    hair_fraction: float  # share of the crown band judged to be hair
    detail: str  # why there is no colour, or "" when there is one


def eye_frame_matrix(eye_left: tuple[float, float], eye_right: tuple[float, float]) -> np.ndarray:
    """The 2x3 similarity that puts the eyes (image left, image right) on the frame's eye line."""
    (x0, y0), (x1, y1) = eye_left, eye_right
    dx, dy = x1 - x0, y1 - y0
    distance = float(np.hypot(dx, dy))
    if distance < 1e-6:
        raise ValueError("the two eyes are at the same point")
    scale = EYE_DISTANCE / distance
    cos, sin = dx / distance * scale, dy / distance * scale
    rotation = np.array([[cos, sin], [-sin, cos]])
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    offset = np.array(EYE_CENTRE) - rotation @ centre
    return np.hstack([rotation, offset[:, None]])


def _ellipse(shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((xs - centre[0]) / axes[0]) ** 2 + ((ys - centre[1]) / axes[1]) ** 2 <= 1.0


def _frame_regions() -> dict[str, np.ndarray]:
    """Masks in the frame, in units of the eye distance `d` from the eyes' midpoint."""
    d, (cx, cy) = EYE_DISTANCE, EYE_CENTRE
    shape = (FRAME, FRAME)
    ys, xs = np.mgrid[0:FRAME, 0:FRAME]
    skin = (np.abs(xs - cx) <= 0.55 * d) & (ys >= cy + 0.3 * d) & (ys <= cy + 1.0 * d)
    face = _ellipse(shape, (cx, cy + 0.35 * d), (0.75 * d, 1.05 * d))
    head = _ellipse(shape, (cx, cy - 0.2 * d), (1.35 * d, 1.7 * d))
    # The crown band: above the brows, inside the head's outline (the top of a head is about 1.6 eye
    # distances above the eyes; hair volume adds to that).
    crown = head & (ys <= cy - 1.0 * d)
    inner = _ellipse(shape, (cx, cy - 0.2 * d), (1.0 * d, 1.45 * d)) & (ys <= cy - 1.0 * d)
    forehead = (np.abs(xs - cx) <= 0.35 * d) & (ys >= cy - 0.8 * d) & (ys <= cy - 0.45 * d)
    outside = ~_ellipse(shape, (cx, cy - 0.2 * d), (2.3 * d, 2.4 * d))
    background = outside & (ys <= cy - 0.4 * d)
    return {
        "skin": skin,
        "forehead": forehead,
        "face": face,
        "head": head,
        "crown": crown,
        "inner": inner,
        "background": background,
    }


_REGIONS = _frame_regions()


# Reference shades for photographed hair: lit hair in a photo is darker and less saturated than drawn
# hair, so the shared palette's drawn shades would name most blondes "brown". Names are the shared
# vocabulary's; the human_hair tagger's `hair_colors` option replaces these.
PHOTO_HAIR_COLORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "black": ((20, 18, 18), (45, 38, 36)),
    "brown": ((70, 50, 38), (95, 70, 50), (130, 95, 70)),
    "blonde": ((160, 125, 85), (200, 165, 120), (230, 205, 170)),
    "grey": ((125, 120, 118), (175, 168, 165)),
    "white": ((225, 222, 220),),
    "red": ((110, 45, 20), (140, 70, 40)),
}


def _median_rgb(pixels: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.median(pixels, axis=0).round())  # type: ignore[return-value]


def _skin_like(lab: np.ndarray, skin_lab: np.ndarray) -> np.ndarray:
    """Pixels within the spread of the sampled skin (a lit forehead is lighter than the cheeks, so the
    tolerance in lightness is wider than in hue)."""
    low, high = np.percentile(skin_lab, [5, 95], axis=0)
    margin = np.array([6.0, 4.0, 4.0])
    return np.all((lab >= low - margin) & (lab <= high + margin), axis=1)


def _lit_colour(lab: np.ndarray, rgb: np.ndarray) -> tuple[int, int, int]:
    """The colour of the lit part of the hair: the median of the pixels between the 50th and 90th
    percentile of lightness. People name hair by its lit strands; the shadowed half of any hair is
    near black, and the brightest tenth is specular highlight."""
    low, high = np.percentile(lab[:, 0], [50, 90])
    keep = (lab[:, 0] >= low) & (lab[:, 0] <= high)
    return _median_rgb(rgb[keep] if keep.any() else rgb)


def estimate_hair(
    image: np.ndarray, eye_left: tuple[float, float], eye_right: tuple[float, float], *, grabcut_iterations: int = 4
) -> HairEstimate:
    """Hair (and skin) colour of the face whose eye centres are given in `image` (upright RGB uint8)."""
    import cv2

    matrix = eye_frame_matrix(eye_left, eye_right)
    frame = cv2.warpAffine(image, matrix, (FRAME, FRAME), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(
        np.full(image.shape[:2], 255, np.uint8), matrix, (FRAME, FRAME), flags=cv2.INTER_NEAREST, borderValue=0
    ).astype(bool)
    regions = _REGIONS
    skin_pixels = frame[regions["skin"] & inside]
    if len(skin_pixels) < 10:
        return HairEstimate(None, None, 0.0, "face too close to the photo's border to sample skin")
    skin_rgb = _median_rgb(skin_pixels)
    skin_lab = srgb_to_lab(skin_pixels)
    forehead_lab = srgb_to_lab(frame[regions["forehead"] & inside])
    # A lit forehead is skin of another shade: learn it too, unless a fringe covers it.
    if len(forehead_lab) and np.linalg.norm(np.median(forehead_lab, 0) - np.median(skin_lab, 0)) < FOREHEAD_AS_SKIN:
        skin_lab = np.concatenate([skin_lab, forehead_lab])

    mask = np.full((FRAME, FRAME), cv2.GC_PR_BGD, np.uint8)
    mask[regions["head"]] = cv2.GC_PR_FGD
    mask[regions["face"]] = cv2.GC_FGD
    mask[regions["background"] & inside] = cv2.GC_BGD
    mask[~inside] = cv2.GC_BGD  # replicated border pixels are not the subject
    if (mask == cv2.GC_BGD).sum() < 20:  # GrabCut needs both models; a head filling the frame has no backdrop
        mask[:4, :] = cv2.GC_BGD
    background_model, foreground_model = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(frame, mask, None, background_model, foreground_model, grabcut_iterations, cv2.GC_INIT_WITH_MASK)
    foreground = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)

    crown = regions["crown"] & inside
    crown_size = int(crown.sum())
    if crown_size < 50:
        return HairEstimate(None, skin_rgb, 0.0, "the top of the head is outside the photo")
    candidates = frame[crown & (foreground | regions["inner"])]
    lab = srgb_to_lab(candidates)
    not_skin = ~_skin_like(lab, skin_lab)
    hair, hair_lab = candidates[not_skin], lab[not_skin]
    fraction = len(hair) / crown_size
    if fraction < MIN_HAIR_FRACTION:
        return HairEstimate(None, skin_rgb, round(fraction, 4), "no hair found above the forehead (bald, a hat?)")
    return HairEstimate(_lit_colour(hair_lab, hair), skin_rgb, round(fraction, 4), "")
