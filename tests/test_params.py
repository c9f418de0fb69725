"""params.yaml validation: every mistake is reported with the key path a user must fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.params import ParamsError, load_params
from tests.builders.params import write_params
from tests.builders.repo import REPO
from twingan.cli import app

FOLDER = {"source": {"kind": "folder", "path": "photos"}}


def error_of(tmp_path: Path, domains: dict, **sections: dict) -> str:
    with pytest.raises(ParamsError) as caught:
        load_params(write_params(tmp_path, domains, **sections))
    return str(caught.value)


def test_committed_params_are_the_valid_demo_profile() -> None:
    loaded = load_params(REPO / "params.yaml")
    assert set(loaded.params.domains) == {"human", "anime", "cat"}
    assert loaded.params.ingest.executor.workers >= 1


def test_unknown_key_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"cat": FOLDER}, ingest={"max_pixel": 10})
    assert "ingest.max_pixel: unknown key" in message


def test_wrong_type_is_named_with_the_value(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"cat": FOLDER}, ingest={"executor": {"workers": "two"}})
    assert "ingest.executor.workers:" in message and "'two'" in message


def test_missing_source_path_is_named_without_the_union_tag(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"cat": {"source": {"kind": "folder"}}})
    assert "domains.cat.source.path: required key is missing" in message


def test_unknown_source_kind(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"cat": {"source": {"kind": "ftp", "path": "x"}}})
    assert "domains.cat.source" in message and "ftp" in message


def test_bad_domain_name(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"Cat Photos": FOLDER})
    assert "domains" in message and "'Cat Photos'" in message


def test_negative_limit(tmp_path: Path) -> None:
    assert "ingest.max_pixels" in error_of(tmp_path, {"cat": FOLDER}, ingest={"max_pixels": -1})


def test_missing_folder_is_checked_when_the_stage_needs_it(tmp_path: Path) -> None:
    loaded = load_params(write_params(tmp_path, {"cat": FOLDER}))
    with pytest.raises(ParamsError, match=r"domains\.cat\.source\.path: no such folder: .*photos"):
        loaded.source_path("cat")
    (tmp_path / "photos").mkdir()
    assert loaded.source_path("cat") == tmp_path / "photos"


def test_archive_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    loaded = load_params(write_params(tmp_path, {"cat": {"source": {"kind": "archive", "path": "photos"}}}))
    with pytest.raises(ParamsError, match=r"domains\.cat\.source\.path: is not a file"):
        loaded.source_path("cat")


def test_unknown_domain_lists_the_known_ones(tmp_path: Path) -> None:
    loaded = load_params(write_params(tmp_path, {"cat": FOLDER}))
    with pytest.raises(ParamsError, match=r"domains\.dog: no such domain .*known: cat"):
        loaded.domain("dog")


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("domains: {cat: [\n", encoding="utf-8")
    with pytest.raises(ParamsError, match=r"params\.yaml: not valid YAML"):
        load_params(path)


def test_cli_reports_the_key_and_exits_2(tmp_path: Path) -> None:
    path = write_params(tmp_path, {"cat": FOLDER}, ingest={"executor": {"kind": "gpu"}})
    result = CliRunner().invoke(app, ["check", "--params", str(path)])
    assert result.exit_code == 2
    assert "ingest.executor.kind" in result.output


def test_cli_ingest_of_missing_folder_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = write_params(tmp_path, {"cat": FOLDER})
    result = CliRunner().invoke(app, ["ingest", "--domain", "cat", "--params", str(path)])
    assert result.exit_code == 2
    assert "domains.cat.source.path: no such folder" in result.output


def test_cli_ingest_of_a_file_that_is_no_archive_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "photos.zip").write_bytes(b"PK\x03\x04 but the rest is not a zip")
    path = write_params(tmp_path, {"cat": {"source": {"kind": "archive", "path": "photos.zip"}}})
    result = CliRunner().invoke(app, ["ingest", "--domain", "cat", "--params", str(path)])
    assert result.exit_code == 2
    assert "photos.zip: cannot read the zip directory" in result.output
    assert "Traceback" not in result.output


def test_a_validators_message_is_not_repeated_with_the_value(tmp_path: Path) -> None:
    path = write_params(tmp_path, {"cat": FOLDER}, train={"resolution": 48})
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert "train.resolution: must be a power of two, got 48" in str(error.value)
    assert "(got 48)" not in str(error.value) and "Value error" not in str(error.value)


def test_check_refuses_what_the_stages_refuse_naming_each_key(tmp_path: Path) -> None:
    source = tmp_path / "photos"
    source.mkdir()
    domains = {
        "cat": {"source": {"kind": "folder", "path": "photos"}, "detector": {"name": "opencv_kitten"}},
        "dog": {"source": {"kind": "folder", "path": "absent"}, "detector": {"name": "opencv_cat"}},
        "anime": {"source": {"kind": "archive", "path": "photos"}, "tagger": {"name": "crayons"}},
    }
    path = write_params(tmp_path, domains, train={"domains": ["cat", "horse"]})
    result = CliRunner().invoke(app, ["check", "--params", str(path)])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    for expected in (
        "domains.cat.detector.name: unknown detector 'opencv_kitten'",
        "domains.dog.source.path: no such folder",
        "domains.anime.source.path: is not a file",
        "domains.anime.tagger.name: unknown tagger 'crayons'",
        "train.domains: 'horse' is not a domain",
    ):
        assert expected in output, output


def test_check_passes_a_source_an_earlier_stage_writes(tmp_path: Path) -> None:
    """On a fresh clone the demo's sources do not exist yet: demo_data writes them."""
    domains = {d: {"source": {"kind": "folder", "path": f"data/demo/{d}"}} for d in ("human", "anime")}
    path = write_params(tmp_path, domains, demo_data={"out": "data/demo"})
    result = CliRunner().invoke(app, ["check", "--params", str(path)])
    assert result.exit_code == 0, result.output
    assert "human: folder data/demo/human (written by stage demo_data, not run yet)" in result.output
