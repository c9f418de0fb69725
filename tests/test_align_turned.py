"""Turned heads keep the whole face in the crop (align_turned); frontal heads stay exactly as before.

The synthetic heads follow the model `apparent_yaw` is built on (eye distance ~ cos(yaw) of a frontal
face's in box sides, nose offset ~ NOSE_SWING * sin(yaw) eye distances), so its estimate is exact there.
Real photos (skipped without ../shared) check the same on profiles YuNet and dlib's HOG find.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from core.params import AlignParams
from preprocessing.faces.align import (
    FRONTAL_EYE_SPAN,
    NOSE_SWING,
    TURNED_RAMP_DEGREES,
    Alignment,
    align_by_eyes,
    align_face,
    align_turned,
    apparent_yaw,
    transform_points,
    turned_weight,
)
from preprocessing.faces.detectors import Face

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HUMAN = SHARED / "data" / "real" / "human"
MODELS = SHARED / "models"
SIZE = 128
SPEC = AlignParams(size=SIZE).model_dump()  # what the faces stage records: reframe_turned on, turned_yaw 35
OLD_SPEC = {"method": "eyes", "size": SIZE, "eye_distance": 0.3, "eye_height": 0.4, "margin": 1.5, "shift_up": 0.0}
ANGLES = np.linspace(0, 2 * np.pi, 72, endpoint=False)


def head(yaw: float, *, span: float = 60.0, centre: tuple[float, float] = (400.0, 300.0), roll: float = 0.0,
         mouth: bool = False) -> Face:  # fmt: skip
    """A head turned by `yaw` degrees (positive: nose to the image left), rolled by `roll` degrees clockwise.

    The box (a frontal face's: side = span / FRONTAL_EYE_SPAN) stays put while the eye distance foreshortens
    and the eyes and nose slide sideways, as on a real profile."""
    side = span / FRONTAL_EYE_SPAN
    theta, turn = math.radians(yaw), math.radians(roll)
    apparent = span * math.cos(theta)
    middle = np.array([-0.25 * side * math.sin(theta), -0.15 * side])
    points = {
        "eye_left": middle - np.array([apparent / 2, 0]),
        "eye_right": middle + np.array([apparent / 2, 0]),
        "nose": middle + np.array([-NOSE_SWING * math.sin(theta) * apparent, 0.6 * span]),
    }
    if mouth:
        points["mouth"] = middle + np.array([-0.5 * NOSE_SWING * math.sin(theta) * apparent, 1.1 * span])
    rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    landmarks = {name: tuple(float(v) for v in rotation @ p + centre) for name, p in points.items()}
    box = (centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2)
    return Face(box=box, score=1.0, landmarks=landmarks)


def eye_framing(face: Face, size: int = SIZE) -> Alignment:
    return align_by_eyes(face.landmarks["eye_left"], face.landmarks["eye_right"], size,
                         mouth=face.landmarks.get("mouth"))  # fmt: skip


def face_out_and_offset(alignment: Alignment, box: tuple[float, ...]) -> tuple[float, float]:
    """How far (fraction of the crop) the ellipse inscribed in the box leaves the crop; the box centre's
    left-right offset from the crop centre (fraction of the crop)."""
    x0, y0, x1, y1 = box
    ellipse = np.stack(
        [(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(ANGLES), (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(ANGLES)], 1
    )
    points = transform_points(alignment.matrix, ellipse) / alignment.size
    centre = transform_points(alignment.matrix, np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]))[0] / alignment.size
    return float(max(0.0, -points.min(), points.max() - 1)), float(centre[0] - 0.5)


# --------------------------------------------------------------------------------------- the yaw estimate


@pytest.mark.parametrize("yaw", [0.0, 10.0, 30.0, 45.0, 60.0, 75.0, 89.0])
@pytest.mark.parametrize("roll", [0.0, 25.0, -40.0])
def test_apparent_yaw_recovers_the_model_head(yaw: float, roll: float) -> None:
    for sign in (1, -1):
        face = head(sign * yaw, roll=roll)
        estimate = apparent_yaw(face.landmarks["eye_left"], face.landmarks["eye_right"], box=face.box,
                                nose=face.landmarks["nose"])  # fmt: skip
        assert estimate == pytest.approx(yaw, abs=1e-6)


def test_apparent_yaw_without_a_cue() -> None:
    face = head(60.0)
    eyes = face.landmarks["eye_left"], face.landmarks["eye_right"]
    assert apparent_yaw(*eyes, box=face.box) == 0.0  # no nose: nothing says which way it turned
    # No box: the eye distance counts as frontal, so only the nose speaks (and says less).
    assert 0 < apparent_yaw(*eyes, nose=face.landmarks["nose"]) < 60.0
    with pytest.raises(ValueError, match="coincide"):
        apparent_yaw((5, 5), (5, 5), nose=(5, 9))


def test_a_scattered_box_alone_does_not_read_as_turned() -> None:
    """A box a fifth larger than usual around a frontal face (detectors scatter that much) stays frontal."""
    face = head(0.0)
    x0, y0, x1, y1 = face.box
    grow = (x1 - x0) * 0.1
    bigger = (x0 - grow, y0 - grow, x1 + grow, y1 + grow)
    assert apparent_yaw(face.landmarks["eye_left"], face.landmarks["eye_right"], box=bigger,
                        nose=face.landmarks["nose"]) == 0.0  # fmt: skip


def test_turned_weight_ramps_from_the_threshold() -> None:
    assert turned_weight(0.0) == 0.0 and turned_weight(35.0) == 0.0
    assert turned_weight(35.0 + TURNED_RAMP_DEGREES / 2) == pytest.approx(0.5)
    assert turned_weight(35.0 + TURNED_RAMP_DEGREES) == 1.0 and turned_weight(90.0) == 1.0
    assert turned_weight(50.0, turned_yaw=50.0) == 0.0 and turned_weight(90.0, turned_yaw=90.0) == 0.0


# --------------------------------------------------------------------------------------- the framing


@pytest.mark.parametrize("mouth", [False, True])
def test_frontal_heads_get_the_eye_framing_bit_for_bit(mouth: bool) -> None:
    rng = np.random.default_rng(17)
    for _ in range(200):
        face = head(rng.uniform(-34.9, 34.9), span=rng.uniform(10, 400), centre=tuple(rng.uniform(-100, 3000, 2)),
                    roll=rng.uniform(-60, 60), mouth=mouth)  # fmt: skip
        size = int(rng.choice([32, 64, 128, 256]))
        reference = eye_framing(face, size)
        for spec in (SPEC, OLD_SPEC):
            got = align_face(face, spec, size)
            assert got.method == "eyes"
            assert got.matrix.tobytes() == reference.matrix.tobytes()
            assert got.roll_degrees == reference.roll_degrees


@pytest.mark.parametrize("mouth", [False, True])
@pytest.mark.parametrize("yaw", [60.0, -60.0, 80.0, -85.0])
def test_a_profile_gets_the_whole_face_centred(yaw: float, mouth: bool) -> None:
    face = head(yaw, roll=12.0, mouth=mouth)
    before, after = eye_framing(face), align_face(face, SPEC)
    assert after.method == "turned" and after.size == SIZE
    out_before, offset_before = face_out_and_offset(before, face.box)
    out_after, offset_after = face_out_and_offset(after, face.box)
    assert out_before > 0.05 or abs(offset_before) > 0.12, (out_before, offset_before)
    assert out_after == 0.0
    assert offset_after == pytest.approx(0.0, abs=1e-9)  # past the ramp: centred on the box
    # Rotation and roll are the eye framing's: the eye line stays level, at the canonical height.
    assert after.roll_degrees == before.roll_degrees
    left, right = transform_points(after.matrix, np.array([face.landmarks["eye_left"], face.landmarks["eye_right"]]))
    if not mouth:
        assert left[1] == pytest.approx(right[1], abs=1e-9)
        assert (left[1] + right[1]) / 2 == pytest.approx(0.4 * SIZE, abs=1e-9)
    # The head is as big as a frontal face of the same box.
    frontal = eye_framing(head(0.0, roll=12.0, mouth=mouth))
    assert np.linalg.det(after.matrix[:, :2]) == pytest.approx(np.linalg.det(frontal.matrix[:, :2]), rel=1e-9)


def test_the_framing_is_continuous_across_the_threshold() -> None:
    threshold = SPEC["turned_yaw"]
    below, above = align_face(head(threshold - 1e-7), SPEC), align_face(head(threshold + 1e-7), SPEC)
    assert below.method == "eyes" and above.method == "turned"
    np.testing.assert_allclose(below.matrix, above.matrix, rtol=0, atol=1e-5)
    previous = None
    for yaw in np.linspace(threshold, threshold + TURNED_RAMP_DEGREES + 5, 200):
        matrix = align_face(head(float(yaw)), SPEC).matrix
        if previous is not None:  # small yaw steps, small changes: no jump anywhere on the ramp
            assert np.abs(matrix - previous).max() < 0.02 * SIZE
        previous = matrix


def test_reframing_never_zooms_in_past_the_eye_framing() -> None:
    """A nose far to one side but eyes wide for their box: the box would zoom in; the eye scale stays."""
    face = head(60.0)
    x0, y0, x1, y1 = face.box
    small = (x0 + 40, y0 + 40, x1 - 40, y1 - 40)
    tight = Face(box=small, score=1.0, landmarks=face.landmarks)
    after, before = align_face(tight, SPEC), eye_framing(tight)
    assert after.method == "turned"
    assert np.linalg.det(after.matrix[:, :2]) == pytest.approx(np.linalg.det(before.matrix[:, :2]), rel=1e-12)


def test_switching_it_off_and_old_specs_keep_the_eye_framing() -> None:
    face = head(70.0)
    reference = eye_framing(face).matrix.tobytes()
    assert align_face(face, {**SPEC, "reframe_turned": False}).matrix.tobytes() == reference
    assert align_face(face, {**SPEC, "turned_yaw": 90.0}).matrix.tobytes() == reference
    assert align_face(face, OLD_SPEC).matrix.tobytes() == reference  # recorded before the option existed
    assert align_face(face, SPEC).matrix.tobytes() != reference


def test_box_method_and_faces_without_eyes_are_untouched() -> None:
    face = head(70.0)
    box_spec = {**SPEC, "method": "box"}
    eyes = (face.landmarks["eye_left"], face.landmarks["eye_right"])
    assert align_face(face, box_spec).method == "box"
    blind = Face(box=face.box, score=1.0, landmarks={})
    assert align_face(blind, SPEC).method == "box"
    assert align_face(face, box_spec).roll_degrees == pytest.approx(math.degrees(math.atan2(
        eyes[1][1] - eyes[0][1], eyes[1][0] - eyes[0][0])))  # fmt: skip


def test_align_turned_rejects_a_bad_threshold_and_ignores_a_degenerate_box() -> None:
    face = head(70.0)
    eyes = (face.landmarks["eye_left"], face.landmarks["eye_right"])
    with pytest.raises(ValueError, match="turned_yaw"):
        align_turned(*eyes, face.box, SIZE, nose=face.landmarks["nose"], turned_yaw=120.0)
    flat = align_turned(*eyes, (10, 10, 10, 50), SIZE, nose=face.landmarks["nose"])
    assert flat.method == "eyes" and flat.matrix.tobytes() == eye_framing(face).matrix.tobytes()


# --------------------------------------------------------------------------------------- params and model files


def test_align_params_options() -> None:
    params = AlignParams()
    assert params.reframe_turned is True and params.turned_yaw == 35.0
    assert AlignParams.model_validate(OLD_SPEC).reframe_turned is True  # a params.yaml without the keys
    assert AlignParams(reframe_turned=False, turned_yaw=50).model_dump()["turned_yaw"] == 50.0
    for bad in ({"turned_yaw": -1}, {"turned_yaw": 91}, {"reframe_turned": "sometimes"}, {"turned": True}):
        with pytest.raises(ValidationError):
            AlignParams.model_validate(bad)


def test_model_files_old_and_new_crop_as_they_were_trained(tmp_path: Path) -> None:
    from tests.builders.models import ANIME_FACES, HUMAN_FACES, tiny_model
    from training.model_file import load_model

    face = head(70.0)
    assert "reframe_turned" not in HUMAN_FACES["align"]
    old = tiny_model(tmp_path / "old.pt")
    new = tiny_model(tmp_path / "new.pt", faces={"human": {**HUMAN_FACES, "align": AlignParams(size=64).model_dump()},
                                                 "anime": ANIME_FACES})  # fmt: skip
    _, old_info = load_model(old)
    _, new_info = load_model(new)
    old_align, new_align = old_info.faces_of("human")["align"], new_info.faces_of("human")["align"]
    assert new_align["reframe_turned"] is True and new_align["turned_yaw"] == 35.0
    assert align_face(face, old_align).matrix.tobytes() == eye_framing(face, 64).matrix.tobytes()
    assert align_face(face, new_align).method == "turned"


# --------------------------------------------------------------------------------------- real photos

TURNED = ["deca_image00181.jpg", "prnet_image00475.jpg", "prnet_testimages_3.jpg", "prnet_image02420.jpg",
          "3ddfa_cpp_test2.jpg"]  # fmt: skip
FRONTAL = ["stargan_m_016387.jpg", "deepface_img18.jpg", "facerec_obama-240p.jpg", "deca_image02202.jpg"]


def _largest_face(detector: object, name: str) -> Face:
    from preprocessing.images import load_rgb

    faces = detector.detect(np.asarray(load_rgb(HUMAN / name)))  # type: ignore[attr-defined]
    assert faces, f"{name}: no face found"
    return faces[0]


@pytest.mark.real_data
@pytest.mark.skipif(
    not (MODELS / "yunet").is_dir() or not HUMAN.is_dir(),
    reason="../shared/models/yunet or ../shared/data/real/human absent: real detector weights and photos",
)
def test_real_profiles_found_by_yunet_are_whole_and_frontals_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINGAN_DETECTOR_WEIGHTS", str(MODELS))
    from preprocessing.faces.detectors import make_detector

    try:
        detector = make_detector("yunet", {})
    except (ValueError, RuntimeError) as error:  # no yunet detector in this checkout, or no FaceDetectorYN
        pytest.skip(f"yunet unavailable: {error}")
    for name in TURNED:
        face = _largest_face(detector, name)
        out, offset = face_out_and_offset(align_face(face, SPEC), face.box)
        assert align_face(face, SPEC).method == "turned", name
        assert out <= 0.03 and abs(offset) <= 0.12, (name, out, offset)
    for name in FRONTAL:
        face = _largest_face(detector, name)
        assert align_face(face, SPEC).matrix.tobytes() == align_face(face, OLD_SPEC).matrix.tobytes(), name


@pytest.mark.real_data
@pytest.mark.skipif(not HUMAN.is_dir(), reason="../shared/data/real/human absent: real photos")
def test_real_profile_found_by_dlib_hog_is_whole_and_frontals_unchanged() -> None:
    pytest.importorskip("dlib", reason="dlib is not installed")
    from preprocessing.faces.detectors import ModelFileMissing, make_detector

    try:
        detector = make_detector("dlib_hog", {"upsample": 1, "predictor": "5", "max_side": 1024})
    except ModelFileMissing as error:
        pytest.skip(str(error))
    face = _largest_face(detector, "prnet_image00475.jpg")  # profile: the eye framing shows half the face
    out_before, _ = face_out_and_offset(align_face(face, OLD_SPEC), face.box)
    out_after, offset_after = face_out_and_offset(align_face(face, SPEC), face.box)
    assert out_before > 0.2 and out_after <= 0.03 and abs(offset_after) <= 0.12
    for name in FRONTAL:
        face = _largest_face(detector, name)
        assert align_face(face, SPEC).matrix.tobytes() == align_face(face, OLD_SPEC).matrix.tobytes(), name
