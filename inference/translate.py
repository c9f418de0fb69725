"""Translating raw photos with the trained Twin-GAN: detect every face, align it, translate, paste back.

A face must reach the model framed exactly as its training crops were, or the shared encoder sees
something it never learnt. The model file records, per domain, the detector, its options and the `align`
spec the faces stage used (training/model_file.py), so inference builds the same detector and the same
alignment (`preprocessing.faces.align.align_face`) without the params file. Crops are warped at the
spec's size, as the faces stage stored them, then brought to the model's resolution by the training
loader's own resize (`training.data.to_images`: area averaging for integer factors), so the pixels
match what training read.

Faces of many photos share one batch (a group photo and the next portraits fill it), which is what
keeps a GPU busy; on a CPU the 128 px layers are memory-bound and a batch of 4 is fastest
(core/devices.py). Detection is most of the work on a CPU, so photos' faces are found in worker
processes while this one runs the model (inference/photo_faces.py; benchmarks/translate.py measures it
against a per-face loop). The networks use instance normalisation, so a
face's translation does not depend on its batch mates (to float32 rounding). A photo that cannot be
read, or in which the detector finds no face, is reported in its result and skipped: one bad file never
stops a run.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.devices import inference_batch_size, resolve_device
from core.errors import UsageError
from inference.paste import DEFAULT_FEATHER, paste_faces
from inference.photo_faces import AlignedFace, FaceFinder, FacePool, PhotoFaces, find_faces, model_threads
from training.conditioning import condition_vector
from training.data import to_images
from training.model_file import ModelInfo, load_model
from training.networks import TwinGAN
from training.samples import to_uint8

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
ILLUST2VEC_FEATURE_MODEL = "illust2vec_ver200.caffemodel"
ILLUST2VEC_TAG_LIST = "tag_list.json"
STAGES = ("load", "detect", "align", "translate", "paste")


def collect_photos(arguments: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for image files, globs expanded; in argument order,
    sorted within a folder or glob, each path once. An argument that names nothing is kept as it is, so
    the run reports it as unreadable rather than dropping it silently."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found.append(path)
        elif glob.has_magic(str(argument)):
            matches = sorted(Path(p) for p in glob.glob(str(argument), recursive=True))
            found += [p for p in matches if p.is_file()]
            if not matches:
                log.warning("%s: no file matches this pattern", argument)
        else:
            found.append(path)
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class TranslatedFace:
    index: int
    box: tuple[float, float, float, float]
    score: float
    matrix: np.ndarray  # photo -> portrait pixels (invert it to paste)
    portrait: np.ndarray  # (resolution, resolution, 3) uint8 RGB
    crop: np.ndarray | None = None  # the face as it went in, cut as the training crops were (align size)


@dataclass
class PhotoResult:
    """What became of one photo: its translated faces, the pasted photo if asked, or why it was skipped."""

    source: Path
    faces: list[TranslatedFace] = field(default_factory=list)
    pasted: np.ndarray | None = None
    skipped: str | None = None  # "no face: ..." or "unreadable: ..."
    size: tuple[int, int] | None = None  # (width, height)


@dataclass
class StageTimes:
    """Seconds spent per stage over a run (for the benchmark and the summary)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - started
        return now


@dataclass(frozen=True)
class Reference:
    """The condition read off a reference picture of the target domain."""

    tags: tuple[str, ...]
    features: np.ndarray | None  # illust2vec features, when the model takes them
    detail: str  # what was found, for the log


@dataclass
class _Pending:
    """A photo whose faces are waiting for the model."""

    result: PhotoResult
    photo: np.ndarray | None
    faces: list[AlignedFace]
    portraits: dict[int, np.ndarray] = field(default_factory=dict)


class Translator:
    """A trained Twin-GAN set up for one direction (source -> target), with the source's detector."""

    def __init__(
        self,
        model: TwinGAN,
        info: ModelInfo,
        *,
        source: str = "human",
        target: str = "anime",
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        path: Path | str = "the model file",
        feather: float = DEFAULT_FEATHER,
    ) -> None:
        for name, domain in (("source", source), ("target", target)):
            if domain not in info.config.domains:
                raise UsageError(f"{name} domain {domain!r}: {path} knows only {', '.join(info.config.domains)}")
        self.device = resolve_device(device)
        batch_size = inference_batch_size(batch_size, self.device, cuda=16, cpu=4)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.info, self.source, self.target, self.path = info, source, target, Path(path)
        self.batch_size, self.feather = batch_size, feather
        self.spec = info.faces_of(source, self.path)  # fails now, not after the first photo
        self.finder = FaceFinder(self.spec, self.resolution)
        self.times = StageTimes()

    @classmethod
    def from_file(
        cls,
        path: Path | str,
        source: str = "human",
        target: str = "anime",
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        feather: float = DEFAULT_FEATHER,
    ) -> Translator:
        model, info = load_model(path, "cpu")
        return cls(model, info, source=source, target=target, device=device, batch_size=batch_size, path=path,
                   feather=feather)  # fmt: skip

    @property
    def resolution(self) -> int:
        return self.info.config.resolution

    @property
    def detector(self) -> Any:
        """The source domain's detector, built on first use (loading dlib's models takes a moment)."""
        return self.finder.detector

    def faces_in(self, rgb: np.ndarray) -> list[AlignedFace]:
        """Every face the source domain's detector finds in an HxWx3 uint8 photo, aligned as in training."""
        seconds: dict[str, float] = {}
        faces = self.finder.faces_in(rgb, seconds)
        self._count(seconds)
        return faces

    @contextlib.contextmanager
    def threads_beside(self, workers: int) -> Iterator[int]:
        """Within the block, a model on the CPU runs on the cores `workers` face-finding processes leave
        (inference/photo_faces.py `model_threads`), then torch's thread count is put back; yields the count
        the model runs with."""
        threads = torch.get_num_threads()
        if workers and self.device.type == "cpu":
            torch.set_num_threads(model_threads(workers))
        try:
            yield torch.get_num_threads()
        finally:
            torch.set_num_threads(threads)

    def _count(self, seconds: Mapping[str, float]) -> None:
        for stage, value in seconds.items():
            self.times.seconds[stage] += value

    # ------------------------------------------------------------------------------------- the model

    @property
    def typical_tags(self) -> tuple[str, ...]:
        """The target's training faces' most common tags: what a translation asked for none is conditioned on."""
        return tuple(self.info.typical_tags.get(self.target, ())) if self.info.config.tag_dim else ()

    def condition_text(self, tags: Sequence[str] = (), features: np.ndarray | None = None) -> str:
        """What `condition(tags, features)` conditions on, for a log line or the demo's status."""
        if tags:
            return ", ".join(tags)
        if features is None and self.typical_tags:
            return f"the typical {self.target} tags ({', '.join(self.typical_tags)})"
        return "no tags"

    def condition(self, tags: Iterable[str] = (), features: np.ndarray | None = None) -> torch.Tensor | None:
        """One condition row (1, condition_dim) for the target domain; unknown tags raise UnknownTagError. No
        tags and no features: the target's typical tags (ModelInfo.typical_tags), as a training condition is."""
        config, vocabulary = self.info.config, self.info.vocabulary
        tags = tuple(tags)
        if not tags and features is None:
            tags = self.typical_tags
        return condition_vector(config, vocabulary, 1, tags=tags, features=features, device=self.device)

    @torch.inference_mode()
    def translate_tensor(self, images: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, R, R) in [-1, 1] -> (N, 3, R, R) translations (unclamped), in batches of batch_size."""
        outputs = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size].to(self.device)
            tags = None if condition is None else condition.expand(len(batch), -1)
            outputs.append(self.model.translate(batch, self.source, self.target, tags).float().cpu())
        if not outputs:
            return torch.empty(0, 3, self.resolution, self.resolution)
        return torch.cat(outputs)

    def translate_crops(self, crops: np.ndarray, condition: torch.Tensor | None = None) -> np.ndarray:
        """(N, S, S, 3) uint8 aligned crops -> (N, R, R, 3) uint8 portraits of the target domain."""
        if len(crops) == 0:
            return np.empty((0, self.resolution, self.resolution, 3), np.uint8)
        images = to_images(np.ascontiguousarray(crops), self.resolution).contiguous()
        return to_uint8(self.translate_tensor(images, condition))

    # ------------------------------------------------------------------------------------ whole photos

    def translate_photos(
        self,
        photos: Iterable[Path | str],
        *,
        tags: Iterable[str] = (),
        features: np.ndarray | None = None,
        paste: bool = False,
        workers: int | FacePool = 0,
    ) -> Iterator[PhotoResult]:
        """One result per photo, in order. Faces of consecutive photos fill each batch; a photo's result
        comes out once all its faces are translated (with `paste`, also the photo with them pasted in).
        `workers` > 0 (or a FacePool kept across calls) finds the faces in processes while this one runs
        the model (inference/photo_faces.py); the results are the same."""
        condition = self.condition(tags, features)
        waiting: list[_Pending] = []
        queue: list[tuple[_Pending, AlignedFace]] = []
        for found in find_faces(self.finder, map(Path, photos), keep_photo=paste, workers=workers):
            pending = self._pending(found)
            waiting.append(pending)
            queue += [(pending, face) for face in pending.faces]
            while len(queue) >= self.batch_size:
                self._run(queue[: self.batch_size], condition)
                del queue[: self.batch_size]
            yield from self._finished(waiting, paste)
        if queue:
            self._run(queue, condition)
        yield from self._finished(waiting, paste)

    def _pending(self, found: PhotoFaces) -> _Pending:
        self._count(found.seconds)
        result = PhotoResult(found.path, size=found.size, skipped=found.skipped)
        if found.skipped:
            log.warning("%s: skipped, %s", found.path, found.skipped)
        return _Pending(result, found.photo, found.faces)

    def _run(self, batch: Sequence[tuple[_Pending, AlignedFace]], condition: torch.Tensor | None) -> None:
        started = time.perf_counter()
        portraits = self.translate_crops(np.stack([face.crop for _, face in batch]), condition)
        for (pending, face), portrait in zip(batch, portraits, strict=True):
            pending.portraits[face.index] = portrait
        self.times.add("translate", started)

    def _finished(self, waiting: list[_Pending], paste: bool) -> Iterator[PhotoResult]:
        """Results of the leading photos whose faces are all translated, in input order."""
        while waiting and len(waiting[0].portraits) == len(waiting[0].faces):
            pending = waiting.pop(0)
            result = pending.result
            result.faces = [
                TranslatedFace(face.index, face.box, face.score, face.matrix, pending.portraits[face.index], face.crop)
                for face in pending.faces
            ]
            if paste and result.faces and pending.photo is not None:
                started = time.perf_counter()
                pairs = [(face.portrait, face.matrix) for face in result.faces]
                result.pasted = paste_faces(pending.photo, pairs, feather=self.feather)
                self.times.add("paste", started)
            yield result

    # ---------------------------------------------------------------------------------------- reference

    def reference(
        self,
        image: Path | str | np.ndarray,
        *,
        illust2vec: Path | str | None = None,
        palette: Any = None,
    ) -> Reference:
        """Tags (AnimeFace's hair and eye colours, named with the shared vocabulary) and, for a model that
        takes features, illust2vec features of a reference picture of the target domain (a character).

        The reference is cropped with the target domain's detector and alignment when the model file
        records them (the largest face), else used whole. `palette` is a preprocessing.tags.vocabulary
        Vocabulary (params `tags`), default the shipped colours; only names the model knows are used.
        """
        from preprocessing.images import DEFAULT_MAX_PIXELS, load_rgb

        rgb = np.asarray(load_rgb(Path(image), DEFAULT_MAX_PIXELS)) if not isinstance(image, np.ndarray) else image
        crop, face, where = rgb, None, f"the whole {rgb.shape[1]}x{rgb.shape[0]} image"
        spec = self.info.faces.get(self.target)
        if spec:
            finder = FaceFinder(spec, self.resolution)
            if finder.whole_pictures:
                crop = finder.whole(rgb).crop
                where += " (the model takes this domain's pictures whole, as crops)"
            elif found := finder.detector.detect(rgb):
                face = found[0]
                crop = finder.align(rgb, [face])[0].crop
                box = ", ".join(f"{v:.0f}" for v in face.box)
                where = f"the {self.target} face at ({box}) of {len(found)} found"
            else:
                where += f" ({spec['detector']} found no {self.target} face)"
        tags = self._reference_tags(face, palette)
        features = None
        if self.info.config.feature_dim > 0:
            features = illust2vec_features(crop, illust2vec)
        detail = f"{where}: tags {', '.join(tags) or '(none)'}" + (
            ", illust2vec features" if features is not None else ""
        )
        return Reference(tuple(tags), features, detail)

    def _reference_tags(self, face: Any, palette: Any) -> list[str]:
        """Hair and eye colour tags from the detector's measured colours (AnimeFace faces only)."""
        if face is None or "hair_color" not in face.attributes:
            return []
        from preprocessing.tags.taggers import AnimeFaceColorsTagger, FaceToTag

        vocabulary = model_palette(self.info.vocabulary, palette)
        if vocabulary is None:
            return []
        row = AnimeFaceColorsTagger(vocabulary).tag([FaceToTag("reference", b"", face.attributes, face.landmarks)])[0]
        return [tag for tag in row["tags"] if tag in self.info.vocabulary]


def model_palette(model_tags: Sequence[str], palette: Any = None) -> Any:
    """The colour vocabulary (preprocessing.tags.vocabulary.Vocabulary; default the shipped params' `tags`)
    cut down to the colours the model was conditioned on, so a measured colour is named with a tag the
    model knows; None when the model knows no hair colour or no eye colour."""
    from preprocessing.tags.vocabulary import Vocabulary, eye_tag, hair_tag

    if palette is None:
        from core.params import TagsParams

        palette = Vocabulary.from_params(TagsParams())
    known = set(model_tags)
    hair = _restrict(palette.hair, {name for name in palette.hair.names if hair_tag(name) in known})
    eyes = _restrict(palette.eyes, {name for name in palette.eyes.names if eye_tag(name) in known})
    if hair is None or eyes is None:
        return None
    return Vocabulary(hair=hair, eyes=eyes, other=palette.other)


def _restrict(full: Any, names: set[str]) -> Any:
    from preprocessing.tags.vocabulary import Palette

    rows = [i for i, name in enumerate(full.reference_names) if name in names]
    if not rows:
        return None
    kept = tuple(name for name in full.names if name in names)
    return Palette(kept, tuple(full.reference_names[i] for i in rows), full.reference_lab[rows])


def illust2vec_features(crop: np.ndarray, folder: Path | str | None) -> np.ndarray:
    """illust2vec's 4096-d feature of one picture, from the released files in `folder`
    (models/illust2vec by default); a missing file is named with the command that fetches it."""
    from preprocessing.tags.illust2vec import FETCH_HINT, Illust2Vec, Illust2VecWeightsMissing

    folder = Path(folder) if folder is not None else Path("models/illust2vec")
    for name in (ILLUST2VEC_FEATURE_MODEL, ILLUST2VEC_TAG_LIST):
        if not (folder / name).is_file():
            raise Illust2VecWeightsMissing(
                f"{folder / name}: missing; this model is conditioned on illust2vec features of the reference. "
                f"Run `{FETCH_HINT}` (or pass --illust2vec DIR with {ILLUST2VEC_FEATURE_MODEL} and "
                f"{ILLUST2VEC_TAG_LIST})"
            )
    model = Illust2Vec.from_files(tag_model=None, feature_model=folder / ILLUST2VEC_FEATURE_MODEL,
                                  tag_list=folder / ILLUST2VEC_TAG_LIST)  # fmt: skip
    with torch.inference_mode():
        return model.features(model.preprocess([crop]))[0].cpu().numpy().astype(np.float32)


def resize_portrait(portrait: np.ndarray, size: int | None) -> np.ndarray:
    """A portrait at `size` px (bicubic up, area down); unchanged when size is None or equal."""
    import cv2

    if size is None or size == portrait.shape[0]:
        return portrait
    if size < 1:
        raise UsageError(f"size must be a positive number of pixels, got {size}")
    interpolation = cv2.INTER_CUBIC if size > portrait.shape[0] else cv2.INTER_AREA
    return cv2.resize(portrait, (size, size), interpolation=interpolation)


# ------------------------------------------------------------------------------------ writing results


@dataclass
class TranslateSummary:
    """What a run over many photos did."""

    photos: int = 0
    faces: int = 0
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (photo, reason)

    def line(self, out: Path) -> str:
        """One line a person reads at the end of a run."""
        reasons: dict[str, int] = {}
        for _, reason in self.skipped:
            kind = reason.split(":", 1)[0]
            reasons[kind] = reasons.get(kind, 0) + 1
        skipped = ", ".join(f"{count} {kind}" for kind, count in sorted(reasons.items()))
        return (f"{self.photos} photo(s), {self.faces} face(s) translated, {len(self.written)} file(s) written to "
                f"{out}; skipped {len(self.skipped)}" + (f" ({skipped})" if skipped else ""))  # fmt: skip


def output_stems(photos: Sequence[Path]) -> dict[Path, str]:
    """<photo-stem> per photo, made unique (x, x-2, x-3 ...) when photos in different folders share a stem."""
    taken: set[str] = set()
    stems: dict[Path, str] = {}
    for photo in photos:
        stem, n = photo.stem, 1
        while stem in taken:
            n += 1
            stem = f"{photo.stem}-{n}"
        taken.add(stem)
        stems[photo] = stem
    return stems


def save_png(rgb: np.ndarray, path: Path) -> None:
    """Atomically; no timestamps or other metadata, so equal pixels give equal bytes."""
    from PIL import Image

    from core.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format="PNG")


def translate_to_folder(
    translator: Translator,
    photos: Sequence[Path],
    out: Path,
    *,
    tags: Iterable[str] = (),
    features: np.ndarray | None = None,
    paste: bool = False,
    size: int | None = None,
    progress: bool = True,
    workers: int = 0,
    sheet: Path | None = None,
) -> TranslateSummary:
    """Translate `photos` into `out`: <stem>-face<k>.png per face (k in the detector's order, largest
    first) and, with `paste`, <stem>-pasted.png; every file written atomically. `sheet`: also one picture of
    every photo's largest face beside its translation (a results figure, e.g. for the README)."""
    from tqdm import tqdm

    stems, summary = output_stems(photos), TranslateSummary()
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    results = translator.translate_photos(photos, tags=tags, features=features, paste=paste, workers=workers)
    with tqdm(total=len(photos), desc="translate", unit="photo", disable=None if progress else True) as bar:
        for result in results:
            summary.photos += 1
            bar.update(1)
            if result.skipped:
                summary.skipped.append((result.source, result.skipped))
                continue
            stem = stems[result.source]
            for face in result.faces:
                path = out / f"{stem}-face{face.index}.png"
                save_png(resize_portrait(face.portrait, size), path)
                summary.written.append(path)
                summary.faces += 1
            if sheet is not None and result.faces and result.faces[0].crop is not None:
                largest = result.faces[0]
                side = size or max(largest.portrait.shape[0], 64)
                pairs.append((resize_portrait(largest.crop, side), resize_portrait(largest.portrait, side)))
            if result.pasted is not None:
                path = out / f"{stem}-pasted.png"
                save_png(result.pasted, path)
                summary.written.append(path)
            log.info("%s: %d face(s) -> %s", result.source, len(result.faces), out / f"{stem}-*.png")
    if sheet is not None:
        save_png(results_sheet(pairs), sheet)
        summary.written.append(sheet)
        log.info("%d photo(s) beside their translations -> %s", len(pairs), sheet)
    return summary


def results_sheet(pairs: Sequence[tuple[np.ndarray, np.ndarray]], columns: int = 8, pad: int = 2) -> np.ndarray:
    """Photos' faces above their translations, `columns` per row pair, white between: the results figure."""
    if not pairs:
        raise UsageError("no face was translated, so there is no results sheet to draw")
    side = pairs[0][0].shape[0]
    rows = -(-len(pairs) // columns)
    width = min(columns, len(pairs))
    out = np.full((rows * 2 * (side + pad) + pad + (rows - 1) * 2 * pad, width * (side + pad) + pad, 3), 255, np.uint8)
    for i, (photo, portrait) in enumerate(pairs):
        row, column = divmod(i, columns)
        top = pad + row * (2 * (side + pad) + 2 * pad)
        left = pad + column * (side + pad)
        out[top : top + side, left : left + side] = photo
        out[top + side + pad : top + 2 * side + pad, left : left + side] = portrait
    return out


__all__ = [
    "AlignedFace",
    "PhotoResult",
    "Reference",
    "StageTimes",
    "TranslateSummary",
    "TranslatedFace",
    "Translator",
    "collect_photos",
    "illust2vec_features",
    "model_palette",
    "output_stems",
    "resize_portrait",
    "results_sheet",
    "save_png",
    "translate_to_folder",
]


@dataclass(frozen=True)
class UserSettings:
    """What a user's params file says about photos from outside the pipeline: the colour vocabulary that names
    a reference's colours (`tags`), and the pixel bound (`ingest.max_pixels`); the shipped defaults where
    there is no params file."""

    palette: Any  # preprocessing.tags.vocabulary.Vocabulary
    max_pixels: int

    @classmethod
    def from_params(cls, path: Path) -> UserSettings:
        from core.params import IngestParams, TagsParams, load_params
        from preprocessing.tags.vocabulary import Vocabulary

        loaded = load_params(path).params if Path(path).is_file() else None
        tags = loaded.tags if loaded else TagsParams()
        ingest = loaded.ingest if loaded else IngestParams()
        return cls(palette=Vocabulary.from_params(tags), max_pixels=ingest.max_pixels)


def run_translate(
    photos: Sequence[str],
    out: Path,
    *,
    model: Path,
    source: str,
    target: str,
    tags: str | None = None,
    reference: Path | None = None,
    illust2vec: Path | None = None,
    paste: bool = False,
    batch_size: int | None = None,
    device: str = "auto",
    size: int | None = None,
    workers: int | None = None,
    params: Path = Path("params.yaml"),
    sheet: Path | None = None,
) -> TranslateSummary:
    """`twingan translate`: load, condition (tags, and a reference's colours and features), collect the photos,
    translate them into `out`. Unknown tags fail before any photo is read."""
    from inference.photo_faces import default_workers
    from training.conditioning import parse_tags

    translator = Translator.from_file(model, source=source, target=target, device=device, batch_size=batch_size)
    wanted, features = parse_tags(tags), None
    if reference is not None:
        found = translator.reference(reference, illust2vec=illust2vec, palette=UserSettings.from_params(params).palette)
        log.info("reference %s: %s", reference, found.detail)
        wanted, features = list(dict.fromkeys([*found.tags, *wanted])), found.features
    translator.condition(wanted, features)
    files = collect_photos(photos)
    if not files:
        raise UsageError(f"no photos found in: {', '.join(map(str, photos))}")
    workers = default_workers(len(files)) if workers is None else workers
    with translator.threads_beside(workers) as threads:  # the workers' cores are not the model's
        log.info("%d photo(s), %s -> %s, tags: %s, on %s, %d face-finding worker(s), %d model thread(s); model %s: "
                 "profile %s, step %d, %d px", len(files), source, target, translator.condition_text(wanted, features),
                 translator.device, workers, threads, translator.path, translator.info.profile, translator.info.step,
                 translator.resolution)  # fmt: skip
        return translate_to_folder(translator, files, out, tags=wanted, features=features, paste=paste, size=size,
                                   workers=workers, sheet=sheet)  # fmt: skip
