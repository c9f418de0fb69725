"""The taggers a domain can name in params (`domains.<d>.tagger.name`), behind one interface.

A tagger turns a batch of faces into rows of the `tags/1` table (core/schemas.py): named tags
of the shared vocabulary plus whatever it measured. The stage builds it once, before any work, so a
missing weight file or a wrong option stops the run in one line that names the key or the file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.errors import UserError
from preprocessing.tags.vocabulary import Palette, Vocabulary, eye_tag, hair_tag, srgb_to_lab


@dataclass(frozen=True)
class FaceToTag:
    """What a tagger may look at: the crop, the detector's extras and landmarks, and the source photo."""

    face_id: str
    crop: bytes  # the encoded crop, as the faces stage stored it
    attributes: Mapping[str, Any]  # detector extras (AnimeFace's colours)
    landmarks: Mapping[str, tuple[float, float]]  # named points in source pixels
    source: Path | None = None  # the stored raw image (read only by taggers that need more than the crop)


class Tagger(Protocol):
    name: str
    version: str
    concurrent: bool  # whether batches may run in parallel threads (a torch model runs one batch at a time)
    needs_source: bool  # whether it reads the stored raw photo (FaceToTag.source), not only the crop

    def tag(self, faces: Sequence[FaceToTag]) -> list[dict[str, Any]]:
        """One row per face (tags/1 columns except face_id, domain, tagger, tagger_version)."""
        ...


class TaggerError(UserError, ValueError):
    """A tagger cannot be built from its options; the message names the option or file."""


def empty_row(detail: str = "") -> dict[str, Any]:
    return {
        "tags": [],
        "hair_rgb": None,
        "eye_rgb": None,
        "skin_rgb": None,
        "hair_delta_e": None,
        "eye_delta_e": None,
        "probabilities": None,
        "features": None,
        "detail": detail,
    }


def _options(name: str, options: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise TaggerError(f"options.{unknown[0]}: unknown option of tagger {name} (known: {known})")


def _rgb(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    return tuple(int(v) for v in value)  # type: ignore[return-value]


class NoTagger:
    """A domain without conditioning tags (cats, in the demo): rows with no tags, so joins stay simple."""

    name, version, concurrent, needs_source = "none", "1", True, False

    def __init__(self, vocabulary: Vocabulary, **options: Any) -> None:
        _options(self.name, options, ())

    def tag(self, faces: Sequence[FaceToTag]) -> list[dict[str, Any]]:
        return [empty_row() for _ in faces]


class AnimeFaceColorsTagger:
    """Names AnimeFace's hair and eye colours (measured by the faces stage inside AnimeFace's boxes)
    with the vocabulary's palette; keeps the raw colours. Works offline: the demo profile uses it."""

    name, version, concurrent, needs_source = "animeface_colors", "1", True, False

    def __init__(self, vocabulary: Vocabulary, **options: Any) -> None:
        _options(self.name, options, ())
        self.vocabulary = vocabulary

    def tag(self, faces: Sequence[FaceToTag]) -> list[dict[str, Any]]:
        return [self._one(face) for face in faces]

    def _one(self, face: FaceToTag) -> dict[str, Any]:
        row = empty_row()
        attributes = face.attributes
        if "hair_color" not in attributes:
            row["detail"] = "no AnimeFace colours on this face (is the domain's detector animeface?)"
            return row
        tags, missing = [], []
        hair = _rgb(attributes.get("hair_color"))
        if hair is not None:
            name, distance = self.vocabulary.hair.nearest(hair)
            tags.append(hair_tag(name))
            row["hair_rgb"], row["hair_delta_e"] = hair, distance
        else:
            missing.append("hair")
        eyes = [_rgb(attributes.get(key)) for key in ("eye_left_color", "eye_right_color")]
        eyes = [eye for eye in eyes if eye is not None]
        if eyes:
            # Both eyes share one colour in nearly every drawing; averaging in CIELAB keeps one name.
            mean_lab = np.mean(srgb_to_lab(np.array(eyes, dtype=np.float64)), axis=0)
            eye = _lab_to_nearest_rgb(mean_lab, eyes)
            name, distance = self.vocabulary.eyes.nearest(eye)
            tags.append(eye_tag(name))
            row["eye_rgb"], row["eye_delta_e"] = eye, distance
        else:
            missing.append("eyes")
        row["skin_rgb"] = _rgb(attributes.get("skin_color"))
        row["tags"] = tags
        row["detail"] = f"no colour measured for: {', '.join(missing)}" if missing else ""
        return row


def _lab_to_nearest_rgb(lab: np.ndarray, candidates: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Of the measured colours, the one closest to their CIELAB mean (no inverse transform needed, and
    the stored colour is one that was really measured)."""
    distances = [float(np.linalg.norm(srgb_to_lab(c) - lab)) for c in candidates]
    return candidates[int(np.argmin(distances))]


class HumanHairTagger:
    """Hair colour of a photographed face (preprocessing/tags/human_hair.py), named with reference shades
    for photographed hair whose names are the shared vocabulary's."""

    name, version, concurrent, needs_source = "human_hair", "1", True, True

    def __init__(self, vocabulary: Vocabulary, **options: Any) -> None:
        from preprocessing.tags.human_hair import PHOTO_HAIR_COLORS

        _options(self.name, options, ("hair_colors", "grabcut_iterations"))
        shades = options.get("hair_colors", PHOTO_HAIR_COLORS)
        if not isinstance(shades, Mapping) or not shades:
            raise TaggerError("options.hair_colors: expected a mapping of colour name to [[r, g, b], ...]")
        unknown = sorted(set(shades) - set(vocabulary.hair.names))
        if unknown:
            raise TaggerError(
                f"options.hair_colors.{unknown[0]}: not a hair colour of the vocabulary (tags.hair_colors: "
                f"{', '.join(vocabulary.hair.names)})"
            )
        try:
            self.palette = Palette.from_mapping(shades)
        except (TypeError, ValueError) as error:
            raise TaggerError(f"options.hair_colors: expected [[r, g, b], ...] per colour ({error})") from None
        iterations = options.get("grabcut_iterations", 4)
        if not isinstance(iterations, int) or not 1 <= iterations <= 20:
            raise TaggerError(f"options.grabcut_iterations: expected an integer from 1 to 20, got {iterations!r}")
        self.iterations = iterations

    def tag(self, faces: Sequence[FaceToTag]) -> list[dict[str, Any]]:
        from PIL import Image

        from preprocessing.images import load_rgb

        rows: list[dict[str, Any]] = []
        last_source: Path | None = None
        image: np.ndarray | Exception | None = None
        for face in faces:
            if "eye_left" not in face.landmarks or "eye_right" not in face.landmarks:
                rows.append(empty_row("no eye landmarks (human_hair needs a detector that finds eyes: dlib_*)"))
                continue
            if face.source is None:
                rows.append(empty_row("the source photo is not available"))
                continue
            if face.source != last_source:  # faces of one photo arrive together: decode it once
                last_source = face.source
                try:
                    image = np.asarray(load_rgb(face.source))
                except (OSError, ValueError, Image.DecompressionBombError) as error:
                    image = error
            if isinstance(image, Exception):  # changed or damaged since ingest: say so, go on
                rows.append(empty_row(f"the source photo could not be read: {image}"))
                continue
            rows.append(self._one(image, face))
        return rows

    def _one(self, image: np.ndarray, face: FaceToTag) -> dict[str, Any]:
        from preprocessing.tags.human_hair import estimate_hair

        estimate = estimate_hair(
            image, face.landmarks["eye_left"], face.landmarks["eye_right"], grabcut_iterations=self.iterations
        )
        row = empty_row(estimate.detail)
        row["skin_rgb"] = estimate.skin_rgb
        if estimate.hair_rgb is not None:
            name, distance = self.palette.nearest(estimate.hair_rgb)
            row["tags"] = [hair_tag(name)]
            row["hair_rgb"], row["hair_delta_e"] = estimate.hair_rgb, distance
        return row


class Illust2VecTagger:
    """illust2vec (Saito and Matsui 2015) on the crops: probabilities of the vocabulary's tags, named tags
    (the most likely hair and eye colour above the general threshold, as TwinGAN kept one per group, and
    each other tag above it), and the 4096-d feature vector. Weights are files named in the options."""

    name, concurrent, needs_source = "illust2vec", False, False

    def __init__(
        self, vocabulary: Vocabulary, *, thresholds: Mapping[str, float], batch_size: int, device: str, **options: Any
    ) -> None:
        import torch

        from preprocessing.tags.illust2vec import Illust2Vec

        _options(self.name, options, ("tag_model", "feature_model", "tag_list", "mean"))
        if "tag_list" not in options:
            raise TaggerError("options.tag_list: required (the release's tag_list.json)")
        if "tag_model" not in options and "feature_model" not in options:
            raise TaggerError("options.tag_model: at least one of tag_model and feature_model is required")
        paths = {
            key: Path(options[key]) if options.get(key) else None for key in ("tag_model", "feature_model", "mean")
        }
        from core.devices import resolve_device

        self.device = resolve_device(device)
        if self.device.type == "cuda":
            # TF32 convolutions move probabilities by up to 7e-4 from the CPU's (measured on an H100):
            # tags should not depend on the machine that computed them. This stage's process only.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.model = Illust2Vec.from_files(
            tag_model=paths["tag_model"], feature_model=paths["feature_model"], tag_list=Path(options["tag_list"]),
            mean=paths["mean"], device=self.device,
        ).to(memory_format=torch.channels_last)  # fmt: skip
        # channels-last is oneDNN's (and cuDNN's) preferred layout (benchmarks/tags.py measures the gain)
        self.version = f"1+{self.model.version}"
        self.vocabulary, self.thresholds, self.batch_size = vocabulary, thresholds, batch_size
        known = {tag: index for index, tag in enumerate(self.model.tags)}
        self.columns = [known.get(tag, -1) for tag in vocabulary.tags]  # -1: not an illust2vec tag (NaN)

    def tag(self, faces: Sequence[FaceToTag]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for start in range(0, len(faces), self.batch_size):
            rows.extend(self._batch(faces[start : start + self.batch_size]))
        return rows

    def _batch(self, faces: Sequence[FaceToTag]) -> list[dict[str, Any]]:
        import torch
        from PIL import Image

        images, rows = [], []
        for face in faces:
            try:
                with Image.open(io.BytesIO(face.crop)) as crop:
                    images.append(np.asarray(crop.convert("RGB")))
                rows.append(empty_row())
            except (OSError, ValueError, Image.DecompressionBombError) as error:  # a damaged crop: say so, go on
                rows.append(empty_row(f"the crop could not be decoded: {error}"))
        good = [i for i, row in enumerate(rows) if not row["detail"]]
        if not good:
            return rows
        with torch.inference_mode():
            batch = self.model.preprocess(images).contiguous(memory_format=torch.channels_last)
            tagged, featured = self.model.tag_graph is not None, self.model.feature_graph is not None
            probs = self.model.tag_probabilities(batch).float().cpu().numpy() if tagged else None
            features = self.model.features(batch).float().cpu().numpy() if featured else None
        for i, position in enumerate(good):
            row = rows[position]
            if probs is not None:
                vocab_probs = np.array([probs[i, c] if c >= 0 else np.nan for c in self.columns], dtype=np.float32)
                row["probabilities"] = vocab_probs.tolist()
                row["tags"] = self._named(vocab_probs)
            if features is not None:
                row["features"] = features[i].astype(np.float16)
        return rows

    def _named(self, probs: np.ndarray) -> list[str]:
        vocabulary, threshold = self.vocabulary, self.thresholds["general"]
        hair, eyes = len(vocabulary.hair_tags), len(vocabulary.eye_tags)
        named = []
        for start, stop in ((0, hair), (hair, hair + eyes)):
            group = probs[start:stop]
            if np.isfinite(group).any():
                best = start + int(np.nanargmax(group))
                if probs[best] > threshold:
                    named.append(vocabulary.tags[best])
        named += [vocabulary.tags[i] for i in range(hair + eyes, len(probs)) if probs[i] > threshold]
        return named


TAGGERS: dict[str, Callable[..., Tagger]] = {
    "none": NoTagger,
    "animeface_colors": AnimeFaceColorsTagger,
    "human_hair": HumanHairTagger,
    "illust2vec": Illust2VecTagger,
}


def make_tagger(name: str, options: Mapping[str, Any], vocabulary: Vocabulary, tags_params: Any) -> Tagger:
    """Build a tagger; errors are TaggerError (options), FileNotFoundError (weights) or ValueError."""
    if name not in TAGGERS:
        raise TaggerError(f"name: unknown tagger {name!r} (known: {', '.join(TAGGERS)})")
    if name == "illust2vec":
        return Illust2VecTagger(
            vocabulary, thresholds=tags_params.thresholds.model_dump(), batch_size=tags_params.batch_size,
            device=tags_params.device, **options,
        )  # fmt: skip
    return TAGGERS[name](vocabulary, **options)


def parse_attributes(raw: str) -> dict[str, Any]:
    return json.loads(raw) if raw else {}
