"""Exporting one translation direction: ONNX and TorchScript files that match the eager model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from inference.export import ExportMismatch, export_translation, release_model
from tests.builders.models import VOCABULARY, tiny_model
from training.conditioning import UnknownTagError, condition_vector
from training.model_file import load_model
from twingan.cli import app


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "twingan.pt")


def _inputs(batch: int, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, 16, 16, generator=generator) * 2 - 1
    condition = torch.zeros(batch, len(VOCABULARY))
    condition[::2, 1] = 1  # green hair for every other face
    condition[:, 5] = 1  # red eyes
    return images, condition


def _eager(model_file: Path, images: torch.Tensor, condition: torch.Tensor | None) -> np.ndarray:
    model, _ = load_model(model_file)
    with torch.inference_mode():
        return model.translate(images, "human", "anime", condition).numpy()


def test_onnx_matches_eager_with_the_condition_as_an_input(model_file: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    out = tmp_path / "twingan-human2anime.onnx"
    report = export_translation(model_file, out, format="onnx", source="human", target="anime")
    assert report.inputs == ("image", "condition") and report.max_abs_diff <= 1e-4
    assert not list(tmp_path.glob("*.data")) and not list(tmp_path.glob(".*.tmp"))  # one self-contained file
    images, condition = _inputs(5)  # another batch size than the export's trace and check
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": images.numpy(), "condition": condition.numpy()})[0]
    assert np.abs(got - _eager(model_file, images, condition)).max() <= 1e-4
    meta = {entry.key: json.loads(entry.value) for entry in onnx.load(str(out)).metadata_props}
    assert meta["vocabulary"] == list(VOCABULARY) and meta["resolution"] == 16
    assert meta["source"] == "human" and meta["faces"]["detector"] == "dlib_hog"


def test_onnx_with_baked_tags_takes_only_the_image(model_file: Path, tmp_path: Path) -> None:
    import onnxruntime

    out = tmp_path / "green.onnx"
    report = export_translation(model_file, out, format="onnx", source="anime", target="human", tags=["green hair"])
    assert report.inputs == ("image",)
    images, _ = _inputs(1)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": images.numpy()})
    model, info = load_model(model_file)
    condition = condition_vector(info.config, info.vocabulary, 1, tags=["green hair"])
    with torch.inference_mode():
        expected = model.translate(images, "anime", "human", condition).numpy()
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_matches_eager_at_any_batch_size(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "twingan.pt"
    report = export_translation(model_file, out, format="torchscript", source="human", target="anime")
    assert report.max_abs_diff <= 1e-4
    extra = {"twingan.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["twingan.json"])["inputs"] == ["image", "condition"]
    for batch in (1, 4):
        images, condition = _inputs(batch)
        with torch.inference_mode():
            got = loaded(images, condition).numpy()
        assert np.abs(got - _eager(model_file, images, condition)).max() <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_unconditioned_model_exports_one_input(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "plain.pt", vocabulary=())
    report = export_translation(path, tmp_path / "plain.ts", format="torchscript", source="human", target="anime")
    assert report.inputs == ("image",)
    images, _ = _inputs(2)
    got = torch.jit.load(str(tmp_path / "plain.ts"))(images).detach().numpy()
    assert np.abs(got - _eager(path, images, None)).max() <= 1e-4


def test_a_mismatch_fails_loudly_and_writes_nothing(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "strict.pt"
    with pytest.raises(ExportMismatch, match=r"differs from the eager model by up to .* nothing was written"):
        export_translation(model_file, out, format="torchscript", source="human", target="anime", tolerance=-1)
    assert list(tmp_path.iterdir()) == []


def test_errors_name_what_is_wrong(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownTagError, match="'purple hair'"):
        export_translation(model_file, tmp_path / "x.pt", format="torchscript", source="human", target="anime",
                           tags=["purple hair"])  # fmt: skip
    with pytest.raises(ValueError, match="--to 'cat'"):
        export_translation(model_file, tmp_path / "x.pt", format="torchscript", source="human", target="cat")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_translation(model_file, tmp_path / "x.pt", format="tflite", source="human", target="anime")
    with pytest.raises(FileNotFoundError, match="no model file"):
        export_translation(tmp_path / "none.pt", tmp_path / "x.pt", format="onnx", source="human", target="anime")


def test_cli_export(model_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.pt"
    result = runner.invoke(app, ["export", "--model", str(model_file), "--format", "torchscript", "--from", "human",
                                 "--to", "anime", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "max |exported - eager| = " in result.output and out.is_file()
    result = runner.invoke(app, ["export", "--model", str(model_file), "--format", "tflite", "-o", str(out)])
    assert result.exit_code == 2 and "unknown export format" in result.output
    result = runner.invoke(app, ["export", "--model", str(tmp_path / "no.pt"), "-o", str(tmp_path / "no.onnx")])
    assert result.exit_code == 2 and "no model file" in result.output


def test_release_copy_has_fp16_weights_the_same_metadata_and_close_outputs(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "pretrained" / "tiny.pt"
    report = release_model(model_file, out)
    assert report.path == out and out.is_file() and report.directions == 4
    assert report.bytes_out < 0.8 * report.bytes_in and report.max_abs_diff <= report.tolerance
    payload = torch.load(out, map_location="cpu", weights_only=True)
    floats = [t for part in ("encoder", "generator") for t in payload[part].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    (model, info), (released, released_info) = load_model(model_file), load_model(out)
    assert released_info == info
    assert all(p.dtype == torch.float32 for p in released.parameters())  # the network itself still runs in fp32
    images, condition = _inputs(3)
    with torch.inference_mode():
        want, got = (m.translate(images, "human", "anime", condition) for m in (model, released))
    assert 0 < float((got - want).abs().max()) <= report.tolerance


def test_release_refuses_a_mismatch_and_its_own_source(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportMismatch, match=r"fp16 copy of .* differs from it by up to .* nothing was written"):
        release_model(model_file, tmp_path / "strict.pt", tolerance=0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="is the model file itself"):
        release_model(model_file, model_file)
    with pytest.raises(FileNotFoundError, match="no model file"):
        release_model(tmp_path / "none.pt", tmp_path / "x.pt")


def test_cli_release(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-release.pt"
    result = CliRunner().invoke(app, ["release", "--model", str(model_file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "max |fp16 - fp32| = " in result.output and "over 4 directions" in result.output and out.is_file()
