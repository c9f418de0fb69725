"""How a domain of pre-cut face crops frames a face, measured from the faces its detector finds in them.

A dataset that comes as crops (align method "crop") fixes the framing by how it was cut, not by our align
params. To translate a new photo, its face must be cut the same way, so the faces stage measures the
crops' framing: each detected face, carried into crop coordinates, gives the eye framing (eye distance and
height) or box framing (margin and shift) under which `align_face` would cut exactly that crop, and the
median over the faces becomes the domain's `framing`, a complete `align` spec recorded beside the crops
and copied into the model file. Each face's own distance from the median (`framing_errors`) says how
closely that framing reproduces the crops: the agreement between the training crops and a new photo's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from preprocessing.faces.align import align_face, canonical_eyes, matrix_scale, transform_points


def _crop_face(row: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The row's box corners and named points in crop pixels."""
    matrix = np.asarray(row["transform"], dtype=np.float64).reshape(2, 3)
    x0, y0, x1, y1 = row["box"]
    box = transform_points(matrix, np.array([[x0, y0], [x1, y1]], dtype=np.float64))
    points = {p["name"]: transform_points(matrix, np.array([[p["x"], p["y"]]]))[0] for p in row["landmarks"]}
    return box, points


class _CropFace:
    """A detected face in crop coordinates, in the shape `align_face` reads (box, landmarks)."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        corners, points = _crop_face(row)
        self.box = (*corners[0], *corners[1])
        self.landmarks = {name: (float(p[0]), float(p[1])) for name, p in points.items()}

    @property
    def has_eyes(self) -> bool:
        return "eye_left" in self.landmarks and "eye_right" in self.landmarks


def _detected(rows: Iterable[Mapping[str, Any]]) -> list[_CropFace]:
    return [_CropFace(row) for row in rows if row["detector"] != "none"]


def measure_framing(rows: Sequence[Mapping[str, Any]], align: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `align` spec under which the detected faces of `rows` (FACES rows of one crop domain) are cut as
    their crops are: the eye framing (when most faces have both eyes) or the box framing, levelled by the
    eyes or not, whichever puts a new photo's crop closer to the training crops (the smallest median
    `offset`), each the medians over the faces. None when the detector found no face (or the domain has
    none): a new photo is then taken whole."""
    faces = _detected(rows)
    if not faces:
        return None
    size = int(align["size"])
    base: dict[str, Any] = {"size": size, "eye_distance": 0.3, "eye_height": 0.4, "margin": 1.5, "shift_up": 0.0,
                            "level": True, "reframe_turned": bool(align["reframe_turned"]),
                            "turned_yaw": float(align["turned_yaw"])}  # fmt: skip
    candidates = [c for c in (_eye_framing(faces, base), _box_framing(faces, base, level=True),
                              _box_framing(faces, base, level=False)) if c is not None]  # fmt: skip
    if not candidates:
        return None
    detected = [row for row in rows if row["detector"] != "none"]
    scored = []
    for candidate in candidates:
        offsets = [e["offset"] for e in framing_errors(detected, candidate)]
        scored.append((float(np.median(offsets)), len(scored), candidate))
    return min(scored, key=lambda item: item[:2])[2]


def _eye_framing(faces: Sequence[_CropFace], base: Mapping[str, Any]) -> dict[str, Any] | None:
    with_eyes = [face for face in faces if face.has_eyes]
    if 2 * len(with_eyes) < len(faces):
        return None
    size = base["size"]
    probe = {**base, "method": "eyes", "eye_distance": 0.5, "eye_height": 0.5, "reframe_turned": False}
    distances, heights = [], []
    for face in with_eyes:
        scale = matrix_scale(align_face(face, probe).matrix)  # type: ignore[arg-type]
        distances.append(0.5 / scale)  # the eye distance at which this face's crop keeps its scale
        heights.append((face.landmarks["eye_left"][1] + face.landmarks["eye_right"][1]) / 2 / size)
    return {**base, "method": "eyes", "eye_distance": _median(distances, 0.05, 0.95),
            "eye_height": _median(heights, 0.05, 0.95), "measured_faces": len(with_eyes)}  # fmt: skip


def _box_framing(faces: Sequence[_CropFace], base: Mapping[str, Any], *, level: bool) -> dict[str, Any] | None:
    """Levelled by the eyes (as CelebA's and UTKFace's crops are) or not (as the Anime-Face-Dataset's are)."""
    size = base["size"]
    margins, shifts = [], []
    for face in faces:
        x0, y0, x1, y1 = face.box
        width, height = x1 - x0, y1 - y0
        if width > 0 and height > 0:
            margins.append(size / max(width, height))
            shifts.append(((y0 + y1) / 2 - (size - 1) / 2) / height)
    if not margins:
        return None
    return {**base, "method": "box", "margin": _median(margins, 0.25, 8.0), "shift_up": _median(shifts, -1.0, 1.0),
            "level": level, "measured_faces": len(margins)}  # fmt: skip


def _median(values: Sequence[float], low: float, high: float) -> float:
    return round(float(np.clip(np.median(values), low, high)), 4)


def framing_errors(rows: Sequence[Mapping[str, Any]], framing: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Per row: `eye_error`, how far (fraction of the crop side) the worse eye lies from where the framing
    puts the eyes (eyes framing only), and `offset`, how far the farthest corner of the crop a new photo of
    this face would get lies from this crop's corner; both None for a row without a detected face."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if framing is None or row["detector"] == "none":
            out.append({"eye_error": None, "offset": None})
            continue
        face = _CropFace(row)
        size = int(framing["size"])
        matrix = align_face(face, framing).matrix  # type: ignore[arg-type]
        corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], dtype=np.float64)
        offset = float(np.max(np.hypot(*(transform_points(matrix, corners) - corners).T)) / size)
        eye_error = None
        if framing["method"] == "eyes" and face.has_eyes:  # this crop's eyes against the framing's places
            wanted = canonical_eyes(size, framing["eye_distance"], framing["eye_height"])
            own = np.array([face.landmarks["eye_left"], face.landmarks["eye_right"]])
            eye_error = float(np.max(np.hypot(*(own - wanted).T)) / size)
        out.append({"eye_error": eye_error, "offset": offset})
    return out


def framing_summary(framing: Mapping[str, Any] | None, errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The faces stage's metrics of a crop domain's framing: what was measured and how close it is."""
    if framing is None:
        return {"method": None, "measured_faces": 0}
    offsets = np.array([e["offset"] for e in errors if e["offset"] is not None], dtype=np.float64)
    eyes = np.array([e["eye_error"] for e in errors if e["eye_error"] is not None], dtype=np.float64)
    keys = ("eye_distance", "eye_height") if framing["method"] == "eyes" else ("margin", "shift_up", "level")
    summary: dict[str, Any] = {"method": framing["method"], "measured_faces": framing["measured_faces"],
                               **{key: framing[key] for key in keys}}  # fmt: skip
    if offsets.size:
        summary["offset_median"] = round(float(np.median(offsets)), 4)
        summary["offset_p90"] = round(float(np.percentile(offsets, 90)), 4)
        summary["offset_within_5pct"] = round(float(np.mean(offsets <= 0.05)), 4)
    if eyes.size:
        summary["eye_error_median"] = round(float(np.median(eyes)), 4)
        summary["eyes_within_5pct"] = round(float(np.mean(eyes <= 0.05)), 4)
    return summary


def photo_align(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The `align` spec that frames a face detected in a new photo for a domain recorded as `spec` (the
    model file's faces entry): the domain's own align params, or for a crop domain the framing measured of
    its crops; None for a crop domain without one (no detector): a new picture is then itself the crop."""
    align = spec["align"]
    if align["method"] != "crop":
        return align
    return spec.get("framing")


__all__ = ["framing_errors", "framing_summary", "measure_framing", "photo_align"]
