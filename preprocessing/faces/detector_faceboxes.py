"""`animefaceboxes`: FaceBoxes (Zhang et al. 2017) trained on anime heads by WynMew/AnimeFaceBoxes, run with
PyTorch on the CPU. The network, priors, decoding and NMS are written here from the model's README
(../shared/models/animefaceboxes/README.md); the weights are the pinned `FaceBoxes_epoch_90.pth`
(`twingan fetch animefaceboxes`).

What it finds: anime/illustration heads. The box covers face and hair (wider and higher than AnimeFace's
face box: crop with a smaller margin, or take option `box: face`). Boxes only, no landmarks. It finds faces
in full illustrations that AnimeFace misses and is much cheaper on large pictures, but misses faces that
fill a small picture (tight face crops): a first stage of a `fallback` chain, not a sole detector.

Score: the softmax face probability (0-1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from preprocessing.faces.detectors import (
    Face,
    _as_rgb,
    _distribution_version,
    _integer,
    _largest_first,
    _too_small,
    nms,
    register,
)
from preprocessing.faces.weights import WeightsDamaged, weights_file

MODEL = "animefaceboxes"
WEIGHTS_FILE = "FaceBoxes_epoch_90.pth"
MEAN_BGR = (104.0, 117.0, 123.0)
STEPS = (32, 64, 128)
MIN_SIZES = ((32, 64, 128), (256,), (512,))
# Prior centres per cell, as offsets in cells: size 32 is densified 4x4, 64 2x2, the rest once.
DENSE_OFFSETS = {32: (0.0, 0.25, 0.5, 0.75), 64: (0.0, 0.5)}
VARIANCES = (0.1, 0.2)
PRE_NMS_TOP_K = 5000  # the repo's eval keeps the 5000 best before NMS and 750 after
POST_NMS_TOP_K = 750
# `box: face`: the head box turned into the face box AnimeFace would give, so one domain's `align` (margin and
# shift tuned for AnimeFace) frames both alike in a fallback chain. Medians over the faces both detectors
# found in the shared real anime art: the head box is 1.7x as wide and its centre 0.3 face widths higher.
HEAD_PER_FACE = 1.7
FACE_CENTRE_BELOW = 0.3
BOX_KINDS = ("head", "face")


def priors(height: int, width: int) -> np.ndarray:
    """(N, 4) priors (cx, cy, w, h), normalised by the image size, in the order of the network's outputs:
    step 32 first, cells row-major, per cell each min size in order, dense centres y outer, x inner."""
    blocks = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        per_cell = []
        for size in sizes:
            offsets = np.array(DENSE_OFFSETS.get(size, (0.5,)))
            dy, dx = np.meshgrid(offsets, offsets, indexing="ij")  # y outer, x inner
            per_cell.append(np.stack([dx.ravel(), dy.ravel(), np.full(dx.size, float(size))], axis=1))
        cell = np.concatenate(per_cell)  # (priors per cell, 3): x offset, y offset, size
        row, col = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64), indexing="ij")
        cx = (col.reshape(-1, 1) + cell[None, :, 0]) * step / width
        cy = (row.reshape(-1, 1) + cell[None, :, 1]) * step / height
        w = np.broadcast_to(cell[None, :, 2] / width, cx.shape)
        h = np.broadcast_to(cell[None, :, 2] / height, cx.shape)
        blocks.append(np.stack([cx, cy, w, h], axis=-1).reshape(-1, 4))
    return np.concatenate(blocks)


def decode(loc: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Regression outputs (N, 4) to normalised corner boxes (x0, y0, x1, y1) with the SSD variances."""
    centre = prior[:, :2] + loc[:, :2] * VARIANCES[0] * prior[:, 2:]
    size = prior[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def face_boxes(heads: np.ndarray) -> np.ndarray:
    """Head boxes (N, 4) to AnimeFace-like face boxes: narrower by HEAD_PER_FACE, same aspect, moved down."""
    centre = (heads[:, :2] + heads[:, 2:]) / 2
    size = (heads[:, 2:] - heads[:, :2]) / HEAD_PER_FACE
    centre[:, 1] += FACE_CENTRE_BELOW * size[:, 0]
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def build_network() -> Any:
    """FaceBoxes in test phase, two classes; parameter names match the released state_dict."""
    import torch
    from torch import nn
    from torch.nn import functional

    class ConvBn(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=1e-5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return functional.relu(self.bn(self.conv(x)))

    class CRelu(ConvBn):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.bn(self.conv(x))
            return functional.relu(torch.cat([x, -x], 1))

    class Inception(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.branch1x1 = ConvBn(128, 32, 1)
            self.branch1x1_2 = ConvBn(128, 32, 1)
            self.branch3x3_reduce = ConvBn(128, 24, 1)
            self.branch3x3 = ConvBn(24, 32, 3)
            self.branch3x3_reduce_2 = ConvBn(128, 24, 1)
            self.branch3x3_2 = ConvBn(24, 32, 3)
            self.branch3x3_3 = ConvBn(32, 32, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pooled = functional.avg_pool2d(x, 3, 1, 1)
            deep = self.branch3x3_3(self.branch3x3_2(self.branch3x3_reduce_2(x)))
            return torch.cat(
                [self.branch1x1(x), self.branch1x1_2(pooled), self.branch3x3(self.branch3x3_reduce(x)), deep], 1
            )

    class FaceBoxes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = CRelu(3, 24, 7, 4)
            self.conv2 = CRelu(48, 64, 5, 2)
            self.inception1, self.inception2, self.inception3 = Inception(), Inception(), Inception()
            self.conv3_1 = ConvBn(128, 128, 1)
            self.conv3_2 = ConvBn(128, 256, 3, 2)
            self.conv4_1 = ConvBn(256, 128, 1)
            self.conv4_2 = ConvBn(128, 256, 3, 2)
            channels, anchors = (128, 256, 256), (21, 1, 1)
            self.loc = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(channels, anchors, strict=True))
            self.conf = nn.ModuleList(nn.Conv2d(c, a * 2, 3, padding=1) for c, a in zip(channels, anchors, strict=True))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = functional.max_pool2d(self.conv1(x), 3, 2, 1)
            x = functional.max_pool2d(self.conv2(x), 3, 2, 1)
            first = self.inception3(self.inception2(self.inception1(x)))
            second = self.conv3_2(self.conv3_1(first))
            third = self.conv4_2(self.conv4_1(second))
            locs, confs = [], []
            for source, loc, conf in zip((first, second, third), self.loc, self.conf, strict=True):
                locs.append(loc(source).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4))
                confs.append(conf(source).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 2))
            return torch.cat(locs, 1), torch.softmax(torch.cat(confs, 1), dim=-1)

    return FaceBoxes()


def _unit_interval(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not 0 <= value <= 1:
        raise ValueError(f"option {name!r} must be a number from 0 to 1, got {value!r}")
    return float(value)


@register("animefaceboxes")
class AnimeFaceBoxesDetector:
    """FaceBoxes on anime heads (see the module docstring).

    Options: `score_threshold` (keep face probabilities at or above it; 0.5 is the setting measured in the
    model's README, without a non-face box), `nms_threshold` (IoU above which the weaker box is dropped; the
    repo's 0.3), `max_side` (detect on a copy whose longest side is at most this, 0: never; 1024, where the
    README measured it, bounds the cost of large pictures), `box` (head: the network's box, face and hair;
    face: that box turned into an AnimeFace-like face box, for chains with AnimeFace) and `weights` (a
    FaceBoxes state_dict of your own instead of the pinned file).
    """

    name: str

    def __init__(
        self,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        max_side: int = 1024,
        box: str = "head",
        weights: str = "",
    ) -> None:
        import torch

        self.score_threshold = _unit_interval("score_threshold", score_threshold)
        self.nms_threshold = _unit_interval("nms_threshold", nms_threshold)
        self.max_side = _integer("max_side", max_side, 0)
        if box not in BOX_KINDS:
            raise ValueError(f"option 'box' must be one of {', '.join(BOX_KINDS)}, got {box!r}")
        self.box = box
        if not isinstance(weights, str):
            raise ValueError(f"option 'weights' must be a path (empty: the pinned {WEIGHTS_FILE}), got {weights!r}")
        self.weights = weights
        resolved = weights_file(MODEL, WEIGHTS_FILE, weights)
        try:
            state = torch.load(resolved.path, map_location="cpu", weights_only=True)
        except Exception as error:  # a user's own file that is not a weights-only checkpoint
            raise WeightsDamaged(f"detector weights {resolved.path}: torch cannot read it ({error})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise WeightsDamaged(f"detector weights {resolved.path}: not a state_dict ({type(state).__name__})")
        state = {key.removeprefix("module."): value for key, value in state.items()}
        network = build_network()
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise WeightsDamaged(f"detector weights {resolved.path}: not FaceBoxes weights ({error})") from None
        self._network = network.eval()
        self._torch = torch
        self.version = (
            f"faceboxes/{resolved.tag}/torch-{_distribution_version('torch')}/st{self.score_threshold:g}"
            f"/nms{self.nms_threshold:g}/ms{self.max_side}" + ("/face" if box == "face" else "")
        )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        image = self._at_most(rgb)
        height, width = image.shape[:2]
        pixels = image[:, :, ::-1].astype(np.float32) - np.array(MEAN_BGR, np.float32)
        torch = self._torch
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]
            loc, conf = self._network(tensor)
        loc, scores = loc[0].numpy().astype(np.float64), conf[0, :, 1].numpy().astype(np.float64)
        prior = priors(height, width)
        if len(prior) != len(scores):  # the network and the prior layout disagree: a bug, never silent
            raise RuntimeError(f"FaceBoxes gave {len(scores)} outputs for {len(prior)} priors at {width}x{height}")
        keep = np.flatnonzero(scores >= self.score_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")][:PRE_NMS_TOP_K]
        # Normalised boxes times the source size: exact for a shrunken copy too, whatever its rounding.
        source_height, source_width = rgb.shape[:2]
        boxes = decode(loc[keep], prior[keep]) * np.array([source_width, source_height, source_width, source_height])
        kept = nms(boxes, scores[keep], self.nms_threshold)[:POST_NMS_TOP_K]
        if self.box == "face":
            boxes = face_boxes(boxes)
        kept_scores = scores[keep]
        faces = [
            Face(box=(float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3])),
                 score=float(kept_scores[i]), landmarks={})
            for i in kept
        ]  # fmt: skip
        return _largest_first(faces)

    def _at_most(self, rgb: np.ndarray) -> np.ndarray:
        """The image the network sees: a copy whose longest side is max_side, where the source is larger."""
        longest = max(rgb.shape[:2])
        if not self.max_side or longest <= self.max_side:
            return rgb
        import cv2

        factor = longest / self.max_side
        size = (max(1, round(rgb.shape[1] / factor)), max(1, round(rgb.shape[0] / factor)))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
