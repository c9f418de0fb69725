"""Ingest of the real photos and character art in ../shared/data/real (skipped when it is absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.params import load_params
from core.parquet import read_table
from core.schemas import RAW_MANIFEST
from flows.ingest import run_ingest
from preprocessing.images import load_rgb
from tests.builders.params import write_params

pytestmark = pytest.mark.real_data


def test_every_real_image_is_stored_with_the_size_the_index_gives(tmp_path: Path, real_data: Path) -> None:
    with open(real_data / "index.csv", newline="", encoding="utf-8") as handle:
        index = {row["file"]: (int(row["width"]), int(row["height"])) for row in csv.DictReader(handle)}
    domains = {
        name: {"source": {"kind": "folder", "path": str(real_data / name)}} for name in ("human", "anime", "cat")
    }
    loaded = load_params(write_params(tmp_path, domains, ingest={"executor": {"kind": "process", "workers": 2}}))
    for domain in domains:
        metrics = run_ingest(loaded, domain)
        files = [name for name in index if name.startswith(f"{domain}/")]
        out = tmp_path / "data/raw" / domain
        manifest = read_table(out / "manifest.parquet", RAW_MANIFEST).to_pylist()
        # Every real file is a valid image: each is stored or, if its bytes repeat, counted as duplicate.
        assert metrics["seen"] == len(files), metrics
        assert metrics["rejected"] == metrics["rejects"]["duplicate"], metrics
        for row in manifest:
            assert (row["width"], row["height"]) == index[f"{domain}/{row['member']}"], row["member"]
        # Alpha images (sprites, cut-out portraits): fully transparent pixels come back white, not black.
        for row in manifest:
            if row["mode"] == "RGBA":
                pixels = np.asarray(load_rgb(out / row["path"]))
                alpha = np.asarray(Image.open(out / row["path"]).getchannel("A"))
                assert pixels.shape == (row["height"], row["width"], 3)
                if (alpha == 0).any():
                    assert (pixels[alpha == 0] == 255).all(), row["member"]
