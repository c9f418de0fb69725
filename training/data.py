"""Training data: paired batches of several domains, read from the dataset stage's pixel shards.

The dataset stage (`dataset@<domain>`) stores each split as decoded RGB pixels in Parquet shards with small
row groups, so the loader never decodes an image format: a row group is one read, and a sample is a slice
of it. What the loader adds:

- An order of samples that is a pure function of (seed, domain, epoch): training resumes exactly from a
  step number, and ranks and DataLoader workers split the same stream without talking to each other.
- A block shuffle: row groups are permuted, cut into windows of `shuffle_window` groups, and the rows of a
  window are shuffled. Reads stay local (each group is read once per window by each worker) and memory is
  bounded by the window, like a shuffle buffer, but reproducibly.
- Batches built in place: samples are copied into one uint8 array, converted, resized and normalised in
  a few whole-batch operations, into shared memory when in a DataLoader worker (no copy on the way to
  the training process).

Only torch, numpy and pyarrow: this module runs on GPU machines without the preprocessing stack.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from core.errors import MissingFile, UserError
from core.parquet import PARAMS_KEY, SchemaMismatchError, read_params, read_table, schema_id
from core.schemas import DATASET_MANIFEST, DATASET_PIXELS, SPLITS

log = logging.getLogger(__name__)

MANIFEST = "manifest.parquet"
_REBUILD = "rebuild it with dvc repro"


class CorruptShardError(UserError, ValueError):
    """A pixel shard does not hold what its manifest says. Training must stop, never see a wrong batch."""


@dataclass(frozen=True)
class RowGroup:
    """The unit of reading: one row group of one pixel shard."""

    shard: Path
    index: int  # row group within the shard
    num_rows: int
    first_row: int  # shard row of its first row


# ------------------------------------------------------------------------------------------- one split


class DomainSplit:
    """One split of one domain's dataset folder: which rows it has, where their pixels are, their tags.

    Holds only small per-row arrays (row group, offset, tags, weight, face id); pixels are read by the
    iterating process. `name` seeds the sample order (PairedDomainBatches passes its domain key).
    """

    def __init__(
        self,
        root: Path,
        split: str = "train",
        *,
        name: str | None = None,
        vocabulary: Sequence[str] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: not one of {', '.join(SPLITS)}")
        self.root, self.split = Path(root), split
        self.name = name or self.root.name
        self.manifest = self.root / MANIFEST
        table = read_table(self.manifest, DATASET_MANIFEST)
        params = read_params(self.manifest)
        self.image_size = manifest_image_size(self.manifest, params)
        self.vocabulary: tuple[str, ...] = (
            tuple(vocabulary) if vocabulary is not None else manifest_vocabulary(self.manifest, params)
        )
        table = table.filter(pc.equal(table["split"], split))
        if not table.num_rows:
            raise ValueError(f"{self.manifest}: no rows of split {split!r}")
        shards = table["shard"].to_numpy(zero_copy_only=False).astype(str)
        shard_rows = table["shard_row"].to_numpy().astype(np.int64)
        self.face_ids: list[str] = table["face_id"].to_pylist()
        self.groups, self.group, self.offset = self._locate(shards, shard_rows)
        self.tags = _multi_hot(table["tags"], self.vocabulary, self.manifest)
        self.weights = table["weight"].to_numpy().astype(np.float64)
        # How the crops were made (detector, alignment); empty for manifests written before it was recorded.
        self.faces_spec: dict[str, Any] = params.get("faces", {})
        self.features = _features(table["features"])

    @property
    def feature_dim(self) -> int:
        """Width of the reference features (illust2vec's), 0 when the domain's tagger computes none."""
        return 0 if self.features is None else self.features.shape[1]

    def features_of(self, rows: np.ndarray, width: int) -> np.ndarray:
        """float32 (len(rows), width): the rows' features, zeros for a face without (or a domain without);
        width 0 for a model conditioned on tags only."""
        out = np.zeros((len(rows), width), dtype=np.float32)
        if 0 < width < self.feature_dim:
            raise ValueError(f"{self.manifest}: features are {self.feature_dim} wide, {width} asked for")
        if width and self.features is not None:
            out[:, : self.feature_dim] = self.features[rows]
        return out

    def __len__(self) -> int:
        return len(self.face_ids)

    def __repr__(self) -> str:
        return f"DomainSplit({self.root}, {self.split!r}: {len(self)} rows, {len(self.groups)} row groups)"

    def _locate(self, shards: np.ndarray, shard_rows: np.ndarray) -> tuple[list[RowGroup], np.ndarray, np.ndarray]:
        """Index the row groups of the shards the split names, and find each row's (row group, offset).
        Row groups holding no row of the split are left out, so they never take a place in a window."""
        groups: list[RowGroup] = []
        group = np.empty(len(shards), dtype=np.int64)
        for name in sorted(set(shards.tolist())):
            shard_groups = self._open_shard(name)
            starts = np.array([g.first_row for g in shard_groups], dtype=np.int64)
            total = shard_groups[-1].first_row + shard_groups[-1].num_rows if shard_groups else 0
            mine = np.flatnonzero(shards == name)
            rows = shard_rows[mine]
            bad = np.flatnonzero((rows < 0) | (rows >= total))
            if bad.size:
                row = mine[bad[0]]
                raise ValueError(
                    f"{self.manifest}: face {self.face_ids[row]} points at row {shard_rows[row]} of "
                    f"{self.root / name}, which has {total} rows; {_REBUILD}"
                )
            group[mine] = len(groups) + np.searchsorted(starts, rows, side="right") - 1
            groups.extend(shard_groups)
        first_rows = np.array([g.first_row for g in groups], dtype=np.int64)
        offset = shard_rows - first_rows[group]
        used, group = np.unique(group, return_inverse=True)
        self._check_unique(group, offset)
        return [groups[i] for i in used], group.astype(np.int64), offset.astype(np.int64)

    def _check_unique(self, group: np.ndarray, offset: np.ndarray) -> None:
        keys = group.astype(np.int64) * (1 << 32) + offset
        unique, first = np.unique(keys, return_index=True)
        if len(unique) != len(keys):
            twice = sorted(set(range(len(keys))) - set(first.tolist()))[0]
            raise ValueError(f"{self.manifest}: face {self.face_ids[twice]} shares its shard row with another face")

    def _open_shard(self, name: str) -> list[RowGroup]:
        path = self.root / name
        if not path.is_file():
            raise MissingFile(f"{path}: pixel shard listed in {self.manifest} is missing; {_REBUILD}")
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise CorruptShardError(f"{path}: not a readable Parquet file ({error}); {_REBUILD}") from error
        check_pixel_schema(path, parquet.schema_arrow)
        raw = (parquet.schema_arrow.metadata or {}).get(PARAMS_KEY)
        size = manifest_image_size(path, json.loads(raw) if raw else {})
        if size != self.image_size:
            raise CorruptShardError(
                f"{path}: image_size {size}, but {self.manifest} says {self.image_size}; {_REBUILD}"
            )
        groups, first = [], 0
        for index in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            groups.append(RowGroup(path, index, rows, first))
            first += rows
        return groups

    def tags_of(self, rows: np.ndarray) -> np.ndarray:
        """Multi-hot float32 (len(rows), V) over `self.vocabulary`."""
        return self.tags[rows].astype(np.float32)

    def condition_of(self, rows: np.ndarray, feature_dim: int) -> np.ndarray:
        """float32 (len(rows), V + feature_dim): the rows' tags, then their features; the layout G and D are
        conditioned on (training/conditioning.py builds the same at inference)."""
        return np.concatenate([self.tags_of(rows), self.features_of(rows, feature_dim)], axis=1)

    def check_crop(self, row: int, group: int, face_ids: Sequence[str]) -> None:
        """Stop unless the row group's face at `row`'s offset is the face the manifest puts there: a shard
        rewritten under its manifest must never feed another face's pixels."""
        offset = int(self.offset[row])
        if face_ids[offset] != self.face_ids[row]:
            raise CorruptShardError(
                f"{self.groups[group].shard}: row {self.groups[group].first_row + offset} holds face "
                f"{face_ids[offset]}, but {self.manifest} puts {self.face_ids[row]} there; {_REBUILD}"
            )

    def crops(self, rows: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, (B, S, S, 3) uint8 crops as stored) of the given rows, `batch_size` at a time, in storage
        order (row group by row group, each read once and checked). The array is reused between batches:
        copy what must outlive the next one."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return
        size = self.image_size
        buffer = np.empty((min(batch_size, len(rows)), size, size, 3), dtype=np.uint8)
        rows_out = np.empty(len(buffer), dtype=np.int64)
        filled = 0
        ordered = rows[np.lexsort((self.offset[rows], self.group[rows]))]
        groups, starts = np.unique(self.group[ordered], return_index=True)
        for group, in_group in zip(groups.tolist(), np.split(ordered, starts[1:]), strict=True):
            face_ids, images = read_row_group(self.groups[group], size)
            for row in in_group.tolist():
                self.check_crop(row, group, face_ids)
                buffer[filled], rows_out[filled] = images[self.offset[row]], row
                filled += 1
                if filled == len(buffer):
                    yield rows_out, buffer
                    filled = 0
        if filled:
            yield rows_out[:filled], buffer[:filled]

    def epoch_order(self, seed: int, epoch: int, *, shuffle_window: int = 8, balanced: bool = False) -> np.ndarray:
        """The rows of one epoch, in order: a pure function of (seed, name, epoch).

        Unbalanced: a permutation of the rows. Balanced: len(self) rows drawn with replacement, with
        probability proportional to `weight`. Either way rows are then grouped by window (row groups in a
        seeded order, `shuffle_window` at a time) keeping their random order within a window.
        """
        rng = np.random.default_rng(seed_sequence(seed, self.name, "order", epoch))
        if balanced:
            rows = rng.choice(len(self), size=len(self), replace=True, p=self._probabilities())
        else:
            rows = rng.permutation(len(self))
        rank = np.empty(len(self.groups), dtype=np.int64)
        rank[rng.permutation(len(self.groups))] = np.arange(len(self.groups))
        window = rank[self.group[rows]] // shuffle_window
        return rows[np.argsort(window, kind="stable")]

    def _probabilities(self) -> np.ndarray:
        weights = self.weights
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"{self.manifest}: weights of split {self.split!r} must be finite, >= 0, not all 0")
        return weights / weights.sum()


def manifest_image_size(path: Path, params: Mapping[str, Any]) -> int:
    size = params.get("image_size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise SchemaMismatchError(f"{path}: no image_size in its metadata (found {size!r}); {_REBUILD}")
    return size


def manifest_vocabulary(path: Path, params: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The ordered tag vocabulary a manifest's metadata records."""
    params = read_params(path) if params is None else params
    vocabulary = params.get("vocabulary")
    if not isinstance(vocabulary, list) or not all(isinstance(tag, str) for tag in vocabulary):
        raise SchemaMismatchError(f"{path}: no tag vocabulary in its metadata; {_REBUILD}")
    return tuple(vocabulary)


def check_pixel_schema(path: Path, schema: pa.Schema) -> None:
    """What `read_table` checks, from the footer alone (a shard is too big to read to check it)."""
    found, expected = schema_id(schema), schema_id(DATASET_PIXELS)
    if found != expected:
        raise SchemaMismatchError(f"{path}: holds {found}, this version reads {expected}; {_REBUILD}")
    if not schema.equals(DATASET_PIXELS, check_metadata=False):
        raise SchemaMismatchError(f"{path}: columns differ from {expected}; {_REBUILD}")


def _features(column: pa.ChunkedArray) -> np.ndarray | None:
    """(rows, F) float16 (half of float32's memory in every worker), zeros for null rows; None if all null."""
    if column.null_count == len(column):
        return None
    values = column.combine_chunks()
    width = values.type.list_size
    out = np.zeros((len(values), width), dtype=np.float16)
    valid = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))
    out[valid] = values.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    return out


def _multi_hot(column: pa.ChunkedArray, vocabulary: Sequence[str], manifest: Path) -> np.ndarray:
    """(rows, V) uint8 (a quarter of float32's memory in every worker); tags outside `vocabulary` fail."""
    tags = column.combine_chunks()
    values = tags.flatten()
    index = pc.index_in(values, value_set=pa.array(list(vocabulary), pa.string()))
    if index.null_count:
        unknown = values.filter(pc.is_null(index))[0].as_py()
        raise ValueError(f"{manifest}: tag {unknown!r} is not in the vocabulary ({', '.join(vocabulary)})")
    row = np.repeat(np.arange(len(tags)), np.diff(tags.offsets.to_numpy()))
    hot = np.zeros((len(tags), len(vocabulary)), dtype=np.uint8)
    hot[row, index.to_numpy(zero_copy_only=False).astype(np.int64)] = 1
    return hot


# ------------------------------------------------------------------------------------ seeds and reading


def _key(*parts: object) -> int:
    """A stable 64-bit key (Python's hash() changes per process)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def seed_sequence(seed: int, name: str, purpose: str, epoch: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, _key(name, purpose), epoch])


_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def coin_flips(seed: int, name: str, indices: np.ndarray) -> np.ndarray:
    """A fair coin per sample index of the stream (splitmix64): reproducible without any RNG state."""
    z = np.asarray(indices, dtype=np.uint64) * _GOLDEN + np.uint64(_key(seed, name, "hflip"))
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(63)).astype(bool)


def read_row_group(group: RowGroup, image_size: int) -> tuple[list[str], np.ndarray]:
    """Face ids and (rows, S, S, 3) uint8 pixels of one row group, without copying the pixels."""
    try:
        parquet = pq.ParquetFile(group.shard, memory_map=True)  # one copy less than reading into a buffer
        table = parquet.read_row_group(group.index, columns=["face_id", "pixels"])
    except (pa.ArrowException, OSError) as error:
        raise CorruptShardError(
            f"{group.shard}: row group {group.index} is unreadable ({error}): the shard is corrupt; {_REBUILD}"
        ) from error
    pixels = table.column("pixels").combine_chunks()
    expected = image_size * image_size * 3
    offsets = np.frombuffer(pixels.buffers()[1], dtype=np.int32, count=len(pixels) + 1, offset=pixels.offset * 4)
    lengths = np.diff(offsets)
    bad = np.flatnonzero(lengths != expected)
    if bad.size:
        row, n = group.first_row + int(bad[0]), int(lengths[bad[0]])
        raise CorruptShardError(
            f"{group.shard}: row {row} holds {n} bytes, expected {expected} ({image_size}x{image_size}x3): "
            f"the shard is corrupt; {_REBUILD}"
        )
    if len(pixels) != group.num_rows:
        raise CorruptShardError(f"{group.shard}: row group {group.index} changed since it was indexed; {_REBUILD}")
    data = np.frombuffer(pixels.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    images = data[start : start + len(pixels) * expected].reshape(len(pixels), image_size, image_size, 3)
    return table.column("face_id").to_pylist(), images


def _empty(shape: tuple[int, ...]) -> torch.Tensor:
    """A float32 tensor, in shared memory when in a DataLoader worker: sending it then copies nothing
    (what default_collate does)."""
    if get_worker_info() is None:
        return torch.empty(shape)
    storage = torch.empty(0)._typed_storage()._new_shared(math.prod(shape))
    return torch.empty(0).new(storage).view(shape)


class _Reader:
    """One domain's reading state in one process: epoch orders and an LRU of decoded row groups."""

    def __init__(self, split: DomainSplit, *, seed: int, shuffle_window: int, balanced: bool) -> None:
        self.split, self.seed, self.window, self.balanced = split, seed, shuffle_window, balanced
        self.orders: OrderedDict[int, np.ndarray] = OrderedDict()
        self.cache: OrderedDict[int, tuple[list[str], np.ndarray]] = OrderedDict()
        self.buffer: np.ndarray | None = None

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The rows at stream positions [start, stop): epoch e's order fills positions [e*N, (e+1)*N)."""
        n = len(self.split)
        positions = np.arange(start, stop, dtype=np.int64)
        rows = np.empty(len(positions), dtype=np.int64)
        for epoch in range(start // n, (stop - 1) // n + 1):
            mask = positions // n == epoch
            rows[mask] = self.order(epoch)[positions[mask] - epoch * n]
        return rows

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self.orders:
            self.orders[epoch] = self.split.epoch_order(
                self.seed, epoch, shuffle_window=self.window, balanced=self.balanced
            )
            while len(self.orders) > 2:
                self.orders.popitem(last=False)
        return self.orders[epoch]

    def row_group(self, index: int) -> tuple[list[str], np.ndarray]:
        if index in self.cache:
            self.cache.move_to_end(index)
        else:
            self.cache[index] = read_row_group(self.split.groups[index], self.split.image_size)
            while len(self.cache) > self.window + 1:
                self.cache.popitem(last=False)
        return self.cache[index]

    def pixels(self, rows: np.ndarray, flips: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 of the rows, flipped where asked, in one reused array."""
        size = self.split.image_size
        if self.buffer is None or len(self.buffer) != len(rows):
            self.buffer = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        for k, row in enumerate(rows.tolist()):
            group = int(self.split.group[row])
            face_ids, images = self.row_group(group)
            self.split.check_crop(row, group, face_ids)
            self.buffer[k] = images[self.split.offset[row]]
        out = torch.from_numpy(self.buffer)
        for k in np.flatnonzero(flips).tolist():
            out[k] = out[k].flip(1)
        return self.buffer


# ---------------------------------------------------------------------------------------------- resize


def to_images(pixels: np.ndarray, resolution: int) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, R, R) float32 in [-1, 1], channels-last in memory (what convolutions
    on a GPU prefer; `.contiguous()` makes it NCHW).

    Downsampling by an integer factor k is an area average (F.interpolate's "area"), summed in int16/int32
    on the uint8 pixels: several times faster than pooling floats. Other sizes: bilinear, antialiased.
    """
    batch, size = pixels.shape[0], pixels.shape[1]
    source = torch.from_numpy(pixels)
    out = _empty((batch, resolution, resolution, 3))
    if resolution == size:
        out.copy_(source).div_(127.5)  # copy_ then divide in place: 3x faster than torch.div(..., out=)
    elif size % resolution == 0:
        k = size // resolution
        out.copy_(_box_sum(source, k)).div_(k * k * 127.5)
    else:
        resized = F.interpolate(
            source.permute(0, 3, 1, 2).float(), size=(resolution, resolution), mode="bilinear", antialias=True
        )
        out.copy_(resized.permute(0, 2, 3, 1)).clamp_(0, 255).div_(127.5)
    return out.sub_(1).permute(0, 3, 1, 2)


def _box_sum(source: torch.Tensor, k: int) -> torch.Tensor:
    """Sums of k x k blocks of (B, S, S, 3) uint8, as (B, S/k, S/k, 3) integers."""
    dtype = torch.int16 if k * k * 255 <= torch.iinfo(torch.int16).max else torch.int32
    rows = source[:, 0::k].to(dtype)
    for j in range(1, k):
        rows += source[:, j::k]
    sums = rows[:, :, 0::k].clone()
    for j in range(1, k):
        sums += rows[:, :, j::k]
    return sums


# ------------------------------------------------------------------------------------------- the dataset


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None and world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError("give both rank and world_size, or neither (torch.distributed's are used)")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


def shared_vocabulary(roots: Mapping[str, Path]) -> tuple[str, ...]:
    """The union of the domains' vocabularies, in order of first appearance (the stage writes one shared
    vocabulary, so usually that one): tag columns then mean the same in every domain's batch."""
    merged: dict[str, None] = {}
    for root in roots.values():
        merged.update(dict.fromkeys(manifest_vocabulary(Path(root) / MANIFEST)))
    return tuple(merged)


class PairedDomainBatches(IterableDataset):
    """Infinite, resumable stream of steps; each step holds one batch of every domain.

    Step g of rank r takes samples [G*B, (G+1)*B) of each domain's stream, G = g*world_size + r. DataLoader
    worker w of W makes steps start_step + w, start_step + w + W, ...: DataLoader's round-robin over workers
    then returns start_step, start_step + 1, ... in order, whatever the number of workers.
    """

    def __init__(
        self,
        roots: Mapping[str, Path],
        *,
        split: str = "train",
        batch_size: int,
        resolution: int,
        seed: int = 0,
        start_step: int = 0,
        hflip: bool = True,
        balanced: bool = False,
        shuffle_window: int = 8,
        vocabulary: Sequence[str] | None = None,
        features: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if not roots:
            raise ValueError("no domains given")
        for what, value, least in (
            ("batch_size", batch_size, 1),
            ("resolution", resolution, 1),
            ("shuffle_window", shuffle_window, 1),
            ("start_step", start_step, 0),
            ("seed", seed, 0),
        ):
            if value < least:
                raise ValueError(f"{what} must be at least {least}, got {value}")
        self.batch_size, self.resolution, self.seed, self.start_step = batch_size, resolution, seed, start_step
        self.hflip, self.balanced, self.shuffle_window = hflip, balanced, shuffle_window
        self.rank, self.world_size = _distributed(rank, world_size)
        self.vocabulary = tuple(vocabulary) if vocabulary is not None else shared_vocabulary(roots)
        self.splits = {
            domain: DomainSplit(Path(root), split, name=domain, vocabulary=self.vocabulary)
            for domain, root in roots.items()
        }
        self.feature_dim = max(part.feature_dim for part in self.splits.values()) if features else 0
        if features and not self.feature_dim:
            raise ValueError(
                f"none of the datasets ({', '.join(self.splits)}) has reference features: tag at least one "
                "domain with illust2vec (domains.<name>.tagger.kind: illust2vec)"
            )
        for domain, part in self.splits.items():
            if part.image_size < resolution:
                log.warning(
                    "%s: images are stored at %d px and upsampled to %d: rebuild the dataset at %d or more",
                    domain,
                    part.image_size,
                    resolution,
                    resolution,
                )
        self._readers: dict[str, _Reader] | None = None

    @property
    def faces(self) -> dict[str, dict[str, Any]]:
        """Per domain, how its crops were detected and aligned (what the model file records for inference)."""
        return {domain: part.faces_spec for domain, part in self.splits.items()}

    @property
    def typical_tags(self) -> dict[str, list[str]]:
        """Per domain, its training faces' most common tag set (ties: the first in byte order). A translation
        asked for no tags is conditioned on it: every training condition is a real face's tags, and an all-zero
        row, which few or no training faces have, draws pale, formless faces."""
        typical = {}
        for domain, part in self.splits.items():
            if not part.tags.shape[1] or not len(part.tags):
                typical[domain] = []
                continue
            rows, counts = np.unique(part.tags, axis=0, return_counts=True)  # sorted rows: a stable tie-break
            typical[domain] = [part.vocabulary[i] for i in np.flatnonzero(rows[int(np.argmax(counts))])]
        return typical

    def __getstate__(self) -> dict[str, Any]:
        """Workers start without the row groups `batch()` may have cached here (spawned workers pickle us)."""
        return {**self.__dict__, "_readers": None}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        readers = self._new_readers()
        for step in count(self.start_step + worker, workers):
            yield self._step(step, readers)

    def batch(self, step: int) -> dict[str, Any]:
        """The item of one step, in this process (tests, evaluation, debugging)."""
        if self._readers is None:
            self._readers = self._new_readers()
        return self._step(step, self._readers)

    def epoch_of(self, domain: str, step: int) -> float:
        """Passes over `domain`'s split that all ranks together have made before `step`."""
        return step * self.world_size * self.batch_size / len(self.splits[domain])

    def _new_readers(self) -> dict[str, _Reader]:
        return {
            domain: _Reader(part, seed=self.seed, shuffle_window=self.shuffle_window, balanced=self.balanced)
            for domain, part in self.splits.items()
        }

    def _step(self, step: int, readers: Mapping[str, _Reader]) -> dict[str, Any]:
        start = (step * self.world_size + self.rank) * self.batch_size
        batches = {domain: self._domain_batch(domain, reader, start) for domain, reader in readers.items()}
        return {"step": step, "batches": batches}

    def _domain_batch(self, domain: str, reader: _Reader, start: int) -> dict[str, Any]:
        stop = start + self.batch_size
        rows = reader.rows(start, stop)
        positions = np.arange(start, stop)
        flips = coin_flips(self.seed, domain, positions) if self.hflip else np.zeros(len(positions), dtype=bool)
        pixels = reader.pixels(rows, flips)
        batch = {
            "image": to_images(pixels, self.resolution),
            "tags": torch.from_numpy(reader.split.tags_of(rows)),
            "face_id": [reader.split.face_ids[row] for row in rows.tolist()],
        }
        if self.feature_dim:
            batch["features"] = torch.from_numpy(reader.split.features_of(rows, self.feature_dim))
        return batch


def _init_worker(_: int) -> None:
    """One intra-op thread per worker: the workers are the parallelism, more threads only contend."""
    torch.set_num_threads(1)


def make_loader(
    dataset: PairedDomainBatches,
    *,
    num_workers: int = 2,
    pin_memory: bool | None = None,
    prefetch_factor: int = 4,
) -> DataLoader:
    """The DataLoader for training: items are whole steps (batch_size=None), workers live for the run."""
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers else None,
        worker_init_fn=_init_worker if num_workers else None,
    )
