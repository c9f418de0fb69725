"""The dataset's manifest (`manifest.parquet`, schema dataset_manifest/2): one row per kept face, with its
split, pixel shard and row, tags, sampling weight, lineage and quality; and the statistics of those rows
that `metrics/dataset/<domain>.json` records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from core.params import DatasetParams
from core.parquet import table_from_rows
from core.schemas import DATASET_MANIFEST
from preprocessing.dataset.balance import balanced_weights, gender_of
from preprocessing.dataset.quality import CropQuality

# What of faces.parquet's metadata says how the crops were made (detector, options, alignment).
FACES_SPEC_KEYS = ("detector", "detector_options", "align", "select", "framing")


def manifest_rows(
    kept: Sequence[Mapping[str, Any]],
    *,
    domain: str,
    settings: DatasetParams,
    split_of: Mapping[str, str],
    tags: Mapping[str, list[str]],
    raw: Mapping[str, Mapping[str, Any]],
    quality: Mapping[str, CropQuality],
    locations: Mapping[str, tuple[str, int]],
) -> list[dict[str, Any]]:
    """The manifest's rows (without `features`), sorted by face id. `kept` are faces.parquet rows with their
    `source_size`; `split_of`, `tags`, `quality` and `locations` (pixel shard and row) are by face id and
    `raw` by image id. Sampling weights are balanced per split over `settings.balance`."""
    rows = []
    for split in settings.splits:
        members = [face for face in kept if split_of[face["face_id"]] == split]
        weights = balanced_weights([tags[f["face_id"]] for f in members], settings.balance, settings.max_weight)
        for face, weight in zip(members, weights, strict=True):
            image = raw[face["image_id"]]
            shard, row = locations[face["face_id"]]
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
    return rows


def manifest_table(rows: list[dict[str, Any]], tags_table: pa.Table, tag_row: Mapping[str, int]) -> pa.Table:
    """The manifest table of `rows`, with each face's `features` taken column-wise from the tags table
    (`tag_row`: face id -> row there): float16 features stay Arrow data (no Python float round trip)."""
    manifest = table_from_rows(rows, DATASET_MANIFEST)
    taken = tags_table.column("features").take(pa.array([tag_row[r["face_id"]] for r in rows], pa.int64()))
    return manifest.set_column(manifest.schema.get_field_index("features"), DATASET_MANIFEST.field("features"), taken)


def manifest_metadata(
    recorded: Mapping[str, Any],
    *,
    vocabulary: Sequence[str],
    split_key: str,
    faces_params: Mapping[str, Any],
    settings: DatasetParams,
) -> dict[str, Any]:
    """The manifest's metadata: what every file of the dataset records, the tag vocabulary in order, the split
    key, the dataset settings, and how the crops were made (from faces.parquet's metadata, `faces_params`):
    training copies that into the model file, so inference crops a new photo exactly as the training crops
    were."""
    faces_spec = {k: v for k, v in faces_params.items() if k in FACES_SPEC_KEYS}
    return {**recorded, "vocabulary": list(vocabulary), "split_key": split_key, "faces": faces_spec,
            "dataset": settings.model_dump(mode="json")}  # fmt: skip


def dataset_statistics(
    rows: list[dict[str, Any]],
    rejects: list[dict[str, Any]],
    duplicates: list[dict[str, Any]],
    faces: int,
    vocabulary: list[str],
) -> dict[str, Any]:
    """Counts per split, rejects per reason, near duplicates, untagged faces, and per split the faces of each
    tag (in vocabulary order) and of each gender: `metrics/dataset/<domain>.json`."""
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
