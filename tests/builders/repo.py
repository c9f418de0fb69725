"""A copy of the repository as git would commit it, and the commands (dvc, twingan) run inside one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def committed_files() -> list[str]:
    """The files git would commit (tracked or not ignored), relative to the repository."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(command, cwd=REPO, capture_output=True, check=True)
    return [name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def copy_repo(target: Path) -> Path:
    """The files git would commit, in a fresh git repository."""
    for name in committed_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    return target


def twingan(root: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "twingan"), *args], cwd=root, capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"twingan {' '.join(args)} failed:\n{output[-4000:]}"
    return output


def dvc(root: Path, *args: str) -> str:
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        PREFECT_HOME=str(REPO / ".prefect" / "pytest-pipeline"),
    )
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{output[-4000:]}"
    return output


def ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)
