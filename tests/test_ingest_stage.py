"""The ingest stage end to end through its Prefect flow: outputs, determinism, executors, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.params import load_params
from core.parquet import read_params, read_table
from core.schemas import RAW_MANIFEST, RAW_REJECTS
from flows.ingest import run_ingest
from tests.builders import images as fx
from tests.builders.params import write_params
from tests.builders.repo import REPO

MIXED = {
    "a.jpg": fx.jpeg(1),
    "b/c.png": fx.png(2),
    "b/dup.jpg": fx.jpeg(1),
    "rot.jpg": fx.exif_rotated_jpeg(3),
    "cmyk.jpg": fx.cmyk_jpeg(4),
    "trunc.jpg": fx.truncated(fx.jpeg(5, 200, 200)),
    "zero.png": b"",
    "fake.jpg": b"not an image",
    **{f"many/{i:02d}.jpg": fx.jpeg(10 + i) for i in range(9)},
}


def make_source(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def run_stage(root: Path, source: Path, **executor: object) -> Path:
    params = write_params(
        root,
        {"cat": {"source": {"kind": "folder", "path": str(source)}}},
        ingest={"executor": executor} if executor else {},
    )
    run_ingest(load_params(params), "cat")
    return root / "data" / "raw" / "cat"


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_stage_publishes_manifest_rejects_images_and_metrics(tmp_path: Path) -> None:
    make_source(tmp_path / "src", MIXED)
    out = run_stage(tmp_path / "project", tmp_path / "src", kind="thread", workers=2, chunk_size=4)
    manifest = read_table(out / "manifest.parquet", RAW_MANIFEST).to_pylist()
    rejects = read_table(out / "rejects.parquet", RAW_REJECTS).to_pylist()
    assert len(manifest) == 13 and [row["id"] for row in manifest] == sorted(row["id"] for row in manifest)
    assert {row["member"]: row["reason"] for row in rejects} == {
        "b/dup.jpg": "duplicate",
        "trunc.jpg": "corrupt",
        "zero.png": "empty",
        "fake.jpg": "not_an_image",
    }
    for row in manifest:
        assert (out / row["path"]).is_file() and row["domain"] == "cat"
    assert len(list((out / "images").rglob("*.*"))) == 13
    metrics = json.loads((tmp_path / "project/metrics/ingest/cat.json").read_text())
    assert metrics["seen"] == 17 and metrics["stored"] == 13 and metrics["rejected"] == 4
    assert metrics["rejects"]["duplicate"] == 1 and metrics["rejects"]["too_many_pixels"] == 0
    assert read_params(out / "manifest.parquet")["ingest"]["max_pixels"] == 50_000_000
    assert "executor" not in read_params(out / "manifest.parquet")["ingest"]
    assert not (out.parent / "cat.partial").exists()


def test_output_is_byte_identical_for_any_worker_count_and_pool(tmp_path: Path) -> None:
    make_source(tmp_path / "src", MIXED)
    one = run_stage(tmp_path / "one", tmp_path / "src", kind="thread", workers=1, chunk_size=3)
    again = run_stage(tmp_path / "again", tmp_path / "src", kind="thread", workers=1, chunk_size=3)
    many = run_stage(tmp_path / "many", tmp_path / "src", kind="process", workers=2, chunk_size=2)
    assert snapshot(one) == snapshot(again) == snapshot(many)


def test_dask_task_runner_gives_the_same_output(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="prefect-dask extra not installed")
    pytest.importorskip("prefect_dask", reason="prefect-dask extra not installed")
    make_source(tmp_path / "src", MIXED)
    local = run_stage(tmp_path / "local", tmp_path / "src", kind="thread", workers=1)
    # Threads, not processes, so the workers share this process's Prefect server.
    with distributed.LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster:
        dask = run_stage(
            tmp_path / "dask",
            tmp_path / "src",
            kind="dask",
            workers=2,
            chunk_size=3,
            dask_address=cluster.scheduler_address,
        )
    assert snapshot(local) == snapshot(dask)


def test_kill_9_mid_stage_leaves_the_previous_output_and_the_rerun_completes(tmp_path: Path) -> None:
    source, project = tmp_path / "src", tmp_path / "project"
    make_source(source, {f"{i:03d}.jpg": fx.jpeg(i, 96, 96) for i in range(8)})
    executor = {"kind": "thread", "workers": 1, "chunk_size": 1}
    out = run_stage(project, source, **executor)
    before = snapshot(out)
    make_source(source, {f"{i:03d}.jpg": fx.jpeg(i, 96, 96) for i in range(8, 400)})

    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / "pytest-kill"))
    child = subprocess.Popen(
        [sys.executable, "-m", "twingan", "ingest", "--domain", "cat", "--params", str(project / "params.yaml")],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = out.parent / "cat.partial" / "images"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if staging.is_dir() and sum(1 for _ in staging.rglob("*.jpg")) >= 30:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the stage finished before it could be killed: make the input larger"
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert snapshot(out) == before  # the visible output is still the previous complete one
    assert sum(1 for _ in staging.rglob("*.jpg")) >= 30  # work kept for the rerun

    out = run_stage(project, source, **executor)
    clean = run_stage(tmp_path / "clean", source, **executor)
    assert snapshot(out) == snapshot(clean)
    assert len(read_table(out / "manifest.parquet", RAW_MANIFEST)) == 400
    assert not (out.parent / "cat.partial").exists()


def test_stale_files_of_an_interrupted_run_are_not_published(tmp_path: Path) -> None:
    make_source(tmp_path / "src", {"a.jpg": fx.jpeg(1)})
    stale = tmp_path / "project/data/raw/cat.partial/images/ff/" / ("f" * 64 + ".jpg")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(fx.jpeg(2))
    (stale.parents[2] / ".manifest.parquet.x1y2.tmp").write_bytes(b"half a table")
    out = run_stage(tmp_path / "project", tmp_path / "src", kind="thread", workers=1)
    assert sorted(snapshot(out)) == sorted(
        ["manifest.parquet", "rejects.parquet", read_table(out / "manifest.parquet", RAW_MANIFEST)["path"][0].as_py()]
    )
