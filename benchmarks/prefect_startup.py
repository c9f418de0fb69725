"""Benchmark: `dvc repro` of the demo profile with one Prefect API server per run against one per stage.

Why: every Prefect stage needs an API server; started by each stage (Prefect's own way, and this project's
before), its start-up is paid 13 times by the demo, and once per stage and domain on real data.

  baseline   TWINGAN_PREFECT_SERVER=stage: each stage starts its own server (as Prefect's temporary server)
  run        the default: the first stage of the run starts the server, the others reuse it

Both run in fresh copies of the repository (the files git would commit), with the same pre-migrated
PREFECT_HOME, in one invocation, baseline first. Printed: the wall time of each `dvc repro`, how many
servers were started, each Prefect stage's time to get its server (the stage's own log line), and the
ratios. Afterwards no server of either run may be left.

    .venv/bin/python benchmarks/prefect_startup.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
SERVER_LINE = re.compile(r"Prefect API server: (?P<how>[^(]+?) \(.*?\) in (?P<seconds>[0-9.]+) s")
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def copy_repo(target: Path) -> Path:
    from tests.builders.repo import copy_repo as copy

    return copy(target)


def repro(root: Path, home: Path, mode: str) -> tuple[float, list[tuple[str, str, float]]]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PREFECT_HOME=str(home),
               TWINGAN_PREFECT_SERVER=mode, COLUMNS="200")  # fmt: skip
    env.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "dvc"), "repro"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )  # fmt: skip (interleaved: stage names, then logs)
    seconds = time.perf_counter() - started
    output = done.stdout
    if done.returncode != 0:
        raise SystemExit(f"dvc repro ({mode}) failed:\n{output[-3000:]}")
    stages, stage = [], "?"
    for line in output.splitlines():
        if found := STAGE_LINE.search(line):
            stage = found.group(1)
        elif found := SERVER_LINE.search(line):
            stages.append((stage, found.group("how").strip(), float(found.group("seconds"))))
    return seconds, stages


def servers_left() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "core.api_server" in line and "ps -eo" not in line]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="prefect-startup-") as tmp:
        home = Path(tmp) / "prefect-home"
        subprocess.run([sys.executable, "-c", "from core.environment import configure_environment; "
                        "configure_environment(); from core.api_server import local_api\n"
                        "with local_api(): pass"], cwd=REPO, env=dict(os.environ, PREFECT_HOME=str(home),
                        TWINGAN_PREFECT_SERVER="stage"), check=True, capture_output=True)  # fmt: skip
        results = {}
        for mode in ("stage", "run"):
            root = copy_repo(Path(tmp) / mode)
            (root / "metrics/evaluate.json").unlink(missing_ok=True)
            results[mode] = repro(root, home, mode)
            shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)
        time.sleep(3)
        left = servers_left()
    print(f"dvc repro of the demo profile, {os.cpu_count()} cores; a Prefect stage's time to get its API server:")
    print(f"{'stage':<16} {'one per stage':>16} {'one per run':>28}")
    base_of = {s: sec for s, _, sec in results["stage"][1]}
    run_of = {s: (how, sec) for s, how, sec in results["run"][1]}
    for stage, base in base_of.items():
        how, sec = run_of.get(stage, ("-", float("nan")))
        print(f"{stage:<16} {base:>14.2f} s {sec:>12.2f} s  ({how})")
    for mode, label in (("stage", "one per stage"), ("run", "one per run")):
        wall, stages = results[mode]
        starts = sum("started" in how for _, how, _ in stages)
        print(f"{label:<14} wall {wall:7.1f} s, {starts:2d} server start(s), {sum(s for *_, s in stages):6.1f} s "
              f"getting servers over {len(stages)} stages")  # fmt: skip
    (base_wall, _), (run_wall, run_stages) = results["stage"], results["run"]
    reused = [sec for _, how, sec in run_stages if "started" not in how]
    print(f"demo wall time, one per stage / one per run: {base_wall / run_wall:.2f}x "
          f"({base_wall - run_wall:.1f} s saved); a stage reusing the run's server gets it in "
          f"{max(reused) if reused else float('nan'):.2f} s at most")  # fmt: skip
    print("servers left after both runs:", left or "none")
    if left:
        raise SystemExit("a server outlived its run")


if __name__ == "__main__":
    main()
