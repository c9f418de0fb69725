"""Detectors made of detectors, as configuration: `fallback` tries detectors in order until one finds a
face; `within` runs a whole-object detector (a cat, a person) and then a face detector inside each of its
boxes. Both take the same `{name, options}` specs as a domain's `detector:`, nested to any depth, so a
domain's detection chain is a params.yaml edit, never code for that domain:

    detector:
      name: fallback
      options:
        detectors:
          - {name: within, options: {object: {name: yolox}, face: {name: dlib_svm}}}
          - {name: dlib_svm}

Scores stay in the units of the detector that found the face (`attributes.found_by` names it), so put score
thresholds in each step's own options; the domain's `select.min_score` applies to all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from preprocessing.faces.detectors import (
    Detector,
    Face,
    _as_rgb,
    _largest_first,
    _number_above,
    _too_small,
    make_detector,
    register,
)


def _spec(option: str, value: Any) -> Detector:
    """A `{name, options}` mapping (as in params.yaml) to a built detector; errors name the option."""
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ValueError(f"option {option!r} must be a mapping with a detector 'name' (and 'options'), got {value!r}")
    unknown = sorted(set(value) - {"name", "options"})
    if unknown:
        raise ValueError(f"option {option!r}: unknown key(s) {', '.join(map(repr, unknown))} (expected name, options)")
    options = value.get("options") or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"option {option!r}: 'options' must be a mapping, got {options!r}")
    try:
        return make_detector(value["name"], options)
    except ValueError as error:
        raise ValueError(f"option {option!r}: {error}") from None


def _found_by(face: Face, detector: Detector, **extra: object) -> Face:
    """The face with `found_by`: the name of the innermost detector that found it (kept through nesting)."""
    attributes = {**face.attributes, **extra, "found_by": face.attributes.get("found_by", detector.name)}
    return Face(face.box, face.score, face.landmarks, attributes)


@register("fallback")
class FallbackDetector:
    """The first of `detectors` that finds a face in an image gives that image's faces."""

    name: str

    def __init__(self, detectors: list[Mapping[str, Any]] | None = None) -> None:
        if not isinstance(detectors, list | tuple) or len(detectors) < 2:
            raise ValueError(f"option 'detectors' must list at least two detectors, got {detectors!r}")
        self.detectors = [_spec(f"detectors[{n}]", spec) for n, spec in enumerate(detectors)]
        self.version = "fallback(" + ", ".join(d.version for d in self.detectors) + ")"

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _as_rgb(rgb)
        for detector in self.detectors:
            faces = detector.detect(rgb)
            if faces:
                return [_found_by(face, detector) for face in faces]
        return []


@register("within")
class WithinDetector:
    """Faces found by `face` inside the boxes of `object` (each box grown by `padding` of its size on every
    side and clipped to the image), in the image's coordinates. A face found in two overlapping object
    boxes is kept once (the higher score). With `object_as_face`, an object box in which the face detector
    finds nothing becomes a face itself (for object detectors whose boxes are faces, or to count them)."""

    name: str

    def __init__(
        self,
        object: Mapping[str, Any] | None = None,  # shadows the builtin: the params.yaml key
        face: Mapping[str, Any] | None = None,
        padding: float = 0.1,
        object_as_face: bool = False,
        same_face_iou: float = 0.5,
    ) -> None:
        self.object = _spec("object", object)
        self.face = _spec("face", face)
        if isinstance(padding, bool) or not isinstance(padding, int | float) or not 0 <= padding <= 2:
            raise ValueError(f"option 'padding' must be a number from 0 to 2, got {padding!r}")
        self.padding = float(padding)
        if not isinstance(object_as_face, bool):
            raise ValueError(f"option 'object_as_face' must be true or false, got {object_as_face!r}")
        self.object_as_face = object_as_face
        self.same_face_iou = _number_above("same_face_iou", same_face_iou, 0.0)
        self.version = (
            f"within({self.object.version} > {self.face.version}, pad{self.padding:g}"
            f"{', object_as_face' if object_as_face else ''}, iou{self.same_face_iou:g})"
        )

    def _region(self, box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = box
        pad_x, pad_y = (x1 - x0) * self.padding, (y1 - y0) * self.padding
        left, top = max(0, int(np.floor(x0 - pad_x))), max(0, int(np.floor(y0 - pad_y)))
        right, bottom = min(width, int(np.ceil(x1 + pad_x))), min(height, int(np.ceil(y1 + pad_y)))
        return left, top, right, bottom

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        height, width = rgb.shape[:2]
        found: list[Face] = []
        for index, thing in enumerate(self.object.detect(rgb)):
            left, top, right, bottom = self._region(thing.box, width, height)
            inside = self.face.detect(rgb[top:bottom, left:right]) if right > left and bottom > top else []
            for face in inside:
                found.append(_shifted(face, left, top, self.face, object_index=index, object_box=list(thing.box)))
            if not inside and self.object_as_face:
                found.append(_found_by(thing, self.object, object_index=index))
        return _largest_first(_unique(found, self.same_face_iou))


def _shifted(face: Face, dx: int, dy: int, detector: Detector, **extra: object) -> Face:
    x0, y0, x1, y1 = face.box
    landmarks = {name: (x + dx, y + dy) for name, (x, y) in face.landmarks.items()}
    moved = Face((x0 + dx, y0 + dy, x1 + dx, y1 + dy), face.score, landmarks, face.attributes)
    return _found_by(moved, detector, **extra)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _unique(faces: list[Face], threshold: float) -> list[Face]:
    """Faces seen through two overlapping object boxes, once: the higher score wins (ties: the first)."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(_iou(face.box, other.box) < threshold for other in kept):
            kept.append(face)
    return kept
