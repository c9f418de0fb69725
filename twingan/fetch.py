"""Downloading released model files, for users who have the network (`twingan fetch illust2vec`).

Library code never downloads: a tagger or detector reads files named in params and fails with the name
of the missing file and this command. The command checks every file's SHA-256 against a pin: the one
in `RELEASES` where known, else the `SHA256SUMS` file in the destination (committed by whoever fetched
first; written on the first fetch, which prints the hashes to compare with the release page). A file
whose hash differs from its pin is never moved into place.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.atomic import atomic_path, write_bytes_atomic
from core.errors import UserError

log = logging.getLogger("twingan.fetch")

CHUNK = 1 << 20


class FetchError(UserError, RuntimeError):
    """A download failed or did not match its pinned hash; the message names the file and URL."""


@dataclass(frozen=True)
class ReleaseFile:
    name: str  # as published
    sha256: str | None = None  # None: not pinned in code (pinned by SHA256SUMS on first fetch)
    gunzip_to: str | None = None  # store decompressed under this name as well


@dataclass(frozen=True)
class Release:
    base_url: str
    files: tuple[ReleaseFile, ...]


# rezoo/illustration2vec v2.0.0, the files its get_models.sh downloads. The hashes of the published files
# could not be taken on the (offline) development machines, so SHA256SUMS pins them on first fetch.
RELEASES: dict[str, Release] = {
    "illust2vec": Release(
        base_url="https://github.com/rezoo/illustration2vec/releases/download/v2.0.0",
        files=(
            ReleaseFile("tag_list.json.gz", gunzip_to="tag_list.json"),
            ReleaseFile("illust2vec_tag.prototxt"),
            ReleaseFile("illust2vec_tag_ver200.caffemodel"),
            ReleaseFile("illust2vec_ver200.caffemodel"),
        ),
    ),
}

SUMS_FILE = "SHA256SUMS"


def read_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2 or len(parts[0]) != 64:
                raise FetchError(f"{path}:{number}: expected '<sha256>  <file name>', got {line!r}")
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _download(url: str, target: Path, timeout: float, max_bytes: int | None = None) -> str:
    """Stream `url` into `target` (atomically) and return its SHA-256; more than `max_bytes` is refused
    before it fills the disk."""
    digest = hashlib.sha256()
    size = 0
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            atomic_path(target) as tmp,
            tmp.open("wb") as out,
        ):
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise FetchError(f"{url}: larger than the pinned {max_bytes:,} bytes; nothing written")
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise FetchError(f"{url}: download failed: {error}") from None
    return digest.hexdigest()


def fetch_release(name: str, dest: Path, *, base_url: str | None = None, timeout: float = 60.0) -> list[Path]:
    """Download release `name` into `dest`; returns the paths written (decompressed files included)."""
    if name not in RELEASES:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(RELEASES)})")
    release = RELEASES[name]
    base = (base_url or release.base_url).rstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    sums_path = dest / SUMS_FILE
    pinned = read_sums(sums_path)
    written: list[Path] = []
    new_pins: dict[str, str] = {}
    for item in release.files:
        url = f"{base}/{item.name}"
        staging = dest / f".{item.name}.download"
        log.info("fetching %s", url)
        sha = _download(url, staging, timeout)
        expected = item.sha256 or pinned.get(item.name)
        if expected is not None and sha != expected:
            staging.unlink(missing_ok=True)
            raise FetchError(
                f"{item.name}: SHA-256 {sha} does not match the pin {expected} "
                f"({'twingan/fetch.py' if item.sha256 else sums_path}); downloaded from {url}; nothing replaced"
            )
        if expected is None:
            new_pins[item.name] = sha
            log.warning("%s: not pinned; SHA-256 %s recorded in %s (compare it with the release page)",
                        item.name, sha, sums_path)  # fmt: skip
        target = dest / item.name
        staging.replace(target)
        written.append(target)
        if item.gunzip_to:
            unpacked = dest / item.gunzip_to
            try:
                with gzip.open(target, "rb") as source, atomic_path(unpacked) as tmp, tmp.open("wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
            except (OSError, EOFError) as error:
                raise FetchError(f"{target}: not a gzip file: {error}") from None
            written.append(unpacked)
    if new_pins:
        merged = {**pinned, **new_pins}
        lines = "".join(f"{sha}  {file}\n" for file, sha in sorted(merged.items()))
        write_bytes_atomic(sums_path, lines.encode())
    return written


def fetch_detector_weights(
    model: str,
    root: Path | None = None,
    *,
    base_url: str | None = None,
    accept_no_licence: bool = False,
    timeout: float = 60.0,
) -> list[Path]:
    """Download a detector's pinned weights into `<root>/<model>/` (root: the weights dir the detectors read,
    preprocessing/faces/weights.py). `base_url` is a mirror holding `<model>/<file>`. A model whose source
    states no licence is fetched only with `accept_no_licence`. Files already there with the pinned bytes
    are not downloaded again; a file whose bytes differ from its pin never replaces anything."""
    from preprocessing.faces.weights import MODELS, licence_text, sha256_of, weights_dir

    if model not in MODELS:
        raise FetchError(f"unknown model {model!r} (known: {', '.join(sorted([*RELEASES, *MODELS]))})")
    entry = MODELS[model]
    if entry.licence is None and not accept_no_licence:
        raise FetchError(
            f"{model}: {licence_text(entry)} ({entry.source}); fetch it only for your own use, with --accept-no-licence"
        )
    dest = (root or weights_dir()) / model
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for item in entry.files:
        target = dest / item.name
        if target.is_file() and sha256_of(target) == item.sha256:
            log.info("%s: already fetched", target)
            written.append(target)
            continue
        url = f"{base_url.rstrip('/')}/{model}/{item.name}" if base_url else item.url
        staging = dest / f".{item.name}.download"
        log.info("fetching %s", url)
        try:
            sha = _download(url, staging, timeout, max_bytes=item.size)
        except FetchError:
            staging.unlink(missing_ok=True)
            raise
        if sha != item.sha256:
            staging.unlink(missing_ok=True)
            raise FetchError(
                f"{item.name}: SHA-256 {sha} does not match the pin {item.sha256} "
                f"(preprocessing/faces/weights.py); downloaded from {url}; nothing replaced"
            )
        staging.replace(target)
        written.append(target)
    return written


def describe_models() -> list[str]:
    """One line per fetchable model: its name, files, licence and source (`twingan fetch --list`)."""
    from preprocessing.faces.weights import MODELS, licence_text

    lines = [f"illust2vec: {len(RELEASES['illust2vec'].files)} files, {RELEASES['illust2vec'].base_url}"]
    for name, entry in sorted(MODELS.items()):
        size = sum(f.size for f in entry.files)
        note = f"; {entry.note}" if entry.note else ""
        lines.append(
            f"{name}: {len(entry.files)} file(s), {size / 2**20:.1f} MiB, licence: {licence_text(entry)}, "
            f"{entry.source}{note}"
        )
    return lines
