"""Face detectors behind one small interface, so a domain picks its detector by name in params.yaml.

Every detector turns an RGB array into `Face`s (box, score, named landmarks, optional attributes) sorted
largest first. Adding a detector for a new domain is one class decorated with `@register("name")`: its
keyword arguments (all with defaults) are the options `make_detector` accepts, and its `version` string
goes into the faces table, so it names the library, the model and every option that changes the output.

Three traps of this stack are handled here:
- `face_recognition_models` imports `pkg_resources` (gone from new setuptools): `model_dir` locates its
  files without importing it.
- AnimeFace silently finds nothing on Pillow >= 12: the detector refuses to start there instead.
- OpenCV 5 has no `CascadeClassifier`: the cat detector says which pin to install.

A detector with its own network code or weights lives in its own module, `preprocessing/faces/detector_*.py`,
imported when the registry is first read. Its weights are files the user fetches (`twingan fetch <model>`),
pinned in `preprocessing/faces/weights.py`: the detector takes an option `weights` (a user's own file; empty:
the pinned one) and resolves it with `weights_file(model, file, weights)`, which gives the path and SHA-256
(`.tag` goes into `version`) or stops in one line naming the file and the fetch command. Tests read the real
copies from $TWINGAN_DETECTOR_WEIGHTS (the shared models folder has the same <model>/<file> layout).

Heavy objects (dlib detectors and predictors, the cascade) are built once per detector instance; the faces
stage builds one detector per worker process. Libraries are imported inside the constructors, so this
module imports (and lists the detectors) on machines without dlib, AnimeFace or OpenCV.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from core.errors import UserError

FACE_MODELS_MODULE = "face_recognition_models"
FACE_MODELS_PACKAGE = "face-recognition-models"
FACE_MODELS_INSTALL = "pip install face-recognition-models"
PREDICTOR_FILES = {"5": "shape_predictor_5_face_landmarks.dat", "68": "shape_predictor_68_face_landmarks.dat"}
CNN_FILE = "mmod_human_face_detector.dat"
CAT_CASCADE_FILE = "haarcascade_frontalcatface_extended.xml"
OPENCV_PACKAGE = "opencv-python-headless"
OPENCV_INSTALL = 'pip install "opencv-python-headless<5"'
# Below this side no detector here can find anything; skipping such images also keeps the C++ code away
# from degenerate (0- or 1-pixel) arrays.
MIN_SIDE = 8


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image given to `detect`.

    `box` is (x0, y0, x1, y1) with x1, y1 exclusive (x1 - x0 is the width the detector reports); it may
    extend past the image border. Landmarks are pixel positions (integer pixel = pixel centre, as OpenCV
    and PIL transforms expect). "eye_left" is the eye with the smaller x in the image, whatever the
    detector calls it, so alignment never has to know a detector's convention. `score` is in the
    detector's own units (dlib HOG scores can be negative), comparable only within one detector version.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: dict[str, tuple[float, float]]
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@runtime_checkable
class Detector(Protocol):
    """What the faces stage needs from a detector."""

    name: str
    version: str

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an HxWx3 uint8 RGB array, largest first."""
        ...


class ModelFileMissing(UserError, FileNotFoundError):
    """A model file a detector needs is absent; the message says which package ships it and how to install it."""

    def __init__(self, path: Path | str, package: str, install: str) -> None:
        self.path = Path(path)
        self.package = package
        self.install = install
        super().__init__(
            f"face detector model file {self.path.name!r} not found (looked for {self.path}); "
            f"it ships in the Python package {package}: {install}"
        )


_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a detector class available to `make_detector` under `name`.

    The class's keyword arguments are its options; it sets `version` in its constructor and implements
    `detect`. Registering a second class under a taken name is an error (it would silently change what
    existing params files mean).
    """

    def decorate(cls: type) -> type:
        known = _REGISTRY.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"face detector {name!r} is already registered ({known.__module__}.{known.__qualname__})")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_detector_modules() -> None:
    """Import every `preprocessing/faces/detector_*.py` once: a detector with its own weights and network
    code lives in its own module, and registers itself when imported."""
    import pkgutil

    package = __name__.rpartition(".")[0]
    folder = Path(__file__).parent
    for module in sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith("detector_")):
        importlib.import_module(f"{package}.{module}")


def available() -> list[str]:
    """Registered detector names, sorted."""
    _load_detector_modules()
    return sorted(_REGISTRY)


def _option_names(cls: type) -> set[str] | None:
    """The keyword options a detector class accepts (None: it takes **kwargs and checks them itself)."""
    names: set[str] = set()
    for parameter in inspect.signature(cls).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.add(parameter.name)
    return names


def make_detector(name: str, options: Mapping[str, Any]) -> Detector:
    """Build the detector registered as `name` with `options` (missing options take their defaults).

    Unknown names and options are errors rather than ignored, so a typo in params.yaml cannot silently run
    a detector with its defaults.
    """
    _load_detector_modules()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown face detector {name!r}; known detectors: {', '.join(available()) or '(none)'}")
    accepted = _option_names(cls)
    if accepted is not None:
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ValueError(
                f"face detector {name!r}: unknown option(s) {', '.join(map(repr, unknown))}; "
                f"it accepts: {', '.join(sorted(accepted)) or '(no options)'}"
            )
    return cls(**dict(options))


def model_dir() -> Path:
    """The `models` folder of the face_recognition_models package, found without importing it.

    Importing the package imports `pkg_resources`, which new setuptools no longer has (env.md, trap 3).
    """
    spec = importlib.util.find_spec(FACE_MODELS_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelFileMissing(f"{FACE_MODELS_MODULE}/models", FACE_MODELS_PACKAGE, FACE_MODELS_INSTALL)
    return Path(locations[0]) / "models"


def _face_model(filename: str) -> Path:
    """Path of one face_recognition_models file, or ModelFileMissing naming that file."""
    try:
        folder = model_dir()
    except ModelFileMissing:
        raise ModelFileMissing(filename, FACE_MODELS_PACKAGE, FACE_MODELS_INSTALL) from None
    path = folder / filename
    if not path.is_file():
        raise ModelFileMissing(path, FACE_MODELS_PACKAGE, FACE_MODELS_INSTALL)
    return path


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _integer(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"option {name!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _number_above(name: str, value: Any, bound: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not value > bound:
        raise ValueError(f"option {name!r} must be a number > {bound}, got {value!r}")
    return float(value)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 contiguous uint8; grayscale (HxW or HxWx1) is repeated to 3 channels and alpha dropped, so a
    detector accepts what callers commonly hold instead of crashing inside C++."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"detect() takes uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    elif array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"detect() takes an HxWx3 RGB array, got shape {array.shape}")
    return np.ascontiguousarray(array)


def _too_small(rgb: np.ndarray) -> bool:
    return min(rgb.shape[0], rgb.shape[1]) < MIN_SIDE


def _largest_first(faces: Iterable[Face]) -> list[Face]:
    """By area, then score: the order `select.faces: largest` relies on, stable across runs."""
    return sorted(faces, key=lambda face: (-face.area, -face.score))


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression for the network detectors: indices kept, best first; a box goes when
    its IoU with a kept one exceeds `threshold`. Ties in score keep the lower index (a stable sort), so the
    result depends only on the inputs. Computed in the boxes' own dtype."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        keep.append(best)
        low = np.maximum(boxes[best, :2], boxes[rest, :2])
        high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= threshold]
    return keep


def _point(x: float, y: float) -> tuple[float, float]:
    return (float(x), float(y))


def _eyes(first: np.ndarray, second: np.ndarray) -> dict[str, tuple[float, float]]:
    left, right = sorted((first, second), key=lambda point: float(point[0]))
    return {"eye_left": _point(*left), "eye_right": _point(*right)}


def _dlib_box(rect: Any) -> tuple[float, float, float, float]:
    # dlib rectangles are inclusive (width() == right - left + 1); Face boxes are exclusive at x1, y1.
    return (float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))


def _dlib_landmarks(shape: Any) -> dict[str, tuple[float, float]]:
    """Named points from a dlib full_object_detection.

    5-point model (checked on the astronaut photo): parts 0, 1 are the outer and inner corners of the
    subject's left eye (the right one in the image), 2, 3 those of the subject's right eye, 4 the base of
    the nose. 68-point model (iBUG 300-W): eyes 36-41 and 42-47, nose tip 30, lips 48-67, chin 8.
    """
    points = np.array([(part.x, part.y) for part in shape.parts()], dtype=np.float64)
    if len(points) == 5:
        named = _eyes(points[0:2].mean(axis=0), points[2:4].mean(axis=0))
        named["nose"] = _point(*points[4])
        return named
    if len(points) == 68:
        named = _eyes(points[36:42].mean(axis=0), points[42:48].mean(axis=0))
        named["nose"] = _point(*points[30])
        named["mouth"] = _point(*points[48:68].mean(axis=0))
        named["chin"] = _point(*points[8])
        return named
    raise ValueError(f"unexpected dlib shape with {len(points)} points (expected 5 or 68)")


class _DlibDetector:
    """dlib detection plus a shape predictor for the eyes (and, with 68 points, mouth and chin)."""

    name: str
    kind: str

    def __init__(self, upsample: int = 1, predictor: str | int = "5", max_side: int = 0) -> None:
        import dlib

        self.upsample = _integer("upsample", upsample, 0)
        # Detect on a copy whose longest side is at most max_side (0: never): faces in a 4000 px portrait
        # are far above the detector's minimum size, and HOG time grows with the pixels. Landmarks are
        # still found at full resolution. Small faces in huge group photos are what it can lose
        # (benchmarks/README.md, faces).
        self.max_side = _integer("max_side", max_side, 0)
        points = str(predictor) if not isinstance(predictor, bool) else ""
        if points not in PREDICTOR_FILES:
            raise ValueError(f"option 'predictor' must be one of {sorted(PREDICTOR_FILES)}, got {predictor!r}")
        self.predictor = points
        self._predictor = dlib.shape_predictor(str(_face_model(PREDICTOR_FILES[points])))
        self._build(dlib)
        self.version = (
            f"dlib-{dlib.__version__}/{self.kind}/up{self.upsample}/sp{points}"
            + (f"/ms{self.max_side}" if self.max_side else "")
            + f"/frm-{_distribution_version(FACE_MODELS_PACKAGE)}"
        )

    def _build(self, dlib: Any) -> None:
        raise NotImplementedError

    def _boxes(self, rgb: np.ndarray) -> list[tuple[Any, float]]:
        raise NotImplementedError

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        found = self._boxes_at_most(rgb)
        faces = [
            Face(box=_dlib_box(rect), score=score, landmarks=_dlib_landmarks(self._predictor(rgb, rect)))
            for rect, score in found
        ]
        return _largest_first(faces)

    def _boxes_at_most(self, rgb: np.ndarray) -> list[tuple[Any, float]]:
        longest = max(rgb.shape[:2])
        if not self.max_side or longest <= self.max_side:
            return self._boxes(rgb)
        import cv2
        import dlib

        factor = longest / self.max_side
        small = cv2.resize(rgb, (round(rgb.shape[1] / factor), round(rgb.shape[0] / factor)),
                           interpolation=cv2.INTER_AREA)  # fmt: skip
        return [
            (
                dlib.rectangle(
                    round(r.left() * factor),
                    round(r.top() * factor),
                    round(r.right() * factor),
                    round(r.bottom() * factor),
                ),
                score,
            )
            for r, score in self._boxes(small)
        ]


@register("dlib_hog")
class DlibHogDetector(_DlibDetector):
    """dlib's HOG + linear SVM frontal detector: the CPU default (benchmarks/faces.py measures it).

    Score: the SVM detection score (roughly 0 to 3; higher is surer). Mostly frontal faces, at least about
    80 px at the original scale (40 px with upsample 1).
    """

    kind = "hog"

    def _build(self, dlib: Any) -> None:
        self._detector = dlib.get_frontal_face_detector()

    def _boxes(self, rgb: np.ndarray) -> list[tuple[Any, float]]:
        rects, scores, _ = self._detector.run(rgb, self.upsample, 0.0)
        return [(rect, float(score)) for rect, score in zip(rects, scores, strict=True)]


@register("dlib_cnn")
class DlibCnnDetector(_DlibDetector):
    """dlib's MMOD CNN detector: finds turned and small faces HOG misses, but an order of magnitude slower
    on a CPU (use it with a GPU build of dlib, or for small sets). Score: the CNN confidence."""

    kind = "cnn"

    def _build(self, dlib: Any) -> None:
        self._detector = dlib.cnn_face_detection_model_v1(str(_face_model(CNN_FILE)))

    def _boxes(self, rgb: np.ndarray) -> list[tuple[Any, float]]:
        return [(found.rect, float(found.confidence)) for found in self._detector(rgb, self.upsample)]


def _colour(colour: Any) -> tuple[int, int, int]:
    return (int(colour.r), int(colour.g), int(colour.b))


def _box_centre(box: Any) -> np.ndarray:
    return np.array([box.x + box.width / 2.0, box.y + box.height / 2.0])


DEFAULT_ANIME_BORDER = 0.25  # AnimeFace's defaults (benchmarks/README.md, detectors)
DEFAULT_ANIME_UPSCALE_BELOW = 96


@register("animeface")
class AnimeFaceDetector:
    """AnimeFace (nagadomi's imager::AnimeFace via the `animeface` package): anime/manga character faces.

    Score: the likelihood (0-1). Its box is tight around the face and excludes the hair (crop with a
    margin). Its "left_eye" is the character's left eye (the right one in the image): here eyes are named
    by image position like every other detector.

    Colours (hair, skin, eyes) are measured here from the pixels inside AnimeFace's boxes, not taken from
    AnimeFace: its own colours depend on the Pillow image object, not only on the pixels (the same
    pixels through `Image.copy()` gave other eye and even hair colours in 12 of 12 drawn faces), so they
    were neither reproducible nor trustworthy. Its boxes and points did not change.

    Options, with defaults measured on real drawings (benchmarks/README.md, detectors): `border` adds this
    fraction of the image's long side as a white margin on every side before detection, since AnimeFace
    rarely finds a face that touches the image's edge (tight face crops: most of them are found once there
    is a margin); `upscale_below` enlarges (bicubic) an image whose long side is below this many pixels to
    that long side first (a 64 px crop holds a face below AnimeFace's smallest); keep that to about 1.5x the
    smallest inputs, as a blurrier enlargement (2x and more) loses more faces than it gains. 0 turns either
    off (`border: 0, upscale_below: 0` is AnimeFace as it comes). Boxes and points are mapped back to the
    source pixels (a box may then extend past the image) and colours are measured there.
    """

    name: str

    def __init__(self, border: float = DEFAULT_ANIME_BORDER, upscale_below: int = DEFAULT_ANIME_UPSCALE_BELOW) -> None:
        import animeface
        import PIL

        if isinstance(border, bool) or not isinstance(border, int | float | np.number) or not 0 <= border <= 2:
            raise ValueError(
                f"option 'border' must be a number from 0 to 2 (a fraction of the long side), got {border!r}"
            )
        self.border = float(border)
        self.upscale_below = _integer("upscale_below", upscale_below, 0)

        if int(PIL.__version__.split(".")[0]) >= 12:
            # Its C extension reads Pillow's internal image struct, changed in Pillow 12: every detect()
            # then returns [] at once, for every image. Refuse rather than report "no face" for all.
            raise RuntimeError(
                f"animeface finds no face on Pillow {PIL.__version__} (>= 12 changed the internals it reads); "
                'install Pillow 10.4-11.x: pip install "pillow<12"'
            )
        self._detect = animeface.detect
        self.version = f"animeface-{_distribution_version('animeface')}/pillow-{PIL.__version__}"
        if self.border:
            self.version += f"/border{self.border:g}"
        if self.upscale_below:
            self.version += f"/up{self.upscale_below}"

    def _prepared(self, rgb: np.ndarray) -> tuple[Any, float, int]:
        """The PIL image AnimeFace sees, its scale over the source and the border width in its pixels."""
        from PIL import Image

        image = Image.fromarray(rgb)
        scale = 1.0
        longest = max(image.size)
        if longest < self.upscale_below:
            scale = self.upscale_below / longest
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BICUBIC)
        pad = round(self.border * max(image.size))
        if pad:
            canvas = Image.new("RGB", (image.width + 2 * pad, image.height + 2 * pad), (255, 255, 255))
            canvas.paste(image, (pad, pad))
            image = canvas
        return image, scale, pad

    def detect(self, rgb: np.ndarray) -> list[Face]:
        from types import SimpleNamespace

        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        image, scale, pad = self._prepared(rgb)
        height, width = rgb.shape[:2]
        sx = sy = 1.0
        if scale != 1.0:  # the rounded size: map each axis by its own factor
            sx, sy = (image.width - 2 * pad) / width, (image.height - 2 * pad) / height

        def back(pos: Any) -> Any:
            """A position (x, y, width, height) in source pixels; identity (the same object) when nothing was done."""
            if pad == 0 and scale == 1.0:
                return pos
            width, height = getattr(pos, "width", 0) / sx, getattr(pos, "height", 0) / sy  # nose, chin: points
            return SimpleNamespace(x=(pos.x - pad) / sx, y=(pos.y - pad) / sy, width=width, height=height)

        faces = []
        for found in self._detect(image):
            box = back(found.face.pos)
            eyes = sorted(
                (
                    (_box_centre(back(eye.pos)), _eye_colour(rgb, back(eye.pos)))
                    for eye in (found.left_eye, found.right_eye)
                ),
                key=lambda item: float(item[0][0]),
            )
            nose, chin = back(found.nose.pos), back(found.chin.pos)
            landmarks = {
                "eye_left": _point(*eyes[0][0]),
                "eye_right": _point(*eyes[1][0]),
                "nose": _point(nose.x, nose.y),
                "mouth": _point(*_box_centre(back(found.mouth.pos))),
                "chin": _point(chin.x, chin.y),
            }
            attributes: dict[str, object] = {
                "hair_color": _hair_colour(rgb, box),
                "skin_color": _skin_colour(rgb, box),
                "eye_left_color": eyes[0][1],
                "eye_right_color": eyes[1][1],
            }
            faces.append(
                Face(
                    box=(float(box.x), float(box.y), float(box.x + box.width), float(box.y + box.height)),
                    score=float(found.likelihood),
                    landmarks=landmarks,
                    attributes=attributes,
                )
            )
        return _largest_first(faces)


def _median_colour(rgb: np.ndarray, x0: float, y0: float, x1: float, y1: float, *, drop_extremes: bool = False):
    """Median RGB of a region (clipped to the image); `drop_extremes` ignores near-white highlights and
    near-black pupils and outlines, which would otherwise decide an eye's colour."""
    height, width = rgb.shape[:2]
    left, top = max(0, round(x0)), max(0, round(y0))
    right, bottom = min(width, round(x1)), min(height, round(y1))
    if right <= left or bottom <= top:
        return None
    pixels = rgb[top:bottom, left:right].reshape(-1, 3).astype(np.int32)
    if drop_extremes:
        keep = (pixels.min(axis=1) < 225) & (pixels.max(axis=1) > 45)
        if keep.any():
            pixels = pixels[keep]
    return tuple(int(v) for v in np.median(pixels, axis=0).round().astype(int))


def _eye_colour(rgb: np.ndarray, eye: Any):
    """The iris: the middle of AnimeFace's eye box."""
    return _median_colour(rgb, eye.x + eye.width * 0.25, eye.y + eye.height * 0.25, eye.x + eye.width * 0.75,
                          eye.y + eye.height * 0.75, drop_extremes=True)  # fmt: skip


def _skin_colour(rgb: np.ndarray, face: Any):
    """The cheeks: the middle of the face box's lower half, between eyes and mouth."""
    return _median_colour(rgb, face.x + face.width * 0.3, face.y + face.height * 0.6, face.x + face.width * 0.7,
                          face.y + face.height * 0.75)  # fmt: skip


def _hair_colour(rgb: np.ndarray, face: Any):
    """The fringe: a band above the face box (AnimeFace's box starts at the eyebrows, below the hair)."""
    return _median_colour(rgb, face.x + face.width * 0.2, face.y - face.height * 0.45, face.x + face.width * 0.8,
                          face.y - face.height * 0.1, drop_extremes=False)  # fmt: skip


@register("opencv_cat")
class OpenCvCatDetector:
    """OpenCV's Haar cascade for frontal cat faces (`haarcascade_frontalcatface_extended.xml`).

    Boxes only, no landmarks; the box often covers just the muzzle, so crop with a margin. Score: the
    cascade's level weight (detectMultiScale3), 1.0 where that is unavailable. `equalize` (histogram
    equalisation before detection) defaults to off: on this stack it lost the face in scikit-image's
    Chelsea photo and found fewer cat faces in real photos.
    """

    name: str

    def __init__(
        self, scale_factor: float = 1.1, min_neighbors: int = 3, min_size: int = 32, equalize: bool = False
    ) -> None:
        import cv2

        self.scale_factor = _number_above("scale_factor", scale_factor, 1.0)
        self.min_neighbors = _integer("min_neighbors", min_neighbors, 0)
        self.min_size = _integer("min_size", min_size, 1)
        if not isinstance(equalize, bool):
            raise ValueError(f"option 'equalize' must be true or false, got {equalize!r}")
        self.equalize = equalize
        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 dropped it): {OPENCV_INSTALL}"
            )
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        path = Path(folder) / CAT_CASCADE_FILE if folder else Path(CAT_CASCADE_FILE)
        if not path.is_file():
            raise ModelFileMissing(path, OPENCV_PACKAGE, OPENCV_INSTALL)
        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not read the cascade {path} (a damaged install?): {OPENCV_INSTALL}")
        self.version = (
            f"opencv-{cv2.__version__}/{Path(CAT_CASCADE_FILE).stem}/sf{self.scale_factor:g}"
            f"/mn{self.min_neighbors}/ms{self.min_size}/eq{int(self.equalize)}"
        )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        cv2 = self._cv2
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        return cascade_faces(cv2, self._cascade, gray, self.scale_factor, self.min_neighbors, self.min_size)


def cascade_faces(
    cv2: Any,
    cascade: Any,
    gray: np.ndarray,
    scale_factor: float,
    min_neighbors: int,
    min_size: int,
    scale: tuple[float, float] = (1.0, 1.0),
) -> list[Face]:
    """An OpenCV cascade's boxes on a grey image, scored by the cascade's weights where this OpenCV gives
    them (`detectMultiScale3`), in the source image's pixels (`scale`: source pixels per grey pixel)."""
    arguments = {"scaleFactor": scale_factor, "minNeighbors": min_neighbors, "minSize": (min_size, min_size)}
    try:
        rects, _levels, weights = cascade.detectMultiScale3(gray, outputRejectLevels=True, **arguments)
        scores = [float(weight) for weight in np.ravel(weights)]
    except (AttributeError, cv2.error):
        rects = cascade.detectMultiScale(gray, **arguments)
        scores = [1.0] * len(rects)
    sx, sy = scale
    faces = [
        Face(box=(float(x * sx), float(y * sy), float((x + w) * sx), float((y + h) * sy)), score=score, landmarks={})
        for (x, y, w, h), score in zip(np.reshape(rects, (-1, 4)), scores, strict=True)
    ]
    return _largest_first(faces)
