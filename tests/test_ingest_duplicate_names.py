"""Archives that hold two members of the same name (a zip appended to, `tar -r`).

`ZipFile.open(name)` returns the last member of that name, so the first one used to be lost and the
second recorded as a duplicate "with the same bytes", which was false. Each member is now read from
its own entry, and the n-th member of a name already seen in the archive is recorded as `<name>#<n>`.
"""

from __future__ import annotations

import io
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from core.params import ArchiveSource, load_params
from core.parquet import read_table
from core.schemas import RAW_MANIFEST, RAW_REJECTS
from flows.ingest import run_ingest
from preprocessing.ingest.inspect import ChunkJob, process_chunk
from preprocessing.ingest.outputs import assemble
from preprocessing.ingest.sources import list_source
from tests.builders import images as fx
from tests.builders.params import write_params

A1, A2, A3, B = fx.jpeg(1), fx.jpeg(2), fx.jpeg(3), fx.jpeg(4)
# In archive order: three different "img/a.jpg", and "img/b.jpg" twice with the same bytes.
MEMBERS = [("img/a.jpg", A1), ("img/b.jpg", B), ("img/a.jpg", A2), ("img/b.jpg", B), ("img/a.jpg", A3)]
LABELS = {A1: "A1", A2: "A2", A3: "A3", B: "B"}  # which member's bytes a stored file holds


def make_archive(path: Path) -> None:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
            for name, data in MEMBERS:
                archive.writestr(name, data)
        return
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as archive:
        for name, data in MEMBERS:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


ARCHIVES = ["photos.zip", "photos.tar", "photos.tar.gz"]


@pytest.mark.parametrize("name", ARCHIVES)
def test_members_of_the_same_name_are_each_read_and_kept(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    make_archive(path)
    job = ChunkJob(store=str(tmp_path / "store"), max_bytes=1 << 26, max_pixels=50_000_000, formats=("JPEG",))
    items = list(list_source(ArchiveSource(kind="archive", path=path), path, 1 << 26))
    records = process_chunk(items, job)
    read = {record.member: LABELS[(tmp_path / "store" / record.path).read_bytes()] for record in records}
    assert read == {"img/a.jpg": "A1", "img/b.jpg": "B", "img/a.jpg#2": "A2", "img/b.jpg#2": "B", "img/a.jpg#3": "A3"}

    result = assemble("cat", name, records)
    assert sorted(row["member"] for row in result.manifest) == ["img/a.jpg", "img/a.jpg#2", "img/a.jpg#3", "img/b.jpg"]
    [duplicate] = result.rejects
    assert (duplicate["member"], duplicate["reason"]) == ("img/b.jpg#2", "duplicate")
    assert duplicate["detail"] == "same bytes as img/b.jpg"


def test_the_stage_keeps_both_zip_members_of_one_name(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    make_archive(path)
    params = write_params(tmp_path / "project", {"cat": {"source": {"kind": "archive", "path": str(path)}}})
    metrics = run_ingest(load_params(params), "cat")
    out = tmp_path / "project/data/raw/cat"
    manifest = read_table(out / "manifest.parquet", RAW_MANIFEST).to_pylist()
    rejects = read_table(out / "rejects.parquet", RAW_REJECTS).to_pylist()
    stored = {row["member"]: LABELS[(out / row["path"]).read_bytes()] for row in manifest}
    assert stored == {"img/a.jpg": "A1", "img/a.jpg#2": "A2", "img/a.jpg#3": "A3", "img/b.jpg": "B"}
    assert [(row["member"], row["reason"], row["detail"]) for row in rejects] == [
        ("img/b.jpg#2", "duplicate", "same bytes as img/b.jpg")
    ]
    assert metrics["seen"] == 5 and metrics["stored"] == 4
