"""Face alignment: a detected face becomes a square crop with the face at a fixed size and position.

Twin-GAN learns one shared encoder for both domains, so a human crop and an anime crop must frame the
face the same way (eye line, head size); otherwise the network spends capacity on framing instead of
style. Every crop is described by a 2x3 affine matrix M that maps *source* pixels to *crop* pixels, so
inference can paste a translated face back onto the photo (`invert`) and landmarks can be carried into
the crop (`transform_points`).

Conventions, shared by every function here:

- Points are (x, y) in pixels, x to the right, y **down**, with pixel centres at integer coordinates
  (OpenCV's and dlib's convention), so `warp` and `transform_points` agree to the sub-pixel.
- `Alignment.matrix` is source -> crop: ``crop = M[:, :2] @ source + M[:, 2]``; `invert` gives crop -> source.
- Roll is the angle of the eye line (image-left eye to image-right eye) in degrees, positive when the
  line turns **clockwise on screen** (the image-right eye is lower), in (-180, 180].
- Boxes are (x0, y0, x1, y1): left, top, right, bottom, the way the detectors report them.

Turned heads: under yaw the eye distance foreshortens and the eye midpoint slides towards the side the face
turns to, so a pure eye framing zooms in and pushes the face off the crop (a half face). `align_turned`
estimates the yaw from the landmarks and the box (`apparent_yaw`) and, past a threshold, blends the eye
framing into one sized by the box and centred on it, continuously; below the threshold it is the eye
framing itself, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from preprocessing.faces.detectors import Face

Point = Sequence[float] | np.ndarray

BORDERS = {
    "replicate": cv2.BORDER_REPLICATE,
    # numpy's "reflect": mirror about the edge pixel without repeating it (OpenCV's REFLECT_101).
    "reflect": cv2.BORDER_REFLECT_101,
    "constant": cv2.BORDER_CONSTANT,
}

# FFHQ / CelebA-HQ alignment (Karras et al., ffhq-dataset `recreate_aligned_images`): the half side of the
# crop square is max(|eye_to_eye| * 2.0, |eye_to_mouth| * 1.8).
FFHQ_EYE_FACTOR = 2.0
FFHQ_MOUTH_FACTOR = 1.8

# A frontal face's eye distance in box sides (the side is sqrt(width * height), which YuNet's tall boxes and
# dlib's square ones agree on best): median over the frontal faces of the real human set, 0.42 with
# dlib's CNN boxes and 0.40 with YuNet's. The eye distance over the box side shrinks as cos(yaw).
FRONTAL_EYE_SPAN = 0.41
# How far the nose moves along the eye line, in eye distances, modelled as NOSE_SWING * sin(yaw): fitted to
# dlib's and YuNet's points on the AFLW2000-3D faces with known yaw (18 to 66 degrees) of the real set.
NOSE_SWING = 0.6
# Reframing grows from none at the `turned_yaw` threshold to complete this many degrees later: no jump in
# the crop when a face's estimated yaw crosses the threshold.
TURNED_RAMP_DEGREES = 20.0
# A recorded `align` spec without `reframe_turned` was written before turned heads were reframed, so its
# crops were cut without it: inference on an old model file must cut them the same way.
RECORDED_REFRAME_DEFAULT = False
DEFAULT_TURNED_YAW = 35.0  # AlignParams.turned_yaw's default (core/params.py)


@dataclass(frozen=True)
class Alignment:
    """How one face maps into its crop; enough to warp the pixels and to map the result back."""

    matrix: np.ndarray  # 2x3 float64, source (x, y) -> crop (x, y)
    size: int
    roll_degrees: float  # head roll from the eye line (0 when no eyes were given)
    method: str  # "eyes", "box", "turned" (eyes blended into the box: a head turned past turned_yaw), "crop"


def _point(value: Point, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.shape != (2,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a finite (x, y) point, got {value!r}")
    return array


def _check_size(size: int) -> int:
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def _similarity(scale: float, angle: float, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The matrix that rotates by -angle (radians, image coordinates), scales by `scale` and sends
    `source` to `target`: undoing a roll of `angle` makes that line horizontal."""
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    linear = np.array([[cos, sin], [-sin, cos]])
    return np.hstack([linear, (target - linear @ source)[:, None]])


def roll_degrees(eye_left: Point, eye_right: Point) -> float:
    """Angle of the eye line from the image-left eye to the image-right eye, in degrees.

    Image coordinates have y down, so a positive angle means the line turns clockwise on screen (the
    image-right eye sits lower than the image-left one: the head leans towards the viewer's right).
    The alignment rotates the crop by the opposite angle so the eyes end up level.
    """
    left, right = _point(eye_left, "eye_left"), _point(eye_right, "eye_right")
    dx, dy = right - left
    return math.degrees(math.atan2(dy, dx))


def align_by_eyes(
    eye_left: Point,
    eye_right: Point,
    size: int,
    *,
    mouth: Point | None = None,
    eye_distance: float = 0.3,
    eye_height: float = 0.4,
) -> Alignment:
    """Similarity transform putting the eyes at a canonical place in a `size` x `size` crop.

    Without a mouth: the eye midpoint goes to (size/2, eye_height*size), the eye line becomes horizontal
    and the inter-ocular distance becomes eye_distance*size, exactly. Smaller eye_distance = more margin
    around the face; eye_height moves the face up and down.

    With a mouth point, the FFHQ / CelebA-HQ construction sets rotation and scale, because the eyes alone
    shrink under yaw (the eye distance foreshortens, a pure eye alignment would then blow the face up):

    - ``e2e = eye_right - eye_left``, ``e2m = mouth - (eye_left + eye_right) / 2``;
    - ``x = e2e - rot90(e2m)`` with ``rot90((u, v)) = (-v, u)`` (so for an upright face both terms point
      to the image right), normalised; this is the crop's x axis, and its y axis is x turned by +90 degrees;
    - ``L = max(|e2e| * 2.0, |e2m| * 1.8)`` is FFHQ's half side of the crop square.

    Our variant keeps FFHQ's axes and scale reference but our framing: the scale is
    ``2 * eye_distance * size / L`` crop pixels per source pixel, and the *eye midpoint* (not FFHQ's centre
    ``eye_mid + 0.1 * e2m``) goes to (size/2, eye_height*size). For a frontal face whose eye term wins
    (``|e2e| * 2.0 >= |e2m| * 1.8``, the usual case) the eyes therefore land exactly where the eye-only
    alignment puts them; for yawed faces the mouth term keeps the head size, and the eyes sit at the
    canonical height up to the small rotation difference between the eye line and FFHQ's x axis.
    (FFHQ's own framing of a typical face is about eye_distance 0.25, eye_height 0.475.)
    """
    size = _check_size(size)
    left, right = _point(eye_left, "eye_left"), _point(eye_right, "eye_right")
    if not (eye_distance > 0 and 0 < eye_height < 1):
        raise ValueError(f"eye_distance must be > 0 and eye_height in (0, 1), got {eye_distance}, {eye_height}")
    eye_to_eye = right - left
    span = float(np.hypot(*eye_to_eye))
    if span <= 0:
        raise ValueError("the two eye points coincide: no scale or direction to align to")
    middle = (left + right) / 2
    target = np.array([size / 2, eye_height * size])
    roll = roll_degrees(left, right)
    if mouth is None:
        matrix = _similarity(eye_distance * size / span, math.radians(roll), middle, target)
        return Alignment(matrix, size, roll, "eyes")
    eye_to_mouth = _point(mouth, "mouth") - middle
    axis = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    length = float(np.hypot(*axis))
    half_side = max(span * FFHQ_EYE_FACTOR, float(np.hypot(*eye_to_mouth)) * FFHQ_MOUTH_FACTOR)
    if length <= 0:  # mouth above the eyes by exactly their distance: no axis, use the eyes
        matrix = _similarity(eye_distance * size / span, math.radians(roll), middle, target)
        return Alignment(matrix, size, roll, "eyes")
    angle = math.atan2(axis[1], axis[0])
    matrix = _similarity(2 * eye_distance * size / half_side, angle, middle, target)
    return Alignment(matrix, size, roll, "eyes")


def _box_side(box: Sequence[float] | np.ndarray | None) -> tuple[np.ndarray, float] | None:
    """Centre and geometric-mean side of a box; None for a missing or degenerate one."""
    if box is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    area = (x1 - x0) * (y1 - y0)
    if not (x1 > x0 and y1 > y0 and math.isfinite(area)):
        return None
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), math.sqrt(area)


def apparent_yaw(
    eye_left: Point,
    eye_right: Point,
    *,
    box: Sequence[float] | np.ndarray | None = None,
    nose: Point | None = None,
) -> float:
    """How far a head looks turned from the camera, in degrees from 0 (frontal) to 90, either way.

    Two cues are two projections of one angle: the eye distance over the box side is about cos(yaw) times
    a frontal face's (`FRONTAL_EYE_SPAN`), the nose's offset from the eye midpoint along the eye line about
    sin(yaw) times `NOSE_SWING` eye distances. The yaw is the angle of that (cos, sin) pair, so each cue
    damps the other's noise: a detector's box sizes scatter by a fifth on frontal faces (alone, a sizeable
    yaw), and some profiles get their nose placed under the eyes. Without a box the eye distance counts
    as a frontal face's; without a nose the head counts as frontal.
    """
    left, right = _point(eye_left, "eye_left"), _point(eye_right, "eye_right")
    eye_to_eye = right - left
    span = float(np.hypot(*eye_to_eye))
    if span <= 0:
        raise ValueError("the two eye points coincide: no scale or direction to align to")
    if nose is None:
        return 0.0
    framed = _box_side(box)
    cosine = 1.0 if framed is None else span / (FRONTAL_EYE_SPAN * framed[1])
    sine = abs(float((_point(nose, "nose") - (left + right) / 2) @ eye_to_eye)) / span**2 / NOSE_SWING
    return math.degrees(math.atan2(sine, cosine))


def turned_weight(yaw: float, turned_yaw: float = DEFAULT_TURNED_YAW) -> float:
    """How much of the box framing a head of apparent yaw `yaw` gets: 0 up to `turned_yaw`, rising
    linearly to 1 over `TURNED_RAMP_DEGREES`."""
    return min(1.0, max(0.0, (yaw - turned_yaw) / TURNED_RAMP_DEGREES))


def align_turned(
    eye_left: Point,
    eye_right: Point,
    box: Sequence[float] | np.ndarray,
    size: int,
    *,
    mouth: Point | None = None,
    nose: Point | None = None,
    eye_distance: float = 0.3,
    eye_height: float = 0.4,
    turned_yaw: float = DEFAULT_TURNED_YAW,
) -> Alignment:
    """`align_by_eyes`, reframed for a head turned past `turned_yaw` degrees so the whole face stays in.

    The eye framing is kept for a head whose `apparent_yaw` is at most `turned_yaw`: the very same
    alignment, bit for bit. Past it, with weight w (`turned_weight`) the framing moves towards what a
    frontal face of that box would get, while rotation and the eye line's height in the crop stay the
    eye framing's (neither is disturbed by yaw):

    - scale: geometric blend from the eye framing's to the box's, ``eye_distance * size /
      (FRONTAL_EYE_SPAN * side)``, never zooming in beyond the eye framing (foreshortening only ever
      makes the eye scale too large);
    - centre: the point sent to the crop's eye-midpoint target slides along the eye line from the eye
      midpoint to the box centre's position on that line, by w, so the face box ends up centred
      left-right like a frontal face's.
    """
    if not 0 <= turned_yaw <= 90:
        raise ValueError(f"turned_yaw must be in [0, 90] degrees, got {turned_yaw!r}")
    eyes = align_by_eyes(eye_left, eye_right, size, mouth=mouth, eye_distance=eye_distance, eye_height=eye_height)
    framed = _box_side(box)
    if framed is None:
        return eyes
    weight = turned_weight(apparent_yaw(eye_left, eye_right, box=box, nose=nose), turned_yaw)
    if weight == 0:
        return eyes
    centre, side = framed
    scale_eyes = matrix_scale(eyes.matrix)
    axis = eyes.matrix[0, :2] / scale_eyes  # the crop's x axis in source coordinates (cos, sin)
    scale_box = min(scale_eyes, eye_distance * eyes.size / (FRONTAL_EYE_SPAN * side))
    scale = scale_eyes ** (1 - weight) * scale_box**weight
    middle = (_point(eye_left, "eye_left") + _point(eye_right, "eye_right")) / 2
    source = middle + weight * float((centre - middle) @ axis) * axis
    target = np.array([eyes.size / 2, eye_height * eyes.size])
    matrix = _similarity(scale, math.atan2(axis[1], axis[0]), source, target)
    return Alignment(matrix, eyes.size, eyes.roll_degrees, "turned")


def align_by_box(
    box: Sequence[float] | np.ndarray,
    size: int,
    *,
    margin: float = 1.5,
    eyes: Sequence[Point] | None = None,
    shift_up: float = 0.0,
) -> Alignment:
    """Square crop around a detector box, for anime and cat faces (no reliable landmarks).

    The square's side is margin * max(box width, box height) (MakeGirlsMoe used 1.5: their detector boxes
    are tight and exclude the hair). Its centre is the box centre moved up by shift_up * box height, so
    hair and ears are included. With both eyes given the crop is also rotated about the box centre so the
    eye line is level; the shift then goes along the face's own up direction, not the image's.
    """
    size = _check_size(size)
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    width, height = x1 - x0, y1 - y0
    side = margin * max(width, height)
    if not (math.isfinite(side) and side > 0):
        raise ValueError(f"box {tuple(box)!r} with margin {margin} gives no positive crop side")
    roll = 0.0
    if eyes is not None:
        eye_left, eye_right = eyes
        roll = roll_degrees(eye_left, eye_right)
    scale = size / side
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    # The box centre lands below the crop centre by the shift, so the crop centre is above the face.
    target = np.array([size / 2, size / 2 + shift_up * height * scale])
    matrix = _similarity(scale, math.radians(roll), centre, target)
    return Alignment(matrix, size, roll, "box")


def align_crop(width: int, height: int, size: int, crop_box: float = 1.0) -> Alignment:
    """A picture that is already a face crop (align method "crop"): its centred square of side
    `crop_box` times the shorter side, scaled to `size`. Pixel centres map to pixel centres, so a
    square picture at `size` with crop_box 1 is the identity."""
    size = _check_size(size)
    if not (width >= 1 and height >= 1):
        raise ValueError(f"picture of {width}x{height} has no pixels to crop")
    if not 0 < crop_box <= 1:
        raise ValueError(f"crop_box must be in (0, 1], got {crop_box}")
    x0, y0, x1, _ = crop_square(width, height, crop_box)
    scale = size / (x1 - x0)
    # The square's edges (x0 - 0.5 .. x1 - 0.5 in pixel-centre coordinates) go to -0.5 .. size - 0.5.
    matrix = np.array([[scale, 0.0, (0.5 - x0) * scale - 0.5], [0.0, scale, (0.5 - y0) * scale - 0.5]])
    return Alignment(matrix, size, 0.0, "crop")


def crop_square(width: int, height: int, crop_box: float = 1.0) -> tuple[float, float, float, float]:
    """The (x0, y0, x1, y1) box in source pixels that `align_crop` takes: centred, crop_box times the
    shorter side."""
    side = crop_box * min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    return (x0, y0, x0 + side, y0 + side)


def align_face(face: Face, spec: Mapping[str, Any], size: int | None = None) -> Alignment:
    """The alignment a domain's `align` params give one detected face, at `size` (default: spec["size"]).

    The one place that reads an `align` spec, so the faces stage and inference crop a face identically:
    method "eyes" aligns by the eyes (and mouth, when the detector gives one), reframing turned heads
    (`align_turned`) when `reframe_turned` is on, and falls back to the box when the detector found no
    eyes; method "box" crops around the box, levelled by the eyes when known (unless `level` is off).
    Every framing parameter is a fraction of the crop, so another `size` gives the same framing, scaled. A
    spec recorded before `reframe_turned` existed (an old model file) reads as off: that is how its crops
    were cut. Method
    "crop" (pictures that are already crops) has no framing of a detected face of its own: a photo's face
    is framed as the faces stage measured the crops to be (preprocessing/faces/framing.py).
    """
    if spec["method"] == "crop":
        raise ValueError(
            "align method 'crop' frames whole pictures (align_crop), not a detected face; frame a "
            "face with what the faces stage measured of the crops (framing.photo_align)"
        )
    size = spec["size"] if size is None else size
    eyes = (face.landmarks.get("eye_left"), face.landmarks.get("eye_right"))
    if spec["method"] == "eyes" and all(eyes):
        if spec.get("reframe_turned", RECORDED_REFRAME_DEFAULT):
            return align_turned(eyes[0], eyes[1], face.box, size, mouth=face.landmarks.get("mouth"),
                                nose=face.landmarks.get("nose"), eye_distance=spec["eye_distance"],
                                eye_height=spec["eye_height"],
                                turned_yaw=spec.get("turned_yaw", DEFAULT_TURNED_YAW))  # fmt: skip
        return align_by_eyes(eyes[0], eyes[1], size, mouth=face.landmarks.get("mouth"),
                             eye_distance=spec["eye_distance"], eye_height=spec["eye_height"])  # fmt: skip
    level = all(eyes) and spec.get("level", True)
    return align_by_box(face.box, size, margin=spec["margin"], shift_up=spec["shift_up"],
                        eyes=eyes if level else None)  # fmt: skip


def resize_matrix(matrix: np.ndarray, size: int, resolution: int) -> np.ndarray:
    """A source -> crop matrix for `size` crops, made to map into the same crop resized to `resolution`.

    Resizing with pixel centres at integers (area averaging, or half-pixel-centre interpolation) maps
    x to (x + 0.5) * resolution / size - 0.5: a translated face at the model's resolution pastes back
    through the inverse of this matrix.
    """
    scale = resolution / size
    resize = np.array([[scale, 0.0, (scale - 1) / 2], [0.0, scale, (scale - 1) / 2]])
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    return np.hstack([resize[:, :2] @ matrix[:, :2], (resize[:, :2] @ matrix[:, 2] + resize[:, 2])[:, None]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """Crop -> source matrix (2x3) of a source -> crop matrix: to paste a generated face back."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64).reshape(2, 3))


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to an Nx2 array of (x, y) points."""
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return array @ matrix[:, :2].T + matrix[:, 2]


def canonical_eyes(size: int, eye_distance: float, eye_height: float) -> np.ndarray:
    """Where eye alignment puts the eyes (image-left first) in a `size` crop."""
    return np.array([[(0.5 - eye_distance / 2) * size, eye_height * size],
                     [(0.5 + eye_distance / 2) * size, eye_height * size]])  # fmt: skip


def matrix_scale(matrix: np.ndarray) -> float:
    """Crop pixels per source pixel (geometric mean over the two axes)."""
    return math.sqrt(abs(float(np.linalg.det(matrix[:, :2]))))


def _window(image_size: int, low: float, high: float, pad: int, crop_axis: bool) -> tuple[int, int]:
    """Source range [start, stop) that one axis of the crop reads, clipped to the image."""
    if not crop_axis:
        return 0, image_size
    start = min(max(math.floor(low) - pad, 0), image_size - 1)
    stop = max(min(math.ceil(high) + pad + 1, image_size), start + 1)
    return start, stop


def warp(image: np.ndarray, alignment: Alignment, *, border: str = "replicate") -> np.ndarray:
    """Cut the aligned crop (size x size x 3 uint8) out of an HxWx3 uint8 image.

    Antialiased: bilinear sampling alone aliases badly when a big photo's face shrinks to 64 px (it reads
    one source pixel in four, or fewer). When the transform shrinks by more than 2x, the source is first
    reduced by the integer part k of the shrink factor with INTER_AREA (a box filter, exact averaging) and
    the matrix composed with that reduction; warpAffine then samples with INTER_LINEAR (INTER_CUBIC when
    the crop enlarges the face). Only the window of the source the crop reads (plus a few pixels) is
    reduced, so a small face in a 4000 px photo stays cheap.

    Faces cut by the image border are padded (`border`: "replicate", "reflect" or "constant" black),
    never an error. Deterministic: the same input gives the same bytes.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {sorted(BORDERS)}, got {border!r}")
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ValueError(f"image must be HxWx3, got shape {pixels.shape}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {pixels.dtype}")
    size = alignment.size
    matrix = np.asarray(alignment.matrix, dtype=np.float64).reshape(2, 3)
    height, width = pixels.shape[:2]
    scale = matrix_scale(matrix)
    if scale <= 0 or not math.isfinite(scale):
        raise ValueError("alignment matrix is singular")
    shrink = 1.0 / scale
    factor = int(shrink) if shrink > 2.0 else 1

    # The source window the crop reads: the crop's corners mapped back, padded for the filters.
    corners = transform_points(invert(matrix), np.array([[-1, -1], [size, -1], [-1, size], [size, size]], float))
    pad = 2 * factor + 2
    # Reflection can read anywhere along an axis the crop leaves, so only cut axes it stays inside.
    inside_x = border != "reflect" or (corners[:, 0].min() >= 0 and corners[:, 0].max() <= width - 1)
    inside_y = border != "reflect" or (corners[:, 1].min() >= 0 and corners[:, 1].max() <= height - 1)
    left, right = _window(width, corners[:, 0].min(), corners[:, 0].max(), pad, inside_x)
    top, bottom = _window(height, corners[:, 1].min(), corners[:, 1].max(), pad, inside_y)
    region = pixels[top:bottom, left:right]

    # `to_region` maps the pixels we sample from back to source pixels (centres at integers).
    if factor > 1:
        region_h, region_w = region.shape[:2]
        reduced_w, reduced_h = max(1, math.ceil(region_w / factor)), max(1, math.ceil(region_h / factor))
        region = cv2.resize(region, (reduced_w, reduced_h), interpolation=cv2.INTER_AREA)
        step_x, step_y = region_w / reduced_w, region_h / reduced_h
        to_source = np.array([[step_x, 0.0, left + step_x / 2 - 0.5], [0.0, step_y, top + step_y / 2 - 0.5]])
    else:
        to_source = np.array([[1.0, 0.0, left], [0.0, 1.0, top]])
    composed = matrix[:, :2] @ to_source[:, :2]
    offset = matrix[:, :2] @ to_source[:, 2] + matrix[:, 2]
    final = np.hstack([composed, offset[:, None]])
    interpolation = cv2.INTER_CUBIC if matrix_scale(final) > 1.0 + 1e-9 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(
        np.ascontiguousarray(region),
        final,
        (size, size),
        flags=interpolation,
        borderMode=BORDERS[border],
        borderValue=(0, 0, 0),
    )
    return crop


__all__ = [
    "Alignment",
    "align_by_box",
    "align_by_eyes",
    "align_crop",
    "align_face",
    "align_turned",
    "apparent_yaw",
    "canonical_eyes",
    "crop_square",
    "invert",
    "matrix_scale",
    "resize_matrix",
    "roll_degrees",
    "transform_points",
    "turned_weight",
    "warp",
]
