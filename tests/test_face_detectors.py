"""The face detectors: registry, the four built-in detectors on known images, missing models, real photos.

Known images come from scikit-image (the astronaut Eileen Collins, Chelsea the cat) and from
`flows.demo_data.draw_anime_face`, which AnimeFace must find: on Pillow >= 12 it silently finds
nothing (../shared/research/env.md, trap 1), and that failure must not pass unnoticed.
The real-data tests run over ../shared/data/real and are skipped with a reason when it is absent.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import pytest
from PIL import Image

from preprocessing.faces import detectors
from preprocessing.faces.detectors import (
    Detector,
    Face,
    ModelFileMissing,
    available,
    make_detector,
    model_dir,
    register,
)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
BUILT_IN = ("animeface", "dlib_cnn", "dlib_hog", "opencv_cat")
PINK = (245, 150, 190)
BLUE = (40, 90, 210)


@cache
def built(name: str, **options: Any) -> Detector:
    """One detector per configuration for the whole module: building loads model files (up to 0.6 s)."""
    return make_detector(name, options)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y = point
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


# --- registry -------------------------------------------------------------------------------------


def test_the_four_detectors_are_registered() -> None:
    assert set(BUILT_IN) <= set(available())
    assert available() == sorted(available())


def test_an_unknown_detector_name_is_an_error_that_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="dlib_hoog") as caught:
        make_detector("dlib_hoog", {})
    for name in BUILT_IN:
        assert name in str(caught.value)


def test_an_unknown_option_is_an_error_that_names_it() -> None:
    with pytest.raises(ValueError, match="upsampel") as caught:
        make_detector("dlib_hog", {"upsampel": 2})
    assert "upsample" in str(caught.value).split("accepts")[1]  # and says what is accepted
    with pytest.raises(ValueError, match="threshold"):
        make_detector("animeface", {"threshold": 0.5})


@pytest.mark.parametrize(
    ("name", "options", "option"),
    [
        ("dlib_hog", {"upsample": -1}, "upsample"),
        ("dlib_hog", {"upsample": True}, "upsample"),
        ("dlib_hog", {"predictor": "7"}, "predictor"),
        ("opencv_cat", {"scale_factor": 1.0}, "scale_factor"),
        ("opencv_cat", {"min_neighbors": "3"}, "min_neighbors"),
        ("opencv_cat", {"min_size": 0}, "min_size"),
        ("opencv_cat", {"equalize": "yes"}, "equalize"),
    ],
)
def test_a_bad_option_value_is_an_error_that_names_the_option(name: str, options: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):
        make_detector(name, options)


def test_the_predictor_option_takes_an_int_or_a_string() -> None:
    assert make_detector("dlib_hog", {"predictor": 68}).version == built("dlib_hog", predictor="68").version


def test_a_registered_class_is_a_detector_made_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detectors, "_REGISTRY", dict(detectors._REGISTRY))

    @register("fixed_box")
    class FixedBox:
        """Always the same box: the smallest detector that satisfies the interface."""

        name: str

        def __init__(self, side: int = 10) -> None:
            self.side = side
            self.version = f"fixed/{side}"

        def detect(self, rgb: np.ndarray) -> list[Face]:
            return [Face(box=(0.0, 0.0, float(self.side), float(self.side)), score=1.0, landmarks={})]

    assert "fixed_box" in available()
    detector = make_detector("fixed_box", {"side": 4})
    assert isinstance(detector, Detector)
    assert (detector.name, detector.version) == ("fixed_box", "fixed/4")
    assert detector.detect(np.zeros((8, 8, 3), np.uint8))[0].box == (0.0, 0.0, 4.0, 4.0)
    with pytest.raises(ValueError, match="sides"):
        make_detector("fixed_box", {"sides": 4})
    with pytest.raises(ValueError, match="already registered"):
        register("dlib_hog")(FixedBox)


def test_versions_name_the_library_the_model_and_every_option() -> None:
    hog = built("dlib_hog")
    assert hog.version.startswith("dlib-") and "/hog/" in hog.version and "sp5" in hog.version
    versions = {
        hog.version,
        built("dlib_hog", upsample=0).version,
        built("dlib_hog", predictor="68").version,
        built("dlib_cnn").version,
    }
    assert len(versions) == 4
    cat = built("opencv_cat")
    assert cat.version != make_detector("opencv_cat", {"min_neighbors": 5}).version
    assert cat.version != make_detector("opencv_cat", {"equalize": True}).version
    assert built("animeface").version.startswith("animeface-")


# --- model files ----------------------------------------------------------------------------------


def test_model_dir_holds_the_dlib_models_and_does_not_import_their_package() -> None:
    for name in (*detectors.PREDICTOR_FILES.values(), detectors.CNN_FILE):
        assert (model_dir() / name).is_file(), name
    # face_recognition_models imports pkg_resources (env.md, trap 3): a fresh interpreter proves we never import it.
    code = (
        "import sys; from preprocessing.faces.detectors import model_dir, make_detector; model_dir(); "
        "make_detector('dlib_hog', {}); print('face_recognition_models' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_missing_model_file_names_the_file_and_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_models = model_dir()
    monkeypatch.setattr(detectors, "model_dir", lambda: tmp_path)
    with pytest.raises(ModelFileMissing) as caught:
        make_detector("dlib_hog", {"predictor": "68"})
    message = str(caught.value)
    assert "shape_predictor_68_face_landmarks.dat" in message and str(tmp_path) in message
    assert "face-recognition-models" in message and "pip install face-recognition-models" in message
    assert isinstance(caught.value, FileNotFoundError)
    # With the predictor there, the CNN detector names its own file.
    predictor = detectors.PREDICTOR_FILES["5"]
    (tmp_path / predictor).symlink_to(real_models / predictor)
    with pytest.raises(ModelFileMissing, match=re.escape("mmod_human_face_detector.dat")):
        make_detector("dlib_cnn", {})


def test_an_absent_models_package_is_reported_with_the_file_and_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "face_recognition_models" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelFileMissing, match="pip install face-recognition-models"):
        model_dir()
    with pytest.raises(ModelFileMissing, match=re.escape("shape_predictor_5_face_landmarks.dat")):
        make_detector("dlib_hog", {})


def test_a_missing_cat_cascade_names_the_file_and_the_opencv_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path))
    with pytest.raises(ModelFileMissing, match=re.escape("haarcascade_frontalcatface_extended.xml")) as caught:
        make_detector("opencv_cat", {})
    assert "opencv-python-headless<5" in str(caught.value)


# --- the detectors on known images ----------------------------------------------------------------


def test_pillow_is_below_12_where_animeface_works() -> None:
    major = int(PIL.__version__.split(".")[0])
    assert major < 12, f"Pillow {PIL.__version__}: animeface finds nothing on Pillow >= 12 (pin pillow<12)"


def test_animeface_finds_the_drawn_face_with_its_colours() -> None:
    from flows.demo_data import draw_anime_face

    image = np.asarray(draw_anime_face(320, PINK, BLUE))
    faces = built("animeface").detect(image)
    assert len(faces) == 1, faces
    face = faces[0]
    assert face.score > 0.9
    assert inside(face.landmarks["eye_left"], face.box) and inside(face.landmarks["eye_right"], face.box)
    assert face.landmarks["eye_left"][0] < face.landmarks["eye_right"][0]
    # The eyes are drawn at x = 160 and 240 of 400 (128 and 192 at 320 px).
    assert abs(face.landmarks["eye_left"][0] - 128) < 12 and abs(face.landmarks["eye_right"][0] - 192) < 12
    for name in ("nose", "mouth", "chin"):
        assert inside(face.landmarks[name], face.box), name
    assert face.landmarks["mouth"][1] > face.landmarks["eye_left"][1]
    assert max(abs(a - b) for a, b in zip(face.attributes["hair_color"], PINK, strict=True)) <= 20
    for eye in ("eye_left_color", "eye_right_color"):
        assert max(abs(a - b) for a, b in zip(face.attributes[eye], BLUE, strict=True)) <= 20
    assert all(isinstance(value, int) for value in face.attributes["skin_color"])


def test_dlib_hog_finds_the_astronaut_largest_first(astronaut: np.ndarray) -> None:
    faces = built("dlib_hog").detect(astronaut)
    assert faces, "dlib HOG found no face in the astronaut photo"
    face = faces[0]
    assert np.allclose(face.box, (175, 76, 266, 167), atol=6), face.box
    assert face.score > 0.5
    assert [f.box for f in faces] == [f.box for f in sorted(faces, key=lambda f: -f.area)]
    left, right = face.landmarks["eye_left"], face.landmarks["eye_right"]
    assert left[0] < right[0]
    assert inside(left, face.box) and inside(right, face.box) and inside(face.landmarks["nose"], face.box)
    assert face.landmarks["nose"][1] > max(left[1], right[1])


def test_dlib_hog_with_68_points_gives_mouth_and_chin(astronaut: np.ndarray) -> None:
    face = built("dlib_hog", predictor="68").detect(astronaut)[0]
    assert set(face.landmarks) == {"eye_left", "eye_right", "nose", "mouth", "chin"}
    assert face.landmarks["eye_left"][0] < face.landmarks["eye_right"][0]
    eyes_y = max(face.landmarks["eye_left"][1], face.landmarks["eye_right"][1])
    assert eyes_y < face.landmarks["nose"][1] < face.landmarks["mouth"][1] < face.landmarks["chin"][1]
    assert inside(face.landmarks["mouth"], face.box)
    # Both predictors put the eyes in the same places (within a few pixels).
    five = built("dlib_hog").detect(astronaut)[0]
    for eye in ("eye_left", "eye_right"):
        assert np.allclose(face.landmarks[eye], five.landmarks[eye], atol=4)


def test_dlib_hog_finds_the_astronaut_in_grayscale(astronaut: np.ndarray) -> None:
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    for image in (gray, gray[:, :, None], np.repeat(gray[:, :, None], 3, axis=2)):
        faces = built("dlib_hog").detect(image)
        assert faces and np.allclose(faces[0].box, (175, 76, 266, 167), atol=6)


def test_dlib_cnn_finds_the_astronaut_at_256_px(astronaut: np.ndarray) -> None:
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.Resampling.LANCZOS))
    faces = built("dlib_cnn").detect(small)
    assert faces, "dlib CNN found no face in the astronaut photo"
    face = faces[0]
    assert np.allclose(face.box, (87.5, 38, 133, 83.5), atol=8), face.box  # the HOG box halved
    assert face.score > 0.5
    assert face.landmarks["eye_left"][0] < face.landmarks["eye_right"][0]
    assert inside(face.landmarks["eye_left"], face.box) and inside(face.landmarks["eye_right"], face.box)


def test_opencv_cat_finds_chelsea() -> None:
    from skimage import data

    faces = built("opencv_cat").detect(data.chelsea())
    assert faces, "the cat cascade found nothing in Chelsea (env.md: the muzzle at scale 1.1, neighbours 3)"
    assert all(face.landmarks == {} and isinstance(face.score, float) for face in faces)
    x0, y0, x1, y1 = faces[0].box
    assert 0 <= x0 < x1 <= 451 and 0 <= y0 < y1 <= 300 and x1 - x0 >= 32


@pytest.mark.parametrize("name", ["dlib_hog", "dlib_cnn", "animeface", "opencv_cat"])
def test_tiny_blank_and_odd_images_give_no_face_without_crashing(name: str) -> None:
    detector = built(name)
    images = [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((10, 10, 3), np.uint8),
        np.full((10, 10), 128, np.uint8),
        np.zeros((64, 48, 4), np.uint8),
        np.full((64, 64, 3), 255, np.uint8)[:, ::-1],  # not contiguous
    ]
    for image in images:
        assert detector.detect(image) == [], image.shape
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((16, 16, 3), np.float32))


# --- real photos and character art (../shared/data/real) ------------------------------------------

REAL_DETECTORS = {"human": ("dlib_hog", {"upsample": 1}), "anime": ("animeface", {}), "cat": ("opencv_cat", {})}
MEASURED = {"human": 0.92, "anime": 0.71, "cat": 0.57}  # env.md, serial loop on one core
REQUIRED = {"human": 0.85, "anime": 0.6, "cat": 0.45}
_worker_detectors: dict[str, Detector] = {}


def _detect_file(domain: str, path: str) -> tuple[str, str, int, float]:
    """In a worker process: (domain, file, faces found, seconds in detect), one detector per process."""
    from preprocessing.images import load_rgb

    if domain not in _worker_detectors:
        name, options = REAL_DETECTORS[domain]
        _worker_detectors[domain] = make_detector(name, options)
    rgb = np.asarray(load_rgb(Path(path)))
    start = time.perf_counter()
    faces = _worker_detectors[domain].detect(rgb)
    return domain, Path(path).name, len(faces), time.perf_counter() - start


@pytest.fixture(scope="module")
def real_results() -> Iterator[dict[str, list[tuple[str, int, float]]]]:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real images not available: {REAL_DATA} is absent (../shared is not beside the repo)")
    jobs = [
        (domain, str(path))
        for domain in REAL_DETECTORS
        for path in sorted((REAL_DATA / domain).iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]
    jobs.sort(key=lambda job: -os.path.getsize(job[1]))  # big images first: the pool ends together
    results: dict[str, list[tuple[str, int, float]]] = {domain: [] for domain in REAL_DETECTORS}
    # Processes, one detector each, as in the faces stage (dlib and AnimeFace hold the GIL). Spawn, not
    # fork: OpenCV's thread pool in this process must not be copied mid-flight.
    workers = max(1, min(4, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for domain, name, count, seconds in pool.map(_detect_file, *zip(*jobs, strict=True)):
            results[domain].append((name, count, seconds))
    for domain, rows in results.items():
        found = sum(count > 0 for _, count, _ in rows)
        seconds = [s for _, _, s in rows]
        print(
            f"\n{domain}: {REAL_DETECTORS[domain][0]} found a face in {found}/{len(rows)} = {found / len(rows):.0%} "
            f"(env.md {MEASURED[domain]:.0%}), {sum(c for _, c, _ in rows)} faces; detect per image: "
            f"mean {statistics.mean(seconds):.3f} s, median {statistics.median(seconds):.3f} s, "
            f"max {max(seconds):.2f} s"
        )
    yield results


@pytest.mark.real_data
@pytest.mark.parametrize("domain", list(REAL_DETECTORS))
def test_real_images_have_faces_about_as_often_as_measured(
    domain: str, real_results: dict[str, list[tuple[str, int, float]]]
) -> None:
    rows = real_results[domain]
    assert rows, f"no images in {REAL_DATA / domain}"
    fraction = sum(count > 0 for _, count, _ in rows) / len(rows)
    missed = [name for name, count, _ in rows if count == 0]
    assert fraction >= REQUIRED[domain], f"{domain}: {fraction:.0%} < {REQUIRED[domain]:.0%}; no face in {missed}"


def test_animeface_colours_are_measured_from_pixels_and_reproducible() -> None:
    """AnimeFace's own colours depend on the Pillow image object (the same pixels copied gave other
    eye and hair colours); the detector measures them in its boxes instead: right, and the same twice."""
    from flows.demo_data import EYE_COLOURS, HAIR_COLOURS, draw_anime_face

    detector = make_detector("animeface", {})
    for hair, eyes in (("black", "yellow"), ("pink", "blue"), ("green", "red"), ("silver", "purple")):
        rgb = np.asarray(draw_anime_face(320, HAIR_COLOURS[hair], EYE_COLOURS[eyes], tilt=4))
        first, again = detector.detect(rgb)[0], detector.detect(rgb.copy())[0]
        assert first.attributes == again.attributes
        assert np.abs(np.subtract(first.attributes["hair_color"], HAIR_COLOURS[hair])).max() < 25, hair
        for side in ("eye_left_color", "eye_right_color"):
            assert np.abs(np.subtract(first.attributes[side], EYE_COLOURS[eyes])).max() < 25, (eyes, side)
