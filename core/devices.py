"""Which torch device a `device` setting (params, or a command's --device) means; one rule for every use."""

from __future__ import annotations

import os

import torch

from core.errors import UsageError


def resolve_device(name: str | torch.device) -> torch.device:
    """`auto` (CUDA when available: the GPU of this process's LOCAL_RANK; else CPU), `cpu`, `cuda` or
    `cuda:N`; a CUDA device that is not there is an error that says so, rather than a crash deep in torch."""
    if str(name) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        # Under torchrun each process takes the GPU of its local rank; alone, the first.
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {str(name)!r}: this machine has no CUDA device (torch {torch.__version__}); use cpu")
    return device


def inference_batch_size(requested: int | None, device: torch.device, *, cuda: int, cpu: int) -> int:
    """`requested`, or the use's default for the device when None. A GPU wants large batches; on a CPU the
    64-256 px layers are memory-bound (one activation of a large batch lies far outside the caches), so
    small batches are faster per image (measured by benchmarks/embed.py and benchmarks/translate.py)."""
    if requested is not None:
        if requested < 1:
            raise UsageError(f"batch size must be at least 1, got {requested}")
        return requested
    return cuda if device.type == "cuda" else cpu
