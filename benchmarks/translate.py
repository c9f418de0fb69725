"""Photos per second of `twingan translate` end to end, batched, against a loop that calls the model per face.

Why: the translator fills each batch with the faces of consecutive photos, which is what keeps a GPU
busy, and finds faces in worker processes while it runs the model; this measures what each buys on a
CPU end to end, where face detection is most of the work, against the loop that calls the model once
per face.

  baseline   for each photo: load, detect (the same detector), then for each face: align, one
             model.translate call under torch.no_grad, paste; the loop a user writes first
  batch B    inference.translate.Translator with batch_size B, faces found in this process
             (--batches; 4 is the CLI's default on a CPU, 16 on CUDA)
  workers    batch --worker-batch (4) with faces found in 1 and 2 worker processes
             (inference/photo_faces.py, one pool started before timing, as one CLI run starts one) while
             this process runs the model on the cores they leave (model_threads), as the CLI does

Every variant loads, detects, aligns, translates and pastes the same faces (outputs are not written:
PNG encoding is not the translator's cost). The photos are run in chunks (--chunk, 53: two rounds),
each chunk by every variant in a rotating order, so load from other processes falls on all variants
alike; a chunk is one pipeline fill and drain for the worker variants, so small chunks understate them.
Wall and CPU seconds are both reported. The model has the original's widths at 128 px (channel_base
4096, channel_max 256, as benchmarks/train_step.py), a 32-tag condition and random weights: speed does not
depend on training. The detector and alignment are the human domain's as params.yaml ships them (dlib
HOG, 5 points, max_side 1024, eyes aligned at 128 px).

    .venv/bin/python benchmarks/translate.py                    # ../shared/data/real/human, 106 photos (3.5 min)
    .venv/bin/python benchmarks/translate.py --photos 16 --batches 1 16 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "real" / "human"
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
HUMAN_FACES = {
    "detector": "dlib_hog",
    "detector_options": {"upsample": 1, "predictor": "5", "max_side": 1024},
    "align": {"method": "eyes", "size": 128, "eye_distance": 0.3, "eye_height": 0.4, "margin": 1.5, "shift_up": 0.0},
}
TAGS = ["green hair", "blue eyes"]


def pick(source: Path, count: int) -> list[Path]:
    """`count` photos spread evenly over the sorted folder (portraits, couples and group photos alike)."""
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in SUFFIXES)
    if count <= 0 or count >= len(files):
        return files
    return [files[round(i * (len(files) - 1) / (count - 1))] for i in range(count)] if count > 1 else files[:1]


def make_model(path: Path) -> None:
    from core.params import TagsParams
    from preprocessing.tags.vocabulary import Vocabulary
    from training.model_file import save_model
    from training.networks import NetworkConfig, TwinGAN

    vocabulary = Vocabulary.from_params(TagsParams()).tags
    torch.manual_seed(0)
    config = NetworkConfig(domains=("human", "anime"), resolution=128, channel_base=4096, channel_max=256,
                           tag_dim=len(vocabulary))  # fmt: skip
    save_model(path, TwinGAN(config), vocabulary=vocabulary, step=0, faces={"human": HUMAN_FACES}, train={})


class Baseline:
    """The per-face loop, with the translator's own detection, alignment, resize and paste code."""

    def __init__(self, model_path: Path) -> None:
        from preprocessing.faces.detectors import make_detector
        from training.conditioning import condition_vector
        from training.model_file import load_model

        self.model, info = load_model(model_path)
        self.detector = make_detector(HUMAN_FACES["detector"], HUMAN_FACES["detector_options"])
        self.detector.detect(np.zeros((64, 64, 3), np.uint8))  # models loaded before timing
        self.condition = condition_vector(info.config, info.vocabulary, 1, tags=TAGS)
        with torch.no_grad():
            self.model.translate(torch.zeros(1, 3, 128, 128), "human", "anime", self.condition)  # first call
        self.times = dict.fromkeys(("load", "detect", "align", "translate", "paste"), 0.0)

    def _lap(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.times[stage] += now - started
        return now

    def run(self, files: list[Path]) -> list[np.ndarray]:
        from inference.paste import paste_face
        from preprocessing.faces.align import align_face, resize_matrix, warp
        from preprocessing.images import load_rgb
        from training.data import to_images
        from training.samples import to_uint8

        portraits = []
        for path in files:
            t = time.perf_counter()
            try:
                rgb = np.asarray(load_rgb(path))
            except Exception:
                continue
            t = self._lap("load", t)
            faces = self.detector.detect(rgb)
            t = self._lap("detect", t)
            pasted = rgb
            for face in faces:
                alignment = align_face(face, HUMAN_FACES["align"])
                image = to_images(warp(rgb, alignment)[None], 128).contiguous()
                t = self._lap("align", t)
                with torch.no_grad():
                    portrait = to_uint8(self.model.translate(image, "human", "anime", self.condition))[0]
                portraits.append(portrait)
                t = self._lap("translate", t)
                pasted = paste_face(pasted, portrait, resize_matrix(alignment.matrix, alignment.size, 128))
                t = self._lap("paste", t)
        return portraits


class Batched:
    """`twingan translate`'s code path: inference.translate.Translator at one batch size, finding faces in
    this process or in a pool of worker processes (started once, before timing, as one CLI run does)."""

    def __init__(self, model_path: Path, batch: int, workers: int = 0) -> None:
        from inference.photo_faces import FacePool
        from inference.translate import Translator

        self.translator = Translator.from_file(model_path, source="human", target="anime", device="cpu",
                                               batch_size=batch)  # fmt: skip
        self.translator.detector.detect(np.zeros((64, 64, 3), np.uint8))
        self.translator.translate_tensor(torch.zeros(1, 3, 128, 128))  # first-call allocations, not timed
        self.pool = FacePool(self.translator.finder, workers) if workers else None
        if self.pool is not None:  # every worker started and its detector loaded
            warm = [self.pool.submit(model_path.parent / "absent.png", False) for _ in range(4 * workers)]
            [future.result() for future in warm]
        self.times = self.translator.times.seconds

    def run(self, files: list[Path]) -> list[np.ndarray]:
        with self.translator.threads_beside(self.pool.workers if self.pool else 0):  # as the CLI does
            results = self.translator.translate_photos(files, tags=TAGS, paste=True, workers=self.pool or 0)
            return [face.portrait for result in results for face in result.faces]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--photos", type=int, default=0, help="How many photos, spread over the folder (0: all).")
    parser.add_argument("--chunk", type=int, default=53, help="Photos per interleaved round.")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="Translator batch sizes.")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2],
                        help="Face-finding worker processes for extra variants.")  # fmt: skip
    parser.add_argument("--worker-batch", type=int, default=4, help="Batch size of the worker variants.")
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"--source: no such folder: {args.source} (the real photos live in ../shared/data/real)")
    files = pick(args.source, args.photos)
    if not files:
        raise SystemExit(f"--source: no image files in {args.source}")
    logging.getLogger("inference.translate").setLevel(logging.ERROR)  # photos without a face: counted, not listed
    names = ("baseline (model per face)", *(f"translator, batch {batch}" for batch in args.batches),
             *(f"batch {args.worker_batch}, {n} worker{'s' * (n > 1)}" for n in args.workers))  # fmt: skip
    wall, cpu, portraits = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0), {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="translate-bench-") as tmp:
        model_path = Path(tmp) / "twingan-128.pt"
        make_model(model_path)
        runners = [Baseline(model_path), *(Batched(model_path, batch) for batch in args.batches),
                   *(Batched(model_path, args.worker_batch, workers) for workers in args.workers)]  # fmt: skip
        variants = dict(zip(names, runners, strict=True))
        # Chunks of photos, each run by every variant in a rotating order: load from other processes on a
        # shared machine then falls on all variants alike.
        chunks = [files[i : i + args.chunk] for i in range(0, len(files), args.chunk)]
        for round_, chunk in enumerate(chunks):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                started, started_cpu = time.perf_counter(), time.process_time()
                portraits[name] += variants[name].run(chunk)
                wall[name] += time.perf_counter() - started
                cpu[name] += time.process_time() - started_cpu
        for runner in runners[1:]:
            runner.close()
    reference = portraits[names[0]]
    faces = len(reference)
    print(f"translate benchmark: {len(files)} photos from {args.source}, {faces} faces, 128 px original widths, "
          f"CPU, {torch.get_num_threads()} threads, chunks of {args.chunk} photos, variants interleaved")  # fmt: skip
    header = f"{'':26} {'seconds':>8} {'photos/s':>9} {'faces/s':>8} {'vs base':>8} {'CPU s':>7} {'vs base':>8}"
    print(header + f" {'detect':>7} {'model':>7}  max |portrait - baseline's|")
    for name in names:
        if len(portraits[name]) != faces:
            raise SystemExit(f"{name}: {len(portraits[name])} faces, the baseline translated {faces}")
        pairs = zip(portraits[name], reference, strict=True)
        worst = max((int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in pairs), default=0)
        times = variants[name].times
        print(f"{name:26} {wall[name]:8.2f} {len(files) / wall[name]:9.3f} {faces / wall[name]:8.2f} "
              f"{wall[names[0]] / wall[name]:7.2f}x {cpu[name]:7.1f} {cpu[names[0]] / cpu[name]:7.2f}x "
              f"{times['detect'] / wall[name]:7.0%} {times['translate'] / wall[name]:7.0%}  {worst}")  # fmt: skip
    print("  CPU s counts this process only (the workers' detection is not in it); stage seconds below are summed"
          " over processes, so with workers detect + model can exceed the wall time")  # fmt: skip
    for name in names:
        stages = ", ".join(f"{stage} {value:.2f}" for stage, value in variants[name].times.items())
        print(f"  {name}: {stages} s (of {wall[name]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
