"""The `faces@<domain>` stage: every image of `data/raw/<domain>/` into aligned face crops.

Writes `data/faces/<domain>/` (built in `<folder>.partial/`, renamed into place when complete):
  crops-00000.parquet, ...   the encoded crops (schema `crops/1`), each shard at most faces.shard_max_bytes
  faces.parquet              one row per kept face: box, score, landmarks, the 2x3 transform, detector and
                             version, crop sha256, shard and row (schema `faces/1`)
  rejects.parquet            images or faces not kept, with the reason (schema `face_rejects/1`)
and `metrics/faces/<domain>.json`, `plots/faces/<domain>.png` (a contact sheet).

Images go to the workers in chunks of `chunk_size` in id order, and results come back in that order
whatever the number of workers, so they stream into the shard writer and give the same bytes for 1 or N
workers, without the crops of the whole domain ever being in memory.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from core.atomic import staged_dir, write_json_atomic
from core.environment import stage_flow_settings
from core.executor import chunked, make_task_runner, map_bounded, run_on, worker_pool
from core.layout import Layout
from core.params import LoadedParams, ParamsError, load_params
from core.parquet import read_table, table_from_rows, write_table
from core.schemas import FACE_REJECTS, FACES, RAW_MANIFEST
from preprocessing.faces.extract import FacesJob, ImageRef, ImageResult, process_chunk
from preprocessing.faces.framing import framing_errors, framing_summary, measure_framing
from preprocessing.faces.shards import ShardWriter
from preprocessing.plots import contact_sheet

log = logging.getLogger("twingan.faces")


@task(name="faces-chunk", cache_policy=NO_CACHE)
def faces_chunk(refs: list[ImageRef], job: FacesJob, pool: Any) -> list[ImageResult]:
    return run_on(pool, process_chunk, refs, job)


def _job(loaded: LoadedParams, domain: str) -> FacesJob:
    spec = loaded.domain(domain)
    if spec.detector is None and spec.align.method != "crop":
        raise ParamsError(
            f"domains.{domain}.detector: required by the faces stage (e.g. name: dlib_hog), unless the pictures "
            "are already face crops (align: {method: crop})"
        )
    from preprocessing.faces.detectors import available

    if spec.detector is not None and spec.detector.name not in available():
        raise ParamsError(
            f"domains.{domain}.detector.name: unknown detector {spec.detector.name!r} (known: {', '.join(available())})"
        )
    settings = loaded.params.faces
    detector, options = (spec.detector.name, dict(spec.detector.options)) if spec.detector else (None, {})
    return FacesJob(domain=domain, raw_dir=str(Layout(loaded.root).raw(domain)), detector=detector,
                    detector_options=options, align=spec.align.model_dump(),
                    select=spec.select.model_dump(), crop_format=settings.crop_format,
                    jpeg_quality=settings.jpeg_quality)  # fmt: skip


@flow(name="faces", validate_parameters=False)
def faces_flow(params_file: str, domain: str) -> dict[str, Any]:
    loaded = load_params(params_file)
    job = _job(loaded, domain)
    settings = loaded.params.faces
    manifest = read_table(Layout(loaded.root).raw(domain) / "manifest.parquet", RAW_MANIFEST)
    refs = [ImageRef(i, p) for i, p in sorted(zip(manifest["id"].to_pylist(), manifest["path"].to_pylist(),
                                                  strict=True))]  # fmt: skip
    out = Layout(loaded.root).faces(domain)
    with staged_dir(out) as staging:
        started = time.perf_counter()
        log.info("faces@%s: %d images, detector %s, %s alignment to %d px", domain, len(refs), job.detector or "none",
                 job.align["method"], job.align["size"])  # fmt: skip

        writer = ShardWriter(staging, settings.shard_max_bytes)
        faces: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        sheet: list[tuple[str, bytes]] = []
        detected = with_face = 0
        executor = settings.executor
        task_fn = faces_chunk.with_options(retries=executor.task_retries)
        with worker_pool(executor) as pool, tqdm(total=len(refs), desc=f"faces@{domain}", unit="img",
                                                  disable=None) as bar:  # fmt: skip
            chunks = chunked(refs, executor.chunk_size)  # fixed, ordered chunks: same output for any worker count
            for results in map_bounded(lambda c: task_fn.submit(c, job, pool), chunks, window=2 * executor.workers):
                for result in results:
                    detected += result.detected
                    with_face += bool(result.faces)
                    rejects.extend(result.rejects)
                    for row, data in zip(result.faces, result.crops, strict=True):
                        row["shard"], row["shard_row"] = writer.add(row["face_id"], data)
                        faces.append(row)
                        sheet.append((row["crop_sha256"], data))
                        sheet = sorted(sheet)[: settings.contact_sheet]  # a fixed pseudo-random sample
                bar.update(len(results))
        writer.flush()

        recorded = {"domain": domain, **{k: v for k, v in job.__dict__.items() if k not in ("raw_dir", "domain")}}
        framing_metrics = None
        if job.align["method"] == "crop":  # how the crops frame a face: what a new photo's face is cut to
            framing = measure_framing(faces, job.align)
            errors = framing_errors(faces, framing)
            for row, error in zip(faces, errors, strict=True):
                row["eye_error"] = error["eye_error"]
            recorded["framing"] = framing
            framing_metrics = framing_summary(framing, errors)
        write_table(table_from_rows(faces, FACES), staging / "faces.parquet", FACES, recorded)
        write_table(table_from_rows(rejects, FACE_REJECTS), staging / "rejects.parquet", FACE_REJECTS, recorded)

    errors = [row["eye_error"] for row in faces if row["eye_error"] is not None and job.align["method"] != "crop"]
    counts: dict[str, int] = {}
    for row in rejects:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    metrics = {
        "images": len(refs),
        "images_with_face": with_face,
        "fraction_with_face": round(with_face / len(refs), 4) if refs else 0.0,
        "faces_detected": detected,
        "faces_kept": len(faces),
        "shards": writer.index,
        "rejects": dict(sorted(counts.items())),
    }
    if errors:
        metrics["eye_error_median"] = round(float(np.median(errors)), 4)
        metrics["aligned_within_2pct"] = round(float(np.mean(np.asarray(errors) <= 0.02)), 4)
    if framing_metrics is not None:
        metrics["framing"] = framing_metrics
        log.info("faces@%s: crops frame a face as %s", domain, json.dumps(framing_metrics))
    write_json_atomic(Layout(loaded.root).metrics("faces", domain), metrics)
    contact_sheet([data for _, data in sheet], Layout(loaded.root).plots("faces") / f"{domain}.png")
    log.info("faces@%s: %d of %d images with a kept face, %d faces in %d shards, rejects %s, in %.1f s", domain,
             with_face, len(refs), len(faces), writer.index, json.dumps(metrics["rejects"]),
             time.perf_counter() - started)  # fmt: skip
    return metrics


def check_faces(loaded: LoadedParams, domain: str) -> None:
    """What the stage refuses before any work (also `twingan check`): a missing or unknown detector, its
    unknown options, its missing model files (ModelFileMissing)."""
    job = _job(loaded, domain)
    if job.detector is None:
        return
    from preprocessing.faces.detectors import make_detector

    try:
        make_detector(job.detector, job.detector_options)
    except ValueError as error:
        raise ParamsError(f"domains.{domain}.detector: {error}") from None


def run_faces(loaded: LoadedParams, domain: str) -> dict[str, Any]:
    check_faces(loaded, domain)  # in one line, before Prefect starts
    runner = make_task_runner(loaded.params.faces.executor)
    with stage_flow_settings():
        return faces_flow.with_options(task_runner=runner)(str(loaded.file), domain)
