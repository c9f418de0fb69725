"""Per-item work of ingest: read, hash, check that the bytes decode, store them by content.

Runs in the workers (threads, processes or Dask). It never raises for a bad item: every outcome is
a `Record`, so one corrupt file cannot stop a 200,000-image run, and the stage can count and report
each reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from preprocessing.images import exif_orientation, upright_size
from preprocessing.ingest.reasons import Reason
from preprocessing.ingest.sources import ItemReadError, SourceItem, read_item

EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif", "TIFF": "tif"}

# We bound pixels ourselves (ingest.max_pixels) before decoding; PIL's own bomb check would otherwise
# warn or raise at its own threshold.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """What every chunk of one ingest run shares."""

    store: str  # the staging folder of data/raw/<domain>
    max_bytes: int
    max_pixels: int
    formats: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Record:
    member: str
    reason: str | None  # None: stored
    detail: str = ""
    sha256: str | None = None
    byte_size: int | None = None
    path: str = ""
    format: str = ""
    mode: str = ""
    width: int = 0
    height: int = 0
    exif_orientation: int = 1


def _reject(item: SourceItem, reason: Reason, detail: str, sha: str | None = None, size: int | None = None) -> Record:
    return Record(item.member, reason.value, detail=detail, sha256=sha, byte_size=size)


def store_path(sha: str, image_format: str) -> str:
    return f"images/{sha[:2]}/{sha}.{EXTENSIONS.get(image_format, image_format.lower())}"


def _store(root: Path, relative: str, data: bytes) -> None:
    """Content-addressed: a file that exists already holds these bytes (written by rename)."""
    target = root / relative
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{id(data)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _verify_pixels(image: Image.Image) -> None:
    """Decode every byte of the first frame; JPEGs at 1/8 scale (the entropy-coded data is read in full,
    so truncation is still caught, at half the cost of a full-size decode)."""
    if image.format in ("JPEG", "MPO"):
        image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()


class ImageProblem(Exception):
    """Why some bytes are not a storable image (`describe_image`)."""

    def __init__(self, reason: Reason, detail: str, sha256: str | None = None, size: int | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason, self.detail, self.sha256, self.size = reason, detail, sha256, size


@dataclass(frozen=True, slots=True)
class ImageFacts:
    sha256: str
    byte_size: int
    format: str
    mode: str
    width: int  # upright, after the EXIF orientation
    height: int
    exif_orientation: int


INGEST_KEYS = ("ingest.max_bytes", "ingest.max_pixels", "ingest.formats")


def describe_image(
    data: bytes, max_bytes: int, max_pixels: int, formats: Sequence[str], *, keys: tuple[str, str, str] = INGEST_KEYS
) -> ImageFacts:
    """Check that bytes are an image worth storing (size bounds, an accepted format, pixels that decode)
    and describe them, or raise ImageProblem with the reason. The one check behind ingest and the
    scraper's image pipeline; `keys` names the bytes, pixels and formats settings in messages."""
    bytes_key, pixels_key, formats_key = keys
    size = len(data)
    if size == 0:
        raise ImageProblem(Reason.EMPTY, "zero bytes", size=0)
    if size > max_bytes:
        raise ImageProblem(Reason.TOO_LARGE, f"more than {bytes_key} {max_bytes}", size=size)
    sha = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # odd EXIF and the like: the decode below is the judge
            image = Image.open(io.BytesIO(data))
            image_format = (image.format or "").upper()
            width, height = image.size
            if image_format not in formats:
                raise ImageProblem(
                    Reason.UNSUPPORTED_FORMAT, f"{image_format or 'unknown'} not in {formats_key}", sha, size
                )
            if width <= 0 or height <= 0:
                raise ImageProblem(Reason.CORRUPT, f"size {width}x{height}", sha, size)
            if width * height > max_pixels:
                raise ImageProblem(Reason.TOO_MANY_PIXELS, f"{width}x{height} > {pixels_key} {max_pixels}", sha, size)
            mode = image.mode
            orientation = exif_orientation(image)
            _verify_pixels(image)
    except UnidentifiedImageError:
        raise ImageProblem(Reason.NOT_AN_IMAGE, "no image decoder recognises it", sha, size) from None
    except Image.DecompressionBombError as error:
        raise ImageProblem(Reason.TOO_MANY_PIXELS, str(error), sha, size) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError, struct.error) as error:
        raise ImageProblem(Reason.CORRUPT, f"{type(error).__name__}: {error}", sha, size) from None
    upright_w, upright_h = upright_size(width, height, orientation)
    return ImageFacts(sha, size, image_format, mode, upright_w, upright_h, orientation)


def inspect_item(item: SourceItem, job: ChunkJob) -> Record:
    try:
        data = read_item(item, job.max_bytes)
    except ItemReadError as error:
        return _reject(item, error.reason, error.detail, size=item.size if item.size >= 0 else None)
    try:
        facts = describe_image(data, job.max_bytes, job.max_pixels, job.formats)
    except ImageProblem as problem:
        return _reject(item, problem.reason, problem.detail, problem.sha256, problem.size)
    sha, size, image_format = facts.sha256, facts.byte_size, facts.format
    relative = store_path(sha, image_format)
    try:
        _store(Path(job.store), relative, data)
    except OSError as error:  # disk full, permissions: the item is not stored, the run goes on
        return _reject(item, Reason.UNREADABLE, f"could not store: {error}", sha, size)
    return Record(
        item.member,
        None,
        sha256=sha,
        byte_size=size,
        path=relative,
        format=image_format,
        mode=facts.mode,
        width=facts.width,
        height=facts.height,
        exif_orientation=facts.exif_orientation,
    )


def process_chunk(items: Sequence[SourceItem], job: ChunkJob) -> list[Record]:
    """The unit of parallel work: a list of items in, one record per item out, in the same order."""
    return [inspect_item(item, job) for item in items]
