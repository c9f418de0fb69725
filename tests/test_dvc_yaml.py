"""dvc.yaml tells the truth about the code: each stage's first dependency is its module, every project file
that module imports (however deeply, function-level imports included) is among its deps, and imports run one
way, from the command line down to the ground floor. A file missing from deps would let an edit change a
stage's output without `dvc repro` running it again."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.builders.repo import REPO
from tools.import_graph import FLOORS as FLOORS_TOP_DOWN
from tools.import_graph import PACKAGES

# A module may import its own package and any floor below it, never one above (docs/architecture.md).
FLOORS = {package: len(FLOORS_TOP_DOWN) - number for number, floor in enumerate(FLOORS_TOP_DOWN) for package in floor}
# Code that runs a stage but cannot change what it writes: how work is spread over threads and processes,
# the environment, the Prefect API server, the base classes of errors.
CANNOT_CHANGE_OUTPUTS = {"core/executor.py", "core/environment.py", "core/api_server.py", "core/processes.py",
                         "core/errors.py"}  # fmt: skip


def module_file(name: str) -> Path | None:
    """The file of a project module (a package's __init__.py), or None for anything else."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def imports_of(path: Path) -> frozenset[Path]:
    """Project files `path` imports: module-level and function-level, `from pkg import module` included."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
                file = module_file(".".join(parts[:depth]))
                if file is not None and file != path:
                    found.add(file)
    return frozenset(found)


def closure(path: Path) -> set[Path]:
    seen, todo = set(), [path]
    while todo:
        for file in imports_of(todo.pop()):
            if file not in seen:
                seen.add(file)
                todo.append(file)
    return seen


def docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def stages() -> dict[str, dict]:
    """dvc.yaml's stages, a foreach stage with a key of its items (templates of the item left out)."""
    document = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    out = {}
    for name, stage in document["stages"].items():
        if "foreach" in stage:
            stage = stage["do"]

        def resolve(value: str) -> str | None:
            value = value.replace("${key}", "KEY")
            if "${item." in value:
                return None  # the item's own source path: data, not code
            return re.sub(r"\$\{(\w+)\.(\w+)\}", lambda m: str(params[m.group(1)][m.group(2)]), value)

        deps = [resolved for dep in stage.get("deps", []) if (resolved := resolve(dep)) is not None]
        written = [
            next(iter(entry)) if isinstance(entry, dict) else entry
            for section in ("outs", "metrics", "plots")
            for entry in stage.get(section, [])
        ]
        out[name] = {"cmd": stage["cmd"], "deps": deps, "outputs": {resolve(path) for path in written}}
    return out


STAGES = stages()


def stage_module(cmd: str) -> str:
    command = re.match(r"twingan ([\w-]+)", cmd)
    assert command, f"stage command {cmd!r} is not a twingan command"
    return f"flows/{command.group(1).replace('-', '_')}.py"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stages_first_dependency_is_its_module(name: str) -> None:
    stage = STAGES[name]
    assert stage["deps"][0] == stage_module(stage["cmd"]), f"{name}: the first deps entry must be its module"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_file_a_stage_imports_is_among_its_deps(name: str) -> None:
    stage = STAGES[name]
    module = REPO / stage_module(stage["cmd"])
    deps = [REPO / dep for dep in stage["deps"]]
    missing = sorted(
        str(file.relative_to(REPO))
        for file in closure(module) | {module}
        if str(file.relative_to(REPO)) not in CANNOT_CHANGE_OUTPUTS
        and not docstring_only(file)
        and not any(file == dep or dep in file.parents for dep in deps)
    )
    assert not missing, f"dvc.yaml stage {name}: imports code missing from its deps: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stages_outputs_are_where_the_code_writes_them(name: str) -> None:
    from core.layout import stage_outputs

    declared = {str(path) for path in stage_outputs(name)}
    assert STAGES[name]["outputs"] == declared, f"dvc.yaml stage {name}: outputs differ from core/layout.py"


def test_stage_modules_never_import_each_other() -> None:
    for module in sorted((REPO / "flows").glob("*.py")):
        others = sorted(str(f.relative_to(REPO)) for f in imports_of(module) if f.parent == REPO / "flows")
        assert others in ([], ["flows/__init__.py"]), f"{module.relative_to(REPO)} imports {others}"


def test_imports_run_one_way_from_the_command_line_down_to_core() -> None:
    upward = []
    for package, floor in FLOORS.items():
        for path in sorted((REPO / package).rglob("*.py")):
            for file in imports_of(path):
                target = file.relative_to(REPO).parts[0]
                if FLOORS[target] > floor or (FLOORS[target] == floor and target != package):
                    upward.append(f"{path.relative_to(REPO)} -> {file.relative_to(REPO)}")
    assert not upward, "imports that run up (or sideways between packages of one floor):\n" + "\n".join(upward)
