"""The training loader: every row once per epoch, the same batches whatever the workers, exact resume,
disjoint ranks, reproducible shuffles and flips, and clear errors on a broken dataset folder."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from core.parquet import SchemaMismatchError, declare, read_params, table_from_rows, write_table
from core.schemas import DATASET_MANIFEST
from tests.builders.datasets import VOCABULARY, pixels_of, tags_of, write_dataset
from training.data import CorruptShardError, DomainSplit, PairedDomainBatches, make_loader


def index_of(image: torch.Tensor) -> int:
    values = (image.double() + 1) * 127.5
    return round(values[0].mean().item()) + 256 * round(values[1].mean().item())


def flipped(image: torch.Tensor) -> bool:
    return bool(image[2, 0, 0] > image[2, 0, -1])


def samples(items: Iterable[dict], domain: str = "human") -> list[int]:
    """Sample indices of the items' batches of `domain`, checking that pixels and face ids agree."""
    found = []
    for item in items:
        batch = item["batches"][domain]
        indices = [index_of(image) for image in batch["image"]]
        assert batch["face_id"] == [f"{domain}-{i:05d}" for i in indices]
        found += indices
    return found


def dataset(roots: dict[str, Path] | Path, **options) -> PairedDomainBatches:
    if isinstance(roots, Path):
        roots = {"human": roots}
    return PairedDomainBatches(roots, **{"batch_size": 10, "resolution": 16, "seed": 3, **options})


def steps(data: PairedDomainBatches, first: int, n: int) -> list[dict]:
    return [data.batch(step) for step in range(first, first + n)]


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert [item["step"] for item in a] == [item["step"] for item in b]
    for x, y in zip(a, b, strict=True):
        for domain, batch in x["batches"].items():
            other = y["batches"][domain]
            assert batch["face_id"] == other["face_id"]
            assert torch.equal(batch["image"], other["image"])
            assert torch.equal(batch["tags"], other["tags"])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "human")


# ----------------------------------------------------------------------------------------- the stream


def test_every_row_once_per_epoch_and_workers_do_not_change_the_batches(folder: Path) -> None:
    data = dataset(folder)  # 48 train rows, batches of 10: epochs end inside a batch
    direct = steps(data, 0, 10)
    stream = samples(direct)
    assert sorted(stream[:48]) == list(range(48)) and sorted(stream[48:96]) == list(range(48))
    assert stream[:48] != stream[48:96]  # each epoch has its own order
    for workers in (1, 2):
        loaded = list(islice(make_loader(dataset(folder), num_workers=workers, pin_memory=False), 10))
        assert_same(loaded, direct)


def test_resume_gives_the_same_batches_across_an_epoch_boundary(folder: Path) -> None:
    uninterrupted = steps(dataset(folder), 0, 9)
    assert_same(steps(dataset(folder, start_step=3), 3, 6), uninterrupted[3:])
    resumed = make_loader(dataset(folder, start_step=3), num_workers=2, pin_memory=False)
    assert_same(list(islice(resumed, 6)), uninterrupted[3:])  # worker 0 starts at step 3, not 4


def test_ranks_see_disjoint_samples_that_make_up_the_epoch(folder: Path) -> None:
    one = samples(steps(dataset(folder, batch_size=8, rank=0, world_size=1), 0, 6))
    ranks = [samples(steps(dataset(folder, batch_size=8, rank=r, world_size=2), 0, 3)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(48))
    assert not set(ranks[0]) & set(ranks[1])
    assert ranks[0] == one[0:8] + one[16:24] + one[32:40]  # step g of rank r: global batch 2g + r
    assert dataset(folder, batch_size=8, rank=1, world_size=2).epoch_of("human", 3) == 1.0
    with pytest.raises(ValueError, match="both"):
        dataset(folder, rank=1)


def open_groups(groups: list[int]) -> int:
    """The most row groups begun and not yet finished at any point of a sequence (what the LRU must hold)."""
    last = {group: k for k, group in enumerate(groups)}
    seen, most = set(), 0
    for k, group in enumerate(groups):
        seen.add(group)
        most = max(most, len(seen))
        if last[group] == k:
            seen.discard(group)
    return most


def test_order_is_seeded_and_block_shuffled(folder: Path) -> None:
    split = DomainSplit(folder, "train", name="human")  # 12 row groups of 4 rows
    order = split.epoch_order(3, 0, shuffle_window=2)
    assert np.array_equal(order, DomainSplit(folder, "train", name="human").epoch_order(3, 0, shuffle_window=2))
    assert not np.array_equal(order, split.epoch_order(4, 0, shuffle_window=2))
    assert not np.array_equal(order, split.epoch_order(3, 1, shuffle_window=2))
    assert not np.array_equal(order, DomainSplit(folder, "train", name="anime").epoch_order(3, 0, shuffle_window=2))
    groups = split.group[order].tolist()
    windows = [groups[k : k + 8] for k in range(0, 48, 8)]
    assert all(len(set(window)) == 2 for window in windows)  # a window is 2 groups, and only those
    assert open_groups(groups) == 2
    mixed = [window for window in windows if window not in (sorted(window), sorted(window, reverse=True))]
    assert len(mixed) >= 4  # rows of a window's groups interleave
    assert [window[0] for window in windows] != sorted(window[0] for window in windows)  # groups are permuted
    whole = split.epoch_order(3, 0, shuffle_window=12)
    assert len({g for g in split.group[whole[:8]].tolist()}) > 2  # a wider window mixes more groups


def test_balanced_sampling_follows_the_weights(tmp_path: Path) -> None:
    def rare(i: int) -> bool:
        return i % 10 == 0

    root = write_dataset(
        tmp_path / "d",
        counts={"train": 200},
        tags=lambda i: ["rare"] if rare(i) else [],
        weight=lambda i: 10.0 if rare(i) else 1.0,
    )
    column = VOCABULARY.index("rare")
    plain = dataset(root, batch_size=50)
    frequency = torch.cat([plain.batch(s)["batches"]["human"]["tags"][:, column] for s in range(4)]).mean()
    assert frequency.item() == pytest.approx(0.1)  # one epoch, each row once
    balanced = dataset(root, batch_size=50, balanced=True)
    drawn = steps(balanced, 0, 20)  # 5 epochs of draws
    frequency = torch.cat([item["batches"]["human"]["tags"][:, column] for item in drawn]).mean()
    assert frequency.item() == pytest.approx(10 * 20 / (10 * 20 + 180), abs=0.05)  # 0.526
    assert all(
        rare(i) == bool(t)
        for item in drawn
        for i, t in zip(samples([item]), item["batches"]["human"]["tags"][:, column].tolist(), strict=True)
    )
    split = balanced.splits["human"]
    order = split.epoch_order(3, 0, shuffle_window=8, balanced=True)
    assert open_groups(split.group[order].tolist()) <= 8  # draws stay window-local
    assert_same(steps(dataset(root, batch_size=50, balanced=True, start_step=7), 7, 2), drawn[7:9])


# -------------------------------------------------------------------------------------------- batches


def test_batches_have_the_stored_pixels_tags_and_shapes(folder: Path) -> None:
    data = dataset(folder, hflip=False)
    batch = data.batch(0)["batches"]["human"]
    assert batch["image"].shape == (10, 3, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["tags"].shape == (10, 4) and batch["tags"].dtype == torch.float32
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    for image, tags, index in zip(batch["image"], batch["tags"], samples([data.batch(0)]), strict=True):
        stored = torch.from_numpy(pixels_of(index, 16)).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.equal(image, stored)
        assert [VOCABULARY[k] for k in tags.nonzero().flatten().tolist()] == tags_of(index)
    assert data.epoch_of("human", 24) == 5.0


def test_crops_gives_the_asked_rows_once_each_in_storage_order(tmp_path: Path) -> None:
    """What the index and evaluate stages read: any subset of a split's rows, batch by batch, each crop the
    stored one of its face, row groups in storage order and each read once."""
    root = write_dataset(tmp_path / "human", counts={"train": 40}, keep=lambda i: i % 5 != 2)
    split = DomainSplit(root, "train")
    wanted = np.array([31, 0, 7, 30, 15, 3, 12, 29, 1], dtype=np.int64)
    seen, shapes = [], []
    for rows, crops in split.crops(wanted, batch_size=4):
        shapes.append(len(rows))
        for row, crop in zip(rows.tolist(), crops, strict=True):
            index = int(split.face_ids[row].split("-")[1])
            assert np.array_equal(crop, pixels_of(index, 16)), split.face_ids[row]
            seen.append(row)
    assert shapes == [4, 4, 1] and sorted(seen) == sorted(wanted.tolist())
    storage = [
        (split.groups[split.group[r]].shard.name, split.groups[split.group[r]].index, split.offset[r]) for r in seen
    ]
    assert storage == sorted(storage)
    assert [len(r) for r, _ in split.crops(np.arange(len(split)), batch_size=64)] == [len(split)]
    assert list(split.crops(np.array([], dtype=np.int64), batch_size=4)) == []


def test_the_condition_is_tags_then_features(tmp_path: Path) -> None:
    write_dataset(tmp_path / "anime", domain="anime", features=lambda i: np.full(3, i / 64, dtype=np.float16))
    split = DomainSplit(tmp_path / "anime")
    rows = np.array([5, 2])
    condition = split.condition_of(rows, split.feature_dim)
    assert condition.shape == (2, len(VOCABULARY) + 4096) and condition.dtype == np.float32
    assert np.array_equal(condition[:, : len(VOCABULARY)], split.tags_of(rows))
    assert np.array_equal(
        condition[:, len(VOCABULARY) : len(VOCABULARY) + 4], [[0.078125] * 3 + [0], [0.03125] * 3 + [0]]
    )
    assert np.array_equal(split.condition_of(rows, 0), split.tags_of(rows))  # a model conditioned on tags only
    with pytest.raises(ValueError, match=r"manifest\.parquet: features are 4096 wide, 6 asked for"):
        split.condition_of(rows, 6)


def test_resize_is_an_area_average(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", image_size=64, counts={"train": 12})
    batch = dataset(root, resolution=32, hflip=False).batch(0)["batches"]["human"]
    assert batch["image"].shape == (10, 3, 32, 32)
    stored = torch.stack([torch.from_numpy(pixels_of(index_of(x), 64)) for x in batch["image"]])
    expected = F.interpolate(stored.permute(0, 3, 1, 2).float(), size=(32, 32), mode="area") / 127.5 - 1
    torch.testing.assert_close(batch["image"], expected, atol=1e-6, rtol=0)
    other = dataset(root, resolution=48, hflip=False).batch(0)["batches"]["human"]["image"]
    assert other.shape == (10, 3, 48, 48) and other.min() >= -1 and other.max() <= 1


def test_upsampling_warns_once(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="training.data"):
        data = dataset(folder, resolution=32)
        data.batch(0), data.batch(1)
    assert len([r for r in caplog.records if "upsampled" in r.message]) == 1
    assert data.batch(0)["batches"]["human"]["image"].shape == (10, 3, 32, 32)


def test_hflip_mirrors_about_half_reproducibly(folder: Path) -> None:
    data = dataset(folder, batch_size=16)
    items = steps(data, 0, 6)
    images = torch.cat([item["batches"]["human"]["image"] for item in items])
    flips = [flipped(image) for image in images]
    assert 0.35 < np.mean(flips) < 0.65
    for image, index, flip in zip(images, samples(items), flips, strict=True):
        stored = torch.from_numpy(pixels_of(index, 16)).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.equal(image, stored.flip(-1) if flip else stored)
    assert_same(steps(dataset(folder, batch_size=16, start_step=4), 4, 2), items[4:])
    unflipped = steps(dataset(folder, batch_size=16, hflip=False), 0, 3)
    assert not any(flipped(image) for item in unflipped for image in item["batches"]["human"]["image"])


def test_two_domains_share_one_vocabulary(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", domain="a", vocabulary=["x", "y"], tags=lambda i: ["x"] if i % 2 else ["y"])
    b = write_dataset(tmp_path / "b", domain="b", vocabulary=["y", "z"], tags=lambda i: ["z"] if i % 2 else ["y"])
    data = PairedDomainBatches({"a": a, "b": b}, batch_size=6, resolution=16)
    assert data.vocabulary == ("x", "y", "z")
    item = data.batch(0)
    for domain, hot in (("a", "x"), ("b", "z")):
        batch = item["batches"][domain]
        odd = [i % 2 == 1 for i in samples([item], domain)]
        expected = [[float(t == (hot if o else "y")) for t in data.vocabulary] for o in odd]
        assert batch["tags"].tolist() == expected
    chosen = PairedDomainBatches({"a": a, "b": b}, batch_size=6, resolution=16, vocabulary=["z", "y", "x"])
    assert torch.equal(chosen.batch(0)["batches"]["b"]["tags"], item["batches"]["b"]["tags"].flip(-1))


def test_a_tag_outside_the_vocabulary_is_named(folder: Path) -> None:
    with pytest.raises(ValueError, match=r"tag 'blue eyes' is not in the vocabulary.*") as error:
        dataset(folder, vocabulary=["blonde hair", "smile"])
    assert "manifest.parquet" in str(error.value)


# ------------------------------------------------------------------------------------------ bad input


def test_val_reads_only_val_rows_and_filtered_rows_are_never_read(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", keep=lambda i: i % 5 != 0)
    train = DomainSplit(root, "train")
    assert len(train) == 38 and len(DomainSplit(root, "val")) == 6
    val = samples(steps(dataset(root, split="val", batch_size=6), 0, 2))
    assert sorted(val[:6]) == sorted(val[6:]) == [48, 49, 51, 52, 53, 54]
    seen = samples(steps(dataset(root, batch_size=19), 0, 2))
    assert sorted(seen) == [i for i in range(48) if i % 5 != 0]


def test_a_missing_shard_is_named(folder: Path) -> None:
    (folder / "pixels-train-00001.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"pixels-train-00001\.parquet.*manifest\.parquet"):
        DomainSplit(folder, "train")
    DomainSplit(folder, "val")  # the other split is whole


def test_a_row_of_the_wrong_length_names_the_shard_and_row(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", corrupt=[21])  # shard 1, row 5
    data = dataset(root, batch_size=16)
    message = r"pixels-train-00001\.parquet: row 5 holds 767 bytes, expected 768 \(16x16x3\): the shard is corrupt"
    with pytest.raises(ValueError, match=message):
        steps(data, 0, 3)
    with pytest.raises(ValueError, match=message):  # also through a worker
        list(islice(make_loader(dataset(root, batch_size=16), num_workers=1, pin_memory=False), 3))


def test_a_shard_row_holding_another_face_is_refused(folder: Path) -> None:
    path = folder / "manifest.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[0]["shard_row"], rows[1]["shard_row"] = rows[1]["shard_row"], rows[0]["shard_row"]
    write_table(table_from_rows(rows, DATASET_MANIFEST), path, DATASET_MANIFEST, read_params(path))
    with pytest.raises(
        CorruptShardError,
        match=r"row [01] holds face human-0000[01], but .*manifest\.parquet puts human-0000[01] there",
    ):
        steps(dataset(folder, batch_size=48), 0, 1)
    with pytest.raises(CorruptShardError, match=r"row [01] holds face human-0000[01]"):  # the batch readers too
        list(DomainSplit(folder, "train").crops(np.arange(2), batch_size=8))


def test_a_manifest_row_beyond_its_shard_is_named(folder: Path) -> None:
    path = folder / "manifest.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[3]["shard_row"] = 16
    write_table(table_from_rows(rows, DATASET_MANIFEST), path, DATASET_MANIFEST, read_params(path))
    with pytest.raises(
        ValueError, match=r"face human-00003 points at row 16 of .*pixels-train-00000\.parquet, which has 16"
    ):
        DomainSplit(folder, "train")


def test_a_manifest_of_another_schema_is_named(folder: Path) -> None:
    path = folder / "manifest.parquet"
    older = declare("dataset_manifest", 0, list(DATASET_MANIFEST))
    write_table(pq.read_table(path), path, older, read_params(path))
    with pytest.raises(SchemaMismatchError, match=r"manifest\.parquet: holds dataset_manifest/0"):
        dataset(folder)


def test_reference_features_come_with_the_batches_and_zeros_stand_for_faces_without(tmp_path: Path) -> None:
    def vector(i: int) -> np.ndarray | None:
        return None if i % 3 == 0 else np.full(5, i / 64, dtype=np.float16)

    spec = {"detector": "animeface", "detector_options": {}, "align": {"method": "box", "size": 16}}
    write_dataset(tmp_path / "anime", domain="anime", features=vector, faces=spec)
    write_dataset(tmp_path / "human", domain="human")
    split = DomainSplit(tmp_path / "anime")
    assert split.feature_dim == 4096 and DomainSplit(tmp_path / "human").feature_dim == 0
    roots = {"human": tmp_path / "human", "anime": tmp_path / "anime"}
    data = dataset(roots, features=True)
    assert data.feature_dim == 4096 and data.faces == {"human": {}, "anime": spec}
    batches = data.batch(0)["batches"]
    assert not batches["human"]["features"].any()  # a domain without features: zeros of the same width
    anime = batches["anime"]
    for face_id, row in zip(anime["face_id"], anime["features"], strict=True):
        i = int(face_id.split("-")[1])
        expected = torch.zeros(4096)
        if i % 3:
            expected[:5] = float(np.float16(i / 64))
        assert torch.equal(row, expected), face_id
    assert "features" not in dataset(roots).batch(0)["batches"]["anime"]  # only when asked for
    with pytest.raises(ValueError, match=r"none of the datasets \(human\) has reference features"):
        dataset({"human": tmp_path / "human"}, features=True)
