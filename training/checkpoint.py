"""Checkpoints: everything a run needs to continue exactly, and the model file users load.

Like StyleGAN2-ADA's snapshots, a checkpoint carries the construction arguments of its networks, so it
loads without the params that made it; unlike the original Twin-GAN (which reset Adam at every growing
stage) it also carries both optimisers, the EMA, the step and the random state, so a killed run resumes
where it stopped. Files are written to a temporary name and renamed: a kill while saving leaves the
previous checkpoint intact.

Both kinds of file hold tensors and plain values only, so they are read with `weights_only=True`: a model
file is what users download from strangers, and full unpickling would run whatever code it names.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from core.atomic import atomic_path
from core.errors import UserError

FORMAT = "twingan-checkpoint/1"
MODEL_FORMAT = "twingan-model/1"


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used with the current settings; the message says why and what to do."""


def save_atomic(payload: Mapping[str, Any], path: Path) -> None:
    # Through a file object: given a path, torch names the zip's inner folder after the (random) temporary
    # file, so equal weights would give different bytes and DVC would see a changed model.
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        torch.save(dict(payload), handle)


# torch's refusal is a paragraph of advice on loading the file unsafely; the reason is one sentence of it.
_REASON_RE = re.compile(r"WeightsUnpickler error:\s*(.*?)\s*(?:Please use|Check the documentation|$)", re.DOTALL)
# Reasons that mean "the pickle names a function or class to call", as opposed to a damaged stream.
_CODE_RE = re.compile(r"global|reduce|class|build", re.IGNORECASE)


def load(path: Path, expected_format: str = FORMAT) -> dict[str, Any]:
    """A checkpoint or model file's payload; anything beyond tensors and plain values is refused, never run."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = _REASON_RE.search(str(error))
        reason = " ".join(found.group(1).split()).rstrip(". ") if found else str(error).split("\n", 1)[0]
        if found and _CODE_RE.search(reason):
            raise CheckpointError(
                f"{path}: refused, not loaded: {reason}. Model and checkpoint files hold only tensors and plain "
                "values; this one names code to run when opened. Use files from sources you trust"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({error})") from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != expected_format:
        raise CheckpointError(f"{path}: holds {found or 'something else'}, this version reads {expected_format}")
    return payload


def check_compatible(path: Path, saved: Mapping[str, Any], current: Mapping[str, Any], what: str) -> None:
    """Refuse to resume when the networks (or losses) would differ: name every differing key."""
    keys = sorted(set(saved) | set(current))
    differing = [key for key in keys if saved.get(key) != current.get(key)]
    if differing:
        details = ", ".join(
            f"{key}: {saved.get(key)!r} in the checkpoint, {current.get(key)!r} now" for key in differing
        )
        raise CheckpointError(
            f"{path}: made with other {what} settings ({details}). Delete it to start a new run, or set the "
            "params back to resume it"
        )
