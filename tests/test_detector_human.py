"""`yunet` and `retinaface`: options, versions, missing or damaged weights, RetinaFace's priors, decoding and
NMS on made-up numbers, and both detectors on real photos from ../shared (skipped where it is absent)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from preprocessing.faces.detector_retinaface import decode, nms, priors
from preprocessing.faces.detector_yunet import YuNetDetector, _five_points, _shrink
from preprocessing.faces.detectors import Face, available, make_detector
from preprocessing.faces.weights import WEIGHTS_ENV, WeightsDamaged, WeightsMissing

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HUMAN = SHARED / "data" / "real" / "human"
CAT = SHARED / "data" / "real" / "cat"
needs_models = pytest.mark.skipif(
    not (SHARED / "models").is_dir(), reason="../shared/models absent: real detector weights"
)
needs_photos = pytest.mark.skipif(
    not (SHARED / "models").is_dir() or not HUMAN.is_dir(), reason="../shared absent: real weights and photos"
)
FIVE = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")
# Both YuNet trainings and RetinaFace.
REAL = [("yunet", {}), ("yunet", {"model": "s"}), ("retinaface", {})]


@pytest.fixture
def shared_weights(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real weights; torch on one thread, because waiting threads made RetinaFace 10x slower on a busy
    machine (the thread-count test checks the faces do not depend on it)."""
    import torch

    monkeypatch.setenv(WEIGHTS_ENV, str(SHARED / "models"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def random_retinaface(tmp_path: Path) -> Path:
    """A RetinaFace checkpoint with random weights, saved the way DataParallel training saves one."""
    import torch

    from preprocessing.faces.detector_retinaface import _network

    torch.manual_seed(0)
    path = tmp_path / "random.pth"
    torch.save({f"module.{key}": value for key, value in _network().state_dict().items()}, path)
    return path


def test_both_are_registered() -> None:
    assert {"yunet", "retinaface"} <= set(available())


@pytest.mark.parametrize(
    ("name", "options", "says"),
    [
        ("yunet", {"modle": "n"}, "unknown option"),
        ("yunet", {"model": "m"}, "'model'"),
        ("yunet", {"score_threshold": 1.5}, "'score_threshold'"),
        ("yunet", {"score_threshold": True}, "'score_threshold'"),
        ("yunet", {"score_threshold": "0.6"}, "'score_threshold'"),
        ("yunet", {"nms_threshold": -0.1}, "'nms_threshold'"),
        ("yunet", {"max_side": -1}, "'max_side'"),
        ("yunet", {"max_side": 16}, "'max_side'"),
        ("yunet", {"max_side": 640.0}, "'max_side'"),
        ("yunet", {"weights": 3}, "'weights'"),
        ("retinaface", {"upsample": 1}, "unknown option"),
        ("retinaface", {"score_threshold": 2}, "'score_threshold'"),
        ("retinaface", {"nms_threshold": None}, "'nms_threshold'"),
        ("retinaface", {"max_side": 8}, "'max_side'"),
        ("retinaface", {"weights": None}, "'weights'"),
    ],
)
def test_bad_options_are_rejected_before_any_weights_are_read(
    name: str, options: dict, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))  # empty: reaching the weights would raise WeightsMissing
    with pytest.raises(ValueError, match=says):
        make_detector(name, options)


@pytest.mark.parametrize(
    ("name", "options", "file", "model"),
    [
        ("yunet", {}, "yunet_n_640_640.onnx", "yunet"),
        ("yunet", {"model": "s"}, "yunet_s_640_640.onnx", "yunet"),
        ("retinaface", {}, "mobilenet0.25_Final.pth", "retinaface_mobilenet025"),
    ],
)
def test_missing_weights_name_the_file_and_the_fetch_command(
    name: str, options: dict, file: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(WeightsMissing) as error:
        make_detector(name, options)
    message = str(error.value)
    assert file in message and f"twingan fetch {model}" in message and "\n" not in message


@pytest.mark.parametrize("name", ["yunet", "retinaface"])
def test_a_users_weights_file_that_is_absent_or_unreadable_is_one_clear_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing, match="no such file"):
        make_detector(name, {"weights": str(tmp_path / "mine.bin")})
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a network" * 10)
    with pytest.raises(WeightsDamaged, match=r"junk\.bin"):
        make_detector(name, {"weights": str(junk)})


def test_retinaface_loads_prefixed_keys_strictly_and_refuses_another_layout(
    random_retinaface: Path, tmp_path: Path
) -> None:
    import torch

    detector = make_detector("retinaface", {"weights": str(random_retinaface)})
    assert "random.pth@" in detector.version
    state = torch.load(random_retinaface, map_location="cpu", weights_only=True)
    state.pop("module.LandmarkHead.2.conv1x1.bias")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(WeightsDamaged, match="not a RetinaFace"):
        make_detector("retinaface", {"weights": str(tmp_path / "partial.pth")})


def test_retinaface_version_names_every_option(random_retinaface: Path) -> None:
    base = {"weights": str(random_retinaface)}
    versions = {
        make_detector("retinaface", {**base, **change}).version
        for change in ({}, {"score_threshold": 0.5}, {"nms_threshold": 0.3}, {"max_side": 1024})
    }
    assert len(versions) == 4
    assert all(v.startswith("torch-") and "/opencv-" in v for v in versions)


def test_retinaface_with_random_weights_still_returns_well_formed_faces(random_retinaface: Path) -> None:
    detector = make_detector("retinaface", {"weights": str(random_retinaface), "score_threshold": 0.0})
    rgb = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    faces = detector.detect(rgb)
    assert faces and all(set(face.landmarks) == {*FIVE, "mouth"} for face in faces)
    assert [face.area for face in faces] == sorted((face.area for face in faces), reverse=True)
    assert detector.detect(np.zeros((5, 200, 3), np.uint8)) == []  # below MIN_SIDE


def test_priors_are_stride_8_first_row_major_then_the_two_sizes() -> None:
    prior = priors(40, 72)  # strides 8, 16, 32: 5x9, 3x5, 2x3 cells
    assert prior.shape == (2 * (5 * 9 + 3 * 5 + 2 * 3), 4)
    np.testing.assert_allclose(prior[0], [4 / 72, 4 / 40, 16 / 72, 16 / 40])
    np.testing.assert_allclose(prior[1], [4 / 72, 4 / 40, 32 / 72, 32 / 40])
    np.testing.assert_allclose(prior[2], [12 / 72, 4 / 40, 16 / 72, 16 / 40])  # next cell to the right
    np.testing.assert_allclose(prior[2 * 9], [4 / 72, 12 / 40, 16 / 72, 16 / 40])  # next row
    np.testing.assert_allclose(prior[2 * 45], [8 / 72, 8 / 40, 64 / 72, 64 / 40])  # first stride-16 cell
    np.testing.assert_allclose(prior[-1], [80 / 72, 48 / 40, 512 / 72, 512 / 40])  # last stride-32 cell


def test_decoding_applies_the_variances_to_boxes_and_points() -> None:
    prior = np.array([[0.5, 0.25, 0.2, 0.4]])
    loc = np.array([[1.0, -1.0, np.log(2) / 0.2, 0.0]])
    landmarks = np.array([[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0]])
    boxes, points = decode(loc, landmarks, prior)
    # centre (0.5 + 0.1 * 0.2, 0.25 - 0.1 * 0.4), size (0.2 * 2, 0.4)
    np.testing.assert_allclose(boxes[0], [0.52 - 0.2, 0.21 - 0.2, 0.52 + 0.2, 0.21 + 0.2])
    np.testing.assert_allclose(points[0], [[0.5, 0.25], [0.52, 0.25], [0.5, 0.29], [0.48, 0.25], [0.5, 0.21]])


def test_nms_keeps_the_best_of_overlapping_boxes_and_breaks_ties_by_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=np.float64)
    scores = np.array([0.8, 0.9, 0.7, 0.9])
    # 1 and 3 tie; 1 comes first and removes 0 and 3 (IoU 9/11); 2 overlaps nothing.
    assert nms(boxes, scores, 0.5) == [1, 2]
    assert nms(boxes, scores, 0.95) == [1, 3, 2]  # 0 is the same box as 3: IoU 1
    # IoU exactly at the threshold is kept: boxes 5x10 and 10x10 sharing half, IoU 0.5.
    assert nms(np.array([[0, 0, 10, 10], [0, 0, 5, 10]], float), np.array([0.9, 0.8]), 0.5) == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.4) == []


def test_points_are_named_by_image_x_with_the_mouth_between_the_corners() -> None:
    named = _five_points(np.array([[30.0, 10.0], [10.0, 12.0], [20.0, 20.0], [28.0, 30.0], [12.0, 31.0]]))
    assert named == {
        "eye_left": (10.0, 12.0),
        "eye_right": (30.0, 10.0),
        "nose": (20.0, 20.0),
        "mouth_left": (12.0, 31.0),
        "mouth_right": (28.0, 30.0),
        "mouth": (20.0, 30.5),
    }


def test_shrinking_keeps_small_images_and_gives_the_factors_back() -> None:
    small = np.zeros((300, 200, 3), np.uint8)
    same, fx, fy = _shrink(small, 640)
    assert same is small and (fx, fy) == (1.0, 1.0) and _shrink(small, 0)[0] is small
    shrunk, fx, fy = _shrink(np.zeros((1000, 3001, 3), np.uint8), 640)
    assert shrunk.shape == (213, 640, 3) and (fx, fy) == (3001 / 640, 1000 / 213)


class _FakeYuNet:
    """Stands in for cv2.FaceDetectorYN: one face at fixed coordinates of the image it is given."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def setInputSize(self, size: tuple[int, int]) -> None:
        self.size = size

    def detect(self, bgr: np.ndarray) -> tuple[int, np.ndarray]:
        self.seen.append(bgr)
        row = [10, 20, 40, 50, 30, 35, 15, 34, 22, 45, 27, 55, 16, 56, 0.9]
        return 1, np.array([row], np.float32)


def test_yunet_gets_bgr_and_maps_boxes_and_points_back_to_the_source() -> None:
    detector = YuNetDetector.__new__(YuNetDetector)
    detector.max_side = 200
    detector._lock = threading.Lock()
    detector._net = _FakeYuNet()  # type: ignore[assignment]
    rgb = np.zeros((200, 400, 3), np.uint8)
    rgb[..., 0] = 255  # red
    (face,) = detector.detect(rgb)
    seen = detector._net.seen[0]  # type: ignore[attr-defined]
    assert seen.shape == (100, 200, 3) and detector._net.size == (200, 100)  # type: ignore[attr-defined]
    assert (seen[0, 0] == [0, 0, 255]).all()  # red is the last channel in BGR
    assert face.box == (20.0, 40.0, 100.0, 140.0) and face.score == pytest.approx(0.9)
    assert face.landmarks["eye_left"] == (30.0, 68.0) and face.landmarks["eye_right"] == (60.0, 70.0)
    assert face.landmarks["nose"] == (44.0, 90.0)
    assert face.landmarks["mouth_left"] == (32.0, 112.0) and face.landmarks["mouth_right"] == (54.0, 110.0)


@needs_models
def test_yunet_version_names_opencv_the_weights_and_every_option(shared_weights: None) -> None:
    import cv2

    versions = {
        make_detector("yunet", change).version
        for change in ({}, {"model": "s"}, {"score_threshold": 0.5}, {"nms_threshold": 0.4}, {"max_side": 1024})
    }
    assert len(versions) == 5
    assert all(v.startswith(f"opencv-{cv2.__version__}/yunet-") for v in versions)
    assert any("yunet_s_640_640.onnx@8f2383e4dd3c" in v for v in versions)


def _photo(name: str, folder: Path = HUMAN) -> np.ndarray:
    from preprocessing.images import load_rgb

    return np.asarray(load_rgb(folder / name))


def _points_in_box(face: Face) -> bool:
    x0, y0, x1, y1 = face.box
    return all(x0 <= face.landmarks[k][0] <= x1 and y0 <= face.landmarks[k][1] <= y1 for k in FIVE)


@needs_photos
@pytest.mark.parametrize(("name", "options"), REAL)
@pytest.mark.parametrize(
    "photo",
    [
        "deepface_img12.jpg",  # frontal
        "prnet_image02420.jpg",  # profile with sunglasses, yaw +71 degrees: dlib's HOG finds nothing
        "prnet_image00251.jpg",  # hair over the face, yaw -55
    ],
)
def test_finds_frontal_and_turned_faces_with_points_inside_the_box(
    name: str, options: dict, photo: str, shared_weights: None
) -> None:
    faces = make_detector(name, options).detect(_photo(photo))
    assert faces
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert min(x1 - x0, y1 - y0) >= 100 and _points_in_box(face)
    assert face.landmarks["eye_left"][0] < face.landmarks["eye_right"][0]


@needs_photos
@pytest.mark.parametrize(("name", "options"), REAL)
def test_finds_the_people_of_a_group_photo_largest_first(name: str, options: dict, shared_weights: None) -> None:
    faces = make_detector(name, options).detect(_photo("facenet_multiface.jpg"))  # six friends
    assert len([face for face in faces if min(face.box[2] - face.box[0], face.box[3] - face.box[1]) >= 40]) >= 6
    assert [face.area for face in faces] == sorted((face.area for face in faces), reverse=True)


@needs_photos
@pytest.mark.parametrize(("name", "options"), REAL)
def test_finds_no_human_face_in_a_cat_or_a_blank_image(name: str, options: dict, shared_weights: None) -> None:
    detector = make_detector(name, options)
    if CAT.is_dir():
        # Human detectors do fire on some cat faces (eyes, nose, mouth); not on this one.
        assert detector.detect(_photo("stargan_pixabay_cat_000181.jpg", CAT)) == []
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((4, 4, 3), np.uint8)) == []


@needs_photos
@pytest.mark.parametrize(("name", "options"), REAL)
def test_the_same_photo_gives_the_same_faces_bit_for_bit(name: str, options: dict, shared_weights: None) -> None:
    rgb = _photo("3ddfa_emma_input.jpg")  # 3913 px wide: shrunk first
    first = make_detector(name, options).detect(rgb)
    again = make_detector(name, options)
    assert first and again.detect(rgb) == first and again.detect(rgb.copy()) == first
    grey = rgb.mean(axis=2).astype(np.uint8)
    assert again.detect(grey) == again.detect(np.repeat(grey[:, :, None], 3, axis=2))


@needs_photos
def test_the_thread_count_does_not_change_the_faces(shared_weights: None) -> None:
    import cv2
    import torch

    rgb = _photo("facenet_multiface.jpg")
    detectors = [make_detector(name, options) for name, options in REAL]
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        one = [detector.detect(rgb) for detector in detectors]
        torch.set_num_threads(3)
        cv2.setNumThreads(3)
        three = [detector.detect(rgb) for detector in detectors]
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)
    # The same faces in the same order, to a thousandth of a pixel: not bit for bit, because how a convolution
    # splits its sums between threads is the CPU kernel's choice (on an AMD EPYC, RetinaFace's landmarks moved
    # 3e-6 px on 3 threads; they did not on the machine before it).
    for faces_one, faces_three in zip(one, three, strict=True):
        assert len(faces_one) == len(faces_three) > 0
        for a, b in zip(faces_one, faces_three, strict=True):
            assert a.box == pytest.approx(b.box, abs=1e-3) and a.score == pytest.approx(b.score, abs=1e-5)
            assert a.landmarks.keys() == b.landmarks.keys() and a.attributes == b.attributes
            for key, point in a.landmarks.items():
                assert point == pytest.approx(b.landmarks[key], abs=1e-3), key


@needs_photos
@pytest.mark.parametrize(("name", "options"), REAL)
def test_threads_sharing_one_detector_get_the_faces_of_their_own_image(
    name: str, options: dict, shared_weights: None
) -> None:
    photos = [_photo("facenet_multiface.jpg"), _photo("prnet_image02420.jpg"), _photo("deepface_img12.jpg")]
    detector = make_detector(name, options)
    alone = [detector.detect(rgb) for rgb in photos]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(detector.detect, photos * 4))
    assert together == alone * 4


@needs_models
@pytest.mark.parametrize(("name", "options"), REAL)
@pytest.mark.parametrize("shape", [(10, 2000), (2000, 20), (20, 640), (40, 9), (33, 33)])
def test_thin_or_tiny_images_give_no_made_up_faces(
    name: str, options: dict, shape: tuple[int, int], shared_weights: None
) -> None:
    # Where a side came to at most 32 px, OpenCV's FaceDetectorYN reported faces of 1e18 px (or nan).
    detector = make_detector(name, options)
    noise = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert detector.detect(np.full((*shape, 3), 100, np.uint8)) == [] and detector.detect(noise) == []


def test_yunet_pads_small_images_at_the_bottom_right_so_positions_stay() -> None:
    detector = YuNetDetector.__new__(YuNetDetector)
    detector.max_side = 640
    detector._lock = threading.Lock()
    detector._net = _FakeYuNet()  # type: ignore[assignment]
    (face,) = detector.detect(np.full((30, 50, 3), 7, np.uint8))
    seen = detector._net.seen[0]  # type: ignore[attr-defined]
    assert seen.shape == (64, 64, 3) and (seen[:30, :50] == 7).all() and not seen[30:].any() and not seen[:, 50:].any()
    assert face.box == (10.0, 20.0, 50.0, 70.0)
