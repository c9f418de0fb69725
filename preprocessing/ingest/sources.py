"""List the items of a source (a folder or an archive) and read their bytes.

Listing runs once, in the flow's process; reading runs in the workers. Items are small picklable
records, so a chunk of them can go to a thread, a process or a Dask worker. A compressed tar can only
be read front to back, so its listing reads the bytes as it goes and ships them with the item (the flow
bounds how many such bytes are in flight: preprocessing/ingest/stream.py); every other source is read
by the workers in parallel.

Members are named as preprocessing/ingest/names.py says: printable text from which the name's bytes
can be recovered, whatever their encoding. An archive may hold several members of one name (a zip
appended to, `tar -r`); each is read from its own entry, and the n-th of a name is recorded as
`<name>#<n>` (n from 2, in archive order), so that every row of the manifest names one member.

Nothing is ever extracted by member name: the store is content-addressed, so an archive member called
`../../etc/passwd` cannot write outside the output. Such names are still rejected, because a source
that contains them is not what the user thinks it is.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tarfile
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.errors import UserError
from core.params import ArchiveSource, FolderSource
from preprocessing.ingest.names import member_name
from preprocessing.ingest.reasons import Reason


class SourceError(UserError, ValueError):
    """The source as a whole cannot be read (not an archive, a broken central directory, ...)."""


class ItemReadError(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One candidate image. `kind` says how a worker reads it (see `read_item`)."""

    member: str  # path inside the source, '/'-separated, as names.member_name writes it: the lineage a user sees
    kind: str  # "file" | "zip" | "tar" | "inline" | "rejected"
    location: str = ""  # file path, or archive path
    offset: int = 0  # tar: where the member's data starts; zip: the member's index in the central directory
    size: int = -1  # declared size when known before reading (-1: unknown)
    data: bytes | None = None  # inline: bytes read while listing a compressed tar
    reason: Reason | None = None  # rejected while listing
    detail: str = ""


class NameFilter:
    """Include/exclude globs, case-insensitive; a pattern with '/' matches the whole member path."""

    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        self.include = tuple(p.lower() for p in include)
        self.exclude = tuple(p.lower() for p in exclude)

    @staticmethod
    def _matches(member: str, patterns: tuple[str, ...]) -> bool:
        name = member.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(member if "/" in p else name, p) for p in patterns)

    def __call__(self, member: str) -> bool:
        lowered = member.lower()
        return self._matches(lowered, self.include) and not self._matches(lowered, self.exclude)


# --------------------------------------------------------------------------------------------- folders


def list_folder(root: Path, source: FolderSource) -> Iterator[SourceItem]:
    """Walk `root` in sorted order; do not follow symlinked folders (they may loop or leave it)."""
    wanted = NameFilter(source.include, source.exclude)
    real_root = root.resolve()
    for current, dirs, files in os.walk(root, followlinks=False):
        here = Path(current)
        dirs.sort()
        for name in list(dirs):
            if (here / name).is_symlink():
                dirs.remove(name)
                member = _folder_member(here / name, root)
                yield SourceItem(member, "rejected", reason=Reason.NOT_A_FILE, detail="symlinked folder not followed")
        for name in sorted(files):
            path = here / name
            member = _folder_member(path, root)
            if not wanted(member):
                continue
            yield _folder_item(path, member, real_root)


def _folder_member(path: Path, root: Path) -> str:
    """os.walk gives names it cannot decode as surrogate escapes; os.fsencode restores their bytes."""
    return member_name(os.fsencode(path.relative_to(root).as_posix()))


def _folder_item(path: Path, member: str, real_root: Path) -> SourceItem:
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as error:
            return SourceItem(member, "rejected", reason=Reason.UNREADABLE, detail=f"broken symlink: {error}")
        if not target.is_relative_to(real_root):
            return SourceItem(
                member,
                "rejected",
                reason=Reason.SYMLINK_OUTSIDE,
                detail=f"points to {target}, outside the source folder",
            )
    try:
        info = path.stat()
    except OSError as error:
        return SourceItem(member, "rejected", reason=Reason.UNREADABLE, detail=str(error))
    if not stat.S_ISREG(info.st_mode):
        return SourceItem(member, "rejected", reason=Reason.NOT_A_FILE, detail="not a regular file")
    return SourceItem(member, "file", location=str(path), size=info.st_size)


# -------------------------------------------------------------------------------------------- archives


def unsafe_member_name(name: str) -> str | None:
    """Why an archive member name would escape the archive, or None when it is safe."""
    if not name or "\x00" in name:
        return "empty or NUL in name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "'..' in path"
    return None


def archive_kind(path: Path) -> str:
    """'zip', 'tar' (uncompressed, random access) or 'tar-stream' (compressed: front to back)."""
    with open(path, "rb") as handle:
        head = handle.read(262)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return "tar-stream"
    if head[257:262] == b"ustar" or tarfile.is_tarfile(path):
        return "tar"
    raise SourceError(f"{path}: not a zip or tar archive (zip, tar, tar.gz, tar.bz2, tar.xz are read)")


def _open_zip(path: Path | str) -> zipfile.ZipFile:
    """A ZipFile, or SourceError naming the file when its central directory cannot be read."""
    try:
        return zipfile.ZipFile(path)
    except UnicodeDecodeError as error:  # zipfile decodes flagged names strictly, and gives up on the archive
        raise SourceError(
            f"{path}: cannot read the zip directory: a member name flagged as UTF-8 is not UTF-8 ({error})"
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise SourceError(f"{path}: cannot read the zip directory: {error}") from None


def check_archive(path: Path) -> str:
    """Fail now, with the file's name, if the archive cannot be listed at all; return its kind."""
    kind = archive_kind(path)
    if kind == "zip":
        _open_zip(path).close()
    return kind


class _Occurrences:
    """Names repeated in one archive: the first keeps its name, the n-th becomes `<name>#<n>`."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def __call__(self, name: str) -> str:
        self._seen[name] += 1
        count = self._seen[name]
        return name if count == 1 else f"{name}#{count}"


def list_archive(path: Path, source: ArchiveSource, max_bytes: int) -> Iterator[SourceItem]:
    kind = archive_kind(path)
    wanted = NameFilter(source.include, source.exclude)
    if kind == "zip":
        yield from _list_zip(path, wanted, max_bytes)
    else:
        yield from _list_tar(path, wanted, max_bytes, stream=kind == "tar-stream")


def _zip_name_bytes(info: zipfile.ZipInfo) -> bytes:
    """The name's bytes as stored: zipfile decodes names without the UTF-8 flag (bit 11) as cp437,
    which maps every byte to one character and back."""
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")


def _list_zip(path: Path, wanted: NameFilter, max_bytes: int) -> Iterator[SourceItem]:
    with _open_zip(path) as archive:
        infos = archive.infolist()
    repeated = _Occurrences()
    entries: list[tuple[str, int, zipfile.ZipInfo]] = []
    for index, info in enumerate(infos):  # central directory order: "#2" is the second of a name
        base = member_name(_zip_name_bytes(info))
        if not info.is_dir() and wanted(base):
            entries.append((repeated(base), index, info))
    for name, index, info in sorted(entries, key=lambda entry: entry[0]):
        # orig_filename: ZipInfo.filename is cut at a NUL, which would hide it from the check.
        unsafe = unsafe_member_name(info.orig_filename)
        if unsafe:
            yield SourceItem(name, "rejected", reason=Reason.UNSAFE_PATH, detail=unsafe)
        elif stat.S_ISLNK(info.external_attr >> 16):
            yield SourceItem(name, "rejected", reason=Reason.NOT_A_FILE, detail="symlink member")
        elif info.flag_bits & 0x1:
            yield SourceItem(name, "rejected", reason=Reason.UNREADABLE, detail="encrypted member")
        elif info.file_size > max_bytes:
            yield SourceItem(
                name,
                "rejected",
                reason=Reason.TOO_LARGE,
                detail=f"{info.file_size} bytes > ingest.max_bytes {max_bytes}",
            )
        else:
            yield SourceItem(name, "zip", location=str(path), offset=index, size=info.file_size)


def _list_tar(path: Path, wanted: NameFilter, max_bytes: int, stream: bool) -> Iterator[SourceItem]:
    last = "<start>"
    repeated = _Occurrences()
    # surrogateescape (whatever the locale): a name that is not UTF-8 keeps its bytes, for member_name.
    mode = "r|*" if stream else "r:"
    try:
        with tarfile.open(path, mode, encoding="utf-8", errors="surrogateescape") as archive:
            for member in archive:
                if member.isdir():
                    continue
                base = member_name(member.name.encode("utf-8", "surrogateescape"))
                if not wanted(base):
                    continue
                name = last = repeated(base)
                unsafe = unsafe_member_name(member.name)
                if unsafe:
                    yield SourceItem(name, "rejected", reason=Reason.UNSAFE_PATH, detail=unsafe)
                elif not member.isfile():
                    what = "link member" if member.issym() or member.islnk() else "not a regular file"
                    yield SourceItem(name, "rejected", reason=Reason.NOT_A_FILE, detail=what)
                elif member.size > max_bytes:
                    yield SourceItem(
                        name,
                        "rejected",
                        reason=Reason.TOO_LARGE,
                        detail=f"{member.size} bytes > ingest.max_bytes {max_bytes}",
                    )
                elif stream:
                    yield _read_streamed(archive, member, name)
                else:
                    yield SourceItem(name, "tar", location=str(path), offset=member.offset_data, size=member.size)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        # A truncated or damaged archive: keep everything listed so far, record where it broke.
        yield SourceItem(
            f"{last}#after",
            "rejected",
            reason=Reason.UNREADABLE,
            detail=f"archive unreadable after member {last!r}: {error}",
        )


_READ_BLOCK = 1 << 20


def _read_blocks(handle: BinaryIO, size: int) -> bytes:
    """At most `size` bytes, read in 1 MiB blocks: tarfile's read() of a whole streamed member makes
    several copies of it while joining the decompressed pieces."""
    blocks = []
    left = size
    while left > 0 and (block := handle.read(min(left, _READ_BLOCK))):
        blocks.append(block)
        left -= len(block)
    return b"".join(blocks)


def _read_streamed(archive: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> SourceItem:
    try:
        handle = archive.extractfile(member)
        data = _read_blocks(handle, member.size) if handle else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        return SourceItem(name, "rejected", reason=Reason.UNREADABLE, detail=str(error))
    if len(data) != member.size:
        return SourceItem(name, "rejected", reason=Reason.UNREADABLE, detail=f"read {len(data)} of {member.size} bytes")
    return SourceItem(name, "inline", size=member.size, data=data)


# ---------------------------------------------------------------------------------------------- reading

_open_zips = threading.local()


def _zip_for(location: str) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """One open ZipFile per archive and thread, with its entries: parsing CelebA's directory once, not
    per chunk."""
    cache: dict[str, tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]] = getattr(_open_zips, "cache", None) or {}
    _open_zips.cache = cache
    if location not in cache:
        archive = _open_zip(location)
        cache[location] = archive, archive.infolist()
    return cache[location]


def read_item(item: SourceItem, max_bytes: int) -> bytes:
    """The item's bytes, or ItemReadError with the reason it cannot be stored."""
    if item.kind == "inline":
        return item.data or b""
    if item.kind == "rejected":
        raise ItemReadError(item.reason or Reason.UNREADABLE, item.detail)
    try:
        if item.kind == "file":
            with open(item.location, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > max_bytes:
                    raise ItemReadError(Reason.TOO_LARGE, f"{size} bytes > ingest.max_bytes {max_bytes}")
                return handle.read(max_bytes + 1)
        if item.kind == "zip":
            # By entry, not by name: open(name) gives the last member of that name.
            archive, entries = _zip_for(item.location)
            with archive.open(entries[item.offset]) as handle:
                data = handle.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ItemReadError(Reason.TOO_LARGE, f"more than ingest.max_bytes {max_bytes} bytes")
            return data
        if item.kind == "tar":
            with open(item.location, "rb") as handle:
                handle.seek(item.offset)
                data = handle.read(item.size)
            if len(data) != item.size:
                raise ItemReadError(Reason.UNREADABLE, f"read {len(data)} of {item.size} bytes")
            return data
    except ItemReadError:
        raise
    except (
        OSError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        RuntimeError,
        NotImplementedError,
        SourceError,
        IndexError,
    ) as error:
        raise ItemReadError(Reason.UNREADABLE, f"{type(error).__name__}: {error}") from None
    raise ValueError(f"unknown item kind {item.kind!r}")


def list_source(source: FolderSource | ArchiveSource, path: Path, max_bytes: int) -> Iterator[SourceItem]:
    if source.kind == "folder":
        return list_folder(path, source)
    return list_archive(path, source, max_bytes)


__all__ = [
    "ItemReadError",
    "SourceError",
    "SourceItem",
    "list_source",
    "read_item",
]
