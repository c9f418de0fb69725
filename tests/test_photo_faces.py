"""Finding the faces of raw photos for translation (inference/photo_faces.py): the same faces, in the same
order, with or without worker processes; bad photos reported, never fatal; a dead worker named.

Drawn anime faces (AnimeFace finds them) keep these fast; the real-photo run through worker processes is
in tests/test_translate.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.demo_data import draw_anime_face
from inference.photo_faces import FaceFinder, FacePool, default_workers, find_faces, model_threads
from inference.translate import Translator
from tests.builders.models import ANIME_FACES, FACE_COLOURS, anime_group, smooth_photo, tiny_model


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twelve photos: groups, singles, one without a face, one corrupt, one missing."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for k in range(9):
        path = folder / f"{k:02d}.png"
        (anime_group() if k % 3 == 0 else draw_anime_face(200 + 8 * k, *FACE_COLOURS[k % 3])).save(path)
        paths.append(path)
    Image.fromarray(smooth_photo()).save(folder / "noface.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return [*paths[:4], folder / "noface.png", *paths[4:7], folder / "corrupt.jpg", folder / "absent.png", *paths[7:]]


def finder() -> FaceFinder:
    return FaceFinder(ANIME_FACES, 16)


def test_workers_find_the_same_faces_in_input_order(photos: list[Path]) -> None:
    here = list(find_faces(finder(), photos, keep_photo=True))
    pooled = list(find_faces(finder(), photos, keep_photo=True, workers=2))
    assert [r.path for r in pooled] == [r.path for r in here] == photos
    assert [len(r.faces) for r in here] == [3, 1, 1, 3, 0, 1, 1, 3, 0, 0, 1, 1]
    for a, b in zip(here, pooled, strict=True):
        assert a.skipped == b.skipped and a.size == b.size
        assert [f.box for f in a.faces] == [f.box for f in b.faces]
        assert all(np.array_equal(f.crop, g.crop) and np.array_equal(f.matrix, g.matrix)
                   for f, g in zip(a.faces, b.faces, strict=True))  # fmt: skip
        assert (a.photo is None) == (b.photo is None) == (not a.faces)  # kept only where it will be pasted into
        assert set(a.seconds) >= {"load"}
    by_name = {r.path.name: r.skipped or "" for r in here}
    assert by_name["noface.png"].startswith("no face: animeface found none in 320x240")
    assert by_name["corrupt.jpg"].startswith("unreadable: ") and by_name["absent.png"].startswith("unreadable: ")


def test_translations_do_not_depend_on_the_workers(photos: list[Path], tmp_path: Path) -> None:
    translator = Translator.from_file(tiny_model(tmp_path / "m.pt"), source="anime", target="human", device="cpu",
                                      batch_size=4)  # fmt: skip
    here = list(translator.translate_photos(photos, paste=True))
    with FacePool(translator.finder, 2) as pool:  # one pool, two calls
        pooled = list(translator.translate_photos(photos, paste=True, workers=pool))
        again = list(translator.translate_photos(photos[:3], workers=pool))
    assert [r.source for r in pooled] == photos and [r.source for r in again] == photos[:3]
    for a, b in zip(here, pooled, strict=True):
        assert a.skipped == b.skipped
        assert all(np.array_equal(f.portrait, g.portrait) for f, g in zip(a.faces, b.faces, strict=True))
        assert (a.pasted is None) == (b.pasted is None) and (a.pasted is None or np.array_equal(a.pasted, b.pasted))
    assert translator.times.seconds["detect"] > 0  # the workers' seconds are counted too


def test_a_detector_that_raises_on_one_photo_skips_only_that_photo(photos: list[Path]) -> None:
    found = finder()
    detect = found.detector.detect

    def fragile(rgb: np.ndarray) -> list:
        if rgb.shape[1] == 208:  # the photo drawn at 208 px
            raise RuntimeError("bad things in the detector")
        return detect(rgb)

    found.detector.detect = fragile
    results = list(find_faces(found, photos))
    failed = [r for r in results if (r.skipped or "").startswith("detection failed")]
    assert [r.path.name for r in failed] == ["01.png"]
    assert failed[0].skipped == "detection failed: RuntimeError: bad things in the detector"
    assert sum(len(r.faces) for r in results) == 14


def test_a_dead_worker_stops_the_run_naming_the_photo(photos: list[Path]) -> None:
    with FacePool(finder(), 1) as pool:
        pool.submit(photos[1], False).result()  # the worker is up
        (pid,) = list(pool._pool._processes)  # the executor's own table: the only way to reach the worker
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match=r"\.png: the face-detection worker died while this photo"):
            list(find_faces(finder(), photos, workers=pool))
        time.sleep(0.5)  # the executor has noticed by now: the next call fails on submit, with the same message
        with pytest.raises(RuntimeError, match=r"00\.png: the face-detection worker died while this photo"):
            list(find_faces(finder(), photos, workers=pool))


def test_a_pool_of_another_domain_is_refused(photos: list[Path]) -> None:
    with FacePool(finder(), 1) as pool, pytest.raises(ValueError, match="another domain or resolution"):
        list(find_faces(FaceFinder(ANIME_FACES, 32), photos, workers=pool))
    with pytest.raises(ValueError, match="at least 1 worker"):
        FacePool(finder(), 0)


def test_default_workers_and_model_threads() -> None:
    assert default_workers(7, 16) == 0 and default_workers(100, 1) == 0  # a handful of photos, or one core
    assert default_workers(8, 2) == 2 and default_workers(1000, 16) == 4
    assert model_threads(2, 2) == 1 and model_threads(4, 16) == 12 and model_threads(4, 1) == 1
    assert default_workers(100) <= 4 and model_threads(default_workers(100)) >= 1


def test_a_photo_over_ingests_pixel_bound_is_skipped_before_decoding(tmp_path: Path) -> None:
    from core.params import IngestParams
    from preprocessing.images import DEFAULT_MAX_PIXELS
    from tests.builders.images import oversize_png

    assert IngestParams().max_pixels == DEFAULT_MAX_PIXELS  # the bound on photos from outside is ingest's
    found = finder().find(oversize_png(tmp_path / "huge.png"))
    assert not found.faces and found.size is None
    assert found.skipped == "unreadable: TooManyPixels: 12000x12000 = 144,000,000 pixels, more than 50,000,000"
