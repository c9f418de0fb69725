"""How this project starts worker processes: one rule for the stages' pools, the evaluation's detectors and
the translator's face finders, and one rule for how they end: with the process that started them.

A stage killed with SIGKILL (or SIGTERM, which Python does not turn into an exception) runs no clean-up:
its forkserver workers then wait forever on a task queue whose write end they hold themselves, and keep
the forkserver and the resource tracker alive through the file descriptors they share. So every worker,
and the Prefect API server a stage starts (core/api_server.py), watches the process it serves and exits
when that process is gone.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any


def worker_context() -> BaseContext:
    """forkserver, not fork: the parents run threads (Prefect's, torch's), and forking a threaded process can
    copy a lock some thread holds into the child, which then waits on it forever. spawn where the platform
    has no forkserver (Windows). Either way a worker imports what it runs afresh, so the function it runs
    must live in a module, not in a script's main block."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def _wait_for_exit(pid: int, poll_seconds: float) -> None:
    """Return once process `pid` has ended: a pidfd where Linux has one (no polling), else polling."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # not Linux >= 5.3
        handle = None
    if handle is not None:
        with contextlib.closing(_Fd(handle)):
            select.select([handle], [], [])
        return
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # alive, owned by someone else
            pass
        time.sleep(poll_seconds)


class _Fd:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)


def exit_with(
    pid: int, *, on_exit: Callable[[], None] | None = None, grace_seconds: float = 10.0, poll_seconds: float = 0.5
) -> threading.Thread:
    """End this process when process `pid` ends (a daemon thread watches it).

    `on_exit` runs first (a server's own shutdown, say); whatever is still running `grace_seconds` later
    is ended with `os._exit`, since the process it served is gone and nobody will read its results."""

    def watch() -> None:
        _wait_for_exit(pid, poll_seconds)
        if on_exit is not None:
            deadline = threading.Timer(grace_seconds, os._exit, args=(1,))
            deadline.daemon = True
            deadline.start()
            on_exit()
            return
        os._exit(1)

    thread = threading.Thread(target=watch, name=f"exit-with-{pid}", daemon=True)
    thread.start()
    return thread


def single_threaded_math() -> None:
    """One thread for the numeric libraries of this process (torch, OpenCV, OpenMP/BLAS): a pool runs one
    worker per core, and each worker's libraries would otherwise start a thread per core too, so 2 workers
    on 2 cores ran 4 busy threads and the torch detectors took several times their CPU per image. It also
    makes a worker compute the same way whatever the machine's core count."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
        os.environ[variable] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(1)


def _start_worker(parent: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    exit_with(parent)
    single_threaded_math()
    if initializer is not None:
        initializer(*initargs)


def worker_pool(
    workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A process pool started as `worker_context` says, whose workers exit when this process is gone."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=worker_context(),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """Within the block, Ctrl+C and SIGTERM (systemd, `docker stop`) both raise KeyboardInterrupt and set
    the event, so that a server stops the same way on either, closing what it opened, with status 0.

    The event is there because Python drops an exception raised by a handler that runs inside a __del__
    or weakref callback (importlib's module locks, while torch imports): whoever polls the event still
    sees the request. Only Python's own SIGINT handler and SIGTERM's default action are replaced: an
    ignored signal (a background job of a shell script ignores SIGINT) stays ignored, the parent's
    choice. The handlers are put back on exit."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt

    usual = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    main = threading.current_thread() is threading.main_thread()  # handlers can only be set there
    owned = {signum: handler for signum, handler in usual.items() if main and signal.getsignal(signum) is handler}
    for signum in owned:
        signal.signal(signum, request_stop)
    try:
        yield stop
    finally:
        for signum, handler in owned.items():
            signal.signal(signum, handler)
