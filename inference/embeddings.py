"""Embeddings of face crops: the Twin-GAN encoder's latent, one unit vector per crop.

The encoder and its 4x4 latent are shared by every domain (only the normalisation's scale and shift are
per domain), and the semantic loss pulls the latent of an image and of its translation together, so
latents of different domains live in one space: a human crop's nearest anime crops can be looked up
directly. Each crop is encoded in ITS OWN domain (`encode(image, domain)`): that is how training encoded
it, and a crop read with another domain's normalisation would be off the distribution it was trained on.

The latent (B, C, 4, 4) is flattened to C*16 values and L2-normalised, because:
- inner product of unit vectors is cosine similarity, so one FAISS inner-product index (exact or IVF)
  answers cosine queries, and for unit vectors the cosine order equals the Euclidean order;
- scores become readable: 1 for the crop itself, about 0 for unrelated crops, whatever the model;
- the latent's length follows the crop's contrast and exposure more than its content; without
  normalising, inner-product search would favour high-contrast crops for every query (the maximum
  inner product problem), and IVF's coarse quantiser assumes comparable norms.

Only torch, numpy and pyarrow (through training/data.py): runs on the GPU machines, FAISS is not needed here.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training.data import DomainSplit, to_images
from training.networks import TwinGAN

log = logging.getLogger("twingan.index")


def latent_dim(model: TwinGAN) -> int:
    """Length of an embedding: channels of the 4x4 latent times 16."""
    return model.config.channels(4) * 16


def encoder_digest(model: TwinGAN) -> str:
    """SHA-256 of the encoder's construction arguments and weights: everything an embedding depends on.
    An index records it, so a search with another model is refused instead of returning wrong neighbours."""
    digest = hashlib.sha256(repr(sorted(model.config.to_dict().items())).encode())
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@torch.inference_mode()
def embed_images(model: TwinGAN, images: torch.Tensor, domain: str) -> np.ndarray:
    """(B, 3, r, r) in [-1, 1] at the model's resolution, all of `domain` -> (B, C*16) float32 unit rows."""
    device = next(model.encoder.parameters()).device
    latent, _ = model.encode(images.to(device, torch.float32), domain)
    flat = latent.flatten(1).float()
    return torch.nn.functional.normalize(flat, dim=1, eps=1e-12).cpu().numpy()


def embed_pixels(model: TwinGAN, pixels: np.ndarray, domain: str) -> np.ndarray:
    """(B, S, S, 3) uint8 crops at any size S -> embeddings; resized to the model's resolution the way the
    training loader resizes (area average for integer factors)."""
    if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.shape[1] != pixels.shape[2]:
        raise ValueError(f"expected square RGB crops (B, S, S, 3), got shape {pixels.shape}")
    images = to_images(np.ascontiguousarray(pixels, dtype=np.uint8), model.config.resolution)
    return embed_images(model, images.contiguous(), domain)


def embed_split(
    model: TwinGAN, split: DomainSplit, domain: str, *, batch_size: int = 64, progress: bool = True
) -> np.ndarray:
    """(len(split), C*16) float32 unit rows, row i the embedding of split.face_ids[i], encoded in `domain`."""
    out = np.empty((len(split), latent_dim(model)), dtype=np.float32)
    done = 0
    label = f"index {domain}/{split.split}"
    with tqdm(total=len(split), desc=label, unit="crop", disable=None if progress else True) as bar:
        for rows, pixels in split.crops(np.arange(len(split)), batch_size):
            out[rows] = embed_pixels(model, pixels, domain)
            done += len(rows)
            bar.update(len(rows))
    log.info("%s: embedded %d crops of %s", label, done, Path(split.root))
    return out
