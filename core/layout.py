"""Where every stage's outputs live: the paths `dvc.yaml` names under `outs:`, `metrics:` and `plots:`,
declared once for the code (tests/test_dvc_yaml.py checks that the two agree).

Paths are relative to the project root, the folder of params.yaml; `Layout(root)` joins them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
LOGS = Path("logs")
SPLITS = ("train", "val", "test")  # the dataset stage's splits, one tag chart and contact sheet each


@dataclass(frozen=True)
class Layout:
    root: Path = Path()

    def _at(self, path: Path) -> Path:
        return self.root / path

    # ---------------------------------------------------------------------------------------- data
    def scrape(self, crawl: str) -> Path:
        return self._at(DATA / "scrape" / crawl)

    def scrape_cache(self, crawl: str) -> Path:
        """The crawl's HTTP cache and a stopped crawl's JOBDIR, kept between runs."""
        return self._at(DATA / "scrape-cache" / crawl)

    def raw(self, domain: str) -> Path:
        return self._at(DATA / "raw" / domain)

    def faces(self, domain: str) -> Path:
        return self._at(DATA / "faces" / domain)

    def tags(self, domain: str) -> Path:
        return self._at(DATA / "tags" / domain)

    @property
    def datasets(self) -> Path:
        return self._at(DATA / "datasets")

    def dataset(self, domain: str) -> Path:
        return self.datasets / domain

    @property
    def index(self) -> Path:
        return self._at(DATA / "index")

    # -------------------------------------------------------------------------------------- models
    @property
    def model(self) -> Path:
        return self._at(MODELS / "twingan.pt")

    @property
    def checkpoints(self) -> Path:
        return self._at(MODELS / "checkpoints")

    @property
    def checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def train_logs(self) -> Path:
        """TensorBoard events and a sample grid per sample_every steps."""
        return self._at(LOGS / "train")

    # ----------------------------------------------------------------------------- metrics, plots
    def metrics(self, stage: str, key: str | None = None) -> Path:
        """metrics/<stage>/<key>.json for a stage per domain or crawl, metrics/<stage>.json otherwise."""
        return self._at(METRICS / stage / f"{key}.json" if key else METRICS / f"{stage}.json")

    def plots(self, stage: str, key: str | None = None) -> Path:
        """The folder of a stage's plots (of one domain's, for the dataset stage)."""
        return self._at(PLOTS / stage / key if key else PLOTS / stage)


def stage_outputs(stage: str, key: str = "KEY", demo_out: Path = DATA / "demo") -> set[Path]:
    """Every path a stage writes, relative to the root, as dvc.yaml lists them (a per-item stage for `key`)."""
    at = Layout()
    outputs: dict[str, list[Path]] = {
        "demo_data": [demo_out],
        "scrape": [at.scrape(key), at.scrape_cache(key), at.metrics("scrape", key)],
        "ingest": [at.raw(key), at.metrics("ingest", key)],
        "faces": [at.faces(key), at.metrics("faces", key), at.plots("faces") / f"{key}.png"],
        "tags": [at.tags(key), at.metrics("tags", key), at.plots("tags") / f"{key}.json"],
        "dataset": [
            at.dataset(key),
            at.metrics("dataset", key),
            *(at.plots("dataset", key) / f"tags-{split}.json" for split in SPLITS),
            *(at.plots("dataset", key) / f"{split}.png" for split in SPLITS),
        ],
        "train": [
            at.model,
            at.checkpoints,
            at.train_logs,
            at.metrics("train"),
            at.plots("train") / "losses.csv",
            at.plots("train") / "samples.png",
        ],
        "index": [at.index, at.metrics("index")],
        "evaluate": [at.metrics("evaluate"), at.plots("evaluate") / "samples.png"],
    }
    return set(outputs[stage])
