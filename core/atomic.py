"""Atomic file and folder output.

A stage killed at any instant (kill -9, a full disk, a crash in a worker) must leave either the
previous complete output or the new complete output, never a half-written file that the next stage,
DVC or a user could mistake for a result. Everything the pipeline writes goes through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"
_TRASH_SUFFIX = ".old"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # once, at import: os.umask is process-wide and racy to read from threads


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the mode open() would give
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(target: Path, payload: Any) -> None:
    """JSON with sorted keys and a trailing newline, so equal content gives equal bytes."""
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_bytes_atomic(target, text.encode("utf-8"))


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Run `writer(tmp_path)` and move its file into place only if it returned normally."""
    with atomic_path(target) as tmp:
        writer(tmp)


def partial_dir(final: Path) -> Path:
    """Where an output folder is built before it is published (kept across a killed run)."""
    return final.with_name(final.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def staged_dir(final: Path, *, keep: bool = False) -> Iterator[Path]:
    """A staging folder beside `final`, published in one rename when the block completes; left in place when
    it fails, so a half-written folder is never `final`. Emptied first, unless `keep` (ingest reuses the
    images a killed run already stored)."""
    staging = partial_dir(final)
    if staging.exists() and not keep:
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    yield staging
    publish_dir(staging, final)


def publish_dir(staging: Path, final: Path) -> None:
    """Swap a fully written staging folder into place.

    Renames are atomic; the only window is between moving the old folder away and moving the new one
    in, and a crash there leaves `<final>.old` beside an absent `final`, which the next run rebuilds
    from scratch (as DVC itself would after deleting outputs).
    """
    _fsync_dir(staging)
    trash = final.with_name(final.name + _TRASH_SUFFIX)
    if trash.exists():
        shutil.rmtree(trash)
    if final.exists():
        os.replace(final, trash)
    os.replace(staging, final)
    _fsync_dir(final.parent)
    if trash.exists():
        shutil.rmtree(trash)
