"""The dataset's pixel shards (`pixels-<split>-NNNNN.parquet`, schema dataset_pixels/1): decoded RGB crops at
`dataset.image_size`, in row groups of `dataset.row_group_rows` (the loader's unit of work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.params import DatasetParams
from core.parquet import table_from_rows, write_table
from core.schemas import DATASET_PIXELS
from preprocessing.dataset.quality import decode_crop


def stored_pixels(crop: bytes, size: int) -> bytes:
    """An encoded crop as the pixel shards store it: RGB uint8, `size` x `size`, row-major bytes (area
    interpolation to shrink, cubic to enlarge)."""
    import cv2

    rgb = decode_crop(crop)
    if rgb.shape[:2] != (size, size):
        shrinking = rgb.shape[0] > size
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()


class PixelShardWriter:
    """Pixel rows of one split into pixels-<split>-NNNNN.parquet files of `shard_rows` rows."""

    def __init__(self, folder: Path, split: str, settings: DatasetParams, recorded: dict[str, Any]) -> None:
        self.folder, self.split, self.settings, self.recorded = folder, split, settings, recorded
        self.index, self.rows = 0, []
        self.location: dict[str, tuple[str, int]] = {}

    def add(self, face_id: str, pixels: bytes) -> None:
        if len(self.rows) >= self.settings.shard_rows:
            self.flush()
        self.location[face_id] = (self.name, len(self.rows))
        self.rows.append({"face_id": face_id, "pixels": pixels})

    @property
    def name(self) -> str:
        return f"pixels-{self.split}-{self.index:05d}.parquet"

    def flush(self) -> None:
        if self.rows:
            meta = {**self.recorded, "split": self.split}
            table = table_from_rows(self.rows, DATASET_PIXELS)
            write_table(
                table,
                self.folder / self.name,
                DATASET_PIXELS,
                meta,
                row_group_size=self.settings.row_group_rows,
                compression=self.settings.compression,
            )
            self.index += 1
            self.rows = []
