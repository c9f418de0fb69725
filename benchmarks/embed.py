"""Crops per second of the index stage's embedding (inference/embeddings.py `embed_pixels`) by batch size, on CPU.

Why: the encoder's layers at 64-256 px are memory-bound on a CPU (a batch of 64 at 128 px holds about
270 MB per activation, far outside the caches), so a large batch is slower per crop than a small one,
while a GPU wants large batches. This measures the ratio behind `index.batch_size: null` (4 on a CPU,
64 on CUDA: core/devices.py `inference_batch_size`) against the previous fixed default of 64.

Every variant embeds the same random crops (stored at `--stored` px, area-resized to the model's
resolution as the stage does) with a model at the original widths (channel_base 4096, channel_max 256;
random weights: speed does not depend on training). Variants are interleaved over `--rounds` rounds so
load from other processes falls on all alike.

    .venv/bin/python benchmarks/embed.py                        # 128 px, 64 crops x 3 rounds (about 1 min)
    .venv/bin/python benchmarks/embed.py --resolution 256 --crops 16
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from inference.embeddings import embed_pixels
    from training.networks import NetworkConfig, TwinGAN

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--stored", type=int, default=0, help="Stored crop size (0: twice the resolution).")
    parser.add_argument("--crops", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 16, 4, 1], help="The first is the baseline.")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = NetworkConfig(domains=("human", "anime"), resolution=args.resolution, channel_base=4096,
                           channel_max=256, tag_dim=32)  # fmt: skip
    model = TwinGAN(config).eval()
    stored = args.stored or 2 * args.resolution
    crops = np.random.default_rng(0).integers(0, 256, (args.crops, stored, stored, 3), dtype=np.uint8)
    embed_pixels(model, crops[:2], "human")  # first-call allocations, not timed
    seconds = dict.fromkeys(args.batches, 0.0)
    results: dict[int, np.ndarray] = {}
    for round_ in range(args.rounds):
        order = args.batches[round_ % len(args.batches) :] + args.batches[: round_ % len(args.batches)]
        for batch in order:
            started = time.perf_counter()
            parts = [embed_pixels(model, crops[i : i + batch], "human") for i in range(0, len(crops), batch)]
            seconds[batch] += time.perf_counter() - started
            results[batch] = np.concatenate(parts)
    base = args.batches[0]
    total = args.crops * args.rounds
    print(f"embed benchmark: {args.crops} crops x {args.rounds} rounds, stored {stored} px -> {args.resolution} px, "
          f"original widths, CPU, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'batch':>6} {'seconds':>8} {'crops/s':>8} {'vs batch ' + str(base):>12}  max |embedding - baseline's|")
    for batch in args.batches:
        worst = float(np.abs(results[batch] - results[base]).max())
        print(f"{batch:6d} {seconds[batch]:8.2f} {total / seconds[batch]:8.1f} {seconds[base] / seconds[batch]:11.2f}x"
              f"  {worst:.1e}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
