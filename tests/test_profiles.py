"""`twingan profile`: a profile rewrites params.yaml by key path, keeps its comments, and writes nothing invalid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from core.params import ParamsError, load_params
from core.profiles import apply_profile, available, parse_assignment, read_profile

REPO = Path(__file__).resolve().parents[1]


def project(tmp_path: Path, profile: str | None = None) -> Path:
    """params.yaml and profiles/ of the repository, with the real profile's folders made in `tmp_path`."""
    root = tmp_path / "repo"
    (root / "profiles").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    for domain in ("human", "anime", "cat"):
        (tmp_path / "shared" / "data" / "train" / domain).mkdir(parents=True)
    if profile is not None:
        (root / "profiles" / "mine.yaml").write_text(profile)
    else:
        shutil.copy(REPO / "profiles" / "real.yaml", root / "profiles" / "real.yaml")
    return root


def test_the_real_profile_applies_every_key_and_keeps_the_rest_and_the_comments(tmp_path: Path) -> None:
    root = project(tmp_path)
    before = (root / "params.yaml").read_text()
    keys = apply_profile(root / "params.yaml", "real")
    after = (root / "params.yaml").read_text()
    loaded = load_params(root / "params.yaml")
    params = loaded.params
    assert params.profile == "real" and "train.resolution" in keys
    assert params.train.resolution == 64 and params.dataset.image_size == 64
    assert params.domains["anime"].align.method == "crop" and params.domains["cat"].detector is None
    assert params.domains["human"].detector is not None and params.domains["human"].detector.name == "yunet"
    assert loaded.source_path("anime").resolve() == (tmp_path / "shared/data/train/anime").resolve()
    # What the profile does not name is as the demo has it, comments included.
    demo = yaml.safe_load(before)
    assert yaml.safe_load(after)["ingest"] == demo["ingest"] and yaml.safe_load(after)["tags"] == demo["tags"]
    assert "# larger images are rejected before decoding (decompression bombs)" in after
    assert "# power of two; the original reached 256" in after  # a replaced scalar keeps its key's comment
    assert "MakeGirlsMoe-style" not in after  # a replaced section loses the comment on what it held
    # Applying it again changes nothing.
    apply_profile(root / "params.yaml", "real")
    assert (root / "params.yaml").read_text() == after


def test_sets_apply_after_the_profile_and_bad_results_write_nothing(tmp_path: Path) -> None:
    root = project(tmp_path)
    before = (root / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=r"train\.resolution: must be a power of two"):
        apply_profile(root / "params.yaml", "real", ["train.resolution=48"])
    with pytest.raises(ParamsError, match=r"domains\.human\.source\.path: no such folder: .*nowhere"):
        apply_profile(root / "params.yaml", "real", ["domains.human.source.path=/nowhere"])
    with pytest.raises(ParamsError, match=r"no such profile .*known: real"):
        apply_profile(root / "params.yaml", "nope")
    with pytest.raises(ParamsError, match=r"expected key\.path=value"):
        apply_profile(root / "params.yaml", "real", ["train.steps"])
    assert (root / "params.yaml").read_text() == before
    apply_profile(root / "params.yaml", "real", ["train.steps=7", "dataset.splits={train: 0.8, val: 0.1, test: 0.1}"])
    params = load_params(root / "params.yaml").params
    assert params.train.steps == 7 and params.dataset.splits["train"] == 0.8


def test_a_profile_file_is_key_paths_and_may_not_name_itself(tmp_path: Path) -> None:
    root = project(tmp_path, "profile: other\n")
    with pytest.raises(ParamsError, match="set from the file's name"):
        apply_profile(root / "params.yaml", "mine")
    (root / "profiles" / "mine.yaml").write_text("- a list\n")
    with pytest.raises(ParamsError, match="expected a mapping of key paths"):
        read_profile(root / "profiles" / "mine.yaml")
    (root / "profiles" / "mine.yaml").write_text("train..steps: 3\n")
    with pytest.raises(ParamsError, match="is not a key path"):
        read_profile(root / "profiles" / "mine.yaml")
    (root / "profiles" / "mine.yaml").write_text("train.steps.deeper: 3\n")
    with pytest.raises(ParamsError, match=r"train\.steps is a value, not a section"):
        apply_profile(root / "params.yaml", "mine")
    assert available(root) == ["mine"]
    assert parse_assignment("train.betas=[0.5, 0.9]") == ("train.betas", [0.5, 0.9])


def test_the_committed_params_are_the_demo_profile() -> None:
    assert load_params(REPO / "params.yaml").params.profile == "demo"
    assert available(REPO) == ["real"]
