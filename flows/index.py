"""The `index` stage: every dataset crop embedded by the trained model, searchable per domain.

Reads `models/twingan.pt` and `data/datasets/<domain>/` for each domain the model was trained on, embeds the
crops of the splits `index.splits` names (inference/embeddings.py: the encoder's latent in the crop's own
domain, L2-normalised), and writes (inference/vector_index.py):
  data/index/<domain>.faiss   exact (IndexFlatIP) or IVF (IndexIVFFlat), by `index.kind`
  data/index/ids.parquet      position -> face id, split, pixel shard and row; the model's encoder digest
built in `data/index.partial/` and renamed into place, and `metrics/index.json`: rows per domain, width,
kind, seconds, recall@k of each IVF index against exact search, and how well the cross-domain neighbours
of a crop agree with those of its translation.

Plain stage code, not a Prefect flow: the work is one model on one device, batch after batch; Prefect
tasks per domain would only contend for the same cores (or GPU) and each hold the model, and its server
would add its start-up time to a short stage. The stage is the wiring: it checks the inputs, runs
inference/vector_index.py's `build_domain_index` for each domain, and writes the ids and the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from core.atomic import staged_dir, write_json_atomic
from core.devices import inference_batch_size, resolve_device
from core.errors import MissingFile
from core.layout import Layout
from core.params import IndexParams, LoadedParams, ParamsError
from core.parquet import read_table, table_from_rows, write_table
from core.schemas import DATASET_MANIFEST, INDEX_IDS
from inference.embeddings import encoder_digest, latent_dim
from inference.vector_index import (
    IDS,
    agreement_sample,
    build_domain_index,
    cross_domain_agreement,
    describe,
    relative_to,
)
from training.data import MANIFEST
from training.model_file import ModelInfo, load_model

log = logging.getLogger("twingan.index")


def run_index(loaded: LoadedParams) -> dict[str, Any]:
    """`twingan index`: the project's model and datasets into data/index/ and metrics/index.json."""
    root = loaded.root
    return build_neighbor_index(
        loaded.params.index,
        model_path=Layout(root).model,
        datasets=Layout(root).datasets,
        out=Layout(root).index,
        metrics_path=Layout(root).metrics("index"),
    )


def _dataset_folders(datasets: Path, domains: Sequence[str], model_path: Path) -> dict[str, Path]:
    """The dataset folder of each domain the model was trained on; a missing one is an error naming it."""
    folders = {domain: datasets / domain for domain in domains}
    for domain, folder in folders.items():
        if not (folder / MANIFEST).is_file():
            raise MissingFile(
                f"{folder / MANIFEST}: no dataset for {domain!r}, which {model_path} was trained on "
                f"(run dvc repro dataset@{domain})"
            )
    return folders


def _splits_to_index(folder: Path, domain: str, settings: IndexParams) -> list[str]:
    """The splits of `index.splits` the dataset has (the others are logged); none of them is an error."""
    table = read_table(folder / MANIFEST, DATASET_MANIFEST).select(["split"])
    present = sorted(pc.unique(table["split"]).to_pylist())
    wanted = [split for split in settings.splits if split in present]
    skipped = [split for split in settings.splits if split not in present]
    if skipped:
        log.info("index %s: no %s rows in %s", domain, " or ".join(skipped), folder / MANIFEST)
    if not wanted:
        raise ParamsError(
            f"index.splits: {folder / MANIFEST} has no rows of {', '.join(settings.splits)} "
            f"(it has {', '.join(present) or 'none'})"
        )
    return wanted


def build_neighbor_index(
    settings: IndexParams, *, model_path: Path, datasets: Path, out: Path, metrics_path: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        device = resolve_device(settings.device)
    except ValueError as error:
        raise ParamsError(f"index.device: {error}") from None
    model, info = load_model(model_path, device)
    digest = encoder_digest(model)
    batch_size = inference_batch_size(settings.batch_size, device, cuda=64, cpu=1)
    log.info("index: %s (step %d, encoder %s) on %s, batches of %d", model_path, info.step, digest[:12], device,
             batch_size)  # fmt: skip
    folders = _dataset_folders(datasets, info.config.domains, model_path)

    with staged_dir(out) as staging:
        ids: list[dict[str, Any]] = []
        built: dict[str, dict[str, Any]] = {}
        samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # domain -> (embeddings, crops) for agreement
        seconds = {"embed": 0.0, "build": 0.0, "recall": 0.0}
        rng = np.random.default_rng(settings.seed)
        for domain, folder in folders.items():
            splits = _splits_to_index(folder, domain, settings)
            done = build_domain_index(model, folder, domain, splits, settings, batch_size=batch_size, out=staging)
            for key, value in done.seconds.items():
                seconds[key] += value
            built[domain] = done.summary
            ids += done.ids
            samples[domain] = agreement_sample(done.vectors, done.ids, datasets, domain, settings.agreement_samples,
                                               rng)  # fmt: skip
            log.info("index %s: %d crops (%s) -> %s", domain, len(done.vectors), done.summary["splits"], done.summary)
            del done

        meta = _ids_metadata(settings, info, digest, latent_dim(model), built, model_path=model_path,
                             datasets=datasets, out=out)  # fmt: skip
        write_table(table_from_rows(ids, INDEX_IDS), staging / IDS, INDEX_IDS, meta)
        tick = time.perf_counter()
        agreement = cross_domain_agreement(model, staging, built, samples, settings.recall_k)
        seconds["agreement"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    metrics = {
        "model": {"step": info.step, "encoder_sha256": digest},
        "dim": latent_dim(model),
        "rows": {domain: summary["rows"] for domain, summary in built.items()},
        "domains": built,
        "cross_domain": agreement,
        "seconds": {key: round(value, 3) for key, value in seconds.items()},
        "device": str(device),
    }
    write_json_atomic(metrics_path, metrics)
    log.info("index: wrote %s (%s) and %s in %.1f s", out, describe(meta), metrics_path, seconds["total"])
    return metrics


def _ids_metadata(
    settings: IndexParams, info: ModelInfo, digest: str, dim: int, built: dict[str, dict[str, Any]], *,
    model_path: Path, datasets: Path, out: Path,
) -> dict[str, Any]:  # fmt: skip
    """ids.parquet's metadata: the model, the width, the metric, each domain's index and the settings; paths
    relative to the index folder, so the files are the same wherever the project is checked out."""
    return {
        "model": {"path": relative_to(model_path, out), "encoder_sha256": digest, "step": info.step,
                  "resolution": info.config.resolution, "domains": list(info.config.domains)},
        "dim": dim,
        "metric": "inner product of unit vectors (cosine similarity)",
        "datasets": relative_to(datasets, out),
        "domains": built,
        "index": settings.model_dump(mode="json"),
    }  # fmt: skip
