"""Per-image work of the faces stage: detect, select, align, crop, encode.

Runs in the workers (processes by default: dlib and AnimeFace hold the GIL). The detector is built once
per worker process and reused for every image, since loading dlib's models takes longer than detecting
a face. A bad image never raises: it becomes a reject with a reason, so one file cannot stop a run.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from preprocessing.faces.align import (
    Alignment,
    align_crop,
    align_face,
    canonical_eyes,
    crop_square,
    matrix_scale,
    transform_points,
    warp,
)
from preprocessing.faces.detectors import Detector, Face, make_detector, model_dir
from preprocessing.images import load_rgb


@dataclass(frozen=True)
class FacesJob:
    """What every chunk of one faces run shares (picklable: it goes to the worker processes)."""

    domain: str
    raw_dir: str  # data/raw/<domain>
    detector: str | None  # None: a crop domain whose pictures are taken as they are
    detector_options: dict[str, Any]
    align: dict[str, Any]  # AlignParams as a dict
    select: dict[str, Any]  # SelectParams as a dict
    crop_format: str
    jpeg_quality: int


@dataclass(frozen=True)
class ImageRef:
    image_id: str
    path: str  # relative to raw_dir


@dataclass
class ImageResult:
    image_id: str
    faces: list[dict[str, Any]] = field(default_factory=list)  # FACES rows without shard columns
    crops: list[bytes] = field(default_factory=list)  # encoded, one per face row
    rejects: list[dict[str, Any]] = field(default_factory=list)
    detected: int = 0


_workers: dict[tuple[str, str], Detector] = {}
_eye_checker: Any = None


def detector_for(job: FacesJob) -> Detector:
    assert job.detector is not None, "a job without a detector has nothing to detect with"
    key = (job.detector, json.dumps(job.detector_options, sort_keys=True))
    if key not in _workers:
        _workers[key] = make_detector(job.detector, job.detector_options)
    return _workers[key]


def _eye_error(crop: np.ndarray, face: Face, alignment: Alignment, job: FacesJob) -> float | None:
    """Re-measure the eyes on the crop with dlib's 5-point predictor: how far, as a fraction of the crop
    size, the worse eye is from where alignment put it. Only for eye-aligned dlib domains. The predictor
    gets the detection box carried into the crop (the box it was trained with), so its own sensitivity
    to the box does not count as alignment error. A turned head reframed by its box (method "turned") has
    its eyes off their canonical places on purpose, so it is not measured."""
    global _eye_checker
    if alignment.method != "eyes" or not (job.detector or "").startswith("dlib"):
        return None
    import dlib

    if _eye_checker is None:
        _eye_checker = dlib.shape_predictor(str(model_dir() / "shape_predictor_5_face_landmarks.dat"))
    x0, y0, x1, y1 = face.box
    ((cx, cy),) = transform_points(alignment.matrix, np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]))
    scale = matrix_scale(alignment.matrix)
    half = max(x1 - x0, y1 - y0) * scale / 2
    rect = dlib.rectangle(round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    shape = _eye_checker(np.ascontiguousarray(crop), rect)
    points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(4)], dtype=np.float64)
    eyes = sorted([points[0:2].mean(axis=0), points[2:4].mean(axis=0)], key=lambda p: p[0])
    wanted = canonical_eyes(crop.shape[0], job.align["eye_distance"], job.align["eye_height"])
    return float(max(np.hypot(*(e - w)) for e, w in zip(eyes, wanted, strict=True)) / crop.shape[0])


def encode(crop: np.ndarray, crop_format: str, quality: int) -> bytes:
    """Deterministic bytes: no timestamps or other metadata, fixed options."""
    buffer = io.BytesIO()
    image = Image.fromarray(crop)
    if crop_format == "png":
        image.save(buffer, "PNG", compress_level=6)
    elif crop_format == "jpeg":
        image.save(buffer, "JPEG", quality=quality, subsampling=0)
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def _reject(result: ImageResult, job: FacesJob, reason: str, detail: str, index: int | None = None) -> None:
    result.rejects.append({"image_id": result.image_id, "domain": job.domain, "face_index": index,
                           "reason": reason, "detail": detail})  # fmt: skip


def _side(face: Face) -> float:
    x0, y0, x1, y1 = face.box
    return min(x1 - x0, y1 - y0)


def process_image(ref: ImageRef, job: FacesJob) -> ImageResult:
    result = ImageResult(ref.image_id)
    try:
        rgb = np.asarray(load_rgb(f"{job.raw_dir}/{ref.path}"))
    except Exception as error:
        _reject(result, job, "unreadable", f"{type(error).__name__}: {error}")
        return result
    if job.align["method"] == "crop":
        return _process_crop(rgb, result, job)
    detector = detector_for(job)
    faces = detector.detect(rgb)
    result.detected = len(faces)
    if not faces:
        _reject(result, job, "no_face", f"{detector.name} found no face in {rgb.shape[1]}x{rgb.shape[0]}")
        return result
    select = job.select
    for index, face in enumerate(faces):
        if select["faces"] == "largest" and index > 0:
            _reject(result, job, "extra_face", "faces: largest keeps one face per image", index)
            continue
        if _side(face) < select["min_face_size"]:
            _reject(result, job, "too_small", f"{_side(face):.0f} px < min_face_size {select['min_face_size']}", index)
            continue
        if face.score < select["min_score"]:
            _reject(result, job, "low_score", f"score {face.score:.3f} < min_score {select['min_score']}", index)
            continue
        alignment = align_face(face, job.align)
        if abs(alignment.roll_degrees) > select["max_roll_degrees"]:
            _reject(result, job, "roll", f"roll {alignment.roll_degrees:.1f} > {select['max_roll_degrees']}", index)
            continue
        crop = warp(rgb, alignment)
        data = encode(crop, job.crop_format, job.jpeg_quality)
        result.crops.append(data)
        result.faces.append({
            "face_id": f"{ref.image_id}-{index}", "image_id": ref.image_id, "domain": job.domain,
            "face_index": index, "box": [float(v) for v in face.box], "score": float(face.score),
            "landmarks": [{"name": k, "x": float(x), "y": float(y)} for k, (x, y) in sorted(face.landmarks.items())],
            "transform": [float(v) for v in np.asarray(alignment.matrix, dtype=np.float64).reshape(6)],
            "roll_degrees": float(alignment.roll_degrees), "align_method": alignment.method,
            "detector": detector.name, "detector_version": detector.version, "crop_size": alignment.size,
            "crop_format": job.crop_format, "crop_sha256": hashlib.sha256(data).hexdigest(),
            "eye_error": _eye_error(crop, face, alignment, job),
            "attributes": json.dumps(face.attributes, sort_keys=True, default=_jsonable),
        })  # fmt: skip
    return result


def _inside(face: Face, square: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return square[0] <= cx <= square[2] and square[1] <= cy <= square[3]


def _process_crop(rgb: np.ndarray, result: ImageResult, job: FacesJob) -> ImageResult:
    """A picture that is already a face crop: its centred square becomes the crop. The detector, when the
    domain has one, checks it (the largest face centred in the square) and records where the face sits, which
    the stage turns into the domain's framing (preprocessing/faces/framing.py)."""
    height, width = rgb.shape[:2]
    square = crop_square(width, height, job.align["crop_box"])
    side = square[2] - square[0]
    select = job.select
    if side < select["min_face_size"]:
        _reject(result, job, "too_small", f"crop {side:.0f} px < min_face_size {select['min_face_size']}")
        return result
    face: Face | None = None
    name, version = "none", ""
    if job.detector is not None:
        detector = detector_for(job)
        name, version = detector.name, detector.version
        found = detector.detect(rgb)
        result.detected = len(found)
        inside = [f for f in found if _inside(f, square) and f.score >= select["min_score"]]
        face = inside[0] if inside else None
        if face is None and select["require_face"]:
            reason = "low_score" if any(_inside(f, square) for f in found) else "no_face"
            detail = (f"{name} found no face of score >= {select['min_score']} in the crop's square"
                      if reason == "low_score" else f"{name} found no face in the {width}x{height} crop")  # fmt: skip
            _reject(result, job, reason, detail)
            return result
    alignment = align_crop(width, height, job.align["size"], job.align["crop_box"])
    crop = warp(rgb, alignment)
    data = encode(crop, job.crop_format, job.jpeg_quality)
    result.crops.append(data)
    result.faces.append({
        "face_id": f"{result.image_id}-0", "image_id": result.image_id, "domain": job.domain, "face_index": 0,
        "box": [float(v) for v in (face.box if face else square)], "score": float(face.score) if face else 0.0,
        "landmarks": [{"name": k, "x": float(x), "y": float(y)} for k, (x, y) in sorted(face.landmarks.items())]
        if face else [],
        "transform": [float(v) for v in np.asarray(alignment.matrix, dtype=np.float64).reshape(6)],
        "roll_degrees": 0.0, "align_method": "crop", "detector": name if face else "none",
        "detector_version": version if face else "", "crop_size": alignment.size, "crop_format": job.crop_format,
        "crop_sha256": hashlib.sha256(data).hexdigest(), "eye_error": None,  # filled in by the stage (framing)
        "attributes": json.dumps(face.attributes if face else {}, sort_keys=True, default=_jsonable),
    })  # fmt: skip
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(np.asarray(value).tolist())
    return str(value)


def process_chunk(refs: Sequence[ImageRef], job: FacesJob) -> list[ImageResult]:
    """The unit of parallel work: images in, results out, in the same order."""
    return [process_image(ref, job) for ref in refs]


__all__ = ["FacesJob", "ImageRef", "ImageResult", "canonical_eyes", "process_chunk", "transform_points"]
