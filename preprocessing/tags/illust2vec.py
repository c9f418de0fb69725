"""illustration2vec (Saito & Matsui, 2015) in PyTorch, built from the released Caffe weights.

Why: illust2vec tags anime illustrations (1539 tags: general, character, copyright, rating) and embeds
them as 4096-d features, but its reference code needs Caffe or Chainer 1.x, neither of which installs
today. The nets are rebuilt layer by layer from the .caffemodel files themselves (read by
preprocessing.tags.caffe), so one generic graph serves the tag model, whose layer stack is known, and
the feature model, whose stack is not documented.

This module imports only torch, numpy and the standard library, so it also runs on GPU machines that
lack the pipeline's other dependencies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.errors import UserError
from preprocessing.tags.caffe import CaffeLayer, CaffeModelError, CaffeNet, read_caffemodel

MEAN_BGR = (164.76139251, 167.47864617, 181.13838569)  # i2v's per-channel image mean, B, G, R
INPUT_SIZE = 224
NUM_TAGS = 1539
CATEGORIES = {"general": (0, 512), "character": (512, 1024), "copyright": (1024, 1536), "rating": (1536, 1539)}
FETCH_HINT = "twingan fetch illust2vec"
TAG_LAYER = "conv6_4"  # tag logits, (N, 1539, 7, 7): probabilities are the sigmoid of their spatial mean
FEATURE_LAYER = "encode1"  # the 4096-d feature (an InnerProduct)
Pair = tuple[int, ...]  # (height, width)


class LayerSpec(NamedTuple):
    """A layer the tag model must have: its Caffe name, type and (for convolutions) output channels."""

    name: str
    type: str
    outputs: int | None = None


TAG_MODEL_SPEC: tuple[LayerSpec, ...] = (
    LayerSpec("conv1_1", "Convolution", 64),
    LayerSpec("relu1_1", "ReLU"),
    LayerSpec("pool1", "Pooling"),
    LayerSpec("conv2_1", "Convolution", 128),
    LayerSpec("relu2_1", "ReLU"),
    LayerSpec("pool2", "Pooling"),
    LayerSpec("conv3_1", "Convolution", 256),
    LayerSpec("relu3_1", "ReLU"),
    LayerSpec("conv3_2", "Convolution", 256),
    LayerSpec("relu3_2", "ReLU"),
    LayerSpec("pool3", "Pooling"),
    LayerSpec("conv4_1", "Convolution", 512),
    LayerSpec("relu4_1", "ReLU"),
    LayerSpec("conv4_2", "Convolution", 512),
    LayerSpec("relu4_2", "ReLU"),
    LayerSpec("pool4", "Pooling"),
    LayerSpec("conv5_1", "Convolution", 512),
    LayerSpec("relu5_1", "ReLU"),
    LayerSpec("conv5_2", "Convolution", 512),
    LayerSpec("relu5_2", "ReLU"),
    LayerSpec("pool5", "Pooling"),
    LayerSpec("conv6_1", "Convolution", 1024),
    LayerSpec("relu6_1", "ReLU"),
    LayerSpec("conv6_2", "Convolution", 1024),
    LayerSpec("relu6_2", "ReLU"),
    LayerSpec("conv6_3", "Convolution", 1024),
    LayerSpec("relu6_3", "ReLU"),
    LayerSpec("conv6_4", "Convolution", NUM_TAGS),
)


class Illust2VecWeightsMissing(UserError, FileNotFoundError):
    """A released illust2vec file is not on disk; the message says which and how to fetch it."""


# ------------------------------------------------------------------------------------------- layers


class _Conv(nn.Conv2d):
    """Caffe Convolution; the weights come from the file (built on the meta device: no random init)."""

    def __init__(self, layer: CaffeLayer, where: str) -> None:
        p = layer.params
        out, group, kernel = p["num_output"], p["group"], p["kernel"]
        _check_blob_count(layer, where)
        weight = layer.blobs[0]
        if weight.ndim != 4 or weight.shape[0] != out or tuple(weight.shape[2:]) != kernel or out % group:
            raise CaffeModelError(
                f"{where}: weight blob has shape {weight.shape}, but num_output {out}, kernel {kernel} and group"
                f" {group} need (out={out}, in/{group}, {kernel[0]}, {kernel[1]})"
            )
        _check_bias(layer, out, where)
        super().__init__(
            weight.shape[1] * group,
            out,
            kernel,
            stride=p["stride"],
            padding=p["pad"],
            dilation=p["dilation"],
            groups=group,
            bias=p["bias_term"],
            device="meta",
        )
        self.weight = nn.Parameter(torch.tensor(weight))
        if p["bias_term"]:
            self.bias = nn.Parameter(torch.tensor(layer.blobs[1]))
        self.where = where

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise CaffeModelError(f"{self.where}: needs (N, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        return super().forward(x)


class _InnerProduct(nn.Linear):
    """Caffe InnerProduct: the input is flattened from `axis` on; a transposed weight is stored (in, out)."""

    def __init__(self, layer: CaffeLayer, where: str) -> None:
        p = layer.params
        out = p["num_output"]
        _check_blob_count(layer, where)
        weight = layer.blobs[0]
        if p["transpose"] and weight.ndim == 2:
            weight = weight.T
        if weight.ndim != 2 or weight.shape[0] != out:
            raise CaffeModelError(
                f"{where}: weight blob has shape {layer.blobs[0].shape}, but num_output {out} needs"
                f" {'(in, out)' if p['transpose'] else '(out, in)'} with out={out}"
            )
        _check_bias(layer, out, where)
        super().__init__(weight.shape[1], out, bias=p["bias_term"], device="meta")
        self.weight = nn.Parameter(torch.tensor(np.ascontiguousarray(weight)))
        if p["bias_term"]:
            self.bias = nn.Parameter(torch.tensor(layer.blobs[1]))
        self.axis = p["axis"]
        self.where = where

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(self.axis % x.dim()) if x.dim() else x
        if flat.dim() == 0 or flat.shape[-1] != self.in_features:
            raise CaffeModelError(
                f"{self.where}: input {tuple(x.shape)} flattened from axis {self.axis} does not give"
                f" {self.in_features} features"
            )
        return super().forward(flat)


def _check_blob_count(layer: CaffeLayer, where: str) -> None:
    expected = ("weight", "bias") if layer.params["bias_term"] else ("weight",)
    if len(layer.blobs) != len(expected):
        raise CaffeModelError(f"{where}: has {len(layer.blobs)} blobs, expected {len(expected)} {expected}")


def _check_bias(layer: CaffeLayer, out: int, where: str) -> None:
    if layer.params["bias_term"] and layer.blobs[1].shape != (out,):
        raise CaffeModelError(f"{where}: bias blob has shape {layer.blobs[1].shape}, expected ({out},)")


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's output size: rounded up (windows may overhang the input), except that with padding the
    last window must start inside the input or its left padding."""
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _Pool(nn.Module):
    """Caffe Pooling, exactly: ceil-mode output size; MAX ignores padding; AVE divides each window's sum
    by its size clipped to the padded input (padding counts, the overhang beyond it does not)."""

    def __init__(self, layer: CaffeLayer, where: str) -> None:
        super().__init__()
        p = layer.params
        if p["pool"] not in ("max", "ave"):
            raise CaffeModelError(f"{where}: {p['pool']} pooling is not supported (only max and ave)")
        self.mode, self.kernel, self.stride, self.pad = p["pool"], p["kernel"], p["stride"], p["pad"]
        self.global_pooling = p["global_pooling"]
        self.where = where

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise CaffeModelError(f"{self.where}: needs (N, C, H, W) input, got {tuple(x.shape)}")
        size = tuple(x.shape[2:])
        if self.global_pooling:
            kernel, stride, pad = size, (1, 1), (0, 0)
        else:
            kernel, stride, pad = self.kernel, self.stride, self.pad
        out = tuple(caffe_pooled_size(size[i], kernel[i], stride[i], pad[i]) for i in range(2))
        if min(out) < 1:
            raise CaffeModelError(f"{self.where}: input {size} is smaller than the {kernel} window")
        # Pad explicitly (top/left by `pad`, bottom/right by what the last window needs, which may overhang
        # the padded input), pool without implicit padding, and keep Caffe's number of windows.
        extra = [max(0, (out[i] - 1) * stride[i] + kernel[i] - size[i] - pad[i]) for i in range(2)]
        if pad != (0, 0) or extra != [0, 0]:
            fill = float("-inf") if self.mode == "max" else 0.0
            x = F.pad(x, (pad[1], extra[1], pad[0], extra[0]), value=fill)
        if self.mode == "max":
            return F.max_pool2d(x, kernel, stride)[:, :, : out[0], : out[1]]
        sums = F.avg_pool2d(x, kernel, stride, divisor_override=1)[:, :, : out[0], : out[1]]
        return sums / self._divisors(size, kernel, stride, pad, out, x)

    @staticmethod
    def _divisors(size: Pair, kernel: Pair, stride: Pair, pad: Pair, out: Pair, like: Tensor) -> Tensor:
        """Caffe's AVE divisor per window: (min(start + k, size + pad) - start) per axis, start = i*s - pad."""
        lengths = []
        for axis in range(2):
            starts = torch.arange(out[axis], device=like.device) * stride[axis] - pad[axis]
            ends = torch.clamp(starts + kernel[axis], max=size[axis] + pad[axis])
            lengths.append((ends - starts).to(like.dtype))
        return lengths[0][:, None] * lengths[1][None, :]


class _ReLU(nn.Module):
    """Caffe ReLU (leaky with negative_slope); in place when the graph proved its input unshared."""

    def __init__(self, layer: CaffeLayer, inplace: bool) -> None:
        super().__init__()
        self.negative_slope = layer.params["negative_slope"]
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        if self.negative_slope:
            return F.leaky_relu(x, self.negative_slope, inplace=self.inplace)
        return F.relu(x, inplace=self.inplace)


def _build_module(layer: CaffeLayer, where: str, inplace: bool) -> nn.Module:
    builders = {
        "Convolution": lambda: _Conv(layer, where),
        "InnerProduct": lambda: _InnerProduct(layer, where),
        "Pooling": lambda: _Pool(layer, where),
        "ReLU": lambda: _ReLU(layer, inplace),
        "Sigmoid": nn.Sigmoid,
        "TanH": nn.Tanh,
        "Softmax": lambda: nn.Softmax(dim=1),
        "Flatten": lambda: nn.Flatten(1),
        "Dropout": nn.Identity,  # inference: Caffe's dropout scales at training time, so test time is identity
        "Split": nn.Identity,  # every top is the bottom
    }
    build = builders.get(layer.type)
    if build is None:
        raise CaffeModelError(f"{where}: layer type {layer.type!r} is not supported")
    return build()


# Layers that feed or score training; inference skips them (as Chainer's CaffeFunction did).
_SKIPPED = {
    "Input",
    "Data",
    "ImageData",
    "HDF5Data",
    "MemoryData",
    "DummyData",
    "WindowData",
    "HDF5Output",
    "Silence",
    "Accuracy",
    "SoftmaxWithLoss",
    "SigmoidCrossEntropyLoss",
    "EuclideanLoss",
    "HingeLoss",
    "InfogainLoss",
    "MultinomialLogisticLoss",
    "ContrastiveLoss",
}
_DATA_LAYERS = {"Input", "Data", "ImageData", "HDF5Data", "MemoryData", "DummyData", "WindowData"}
_FRESH = {"Convolution", "InnerProduct", "Pooling", "ReLU", "Sigmoid", "TanH", "Softmax"}  # outputs a new tensor


class _Step(NamedTuple):
    key: str  # the module's key in CaffeGraph.layers
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]


def _input_blob(net: CaffeNet) -> str:
    """The net's input: its declared input, else a data layer's first top, else the first bottom that no
    earlier layer produces."""
    if net.inputs:
        return net.inputs[0]
    for layer in net.layers:
        if layer.type in _DATA_LAYERS and layer.tops:
            return layer.tops[0]
    produced: set[str] = set()
    for layer in net.layers:
        if layer.type in _SKIPPED:
            continue
        for bottom in layer.bottoms:
            if bottom not in produced:
                return bottom
        produced.update(layer.tops)
    raise CaffeModelError(f"{net.source or net.name}: no input blob (no layer reads anything)")


def _module_key(name: str, taken: nn.ModuleDict) -> str:
    """The Caffe name, made acceptable to ModuleDict (no dots, no clash with its attributes)."""
    key = name.replace(".", "_") or "_"
    while key in taken or hasattr(taken, key):
        key = f"_{key}"
    return key


class CaffeGraph(nn.Module):
    """A Caffe net as torch modules, one per layer under its Caffe name, run in file order (the order in
    which Caffe runs them). Blobs are named as in Caffe; in-place layers (bottom == top) rebind them."""

    def __init__(self, net: CaffeNet) -> None:
        super().__init__()
        self.source = net.source or net.name or "caffe net"
        self.input_blob = _input_blob(net)
        self.layers = nn.ModuleDict()
        self._steps: list[_Step] = []
        self._tops: dict[str, tuple[str, ...]] = {}
        fresh: dict[str, bool] = {}  # blob -> holds a tensor that nothing else aliases
        for layer in net.layers:
            if layer.type in _SKIPPED:
                continue
            where = f"{self.source}: layer {layer.name!r} ({layer.type})"
            if layer.name in self._tops:
                raise CaffeModelError(f"{where}: a second layer with this name")
            inplace = layer.bottoms == layer.tops and len(layer.tops) == 1 and fresh.get(layer.tops[0], False)
            key = _module_key(layer.name, self.layers)
            self.layers[key] = _build_module(layer, where, inplace)
            self._steps.append(_Step(key, layer.name, layer.bottoms, layer.tops))
            self._tops[layer.name] = layer.tops
            fresh.update(dict.fromkeys(layer.bottoms, False))
            fresh.update(dict.fromkeys(layer.tops, layer.type in _FRESH))
        self._last_write = {top: i for i, step in enumerate(self._steps) for top in step.tops}
        self._last_read = {bottom: i for i, step in enumerate(self._steps) for bottom in step.bottoms}

    def blob_of(self, layer: str) -> str:
        """The first top blob of a layer (usually named like the layer)."""
        tops = self._tops.get(layer)
        if not tops:
            raise CaffeModelError(f"{self.source}: no layer named {layer!r} with an output")
        return tops[0]

    def forward(self, x: Tensor, outputs: Sequence[str]) -> dict[str, Tensor]:
        """The requested blobs for input `x`. A blob holds its value after the last layer that writes it
        (an in-place ReLU after a convolution applies, as in Caffe's net.blobs); layers after the last
        of those writes are not run, and blobs no later layer reads are freed as the pass goes."""
        wanted = list(dict.fromkeys(outputs))
        unknown = [b for b in wanted if b != self.input_blob and b not in self._last_write]
        if not wanted or unknown:
            raise CaffeModelError(f"{self.source}: no layer produces {unknown or 'nothing requested'}")
        stop = max(self._last_write.get(b, -1) for b in wanted)
        blobs = {self.input_blob: x}
        for index, step in enumerate(self._steps[: stop + 1]):
            missing = [b for b in step.bottoms if b not in blobs]
            if missing:
                raise CaffeModelError(
                    f"{self.source}: layer {step.name!r} reads {missing}, which no earlier layer produces"
                    f" (the input blob is {self.input_blob!r})"
                )
            result = self.layers[step.key](*(blobs[b] for b in step.bottoms))
            for top in step.tops:
                blobs[top] = result
            for bottom in step.bottoms:
                if self._last_read[bottom] == index and bottom not in wanted and bottom not in step.tops:
                    del blobs[bottom]
        return {b: blobs[b] for b in wanted}


# ------------------------------------------------------------------------------------------- model


def check_tag_net(net: CaffeNet) -> None:
    """Refuse a file that is not the tag model (the feature model, a truncated net), naming the first
    layer of TAG_MODEL_SPEC that is missing or different."""
    by_name: dict[str, CaffeLayer] = {}
    for layer in net.layers:
        by_name.setdefault(layer.name, layer)
    for spec in TAG_MODEL_SPEC:
        found = by_name.get(spec.name)
        if found is None:
            problem = "is missing"
        elif found.type != spec.type:
            problem = f"has type {found.type!r}, expected {spec.type!r}"
        elif spec.outputs is not None and found.params.get("num_output") != spec.outputs:
            problem = f"has {found.params.get('num_output')} outputs, expected {spec.outputs}"
        else:
            continue
        hint = " (this looks like the feature model)" if FEATURE_LAYER in by_name else ""
        raise CaffeModelError(f"{net.source}: not the illust2vec tag model: layer {spec.name!r} {problem}{hint}")


def check_feature_net(net: CaffeNet) -> None:
    """Refuse a file without the InnerProduct layer `encode1` whose output is the feature."""
    layer = next((candidate for candidate in net.layers if candidate.name == FEATURE_LAYER), None)
    if layer is None or layer.type != "InnerProduct":
        found = "is missing" if layer is None else f"has type {layer.type!r}"
        hint = " (this looks like the tag model)" if any(x.name == TAG_LAYER for x in net.layers) else ""
        raise CaffeModelError(
            f"{net.source}: not the illust2vec feature model: InnerProduct layer {FEATURE_LAYER!r} {found}{hint}"
        )


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise Illust2VecWeightsMissing(f"illust2vec file missing: {path}; run `{FETCH_HINT}` to download it")
    return path


def read_tag_list(path: Path) -> tuple[str, ...]:
    """tag_list.json: a JSON list of exactly 1539 strings, in the order of the tag model's outputs."""
    try:
        tags = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a JSON tag list: {error}") from None
    if not isinstance(tags, list) or len(tags) != NUM_TAGS or not all(isinstance(t, str) for t in tags):
        found = f"{len(tags)} entries" if isinstance(tags, list) else type(tags).__name__
        raise ValueError(f"{path}: expected a JSON list of {NUM_TAGS} tag strings, found {found}")
    return tuple(tags)


def read_mean(path: Path) -> tuple[float, float, float]:
    """Per-channel BGR means from a .npy image mean of shape (3, H, W) or (3,)."""
    try:
        mean = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{path}: not a .npy array: {error}") from None
    if mean.ndim not in (1, 3) or mean.shape[0] != 3:
        raise ValueError(f"{path}: mean has shape {mean.shape}, expected (3, H, W) or (3,) in BGR order")
    values = mean.reshape(3, -1).astype(np.float64).mean(axis=1)
    return (float(values[0]), float(values[1]), float(values[2]))


def _sha12(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:12]


def _as_rgb(image: np.ndarray, index: int) -> np.ndarray:
    """HxWx3 float32 RGB 0-255 from uint8 or float (taken as 0-255) gray, gray+alpha, RGB or RGBA."""
    array = np.asarray(image)
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"image {index}: dtype {array.dtype}; expected uint8, or float in 0-255")
    if array.ndim == 3 and array.shape[2] in (1, 2):
        array = array[:, :, 0]  # gray, or gray + alpha
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[:, :, :3]  # alpha dropped
    else:
        raise ValueError(f"image {index}: shape {array.shape}; expected HxW, HxWx3 or HxWx4")
    if min(array.shape[:2]) == 0:
        raise ValueError(f"image {index}: empty ({array.shape})")
    return np.ascontiguousarray(array, dtype=np.float32)


class Illust2Vec(nn.Module):
    """The tag model and/or the feature model, with the tag list and the image mean."""

    mean: Tensor  # (3,) BGR, a buffer: it follows the model to its device

    def __init__(
        self,
        *,
        tags: Sequence[str],
        tag_graph: CaffeGraph | None = None,
        feature_graph: CaffeGraph | None = None,
        mean_bgr: Sequence[float] = MEAN_BGR,
        version: str = "illust2vec (unhashed weights)",
    ) -> None:
        super().__init__()
        if tag_graph is None and feature_graph is None:
            raise ValueError("Illust2Vec needs the tag model, the feature model, or both")
        if len(tags) != NUM_TAGS:
            raise ValueError(f"expected {NUM_TAGS} tags, got {len(tags)}")
        self.tags = tuple(tags)
        self.tag_graph = tag_graph
        self.feature_graph = feature_graph
        self.tag_blob = tag_graph.blob_of(TAG_LAYER) if tag_graph is not None else ""
        self.feature_blob = feature_graph.blob_of(FEATURE_LAYER) if feature_graph is not None else ""
        self.register_buffer("mean", torch.tensor(list(mean_bgr), dtype=torch.float32).reshape(3), persistent=False)
        self._weights_version = version  # not _version: nn.Module keeps its state-dict format version there

    @classmethod
    def from_files(
        cls,
        *,
        tag_model: Path | None,
        feature_model: Path | None,
        tag_list: Path,
        mean: Path | None = None,
        device: str | torch.device = "cpu",
    ) -> Illust2Vec:
        """Load the released files (any of them missing: Illust2VecWeightsMissing, with the fetch command).
        The version records the sha256 prefix of every file used."""
        if tag_model is None and feature_model is None:
            raise ValueError("Illust2Vec.from_files needs tag_model, feature_model, or both")
        files = {"tag": tag_model, "feature": feature_model, "tags": tag_list, "mean": mean}
        given = {role: _require_file(Path(path)) for role, path in files.items() if path is not None}
        graphs: dict[str, CaffeGraph] = {}
        for role, check in (("tag", check_tag_net), ("feature", check_feature_net)):
            if role in given:
                net = read_caffemodel(given[role])
                check(net)
                graphs[role] = CaffeGraph(net)
        version = "illust2vec " + " ".join(f"{role}:{_sha12(path)}" for role, path in given.items())
        model = cls(
            tags=read_tag_list(given["tags"]),
            tag_graph=graphs.get("tag"),
            feature_graph=graphs.get("feature"),
            mean_bgr=read_mean(given["mean"]) if "mean" in given else MEAN_BGR,
            version=version,
        )
        return model.to(device).eval()

    @property
    def version(self) -> str:
        """Which weights produced an output: 'illust2vec tag:<sha256[:12]> ...' for each file loaded."""
        return self._weights_version

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def preprocess(self, images: Sequence[np.ndarray]) -> Tensor:
        """(N, 3, 224, 224) float32 BGR minus the mean, as i2v feeds its nets: each image resized bilinearly
        (half-pixel centres, no anti-aliasing, like skimage order=1) on the model's device."""
        if len(images) == 0:
            raise ValueError("no images to preprocess")
        batch = torch.empty((len(images), 3, INPUT_SIZE, INPUT_SIZE), dtype=torch.float32, device=self.device)
        for index, image in enumerate(images):
            rgb = torch.from_numpy(_as_rgb(image, index)).to(self.device).permute(2, 0, 1)[None]
            if tuple(rgb.shape[2:]) != (INPUT_SIZE, INPUT_SIZE):
                size = (INPUT_SIZE, INPUT_SIZE)
                rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=False)
            batch[index] = rgb[0].flip(0) - self.mean.view(3, 1, 1)
        return batch

    def _graph(self, role: str) -> tuple[CaffeGraph, str]:
        graph, blob = (self.tag_graph, self.tag_blob) if role == "tag" else (self.feature_graph, self.feature_blob)
        if graph is None:
            raise RuntimeError(f"the illust2vec {role} model was not loaded: pass {role}_model= to from_files")
        return graph, blob

    def tag_probabilities(self, x: Tensor) -> Tensor:
        """(N, 1539) tag probabilities for preprocessed images: sigmoid of conv6_4 averaged over its 7x7 map."""
        graph, blob = self._graph("tag")
        with torch.no_grad():
            logits = graph(x.to(self.device), [blob])[blob]
            if logits.dim() != 4 or logits.shape[1] != NUM_TAGS:
                raise CaffeModelError(f"{graph.source}: {blob} has shape {tuple(logits.shape)}, not (N, 1539, H, W)")
            return torch.sigmoid(logits.float().mean(dim=(2, 3)))

    def features(self, x: Tensor) -> Tensor:
        """(N, 4096) features for preprocessed images: the output of encode1, flattened."""
        graph, blob = self._graph("feature")
        with torch.no_grad():
            return graph(x.to(self.device), [blob])[blob].flatten(1).float()

    def binary_features(self, x: Tensor) -> np.ndarray:
        """(N, 512) uint8: the bits sigmoid(encode1) > 0.5, packed (i2v's extract_binary_feature)."""
        bits = torch.sigmoid(self.features(x)) > 0.5
        return np.packbits(bits.cpu().numpy(), axis=1)
