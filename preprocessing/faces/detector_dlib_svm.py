"""`dlib_svm`: a dlib HOG + linear SVM detector read from a pinned `.svm` file (`dlib.fhog_object_detector`),
with, for cat faces, pycatfd's 8-point landmark predictor.

Models (files pinned in preprocessing/faces/weights.py, fetched with `twingan fetch <model>`):
- `pycatfd` (default): cat faces, ears to chin (not the muzzle-only box of OpenCV's cat cascade); detection
  window 87 x 93 px, so faces below ~90 px are found only with upsampling (~45 px at upsample 1). Its
  `predictor.dat` places 8 points, in the order of pycatfd's `lib/CatFaceLandmark.py` (0 chin, 1 left eye,
  2 left of left ear, 3 left of right ear, 4 nose, 5 right eye, 6 right of left ear, 7 right of right ear),
  where "left" is the image's left (checked by drawing them on the shared cat photos). The ear points sit
  at the outer and inner base of each ear. Named here: eye_left, eye_right, nose, chin, ear_left_outer,
  ear_left_inner, ear_right_inner, ear_right_outer. The eye points are coarse (often a little below or
  beside the pupils, the eye line a few degrees off, now and then 10 or more): enough to level a box crop,
  too rough to set the scale from the eye distance. No mouth point:
  the nose is not a mouth, and the FFHQ-style eyes-and-mouth alignment must not take it for one.
- `afd_anime_hog`: anime / manga faces (AFD), a tight box, detection window 80 x 80 px. No predictor.

Score: the SVM margin (dlib's own default keeps > 0). Defaults, from the shared real photos
(../shared/models READMEs): threshold -0.3 with upsample 1 found 81% of the cat faces (long side 640) and 91%
of the anime faces (long side 1024), every largest box a face. Inside a YOLOX cat box (the `within`
detector) -0.6 finds more cat faces than it adds false ones; on a whole picture -0.3 also finds "cat faces"
in photos of people, so a fallback to the whole picture wants a stricter threshold (0).

dlib computes HOG on grey levels: colour order does not matter. Rectangles are inclusive (`_dlib_box`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from preprocessing.faces.detectors import (
    Face,
    _as_rgb,
    _dlib_box,
    _DlibDetector,
    _integer,
    _largest_first,
    _point,
    _too_small,
    register,
)
from preprocessing.faces.weights import MODELS, WeightsDamaged, weights_file

DETECTOR_FILES = {"pycatfd": "detector.svm", "afd_anime_hog": "detector_face.svm"}
PREDICTOR_FILES = {"pycatfd": "predictor.dat"}
# Long side of the copy the detector runs on, per model: the settings measured in ../shared/models.
DEFAULT_MAX_SIDE = {"pycatfd": 640, "afd_anime_hog": 1024}
CAT_POINTS = 8


def _cat_landmarks(shape: Any) -> dict[str, tuple[float, float]]:
    """pycatfd's 8 parts, named (order in the module docstring). Where the predicted eyes come out the other
    way round (an upside-down cat), the whole shape is read mirrored, so the names stay by image x like
    every other detector's and the ears stay on the side of their eye."""
    points = [_point(part.x, part.y) for part in shape.parts()]
    if len(points) != CAT_POINTS:
        raise ValueError(f"unexpected cat-face shape with {len(points)} points (expected {CAT_POINTS})")
    chin, eye_1, ear_1_out, ear_2_in, nose, eye_2, ear_1_in, ear_2_out = points
    if eye_1[0] > eye_2[0]:
        eye_1, eye_2 = eye_2, eye_1
        ear_1_out, ear_2_out = ear_2_out, ear_1_out
        ear_1_in, ear_2_in = ear_2_in, ear_1_in
    return {
        "eye_left": eye_1,
        "eye_right": eye_2,
        "nose": nose,
        "chin": chin,
        "ear_left_outer": ear_1_out,
        "ear_left_inner": ear_1_in,
        "ear_right_inner": ear_2_in,
        "ear_right_outer": ear_2_out,
    }


def _load(what: str, path: Any, loader: Any) -> Any:
    """A dlib model file, or one line naming the file when dlib cannot read it (a user's own file;
    pinned files are checked by their digest before this)."""
    try:
        return loader(str(path))
    except RuntimeError as error:
        raise WeightsDamaged(f"detector weights {path}: dlib cannot read it as a {what} ({error})") from None


@register("dlib_svm")
class DlibSvmDetector(_DlibDetector):
    """A dlib HOG detector from a `.svm` file (see the module docstring for the models).

    Options: `model` (pycatfd | afd_anime_hog), `upsample` (times dlib doubles the image first),
    `threshold` (keep scores above it), `max_side` (detect on a copy whose longest side is at most this,
    0: never; empty: the model's measured setting, 640 for pycatfd, 1024 for afd_anime_hog; landmarks are
    placed at full resolution), `weights` (a `.svm` of your own instead of the pinned one) and
    `predictor` (the landmark predictor; empty: on where the model has one, pycatfd).
    """

    name: str
    kind = "svm"

    def __init__(
        self,
        *,
        model: str = "pycatfd",
        upsample: int = 1,
        threshold: float = -0.3,
        max_side: int | None = None,
        weights: str = "",
        predictor: bool | None = None,
    ) -> None:
        import dlib

        if model not in DETECTOR_FILES:
            raise ValueError(f"option 'model' must be one of {sorted(DETECTOR_FILES)}, got {model!r}")
        self.model = model
        self.upsample = _integer("upsample", upsample, 0)
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float | np.number)
            or not math.isfinite(threshold)
        ):
            raise ValueError(f"option 'threshold' must be a number (an SVM score, e.g. -0.3), got {threshold!r}")
        self.threshold = float(threshold)
        self.max_side = DEFAULT_MAX_SIDE[model] if max_side is None else _integer("max_side", max_side, 0)
        if predictor is None:
            predictor = model in PREDICTOR_FILES
        if not isinstance(predictor, bool):
            raise ValueError(f"option 'predictor' must be true or false, got {predictor!r}")
        if predictor and model not in PREDICTOR_FILES:
            raise ValueError(
                f"option 'predictor': model {model!r} has no landmark predictor (only "
                f"{', '.join(sorted(PREDICTOR_FILES))} has one); set predictor: false"
            )
        if not isinstance(weights, str):
            raise ValueError(f"option 'weights' must be a path (empty: the pinned {model} file), got {weights!r}")

        svm = weights_file(model, DETECTOR_FILES[model], weights)
        self._detector = _load("HOG object detector (.svm)", svm.path, dlib.fhog_object_detector)
        tags = [svm.tag]
        self._predictor = None
        if predictor:
            shape = weights_file(model, PREDICTOR_FILES[model])
            self._predictor = _load("shape predictor (.dat)", shape.path, dlib.shape_predictor)
            tags.append(shape.tag)
        self.uses_predictor = predictor
        self.weights = weights
        self.version = (
            f"dlib-{dlib.__version__}/svm-{model}/{'+'.join(tags)}/up{self.upsample}/th{self.threshold:g}"
            f"/ms{self.max_side}/sp{CAT_POINTS if predictor else 0}"
        )

    def _boxes(self, rgb: np.ndarray) -> list[tuple[Any, float]]:
        # run() keeps scores above adjust_threshold already; the filter states the contract explicitly.
        rects, scores, _ = self._detector.run(rgb, self.upsample, self.threshold)
        return [(rect, float(score)) for rect, score in zip(rects, scores, strict=True) if score > self.threshold]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        faces = []
        for rect, score in self._boxes_at_most(rgb):
            landmarks = _cat_landmarks(self._predictor(rgb, rect)) if self._predictor is not None else {}
            faces.append(Face(box=_dlib_box(rect), score=score, landmarks=landmarks))
        return _largest_first(faces)


assert set(DETECTOR_FILES) <= set(MODELS), "every dlib_svm model is pinned in weights.py"
