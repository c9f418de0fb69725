"""Which of a run's checkpoints to ship: the AnimeFace rate of each one's translations of training faces.

The rate swings between checkpoints of one run by more than the gap between recipes, so the last checkpoint
is a noisy pick. This scores each checkpoint's EMA generator the way the evaluate stage scores the model (the
same AnimeFace judge, the same upscaling, the same conditioning on real target faces), but on faces of the
*training* split, so that choosing by it does not read the validation faces the evaluate stage reports on.

    dvc exp run -S train.snapshot_every=100      # keeps models/checkpoints/snapshots/step-NNNNNNN.pt
    python benchmarks/select_checkpoint.py --root . --checkpoints models/checkpoints/snapshots/*.pt \
        [--images 512] [--split train] [--json out.json]

It prints each checkpoint's step, rate and faces found, and the best step. A snapshot is a model file: ship
the best one by copying it (it translates, evaluates and serves as models/twingan.pt does). Training
checkpoints (last.pt, copied aside while a run trains) are read too, as their EMA networks.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.layout import Layout
from evaluation.detect import run_all
from evaluation.images import cycled, read_split, run_model
from flows.evaluate import ANIMEFACE
from training.checkpoint import FORMAT, CheckpointError, load
from training.model_file import load_model
from training.networks import NetworkConfig, TwinGAN
from training.samples import to_uint8


@dataclass(frozen=True)
class Score:
    path: Path
    step: int
    found: int
    images: int

    @property
    def rate(self) -> float:
        return self.found / self.images if self.images else 0.0


def ema_generator(path: Path) -> tuple[TwinGAN, NetworkConfig, tuple[str, ...], int]:
    """The EMA networks of a model file (a snapshot: train.snapshot_every) or of a training checkpoint, their
    config, vocabulary and step. Both are loaded weights-only."""
    try:
        model, info = load_model(path)
        return model, info.config, info.vocabulary, info.step
    except CheckpointError:  # not a model file: a training checkpoint, or an error that names the file
        payload = load(path, FORMAT)
    config = NetworkConfig.from_dict(payload["network"])
    model = TwinGAN(config)
    model.load_state_dict(payload["ema"])
    return model.eval().requires_grad_(False), config, tuple(payload["vocabulary"]), int(payload["step"])


def score(paths: list[Path], root: Path, *, source: str, target: str, split: str, images: int, upscale: int,
          workers: int, batch_size: int = 32) -> list[Score]:  # fmt: skip
    """Every checkpoint on the same faces: they share one network shape, so the faces are read once."""
    device = torch.device("cpu")
    scores: list[Score] = []
    for path in paths:
        model, config, vocabulary, step = ema_generator(path)
        if not scores:  # the first: read the faces at its resolution, conditioned with its vocabulary
            first = config
            data = {domain: read_split(Layout(root).dataset(domain), domain, split, max_images=images,
                                       vocabulary=vocabulary or None, condition_dim=config.condition_dim,
                                       tag_dim=config.tag_dim, shown=f"data/datasets/{domain}")
                    for domain in (source, target)}  # fmt: skip
            if not len(data[source]):
                raise SystemExit(f"{root}: no {source} faces in split {split!r}")
            photos = data[source].images(config.resolution)
            condition = cycled(data[target].condition, len(photos))
        elif config.to_dict() != first.to_dict():
            raise SystemExit(f"{path}: another network than {paths[0]}; score one run's checkpoints together")
        outputs = to_uint8(run_model(model, photos, source, target, condition, batch_size=batch_size, device=device))
        found = run_all(outputs, ANIMEFACE, upscale=upscale, workers=workers, what=f"AnimeFace, step {step}")
        scores.append(Score(path, step, int(sum(bool(f) for f in found)), len(outputs)))
        print(f"step {step:6d}  {scores[-1].rate:6.1%}  ({scores[-1].found}/{len(outputs)})  {path.name}", flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="a project whose data/datasets trained the run")
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    parser.add_argument("--source", default="human")
    parser.add_argument("--target", default="anime")
    parser.add_argument("--split", default="train", help="train: choosing does not read the validation faces")
    parser.add_argument("--images", type=int, default=512, help="source faces: the split's first, as evaluate")
    parser.add_argument("--upscale", type=int, default=128, help="as evaluate.upscale")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.images < 1:
        parser.error("--images: at least 1")
    missing = [str(p) for p in args.checkpoints if not p.is_file()]
    if missing:
        parser.error(f"no such checkpoint: {', '.join(missing)}")
    torch.set_grad_enabled(False)
    scores = sorted(score(args.checkpoints, args.root, source=args.source, target=args.target, split=args.split,
                          images=args.images, upscale=args.upscale, workers=args.workers),
                    key=lambda s: s.step)  # fmt: skip
    best = max(scores, key=lambda s: (s.rate, s.step))
    rates = np.array([s.rate for s in scores])
    last = scores[-1]
    print(f"\nbest: step {best.step} ({best.rate:.1%}, {best.path}); last: step {last.step} ({last.rate:.1%});"
          f" across {len(scores)} checkpoints {rates.min():.1%}..{rates.max():.1%}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "split": args.split, "images": scores[0].images,
            "checkpoints": [{"step": s.step, "rate": s.rate, "found": s.found, "path": str(s.path)} for s in scores],
            "best_step": best.step,
        }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
