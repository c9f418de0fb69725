"""The model the project ships (models/pretrained/): it loads as weights only, says where it came from, translates
a batch of crops and a real photo through the same CLI a user runs, and has the card that describes it.

Every model file in models/pretrained/ is tested, so a model added or replaced there is checked as it ships."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from inference.web_demo import DemoModel
from tests.builders.repo import REPO
from training.model_file import load_model
from twingan.cli import app

PRETRAINED = REPO / "models" / "pretrained"
SHIPPED = sorted(PRETRAINED.glob("*.pt"))
SHARED_WEIGHTS = REPO.parent / "shared" / "models"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_model_has_its_card(path: Path) -> None:
    card = (PRETRAINED / "MODEL_CARD.md").read_text(encoding="utf-8")
    _, info = load_model(path)
    assert path.name in card, f"MODEL_CARD.md does not describe {path.name}"
    assert re.search(rf"\b{info.step:,}\b|\b{info.step}\b", card), f"the card does not give {path.name}'s step"
    assert "UTKFace" in card and "non-commercial" in card  # the terms of the data it learnt from


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_model_loads_as_weights_and_translates_a_batch(path: Path) -> None:
    payload = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code: plain tensors and values
    assert payload["generator"] and all(
        t.dtype == torch.float16 for t in payload["generator"].values() if t.is_floating_point()
    )
    model, info = load_model(path)
    assert info.profile == "real" and {"human", "anime"} <= set(info.config.domains)
    assert info.faces_of("human")["detector"]  # a raw photo is cropped as its training faces were
    assert set(info.typical_tags.get("anime", ())) <= set(info.vocabulary) and info.typical_tags["anime"]  # no --tags
    r = info.config.resolution
    images = torch.rand(4, 3, r, r, generator=torch.Generator().manual_seed(0)) * 2 - 1
    condition = torch.zeros(4, info.config.condition_dim)
    with torch.inference_mode():
        anime = model.translate(images, "human", "anime", condition)
    assert anime.shape == images.shape and torch.isfinite(anime).all()
    assert float(anime.std()) > 0.05  # not a constant picture


@pytest.fixture
def detector_weights(monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = Path(os.environ.get("TWINGAN_DETECTOR_WEIGHTS", SHARED_WEIGHTS))
    if not (folder / "yunet").is_dir():
        pytest.skip(f"YuNet's weights are not at {folder / 'yunet'} (twingan fetch yunet)")
    monkeypatch.setenv("TWINGAN_DETECTOR_WEIGHTS", str(folder))
    return folder


@pytest.mark.real_data
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_model_translates_a_real_photo_from_the_cli_and_the_page(
    path: Path, real_data: Path, detector_weights: Path, tmp_path: Path
) -> None:
    photo = real_data / "human" / "facerec_obama-1080p.jpg"
    assert photo.is_file(), f"{photo} is missing from {real_data}"
    out = tmp_path / "out"
    arguments = ["translate", str(photo), "--to", "anime", "--model", str(path), "-o", str(out), "--device", "cpu",
                 "--workers", "0", "--sheet", str(tmp_path / "sheet.png")]  # fmt: skip
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    faces = sorted(out.glob("facerec_obama-1080p-face*.png"))
    assert len(faces) == 1, result.output
    _, info = load_model(path)
    portrait = np.asarray(Image.open(faces[0]).convert("RGB"))
    assert portrait.shape == (info.config.resolution, info.config.resolution, 3) and portrait.std() > 5
    assert (tmp_path / "sheet.png").is_file()
    reply = DemoModel.from_file(path, device="cpu").handle(
        {"path": str(photo), "orig_name": photo.name}, "human", "anime", [], None, True
    )
    assert reply.status.startswith("1 face found"), reply.status
