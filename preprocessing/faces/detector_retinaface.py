"""`retinaface`: RetinaFace with a MobileNetV1-0.25 backbone (the `mobilenet0.25_Final.pth` training of
biubug6/Pytorch_Retinaface, pinned as `retinaface_mobilenet025`: `twingan fetch retinaface_mobilenet025`),
for human faces, frontal to profile, on a CPU.

The network is written here (its layout is what the checkpoint's keys name; loading with strict=True
checks it): MobileNetV1 x0.25 in three stages (strides 8, 16, 32), an FPN to 64 channels, one SSH context
module per level and 1x1 heads for two square priors per cell. Input: BGR minus the per-channel means
(104, 117, 123), unscaled. Decoding uses the training's variances (0.1 for centres and landmarks, 0.2 for
log sizes). An independent training from YuNet's, so the two can check each other on hard images.

Points: eye, eye, nose, mouth corner, mouth corner; named by image x here, plus `mouth` (the middle of
the corners) for the alignment of turned heads, as in `yunet`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from preprocessing.faces.detector_yunet import _five_points, _fraction, _max_side, _shrink, _weights_path
from preprocessing.faces.detectors import Face, _as_rgb, _largest_first, _too_small, nms, register
from preprocessing.faces.weights import MODELS, WeightsDamaged, weights_file

WEIGHTS_MODEL = "retinaface_mobilenet025"
WEIGHTS_NAME = "mobilenet0.25_Final.pth"
MEANS_BGR = (104.0, 117.0, 123.0)
STRIDES = (8, 16, 32)
PRIOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)
LEAKY = 0.1  # the training's slope for out_channels <= 64 (backbone, FPN and SSH)


def _network() -> Any:
    """RetinaFace(cfg_mnet) as a torch module, its parameters named as in the checkpoint."""
    import torch
    from torch import nn
    from torch.nn import functional

    class Pointwise(nn.Conv2d):
        """A 1x1 convolution computed as a matrix product. oneDNN, which runs torch's float32 convolutions,
        picks its 1x1 algorithm by the thread count: the same image gave boxes differing in the last bits
        with 1 and 2 threads (dask workers run one). The product gave the same bits with 1 to 8 threads,
        and less time lost to waiting threads on a busy machine."""

        def __init__(self, cin: int, cout: int, bias: bool) -> None:
            super().__init__(cin, cout, 1, bias=bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch, channels, height, width = x.shape
            out = torch.matmul(self.weight.view(self.out_channels, channels), x.reshape(batch, channels, -1))
            if self.bias is not None:
                out = out + self.bias.view(1, -1, 1)
            return out.view(batch, self.out_channels, height, width)

    def conv_bn(cin: int, cout: int, stride: int = 1, leaky: float | None = LEAKY, kernel: int = 3) -> nn.Sequential:
        conv = Pointwise(cin, cout, bias=False) if kernel == 1 else nn.Conv2d(cin, cout, kernel, stride, 1, bias=False)
        layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout)]
        if leaky is not None:
            layers.append(nn.LeakyReLU(negative_slope=leaky))
        return nn.Sequential(*layers)

    def conv_dw(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.LeakyReLU(negative_slope=LEAKY),
            Pointwise(cin, cout, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(negative_slope=LEAKY),
        )

    class Backbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stage1 = nn.Sequential(
                conv_bn(3, 8, 2),
                conv_dw(8, 16, 1),
                conv_dw(16, 32, 2),
                conv_dw(32, 32, 1),
                conv_dw(32, 64, 2),
                conv_dw(64, 64, 1),
            )
            self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
            self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            c1 = self.stage1(x)
            c2 = self.stage2(c1)
            return [c1, c2, self.stage3(c2)]

    class FPN(nn.Module):
        def __init__(self, channels: tuple[int, int, int], out: int) -> None:
            super().__init__()
            self.output1 = conv_bn(channels[0], out, kernel=1)
            self.output2 = conv_bn(channels[1], out, kernel=1)
            self.output3 = conv_bn(channels[2], out, kernel=1)
            self.merge1 = conv_bn(out, out)
            self.merge2 = conv_bn(out, out)

        def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
            p1, p2, p3 = self.output1(levels[0]), self.output2(levels[1]), self.output3(levels[2])
            p2 = self.merge2(p2 + functional.interpolate(p3, size=p2.shape[2:], mode="nearest"))
            p1 = self.merge1(p1 + functional.interpolate(p2, size=p1.shape[2:], mode="nearest"))
            return [p1, p2, p3]

    class SSH(nn.Module):
        def __init__(self, cin: int, out: int) -> None:
            super().__init__()
            self.conv3X3 = conv_bn(cin, out // 2, leaky=None)
            self.conv5X5_1 = conv_bn(cin, out // 4)
            self.conv5X5_2 = conv_bn(out // 4, out // 4, leaky=None)
            self.conv7X7_2 = conv_bn(out // 4, out // 4)
            self.conv7x7_3 = conv_bn(out // 4, out // 4, leaky=None)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            five = self.conv5X5_1(x)
            seven = self.conv7x7_3(self.conv7X7_2(five))
            return functional.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(five), seven], dim=1))

    class Head(nn.Module):
        def __init__(self, cin: int, values: int, anchors: int = 2) -> None:
            super().__init__()
            self.values = values
            self.conv1x1 = Pointwise(cin, anchors * values, bias=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Cells row-major, then the cell's priors: the order `priors` builds.
            out = self.conv1x1(x).permute(0, 2, 3, 1)
            return out.reshape(out.shape[0], -1, self.values)

    class RetinaFace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = Backbone()
            self.fpn = FPN((64, 128, 256), 64)
            self.ssh1, self.ssh2, self.ssh3 = SSH(64, 64), SSH(64, 64), SSH(64, 64)
            self.ClassHead = nn.ModuleList([Head(64, 2) for _ in STRIDES])
            self.BboxHead = nn.ModuleList([Head(64, 4) for _ in STRIDES])
            self.LandmarkHead = nn.ModuleList([Head(64, 10) for _ in STRIDES])

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            levels = self.fpn(self.body(x))
            features = [self.ssh1(levels[0]), self.ssh2(levels[1]), self.ssh3(levels[2])]
            loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features, strict=True)], dim=1)
            conf = torch.cat([head(f) for head, f in zip(self.ClassHead, features, strict=True)], dim=1)
            landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features, strict=True)], dim=1)
            return loc, functional.softmax(conf, dim=-1), landmarks

    return RetinaFace()


def priors(height: int, width: int) -> np.ndarray:
    """(N, 4) prior boxes cx, cy, w, h as fractions of the image: stride 8 first, cells row-major, then
    the cell's two sizes; feature maps are ceil(side / stride), as the stride-2 convolutions give."""
    rows = []
    for stride, sizes in zip(STRIDES, PRIOR_SIZES, strict=True):
        cells_y, cells_x = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(cells_y), np.arange(cells_x), indexing="ij")
        cx = (xs.reshape(-1, 1) + 0.5) * stride / width
        cy = (ys.reshape(-1, 1) + 0.5) * stride / height
        for_sizes = [
            np.concatenate([cx, cy, np.full_like(cx, size / width), np.full_like(cy, size / height)], axis=1)
            for size in sizes
        ]
        rows.append(np.stack(for_sizes, axis=1).reshape(-1, 4))
    return np.concatenate(rows, axis=0)


def decode(loc: np.ndarray, landmarks: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4: x0, y0, x1, y1) and points (N, 5, 2), as fractions of the image."""
    centre = prior[:, :2] + loc[:, :2] * VARIANCES[0] * prior[:, 2:]
    size = prior[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    points = prior[:, None, :2] + landmarks.reshape(-1, 5, 2) * VARIANCES[0] * prior[:, None, 2:]
    return boxes, points


def _state_dict(path: Any, torch: Any) -> dict[str, Any]:
    """The checkpoint's tensors, without the `module.` prefix DataParallel training leaves on keys."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only refusals all mean: not this checkpoint
        raise WeightsDamaged(
            f"detector weights {path}: torch cannot read it ({type(error).__name__}: {error})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsDamaged(f"detector weights {path}: not a state dict (a {type(state).__name__})")
    return {key.removeprefix("module."): value for key, value in state.items()}


@register("retinaface")
class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25 on the CPU with torch.

    Options: `score_threshold` (keep faces whose face probability is at least this, 0-1), `nms_threshold`
    (IoU above which the lower-scoring box is dropped; 0.4 as trained), `max_side` (detect on a copy whose
    long side is at most this, 0: never; 640, where it was measured) and `weights` (a checkpoint of your own
    with the same layout).
    """

    name: str

    def __init__(
        self, score_threshold: float = 0.8, nms_threshold: float = 0.4, max_side: int = 640, weights: str = ""
    ) -> None:
        import cv2
        import torch

        self.score_threshold = _fraction("score_threshold", score_threshold, low=0.0, high=1.0)
        self.nms_threshold = _fraction("nms_threshold", nms_threshold, low=0.0, high=1.0)
        self.max_side = _max_side(max_side)
        _weights_path(weights, "RetinaFace")
        self.weights = weights
        resolved = weights_file(WEIGHTS_MODEL, WEIGHTS_NAME, weights)
        network = _network()
        try:
            network.load_state_dict(_state_dict(resolved.path, torch), strict=True)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise WeightsDamaged(
                f"detector weights {resolved.path}: not a RetinaFace MobileNet-0.25 ({first})"
            ) from None
        self._network = network.eval()
        self._torch = torch
        self.version = (
            f"torch-{torch.__version__}/opencv-{cv2.__version__}/retinaface-mnet025/{resolved.tag}"
            f"/st{self.score_threshold:g}/nms{self.nms_threshold:g}/ms{self.max_side}"
        )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        torch = self._torch
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        small, fx, fy = _shrink(rgb, self.max_side)
        height, width = small.shape[:2]
        bgr = small[:, :, ::-1].astype(np.float32) - np.array(MEANS_BGR, dtype=np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            loc, conf, landmarks = self._network(tensor)
        scores = conf[0, :, 1].numpy().astype(np.float64)
        chosen = np.flatnonzero(scores >= self.score_threshold)
        if not chosen.size:
            return []
        prior = priors(height, width)[chosen]
        boxes, points = decode(
            loc[0].numpy()[chosen].astype(np.float64), landmarks[0].numpy()[chosen].astype(np.float64), prior
        )
        boxes *= np.array([width * fx, height * fy, width * fx, height * fy])
        points *= np.array([width * fx, height * fy])
        faces = []
        for i in nms(boxes, scores[chosen], self.nms_threshold):
            x0, y0, x1, y1 = (float(v) for v in boxes[i])
            faces.append(Face(box=(x0, y0, x1, y1), score=float(scores[chosen[i]]), landmarks=_five_points(points[i])))
        return _largest_first(faces)


assert WEIGHTS_NAME in {file.name for file in MODELS[WEIGHTS_MODEL].files}, "the RetinaFace file is pinned"
