"""Translating raw photos: detection of every face, alignment as in training, batching, paste-back, the CLI.

Unit tests use the anime domain as the source (AnimeFace finds drawn faces); the real-data test runs the
human domain's dlib detector on real photos.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from core.errors import UsageError
from flows.demo_data import draw_anime_face
from inference.paste import feather_mask, paste_faces
from inference.translate import Translator, collect_photos, output_stems, results_sheet, translate_to_folder
from preprocessing.faces.align import align_by_box, invert, resize_matrix, transform_points, warp
from preprocessing.faces.detectors import make_detector
from tests.builders.models import ANIME_FACES, FACE_COLOURS, HUMAN_FACES, anime_group, smooth_photo, tiny_model
from training.conditioning import UnknownTagError
from training.data import to_images
from twingan.cli import app


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "twingan.pt")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A group of 3 drawn faces, two single faces, a picture without a face and a corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    anime_group().save(folder / "a_group.png")
    draw_anime_face(256, *FACE_COLOURS[0]).save(folder / "b_single.png")
    Image.fromarray(smooth_photo()).save(folder / "c_noface.png")
    (folder / "d_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    draw_anime_face(240, *FACE_COLOURS[2]).save(folder / "e_single.jpg", quality=95)
    return folder


def _translator(model_file: Path, batch_size: int = 16) -> Translator:
    return Translator.from_file(model_file, source="anime", target="human", device="cpu", batch_size=batch_size)


# --------------------------------------------------------------------------------------------- geometry


def test_resize_matrix_maps_pixel_centres_of_the_resized_crop() -> None:
    """Pixel i of a crop area-resized by k covers crop pixels k*i .. k*i+k-1: its centre is k*i + (k-1)/2."""
    alignment = align_by_box((40, 30, 140, 130), 64, margin=1.5, shift_up=0.1)
    at_16 = resize_matrix(alignment.matrix, 64, 16)
    pixels = np.array([[0, 0], [3, 7], [15, 15]], dtype=np.float64)
    expected = transform_points(invert(alignment.matrix), pixels * 4 + 1.5)
    assert np.allclose(transform_points(invert(at_16), pixels), expected)


def test_aligned_crops_are_resized_as_training_resized_them(model_file: Path, photos: Path) -> None:
    """The model sees the crop at the spec's size area-averaged to its resolution, like the loader gives it."""
    translator = _translator(model_file)
    rgb = np.asarray(Image.open(photos / "b_single.png").convert("RGB"))
    (face,) = translator.faces_in(rgb)
    assert face.crop.shape == (ANIME_FACES["align"]["size"],) * 2 + (3,)
    block = face.crop[:4, :4].reshape(-1, 3).mean(axis=0) / 127.5 - 1
    assert torch.allclose(to_images(face.crop[None], 16)[0, :, 0, 0], torch.tensor(block, dtype=torch.float32))


# ------------------------------------------------------------------------------------------------ paste


def test_feather_mask_fades_to_zero_at_the_border() -> None:
    mask = feather_mask(64, 0.1)
    assert mask[32, 32] == 1.0 and mask[32, 16] == 1.0
    assert mask[0].max() == 0 and mask[:, -1].max() == 0 and mask[1].max() < 0.1
    assert np.all(np.diff(mask[32, :32]) >= 0)  # monotone fade, no hard step
    assert ((mask[32] > 0) & (mask[32] < 1)).sum() >= 2 * 5  # a fade about 10% of the crop wide on each side


def test_identity_paste_reproduces_the_photo_and_leaves_the_outside_untouched() -> None:
    photo = smooth_photo()
    alignment = align_by_box((100, 60, 200, 160), 128, margin=1.5, shift_up=0.0)
    crop = warp(photo, alignment)  # the "identity translation" of this face
    pasted = paste_faces(photo, [(crop, alignment.matrix)])
    height, width = photo.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    where = transform_points(alignment.matrix, np.stack([xs.ravel(), ys.ravel()], 1)).reshape(height, width, 2)
    inside = np.all((where > 0.2 * 128) & (where < 0.8 * 128), axis=-1)
    outside = np.any((where < -1) | (where > 128), axis=-1)
    difference = np.abs(pasted.astype(int) - photo.astype(int))
    assert inside.sum() > 2000 and outside.sum() > 10000
    assert difference[inside].max() <= 3 and difference[inside].mean() < 0.6
    assert np.array_equal(pasted[outside], photo[outside])
    assert not np.array_equal(pasted, photo) or difference.max() <= 3


def test_pasted_faces_change_only_their_own_regions(model_file: Path, photos: Path) -> None:
    translator = _translator(model_file)
    (result,) = translator.translate_photos([photos / "a_group.png"], paste=True)
    assert [face.index for face in result.faces] == [0, 1, 2]
    photo = np.asarray(Image.open(photos / "a_group.png").convert("RGB"))
    assert result.pasted is not None and result.pasted.shape == photo.shape
    changed = np.any(result.pasted != photo, axis=-1)
    height, width = photo.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    points = np.stack([xs.ravel(), ys.ravel()], 1)
    footprint = np.zeros((height, width), bool)
    for face in result.faces:
        crop = transform_points(face.matrix, points).reshape(height, width, 2)
        footprint |= np.all((crop > -1) & (crop < 16), axis=-1)
    assert changed.any() and not (changed & ~footprint).any()
    for face in result.faces:  # every face's centre now shows its translation
        x0, y0, x1, y1 = face.box
        assert changed[round((y0 + y1) / 2), round((x0 + x1) / 2)]


# ---------------------------------------------------------------------------------------- whole photos


def test_every_face_of_a_group_photo_is_translated(model_file: Path, photos: Path) -> None:
    translator = _translator(model_file)
    detected = make_detector("animeface", {}).detect(np.asarray(Image.open(photos / "a_group.png").convert("RGB")))
    (result,) = translator.translate_photos([photos / "a_group.png"])
    assert len(detected) == 3 and len(result.faces) == 3
    assert [face.box for face in result.faces] == [face.box for face in detected]
    assert all(face.portrait.shape == (16, 16, 3) and face.portrait.dtype == np.uint8 for face in result.faces)
    assert len({face.portrait.tobytes() for face in result.faces}) == 3


def test_photos_without_faces_and_corrupt_photos_are_reported_not_fatal(model_file: Path, photos: Path) -> None:
    translator = _translator(model_file, batch_size=2)
    results = list(translator.translate_photos(sorted(photos.iterdir()), paste=True))
    assert [r.source.name for r in results] == sorted(p.name for p in photos.iterdir())
    by_name = {r.source.name: r for r in results}
    assert by_name["c_noface.png"].skipped.startswith("no face: animeface found none in 320x240")
    assert by_name["d_corrupt.jpg"].skipped.startswith("unreadable: ")
    assert [len(by_name[n].faces) for n in ("a_group.png", "b_single.png", "e_single.jpg")] == [3, 1, 1]
    assert by_name["b_single.png"].pasted is not None and by_name["c_noface.png"].pasted is None


def test_batch_size_does_not_change_the_translations(model_file: Path, photos: Path) -> None:
    files = sorted(photos.iterdir())
    runs = {}
    for batch_size in (1, 16):
        translator = _translator(model_file, batch_size)
        faces = [f for r in translator.translate_photos(files, tags=["green hair"]) for f in r.faces]
        crops = np.stack([face.crop for face in translator.faces_in(_rgb(photos / "a_group.png"))])
        floats = translator.translate_tensor(to_images(crops, 16).contiguous(), translator.condition(["green hair"]))
        runs[batch_size] = (faces, floats)
    (faces_1, floats_1), (faces_16, floats_16) = runs[1], runs[16]
    assert len(faces_1) == len(faces_16) == 5
    # oneDNN sums a batch of 1 and of 16 in another order: equal to float32 rounding (relative to the output's
    # scale; the tiny model's outputs reach about 3, and differ by up to 2e-5 absolute)
    assert (floats_1 - floats_16).abs().max() <= 1e-5 * max(1.0, float(floats_1.abs().max()))
    assert (
        max(
            int(np.abs(a.portrait.astype(int) - b.portrait.astype(int)).max())
            for a, b in zip(faces_1, faces_16, strict=True)
        )
        <= 1
    )


def test_tags_change_the_translation_and_unknown_tags_are_refused(model_file: Path, photos: Path) -> None:
    translator = _translator(model_file)
    plain = next(iter(translator.translate_photos([photos / "b_single.png"]))).faces[0].portrait
    green = next(iter(translator.translate_photos([photos / "b_single.png"], tags=["green hair"]))).faces[0].portrait
    assert not np.array_equal(plain, green)
    with pytest.raises(UnknownTagError, match=r"'purple hair'.*knows: blonde hair, green hair"):
        list(translator.translate_photos([photos / "b_single.png"], tags=["purple hair"]))


def test_no_tags_asked_conditions_on_the_target_s_typical_tags(tmp_path: Path, photos: Path) -> None:
    typical = tiny_model(tmp_path / "typical.pt", typical_tags={"human": ["green hair"], "anime": []})
    translator = _translator(typical)
    assert translator.typical_tags == ("green hair",)
    assert torch.equal(translator.condition(), translator.condition(["green hair"]))
    assert torch.equal(translator.condition(["blonde hair"]), _translator(tiny_model(tmp_path / "b.pt")).condition(
        ["blonde hair"]))  # asked-for tags replace the typical ones  # fmt: skip
    plain = next(iter(translator.translate_photos([photos / "b_single.png"]))).faces[0].portrait
    green = next(iter(translator.translate_photos([photos / "b_single.png"], tags=["green hair"]))).faces[0].portrait
    assert np.array_equal(plain, green)
    older = _translator(tiny_model(tmp_path / "older.pt"))  # a file without typical tags: no tags, as before
    assert older.typical_tags == () and not older.condition().any()
    to_anime = Translator.from_file(typical, source="human", target="anime")  # a target whose typical set is empty
    assert to_anime.typical_tags == () and not to_anime.condition().any()


def test_missing_model_file_and_missing_face_spec_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pt: no model file"):
        Translator.from_file(tmp_path / "nope.pt")
    path = tiny_model(tmp_path / "old.pt", faces={"human": HUMAN_FACES})
    with pytest.raises(Exception, match="does not record how anime faces were detected"):
        Translator.from_file(path, source="anime", target="human")
    with pytest.raises(ValueError, match=r"source domain 'cat'.*human, anime"):
        Translator.from_file(path, source="cat", target="human")


# -------------------------------------------------------------------------------------------- reference


def test_reference_gives_the_drawn_colours_as_tags(model_file: Path, tmp_path: Path) -> None:
    translator = Translator.from_file(model_file, source="human", target="anime", device="cpu")
    expected = {FACE_COLOURS[0]: ("green hair", "blue eyes"), FACE_COLOURS[2]: ("black hair", "red eyes")}
    for (hair, eyes), tags in expected.items():
        path = tmp_path / "character.png"
        draw_anime_face(256, hair, eyes).save(path)
        reference = translator.reference(path)
        assert reference.tags == tags and reference.features is None
        assert "anime face at" in reference.detail


def test_reference_features_need_the_illust2vec_files(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "features.pt", feature_dim=8)
    translator = Translator.from_file(path, source="human", target="anime", device="cpu")
    draw_anime_face(256, *FACE_COLOURS[0]).save(tmp_path / "character.png")
    with pytest.raises(FileNotFoundError, match=r"illust2vec_ver200.caffemodel: missing.*twingan fetch illust2vec"):
        translator.reference(tmp_path / "character.png", illust2vec=tmp_path / "no-weights")


# -------------------------------------------------------------------------------------- files and CLI


def test_collect_photos_and_output_names(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    for name in ("a/x.png", "a/deep/y.JPG", "a/notes.txt", "b/x.png", "c.webp"):
        (tmp_path / name).write_bytes(b"")
    found = collect_photos([tmp_path / "a", str(tmp_path / "b" / "*.png"), tmp_path / "c.webp", tmp_path / "gone.jpg"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/deep/y.JPG", "a/x.png", "b/x.png", "c.webp",
                                                                   "gone.jpg"]  # fmt: skip
    assert list(output_stems(found).values()) == ["y", "x", "x-2", "c", "gone"]


def test_translate_to_folder_is_deterministic(model_file: Path, photos: Path, tmp_path: Path) -> None:
    files = sorted(photos.iterdir())
    outputs = []
    for run in ("one", "two"):
        summary = translate_to_folder(_translator(model_file, 2), files, tmp_path / run, paste=True, size=48,
                                      progress=False)  # fmt: skip
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / run).iterdir())})
    assert outputs[0] == outputs[1]
    assert summary.photos == 5 and summary.faces == 5 and len(summary.skipped) == 2
    assert sorted(outputs[0]) == ["a_group-face0.png", "a_group-face1.png", "a_group-face2.png", "a_group-pasted.png",
                                  "b_single-face0.png", "b_single-pasted.png", "e_single-face0.png",
                                  "e_single-pasted.png"]  # fmt: skip
    assert Image.open(tmp_path / "one" / "a_group-face1.png").size == (48, 48)


def test_a_results_sheet_puts_each_photo_s_largest_face_above_its_translation(
    model_file: Path, photos: Path, tmp_path: Path
) -> None:
    files = sorted(photos.iterdir())
    sheet = tmp_path / "results.png"
    translate_to_folder(_translator(model_file, 2), files, tmp_path / "out", size=48, progress=False, sheet=sheet)
    picture = np.asarray(Image.open(sheet))
    assert picture.shape == (2 + 2 * (48 + 2), 2 + 3 * (48 + 2), 3)  # 3 photos with a face: one row pair
    face = np.asarray(Image.open(tmp_path / "out" / "a_group-face0.png"))
    assert np.array_equal(picture[52:100, 2:50], face)  # the translation under the first photo's face
    with pytest.raises(UsageError, match="no face was translated"):
        results_sheet([])


def test_cli_translate(model_file: Path, photos: Path, tmp_path: Path) -> None:
    runner, threads = CliRunner(), torch.get_num_threads()
    base = ["translate", str(photos), "--from", "anime", "--to", "human", "--model", str(model_file)]
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "out"), "--paste", "--tags", "green hair, blue eyes",
                                 "--batch-size", "2", "--device", "cpu", "--workers", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 photo(s), 5 face(s) translated, 8 file(s) written" in result.output
    assert "skipped 2 (1 no face, 1 unreadable)" in result.output
    assert torch.get_num_threads() == threads  # the model ran on the cores the 2 workers left, then gave them back
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "bad"), "--tags", "purple hair"])
    assert result.exit_code == 2 and "unknown tag(s) 'purple hair'" in result.output
    assert not (tmp_path / "bad").exists()
    missing = ["translate", str(photos), "--to", "anime", "-o", str(tmp_path / "x"), "--model", str(tmp_path / "no.pt")]
    result = runner.invoke(app, missing)
    assert result.exit_code == 2 and "no.pt: no model file" in result.output
    reference = tmp_path / "character.png"
    draw_anime_face(256, *FACE_COLOURS[1]).save(reference)
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "ref"), "--reference", str(reference),
                                 "--params", str(tmp_path / "absent.yaml")])  # fmt: skip
    assert result.exit_code == 0, result.output


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# ---------------------------------------------------------------------------------------------- real data

REAL_PHOTOS = (  # a frontal portrait, couples, a large photo and a group of 5+ (index.csv notes)
    "dlib_tom_cruise_avp_2014_4.jpg",
    "facerec_two_people.jpg",
    "dlib_2009_004587.jpg",
    "deepface_couple.jpg",
    "facenet_multiface.jpg",
)


def test_real_photos_every_detected_face_is_written(real_data: Path, tmp_path: Path) -> None:
    """dlib in worker processes (as the CLI runs it for 8 photos or more) finds what it finds in this one."""
    notes = {row["file"]: row["notes"] for row in csv.DictReader((real_data / "index.csv").open(encoding="utf-8"))}
    assert "group" in notes["human/facenet_multiface.jpg"]
    files = [real_data / "human" / name for name in REAL_PHOTOS]
    model = tiny_model(tmp_path / "human.pt", resolution=32)
    translator = Translator.from_file(model, source="human", target="anime", device="cpu", batch_size=16)
    detector = make_detector(HUMAN_FACES["detector"], HUMAN_FACES["detector_options"])
    expected = {path.stem: len(detector.detect(_rgb(path))) for path in files}
    summary = translate_to_folder(translator, files, tmp_path / "out", paste=True, progress=False, workers=2)
    assert not summary.skipped and summary.faces == sum(expected.values())
    assert expected["facenet_multiface"] >= 3 and expected["facerec_two_people"] == 2
    for stem, count in expected.items():
        written = sorted(p.name for p in (tmp_path / "out").glob(f"{stem}-face*.png"))
        assert written == [f"{stem}-face{k}.png" for k in range(count)]
        assert (
            Image.open(tmp_path / "out" / f"{stem}-pasted.png").size
            == Image.open(real_data / "human" / f"{stem}.jpg").size
        )
