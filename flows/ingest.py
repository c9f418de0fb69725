"""The `ingest@<domain>` stage: a photo folder or archive into `data/raw/<domain>/`.

Writes, all at once when the run succeeds (built in `data/raw/<domain>.partial/`, then renamed):
  images/<id[:2]>/<id>.<ext>   the bytes of every distinct image, named by SHA-256
  manifest.parquet            one row per stored image (core.schemas.RAW_MANIFEST)
  rejects.parquet             one row per item not stored, with the reason (RAW_REJECTS)
and `metrics/ingest/<domain>.json` for `dvc metrics show`. A killed run leaves the previous output
untouched; the next run reuses the images already in the staging folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from core.atomic import staged_dir, write_json_atomic
from core.environment import stage_flow_settings
from core.executor import (
    balanced_chunks,
    chunk_size_for,
    make_task_runner,
    map_bounded,
    run_on,
    worker_pool,
)
from core.layout import Layout
from core.params import LoadedParams, load_params
from core.parquet import table_from_rows, write_table
from core.schemas import RAW_MANIFEST, RAW_REJECTS
from preprocessing.ingest import stream
from preprocessing.ingest.inspect import ChunkJob, Record, process_chunk
from preprocessing.ingest.outputs import assemble, prune_store
from preprocessing.ingest.sources import SourceItem, archive_kind, check_archive, list_source

log = logging.getLogger("twingan.ingest")


@dataclass(frozen=True)
class IngestPaths:
    out: Path
    metrics: Path

    @classmethod
    def for_domain(cls, loaded: LoadedParams, domain: str) -> IngestPaths:
        at = Layout(loaded.root)
        return cls(out=at.raw(domain), metrics=at.metrics("ingest", domain))


@task(name="ingest-chunk", cache_policy=NO_CACHE)
def ingest_chunk(items: list[SourceItem], job: ChunkJob, pool: Any) -> list[Record]:
    return run_on(pool, process_chunk, items, job)


def _recorded_params(loaded: LoadedParams, domain: str) -> dict[str, Any]:
    """What the output depends on (not how many workers made it)."""
    ingest = loaded.params.ingest
    return {
        "domain": domain,
        "source": loaded.domain(domain).source.model_dump(mode="json"),
        "ingest": ingest.model_dump(mode="json", exclude={"executor"}),
    }


@flow(name="ingest", validate_parameters=False)
def ingest_flow(params_file: str, domain: str) -> dict[str, Any]:
    loaded = load_params(params_file)
    settings = loaded.params.ingest
    source = loaded.domain(domain).source
    source_path = loaded.source_path(domain)
    paths = IngestPaths.for_domain(loaded, domain)
    with staged_dir(paths.out, keep=True) as staging:
        job = ChunkJob(
            store=str(staging), max_bytes=settings.max_bytes, max_pixels=settings.max_pixels, formats=settings.formats
        )

        started = time.perf_counter()
        listing = list_source(source, source_path, settings.max_bytes)
        executor = settings.executor
        window = 2 * executor.workers
        streamed = source.kind == "archive" and archive_kind(source_path) == "tar-stream"
        in_flight = stream.BytesInFlight(budget=stream.STREAM_BYTES_PER_WORKER * executor.workers)
        if streamed:  # compressed tar: read front to back while the workers run, its bytes bounded
            total = None
        else:  # random access: list up front, for a progress bar and chunks of equal work
            items = list(listing)
            total = len(items)
            chunks = iter(balanced_chunks(items, chunk_size_for(total, executor), weight=lambda item: item.size))
        log.info(
            "ingest@%s: reading %s %s (%s items)",
            domain,
            source.kind,
            source.path,
            "streamed" if total is None else total,
        )

        task_fn = ingest_chunk.with_options(retries=executor.task_retries)
        records: list[Record] = []
        with worker_pool(executor) as pool, tqdm(total=total, desc=f"ingest@{domain}", unit="img", disable=None) as bar:

            def submit(chunk: list[SourceItem]) -> Any:
                return task_fn.submit(chunk, job, pool)

            if streamed:
                results = stream.map_streamed(
                    submit,
                    listing,
                    chunk_size=executor.chunk_size,
                    window=window,
                    in_flight=in_flight,
                    chunk_bytes=stream.STREAM_CHUNK_BYTES,
                )
            else:
                results = map_bounded(submit, chunks, window=window)
            for result in results:
                records.extend(result)
                bar.update(len(result))
        if streamed:
            log.info(
                "ingest@%s: at most %.1f MB of member bytes read ahead of the workers (bound %.1f MB plus one member)",
                domain,
                in_flight.peak / 1e6,
                in_flight.budget / 1e6,
            )

        result = assemble(domain, source.path.as_posix(), records)
        pruned = prune_store(staging, result.manifest)
        recorded = _recorded_params(loaded, domain)
        write_table(
            table_from_rows(result.manifest, RAW_MANIFEST), staging / "manifest.parquet", RAW_MANIFEST, recorded
        )
        write_table(table_from_rows(result.rejects, RAW_REJECTS), staging / "rejects.parquet", RAW_REJECTS, recorded)
    metrics = result.metrics()
    write_json_atomic(paths.metrics, metrics)

    seconds = time.perf_counter() - started
    reasons = ", ".join(f"{k} {v}" for k, v in metrics["rejects"].items() if v) or "none"
    log.info(
        "ingest@%s: stored %d images (%.1f MB), rejected %d (%s) in %.1f s -> %s",
        domain,
        metrics["stored"],
        metrics["bytes_stored"] / 1e6,
        metrics["rejected"],
        reasons,
        seconds,
        paths.out.relative_to(loaded.root),
    )
    if pruned:
        log.info("ingest@%s: removed %d stale files left by an interrupted run", domain, pruned)
    return metrics


def check_ingest(loaded: LoadedParams, domain: str) -> None:
    """What the stage refuses before any work (also `twingan check`): an unknown domain, a missing source,
    an archive that cannot be listed."""
    path = loaded.source_path(domain)
    if loaded.domain(domain).source.kind == "archive":
        check_archive(path)


def run_ingest(loaded: LoadedParams, domain: str) -> dict[str, Any]:
    check_ingest(loaded, domain)  # before Prefect starts
    runner = make_task_runner(loaded.params.ingest.executor)
    with stage_flow_settings():
        return ingest_flow.with_options(task_runner=runner)(str(loaded.file), domain)
