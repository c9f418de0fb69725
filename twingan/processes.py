"""How this project starts worker processes: one rule for the stages' pools, the evaluation's detectors and
the translator's face finders."""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext


def worker_context() -> BaseContext:
    """forkserver, not fork: the parents run threads (Prefect's, torch's), and forking a threaded process can
    copy a lock some thread holds into the child, which then waits on it forever. spawn where the platform
    has no forkserver (Windows). Either way a worker imports what it runs afresh, so the function it runs
    must live in a module, not in a script's main block."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)
