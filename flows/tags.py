"""The `tags@<domain>` stage: named tags for every face of `data/faces/<domain>/`.

Writes `data/tags/<domain>/tags.parquet` (schema `tags/1`: one row per face, sorted by face id, with the
tagger, its version, the vocabulary's named tags, measured colours, illust2vec probabilities and features
where that tagger runs), `metrics/tags/<domain>.json` (how many faces carry each tag) and
`plots/tags/<domain>.json` (the same counts as a bar chart for `dvc plots show`).

Crops are read shard by shard (each shard once), and tagged in batches of `tags.batch_size` on a thread
pool; illust2vec runs its batches one after another on its device, since a torch model already uses
every core (or the GPU) for one batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from core.atomic import write_json_atomic
from core.environment import stage_flow_settings
from core.executor import make_task_runner, map_bounded
from core.layout import Layout
from core.params import LoadedParams, ParamsError, load_params
from core.parquet import read_table, table_from_rows, write_table
from core.schemas import FACES, RAW_MANIFEST, TAGS
from preprocessing.faces.shards import crops_by_shard
from preprocessing.tags.taggers import FaceToTag, Tagger, TaggerError, make_tagger, parse_attributes
from preprocessing.tags.vocabulary import Vocabulary

log = logging.getLogger("twingan.tags")


def build_tagger(loaded: LoadedParams, domain: str) -> Tagger:
    """The domain's tagger, with option errors named by their params key."""
    spec = loaded.domain(domain).tagger
    vocabulary = Vocabulary.from_params(loaded.params.tags)
    options = {key: _resolve(loaded, key, value) for key, value in spec.options.items()}
    try:
        return make_tagger(spec.name, options, vocabulary, loaded.params.tags)
    except TaggerError as error:
        raise ParamsError(f"domains.{domain}.tagger.{error}") from None
    except (FileNotFoundError, ValueError) as error:
        raise ParamsError(f"domains.{domain}.tagger: {error}") from None


def _resolve(loaded: LoadedParams, key: str, value: Any) -> Any:
    """File options are relative to the project root, like every path in params."""
    if key in ("tag_model", "feature_model", "tag_list", "mean") and isinstance(value, str):
        return str(loaded.resolve(Path(value)))
    return value


def _faces_to_tag(loaded: LoadedParams, domain: str, needs_source: bool) -> Iterator[list[FaceToTag]]:
    """Faces grouped by crop shard, each shard read once, in shard order."""
    folder = Layout(loaded.root).faces(domain)
    faces = read_table(folder / "faces.parquet", FACES)
    sources: dict[str, Path] = {}
    if needs_source:
        raw = Layout(loaded.root).raw(domain)
        manifest = read_table(raw / "manifest.parquet", RAW_MANIFEST)
        sources = {i: raw / p for i, p in zip(manifest["id"].to_pylist(), manifest["path"].to_pylist(), strict=True)}
    rows = faces.select(["face_id", "image_id", "landmarks", "attributes", "shard", "shard_row"]).to_pylist()
    for shard in crops_by_shard(folder, rows):
        yield [
            FaceToTag(
                face_id=row["face_id"],
                crop=crop,
                attributes=parse_attributes(row["attributes"]),
                landmarks={p["name"]: (p["x"], p["y"]) for p in row["landmarks"]},
                source=sources.get(row["image_id"]),
            )
            for row, crop in shard
        ]


@task(name="tags-batch", cache_policy=NO_CACHE)
def tag_batch(faces: list[FaceToTag], tagger: Tagger) -> list[dict[str, Any]]:
    return tagger.tag(faces)


def tag_counts(rows: list[dict[str, Any]], vocabulary: Vocabulary) -> dict[str, int]:
    counts = Counter(tag for row in rows for tag in row["tags"])
    return {tag: counts.get(tag, 0) for tag in vocabulary.tags}


@flow(name="tags", validate_parameters=False)
def tags_flow(params_file: str, domain: str) -> dict[str, Any]:
    loaded = load_params(params_file)
    settings = loaded.params.tags
    vocabulary = Vocabulary.from_params(settings)
    tagger = build_tagger(loaded, domain)
    started = time.perf_counter()
    total = read_table(Layout(loaded.root).faces(domain) / "faces.parquet", FACES).num_rows
    log.info("tags@%s: %d faces, tagger %s %s", domain, total, tagger.name, tagger.version)

    window = 2 * settings.executor.workers if tagger.concurrent else 1
    task_fn = tag_batch.with_options(retries=settings.executor.task_retries)
    rows: list[dict[str, Any]] = []

    def batches() -> Iterator[list[FaceToTag]]:
        for shard_faces in _faces_to_tag(loaded, domain, tagger.needs_source):
            for start in range(0, len(shard_faces), settings.batch_size):
                yield shard_faces[start : start + settings.batch_size]

    with tqdm(total=total, desc=f"tags@{domain}", unit="face", disable=None) as bar:
        pending_faces: list[list[FaceToTag]] = []

        def submit(batch: list[FaceToTag]) -> Any:
            pending_faces.append(batch)
            return task_fn.submit(batch, tagger)

        for results in map_bounded(submit, batches(), window=window):
            batch = pending_faces.pop(0)
            for face, row in zip(batch, results, strict=True):
                rows.append({"face_id": face.face_id, "domain": domain, "tagger": tagger.name,
                             "tagger_version": tagger.version, **row})  # fmt: skip
            bar.update(len(batch))
    rows.sort(key=lambda row: row["face_id"])

    recorded = {
        "domain": domain,
        "tagger": loaded.domain(domain).tagger.model_dump(),
        "vocabulary": list(vocabulary.tags),
        "thresholds": settings.thresholds.model_dump(),
    }
    out = Layout(loaded.root).tags(domain) / "tags.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(table_from_rows(rows, TAGS), out, TAGS, recorded)

    counts = tag_counts(rows, vocabulary)
    untagged = sum(1 for row in rows if not row["tags"])
    details = Counter(row["detail"] for row in rows if row["detail"])
    metrics = {
        "faces": len(rows),
        "tagger": tagger.name,
        "tagged": len(rows) - untagged,
        "untagged": untagged,
        "untagged_reasons": dict(sorted(details.items())),
        "tags": {tag: count for tag, count in counts.items() if count},
    }
    write_json_atomic(Layout(loaded.root).metrics("tags", domain), metrics)
    write_json_atomic(
        Layout(loaded.root).plots("tags") / f"{domain}.json",
        [{"tag": tag, "faces": count} for tag, count in counts.items()],
    )
    log.info("tags@%s: %d faces, %d tagged, %d without tags (%s), in %.1f s -> %s", domain, len(rows),
             len(rows) - untagged, untagged, dict(details) or "none", time.perf_counter() - started,
             out.relative_to(loaded.root))  # fmt: skip
    return metrics


def check_tags(loaded: LoadedParams, domain: str) -> None:
    """What the stage refuses before any work (also `twingan check`): tagger options, missing weights."""
    build_tagger(loaded, domain)
    if loaded.params.tags.executor.kind != "thread":
        raise ParamsError("tags.executor.kind: only thread is supported (a tagger holds a loaded model)")


def run_tags(loaded: LoadedParams, domain: str) -> dict[str, Any]:
    check_tags(loaded, domain)  # in one line, before Prefect starts
    runner = make_task_runner(loaded.params.tags.executor)
    with stage_flow_settings():
        return tags_flow.with_options(task_runner=runner)(str(loaded.file), domain)
