"""The faces stage end to end: crops, shards, determinism, bad inputs, errors that name what to fix."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from core.params import ParamsError, load_params
from core.parquet import read_table
from core.schemas import CROPS, FACE_REJECTS, FACES
from flows.demo_data import draw_anime_face
from flows.faces import run_faces
from flows.ingest import run_ingest
from tests.builders import images as fx
from tests.builders.params import write_params

PINK, BLUE = (245, 150, 190), (40, 90, 210)


def anime_folder(folder: Path) -> None:
    """Drawn anime faces in every awkward form a folder of art contains."""
    folder.mkdir(parents=True)
    face = draw_anime_face(320, PINK, BLUE)
    for i, (hair, eyes) in enumerate([((70, 110, 220), (190, 30, 40)), ((80, 170, 90), (40, 150, 70))]):
        draw_anime_face(256 + 64 * i, hair, eyes).save(folder / f"face_{i}.png")
    face.convert("L").save(folder / "gray.png")
    rgba = face.convert("RGBA")
    rgba.putalpha(220)
    rgba.save(folder / "alpha.png")
    face.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    Image.new("RGB", (10, 10), (255, 255, 255)).save(folder / "tiny.png")
    cut = Image.new("RGB", (320, 320), (250, 250, 245))
    cut.paste(face, (-110, 0))  # the face runs off the left border
    cut.save(folder / "cut_by_border.png")
    crowd = Image.new("RGB", (6 * 200, 5 * 200), (250, 250, 245))
    for k in range(30):
        crowd.paste(draw_anime_face(200, PINK if k % 2 else (70, 110, 220), BLUE), ((k % 6) * 200, (k // 6) * 200))
    crowd.save(folder / "thirty_faces.png")
    (folder / "plain.jpg").write_bytes(fx.jpeg(3, 200, 150))  # no face at all


def run(root: Path, source: Path, faces: str = "all", **settings: Any) -> Path:
    domains = {"anime": {"source": {"kind": "folder", "path": str(source)}, "detector": {"name": "animeface"},
                         "align": {"method": "box", "size": 64, "margin": 1.5},
                         "select": {"faces": faces, "min_face_size": 24}}}  # fmt: skip
    executor = settings.pop("executor", {"kind": "thread", "workers": 1, "chunk_size": 4})
    loaded = load_params(write_params(root, domains, faces={"executor": executor, **settings}))
    run_ingest(loaded, "anime")
    run_faces(loaded, "anime")
    return root / "data" / "faces" / "anime"


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def art(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("art") / "anime"
    anime_folder(folder)
    return folder


def test_every_face_becomes_a_crop_that_maps_back_to_its_row(tmp_path: Path, art: Path) -> None:
    out = run(tmp_path / "p", art)
    faces = read_table(out / "faces.parquet", FACES).to_pylist()
    rejects = {(r["image_id"], r["reason"]) for r in read_table(out / "rejects.parquet", FACE_REJECTS).to_pylist()}
    assert len(faces) >= 6 + 20  # 2 faces + gray + alpha + cmyk + border, and most of the crowd of 30
    assert sum(reason == "no_face" for _, reason in rejects) == 2  # the 10x10 image and the plain photo
    shards = {name: pq.read_table(out / name) for name in {row["shard"] for row in faces}}
    for row in faces:
        data = shards[row["shard"]].column("image")[row["shard_row"]].as_py()
        assert shards[row["shard"]].column("face_id")[row["shard_row"]].as_py() == row["face_id"]
        assert hashlib.sha256(data).hexdigest() == row["crop_sha256"]
        with Image.open(io.BytesIO(data)) as crop:
            assert crop.size == (64, 64) and crop.mode == "RGB"
        assert len(row["transform"]) == 6 and {p["name"] for p in row["landmarks"]} >= {"eye_left", "eye_right"}
        assert json.loads(row["attributes"]).get("hair_color") is not None
    metrics = json.loads((tmp_path / "p/metrics/faces/anime.json").read_text())
    assert metrics["faces_kept"] == len(faces) and metrics["images"] == 9
    assert (tmp_path / "p/plots/faces/anime.png").is_file()


def test_output_is_byte_identical_for_one_thread_or_two_processes(tmp_path: Path, art: Path) -> None:
    one = run(tmp_path / "one", art, executor={"kind": "thread", "workers": 1, "chunk_size": 3})
    two = run(tmp_path / "two", art, executor={"kind": "process", "workers": 2, "chunk_size": 3})
    assert snapshot(one) == snapshot(two)


def test_shards_stay_under_their_bound(tmp_path: Path, art: Path) -> None:
    out = run(tmp_path / "p", art, shard_max_bytes=1 << 16)
    shards = sorted(out.glob("crops-*.parquet"))
    assert len(shards) >= 2
    for shard in shards:
        table = read_table(shard, CROPS)
        payload = sum(len(v) for v in table.column("image").to_pylist())
        assert payload <= 1 << 16 or table.num_rows == 1


def test_largest_keeps_one_face_and_lists_the_others(tmp_path: Path, art: Path) -> None:
    out = run(tmp_path / "p", art, faces="largest")
    faces = read_table(out / "faces.parquet", FACES).to_pylist()
    assert len({row["image_id"] for row in faces}) == len(faces)
    rejects = read_table(out / "rejects.parquet", FACE_REJECTS).to_pylist()
    assert sum(r["reason"] == "extra_face" for r in rejects) >= 20


def test_an_unreadable_stored_image_is_a_reject_not_a_crash(tmp_path: Path, art: Path) -> None:
    out = run(tmp_path / "p", art)
    manifest = pq.read_table(tmp_path / "p/data/raw/anime/manifest.parquet").to_pylist()
    victim = next(row for row in manifest if row["member"] == "face_0.png")
    path = tmp_path / "p/data/raw/anime" / victim["path"]
    path.write_bytes(path.read_bytes()[:200])  # damaged after ingest
    loaded = load_params(tmp_path / "p/params.yaml")
    run_faces(loaded, "anime")
    rejects = read_table(out / "rejects.parquet", FACE_REJECTS).to_pylist()
    assert any(r["image_id"] == victim["id"] and r["reason"] == "unreadable" for r in rejects)


def test_a_domain_without_detector_or_with_an_unknown_one_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    loaded = load_params(write_params(tmp_path, {"dog": {"source": {"kind": "folder", "path": "photos"}}}))
    with pytest.raises(ParamsError, match=r"domains\.dog\.detector: required by the faces stage"):
        run_faces(loaded, "dog")
    loaded = load_params(write_params(tmp_path, {"dog": {"source": {"kind": "folder", "path": "photos"},
                                                         "detector": {"name": "yolo"}}}))  # fmt: skip
    with pytest.raises(ParamsError, match=r"domains\.dog\.detector\.name: unknown detector 'yolo'"):
        run_faces(loaded, "dog")
    loaded = load_params(write_params(tmp_path, {"dog": {"source": {"kind": "folder", "path": "photos"},
                                                         "detector": {"name": "opencv_cat",
                                                                      "options": {"sharpness": 3}}}}))  # fmt: skip
    with pytest.raises(ParamsError, match=r"domains\.dog\.detector: .*sharpness"):
        run_faces(loaded, "dog")


def test_a_missing_model_file_names_the_file_and_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from preprocessing.faces import detectors

    monkeypatch.setattr(detectors, "model_dir", lambda: tmp_path / "no-models")
    (tmp_path / "photos").mkdir()
    loaded = load_params(write_params(tmp_path, {"human": {"source": {"kind": "folder", "path": "photos"},
                                                           "detector": {"name": "dlib_hog"}}}))  # fmt: skip
    with pytest.raises(detectors.ModelFileMissing, match=r"shape_predictor_5_face_landmarks\.dat.*face-recognition"):
        run_faces(loaded, "human")


def test_unfetched_detector_weights_stop_the_stage_in_one_line_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preprocessing.faces.weights import WeightsMissing

    monkeypatch.setenv("TWINGAN_DETECTOR_WEIGHTS", str(tmp_path / "no-weights"))
    (tmp_path / "photos").mkdir()
    loaded = load_params(write_params(tmp_path, {"human": {"source": {"kind": "folder", "path": "photos"},
                                                           "detector": {"name": "yunet"}}}))  # fmt: skip
    with pytest.raises(WeightsMissing, match=r"yunet_n_640_640\.onnx: not found; fetch them with `twingan fetch yunet"):
        run_faces(loaded, "human")
    assert not (tmp_path / "data" / "faces").exists()


@pytest.mark.real_data
def test_real_photos_art_and_cats(tmp_path: Path, real_data: Path) -> None:
    """The figures the issue asks for: faces found per domain, and human alignment re-measured by dlib."""
    domains = {
        "human": {"source": {"kind": "folder", "path": str(real_data / "human")},
                  "detector": {"name": "dlib_hog", "options": {"upsample": 1}},
                  "align": {"method": "eyes", "size": 256}, "select": {"faces": "all", "min_face_size": 40}},
        "anime": {"source": {"kind": "folder", "path": str(real_data / "anime")}, "detector": {"name": "animeface"},
                  "align": {"method": "box", "size": 256, "margin": 1.5, "shift_up": 0.1}},
        "cat": {"source": {"kind": "folder", "path": str(real_data / "cat")}, "detector": {"name": "opencv_cat"},
                "align": {"method": "box", "size": 256, "margin": 2.0, "shift_up": 0.2}},
    }  # fmt: skip
    loaded = load_params(write_params(tmp_path, domains))
    figures = {}
    for domain in domains:
        run_ingest(loaded, domain)
        figures[domain] = run_faces(loaded, domain)
    print(json.dumps(figures, indent=1))
    assert figures["human"]["fraction_with_face"] >= 0.85  # env.md measured 92% with a serial loop
    assert figures["human"]["aligned_within_2pct"] >= 0.95  # the bar
    assert figures["anime"]["fraction_with_face"] >= 0.6
    assert figures["cat"]["fraction_with_face"] >= 0.45
    crops = read_table(tmp_path / "data/faces/human/faces.parquet", FACES)
    assert np.all(np.asarray(crops.column("crop_size").to_pylist()) == 256)
