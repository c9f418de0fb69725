"""Anime face detectors: AnimeFace's border and upscale options, `animefaceboxes` (FaceBoxes: priors, decoding,
NMS, weights) and `opencv_cascade` (lbpcascade_animeface), on synthetic inputs and on real character art.

The real weights and images are read from ../shared (models and data/real, data/train), never copied into the
repository; those tests are skipped with a reason when it is absent.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import pytest

from preprocessing.faces import detector_faceboxes as fb
from preprocessing.faces.detectors import Detector, _distribution_version, available, make_detector
from preprocessing.faces.weights import WEIGHTS_ENV, WeightsDamaged, WeightsMissing

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
ANIME = SHARED / "data" / "real" / "anime"
GETCHU = SHARED / "data" / "train" / "anime"
needs_models = pytest.mark.skipif(not MODELS.is_dir(), reason="../shared/models absent: real detector weights")
needs_art = pytest.mark.skipif(
    not (MODELS.is_dir() and ANIME.is_dir() and GETCHU.is_dir()),
    reason="../shared/models or ../shared/data (real, train) absent: real weights and character art",
)
PINK = (245, 150, 190)
BLUE = (40, 90, 210)


@pytest.fixture
def shared_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(MODELS))


@cache
def _built(name: str, options: tuple[tuple[str, Any], ...]) -> Detector:
    return make_detector(name, dict(options))


def built(name: str, **options: Any) -> Detector:
    """One detector per configuration for the module: FaceBoxes and AnimeFace take a while to build."""
    return _built(name, tuple(sorted(options.items())))


def drawn_face(size: int = 320) -> np.ndarray:
    from flows.demo_data import draw_anime_face

    return np.asarray(draw_anime_face(size, PINK, BLUE))


def load(path: Path) -> np.ndarray:
    from preprocessing.images import load_rgb

    return np.asarray(load_rgb(path))


def test_the_anime_detectors_are_registered() -> None:
    assert {"animeface", "animefaceboxes", "opencv_cascade"} <= set(available())


# --- AnimeFace: border and upscale ----------------------------------------------------------------


def test_animeface_pads_and_upscales_by_default_and_its_version_says_so() -> None:
    old = f"animeface-{_distribution_version('animeface')}/pillow-{PIL.__version__}"
    assert built("animeface").version == old + "/border0.25/up96"
    assert make_detector("animeface", {"border": 0, "upscale_below": 0}).version == old  # AnimeFace as it comes
    assert built("animeface", upscale_below=0).version == old + "/border0.25"
    assert built("animeface", border=0, upscale_below=128).version == old + "/up128"
    assert built("animeface", border=0.25, upscale_below=256).version == old + "/border0.25/up256"


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"border": -0.1}, "border"),
        ({"border": "0.25"}, "border"),
        ({"border": True}, "border"),
        ({"border": 3}, "border"),
        ({"upscale_below": -1}, "upscale_below"),
        ({"upscale_below": 1.5}, "upscale_below"),
    ],
)
def test_animeface_bad_options_are_errors_that_name_them(options: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):
        make_detector("animeface", options)


def test_animeface_border_and_upscale_map_boxes_and_points_back_to_the_source() -> None:
    image = drawn_face(320)
    (plain,) = built("animeface", border=0, upscale_below=0).detect(image)
    for options in ({"border": 0.25}, {"border": 0.4}, {"border": 0, "upscale_below": 640},
                    {"border": 0.1, "upscale_below": 500}):  # fmt: skip
        faces = built("animeface", **options).detect(image)
        assert len(faces) == 1, options
        face = faces[0]
        # AnimeFace's window sizes step through a pyramid: the box may be a size step off, not elsewhere.
        side, found_side = plain.box[2] - plain.box[0], face.box[2] - face.box[0]
        assert 0.75 < found_side / side < 1.33, (options, face.box, plain.box)
        centre = np.add(face.box[:2], face.box[2:]) / 2
        assert np.allclose(centre, np.add(plain.box[:2], plain.box[2:]) / 2, atol=0.12 * side), (options, face.box)
        for name in ("eye_left", "eye_right", "mouth"):
            assert np.allclose(face.landmarks[name], plain.landmarks[name], atol=0.08 * side), (options, name)
        # Colours are measured in the source pixels (a white border would otherwise decide the hair colour).
        assert np.abs(np.subtract(face.attributes["hair_color"], PINK)).max() <= 20, options
        assert face.attributes == built("animeface", **options).detect(image.copy())[0].attributes


def test_animeface_finds_a_face_that_fills_the_image_only_with_a_border() -> None:
    image = drawn_face(400)[95:330, 100:300]  # the face ellipse to the image's edges, no background
    assert built("animeface", border=0, upscale_below=0).detect(image) == []
    faces = built("animeface").detect(image)  # the default border
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert -20 < x0 < x1 < image.shape[1] + 20 and -20 < y0 < y1 < image.shape[0] + 20


def test_animeface_small_images_need_upscaling() -> None:
    image = np.asarray(PIL.Image.fromarray(drawn_face(400)).resize((96, 96), PIL.Image.Resampling.LANCZOS))
    assert built("animeface", border=0, upscale_below=0).detect(image) == []
    faces = built("animeface", border=0, upscale_below=256).detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert 0 <= face.box[0] < face.box[2] <= 96 and 0 <= face.box[1] < face.box[3] <= 96
    assert face.landmarks["eye_left"][0] < 48 < face.landmarks["eye_right"][0]  # the eyes are drawn at 38 and 58


# --- FaceBoxes: priors, decoding, NMS -------------------------------------------------------------


def test_priors_follow_the_layout_of_the_network_outputs() -> None:
    height, width = 100, 200
    prior = fb.priors(height, width)
    cells = [-(-height // s) * -(-width // s) for s in fb.STEPS]
    assert len(prior) == 21 * cells[0] + cells[1] + cells[2]
    # Cell (0, 0) at step 32: size 32 densified 4x4 (y outer, x inner), 64 2x2, 128 once at the centre.
    first = prior[:21] * [width, height, width, height]
    assert np.allclose(first[:4, :2], [(0, 0), (8, 0), (16, 0), (24, 0)])
    assert np.allclose(first[4, :2], (0, 8)) and np.allclose(first[:16, 2:], 32)
    assert np.allclose(first[16:20, :2], [(0, 0), (16, 0), (0, 16), (16, 16)]) and np.allclose(first[16:20, 2:], 64)
    assert np.allclose(first[20], (16, 16, 128, 128))
    # The next cell is to the right (row-major); step 64 starts after all step-32 cells.
    assert np.allclose(prior[21, :2] * [width, height], (32, 0))
    assert np.allclose(prior[21 * cells[0]] * [width, height, width, height], (32, 32, 256, 256))
    assert np.allclose(prior[-1] * [width, height, width, height], (192, 64, 512, 512))  # step 128, cell (0, 1)


def test_the_network_gives_one_output_per_prior_at_any_size() -> None:
    import torch

    network = fb.build_network().eval()
    for height, width in ((8, 8), (100, 200), (257, 63)):
        with torch.inference_mode():
            loc, conf = network(torch.zeros(1, 3, height, width))
        assert loc.shape == (1, len(fb.priors(height, width)), 4)
        assert conf.shape == (1, len(fb.priors(height, width)), 2)
        assert torch.allclose(conf.sum(-1), torch.ones(1))


def test_decoding_applies_the_variances() -> None:
    prior = np.array([[0.5, 0.5, 0.2, 0.1]])
    assert np.allclose(fb.decode(np.zeros((1, 4)), prior), [[0.4, 0.45, 0.6, 0.55]])
    loc = np.array([[1.0, -2.0, np.log(2) / 0.2, 0.0]])  # centre moves 0.1 and -0.2 prior sizes; width doubles
    assert np.allclose(fb.decode(loc, prior), [[0.52 - 0.2, 0.48 - 0.05, 0.52 + 0.2, 0.48 + 0.05]])


def test_nms_keeps_the_best_of_overlapping_boxes_and_breaks_ties_by_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=np.float64)
    assert fb.nms(boxes, np.array([0.9, 0.95, 0.5, 0.9]), 0.3) == [1, 2]
    assert fb.nms(boxes, np.array([0.9, 0.9, 0.9, 0.9]), 0.3) == [0, 2]  # equal scores: the first wins
    assert fb.nms(boxes[:2], np.array([0.9, 0.95]), 0.9) == [1, 0]  # IoU 0.82 is not above 0.9
    assert fb.nms(np.zeros((0, 4)), np.zeros(0), 0.3) == []


def test_head_boxes_become_face_boxes_narrower_and_lower() -> None:
    heads = np.array([[0.0, 0.0, 170.0, 170.0], [10.0, 20.0, 44.0, 71.0]])
    faces = fb.face_boxes(heads)
    assert np.allclose(faces[0], (35, 65, 135, 165))  # 100 px wide, centre 0.3 widths below the head's
    assert np.allclose(faces[1], (17, 36.5, 37, 66.5))  # 20 x 30, centre (27, 45.5 + 6)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"box": "hair"}, "box"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"score_threshold": "0.5"}, "score_threshold"),
        ({"nms_threshold": -0.1}, "nms_threshold"),
        ({"max_side": -1}, "max_side"),
        ({"weights": 3}, "weights"),
    ],
)
def test_faceboxes_bad_options_are_errors_that_name_them(options: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):
        make_detector("animefaceboxes", options)


def test_missing_weights_name_the_file_and_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    for name, model, file in (
        ("animefaceboxes", "animefaceboxes", "FaceBoxes_epoch_90.pth"),
        ("opencv_cascade", "lbpcascade_animeface", "lbpcascade_animeface.xml"),
    ):
        with pytest.raises(WeightsMissing) as caught:
            make_detector(name, {})
        message = str(caught.value)
        assert file in message and f"twingan fetch {model}" in message, message


def test_own_faceboxes_weights_load_with_a_module_prefix_and_bad_files_are_refused(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    state = {f"module.{key}": value for key, value in fb.build_network().state_dict().items()}
    path = tmp_path / "mine.pth"
    torch.save(state, path)
    detector = make_detector("animefaceboxes", {"weights": str(path), "score_threshold": 0.99})
    assert "mine.pth@" in detector.version
    assert detector.detect(drawn_face(96)) == detector.detect(drawn_face(96))
    torch.save({key: value for key, value in list(state.items())[:-1]}, path)
    with pytest.raises(WeightsDamaged, match="not FaceBoxes weights"):
        make_detector("animefaceboxes", {"weights": str(path)})
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsDamaged, match="torch cannot read it"):
        make_detector("animefaceboxes", {"weights": str(path)})
    with pytest.raises(WeightsMissing, match="no such file"):
        make_detector("animefaceboxes", {"weights": str(tmp_path / "absent.pth")})


def test_an_unreadable_cascade_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mine.xml"
    path.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(WeightsDamaged, match="cascade"):
        make_detector("opencv_cascade", {"weights": str(path)})


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"model": "haarcascade_frontalface"}, "model"),
        ({"scale_factor": 1.0}, "scale_factor"),
        ({"min_neighbors": -1}, "min_neighbors"),
        ({"min_size": 0}, "min_size"),
        ({"max_side": 1.5}, "max_side"),
    ],
)
def test_cascade_bad_options_are_errors_that_name_them(options: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):
        make_detector("opencv_cascade", options)


@needs_models
def test_versions_name_the_weights_and_every_option(shared_weights: None) -> None:
    boxes = built("animefaceboxes")
    assert re.search(r"FaceBoxes_epoch_90\.pth@070575e4ad82", boxes.version)
    changed = {"score_threshold": 0.6, "nms_threshold": 0.4, "max_side": 640, "box": "face"}
    others = {make_detector("animefaceboxes", {key: value}).version for key, value in changed.items()}
    assert len(others | {boxes.version}) == 5
    cascade = built("opencv_cascade")
    assert "lbpcascade_animeface.xml@9376d30ac38d" in cascade.version
    changed = {"scale_factor": 1.2, "min_neighbors": 3, "min_size": 32, "max_side": 640}
    others = {make_detector("opencv_cascade", {key: value}).version for key, value in changed.items()}
    assert len(others | {cascade.version}) == 5


@needs_models
@pytest.mark.parametrize("name", ["animefaceboxes", "opencv_cascade"])
def test_tiny_blank_and_odd_images_give_no_face_without_crashing(name: str, shared_weights: None) -> None:
    detector = built(name)
    images = [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((10, 10), np.uint8),
        np.zeros((64, 48, 4), np.uint8),
        np.full((64, 64, 3), 255, np.uint8)[:, ::-1],  # not contiguous
    ]
    for image in images:
        assert detector.detect(image) == [], image.shape
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((16, 16, 3), np.float32))


# --- real character art (../shared/data) ----------------------------------------------------------

BORDER = {"border": 0.25, "upscale_below": 96}  # the defaults, measured on real data
AS_IT_COMES = {"border": 0, "upscale_below": 0}
CHAIN = {
    "detectors": [{"name": "animefaceboxes", "options": {"box": "face"}}, {"name": "animeface", "options": BORDER}]
}


def assert_face_in(face: Any, image: np.ndarray, slack: float = 0.25) -> None:
    """A box of plausible size, on (or a little past) the image."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = face.box
    side = x1 - x0
    assert 0.1 * min(height, width) < side <= (1 + slack) * max(height, width), face.box
    assert -slack * side <= x0 < x1 <= width + slack * side and -slack * side <= y0 < y1 <= height + slack * side


@pytest.mark.real_data
@needs_art
@pytest.mark.parametrize("file", ["danbooregion_app1.jpg", "danbooregion_3.input.png"])
def test_animefaceboxes_finds_heads_animeface_misses(file: str, shared_weights: None) -> None:
    image = load(ANIME / file)
    assert built("animeface", **AS_IT_COMES).detect(image) == [] and built("animeface", **BORDER).detect(image) == []
    faces = built("animefaceboxes").detect(image)
    assert faces and faces[0].score >= 0.5 and faces[0].landmarks == {}
    assert_face_in(faces[0], image)
    assert faces == built("animefaceboxes").detect(image.copy())
    (face,) = [f for f in built("animefaceboxes", box="face").detect(image) if f.score == faces[0].score]
    head_width, face_width = faces[0].box[2] - faces[0].box[0], face.box[2] - face.box[0]
    assert face_width == pytest.approx(head_width / fb.HEAD_PER_FACE) and face.box[1] > faces[0].box[1]


@pytest.mark.real_data
@needs_art
@pytest.mark.parametrize(
    "file",
    [
        "moeface_hakurei_reimu_face_113_227_61.png",
        "moeface_izumi_konata_face_163_490_17.png",
        "moeface_shana_face_227_208_82.png",
    ],
)
def test_animeface_with_a_border_finds_tight_face_crops(file: str) -> None:
    image = load(ANIME / file)
    assert built("animeface", **AS_IT_COMES).detect(image) == []
    (face, *_) = built("animeface", **BORDER).detect(image)
    assert_face_in(face, image)
    for eye in ("eye_left", "eye_right"):
        x, y = face.landmarks[eye]
        assert face.box[0] <= x <= face.box[2] and face.box[1] <= y <= face.box[3]


@pytest.mark.real_data
@needs_art
def test_a_64_px_getchu_crop_is_found_only_with_border_and_upscale() -> None:
    image = load(GETCHU / "mysdcgan_10176_2004.jpg")
    assert image.shape == (64, 64, 3)
    assert built("animeface", **AS_IT_COMES).detect(image) == []
    (face,) = built("animeface", **BORDER).detect(image)
    assert_face_in(face, image)
    assert face.box[2] - face.box[0] >= 32  # the anime domain's select.min_face_size


@pytest.mark.real_data
@needs_art
@pytest.mark.parametrize("file", ["moeface_shana_face_218_218_97.png", "waifu2x_miku_cc_by-nc.jpg"])
def test_lbpcascade_finds_anime_faces(file: str, shared_weights: None) -> None:
    image = load(ANIME / file)
    faces = built("opencv_cascade").detect(image)
    assert faces and faces[0].landmarks == {}
    assert_face_in(faces[0], image, slack=0)
    if max(image.shape[:2]) >= 400:  # on a copy at half size: the same face, mapped back
        small = built("opencv_cascade", max_side=max(image.shape[:2]) // 2).detect(image)
        assert small and np.allclose(small[0].box, faces[0].box, atol=0.2 * (faces[0].box[2] - faces[0].box[0]))


@pytest.mark.real_data
@needs_art
def test_the_real_data_chain_takes_heads_from_faceboxes_and_crops_from_animeface(shared_weights: None) -> None:
    chain = make_detector("fallback", CHAIN)
    (head, *_) = chain.detect(load(ANIME / "danbooregion_app1.jpg"))
    assert head.attributes["found_by"] == "animefaceboxes"
    crop = load(ANIME / "moeface_hakurei_reimu_face_113_227_61.png")
    (face, *_) = chain.detect(crop)
    assert face.attributes["found_by"] == "animeface" and "eye_left" in face.landmarks


@pytest.mark.real_data
@needs_art
def test_a_cat_photo_has_no_anime_face(shared_weights: None) -> None:
    image = load(SHARED / "data" / "real" / "cat" / "catfaceid_appy_2020-02-09_18-19-08.jpg")
    for detector in (built("animefaceboxes"), built("animeface", **BORDER), built("opencv_cascade")):
        assert detector.detect(image) == [], detector.version
