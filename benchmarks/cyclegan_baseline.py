"""The CycleGAN baseline of the translation metrics: trained on the same faces for the same wall-clock budget as the
Twin-GAN, and measured by the evaluate stage's own code on the same validation faces.

Why: the issue asks whether the Twin-GAN translates photos into anime faces better than the best-known unpaired
translator given the same data, resolution, machine and time. The baseline is the CycleGAN of Zhu et al. 2017 as
benchmarks/train_step.py builds it (two ResNet generators, two 70x70 PatchGANs, LSGAN, cycle L1 x10, identity L1
x5, Adam 2e-4 with betas 0.5, 0.999, a pool of 50 past fakes per discriminator), with its widths scaled by
--width (the paper's 64) as the Twin-GAN's are scaled for a CPU. It has no tags, so it has no hair metrics, and
its "reconstruction" is its cycle (photo -> anime -> photo), the nearest thing it has to the Twin-GAN's.

    # train for 45 minutes on the datasets of a project run with the real profile (twingan profile real)
    .venv/bin/python benchmarks/cyclegan_baseline.py train --root /path/to/project --minutes 45
    # every model side by side: the Twin-GAN, the same Twin-GAN untrained (a floor), the CycleGAN
    .venv/bin/python benchmarks/cyclegan_baseline.py compare --root /path/to/project \\
        --cyclegan /path/to/project/models/baselines/cyclegan-64.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from train_step import patch_discriminator, resnet_generator  # noqa: E402

FORMAT = "cyclegan-baseline/1"
log = logging.getLogger("cyclegan")


def load_train_pixels(root: Path, domain: str) -> np.ndarray:
    """Every training face of a dataset, uint8 (N, S, S, 3), in memory (both real sets fit in 300 MB)."""
    from training.data import DomainSplit

    part = DomainSplit(root / "data" / "datasets" / domain, "train")
    rows = np.arange(len(part))
    pixels = np.empty((len(rows), part.image_size, part.image_size, 3), dtype=np.uint8)
    for read, crops in part.crops(rows, batch_size=512):
        pixels[read] = crops
    log.info("%s: %d training faces at %d px", domain, len(rows), part.image_size)
    return pixels


class Pool:
    """The paper's history of 50 generated images: half the discriminator's fakes are older ones."""

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        self.size, self.images, self.rng = size, [], random.Random(seed)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.random() < 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)


def _batch(pixels: np.ndarray, batch: int, resolution: int, generator: torch.Generator) -> torch.Tensor:
    from training.data import to_images

    rows = torch.randint(len(pixels), (batch,), generator=generator).numpy()
    images = to_images(pixels[np.sort(rows)], resolution)
    flip = torch.rand(batch, generator=generator) < 0.5
    images[flip] = images[flip].flip(-1)
    return images.contiguous(memory_format=torch.channels_last)


def train(args: argparse.Namespace) -> Path:
    from training.samples import grid, save_png

    torch.manual_seed(args.seed)
    a_pixels, b_pixels = load_train_pixels(args.root, args.source), load_train_pixels(args.root, args.target)
    blocks = 6 if args.resolution <= 128 else 9
    g_ab, g_ba = resnet_generator(blocks, args.width), resnet_generator(blocks, args.width)
    d_a, d_b = patch_discriminator(args.width), patch_discriminator(args.width)
    nets = [m.to(memory_format=torch.channels_last) for m in (g_ab, g_ba, d_a, d_b)]
    opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    pool_a, pool_b = Pool(seed=args.seed), Pool(seed=args.seed + 1)
    generator = torch.Generator().manual_seed(args.seed)
    mse = nn.MSELoss()
    params = sum(p.numel() for m in nets for p in m.parameters())
    log.info("CycleGAN %s<->%s at %d px, width %d: %.2f M parameters, batch %d x 2, budget %.0f min",
             args.source, args.target, args.resolution, args.width, params / 1e6, args.batch, args.minutes)  # fmt: skip

    def gan(logits: torch.Tensor, target: float) -> torch.Tensor:
        return mse(logits, torch.full_like(logits, target))

    fixed_a = _batch(a_pixels, 8, args.resolution, torch.Generator().manual_seed(1))
    started, step, history = time.perf_counter(), 0, []
    budget = args.minutes * 60
    window_start, window_steps = started, 0
    while time.perf_counter() - started < budget:
        a = _batch(a_pixels, args.batch, args.resolution, generator)
        b = _batch(b_pixels, args.batch, args.resolution, generator)
        fake_b, fake_a = g_ab(a), g_ba(b)
        for d in (d_a, d_b):
            d.requires_grad_(False)
        loss_gan = gan(d_b(fake_b), 1.0) + gan(d_a(fake_a), 1.0)
        loss_cycle = F.l1_loss(g_ba(fake_b), a) + F.l1_loss(g_ab(fake_a), b)
        loss_identity = F.l1_loss(g_ab(b), b) + F.l1_loss(g_ba(a), a)
        loss_g = loss_gan + 10 * loss_cycle + 5 * loss_identity
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for d in (d_a, d_b):
            d.requires_grad_(True)
        old_a, old_b = pool_a(fake_a), pool_b(fake_b)
        loss_d = 0.5 * (gan(d_a(a), 1.0) + gan(d_a(old_a), 0.0) + gan(d_b(b), 1.0) + gan(d_b(old_b), 0.0))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        step += 1
        window_steps += 1
        if step % args.log_every == 0:
            now = time.perf_counter()
            rate = window_steps * 2 * args.batch / (now - window_start)
            window_start, window_steps = now, 0
            row = {"step": step, "seconds": round(now - started, 1), "images_per_second": round(rate, 2),
                   "g_gan": float(loss_gan), "cycle": float(loss_cycle), "identity": float(loss_identity),
                   "d": float(loss_d)}  # fmt: skip
            history.append(row)
            log.info("step %d  %.0f s  g_gan %.3f  cycle %.3f  d %.3f  %.1f img/s", step, row["seconds"],
                     row["g_gan"], row["cycle"], row["d"], rate)  # fmt: skip
    seconds = time.perf_counter() - started
    out = args.out or args.root / "models" / "baselines" / f"cyclegan-{args.resolution}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "source": args.source, "target": args.target, "resolution": args.resolution,
               "width": args.width, "blocks": blocks, "steps": step, "seconds": round(seconds, 1),
               "images_seen": step * 2 * args.batch, "batch": args.batch, "history": history,
               "g_ab": g_ab.state_dict(), "g_ba": g_ba.state_dict()}  # fmt: skip
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(out)
    with torch.no_grad():
        g_ab.eval(), g_ba.eval()
        picture = grid([fixed_a, g_ab(fixed_a), g_ba(g_ab(fixed_a))])
    save_png(picture, out.with_suffix(".png"))
    log.info("%d steps (%d images) in %.0f s -> %s", step, step * 2 * args.batch, seconds, out)
    return out


class CycleGANUnderTest:
    """The two generators behind the Twin-GAN's encode/decode, as flows.evaluate.measure reads a model: decode
    into the other domain translates, decode into the same domain is the cycle."""

    def __init__(self, path: Path) -> None:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        self.source, self.target = payload["source"], payload["target"]
        self.g = {}
        for name, (s, t) in (("g_ab", (self.source, self.target)), ("g_ba", (self.target, self.source))):
            net = resnet_generator(payload["blocks"], payload["width"])
            net.load_state_dict(payload[name])
            self.g[(s, t)] = net.eval().requires_grad_(False)
        config = SimpleNamespace(resolution=payload["resolution"], domains=(self.source, self.target), tag_dim=0,
                                 condition_dim=0)  # fmt: skip
        self.info = SimpleNamespace(config=config, vocabulary=(), step=payload["steps"], profile="cyclegan-baseline")
        self.payload = {k: v for k, v in payload.items() if k not in ("g_ab", "g_ba")}

    def encode(self, images: torch.Tensor, domain: str) -> tuple[torch.Tensor, str]:
        return images, domain

    def decode(self, latent: torch.Tensor, skips: str, domain: str, condition: Any) -> torch.Tensor:
        source = skips
        if source == domain:
            other = self.target if source == self.source else self.source
            return self.g[(other, source)](self.g[(source, other)](latent))
        return self.g[(source, domain)](latent)


def _untrained(info: Any) -> Any:
    from training.networks import TwinGAN

    torch.manual_seed(0)
    model = TwinGAN(info.config).eval().requires_grad_(False)
    return model, SimpleNamespace(**{**info.__dict__, "step": 0, "profile": "untrained"})


ROWS = [
    ("AnimeFace rate of the translations", ("human_to_anime", "animeface_rate")),
    ("AnimeFace rate of real anime faces (ceiling)", ("human_to_anime", "animeface_rate_real")),
    ("AnimeFace rate of the input photos (floor)", ("human_to_anime", "animeface_rate_inputs")),
    ("reconstruction PSNR, human (dB)", ("human", "reconstruction_psnr_db")),
    ("reconstruction PSNR, anime (dB)", ("anime", "reconstruction_psnr_db")),
    ("pose: roll error (degrees)", ("human_to_anime", "pose_roll_error_degrees")),
    ("pose: yaw correlation", ("human_to_anime", "pose_yaw_correlation")),
    ("pose: flip rate on turned heads", ("human_to_anime", "pose_flip_rate")),
    ("hair colour agreement", ("human_to_anime", "hair_agreement")),
    ("FID human -> anime", ("human_to_anime", "fid")),
]


def compare(args: argparse.Namespace) -> None:
    from core.params import load_params
    from flows.evaluate import measure
    from training.model_file import load_model
    from training.samples import save_png

    loaded = load_params(args.root / "params.yaml")
    model, info = load_model(args.twingan or args.root / "models" / "twingan.pt")
    subjects: list[tuple[str, Any, Any]] = [(f"Twin-GAN (step {info.step})", model, info)]
    subjects.append(("Twin-GAN untrained", *_untrained(info)))
    for path in args.cyclegan:
        baseline = CycleGANUnderTest(path)
        subjects.append((f"CycleGAN (step {baseline.info.step})", baseline, baseline.info))
    results = {}
    for name, subject, subject_info in subjects:
        metrics, picture = measure(loaded, subject, subject_info)
        results[name] = metrics
        if args.out:
            save_png(picture, args.out / f"{name.split(' (')[0].replace(' ', '-').lower()}-samples.png")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print("| metric | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for label, (section, name) in ROWS:
        cells = [_cell(name, metrics.get(section, {}).get(name)) for metrics in results.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")


def _cell(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%" if "rate" in name or name == "hair_agreement" else f"{value:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the CycleGAN for a wall-clock budget")
    t.add_argument("--root", type=Path, required=True, help="a project whose data/datasets the real profile wrote")
    t.add_argument("--minutes", type=float, default=45.0)
    t.add_argument("--resolution", type=int, default=64)
    t.add_argument("--batch", type=int, default=16, help="per domain, as the Twin-GAN's train.batch_size")
    t.add_argument("--width", type=int, default=32, help="the paper's 64; 32 for a CPU")
    t.add_argument("--source", default="human")
    t.add_argument("--target", default="anime")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=25)
    t.add_argument("--out", type=Path)
    c = sub.add_parser("compare", help="the evaluate stage's metrics of every model, side by side")
    c.add_argument("--root", type=Path, required=True)
    c.add_argument("--twingan", type=Path, help="default: <root>/models/twingan.pt")
    c.add_argument("--cyclegan", type=Path, nargs="*", default=[])
    c.add_argument("--out", type=Path, help="write compare.json and each model's sample grid here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("twingan", "flows", "evaluation", "training"):
        logging.getLogger(name).setLevel(logging.INFO)
    args.root = args.root.absolute()
    train(args) if args.command == "train" else compare(args)


if __name__ == "__main__":
    main()
