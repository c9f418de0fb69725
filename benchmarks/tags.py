"""Benchmark of the illust2vec tag forward: one image at a time against batched inference.

Why: tagging runs the VGG-like tag model (9.3 G multiply-adds per 224x224 image) over every face crop. The loop
people write first feeds one image at a time; batching, inference_mode and channels_last memory (and bf16
on a GPU) should each pay, and must not change the probabilities.

  (a) baseline     one image per call, model.eval() under torch.no_grad
  (b) batch        --batch images per call, torch.no_grad
  (c) batch+       --batch images per call, torch.inference_mode, model and inputs channels_last
  (d) batch+ bf16  (c) under torch.autocast(bfloat16); CUDA only

The model is the full-size tag model (conv1_1 .. conv6_4, the layer list of TAG_MODEL_SPEC) with random
weights, built in memory: no weight file is needed. Timed: the forward from preprocessed (N, 3, 224, 224)
tensors to (N, 1539) probabilities; preprocessing is not. Before timing, every batched variant is checked
against (a) on the first --batch images: the max |difference| of the probabilities must be at most 1e-4
in float32 (2e-3 with --tf32 on CUDA); that pass is also the warm-up. Each round runs the variants one
after another on --images images; the median of --repeats rounds is reported. Exit status 1 when a
float32 variant differs from (a).

Imports only torch, numpy and preprocessing.tags, so it runs on a bare GPU machine.

    .venv/bin/python benchmarks/tags.py [--device cpu|cuda] [--tf32] [--images N] [--batch 32] [--repeats 3]

On 2 CPU cores the defaults (64 images, 3 rounds) take about 1 to 2 minutes.
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from preprocessing.tags.caffe import CaffeLayer, CaffeNet  # noqa: E402
from preprocessing.tags.illust2vec import (  # noqa: E402
    INPUT_SIZE,
    NUM_TAGS,
    TAG_LAYER,
    TAG_MODEL_SPEC,
    CaffeGraph,
    Illust2Vec,
    check_tag_net,
)

TOLERANCE = 1e-4  # float32 variants against the baseline
TF32_TOLERANCE = 2e-3  # with --tf32 on CUDA: convolutions round their inputs to 10 bits of mantissa
BF16_TOLERANCE = 5e-2  # bf16 keeps 8 bits of mantissa: reported, not required to match


def random_tag_net(seed: int = 0) -> CaffeNet:
    """TAG_MODEL_SPEC as a net with He-scaled random weights (activations neither explode nor vanish)."""
    rng = np.random.default_rng(seed)
    layers: list[CaffeLayer] = []
    blob, channels = "data", 3
    for spec in TAG_MODEL_SPEC:
        if spec.type == "Convolution":
            assert spec.outputs is not None
            gain = 0.1 if spec.name == TAG_LAYER else 2.0  # logits of a few units: probabilities not saturated
            std = np.sqrt(gain / (channels * 9)) / (64 if channels == 3 else 1)  # inputs are pixels minus the mean
            weight = rng.standard_normal((spec.outputs, channels, 3, 3), dtype=np.float32) * np.float32(std)
            bias = np.zeros(spec.outputs, dtype=np.float32)
            params = {"num_output": spec.outputs, "kernel": 3, "pad": 1}
            layers.append(CaffeLayer(spec.name, "Convolution", (blob,), (spec.name,), (weight, bias), params))
            blob, channels = spec.name, spec.outputs
        elif spec.type == "ReLU":
            layers.append(CaffeLayer(spec.name, "ReLU", (blob,), (blob,)))
        else:
            pool = {"pool": "max", "kernel": 2, "stride": 2}
            layers.append(CaffeLayer(spec.name, "Pooling", (blob,), (spec.name,), params=pool))
            blob = spec.name
    return CaffeNet("illust2vec_tag (random weights)", tuple(layers), ("data",), source="random weights")


def one_at_a_time(model: Illust2Vec, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.tag_probabilities(x[i : i + 1]) for i in range(len(x))])


def batched(model: Illust2Vec, x: torch.Tensor, batch: int, fast: bool = False, bf16: bool = False) -> torch.Tensor:
    context = torch.inference_mode() if fast else torch.no_grad()
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16)
    with context, autocast:
        return torch.cat([model.tag_probabilities(x[i : i + batch]) for i in range(0, len(x), batch)])


def timed(run: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--images", type=int, default=None, help="images per round (default: 64 on CPU, 256 on CUDA)")
    parser.add_argument("--batch", type=int, default=32, help="images per call of the batched variants")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the median is reported")
    parser.add_argument("--tf32", action="store_true", help="CUDA: allow TF32 convolutions (PyTorch's default)")
    args = parser.parse_args()
    device = torch.device(args.device)
    # Float32 variants compute in float32 unless asked: PyTorch lets cuDNN use TF32 by default, which moves
    # the probabilities by up to about 1e-3 (batched against single-image calls, or GPU against CPU).
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.tf32
    fp32_limit = TF32_TOLERANCE if args.tf32 and device.type == "cuda" else TOLERANCE
    count = args.images or (256 if device.type == "cuda" else 64)

    net = random_tag_net()
    check_tag_net(net)
    parameters = sum(b.size for layer in net.layers for b in layer.blobs)
    tags = [f"tag{i}" for i in range(NUM_TAGS)]
    model = Illust2Vec(tags=tags, tag_graph=CaffeGraph(net), version="random weights").to(device).eval()
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8) for _ in range(count)]
    x = model.preprocess(images)
    x_last = x.contiguous(memory_format=torch.channels_last)

    variants: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "(a) 1 image at a time, no_grad": lambda x, _: one_at_a_time(model, x),
        f"(b) batch {args.batch}, no_grad": lambda x, _: batched(model, x, args.batch),
        f"(c) batch {args.batch}, inference_mode + channels_last": lambda _, xl: batched(fast, xl, args.batch, True),
    }
    if device.type == "cuda":
        variants[f"(d) batch {args.batch}, (c) + bf16 autocast"] = lambda _, xl: batched(
            fast, xl, args.batch, True, True
        )
    names = list(variants)
    width = max(len(name) for name in names) + 2

    print(f"illust2vec tag forward: random weights, {parameters / 1e6:.1f} M parameters, {INPUT_SIZE}x{INPUT_SIZE}")
    print(f"torch {torch.__version__}, device {device}, torch.get_num_threads() {torch.get_num_threads()}")
    if device.type == "cuda":
        print(f"gpu {torch.cuda.get_device_name(device)}, TF32 {'allowed' if args.tf32 else 'off'}")
    check = min(args.batch, count)
    reference = variants[names[0]](x[:check], x_last[:check])
    low, high = np.quantile(reference.float().cpu().numpy(), [0.01, 0.99])
    spread = f"probabilities {low:.3f} to {high:.3f} from 1st to 99th percentile"
    print(f"check against (a) on {check} images ({spread}), max |p - p(a)|, also the warm-up:")
    failed = False
    for name in names[1:]:
        diff = (variants[name](x[:check], x_last[:check]) - reference).abs().max().item()
        limit = BF16_TOLERANCE if "bf16" in name else fp32_limit
        failed |= diff > limit and "bf16" not in name
        print(f"  {name:<{width}}{diff:9.2e}  {'ok' if diff <= limit else 'DIFFERS'} (limit {limit:g})")

    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            seconds[name].append(timed(functools.partial(variants[name], x, x_last), device))
    print(f"timed: {count} images per variant, median of {args.repeats} rounds (variants interleaved)")
    base = count / statistics.median(seconds[names[0]])
    print(f"{'variant':<{width}}{'img/s':>9}  {'vs (a)':>7}")
    for name in names:
        rate = count / statistics.median(seconds[name])
        print(f"{name:<{width}}{rate:9.2f}  {rate / base:6.2f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
