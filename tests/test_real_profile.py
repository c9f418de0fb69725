"""The real-data profile's path end to end: `twingan profile real` on a few dozen real pictures of
../shared/data/train (UTKFace, selfie and portrait photos; Getchu, fan-art and moeimouto crops; cat crops), `dvc
repro` to a few training steps and the evaluation, and the model translating a real photo it never saw."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.builders.repo import REPO, copy_repo, dvc, ran, twingan

pytestmark = [pytest.mark.slow, pytest.mark.real_data]
SHARED = REPO.parent / "shared"
TRAIN = SHARED / "data" / "train"
# Per domain, the kinds of pictures the real set holds (file name prefix) and how many of each to take.
SAMPLE = {
    "human": {"agepro_": 14, "zeka_": 6, "gendoe_": 5, "fmask_": 5},
    "anime": {"mysdcgan_": 20, "sytwu_": 5, "jyanime_": 5},
    "cat": {"hujcat_": 16, "chancnn_": 4},
}


@pytest.fixture
def weights(monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = Path(os.environ.get("TWINGAN_DETECTOR_WEIGHTS", SHARED / "models"))
    for model in ("yunet", "animefaceboxes"):
        if not (folder / model).is_dir():
            pytest.skip(f"{model}'s weights are not at {folder / model} (twingan fetch {model})")
    monkeypatch.setenv("TWINGAN_DETECTOR_WEIGHTS", str(folder))
    return folder


def sample(target: Path) -> dict[str, Path]:
    """Copies (never into the repository) of the first files of each kind, per domain."""
    if not TRAIN.is_dir():
        pytest.skip(f"training images not available: {TRAIN} is absent (../shared is not beside the repo)")
    folders = {}
    for domain, kinds in SAMPLE.items():
        folder = target / domain
        folder.mkdir(parents=True)
        for prefix, count in kinds.items():
            for path in sorted((TRAIN / domain).glob(f"{prefix}*"))[:count]:
                (folder / path.name).write_bytes(path.read_bytes())
        folders[domain] = folder
    return folders


def test_the_real_profile_runs_from_crops_to_a_model_that_translates_a_new_photo(
    tmp_path: Path, weights: Path, real_data: Path
) -> None:
    root = copy_repo(tmp_path / "repo")
    folders = sample(tmp_path / "pictures")
    sets = [f"domains.{domain}.source.path={folder}" for domain, folder in folders.items()]
    sets += ["train.steps=4", "train.batch_size=2", "train.log_every=1", "train.sample_every=2",
             "train.checkpoint_every=2", "evaluate.max_images=16",
             "dataset.splits={train: 0.6, val: 0.2, test: 0.2}"]  # fmt: skip
    shown = twingan(root, "profile", "real", *[arg for s in sets for arg in ("--set", s)])
    assert "profile real" in shown and "dvc exp run" in shown
    out = dvc(root, "repro")
    assert {"faces@human", "faces@anime", "faces@cat", "train", "evaluate"} <= set(ran(out)), out

    human = json.loads((root / "metrics/faces/human.json").read_text())
    anime = json.loads((root / "metrics/faces/anime.json").read_text())
    cat = json.loads((root / "metrics/faces/cat.json").read_text())
    assert human["faces_kept"] >= 28 and "framing" not in human  # photos: detected and eye-aligned
    assert anime["faces_kept"] >= 24 and anime["framing"]["method"] in ("eyes", "box")  # crops, checked by AnimeFace
    assert cat["faces_kept"] == 20 and cat["framing"]["method"] is None  # crops taken as they are
    assert json.loads((root / "metrics/train.json").read_text())["profile"] == "real"
    evaluated = json.loads((root / "metrics/evaluate.json").read_text())
    assert evaluated["model_profile"] == "real" and evaluated["resolution"] == 64
    assert evaluated["human_to_anime"]["animeface_rate_real"] is not None

    from training.model_file import load_model

    _, info = load_model(root / "models/twingan.pt")
    assert info.profile == "real" and info.faces["anime"]["framing"]["size"] == 64

    # A real photo of someone the model never saw, and a Getchu crop the other way (framed as the crops were).
    photo = sorted((real_data / "human").glob("*.jpg"))[0]
    twingan(root, "translate", str(photo), "--to", "anime", "-o", str(tmp_path / "out"))
    assert list((tmp_path / "out").glob("*-face0.png"))
    drawing = sorted((TRAIN / "anime").glob("mysdcgan_*"))[-1]
    twingan(root, "translate", str(drawing), "--from", "anime", "--to", "human", "-o", str(tmp_path / "back"))
    assert list((tmp_path / "back").glob("*-face0.png"))
