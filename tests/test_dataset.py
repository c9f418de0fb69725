"""The dataset@<domain> stage and its parts: near duplicates, filters, splits, weights, pixel shards."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageEnhance

from core.params import load_params
from core.parquet import SchemaMismatchError, read_params, read_table
from core.schemas import (
    CROPS,
    DATASET_DUPLICATES,
    DATASET_MANIFEST,
    DATASET_PIXELS,
    DATASET_REJECTS,
    FACES,
    RAW_MANIFEST,
)
from flows.dataset import run_dataset
from flows.demo_data import draw_anime_face
from flows.faces import run_faces
from flows.ingest import run_ingest
from flows.tags import run_tags
from preprocessing.dataset.balance import balanced_weights
from preprocessing.dataset.dedupe import near_duplicate_pairs, remove_near_duplicates
from preprocessing.dataset.quality import face_side_in_source
from preprocessing.dataset.splits import assign_split, split_key
from tests.builders.params import write_params


def test_band_search_finds_exactly_the_pairs_brute_force_finds() -> None:
    rng = random.Random(0)
    hashes = [rng.getrandbits(64) for _ in range(300)]
    for i in range(0, 300, 10):  # plant near copies: flip up to 6 bits
        copy = hashes[i]
        for bit in rng.sample(range(64), rng.randint(0, 6)):
            copy ^= 1 << bit
        hashes.append(copy)
    for distance in (0, 2, 4, 6):
        pairs = (
            (i, j, bin(hashes[i] ^ hashes[j]).count("1")) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
        )
        brute = sorted(pair for pair in pairs if pair[2] <= distance)
        assert near_duplicate_pairs(hashes, distance) == brute
    with pytest.raises(ValueError, match="0-32"):
        near_duplicate_pairs(hashes, 40)


def test_groups_keep_the_preferred_face_and_a_veto_splits_them() -> None:
    hashes = [0b0000, 0b0001, 0b0011, 0xFFFF_0000]  # 0-1-2 chain within 1 bit of each other; 3 far away
    kept, removed = remove_near_duplicates(hashes, 1, preference=lambda i: (-[1, 5, 2, 0][i],))
    assert kept == [1, 3] and [(p.kept, p.removed, p.distance) for p in removed] == [(1, 0, 1), (1, 2, 1)]
    kept, _ = remove_near_duplicates(hashes, 1, preference=lambda i: (i,), also_alike=lambda i, j: j != 2)
    assert kept == [0, 2, 3]


def test_splits_are_stable_follow_the_fractions_and_keep_a_source_together() -> None:
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    assigned = [assign_split(f"image-{i}", fractions, "salt") for i in range(20000)]
    assert abs(assigned.count("train") / 20000 - 0.8) < 0.015 and abs(assigned.count("val") / 20000 - 0.1) < 0.01
    assert assigned == [assign_split(f"image-{i}", fractions, "salt") for i in range(20000)]
    assert assigned != [assign_split(f"image-{i}", fractions, "other salt") for i in range(20000)]
    page = "https://www.getchu.com/soft.phtml?id=1"
    assert split_key("source", "a", page, "img1.jpg") == split_key("source", "b", page, "img2.jpg")
    assert split_key("source_folder", "a", "/d", "x/1.jpg") != split_key("source_folder", "a", "/d", "y/1.jpg")
    with pytest.raises(ValueError, match="unknown split key 'game'"):
        split_key("game", "a", "b", "c")


def test_balanced_weights_favour_rare_values_with_mean_one_and_a_cap() -> None:
    tags = [["black hair", "1girl"]] * 90 + [["green hair", "1girl"]] * 9 + [["green hair", "male"]]
    weights = balanced_weights(tags, ["hair"], max_weight=100)
    assert weights.mean() == pytest.approx(1.0) and weights[95] / weights[0] == pytest.approx(9.0, rel=1e-5)
    both = balanced_weights(tags, ["hair", "gender"], max_weight=3)
    assert both.max() <= 3 + 1e-5 and both.mean() == pytest.approx(1.0) and both[99] == both.max()
    assert np.all(balanced_weights(tags, [], 10) == 1)


def test_face_side_in_source_reads_the_alignment_scale() -> None:
    assert face_side_in_source([0.5, 0, 3, 0, 0.5, 4], 128) == pytest.approx(256)
    angle = np.deg2rad(30)
    rotated = [2 * np.cos(angle), -2 * np.sin(angle), 0, 2 * np.sin(angle), 2 * np.cos(angle), 0]
    assert face_side_in_source(rotated, 128) == pytest.approx(64)


COLOURS = [  # (hair, eyes)
    ((240, 215, 120), (40, 90, 210)), ((70, 110, 220), (220, 180, 40)), ((200, 50, 40), (40, 150, 70)),
    ((245, 150, 190), (130, 60, 170)), ((80, 170, 90), (190, 30, 40)), ((30, 28, 35), (40, 190, 200)),
]  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six distinct drawn characters, plus a re-encoded, slightly brightened copy of one (a near
    duplicate) and a palette swap of another (the same drawing in other colours: a different character).
    The filter thresholds sit between the measured values of the drawings (AnimeFace finds no face in a
    blurred or darkened drawing, so those never reach this stage): character_3 is the least sharp (670,
    the others 820 or more), character_5 the darkest (113, the others 140 or more)."""
    root = tmp_path_factory.mktemp("dataset")
    art = root / "art"
    art.mkdir()
    for index, (hair, eyes) in enumerate(COLOURS):
        draw_anime_face(320, hair, eyes, tilt=index * 2.0 - 5).save(art / f"character_{index}.png")
    original = Image.open(art / "character_0.png")
    ImageEnhance.Brightness(original.convert("RGB")).enhance(1.04).save(art / "copy_of_0.jpg", quality=80)
    draw_anime_face(320, (150, 40, 200), (240, 140, 40), tilt=-3.0).save(art / "palette_swap_of_1.png")
    # AnimeFace as it comes: the filters' thresholds below are set against the crops of its unpadded boxes.
    animeface = {"name": "animeface", "options": {"border": 0, "upscale_below": 0}}
    domain = {"source": {"kind": "folder", "path": str(art)}, "detector": animeface,
              "align": {"method": "box", "size": 96, "margin": 1.5, "shift_up": 0.1},
              "tagger": {"name": "animeface_colors"}}  # fmt: skip
    loaded = load_params(write_params(root / "p", {"anime": domain},
                                      dataset={"image_size": 64, "row_group_rows": 2, "shard_rows": 3,
                                               "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
                                               "min_sharpness": 750, "min_brightness": 125}))  # fmt: skip
    run_ingest(loaded, "anime")
    run_faces(loaded, "anime")
    run_tags(loaded, "anime")
    run_dataset(loaded, "anime")
    return root / "p"


def _members(project: Path) -> dict[str, str]:
    raw = {
        r["id"]: r["member"] for r in read_table(project / "data/raw/anime/manifest.parquet", RAW_MANIFEST).to_pylist()
    }
    faces = read_table(project / "data/faces/anime/faces.parquet", FACES).to_pylist()
    return {face["face_id"]: raw[face["image_id"]] for face in faces}


def test_filters_duplicates_and_lineage(built: Path) -> None:
    out = built / "data/datasets/anime"
    members = _members(built)
    manifest = read_table(out / "manifest.parquet", DATASET_MANIFEST).to_pylist()
    kept = sorted(members[row["face_id"]] for row in manifest)
    rejects = {members[r["face_id"]]: r for r in read_table(out / "rejects.parquet", DATASET_REJECTS).to_pylist()}
    duplicates = read_table(out / "duplicates.parquet", DATASET_DUPLICATES).to_pylist()
    assert set(rejects) == {"character_3.png", "character_5.png"}, rejects
    assert rejects["character_3.png"]["reason"] == "blurry" and rejects["character_3.png"]["threshold"] == 750
    assert rejects["character_5.png"]["reason"] == "too_dark" and rejects["character_5.png"]["value"] < 125
    assert [(members[d["kept_face_id"]], members[d["removed_face_id"]]) for d in duplicates] == [
        ("character_0.png", "copy_of_0.jpg")  # the larger source face is kept
    ]
    assert "palette_swap_of_1.png" in kept and len(kept) == 5
    for row in manifest:
        assert row["member"] == members[row["face_id"]] and row["raw_path"].startswith("images/")
        assert row["weight"] == 1.0 and len(row["phash"]) == 16 and row["source_size"] > 48
        assert row["tags"] and all(tag.endswith((" hair", " eyes")) for tag in row["tags"])
        assert row["features"] is None  # the colour tagger computes no illust2vec features
    meta = read_params(out / "manifest.parquet")
    assert meta["image_size"] == 64 and "green hair" in meta["vocabulary"]
    # How the crops were made, for the model file (inference crops a photo the same way).
    assert meta["faces"]["detector"] == "animeface" and meta["faces"]["align"]["size"] > 0
    assert set(meta["faces"]) == {"detector", "detector_options", "align", "select"}


def test_pixel_shards_hold_each_kept_crop_once_at_the_stored_size(built: Path) -> None:
    import cv2

    out = built / "data/datasets/anime"
    manifest = read_table(out / "manifest.parquet", DATASET_MANIFEST).to_pylist()
    crops = {
        r["face_id"]: r["image"] for r in read_table(built / "data/faces/anime/crops-00000.parquet", CROPS).to_pylist()
    }
    shards = sorted(out.glob("pixels-*.parquet"))
    seen = []
    for shard in shards:
        table = read_table(shard, DATASET_PIXELS)
        assert table.num_rows <= 3 and pq.ParquetFile(shard).metadata.row_group(0).num_rows <= 2
        seen += table["face_id"].to_pylist()
    assert sorted(seen) == sorted(row["face_id"] for row in manifest)
    for row in manifest:
        assert row["shard"].startswith(f"pixels-{row['split']}-")
        pixels = read_table(out / row["shard"], DATASET_PIXELS).to_pylist()[row["shard_row"]]
        assert pixels["face_id"] == row["face_id"] and len(pixels["pixels"]) == 64 * 64 * 3
        stored = np.frombuffer(pixels["pixels"], np.uint8).reshape(64, 64, 3)
        crop = np.asarray(Image.open(io.BytesIO(crops[row["face_id"]])).convert("RGB"))
        assert np.abs(stored.astype(int) - cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA)).max() == 0


def test_statistics_and_plots_count_what_was_written(built: Path) -> None:
    metrics = json.loads((built / "metrics/dataset/anime.json").read_text())
    assert metrics["faces_in"] == 8 and metrics["faces_kept"] == 5 and metrics["near_duplicates_removed"] == 1
    assert metrics["rejects"] == {"blurry": 1, "too_dark": 1} and sum(metrics["splits"].values()) == 5
    assert sum(sum(h.values()) for h in metrics["tags"].values()) == 10  # a hair and an eye colour each
    assert metrics["gender"] == {split: {"unknown": count} for split, count in metrics["splits"].items()}
    plots = [json.loads((built / f"plots/dataset/anime/tags-{split}.json").read_text()) for split in metrics["splits"]]
    assert sum(p["faces"] for plot in plots for p in plot) == 10 and len({len(plot) for plot in plots}) == 1
    for split in ("train", "val", "test"):
        assert (built / "plots/dataset/anime" / f"{split}.png").is_file()


def test_stale_tags_name_the_file(built: Path, tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "p"
    shutil.copytree(built, project)
    tags_file = project / "data/tags/anime/tags.parquet"
    table = pq.read_table(tags_file)
    pq.write_table(table.slice(1).replace_schema_metadata(table.schema.metadata), tags_file)
    with pytest.raises(SchemaMismatchError, match=r"tags.parquet: no tags for 1 faces .* re-run the tags stage"):
        run_dataset(load_params(project / "params.yaml"), "anime")
    assert (project / "data/datasets/anime/manifest.parquet").is_file()  # the previous output is untouched
