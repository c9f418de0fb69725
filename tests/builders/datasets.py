"""Dataset folders as `dataset@<domain>` writes them (pixel shards and a manifest), and manifest rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from core.parquet import table_from_rows, write_table
from core.schemas import DATASET_MANIFEST, DATASET_PIXELS

VOCABULARY = ["blonde hair", "blue eyes", "smile", "rare"]


def pixels_of(index: int, size: int) -> np.ndarray:
    """An image that says which sample it is: red + 256 * green = its index, blue rises left to right."""
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[..., 0], image[..., 1] = index % 256, index // 256
    image[..., 2] = (np.arange(size) * (256 // size)).astype(np.uint8)
    return image


def tags_of(index: int) -> list[str]:
    return [tag for k, tag in enumerate(VOCABULARY[:3]) if index >> k & 1]


def write_dataset(
    root: Path,
    *,
    domain: str = "human",
    counts: dict[str, int] | None = None,
    image_size: int = 16,
    group_rows: int = 4,
    shard_rows: int = 16,
    vocabulary: list[str] = VOCABULARY,
    tags: Callable[[int], list[str]] = tags_of,
    weight: Callable[[int], float] = lambda _: 1.0,
    keep: Callable[[int], bool] = lambda _: True,
    corrupt: Iterable[int] = (),
    features: Callable[[int], np.ndarray | None] | None = None,
    faces: dict | None = None,
) -> Path:
    """A dataset folder as `dataset@<domain>` writes it: pixel shards per split with small row groups, and a
    manifest of the kept rows (`keep`) pointing into them. Sample i's face id is f"{domain}-{i:05d}"."""
    counts = counts or {"train": 48, "val": 8}
    corrupt, rows, first = set(corrupt), [], 0
    for split, n in counts.items():
        indices = list(range(first, first + n))
        first += n
        for number, start in enumerate(range(0, n, shard_rows)):
            shard = f"pixels-{split}-{number:05d}.parquet"
            chunk = indices[start : start + shard_rows]
            pixels = [
                {
                    "face_id": f"{domain}-{i:05d}",
                    "pixels": pixels_of(i, image_size).tobytes()[: -1 if i in corrupt else None],
                }
                for i in chunk
            ]
            table = table_from_rows(pixels, DATASET_PIXELS)
            params = {"image_size": image_size}
            write_table(table, root / shard, DATASET_PIXELS, params, row_group_size=group_rows)
            rows += [(i, split, shard, row) for row, i in enumerate(chunk) if keep(i)]
    weights = {split: np.mean([weight(i) for i, s, *_ in rows if s == split]) for split in counts}
    manifest = [
        manifest_row(domain, i, split, shard, row, tags(i), weight(i) / weights[split]) for i, split, shard, row in rows
    ]
    params = {"image_size": image_size, "vocabulary": vocabulary, **({"faces": faces} if faces else {})}
    table = table_from_rows(manifest, DATASET_MANIFEST)
    if features is not None:
        table = table.set_column(table.schema.get_field_index("features"), DATASET_MANIFEST.field("features"),
                                 features_column([features(i) for i, *_ in rows]))  # fmt: skip
    write_table(table, root / "manifest.parquet", DATASET_MANIFEST, params)
    return root


def features_column(vectors: list[np.ndarray | None]) -> pa.Array:
    """float16 fixed-size lists as the tags stage writes illust2vec's features; None = a face without."""
    width = DATASET_MANIFEST.field("features").type.list_size
    values = np.zeros((len(vectors), width), dtype=np.float16)
    for row, vector in enumerate(vectors):
        if vector is not None:
            values[row, : len(vector)] = vector
    mask = pa.array([vector is None for vector in vectors])
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width, mask=mask)


def manifest_row(domain: str, i: int, split: str, shard: str, row: int, tags: list[str], weight: float) -> dict:
    return {
        "face_id": f"{domain}-{i:05d}",
        "image_id": f"img{i}",
        "domain": domain,
        "split": split,
        "shard": shard,
        "shard_row": row,
        "tags": tags,
        "weight": weight,
        "source_uri": "folder",
        "member": f"{i}.jpg",
        "raw_path": f"images/{i}.jpg",
        "box": [0.0, 0.0, 10.0, 10.0],
        "crop_sha256": "0" * 64,
        "phash": "0" * 16,
        "sharpness": 100.0,
        "brightness": 128.0,
        "source_size": 200.0,
    }
