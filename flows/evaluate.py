"""The evaluate stage: `models/twingan.pt` on one split of the datasets, into `metrics/evaluate.json` (what
`dvc metrics show` lists and `dvc exp show` compares) and `plots/evaluate/samples.png`.

For `evaluate.source` (photos, say) and `evaluate.target` (anime) it reports:
- per domain: the faces read, and the reconstruction PSNR (x against decode(encode(x, d), d), on [0, 1]);
- per direction (source -> target and back): FID and KID of the translations against the real faces of the
  other domain, both at the model's resolution (Inception features; needs `evaluate.inception`);
- source -> target only: the share of translations in which AnimeFace finds a face, beside the share of
  real target faces (at the model's resolution too) in which it does, the ceiling at that resolution, and
  the share of the input photos themselves, a floor (AnimeFace pads every image first: docs); the
  agreement of the input photo's pose (dlib) with the output's (AnimeFace); how often the hair colour
  AnimeFace measures on an output is the colour the translation was asked for; and how far that colour
  moves when the same photos are put on other backgrounds (evaluation/background.py).

Translations are conditioned as in training: input i on the tags of the i-th real face of the target split
(cycled); reconstructions on the face's own tags. Each metric that cannot be computed on the data at hand
is null, with `<metric>_status` saying why.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import write_json_atomic
from core.devices import resolve_device
from core.layout import Layout
from core.params import EvaluateParams, LoadedParams, ParamsError
from evaluation.agreement import hair_agreement, hair_colour_of, not_computed, pose_agreement
from evaluation.background import BACKGROUNDS, composited, hair_shift, person_mask
from evaluation.detect import face_detector, run_all
from evaluation.fid import FeatureStats, frechet_distance, kernel_distance
from evaluation.images import as_uint8_nchw, cycled, psnr_db, read_split, run_model
from evaluation.inception import FeatureExtractor, load_feature_extractor
from evaluation.pose import PhotoPoseEstimator, pose_of_drawing
from preprocessing.tags.taggers import AnimeFaceColorsTagger
from preprocessing.tags.vocabulary import Vocabulary
from training.conditioning import condition_vector
from training.data import to_images
from training.model_file import load_model
from training.samples import grid, save_png, to_uint8

log = logging.getLogger("twingan.evaluate")

# The judge of drawn faces, with AnimeFace's default padding (picklable: it goes to the worker processes).
ANIMEFACE = functools.partial(face_detector, "animeface", {})

MODEL, METRICS, SAMPLES = Layout().model, Layout().metrics("evaluate"), Layout().plots("evaluate") / "samples.png"


@contextmanager
def _timed(what: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    log.info("%s: %.1f s", what, time.perf_counter() - start)


def key(source: str, target: str) -> str:
    """The metrics key of a direction ("human_to_anime": a plain name for dvc's columns)."""
    return f"{source}_to_{target}"


class _Run:
    """What every metric of one evaluation reads: the model, the faces, their translations.

    The model is models/twingan.pt unless one is given: anything with the Twin-GAN's `encode(x, domain)` and
    `decode(latent, skips, domain, condition)`, and its ModelInfo-like description (config.resolution,
    config.domains, config.tag_dim, config.condition_dim, vocabulary, step, profile), so that a baseline
    (benchmarks/cyclegan_baseline.py) or an untrained model is measured by the same code on the same faces."""

    def __init__(self, loaded: LoadedParams, params: EvaluateParams, model: Any = None, info: Any = None) -> None:
        self.params, self.root = params, loaded.root
        self.device = resolve_device(params.device)
        if model is None:
            model, info = load_model(self.root / MODEL, self.device)
        self.model, self.info = model, info
        self.config = self.info.config
        self.source, self.target = _check_domains(params, self.config.domains, self.root)
        self.vocabulary = Vocabulary.from_params(loaded.params.tags)
        self.hair_colours = _hair_colours(params, self.info.vocabulary, self.vocabulary) if self.config.tag_dim else []
        self.data = {
            domain: read_split(
                Layout(self.root).dataset(domain),
                domain,
                params.split,
                max_images=params.max_images,
                vocabulary=self.info.vocabulary or None,  # a model without tags: the dataset's own
                condition_dim=self.config.condition_dim,
                tag_dim=self.config.tag_dim,
                shown=f"data/datasets/{domain}",
            )
            for domain in (self.source, self.target)
        }
        resolution = self.config.resolution
        self.real = {domain: split.images(resolution) for domain, split in self.data.items()}
        with _timed("translations and reconstructions"):
            self.recon = {d: self.apply(self.real[d], d, d, self.data[d].condition) for d in self.data}
            self.translated = {
                (s, t): self.apply(self.real[s], s, t, cycled(self.data[t].condition, len(self.data[s])))
                for s, t in self.directions
            }

    @property
    def directions(self) -> list[tuple[str, str]]:
        return [(self.source, self.target), (self.target, self.source)]

    def apply(self, images: torch.Tensor, source: str, target: str, condition: torch.Tensor | None) -> torch.Tensor:
        """The model on `images` from `source` into `target` (the same domain: reconstructions), in batches."""
        return run_model(self.model, images, source, target, condition, batch_size=self.params.batch_size,
                         device=self.device)  # fmt: skip

    def detect(self, images: np.ndarray, factory: Callable[[], Callable[[np.ndarray], Any]], what: str) -> list:
        return run_all(images, factory, upscale=self.params.upscale, workers=self.params.workers, what=what)


def _check_domains(params: EvaluateParams, domains: tuple[str, ...], root: Path) -> tuple[str, str]:
    for name, domain in (("source", params.source), ("target", params.target)):
        if domain not in domains:
            raise ParamsError(f"evaluate.{name}: {domain!r} is not a domain of {MODEL} (it has: {', '.join(domains)})")
        manifest = Layout(root).dataset(domain) / "manifest.parquet"
        if not manifest.is_file():
            raise ParamsError(
                f"evaluate.{name}: no dataset for {domain!r} at {manifest} (run dvc repro dataset@{domain})"
            )
    if params.source == params.target:
        raise ParamsError(f"evaluate.target: the same domain as evaluate.source ({params.source!r})")
    return params.source, params.target


# --------------------------------------------------------------------------------------------------- metrics


def reconstruction(run: _Run, domain: str) -> dict[str, Any]:
    split = run.data[domain]
    out: dict[str, Any] = {"images": len(split)}
    if not len(split):
        out.update(not_computed("reconstruction_psnr_db", split.missing))
    else:
        out["reconstruction_psnr_db"] = float(psnr_db(run.real[domain], run.recon[domain]).mean())
    return out


def inception_distances(run: _Run, extractor: FeatureExtractor | None, reason: str) -> dict[str, dict[str, Any]]:
    """FID and KID of each direction's translations against the real faces of its target."""
    out: dict[str, dict[str, Any]] = {}
    features: dict[str, np.ndarray] = {}
    for s, t in run.directions:
        fakes, reals = len(run.translated[(s, t)]), len(run.real[t])
        entry: dict[str, Any] = {"fid_translations": fakes, "fid_reals": reals}
        why = reason or (
            f"{fakes} translations and {reals} real {t} faces in split {run.params.split!r} (2 of each needed)"
            if min(fakes, reals) < 2
            else ""
        )
        if why:
            entry.update(not_computed("fid", why))
            entry.update(not_computed("kid", why))
            out[key(s, t)] = entry
            continue
        assert extractor is not None
        batch = run.params.batch_size
        if t not in features:
            features[t] = extractor.features(as_uint8_nchw(run.real[t]), batch)
        fake = extractor.features(as_uint8_nchw(run.translated[(s, t)]), batch)
        entry["fid"] = frechet_distance(FeatureStats.of(fake), FeatureStats.of(features[t]))
        kid = kernel_distance(fake, features[t], subset_size=run.params.kid_subset_size,
                              subsets=run.params.kid_subsets, seed=run.params.seed)  # fmt: skip
        entry.update(kid=kid.mean, kid_std=kid.std, kid_subset_size=kid.subset_size)
        out[key(s, t)] = entry
    return out


def _extractor(params: EvaluateParams, root: Path, device: torch.device) -> tuple[FeatureExtractor | None, str]:
    if params.inception is None:
        return None, "evaluate.inception is not set"
    path = params.inception if params.inception.is_absolute() else root / params.inception
    if not path.is_file():
        return None, f"{params.inception} missing (evaluate.inception)"
    return load_feature_extractor(path, device), ""


def animeface_metrics(run: _Run) -> dict[str, Any]:
    """Face rate of the source -> target translations, pose agreement and hair-colour agreement."""
    s, t, params = run.source, run.target, run.params
    animeface = ANIMEFACE
    out: dict[str, Any] = {}
    reals = to_uint8(run.real[t])
    found_real = run.detect(reals, animeface, f"AnimeFace on real {t}")
    if not len(reals):
        out.update(not_computed("animeface_rate_real", run.data[t].missing))
    else:
        out["animeface_rate_real"] = float(np.mean([bool(f) for f in found_real]))
    if not len(run.data[s]):
        for name in ("animeface_rate", "animeface_rate_inputs", "pose_roll_error_degrees", "pose_yaw_correlation",
                     "pose_flip_rate", "hair_agreement", "background_hair_shift_delta_e"):  # fmt: skip
            out.update(not_computed(name, run.data[s].missing))
        return out
    outputs = to_uint8(run.translated[(s, t)])
    found = run.detect(outputs, animeface, f"AnimeFace on {s}->{t}")
    out["animeface_rate"] = float(np.mean([bool(f) for f in found]))
    out["animeface_found"] = int(sum(bool(f) for f in found))
    # The floor: AnimeFace on the input photos themselves, treated the same way.
    found_inputs = run.detect(to_uint8(run.real[s]), animeface, f"AnimeFace on real {s}")
    out["animeface_rate_inputs"] = float(np.mean([bool(f) for f in found_inputs]))
    with _timed("pose of the inputs (dlib)"):
        poses = run.detect(run.data[s].pixels, PhotoPoseEstimator, f"dlib pose of {s}")
    out["pose_inputs_measured"] = int(sum(p is not None for p in poses))
    pairs = []
    for pose, faces in zip(poses, found, strict=True):
        drawn = pose_of_drawing(faces[0]) if faces else None
        if pose is not None and drawn is not None:
            pairs.append((pose, drawn))
    out.update(pose_agreement(pairs, source_min_yaw=params.source_min_yaw, target_min_yaw=params.target_min_yaw))
    out.update(hair_metrics(run))
    out.update(background_metrics(run))
    return out


def background_metrics(run: _Run) -> dict[str, Any]:
    """The seed's failure case (a): the same source faces on five plain backgrounds (evaluation/background.py),
    translated with the same condition; how far the output's hair colour moves from the one on its own."""
    s, t, params = run.source, run.target, run.params
    count = min(params.background_images, len(run.data[s]))
    if count == 0:
        why = "evaluate.background_images is 0" if not params.background_images else run.data[s].missing
        return not_computed("background_hair_shift_delta_e", why)
    photos = to_uint8(run.real[s][:count])
    colours = list(BACKGROUNDS.values())
    pictures = np.stack([[photo, *(composited(photo, person_mask(photo), c) for c in colours)] for photo in photos])
    per = pictures.shape[1]
    images = to_images(pictures.reshape(-1, *pictures.shape[2:]), run.config.resolution)
    condition = cycled(run.data[t].condition, count)
    condition = condition.repeat_interleave(per, dim=0) if condition is not None else None
    outputs = to_uint8(run.apply(images, s, t, condition))
    animeface = ANIMEFACE
    found = run.detect(outputs, animeface, f"AnimeFace on {s}->{t} on other backgrounds")
    tagger = AnimeFaceColorsTagger(run.vocabulary)
    hair = [faces[0].attributes.get("hair_color") if faces else None for faces in found]
    names = [hair_colour_of(faces[0], tagger) if faces else None for faces in found]
    return hair_shift([hair[i : i + per] for i in range(0, len(hair), per)],
                      [names[i : i + per] for i in range(0, len(names), per)])  # fmt: skip


def _hair_colours(params: EvaluateParams, model_tags: tuple[str, ...], vocabulary: Vocabulary) -> list[str]:
    """The hair colours to ask for: checked before any work, since each must be a tag of the model and a
    name of the palette that names what AnimeFace measures."""
    known = [tag.removesuffix(" hair") for tag in model_tags if tag.endswith(" hair")]
    colours = list(params.hair_colors) or known
    for colour in colours:
        if colour not in known:
            raise ParamsError(
                f"evaluate.hair_colors: {colour!r} is not a hair tag of {MODEL} (it has: {', '.join(known)})"
            )
        if colour not in vocabulary.hair.names:
            raise ParamsError(
                f"evaluate.hair_colors: {colour!r} has no reference shade in tags.hair_colors to name it by"
            )
    return colours


def hair_metrics(run: _Run) -> dict[str, Any]:
    s, t, config = run.source, run.target, run.config
    if config.tag_dim == 0:
        return not_computed("hair_agreement", "the model was trained without tag conditioning")
    colours = run.hair_colours
    if not colours:
        return not_computed("hair_agreement", "the model has no hair tag in its vocabulary")
    inputs = run.real[s][: run.params.hair_images]
    outputs = []
    for colour in colours:
        condition = condition_vector(config, run.info.vocabulary, len(inputs), tags=[f"{colour} hair"])
        outputs.append(to_uint8(run.apply(inputs, s, t, condition)))
    animeface = ANIMEFACE
    found = run.detect(np.concatenate(outputs), animeface, f"AnimeFace on {s}->{t} by hair colour")
    per = len(inputs)
    return hair_agreement({c: found[i * per : (i + 1) * per] for i, c in enumerate(colours)}, run.vocabulary)


# --------------------------------------------------------------------------------------------------- samples


def sample_grid(run: _Run) -> np.ndarray:
    """Per direction with faces: a row of inputs, their translations, their reconstructions."""
    count = run.params.samples
    rows: list[torch.Tensor] = []
    for s, t in run.directions:
        if len(run.data[s]):
            rows += [run.real[s][:count], run.translated[(s, t)][:count], run.recon[s][:count]]
    if rows:
        return grid(rows)
    return _message(f"no faces in split {run.params.split!r} of {run.source} or {run.target}")


def _message(text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (8 + 6 * len(text), 24), (255, 255, 255))
    ImageDraw.Draw(image).text((4, 6), text, fill=(0, 0, 0))
    return np.asarray(image)


# ------------------------------------------------------------------------------------------------------ stage


def evaluate(loaded: LoadedParams) -> dict[str, Any]:
    """Compute every metric and write the metrics file and the sample grid; returns the metrics."""
    started = time.perf_counter()
    metrics, picture = measure(loaded)
    write_json_atomic(loaded.root / METRICS, metrics)
    save_png(picture, loaded.root / SAMPLES)
    log.info("wrote %s and %s in %.1f s", METRICS, SAMPLES, time.perf_counter() - started)
    return metrics


def measure(loaded: LoadedParams, model: Any = None, info: Any = None) -> tuple[dict[str, Any], np.ndarray]:
    """Every metric of a model (models/twingan.pt unless given: see _Run) and its sample grid."""
    params = loaded.params.evaluate
    extractor, reason = _extractor(params, loaded.root, resolve_device(params.device))  # a wrong file fails before work
    run = _Run(loaded, params, model, info)
    metrics: dict[str, Any] = {
        "split": params.split,
        "model_step": run.info.step,
        "model_profile": run.info.profile,
        "resolution": run.config.resolution,
        **{domain: reconstruction(run, domain) for domain in (run.source, run.target)},
    }
    if extractor is not None:
        metrics["inception_sha256"] = extractor.sha256
    with _timed("FID and KID"):
        distances = inception_distances(run, extractor, reason)
    with _timed("AnimeFace, pose and hair metrics"):
        one_way = animeface_metrics(run)
    for direction, entry in distances.items():
        metrics[direction] = entry
    metrics[key(run.source, run.target)].update(one_way)
    return metrics, sample_grid(run)
