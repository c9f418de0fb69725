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

Crops are decoded twice, shard by shard (measures, then pixels of the kept faces), so memory holds one
shard at a time whatever the size of the domain. Faces are processed in face-id order, which is a
SHA-256 order, unrelated to content: the pixel shards come out shuffled for free.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from core.atomic import staged_dir, write_json_atomic
from core.environment import stage_flow_settings
from core.executor import chunked, make_task_runner, map_bounded
from core.layout import Layout
from core.params import DatasetParams, LoadedParams, load_params
from core.parquet import SchemaMismatchError, read_params, read_table, table_from_rows, write_table
from core.schemas import (
    DATASET_DUPLICATES,
    DATASET_MANIFEST,
    DATASET_PIXELS,
    DATASET_REJECTS,
    FACES,
    RAW_MANIFEST,
)
from preprocessing.dataset.balance import balanced_weights, gender_of
from preprocessing.dataset.dedupe import remove_near_duplicates
from preprocessing.dataset.quality import (
    CropQuality,
    box_aspect,
    colour_distance,
    decode_crop,
    face_side_in_source,
    measure,
)
from preprocessing.dataset.splits import assign_split, split_key
from preprocessing.faces.shards import crops_by_shard
from preprocessing.plots import contact_sheet
from preprocessing.tags.table import read_tags

log = logging.getLogger("twingan.dataset")


def _crops_by_shard(folder: Path, faces: list[dict[str, Any]]) -> Iterator[list[tuple[str, bytes]]]:
    for shard in crops_by_shard(folder, faces):
        yield [(face["face_id"], crop) for face, crop in shard]


@task(name="dataset-measure", cache_policy=NO_CACHE)
def measure_chunk(crops: list[tuple[str, bytes]]) -> list[tuple[str, CropQuality | str]]:
    """Quality of each crop, or the reason it could not be decoded (a counted reject, not a crash)."""
    out: list[tuple[str, CropQuality | str]] = []
    for face_id, data in crops:
        try:
            out.append((face_id, measure(decode_crop(data))))
        except (OSError, ValueError) as error:
            out.append((face_id, f"undecodable crop: {error}"))
    return out


@task(name="dataset-pixels", cache_policy=NO_CACHE)
def pixels_chunk(crops: list[tuple[str, bytes]], size: int) -> list[tuple[str, bytes]]:
    import cv2

    out = []
    for face_id, data in crops:
        rgb = decode_crop(data)
        if rgb.shape[:2] != (size, size):
            shrinking = rgb.shape[0] > size
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
        out.append((face_id, np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()))
    return out


class PixelShardWriter:
    """Pixel rows of one split into pixels-<split>-NNNNN.parquet files of `shard_rows` rows."""

    def __init__(self, folder: Path, split: str, settings: DatasetParams, recorded: dict[str, Any]) -> None:
        self.folder, self.split, self.settings, self.recorded = folder, split, settings, recorded
        self.index, self.rows = 0, []
        self.location: dict[str, tuple[str, int]] = {}

    def add(self, face_id: str, pixels: bytes) -> None:
        if len(self.rows) >= self.settings.shard_rows:
            self.flush()
        self.location[face_id] = (self.name, len(self.rows))
        self.rows.append({"face_id": face_id, "pixels": pixels})

    @property
    def name(self) -> str:
        return f"pixels-{self.split}-{self.index:05d}.parquet"

    def flush(self) -> None:
        if self.rows:
            meta = {**self.recorded, "split": self.split}
            table = table_from_rows(self.rows, DATASET_PIXELS)
            write_table(
                table,
                self.folder / self.name,
                DATASET_PIXELS,
                meta,
                row_group_size=self.settings.row_group_rows,
                compression=self.settings.compression,
            )
            self.index += 1
            self.rows = []


def _quality_rejects(face: dict[str, Any], quality: CropQuality, settings: DatasetParams) -> dict[str, Any] | None:
    """The first filter a face fails, as a rejects row; None when it passes them all."""
    checks = (
        ("too_small", face["source_size"], settings.min_source_size, face["source_size"] < settings.min_source_size),
        ("aspect", face["aspect"], settings.max_aspect, face["aspect"] > settings.max_aspect),
        ("blurry", quality.sharpness, settings.min_sharpness, quality.sharpness < settings.min_sharpness),
        ("too_dark", quality.brightness, settings.min_brightness, quality.brightness < settings.min_brightness),
        ("too_bright", quality.brightness, settings.max_brightness, quality.brightness > settings.max_brightness),
    )
    for reason, value, threshold, failed in checks:
        if failed:
            return {"face_id": face["face_id"], "reason": reason, "value": min(float(value), 3.0e38),
                    "threshold": float(threshold)}  # fmt: skip
    return None


@flow(name="dataset", validate_parameters=False)
def dataset_flow(params_file: str, domain: str) -> dict[str, Any]:
    loaded = load_params(params_file)
    settings = loaded.params.dataset
    root = loaded.root
    faces_dir, raw_dir = Layout(root).faces(domain), Layout(root).raw(domain)
    started = time.perf_counter()

    faces = sorted(read_table(faces_dir / "faces.parquet", FACES).to_pylist(), key=lambda f: f["face_id"])
    tags_path = Layout(root).tags(domain) / "tags.parquet"
    tags_table, vocabulary = read_tags(tags_path)
    tags = {row["face_id"]: row["tags"] for row in tags_table.select(["face_id", "tags"]).to_pylist()}
    tag_row = {face_id: i for i, face_id in enumerate(tags_table.column("face_id").to_pylist())}
    missing = [face["face_id"] for face in faces if face["face_id"] not in tags]
    if missing:
        raise SchemaMismatchError(f"{tags_path}: no tags for {len(missing)} faces (e.g. {missing[0]}): the tags are "
                                  "older than the faces; re-run the tags stage (dvc repro)")  # fmt: skip
    raw = {row["id"]: row for row in read_table(raw_dir / "manifest.parquet", RAW_MANIFEST).to_pylist()}
    for face in faces:
        face["source_size"] = face_side_in_source(face["transform"], face["crop_size"])
        face["aspect"] = box_aspect(face["box"])
    log.info("dataset@%s: %d faces, %d tagged", domain, len(faces), sum(1 for f in faces if tags[f["face_id"]]))

    executor = settings.executor
    window = 2 * executor.workers

    def chunks() -> Iterator[list[tuple[str, bytes]]]:
        for shard_crops in _crops_by_shard(faces_dir, faces):
            yield from chunked(shard_crops, executor.chunk_size)

    # Pass 1: measures.
    quality: dict[str, CropQuality] = {}
    rejects: list[dict[str, Any]] = []
    measure_task = measure_chunk.with_options(retries=executor.task_retries)
    with tqdm(total=len(faces), desc=f"dataset@{domain} measure", unit="face", disable=None) as bar:
        for results in map_bounded(measure_task.submit, chunks(), window=window):
            for face_id, result in results:
                if isinstance(result, str):
                    rejects.append({"face_id": face_id, "reason": "undecodable", "value": 0.0, "threshold": 0.0})
                else:
                    quality[face_id] = result
            bar.update(len(results))

    candidates = []
    for face in faces:
        if face["face_id"] not in quality:
            continue
        reject = _quality_rejects(face, quality[face["face_id"]], settings)
        if reject:
            rejects.append(reject)
        else:
            candidates.append(face)

    # Near duplicates, over the whole domain before splitting, so a duplicate cannot leak across splits.
    duplicates: list[dict[str, Any]] = []
    if settings.near_duplicate_distance >= 0 and candidates:
        hashes = [quality[face["face_id"]].phash for face in candidates]

        def preference(index: int) -> tuple:
            face = candidates[index]
            return (-face["source_size"], -quality[face["face_id"]].sharpness, face["face_id"])

        def alike(i: int, j: int) -> bool:
            first, second = quality[candidates[i]["face_id"]], quality[candidates[j]["face_id"]]
            return colour_distance(first, second) <= settings.near_duplicate_colour_distance

        kept_indices, pairs = remove_near_duplicates(hashes, settings.near_duplicate_distance, preference, alike)
        duplicates = [
            {"kept_face_id": candidates[p.kept]["face_id"], "removed_face_id": candidates[p.removed]["face_id"],
             "distance": p.distance}
            for p in pairs
        ]  # fmt: skip
        kept = [candidates[i] for i in kept_indices]
    else:
        kept = candidates

    key_kind = settings.split_key_by_domain.get(domain, settings.split_key)
    for face in kept:
        image = raw[face["image_id"]]
        key = split_key(key_kind, face["image_id"], image["source_uri"], image["member"])
        face["split"] = assign_split(key, settings.splits, settings.split_salt)

    # Pass 2: pixels of the kept faces, per split, in face-id order.
    with staged_dir(Layout(root).dataset(domain)) as staging:
        recorded = {"domain": domain, "image_size": settings.image_size}
        writers = {split: PixelShardWriter(staging, split, settings, recorded) for split in settings.splits}
        split_of = {face["face_id"]: face["split"] for face in kept}
        kept_faces = [face for face in faces if face["face_id"] in split_of]
        pixels_task = pixels_chunk.with_options(retries=executor.task_retries)

        def kept_chunks() -> Iterator[list[tuple[str, bytes]]]:
            for shard_crops in _crops_by_shard(faces_dir, kept_faces):
                yield from chunked(shard_crops, executor.chunk_size)

        with tqdm(total=len(kept_faces), desc=f"dataset@{domain} pixels", unit="face", disable=None) as bar:
            for results in map_bounded(
                lambda c: pixels_task.submit(c, settings.image_size), kept_chunks(), window=window
            ):
                for face_id, pixels in results:
                    writers[split_of[face_id]].add(face_id, pixels)
                bar.update(len(results))
        for writer in writers.values():
            writer.flush()

        rows = []
        for split in settings.splits:
            weights = balanced_weights([tags[f["face_id"]] for f in kept if f["split"] == split], settings.balance,
                                       settings.max_weight)  # fmt: skip
            for face, weight in zip([f for f in kept if f["split"] == split], weights, strict=True):
                image = raw[face["image_id"]]
                shard, row = writers[split].location[face["face_id"]]
                measured = quality[face["face_id"]]
                rows.append({
                    "face_id": face["face_id"], "image_id": face["image_id"], "domain": domain, "split": split,
                    "shard": shard, "shard_row": row, "tags": tags[face["face_id"]], "weight": float(weight),
                    "source_uri": image["source_uri"], "member": image["member"], "raw_path": image["path"],
                    "box": face["box"], "crop_sha256": face["crop_sha256"], "phash": f"{measured.phash:016x}",
                    "sharpness": measured.sharpness, "brightness": measured.brightness,
                    "source_size": face["source_size"],
                })  # fmt: skip
        rows.sort(key=lambda r: r["face_id"])
        # How the crops were made (detector, options, alignment): training copies it into the model file, so
        # inference crops a new photo exactly as the training crops were.
        faces_spec = {k: v for k, v in read_params(faces_dir / "faces.parquet").items()
                      if k in ("detector", "detector_options", "align", "select")}  # fmt: skip
        manifest_meta = {**recorded, "vocabulary": list(vocabulary), "split_key": key_kind, "faces": faces_spec,
                         "dataset": settings.model_dump(mode="json")}  # fmt: skip
        manifest = table_from_rows(rows, DATASET_MANIFEST)
        # Taken column-wise from the tags table: float16 features stay Arrow data (no Python float round trip).
        taken = tags_table.column("features").take(pa.array([tag_row[r["face_id"]] for r in rows], pa.int64()))
        manifest = manifest.set_column(manifest.schema.get_field_index("features"), DATASET_MANIFEST.field("features"),
                                       taken)  # fmt: skip
        write_table(manifest, staging / "manifest.parquet", DATASET_MANIFEST, manifest_meta)
        write_table(table_from_rows(duplicates, DATASET_DUPLICATES), staging / "duplicates.parquet", DATASET_DUPLICATES,
                    recorded)  # fmt: skip
        rejects.sort(key=lambda r: r["face_id"])
        write_table(table_from_rows(rejects, DATASET_REJECTS), staging / "rejects.parquet", DATASET_REJECTS, recorded)

    metrics = _statistics(rows, rejects, duplicates, len(faces), vocabulary)
    write_json_atomic(Layout(root).metrics("dataset", domain), metrics)
    for split in settings.splits:  # one bar chart per split: every vocabulary tag, zeros included
        histogram = metrics["tags"].get(split, {})
        plot_rows = [{"tag": tag, "faces": histogram.get(tag, 0)} for tag in vocabulary]
        write_json_atomic(Layout(root).plots("dataset", domain) / f"tags-{split}.json", plot_rows)
    _contact_sheets(faces_dir, kept_faces, split_of, settings, Layout(root).plots("dataset", domain))
    log.info("dataset@%s: %d faces kept (%s), %d near-duplicates removed, rejects %s, in %.1f s", domain, len(rows),
             metrics["splits"], len(duplicates), metrics["rejects"], time.perf_counter() - started)  # fmt: skip
    return metrics


def _statistics(rows: list[dict[str, Any]], rejects: list[dict[str, Any]], duplicates: list[dict[str, Any]],
                faces: int, vocabulary: list[str]) -> dict[str, Any]:  # fmt: skip
    splits: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        splits.setdefault(row["split"], []).append(row)
    histogram = {split: {tag: count for tag, count in sorted(Counter(t for r in members for t in r["tags"]).items(),
                                                             key=lambda item: vocabulary.index(item[0]))}
                 for split, members in sorted(splits.items())}  # fmt: skip
    genders = {split: dict(sorted(Counter(gender_of(r["tags"]) for r in members).items()))
               for split, members in sorted(splits.items())}  # fmt: skip
    return {
        "faces_in": faces,
        "faces_kept": len(rows),
        "splits": {split: len(members) for split, members in sorted(splits.items())},
        "near_duplicates_removed": len(duplicates),
        "rejects": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        "untagged": sum(1 for r in rows if not r["tags"]),
        "tags": histogram,
        "gender": genders,
    }


def _contact_sheets(faces_dir: Path, kept_faces: list[dict[str, Any]], split_of: dict[str, str],
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
