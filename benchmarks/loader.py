"""Benchmark of the training loader against a torchvision-style folder dataset, on the same crops.

Why: a GAN step on a GPU is fast (the goal is 400 img/s at 128x128 on one H100), and the CPU must keep up.
The usual loader, one JPEG per file decoded by PIL in each __getitem__, spends most of its time decoding;
the dataset stage stores decoded pixels in Parquet row groups so that training reads them without decoding.

  baseline   FolderDataset (one JPEG per crop, quality 95): PIL open + convert RGB, Resize (bilinear, as
             torchvision's Resize; a same-size resize still copies), RandomHorizontalFlip, ToTensor, Normalize
             to [-1, 1]; DataLoader(batch_size=32, shuffle=True, num_workers=2)
  candidate  training.data.PairedDomainBatches with one domain, batch_size 32, make_loader(num_workers=2):
             pixels stored at 256 (zstd or uncompressed), read at 256 or area-downsampled to 128; and pixels
             stored at 128 (dataset.image_size as params.yaml ships it) read at 128

Shards have the shipped layout (4096 rows per shard, row groups of 64). Both sides time the same number of
images after the same warm-up batches (worker start-up falls in the warm-up); the variants are interleaved
in each round and the median of --rounds rounds is reported. img/s per core is img/s over the machine's
cores (the 2 workers and the consuming process share them); "cores needed" is --feed (images per second the
training step consumes, all domains together) over that. Every file is in the page cache: this measures
CPU, not disks.

    .venv/bin/python benchmarks/loader.py [--images 2000] [--rounds 3] [--feed 400] [--faces data/faces/anime]

Crops: by default --images photo-like 256x256 crops (random square crops of scikit-image's sample photos,
resized); with --faces, the crops of a faces stage folder (crops-*.parquet), repeated up to --images as
random squares of 85 to 100% of each crop, resized to 256. About 1 minute on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.parquet import table_from_rows, write_table  # noqa: E402
from core.schemas import DATASET_MANIFEST, DATASET_PIXELS  # noqa: E402
from training.data import PairedDomainBatches, make_loader  # noqa: E402

SIZE = 256
BATCH = 32
WORKERS = 2
SHARD_ROWS = 4096  # dataset.shard_rows and row_group_rows as params.yaml ships them
GROUP_ROWS = 64


# --------------------------------------------------------------------------------------------- crops


def generated_crops(count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Photo-like 256x256 crops: random squares (35 to 100% of the short side) of scikit-image's sample
    photos, resized. No added noise, so compression ratios stay those of photos."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(seed)
    for index in range(count):
        yield _random_crop(photos[index % len(photos)], 0.35, rng)


def face_crops(folder: Path, count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """The faces stage's crops (encoded images in crops-*.parquet), repeated up to `count` as random
    squares of 85 to 100% of each crop, resized to 256."""
    import pyarrow.parquet as pq
    from PIL import Image

    faces = []
    for shard in sorted(folder.glob("crops-*.parquet")):
        for encoded in pq.read_table(shard, columns=["image"]).column("image").to_pylist():
            faces.append(np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")))
    if not faces:
        raise SystemExit(f"--faces: no crops-*.parquet with crops under {folder}")
    rng = np.random.default_rng(seed)
    for index in range(count):
        yield _random_crop(faces[index % len(faces)], 0.85, rng)


def _random_crop(photo: np.ndarray, smallest: float, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(smallest, 1.0))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    square = Image.fromarray(photo[top : top + side, left : left + side])
    return np.asarray(square.resize((SIZE, SIZE), Image.BICUBIC))


def write_jpegs(crops: list[np.ndarray], folder: Path) -> int:
    from PIL import Image

    folder.mkdir(parents=True)
    for index, crop in enumerate(crops):
        Image.fromarray(crop).save(folder / f"{index:05d}.jpg", quality=95)
    return sum(path.stat().st_size for path in folder.iterdir())


def write_dataset(crops: list[np.ndarray], root: Path, compression: str, size: int = SIZE) -> int:
    """A dataset folder as `dataset@<domain>` writes it (one train split, shipped shard and row-group rows)."""
    from PIL import Image

    rows = []
    for number, start in enumerate(range(0, len(crops), SHARD_ROWS)):
        shard = f"pixels-train-{number:05d}.parquet"
        chunk = crops[start : start + SHARD_ROWS]
        if size != SIZE:
            chunk = [np.asarray(Image.fromarray(c).resize((size, size), Image.BILINEAR)) for c in chunk]
        pixels = [{"face_id": f"f{start + k:05d}", "pixels": c.tobytes()} for k, c in enumerate(chunk)]
        write_table(
            table_from_rows(pixels, DATASET_PIXELS),
            root / shard,
            DATASET_PIXELS,
            {"image_size": size},
            row_group_size=GROUP_ROWS,
            compression=compression,
        )
        rows += [_manifest_row(start + k, shard, k) for k in range(len(chunk))]
    manifest = table_from_rows(rows, DATASET_MANIFEST)
    write_table(manifest, root / "manifest.parquet", DATASET_MANIFEST, {"image_size": size, "vocabulary": []})
    return sum(path.stat().st_size for path in root.iterdir())


def _manifest_row(index: int, shard: str, row: int) -> dict:
    return {
        "face_id": f"f{index:05d}",
        "image_id": f"i{index:05d}",
        "domain": "bench",
        "split": "train",
        "shard": shard,
        "shard_row": row,
        "tags": [],
        "weight": 1.0,
        "source_uri": "bench",
        "member": f"{index:05d}.jpg",
        "raw_path": f"images/{index:05d}.jpg",
        "box": [0.0, 0.0, 256.0, 256.0],
        "crop_sha256": "0" * 64,
        "phash": "0" * 16,
        "sharpness": 100.0,
        "brightness": 128.0,
        "source_size": 256.0,
    }


# ------------------------------------------------------------------------------------------- loaders


class FolderDataset(torch.utils.data.Dataset):
    """torchvision.datasets.ImageFolder + Resize + RandomHorizontalFlip + ToTensor + Normalize(0.5, 0.5),
    written out (torchvision is not installed here), step for step."""

    def __init__(self, folder: Path, resolution: int) -> None:
        self.files = sorted(folder.glob("*.jpg"))
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        with open(self.files[index], "rb") as handle:
            image = Image.open(handle).convert("RGB")
        image = image.resize((self.resolution, self.resolution), Image.BILINEAR)
        if torch.rand(1) < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        tensor = torch.from_numpy(np.array(image, np.uint8, copy=True))
        tensor = tensor.view(image.size[1], image.size[0], 3).permute(2, 0, 1).contiguous()
        tensor = tensor.to(torch.float32).div(255)
        return tensor.sub_(0.5).div_(0.5)


def _init_worker(_: int) -> None:
    torch.set_num_threads(1)


Loader = Callable[[], tuple[Iterator[Any], Callable[[Any], torch.Tensor]]]


def folder_loader(folder: Path, resolution: int) -> tuple[Iterator[Any], Callable[[Any], torch.Tensor]]:
    loader = torch.utils.data.DataLoader(
        FolderDataset(folder, resolution),
        batch_size=BATCH,
        shuffle=True,
        num_workers=WORKERS,
        drop_last=True,
        worker_init_fn=_init_worker,
    )
    return iter(loader), lambda batch: batch


def parquet_loader(root: Path, resolution: int) -> tuple[Iterator[Any], Callable[[Any], torch.Tensor]]:
    data = PairedDomainBatches({"bench": root}, batch_size=BATCH, resolution=resolution, seed=1)
    return iter(make_loader(data, num_workers=WORKERS, pin_memory=False)), lambda item: item["batches"]["bench"][
        "image"
    ]


# ------------------------------------------------------------------------------------------- timing


@dataclass
class Variant:
    label: str
    make: Loader
    resolution: int
    seconds: list[float] = field(default_factory=list)

    def rate(self, images: int) -> float:
        return images / statistics.median(self.seconds)


def time_run(make: Loader, warmup: int, timed: int) -> float:
    """Seconds for `timed` batches after `warmup` batches (worker start-up falls in the warm-up)."""
    batches, image = make()
    for batch in islice(batches, warmup):
        assert image(batch).shape[0] == BATCH
    started = time.perf_counter()
    for batch in islice(batches, timed):
        assert image(batch).shape[0] == BATCH
    seconds = time.perf_counter() - started
    # Stop the workers now: an infinite loader's workers would go on prefetching on the next run's cores.
    batches._shutdown_workers()  # type: ignore[attr-defined]
    time.sleep(0.2)
    return seconds


def check(root: Path, crops: list[np.ndarray]) -> None:
    """The candidate delivers exactly the stored pixels (no flip, no resize)."""
    data = PairedDomainBatches({"bench": root}, batch_size=BATCH, resolution=SIZE, hflip=False)
    batch = data.batch(0)["batches"]["bench"]
    for image, face in zip(batch["image"], batch["face_id"], strict=True):
        stored = torch.from_numpy(crops[int(face[1:])].copy()).permute(2, 0, 1).float() / 127.5 - 1
        if not torch.equal(image, stored):
            raise SystemExit(f"check failed: {face} differs from the stored crop")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="crops to write (and read per run)")
    parser.add_argument("--faces", type=Path, default=None, help="a faces stage folder (crops-*.parquet)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each variant (median reported)")
    parser.add_argument("--warmup", type=int, default=6, help="batches before the clock starts")
    parser.add_argument("--feed", type=float, default=400.0, help="img/s the training step consumes")
    args = parser.parse_args(argv)
    if args.images < BATCH * (args.warmup + 4) or args.rounds < 1 or args.warmup < 1:
        parser.error(f"--images must be at least {BATCH * (args.warmup + 4)}; --rounds, --warmup at least 1")
    if args.faces is not None and not args.faces.is_dir():
        parser.error(f"--faces: no such folder: {args.faces}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    source = f"the crops of {args.faces}" if args.faces else "generated photo-like crops"
    crops = list(face_crops(args.faces, args.images) if args.faces else generated_crops(args.images))
    with tempfile.TemporaryDirectory(prefix="loader-bench-") as tmp:
        work = Path(tmp)
        jpeg_bytes = write_jpegs(crops, work / "jpeg")
        sizes = {
            name: write_dataset(crops, work / name, compression, size)
            for name, compression, size in (
                ("zstd", "zstd", SIZE),
                ("none", "none", SIZE),
                ("zstd128", "zstd", 128),
                ("none128", "none", 128),
            )
        }
        check(work / "none", crops)
        check(work / "zstd", crops)
        mib = {name: f"{size / 2**20:.1f} MiB" for name, size in sizes.items()}
        print(
            f"{args.images} {source}, 256x256: JPEG q95 files {jpeg_bytes / 2**20:.1f} MiB; pixel shards at 256: "
            f"zstd {mib['zstd']}, uncompressed {mib['none']}; at 128: zstd {mib['zstd128']}, uncompressed "
            f"{mib['none128']}\ncheck OK: the loader returns the stored pixels"
        )
        variants = [
            Variant("folder of JPEGs, PIL (baseline)", lambda: folder_loader(work / "jpeg", 256), 256),
            Variant("parquet 256 zstd", lambda: parquet_loader(work / "zstd", 256), 256),
            Variant("parquet 256 uncompressed", lambda: parquet_loader(work / "none", 256), 256),
            Variant("folder of JPEGs, PIL -> 128 (baseline)", lambda: folder_loader(work / "jpeg", 128), 128),
            Variant("parquet 256 zstd -> 128", lambda: parquet_loader(work / "zstd", 128), 128),
            Variant("parquet 256 uncompressed -> 128", lambda: parquet_loader(work / "none", 128), 128),
            Variant("parquet stored at 128, zstd", lambda: parquet_loader(work / "zstd128", 128), 128),
            Variant("parquet stored at 128, uncompressed", lambda: parquet_loader(work / "none128", 128), 128),
        ]
        timed = args.images // BATCH - args.warmup
        for _ in range(args.rounds):
            for variant in variants:
                variant.seconds.append(time_run(variant.make, args.warmup, timed))
        report(variants, timed * BATCH, cores, args)
    return 0


def report(variants: list[Variant], images: int, cores: int, args: argparse.Namespace) -> None:
    print(
        f"\n{images} images timed per run after {args.warmup} warm-up batches, batch {BATCH}, {WORKERS} workers, "
        f"{cores} cores, median of {args.rounds}, torch {torch.__version__}"
    )
    print(f"{'variant':40s} {'img/s':>8s} {'img/s/core':>10s} {'vs baseline':>11s}   runs (s)")
    baselines = {v.resolution: v.rate(images) for v in variants if "baseline" in v.label}
    for v in variants:
        rate = v.rate(images)
        runs = " ".join(f"{s:.3f}" for s in v.seconds)
        ratio = rate / baselines[v.resolution]
        print(f"{v.label:40s} {rate:8.1f} {rate / cores:10.1f} {ratio:10.2f}x   {runs}")
    print()
    for v in variants:
        needed = args.feed / (v.rate(images) / cores)
        print(
            f"cores needed to feed {args.feed:.0f} img/s at {v.resolution}x{v.resolution}: {needed:5.2f}  ({v.label})"
        )


if __name__ == "__main__":
    sys.exit(main())
