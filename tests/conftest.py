"""Shared fixtures. The environment is set before anything imports Prefect.

Each pytest-xdist worker gets its own PREFECT_HOME: parallel processes that migrate one fresh Prefect
database race on it (../shared/research/env.md, trap 5).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ.setdefault("PREFECT_HOME", str(REPO / ".prefect" / f"pytest-{_worker}"))

from core.environment import configure_environment  # noqa: E402

configure_environment(REPO)

import pytest  # noqa: E402
import yaml  # noqa: E402

REAL_DATA = REPO.parent / "shared" / "data" / "real"


def write_params(root: Path, domains: dict, **sections: dict) -> Path:
    """A params.yaml under `root` with the given domains and sections (defaults for the rest)."""
    root.mkdir(parents=True, exist_ok=True)
    payload = {"domains": domains, **sections}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real images not available: {REAL_DATA} is absent (../shared is not beside the repo)")
    return REAL_DATA
