"""Shared fixtures. The environment is set before anything imports Prefect.

Each pytest-xdist worker gets its own PREFECT_HOME: parallel processes that migrate one fresh Prefect
database race on it (../shared/research/env.md, trap 5).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.builders.repo import REPO

_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ.setdefault("PREFECT_HOME", str(REPO / ".prefect" / f"pytest-{_worker}"))

from core.environment import configure_environment  # noqa: E402

configure_environment(REPO)

import pytest  # noqa: E402

REAL_DATA = REPO.parent / "shared" / "data" / "real"


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real images not available: {REAL_DATA} is absent (../shared is not beside the repo)")
    return REAL_DATA
