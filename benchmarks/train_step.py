"""Images per second of one full Twin-GAN training step, against a CycleGAN step at the same size.

Why: the issue asks for the step's throughput against a well-known baseline, run in the same invocation
(these machines are noisy), and for the GPU figure that decides how many GPUs a real run needs.

  twingan   the train stage's step: G step (reconstruction L1 + GAN, translation GAN both ways, semantic
            L1), D step (both discriminators, real vs translations and reconstructions, DRAGAN penalty),
            EMA update; the original's widths (channel_base 4096, channel_max 256) unless --small.
  cyclegan  the CycleGAN of Zhu et al. 2017 as its paper describes it: two ResNet generators
            (c7s1-64, d128, d256, 6 residual blocks at 128 px and below, 9 above, u128, u64, c7s1-3,
            instance norm), two 70x70 PatchGANs (C64-C128-C256-C512, instance norm from C128), LSGAN
            losses, cycle L1 with lambda 10 and identity L1 with 0.5 lambda; G step then D step.

Both read one batch per domain per step from synthetic tensors in memory (the loader is measured by
benchmarks/loader.py), so img/s counts the images of both domains. Each variant runs in its own
subprocess, so peak memory (RSS on a CPU, torch's peak allocation on a GPU) is its own.

    .venv/bin/python benchmarks/train_step.py                          # CPU, 64 and 128 px, batch 4
    python benchmarks/train_step.py --device cuda --resolutions 128 256 --batch 32 --precision bf16

A Twin-GAN variant may change its loss or batch: `twingan:recon_gan=0,semantic=0,batch=8` (keys of
params.yaml's train.loss, and batch per domain). The real profile's 32 px step, one thread, against variants:

    .venv/bin/python benchmarks/train_step.py --resolutions 32 --batch 16 --widths 2048 64 --threads 1 \
      --gp-every 4 --loss cycle=10 --variants cyclegan twingan twingan:batch=8 twingan:recon_gan=0
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------- CycleGAN baseline


class ResnetBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet_generator(blocks: int, width: int = 64) -> nn.Module:
    """c7s1-w, d2w, d4w, `blocks` residual blocks, u2w, uw, c7s1-3 (the paper's w = 64)."""
    w1, w2, w4 = width, 2 * width, 4 * width
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, w1, 7), nn.InstanceNorm2d(w1), nn.ReLU(True)]
    for cin, cout in ((w1, w2), (w2, w4)):
        layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.InstanceNorm2d(cout), nn.ReLU(True)]
    layers += [ResnetBlock(w4) for _ in range(blocks)]
    for cin, cout in ((w4, w2), (w2, w1)):
        layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(cout),
                   nn.ReLU(True)]  # fmt: skip
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(w1, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patch_discriminator(width: int = 64) -> nn.Module:
    """The 70x70 PatchGAN: C w, C 2w, C 4w, C 8w (the paper's w = 64)."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for cin, cout, stride in ((width, 2 * width, 2), (2 * width, 4 * width, 2), (4 * width, 8 * width, 1)):
        layers += [nn.Conv2d(cin, cout, 4, stride, 1), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(8 * width, 1, 4, 1, 1)]
    return nn.Sequential(*layers)


def cyclegan_step_fn(resolution: int, device: torch.device, lr: float = 2e-4):
    g_ab, g_ba = (
        resnet_generator(6 if resolution <= 128 else 9).to(device),
        resnet_generator(6 if resolution <= 128 else 9).to(device),
    )
    d_a, d_b = patch_discriminator().to(device), patch_discriminator().to(device)
    opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=lr, betas=(0.5, 0.999))
    mse = nn.MSELoss()

    def step(a: torch.Tensor, b: torch.Tensor, autocast) -> None:
        def gan(logits: torch.Tensor, target: float) -> torch.Tensor:
            return mse(logits.float(), torch.full_like(logits.float(), target))

        with autocast:
            fake_b, fake_a = g_ab(a), g_ba(b)
            loss_g = (gan(d_b(fake_b), 1.0) + gan(d_a(fake_a), 1.0)
                      + 10 * (F.l1_loss(g_ba(fake_b), a) + F.l1_loss(g_ab(fake_a), b))
                      + 5 * (F.l1_loss(g_ab(b), b) + F.l1_loss(g_ba(a), a)))  # fmt: skip
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with autocast:
            loss_d = 0.5 * (gan(d_a(a), 1.0) + gan(d_a(fake_a.detach()), 0.0)
                            + gan(d_b(b), 1.0) + gan(d_b(fake_b.detach()), 0.0))  # fmt: skip
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

    parameters = sum(p.numel() for m in (g_ab, g_ba, d_a, d_b) for p in m.parameters())
    return step, parameters


# ------------------------------------------------------------------------------------- Twin-GAN step


def twingan_step_fn(resolution: int, device: torch.device, small: bool, channels_last: bool, compile_: bool = False,
                    gp_every: int = 1, tag_dim: int = 32, widths: tuple[int, int] | None = None,
                    loss: dict[str, float] | None = None):  # fmt: skip
    import copy

    from core.params import LossParams
    from training.loop import _update_ema
    from training.losses import TwinGANObjective
    from training.networks import NetworkConfig, TwinGAN

    base, top = widths if widths else ((1024, 64) if small else (4096, 256))
    config = NetworkConfig(domains=("human", "anime"), resolution=resolution, tag_dim=tag_dim, channel_base=base,
                           channel_max=top)  # fmt: skip
    model = TwinGAN(config).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    if compile_:  # as train.compile does: encoder and generator (D needs double backward)
        model.encoder.compile()
        model.generator.compile()
    objective = TwinGANObjective(model, LossParams(**{"gp_every": gp_every, **(loss or {})}))
    g_params, d_params = model.generator_parameters(), model.discriminator_parameters()
    opt_g = torch.optim.Adam(g_params, lr=2e-4, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d_params, lr=2e-4, betas=(0.0, 0.99))

    counter = [0]

    def step(a: torch.Tensor, b: torch.Tensor, autocast) -> None:
        tags = torch.zeros(a.shape[0], tag_dim, device=device)
        batches = {"human": {"image": a, "tags": tags}, "anime": {"image": b, "tags": tags}}
        for p in d_params:
            p.requires_grad_(False)
        with autocast:
            loss_g, _ = objective.generator_loss(batches)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        with autocast:
            loss_d, _ = objective.discriminator_loss(batches, step=counter[0])
        counter[0] += 1
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        _update_ema(ema, model, 0.999)

    parameters = sum(p.numel() for p in model.parameters())
    return step, parameters


# ------------------------------------------------------------------------------------------- driver


def parse_settings(text: str | None) -> dict[str, float]:
    """`key=value,key=value` -> {key: value}; check_loss checks the keys and values."""
    settings = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"variant setting {item!r}: expected key=value")
        try:
            settings[key.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"variant setting {item!r}: {value!r} is not a number") from None
    return settings


def parse_variant(spec: str) -> tuple[str, dict[str, float]]:
    kind, _, settings = spec.partition(":")
    if kind not in ("twingan", "cyclegan"):
        raise SystemExit(f"variant {spec!r}: expected twingan[:key=value,...] or cyclegan")
    if kind == "cyclegan" and settings:
        raise SystemExit(f"variant {spec!r}: the CycleGAN takes no settings")
    parsed = parse_settings(settings)
    batch = parsed.get("batch", 1.0)
    if batch != int(batch) or batch < 1:
        raise SystemExit(f"variant {spec!r}: batch must be a whole number of at least 1, got {batch:g}")
    check_loss({k: v for k, v in parsed.items() if k != "batch"}, f"variant {spec!r}")
    return kind, parsed


def check_loss(settings: dict[str, float], where: str) -> None:
    """A misspelt train.loss key fails before any variant runs, named as params.yaml would name it."""
    from pydantic import ValidationError

    from core.params import LossParams, format_validation_error

    try:
        LossParams(**settings)
    except ValidationError as error:
        raise SystemExit(format_validation_error(error, f"{where}, train.loss")) from None


def run_variant(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.threads:
        torch.set_num_threads(args.threads)
    kind, settings = parse_variant(args.variant)
    loss = {**parse_settings(args.loss), **settings}
    batch = int(loss.pop("batch", args.batch))
    if kind == "twingan":
        widths = tuple(args.widths) if args.widths else None
        step, parameters = twingan_step_fn(args.resolution, device, args.small, not args.no_channels_last,
                                           args.compile, args.gp_every, widths=widths, loss=loss)  # fmt: skip
    else:
        step, parameters = cyclegan_step_fn(args.resolution, device)
    shape = (batch, 3, args.resolution, args.resolution)
    a, b = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1
    if kind == "twingan" and not args.no_channels_last:
        a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    bf16 = device.type == "cuda" and args.precision == "bf16"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step(a, b, autocast)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            step(a, b, autocast)
        sync()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times) / args.steps
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # fmt: skip
    return {"variant": args.variant, "resolution": args.resolution, "batch": batch, "seconds_per_step": seconds,
            "images_per_second": 2 * batch / seconds, "peak_mib": peak, "parameters": parameters}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=4, help="per domain")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--small", action="store_true", help="Twin-GAN with the demo's narrow widths")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the Twin-GAN encoder and generator")
    parser.add_argument("--gp-every", type=int, default=1, help="lazy gradient penalty (loss.gp_every)")
    parser.add_argument(
        "--widths",
        type=int,
        nargs=2,
        metavar=("CHANNEL_BASE", "CHANNEL_MAX"),
        help="the Twin-GAN's train.network widths (default: the original's, or --small's)",
    )
    parser.add_argument("--loss", help="train.loss settings of every Twin-GAN variant, key=value,...")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per variant (0: torch's default)")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["twingan", "cyclegan"],
        help="cyclegan, twingan, or twingan:key=value,... (train.loss keys, and batch)",
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # a child process: one variant, one resolution
        print(json.dumps(run_variant(args)))
        return
    for spec in args.variants:
        parse_variant(spec)  # a typo fails here, before any variant runs
    check_loss(parse_settings(args.loss), "--loss")
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, device {args.device}, threads {threads}, batch {args.batch} per domain, "
          f"{args.precision}, median of {args.repeats} x {args.steps} steps")  # fmt: skip
    width = max(10, *map(len, args.variants))
    print(f"{'variant':{width}} {'res':>4} {'batch':>5} {'img/s':>9} {'s/step':>8} {'peak MiB':>9} {'params':>8} "
          f"{'vs cyclegan':>11}")  # fmt: skip
    for resolution in args.resolutions:
        rows = {}
        for variant in args.variants:
            command = [sys.executable, __file__, "--variant", variant, "--resolution", str(resolution)]
            for flag in ("device", "batch", "steps", "repeats", "warmup", "precision"):
                command += [f"--{flag}", str(getattr(args, flag))]
            command += ["--small"] * args.small + ["--no-channels-last"] * args.no_channels_last
            command += ["--compile"] * args.compile + ["--gp-every", str(args.gp_every), "--threads", str(args.threads)]
            command += ["--widths", *map(str, args.widths)] if args.widths else []
            command += ["--loss", args.loss] if args.loss else []
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"{variant} at {resolution}: failed\n{done.stderr[-2000:]}")
                continue
            rows[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        base = rows.get("cyclegan", {}).get("images_per_second")
        for variant, row in rows.items():
            ratio = f"{row['images_per_second'] / base:.2f}x" if base else "-"
            print(f"{variant:{width}} {resolution:>4} {row['batch']:>5} {row['images_per_second']:>9.1f} "
                  f"{row['seconds_per_step']:>8.3f} {row['peak_mib']:>9.0f} {row['parameters'] / 1e6:>7.1f}M "
                  f"{ratio:>11}")  # fmt: skip


if __name__ == "__main__":
    main()
