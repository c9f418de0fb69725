"""A stage that dies leaves no process behind: its pool workers, their forkserver and resource tracker, and
its Prefect API server all exit once the stage process is gone (SIGKILL or SIGTERM, which run no clean-up)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from tests.builders.params import write_params
from tests.builders.repo import REPO

BIN = Path(sys.executable).parent


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(processes: list[psutil.Process]) -> list[str]:
    out = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{process.pid}: {' '.join(process.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _kill_and_check(stage: subprocess.Popen[bytes], sig: int, timeout: float = 20.0) -> None:
    """Kill `stage` once its API server and pool workers run; every process it started must end."""

    def started() -> bool:
        commands = [" ".join(p.cmdline()) for p in _descendants(stage.pid) if p.is_running()]
        workers = [c for c in commands if "multiprocessing.forkserver" in c or "multiprocessing.spawn" in c]
        server = any("core.api_server" in c or "prefect.server.api" in c for c in commands)  # ours, or Prefect's
        return server and len(workers) >= 3  # forkserver + 2 workers

    _wait_for(started, 120, "the stage's API server and pool workers")
    children = _descendants(stage.pid)
    os.kill(stage.pid, sig)
    stage.wait(timeout=30)
    _wait_for(lambda: not _alive(children), timeout, "the killed stage's processes to exit")


def _noise_jpeg(seed: int, side: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (side // 16, side // 16, 3), dtype=np.uint8)
    picture = Image.fromarray(small).resize((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(60):
        (photos / f"p{i:03d}.jpg").write_bytes(_noise_jpeg(i, 1400))
    executor = {"kind": "process", "workers": 2, "chunk_size": 1}
    domain = {
        "source": {"kind": "folder", "path": "photos"},
        "detector": {"name": "dlib_hog", "options": {"upsample": 1, "predictor": "5"}},  # no max_side: slow
        "align": {"method": "eyes", "size": 64},
        "tagger": {"name": "none"},
    }
    write_params(tmp_path, {"human": domain}, ingest={"executor": executor}, faces={"executor": executor})
    return tmp_path


def _stage(root: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / f"pytest-kill-{os.getpid()}"))
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [str(BIN / "twingan"), *args], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_faces_stage_leaves_no_process_behind(project: Path, sig: int) -> None:
    ingest = _stage(project, "ingest", "--domain", "human")
    assert ingest.wait(timeout=300) == 0
    _kill_and_check(_stage(project, "faces", "--domain", "human"), sig)
    assert not (project / "data" / "faces" / "human").exists()  # and nothing half-written was published


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from core.processes import worker_pool
    pool = worker_pool(2)
    futures = [pool.submit(time.sleep, 600) for _ in range(2)]
    time.sleep(1.5)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_pool_workers_exit_when_their_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT], cwd=REPO, stdout=subprocess.PIPE)
    assert parent.stdout is not None and parent.stdout.readline().strip() == b"ready"
    children = _descendants(parent.pid)
    assert len([c for c in children if "forkserver" in " ".join(c.cmdline())]) >= 3, _alive(children)
    parent.kill()
    parent.wait()
    _wait_for(lambda: not _alive(children), 15, f"orphans to exit: {_alive(children)}")


SERVER_SCRIPT = textwrap.dedent(
    """
    import time
    from core.environment import configure_environment
    configure_environment()
    from core.api_server import local_api
    with local_api() as url:
        print(url, flush=True)
        time.sleep(600)
    """
)


def test_the_api_server_answers_then_exits_with_its_stage(tmp_path: Path) -> None:
    import httpx

    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / f"pytest-server-{os.getpid()}"))
    env.pop("PREFECT_API_URL", None)
    parent = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], cwd=REPO, env=env, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    url = parent.stdout.readline().decode().strip()
    assert url.startswith("http://127.0.0.1:") and httpx.get(f"{url}/health", timeout=5).status_code == 200
    children = _descendants(parent.pid)
    assert any("core.api_server" in " ".join(c.cmdline()) for c in children)
    parent.kill()
    parent.wait()
    _wait_for(lambda: not _alive(children), 20, f"the server to exit: {_alive(children)}")


def test_a_users_api_url_is_used_and_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import api_server

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(api_server.LocalApiServer, "start", lambda *a, **k: pytest.fail("started a server"))
    with api_server.local_api() as url:
        assert url == "http://127.0.0.1:9/api"


STAGE_SCRIPT = textwrap.dedent(
    """
    from core.environment import configure_environment
    configure_environment()
    from core.api_server import local_api
    import os
    with local_api() as url:
        print(url, flush=True)
    """
)
FAKE_DVC = textwrap.dedent(
    """
    import subprocess, sys, time
    stage = sys.argv[2]
    for _ in range(3):  # three stages, each its own process under a shell, as dvc runs them
        subprocess.run(["sh", "-c", f"{sys.executable} {stage}"], check=True)
    print("done", flush=True)
    time.sleep(float(sys.argv[3]))
    """
)


def test_the_stages_of_one_dvc_run_share_one_server_that_ends_with_the_run(tmp_path: Path) -> None:
    """`dvc repro` runs each stage in a process of its own: the first starts the run's server, the others
    find it, and it exits when dvc does."""
    (tmp_path / "stage.py").write_text(STAGE_SCRIPT)
    fake = tmp_path / "bin" / "dvc"  # a process whose argv reads `.../dvc repro`, as the real one's does
    fake.parent.mkdir()
    fake.write_text(FAKE_DVC)
    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / f"pytest-run-{os.getpid()}"), PYTHONPATH=str(REPO))
    env.pop("PREFECT_API_URL", None)
    env.pop("TWINGAN_PREFECT_SERVER", None)
    run = subprocess.Popen([sys.executable, str(fake), "repro", str(tmp_path / "stage.py"), "600"], cwd=REPO,
                           env=env, stdout=subprocess.PIPE)  # fmt: skip
    assert run.stdout is not None
    urls = [run.stdout.readline().decode().strip() for _ in range(3)]
    assert run.stdout.readline().strip() == b"done"
    assert len(set(urls)) == 1 and urls[0].startswith("http://127.0.0.1:"), urls
    servers = [p for p in psutil.process_iter(["cmdline"]) if "core.api_server" in " ".join(p.info["cmdline"] or [])
               and f"--watch {run.pid}" in " ".join(p.info["cmdline"] or [])]  # fmt: skip
    assert len(servers) == 1, "one server for the whole run"
    run.kill()  # the run ends, however it ends: its server goes with it
    run.wait()
    _wait_for(lambda: not _alive(servers), 20, f"the run's server to exit: {_alive(servers)}")
    assert not list((Path(env["PREFECT_HOME"]) / "servers").glob("dvc-*.json")), "its record is gone too"


def test_every_stage_has_its_own_server_when_asked(tmp_path: Path) -> None:
    (tmp_path / "stage.py").write_text(STAGE_SCRIPT)
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text(FAKE_DVC)
    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / f"pytest-run-{os.getpid()}"), PYTHONPATH=str(REPO),
               TWINGAN_PREFECT_SERVER="stage")  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, str(fake), "repro", str(tmp_path / "stage.py"), "0"], cwd=REPO, env=env,
                          capture_output=True, check=True, timeout=300)  # fmt: skip
    urls = done.stdout.decode().split()[:3]
    assert len(set(urls)) == 3, urls


def _math_threads() -> tuple[str, int, int]:
    import cv2
    import torch

    return os.environ.get("OMP_NUM_THREADS", ""), torch.get_num_threads(), cv2.getNumThreads()


def test_pool_workers_run_one_thread_per_numeric_library() -> None:
    """A pool runs a worker per core; a worker whose torch or OpenCV also took a thread per core
    oversubscribed the machine (RetinaFace: 13x the CPU per photo)."""
    from core.processes import worker_pool

    with worker_pool(1) as pool:
        assert pool.submit(_math_threads).result(timeout=120) == ("1", 1, 1)
