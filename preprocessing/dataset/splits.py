"""Train/val/test assignment by a stable hash of the source identity.

Hashing (not a random draw) keeps every face's split fixed when the dataset grows: adding photos never
moves an old face into another split. Hashing the *source* (the photo, or for a crawl the game page)
keeps all faces of one source in one split, so a character's art never lands in both train and test.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping

SPLIT_KEYS = ("image", "source", "source_folder")


def split_key(kind: str, image_id: str, source_uri: str, member: str) -> str:
    if kind == "image":
        return image_id
    if kind == "source":
        return source_uri
    if kind == "source_folder":
        return f"{source_uri}::{posixpath.dirname(member)}"
    raise ValueError(f"unknown split key {kind!r} (known: {', '.join(SPLIT_KEYS)})")


def assign_split(key: str, fractions: Mapping[str, float], salt: str) -> str:
    """The split whose cumulative fraction first exceeds the key's hash position in [0, 1)."""
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, fraction in fractions.items():
        cumulative += fraction
        if position < cumulative:
            return name
    return next(reversed(list(fractions)))  # rounding: the last split
