"""The neighbour index: exact search is exact, IVF finds most true neighbours, the stage writes what it says
byte-identically, a crop finds itself, `twingan neighbors` draws its grid, and stale or missing indexes and
impossible requests are refused with the option or file named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from core.devices import inference_batch_size
from core.params import IndexParams, load_params
from core.parquet import read_params, read_table, table_from_rows, write_table
from core.schemas import DATASET_MANIFEST, DATASET_PIXELS, INDEX_IDS
from flows.index import run_index
from inference.embeddings import embed_pixels, encoder_digest
from inference.neighbors import NeighborsError, find_neighbors
from inference.vector_index import (
    IndexFileError,
    NeighborIndex,
    build_index,
    exact_search,
    read_crops,
    recall_at_k,
)
from tests.builders.datasets import VOCABULARY, manifest_row
from tests.builders.params import write_params
from training.model_file import load_model, save_model
from training.networks import NetworkConfig, TwinGAN
from twingan.cli import app

DOMAINS = ("human", "anime")
SIZE = 16
COUNTS = {"human": {"train": 20, "val": 4}, "anime": {"train": 24, "test": 3}}
HUMAN_FACES = {
    "detector": "dlib_hog",
    "detector_options": {"upsample": 1, "predictor": "5"},
    "align": {"method": "eyes", "size": 64, "eye_distance": 0.3, "eye_height": 0.4, "margin": 1.5, "shift_up": 0.0},
    "select": {"faces": "largest", "min_face_size": 40},
}


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def crop_of(i: int, domain: str, size: int = SIZE) -> np.ndarray:
    """A distinct picture per sample: random 4x4 colour blocks, enlarged (structure the encoder can see)."""
    rng = np.random.default_rng([i, len(domain)])
    blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, size // 4, axis=0), size // 4, axis=1)


def write_dataset(root: Path, domain: str, counts: dict[str, int], size: int = SIZE) -> Path:
    """A dataset folder as dataset@<domain> writes it: one pixel shard per split, row groups of 4."""
    rows, first = [], 0
    for split, n in counts.items():
        shard = f"pixels-{split}-00000.parquet"
        pixels = [{"face_id": f"{domain}-{i:05d}", "pixels": crop_of(i, domain, size).tobytes()}
                  for i in range(first, first + n)]  # fmt: skip
        write_table(table_from_rows(pixels, DATASET_PIXELS), root / shard, DATASET_PIXELS, {"image_size": size},
                    row_group_size=4)  # fmt: skip
        rows += [manifest_row(domain, i, split, shard, row, [], 1.0) for row, i in enumerate(range(first, first + n))]
        first += n
    params = {"image_size": size, "vocabulary": VOCABULARY}
    write_table(table_from_rows(rows, DATASET_MANIFEST), root / "manifest.parquet", DATASET_MANIFEST, params)
    return root


def write_model(path: Path, seed: int = 0, faces: dict | None = None) -> Path:
    torch.manual_seed(seed)
    config = NetworkConfig(domains=DOMAINS, resolution=SIZE, channel_base=64, channel_max=16, tag_dim=len(VOCABULARY))
    save_model(path, TwinGAN(config), vocabulary=VOCABULARY, step=seed + 1, faces=faces or {"human": HUMAN_FACES},
               train={})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with datasets, a model and a built index."""
    root = tmp_path_factory.mktemp("project")
    for domain, counts in COUNTS.items():
        write_dataset(root / "data" / "datasets" / domain, domain, counts)
    write_model(root / "models" / "twingan.pt")
    domains = {d: {"source": {"kind": "folder", "path": f"data/raw/{d}"}} for d in DOMAINS}
    write_params(root, domains, index={"kind": "exact", "batch_size": 8, "device": "cpu", "agreement_samples": 5})
    run_index(load_params(root / "params.yaml"))
    return root


# ------------------------------------------------------------------------------------------ the indexes


def test_exact_search_returns_the_true_nearest_neighbours() -> None:
    vectors, queries = unit_rows(2000, 64, seed=1), unit_rows(50, 64, seed=2)
    index, built = build_index(vectors, "exact")
    assert built == {"kind": "exact", "rows": 2000, "nlist": None, "nprobe": None}
    scores, positions = index.search(queries, 10)
    sims = queries @ vectors.T  # brute force
    truth = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    assert np.array_equal(positions, truth)
    assert np.allclose(scores, np.take_along_axis(sims, truth, axis=1), atol=1e-5)
    assert np.array_equal(exact_search(vectors, queries, 10, block=7)[1], truth)


def test_ivf_finds_most_true_neighbours_of_clustered_embeddings_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    centres = unit_rows(40, 64, seed=3)
    points = centres[rng.integers(0, 40, 4000)] + 0.08 * rng.standard_normal((4000, 64)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    index, built = build_index(points, "ivf", nlist=40, nprobe=4, seed=0)
    assert built == {"kind": "ivf", "rows": 4000, "nlist": 40, "nprobe": 4}
    assert recall_at_k(index, points, k=8, queries=500) >= 0.9
    index.nprobe = 40  # every list: exhaustive
    assert recall_at_k(index, points, k=8, queries=500) == 1.0
    import faiss

    again, _ = build_index(points, "ivf", nlist=40, nprobe=4, seed=0)
    index.nprobe = 4
    assert np.array_equal(faiss.serialize_index(index), faiss.serialize_index(again))


def test_ivf_lists_are_capped_by_the_points_kmeans_needs() -> None:
    _, built = build_index(unit_rows(100, 16), "ivf", nlist=0, nprobe=16)
    assert built["nlist"] == 2 and built["nprobe"] == 2  # 100 // 39; nprobe never above nlist


# ----------------------------------------------------------------------------------------------- the stage


def test_the_stage_writes_ids_and_an_index_per_domain(project: Path) -> None:
    folder = project / "data" / "index"
    ids = read_table(folder / "ids.parquet", INDEX_IDS).to_pylist()
    meta = read_params(folder / "ids.parquet")
    model, info = load_model(project / "models" / "twingan.pt")
    assert meta["model"]["encoder_sha256"] == encoder_digest(model) and meta["model"]["step"] == info.step
    assert meta["dim"] == 16 * 16 and meta["datasets"] == "../datasets"
    assert meta["model"]["path"] == "../../models/twingan.pt"
    for domain, counts in COUNTS.items():
        mine = [row for row in ids if row["domain"] == domain]
        assert [row["position"] for row in mine] == list(range(sum(counts.values())))
        assert {split: sum(1 for r in mine if r["split"] == split) for split in counts} == counts
        import faiss

        index = faiss.read_index(str(folder / f"{domain}.faiss"))
        assert index.ntotal == len(mine) and index.d == 256
        # Vector i is the embedding, in its own domain, of the crop that ids row i points at.
        places = [(row["shard"], row["shard_row"], row["face_id"]) for row in mine]
        expected = embed_pixels(model, read_crops(project / "data" / "datasets", domain, places), domain)
        assert np.allclose(index.reconstruct_n(0, index.ntotal), expected, atol=1e-5)
        assert np.allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-6)
        # Splits in the order index.splits names them, faces in face-id order within each.
        assert sorted(mine, key=lambda r: (("train", "val", "test").index(r["split"]), r["face_id"])) == mine
    metrics = json.loads((project / "metrics" / "index.json").read_text())
    assert metrics["rows"] == {"human": 24, "anime": 27} and metrics["dim"] == 256
    assert metrics["domains"]["anime"]["kind"] == "exact"
    assert metrics["domains"]["anime"]["splits"] == {"train": 24, "test": 3}
    pair = metrics["cross_domain"]["human->anime"]
    assert pair["samples"] == 5 and pair["k"] == 8 and 0 <= pair["overlap_at_k"] <= 1 and -1 <= pair["cosine"] <= 1
    assert not (project / "data" / "index.partial").exists()


def test_a_second_run_is_byte_identical(project: Path, tmp_path: Path) -> None:
    folder = project / "data" / "index"
    before = {path.name: path.read_bytes() for path in sorted(folder.iterdir())}
    assert set(before) == {"ids.parquet", "human.faiss", "anime.faiss"}
    result = CliRunner().invoke(app, ["index", "--params", str(project / "params.yaml")])
    assert result.exit_code == 0, result.output
    after = {path.name: path.read_bytes() for path in sorted(folder.iterdir())}
    assert after == before
    # And in another checkout of the project (the files record no absolute path): what DVC caches is shared.
    import shutil

    for part in ("data/datasets", "models"):
        shutil.copytree(project / part, tmp_path / part)
    shutil.copy(project / "params.yaml", tmp_path / "params.yaml")
    run_index(load_params(tmp_path / "params.yaml"))
    assert {path.name: path.read_bytes() for path in sorted((tmp_path / "data" / "index").iterdir())} == before


def test_ivf_through_the_stage_records_its_recall(project: Path, tmp_path: Path) -> None:
    from flows.index import build_neighbor_index

    settings = IndexParams(kind="ivf", device="cpu", splits=("train",), agreement_samples=0, recall_k=4)
    metrics = build_neighbor_index(settings, model_path=project / "models" / "twingan.pt",
                                   datasets=project / "data" / "datasets", out=tmp_path / "index",
                                   metrics_path=tmp_path / "index.json")  # fmt: skip
    assert metrics["domains"]["anime"]["kind"] == "ivf" and metrics["domains"]["anime"]["nlist"] == 1
    assert metrics["domains"]["anime"]["recall_at_4"] == 1.0  # one list: every vector is scanned
    assert metrics["rows"] == {"human": 20, "anime": 24} and metrics["cross_domain"] == {}
    assert len(pq.read_table(tmp_path / "index" / "ids.parquet")) == 44


def test_the_batch_size_follows_the_device_unless_set_and_does_not_change_the_vectors(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """index.batch_size null: 1 crop per pass on a CPU (the encoder is memory-bound there, benchmarks/embed.py),
    64 on CUDA; the vectors equal those of the fixture's batches of 8 to float32 rounding."""
    from flows.index import build_neighbor_index

    assert inference_batch_size(None, torch.device("cpu"), cuda=64, cpu=1) == 1
    assert inference_batch_size(None, torch.device("cuda"), cuda=64, cpu=1) == 64
    assert inference_batch_size(8, torch.device("cuda"), cuda=64, cpu=1) == 8
    with pytest.raises(ValueError, match="batch size must be at least 1, got 0"):
        inference_batch_size(0, torch.device("cpu"), cuda=64, cpu=1)
    settings = IndexParams(kind="exact", device="cpu", agreement_samples=0)
    assert settings.batch_size is None
    with caplog.at_level("INFO", logger="twingan.index"):
        build_neighbor_index(settings, model_path=project / "models" / "twingan.pt",
                             datasets=project / "data" / "datasets", out=tmp_path / "index",
                             metrics_path=tmp_path / "index.json")  # fmt: skip
    assert "on cpu, batches of 1" in caplog.text
    import faiss

    for domain in DOMAINS:
        ours = faiss.read_index(str(tmp_path / "index" / f"{domain}.faiss"))
        fixture = faiss.read_index(str(project / "data" / "index" / f"{domain}.faiss"))
        assert np.allclose(ours.reconstruct_n(0, ours.ntotal), fixture.reconstruct_n(0, fixture.ntotal), atol=1e-6)


def test_splits_missing_everywhere_and_a_missing_dataset_are_named(project: Path, tmp_path: Path) -> None:
    from core.params import ParamsError
    from flows.index import build_neighbor_index

    def build(datasets: Path, **settings: object) -> None:
        build_neighbor_index(IndexParams(device="cpu", **settings), model_path=project / "models" / "twingan.pt",
                             datasets=datasets, out=tmp_path / "index", metrics_path=tmp_path / "m.json")  # fmt: skip

    with pytest.raises(ParamsError, match=r"index\.splits: .*human/manifest\.parquet has no rows of test"):
        build(project / "data" / "datasets", splits=("test",))
    with pytest.raises(FileNotFoundError, match=r"nowhere/human/manifest\.parquet: no dataset for 'human'"):
        build(tmp_path / "nowhere")
    assert not (tmp_path / "index").exists()


# ------------------------------------------------------------------------------------------------ queries


def dataset_crop_png(project: Path, domain: str, face: int, path: Path) -> str:
    ids = read_table(project / "data" / "index" / "ids.parquet", INDEX_IDS).to_pylist()
    row = [r for r in ids if r["domain"] == domain][face]
    crop = read_crops(project / "data" / "datasets", domain, [(row["shard"], row["shard_row"], row["face_id"])])[0]
    Image.fromarray(crop).save(path)
    return row["face_id"]


def test_a_dataset_crop_finds_itself_first(project: Path, tmp_path: Path) -> None:
    face_id = dataset_crop_png(project, "anime", 17, tmp_path / "crop.png")
    result = find_neighbors(tmp_path / "crop.png", model_path=project / "models" / "twingan.pt",
                            index_path=project / "data" / "index", domains=["anime", "human"], source="anime", k=5,
                            aligned=True, device="cpu")  # fmt: skip
    (hits,) = result.hits
    assert hits["anime"][0].face_id == face_id and hits["anime"][0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.rank for h in hits["anime"]] == [1, 2, 3, 4, 5]
    assert all(h.score < 0.9999 for h in hits["anime"][1:])
    assert len(hits["human"]) == 5 and all(h.face_id.startswith("human-") for h in hits["human"])
    scores = [h.score for h in hits["human"]]
    assert scores == sorted(scores, reverse=True)


def test_neighbors_command_prints_the_table_and_writes_the_grid(project: Path, tmp_path: Path) -> None:
    face_id = dataset_crop_png(project, "human", 3, tmp_path / "crop.png")
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(app, ["neighbors", str(tmp_path / "crop.png"), "--aligned", "--from", "human",
                                      "--k", "4", "--domains", "anime,human", "--model",
                                      str(project / "models" / "twingan.pt"), "--index",
                                      str(project / "data" / "index"), "--device", "cpu", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["face", "domain", "rank", "score", "face_id", "split"]
    assert len(lines) == 1 + 2 * 4 + 1 and lines[-1] == f"wrote {out}"
    first_human = next(line.split() for line in lines if line.split()[1] == "human")
    assert first_human[2] == "1" and first_human[4] == face_id
    # The query row, then a row per domain of 4 crops: 16 px cells with 2 px white between them.
    with Image.open(out) as picture:
        assert picture.size == (4 * 18 + 2, 3 * 18 + 2)
        pixels = np.asarray(picture)
    assert np.array_equal(pixels[2:18, 2:18], np.asarray(Image.open(tmp_path / "crop.png")))
    assert np.array_equal(pixels[2 * 18 + 2 : 3 * 18, 2:18], pixels[2:18, 2:18])  # human rank 1 is the query


def test_a_photo_is_detected_and_aligned_with_the_model_files_face_spec(project: Path, tmp_path: Path) -> None:
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    result = find_neighbors(tmp_path / "astronaut.png", model_path=project / "models" / "twingan.pt",
                            index_path=project / "data" / "index", domains=["anime"], source="human", k=3,
                            device="cpu", out=tmp_path / "grid.png")  # fmt: skip
    faces = result.faces  # the astronaut, and whatever else HOG takes for a face at upsample 1
    assert faces[0].index == 0 and faces[0].crop.shape == (64, 64, 3)
    x0, y0, x1, y1 = faces[0].box
    assert 150 < (x0 + x1) / 2 < 290 and 50 < (y0 + y1) / 2 < 190  # her face, largest first
    assert [[h.rank for h in found["anime"]] for found in result.hits] == [[1, 2, 3]] * len(faces)
    with Image.open(tmp_path / "grid.png") as picture:
        assert picture.size == (3 * 66 + 2, 2 * len(faces) * 66 + 2)  # cells at the largest crop's size: 64 px
    Image.new("RGB", (80, 80), "white").save(tmp_path / "blank.png")
    with pytest.raises(NeighborsError, match=r"blank\.png: dlib_hog found no human face; .*--aligned"):
        find_neighbors(tmp_path / "blank.png", model_path=project / "models" / "twingan.pt", device="cpu",
                       index_path=project / "data" / "index", domains=["anime"], source="human")  # fmt: skip


def test_a_stale_index_is_refused_naming_the_index_and_the_model(project: Path, tmp_path: Path) -> None:
    other = write_model(tmp_path / "other.pt", seed=5)
    dataset_crop_png(project, "human", 0, tmp_path / "crop.png")
    with pytest.raises(IndexFileError, match=r"index: built with another model \(encoder \w+ at step 1; .*other\.pt "
                                             r"has encoder \w+ at step 6\).*dvc repro index"):  # fmt: skip
        find_neighbors(tmp_path / "crop.png", model_path=other, index_path=project / "data" / "index",
                       domains=["anime"], source="human", aligned=True, device="cpu")  # fmt: skip
    result = CliRunner().invoke(app, ["neighbors", str(tmp_path / "crop.png"), "--aligned", "--model", str(other),
                                      "--index", str(project / "data" / "index"), "--device", "cpu",
                                      "-o", str(tmp_path / "g.png")])  # fmt: skip
    assert result.exit_code == 2 and "built with another model" in result.output
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--domains", "anime,cat"], r"--domains: 'cat' not in the index .*index \(it holds human, anime\)"),
        (["--k", "25"], r"--k 25: more neighbours than .*index holds for human \(24 crops\)"),
        (["--from", "cat"], r"--from 'cat': .*twingan\.pt knows only human, anime"),
        (["--index", "NOWHERE"], r"NOWHERE: no such folder: no neighbour index; build it with `dvc repro index`"),
        (["--model", "NOWHERE.pt"], r"NOWHERE\.pt: no model file"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--k", "0"], r"--(device cuda:7|k 0)"),
    ],
)
def test_impossible_requests_are_refused_naming_the_option(
    project: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    dataset_crop_png(project, "human", 0, tmp_path / "crop.png")
    options = {"--model": str(project / "models" / "twingan.pt"), "--index": str(project / "data" / "index"),
               "--domains": "human,anime", "--k": "3", "--from": "human", "--device": "cpu"}  # fmt: skip
    given = dict(zip(arguments[::2], arguments[1::2], strict=True))
    options.update({key: str(tmp_path / value) if "NOWHERE" in value else value for key, value in given.items()})
    command = ["neighbors", str(tmp_path / "crop.png"), "--aligned", "-o", str(tmp_path / "g.png")]
    result = CliRunner().invoke(app, command + [part for pair in options.items() for part in pair])
    assert result.exit_code == 2, result.output
    assert __import__("re").search(message, " ".join(result.output.split())), result.output


def test_an_index_whose_shards_changed_is_refused(project: Path, tmp_path: Path) -> None:
    index = NeighborIndex(project / "data" / "index")
    with pytest.raises(IndexFileError, match=r"row 0 holds anime-00000, the index says anime-00001"):
        read_crops(project / "data" / "datasets", "anime", [("pixels-train-00000.parquet", 0, "anime-00001")])
    with pytest.raises(NeighborsError, match="--domains: name at least one domain"):
        from inference.neighbors import check_request

        check_request(index, [], 3)


def test_a_model_file_without_the_sources_face_spec_points_to_aligned(project: Path, tmp_path: Path) -> None:
    # Same weights (same encoder digest, so the index fits), but no record of how human faces were cropped.
    model = write_model(tmp_path / "no-human-spec.pt", seed=0, faces={"anime": HUMAN_FACES})
    Image.new("RGB", (80, 80), "white").save(tmp_path / "photo.png")
    with pytest.raises(NeighborsError, match=r"does not record how human faces were .*pass --aligned"):
        find_neighbors(tmp_path / "photo.png", model_path=model, index_path=project / "data" / "index",
                       domains=["anime"], source="human", k=2, device="cpu")  # fmt: skip
    result = find_neighbors(tmp_path / "photo.png", model_path=model, index_path=project / "data" / "index",
                            domains=["anime"], source="human", k=2, device="cpu", aligned=True)  # fmt: skip
    assert [h.rank for h in result.hits[0]["anime"]] == [1, 2]
