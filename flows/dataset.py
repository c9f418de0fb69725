"""The `dataset@<domain>` stage: faces and tags joined into what training reads.

Writes `data/datasets/<domain>/` (built in `<folder>.partial/`, renamed into place when complete):
  manifest.parquet              one row per kept face: split, pixel shard and row, tags, sampling weight,
                                lineage (raw image, source, member, box) and quality (schema dataset_manifest/2)
  pixels-<split>-NNNNN.parquet  decoded RGB at dataset.image_size, in row groups of dataset.row_group_rows,
                                the loader's unit of work (schema dataset_pixels/1)
  duplicates.parquet            each near-duplicate removed and the face kept in its place
  rejects.parquet               faces the quality filters dropped, with the measure and the threshold
and `metrics/dataset/<domain>.json` (counts per split, filters, duplicates, tag histograms),
`plots/dataset/<domain>/tags-<split>.json` (faces per tag) and a contact sheet per split.

The steps, in order: read_inputs, measure_all, filter_quality, dedupe, assign_splits, write_pixels,
write_tables (manifest_rows and the tables) and report; the work of each is in preprocessing/dataset/.
Crops are decoded twice, shard by shard (measures, then pixels of the kept faces), so memory holds one
shard at a time whatever the size of the domain. Faces are processed in face-id order, which is a
SHA-256 order, unrelated to content: the pixel shards come out shuffled for free.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from core.atomic import staged_dir, write_json_atomic
from core.environment import stage_flow_settings
from core.executor import chunked, make_task_runner, map_bounded
from core.layout import Layout
from core.params import DatasetParams, ExecutorParams, LoadedParams, load_params
from core.parquet import SchemaMismatchError, read_params, read_table, table_from_rows, write_table
from core.schemas import DATASET_DUPLICATES, DATASET_MANIFEST, DATASET_REJECTS, FACES, RAW_MANIFEST
from preprocessing.dataset.dedupe import remove_duplicate_faces
from preprocessing.dataset.manifest import dataset_statistics, manifest_metadata, manifest_rows, manifest_table
from preprocessing.dataset.quality import (
    CropQuality,
    box_aspect,
    decode_crop,
    face_side_in_source,
    measure,
    quality_reject,
)
from preprocessing.dataset.shards import PixelShardWriter, stored_pixels
from preprocessing.dataset.splits import assign_split, split_key
from preprocessing.faces.shards import crops_by_shard
from preprocessing.plots import contact_sheet
from preprocessing.tags.table import read_tags

log = logging.getLogger("twingan.dataset")

Face = dict[str, Any]  # a faces.parquet row, with its `source_size` and `aspect` added by read_inputs
Crops = list[tuple[str, bytes]]  # (face id, encoded crop)


@dataclass(frozen=True)
class Inputs:
    """What the stage reads: the domain's faces (in face-id order), their tags and the raw images."""

    faces: list[Face]
    tags_table: pa.Table
    vocabulary: list[str]
    tags: dict[str, list[str]]  # face id -> tags
    tag_row: dict[str, int]  # face id -> row of the tags table
    raw: dict[str, dict[str, Any]]  # image id -> raw manifest row


def _crops_by_shard(folder: Path, faces: list[Face]) -> Iterator[Crops]:
    for shard in crops_by_shard(folder, faces):
        yield [(face["face_id"], crop) for face, crop in shard]


def _chunks(folder: Path, faces: list[Face], size: int) -> Iterator[Crops]:
    for shard_crops in _crops_by_shard(folder, faces):
        yield from chunked(shard_crops, size)


@task(name="dataset-measure", cache_policy=NO_CACHE)
def measure_chunk(crops: Crops) -> list[tuple[str, CropQuality | str]]:
    """Quality of each crop, or the reason it could not be decoded (a counted reject, not a crash)."""
    out: list[tuple[str, CropQuality | str]] = []
    for face_id, data in crops:
        try:
            out.append((face_id, measure(decode_crop(data))))
        except (OSError, ValueError) as error:
            out.append((face_id, f"undecodable crop: {error}"))
    return out


@task(name="dataset-pixels", cache_policy=NO_CACHE)
def pixels_chunk(crops: Crops, size: int) -> list[tuple[str, bytes]]:
    return [(face_id, stored_pixels(data, size)) for face_id, data in crops]


def read_inputs(layout: Layout, domain: str) -> Inputs:
    """faces.parquet, tags.parquet and the raw manifest of the domain; tags older than the faces are an error."""
    faces = sorted(read_table(layout.faces(domain) / "faces.parquet", FACES).to_pylist(), key=lambda f: f["face_id"])
    tags_path = layout.tags(domain) / "tags.parquet"
    tags_table, vocabulary = read_tags(tags_path)
    tags = {row["face_id"]: row["tags"] for row in tags_table.select(["face_id", "tags"]).to_pylist()}
    tag_row = {face_id: i for i, face_id in enumerate(tags_table.column("face_id").to_pylist())}
    missing = [face["face_id"] for face in faces if face["face_id"] not in tags]
    if missing:
        raise SchemaMismatchError(f"{tags_path}: no tags for {len(missing)} faces (e.g. {missing[0]}): the tags are "
                                  "older than the faces; re-run the tags stage (dvc repro)")  # fmt: skip
    raw = {row["id"]: row for row in read_table(layout.raw(domain) / "manifest.parquet", RAW_MANIFEST).to_pylist()}
    for face in faces:
        face["source_size"] = face_side_in_source(face["transform"], face["crop_size"])
        face["aspect"] = box_aspect(face["box"])
    log.info("dataset@%s: %d faces, %d tagged", domain, len(faces), sum(1 for f in faces if tags[f["face_id"]]))
    return Inputs(faces, tags_table, vocabulary, tags, tag_row, raw)


def measure_all(
    faces_dir: Path, faces: list[Face], executor: ExecutorParams, domain: str
) -> tuple[dict[str, CropQuality], list[dict[str, Any]]]:
    """Pass 1: the quality of every crop (face id -> measures), and a rejects row per undecodable crop."""
    quality: dict[str, CropQuality] = {}
    rejects: list[dict[str, Any]] = []
    measure_task = measure_chunk.with_options(retries=executor.task_retries)
    chunks = _chunks(faces_dir, faces, executor.chunk_size)
    with tqdm(total=len(faces), desc=f"dataset@{domain} measure", unit="face", disable=None) as bar:
        for results in map_bounded(measure_task.submit, chunks, window=2 * executor.workers):
            for face_id, result in results:
                if isinstance(result, str):
                    rejects.append({"face_id": face_id, "reason": "undecodable", "value": 0.0, "threshold": 0.0})
                else:
                    quality[face_id] = result
            bar.update(len(results))
    return quality, rejects


def filter_quality(
    faces: list[Face], quality: dict[str, CropQuality], settings: DatasetParams
) -> tuple[list[Face], list[dict[str, Any]]]:
    """The measured faces that pass every filter (in input order), and a rejects row for each that fails one."""
    candidates, rejects = [], []
    for face in faces:
        if face["face_id"] not in quality:
            continue
        reject = quality_reject(face, quality[face["face_id"]], settings)
        if reject:
            rejects.append(reject)
        else:
            candidates.append(face)
    return candidates, rejects


def dedupe(
    candidates: list[Face], quality: dict[str, CropQuality], settings: DatasetParams
) -> tuple[list[Face], list[dict[str, Any]]]:
    """Near duplicates removed over the whole domain before splitting, so a duplicate cannot leak across
    splits: the faces kept, and a duplicates row per face removed."""
    if settings.near_duplicate_distance < 0 or not candidates:
        return candidates, []
    return remove_duplicate_faces(
        candidates, quality, settings.near_duplicate_distance, settings.near_duplicate_colour_distance
    )


def assign_splits(
    kept: list[Face], raw: dict[str, dict[str, Any]], key_kind: str, settings: DatasetParams
) -> dict[str, str]:
    """Face id -> split, by a stable hash of the face's `key_kind` key (image, source or source folder)."""
    split_of = {}
    for face in kept:
        image = raw[face["image_id"]]
        key = split_key(key_kind, face["image_id"], image["source_uri"], image["member"])
        split_of[face["face_id"]] = assign_split(key, settings.splits, settings.split_salt)
    return split_of


def write_pixels(
    staging: Path, faces_dir: Path, kept_faces: list[Face], split_of: dict[str, str], settings: DatasetParams,
    recorded: dict[str, Any], domain: str,
) -> dict[str, tuple[str, int]]:  # fmt: skip
    """Pass 2: the pixels of the kept faces into the pixel shards of their split, in face-id order; returns
    where each face went (face id -> shard, row)."""
    executor = settings.executor
    writers = {split: PixelShardWriter(staging, split, settings, recorded) for split in settings.splits}
    pixels_task = pixels_chunk.with_options(retries=executor.task_retries)
    chunks = _chunks(faces_dir, kept_faces, executor.chunk_size)
    with tqdm(total=len(kept_faces), desc=f"dataset@{domain} pixels", unit="face", disable=None) as bar:
        for results in map_bounded(
            lambda c: pixels_task.submit(c, settings.image_size), chunks, window=2 * executor.workers
        ):
            for face_id, pixels in results:
                writers[split_of[face_id]].add(face_id, pixels)
            bar.update(len(results))
    for writer in writers.values():
        writer.flush()
    return {face_id: place for writer in writers.values() for face_id, place in writer.location.items()}


def write_tables(
    staging: Path, rows: list[dict[str, Any]], inputs: Inputs, manifest_meta: dict[str, Any],
    duplicates: list[dict[str, Any]], rejects: list[dict[str, Any]], recorded: dict[str, Any],
) -> None:  # fmt: skip
    """manifest.parquet, duplicates.parquet and rejects.parquet (sorted by face id) into the staging folder."""
    manifest = manifest_table(rows, inputs.tags_table, inputs.tag_row)
    write_table(manifest, staging / "manifest.parquet", DATASET_MANIFEST, manifest_meta)
    write_table(table_from_rows(duplicates, DATASET_DUPLICATES), staging / "duplicates.parquet", DATASET_DUPLICATES,
                recorded)  # fmt: skip
    rejects.sort(key=lambda r: r["face_id"])
    write_table(table_from_rows(rejects, DATASET_REJECTS), staging / "rejects.parquet", DATASET_REJECTS, recorded)


def report(
    layout: Layout, domain: str, metrics: dict[str, Any], vocabulary: list[str], kept_faces: list[Face],
    split_of: dict[str, str], settings: DatasetParams,
) -> None:  # fmt: skip
    """metrics/dataset/<domain>.json, and per split the tag histogram plot and the contact sheet."""
    write_json_atomic(layout.metrics("dataset", domain), metrics)
    for split in settings.splits:  # one bar chart per split: every vocabulary tag, zeros included
        histogram = metrics["tags"].get(split, {})
        plot_rows = [{"tag": tag, "faces": histogram.get(tag, 0)} for tag in vocabulary]
        write_json_atomic(layout.plots("dataset", domain) / f"tags-{split}.json", plot_rows)
    _contact_sheets(layout.faces(domain), kept_faces, split_of, settings, layout.plots("dataset", domain))


@flow(name="dataset", validate_parameters=False)
def dataset_flow(params_file: str, domain: str) -> dict[str, Any]:
    loaded = load_params(params_file)
    settings, layout = loaded.params.dataset, Layout(loaded.root)
    faces_dir = layout.faces(domain)
    started = time.perf_counter()

    inputs = read_inputs(layout, domain)
    quality, rejects = measure_all(faces_dir, inputs.faces, settings.executor, domain)
    candidates, failed = filter_quality(inputs.faces, quality, settings)
    rejects += failed
    kept, duplicates = dedupe(candidates, quality, settings)
    key_kind = settings.split_key_by_domain.get(domain, settings.split_key)
    split_of = assign_splits(kept, inputs.raw, key_kind, settings)
    kept_faces = [face for face in inputs.faces if face["face_id"] in split_of]

    with staged_dir(layout.dataset(domain)) as staging:
        recorded = {"domain": domain, "image_size": settings.image_size}
        locations = write_pixels(staging, faces_dir, kept_faces, split_of, settings, recorded, domain)
        rows = manifest_rows(kept, domain=domain, settings=settings, split_of=split_of, tags=inputs.tags,
                             raw=inputs.raw, quality=quality, locations=locations)  # fmt: skip
        faces_params = read_params(faces_dir / "faces.parquet")
        manifest_meta = manifest_metadata(recorded, vocabulary=inputs.vocabulary, split_key=key_kind,
                                          faces_params=faces_params, settings=settings)  # fmt: skip
        write_tables(staging, rows, inputs, manifest_meta, duplicates, rejects, recorded)

    metrics = dataset_statistics(rows, rejects, duplicates, len(inputs.faces), inputs.vocabulary)
    report(layout, domain, metrics, inputs.vocabulary, kept_faces, split_of, settings)
    log.info("dataset@%s: %d faces kept (%s), %d near-duplicates removed, rejects %s, in %.1f s", domain, len(rows),
             metrics["splits"], len(duplicates), metrics["rejects"], time.perf_counter() - started)  # fmt: skip
    return metrics


def _contact_sheets(faces_dir: Path, kept_faces: list[Face], split_of: dict[str, str],
                    settings: DatasetParams, out: Path) -> None:  # fmt: skip
    """Up to `contact_sheet` crops per split, a fixed pseudo-random sample (smallest crop SHA-256s)."""
    for split in settings.splits:
        members = sorted((f for f in kept_faces if split_of[f["face_id"]] == split), key=lambda f: f["crop_sha256"])
        sample = members[: settings.contact_sheet]
        crops = dict(pair for chunk in _crops_by_shard(faces_dir, sample) for pair in chunk)
        contact_sheet([crops[f["face_id"]] for f in sample], out / f"{split}.png")


def run_dataset(loaded: LoadedParams, domain: str) -> dict[str, Any]:
    loaded.domain(domain)  # names the domain if it is not in params
    runner = make_task_runner(loaded.params.dataset.executor)
    with stage_flow_settings():
        return dataset_flow.with_options(task_runner=runner)(str(loaded.file), domain)
