"""Run a stage's per-chunk work on the pool that `params.yaml` asks for, with bounded memory.

The flow maps a Prefect task over chunks of items. `thread` runs the chunks in Prefect's thread pool;
`process` also uses Prefect's threads, each handing its chunk to a process pool that the flow owns (so
CPU-bound Python runs in parallel, and no worker process has to start its own Prefect API server);
`dask` uses prefect-dask's DaskTaskRunner, on a scheduler at `dask_address` or a local cluster.
Chunks are submitted through a window of a few per worker, so listing a million files, or streaming a
compressed tar, never holds more than a few chunks of items and results in memory. Results come back
in submission order, so output does not depend on the number of workers.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from itertools import islice
from typing import Any, TypeVar

from core.params import ExecutorParams
from core.processes import worker_pool as process_pool

T = TypeVar("T")
log = logging.getLogger(__name__)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def balanced_chunks(items: Sequence[T], size: int, weight: Callable[[T], int]) -> list[list[T]]:
    """Chunks of at most `size` items with about equal total weight (bytes to decode).

    Photos from one camera or source sort next to each other, so contiguous chunks of a sorted listing
    can put all the large images into one worker's chunk. Largest first, each item goes to the lightest
    chunk that has room (LPT scheduling). Deterministic (ties keep listing order), and the outputs are
    sorted later, so the order of work does not matter.
    """
    count = -(-len(items) // size)
    if count <= 1:
        return [list(items)] if items else []
    chunks: list[list[T]] = [[] for _ in range(count)]
    lightest = [(0, index) for index in range(count)]  # (total weight, chunk index), a min-heap
    for item in sorted(items, key=weight, reverse=True):
        total, index = heapq.heappop(lightest)
        chunks[index].append(item)
        if len(chunks[index]) < size:
            heapq.heappush(lightest, (total + weight(item), index))
    return chunks


def chunk_size_for(total: int | None, params: ExecutorParams) -> int:
    """About two chunks per worker, at most `chunk_size` items each.

    Each chunk is a Prefect task run, which costs CPU (the client's and the API server's) that the
    workers then miss, so fewer chunks are faster (benchmarks/README.md, ingest). Chunks are balanced by
    bytes (`balanced_chunks`), so two per worker are enough to keep both busy, and one slow item cannot
    hold up a worker's whole share. The output does not depend on it.
    """
    if total is None:
        return params.chunk_size
    return max(1, min(params.chunk_size, -(-total // (2 * params.workers))))


def make_task_runner(params: ExecutorParams) -> Any:
    if params.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise RuntimeError("executor kind 'dask' needs prefect-dask: pip install -e '.[dask]'") from None
        if params.dask_address:
            return DaskTaskRunner(address=params.dask_address)
        if "PREFECT_API_URL" not in os.environ:
            log.warning(
                "dask: no PREFECT_API_URL, so each Dask worker process starts its own temporary Prefect "
                "server; run `prefect server start` and export PREFECT_API_URL to avoid it"
            )
        return DaskTaskRunner(cluster_kwargs={"n_workers": params.workers, "threads_per_worker": 1, "processes": True})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=params.workers)


@contextlib.contextmanager
def worker_pool(params: ExecutorParams) -> Iterator[Executor | None]:
    """A process pool for kind `process` (started as core/processes.py says: the flow's process runs
    Prefect's threads); None where the task itself should do the work."""
    if params.kind != "process":
        yield None
        return
    with process_pool(params.workers) as pool:
        yield pool


def run_on(pool: Executor | None, fn: Callable[..., T], *args: Any) -> T:
    return pool.submit(fn, *args).result() if pool is not None else fn(*args)


def map_bounded(submit: Callable[[Any], Any], chunks: Iterable[Any], window: int) -> Iterator[Any]:
    """Submit each chunk (a Prefect `task.submit`), keep at most `window` in flight, yield in order."""
    pending: deque[Any] = deque()
    for chunk in chunks:
        pending.append(submit(chunk))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
