"""i2v's `estimate_plausible_tags`: per image, the tags over their category's threshold.

Why: the pipeline stores illust2vec's probabilities and never thresholds them this way, so the function is
kept for the tests, which pin it against i2v's reference behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from preprocessing.tags.illust2vec import CATEGORIES, NUM_TAGS


def plausible_tags(
    probs: np.ndarray, tags: Sequence[str], thresholds: Mapping[str, float]
) -> list[dict[str, list[tuple[str, float]]]]:
    """Per image: the general, character and copyright tags with p > that category's threshold, and all
    three ratings; each list sorted by descending p (i2v's estimate_plausible_tags)."""
    rows = np.asarray(probs)
    rows = rows[None] if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[1] != NUM_TAGS or len(tags) != NUM_TAGS:
        raise ValueError(f"expected (N, {NUM_TAGS}) probabilities and {NUM_TAGS} tags, got {rows.shape}, {len(tags)}")
    thresholded = ("general", "character", "copyright")
    if set(thresholds) != set(thresholded):
        raise ValueError(f"thresholds must give exactly {thresholded}, got {sorted(thresholds)}")

    def ranked(row: np.ndarray, category: str, threshold: float | None) -> list[tuple[str, float]]:
        start, stop = CATEGORIES[category]
        values = row[start:stop]
        order = np.argsort(-values, kind="stable")
        if threshold is not None:
            order = order[values[order] > threshold]
        return [(tags[start + i], float(values[i])) for i in order]

    return [
        {**{c: ranked(row, c, thresholds[c]) for c in thresholded}, "rating": ranked(row, "rating", None)}
        for row in rows
    ]
