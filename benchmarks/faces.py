"""Benchmark of the faces stage against the serial loop people write with dlib.

Why: detection dominates the cost of the faces stage; the pipeline around it (reading, aligning,
encoding, sharding, Prefect) should add little, and two workers should go faster than one loop.

  baseline      for each photo: load it, dlib HOG (upsample 1), 5-point shape, dlib.get_face_chip
                (256 px), save a PNG per face: the recipe of dlib's own examples
  stage         `flows.faces.run_faces` as params ship it for humans: process pool of 2, chunks of 4,
                dlib_hog with max_side 1024 (detect on a copy at most 1024 px; landmarks at full size)
  stage, full   the same with max_side 0 (full-resolution detection, as the baseline)

Also: the detector's own time summed over the images (one process, the stage's detector and options),
to show what the pipeline adds; and the stage's peak RSS on the set and on the set repeated 4 times
(memory must not grow with the input: crops stream into bounded shards).

    .venv/bin/python benchmarks/faces.py [--source ../shared/data/real/human] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "real" / "human"


def images(source: Path) -> list[Path]:
    return sorted(p for p in source.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))


def baseline(files: list[Path], out: Path) -> tuple[float, int]:
    import dlib
    from PIL import Image

    from preprocessing.faces.detectors import model_dir
    from preprocessing.images import load_rgb

    detector = dlib.get_frontal_face_detector()
    shape = dlib.shape_predictor(str(model_dir() / "shape_predictor_5_face_landmarks.dat"))
    started, faces = time.perf_counter(), 0
    for index, path in enumerate(files):
        rgb = np.asarray(load_rgb(path))
        for k, rect in enumerate(detector(rgb, 1)):
            chip = dlib.get_face_chip(rgb, shape(rgb, rect), size=256)
            Image.fromarray(chip).save(out / f"{index}_{k}.png")
            faces += 1
    return time.perf_counter() - started, faces


def detector_time(files: list[Path], max_side: int) -> float:
    from preprocessing.faces.detectors import make_detector
    from preprocessing.images import load_rgb

    detector = make_detector("dlib_hog", {"upsample": 1, "max_side": max_side})
    spent = 0.0
    for path in files:
        rgb = np.asarray(load_rgb(path))
        started = time.perf_counter()
        detector.detect(rgb)
        spent += time.perf_counter() - started
    return spent


def stage(source: Path, root: Path, max_side: int, copies: int = 1, chunk: int = 4) -> tuple[float, int, float]:
    """`twingan ingest` then `twingan faces` in subprocesses; the faces run is timed (its own process,
    so its peak RSS is measurable): (seconds, faces kept, peak RSS MiB of the faces process)."""
    root.mkdir(parents=True)
    folder = root / "photos"
    for copy in range(copies):  # copies differ by one byte, so ingest keeps them all
        target = folder / f"copy{copy}"
        target.mkdir(parents=True)
        for path in images(source):
            data = path.read_bytes()
            (target / path.name).write_bytes(data + b"\0" * copy if path.suffix.lower() in (".jpg", ".jpeg") else data)
    params = {
        "domains": {"human": {"source": {"kind": "folder", "path": "photos"},
                              "detector": {"name": "dlib_hog", "options": {"upsample": 1, "max_side": max_side}},
                              "align": {"method": "eyes", "size": 256},
                              # keep every face, as the baseline does
                              "select": {"faces": "all", "min_face_size": 1, "max_roll_degrees": 180}}},
        "faces": {"executor": {"kind": "process", "workers": 2, "chunk_size": chunk}},
    }  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect"))
    twingan = [sys.executable, "-m", "twingan"]
    subprocess.run([*twingan, "ingest", "-d", "human"], cwd=root, env=env, check=True, capture_output=True)
    script = (
        "import resource, sys, time; from core.environment import configure_environment; configure_environment();"
        "from flows.faces import run_faces; from core.params import load_params; from prefect import flow;"
        "t = time.perf_counter(); flow(lambda: None, name='warm-up')(); cold = time.perf_counter() - t;"
        "l = load_params('params.yaml'); t = time.perf_counter(); m = run_faces(l, 'human');"
        "print(time.perf_counter() - t, m['faces_kept'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, cold)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    seconds, faces, self_kib, cold = done.stdout.strip().splitlines()[-1].split()
    print(f"  ({root.name}: Prefect's temporary server took {float(cold):.1f} s to start, before timing)", flush=True)
    return float(seconds), int(faces), int(self_kib) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"--source: no such folder: {args.source} (the real photos live in ../shared/data/real)")
    from core.environment import configure_environment

    configure_environment(REPO)
    files = images(args.source)
    with tempfile.TemporaryDirectory(prefix="faces-bench-") as tmp:
        work = Path(tmp)
        (work / "loop").mkdir()
        base_s, base_faces = baseline(files, work / "loop")
        det_full = detector_time(files, 0)
        det_small = detector_time(files, 1024)
        stage_s, stage_faces, rss1 = stage(args.source, work / "stage", 1024)
        full_s, full_faces, _ = stage(args.source, work / "full", 0)
        shutil.rmtree(work / "stage")
        x4_s, x4_faces, rss4 = stage(args.source, work / "stage4", 1024, copies=4)
    print(f"faces benchmark: {len(files)} photos from {args.source}, 2 cores")
    print(f"{'':44} {'seconds':>8} {'faces':>6} {'faces/s':>8}")
    print(
        f"{'baseline (serial HOG + get_face_chip + PNG)':44} {base_s:8.2f} {base_faces:6d} {base_faces / base_s:8.1f}"
    )
    print(f"{'stage, 2 processes, max_side 1024':44} {stage_s:8.2f} {stage_faces:6d} {stage_faces / stage_s:8.1f}")
    print(f"{'stage, 2 processes, full resolution':44} {full_s:8.2f} {full_faces:6d} {full_faces / full_s:8.1f}")
    print(f"speed-up, shipped stage vs baseline: {base_s / stage_s:.2f}x; full-resolution stage vs baseline: "
          f"{base_s / full_s:.2f}x")  # fmt: skip
    print(f"detector's own time, one process: {det_small:.2f} s at max_side 1024, {det_full:.2f} s at full size; "
          f"stage / detector time on 2 cores: {stage_s / det_small:.2f} (1.0 = no overhead and no parallel gain, "
          "0.5 = perfect 2-core scaling)")  # fmt: skip
    print(f"peak RSS of the faces process: {rss1:.0f} MiB on the set, {rss4:.0f} MiB on the set x4 "
          f"({x4_faces} faces in {x4_s:.1f} s); the worker processes are not included")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
