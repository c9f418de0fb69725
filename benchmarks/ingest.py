"""Benchmark of the ingest stage against the loop a user would write by hand.

Why: the ingest stage (`flows/ingest.py`) has to be worth its machinery; the goal is at least 1.6x the
throughput of a plain single-process loop on a 2-core machine. This script measures, in one process:

  baseline          for each file: open it with PIL, decode it fully (`img.load()`), copy it with
                    `shutil.copyfile` into a folder, named by the SHA-256 of its bytes
  flow, thread x2   the real stage through its Prefect flow (`run_ingest`) as params.yaml ships it:
                    `kind: thread, workers: 2` (decoding, hashing and copying release the GIL)
  flow, thread x1   the same with 1 worker
  flow, process x2  the same with `kind: process, workers: 2`
  code alone        ingest's listing and per-item code (`process_chunk`) in this process: no Prefect,
                    no pool, no manifest; what the per-item work itself costs (JPEGs are verified by
                    decoding at 1/8 scale)

thread x2 against the baseline is the goal; thread x1 against the baseline is the engine's own gain;
thread x2 against thread x1 is the gain from workers. Every run writes into a fresh temporary folder
that is deleted afterwards, so nothing is reused.
The first Prefect flow in a process starts a temporary API server and the pool's forkserver: that
warm-up run is not timed. Before each timed run the script waits until its child processes (the Prefect
server above all, which goes on digesting a flow's events after the flow returns) are idle, and it
reports the CPU time each variant used, the server's share, and any CPU other processes took meanwhile.

Run from the project root:
    .venv/bin/python benchmarks/ingest.py [--source DIR] [--repeat N] [--chunk-size N] [--generate N]
Without --source it reads ../shared/data/real/human (relative to the project root); where that folder is
absent it generates photo-like JPEGs from scikit-image's sample photographs instead, and says so.

    .venv/bin/python benchmarks/ingest.py --memory [--members N] [--member-mb MB] [--workers N]
measures memory instead: docs/parallelism.md promises that a compressed tar, which can only be read front to
back, is ingested with bounded memory. It writes N files of MB megabytes (a small JPEG padded with
random bytes, so each is stored as an image and none compresses) as a folder and as a .tar.gz of the
same files, runs the stage on each (`kind: thread`, as shipped) in a fresh child process of its own,
and prints each child's peak RSS (VmHWM; the work runs in that process's threads) and their ratio.
The Prefect API server is another process, the same for both, and not counted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "real" / "human"
DOMAIN = "bench"
GOAL = 1.6  # the stage as shipped (2 worker threads) vs baseline, on 2 cores
SERVER = "Prefect API server"
POOL = "process pool (forkserver + workers)"


@dataclass(frozen=True)
class Run:
    seconds: float
    stored: frozenset[str]  # SHA-256 of every distinct image stored
    cpu: float = 0.0  # CPU seconds of this process and its children, the run and its aftermath
    server_cpu: float = 0.0  # of which the Prefect API server


@dataclass
class Series:
    label: str
    runs: list[Run] = field(default_factory=list)

    def median(self, what: Callable[[Run], float] = lambda run: run.seconds) -> float:
        return statistics.median(what(run) for run in self.runs)


# ----------------------------------------------------------------------------------------------- sources


def image_files(source: Path) -> list[Path]:
    """What a folder source lists by default: every file under `source` with an image extension."""
    from core.params import DEFAULT_IMAGE_GLOBS

    suffixes = {pattern.removeprefix("*").lower() for pattern in DEFAULT_IMAGE_GLOBS}
    return sorted(p for p in source.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def generate_photos(folder: Path, count: int, seed: int = 0) -> None:
    """Photo-like JPEGs of 256..2048 px: random crops of scikit-image's sample photographs, resized,
    with noise so that every file's bytes differ."""
    import numpy as np
    from PIL import Image
    from skimage import data

    samples = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(seed)
    for index in range(count):
        photo = samples[index % len(samples)]
        height, width = photo.shape[:2]
        crop_h, crop_w = (int(side * rng.uniform(0.6, 1.0)) for side in (height, width))
        top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
        longest = int(rng.integers(256, 2049))
        scale = longest / max(crop_h, crop_w)
        size = (max(1, round(crop_w * scale)), max(1, round(crop_h * scale)))
        crop = Image.fromarray(photo[top : top + crop_h, left : left + crop_w])
        pixels = np.asarray(crop.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
        pixels += rng.integers(-6, 7, size=pixels.shape, dtype=np.int16)
        noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        noisy.save(folder / f"photo_{index:04d}.jpg", quality=int(rng.integers(80, 96)))


def link_copies(source: Path, target: Path, copies: int) -> None:
    """`copies` subfolders of `target`, each holding every image of `source` (hard links where possible)."""
    for index in range(copies):
        for path in image_files(source):
            destination = target / f"copy_{index}" / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, destination)
            except OSError:
                shutil.copyfile(path, destination)


# -------------------------------------------------------------------------------------------- the runs


def run_baseline(source: Path) -> Run:
    """The hand-written loop: list, then for each file decode it fully and copy it under its SHA-256."""
    from PIL import Image

    out = Path(tempfile.mkdtemp(prefix="ingest-bench-baseline-"))
    try:
        started = time.perf_counter()
        stored: set[str] = set()
        for path in image_files(source):
            try:
                with Image.open(path) as img:
                    img.load()
            except (OSError, SyntaxError, ValueError):
                continue
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            target = out / f"{sha}{path.suffix.lower()}"
            if not target.exists():
                shutil.copyfile(path, target)
            stored.add(sha)
        seconds = time.perf_counter() - started
        on_disk = frozenset(p.stem for p in out.iterdir())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert on_disk == stored, "baseline: the files on disk differ from what it copied"
    return Run(seconds, on_disk)


def run_flow(source: Path, kind: str, workers: int, chunk_size: int) -> Run:
    """The real stage: a temporary project whose only domain reads `source`, through `run_ingest`."""
    import yaml

    from core.params import load_params
    from flows.ingest import run_ingest

    project = Path(tempfile.mkdtemp(prefix="ingest-bench-flow-"))
    try:
        params_file = project / "params.yaml"
        params = {
            "domains": {DOMAIN: {"source": {"kind": "folder", "path": str(source)}}},
            "ingest": {"executor": {"kind": kind, "workers": workers, "chunk_size": chunk_size}},
        }
        params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        started = time.perf_counter()
        metrics = run_ingest(load_params(params_file), DOMAIN)
        seconds = time.perf_counter() - started
        images = project / "data" / "raw" / DOMAIN / "images"
        stored = frozenset(p.stem for p in images.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(project, ignore_errors=True)
    assert metrics["stored"] == len(stored), "flow: the metrics and the image store disagree"
    return Run(seconds, stored)


def run_code_alone(source: Path) -> Run:
    """Ingest's listing and per-item code in this process, without Prefect, a pool or the manifest."""
    from core.params import FolderSource, IngestParams
    from preprocessing.ingest.inspect import ChunkJob, process_chunk
    from preprocessing.ingest.sources import list_source

    settings = IngestParams()
    out = Path(tempfile.mkdtemp(prefix="ingest-bench-code-"))
    try:
        job = ChunkJob(
            store=str(out), max_bytes=settings.max_bytes, max_pixels=settings.max_pixels, formats=settings.formats
        )
        started = time.perf_counter()
        items = list(list_source(FolderSource(kind="folder", path=source), source, settings.max_bytes))
        records = process_chunk(items, job)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return Run(seconds, frozenset(r.sha256 for r in records if r.reason is None and r.sha256))


# ------------------------------------------------------------------------------------ processes (Linux)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


class ProcessTree:
    """This process and its descendants, read from /proc (Linux; elsewhere it sees no descendants).

    getrusage(RUSAGE_CHILDREN) cannot see the children that matter while this process runs: the pool
    workers are children of the forkserver, and the Prefect API server only stops at exit. So this
    samples their RSS (summed per role) in a thread, and reads their CPU time on demand.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.available = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()
        self.interval = interval
        self.peaks: dict[str, int] = {}  # role -> bytes
        self._roles: dict[int, str] = {}
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> ProcessTree:
        if self.available:
            self._sampler.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        if self._sampler.is_alive():
            self._sampler.join()

    def descendants(self) -> list[int]:
        found: list[int] = []
        todo = [os.getpid()]
        while todo:
            pid = todo.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                children = [int(c) for c in (_read(f"/proc/{pid}/task/{tid}/children") or "").split()]
                found.extend(children)
                todo.extend(children)
        return found

    def role(self, pid: int) -> str:
        if pid not in self._roles:
            command = _read(f"/proc/{pid}/cmdline") or ""
            if "multiprocessing.forkserver" in command:
                self._roles[pid] = POOL
            elif "prefect.server" in command:
                self._roles[pid] = SERVER
            else:  # resource tracker; children between fork and exec, which still show our pages
                self._roles[pid] = "other"
        return self._roles[pid]

    def _cpu_of(self, pid: int) -> float:
        """User + system time of `pid` and of its children that it has reaped."""
        stat = _read(f"/proc/{pid}/stat")
        if not stat:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / self._tick

    def cpu(self, role: str | None = None) -> float:
        """CPU seconds so far: of this process and all its descendants, or of the descendants in `role`."""
        pids = [p for p in self.descendants() if role is None or self.role(p) == role]
        own = sum(os.times()[:4]) if role is None else 0.0
        return own + sum(self._cpu_of(pid) for pid in pids)

    def wait_quiet(self, limit: float = 30.0, window: float = 0.25) -> bool:
        """Wait until the descendants use less than 10% of a core; False when `limit` ran out."""
        if not self.available:
            return True
        deadline = time.monotonic() + limit
        before = self.cpu() - sum(os.times()[:4])
        while time.monotonic() < deadline:
            time.sleep(window)
            now = self.cpu() - sum(os.times()[:4])
            if now - before < 0.1 * window:
                return True
            before = now
        return False

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            totals: dict[str, int] = {}
            for pid in self.descendants():
                statm = (_read(f"/proc/{pid}/statm") or "").split()
                if len(statm) > 1:
                    role = self.role(pid)
                    totals[role] = totals.get(role, 0) + int(statm[1]) * self._page
            for role, total in totals.items():
                self.peaks[role] = max(self.peaks.get(role, 0), total)


def system_busy() -> float:
    """CPU seconds all CPUs have been busy since boot (Linux /proc/stat), or 0."""
    line = (_read("/proc/stat") or "cpu 0 0 0 0 0").split("\n", 1)[0].split()
    values = [int(v) for v in line[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def max_rss_mib(who: int) -> float:
    """ru_maxrss is KiB on Linux, bytes on macOS."""
    value = resource.getrusage(who).ru_maxrss
    return value / (1024 * 1024) if sys.platform == "darwin" else value / 1024


# -------------------------------------------------------------------------------------------- benchmark


# ----------------------------------------------------------------------------------------------- memory


def padded_jpeg(index: int, size: int, rng: np.random.Generator) -> bytes:
    """A valid 256 px JPEG followed by random bytes up to `size`: decoders stop at its end marker, so it
    is stored like a large photo, and its bytes neither compress nor repeat."""
    import io

    import numpy as np
    from PIL import Image

    pixels = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, comment=f"member {index}".encode())
    head = buffer.getvalue()
    return head + rng.bytes(max(0, size - len(head)))


def make_memory_sources(folder: Path, archive: Path, members: int, member_bytes: int) -> None:
    """The same files as a folder and as a .tar.gz (gzip level 1: the members are incompressible anyway)."""
    import tarfile

    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for index in range(members):
            path = folder / f"photo_{index:04d}.jpg"
            path.write_bytes(padded_jpeg(index, member_bytes, rng))
            tar.add(path, arcname=path.name)


def own_rss_mib(key: str) -> float:
    """This process's VmHWM (peak) or VmRSS (now) from /proc, else ru_maxrss. Not ru_maxrss alone: Linux
    starts a child's ru_maxrss at the RSS of the process that forked it."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return max_rss_mib(resource.RUSAGE_SELF)


def memory_child(kind: str, path: Path, workers: int) -> int:
    """In a fresh process: run the stage on `path` and print its peak RSS and what it stored, as JSON."""
    import json

    import yaml

    from core.params import load_params
    from core.parquet import read_table
    from core.schemas import RAW_MANIFEST
    from flows.ingest import run_ingest

    project = Path(tempfile.mkdtemp(prefix="ingest-bench-memory-"))
    try:
        params = {
            "domains": {DOMAIN: {"source": {"kind": kind, "path": str(path)}}},
            "ingest": {"executor": {"kind": "thread", "workers": workers}},
        }
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        started_rss = own_rss_mib("VmRSS")
        started = time.perf_counter()
        metrics = run_ingest(load_params(project / "params.yaml"), DOMAIN)
        seconds = time.perf_counter() - started
        manifest = read_table(project / "data" / "raw" / DOMAIN / "manifest.parquet", RAW_MANIFEST)
        ids = manifest.column("id").to_pylist()
    finally:
        shutil.rmtree(project, ignore_errors=True)
    report = {
        "peak_mib": own_rss_mib("VmHWM"),
        "before_mib": started_rss,
        "seconds": seconds,
        "stored": metrics["stored"],
        "ids": sorted(ids),
    }
    print("MEMORY " + json.dumps(report), flush=True)
    return 0


def run_memory_child(kind: str, path: Path, workers: int) -> dict[str, object]:
    import json
    import subprocess

    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child", kind, str(path), "--workers"]
    done = subprocess.run([*command, str(workers)], capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("MEMORY ")]
    if done.returncode or not lines:
        raise RuntimeError(f"memory child for {kind} {path} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("MEMORY "))


def memory_benchmark(members: int, member_mb: float, workers: int) -> int:
    member_bytes = int(member_mb * 1e6)
    total = members * member_bytes
    with tempfile.TemporaryDirectory(prefix="ingest-bench-memory-src-") as tmp:
        folder, archive = Path(tmp) / "photos", Path(tmp) / "photos.tar.gz"
        print(
            f"memory benchmark: {members} members of {member_bytes / 1e6:.1f} MB ({total / 1e6:.0f} MB), "
            f"as a folder and as a .tar.gz; ingest.executor kind thread, workers {workers}, chunk_size 256",
            flush=True,
        )
        make_memory_sources(folder, archive, members, member_bytes)
        results = {}
        for label, kind, path in (("folder", "folder", folder), ("tar.gz", "archive", archive)):
            results[label] = result = run_memory_child(kind, path, workers)
            print(
                f"  {label:<7} peak RSS {result['peak_mib']:7.0f} MiB (before the flow {result['before_mib']:4.0f} "
                f"MiB)   {result['seconds']:6.2f} s   stored {result['stored']}",
                flush=True,
            )
    folder_peak, tar_peak = results["folder"]["peak_mib"], results["tar.gz"]["peak_mib"]
    print(f"peak RSS, .tar.gz / folder: {tar_peak / folder_peak:.2f}x ({tar_peak - folder_peak:+.0f} MiB)")
    if results["folder"]["ids"] != results["tar.gz"]["ids"] or results["folder"]["stored"] != members:
        print("check FAILED: the folder and the .tar.gz did not store the same images")
        return 1
    print(f"check OK: both stored the same {members} images (the same SHA-256s)")
    return 0


# -------------------------------------------------------------------------------------------- benchmark


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help=f"folder of images (default {DEFAULT_SOURCE}; generated images where absent)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each variant (median reported)")
    parser.add_argument(
        "--chunk-size", type=int, default=256, help="ingest.executor.chunk_size of the flows (the largest chunk)"
    )
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        metavar="K",
        help="list the source K times (hard links in K subfolders): the same real photos as a larger input; "
        "both sides then decode and hash every copy and store each image once",
    )
    parser.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="benchmark N generated photo-like JPEGs instead of a folder",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="measure peak RSS of a .tar.gz against the same files as a folder instead of throughput",
    )
    parser.add_argument("--members", type=int, default=40, help="--memory: number of files (default 40)")
    parser.add_argument("--member-mb", type=float, default=20.0, help="--memory: megabytes per file (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="--memory: ingest.executor.workers (default 2)")
    parser.add_argument("--memory-child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.members < 1 or args.member_mb <= 0 or args.workers < 1:
        parser.error("--members, --member-mb and --workers must be positive")
    if args.repeat < 1 or args.chunk_size < 1 or args.generate < 0 or args.copies < 1:
        parser.error("--repeat and --chunk-size must be at least 1, --generate at least 0")
    if args.source is not None and not args.source.is_dir():
        parser.error(f"--source: no such folder: {args.source}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from core.environment import configure_environment

    # Before anything imports Prefect: PREFECT_HOME is the project's .prefect/, telemetry off.
    configure_environment(REPO)
    if args.memory_child:
        kind, path = args.memory_child
        return memory_child(kind, Path(path), args.workers)
    if args.memory:
        return memory_benchmark(args.members, args.member_mb, args.workers)

    generated: tempfile.TemporaryDirectory[str] | None = None
    if args.source is not None:
        source = args.source.resolve()
    elif args.generate == 0 and DEFAULT_SOURCE.is_dir():
        source = DEFAULT_SOURCE
    else:
        count = args.generate or 200
        why = "--generate" if args.generate else f"{DEFAULT_SOURCE} is absent"
        generated = tempfile.TemporaryDirectory(prefix="ingest-bench-source-")
        source = Path(generated.name)
        print(
            f"source: {why}; generating {count} photo-like JPEGs (256..2048 px, from scikit-image's "
            f"sample photographs) in {source} ...",
            flush=True,
        )
        generate_photos(source, count)
    copies: tempfile.TemporaryDirectory[str] | None = None
    if args.copies > 1:
        copies = tempfile.TemporaryDirectory(prefix="ingest-bench-copies-")
        link_copies(source, Path(copies.name), args.copies)
        print(f"source: {args.copies} hard-linked copies of {source} in {copies.name}", flush=True)
        source = Path(copies.name)
    try:
        with ProcessTree() as tree:
            return benchmark(source, args.repeat, args.chunk_size, tree)
    finally:
        for folder in (generated, copies):
            if folder is not None:
                folder.cleanup()


def benchmark(source: Path, repeat: int, chunk_size: int, tree: ProcessTree) -> int:
    import PIL
    import prefect

    files = image_files(source)
    if not files:
        print(f"no images under {source}", file=sys.stderr)
        return 2
    count, total_bytes = len(files), sum(p.stat().st_size for p in files)
    print(f"ingest benchmark: {count} images, {total_bytes / 1e6:.1f} MB ({total_bytes:,} bytes) in {source}")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, Prefect {prefect.__version__}, "
        f"Pillow {PIL.__version__}; repeat {repeat}, chunk_size {chunk_size}",
        flush=True,
    )

    warm = run_flow(source, "process", 2, chunk_size)
    print(
        f"warm-up (not timed): the first flow run took {warm.seconds:.1f} s: it started Prefect's temporary "
        "API server and the pool's forkserver, which the timed runs reuse (each timed process run still "
        "starts its own 2 worker processes)",
        flush=True,
    )

    variants: dict[str, tuple[str, Callable[[], Run]]] = {
        "baseline": ("baseline (PIL load + copyfile)", lambda: run_baseline(source)),
        "thread2": ("ingest flow, thread x2 (shipped)", lambda: run_flow(source, "thread", 2, chunk_size)),
        "thread1": ("ingest flow, thread x1", lambda: run_flow(source, "thread", 1, chunk_size)),
        "process2": ("ingest flow, process x2", lambda: run_flow(source, "process", 2, chunk_size)),
        "code": ("ingest code alone, 1 thread", lambda: run_code_alone(source)),
    }
    series = {name: Series(label) for name, (label, _) in variants.items()}
    not_quiet = 0
    tree.wait_quiet()
    busy_start, ours_start = system_busy(), tree.cpu()
    for round_number in range(1, repeat + 1):
        print(f"round {round_number}/{repeat}:", flush=True)
        for name, (_, fn) in variants.items():
            not_quiet += not tree.wait_quiet()
            cpu, server = tree.cpu(), tree.cpu(SERVER)
            run = fn()
            not_quiet += not tree.wait_quiet()  # the server's work on this run's events is this run's
            run = Run(run.seconds, run.stored, tree.cpu() - cpu, tree.cpu(SERVER) - server)
            series[name].runs.append(run)
            print(
                f"  {series[name].label:<32} {run.seconds:7.3f} s   CPU {run.cpu:6.2f} s "
                f"(Prefect server {run.server_cpu:5.2f} s)",
                flush=True,
            )
    others = (system_busy() - busy_start) - (tree.cpu() - ours_start)

    base, thread1, thread2 = series["baseline"], series["thread1"], series["thread2"]
    print()
    print(
        f"{'median of ' + str(repeat):<34} {'seconds':>8} {'img/s':>8} {'MB/s':>7} {'CPU s':>7} "
        f"{'server':>7}   runs (s)"
    )
    for item in series.values():
        runs = " ".join(f"{run.seconds:.3f}" for run in item.runs)
        seconds = item.median()
        print(
            f"{item.label:<34} {seconds:8.3f} {count / seconds:8.1f} {total_bytes / 1e6 / seconds:7.1f} "
            f"{item.median(lambda r: r.cpu):7.2f} {item.median(lambda r: r.server_cpu):7.2f}   {runs}"
        )
    print(
        "(CPU s: this process and its children during the run and until they are idle again; server: the "
        "Prefect API server's part of it)"
    )
    vs_baseline = base.median() / thread2.median()
    verdict = "meets" if vs_baseline >= GOAL else "BELOW"
    ratios = [
        ("flow thread x2 (shipped) vs baseline", vs_baseline, f"{verdict} the goal of {GOAL}x"),
        ("flow thread x2 vs thread x1", thread1.median() / thread2.median(), "from workers"),
        ("flow thread x1 vs baseline", base.median() / thread1.median(), "the engine alone"),
        ("flow process x2 vs baseline", base.median() / series["process2"].median(), "process pool"),
    ]
    for what, ratio, note in ratios:
        print(f"speed-up, {what + ':':<45} {ratio:5.2f}x ({note})")

    print(
        f"peak RSS: this process {max_rss_mib(resource.RUSAGE_SELF):.0f} MiB (getrusage RUSAGE_SELF); "
        f"children {max_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB (RUSAGE_CHILDREN: the largest child "
        "reaped so far, which Linux charges with this process's RSS when it forks and execs; the pool "
        "workers, children of the forkserver, and the running Prefect server are not in it)"
    )
    if tree.available:
        peaks = ", ".join(f"{role} {tree.peaks.get(role, 0) / 2**20:.0f} MiB" for role in (POOL, SERVER))
        print(
            f"peak RSS of child processes, summed per role, sampled every {tree.interval * 1000:.0f} ms "
            f"from /proc: {peaks}"
        )
        timeouts = f"; {not_quiet} waits for idle children timed out" if not_quiet else ""
        warn = "  WARNING: the timings are skewed" if others > 0.05 * (tree.cpu() - ours_start) else ""
        print(f"other processes (or the hypervisor) took {others:.1f} CPU s during the timed runs{timeouts}{warn}")
    rest = [item for name, item in series.items() if name not in ("baseline", "thread2")]
    return check(base, thread2, rest)


def check(baseline: Series, candidate: Series, others: list[Series]) -> int:
    """Every run must store the same distinct images as the baseline: the same count, the same SHA-256s."""
    expected = baseline.runs[0].stored
    failures = 0
    for series in [baseline, candidate, *others]:
        for run in series.runs:
            if run.stored != expected:
                failures += 1
                print(
                    f"check FAILED: {series.label} stored {len(run.stored)} distinct images, the baseline "
                    f"{len(expected)} ({len(run.stored - expected)} not among the baseline's, "
                    f"{len(expected - run.stored)} missing)"
                )
    if failures:
        return 1
    stored = len(candidate.runs[0].stored)
    print(
        f"check OK: the 2-worker flow stored {stored} distinct images, the baseline {len(expected)}: the same "
        "SHA-256s, in every run of every variant"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
