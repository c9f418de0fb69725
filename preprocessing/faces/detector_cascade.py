"""`opencv_cascade`: an OpenCV cascade classifier read from a pinned XML file (`twingan fetch <model>`).

Generic over the cascade, so another pinned cascade is one entry in `CASCADE_FILES`; today's model is
`lbpcascade_animeface` (nagadomi, MIT): frontal anime/manga faces, a box from the eyebrows to the chin like
AnimeFace's. The image is turned grey and histogram-equalised first, as that cascade's README does, and
its defaults are that README's settings (scale 1.1, 5 neighbours, 24 px). The cat cascade that ships with
OpenCV stays `opencv_cat` (no fetch needed).

Boxes only, no landmarks. Score: the cascade's level weight (detectMultiScale3), comparable within one
cascade only.
"""

from __future__ import annotations

import numpy as np

from preprocessing.faces.detectors import (
    OPENCV_INSTALL,
    Face,
    _as_rgb,
    _integer,
    _number_above,
    _too_small,
    cascade_faces,
    register,
)
from preprocessing.faces.weights import MODELS, WeightsDamaged, weights_file

CASCADE_FILES = {"lbpcascade_animeface": "lbpcascade_animeface.xml"}


@register("opencv_cascade")
class OpenCvCascadeDetector:
    """A pinned OpenCV cascade (see the module docstring).

    Options: `model` (a pinned cascade: lbpcascade_animeface), `scale_factor`, `min_neighbors`, `min_size`
    (detectMultiScale's, in pixels of the image the cascade sees), `max_side` (detect on a copy whose longest
    side is at most this, 0: never; boxes are mapped back) and `weights` (a cascade XML of your own).
    """

    name: str

    def __init__(
        self,
        model: str = "lbpcascade_animeface",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        max_side: int = 0,
        weights: str = "",
    ) -> None:
        import cv2

        if model not in CASCADE_FILES:
            raise ValueError(f"option 'model' must be one of {sorted(CASCADE_FILES)}, got {model!r}")
        self.model = model
        self.scale_factor = _number_above("scale_factor", scale_factor, 1.0)
        self.min_neighbors = _integer("min_neighbors", min_neighbors, 0)
        self.min_size = _integer("min_size", min_size, 1)
        self.max_side = _integer("max_side", max_side, 0)
        if not isinstance(weights, str):
            raise ValueError(f"option 'weights' must be a path (empty: the pinned {model} file), got {weights!r}")
        self.weights = weights
        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 dropped it): {OPENCV_INSTALL}"
            )
        resolved = weights_file(model, CASCADE_FILES[model], weights)
        try:
            self._cascade = cv2.CascadeClassifier(str(resolved.path))
            readable = not self._cascade.empty()
        except (cv2.error, SystemError):  # a malformed XML raises inside the constructor
            readable = False
        if not readable:
            raise WeightsDamaged(f"detector weights {resolved.path}: OpenCV cannot read it as a cascade classifier")
        self._cv2 = cv2
        self.version = (
            f"opencv-{cv2.__version__}/cascade-{model}/{resolved.tag}/eq1/sf{self.scale_factor:g}"
            f"/mn{self.min_neighbors}/min{self.min_size}/ms{self.max_side}"
        )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        cv2 = self._cv2
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        longest = max(height, width)
        if self.max_side and longest > self.max_side:
            factor = longest / self.max_side
            size = (max(1, round(width / factor)), max(1, round(height / factor)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        scale = (width / gray.shape[1], height / gray.shape[0])
        gray = cv2.equalizeHist(gray)
        return cascade_faces(cv2, self._cascade, gray, self.scale_factor, self.min_neighbors, self.min_size, scale)


assert set(CASCADE_FILES) <= set(MODELS), "every opencv_cascade model is pinned in weights.py"
