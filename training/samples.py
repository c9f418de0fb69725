"""Sample grids a person can look at while a model trains: fixed inputs, their translations, their
reconstructions. Fixed inputs (the same faces every time) make grids from different steps comparable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] to (B, H, W, 3) uint8."""
    scaled = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def grid(rows: Sequence[torch.Tensor], pad: int = 2) -> np.ndarray:
    """Rows of equally sized image batches into one (H, W, 3) uint8 picture, white between cells."""
    arrays = [to_uint8(row) for row in rows]
    count, height, width = max(len(a) for a in arrays), arrays[0].shape[1], arrays[0].shape[2]
    out = np.full((len(arrays) * (height + pad) + pad, count * (width + pad) + pad, 3), 255, np.uint8)
    for r, array in enumerate(arrays):
        for c, image in enumerate(array):
            y, x = pad + r * (height + pad), pad + c * (width + pad)
            out[y : y + height, x : x + width] = image
    return out


@torch.no_grad()
def translation_grid(
    model: torch.nn.Module, inputs: Mapping[str, Mapping[str, torch.Tensor]], **grow: object
) -> np.ndarray:
    """For each source domain: a row of inputs, a row per other domain (translations, conditioned on the
    target's fixed tags) and a row of reconstructions."""
    rows = []
    domains = list(inputs)
    for source in domains:
        images = inputs[source]["image"]
        latent, skips = model.encode(images, source, **grow)
        rows.append(images)
        for target in domains:
            if target != source:
                rows.append(model.decode(latent, skips, target, inputs[target].get("tags"), **grow))
        rows.append(model.decode(latent, skips, source, inputs[source].get("tags"), **grow))
    return grid(rows)


def save_png(picture: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(picture).save(tmp, format="PNG")
    tmp.replace(path)
