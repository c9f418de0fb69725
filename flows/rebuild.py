"""The end-to-end rebuild: `dvc repro` of the whole pipeline as one Prefect flow a user can schedule.

DVC decides what is stale and runs it; Prefect adds what a scheduled job needs around it: retries for
the stages that talk to the outside world (`rebuild.flaky_stages`, the scraper), a record of each run,
a schedule (`twingan rebuild --serve --cron ...`), and the push of the results to a DVC remote so that
others can `dvc pull` instead of rebuilding.

Stages run as `dvc` subprocesses. They are pointed at this flow's Prefect server (PREFECT_API_URL), so a
stage does not start a second server on the same database.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from twingan.params import LoadedParams, load_params

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


def serve_rebuild(loaded: LoadedParams, cron: str, targets: list[str]) -> None:
    """Serve the flow on a schedule (blocks; stop with Ctrl-C). Needs nothing but this process."""
    rebuild_flow.serve(
        name="twingan-rebuild", cron=cron, parameters={"params_file": str(loaded.file), "targets": targets}
    )
