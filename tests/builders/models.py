"""Tiny Twin-GAN model files made by the tests themselves (random weights, seconds to build), and
booby-trapped copies of them that would run code if a loader unpickled them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flows.demo_data import draw_anime_face
from training.model_file import save_model
from training.networks import NetworkConfig, TwinGAN

VOCABULARY = ("blonde hair", "green hair", "brown hair", "black hair", "blue eyes", "red eyes", "green eyes", "smile")
# The faces specs as params.yaml ships them, at a small crop size.
HUMAN_FACES = {
    "detector": "dlib_hog",
    "detector_options": {"upsample": 1, "predictor": "5", "max_side": 1024},
    "align": {"method": "eyes", "size": 64, "eye_distance": 0.3, "eye_height": 0.4, "margin": 1.5, "shift_up": 0.0},
}
ANIME_FACES = {
    "detector": "animeface",
    "detector_options": {},
    "align": {"method": "box", "size": 64, "margin": 1.5, "shift_up": 0.1, "eye_distance": 0.3, "eye_height": 0.4},
}
# Colours AnimeFace finds in a drawing (draw_anime_face), by hair and eye tag.
FACE_COLOURS = (
    ((70, 160, 90), (60, 100, 210)),  # green hair, blue eyes
    ((150, 100, 60), (60, 160, 80)),  # brown hair, green eyes
    ((28, 28, 32), (200, 40, 50)),  # black hair, red eyes
)


def tiny_model(
    path: Path,
    *,
    resolution: int = 16,
    vocabulary: tuple[str, ...] = VOCABULARY,
    feature_dim: int = 0,
    faces: dict | None = None,
    seed: int = 0,
    typical_tags: dict | None = None,
) -> Path:
    """A model file with domains human and anime, random (seeded) weights, and both domains' face specs."""
    torch.manual_seed(seed)
    config = NetworkConfig(domains=("human", "anime"), resolution=resolution, channel_base=64, channel_max=16,
                           tag_dim=len(vocabulary), feature_dim=feature_dim)  # fmt: skip
    model = TwinGAN(config)
    with torch.no_grad():  # the tag projections start at zero: make the condition matter
        for name, parameter in model.generator.named_parameters():
            if "tag" in name or "cond" in name:
                parameter.normal_(0, 0.5)
    faces = {"human": HUMAN_FACES, "anime": ANIME_FACES} if faces is None else faces
    save_model(path, model, vocabulary=vocabulary, step=1, faces=faces, train={}, typical_tags=typical_tags)
    return path


def anime_group(colours=FACE_COLOURS, size: int = 256, gap: int = 4) -> Image.Image:
    """Drawn anime faces side by side on one canvas: a 'group photo' AnimeFace finds every face in."""
    canvas = Image.new("RGB", (len(colours) * (size + gap) + gap, size + 24), (250, 250, 245))
    for i, (hair, eyes) in enumerate(colours):
        canvas.paste(draw_anime_face(size, hair, eyes), (gap + i * (size + gap), 12))
    return canvas


def smooth_photo(width: int = 320, height: int = 240) -> np.ndarray:
    """A smooth photo-like picture (low-frequency colour waves): resampling it loses almost nothing."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [
        128 + 90 * np.sin(x / 37.0 + c) * np.cos(y / 29.0 - c) + 20 * np.sin((x + y) / 53.0) for c in (0.0, 1.3, 2.6)
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).round().astype(np.uint8)


class _CreatesMarker:
    """Unpickling this calls `open(marker, "w")`: the file appearing means the loader ran the file's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def booby_trap(path: Path, marker: Path) -> Path:
    """`path` (a real model or checkpoint file) with one more entry that runs code when unpickled."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["note"] = _CreatesMarker(marker)
    with path.open("wb") as handle:
        torch.save(payload, handle)
    return path
