"""The evaluate stage and its metrics: FID and KID against reference formulas and closed forms, the Inception
loader on a tiny TorchScript network, the pose estimators on drawn and real faces, hair-colour naming, PSNR,
and the stage end to end on tiny datasets and a tiny model (numbers when computable, reasons when not)."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from core.params import ParamsError, TagsParams, load_params
from core.parquet import table_from_rows, write_table
from core.schemas import DATASET_MANIFEST, DATASET_PIXELS
from evaluation.agreement import hair_agreement, hair_colour_of, pose_agreement
from evaluation.detect import face_detector, run_all, upscaled
from evaluation.fid import (
    FeatureStats,
    frechet_distance,
    kernel_distance,
    mmd2_unbiased,
    trace_sqrt_product,
)
from evaluation.images import psnr_db
from evaluation.inception import FeatureExtractorError, load_feature_extractor
from evaluation.pose import PhotoPoseEstimator, Pose, pose_from_68, pose_of_drawing
from flows.demo_data import draw_anime_face
from flows.evaluate import evaluate
from preprocessing.faces.align import align_by_eyes, warp
from preprocessing.faces.detectors import Face, make_detector
from preprocessing.tags.vocabulary import Vocabulary
from tests.builders.datasets import manifest_row
from tests.builders.params import write_params
from training.model_file import save_model
from training.networks import NetworkConfig, TwinGAN


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run 10-50x slower on 2 intra-op threads when other processes share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ FID, KID


def gaussian(rng: np.random.Generator, n: int, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    return rng.multivariate_normal(mean, cov, size=n)


def random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def scipy_fid(a: FeatureStats, b: FeatureStats) -> float:
    """The reference formula (pytorch-fid, StyleGAN2-ADA): scipy's sqrtm of the product."""
    scipy_linalg = pytest.importorskip("scipy.linalg")  # installed with scikit-image
    root = scipy_linalg.sqrtm(a.cov @ b.cov)
    return float(np.real(np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov + b.cov - 2 * root)))


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 16)), rng.normal(loc=0.3, size=(200, 16))
    sx, sy = FeatureStats.of(x), FeatureStats.of(y)
    assert frechet_distance(sx, sx) < 1e-9
    assert frechet_distance(sx, sy) == pytest.approx(frechet_distance(sy, sx), rel=1e-10)
    assert frechet_distance(sx, sy) > 1.0


def test_fid_matches_scipy_sqrtm_on_well_conditioned_covariances() -> None:
    rng = np.random.default_rng(1)
    for d in (2, 8, 64):
        a = FeatureStats(rng.normal(size=d), random_cov(rng, d), 100)
        b = FeatureStats(rng.normal(size=d), random_cov(rng, d), 100)
        assert frechet_distance(a, b) == pytest.approx(scipy_fid(a, b), rel=1e-8, abs=1e-8)


def test_fid_closed_form_for_commuting_covariances() -> None:
    """Diagonal covariances: FID = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2."""
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    exact = frechet_distance(FeatureStats(mu1, np.diag(s1), 2), FeatureStats(mu2, np.diag(s2), 2))
    assert exact == pytest.approx(closed, rel=1e-12)
    rng = np.random.default_rng(2)  # and from samples of the two Gaussians, within sampling error
    x, y = gaussian(rng, 40000, mu1, np.diag(s1)), gaussian(rng, 40000, mu2, np.diag(s2))
    assert frechet_distance(FeatureStats.of(x), FeatureStats.of(y)) == pytest.approx(closed, rel=0.03)


def test_fid_of_gaussian_samples_approaches_the_general_closed_form() -> None:
    """Non-commuting covariances: the samples' FID tends to the FID of the true parameters."""
    rng = np.random.default_rng(3)
    d = 6
    mu1, mu2, c1, c2 = rng.normal(size=d), rng.normal(size=d), random_cov(rng, d), random_cov(rng, d)
    truth = FeatureStats(mu1, c1, 0), FeatureStats(mu2, c2, 0)
    expected = scipy_fid(*truth)
    assert frechet_distance(*truth) == pytest.approx(expected, rel=1e-9)
    sampled = frechet_distance(
        FeatureStats.of(gaussian(rng, 50000, mu1, c1)), FeatureStats.of(gaussian(rng, 50000, mu2, c2))
    )
    assert sampled == pytest.approx(expected, rel=0.03)


def test_fid_stays_real_and_finite_with_fewer_vectors_than_dimensions() -> None:
    """Singular covariances (10 vectors in 64-d, as few images in Inception's 2048-d): the eigen method gives a
    finite, symmetric, non-negative value; the trace term never exceeds what Cauchy-Schwarz allows."""
    rng = np.random.default_rng(4)
    a, b = FeatureStats.of(rng.normal(size=(10, 64))), FeatureStats.of(rng.normal(size=(12, 64)))
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert trace_sqrt_product(a.cov, b.cov) <= np.sqrt(np.trace(a.cov) * np.trace(b.cov)) + 1e-9
    assert frechet_distance(a, a) < 1e-8


def reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 written out term by term (Bińkowski et al. 2018, eq. 2), cubic kernel."""
    m, d = x.shape

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_the_unbiased_mmd_formula() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(20, 5)), rng.normal(loc=0.5, size=(20, 5))
    assert mmd2_unbiased(x, y) == pytest.approx(reference_mmd2(x, y), rel=1e-10)
    kid = kernel_distance(x, y, subset_size=100, subsets=3)  # subsets of all 20: the same value each time
    assert kid.subset_size == 20 and kid.subsets == 3
    assert kid.mean == pytest.approx(reference_mmd2(x, y), rel=1e-10) and kid.std < 1e-12


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two() -> None:
    """Averaged over independent pairs of samples of one distribution, KID is 0 within 3 standard errors
    (a biased estimator, such as the V-statistic, is clearly positive at this size); two distributions: > 0."""
    rng = np.random.default_rng(6)
    same = [kernel_distance(rng.normal(size=(30, 8)), rng.normal(size=(30, 8)), subsets=1).mean for _ in range(300)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    other = kernel_distance(rng.normal(size=(200, 8)), rng.normal(loc=0.7, size=(200, 8)), subset_size=50, seed=1)
    assert other.mean > 10 * other.std / np.sqrt(other.subsets)
    again = kernel_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), subset_size=50, seed=1)
    assert again.mean < other.mean / 10


def test_kid_and_fid_refuse_what_they_cannot_measure() -> None:
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        FeatureStats.of(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        kernel_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        FeatureStats.of(np.full((3, 2), np.nan))


# ------------------------------------------------------------------------------------------ feature network


class TinyFeatures(torch.nn.Module):
    """A random conv net with the Inception file's call signature: uint8 (N, 3, H, W) in, (N, 12) out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 12, 3, stride=2)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(img.float() / 127.5 - 1, size=(29, 29), mode="bilinear")
        features = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return features if return_features else features.softmax(dim=1)


@pytest.fixture(scope="module")
def tiny_inception(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny network as a TorchScript file, the format of the released Inception file (torch 2.13 deprecates
    writing TorchScript; reading it is what the stage needs)."""
    path = tmp_path_factory.mktemp("inception") / "tiny-inception.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(TinyFeatures()), str(path))
    return path


def test_the_torchscript_loader_gives_features_and_fid_of_a_set_with_itself_is_zero(tiny_inception: Path) -> None:
    extractor = load_feature_extractor(tiny_inception)
    assert len(extractor.sha256) == 64
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8, generator=generator)
    features = extractor.features(images, batch_size=3)
    assert features.shape == (10, 12) and features.dtype == np.float64
    assert np.allclose(features, extractor.features(images, batch_size=10))  # batching does not matter
    stats = FeatureStats.of(features)
    assert frechet_distance(stats, stats) < 1e-9
    darker = extractor.features(images // 4, batch_size=4)
    assert frechet_distance(stats, FeatureStats.of(darker)) > 1e-3


def test_the_loader_names_a_missing_or_unusable_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such Inception file"):
        load_feature_extractor(tmp_path / "absent.pt")
    state_dict = tmp_path / "state_dict.pth"
    torch.save({"weight": torch.zeros(3)}, state_dict)
    with pytest.raises(FeatureExtractorError, match=r"state_dict.pth: not a TorchScript file"):
        load_feature_extractor(state_dict)


# ----------------------------------------------------------------------------------------------------- pose


def frontal_68(yaw_shift: float = 0.0) -> np.ndarray:
    """68 landmarks of a symmetric frontal face (contour at x = +-50, eyes at +-20), nose shifted by yaw_shift."""
    points = np.zeros((68, 2))
    points[0:17, 0] = np.linspace(-50, 50, 17)
    points[0:17, 1] = 40 - 40 * np.cos(np.linspace(0, np.pi, 17))
    points[36:42] = (-20, 0)
    points[42:48] = (20, 0)
    points[30] = (yaw_shift, 25)
    return points + np.array([100.0, 100.0])


def rotated(points: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - 100) @ rotation.T + 100


def test_photo_pose_reads_roll_from_the_eyes_and_yaw_from_the_nose_between_the_contour() -> None:
    frontal = pose_from_68(frontal_68())
    assert frontal.roll == pytest.approx(0) and frontal.yaw == pytest.approx(0)
    turned = pose_from_68(frontal_68(yaw_shift=20))
    assert turned.yaw > 0.3  # nose towards the image's right: positive
    tilted = pose_from_68(rotated(frontal_68(yaw_shift=20), 25))
    assert tilted.roll == pytest.approx(25) and tilted.yaw == pytest.approx(turned.yaw)  # roll is taken out
    assert pose_from_68(frontal_68(yaw_shift=-20)).yaw == pytest.approx(-turned.yaw)  # turned the other way


def test_drawing_pose_reads_roll_and_the_mouth_offset() -> None:
    detector = make_detector("animeface", {"border": 0, "upscale_below": 0})  # the border reads 15 degrees as 11
    for tilt in (-15, 15):  # PIL turns counter-clockwise on screen: the right eye rises, roll < 0
        faces = detector.detect(np.asarray(draw_anime_face(256, (60, 90, 200), (200, 40, 50), tilt=tilt)))
        pose = pose_of_drawing(faces[0])
        assert pose is not None and pose.roll == pytest.approx(-tilt, abs=4) and abs(pose.yaw) < 0.05
    face = Face(
        box=(0, 0, 1, 1), score=1, landmarks={"eye_left": (80, 100), "eye_right": (120, 100), "mouth": (110, 150)}
    )
    assert pose_of_drawing(face) == Pose(roll=0.0, yaw=0.25)
    assert pose_of_drawing(Face(box=(0, 0, 1, 1), score=1, landmarks={"eye_left": (1, 1)})) is None


def test_pose_agreement_counts_roll_error_correlation_and_flips() -> None:
    pairs = [(Pose(0, 0.3), Pose(5, 0.2)), (Pose(10, -0.4), Pose(4, -0.1)), (Pose(-5, 0.05), Pose(-5, 0.0)),
             (Pose(0, 0.5), Pose(0, -0.2))]  # fmt: skip
    out = pose_agreement(pairs, source_min_yaw=0.15, target_min_yaw=0.08)
    assert out["pose_pairs"] == 4 and out["pose_roll_error_degrees"] == pytest.approx((5 + 6 + 0 + 0) / 4)
    assert out["pose_turned_pairs"] == 3 and out["pose_flip_rate"] == pytest.approx(1 / 3)
    expected = np.corrcoef([0.3, -0.4, 0.05, 0.5], [0.2, -0.1, 0.0, -0.2])[0, 1]
    assert out["pose_yaw_correlation"] == pytest.approx(expected)
    assert pose_agreement([(Pose(179, 0), Pose(-179, 0))], source_min_yaw=1, target_min_yaw=1)[
        "pose_roll_error_degrees"
    ] == pytest.approx(2)
    few = pose_agreement(pairs[:2], source_min_yaw=0.15, target_min_yaw=0.08)
    assert few["pose_yaw_correlation"] is None and "2 pairs (3 needed)" in few["pose_yaw_correlation_status"]
    none = pose_agreement([], source_min_yaw=0.15, target_min_yaw=0.08)
    assert none["pose_flip_rate"] is None and none["pose_flip_rate_status"].startswith("not computed: no input-output")


@pytest.mark.real_data
def test_photo_yaw_has_the_opposite_sign_of_aflw2000_yaw_on_real_photos(real_data: Path) -> None:
    """index.csv gives AFLW2000-3D's annotated yaw (degrees) for 22 photos; dlib's HOG finds 16 of them (not
    the strong profiles). The proxy has the opposite sign of the annotated yaw on every face with |yaw| >= 5
    degrees (AFLW's yaw is positive when the face turns to the image's left) and tracks the angle; on the
    eye-aligned 128 px crops the faces stage makes (what the evaluate stage measures) it reads the same."""
    estimator, detector = PhotoPoseEstimator(), make_detector("dlib_hog", {"predictor": "5"})
    labelled, found, cropped = [], [], []
    with (real_data / "index.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            match = re.search(r"yaw=([+-]?\d+)", row["notes"])
            if row["domain"] != "human" or not match:
                continue
            labelled.append(row["file"])
            photo = np.asarray(Image.open(real_data / row["file"]).convert("RGB"))
            pose = estimator(photo)
            if pose is None:
                continue
            found.append((int(match.group(1)), pose.yaw))
            eyes = detector.detect(photo)[0].landmarks
            crop = warp(photo, align_by_eyes(eyes["eye_left"], eyes["eye_right"], 128))
            in_crop = estimator(crop)
            if in_crop is not None:
                cropped.append((pose.yaw, in_crop.yaw))
    assert len(labelled) == 22 and len(found) >= 15
    clear = [(degrees, yaw) for degrees, yaw in found if abs(degrees) >= 5]
    agree = sum(np.sign(yaw) == -np.sign(degrees) for degrees, yaw in clear)
    assert agree == len(clear) >= 12, found
    degrees, proxy = np.array(found, dtype=float).T
    assert np.corrcoef(degrees, proxy)[0, 1] < -0.9
    assert len(cropped) >= 14 and np.corrcoef(np.array(cropped).T)[0, 1] > 0.97


# ------------------------------------------------------------------------------------------- detection, hair


def test_upscaling_never_shrinks_and_workers_do_not_change_results() -> None:
    small = np.zeros((20, 30, 3), np.uint8)
    assert upscaled(small, 60).shape == (40, 60, 3) and upscaled(small, 10) is small
    rng = np.random.default_rng(7)
    drawings = [drawing(64, rng) for _ in range(8)]
    animeface = _animeface()
    one = run_all(drawings, animeface, upscale=128, workers=1)
    two = run_all(drawings, animeface, upscale=128, workers=2)
    assert one == two and sum(bool(faces) for faces in one) >= 6


def drawing(size: int, rng: np.random.Generator) -> np.ndarray:
    """A drawn anime face with random hair (the demo's drawings; AnimeFace finds them)."""
    return np.asarray(draw_anime_face(size, tuple(rng.integers(0, 255, 3).tolist()), (200, 40, 50)))


def _animeface():
    import functools

    return functools.partial(face_detector, "animeface", {})


def test_hair_colour_is_named_as_the_anime_tags_stage_names_it() -> None:
    vocabulary = Vocabulary.from_params(TagsParams())
    detector = make_detector("animeface", {})
    drawn = {"blue": (60, 90, 200), "pink": (250, 175, 205), "black": (28, 28, 32), "green": (70, 160, 90)}
    found = {}
    for name, rgb in drawn.items():
        faces = detector.detect(np.asarray(draw_anime_face(256, rgb, (60, 100, 210))))
        assert hair_colour_of(faces[0], vocabulary_tagger(vocabulary)) == name
        found[name] = [faces]
    found["green"] = [detector.detect(np.asarray(draw_anime_face(256, drawn["blue"], (200, 40, 50)))), []]
    out = hair_agreement(found, vocabulary)
    assert out["hair_outputs"] == 5 and out["hair_outputs_measured"] == 4
    assert out["hair_agreement"] == pytest.approx(3 / 4) and out["hair_agreement_by_colour"]["green"] == 0.0
    empty = hair_agreement({"blue": [[], []]}, vocabulary)
    assert empty["hair_agreement"] is None and "no face in any of the 2 outputs" in empty["hair_agreement_status"]


def vocabulary_tagger(vocabulary: Vocabulary):
    from preprocessing.tags.taggers import AnimeFaceColorsTagger

    return AnimeFaceColorsTagger(vocabulary)


def test_psnr_of_known_errors() -> None:
    a = torch.zeros(2, 3, 4, 4)
    assert psnr_db(a, a) == pytest.approx([100, 100])
    b = a.clone()
    b[1] += 0.2  # 0.1 on [0, 1]: MSE 0.01, 20 dB
    assert psnr_db(a, b)[1] == pytest.approx(20.0)


# ------------------------------------------------------------------------------------------------ the stage

VOCAB = ["blonde hair", "blue hair", "blue eyes", "smile"]


def write_faces(root: Path, domain: str, splits: dict[str, list[np.ndarray]], tags: list[str]) -> Path:
    """A dataset folder as dataset@<domain> writes it, holding the given images (all of one size)."""
    rows, index = [], 0
    size = next(iter(images for images in splits.values() if images))[0].shape[0]
    for split, images in splits.items():
        if not images:
            continue
        shard = f"pixels-{split}-00000.parquet"
        pixels = [{"face_id": f"{domain}-{index + k:05d}", "pixels": image.tobytes()} for k, image in enumerate(images)]
        write_table(table_from_rows(pixels, DATASET_PIXELS), root / shard, DATASET_PIXELS, {"image_size": size},
                    row_group_size=2)  # fmt: skip
        rows += [manifest_row(domain, index + k, split, shard, k, tags, 1.0) for k in range(len(images))]
        index += len(images)
    write_table(table_from_rows(rows, DATASET_MANIFEST), root / "manifest.parquet", DATASET_MANIFEST,
                {"image_size": size, "vocabulary": VOCAB})  # fmt: skip
    return root


def astronaut_crop(size: int) -> np.ndarray:
    """The astronaut photo shipped with scikit-image (the demo's human), cropped around dlib's face box."""
    from skimage import data

    photo = data.astronaut()
    x0, y0, x1, y1 = make_detector("dlib_hog", {}).detect(photo)[0].box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0)
    crop = Image.fromarray(photo).crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    return np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with a tiny model (64 px, random weights) and tiny datasets: humans are the
    astronaut crop plus noise, anime faces are drawings (AnimeFace finds them at 64 px)."""
    root = tmp_path_factory.mktemp("project")
    torch.manual_seed(0)
    config = NetworkConfig(
        domains=("human", "anime"), resolution=64, channel_base=256, channel_max=16, tag_dim=len(VOCAB)
    )
    save_model(root / "models/twingan.pt", TwinGAN(config).eval(), vocabulary=VOCAB, step=7, faces={}, train={})
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    write_faces(root / "data/datasets/human", "human", {"train": noise, "val": [astronaut_crop(64), *noise]},
                ["blonde hair"])  # fmt: skip
    drawings = [drawing(64, rng) for _ in range(4)]
    write_faces(root / "data/datasets/anime", "anime", {"train": drawings[:1], "val": drawings[1:]}, ["blue hair"])
    return root


def params_of(root: Path, **evaluate_params) -> Path:
    domains = {d: {"source": {"kind": "folder", "path": d}} for d in ("human", "anime")}
    settings = {"max_images": 10, "batch_size": 2, "device": "cpu", "workers": 1, "kid_subsets": 5, "hair_images": 2,
                "hair_colors": ["blonde", "blue"], "samples": 3, **evaluate_params}  # fmt: skip
    return write_params(root, domains, evaluate=settings)


def test_the_stage_reports_numbers_where_it_can_and_reasons_where_it_cannot(
    project: Path, tiny_inception: Path
) -> None:
    metrics = evaluate(load_params(params_of(project, inception=str(tiny_inception))))
    written = json.loads((project / "metrics/evaluate.json").read_text())
    assert written == metrics and (project / "plots/evaluate/samples.png").is_file()
    assert metrics["split"] == "val" and metrics["model_step"] == 7 and len(metrics["inception_sha256"]) == 64
    assert metrics["human"]["images"] == 4 and metrics["anime"]["images"] == 3
    for domain in ("human", "anime"):
        assert 0 < metrics[domain]["reconstruction_psnr_db"] < 100
    there, back = metrics["human_to_anime"], metrics["anime_to_human"]
    for direction in (there, back):
        assert direction["fid"] > 0 and np.isfinite(direction["kid"]) and direction["kid_subset_size"] == 3
    assert there["animeface_rate_real"] == 1.0  # the drawings, at the model's 64 px, upscaled to 128
    assert 0 <= there["animeface_rate"] <= 1 and there["pose_inputs_measured"] >= 1  # dlib finds the astronaut
    assert 0 <= there["animeface_rate_inputs"] <= 0.5  # the floor: the photos themselves
    assert "background_hair_faces" in there or "background_hair_shift_delta_e_status" in there
    assert there["hair_outputs"] == 4 and set(there["hair_agreement_by_colour"]) == {"blonde", "blue"}
    for name in ("hair_agreement", "pose_flip_rate", "pose_yaw_correlation", "pose_roll_error_degrees"):
        assert (there[name] is None) == (f"{name}_status" in there)  # a number, or null and a reason
    picture = np.asarray(Image.open(project / "plots/evaluate/samples.png"))
    assert picture.shape == (2 + 6 * (64 + 2), 2 + 3 * (64 + 2), 3)  # 3 rows per direction, 3 faces each


def test_a_person_is_cut_out_and_put_on_another_background() -> None:
    from evaluation.background import composited, person_mask

    yy, xx = np.mgrid[:64, :64]
    photo = np.zeros((64, 64, 3), np.uint8)
    photo[:] = (90 + xx // 2)[:, :, None].astype(np.uint8) * np.array([0, 1, 1], np.uint8)  # a teal gradient wall
    head = (xx - 32) ** 2 / 18**2 + (yy - 30) ** 2 / 22**2 <= 1
    photo[head] = (225, 180, 150)
    photo[head & (yy < 18)] = (60, 40, 30)  # dark hair on top
    mask = person_mask(photo)
    assert (mask & head).sum() / head.sum() > 0.9 and (mask & ~head).sum() / (~head).sum() < 0.1
    red = composited(photo, mask, (200, 30, 30))
    assert tuple(red[2, 2]) == (200, 30, 30) and tuple(red[30, 32]) == (225, 180, 150)


def test_hair_shift_is_the_largest_move_from_the_own_background() -> None:
    from evaluation.background import hair_shift

    same = [(120, 80, 50)] * 6
    moved = [(120, 80, 50), (120, 80, 50), (120, 80, 50), (200, 40, 40), (120, 80, 50), (120, 80, 50)]
    out = hair_shift([same, moved, [None] * 6], [["brown"] * 6, ["brown"] * 3 + ["red"] + ["brown"] * 2, [None] * 6])
    assert out["background_hair_faces"] == 2 and out["background_hair_name_changed"] == 0.5
    assert (
        out["background_hair_shift_p90"] > 30
        and 0 < out["background_hair_shift_delta_e"] < out["background_hair_shift_p90"]
    )
    assert hair_shift([[None] * 6], [[None] * 6]) == {"background_hair_faces": 0}


def test_a_model_given_to_measure_is_what_is_measured(project: Path) -> None:
    """Any model with the Twin-GAN's encode/decode (a baseline, an untrained model) goes through the same metrics:
    one that returns its input reconstructs exactly and translates each photo into itself."""
    from flows.evaluate import measure

    class Identity:
        def encode(self, images: torch.Tensor, domain: str) -> tuple[torch.Tensor, list]:
            return images, []

        def decode(self, latent: torch.Tensor, skips: list, domain: str, condition: object) -> torch.Tensor:
            return latent

    config = SimpleNamespace(resolution=64, domains=("human", "anime"), tag_dim=0, condition_dim=0)
    info = SimpleNamespace(config=config, vocabulary=(), step=0, profile="identity")
    metrics, picture = measure(load_params(params_of(project)), Identity(), info)
    assert metrics["model_profile"] == "identity" and metrics["human"]["reconstruction_psnr_db"] == 100.0
    there = metrics["human_to_anime"]
    assert there["animeface_rate"] == there["animeface_rate_inputs"]  # the translations are the photos
    assert there["hair_agreement"] is None and "without tag conditioning" in there["hair_agreement_status"]
    assert picture.ndim == 3


def test_without_the_inception_file_or_the_faces_the_metrics_say_why(project: Path) -> None:
    metrics = evaluate(load_params(params_of(project, inception="models/absent.pt")))
    assert metrics["human_to_anime"]["fid"] is None and metrics["human_to_anime"]["kid"] is None
    assert metrics["human_to_anime"]["fid_status"] == "not computed: models/absent.pt missing (evaluate.inception)"
    assert "inception_sha256" not in metrics
    metrics = evaluate(load_params(params_of(project, split="test")))
    assert metrics["human"]["images"] == 0 and metrics["human"]["reconstruction_psnr_db"] is None
    assert metrics["human"]["reconstruction_psnr_db_status"] == "not computed: data/datasets/human has no 'test' faces"
    there = metrics["human_to_anime"]
    assert there["fid_status"].startswith("not computed: evaluate.inception is not set")
    for name in ("animeface_rate", "pose_flip_rate", "hair_agreement"):
        assert there[name] is None and there[f"{name}_status"].endswith("has no 'test' faces")
    assert (project / "plots/evaluate/samples.png").is_file()  # says so in pictures too


def test_params_errors_name_the_key(project: Path, tmp_path: Path, tiny_inception: Path) -> None:
    with pytest.raises(ParamsError, match=r"evaluate.source: 'cat' is not a domain of models/twingan.pt"):
        evaluate(load_params(params_of(project, source="cat")))
    with pytest.raises(ParamsError, match=r"evaluate.hair_colors: 'green' is not a hair tag"):
        evaluate(load_params(params_of(project, hair_colors=["green"])))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not torchscript")
    with pytest.raises(FeatureExtractorError, match=r"broken\.pt: not a TorchScript file"):
        evaluate(load_params(params_of(project, inception=str(broken))))


def test_the_command_names_a_missing_model_and_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twingan.cli import app

    result = CliRunner().invoke(app, ["evaluate", "--params", str(params_of(tmp_path))])
    assert result.exit_code == 2
    assert "models/twingan.pt: no model file" in " ".join(result.output.split())
