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
would add seconds to a stage that takes seconds on the demo.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch

from core.atomic import staged_dir, write_json_atomic
from core.devices import inference_batch_size, resolve_device
from core.errors import MissingFile
from core.layout import Layout
from core.params import IndexParams, LoadedParams, ParamsError
from core.parquet import read_table, table_from_rows, write_table
from core.schemas import DATASET_MANIFEST, INDEX_IDS
from inference.embeddings import embed_images, embed_split, encoder_digest, latent_dim
from inference.vector_index import (
    IDS,
    build_index,
    choose_kind,
    describe,
    ids_rows,
    index_file,
    read_crops,
    recall_at_k,
    relative_to,
    write_index,
)
from training.data import MANIFEST, DomainSplit, to_images
from training.model_file import load_model
from training.networks import TwinGAN

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


def _splits_present(folder: Path) -> list[str]:
    table = read_table(folder / MANIFEST, DATASET_MANIFEST).select(["split"])
    return sorted(pc.unique(table["split"]).to_pylist())


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
    folders = {domain: datasets / domain for domain in info.config.domains}
    for domain, folder in folders.items():
        if not (folder / MANIFEST).is_file():
            raise MissingFile(
                f"{folder / MANIFEST}: no dataset for {domain!r}, which {model_path} was trained on "
                f"(run dvc repro dataset@{domain})"
            )

    with staged_dir(out) as staging:
        ids: list[dict[str, Any]] = []
        built: dict[str, dict[str, Any]] = {}
        samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # domain -> (embeddings, crops) for agreement
        seconds = {"embed": 0.0, "build": 0.0, "recall": 0.0}
        rng = np.random.default_rng(settings.seed)
        for domain, folder in folders.items():
            present = _splits_present(folder)
            wanted = [split for split in settings.splits if split in present]
            skipped = [split for split in settings.splits if split not in present]
            if skipped:
                log.info("index %s: no %s rows in %s", domain, " or ".join(skipped), folder / MANIFEST)
            if not wanted:
                raise ParamsError(
                    f"index.splits: {folder / MANIFEST} has no rows of {', '.join(settings.splits)} "
                    f"(it has {', '.join(present) or 'none'})"
                )
            tick = time.perf_counter()
            parts, vectors_of = [], []
            for split in wanted:
                part = DomainSplit(folder, split, name=domain)
                parts.append(part)
                vectors_of.append(embed_split(model, part, domain, batch_size=batch_size))
            vectors = np.concatenate(vectors_of) if len(vectors_of) > 1 else vectors_of[0]
            seconds["embed"] += time.perf_counter() - tick

            tick = time.perf_counter()
            kind = choose_kind(settings.kind, len(vectors), settings.ivf_from_rows)
            index, summary = build_index(vectors, kind, nlist=settings.nlist, nprobe=settings.nprobe,
                                         train_per_list=settings.train_per_list, seed=settings.seed)  # fmt: skip
            write_index(index, staging / index_file(domain))
            seconds["build"] += time.perf_counter() - tick
            summary.update(file=index_file(domain), splits={p.split: len(p) for p in parts})
            if kind == "ivf":
                tick = time.perf_counter()
                recall = recall_at_k(index, vectors, settings.recall_k, settings.recall_queries, settings.seed)
                summary[f"recall_at_{settings.recall_k}"] = None if recall is None else round(recall, 4)
                seconds["recall"] += time.perf_counter() - tick
            built[domain] = summary
            position = 0
            for part in parts:
                places = [part.groups[g] for g in part.group.tolist()]
                shards = [group.shard.name for group in places]
                shard_rows = [group.first_row + o for group, o in zip(places, part.offset.tolist(), strict=True)]
                ids += ids_rows(domain, part.face_ids, [part.split] * len(part), shards, shard_rows, start=position)
                position += len(part)
            samples[domain] = _agreement_sample(vectors, ids, domain, datasets, settings.agreement_samples, rng)
            log.info("index %s: %d crops (%s) -> %s", domain, len(vectors), summary["splits"], summary)
            del index, vectors, vectors_of

        meta = {  # paths relative to the index folder: the same files wherever the project is checked out
            "model": {"path": relative_to(model_path, out), "encoder_sha256": digest, "step": info.step,
                      "resolution": info.config.resolution, "domains": list(info.config.domains)},
            "dim": latent_dim(model),
            "metric": "inner product of unit vectors (cosine similarity)",
            "datasets": relative_to(datasets, out),
            "domains": built,
            "index": settings.model_dump(mode="json"),
        }  # fmt: skip
        write_table(table_from_rows(ids, INDEX_IDS), staging / IDS, INDEX_IDS, meta)
        tick = time.perf_counter()
        agreement = _cross_domain_agreement(model, staging, built, samples, settings.recall_k)
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


def _agreement_sample(
    vectors: np.ndarray, ids: list[dict[str, Any]], domain: str, datasets: Path, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of the domain's indexed crops: their embeddings and pixels."""
    mine = [row for row in ids if row["domain"] == domain]
    pick = np.sort(rng.choice(len(mine), size=min(count, len(mine)), replace=False))
    places = [(mine[i]["shard"], mine[i]["shard_row"], mine[i]["face_id"]) for i in pick.tolist()]
    return vectors[pick].copy(), read_crops(datasets, domain, places)


@torch.inference_mode()
def _cross_domain_agreement(
    model: TwinGAN,
    staging: Path,
    built: dict[str, dict[str, Any]],
    samples: dict[str, tuple[np.ndarray, np.ndarray]],
    k: int,
) -> dict[str, dict[str, float | int]]:
    """For each ordered pair A -> B, on a sample of A's crops x:
    - cosine: mean similarity of x's embedding (encoded as A) and of its translation G_B(x) (encoded as B);
      the semantic loss trains this towards 1;
    - overlap_at_k: mean share of B's k nearest crops that searching with x and searching with G_B(x) have
      in common: 1 when a cross-domain search finds what a search with the translation finds;
    - chance: the overlap two random sets of k of B's crops would have (k / rows of B), for comparison.
    """
    import faiss

    out: dict[str, dict[str, float | int]] = {}
    device = next(model.parameters()).device
    for target in built:
        index = faiss.read_index(str(staging / built[target]["file"]))
        kk = min(k, index.ntotal)
        for source, (queries, crops) in samples.items():
            if source == target or not len(queries):
                continue
            images = to_images(crops, model.config.resolution).contiguous().to(device)
            translated = model.translate(images, source, target).clamp(-1, 1)
            translated_queries = embed_images(model, translated, target)
            direct = index.search(np.ascontiguousarray(queries), kk)[1]
            via = index.search(translated_queries, kk)[1]
            overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / kk for a, b in zip(direct, via, strict=True)])
            out[f"{source}->{target}"] = {
                "samples": len(queries),
                "k": kk,
                "cosine": round(float(np.mean(np.sum(queries * translated_queries, axis=1))), 4),
                "overlap_at_k": round(float(overlap), 4),
                "chance": round(kk / index.ntotal, 4),
            }
    return out
