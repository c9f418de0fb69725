"""Raw photos -> aligned faces for the model: load, detect with the source domain's detector, align as the
faces stage did; in worker processes when there are many photos.

Detection is most of the time of a translation on a CPU (64 % with dlib's HOG beside a 128 px model, the
model 26 %), and dlib and AnimeFace hold the GIL. So the photos' faces are found in processes, each building its
detector once, while the parent runs the model on the faces already found: the two overlap, and several
photos are detected at once (benchmarks/translate.py). This module does not import torch, so a worker
starts in well under a second. Results come back in input order whatever the number of workers, and a
photo that cannot be read, or whose detection raises, is reported and skipped in its result; only a dead
worker process (killed for memory, say) stops the run, naming the photo it was on.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.processes import worker_pool

_WORKER: FaceFinder | None = None  # the finder of a worker process, built once by _start


@dataclass(frozen=True)
class AlignedFace:
    """One detected face, cropped for the model."""

    index: int  # k: its place in the detector's order (largest first)
    box: tuple[float, float, float, float]  # in photo pixels
    score: float
    crop: np.ndarray  # (size, size, 3) uint8 at the spec's align size, as the faces stage cuts it
    matrix: np.ndarray  # 2x3, photo pixels -> pixels of the crop at the model's resolution


@dataclass
class PhotoFaces:
    """One photo's faces, or why it has none; the photo itself only when it will be pasted into."""

    path: Path
    faces: list[AlignedFace] = field(default_factory=list)
    photo: np.ndarray | None = None
    size: tuple[int, int] | None = None  # (width, height)
    skipped: str | None = None  # "unreadable: ...", "no face: ...", "detection failed: ..."
    seconds: dict[str, float] = field(default_factory=dict)  # load, detect, align (in whichever process)


class FaceFinder:
    """The source domain's detector and alignment, as the model file records them (training/model_file.py).

    A domain of pre-cut crops (align method "crop") frames a detected face as its crops were measured to
    (`framing`); one recorded without a detector, or whose crops showed the detector no face, takes each
    picture whole as a crop, as its training pictures were."""

    def __init__(self, spec: Mapping[str, Any], resolution: int) -> None:
        from preprocessing.faces.framing import photo_align

        self.spec, self.resolution = dict(spec), resolution
        self.photo_align = photo_align(self.spec)
        self.whole_pictures = self.spec.get("detector") is None or self.photo_align is None
        self._detector: Any = None

    @property
    def detector(self) -> Any:
        """Built on first use (loading dlib's models takes a moment); None when pictures are taken whole."""
        if self._detector is None and not self.whole_pictures:
            from preprocessing.faces.detectors import make_detector

            self._detector = make_detector(self.spec["detector"], self.spec.get("detector_options") or {})
        return self._detector

    @property
    def detector_name(self) -> str:
        return "none (pictures are taken whole, as crops)" if self.whole_pictures else str(self.spec["detector"])

    def align(self, rgb: np.ndarray, faces: Sequence[Any]) -> list[AlignedFace]:
        """Crop each detected face as the faces stage would, with its matrix at the model's resolution."""
        from preprocessing.faces.align import align_face, resize_matrix, warp

        assert self.photo_align is not None, "no framing to align a detected face with"
        aligned = []
        for index, face in enumerate(faces):
            alignment = align_face(face, self.photo_align)
            matrix = resize_matrix(alignment.matrix, alignment.size, self.resolution)
            aligned.append(AlignedFace(index, tuple(face.box), float(face.score), warp(rgb, alignment), matrix))
        return aligned

    def whole(self, rgb: np.ndarray) -> AlignedFace:
        """The picture itself as the crop: its centred square, as the faces stage cut the domain's crops."""
        from preprocessing.faces.align import align_crop, crop_square, resize_matrix, warp

        align = self.spec["align"]
        height, width = rgb.shape[:2]
        crop_box = align.get("crop_box", 1.0) if align["method"] == "crop" else 1.0
        alignment = align_crop(width, height, align["size"], crop_box)
        matrix = resize_matrix(alignment.matrix, alignment.size, self.resolution)
        return AlignedFace(0, crop_square(width, height, crop_box), 1.0, warp(rgb, alignment), matrix)

    def faces_in(self, rgb: np.ndarray, seconds: dict[str, float] | None = None) -> list[AlignedFace]:
        """Every face the detector finds in an HxWx3 uint8 photo, aligned; times added to `seconds`."""
        seconds = {} if seconds is None else seconds
        started = time.perf_counter()
        if self.whole_pictures:
            aligned = [self.whole(rgb)]
            seconds["align"] = seconds.get("align", 0.0) + time.perf_counter() - started
            return aligned
        faces = self.detector.detect(rgb)
        detected = time.perf_counter()
        aligned = self.align(rgb, faces)
        seconds["detect"] = seconds.get("detect", 0.0) + detected - started
        seconds["align"] = seconds.get("align", 0.0) + time.perf_counter() - detected
        return aligned

    def find(self, path: Path, keep_photo: bool = False) -> PhotoFaces:
        """The faces of the photo at `path`; never raises for a bad photo, says why in `skipped`."""
        from preprocessing.images import DEFAULT_MAX_PIXELS, load_rgb

        result = PhotoFaces(Path(path))
        started = time.perf_counter()
        try:
            rgb = np.asarray(load_rgb(path, DEFAULT_MAX_PIXELS))
        except Exception as error:  # any undecodable or missing file: reported, never fatal
            result.skipped = f"unreadable: {type(error).__name__}: {error}"
            return result
        finally:
            result.seconds["load"] = time.perf_counter() - started
        result.size = (rgb.shape[1], rgb.shape[0])
        try:
            result.faces = self.faces_in(rgb, result.seconds)
        except Exception as error:  # a detector that chokes on one photo must not end a run of thousands
            result.skipped = f"detection failed: {type(error).__name__}: {error}"
            return result
        if not result.faces:
            result.skipped = f"no face: {self.detector_name} found none in {rgb.shape[1]}x{rgb.shape[0]}"
        elif keep_photo:
            result.photo = rgb
        return result


def _start(spec: Mapping[str, Any], resolution: int) -> None:
    global _WORKER
    _WORKER = FaceFinder(spec, resolution)
    _ = _WORKER.detector  # load the models now, not on the first photo


def _find(path: Path, keep_photo: bool) -> PhotoFaces:
    assert _WORKER is not None, "worker started without its finder"
    return _WORKER.find(path, keep_photo)


class FacePool:
    """Worker processes that find faces, each with its own FaceFinder; kept across calls (a worker takes
    about half a second to start and load its detector's models). A context manager; close() stops them."""

    def __init__(self, finder: FaceFinder, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a face pool needs at least 1 worker, got {workers}")
        self.spec, self.resolution, self.workers = finder.spec, finder.resolution, workers
        # not fork: the parent holds torch's threads (core/processes.py)
        self._pool = worker_pool(workers, _start, (finder.spec, finder.resolution))

    def submit(self, path: Path, keep_photo: bool) -> Future[PhotoFaces]:
        return self._pool.submit(_find, path, keep_photo)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FacePool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def find_faces(
    finder: FaceFinder, paths: Iterable[Path], *, keep_photo: bool = False, workers: int | FacePool = 0
) -> Iterator[PhotoFaces]:
    """Each photo's faces, in input order. `workers` > 0 (or a FacePool to reuse) finds them in processes,
    a few photos ahead of the consumer, so memory stays bounded however many photos there are; 0 finds
    them here."""
    if isinstance(workers, FacePool):
        if (workers.spec, workers.resolution) != (finder.spec, finder.resolution):
            raise ValueError("this face pool detects and aligns for another domain or resolution")
        yield from _find_in(workers, paths, keep_photo)
    elif workers > 0:
        with FacePool(finder, workers) as pool:
            yield from _find_in(pool, paths, keep_photo)
    else:
        for path in paths:
            yield finder.find(Path(path), keep_photo)


def _find_in(pool: FacePool, paths: Iterable[Path], keep_photo: bool) -> Iterator[PhotoFaces]:
    window = 4 * pool.workers + 4  # photos ahead per worker: 2 left the workers idle while a batch ran
    pending: deque[tuple[Path, Future[PhotoFaces]]] = deque()
    try:
        for path in map(Path, paths):
            try:
                pending.append((path, pool.submit(path, keep_photo)))
            except BrokenProcessPool as error:  # a worker died before this photo could even be queued
                raise _dead_worker(pending[0][0] if pending else path) from error
            if len(pending) >= window:
                yield _result(*pending.popleft())
        while pending:
            yield _result(*pending.popleft())
    finally:  # a consumer that stops early leaves no work queued in a pool that outlives this call
        for _, future in pending:
            future.cancel()


def _result(path: Path, future: Future[PhotoFaces]) -> PhotoFaces:
    try:
        return future.result()
    except BrokenProcessPool as error:
        raise _dead_worker(path) from error


def _dead_worker(path: Path) -> RuntimeError:
    return RuntimeError(
        f"{path}: the face-detection worker died while this photo was in flight (out of memory?); "
        f"photos before it are done, rerun with --workers 0 to find the photo that kills it"
    )


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(photos: int, cpus: int | None = None) -> int:
    """Workers worth starting for `photos` photos: none for a handful (a worker takes about half a second to
    start) or on one core; else one per core, up to 4. Detection is about two thirds of the work, so it
    gets the cores and the model the rest (model_threads; measured by benchmarks/translate.py)."""
    cpus = available_cpus() if cpus is None else cpus
    if photos < 8 or cpus < 2:
        return 0
    return min(4, cpus)


def model_threads(workers: int, cpus: int | None = None) -> int:
    """Threads for the model while `workers` processes detect: the cores they leave, at least one. Every
    operator call waits for all its threads, so a thread that shares a core with a detector stalls each
    call (benchmarks/README.md, translate)."""
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus - workers)


__all__ = [
    "AlignedFace",
    "FaceFinder",
    "FacePool",
    "PhotoFaces",
    "available_cpus",
    "default_workers",
    "find_faces",
    "model_threads",
]
