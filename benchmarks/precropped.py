"""Pre-cut face crops (align method "crop") against detecting the face in each picture, on the real crops of
../shared/data/train: how many pictures enter the pipeline, and how closely the framing measured of the crops
lets a new photo's face be cut as the dataset cut its faces.

Why: most face datasets come as crops, and a domain that can only keep the faces its detector finds in a
picture loses most of them (AnimeFace finds few faces in a 64 px drawing that the face fills). The baseline is
that detect-and-align path as the faces stage ran it before crops could be declared: the domain's detector as
it came (AnimeFace without its border and upscaling), with the demo's framing. For each set it prints the
share of pictures kept by each path (the ratio is crop over detect), the framing the crops measure, and the
agreement: the median and 90th percentile `offset` (the farthest corner of a new photo's crop from the
dataset's own, in crop sides) and the share of crops whose eyes lie within 5% of the framing's places.

    .venv/bin/python benchmarks/precropped.py                 # 300 pictures per set (about 2 minutes)
    .venv/bin/python benchmarks/precropped.py --per-set 2000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TRAIN = ROOT.parent / "shared" / "data" / "train"

# name, file glob, crop size, detector for the crop check and framing, the detect-and-align baseline.
SETS: list[tuple[str, str, int, tuple[str, dict[str, Any]], tuple[str, dict[str, Any], dict[str, Any]]]] = [
    ("Getchu 64 px (Anime-Face-Dataset)", "anime/mysdcgan_*", 64, ("animeface", {}),
     ("animeface", {"border": 0, "upscale_below": 0}, {"method": "box", "margin": 1.5, "shift_up": 0.1})),
    ("Danbooru 256 px fan art", "anime/sytwu_*", 64, ("animeface", {}),
     ("animeface", {"border": 0, "upscale_below": 0}, {"method": "box", "margin": 1.5, "shift_up": 0.1})),
    ("moeimouto ~160 px", "anime/jyanime_*", 64, ("animeface", {}),
     ("animeface", {"border": 0, "upscale_below": 0}, {"method": "box", "margin": 1.5, "shift_up": 0.1})),
    ("UTKFace 200 px aligned", "human/agepro_*", 128, ("yunet", {}),
     ("yunet", {}, {"method": "eyes", "eye_distance": 0.3, "eye_height": 0.4})),
    ("selfie2anime 256 px", "human/zeka_*", 128, ("yunet", {}),
     ("yunet", {}, {"method": "eyes", "eye_distance": 0.3, "eye_height": 0.4})),
    ("cat faces 64 px", "cat/hujcat_*", 64, ("dlib_svm", {}),
     ("dlib_svm", {}, {"method": "box", "margin": 1.3, "shift_up": 0.05})),
]  # fmt: skip


def _job(domain: str, detector: str, options: dict[str, Any], align: dict[str, Any], require: bool) -> Any:
    from core.params import AlignParams, SelectParams
    from preprocessing.faces.extract import FacesJob

    select = SelectParams(min_face_size=32, require_face=require, max_roll_degrees=60).model_dump()
    return FacesJob(domain, "/", detector, options, AlignParams(**align).model_dump(), select, "png", 95)


def _run(files: list[Path], job: Any) -> tuple[list[dict[str, Any]], float]:
    from preprocessing.faces.extract import ImageRef, process_image

    started = time.process_time()
    rows = [row for path in files for row in process_image(ImageRef(path.name, str(path)[1:]), job).faces]
    return rows, (time.process_time() - started) / max(1, len(files))


def measure(name: str, pattern: str, size: int, check: tuple[str, dict[str, Any]],
            baseline: tuple[str, dict[str, Any], dict[str, Any]], per_set: int) -> dict[str, Any]:  # fmt: skip
    from preprocessing.faces.framing import _detected, _eye_framing, framing_errors, framing_summary, measure_framing

    files = sorted(TRAIN.glob(pattern))
    random.Random(0).shuffle(files)
    files = files[:per_set]
    crop_job = _job("x", check[0], check[1], {"method": "crop", "size": size}, True)
    crops, crop_cpu = _run(files, crop_job)
    framing = measure_framing(crops, crop_job.align)
    summary = framing_summary(framing, framing_errors(crops, framing))
    # The eye framing on its own (what eye-aligning a new photo's detected face with it gives), when one fits.
    eyes = _eye_framing(_detected(crops), {**framing, "level": True}) if framing else None
    eye_summary = framing_summary(eyes, framing_errors(crops, eyes)) if eyes else {}
    detect_job = _job("x", baseline[0], baseline[1], {**baseline[2], "size": size}, True)
    detected, detect_cpu = _run(files, detect_job)
    kept_crop, kept_detect = len(crops) / len(files), len({r["image_id"] for r in detected}) / len(files)
    return {"set": name, "pictures": len(files), "crop": kept_crop, "detect": kept_detect, "check": check[0],
            "baseline": f"{baseline[0]} {baseline[1] or ''}".strip(), "crop_cpu": crop_cpu,
            "detect_cpu": detect_cpu, **summary,
            "eye_offset_median": eye_summary.get("offset_median"), "eye_within": eye_summary.get("eyes_within_5pct"),
            "eye_error_median": eye_summary.get("eye_error_median")}  # fmt: skip


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-set", type=int, default=300)
    parser.add_argument("--sets", nargs="*", default=[], help="only the sets whose name holds one of these words")
    args = parser.parse_args()
    if not TRAIN.is_dir():
        sys.exit(f"{TRAIN}: not there (../shared beside the repository holds the real training images)")
    os.environ.setdefault("TWINGAN_DETECTOR_WEIGHTS", str(ROOT.parent / "shared" / "models"))
    from core.processes import single_threaded_math

    single_threaded_math()
    print(
        "| set | pictures | kept as crops (checked by) | kept by detect-and-align (baseline) | ratio | framing "
        "| offset median / p90 | eye framing: offset median, eye error median, eyes within 5% "
        "| CPU-s per picture, crop / detect |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, pattern, size, check, baseline in SETS:
        if args.sets and not any(word.lower() in name.lower() for word in args.sets):
            continue
        r = measure(name, pattern, size, check, baseline, args.per_set)
        if r["method"] == "eyes":
            framing = f"eyes: distance {r['eye_distance']:.3f}, height {r['eye_height']:.3f}"
        elif r["method"] == "box":
            level = "levelled" if r["level"] else "as cut"
            framing = f"box: margin {r['margin']:.2f}, shift {r['shift_up']:.2f}, {level}"
        else:
            framing = "none (no face found)"
        ratio = f"{r['crop'] / r['detect']:.2f}x" if r["detect"] else "inf"
        offsets = f"{_pct(r.get('offset_median'))} / {_pct(r.get('offset_p90'))}"
        eye = "-"
        if r["eye_offset_median"] is not None:
            eye = f"{_pct(r['eye_offset_median'])}, {_pct(r['eye_error_median'])}, {_pct(r['eye_within'])}"
        print(f"| {r['set']} | {r['pictures']} | {_pct(r['crop'])} ({r['check']}) | {_pct(r['detect'])} "
              f"({r['baseline']}) | {ratio} | {framing} | {offsets} | {eye} "
              f"| {r['crop_cpu']:.3f} / {r['detect_cpu']:.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
