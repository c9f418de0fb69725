"""The condition vector inference builds, and the model file: tags by name in the model's order, reference
features after them, clear errors for unknown tags, for models without conditioning and for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.checkpoint import MODEL_FORMAT, CheckpointError, save_atomic
from training.conditioning import UnknownTagError, condition_vector, parse_tags
from training.model_file import load_model, save_model
from training.networks import NetworkConfig, TwinGAN

VOCABULARY = ("blonde hair", "green hair", "blue eyes", "smile")


def config(**overrides) -> NetworkConfig:
    return NetworkConfig(**{"domains": ("human", "anime"), "resolution": 8, "channel_base": 64, "channel_max": 8,
                            "tag_dim": len(VOCABULARY), **overrides})  # fmt: skip


def test_parse_tags_splits_on_commas_and_trims() -> None:
    assert parse_tags(" green hair,blue eyes , ") == ["green hair", "blue eyes"]
    assert parse_tags(["smile", "green hair, blue eyes"]) == ["smile", "green hair", "blue eyes"]
    assert parse_tags(None) == [] and parse_tags("") == []


def test_named_tags_become_the_multi_hot_in_vocabulary_order() -> None:
    vector = condition_vector(config(), VOCABULARY, 3, tags=["blue eyes", "green hair"])
    assert vector.shape == (3, 4)
    assert vector.tolist() == [[0.0, 1.0, 1.0, 0.0]] * 3


def test_reference_features_follow_the_tags() -> None:
    cfg = config(feature_dim=6)
    features = np.arange(6, dtype=np.float16)
    vector = condition_vector(cfg, VOCABULARY, 2, tags=["smile"], features=features)
    assert vector.shape == (2, 10)
    assert vector[:, :4].tolist() == [[0, 0, 0, 1.0]] * 2 and vector[:, 4:].tolist() == [list(range(6))] * 2
    per_image = torch.randn(2, 6)
    assert torch.equal(condition_vector(cfg, VOCABULARY, 2, features=per_image)[:, 4:], per_image)
    assert not condition_vector(cfg, VOCABULARY, 2).any()  # no reference: zeros, which the projection ignores
    with pytest.raises(ValueError, match="reference features must have 6 values"):
        condition_vector(cfg, VOCABULARY, 2, features=np.zeros(5))


def test_unknown_tags_and_unconditioned_models_are_clear_errors() -> None:
    with pytest.raises(UnknownTagError, match=r"unknown tag\(s\) 'purple hair'; this model knows: blonde hair, "):
        condition_vector(config(), VOCABULARY, 1, tags=["purple hair"])
    with pytest.raises(UnknownTagError, match="trained without reference features"):
        condition_vector(config(), VOCABULARY, 1, features=np.zeros(3))
    assert condition_vector(config(tag_dim=0), (), 1) is None
    with pytest.raises(UnknownTagError, match="trained without tag conditioning"):
        condition_vector(config(tag_dim=0), (), 1, tags=["smile"])


def test_model_file_round_trip_and_errors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TwinGAN(config())
    faces = {"human": {"detector": "dlib_hog", "detector_options": {}, "align": {"method": "eyes", "size": 128}}}
    path = tmp_path / "twingan.pt"
    save_model(path, model, vocabulary=VOCABULARY, step=7, faces=faces, train={"resolution": 8})
    first = path.read_bytes()
    save_model(path, model, vocabulary=VOCABULARY, step=7, faces=faces, train={"resolution": 8})
    assert path.read_bytes() == first  # identical weights and metadata: identical bytes (DVC sees no change)
    loaded, info = load_model(path)
    assert info.step == 7 and info.vocabulary == VOCABULARY and info.faces_of("human") == faces["human"]
    assert not loaded.training
    image = torch.rand(1, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.translate(image, "human", "anime"), model.eval().translate(image, 0, 1))
    with pytest.raises(ValueError, match="unknown domain 'cat'"):
        info.faces_of("cat")
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model(tmp_path / "absent.pt")
    save_atomic({"format": MODEL_FORMAT, "network": {**config().to_dict(), "channel_base": 64, "channel_max": 16},
                 "encoder": model.encoder.state_dict(), "generator": model.generator.state_dict(),
                 "vocabulary": list(VOCABULARY), "step": 1}, tmp_path / "other.pt")  # fmt: skip
    with pytest.raises(CheckpointError, match=r"other\.pt: does not match this version's networks"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(tmp_path / "garbage.pt")
