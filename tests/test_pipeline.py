"""`dvc repro` of the demo profile in a copy of the repository, as `make demo` runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from core.parquet import read_table
from core.schemas import FACES, RAW_MANIFEST
from tests.builders import images as fx
from tests.builders.repo import REPO, committed_files, copy_repo, dvc, ran, twingan

pytestmark = pytest.mark.slow
DOMAINS = ("human", "anime", "cat")


def assert_committed_outputs_are_this_codes(root: Path, trained: dict) -> None:
    """The committed dvc.lock and metrics are what `make demo` makes with this code: every code and params file
    a stage read hashes as the lock says, and the committed losses are this run's. Losses to 0.05, not the
    weights to the bit: 40 steps on another CPU's rounding end up to 0.01 apart (AVX-512 against AVX2), while
    a change to the training code or its settings moves them by more (a tenth of the learning rate: 0.3)."""
    stale = "commit the outputs of `make demo` with the code that made them"
    ours, committed = (yaml.safe_load((where / "dvc.lock").read_text())["stages"] for where in (root, REPO))
    written = {Path(out["path"]) for entry in committed.values() for out in entry.get("outs", [])}
    written |= {folder for path in written for folder in path.parents}  # data/datasets holds data/datasets/anime
    files = [Path(name) for name in committed_files()]
    tracked = {str(path) for name in files for path in (name, *name.parents) if path not in written}
    assert ours.keys() == committed.keys(), stale
    for stage, entry in committed.items():
        code = {dep["path"]: dep.get("md5") for dep in entry.get("deps", []) if dep["path"] in tracked}
        fresh = {dep["path"]: dep.get("md5") for dep in ours[stage].get("deps", []) if dep["path"] in tracked}
        assert fresh == code, f"{stage}: {stale}"
        assert ours[stage].get("params") == entry.get("params"), f"{stage}: {stale}"
    recorded = json.loads((REPO / "metrics/train.json").read_text())
    assert (trained["step"], trained["images_seen"]) == (recorded["step"], recorded["images_seen"]), stale
    losses = [key for key in recorded if key.startswith(("g/", "d/"))]
    assert losses and {key: trained[key] for key in losses} == pytest.approx(
        {key: recorded[key] for key in losses}, abs=0.05
    ), stale


def test_demo_profile_reproduces_then_is_a_no_op_then_grows_by_a_domain(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    # evaluate has no cached output: with the committed metrics file and a bit-identical model it would be up
    # to date even in a fresh clone. Without the file it has to run.
    (root / "metrics/evaluate.json").unlink(missing_ok=True)
    first = dvc(root, "repro")
    assert sorted(ran(first)) == [
        "dataset@anime", "dataset@cat", "dataset@human", "demo_data", "evaluate", "faces@anime", "faces@cat",
        "faces@human", "index", "ingest@anime", "ingest@cat", "ingest@human", "tags@anime", "tags@cat", "tags@human",
        "train",
    ], first  # fmt: skip
    for domain, at_least in (("human", 100), ("anime", 20), ("cat", 10)):
        manifest = read_table(root / "data/raw" / domain / "manifest.parquet", RAW_MANIFEST)
        assert manifest.num_rows >= at_least
        assert (root / "data/raw" / domain / "rejects.parquet").is_file()
    for domain in ("human", "anime", "cat"):
        faces = read_table(root / "data/faces" / domain / "faces.parquet", FACES)
        assert faces.num_rows >= 1 and (root / "plots/faces" / f"{domain}.png").is_file()
    assert json.loads((root / "metrics/faces/anime.json").read_text())["fraction_with_face"] == 1.0
    anime_tags = json.loads((root / "metrics/tags/anime.json").read_text())
    assert anime_tags["tagged"] == 24 and sum(anime_tags["tags"].values()) == 48  # a hair and an eye colour each
    assert json.loads((root / "metrics/tags/human.json").read_text())["tagged"] >= 1
    anime_dataset = json.loads((root / "metrics/dataset/anime.json").read_text())
    assert anime_dataset["faces_kept"] + anime_dataset["near_duplicates_removed"] == 24  # 3 repeated drawings
    assert anime_dataset["splits"]["train"] >= 12 and (root / "plots/dataset/anime/train.png").is_file()
    trained = json.loads((root / "metrics/train.json").read_text())
    assert (
        trained["step"] == 40
        and (root / "models/twingan.pt").is_file()
        and (root / "plots/train/samples.png").is_file()
    )
    indexed = json.loads((root / "metrics/index.json").read_text())
    assert (root / "data/index/ids.parquet").is_file() and (root / "data/index/anime.faiss").is_file(), indexed
    evaluated = json.loads((root / "metrics/evaluate.json").read_text())
    assert evaluated["model_step"] == 40 and (root / "plots/evaluate/samples.png").is_file()
    assert evaluated["anime_to_human"]["fid"] is None and "inception" in evaluated["anime_to_human"]["fid_status"]

    # The trained model on raw pictures, cropped as its training crops were (the model file says how).
    out = root / "translated"
    twingan(root, "translate", "data/demo/anime", "--from", "anime", "--to", "human", "--tags", "green hair",
            "--paste", "-o", str(out))  # fmt: skip
    assert len(list(out.glob("*-face0.png"))) == 24 and len(list(out.glob("*-pasted.png"))) == 24
    photo = sorted((root / "data/demo/anime").glob("*.png"))[0]
    shown = twingan(root, "neighbors", str(photo), "--from", "anime", "--domains", "anime,human", "--k", "1",
                    "-o", str(root / "neighbors.png"))  # fmt: skip
    assert "anime" in shown and (root / "neighbors.png").is_file()

    human = json.loads((root / "metrics/ingest/human.json").read_text())
    assert human["rejects"]["corrupt"] == 1 and human["rejects"]["duplicate"] == 1
    shown = json.loads(dvc(root, "metrics", "show", "--json"))
    assert any("metrics/ingest/human.json" in json.dumps(entry) for entry in shown.values())

    # What make demo prints at the end: every stage's row, and one page with every picture the stages wrote.
    summary = twingan(root, "report")
    assert all(f"{stage}@{d}" in summary for stage in ("ingest", "faces", "tags", "dataset") for d in DOMAINS)
    assert "step 40" in summary and "plots/report.html" in summary and "not run yet" not in summary
    assert (root / "plots/report.html").read_text().count('<img src="data:image/png;base64,') == 14

    second = dvc(root, "repro")
    assert ran(second) == [], second
    # A fresh clone's run leaves nothing stale (no pipeline that cannot run offline), and the committed
    # outputs are the ones the code makes: the same weights as the committed metrics record.
    assert "Data and pipelines are up to date" in dvc(root, "status")
    assert_committed_outputs_are_this_codes(root, trained)

    extra = root / "extra" / "dog"
    extra.mkdir(parents=True)
    for i in range(3):
        (extra / f"dog_{i}.jpg").write_bytes(fx.jpeg(100 + i))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["domains"]["dog"] = {
        "source": {"kind": "folder", "path": "extra/dog"},
        "detector": {"name": "opencv_cat"},
        "align": {"method": "box", "size": 64},
        "select": {"faces": "largest"},
        "tagger": {"name": "none"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = dvc(root, "repro")
    # train and index depend on data/datasets as a whole, so they run too; train resumes its finished
    # checkpoint (no step) and writes the same model file, so evaluate does not run.
    assert ran(third) == ["ingest@dog", "faces@dog", "tags@dog", "dataset@dog", "train", "index"], third
    assert read_table(root / "data/raw/dog/manifest.parquet", RAW_MANIFEST).num_rows == 3
    assert ran(dvc(root, "repro")) == []
