"""The command line reports errors a user can fix in one line with status 2, and lets every other exception
(a bug) through with its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import UsageError
from twingan.cli import app


@pytest.mark.parametrize("raised", [ValueError("boom inside torch"), RuntimeError("boom inside torch")])
def test_a_bug_keeps_its_traceback(raised: Exception, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import inference.export
    import inference.translate

    def fail(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(inference.translate, "run_translate", fail)
    monkeypatch.setattr(inference.export, "export_translation", fail)
    for command in (
        ["translate", "x.png", "--to", "anime", "-o", str(tmp_path)],
        ["export", "-o", str(tmp_path / "m")],
    ):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1 and result.exception is raised, result.output  # not a one-line "error: ..."


def test_a_users_mistake_is_one_line_and_status_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import inference.translate

    def fail(*args: object, **kwargs: object) -> None:
        raise UsageError("--to 'dog': models/twingan.pt knows only human, anime")

    monkeypatch.setattr(inference.translate, "run_translate", fail)
    result = CliRunner().invoke(app, ["translate", "x.png", "--to", "dog", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --to 'dog': models/twingan.pt knows only human, anime"
