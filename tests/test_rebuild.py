"""The end-to-end rebuild flow: DVC runs the stages, Prefect retries the flaky ones, results are pushed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows.rebuild import flaky_targets, rebuild_flow, stage_names
from tests.conftest import write_params

BIN = Path(sys.executable).parent


def test_flaky_patterns_match_stage_names_and_foreach_groups() -> None:
    names = ["demo_data", "scrape", "ingest@human", "ingest@cat", "faces@cat"]
    assert flaky_targets(names, ("scrape", "ingest")) == ["scrape", "ingest@human", "ingest@cat"]
    assert flaky_targets(names, ("faces@*",)) == ["faces@cat"]
    assert flaky_targets(names, ()) == []


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small DVC project whose `scrape` stage fails on its first attempt, like a flaky website."""
    root = tmp_path / "project"
    (root / "photos").mkdir(parents=True)
    write_params(
        root,
        {"cat": {"source": {"kind": "folder", "path": "photos"}}},
        rebuild={"flaky_stages": ["scrape"], "retries": 2, "retry_delay_seconds": 0},
    )
    (root / "flaky.py").write_text(
        textwrap.dedent("""
        import pathlib, sys
        attempts = pathlib.Path(sys.argv[1])
        attempts.write_text(str(int(attempts.read_text() or 0) + 1) if attempts.exists() else "1")
        if attempts.read_text() == "1":
            sys.exit("site answered 503")
        pathlib.Path("scraped.txt").write_text("pages\\n")
    """)
    )
    (root / "dvc.yaml").write_text(
        textwrap.dedent(f"""
        stages:
          scrape:
            cmd: {sys.executable} flaky.py {tmp_path / "attempts"}
            deps: [flaky.py]
            outs: [scraped.txt]
          count:
            cmd: wc -l scraped.txt > count.txt
            deps: [scraped.txt]
            outs: [count.txt]
    """)
    )
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True)
    return root


def test_rebuild_retries_the_flaky_stage_then_runs_the_rest_and_pushes(project: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    subprocess.run([str(BIN / "dvc"), "remote", "add", "-d", "store", str(remote)], cwd=project, check=True)
    assert stage_names(project) == ["scrape", "count"]
    summary = rebuild_flow(str(project / "params.yaml"), [])
    assert "failed" not in summary, summary
    assert summary["flaky"] == ["scrape"] and summary["pushed"] is True
    assert (tmp_path / "attempts").read_text() == "2"
    assert (project / "count.txt").read_text().split()[0] == "1"
    assert any(path.is_file() for path in remote.rglob("*"))  # the outputs reached the remote


def test_rebuild_reports_a_stage_that_keeps_failing(project: Path, tmp_path: Path) -> None:
    (project / "flaky.py").write_text("import sys\nsys.exit('site is down')\n")
    summary = rebuild_flow(str(project / "params.yaml"), [])
    assert summary["failed"] and "site is down" in summary["error"]
    assert summary["pushed"] is False and not (project / "count.txt").exists()
