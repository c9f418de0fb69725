"""Which torch device a `device` setting (params, or a command's --device) means; one rule for every use."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`; a CUDA device that is not there is
    an error that says so, rather than a crash deep inside torch."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r}: this machine has no CUDA device (torch {torch.__version__}); use cpu")
    return device
