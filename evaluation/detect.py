"""A face detector (preprocessing/faces/detectors.py) over many images, upscaled first, in worker processes.

The model's outputs are small (32 px in the demo, 128-256 for real models) and AnimeFace's cascade does not
find faces much under 100 px, so each image is resized to `upscale` pixels a side (bicubic; never shrunk)
before detection. More is not better: upscaling blurs the edges AnimeFace looks for. Measured on the demo's
17 training drawings, downsampled to 64 px: found in 16, 17, 17, 14 and 0 of them at 96, 128, 160, 192 and
256 px; downsampled to 32 px: in at most 3 (at 128 px), whatever the size. Hence the default of 128, and
the stage reports the rate on real target faces treated the same way as the ceiling to read a rate against.
Landmarks and boxes come back in the coordinates of the upscaled image; every use here is a ratio or an
angle, which scaling does not change.

dlib and AnimeFace hold the GIL, so several images are detected at once in processes, each building its
detector once (as the faces stage does). Results do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

from core.processes import worker_pool
from preprocessing.faces.detectors import Face, make_detector

T = TypeVar("T")

_WORKER: Callable[[np.ndarray], Any] | None = None


def upscaled(rgb: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 resized so its longer side is `size` (bicubic); unchanged if already that large."""
    height, width = rgb.shape[:2]
    if max(height, width) >= size:
        return rgb
    factor = size / max(height, width)
    shape = (round(width * factor), round(height * factor))
    return np.asarray(Image.fromarray(rgb).resize(shape, Image.Resampling.BICUBIC))


def face_detector(name: str, options: Mapping[str, Any]) -> Callable[[np.ndarray], list[Face]]:
    """A registered detector's `detect` (picklable as functools.partial(face_detector, name, options))."""
    return make_detector(name, options).detect


def _start(factory: Callable[[], Callable[[np.ndarray], Any]]) -> None:
    global _WORKER
    _WORKER = factory()


def _run(job: tuple[np.ndarray, int]) -> Any:
    rgb, size = job
    assert _WORKER is not None
    return _WORKER(upscaled(rgb, size))


def run_all(
    images: Sequence[np.ndarray] | np.ndarray,
    factory: Callable[[], Callable[[np.ndarray], T]],
    *,
    upscale: int,
    workers: int = 1,
    what: str = "detecting faces",
) -> list[T]:
    """`factory()(upscaled(image))` for every image, in order: `factory` builds the detector (once per
    process) and must be picklable (a class, or functools.partial of a module-level function). `workers` > 1
    uses that many processes when there are enough images to pay for their start."""
    jobs = [(np.ascontiguousarray(rgb), upscale) for rgb in images]
    if workers > 1 and len(jobs) >= 4 * workers:
        with worker_pool(workers, _start, (factory,)) as pool:  # not fork: this process holds torch's threads
            return list(tqdm(pool.map(_run, jobs, chunksize=4), total=len(jobs), desc=what, leave=False))
    function = factory()
    return [function(upscaled(rgb, size)) for rgb, size in tqdm(jobs, desc=what, leave=False)]
