"""The condition vector a translation is asked for: named tags, and optionally a reference's features.

G and D take one vector per image: the multi-hot of the model's tag vocabulary (in the order the model
file records), followed by `feature_dim` reference features (illust2vec's encoding of a character, say;
zeros when no reference is given, which the generator's projection maps to a no-op). Inference, the
evaluation and the web demo build it here, so a tag is spelt and ordered the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from core.errors import UsageError, UserError
from training.networks import NetworkConfig


class UnknownTagError(UserError, ValueError):
    """A requested tag is not in the model's vocabulary; the message lists the ones it knows."""


def parse_tags(text: str | Iterable[str] | None) -> list[str]:
    """'green hair, blue eyes' (or a list of such strings) -> ['green hair', 'blue eyes']."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    return [tag.strip() for part in parts for tag in part.split(",") if tag.strip()]


def condition_vector(
    config: NetworkConfig,
    vocabulary: Sequence[str],
    batch: int,
    *,
    tags: Iterable[str] = (),
    features: np.ndarray | Tensor | None = None,
    device: str | torch.device = "cpu",
) -> Tensor | None:
    """(batch, config.condition_dim) float32, the same row repeated; None for a model without conditioning.

    `features` is one vector (feature_dim,) or one per image (batch, feature_dim).
    """
    wanted = list(tags)
    if config.condition_dim == 0:
        if wanted or features is not None:
            raise UnknownTagError("this model was trained without tag conditioning: it takes no tags or reference")
        return None
    if len(vocabulary) != config.tag_dim:
        raise ValueError(f"the vocabulary has {len(vocabulary)} tags, the network expects {config.tag_dim}")
    index = {tag: i for i, tag in enumerate(vocabulary)}
    unknown = [tag for tag in wanted if tag not in index]
    if unknown:
        raise UnknownTagError(
            f"unknown tag(s) {', '.join(map(repr, unknown))}; this model knows: {', '.join(vocabulary)}"
        )
    out = torch.zeros(batch, config.condition_dim, dtype=torch.float32)
    for tag in wanted:
        out[:, index[tag]] = 1.0
    if features is not None:
        if config.feature_dim == 0:
            raise UnknownTagError("this model was trained without reference features: give tags instead")
        given = torch.as_tensor(np.asarray(features, dtype=np.float32))
        if given.dim() == 1:
            given = given.unsqueeze(0).expand(batch, -1)
        if tuple(given.shape) != (batch, config.feature_dim):
            raise UsageError(f"reference features must have {config.feature_dim} values, got {tuple(given.shape)}")
        out[:, config.tag_dim :] = given
    return out.to(device)
