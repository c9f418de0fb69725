"""Datasets that come as face crops (align method "crop"): the picture's square becomes the crop, the detector
checks it, the faces it finds measure the crops' framing, and a new photo is framed the same way."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.params import ParamsError, load_params
from core.parquet import read_params, read_table
from core.schemas import FACE_REJECTS, FACES
from flows.demo_data import draw_anime_face
from flows.faces import run_faces
from flows.ingest import run_ingest
from inference.photo_faces import FaceFinder
from preprocessing.faces.align import align_crop, crop_square, transform_points, warp
from preprocessing.faces.framing import framing_errors, measure_framing, photo_align
from tests.builders import images as fx
from tests.builders.params import write_params

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO.parent / "shared" / "data" / "train"
WEIGHTS = Path(os.environ.get("TWINGAN_DETECTOR_WEIGHTS", REPO.parent / "shared" / "models"))
CROP = {"method": "crop", "size": 64}


# --- the crop itself ------------------------------------------------------------------------------------


def test_a_square_picture_at_the_crop_size_is_its_own_crop() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    alignment = align_crop(64, 64, 64)
    assert np.allclose(alignment.matrix, [[1, 0, 0], [0, 1, 0]]) and alignment.method == "crop"
    assert np.array_equal(warp(rgb, alignment), rgb)


def test_the_crop_is_the_centred_square_of_the_shorter_side_scaled() -> None:
    # A 200x100 picture: its centre 100x100 square, corners mapped onto the crop's corners at 50 px.
    alignment = align_crop(200, 100, 50)
    assert crop_square(200, 100) == (50.0, 0.0, 150.0, 100.0)
    corners = transform_points(alignment.matrix, np.array([[49.5, -0.5], [149.5, 99.5]]))
    assert np.allclose(corners, [[-0.5, -0.5], [49.5, 49.5]])
    # crop_box 0.5: the central half of the shorter side.
    assert crop_square(100, 100, 0.5) == (25.0, 25.0, 75.0, 75.0)
    with pytest.raises(ValueError, match="crop_box"):
        align_crop(100, 100, 64, 0)


def test_a_crop_domain_without_a_detector_must_say_it_takes_every_picture(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    source = {"kind": "folder", "path": "cats"}
    with pytest.raises(ParamsError, match=r"domains\.cat: select\.require_face: .*needs a detector"):
        load_params(write_params(tmp_path, {"cat": {"source": source, "align": CROP}}))
    load_params(write_params(tmp_path, {"cat": {"source": source, "align": CROP, "select": {"require_face": False}}}))
    with pytest.raises(ParamsError, match=r"domains\.cat\.align\.crop_box"):
        load_params(write_params(tmp_path, {"cat": {"source": source, "align": {**CROP, "crop_box": 1.5},
                                                    "select": {"require_face": False}}}))  # fmt: skip


# --- the faces stage on crops ---------------------------------------------------------------------------


def _run(root: Path, source: Path, domain: dict[str, Any]) -> Path:
    domains = {"anime": {"source": {"kind": "folder", "path": str(source)}, **domain}}
    executor = {"kind": "thread", "workers": 1, "chunk_size": 4}
    loaded = load_params(write_params(root, domains, faces={"executor": executor}))
    run_ingest(loaded, "anime")
    run_faces(loaded, "anime")
    return root / "data" / "faces" / "anime"


@pytest.fixture(scope="module")
def drawn_crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tight 72 px crops of drawn faces (AnimeFace needs its border for these), a plain picture, a tiny one."""
    folder = tmp_path_factory.mktemp("crops") / "anime"
    folder.mkdir()
    for i, hair in enumerate([(245, 150, 190), (70, 110, 220), (80, 170, 90), (200, 60, 50)]):
        face = draw_anime_face(400, hair, (40, 90, 210)).crop((80, 60, 320, 300)).resize((72, 72), Image.LANCZOS)
        face.save(folder / f"face_{i}.png")
    (folder / "plain.jpg").write_bytes(fx.jpeg(3, 72, 72))
    Image.new("RGB", (30, 30), (200, 200, 200)).save(folder / "tiny.png")
    return folder


def test_crops_are_checked_by_the_detector_and_their_framing_is_measured(tmp_path: Path, drawn_crops: Path) -> None:
    out = _run(tmp_path, drawn_crops, {"detector": {"name": "animeface"}, "align": CROP,
                                       "select": {"min_face_size": 48}})  # fmt: skip
    faces = read_table(out / "faces.parquet", FACES).to_pylist()
    rejects = {r["reason"] for r in read_table(out / "rejects.parquet", FACE_REJECTS).to_pylist()}
    assert len(faces) == 4 and rejects == {"no_face", "too_small"}
    assert {f["align_method"] for f in faces} == {"crop"} and {f["detector"] for f in faces} == {"animeface"}
    for face in faces:  # each crop is the picture itself at 64 px
        assert np.allclose(np.reshape(face["transform"], (2, 3))[:, :2], np.eye(2) * 64 / 72)
    framing = read_params(out / "faces.parquet")["framing"]
    assert framing["method"] in ("eyes", "box") and framing["measured_faces"] == 4 and framing["size"] == 64
    metrics = json.loads((tmp_path / "metrics/faces/anime.json").read_text())
    assert metrics["framing"]["method"] == framing["method"] and metrics["framing"]["offset_median"] < 0.1


def test_without_the_check_every_picture_big_enough_is_kept(tmp_path: Path, drawn_crops: Path) -> None:
    out = _run(tmp_path, drawn_crops, {"align": CROP, "select": {"min_face_size": 48, "require_face": False}})
    faces = read_table(out / "faces.parquet", FACES).to_pylist()
    assert len(faces) == 5 and {f["detector"] for f in faces} == {"none"} and all(not f["landmarks"] for f in faces)
    assert read_params(out / "faces.parquet")["framing"] is None


def test_framing_recovers_how_crops_were_cut_and_scores_each_face() -> None:
    """Rows whose faces sit exactly where an eye framing of 0.4 x 0.45 puts them: measured back exactly, with no
    offset; one face moved by 6 px scores that move."""
    size = 64
    rows = []
    for shift in (0, 0, 0, 6):
        left, right = (size / 2 - 0.2 * size + shift, 0.45 * size), (size / 2 + 0.2 * size + shift, 0.45 * size)
        rows.append({"detector": "x", "transform": [1, 0, 0, 0, 1, 0], "box": [10, 10, 54, 54],
                     "landmarks": [{"name": "eye_left", "x": left[0], "y": left[1]},
                                   {"name": "eye_right", "x": right[0], "y": right[1]}]})  # fmt: skip
    framing = measure_framing(rows, {"size": size, "reframe_turned": True, "turned_yaw": 35.0})
    assert framing is not None and framing["method"] == "eyes"
    assert framing["eye_distance"] == pytest.approx(0.4, abs=1e-3) and framing["eye_height"] == pytest.approx(0.45)
    errors = framing_errors(rows, framing)
    assert [e["offset"] for e in errors[:3]] == pytest.approx([0, 0, 0], abs=1e-6)
    assert errors[3]["offset"] == pytest.approx(6 / size, abs=1e-6) and errors[3]["eye_error"] == pytest.approx(6 / 64)
    assert measure_framing([{**rows[0], "detector": "none"}], {"size": 64, "reframe_turned": True,
                                                                "turned_yaw": 35.0}) is None  # fmt: skip


def test_a_new_picture_is_framed_as_the_crops_were() -> None:
    spec = {"detector": "animeface", "detector_options": {}, "align": {**CROP, "crop_box": 1.0},
            "framing": {"method": "box", "size": 64, "margin": 1.3, "shift_up": 0.14, "level": False,
                        "eye_distance": 0.3, "eye_height": 0.4}}  # fmt: skip
    assert photo_align(spec) is spec["framing"]
    assert photo_align({**spec, "align": {"method": "eyes"}}) == {"method": "eyes"}
    drawing = np.asarray(draw_anime_face(400, (245, 150, 190), (40, 90, 210)))
    (face,) = FaceFinder(spec, 32).faces_in(drawing)
    assert face.crop.shape == (64, 64, 3)
    side = 64 / 1.3  # the face box spans 1/1.3 of the crop, as in the training crops
    x0, y0, x1, y1 = face.box
    corners = transform_points(face.matrix * 2, np.array([[x0, y0], [x1, y1]]))  # at 64 px: twice the 32 px matrix
    assert abs((corners[1, 0] - corners[0, 0]) - side) < 2
    # No detector recorded: a picture is taken whole, as the training pictures were.
    whole = FaceFinder({**spec, "detector": None, "framing": None}, 32)
    assert whole.whole_pictures and whole.detector is None
    (taken,) = whole.faces_in(drawing)
    assert taken.box == (0.0, 0.0, 400.0, 400.0) and taken.crop.shape == (64, 64, 3)


# --- real crops -----------------------------------------------------------------------------------------


def _train_files(pattern: str, count: int) -> list[Path]:
    if not TRAIN.is_dir():
        pytest.skip(f"training images not available: {TRAIN} is absent (../shared is not beside the repo)")
    files = sorted(TRAIN.glob(pattern))[:count]
    assert len(files) == count, pattern
    return files


@pytest.mark.real_data
def test_real_getchu_crops_are_found_with_animeface_padding(tmp_path: Path) -> None:
    """The Anime-Face-Dataset's 64 px crops: AnimeFace as it comes finds few; with its default border and upscaling
    most, and the measured framing puts a new drawing's crop within a tenth of the crop side of the real ones."""
    from preprocessing.faces.detectors import make_detector
    from preprocessing.images import load_rgb

    files = _train_files("anime/mysdcgan_*", 40)
    pictures = [np.asarray(load_rgb(path)) for path in files]
    plain = make_detector("animeface", {"border": 0, "upscale_below": 0})
    padded = make_detector("animeface", {})
    assert sum(bool(plain.detect(p)) for p in pictures) <= 20
    assert sum(bool(padded.detect(p)) for p in pictures) >= 36
    folder = tmp_path / "getchu"
    folder.mkdir()
    for path in files:  # copies: a folder source refuses symlinks that leave it
        (folder / path.name).write_bytes(path.read_bytes())
    out = _run(tmp_path / "run", folder, {"detector": {"name": "animeface"}, "align": CROP,
                                          "select": {"min_face_size": 48}})  # fmt: skip
    metrics = json.loads((tmp_path / "run/metrics/faces/anime.json").read_text())
    assert metrics["faces_kept"] >= 36 and metrics["framing"]["offset_median"] < 0.12
    assert read_params(out / "faces.parquet")["framing"]["method"] in ("eyes", "box")


@pytest.mark.real_data
def test_utkface_crops_framed_by_eyes_agree_with_their_own_framing(monkeypatch: pytest.MonkeyPatch) -> None:
    """UTKFace's aligned crops read as crops: YuNet's eyes in them give one framing, and eye-aligning each face with
    it lands the eyes within 5% of the crop side of where the crop has them, for most faces."""
    if not (WEIGHTS / "yunet").is_dir():
        pytest.skip(f"YuNet's weights are not at {WEIGHTS / 'yunet'} (twingan fetch yunet)")
    monkeypatch.setenv("TWINGAN_DETECTOR_WEIGHTS", str(WEIGHTS))
    from preprocessing.faces.extract import FacesJob, ImageRef, process_image

    files = _train_files("human/agepro_*", 40)
    job = FacesJob("human", "/", "yunet", {}, {"method": "crop", "size": 128, "crop_box": 1.0, "reframe_turned": True,
                                               "turned_yaw": 35.0},
                   {"min_face_size": 48, "min_score": -1e9, "require_face": True}, "png", 95)  # fmt: skip
    rows = [row for path in files for row in process_image(ImageRef(path.name, str(path)[1:]), job).faces]
    assert len(rows) >= 38
    framing = measure_framing(rows, job.align)
    assert framing is not None and framing["method"] == "eyes"
    assert 0.33 < framing["eye_distance"] < 0.43 and 0.26 < framing["eye_height"] < 0.34
    errors = [e["eye_error"] for e in framing_errors(rows, framing)]
    assert np.mean(np.asarray(errors) <= 0.05) >= 0.8
