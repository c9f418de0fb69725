"""The faces stage's crop shards: written in bounded files as crops arrive, and read back by the stages
after it (tags, dataset)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from core.parquet import SchemaMismatchError, read_table, table_from_rows, write_table
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


class ShardWriter:
    """Crops into `crops-NNNNN.parquet` files of bounded size, in the order they arrive."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.index = 0
        self.rows: list[dict[str, Any]] = []
        self.size = 0

    @property
    def name(self) -> str:
        return f"crops-{self.index:05d}.parquet"

    def add(self, face_id: str, data: bytes) -> tuple[str, int]:
        if self.rows and self.size + len(data) > self.max_bytes:
            self.flush()
        self.rows.append({"face_id": face_id, "image": data})
        self.size += len(data)
        return self.name, len(self.rows) - 1

    def flush(self) -> None:
        if self.rows:
            write_table(table_from_rows(self.rows, CROPS), self.folder / self.name, CROPS)
            self.index += 1
            self.rows, self.size = [], 0
