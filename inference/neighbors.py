"""`twingan neighbors`: the dataset crops of each domain nearest to a face, through the shared embedding.

A photo's faces are found and cropped exactly as the source domain's training crops were (the model file
records the detector and the `align` spec: `preprocessing.faces.align.align_face`, shared with the faces
stage and `twingan translate`), embedded in the source domain (inference/embeddings.py) and looked up in
each requested domain's index (data/index, built by the index stage). `--aligned` skips detection for a
picture that already is a crop (a dataset crop, an anime drawing framed like the training crops).

Out: one table row per neighbour (face, domain, rank, score, face id, split) and a grid PNG: per face, a
row with the query crop, then a row per domain of its k nearest crops, read from the dataset shards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.devices import resolve_device
from core.errors import UserError
from inference.embeddings import embed_pixels, encoder_digest
from inference.vector_index import Hit, NeighborIndex, read_crops
from training.checkpoint import CheckpointError
from training.data import to_images
from training.model_file import ModelInfo, load_model
from training.networks import TwinGAN
from training.samples import grid, save_png

log = logging.getLogger("twingan.neighbors")

MAX_CELL = 256  # grid cells are the dataset crops' size, at most this


class NeighborsError(UserError, ValueError):
    """A request the index or the model cannot answer; the message names the option or file to fix."""


@dataclass(frozen=True)
class QueryFace:
    """One face to look up: the crop as training would have cut it, and where it was in the photo."""

    index: int  # 0 = the largest face (the detector's order); 0 for an --aligned picture
    crop: np.ndarray  # (S, S, 3) uint8
    box: tuple[float, float, float, float] | None  # in photo pixels; None for an --aligned picture


@dataclass(frozen=True)
class NeighborResult:
    faces: list[QueryFace]
    hits: list[dict[str, list[Hit]]]  # per face: domain -> its k nearest crops, best first
    grid: np.ndarray  # (H, W, 3) uint8


def _read(photo: Path) -> np.ndarray:
    from preprocessing.images import DEFAULT_MAX_PIXELS, load_rgb

    if not photo.is_file():
        raise NeighborsError(f"{photo}: no such file")
    try:
        return np.array(load_rgb(photo, DEFAULT_MAX_PIXELS))  # writable: torch.from_numpy warns on read-only arrays
    except (OSError, ValueError) as error:
        raise NeighborsError(f"{photo}: not a readable image ({error})") from None


def query_faces(photo: Path, info: ModelInfo, source: str, *, aligned: bool, model_path: Path) -> list[QueryFace]:
    """The faces of `photo` cropped for the model: every face the source domain's detector finds (largest
    first), or the whole picture (centre square) when `aligned`."""
    rgb = _read(photo)
    if aligned:
        height, width = rgb.shape[:2]
        side = min(height, width)
        if height != width:
            log.info("%s: %dx%d is not square; using its centre %dx%d", photo, width, height, side, side)
        top, left = (height - side) // 2, (width - side) // 2
        return [QueryFace(0, np.ascontiguousarray(rgb[top : top + side, left : left + side]), None)]
    from inference.photo_faces import FaceFinder

    try:
        spec = info.faces_of(source, model_path)
    except CheckpointError as error:
        raise NeighborsError(f"{error}; or pass --aligned with a picture that is already a face crop") from None
    finder = FaceFinder(spec, info.config.resolution)
    faces = finder.faces_in(rgb)
    if not faces:
        raise NeighborsError(
            f"{photo}: {spec['detector']} found no {source} face; if the picture is already a face crop, pass "
            "--aligned (or --from another domain)"
        )
    out = [QueryFace(face.index, face.crop, tuple(float(v) for v in face.box)) for face in faces]
    log.info("%s: %d %s face(s) found by %s", photo, len(out), source, finder.detector_name)
    return out


def check_request(index: NeighborIndex, domains: Sequence[str], k: int, nprobe: int | None = None) -> None:
    """Unknown domains, a k larger than an index, a silly nprobe: errors naming --domains, --k, --nprobe."""
    if nprobe is not None and nprobe < 1:
        raise NeighborsError(f"--nprobe {nprobe}: must be at least 1")
    if not domains:
        raise NeighborsError("--domains: name at least one domain")
    unknown = [domain for domain in domains if domain not in index.domains]
    if unknown:
        raise NeighborsError(
            f"--domains: {', '.join(map(repr, unknown))} not in the index {index.folder} "
            f"(it holds {', '.join(index.domains)})"
        )
    if k < 1:
        raise NeighborsError(f"--k {k}: must be at least 1")
    small = [(domain, index.size(domain)) for domain in domains if index.size(domain) < k]
    if small:
        listed = ", ".join(f"{domain} ({rows} crop{'s' * (rows != 1)})" for domain, rows in small)
        raise NeighborsError(f"--k {k}: more neighbours than {index.folder} holds for {listed}")


def search(
    model: TwinGAN,
    index: NeighborIndex,
    faces: Sequence[QueryFace],
    source: str,
    domains: Sequence[str],
    k: int,
    *,
    nprobe: int | None = None,
) -> list[dict[str, list[Hit]]]:
    """Per face, per domain, the k nearest crops of the index to the face embedded as `source`."""
    if not faces:
        return []
    size = max(face.crop.shape[0] for face in faces)
    crops = np.stack([_resize(face.crop, size) for face in faces])
    queries = embed_pixels(model, crops, source)
    per_domain = {domain: index.search(domain, queries, k, nprobe=nprobe) for domain in domains}
    return [{domain: per_domain[domain][i] for domain in domains} for i in range(len(faces))]


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    shrinking = crop.shape[0] > size
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def neighbour_grid(faces: Sequence[QueryFace], hits: Sequence[dict[str, list[Hit]]], datasets: Path) -> np.ndarray:
    """Per face: the query crop alone on a row, then a row per domain of its neighbours' crops."""
    rows: list[np.ndarray] = []
    for face, found in zip(faces, hits, strict=True):
        rows.append(face.crop[None])
        for domain, domain_hits in found.items():
            rows.append(read_crops(datasets, domain, [(h.shard, h.shard_row, h.face_id) for h in domain_hits]))
    cell = min(MAX_CELL, max(row.shape[1] for row in rows))
    return grid([to_images(np.ascontiguousarray(row), cell).contiguous() for row in rows])


def format_table(faces: Sequence[QueryFace], hits: Sequence[dict[str, list[Hit]]]) -> str:
    """One line per neighbour, aligned columns."""
    lines = [("face", "domain", "rank", "score", "face_id", "split")]
    for face, found in zip(faces, hits, strict=True):
        for domain_hits in found.values():
            lines += [
                (str(face.index), h.domain, str(h.rank), f"{h.score:.4f}", h.face_id, h.split) for h in domain_hits
            ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)  # fmt: skip


def find_neighbors(
    photo: Path,
    *,
    model_path: Path,
    index_path: Path,
    domains: Sequence[str],
    source: str,
    k: int = 8,
    aligned: bool = False,
    datasets: Path | None = None,
    device: str = "auto",
    nprobe: int | None = None,
    out: Path | None = None,
) -> NeighborResult:
    """The whole command: load, check, crop, search, draw (and save the grid when `out` is given)."""
    index = NeighborIndex(index_path)  # first: a missing index needs no model load to report
    try:
        target = resolve_device(device)
    except (ValueError, RuntimeError) as error:
        raise NeighborsError(f"--device {device}: {error}") from None
    model, info = load_model(model_path, target)
    if source not in info.config.domains:
        raise NeighborsError(f"--from {source!r}: {model_path} knows only {', '.join(info.config.domains)}")
    check_request(index, domains, k, nprobe)
    index.check_model(encoder_digest(model), info.step, model_path)
    faces = query_faces(Path(photo), info, source, aligned=aligned, model_path=model_path)
    hits = search(model, index, faces, source, domains, k, nprobe=nprobe)
    picture = neighbour_grid(faces, hits, datasets or index.datasets())
    if out is not None:
        save_png(picture, out)
        log.info("wrote %s: per face a row with the query, then rows of %s", out, ", ".join(domains))
    return NeighborResult(faces, hits, picture)
