"""The training loop on CPU: it learns, resumes exactly, runs under torch.distributed (gloo), stops on a
non-finite loss, refuses a checkpoint made with other network settings, and reads the files older versions
wrote."""

from __future__ import annotations

import os
import shutil
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from core.params import TrainParams
from tests.builders.datasets import write_dataset
from tests.builders.models import VOCABULARY as MODEL_VOCABULARY
from tests.builders.models import booby_trap
from training.checkpoint import CheckpointError, load
from training.conditioning import condition_vector
from training.data import DomainSplit
from training.loop import NonFiniteLoss, RunPaths, growth, training_loop
from training.model_file import load_model

DOMAINS = ("human", "anime")
# Files written by commit 6459e69 (before the network and loss options were declared once, in core/params.py);
# tests/data/legacy_6459e69/README.md says how they were made.
LEGACY = Path(__file__).parent / "data" / "legacy_6459e69"


def tiny(**overrides) -> TrainParams:
    """A small, fast, deterministic configuration: 16 px, few channels, no worker processes. A dict given for
    a section (network={"channel_max": 32}) updates that section's keys."""
    train: dict = {"domains": DOMAINS, "resolution": 16, "batch_size": 4, "steps": 6, "num_workers": 0, "log_every": 1,
                   "sample_every": 3, "checkpoint_every": 3, "samples": 2, "ema_half_life_images": 50,
                   "precision": "fp32", "device": "cpu",
                   "network": {"channel_base": 128, "channel_max": 16, "mbstd_group": 2}}  # fmt: skip
    for key, value in overrides.items():
        train[key] = {**train.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainParams.model_validate(train)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    return {domain: write_dataset(root / domain, domain=domain, image_size=16, counts={"train": 24, "val": 4})
            for domain in DOMAINS}  # fmt: skip


def paths(out: Path, datasets: dict[str, Path]) -> RunPaths:
    return RunPaths(datasets=datasets, checkpoint=out / "models/checkpoints/last.pt", model=out / "models/twingan.pt",
                    metrics=out / "metrics/train.json", history=out / "plots/train/losses.csv",
                    samples=out / "plots/train/samples.png", tensorboard=out / "logs/train")  # fmt: skip


def test_a_run_writes_the_model_metrics_history_samples_and_tensorboard(tmp_path: Path, datasets) -> None:
    run = paths(tmp_path, datasets)
    metrics = training_loop(tiny(), run)
    assert metrics["step"] == 6 and metrics["images_seen"] == 6 * 4 * 2
    for term in ("g/total", "d/total", "g/recon_l1/human", "g/translation_gan/human->anime"):
        assert term in metrics
    assert run.model.is_file() and run.metrics.is_file() and run.samples.is_file()
    assert len(run.history.read_text().splitlines()) == 7  # header + one row per step
    assert list((tmp_path / "logs/train").glob("events.out.tfevents.*"))
    assert len(list((tmp_path / "logs/train/samples").glob("step-*.png"))) == 2
    model, info = load_model(run.model)
    assert info.step == 6 and info.vocabulary and info.config.domains == DOMAINS
    image = torch.zeros(1, 3, 16, 16)
    assert model.translate(image, "human", "anime").shape == (1, 3, 16, 16)


# gp_every 2: the gradient penalty's terms are logged every other step, so the history has empty cells
@pytest.mark.parametrize("settings", [{}, {"loss": {"gp_every": 2}}], ids=["every-term-each-step", "lazy-gp"])
def test_killed_then_resumed_equals_uninterrupted(tmp_path: Path, datasets, settings: dict) -> None:
    straight = paths(tmp_path / "straight", datasets)
    training_loop(tiny(**settings), straight)
    interrupted = paths(tmp_path / "interrupted", datasets)
    training_loop(tiny(**settings), interrupted, stop_after=3)  # "killed" after the checkpoint at step 3
    assert load(interrupted.checkpoint)["step"] == 3 and not interrupted.model.exists()
    training_loop(tiny(**settings), interrupted)
    a, b = load(straight.checkpoint), load(interrupted.checkpoint)
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resuming"

    def losses(run: RunPaths) -> list[list[str]]:  # every column but the timing
        lines = [line.split(",") for line in run.history.read_text().splitlines()]
        keep = [i for i, name in enumerate(lines[0]) if name != "images_per_second"]
        return [[line[i] for i in keep] for line in lines]

    assert losses(straight) == losses(interrupted)
    if settings:
        assert any("" in row for row in losses(straight)[1:])  # the case this parameter is for


def test_a_killed_run_leaves_the_previous_runs_plots_and_resumes_its_own_history(tmp_path: Path, datasets) -> None:
    run = paths(tmp_path, datasets)
    training_loop(tiny(steps=3), run)
    before = run.history.read_bytes(), run.samples.read_bytes()
    training_loop(tiny(steps=9), run, stop_after=4)  # "killed" at step 7, after a checkpoint and a grid at 6
    assert (run.history.read_bytes(), run.samples.read_bytes()) == before
    assert run.working_history.is_file() and run.working_samples.is_file()  # the run's own, beside its checkpoint
    training_loop(tiny(steps=9), run)
    steps = [line.split(",")[0] for line in run.history.read_text().splitlines()[1:]]
    assert steps == [str(step) for step in range(1, 10)]  # rows of the first run, the killed one, the resume
    assert run.samples.read_bytes() == run.working_samples.read_bytes() != before[1]


def test_snapshots_are_model_files_of_the_ema_kept_through_a_kill_and_resume(tmp_path: Path, datasets) -> None:
    run = paths(tmp_path, datasets)
    training_loop(tiny(steps=6, snapshot_every=2), run, stop_after=4)  # "killed" after step 4
    folder = run.checkpoint.with_name("snapshots")
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000002.pt", "step-0000004.pt"]
    training_loop(tiny(steps=6, snapshot_every=2), run)
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000002.pt", "step-0000004.pt", "step-0000006.pt"]
    last, info = load_model(run.snapshot(6))
    final, _ = load_model(run.model)
    assert info.step == 6 and info.faces and info.vocabulary
    for domain, folder in datasets.items():  # the most common tag set of the domain's training faces
        rows = DomainSplit(folder, "train", name=domain, vocabulary=info.vocabulary).tags
        counts = Counter(tuple(info.vocabulary[i] for i in np.flatnonzero(row)) for row in rows)
        assert counts[info.typical_tags[domain]] == max(counts.values()), domain

    def weights(model) -> dict:  # what a model file holds: no discriminators
        return {**model.encoder.state_dict(), **{f"g.{k}": v for k, v in model.generator.state_dict().items()}}

    for name, tensor in weights(final).items():
        assert torch.equal(weights(last)[name], tensor), f"{name}: the last snapshot is not the published model"
    early, _ = load_model(run.snapshot(2))
    assert any(not torch.equal(weights(early)[name], t) for name, t in weights(final).items())
    assert not tiny(snapshot_every=0).snapshot_every  # off by default in the demo and the real profile


def test_a_checkpoint_with_other_network_settings_is_refused_by_name(tmp_path: Path, datasets) -> None:
    run = paths(tmp_path, datasets)
    training_loop(tiny(steps=3), run)
    with pytest.raises(CheckpointError, match=r"last.pt: made with other network settings \(channel_max: 16 .* 32 now"):
        training_loop(tiny(steps=6, network={"channel_max": 32}), run)
    run.checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        training_loop(tiny(steps=6), run)


def test_resuming_from_a_checkpoint_that_names_code_refuses_it_without_running_it(tmp_path: Path, datasets) -> None:
    run = paths(tmp_path, datasets)
    training_loop(tiny(steps=3), run)
    assert load(run.checkpoint)["step"] == 3  # a real checkpoint (optimisers, EMA, random state) loads safely
    model = run.model.read_bytes()
    booby_trap(run.checkpoint, tmp_path / "code-ran")
    with pytest.raises(CheckpointError, match=r"last\.pt: refused, not loaded: .*open"):
        training_loop(tiny(steps=6), run)
    assert not (tmp_path / "code-ran").exists() and run.model.read_bytes() == model


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path: Path, datasets) -> None:
    run = paths(tmp_path, datasets)
    training_loop(tiny(steps=3), run)
    saved = run.checkpoint.read_bytes()
    with pytest.raises(NonFiniteLoss, match=r"step [345]: the (generator|discriminator) loss is (nan|inf)"):
        training_loop(tiny(steps=6, lr_g=1e30, lr_d=1e30), run)  # Adam steps of 1e30 overflow float32
    assert run.checkpoint.read_bytes() == saved


def test_reconstruction_loss_falls_on_a_handful_of_images(tmp_path: Path) -> None:
    """The overfit check: four images per domain, only the reconstruction term: L1 falls to a third
    within 80 steps."""
    handful = {d: write_dataset(tmp_path / d, domain=d, image_size=16, counts={"train": 4}) for d in DOMAINS}
    run = paths(tmp_path / "run", handful)
    only_recon = {"recon_gan": 0.0, "translation_gan": 0.0, "semantic": 0.0, "gradient_penalty": "none"}
    train = tiny(steps=80, log_every=1, sample_every=1000, checkpoint_every=1000, lr_g=0.003, hflip=False,
                 loss=only_recon)  # fmt: skip
    training_loop(train, run)
    lines = run.history.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("g/recon_l1/human")
    values = [float(line.split(",")[column]) for line in lines[1:]]
    assert min(values[-5:]) < values[0] / 3, (values[0], values[-5:])


def test_growth_schedule() -> None:
    train = tiny(resolution=32, growing={"enabled": True, "start_resolution": 8, "phase_steps": 10, "fade_steps": 4})
    assert growth(train, 0) == {"resolution": 8, "alpha": 1.0}
    assert growth(train, 10) == {"resolution": 16, "alpha": 0.0}
    assert growth(train, 12) == {"resolution": 16, "alpha": 0.5}
    assert growth(train, 25) == {"resolution": 32, "alpha": 1.0}
    assert growth(train, 500) == {"resolution": 32, "alpha": 1.0}
    assert growth(tiny(), 3) == {}


def test_progressive_growing_trains(tmp_path: Path, datasets) -> None:
    run = paths(tmp_path, datasets)
    train = tiny(steps=6, growing={"enabled": True, "start_resolution": 8, "phase_steps": 3, "fade_steps": 2})
    metrics = training_loop(train, run)
    assert metrics["step"] == 6 and "alpha" in run.history.read_text().splitlines()[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, world: int, port: int, train: TrainParams, datasets: dict, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        metrics = training_loop(train, paths(Path(out) / f"rank{rank}", datasets))
        (Path(out) / f"digest{rank}").write_text(metrics["weights_sha256"])
    finally:
        dist.destroy_process_group()


def test_two_processes_with_gloo_train_in_lockstep(tmp_path: Path, datasets) -> None:
    """torch.distributed on CPU: both ranks end with the same weights (gradients averaged), and only rank
    0 writes files."""
    import torch.multiprocessing as mp

    train = tiny(steps=3)
    mp.spawn(_rank, args=(2, _free_port(), train, datasets, str(tmp_path)), nprocs=2, join=True)
    rank0 = tmp_path / "rank0"
    assert (rank0 / "models/twingan.pt").is_file() and not (tmp_path / "rank1/models").exists()
    saved = load(rank0 / "models/checkpoints/last.pt")
    assert saved["step"] == 3
    assert all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())
    assert (tmp_path / "digest0").read_text() == (tmp_path / "digest1").read_text()  # gradients were averaged


def test_the_train_stage_names_a_wrong_domain_or_a_missing_dataset(tmp_path: Path) -> None:
    from core.params import ParamsError, load_params
    from flows.train import run_paths
    from tests.builders.params import write_params

    source = {"source": {"kind": "folder", "path": "x"}}
    loaded = load_params(
        write_params(tmp_path, {"human": source, "anime": source}, train={"domains": ["human", "dog"]})
    )
    with pytest.raises(ParamsError, match=r"train.domains: 'dog' is not a domain .*\(domains: human, anime\)"):
        run_paths(loaded)
    loaded = load_params(write_params(tmp_path, {"human": source, "anime": source}))
    with pytest.raises(ParamsError, match=r"train.domains: no dataset for 'human' .*dvc repro dataset@human"):
        run_paths(loaded)
    loaded = load_params(write_params(tmp_path, {"human": source}))
    with pytest.raises(ParamsError, match="at least two domains"):
        run_paths(loaded)


def test_a_run_conditioned_on_reference_features_records_them_and_how_faces_were_cropped(tmp_path: Path) -> None:
    spec = {"detector": "animeface", "detector_options": {}, "align": {"method": "box", "size": 16, "margin": 1.5}}
    roots = {
        "human": write_dataset(tmp_path / "human", domain="human", counts={"train": 8, "val": 2}),
        "anime": write_dataset(tmp_path / "anime", domain="anime", counts={"train": 8, "val": 2}, faces=spec,
                               features=lambda i: np.linspace(-1, 1, 16, dtype=np.float16) * (i + 1)),
    }  # fmt: skip
    run = paths(tmp_path / "run", roots)
    training_loop(tiny(steps=2, network={"condition_on_features": True, "feature_embed_dim": 4}), run)
    model, info = load_model(run.model)
    assert info.config.feature_dim == 4096 and info.config.condition_dim == len(info.vocabulary) + 4096
    assert info.faces_of("anime") == spec
    with pytest.raises(CheckpointError, match="does not record how human faces were detected"):
        info.faces_of("human")
    moved = [p for p in model.generator.feature_embed.parameters()]
    assert moved and all(torch.isfinite(p).all() for p in moved)


def test_a_model_file_written_by_6459e69_loads_and_translates_as_it_did() -> None:
    """tests/builders/models.py tiny_model() as of 6459e69, and its translation of a fixed input then."""
    model, info = load_model(LEGACY / "model.pt")
    assert info.step == 1 and info.vocabulary == MODEL_VOCABULARY and info.config.domains == DOMAINS
    assert (info.config.resolution, info.config.channel_base, info.config.channel_max) == (16, 64, 16)
    image = torch.linspace(-1, 1, 3 * 16 * 16).reshape(1, 3, 16, 16)
    tags = condition_vector(info.config, info.vocabulary, 1, tags=["green hair", "smile"])
    with torch.no_grad():
        translation = model.translate(image, "human", "anime", tags)
    torch.testing.assert_close(translation, torch.load(LEGACY / "translation.pt", weights_only=True))


def test_a_checkpoint_written_by_6459e69_resumes(tmp_path: Path, datasets) -> None:
    """The step-3 checkpoint of a 6-step run of these settings and datasets, killed, as 6459e69 wrote it:
    it passes the compatibility checks, and the resumed run ends where an uninterrupted one does."""
    # 8 px and 8 channels: a 270 KB checkpoint; the rates were the default then
    settings = {"resolution": 8, "network": {"channel_max": 8}, "lr_g": 0.0002, "lr_d": 0.0002}
    resumed = paths(tmp_path / "resumed", datasets)
    resumed.checkpoint.parent.mkdir(parents=True)
    shutil.copyfile(LEGACY / "checkpoint.pt", resumed.checkpoint)
    assert load(resumed.checkpoint)["step"] == 3
    training_loop(tiny(**settings), resumed)
    straight = paths(tmp_path / "straight", datasets)
    training_loop(tiny(**settings), straight)
    a, b = load(straight.checkpoint), load(resumed.checkpoint)
    assert a["step"] == b["step"] == 6 and a["network"] == b["network"] and a["vocabulary"] == b["vocabulary"]
    # The optimisers went on from the checkpoint's state (a fresh start would count 3 steps, not 6) ...
    assert {int(state["step"]) for opt in ("opt_g", "opt_d") for state in b[opt]["state"].values()} == {6}
    # ... and the weights are the uninterrupted run's. Not bit for bit: the file's first three steps were taken
    # on an AVX-512 CPU, and an AVX2 one rounds them up to 2 ulp apart (5e-7 on weights of 2.6); a fresh
    # optimiser or a lost step moves them by the learning rate, 2e-4. Resuming is bit for bit on one machine:
    # test_killed_then_resumed_equals_uninterrupted.
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(
                b[key][name], tensor, rtol=1e-5, atol=1e-6,
                msg=lambda m, k=f"{key}.{name}": f"{k} differs after resuming the 6459e69 checkpoint: {m}",
            )  # fmt: skip
    rows = [line.split(",")[0] for line in resumed.history.read_text().splitlines()[1:]]
    assert rows == ["4", "5", "6"]  # the legacy run's own rows were not shipped with it
