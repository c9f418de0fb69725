"""The Prefect API server a stage's flows talk to: Prefect's own server app, started once per `dvc repro`
and ended with it.

Prefect 3 starts a temporary server itself when no `PREFECT_API_URL` is set, but once per process and as
a plain subprocess: every stage of a `dvc repro` paid its start-up, and a stage killed with SIGKILL or
SIGTERM left it running for good. This module starts the same app (`prefect.server.api.server.create_app`,
served by uvicorn without the UI, as Prefect's temporary server is) in a process that watches the process
it serves (`core.processes.exit_with`) and exits when that one has:
- under `dvc repro`, `dvc exp run` or a queued experiment, the server serves the whole run: the first stage
  starts it, watching the `dvc` process, and records it in `$PREFECT_HOME/servers/`; the later stages find
  it there and reuse it. It ends when `dvc` does, however `dvc` ends.
- a stage run by hand (`twingan faces ...`) starts its own, watching itself.
`TWINGAN_PREFECT_SERVER=stage` gives every stage its own (what benchmarks/prefect_startup.py compares). A
`PREFECT_API_URL` set by the user wins: then nothing is started.

    python -m core.api_server --port 8123 --watch 4242 [--record FILE]     # what `LocalApiServer.start` runs
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.processes import exit_with

log = logging.getLogger("twingan.prefect")

MODE_VARIABLE = "TWINGAN_PREFECT_SERVER"  # run (default) | stage


def create_app() -> Any:
    """uvicorn's factory: Prefect's API app as its temporary server builds it (no UI)."""
    from prefect.server.api.server import create_app as prefect_app

    return prefect_app(ephemeral=True, final=True)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------------------------- whose run is this


def _proc(pid: int) -> tuple[list[str], int, str] | None:
    """(argv, parent pid, start time) of a process, from /proc; None where there is no such process (or no /proc)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return [a.decode(errors="replace") for a in argv if a], int(fields[1]), fields[19]


def _is_dvc_run(argv: list[str]) -> bool:
    """`dvc repro`, `dvc exp run`, `python -m dvc ...`: a dvc process whose stages share one server."""
    names = [Path(a).name for a in argv]
    is_dvc = "dvc" in names or any(a == "-m" and b == "dvc" for a, b in itertools.pairwise(argv))
    return is_dvc and any(verb in argv for verb in ("repro", "exp", "queue"))


def run_owner() -> tuple[int, str] | None:
    """The `dvc` process (pid, start time) this process runs under, or None: run by hand, or not Linux."""
    pid = os.getppid()
    for _ in range(16):  # dvc -> sh -c -> twingan, or a few more wrappers
        if pid <= 1:
            return None
        found = _proc(pid)
        if found is None:
            return None
        argv, parent, started = found
        if _is_dvc_run(argv):
            return pid, started
        pid = parent
    return None


def _alive(pid: int, started: str) -> bool:
    found = _proc(pid)
    return found is not None and found[2] == started  # the same process, not a later one with its pid


# ---------------------------------------------------------------------------------------- the server


@dataclass
class LocalApiServer:
    """A running server: its process id and API URL (`process` only for a server this process started)."""

    pid: int
    api_url: str
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, watch: int, timeout: float = 120.0, attempts: int = 3, record: Path | None = None) -> LocalApiServer:
        """Start a server that exits when process `watch` does; wait until it answers (the first start on a
        fresh PREFECT_HOME migrates the database). `timeout` follows Prefect's own setting for its server.
        A server serving another process than this one runs in its own session, so a Ctrl+C meant for this
        stage does not stop the server the rest of the run shares; it removes `record` when it ends."""
        started = time.perf_counter()
        for attempt in range(1, attempts + 1):
            port = free_port()
            command = [sys.executable, "-m", "core.api_server", "--port", str(port), "--watch", str(watch)]
            if record is not None:
                command += ["--record", str(record)]
            # A run's server outlives the stage that started it: it must not hold the stage's output pipes
            # (dvc, or whoever reads them, would wait for their end until the run ends).
            output = open(record.with_suffix(".log"), "ab") if record is not None else None  # noqa: SIM115
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                       start_new_session=watch != os.getpid())  # fmt: skip
            if output is not None:
                output.close()
            server = cls(process.pid, f"http://127.0.0.1:{port}/api", process)
            while time.perf_counter() - started < timeout:
                if process.poll() is not None:
                    break  # the port was taken between free_port() and the bind: try another
                if _healthy(server.api_url):
                    return server
                time.sleep(0.1)
            server.stop()
            if time.perf_counter() - started >= timeout:
                break
            log.debug("Prefect API server attempt %d exited with %s", attempt, process.returncode)
        raise RuntimeError(
            f"the local Prefect API server did not answer within {timeout:.0f} s; set PREFECT_API_URL to a running "
            "`prefect server start`, or raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
        )

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        found = _proc(self.pid)
        return found is not None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _servers_dir() -> Path:
    return Path(os.environ.get("PREFECT_HOME", ".prefect")).expanduser() / "servers"


def _run_server(owner: tuple[int, str], timeout: float) -> tuple[LocalApiServer, bool]:
    """The server of the dvc run `owner`, and whether this call started it. The record is read and written
    under a lock, so two stages starting at once still share one server."""
    folder = _servers_dir()
    folder.mkdir(parents=True, exist_ok=True)
    pid, started = owner
    record = folder / f"dvc-{pid}-{started}.json"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _remove_stale(folder)
        if record.is_file():
            known = json.loads(record.read_text())
            server = LocalApiServer(int(known["pid"]), str(known["url"]))
            if server.running() and _healthy(server.api_url):
                return server, False
        server = LocalApiServer.start(pid, timeout=timeout, record=record)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": server.pid, "url": server.api_url, "dvc_pid": pid}))
        tmp.replace(record)
        return server, True


def _remove_stale(folder: Path) -> None:
    """Records of runs that have ended (their server removes its record, unless it was killed)."""
    for path in folder.glob("dvc-*.json"):
        _, pid, started = path.stem.split("-", 2)
        if not _alive(int(pid), started):
            path.unlink(missing_ok=True)
            path.with_suffix(".log").unlink(missing_ok=True)


_SERVER: LocalApiServer | None = None


def _acquire(timeout: float) -> tuple[LocalApiServer, str]:
    """This process's server, and how it was found (for the log line)."""
    global _SERVER
    if _SERVER is not None and _SERVER.running():
        return _SERVER, "this process's"
    owner = run_owner() if os.environ.get(MODE_VARIABLE, "run") != "stage" else None
    if owner is not None:
        _SERVER, started = _run_server(owner, timeout)
        return _SERVER, "started for this dvc run" if started else "this dvc run's"
    _SERVER = LocalApiServer.start(os.getpid(), timeout=timeout)
    atexit.register(_SERVER.stop)
    return _SERVER, "started for this stage"


@contextlib.contextmanager
def local_api() -> Iterator[str]:
    """The API URL for this process's flows: the user's `PREFECT_API_URL`, else the server of this dvc run
    or of this process (see the module docstring). Children started inside the block (Dask workers)
    inherit the URL through the environment."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    began = time.perf_counter()
    server, how = _acquire(float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
    log.info("Prefect API server: %s (%s, pid %d) in %.2f s", how, server.api_url, server.pid,
             time.perf_counter() - began)  # fmt: skip
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--watch", type=int, required=True, help="exit when this process id has ended")
    parser.add_argument("--record", type=Path, help="the run's record of this server: removed when it ends")
    args = parser.parse_args(argv)
    import uvicorn

    config = uvicorn.Config(
        "core.api_server:create_app", factory=True, host="127.0.0.1", port=args.port, log_level="error",
        lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)

    def shut_down() -> None:
        server.should_exit = True  # uvicorn's own graceful stop, as on SIGTERM

    exit_with(args.watch, on_exit=shut_down)
    try:
        server.run()
    finally:
        if args.record is not None:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(args.record.read_text()).get("pid") == os.getpid():
                    args.record.unlink()
                    args.record.with_suffix(".log").unlink(missing_ok=True)
    if not server.started:
        sys.exit(3)  # could not bind: the parent tries another port


if __name__ == "__main__":
    main()
