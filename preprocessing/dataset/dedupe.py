"""Near-duplicate removal by perceptual hash.

The same character art appears on many Getchu pages (editions, bundles) and CelebA holds near-identical
frames of one video; both would leak between splits and overweight a few faces. Two crops are near
duplicates when the Hamming distance of their 64-bit pHashes is at most `max_distance`.

All pairs would be quadratic (4e10 comparisons for 200k faces), so candidates come from multi-index
hashing: split the hash into `max_distance + 1` bands; by the pigeonhole principle two hashes within
the distance agree exactly on at least one band, so only faces that share a band value are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from preprocessing.dataset.quality import CropQuality, colour_distance


@dataclass(frozen=True)
class DuplicatePair:
    kept: int  # index into the input
    removed: int
    distance: int


def _popcount(values: np.ndarray) -> np.ndarray:
    return np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def _bands(max_distance: int) -> list[tuple[int, int]]:
    count = max_distance + 1
    edges = np.linspace(0, 64, count + 1).round().astype(int)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(count) if edges[i + 1] > edges[i]]


def near_duplicate_pairs(hashes: Sequence[int], max_distance: int) -> list[tuple[int, int, int]]:
    """Every pair (i, j, distance), i < j, whose hashes differ in at most `max_distance` bits."""
    if not 0 <= max_distance <= 32:
        raise ValueError(f"max_distance must be 0-32 bits, got {max_distance}")
    values = np.array([int(h) for h in hashes], dtype=np.uint64)
    found: dict[tuple[int, int], int] = {}
    for low, high in _bands(max_distance):
        mask = np.uint64((1 << (high - low)) - 1)
        keys = (values >> np.uint64(low)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for start, end in zip(starts, ends, strict=True):
            if end - start < 2:
                continue
            members = np.sort(order[start:end])
            for offset, i in enumerate(members[:-1]):
                others = members[offset + 1 :]
                distances = _popcount(values[others] ^ values[i])
                for j, distance in zip(
                    others[distances <= max_distance], distances[distances <= max_distance], strict=True
                ):
                    found[(int(i), int(j))] = int(distance)
    return sorted((i, j, d) for (i, j), d in found.items())


def remove_near_duplicates(
    hashes: Sequence[int],
    max_distance: int,
    preference: Callable[[int], tuple],
    also_alike: Callable[[int, int], bool] | None = None,
) -> tuple[list[int], list[DuplicatePair]]:
    """Group near duplicates (transitively) and keep the preferred member of each group.

    `preference(index)` sorts members, best first (e.g. larger source face, sharper, then id);
    `also_alike(i, j)` can veto a pair the hashes found (e.g. same drawing, other colours). Returns the
    kept indices (sorted) and one pair per removed face, with its distance to the face kept in its place.
    """
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in near_duplicate_pairs(hashes, max_distance):
        if also_alike is not None and not also_alike(i, j):
            continue
        root_i, root_j = find(i), find(j)
        if root_i != root_j:
            parent[max(root_i, root_j)] = min(root_i, root_j)
    groups: dict[int, list[int]] = {}
    for index in range(len(hashes)):
        groups.setdefault(find(index), []).append(index)
    kept, removed = [], []
    for members in groups.values():
        best, *rest = sorted(members, key=preference)
        kept.append(best)
        for other in rest:
            distance = bin(int(hashes[best]) ^ int(hashes[other])).count("1")
            removed.append(DuplicatePair(kept=best, removed=other, distance=distance))
    return sorted(kept), sorted(removed, key=lambda pair: (pair.kept, pair.removed))


def preference(face: Mapping[str, Any], quality: CropQuality) -> tuple[float, float, str]:
    """The sort key of a face among its near duplicates, best first: the larger face in its source image,
    then the sharper crop, then the face id (so that ties are broken the same way every run)."""
    return (-face["source_size"], -quality.sharpness, face["face_id"])


def alike(first: CropQuality, second: CropQuality, max_colour_distance: float) -> bool:
    """Whether two crops the hashes call near duplicates also have the same colours: pHash sees only grey
    levels, so a palette swap of one drawing (another character) is told apart here."""
    return colour_distance(first, second) <= max_colour_distance


def remove_duplicate_faces(
    faces: Sequence[dict[str, Any]],
    quality: Mapping[str, CropQuality],
    max_distance: int,
    max_colour_distance: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The faces kept (in input order) and a duplicates.parquet row per face removed: near duplicates by
    pHash within `max_distance` bits whose colours are also `alike`, the `preference` kept of each group."""
    measured = [quality[face["face_id"]] for face in faces]
    kept, pairs = remove_near_duplicates(
        [q.phash for q in measured],
        max_distance,
        lambda i: preference(faces[i], measured[i]),
        lambda i, j: alike(measured[i], measured[j], max_colour_distance),
    )
    duplicates = [
        {
            "kept_face_id": faces[p.kept]["face_id"],
            "removed_face_id": faces[p.removed]["face_id"],
            "distance": p.distance,
        }
        for p in pairs
    ]
    return [faces[i] for i in kept], duplicates
