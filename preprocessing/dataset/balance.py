"""Tag-balanced sampling weights, so training can even out rare hair colours or genders.

The seed's anime set was mostly female and turned men into women; weighting each face by the inverse
frequency of its group values (hair colour, eye colour, gender) makes each value about equally likely
per batch. Weights are normalised to mean 1 and capped, so a value seen once is not drawn every batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

GENDER_TAGS = {"male": "male", "1boy": "male", "1girl": "female"}


def group_value(group: str, tags: Sequence[str]) -> str:
    if group == "hair":
        return next((tag for tag in tags if tag.endswith(" hair")), "unknown")
    if group == "eyes":
        return next((tag for tag in tags if tag.endswith(" eyes")), "unknown")
    if group == "gender":
        return next((GENDER_TAGS[tag] for tag in tags if tag in GENDER_TAGS), "unknown")
    raise ValueError(f"unknown balance group {group!r} (known: hair, eyes, gender)")


def gender_of(tags: Sequence[str]) -> str:
    return group_value("gender", tags)


def balanced_weights(tag_lists: Sequence[Sequence[str]], groups: Sequence[str], max_weight: float) -> np.ndarray:
    """One weight per face: the product over groups of 1 / frequency of the face's value, mean 1, capped."""
    weights = np.ones(len(tag_lists), dtype=np.float64)
    if not groups or not tag_lists:
        return weights.astype(np.float32)
    for group in groups:
        values = [group_value(group, tags) for tags in tag_lists]
        counts = Counter(values)
        weights *= np.array([len(values) / (len(counts) * counts[value]) for value in values])
    weights /= weights.mean()
    for _ in range(20):  # cap, then renormalise; a few rounds settle it
        weights = np.minimum(weights, max_weight)
        weights /= weights.mean()
        if weights.max() <= max_weight * (1 + 1e-6):
            break
    return weights.astype(np.float32)
