"""The end-to-end rebuild: `dvc repro` of the whole pipeline as one Prefect flow a user can schedule.

DVC decides what is stale and runs it; Prefect adds what a scheduled job needs around it: retries for
the stages that talk to the outside world (`rebuild.flaky_stages`, the scraper), a record of each run,
a schedule (`twingan rebuild --serve --cron ...`), and the push of the results to a DVC remote so that
others can `dvc pull` instead of rebuilding.

Stages run as `dvc` subprocesses. They are pointed at this flow's Prefect server (PREFECT_API_URL), so a
stage does not start a second server on the same database.

Prefect does not schedule on the temporary server it starts for a plain flow run, so `--serve` runs a
real one (`prefect server start`, on 127.0.0.1, with the project's PREFECT_HOME) for as long as it
serves, unless PREFECT_API_URL already names a server.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from core.params import LoadedParams, load_params

log = logging.getLogger("twingan.rebuild")


class StageFailed(RuntimeError):
    pass


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    if "PREFECT_API_URL" not in env:
        try:
            from prefect.server.api.server import SubprocessASGIServer

            server = SubprocessASGIServer()
            if server.port is not None and server.running:
                env["PREFECT_API_URL"] = server.api_url
        except Exception:
            pass
    return env


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dvc", *args]
    log.info("rebuild: dvc %s", " ".join(args))
    done = subprocess.run(command, cwd=root, env=_child_env(), text=True, capture_output=True, check=False)
    sys.stderr.write(done.stderr)
    sys.stdout.write(done.stdout)
    return done


def stage_names(root: Path) -> list[str]:
    """Every stage of dvc.yaml (foreach expanded), in dependency order."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        import networkx as nx

        graph = repo.index.graph
        order = list(reversed(list(nx.topological_sort(graph))))
        names = []
        for stage in order:
            if not getattr(stage, "cmd", None):
                continue
            dvcfile = os.path.relpath(stage.path, root)
            names.append(stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}")
        return names


def flaky_targets(names: list[str], patterns: tuple[str, ...]) -> list[str]:
    return [name for name in names if any(fnmatch.fnmatchcase(name, p) or name.split("@")[0] == p for p in patterns)]


@task(name="dvc-repro", cache_policy=NO_CACHE)
def repro(root: str, targets: list[str]) -> str:
    done = _dvc(Path(root), "repro", *targets)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise StageFailed(f"dvc repro {' '.join(targets) or '(all)'} exited {done.returncode}: " + " | ".join(tail))
    return done.stdout


@task(name="dvc-push", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30)
def push(root: str, remote: str | None) -> bool:
    done = _dvc(Path(root), "push", *(["-r", remote] if remote else []))
    if done.returncode:
        raise StageFailed(f"dvc push exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return True


def has_remote(root: Path, remote: str | None) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "list"], cwd=root, text=True, capture_output=True, check=False
    )
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    return remote in names if remote else bool(names)


@flow(name="rebuild", validate_parameters=False)
def rebuild_flow(params_file: str, targets: list[str]) -> dict[str, Any]:
    loaded = load_params(params_file)
    settings = loaded.params.rebuild
    root = str(loaded.root)
    started = time.perf_counter()
    summary: dict[str, Any] = {"targets": targets or ["(all)"], "flaky": [], "pushed": False}
    try:
        names = stage_names(loaded.root)
        flaky = flaky_targets(names, settings.flaky_stages)
        if targets:
            flaky = [name for name in flaky if name in targets]
        summary["flaky"] = flaky
        if flaky:  # run these (and what they need) first, with retries; the rest once
            repro.with_options(retries=settings.retries, retry_delay_seconds=settings.retry_delay_seconds)(root, flaky)
        repro(root, targets)
        if settings.push and has_remote(loaded.root, settings.remote):
            summary["pushed"] = push(root, settings.remote)
        elif settings.push:
            log.info("rebuild: no DVC remote configured, nothing pushed (dvc remote add -d ...)")
    except StageFailed as error:
        summary["failed"] = targets or "(all)"
        summary["error"] = str(error)
        log.error("rebuild: %s", error)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def prefect_server(home: Path, timeout: float = 90.0) -> Iterator[str]:
    """The API URL of a Prefect server that can schedule: PREFECT_API_URL's, or one started here."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.log", "ab") as server_log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--analytics-off",
                "--no-ui",
            ],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited with {server.returncode}; see {home / 'server.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s; see {home / 'server.log'}")
            time.sleep(0.5)
        log.info("rebuild: Prefect server at %s (log: %s)", url, home / "server.log")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def serve_rebuild(loaded: LoadedParams, cron: str, targets: list[str]) -> None:
    """Serve the flow on a schedule (blocks; stop with Ctrl-C), against a server that schedules."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = Path(os.environ.get("PREFECT_HOME", loaded.root / ".prefect"))
    with prefect_server(home) as url, temporary_settings(updates={PREFECT_API_URL: url}):
        os.environ["PREFECT_API_URL"] = url  # for the stages' dvc subprocesses
        rebuild_flow.serve(
            name="twingan-rebuild",
            cron=cron,
            parameters={"params_file": str(loaded.file), "targets": targets},
        )
