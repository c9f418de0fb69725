"""Cat faces: `yolox` (COCO YOLOX-Nano, whole cats) decoding, NMS and options on synthetic head outputs; `dlib_svm`
(pycatfd's HOG detector and 8-point predictor) landmark names and options; missing and damaged weights; and, where
../shared is beside the repo, the real detectors on shared cat and human photos."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from preprocessing.faces.align import align_by_eyes, align_face
from preprocessing.faces.detector_dlib_svm import _cat_landmarks
from preprocessing.faces.detector_yolox import COCO_CLASSES, class_ids, decode, nms, priors, select
from preprocessing.faces.detectors import Face, available, make_detector
from preprocessing.faces.weights import WEIGHTS_ENV, WeightsDamaged, WeightsMissing

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
CATS = SHARED / "data" / "real" / "cat"
HUMANS = SHARED / "data" / "real" / "human"
needs_weights = pytest.mark.skipif(not MODELS.is_dir(), reason="../shared/models absent: real detector weights")
needs_photos = pytest.mark.skipif(
    not (MODELS.is_dir() and CATS.is_dir()), reason="../shared absent: real detector weights and cat photos"
)

# The chain recommended for real cat photos: the cat's box first, the face inside it; the whole picture
# only where YOLOX finds no cat.
CHAIN = {
    "detectors": [
        {
            "name": "within",
            "options": {
                "object": {"name": "yolox"},
                "face": {"name": "dlib_svm", "options": {"threshold": -0.6, "max_side": 480}},
            },
        },
        {"name": "dlib_svm", "options": {"threshold": 0.0}},
    ]
}


@pytest.fixture
def shared_weights(monkeypatch: pytest.MonkeyPatch) -> Path:
    if not MODELS.is_dir():
        pytest.skip("../shared/models absent: real detector weights")
    monkeypatch.setenv(WEIGHTS_ENV, str(MODELS))
    return MODELS


def _photo(folder: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(folder / name).convert("RGB"))


# --- YOLOX post-processing on synthetic outputs --------------------------------------------------------------


def test_priors_follow_the_head_order_stride_8_first_row_major() -> None:
    grid = priors(32)
    assert len(grid) == 16 + 4 + 1 and len(priors(416)) == 3549
    assert grid[0].tolist() == [0, 0, 8] and grid[1].tolist() == [1, 0, 8] and grid[4].tolist() == [0, 1, 8]
    assert grid[16].tolist() == [0, 0, 16] and grid[19].tolist() == [1, 1, 16] and grid[20].tolist() == [0, 0, 32]


def test_decode_turns_offsets_and_log_sizes_into_corner_boxes_and_scores() -> None:
    output = np.zeros((21, 85), np.float32)
    output[5, :4] = [0.5, 0.5, math.log(2), math.log(4)]  # prior 5: column 1, row 1 of the stride-8 grid
    output[5, 4] = 0.8  # objectness
    output[5, 5 + 15] = 0.5  # cat
    output[20, :4] = [0.0, 0.0, 0.0, 0.0]  # the one stride-32 prior: centre (0, 0), 32 x 32
    boxes, scores = decode(output[None], 32)
    # centre ((1 + 0.5) * 8, (1 + 0.5) * 8) = (12, 12); size (2 * 8, 4 * 8) = (16, 32)
    assert boxes[5].tolist() == pytest.approx([4, -4, 20, 28])
    assert boxes[20].tolist() == pytest.approx([-16, -16, 16, 16])
    assert scores.shape == (21, 80) and scores[5, 15] == pytest.approx(0.4) and scores[5, 16] == 0


def test_decode_rejects_an_output_that_does_not_fit_the_input_size() -> None:
    with pytest.raises(ValueError, match="21"):
        decode(np.zeros((20, 85)), 32)


def test_nms_keeps_the_best_of_overlapping_boxes_and_all_separate_ones() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    scores = np.array([0.5, 0.9, 0.7, 0.5])
    assert nms(boxes, scores, 0.45) == [1, 2]  # IoU(0, 1) = 90 / 110
    assert nms(boxes, scores, 0.95) == [1, 2, 0]  # 0 and 3 coincide (IoU 1): the tie keeps the first
    assert nms(boxes[:0], scores[:0], 0.45) == []


def test_selection_is_per_class_and_applies_the_score_threshold() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    scores = np.zeros((3, 80))
    scores[0, 15], scores[1, 15], scores[1, 16], scores[2, 15] = 0.9, 0.8, 0.6, 0.2
    assert select(boxes, scores, (15,), 0.3, 0.45) == [(0, 15, 0.9)]
    # a dog box on the cat's box survives: NMS runs within a class only
    assert select(boxes, scores, (15, 16), 0.3, 0.45) == [(0, 15, 0.9), (1, 16, 0.6)]
    assert select(boxes, scores, (15,), 0.1, 0.45) == [(0, 15, 0.9), (2, 15, 0.2)]


def test_classes_are_coco_names_or_ids() -> None:
    assert len(COCO_CLASSES) == 80 and COCO_CLASSES[15] == "cat" and COCO_CLASSES[0] == "person"
    assert class_ids(["cat"]) == (15,) and class_ids(["dog", 15, "cat"]) == (15, 16) and class_ids("cat") == (15,)
    for wrong in (["kitten"], [80], [True], [], None):
        with pytest.raises(ValueError, match="option 'classes'"):
            class_ids(wrong)


def test_both_detectors_are_registered() -> None:
    assert {"yolox", "dlib_svm", "within", "fallback"} <= set(available())


@pytest.mark.parametrize(
    ("name", "options", "says"),
    [
        ("yolox", {"threshold": 0.3}, "'threshold'"),
        ("yolox", {"score_threshold": 1.5}, "option 'score_threshold'"),
        ("yolox", {"nms_threshold": "high"}, "option 'nms_threshold'"),
        ("yolox", {"classes": ["kitten"]}, "option 'classes'"),
        ("yolox", {"weights": 3}, "option 'weights'"),
        ("dlib_svm", {"model": "cats"}, "option 'model'"),
        ("dlib_svm", {"threshold": True}, "option 'threshold'"),
        ("dlib_svm", {"upsample": -1}, "option 'upsample'"),
        ("dlib_svm", {"model": "afd_anime_hog", "predictor": True}, "has no landmark predictor"),
        ("dlib_svm", {"predictor": "8"}, "option 'predictor'"),
        ("dlib_svm", {"upsampel": 1}, "'upsampel'"),
    ],
)
def test_a_bad_option_is_an_error_that_names_it(name: str, options: dict, says: str) -> None:
    with pytest.raises(ValueError) as error:
        make_detector(name, options)
    assert says in str(error.value)


@pytest.mark.parametrize(
    ("name", "options", "file", "model"),
    [
        ("yolox", {}, "yolox_nano.onnx", "yolox_nano_coco"),
        ("dlib_svm", {}, "detector.svm", "pycatfd"),
        ("dlib_svm", {"model": "afd_anime_hog"}, "detector_face.svm", "afd_anime_hog"),
    ],
)
def test_missing_weights_name_the_file_and_the_fetch_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, options: dict, file: str, model: str
) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(WeightsMissing) as error:
        make_detector(name, options)
    message = str(error.value)
    assert file in message and f"twingan fetch {model}" in message and "\n" not in message


@needs_weights
def test_a_missing_cat_predictor_is_named_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pycatfd").mkdir()
    (tmp_path / "pycatfd" / "detector.svm").symlink_to(MODELS / "pycatfd" / "detector.svm")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(WeightsMissing, match=r"predictor\.dat.*twingan fetch pycatfd"):
        make_detector("dlib_svm", {})
    assert make_detector("dlib_svm", {"predictor": False}).version.endswith("/sp0")


@pytest.mark.parametrize(
    ("name", "file", "options"), [("yolox", "mine.onnx", {}), ("dlib_svm", "mine.svm", {"predictor": False})]
)
def test_an_unreadable_own_weights_file_is_named(tmp_path: Path, name: str, file: str, options: dict) -> None:
    junk = tmp_path / file
    junk.write_bytes(b"not a model")
    with pytest.raises(WeightsDamaged, match=file):
        make_detector(name, {**options, "weights": str(junk)})


def _shape(points: list[tuple[int, int]]) -> SimpleNamespace:
    return SimpleNamespace(parts=lambda: [SimpleNamespace(x=x, y=y) for x, y in points])


def test_cat_points_are_named_in_pycatfds_order_and_by_image_side() -> None:
    # pycatfd: 0 chin, 1 left eye, 2 left of left ear, 3 left of right ear, 4 nose, 5 right eye,
    # 6 right of left ear, 7 right of right ear
    points = [(50, 95), (30, 50), (10, 20), (60, 10), (50, 70), (70, 50), (40, 10), (90, 20)]
    named = _cat_landmarks(_shape(points))
    assert named == {
        "eye_left": (30, 50),
        "eye_right": (70, 50),
        "nose": (50, 70),
        "chin": (50, 95),
        "ear_left_outer": (10, 20),
        "ear_left_inner": (40, 10),
        "ear_right_inner": (60, 10),
        "ear_right_outer": (90, 20),
    }
    assert "mouth" not in named  # the FFHQ alignment must never take the nose for a mouth
    # an upside-down cat: the predicted "left" eye is on the right, so the whole shape is read mirrored
    flipped = _cat_landmarks(_shape([(100 - x, 100 - y) for x, y in points]))
    assert flipped["eye_left"] == (30, 50) and flipped["ear_left_outer"] == (10, 80)
    assert flipped["ear_right_inner"] == (60, 90) and flipped["nose"] == (50, 30)
    with pytest.raises(ValueError, match="8"):
        _cat_landmarks(_shape(points[:5]))


# --- real weights ---------------------------------------------------------------------------------------------


def test_versions_name_the_weights_and_every_option(shared_weights: Path) -> None:
    yolox = make_detector("yolox", {})
    assert "yolox_nano.onnx@e8af074932d4" in yolox.version and "/in416/cat/sc0.3/nms0.45" in yolox.version
    assert make_detector("yolox", {"classes": ["cat", "dog"], "score_threshold": 0.5}).version != yolox.version
    svm = make_detector("dlib_svm", {})
    assert "detector.svm@20f19201b36d+predictor.dat@24f2f14faec2" in svm.version
    assert "/up1/th-0.3/ms640/sp8" in svm.version
    assert make_detector("dlib_svm", {"threshold": -0.6}).version != svm.version
    anime = make_detector("dlib_svm", {"model": "afd_anime_hog"})
    assert "detector_face.svm@dbd47d5cb254" in anime.version and anime.version.endswith("/ms1024/sp0")


def test_blank_and_tiny_images_give_nothing(shared_weights: Path) -> None:
    for name, options in (("yolox", {}), ("dlib_svm", {}), ("fallback", CHAIN)):
        detector = make_detector(name, options)
        assert detector.detect(np.zeros((4, 4, 3), np.uint8)) == []
        assert detector.detect(np.full((300, 200, 3), 128, np.uint8)) == []


CAT_PHOTOS = [
    "stargan_pixabay_cat_000181.jpg",  # AFHQ face crop, 512 px
    "catfaceid_koshka_2020-02-09_18-44-56.jpg",  # phone photo of a whole cat
    "catfaceid_c_c1.jpeg",  # found only inside YOLOX's cat box
]


def _eyes_inside(face: Face) -> bool:
    x0, y0, x1, y1 = face.box
    return all(x0 <= face.landmarks[k][0] <= x1 and y0 <= face.landmarks[k][1] <= y1 for k in ("eye_left", "eye_right"))


@needs_photos
@pytest.mark.parametrize("file", CAT_PHOTOS)
def test_the_chain_finds_the_cat_face_with_its_eyes_inside_the_cats_box(shared_weights: Path, file: str) -> None:
    rgb = _photo(CATS, file)
    (cat, *_) = make_detector("yolox", {}).detect(rgb)
    assert cat.attributes == {"class": "cat"} and cat.landmarks == {} and 0.3 <= cat.score <= 1
    face = make_detector("fallback", CHAIN).detect(rgb)[0]
    assert _eyes_inside(face) and face.landmarks["eye_left"][0] < face.landmarks["eye_right"][0]
    assert face.attributes["object_box"] == list(cat.box)  # found inside the cat's box
    x0, y0, x1, y1 = face.box
    assert cat.box[0] - 1 <= x0 < x1 <= cat.box[2] + 1 and min(x1 - x0, y1 - y0) >= 32
    eyes, nose = face.landmarks, face.landmarks["nose"]
    assert eyes["eye_left"][1] < nose[1] < face.landmarks["chin"][1]  # eyes above the nose above the chin
    assert eyes["ear_left_outer"][0] < eyes["ear_right_outer"][0]


@needs_photos
def test_plain_dlib_svm_finds_the_face_in_a_face_crop(shared_weights: Path) -> None:
    rgb = _photo(CATS, CAT_PHOTOS[0])
    (face,) = make_detector("dlib_svm", {}).detect(rgb)
    assert _eyes_inside(face) and face.score > -0.3
    # box roughly ears to chin: most of the 512 px AFHQ crop
    assert 250 <= face.box[2] - face.box[0] <= 450


@needs_photos
def test_cat_eyes_align_without_a_mouth(shared_weights: Path) -> None:
    face = make_detector("dlib_svm", {}).detect(_photo(CATS, CAT_PHOTOS[0]))[0]
    spec = {"method": "eyes", "size": 128, "eye_distance": 0.3, "eye_height": 0.4}
    alignment = align_face(face, spec)
    expected = align_by_eyes(face.landmarks["eye_left"], face.landmarks["eye_right"], 128)
    assert np.array_equal(alignment.matrix, expected.matrix) and abs(alignment.roll_degrees) < 20


@needs_photos
@pytest.mark.parametrize("file", ["3ddfa_test1.jpg", "deepface_img24.jpg"])
def test_a_photo_of_a_person_has_no_cat(shared_weights: Path, file: str) -> None:
    if not (HUMANS / file).is_file():
        pytest.skip(f"{file} not among the shared human photos")
    rgb = _photo(HUMANS, file)
    assert make_detector("yolox", {}).detect(rgb) == []
    assert make_detector("fallback", CHAIN).detect(rgb) == []
    (person, *_) = make_detector("yolox", {"classes": ["person"]}).detect(rgb)  # the net does see the person
    assert person.attributes == {"class": "person"}


@needs_photos
def test_detection_is_deterministic(shared_weights: Path) -> None:
    rgb = _photo(CATS, CAT_PHOTOS[1])
    for name, options in (("yolox", {}), ("dlib_svm", {}), ("fallback", CHAIN)):
        first = make_detector(name, options).detect(rgb)
        again = make_detector(name, options)
        assert first and again.detect(rgb) == first and again.detect(rgb.copy()) == first
