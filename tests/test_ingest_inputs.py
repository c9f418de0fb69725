"""Ingest of every kind of bad or awkward input: nothing stops the run, nothing is lost silently.

These tests call the per-item code directly (fast); tests/test_ingest_stage.py runs the whole flow.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.params import ArchiveSource, FolderSource
from preprocessing.images import load_rgb
from preprocessing.ingest.inspect import ChunkJob, process_chunk
from preprocessing.ingest.outputs import assemble
from preprocessing.ingest.sources import SourceError, list_source, unsafe_member_name
from tests.builders import images as fx


def ingest_records(
    source_path: Path,
    source: FolderSource | ArchiveSource,
    store: Path,
    max_pixels: int = 50_000_000,
    max_bytes: int = 1 << 26,
):
    job = ChunkJob(
        store=str(store),
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        formats=("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO"),
    )
    items = list(list_source(source, source_path, max_bytes))
    return {record.member: record for record in process_chunk(items, job)}


def folder(path: Path, files: dict[str, bytes]) -> FolderSource:
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return FolderSource(kind="folder", path=path)


def test_every_bad_file_is_rejected_with_its_reason_and_the_good_ones_stored(tmp_path: Path) -> None:
    source = folder(
        tmp_path / "src",
        {
            "good.jpg": fx.jpeg(1),
            "nested/deeper/good.png": fx.png(2),
            "truncated.jpg": fx.truncated(fx.jpeg(3, 256, 256)),
            "truncated.png": fx.truncated(fx.png(4, 128, 128)),
            "empty.jpg": b"",
            "text.jpg": b"<html>not an image</html>",
            "bomb.png": fx.huge_png(2000, 1000),
            "portable.png": fx.ppm(5),  # decodes, but PPM is not an accepted format
            "notes.txt": b"ignored: no image extension",
        },
    )
    records = ingest_records(tmp_path / "src", source, tmp_path / "store", max_pixels=1_000_000)
    reasons = {member: record.reason for member, record in records.items()}
    assert reasons == {
        "good.jpg": None,
        "nested/deeper/good.png": None,
        "truncated.jpg": "corrupt",
        "truncated.png": "corrupt",
        "empty.jpg": "empty",
        "text.jpg": "not_an_image",
        "bomb.png": "too_many_pixels",
        "portable.png": "unsupported_format",
    }
    assert "2000x1000 > ingest.max_pixels" in records["bomb.png"].detail
    stored = sorted(
        p.relative_to(tmp_path / "store").as_posix() for p in (tmp_path / "store").rglob("*") if p.is_file()
    )
    assert stored == sorted(records[m].path for m in ("good.jpg", "nested/deeper/good.png"))


def test_awkward_but_valid_images_are_stored_and_read_back_as_upright_rgb(tmp_path: Path) -> None:
    ramp = np.array([[0, 257 * 128, 65535, 1000]], dtype=np.uint16)
    source = folder(
        tmp_path / "src",
        {
            "cmyk.jpg": fx.cmyk_jpeg(1),
            "rotated.jpg": fx.exif_rotated_jpeg(2),
            "sixteen.png": fx.png16(ramp),
            "palette.png": fx.palette_png_with_transparency(),
            "alpha.png": fx.rgba_png(),
            "gray.png": fx.grayscale_png(3),
        },
    )
    records = ingest_records(tmp_path / "src", source, tmp_path / "store")
    assert all(record.reason is None for record in records.values()), records
    assert records["cmyk.jpg"].mode == "CMYK"
    rotated = records["rotated.jpg"]
    assert (rotated.width, rotated.height, rotated.exif_orientation) == (64, 48, 6)

    def pixels(member: str) -> np.ndarray:
        image = load_rgb(tmp_path / "store" / records[member].path)
        assert image.mode == "RGB"
        return np.asarray(image)

    assert pixels("rotated.jpg").shape == (48, 64, 3)  # upright, as the manifest says
    upright = np.asarray(fx.photo(64, 48, 2), dtype=float)
    assert np.abs(pixels("rotated.jpg").astype(float) - upright).mean() < 12
    assert pixels("cmyk.jpg").shape == (48, 64, 3)
    assert pixels("sixteen.png")[0, :, 0].tolist() == [0, 128, 255, 4]  # scaled, not clipped
    palette = pixels("palette.png")
    assert palette[0, 0].tolist() == [0, 0, 255]
    assert palette[0, 7].tolist() == [255, 255, 255]  # transparent red -> white background
    alpha = pixels("alpha.png")
    assert alpha[0, 0].tolist() == [255, 255, 255] and alpha[0, 7].tolist() == [0, 128, 0]
    assert pixels("gray.png").shape == (32, 32, 3)


def test_exact_duplicates_are_stored_once_and_listed(tmp_path: Path) -> None:
    same = fx.jpeg(7)
    source = folder(tmp_path / "src", {"b/second.jpg": same, "a/first.jpg": same, "c/other.jpg": fx.jpeg(8)})
    records = ingest_records(tmp_path / "src", source, tmp_path / "store")
    result = assemble("cat", "src", records.values())
    assert [row["member"] for row in result.manifest] == sorted(
        ["a/first.jpg", "c/other.jpg"], key=lambda m: records[m].sha256
    )
    first = next(row for row in result.manifest if row["member"] == "a/first.jpg")
    assert first["duplicates"] == 1
    [duplicate] = result.rejects
    assert duplicate["member"] == "b/second.jpg" and duplicate["reason"] == "duplicate"
    assert duplicate["duplicate_of"] == first["id"]
    assert result.metrics()["rejects"]["duplicate"] == 1


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_symlinks_may_not_leave_the_source_folder(tmp_path: Path) -> None:
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(fx.jpeg(9))
    source = folder(tmp_path / "src", {"inside.jpg": fx.jpeg(10)})
    (tmp_path / "src" / "escape.jpg").symlink_to(outside)
    (tmp_path / "src" / "alias.jpg").symlink_to(tmp_path / "src" / "inside.jpg")
    (tmp_path / "src" / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "linked_dir").mkdir()
    (tmp_path / "linked_dir" / "x.jpg").write_bytes(fx.jpeg(11))
    (tmp_path / "src" / "folder_link").symlink_to(tmp_path / "linked_dir")
    records = ingest_records(tmp_path / "src", source, tmp_path / "store")
    assert records["escape.jpg"].reason == "symlink_outside"
    assert records["alias.jpg"].reason is None  # inside the folder: read (and deduplicated later)
    assert records["dangling.jpg"].reason == "unreadable"
    assert records["folder_link"].reason == "not_a_file"
    assert "linked_dir" not in str(records)


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    folder(tmp_path / "src", {"a.JPG": fx.jpeg(1), "thumbs/a.jpg": fx.jpeg(2), "b.png": fx.png(3)})
    source = FolderSource(kind="folder", path=tmp_path / "src", include=("*.jpg",), exclude=("thumbs/*",))
    assert set(ingest_records(tmp_path / "src", source, tmp_path / "store")) == {"a.JPG"}


def make_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_zip_members_with_unsafe_names_links_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    make_zip(
        path,
        {
            "img/ok.jpg": fx.jpeg(1),
            "../escape.jpg": fx.jpeg(2),
            "/abs.jpg": fx.jpeg(3),
            "img/big.jpg": fx.jpeg(4, 400, 400),
            "img/corrupt.jpg": fx.truncated(fx.jpeg(5)),
        },
    )
    with zipfile.ZipFile(path, "a") as archive:  # a symlink member, as `zip --symlinks` writes it
        info = zipfile.ZipInfo("img/link.jpg")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    source = ArchiveSource(kind="archive", path=path)
    records = ingest_records(path, source, tmp_path / "store", max_bytes=10_000)
    assert {m: r.reason for m, r in records.items()} == {
        "img/ok.jpg": None,
        "../escape.jpg": "unsafe_path",
        "/abs.jpg": "unsafe_path",
        "img/big.jpg": "too_large",
        "img/corrupt.jpg": "corrupt",
        "img/link.jpg": "not_a_file",
    }
    assert not (tmp_path / "escape.jpg").exists()


def test_zip_member_with_bad_crc_is_unreadable_and_the_rest_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "damaged.zip"
    path.write_bytes(fx.zip_with_bad_crc("damaged.png", fx.png(1, 128, 128)))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("fine.jpg", fx.jpeg(2))
    records = ingest_records(path, ArchiveSource(kind="archive", path=path), tmp_path / "store")
    assert records["damaged.png"].reason == "unreadable" and "CRC" in records["damaged.png"].detail
    assert records["fine.jpg"].reason is None


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> None:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("img/link.jpg")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_archives_plain_and_compressed(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"photos.{mode.replace('w:', 'tar.').replace('w', 'tar')}"
    make_tar(
        path,
        {
            "img/a.jpg": fx.jpeg(1),
            "img/b.png": fx.png(2),
            "../../up.jpg": fx.jpeg(3),
            "img/bad.jpg": b"GIF89a but not really",
        },
        mode,
    )
    records = ingest_records(path, ArchiveSource(kind="archive", path=path), tmp_path / "store")
    assert {m: r.reason for m, r in records.items()} == {
        "img/a.jpg": None,
        "img/b.png": None,
        "../../up.jpg": "unsafe_path",
        "img/bad.jpg": "not_an_image",
        "img/link.jpg": "not_a_file",
    }


def test_truncated_tar_gz_keeps_what_was_read_and_records_where_it_broke(tmp_path: Path) -> None:
    whole = tmp_path / "whole.tar.gz"
    members = {f"img/{i:02d}.png": fx.png(i, 96, 96) for i in range(6)}
    make_tar(whole, members, "w:gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    records = ingest_records(cut, ArchiveSource(kind="archive", path=cut), tmp_path / "store")
    stored = [m for m, r in records.items() if r.reason is None]
    broken = [r for r in records.values() if r.reason == "unreadable"]
    assert 1 <= len(stored) < len(members)
    assert len(broken) >= 1 and any("archive unreadable after member" in r.detail or "read" in r.detail for r in broken)


def test_a_file_that_is_no_archive_fails_the_source_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    path.write_bytes(b"definitely not a zip file" * 20)
    with pytest.raises(SourceError, match=r"photos\.zip: not a zip or tar archive"):
        list(list_source(ArchiveSource(kind="archive", path=path), path, 1 << 20))


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [
        ("a/b.jpg", False),
        ("..jpg", False),
        ("a/../../b.jpg", True),
        ("/etc/x.jpg", True),
        ("C:/x.jpg", True),
        ("\\\\server\\x.jpg", True),
        ("", True),
    ],
)
def test_unsafe_member_names(name: str, unsafe: bool) -> None:
    assert (unsafe_member_name(name) is not None) == unsafe


def test_store_is_content_addressed_and_keeps_bytes_exactly(tmp_path: Path) -> None:
    data = fx.jpeg(42)
    source = folder(tmp_path / "src", {"x.jpg": data})
    record = ingest_records(tmp_path / "src", source, tmp_path / "store")["x.jpg"]
    import hashlib

    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.path == f"images/{record.sha256[:2]}/{record.sha256}.jpg"
    assert (tmp_path / "store" / record.path).read_bytes() == data
    assert Image.open(tmp_path / "store" / record.path).size == (64, 48)
