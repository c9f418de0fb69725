"""The local Prefect environment: defaults that can be overridden, and a home that exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.environment import configure_environment


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


def test_chunks_split_small_inputs_for_every_worker_and_cap_large_ones() -> None:
    from core.executor import chunk_size_for
    from core.params import ExecutorParams

    two = ExecutorParams(workers=2, chunk_size=256)
    assert chunk_size_for(106, two) == 27  # 4 chunks: 2 per worker
    assert chunk_size_for(200_000, two) == 256
    assert chunk_size_for(3, two) == 1
    assert chunk_size_for(None, two) == 256  # a streamed tar: size unknown


def test_balanced_chunks_spread_the_large_items() -> None:
    from core.executor import balanced_chunks

    sizes = [100, 90, 80, 70, 5, 4, 3, 2, 1]  # sorted by name, the large ones come first
    chunks = balanced_chunks(sizes, 3, weight=lambda size: size)
    assert sorted(len(chunk) for chunk in chunks) == [3, 3, 3]
    assert sorted(x for chunk in chunks for x in chunk) == sorted(sizes)
    assert max(map(sum, chunks)) <= 151  # contiguous chunks: 270 in one, 12 in another
    assert balanced_chunks([], 4, weight=len) == []
    assert balanced_chunks([7], 4, weight=int) == [[7]]


def test_stage_flows_run_without_the_heartbeat_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import get_current_settings

    from core.environment import stage_flow_settings

    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    with stage_flow_settings():
        assert get_current_settings().flows.heartbeat_frequency is None
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")  # the user's choice is left alone
    with stage_flow_settings():
        assert get_current_settings().flows.heartbeat_frequency == 60
