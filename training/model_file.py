"""The model file `models/twingan.pt`: what inference, the index, the evaluation and the demo load.

It holds the EMA encoder and generator (not the discriminators: nothing after training needs them), the
network config, the tag vocabulary in conditioning order, the step, the train params, the params profile that
made it (`demo`, `real`: core/profiles.py), and per domain how its faces were detected and aligned (`faces`:
detector, detector options, alignment, and for pre-cut crops their measured framing), so a raw photo is
cropped for the model exactly as its training crops were, without the params file that made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import MissingFile
from training.checkpoint import MODEL_FORMAT, CheckpointError, load, save_atomic
from training.networks import NetworkConfig, TwinGAN


@dataclass(frozen=True)
class ModelInfo:
    """Everything in the model file but the weights."""

    config: NetworkConfig
    vocabulary: tuple[str, ...]
    step: int
    faces: Mapping[str, Mapping[str, Any]]  # domain -> {"detector", "detector_options", "align"}; {} if unknown
    train: Mapping[str, Any]
    profile: str = "unknown"  # the params profile that trained it (core/profiles.py); unknown in older files
    # domain -> its training faces' most common tags: the condition of a translation asked for none; {} in older files
    typical_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def faces_of(self, domain: str, path: Path | str = "the model file") -> Mapping[str, Any]:
        """How `domain`'s faces were cropped; an error naming the domain when the file does not say."""
        if domain not in self.config.domains:
            raise ValueError(f"unknown domain {domain!r}; {path} knows: {', '.join(self.config.domains)}")
        spec = self.faces.get(domain)
        if not spec:
            raise CheckpointError(
                f"{path}: does not record how {domain} faces were detected and aligned; retrain it with this version"
            )
        return spec


def save_model(
    path: Path,
    model: TwinGAN,
    *,
    vocabulary: tuple[str, ...] | list[str],
    step: int,
    faces: Mapping[str, Mapping[str, Any]],
    train: Mapping[str, Any],
    profile: str = "demo",
    half: bool = False,
    typical_tags: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Atomically; byte-identical for identical weights and metadata. `half` stores the weights as fp16 (a release
    copy, half the bytes); load_model casts them back into the fp32 network, so only their rounding differs."""

    def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        state = module.state_dict()
        return {k: v.half() if half and v.is_floating_point() else v for k, v in state.items()}

    save_atomic(
        {
            "format": MODEL_FORMAT,
            "network": model.config.to_dict(),
            "vocabulary": list(vocabulary),
            "step": int(step),
            "faces": {d: dict(spec) for d, spec in faces.items()},
            "encoder": weights(model.encoder),
            "generator": weights(model.generator),
            "train": dict(train),
            "profile": profile,
            "typical_tags": {d: list(tags) for d, tags in (typical_tags or {}).items()},
        },
        path,
    )


def load_model(path: Path | str, device: str | torch.device = "cpu") -> tuple[TwinGAN, ModelInfo]:
    """The model in eval mode on `device`, and its metadata. Errors name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"{path}: no model file; `dvc repro train` writes models/twingan.pt")
    payload = load(path, MODEL_FORMAT)
    try:
        config = NetworkConfig.from_dict(payload["network"])
        model = TwinGAN(config)
        model.encoder.load_state_dict(payload["encoder"])
        model.generator.load_state_dict(payload["generator"])
        info = ModelInfo(
            config=config,
            vocabulary=tuple(payload["vocabulary"]),
            step=int(payload["step"]),
            faces=payload.get("faces", {}),
            train=payload.get("train", {}),
            profile=str(payload.get("profile", "unknown")),
            typical_tags={d: tuple(tags) for d, tags in payload.get("typical_tags", {}).items()},
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: does not match this version's networks ({error}); retrain it") from None
    return model.to(device).eval().requires_grad_(False), info
