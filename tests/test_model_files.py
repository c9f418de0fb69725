"""Model and checkpoint files from strangers never run code: a booby-trapped copy of a real model file is
refused, naming the file, by every command that loads one, and the code it names never runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from core.parquet import table_from_rows, write_table
from core.schemas import INDEX_IDS
from tests.builders.models import booby_trap, tiny_model
from tests.builders.params import write_params
from training.checkpoint import CheckpointError, load
from training.model_file import load_model
from twingan.cli import app


@pytest.fixture
def trapped(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    model = booby_trap(tiny_model(tmp_path / "models" / "twingan.pt"), marker)
    return model, marker


def test_a_real_model_file_loads_with_plain_values_only(tmp_path: Path) -> None:
    _, info = load_model(tiny_model(tmp_path / "twingan.pt"))
    assert info.step == 1 and info.config.domains == ("human", "anime")


def test_the_loader_refuses_a_file_that_names_code_in_one_line(trapped: tuple[Path, Path]) -> None:
    model, marker = trapped
    with pytest.raises(CheckpointError) as refused:
        load_model(model)
    message = str(refused.value)
    assert message.startswith(f"{model}: refused, not loaded: ") and "open" in message
    assert "\n" not in message and "weights_only" not in message  # no advice to load it unsafely
    assert not marker.exists()


def test_a_damaged_file_is_unreadable_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"\x80\x02not a pickle at all" * 4)
    with pytest.raises(CheckpointError, match=r"last\.pt: not a readable checkpoint \(Unsupported operand"):
        load(path)


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (120, 110, 100)).save(path)
    return path


def _empty_index(folder: Path) -> Path:
    """An index folder `twingan neighbors` opens (it reads the index before the model)."""
    folder.mkdir(parents=True)
    write_table(table_from_rows([], INDEX_IDS), folder / "ids.parquet", INDEX_IDS, {"model": {}, "domains": {}})
    return folder


@pytest.mark.parametrize(
    "command",
    [
        ["translate", "{photo}", "--to", "anime", "--out", "{tmp}/out", "--model", "{model}", "--workers", "0"],
        ["export", "--out", "{tmp}/model.onnx", "--model", "{model}"],
        ["neighbors", "{photo}", "--aligned", "--model", "{model}", "--index", "{tmp}/index", "-o", "{tmp}/n.png"],
        ["demo", "--model", "{model}", "--port", "7", "--params", "{tmp}/absent.yaml"],
        ["index", "--params", "{params}"],
        ["evaluate", "--params", "{params}"],
    ],
    ids=lambda command: command[0],
)
def test_every_command_that_loads_a_model_refuses_the_trap(
    command: list[str], trapped: tuple[Path, Path], tmp_path: Path
) -> None:
    model, marker = trapped
    domains = {d: {"source": {"kind": "folder", "path": f"data/raw/{d}"}} for d in ("human", "anime")}
    params = write_params(tmp_path, domains)  # the stages read models/twingan.pt beside their params
    _empty_index(tmp_path / "index")
    values = {"photo": _photo(tmp_path), "model": model, "tmp": tmp_path, "params": params}
    result = CliRunner().invoke(app, [part.format(**values) for part in command])
    assert result.exit_code == 2, result.output
    assert f"{model}: refused, not loaded" in " ".join(result.output.split())
    assert not marker.exists(), "the model file's code ran"
