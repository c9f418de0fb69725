"""The local Prefect environment: defaults that can be overridden, and a home that exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.runtime import configure_environment


def test_defaults_are_set_only_where_the_user_set_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED", "DVC_NO_ANALYTICS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    applied = configure_environment(tmp_path)
    assert applied["PREFECT_HOME"] == str(tmp_path / ".prefect")
    assert applied["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and applied["DVC_NO_ANALYTICS"] == "1"
    assert "PREFECT_LOGGING_LEVEL" not in applied
    assert (tmp_path / ".prefect").is_dir()


def test_a_nested_home_given_by_the_user_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "a" / "b"))
    configure_environment(tmp_path)
    assert (tmp_path / "a" / "b").is_dir()
