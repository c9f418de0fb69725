"""params.yaml files for the tests."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_params(root: Path, domains: dict, **sections: dict) -> Path:
    """A params.yaml under `root` with the given domains and sections (defaults for the rest)."""
    root.mkdir(parents=True, exist_ok=True)
    payload = {"domains": domains, **sections}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")
    return path
