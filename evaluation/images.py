"""Evaluation images: one split of a domain's dataset, read through the training loader's readers, and what
the model makes of them (translations, reconstructions) in batches.

The stored crops (dataset.image_size, e.g. 128 px) are kept as well as the model-resolution tensors: face
detectors see the input photo at its stored size, the model at its own resolution (area downsampling, as in
training: training/data.py `to_images`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.data import DomainSplit, to_images
from training.networks import TwinGAN
from training.samples import to_uint8

log = logging.getLogger("twingan.evaluate")


@dataclass
class SplitImages:
    """The first `max_images` faces of one split (manifest order: face ids are SHA-256s, unrelated to
    content), or none with the reason."""

    domain: str
    split: str
    face_ids: list[str]
    pixels: np.ndarray  # (N, S, S, 3) uint8, as stored
    condition: torch.Tensor | None  # (N, condition_dim): the faces' own tags (+ features), None without conditioning
    missing: str = ""  # why there are no images

    def __len__(self) -> int:
        return len(self.face_ids)

    def images(self, resolution: int) -> torch.Tensor:
        """(N, 3, R, R) float32 in [-1, 1] at the model's resolution (NCHW, contiguous)."""
        if not len(self):
            return torch.zeros(0, 3, resolution, resolution)
        return to_images(self.pixels, resolution).contiguous()


def read_split(
    root: Path, domain: str, split: str, *, max_images: int, vocabulary: tuple[str, ...] | None, condition_dim: int,
    tag_dim: int, shown: str | Path | None = None,
) -> SplitImages:  # fmt: skip
    """Read up to `max_images` faces of `split`; a split without rows gives an empty set with the reason
    (naming the folder as `shown`, e.g. relative to the project, so the metrics file is the same anywhere)."""
    try:
        part = DomainSplit(root, split, name=domain, vocabulary=vocabulary)
    except ValueError as error:
        if "no rows of split" not in str(error):  # DomainSplit says so for an empty split; other errors stand
            raise
        log.info("%s: no faces in split %r of %s", domain, split, root)
        empty = np.zeros((0, 1, 1, 3), np.uint8)
        return SplitImages(domain, split, [], empty, None, missing=f"{shown or root} has no {split!r} faces")
    rows = np.arange(min(max_images, len(part)))
    pixels = np.empty((len(rows), part.image_size, part.image_size, 3), dtype=np.uint8)
    for read, crops in part.crops(rows, batch_size=256):
        pixels[read] = crops
    feature_dim = condition_dim - tag_dim
    condition = torch.from_numpy(part.condition_of(rows, feature_dim)) if condition_dim else None
    log.info("%s: read %d of %d faces of split %r from %s", domain, len(rows), len(part), split, root)
    return SplitImages(domain, split, [part.face_ids[r] for r in rows.tolist()], pixels, condition)


def cycled(condition: torch.Tensor | None, count: int) -> torch.Tensor | None:
    """`count` rows of `condition`, repeated in order: a translation into t is conditioned on the tags of a real
    face of t (as in training: training/losses.py), the i-th input on the (i mod n)-th target face."""
    if condition is None or count == 0 or not len(condition):
        return None
    return condition[torch.arange(count) % len(condition)]


@torch.inference_mode()
def run_model(
    model: TwinGAN,
    images: torch.Tensor,
    source: str,
    target: str,
    condition: torch.Tensor | None,
    *,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """decode(encode(images, source), target, condition) in batches, on CPU, clamped to [-1, 1]; target ==
    source is the reconstruction."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        tags = condition[start : start + batch_size].to(device) if condition is not None else None
        latent, skips = model.encode(batch, source)
        out.append(model.decode(latent, skips, target, tags).float().clamp(-1, 1).cpu())
    if not out:
        return torch.zeros(0, *images.shape[1:])
    return torch.cat(out)


def as_uint8_nchw(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (N, 3, H, W) to uint8 (N, 3, H, W), rounded as the sample grids are (samples.to_uint8)."""
    return torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2).contiguous()


def psnr_db(reference: torch.Tensor, estimate: torch.Tensor) -> np.ndarray:
    """Per-image PSNR in dB of two [-1, 1] batches, measured on [0, 1] images (peak 1). An exact copy would
    be infinite: the mean squared error is floored at 1e-10 (100 dB)."""
    a, b = (reference.double().clamp(-1, 1) + 1) / 2, (estimate.double().clamp(-1, 1) + 1) / 2
    mse = ((a - b) ** 2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).numpy()
