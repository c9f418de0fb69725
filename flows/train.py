"""The train stage: params in, `models/twingan.pt` out. Parses options and launches, nothing else.

One process:      twingan train                (what `dvc repro` runs)
Several GPUs:     torchrun --nproc_per_node=8 -m flows.train --params params.yaml
Several nodes:    torchrun --nnodes=2 --node_rank=0 --master_addr=host0 --nproc_per_node=8 -m flows.train ...
torchrun sets RANK, WORLD_SIZE, LOCAL_RANK; each process trains on its own device and its own share of
every batch stream (training/data.py), and gradients are averaged across processes (training/loop.py).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import torch.distributed as dist

from core.params import LoadedParams, ParamsError, load_params
from training.loop import RunPaths, training_loop

log = logging.getLogger("twingan.train")


def train_domains(loaded: LoadedParams) -> tuple[str, ...]:
    """train.domains, checked here rather than at load (other stages run whatever train says); also
    `twingan check`."""
    train = loaded.params.train
    domains = tuple(train.domains or loaded.params.domains)
    unknown = [domain for domain in domains if domain not in loaded.params.domains]
    if unknown:
        known = ", ".join(loaded.params.domains)
        raise ParamsError(f"train.domains: {unknown[0]!r} is not a domain of {loaded.file} (domains: {known})")
    if len(domains) < 2:
        raise ParamsError("train.domains: at least two domains are needed to translate between")
    return domains


def run_paths(loaded: LoadedParams) -> RunPaths:
    train = loaded.params.train
    domains = train_domains(loaded)
    root = loaded.root
    datasets = {domain: root / "data" / "datasets" / domain for domain in domains}
    for domain, folder in datasets.items():
        if not (folder / "manifest.parquet").is_file():
            raise ParamsError(f"train.domains: no dataset for {domain!r} at {folder} (run dvc repro dataset@{domain})")
    wants_features = train.network.condition_on_features
    if wants_features and not any(_has_features(folder / "manifest.parquet") for folder in datasets.values()):
        raise ParamsError(
            "train.network.condition_on_features: none of the datasets of train.domains has illust2vec features; "
            "tag a domain with them (domains.<name>.tagger.kind: illust2vec) or set it to false"
        )
    return RunPaths(
        datasets=datasets,
        checkpoint=root / "models" / "checkpoints" / "last.pt",
        model=root / "models" / "twingan.pt",
        metrics=root / "metrics" / "train.json",
        history=root / "plots" / "train" / "losses.csv",
        samples=root / "plots" / "train" / "samples.png",
        tensorboard=root / "logs" / "train",
    )


def _has_features(manifest: Path) -> bool:
    import pyarrow.parquet as pq

    column = pq.read_table(manifest, columns=["features"]).column("features")
    return column.null_count < len(column)


def run_train(loaded: LoadedParams, *, stop_after: int | None = None) -> dict[str, Any]:
    paths = run_paths(loaded)
    started_here = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        import torch

        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        started_here = True
    try:
        return training_loop(loaded.params.train, paths, stop_after=stop_after, profile=loaded.params.profile)
    finally:
        if started_here:
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run_train(load_params(Path(args.params)))


if __name__ == "__main__":
    main()
