"""The training loop: alternating generator and discriminator steps over paired domain batches.

Kept apart from the networks (training/networks.py) and the losses (training/losses.py), as in
StyleGAN2-ADA. One process per device; with several processes (torchrun) gradients are averaged with
torch.distributed all-reduce after each backward, as StyleGAN2-ADA does, instead of wrapping the networks
in DistributedDataParallel: the gradient penalties take gradients with respect to inputs
(torch.autograd.grad), which DDP does not support, and each step calls the encoder and generator several
times. Ranks read disjoint samples (training/data.py), so the average is over world_size x batch images.

What a step does: G step (reconstruction, translation, semantic, optional cycle terms), D step (real
against detached translations and reconstructions, gradient penalty), EMA update. A non-finite loss
stops the run with the step and the terms, keeping the last good checkpoint. Checkpoints, logs, samples
and the model file are written by rank 0 only, each atomically.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from core.atomic import atomic_path
from core.devices import resolve_device
from core.errors import UserError
from core.params import NetworkOptions, TrainParams
from training.checkpoint import FORMAT, check_compatible, load, save_atomic
from training.data import PairedDomainBatches, make_loader
from training.losses import TwinGANObjective
from training.model_file import save_model
from training.networks import NetworkConfig, TwinGAN, count_parameters, file_order
from training.samples import save_png, translation_grid

log = logging.getLogger("twingan.train")


class NonFiniteLoss(UserError, FloatingPointError):
    """A loss became NaN or infinite; the message names the step and the terms."""


@dataclass(frozen=True)
class RunPaths:
    datasets: Mapping[str, Path]  # domain -> data/datasets/<domain>
    checkpoint: Path  # models/checkpoints/last.pt: resumed from when present
    model: Path  # models/twingan.pt: the EMA networks, config, vocabulary, step
    metrics: Path  # metrics/train.json
    history: Path  # plots/train/losses.csv
    samples: Path  # plots/train/samples.png (latest); step grids go beside the TensorBoard logs
    tensorboard: Path | None = None  # logs/train

    # While a run goes on, its loss history and latest grid are kept beside the checkpoint they belong to, and
    # published to `history` and `samples` with the model and metrics: a killed run leaves the previous run's
    # plots in place, and its resume reads the rows of its own checkpoint.
    @property
    def working_history(self) -> Path:
        return self.checkpoint.with_name("losses.csv")

    @property
    def working_samples(self) -> Path:
        return self.checkpoint.with_name("samples.png")

    def snapshot(self, step: int) -> Path:
        """The EMA model file kept at `step` (train.snapshot_every): beside the checkpoint, so it persists with it."""
        return self.checkpoint.with_name("snapshots") / f"step-{step:07d}.pt"


def network_config(train: TrainParams, domains: tuple[str, ...], tag_dim: int, feature_dim: int = 0) -> NetworkConfig:
    """The networks train.network asks for: its options, and a condition of the vocabulary's tags and the
    datasets' reference features where its switches turn them on."""
    net = train.network
    options = net.model_dump(include=set(NetworkOptions.model_fields))
    return NetworkConfig(domains=domains, resolution=train.resolution, tag_dim=tag_dim if net.condition_on_tags else 0,
                         feature_dim=feature_dim if net.condition_on_features else 0, **options)  # fmt: skip


def _with_defaults(network: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return NetworkConfig.from_dict(network).to_dict()
    except (TypeError, ValueError):
        return dict(network)  # unreadable: let check_compatible name the differing keys


def condition_of(batch: Mapping[str, Any]) -> Any:
    """What G and D are conditioned on: the multi-hot tags, then the reference features when the run uses them
    (the layout training/conditioning.py builds at inference)."""
    if "features" in batch:
        return torch.cat([batch["tags"], batch["features"]], dim=1)
    return batch["tags"]


def growth(train: TrainParams, step: int) -> dict[str, Any]:
    """Resolution and fade-in alpha at a step (PGGAN): each phase doubles the resolution; the first
    `fade_steps` of a phase blend the new top layers in linearly."""
    growing = train.growing
    if not growing.enabled:
        return {}
    start, final = growing.start_resolution, train.resolution
    phases = int(math.log2(final // start))
    phase = min(step // growing.phase_steps, phases)
    resolution = start * 2**phase
    into = step - phase * growing.phase_steps
    alpha = 1.0 if phase == 0 or growing.fade_steps == 0 else min(1.0, into / growing.fade_steps)
    return {"resolution": resolution, "alpha": alpha}


class _Distributed:
    """Rank, world size, and the all-reduce of gradients; a no-op in a single process."""

    def __init__(self) -> None:
        self.active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1

    def broadcast(self, module: torch.nn.Module) -> None:
        if self.active:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        if not self.active:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for parameter, grad in zip(parameters, grads, strict=True):
            size = grad.numel()
            parameter.grad = flat[offset : offset + size].view_as(parameter)
            offset += size


def _ema_beta(train: TrainParams, images_seen: int, batch_images: int) -> float:
    half_life = train.ema_half_life_images
    if half_life <= 0:
        return 0.0
    if train.ema_rampup > 0:
        half_life = min(half_life, max(images_seen, 1) * train.ema_rampup)
    return 0.5 ** (batch_images / max(half_life, 1e-8))


@torch.no_grad()
def _update_ema(ema: TwinGAN, model: TwinGAN, beta: float) -> None:
    for target, source in ((ema.encoder, model.encoder), (ema.generator, model.generator)):
        for p_ema, p in zip(target.parameters(), source.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(target.buffers(), source.buffers(), strict=True):
            b_ema.copy_(b)


def _to_device(batches: Mapping[str, Mapping[str, Any]], device: torch.device, channels_last: bool) -> dict:
    out = {}
    for domain, batch in batches.items():
        image = batch["image"].to(device, non_blocking=True)
        image = image.contiguous(memory_format=torch.channels_last) if channels_last else image.contiguous()
        out[domain] = {"image": image, "tags": condition_of(batch).to(device, non_blocking=True)}
    return out


def _grown(batches: dict, grow: Mapping[str, Any]) -> dict:
    """Real images at the growing resolution, blended like the networks' outputs (PGGAN): while a new
    resolution fades in, reals are alpha * x + (1 - alpha) * upsample(downsample(x)), so D never sees real
    detail the generator cannot yet make."""
    if not grow:
        return batches
    import torch.nn.functional as F

    resolution, alpha = grow["resolution"], grow["alpha"]
    for batch in batches.values():
        image = batch["image"]
        if image.shape[-1] > resolution:
            image = F.avg_pool2d(image, image.shape[-1] // resolution)
        if alpha < 1.0:
            coarse = F.interpolate(F.avg_pool2d(image, 2), scale_factor=2, mode="nearest")
            image = image.lerp(coarse, 1.0 - alpha)
        batch["image"] = image
    return batches


def _finite(loss: torch.Tensor, stats: Mapping[str, float], step: int, which: str) -> None:
    if not torch.isfinite(loss):
        bad = {key: value for key, value in stats.items() if not math.isfinite(value)}
        raise NonFiniteLoss(
            f"step {step}: the {which} loss is {loss.item()} (non-finite terms: {bad or 'none single'}); the run "
            "stopped and the last good checkpoint is kept. Lower the learning rates, or use precision fp32"
        )


class _History:
    """Loss history for `dvc plots` (CSV), TensorBoard scalars, and the final metrics."""

    def __init__(self, paths: RunPaths, resumed_step: int, enabled: bool) -> None:
        self.paths, self.enabled = paths, enabled
        self.rows: list[dict[str, float]] = []
        self.writer = None
        if not enabled:
            return
        if resumed_step > 0 and paths.working_history.is_file():  # keep the rows before the resumed step
            with paths.working_history.open(newline="") as handle:  # empty cell: a term not logged that step
                self.rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)
                             if float(row["step"]) <= resumed_step]  # fmt: skip
        if paths.tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(paths.tensorboard), purge_step=resumed_step or None)

    def add(self, step: int, stats: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        self.rows.append({"step": float(step), **stats})
        if self.writer is not None:
            for key, value in stats.items():
                self.writer.add_scalar(key, value, step)

    def image(self, step: int, picture: np.ndarray) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_image("samples", picture, step, dataformats="HWC")

    def flush(self, target: Path | None = None) -> None:
        """Write the rows beside the checkpoint (or to `target`: the published plot)."""
        if not self.enabled or not self.rows:
            return
        target = target or self.paths.working_history
        keys = sorted({key for row in self.rows for key in row} - {"step"})
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["step", *keys])
            writer.writeheader()
            for row in self.rows:
                writer.writerow({"step": int(row["step"]), **{k: f"{row[k]:.6g}" for k in keys if k in row}})
        tmp.replace(target)
        if self.writer is not None:
            self.writer.flush()


def _fixed_inputs(dataset: PairedDomainBatches, count: int, device: torch.device) -> dict:
    """The first `count` samples of step 0: the same faces on every grid of a run."""
    item = dataset.batch(0)
    return {d: {"image": b["image"][:count].contiguous().to(device), "tags": condition_of(b)[:count].to(device)}
            for d, b in item["batches"].items()}  # fmt: skip


@dataclass
class _Run:
    """What one training run holds: the data, the networks, their EMA and optimisers."""

    dataset: PairedDomainBatches
    vocabulary: list[str]
    net_config: NetworkConfig
    model: TwinGAN
    ema: TwinGAN
    g_params: list[torch.nn.Parameter]
    d_params: list[torch.nn.Parameter]
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam


def _prepare_device(train: TrainParams, world: _Distributed) -> torch.device:
    """The device, the seed of this rank, and the determinism the params ask for."""
    device = resolve_device(train.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(train.seed + world.rank)
    if train.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def _build(train: TrainParams, paths: RunPaths, world: _Distributed, device: torch.device) -> _Run:
    dataset = PairedDomainBatches(
        paths.datasets, batch_size=train.batch_size, resolution=train.resolution, seed=train.seed,
        hflip=train.hflip, balanced=train.balanced, shuffle_window=train.shuffle_window, rank=world.rank,
        world_size=world.world, features=train.network.condition_on_features,
    )  # fmt: skip
    vocabulary = list(dataset.vocabulary)
    net_config = network_config(train, tuple(paths.datasets), len(vocabulary), dataset.feature_dim)
    model = TwinGAN(net_config).to(device)
    memory_format = torch.channels_last if train.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    if train.compile:
        # In place (Module.compile), so state_dict keys stay as they are. Not the discriminators: their
        # gradient penalties need double backward, which torch.compile does not support.
        model.encoder.compile()
        model.generator.compile()
    g_params, d_params = model.generator_parameters(), model.discriminator_parameters()
    opt_g = torch.optim.Adam(g_params, lr=train.lr_g, betas=train.betas)
    opt_d = torch.optim.Adam(d_params, lr=train.lr_d, betas=train.betas)
    return _Run(dataset, vocabulary, net_config, model, ema, g_params, d_params, opt_g, opt_d)


def _resume(run: _Run, train: TrainParams, paths: RunPaths, world: _Distributed) -> tuple[int, dict[str, Any] | None]:
    """The step to continue from and the checkpoint's payload (None for a new run, whose weights every rank
    then takes from rank 0)."""
    if not paths.checkpoint.is_file():
        world.broadcast(run.model)
        run.ema.load_state_dict(run.model.state_dict())
        return 0, None
    saved = load(paths.checkpoint)
    # Through NetworkConfig: keys a newer version added take their defaults (the network an older file made).
    check_compatible(paths.checkpoint, _with_defaults(saved["network"]), run.net_config.to_dict(), "network")
    check_compatible(paths.checkpoint, {"vocabulary": saved["vocabulary"]}, {"vocabulary": run.vocabulary}, "tag")
    run.model.load_state_dict(saved["model"])
    run.ema.load_state_dict(saved["ema"])
    run.opt_g.load_state_dict(saved["opt_g"])
    run.opt_d.load_state_dict(saved["opt_d"])
    for optimizer, lr in ((run.opt_g, train.lr_g), (run.opt_d, train.lr_d)):  # params win over the checkpoint
        for group in optimizer.param_groups:
            group["lr"], group["betas"] = lr, train.betas
    step = int(saved["step"])
    log.info("resumed from %s at step %d", paths.checkpoint, step)
    return step, saved


def _recorded(train: TrainParams) -> dict[str, Any]:
    """The train params as files hold them: plain data only (they are read with weights_only=True)."""
    recorded = train.model_dump(mode="json")
    recorded["network"] = file_order(
        recorded["network"], ("channel_base", "channel_max", "condition_on_tags", "condition_on_features")
    )
    return recorded


def training_loop(
    train: TrainParams, paths: RunPaths, *, stop_after: int | None = None, profile: str = "demo"
) -> dict[str, Any]:
    """Train (or resume) to `train.steps`; `stop_after` ends early after that many steps of this call
    (tests use it to kill a run in the middle)."""
    world = _Distributed()
    device = _prepare_device(train, world)
    domains = tuple(paths.datasets)
    run = _build(train, paths, world, device)
    dataset, vocabulary, net_config = run.dataset, run.vocabulary, run.net_config
    model, ema, opt_g, opt_d = run.model, run.ema, run.opt_g, run.opt_d
    step, saved = _resume(run, train, paths, world)
    if step >= train.steps:
        log.info("already at step %d of %d: nothing to train", step, train.steps)

    objective = TwinGANObjective(model, train.loss)
    adversarial = train.loss.translation_gan > 0 or train.loss.recon_gan > 0  # else no D to train (autoencoder)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and train.precision == "bf16"
                else nullcontext())  # fmt: skip
    g_step, d_step = _step_functions(objective, opt_g, opt_d, run.g_params, run.d_params, world, autocast, train)
    writer = world.rank == 0
    history = _History(paths, step, writer)
    fixed = _fixed_inputs(dataset, train.samples, device) if writer else {}
    log.info("training %s at %d px: E+G %.2f M, D %.2f M parameters, batch %d x %d domains x %d ranks, on %s",
             "/".join(domains), train.resolution, count_parameters(model.encoder) / 1e6 +
             count_parameters(model.generator) / 1e6, count_parameters(model.discriminators) / 1e6,
             train.batch_size, len(domains), world.world, device)  # fmt: skip

    recorded = _recorded(train)
    typical_tags = dataset.typical_tags  # once: every model file of the run records the same

    def save_checkpoint(at: int) -> None:
        states = [torch.get_rng_state()]  # every rank's, so each resumes its own random stream
        if world.active:
            states = [None] * world.world
            dist.all_gather_object(states, torch.get_rng_state())
        if writer:
            payload = {"format": FORMAT, "network": net_config.to_dict(), "loss": train.loss.model_dump(),
                       "train": recorded, "vocabulary": vocabulary, "step": at, "model": model.state_dict(),
                       "ema": ema.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                       "rng": {"torch": states}}  # fmt: skip
            save_atomic(payload, paths.checkpoint)
            history.flush()

    started, images_per_step = time.perf_counter(), train.batch_size * len(domains) * world.world
    done_here, last_stats, tick, tick_step = 0, {}, time.perf_counter(), step
    loader = None
    if step < train.steps:
        dataset.start_step = step
        loader = make_loader(dataset, num_workers=train.num_workers)
    batches_iter: Iterator[dict[str, Any]] = iter(loader) if loader is not None else iter(())
    if step > 0:  # after iter(): a DataLoader iterator draws its base seed from the global RNG
        torch.set_rng_state(saved["rng"]["torch"][world.rank % len(saved["rng"]["torch"])])
    while step < train.steps and (stop_after is None or done_here < stop_after):
        item = next(batches_iter)
        if item["step"] != step:
            raise RuntimeError(f"the loader yielded step {item['step']} where {step} was expected")
        grow = growth(train, step)
        batches = _grown(_to_device(item["batches"], device, train.channels_last), grow)
        g_stats = g_step(batches, grow, step)
        d_stats = d_step(batches, grow, step) if adversarial else {}
        _update_ema(ema, model, _ema_beta(train, step * images_per_step, images_per_step))
        step += 1
        done_here += 1
        last_stats = {**g_stats, **d_stats}
        if step % train.log_every == 0 or step == train.steps:
            now = time.perf_counter()
            rate = (step - tick_step) * images_per_step / max(now - tick, 1e-9)
            tick, tick_step = now, step
            history.add(step, {**last_stats, "images_per_second": rate, **({"alpha": grow["alpha"]} if grow else {})})
            log.info("step %d/%d  g %.4f  d %.4f  %.1f img/s", step, train.steps, last_stats.get("g/total", 0.0),
                     last_stats.get("d/total", 0.0), rate)  # fmt: skip
        if writer and (step % train.sample_every == 0 or step == train.steps):
            picture = translation_grid(ema, _grown({d: dict(b) for d, b in fixed.items()}, grow), **grow)
            save_png(picture, paths.working_samples)
            if paths.tensorboard is not None:
                save_png(picture, paths.tensorboard / "samples" / f"step-{step:07d}.png")
            history.image(step, picture)
        if step % train.checkpoint_every == 0 or step == train.steps:
            save_checkpoint(step)
        if writer and train.snapshot_every and step % train.snapshot_every == 0:
            save_model(paths.snapshot(step), ema, vocabulary=vocabulary, step=step, faces=dataset.faces,
                       train=recorded, profile=profile, typical_tags=typical_tags)  # fmt: skip
    del batches_iter, loader
    if done_here == 0 and history.rows:  # a finished run resumed: report its last logged losses again
        last_stats = {k: v for k, v in history.rows[-1].items() if k not in ("step", "images_per_second", "alpha")}

    metrics = {"profile": profile, "step": step, "images_seen": step * images_per_step,
               "seconds": round(time.perf_counter() - started, 2), "weights_sha256": _digest(model),
               **{k: round(v, 6) for k, v in last_stats.items()}}  # fmt: skip
    if writer and step >= train.steps:
        if not paths.working_samples.is_file():  # e.g. a finished run resumed: the grid of its final weights
            grow = growth(train, step)
            picture = translation_grid(ema, _grown({d: dict(b) for d, b in fixed.items()}, grow), **grow)
            save_png(picture, paths.working_samples)
        _publish(run, paths, recorded, metrics, history, step, profile)
    return metrics


def _publish(
    run: _Run,
    paths: RunPaths,
    recorded: dict[str, Any],
    metrics: dict[str, Any],
    history: _History,
    step: int,
    profile: str,
) -> None:
    """A finished run's outputs, each atomically: the model file, the metrics, and its plots."""
    save_model(paths.model, run.ema, vocabulary=run.vocabulary, step=step, faces=run.dataset.faces, train=recorded,
               profile=profile, typical_tags=run.dataset.typical_tags)  # fmt: skip
    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    tmp = paths.metrics.with_name(f".{paths.metrics.name}.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(paths.metrics)
    history.flush()
    history.flush(paths.history)  # the run's plots, published with its model and metrics
    with atomic_path(paths.samples) as published:
        shutil.copyfile(paths.working_samples, published)


def _digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer: equal digests mean bit-identical weights (ranks, resumes)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).clone().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _step_functions(objective, opt_g, opt_d, g_params, d_params, world, autocast, train):  # type: ignore[no-untyped-def]
    def g_step(batches: Mapping, grow: Mapping, step: int) -> dict[str, float]:
        for p in d_params:
            p.requires_grad_(False)
        with autocast:
            loss, stats = objective.generator_loss(batches, grow=grow)
        _finite(loss, stats, step, "generator")
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        world.average_gradients(g_params)
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        return stats

    def d_step(batches: Mapping, grow: Mapping, step: int) -> dict[str, float]:
        with autocast:
            loss, stats = objective.discriminator_loss(batches, step=step, grow=grow)
        _finite(loss, stats, step, "discriminator")
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        world.average_gradients(d_params)
        opt_d.step()
        return stats

    return g_step, d_step
