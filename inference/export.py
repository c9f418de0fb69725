"""Exporting one translation direction of the trained Twin-GAN as ONNX or TorchScript.

Why: serving a translation (a web service, a phone, C++) should not need this project, Python or even
PyTorch. The exported graph is encode(source) + decode(target) for one (source, target) pair, from
aligned crops at the model's resolution in [-1, 1] (N, 3, R, R) to translations (N, 3, R, R), unclamped,
with a dynamic batch size. A conditioned model takes the condition vector (N, condition_dim: the tag
multi-hot in the vocabulary's order, then the reference features) as a second input, unless tags are
given at export time, which bakes that one condition into the graph. The vocabulary, the domains, the
resolution and the source domain's detector and alignment are stored in the file's metadata, so a
consumer can crop faces the way training did.

Every export is checked before it is moved into place: the exported file, loaded back (onnxruntime or
torch.jit.load), must match the eager model on a random batch of another size than the one it was traced
with; a mismatch beyond the tolerance is an error and leaves no file behind.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from core.atomic import atomic_path
from core.errors import UsageError, UserError
from training.conditioning import condition_vector
from training.model_file import ModelInfo, load_model, save_model
from training.networks import TwinGAN

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
DEFAULT_TOLERANCE = 1e-4
RELEASE_TOLERANCE = 0.05  # outputs in [-1, 1]: fp16 rounding of the weights, not a wrong file, stays well under it
TRACE_BATCH, CHECK_BATCH = 2, 3  # the check uses another batch size than the trace: the batch is dynamic
ONNX_OPSET = 18


class ExportMismatch(UserError, RuntimeError):
    """The exported model does not reproduce the eager model within the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    format: str
    inputs: tuple[str, ...]
    max_abs_diff: float
    tolerance: float
    check_batch: int


class TranslationGraph(nn.Module):
    """encode(source) then decode(target), with the condition as an input or fixed at construction."""

    def __init__(self, model: TwinGAN, source: str, target: str, condition: Tensor | None = None) -> None:
        super().__init__()
        self.encoder, self.generator = model.encoder, model.generator
        self.source = int(model.domain_index(source))
        self.target = int(model.domain_index(target))
        self.has_fixed = condition is not None
        if condition is not None:
            self.register_buffer("fixed", condition, persistent=False)

    def forward(self, image: Tensor, condition: Tensor | None = None) -> Tensor:
        if self.has_fixed:
            condition = self.fixed.expand(image.shape[0], -1)
        latent, skips = self.encoder(image, self.source)
        return self.generator(latent, skips, self.target, condition)


def metadata(info: ModelInfo, source: str, target: str, tags: tuple[str, ...], inputs: tuple[str, ...]) -> dict:
    """What a consumer of the exported file needs to prepare its inputs."""
    return {
        "twingan_export": 1,
        "source": source,
        "target": target,
        "resolution": info.config.resolution,
        "inputs": list(inputs),
        "input_range": [-1.0, 1.0],
        "layout": "NCHW RGB",
        "vocabulary": list(info.vocabulary),
        "feature_dim": info.config.feature_dim,
        "fixed_tags": list(tags),
        "step": info.step,
        "faces": dict(info.faces.get(source, {})),
    }


def _example(info: ModelInfo, batch: int, conditioned: bool, seed: int) -> tuple[Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    r = info.config.resolution
    image = torch.rand(batch, 3, r, r, generator=generator) * 2 - 1
    if not conditioned:
        return (image,)
    condition = torch.zeros(batch, info.config.condition_dim)
    condition[:, : info.config.tag_dim] = (torch.rand(batch, info.config.tag_dim, generator=generator) < 0.2).float()
    if info.config.feature_dim:
        condition[:, info.config.tag_dim :] = torch.randn(batch, info.config.feature_dim, generator=generator)
    return image, condition


def _export_onnx(graph: TranslationGraph, example: tuple[Tensor, ...], names: tuple[str, ...], path: Path,
                 meta: dict[str, Any]) -> None:  # fmt: skip
    import onnx

    batch = torch.export.Dim("batch", min=1, max=65536)
    # "torchvision is not installed. Skipping torchvision::nms": true, and irrelevant to this graph.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own FutureWarnings and axis-renaming notes
        torch.onnx.export(
            graph, example, str(path), dynamo=True, external_data=False, opset_version=ONNX_OPSET,
            input_names=list(names), output_names=["translated"],
            dynamic_shapes={name: {0: batch} for name in names}, verbose=False,
        )  # fmt: skip
    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, sort_keys=True)
    onnx.save(proto, str(path))


def _run_onnx(path: Path, names: tuple[str, ...], inputs: tuple[Tensor, ...]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)})[0]


def _export_torchscript(graph: TranslationGraph, example: tuple[Tensor, ...], path: Path, meta: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants: intended
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; still supported
        traced = torch.jit.trace(graph, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"twingan.json": json.dumps(meta, sort_keys=True)})


def _run_torchscript(path: Path, inputs: tuple[Tensor, ...]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return loaded(*inputs).numpy()


def export_translation(
    model_path: Path | str,
    out: Path | str,
    *,
    format: str,
    source: str,
    target: str,
    tags: tuple[str, ...] | list[str] = (),
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportReport:
    """Export source -> target of the model file to `out`, check it against eager, then move it in place.

    Raises ExportMismatch (no file written) when max |exported - eager| on a random batch exceeds
    `tolerance`; UnknownTagError for a tag the model does not know.
    """
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    model_path, out = Path(model_path), Path(out)
    model, info = load_model(model_path, "cpu")
    for name, domain in (("--from", source), ("--to", target)):
        if domain not in info.config.domains:
            raise UsageError(f"{name} {domain!r}: {model_path} knows only {', '.join(info.config.domains)}")
    tags = tuple(tags)
    fixed = condition_vector(info.config, info.vocabulary, 1, tags=tags) if tags else None
    conditioned = info.config.condition_dim > 0 and fixed is None
    names = ("image", "condition") if conditioned else ("image",)
    graph = TranslationGraph(model, source, target, fixed).eval().requires_grad_(False)
    meta = metadata(info, source, target, tags, names)
    example = _example(info, TRACE_BATCH, conditioned, seed=0)
    check = _example(info, CHECK_BATCH, conditioned, seed=1)
    with torch.inference_mode():
        expected = graph(*check).numpy()
    with atomic_path(out) as tmp:
        if format == "onnx":
            _export_onnx(graph, example, names, tmp, meta)
            got = _run_onnx(tmp, names, check)
        else:
            _export_torchscript(graph, example, tmp, meta)
            got = _run_torchscript(tmp, check)
        difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if not difference <= tolerance:
            raise ExportMismatch(
                f"{out}: the exported {format} model differs from the eager model by up to {difference:.3g} "
                f"on a random batch of {CHECK_BATCH} (tolerance {tolerance:g}; output shapes {got.shape} and "
                f"{expected.shape}); nothing was written"
            )
    log.debug("wrote %s (%s, %s -> %s, inputs: %s); max |exported - eager| = %.3g", out, format, source, target,
             ", ".join(names), difference)  # fmt: skip
    return ExportReport(out, format, names, difference, tolerance, CHECK_BATCH)


@dataclass(frozen=True)
class ReleaseReport:
    path: Path
    bytes_in: int
    bytes_out: int
    directions: int
    max_abs_diff: float
    tolerance: float


def release_model(model_path: Path | str, out: Path | str, *, tolerance: float = RELEASE_TOLERANCE) -> ReleaseReport:
    """A copy of the model file to ship (committed to git, downloaded): the same metadata with fp16 weights.

    Every direction between the model's domains (reconstructions included) is run by both files on a random batch;
    a difference beyond `tolerance` raises ExportMismatch and writes nothing.
    """
    model_path, out = Path(model_path), Path(out)
    if out.resolve() == model_path.resolve():
        raise UsageError(f"--out {out}: is the model file itself; write the release copy elsewhere")
    model, info = load_model(model_path, "cpu")
    conditioned = info.config.condition_dim > 0
    check = _example(info, CHECK_BATCH, conditioned, seed=1)
    pairs = [(s, t) for s in info.config.domains for t in info.config.domains]
    difference = 0.0
    with atomic_path(out) as tmp:
        save_model(tmp, model, vocabulary=info.vocabulary, step=info.step, faces=info.faces, train=info.train,
                   profile=info.profile, half=True, typical_tags=info.typical_tags)  # fmt: skip
        released, _ = load_model(tmp, "cpu")
        with torch.inference_mode():
            for source, target in pairs:
                want = TranslationGraph(model, source, target)(*check)
                got = TranslationGraph(released, source, target)(*check)
                difference = max(difference, float((got - want).abs().max()))
        if not difference <= tolerance:
            raise ExportMismatch(
                f"{out}: the fp16 copy of {model_path} differs from it by up to {difference:.3g} on a random batch "
                f"of {CHECK_BATCH} (tolerance {tolerance:g}); nothing was written"
            )
        bytes_out = tmp.stat().st_size
    return ReleaseReport(out, model_path.stat().st_size, bytes_out, len(pairs), difference, tolerance)


__all__ = ["DEFAULT_TOLERANCE", "FORMATS", "RELEASE_TOLERANCE", "ExportMismatch", "ExportReport", "ReleaseReport",
           "TranslationGraph", "export_translation", "release_model"]  # fmt: skip
