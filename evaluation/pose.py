"""Head roll and yaw, of a photographed face (dlib's 68 landmarks) and of a drawn one (AnimeFace's points).

The two estimators give the same kind of numbers, in image coordinates (x right, y down), so an input
photo and its translation can be compared:

- roll: the angle of the eye line, from the eye with the smaller x to the other, in degrees; positive when
  the eye on the image's right is lower (the head tilts clockwise on screen). Both detectors give eye
  centres, so roll is measured the same way on both sides.
- yaw: a signed, unitless proxy, positive when the face is turned towards the image's right (its nose or
  mouth lies right of the middle of the face). Points are first rotated by -roll about the eye midpoint,
  so a tilted head does not read as a turned one.
  * photo (dlib 68-point, iBUG 300-W numbering): (2 n - l - r) / (r - l), with n the nose tip's x (point
    30), l and r the mean x of the face contour's sides (points 0-3 and 13-16). 0 is frontal, +-1 puts the
    nose on a contour; profiles go beyond (the hidden contour is guessed). It has the opposite sign of
    AFLW2000-3D's annotated yaw (positive when the face turns to the image's left) and is close to linear
    in it up to about 40 degrees, on the photos and on the faces stage's eye-aligned crops of them;
    tests/test_evaluate.py checks this on annotated real photos where they are present.
  * drawing (AnimeFace): the mouth's offset from the eye midpoint, in eye distances (the centre of
    AnimeFace's mouth box). AnimeFace gives no face contour; a drawn face turned to one side draws its
    mouth and nose towards that side. There are no annotated drawings here to calibrate it against.
  The two yaw scales differ: compare their signs and their correlation, not their values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from preprocessing.faces.detectors import (
    FACE_MODELS_INSTALL,
    FACE_MODELS_PACKAGE,
    PREDICTOR_FILES,
    Face,
    ModelFileMissing,
    model_dir,
)

NOSE_TIP = 30
LEFT_CONTOUR = slice(0, 4)  # the jaw line's points on the image's left, from the ear down
RIGHT_CONTOUR = slice(13, 17)
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)


@dataclass(frozen=True)
class Pose:
    """Roll in degrees and a yaw proxy (see the module docstring for signs and scales)."""

    roll: float
    yaw: float


def roll_degrees(eye_left: np.ndarray, eye_right: np.ndarray) -> float:
    """Angle of the eye line; the eyes are sorted by x first, so naming does not matter."""
    a, b = sorted((np.asarray(eye_left, float), np.asarray(eye_right, float)), key=lambda p: float(p[0]))
    return math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))


def derolled(points: np.ndarray, eye_left: np.ndarray, eye_right: np.ndarray) -> np.ndarray:
    """`points` (N, 2) rotated by -roll about the eye midpoint: the eye line becomes horizontal."""
    angle = -math.radians(roll_degrees(eye_left, eye_right))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = (np.asarray(eye_left, float) + np.asarray(eye_right, float)) / 2
    return (np.asarray(points, float) - centre) @ rotation.T


def pose_from_68(points: np.ndarray) -> Pose:
    """Roll and yaw proxy from dlib's 68 landmarks (pixel coordinates, (68, 2))."""
    points = np.asarray(points, float)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks, got shape {points.shape}")
    eye_left, eye_right = points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)
    upright = derolled(points, eye_left, eye_right)
    left, right = upright[LEFT_CONTOUR, 0].mean(), upright[RIGHT_CONTOUR, 0].mean()
    width = right - left
    if width <= 0:
        raise ValueError("the face contour's sides are crossed (a failed landmark fit)")
    return Pose(roll=roll_degrees(eye_left, eye_right), yaw=float((2 * upright[NOSE_TIP, 0] - left - right) / width))


def pose_of_drawing(face: Face) -> Pose | None:
    """Roll and yaw proxy from AnimeFace's eyes and mouth; None when a point is missing or the eyes coincide."""
    marks = face.landmarks
    if not all(key in marks for key in ("eye_left", "eye_right", "mouth")):
        return None
    eye_left, eye_right = np.asarray(marks["eye_left"], float), np.asarray(marks["eye_right"], float)
    distance = float(np.linalg.norm(eye_right - eye_left))
    if distance <= 0:
        return None
    mouth = derolled(np.asarray([marks["mouth"]], float), eye_left, eye_right)[0]
    return Pose(roll=roll_degrees(eye_left, eye_right), yaw=float(mouth[0] / distance))


class PhotoPoseEstimator:
    """dlib's HOG face detector and 68-point shape predictor (from face-recognition-models, located by
    path), on the largest face of an RGB image."""

    def __init__(self, upsample: int = 1) -> None:
        import dlib

        path = model_dir() / PREDICTOR_FILES["68"]
        if not path.is_file():
            raise ModelFileMissing(path, FACE_MODELS_PACKAGE, FACE_MODELS_INSTALL)
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """(68, 2) points of the largest face, or None when the detector finds none."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        rects, _scores, _kinds = self._detector.run(rgb, self.upsample, 0.0)
        if not len(rects):
            return None
        rect: Any = max(rects, key=lambda r: (r.width() * r.height(), -r.left(), -r.top()))
        shape = self._predictor(rgb, rect)
        return np.array([(part.x, part.y) for part in shape.parts()], dtype=np.float64)

    def __call__(self, rgb: np.ndarray) -> Pose | None:
        points = self.landmarks(rgb)
        if points is None:
            return None
        try:
            return pose_from_68(points)
        except ValueError:
            return None
