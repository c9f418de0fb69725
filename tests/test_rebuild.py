"""The end-to-end rebuild flow: DVC runs the stages, Prefect retries the flaky ones, results are pushed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flows.rebuild import flaky_targets, rebuild_flow, stage_names
from tests.builders.params import write_params
from tests.builders.repo import REPO

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


def test_serve_runs_a_scheduling_server_and_executes_triggered_runs(project: Path, tmp_path: Path) -> None:
    """`twingan rebuild --serve`: Prefect cannot schedule on its temporary server, so serve starts a real
    one; a run triggered on the deployment rebuilds the project; stopping serve stops the server."""
    env = dict(os.environ, PREFECT_HOME=str(REPO / ".prefect" / "pytest-serve"))
    env.pop("PREFECT_API_URL", None)
    served_log = tmp_path / "serve.log"
    with open(served_log, "wb") as output:
        served = subprocess.Popen(
            [str(BIN / "twingan"), "rebuild", "--serve", "--cron", "0 3 * * *", "--params", "params.yaml"],
            cwd=project,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 150
        while "is being served" not in served_log.read_text(errors="replace"):
            assert served.poll() is None, served_log.read_text(errors="replace")
            assert time.monotonic() < deadline, "serve did not start in time:\n" + served_log.read_text()
            time.sleep(0.5)
        url = re.search(r"http://127\.0\.0\.1:\d+/api", served_log.read_text()).group(0)  # type: ignore[union-attr]
        triggered = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "rebuild/twingan-rebuild", "--watch", "--watch-timeout", "120"],
            env=dict(env, PREFECT_API_URL=url),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        assert "Completed" in triggered.stdout
        assert (project / "count.txt").is_file()  # the pipeline ran, through the flaky stage's retry
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        served.wait(timeout=60)
    port = url.rsplit(":", 1)[1].split("/")[0]
    left = subprocess.run(
        ["pgrep", "-f", f"prefect server start --host 127.0.0.1 --port {port} "], capture_output=True, text=True
    )
    assert left.stdout.split() == [], "the Prefect server outlived serve"
