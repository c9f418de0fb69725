"""The Prefect API server a stage's flows talk to: Prefect's own server app, in a child process that ends
with the process it serves.

Prefect 3 starts a temporary server itself when no `PREFECT_API_URL` is set, but as a plain subprocess:
a stage killed with SIGKILL or SIGTERM leaves it running (about 230 MB) for good. This module starts the
same app (`prefect.server.api.server.create_app`, served by uvicorn, without the UI, as Prefect's temporary
server is) with a watch on the served process (`core.processes.exit_with`), and points the stage's
flows at it. A `PREFECT_API_URL` set by the user wins: then nothing is started.

    python -m core.api_server --port 8123 --watch 4242     # what `LocalApiServer.start` runs
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.processes import exit_with

log = logging.getLogger("twingan.prefect")


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


@dataclass
class LocalApiServer:
    """A running server: its process and API URL."""

    process: subprocess.Popen[bytes]
    api_url: str

    @classmethod
    def start(cls, watch: int, timeout: float = 120.0, attempts: int = 3) -> LocalApiServer:
        """Start a server that exits when process `watch` does; wait until it answers (the first start on a
        fresh PREFECT_HOME migrates the database). `timeout` follows Prefect's own setting for its server."""
        started = time.perf_counter()
        for attempt in range(1, attempts + 1):
            port = free_port()
            command = [sys.executable, "-m", "core.api_server", "--port", str(port), "--watch", str(watch)]
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            server = cls(process, f"http://127.0.0.1:{port}/api")
            while time.perf_counter() - started < timeout:
                if process.poll() is not None:
                    break  # the port was taken between free_port() and the bind: try another
                if _healthy(server.api_url):
                    log.debug("Prefect API server on port %d (pid %d) in %.1f s", port, process.pid,
                              time.perf_counter() - started)  # fmt: skip
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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_SERVER: LocalApiServer | None = None


@contextlib.contextmanager
def local_api() -> Iterator[str]:
    """The API URL for this process's flows: the user's `PREFECT_API_URL`, else a server started by the first
    block in this process and kept for the later ones, as Prefect keeps its own temporary server (stopped
    at exit, and never outliving this process). Children started inside the block (Dask workers) inherit
    the URL through the environment."""
    global _SERVER
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    if _SERVER is None or _SERVER.process.poll() is not None:
        timeout = float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        _SERVER = LocalApiServer.start(os.getpid(), timeout=timeout)
        atexit.register(_SERVER.stop)
    os.environ["PREFECT_API_URL"] = _SERVER.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: _SERVER.api_url}):
            yield _SERVER.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--watch", type=int, required=True, help="exit when this process id has ended")
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
    server.run()
    if not server.started:
        sys.exit(3)  # could not bind: the parent tries another port


if __name__ == "__main__":
    main()
