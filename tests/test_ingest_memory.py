"""A compressed tar is read with bounded memory, as a folder is (docs/parallelism.md, "Bounded memory ...").

Its members can only be read front to back, so the listing reads their bytes and ships them in the
chunks. Chunks used to be cut by count alone (256 members, 2 per worker in flight): 40 members of
20 MB peaked at 1062 MiB as a .tar.gz against 275 MiB as a folder. Now the bytes read ahead of the
workers are bounded (preprocessing/ingest/stream.py).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from core.params import load_params
from core.parquet import read_table
from core.schemas import RAW_MANIFEST
from flows.ingest import run_ingest
from preprocessing.ingest import stream
from preprocessing.ingest.sources import SourceItem
from tests.builders import images as fx
from tests.builders.params import write_params
from tests.builders.repo import REPO

MiB = 2**20


def inline_items(sizes: list[int], pulled: list[int]) -> Iterator[SourceItem]:
    """Streamed items of the given sizes; `pulled` counts the bytes the consumer has taken so far."""
    for index, size in enumerate(sizes):
        pulled[0] += size
        yield SourceItem(f"m/{index:04d}.jpg", "inline", size=size, data=bytes([index % 251]) * size)


@pytest.mark.parametrize(
    ("sizes", "chunk_size", "chunk_bytes", "budget", "window"),
    [
        ([3000] * 200, 256, 10_000, 40_000, 4),  # cut by bytes
        ([100] * 300, 8, 10_000, 40_000, 4),  # cut by count
        ([1000, 25_000, 10, 60_000, 500] * 30, 256, 10_000, 40_000, 6),  # members larger than a chunk, the budget
        ([4000] * 100, 256, 10_000, 5_000, 2),  # a budget smaller than a chunk
    ],
)
def test_streamed_chunks_keep_the_bytes_in_flight_bounded(
    sizes: list[int], chunk_size: int, chunk_bytes: int, budget: int, window: int
) -> None:
    pulled = [0]  # bytes the listing has read
    finished = [0]  # bytes of chunks whose results the flow has received
    worst = [0]
    lock = threading.Lock()

    def work(chunk: list[SourceItem]) -> list[str]:
        with lock:  # what is held while a worker runs: read by the listing, result not yet taken
            worst[0] = max(worst[0], pulled[0] - finished[0])
        return [item.member for item in chunk]

    meter = stream.BytesInFlight(budget=budget)
    chunks: list[int] = []
    with ThreadPoolExecutor(max_workers=2) as pool:

        def submit(chunk: list[SourceItem]) -> Future[list[str]]:
            assert len(chunk) <= chunk_size
            assert sum(len(item.data or b"") for item in chunk[:-1]) < chunk_bytes  # closed once it is full
            chunks.append(len(chunk))
            return pool.submit(work, chunk)

        members = []
        results = stream.map_streamed(
            submit,
            inline_items(sizes, pulled),
            chunk_size=chunk_size,
            window=window,
            in_flight=meter,
            chunk_bytes=chunk_bytes,
        )
        for result in results:
            worst[0] = max(worst[0], pulled[0] - finished[0])
            finished[0] += sum(sizes[len(members) + i] for i in range(len(result)))
            members.extend(result)
    assert members == [f"m/{i:04d}.jpg" for i in range(len(sizes))]  # each once, in order
    assert meter.held == 0 and len(chunks) > 1
    bound = max(budget, chunk_bytes) + max(sizes)
    assert meter.peak <= bound, (meter.peak, bound)
    assert worst[0] <= bound, (worst[0], bound)  # the listing really waited: not only the meter's count


def make_tar_gz(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


FILES = {f"img/{i:02d}.{'jpg' if i % 3 else 'png'}": (fx.jpeg(i) if i % 3 else fx.png(i)) for i in range(14)}
FILES |= {"img/dup.jpg": fx.jpeg(1), "img/bad.jpg": b"not an image", "img/empty.png": b""}


def run_stage(root: Path, source_kind: str, path: Path, **executor: object) -> Path:
    source = {"kind": source_kind, "path": str(path)}
    params = write_params(root, {"cat": {"source": source}}, ingest={"executor": executor})
    run_ingest(load_params(params), "cat")
    return root / "data" / "raw" / "cat"


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_tar_gz_output_is_the_same_for_any_chunking_and_workers(tmp_path: Path, monkeypatch) -> None:
    archive = tmp_path / "photos.tar.gz"
    make_tar_gz(archive, FILES)
    one = run_stage(tmp_path / "one", "archive", archive, kind="thread", workers=1, chunk_size=256)

    meters: list[stream.BytesInFlight] = []

    class Recorded(stream.BytesInFlight):
        def __init__(self, budget: int) -> None:
            super().__init__(budget)
            meters.append(self)

    # Chunks of a few kilobytes and a budget of a few chunks: cut by bytes, waiting on the workers.
    monkeypatch.setattr(stream, "STREAM_CHUNK_BYTES", 2000)
    monkeypatch.setattr(stream, "STREAM_BYTES_PER_WORKER", 3000)
    monkeypatch.setattr(stream, "BytesInFlight", Recorded)
    small = run_stage(tmp_path / "small", "archive", archive, kind="thread", workers=2, chunk_size=256)
    processes = run_stage(tmp_path / "processes", "archive", archive, kind="process", workers=2, chunk_size=3)
    assert snapshot(one) == snapshot(small) == snapshot(processes)
    assert len(meters) == 2
    for meter in meters:
        assert 0 < meter.peak <= meter.budget + max(map(len, FILES.values())), meter

    # The same files as a folder give the same rows, but for the source.
    folder = tmp_path / "src"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    plain = run_stage(tmp_path / "folder", "folder", folder / "img", kind="thread", workers=2)

    def rows(out: Path, prefix: str) -> list[dict[str, object]]:
        table = read_table(out / "manifest.parquet", RAW_MANIFEST).drop_columns(["source_uri"]).to_pylist()
        return [{**row, "member": row["member"].removeprefix(prefix)} for row in table]

    assert rows(one, "img/") == rows(plain, "")


# Peak RSS of a fresh process that runs the stage, as the CLI would (threads: the work is in it). VmHWM,
# not getrusage: Linux starts a child's ru_maxrss at the RSS of the process that forked it (pytest's).
CHILD = r"""
import json, re, sys
from pathlib import Path
from core.environment import configure_environment
configure_environment(Path.cwd())
from flows.ingest import run_ingest
from core.params import load_params
metrics = run_ingest(load_params(sys.argv[1]), "cat")
peak = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"peak_kib": peak, "stored": metrics["stored"]}))
"""


def peak_rss_mib(root: Path, kind: str, path: Path) -> tuple[float, int]:
    params = write_params(
        root,
        {"cat": {"source": {"kind": kind, "path": str(path)}}},
        ingest={"executor": {"kind": "thread", "workers": 1}},
    )
    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / "pytest-memory"))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(params)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["peak_kib"] / 1024, report["stored"]


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="VmHWM: Linux")
def test_a_tar_gz_peaks_at_about_the_memory_of_the_same_files_as_a_folder(tmp_path: Path) -> None:
    """40 members of 8 MB (320 MB): all of them used to be held at once. With one worker the bound is
    64 MiB plus a member; the margin allows twice that for the allocator and the process's noise."""
    # Zero padding after the JPEG's end: decoders ignore it, and gzip inflates it fastest, so the
    # listing runs furthest ahead of the worker.
    files = {f"{i:02d}.jpg": fx.jpeg(i, 32, 32) + bytes(8_000_000) for i in range(40)}
    folder = tmp_path / "src"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    archive = tmp_path / "photos.tar.gz"
    make_tar_gz(archive, files)
    del files

    folder_mib, folder_stored = peak_rss_mib(tmp_path / "folder", "folder", folder)
    tar_mib, tar_stored = peak_rss_mib(tmp_path / "tar", "archive", archive)
    assert folder_stored == tar_stored == 40
    bound_mib = stream.STREAM_BYTES_PER_WORKER / MiB + 8
    assert tar_mib - folder_mib < 2 * bound_mib, (tar_mib, folder_mib)
