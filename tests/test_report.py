"""`twingan report`: the summary after a run, read from the stages' own files (here, the committed outputs of
the demo profile, which `make demo` rewrites), its one-page HTML and the README's picture."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from core.layout import SPLITS, stage_outputs
from core.params import load_params
from reporting.page import render_page
from reporting.picture import draw_picture
from reporting.report import report
from reporting.summary import Measure, ReportError, summarize
from reporting.terminal import grouped
from tests.builders.repo import REPO
from twingan.cli import app

DOMAINS = tuple(yaml.safe_load((REPO / "params.yaml").read_text())["domains"])


def _metrics(stage: str, key: str | None = None) -> dict:
    return json.loads((REPO / "metrics" / (f"{stage}/{key}.json" if key else f"{stage}.json")).read_text())


def _project(tmp_path: Path) -> Path:
    """A project folder with the demo's params and none of its outputs."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_each_stage_row_says_what_it_read_kept_and_dropped() -> None:
    summary = summarize(load_params(REPO / "params.yaml"))
    rows = {row.stage: row for row in summary.rows}
    assert list(rows) == [f"{stage}@{d}" for stage in ("ingest", "faces", "tags", "dataset") for d in DOMAINS]
    for domain in DOMAINS:
        ingest, faces = _metrics("ingest", domain), _metrics("faces", domain)
        assert (rows[f"ingest@{domain}"].read, rows[f"ingest@{domain}"].kept) == (
            f"{ingest['seen']} files",
            f"{ingest['stored']} images",
        )
        assert rows[f"faces@{domain}"].kept == f"{faces['faces_kept']} faces"
        for reason, count in faces["rejects"].items():  # every reason with its count: nothing dropped silently
            assert f"{reason} {count}" in rows[f"faces@{domain}"].dropped
        dataset = _metrics("dataset", domain)
        assert rows[f"dataset@{domain}"].notes == ", ".join(f"{s} {dataset['splits'].get(s, 0)}" for s in SPLITS)
    human = _metrics("ingest", "human")
    assert rows["ingest@human"].dropped.startswith(f"{human['rejected']}: ")
    lines = {line.name: line.value for line in summary.model_lines}
    trained = _metrics("train")
    assert lines["train"].startswith(f"step {trained['step']}, {trained['images_seen']} images seen")
    assert trained["weights_sha256"][:12] in lines["train"]
    assert f"anime {_metrics('index')['rows']['anime']}" in lines["index"]
    evaluated = _metrics("evaluate")
    assert summary.model_title.startswith(f"evaluate: the model at step {evaluated['model_step']}")
    shown = {(m.group, m.name): m.value for m in summary.model}
    assert shown[("human_to_anime", "fid")] == evaluated["human_to_anime"]["fid_status"]


def test_metrics_that_share_a_reason_share_a_line() -> None:
    measures = [
        Measure("reconstruction_psnr_db", "6.12 dB", "anime"),
        Measure("fid", "not computed: no inception", "anime_to_human"),
        Measure("kid", "not computed: no inception", "anime_to_human"),
        Measure("fid", "not computed: no inception", "human_to_anime"),
        Measure("pose_flip_rate", "not computed: no val faces", "human_to_anime"),
    ]
    assert grouped(measures) == [
        "anime reconstruction_psnr_db: 6.12 dB",
        "not computed: no inception: anime_to_human fid, kid; human_to_anime fid",
        "not computed: no val faces: human_to_anime pose_flip_rate",
    ]


def test_the_page_holds_every_picture_the_stages_write_offline_and_reproducibly() -> None:
    loaded = load_params(REPO / "params.yaml")
    summary = summarize(loaded)
    page = render_page(summary, REPO, "demo")
    written = sorted(
        {
            path
            for stage in ("faces", "dataset", "train", "evaluate")
            for key in DOMAINS
            for path in stage_outputs(stage, key)
            if path.suffix == ".png"
        }
    )
    assert sorted({p.path for p in summary.pictures}) == written and not summary.missing_pictures
    embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert sorted(base64.b64decode(data) for data in embedded) == sorted((REPO / p).read_bytes() for p in written)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the web
    assert "<polyline" in page  # the loss curves, drawn inline
    for domain in DOMAINS:
        tags = _metrics("tags", domain)["tags"]
        for tag in tags:
            assert f"<td>{tag}</td>" in page
    assert render_page(summarize(loaded), REPO, "demo") == page


def test_every_picture_dvc_yaml_declares_is_reported() -> None:
    """`dvc plots show` lists the plots dvc.yaml declares; the report lists the same pictures."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = set()
    for stage in stages.values():
        for key in DOMAINS if "foreach" in stage else (None,):
            body = stage.get("do", stage)
            for entry in body.get("plots", []):
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                if path.endswith(".png"):
                    declared.add(Path(path.replace("${key}", key or "")))
    listed = {p.path for p in summarize(load_params(REPO / "params.yaml")).pictures}
    assert declared == listed


def test_a_partial_run_is_reported_as_such(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "metrics/ingest").mkdir(parents=True)
    shutil.copy(REPO / "metrics/ingest/human.json", root / "metrics/ingest/human.json")
    result = CliRunner().invoke(app, ["report", "--params", str(root / "params.yaml")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ingest@human" in result.output and "not run yet: no metrics/faces/human.json" in result.output
    assert "not run yet: no metrics/evaluate.json" in result.output
    assert "plots/faces/human.png  not written yet" in result.output
    assert (root / "plots/report.html").is_file()


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("metrics/faces/human.json", "{", "not readable JSON"),
        ("plots/tags/anime.json", '[{"label": 1}]', "not a list of {tag, faces} bars"),
        ("plots/train/losses.csv", "step,g/total\nfive,1\n", "not a loss history"),
    ],
)
def test_a_damaged_file_is_named_and_nothing_is_written(tmp_path: Path, name: str, content: str, says: str) -> None:
    root = _project(tmp_path)
    (root / name).parent.mkdir(parents=True)
    (root / name).write_text(content)
    result = CliRunner().invoke(app, ["report", "--params", str(root / "params.yaml")])
    assert result.exit_code == 2
    assert name in result.output and says in result.output, result.output
    assert not (root / "plots/report.html").exists()


def test_the_picture_shows_each_domains_faces_beside_the_training_samples(tmp_path: Path) -> None:
    loaded = load_params(REPO / "params.yaml")
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    draw_picture(loaded, first)
    draw_picture(loaded, second)
    assert first.read_bytes() == second.read_bytes()
    with Image.open(first) as picture, Image.open(REPO / "plots/train/samples.png") as samples:
        assert picture.height >= len(DOMAINS) * 96 and picture.width > 6 * 96 + samples.width
        # the top-left face is the first cell of the human contact sheet, unchanged
        with Image.open(REPO / "plots/faces/human.png") as sheet:
            assert (
                picture.convert("RGB").crop((0, 18, 96, 114)).tobytes()
                == sheet.convert("RGB").crop((0, 0, 96, 96)).tobytes()
            )


def test_no_picture_before_a_run(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with pytest.raises(ReportError, match="nothing to draw yet"):
        draw_picture(load_params(root / "params.yaml"), root / "picture.png")
    assert not (root / "picture.png").exists()


def test_report_prints_the_page_path_and_the_pictures(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    report(load_params(REPO / "params.yaml"), console, page=tmp_path / "report.html", picture=tmp_path / "p.png")
    text = console.export_text()
    assert str(tmp_path / "report.html") in text and "plots/train/samples.png" in text
    assert (tmp_path / "report.html").is_file() and (tmp_path / "p.png").is_file()
