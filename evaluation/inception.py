"""The feature extractor FID and KID are computed with: a TorchScript Inception-v3 named by a file path.

The file is StyleGAN2-ADA's `inception-2015-12-05.pt` (NVIDIA's TorchScript translation of TensorFlow's
2015-12-05 Inception graph, which the original FID code used; clean-fid loads the same file), fetched by
the user beforehand, e.g.

    curl -LO https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt

and named in `params.yaml: evaluate.inception`. Nothing is downloaded at run time. Its SHA-256 is not pinned
here (it could not be fetched on the machine this was written on); the stage records the SHA-256 of the
file it used in its metrics, so figures computed with different files are never silently compared.

How it is called, as StyleGAN2-ADA's metrics call it: `net(images, return_features=True)` with images as
uint8 (N, 3, H, W) RGB at the model's resolution; the file resizes them to 299x299 itself (bilinear),
scales to [-1, 1] and returns the 2048-d pool3 features (N, 2048). Any other TorchScript module with that
call signature works too (the tests use a tiny random one), and the feature width is whatever it returns.

A torchvision `inception_v3` state_dict is not accepted: torchvision is not installed beside this torch
(PyPI's does not import with 2.13), and its ImageNet weights give other FIDs than the TF graph anyway.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import MissingFile, UserError


class FeatureExtractorError(UserError, ValueError):
    """The file named in evaluate.inception is not a usable feature extractor; the message says why."""


@dataclass
class FeatureExtractor:
    """A loaded TorchScript feature network and where it came from."""

    module: torch.jit.ScriptModule
    path: Path
    sha256: str
    device: torch.device

    @torch.inference_mode()
    def features(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """(N, d) float64 features of uint8 (N, 3, H, W) images."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 (N, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
        out = [self._batch(chunk.to(self.device)) for chunk in _chunks(images, batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0))

    def _batch(self, images: torch.Tensor) -> np.ndarray:
        try:
            features = self.module(images, return_features=True)
        except (RuntimeError, TypeError) as error:
            raise FeatureExtractorError(
                f"{self.path}: calling it as net(uint8 images, return_features=True) failed ({error}); "
                "expected StyleGAN2-ADA's inception-2015-12-05.pt"
            ) from None
        features = features.reshape(len(images), -1) if isinstance(features, torch.Tensor) else None
        if features is None or not features.is_floating_point():
            raise FeatureExtractorError(f"{self.path}: did not return a float tensor of features")
        return features.double().cpu().numpy()


def _chunks(images: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), size):
        yield images[start : start + size]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_feature_extractor(path: Path, device: torch.device | str = "cpu") -> FeatureExtractor:
    """The TorchScript file at `path`, in eval mode on `device`. FileNotFoundError when absent (callers report
    the metric as not computed), FeatureExtractorError when it is not TorchScript."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"{path}: no such Inception file (evaluate.inception)")
    device = torch.device(device)
    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the released file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as error:
        raise FeatureExtractorError(
            f"{path}: not a TorchScript file ({str(error).splitlines()[0]}); evaluate.inception takes StyleGAN2-ADA's "
            "inception-2015-12-05.pt (a torchvision state_dict is not supported: torchvision is not installed)"
        ) from None
    return FeatureExtractor(module=module.eval(), path=path, sha256=sha256_of(path), device=device)
