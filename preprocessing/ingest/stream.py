"""Hand a compressed tar to the workers with a bounded number of member bytes in flight.

A compressed tar can only be read front to back, so its listing reads each member's bytes and ships
them with the item (`SourceItem.data`); the chunks of every other source hold only names. Cut by count
alone, 256 phone photos of 8 MB made a 2 GB chunk, several of them in flight. So these chunks are cut
by bytes as well, and the listing is not read further while the bytes read and not yet processed
exceed a budget: `STREAM_BYTES_PER_WORKER` per worker, plus the one member just read (at most
`ingest.max_bytes`). The output does not depend on it: records are sorted when they are assembled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from preprocessing.ingest.sources import SourceItem

STREAM_CHUNK_BYTES = 32 * 2**20
"""A chunk of a compressed tar closes once its members hold this many bytes (a chunk of small members
closes at `executor.chunk_size` items first)."""

STREAM_BYTES_PER_WORKER = 2 * STREAM_CHUNK_BYTES
"""Member bytes in flight per worker: two full chunks, as every source has two chunks per worker in
flight (measured by benchmarks/ingest.py --memory)."""


@dataclass
class BytesInFlight:
    """Member bytes read from the archive and not yet processed: now, and the most there have been."""

    budget: int
    held: int = 0
    peak: int = 0

    def add(self, count: int) -> None:
        self.held += count
        self.peak = max(self.peak, self.held)

    def release(self, count: int) -> None:
        self.held -= count


def item_bytes(item: SourceItem) -> int:
    return len(item.data) if item.data else 0


def map_streamed(
    submit: Callable[[list[SourceItem]], Any],
    items: Iterable[SourceItem],
    *,
    chunk_size: int,
    window: int,
    in_flight: BytesInFlight,
    chunk_bytes: int = STREAM_CHUNK_BYTES,
) -> Iterator[Any]:
    """Cut `items` into chunks (at most `chunk_size` items, closed at `chunk_bytes` member bytes),
    `submit` each (it returns a future) and yield the results in submission order.

    Before it reads the next item, it waits for the oldest chunk while `window` chunks are in flight or
    less than a chunk's bytes is left of `in_flight.budget`. So at most max(budget, chunk_bytes) bytes
    plus one member are held: after a wait, budget - chunk_bytes at most; then a chunk of under
    chunk_bytes and the member that closes it.
    """
    pending: deque[tuple[Any, int]] = deque()
    chunk: list[SourceItem] = []
    size = 0
    for item in items:
        count = item_bytes(item)
        in_flight.add(count)
        chunk.append(item)
        size += count
        if len(chunk) < chunk_size and size < chunk_bytes:
            continue
        pending.append((submit(chunk), size))
        chunk, size = [], 0
        while pending and (len(pending) >= window or in_flight.held + chunk_bytes > in_flight.budget):
            future, held = pending.popleft()
            result = future.result()
            in_flight.release(held)
            yield result
    if chunk:
        pending.append((submit(chunk), size))
    del chunk
    while pending:
        future, held = pending.popleft()
        result = future.result()
        in_flight.release(held)
        yield result
