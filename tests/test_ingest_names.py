"""File and member names that are not valid UTF-8 (folders copied from Windows, old zips and tars).

os.walk and tarfile hand such names over as surrogate-escaped strings, which Parquet cannot hold: the
stage used to crash when it wrote the manifest, after all the work was done. Names are now recorded
as text with the odd bytes written as `\\xNN` escapes (preprocessing.ingest.names), so the manifest is
printable and the original bytes can be recovered.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.params import ArchiveSource, FolderSource, load_params
from core.parquet import read_table, table_from_rows, write_table
from core.schemas import RAW_MANIFEST, RAW_REJECTS
from flows.ingest import run_ingest
from preprocessing.ingest.inspect import ChunkJob, process_chunk
from preprocessing.ingest.outputs import assemble
from preprocessing.ingest.sources import SourceError, check_archive, list_source
from tests.builders import images as fx
from tests.builders.params import write_params

LATIN1 = b"caf\xe9.jpg"  # "café.jpg" as Windows-1252 / Latin-1 writes it: not valid UTF-8
ESCAPED = "caf\\xe9.jpg"  # how the manifest records it
FILES = {LATIN1: fx.jpeg(1), b"sub/ok.jpg": fx.jpeg(2), b"sub/na\xefve\xff.png": fx.png(3)}
EXPECTED = {ESCAPED: fx.jpeg(1), "sub/ok.jpg": fx.jpeg(2), "sub/na\\xefve\\xff.png": fx.png(3)}


def make_folder(root: Path, files: dict[bytes, bytes]) -> None:
    for raw, data in files.items():
        target = os.path.join(os.fsencode(root), raw)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(data)


def make_tar(path: Path, files: dict[bytes, bytes], mode: str, fmt: int = tarfile.GNU_FORMAT) -> None:
    # surrogateescape writes each name's bytes as they are (hdrcharset=BINARY in a pax header).
    with tarfile.open(path, mode, format=fmt, encoding="utf-8", errors="surrogateescape") as archive:
        for raw, data in files.items():
            info = tarfile.TarInfo(raw.decode("utf-8", "surrogateescape"))
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def make_zip(path: Path, files: dict[bytes, bytes], utf8_flag: bool = False) -> None:
    """A zip whose names are the given bytes, with or without the UTF-8 flag (bit 11).

    zipfile only writes ASCII or flagged UTF-8 names, so each member is written under an ASCII
    placeholder of the same length, which is then replaced by the raw name in the local header and
    in the central directory (names are not covered by the CRC)."""
    # zipfile sets the flag itself for a name that is not ASCII: "\u00e9" is two bytes in UTF-8.
    prefix, width = ("\u00e9", 2) if utf8_flag else ("", 0)
    placeholders = {
        raw: (prefix + f"@{index}@".ljust(len(raw) - width, "~")).encode() for index, raw in enumerate(files)
    }
    with zipfile.ZipFile(path, "w") as archive:
        for raw, data in files.items():
            archive.writestr(placeholders[raw].decode(), data)
    blob = path.read_bytes()
    for raw, placeholder in placeholders.items():
        assert blob.count(placeholder) == 2
        blob = blob.replace(placeholder, raw)
    path.write_bytes(blob)


def records_of(source: FolderSource | ArchiveSource, path: Path, store: Path) -> dict[str, object]:
    job = ChunkJob(store=str(store), max_bytes=1 << 26, max_pixels=50_000_000, formats=("JPEG", "PNG"))
    return {record.member: record for record in process_chunk(list(list_source(source, path, 1 << 26)), job)}


def stored_bytes(store: Path, records: dict[str, object]) -> dict[str, bytes]:
    return {member: (store / record.path).read_bytes() for member, record in records.items()}  # type: ignore[attr-defined]


SOURCES = ["folder", "tar-gnu", "tar-pax", "tar.gz", "tar.xz", "zip"]


def make_source(tmp_path: Path, kind: str, files: dict[bytes, bytes]) -> tuple[FolderSource | ArchiveSource, Path]:
    if kind == "folder":
        make_folder(tmp_path / "src", files)
        return FolderSource(kind="folder", path=tmp_path / "src"), tmp_path / "src"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"photos.{kind.split('-')[0]}"
    if kind == "zip":
        make_zip(path, files)
    else:
        mode = {"tar-gnu": "w", "tar-pax": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[kind]
        make_tar(path, files, mode, tarfile.PAX_FORMAT if kind == "tar-pax" else tarfile.GNU_FORMAT)
    return ArchiveSource(kind="archive", path=path), path


@pytest.mark.parametrize("kind", SOURCES)
def test_non_utf8_names_are_stored_under_escaped_printable_names(tmp_path: Path, kind: str) -> None:
    source, path = make_source(tmp_path, kind, FILES)
    records = records_of(source, path, tmp_path / "store")
    # The rows go into Parquet (where surrogate-escaped names used to fail) and come back the same.
    result = assemble("cat", str(path), records.values())  # type: ignore[arg-type]
    write_table(table_from_rows(result.manifest, RAW_MANIFEST), tmp_path / "m.parquet", RAW_MANIFEST)
    assert sorted(read_table(tmp_path / "m.parquet", RAW_MANIFEST)["member"].to_pylist()) == sorted(EXPECTED)
    assert {member: r.reason for member, r in records.items()} == dict.fromkeys(EXPECTED)  # type: ignore[attr-defined]
    assert stored_bytes(tmp_path / "store", records) == EXPECTED


def test_names_record_the_same_in_a_folder_a_tar_and_a_zip(tmp_path: Path) -> None:
    """One rule for every source: the bytes of the name, as UTF-8 where they are UTF-8."""
    files = {b"caf\xc3\xa9.jpg": fx.jpeg(1), b"raw\x80\x81.jpg": fx.jpeg(2), b"plain.jpg": fx.jpeg(3)}
    seen = {}
    for kind in ("folder", "tar-pax", "tar.gz", "zip"):
        source, path = make_source(tmp_path / kind, kind, files)
        seen[kind] = sorted(records_of(source, path, tmp_path / kind / "store"))
    # A zip without the UTF-8 flag is read as cp437 by zipfile ("caf├⌐.jpg"); UTF-8 bytes are UTF-8.
    assert set(map(tuple, seen.values())) == {("caf\u00e9.jpg", "plain.jpg", "raw\\x80\\x81.jpg")}, seen


def test_zip_with_the_utf8_flag_and_a_name_that_is_not_utf8_fails_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    make_zip(path, {b"caf\xe9!.jpg": fx.jpeg(1)}, utf8_flag=True)
    with pytest.raises(SourceError, match=r"photos\.zip: .*UTF-8"):
        check_archive(path)
    with pytest.raises(SourceError, match=r"photos\.zip"):
        list(list_source(ArchiveSource(kind="archive", path=path), path, 1 << 20))


def test_the_escaped_name_gives_back_the_original_bytes() -> None:
    from preprocessing.ingest.names import member_bytes, member_name

    cases = [
        b"plain/a.jpg",
        b"caf\xe9.jpg",
        "caf\u00e9/\u732b.jpg".encode(),
        b"back\\slash.jpg",  # a literal backslash is escaped too, or "\\xe9" would be ambiguous
        b"tab\there\nnl\x7f.jpg",  # control characters: printable in the manifest
        "c1\u0085.jpg".encode(),
        b"\xed\xa0\x80surrogate.jpg",  # an encoded surrogate is not UTF-8
        b"\xc0\xafoverlong.jpg",
        b"\xf0\x9f\x98\x80emoji.jpg",
        b"",
    ]
    rng = np.random.default_rng(0)
    cases += [rng.integers(0, 256, size=int(rng.integers(1, 24)), dtype=np.uint8).tobytes() for _ in range(500)]
    for raw in cases:
        name = member_name(raw)
        name.encode("utf-8")  # no surrogates: Parquet can hold it
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name), (raw, name)  # no controls
        assert member_bytes(name) == raw, (raw, name)
    assert member_name(b"caf\xe9.jpg") == ESCAPED
    assert member_name(b"back\\slash.jpg") == "back\\x5cslash.jpg"
    assert member_name("caf\u00e9.jpg".encode()) == "caf\u00e9.jpg"  # valid UTF-8 is left as it is


@pytest.mark.skipif(os.name != "posix", reason="bytes file names, symlinks")
def test_the_stage_keeps_non_utf8_names_and_finishes(tmp_path: Path) -> None:
    """The whole flow: the manifest and rejects are written, with escaped names and details."""
    src = tmp_path / "src"
    make_folder(src, {**FILES, b"bad\xe9.jpg": b"not an image"})
    outside = os.path.join(os.fsencode(tmp_path), b"secr\xe9t.jpg")
    with open(outside, "wb") as handle:
        handle.write(fx.jpeg(9))
    os.symlink(outside, os.path.join(os.fsencode(src), b"lien\xe9.jpg"))
    params = write_params(tmp_path / "project", {"cat": {"source": {"kind": "folder", "path": str(src)}}})
    metrics = run_ingest(load_params(params), "cat")
    out = tmp_path / "project/data/raw/cat"
    manifest = read_table(out / "manifest.parquet", RAW_MANIFEST).to_pylist()
    rejects = read_table(out / "rejects.parquet", RAW_REJECTS).to_pylist()
    assert {row["member"]: (out / row["path"]).read_bytes() for row in manifest} == EXPECTED
    assert {row["member"]: row["reason"] for row in rejects} == {
        "bad\\xe9.jpg": "not_an_image",
        "lien\\xe9.jpg": "symlink_outside",
    }
    assert all(row["detail"].isprintable() for row in rejects)
    assert "secr\\xe9t.jpg" in next(row["detail"] for row in rejects if row["reason"] == "symlink_outside")
    assert metrics["stored"] == 3 and metrics["rejected"] == 2
