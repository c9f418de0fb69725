"""Benchmark of the face detectors and chains, per domain, against today's defaults, on real images.

Why: the faces stage keeps only the faces its detector finds and frames well; a faster detector that
keeps fewer faces, or keeps fur and muzzles, is worse. So each candidate runs through the faces stage's own
per-image code (`preprocessing.faces.extract.process_image`: detect, select, align, crop, exactly as a
stage run with that `detector:` would) and every kept face is judged against a hand-checked list of the
faces in the images (`benchmarks/detectors_truth.csv`: every face box in each of ../shared/data/real's
images, checked by eye on contact sheets; `--propose` drafts such a list for other images).

A kept face is
  usable   its box overlaps a listed face (IoU >= 0.3) and that face lies whole inside the crop
           (>= 95% of the listed box's area, carried into the crop by the alignment matrix);
  partial  on a listed face but not usable: a muzzle, one eye, half a turned head off the frame;
  false    on no listed face (centre outside every listed box).
Yield is the share of images with a listed face whose kept face is usable. CPU is process time per image
in this process, single-threaded as a faces stage worker is, so other work on the machine inflates it little.

    .venv/bin/python benchmarks/detectors.py [--domains human anime cat] [--sheets plots/bench-detectors]
    .venv/bin/python benchmarks/detectors.py --propose human --images ../shared/data/real/human --out draft.csv

Needs the real weights: $TWINGAN_DETECTOR_WEIGHTS or, by default here, ../shared/models.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
REAL = SHARED / "data" / "real"
TRUTH = REPO / "benchmarks" / "detectors_truth.csv"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
USABLE_IOU = 0.3
WHOLE_INSIDE = 0.95

Spec = dict[str, Any]

# Each domain's candidates: a label and a `detector:` spec as params.yaml writes it. The first row is
# today's default (read from params.yaml at run time, so the comparison follows the committed profile).
ANIME_BORDER = {"border": 0.25, "upscale_below": 96}
CANDIDATES: dict[str, list[tuple[str, Spec]]] = {
    "human": [
        ("retinaface", {"name": "retinaface", "options": {}}),
        ("yunet s", {"name": "yunet", "options": {"model": "s"}}),
        ("yunet n", {"name": "yunet", "options": {"model": "n"}}),
    ],
    "anime": [
        ("animeface + border", {"name": "animeface", "options": ANIME_BORDER}),
        ("lbpcascade_animeface", {"name": "opencv_cascade", "options": {}}),
        ("animefaceboxes", {"name": "animefaceboxes", "options": {}}),
        (
            "animefaceboxes, else animeface + border",
            {
                "name": "fallback",
                "options": {
                    "detectors": [
                        {"name": "animefaceboxes", "options": {"box": "face"}},
                        {"name": "animeface", "options": ANIME_BORDER},
                    ]
                },
            },
        ),
        (
            "... else afd_anime_hog (no licence)",
            {
                "name": "fallback",
                "options": {
                    "detectors": [
                        {"name": "animefaceboxes", "options": {"box": "face"}},
                        {"name": "animeface", "options": ANIME_BORDER},
                        {"name": "dlib_svm", "options": {"model": "afd_anime_hog"}},
                    ]
                },
            },
        ),
    ],
    "cat": [
        ("pycatfd (no licence)", {"name": "dlib_svm", "options": {"model": "pycatfd"}}),
        (
            "yolox cat, pycatfd inside; else pycatfd",
            {
                "name": "fallback",
                "options": {
                    "detectors": [
                        {
                            "name": "within",
                            "options": {
                                "object": {"name": "yolox"},
                                "face": {"name": "dlib_svm", "options": {"threshold": -0.6, "max_side": 480}},
                            },
                        },
                        {"name": "dlib_svm", "options": {"threshold": 0.0}},
                    ]
                },
            },
        ),
    ],
}


# Framing for the new candidates where the old one was set for the old detector's box (the cat cascade's
# muzzle box needed margin 2.0); today's default keeps the params.yaml framing.
CANDIDATE_ALIGN: dict[str, dict[str, Any]] = {"cat": {"margin": 1.3, "shift_up": 0.05}}
# And the roll limit: a profile's eye line, from detectors that find profiles, tilts more than a frontal
# face's (YuNet: 49 degrees on a head turned 79), so 45 would drop the turned heads they exist to find.
CANDIDATE_SELECT: dict[str, dict[str, Any]] = {"human": {"max_roll_degrees": 60}}


# What drafts a truth list (--propose), in order: a box is added when it overlaps none already there. Each
# domain's boxes keep one convention: YuNet's forehead-to-chin for people, AnimeFace's face box (FaceBoxes'
# head box shrunk to it) for drawings, pycatfd's ears-to-chin for cats.
PROPOSE: dict[str, list[Spec]] = {
    "human": [{"name": "yunet", "options": {"model": "n"}}, {"name": "yunet"}, {"name": "retinaface"}],
    "anime": [
        {"name": "animeface", "options": ANIME_BORDER},
        {"name": "animefaceboxes", "options": {"box": "face"}},
        {"name": "opencv_cascade"},
    ],
    "cat": [{"name": "dlib_svm"}],
}

# The candidate each domain's real-data settings use (docs/faces.md).
BEST = {
    "human": "yunet n",
    "anime": "animefaceboxes, else animeface + border",
    "cat": "yolox cat, pycatfd inside; else pycatfd",
}

# dlib's CNN takes about 12 CPU-s per photo here: only with --slow.
SLOW: dict[str, list[tuple[str, Spec]]] = {"human": [("dlib_cnn", {"name": "dlib_cnn", "options": {"max_side": 1024}})]}


@dataclass
class Outcome:
    label: str
    images: int = 0
    with_truth: int = 0
    usable: int = 0
    partial: int = 0
    false: int = 0
    none: int = 0
    cpu: float = 0.0
    error: str = ""
    usable_turned: int = 0
    turned: int = 0


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_truth(path: Path) -> dict[tuple[str, str], list[tuple[float, float, float, float]]]:
    """(domain, file) -> listed face boxes; an image listed with an empty box has no face."""
    truth: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            boxes = truth.setdefault((row["domain"], row["file"]), [])
            if row["x0"]:
                boxes.append(tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1")))  # type: ignore[arg-type]
    return truth


def turned_heads() -> set[str]:
    """Files of ../shared/data/real/index.csv whose notes give a yaw of 45 degrees or more ("yaw=+66 deg",
    "yaw>45") or call the head a profile or turned."""
    index = REAL / "index.csv"
    if not index.is_file():
        return set()
    turned = set()
    with index.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if re.search(r"\bprofile\b|\bturned\b", row["notes"]):
                turned.add(row["file"].split("/", 1)[1])
            for sign, value in re.findall(r"yaw\s*([=>])\s*([+-]?\d+)", row["notes"]):
                if abs(int(value)) >= 45 or (sign == ">" and int(value) >= 45):
                    turned.add(row["file"].split("/", 1)[1])
    return turned


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def share_inside(box: Sequence[float], matrix: np.ndarray, size: int) -> float:
    """Share of `box` (source pixels) that lands inside the crop square, measured on its corners' hull."""
    import cv2

    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    frame = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float32)
    area = cv2.contourArea(mapped.astype(np.float32))
    if area <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(mapped.astype(np.float32), frame)
    return float(inter) / float(area)


def judge(face: dict[str, Any], boxes: list[tuple[float, float, float, float]]) -> str:
    box = face["box"]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    matrix = np.asarray(face["transform"], dtype=np.float64).reshape(2, 3)
    best = max(boxes, key=lambda b: iou(box, b), default=None)
    if best is not None and iou(box, best) >= USABLE_IOU:
        return "usable" if share_inside(best, matrix, face["crop_size"]) >= WHOLE_INSIDE else "partial"
    if any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes):
        return "partial"
    return "false"


def domain_settings(domain: str) -> tuple[Spec, dict[str, Any], dict[str, Any]]:
    """Today's detector spec, align and select of `domain` in params.yaml."""
    from core.params import load_params

    spec = load_params(REPO / "params.yaml").domain(domain)
    return (
        {"name": spec.detector.name, "options": dict(spec.detector.options)},
        spec.align.model_dump(),
        spec.select.model_dump(),
    )


def run_candidate(
    label: str, detector: Spec, domain: str, files: list[Path], align: dict, select: dict, truth, turned, sheet
) -> Outcome:
    from preprocessing.faces.extract import FacesJob, ImageRef, process_image

    outcome = Outcome(label)
    job = FacesJob(
        domain=domain,
        raw_dir=str(files[0].parent),
        detector=detector["name"],
        detector_options=dict(detector.get("options") or {}),
        align=align,
        select=select,
        crop_format="png",
        jpeg_quality=95,
    )
    try:
        process_image(ImageRef("warm-up", files[0].name), job)  # builds the detector: not timed
    except Exception as error:  # a missing weights file or library: say so, keep benchmarking the rest
        outcome.error = f"{type(error).__name__}: {error}"
        return outcome
    for path in files:
        boxes = truth.get((domain, path.name))
        start = time.process_time()
        result = process_image(ImageRef(path.stem, path.name), job)
        outcome.cpu += time.process_time() - start
        outcome.images += 1
        is_turned = path.name in turned
        outcome.turned += is_turned
        if boxes:
            outcome.with_truth += 1
        if not result.faces:
            outcome.none += 1
            continue
        verdict = judge(result.faces[0], boxes or [])
        if verdict == "usable" and boxes:
            outcome.usable += 1
            outcome.usable_turned += is_turned
        elif verdict == "partial":
            outcome.partial += 1
        else:
            outcome.false += 1
        if sheet is not None:
            sheet.append((path.name, result.crops[0], verdict))
    return outcome


def draw_sheet(items: list[tuple[str, bytes, str]], path: Path, title: str) -> None:
    """Kept crops with their file names, framed green (usable), orange (partial) or red (false)."""
    import io

    from PIL import Image, ImageDraw

    cell, columns = 96, 10
    rows = max(1, -(-len(items) // columns))
    sheet = Image.new("RGB", (columns * cell, rows * (cell + 12) + 16), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), title, fill="black")
    colours = {"usable": (0, 160, 0), "partial": (240, 140, 0), "false": (220, 0, 0)}
    for i, (name, data, verdict) in enumerate(items):
        x, y = (i % columns) * cell, 16 + (i // columns) * (cell + 12)
        crop = Image.open(io.BytesIO(data)).convert("RGB").resize((cell - 6, cell - 6))
        draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colours[verdict])
        sheet.paste(crop, (x + 3, y + 3))
        draw.text((x + 2, y + cell), name[:16], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def propose(domain: str, folder: Path, out: Path, sheet_path: Path | None) -> None:
    """Draft a truth list: every face the domain's strongest detectors find, merged; check it by eye."""
    from preprocessing.faces.detectors import make_detector
    from preprocessing.images import load_rgb

    detectors = [make_detector(spec["name"], spec.get("options") or {}) for spec in PROPOSE[domain]]
    rows = []
    for path in image_files(folder):
        rgb = np.asarray(load_rgb(str(path)))
        merged: list[tuple[float, float, float, float]] = []
        for detector in detectors:
            for face in detector.detect(rgb):
                if all(iou(face.box, b) < USABLE_IOU for b in merged):
                    merged.append(tuple(round(v, 1) for v in face.box))  # type: ignore[arg-type]
        rows += [(domain, path.name, *b) for b in merged] or [(domain, path.name, "", "", "", "")]
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["domain", "file", "x0", "y0", "x1", "y1"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows for {len(image_files(folder))} images to {out}: check them by eye")


def draw_truth(domain: str, folder: Path, truth_path: Path, out: Path) -> None:
    """Sheets of the listed faces drawn on each image, numbered in file order, for checking the list by eye."""
    from PIL import Image, ImageDraw, ImageOps

    truth = read_truth(truth_path)
    files = image_files(folder)
    cell, columns, per_sheet = 220, 6, 36
    for start in range(0, len(files), per_sheet):
        chunk = files[start : start + per_sheet]
        rows = -(-len(chunk) // columns)
        sheet = Image.new("RGB", (columns * cell, rows * (cell + 14)), "white")
        draw = ImageDraw.Draw(sheet)
        for i, path in enumerate(chunk):
            image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            scale = (cell - 4) / max(image.size)
            thumb = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
            tile = ImageDraw.Draw(thumb)
            for box in truth.get((domain, path.name), []):
                tile.rectangle([v * scale for v in box], outline=(255, 0, 0), width=2)
            x, y = (i % columns) * cell, (i // columns) * (cell + 14)
            sheet.paste(thumb, (x + 2, y + 2))
            draw.text((x + 2, y + cell), f"{start + i} {path.name[:28]}", fill="black")
        out.mkdir(parents=True, exist_ok=True)
        sheet.save(out / f"{domain}-{start // per_sheet}.png")


def _tree_digest(folder: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def stage_speed(domain: str, folder: Path, specs: list[tuple[str, Spec]]) -> None:
    """The faces stage itself (`flows.faces.run_faces`, process pool) on `folder`, per detector with 1 and 2
    workers: images per second, and whether 1 and 2 workers wrote the same bytes. One process, one Prefect
    server (started before timing), the runs interleaved."""
    import shutil
    import subprocess
    import tempfile

    import yaml

    from core.environment import configure_environment

    configure_environment(REPO)
    from prefect import flow

    from core.params import load_params
    from flows.faces import run_faces

    flow(lambda: None, name="warm-up")()
    _, align, select = domain_settings(domain)
    with tempfile.TemporaryDirectory(prefix="detectors-stage-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        params = {"domains": {domain: {"source": {"kind": "folder", "path": str(folder)}}}}
        (base / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        ingest = [sys.executable, "-m", "twingan", "ingest", "-d", domain]
        subprocess.run(ingest, cwd=base, check=True, capture_output=True)
        raw = base / "data" / "raw" / domain
        images = sum(1 for p in raw.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        print(f"\nfaces@{domain} stage on {folder} ({images} images ingested), process pool:")
        print("| detector | workers | seconds | images/s | vs today, same workers | 1 and 2 workers same bytes |")
        print("|---|---|---|---|---|---|")
        base_seconds: dict[int, float] = {}
        for label, spec in specs:
            digests = {}
            for workers in (1, 2):
                root = Path(tmp) / f"run-{len(base_seconds)}-{workers}"
                shutil.copytree(base, root)
                params["domains"][domain].update(detector=spec, align=align, select=select)
                params["faces"] = {"executor": {"kind": "process", "workers": workers, "chunk_size": 8}}
                (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
                loaded = load_params(root / "params.yaml")
                start = time.perf_counter()
                run_faces(loaded, domain)
                seconds = time.perf_counter() - start
                digests[workers] = _tree_digest(root / "data" / "faces" / domain)
                base_seconds.setdefault(workers, seconds)
                same = "" if workers == 1 else ("yes" if digests[1] == digests[2] else "**no**")
                print(
                    f"| {label} | {workers} | {seconds:.1f} | {images / seconds:.2f} | "
                    f"{base_seconds[workers] / seconds:.2f}x | {same} |",
                    flush=True,
                )
                shutil.rmtree(root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--truth", type=Path, default=TRUTH)
    parser.add_argument("--images", type=Path, default=REAL, help="folder holding <domain>/ image folders")
    parser.add_argument("--sheets", type=Path, help="write a contact sheet of the kept faces per candidate here")
    parser.add_argument("--propose", choices=list(CANDIDATES), help="draft a truth list for --images instead")
    parser.add_argument("--out", type=Path, default=Path("detectors_truth_draft.csv"))
    parser.add_argument("--stage", action="store_true", help="time the faces stage itself, today vs the best")
    parser.add_argument("--slow", action="store_true", help="also dlib_cnn (about 12 CPU-s per photo)")
    parser.add_argument("--check-truth", type=Path, help="draw the listed faces on the images into this folder")
    args = parser.parse_args()
    os.environ.setdefault("TWINGAN_DETECTOR_WEIGHTS", str(SHARED / "models"))
    from core.processes import single_threaded_math

    single_threaded_math()  # as in a faces stage worker: one thread each for torch, OpenCV and onnxruntime
    if args.propose:
        propose(args.propose, args.images, args.out, None)
        return 0
    if args.check_truth:
        for domain in args.domains:
            draw_truth(domain, args.images / domain, args.truth, args.check_truth)
        return 0
    if not args.images.is_dir():
        print(f"{args.images}: not found (the real images of ../shared/data/real)", file=sys.stderr)
        return 2
    if args.stage:
        for domain in args.domains:
            default, _, _ = domain_settings(domain)
            best = [(label, spec) for label, spec in CANDIDATES[domain] if label == BEST[domain]]
            stage_speed(domain, args.images / domain, [(f"today: {default['name']}", default), *best])
        return 0
    truth = read_truth(args.truth)
    turned = turned_heads()
    for domain in args.domains:
        files = image_files(args.images / domain)
        default, align, select = domain_settings(domain)
        slow = SLOW.get(domain, []) if args.slow else []
        rows = [(f"today: {default['name']}", default), *slow, *CANDIDATES[domain]]
        listed = sum(1 for f in files if truth.get((domain, f.name)))
        print(f"\n{domain}: {len(files)} images of {args.images / domain}, {listed} with a listed face")
        print("| detector | usable | partial | false | none | turned heads usable | CPU-s/image | CPU vs today |")
        print("|---|---|---|---|---|---|---|---|")
        base_cpu = None
        for number, (label, spec) in enumerate(rows):
            sheet: list | None = [] if args.sheets else None
            framing = align if number == 0 else {**align, **CANDIDATE_ALIGN.get(domain, {})}
            keeping = select if number == 0 else {**select, **CANDIDATE_SELECT.get(domain, {})}
            outcome = run_candidate(label, spec, domain, files, framing, keeping, truth, turned, sheet)
            if outcome.error:
                print(f"| {label} | not run: {outcome.error} |")
                continue
            per_image = outcome.cpu / max(outcome.images, 1)
            base_cpu = base_cpu or per_image
            turned_cell = f"{outcome.usable_turned}/{outcome.turned}" if outcome.turned else "-"
            print(
                f"| {label} | {outcome.usable / max(outcome.with_truth, 1):.1%} | {outcome.partial} | "
                f"{outcome.false / max(outcome.images, 1):.1%} ({outcome.false}) | {outcome.none} | {turned_cell} | "
                f"{per_image:.3f} | {per_image / base_cpu:.2f}x |"
            )
            if sheet is not None:
                name = "".join(c if c.isalnum() else "_" for c in label).strip("_")
                draw_sheet(sheet, args.sheets / domain / f"{name}.png", f"{domain}: {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
