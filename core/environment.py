"""The environment every stage runs Prefect (and DVC) in: local, offline, quiet.

A stage's flows talk to a local Prefect API server, one per `dvc repro`, that never outlives the run
(core/api_server.py). Its home is `.prefect/` in the project so the database
is migrated once, not per run. Telemetry of Prefect, DVC and Gradio is switched off, since these
machines may have no route out and users should not be tracked by default.
Every value is only a default: set the variable yourself (for example `PREFECT_API_URL` of a running
`prefect server start`) and it wins.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # DO_NOT_TRACK alone does not stop it
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",  # stages log what they read and wrote themselves
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    # The API server of a stage can take longer than Prefect's default 20 s to start on a loaded machine (a
    # CI run beside other jobs): a slow start should not fail a stage.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "DVC_NO_ANALYTICS": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def configure_environment(project_root: Path | None = None) -> dict[str, str]:
    """Set the defaults above and PREFECT_HOME; call before Prefect is imported. Returns what it set."""
    root = (project_root or Path.cwd()).absolute()
    wanted = dict(QUIET_DEFAULTS, PREFECT_HOME=str(root / ".prefect"))
    applied = {}
    for key, value in wanted.items():
        if key not in os.environ:
            os.environ[key] = value
            applied[key] = value
    # Prefect creates its SQLite file but not missing parent folders ("unable to open database file").
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    return applied


@contextlib.contextmanager
def stage_flow_settings() -> Iterator[None]:
    """Settings for a stage's flow, run in-process by `dvc repro`: its API server (`local_api`), and no
    heartbeat.

    Prefect's flow heartbeat (on by default) lets a server notice crashed runs of deployed flows; for a
    flow that lives and dies with its own process it only costs time: the engine waits for the
    heartbeat thread, which sleeps in whole-second steps, so every flow ended on a whole second.
    `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` set by the user still wins.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from core.api_server import local_api

    users = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY" in os.environ
    quiet = contextlib.nullcontext() if users else temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    with local_api(), quiet:
        yield
