"""`yunet`: YuNet (libfacedetection.train), a small anchor-free CNN for human faces, frontal to profile, run by
OpenCV's `cv2.FaceDetectorYN` from a pinned ONNX file (`twingan fetch yunet`).

Each face comes with a box and five points. The network gives them as eye, eye, nose tip, mouth corner,
mouth corner. Here the eyes and the mouth corners are named by image x (eye_left is the one with the
smaller x, as with every detector), and `mouth` is added: the middle of the two corners. With a mouth
point the eye alignment keeps the head size when the head is turned (align.py), and turned heads are
what YuNet finds and dlib's HOG does not.

The graph takes BGR pixels, 0-255, unscaled. OpenCV runs the fixed 640 x 640 graphs at any input size
(it pads to a multiple of 32). Images are shrunk so their long side is at most `max_side` before
detection, because close-up faces score lower at larger sizes (../shared/models/yunet/README.md); boxes
and points are mapped back to the source image.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from preprocessing.faces.detectors import (
    Face,
    _as_rgb,
    _eyes,
    _integer,
    _largest_first,
    _point,
    _too_small,
    register,
)
from preprocessing.faces.weights import MODELS, WeightsDamaged, weights_file

WEIGHTS_MODEL = "yunet"
WEIGHTS_FILES = {"n": "yunet_n_640_640.onnx", "s": "yunet_s_640_640.onnx"}
# OpenCV's own default; more boxes than this before NMS never happen on a photo.
TOP_K = 5000
# OpenCV 4.14's FaceDetectorYN reports made-up faces (boxes of 1e18 px, even inf and nan) when a side
# of its input pads to a single 32 px cell, on a blank image too: smaller images are padded to this with
# black at the bottom and right, which is where OpenCV pads anyway, so positions stay as they are.
MIN_INPUT = 64
# Columns of a cv2.FaceDetectorYN row: x, y, w, h, then (x, y) of the five points, then the score.
_POINTS = slice(4, 14)
_SCORE = 14


def _fraction(name: str, value: Any, *, low: float, high: float) -> float:
    """A number in [low, high] (scores and IoUs): out of range it would keep all boxes or none, silently."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not low <= value <= high:
        raise ValueError(f"option {name!r} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _shrink(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """The image with its long side at most `max_side` (0: as it is), and the x and y factors back."""
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if not max_side or longest <= max_side:
        return rgb, 1.0, 1.0
    import cv2

    factor = longest / max_side
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return small, width / size[0], height / size[1]


def _five_points(points: np.ndarray) -> dict[str, tuple[float, float]]:
    """Named points from the network's eye, eye, nose, mouth corner, mouth corner (5 x 2)."""
    named = _eyes(points[0], points[1])
    named["nose"] = _point(*points[2])
    mouth_left, mouth_right = sorted((points[3], points[4]), key=lambda point: float(point[0]))
    named["mouth_left"] = _point(*mouth_left)
    named["mouth_right"] = _point(*mouth_right)
    named["mouth"] = _point(*((points[3] + points[4]) / 2))
    return named


def _max_side(value: Any) -> int:
    """Option `max_side` of the network detectors: 0 (never shrink) or a long side of at least 32 px."""
    side = _integer("max_side", value, 0)
    if side and side < 32:
        raise ValueError(f"option 'max_side' must be 0 (never shrink) or at least 32, got {value!r}")
    return side


def _weights_path(value: Any, what: str) -> None:
    """Option `weights`: a path, empty for the pinned file (checked before anything is read)."""
    if not isinstance(value, str):
        raise ValueError(f"option 'weights' must be a path (empty: the pinned {what} file), got {value!r}")


@register("yunet")
class YuNetDetector:
    """YuNet through `cv2.FaceDetectorYN`.

    Options: `model` ("n" or "s", two trainings; n is the default: on the shared photos both kept the
    same faces, and n put fewer boxes on things that are no human face, such as a painted landscape, cats
    and drawings, for a few milliseconds more per image), `score_threshold` (keep faces scoring at least
    this: sqrt(class x objectness), 0-1), `nms_threshold` (IoU above which the lower-scoring box is
    dropped), `max_side` (detect on a copy whose long side is at most this, 0: never) and `weights` (an
    ONNX file of your own instead of the pinned one).

    OpenCV's thread count is left alone: 1 to 4 threads gave the same faces, bit for bit. One
    FaceDetectorYN holds its input size, so `detect` takes a lock: the faces stage's thread executor
    shares one detector between threads.
    """

    name: str

    def __init__(
        self,
        model: str = "n",
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = 640,
        weights: str = "",
    ) -> None:
        import cv2

        if model not in WEIGHTS_FILES:
            raise ValueError(f"option 'model' must be one of {sorted(WEIGHTS_FILES)}, got {model!r}")
        self.model = model
        self.score_threshold = _fraction("score_threshold", score_threshold, low=0.0, high=1.0)
        self.nms_threshold = _fraction("nms_threshold", nms_threshold, low=0.0, high=1.0)
        self.max_side = _max_side(max_side)
        _weights_path(weights, "YuNet")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise RuntimeError(f"OpenCV {cv2.__version__} has no FaceDetectorYN (needs OpenCV >= 4.5.4)")
        self.weights = weights
        resolved = weights_file(WEIGHTS_MODEL, WEIGHTS_FILES[model], weights)
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(resolved.path), "", (320, 320), self.score_threshold, self.nms_threshold, TOP_K
            )
        except cv2.error as error:
            message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise WeightsDamaged(
                f"detector weights {resolved.path}: OpenCV cannot read it as YuNet ({message})"
            ) from None
        self._lock = threading.Lock()
        self.version = (
            f"opencv-{cv2.__version__}/yunet-{model}/{resolved.tag}/st{self.score_threshold:g}"
            f"/nms{self.nms_threshold:g}/ms{self.max_side}"
        )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        small, fx, fy = _shrink(rgb, self.max_side)
        bgr = small[:, :, ::-1]
        short = (max(0, MIN_INPUT - bgr.shape[0]), max(0, MIN_INPUT - bgr.shape[1]))
        if any(short):
            bgr = np.pad(bgr, ((0, short[0]), (0, short[1]), (0, 0)))
        bgr = np.ascontiguousarray(bgr)
        with self._lock:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        faces = []
        scale = np.array([fx, fy])
        for row in np.asarray(rows, dtype=np.float64).reshape(-1, 15):
            if not np.isfinite(row).all():
                continue
            x, y, w, h = row[:4]
            points = row[_POINTS].reshape(5, 2) * scale
            faces.append(
                Face(
                    box=(float(x * fx), float(y * fy), float((x + w) * fx), float((y + h) * fy)),
                    score=float(row[_SCORE]),
                    landmarks=_five_points(points),
                )
            )
        return _largest_first(faces)


assert set(WEIGHTS_FILES.values()) <= {file.name for file in MODELS[WEIGHTS_MODEL].files}, "YuNet files are pinned"
