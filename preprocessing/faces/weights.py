"""Detector weights: files the user fetches once (`twingan fetch <model>`), never downloaded at run time.

Each model is pinned here: where it comes from (a raw URL at a fixed commit), each file's SHA-256 and size,
and its licence, said plainly where none is stated. Detectors ask `weights_file(model, name)` for a path.
Files live in `<weights dir>/<model>/<name>`; the weights dir is $TWINGAN_DETECTOR_WEIGHTS when set, else
`models/detectors` under the working directory (the project root, for stages). A detector option `weights`
may name another file (a user's own fine-tune): it is used as it is, and its digest is recorded like any.
A pinned file whose bytes differ from the pin is refused: a truncated download must not detect quietly.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

WEIGHTS_ENV = "TWINGAN_DETECTOR_WEIGHTS"
DEFAULT_DIR = Path("models") / "detectors"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsFile:
    name: str
    url: str
    sha256: str
    size: int


@dataclass(frozen=True)
class DetectorWeights:
    model: str
    files: tuple[WeightsFile, ...]
    licence: str | None  # None: the source states no licence (all rights reserved by default)
    source: str  # repository and commit, for the model card and `twingan fetch --list`
    note: str = ""


def _raw(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_YUNET = ("ShiqiYu/libfacedetection.train", "0047ac24afb1a50a0c6105001c89d1b5b805dbf1")
_RETINA = ("m2man/Pytorch_Retinaface", "aa00934b860abc93fcdbc3bccfa0fd4260c2fd2c")
_BOXES = ("WynMew/AnimeFaceBoxes", "025b5e0a265e971d03cf850d67a52dad2ab392c6")
_LBP = ("nagadomi/lbpcascade_animeface", "4433ab1ae1166ea75acfe99eb0f18709dac329a0")
_AFD = ("marron-akanishi/AFD", "6475a136ee16a79e6ceef88ac3f3a8b31fad7863")
_CATFD = ("marando/pycatfd", "de7efacb196fb6431fc0f2a2c400bd5890fba8a6")
_YOLOX = ("Bigisland1729/object-detection-models", "7f3f2fa34b351e3d2af150893458106ad3f3a84f")

MODELS: dict[str, DetectorWeights] = {
    "yunet": DetectorWeights(
        "yunet",
        (
            WeightsFile(
                "yunet_n_640_640.onnx",
                _raw(*_YUNET, "onnx/yunet_n_640_640.onnx"),
                "25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31",
                317_466,
            ),
            WeightsFile(
                "yunet_s_640_640.onnx",
                _raw(*_YUNET, "onnx/yunet_s_640_640.onnx"),
                "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                232_589,
            ),
        ),
        "Apache-2.0",
        f"github.com/{_YUNET[0]} @ {_YUNET[1][:8]}",
        "trained on WIDER FACE, a research-use dataset",
    ),
    "retinaface_mobilenet025": DetectorWeights(
        "retinaface_mobilenet025",
        (
            WeightsFile(
                "mobilenet0.25_Final.pth",
                _raw(*_RETINA, "weights/mobilenet0.25_Final.pth"),
                "38ec7bb3c9cbfe2f40edabc05fab970a6d648747cbc534092be85d5eb9b37ed0",
                1_789_735,
            ),
        ),
        "MIT",
        f"github.com/{_RETINA[0]} @ {_RETINA[1][:8]}",
        "a fork of biubug6/Pytorch_Retinaface; trained on WIDER FACE, a research-use dataset",
    ),
    "animefaceboxes": DetectorWeights(
        "animefaceboxes",
        (
            WeightsFile(
                "FaceBoxes_epoch_90.pth",
                _raw(*_BOXES, "FaceBoxes_epoch_90.pth"),
                "070575e4ad821841dbed3b2824fb5ceabb3b5fed1ec743f6f09f8b4a019b4021",
                4_074_580,
            ),
        ),
        "Apache-2.0",
        f"github.com/{_BOXES[0]} @ {_BOXES[1][:8]}",
        "trained on danbooru2018 illustrations, whose artwork belongs to its artists",
    ),
    "lbpcascade_animeface": DetectorWeights(
        "lbpcascade_animeface",
        (
            WeightsFile(
                "lbpcascade_animeface.xml",
                _raw(*_LBP, "lbpcascade_animeface.xml"),
                "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30",
                246_945,
            ),
        ),
        "MIT",
        f"github.com/{_LBP[0]} @ {_LBP[1][:8]}",
        "stated in the XML's header comment",
    ),
    "afd_anime_hog": DetectorWeights(
        "afd_anime_hog",
        (
            WeightsFile(
                "detector_face.svm",
                _raw(*_AFD, "detector_face.svm"),
                "dbd47d5cb2542b5bbcfd6f09d689d411b986091e258b7aa2f0d4839a3adc4d9c",
                44_697,
            ),
        ),
        None,
        f"github.com/{_AFD[0]} @ {_AFD[1][:8]}",
    ),
    "pycatfd": DetectorWeights(
        "pycatfd",
        (
            WeightsFile(
                "detector.svm",
                _raw(*_CATFD, "data/detector.svm"),
                "20f19201b36dc1b240471ecca36e6328efcb490ee008b39fdf48c7406950f451",
                52_442,
            ),
            WeightsFile(
                "predictor.dat",
                _raw(*_CATFD, "data/predictor.dat"),
                "24f2f14faec2b2cbfe900ed72a4e833b1f1e85dada59fd354e03087793e2f221",
                2_235_091,
            ),
        ),
        None,
        f"github.com/{_CATFD[0]} @ {_CATFD[1][:8]}",
    ),
    "yolox_nano_coco": DetectorWeights(
        "yolox_nano_coco",
        (
            WeightsFile(
                "yolox_nano.onnx",
                _raw(*_YOLOX, "yolox_nano.onnx"),
                "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd",
                3_678_356,
            ),
        ),
        None,
        f"github.com/{_YOLOX[0]} @ {_YOLOX[1][:8]}",
        "no licence file in that repository (YOLOX itself is Apache-2.0); provenance of these bytes unverified",
    ),
}


class WeightsMissing(UserError, FileNotFoundError):
    """A detector's weights file is absent: the message names the file and the command that fetches it."""


class WeightsDamaged(UserError, ValueError):
    """A fetched weights file whose bytes differ from its pin."""


def licence_text(model: DetectorWeights) -> str:
    if model.licence is None:
        return "no licence stated (all rights reserved by default: ask the author before redistributing)"
    return model.licence


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or DEFAULT_DIR)


def pinned(model: str, name: str) -> WeightsFile:
    try:
        entry = MODELS[model]
    except KeyError:
        raise KeyError(f"no pinned detector weights {model!r} (known: {', '.join(sorted(MODELS))})") from None
    for file in entry.files:
        if file.name == name:
            return file
    raise KeyError(f"{model} has no file {name!r} (files: {', '.join(f.name for f in entry.files)})")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    sha256: str

    @property
    def tag(self) -> str:
        """For a detector's version string: the file and the start of its digest."""
        return f"{self.path.name}@{self.sha256[:12]}"


def weights_file(model: str, name: str, override: str | os.PathLike[str] = "") -> ResolvedWeights:
    """The weights file a detector loads, checked: its pin (when fetched) or the user's own file."""
    if override:
        path = Path(override)
        if not path.is_file():
            raise WeightsMissing(f"detector weights {path}: no such file (the detector's 'weights' option)")
        return ResolvedWeights(path, sha256_of(path))
    pin = pinned(model, name)
    path = weights_dir() / model / name
    if not path.is_file():
        raise WeightsMissing(
            f"detector weights {path}: not found; fetch them with `twingan fetch {model}` "
            f"(licence: {licence_text(MODELS[model])}), or set {WEIGHTS_ENV} to a folder holding {model}/{name}"
        )
    digest = sha256_of(path)
    if digest != pin.sha256:
        raise WeightsDamaged(
            f"detector weights {path}: sha256 {digest[:12]}... is not the pinned {pin.sha256[:12]}...; "
            f"fetch them again with `twingan fetch {model}`"
        )
    return ResolvedWeights(path, digest)
