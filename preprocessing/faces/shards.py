"""Reading crops back from the faces stage's shards, for the stages after it (tags, dataset)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from core.parquet import SchemaMismatchError, read_table
from core.schemas import CROPS


def crops_by_shard(folder: Path, faces: Iterable[Mapping[str, Any]]) -> Iterator[list[tuple[Mapping[str, Any], bytes]]]:
    """(face row, encoded crop) for the given rows of faces.parquet, one list per shard in shard order and
    row order within it: each shard is read once, whatever the number of faces, and memory holds one.
    A row that does not hold the face faces.parquet says it does is an error naming the shard."""
    by_shard: dict[str, list[Mapping[str, Any]]] = {}
    for face in faces:
        by_shard.setdefault(face["shard"], []).append(face)
    for shard in sorted(by_shard):
        crops = read_table(folder / shard, CROPS)
        ids, images = crops["face_id"].to_pylist(), crops["image"]
        out = []
        for face in sorted(by_shard[shard], key=lambda f: f["shard_row"]):
            row = face["shard_row"]
            if row >= len(ids) or ids[row] != face["face_id"]:
                raise SchemaMismatchError(
                    f"{folder / shard}: row {row} does not hold face {face['face_id']} (faces.parquet and its "
                    "shards disagree: re-run the faces stage)"
                )
            out.append((face, images[row].as_py()))
        yield out
