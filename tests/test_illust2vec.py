"""illust2vec in PyTorch against an independent NumPy forward pass, on random weights in real Caffe files.

Why: the released weights (two files of about 180 MB) are not in the repo. Nets with the real tag model's
layer names and topology and random weights (tests/builders/caffe_nets.py) are written with write_caffemodel
(tests/builders/caffe_writer.py), read back, and run; a float64 NumPy forward written from Caffe's
definitions (im2col convolution, Caffe's ceil-mode pooling) must give the same numbers. Reduced widths keep
most tests fast; one full-size model checks real shapes.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from preprocessing.tags import illust2vec
from preprocessing.tags.caffe import CaffeLayer, CaffeModelError, CaffeNet, read_caffemodel
from preprocessing.tags.illust2vec import (
    CATEGORIES,
    FETCH_HINT,
    MEAN_BGR,
    NUM_TAGS,
    TAG_MODEL_SPEC,
    CaffeGraph,
    Illust2Vec,
    Illust2VecWeightsMissing,
)
from tests.builders.caffe_nets import DIVISOR, make_feature_net, make_tag_net
from tests.builders.caffe_writer import write_caffemodel
from tests.builders.illust2vec_tags import plausible_tags

# ------------------------------------------------------------------------------ NumPy reference


def np_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, pad: int) -> np.ndarray:
    """(C, H, W) float64 convolution, stride 1, by im2col and one matrix product."""
    out, cin, kh, kw = weight.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))  # (C, H', W', kh, kw)
    h, w = windows.shape[1:3]
    cols = windows.transpose(1, 2, 0, 3, 4).reshape(h * w, cin * kh * kw)
    return (cols @ weight.reshape(out, -1).T.astype(np.float64) + bias).T.reshape(out, h, w)


def np_pool(x: np.ndarray, mode: str, kernel: tuple, stride: tuple, pad: tuple) -> np.ndarray:
    """Caffe's pooling_layer.cpp, loop for loop: ceil-mode size, MAX over the window clipped to the
    input, AVE dividing by the window clipped to the padded input."""
    _, height, width = x.shape
    sizes = []
    for size, k, s, p in zip((height, width), kernel, stride, pad, strict=True):
        n = int(np.ceil((size + 2 * p - k) / s)) + 1
        if p and (n - 1) * s >= size + p:
            n -= 1
        sizes.append(n)
    out = np.empty((x.shape[0], *sizes))
    for i in range(sizes[0]):
        for j in range(sizes[1]):
            hs, ws = i * stride[0] - pad[0], j * stride[1] - pad[1]
            he, we = min(hs + kernel[0], height + pad[0]), min(ws + kernel[1], width + pad[1])
            window = x[:, max(hs, 0) : min(he, height), max(ws, 0) : min(we, width)]
            if mode == "max":
                out[:, i, j] = window.max(axis=(1, 2))
            else:
                out[:, i, j] = window.sum(axis=(1, 2)) / ((he - hs) * (we - ws))
    return out


def np_forward(net: CaffeNet, image: np.ndarray, stop: str | None = None) -> dict[str, np.ndarray]:
    """Float64 forward of one (3, H, W) input through `net`, layer by layer (until layer `stop`)."""
    blobs = {"data": image.astype(np.float64)}
    for layer in net.layers:
        if layer.type == "Data":
            continue
        x, p = blobs[layer.bottoms[0]], layer.params
        if layer.type == "Convolution":
            y = np_conv(x, layer.blobs[0], layer.blobs[1], p["pad"][0])
        elif layer.type == "Pooling":
            kernel = x.shape[1:] if p["global_pooling"] else p["kernel"]
            stride, pad = ((1, 1), (0, 0)) if p["global_pooling"] else (p["stride"], p["pad"])
            y = np_pool(x, p["pool"], kernel, stride, pad)
        elif layer.type == "ReLU":
            y = np.maximum(x, 0)
        elif layer.type == "Sigmoid":
            y = 1 / (1 + np.exp(-x))
        elif layer.type == "InnerProduct":
            y = layer.blobs[0].astype(np.float64) @ x.reshape(-1) + layer.blobs[1]
        else:
            raise AssertionError(layer.type)
        blobs[layer.tops[0]] = y
        if layer.name == stop:
            break
    return blobs


def np_probabilities(net: CaffeNet, image: np.ndarray) -> np.ndarray:
    conv6_4 = np_forward(net, image, stop="conv6_4")["conv6_4"]
    return 1 / (1 + np.exp(-conv6_4.mean(axis=(1, 2))))


def np_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres, edge clamping and no anti-aliasing, in float64."""

    def axis(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(size) + 0.5) * (n_in / size) - 0.5, 0)
        low = np.minimum(np.floor(src).astype(int), n_in - 1)
        return low, np.minimum(low + 1, n_in - 1), src - low

    r0, r1, fr = axis(image.shape[0])
    c0, c1, fc = axis(image.shape[1])
    img = image.astype(np.float64)
    rows = img[r0] * (1 - fr)[:, None, None] + img[r1] * fr[:, None, None]
    return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def reduced_tag_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tag model check expects the reduced widths of the test models (the full-size test restores it)."""
    reduced = tuple(
        spec._replace(outputs=spec.outputs // DIVISOR) if spec.outputs and spec.outputs < NUM_TAGS else spec
        for spec in TAG_MODEL_SPEC
    )
    monkeypatch.setattr(illust2vec, "TAG_MODEL_SPEC", reduced)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Reduced-width tag and feature models in both formats, and a tag list."""
    root = tmp_path_factory.mktemp("i2v")
    tag, feature = make_tag_net(DIVISOR), make_feature_net(DIVISOR)
    paths = {"tag": root / "tag.caffemodel", "feature": root / "feature.caffemodel"}
    write_caffemodel(tag, paths["tag"])
    write_caffemodel(feature, paths["feature"])
    write_caffemodel(tag, root / "tag_v1.caffemodel", v1=True)
    write_caffemodel(feature, root / "feature_v1.caffemodel", v1=True)
    tag_list = root / "tag_list.json"
    tag_list.write_text(json.dumps([f"tag{i}" for i in range(NUM_TAGS)]), encoding="utf-8")
    return {"root": root, "tag_net": tag, "feature_net": feature, "tag_list": tag_list, **paths}


@pytest.fixture
def model(files: dict) -> Illust2Vec:
    return Illust2Vec.from_files(tag_model=files["tag"], feature_model=files["feature"], tag_list=files["tag_list"])


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (300, 200, 3), dtype=np.uint8), rng.integers(0, 256, (150, 260, 3), dtype=np.uint8)]


# ------------------------------------------------------------------------------ forward passes


def test_tag_and_feature_outputs_match_numpy(model: Illust2Vec, files: dict, images: list[np.ndarray]) -> None:
    x = model.preprocess(images)
    probs = model.tag_probabilities(x).numpy()
    features = model.features(x).numpy()
    assert probs.shape == (2, NUM_TAGS) and features.shape == (2, 4096)
    for k in range(2):
        image = x[k].numpy()
        expected = np_probabilities(files["tag_net"], image)
        assert expected.min() > 0.005 and expected.max() < 0.995 and expected.std() > 0.05  # a meaningful spread
        np.testing.assert_allclose(probs[k], expected, rtol=0, atol=1e-4)
        encode1 = np_forward(files["feature_net"], image, stop="encode1")["encode1"]
        np.testing.assert_allclose(features[k], encode1, rtol=0, atol=1e-4 * np.abs(encode1).max())
    bits = model.binary_features(x)
    assert bits.shape == (2, 512) and bits.dtype == np.uint8
    np.testing.assert_array_equal(bits, np.packbits(1 / (1 + np.exp(-features)) > 0.5, axis=1))


def test_v1_files_give_the_same_outputs(model: Illust2Vec, files: dict, images: list[np.ndarray]) -> None:
    root = files["root"]
    old = Illust2Vec.from_files(
        tag_model=root / "tag_v1.caffemodel", feature_model=root / "feature_v1.caffemodel", tag_list=files["tag_list"]
    )
    x = model.preprocess(images)
    assert torch.equal(old.tag_probabilities(x), model.tag_probabilities(x))
    assert torch.equal(old.features(x), model.features(x))


def test_version_names_the_weights(model: Illust2Vec, files: dict) -> None:
    for role in ("tag", "feature"):
        digest = hashlib.sha256(files[role].read_bytes()).hexdigest()[:12]
        assert f"{role}:{digest}" in model.version


def test_encode1_on_the_flattened_map(images: list[np.ndarray]) -> None:
    """encode1 straight on conv6_3 (N, C, 7, 7), flattened from axis 1: the stack that published PyTorch
    conversions of the real feature model imply (4096 outputs from 1024*7*7 inputs)."""
    net = make_feature_net(32, flatten=True)
    model = Illust2Vec(tags=[f"t{i}" for i in range(NUM_TAGS)], feature_graph=CaffeGraph(net))
    x = model.preprocess(images[:1])
    expected = np_forward(net, x[0].numpy(), stop="encode1")["encode1"]
    np.testing.assert_allclose(model.features(x)[0].numpy(), expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_requested_blob_holds_its_value_after_in_place_layers(model: Illust2Vec, images: list[np.ndarray]) -> None:
    """As in Caffe's net.blobs: conv1_1 is read after relu1_1 rewrote it in place."""
    assert model.tag_graph is not None
    x = model.preprocess(images[:1])
    before = x.clone()
    with torch.no_grad():
        blobs = model.tag_graph(x, ["conv1_1", "pool1"])
    assert blobs["conv1_1"].min() >= 0
    assert torch.equal(blobs["pool1"], torch.nn.functional.max_pool2d(blobs["conv1_1"], 2))
    assert torch.equal(x, before)  # the caller's input is never rewritten in place


@pytest.mark.parametrize(
    ("mode", "size", "kernel", "stride", "pad"),
    [
        ("max", (8, 8), (3, 3), (2, 2), (0, 0)),  # ceil mode: the last window overhangs the input
        ("ave", (8, 8), (3, 3), (2, 2), (0, 0)),  # ... and AVE divides by the clipped window
        ("max", (7, 7), (3, 3), (2, 2), (1, 1)),
        ("ave", (7, 7), (3, 3), (2, 2), (1, 1)),  # padding counts in the divisor
        ("ave", (6, 6), (3, 3), (2, 2), (1, 1)),  # the divisor is clipped to the padded input
        ("max", (5, 5), (3, 3), (3, 3), (1, 1)),  # Caffe drops a window that would start in the padding
        ("ave", (5, 5), (3, 3), (3, 3), (1, 1)),
        ("ave", (9, 6), (3, 2), (2, 1), (1, 0)),  # non-square
        ("max", (7, 7), (2, 2), (2, 2), (0, 0)),
    ],
)
def test_pooling_matches_caffe(mode: str, size: tuple, kernel: tuple, stride: tuple, pad: tuple) -> None:
    params = {"pool": mode, "kernel": kernel, "stride": stride, "pad": pad}
    graph = CaffeGraph(CaffeNet("p", (CaffeLayer("pool", "Pooling", ("data",), ("pool",), params=params),)))
    x = np.random.default_rng(3).standard_normal((2, *size))
    got = graph(torch.tensor(x[None], dtype=torch.float32), ["pool"])["pool"][0].numpy()
    np.testing.assert_allclose(got, np_pool(x, mode, kernel, stride, pad), atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "ave"])
def test_global_pooling(mode: str) -> None:
    params = {"pool": mode, "global_pooling": True}
    graph = CaffeGraph(CaffeNet("p", (CaffeLayer("pool", "Pooling", ("data",), ("pool",), params=params),)))
    x = torch.randn(2, 3, 7, 5)
    expected = x.amax(dim=(2, 3)) if mode == "max" else x.mean(dim=(2, 3))
    torch.testing.assert_close(graph(x, ["pool"])["pool"][:, :, 0, 0], expected)


# ------------------------------------------------------------------------------------- full size


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory, files: dict) -> dict:
    """The full-size tag model (about 47 M parameters, 190 MB), written once."""
    net = make_tag_net(1)
    path = tmp_path_factory.mktemp("i2v_full") / "illust2vec_tag_ver200.caffemodel"
    write_caffemodel(net, path)
    return {"net": net, "path": path, "tag_list": files["tag_list"]}


def test_full_size_tag_model(full: dict, images: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(illust2vec, "TAG_MODEL_SPEC", TAG_MODEL_SPEC)  # the real widths
    started = time.perf_counter()
    net = read_caffemodel(full["path"])
    read_seconds = time.perf_counter() - started
    assert read_seconds < 10, f"reading 190 MB took {read_seconds:.1f} s"
    assert sum(b.size for layer in net.layers for b in layer.blobs) > 46_000_000
    assert net == full["net"]
    model = Illust2Vec.from_files(tag_model=full["path"], feature_model=None, tag_list=full["tag_list"])
    x = model.preprocess(images[:1])
    probs = model.tag_probabilities(x).numpy()
    assert probs.shape == (1, NUM_TAGS)
    np.testing.assert_allclose(probs[0], np_probabilities(full["net"], x[0].numpy()), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------- file format


@pytest.mark.parametrize("v1", [False, True])
def test_write_then_read_round_trips(files: dict, tmp_path: Path, v1: bool) -> None:
    for net in (files["tag_net"], files["feature_net"]):
        path = tmp_path / f"{net.name}.caffemodel"
        write_caffemodel(net, path, v1=v1)
        assert read_caffemodel(path) == net
    assert sorted(p.name for p in tmp_path.iterdir()) == ["illust2vec.caffemodel", "illust2vec_tag.caffemodel"]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    length = _varint(len(payload)) if wire == 2 else b""
    return _varint(number << 3 | wire) + length + payload


def test_reader_takes_what_old_writers_wrote(tmp_path: Path) -> None:
    """A hand-encoded V1 net: unpacked floats, double_data, legacy 4-D shapes, unknown fields of every
    wire type, and a V1 enum this reader does not know."""
    weight = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    unknown = _field(90, 0, _varint(300)) + _field(91, 1, b"\0" * 8) + _field(92, 2, b"xyz") + _field(93, 5, b"\0" * 4)
    legacy = b"".join(_field(n, 0, _varint(d)) for n, d in zip((1, 2, 3, 4), (1, 1, 2, 3), strict=True))
    unpacked = b"".join(_field(5, 5, struct.pack("<f", v)) for v in weight.ravel())
    blob_weight = legacy + unknown + unpacked
    blob_bias = _field(7, 2, _field(1, 2, _varint(2))) + _field(8, 2, struct.pack("<2d", 0.5, -1.5))
    ip_param = _field(1, 0, _varint(2)) + unknown
    layer = (
        _field(2, 2, b"data")
        + _field(3, 2, b"ip")
        + _field(4, 2, b"ip")
        + _field(5, 0, _varint(14))
        + unknown
        + _field(6, 2, blob_weight)
        + _field(6, 2, blob_bias)
        + _field(17, 2, ip_param)
    )
    other = _field(4, 2, b"odd") + _field(5, 0, _varint(99)) + _field(2, 2, b"ip") + _field(3, 2, b"odd")
    path = tmp_path / "old.caffemodel"
    path.write_bytes(_field(1, 2, b"old") + unknown + _field(2, 2, layer) + _field(2, 2, other))
    net = read_caffemodel(path)
    ip = net.layer("ip")
    assert (net.name, ip.type, ip.bottoms, ip.tops) == ("old", "InnerProduct", ("data",), ("ip",))
    np.testing.assert_array_equal(ip.blobs[0], weight)
    np.testing.assert_array_equal(ip.blobs[1], np.array([0.5, -1.5], dtype=np.float32))
    assert ip.params == {"num_output": 2, "bias_term": True, "axis": 1, "transpose": False}
    assert net.layer("odd").type == "V1:99"
    with pytest.raises(CaffeModelError, match=r"'odd'.*'V1:99' is not supported"):
        CaffeGraph(net)
    with pytest.raises(CaffeModelError, match="no layer named 'nope'"):
        net.layer("nope")


def test_reader_refuses_groups(tmp_path: Path) -> None:
    path = tmp_path / "group.caffemodel"
    path.write_bytes(_field(1, 2, b"net") + _varint(7 << 3 | 3) + _varint(7 << 3 | 4))
    with pytest.raises(CaffeModelError, match=rf"{path}.*group"):
        read_caffemodel(path)


def test_truncated_file(files: dict, tmp_path: Path) -> None:
    data = files["tag"].read_bytes()
    path = tmp_path / "truncated.caffemodel"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CaffeModelError, match=rf"{path}: byte \d+: .*truncated"):
        read_caffemodel(path)
    with pytest.raises(CaffeModelError, match=str(path)):
        Illust2Vec.from_files(tag_model=path, feature_model=None, tag_list=files["tag_list"])


@pytest.mark.parametrize("size", [0, 1, 100, 10_000])
def test_garbage_file(tmp_path: Path, size: int) -> None:
    path = tmp_path / "garbage.caffemodel"
    path.write_bytes(np.random.default_rng(size).bytes(size))
    with pytest.raises(CaffeModelError, match=str(path)):
        read_caffemodel(path)


# ---------------------------------------------------------------------------------- wrong inputs


def test_missing_weights(files: dict, tmp_path: Path) -> None:
    missing = tmp_path / "illust2vec_tag_ver200.caffemodel"
    with pytest.raises(Illust2VecWeightsMissing) as caught:
        Illust2Vec.from_files(tag_model=missing, feature_model=files["feature"], tag_list=files["tag_list"])
    assert str(missing) in str(caught.value) and FETCH_HINT in str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match=str(missing)):
        read_caffemodel(missing)


def test_feature_model_given_as_tag_model(files: dict) -> None:
    with pytest.raises(CaffeModelError, match=rf"{files['feature']}: not the illust2vec tag model: layer 'conv6_4'"):
        Illust2Vec.from_files(tag_model=files["feature"], feature_model=None, tag_list=files["tag_list"])
    with pytest.raises(CaffeModelError, match=rf"{files['tag']}: not the illust2vec feature model.*'encode1'"):
        Illust2Vec.from_files(tag_model=None, feature_model=files["tag"], tag_list=files["tag_list"])


def test_truncated_net_names_the_first_missing_layer(files: dict, tmp_path: Path) -> None:
    net = files["tag_net"]
    path = tmp_path / "short.caffemodel"
    write_caffemodel(CaffeNet(net.name, net.layers[:13], net.inputs), path)  # up to relu4_1
    with pytest.raises(CaffeModelError, match=rf"{path}: .*layer 'conv4_2' is missing"):
        Illust2Vec.from_files(tag_model=path, feature_model=None, tag_list=files["tag_list"])


def test_tag_list_with_10_entries(files: dict, tmp_path: Path) -> None:
    tag_list = tmp_path / "tag_list.json"
    tag_list.write_text(json.dumps([f"t{i}" for i in range(10)]), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{tag_list}: expected a JSON list of 1539 tag strings, found 10"):
        Illust2Vec.from_files(tag_model=files["tag"], feature_model=None, tag_list=tag_list)


def test_conv_blob_with_the_wrong_shape(files: dict, tmp_path: Path) -> None:
    layers = list(files["tag_net"].layers)
    index = next(i for i, layer in enumerate(layers) if layer.name == "conv3_1")
    bad = layers[index]
    layers[index] = CaffeLayer(
        bad.name, bad.type, bad.bottoms, bad.tops, (np.zeros((16, 8, 5, 5)), bad.blobs[1]), bad.params
    )
    net = CaffeNet("bad", tuple(layers), ("data",))
    with pytest.raises(
        CaffeModelError, match=r"layer 'conv3_1' \(Convolution\): weight blob has shape \(16, 8, 5, 5\)"
    ):
        CaffeGraph(net)
    path = tmp_path / "bad.caffemodel"
    write_caffemodel(net, path)
    with pytest.raises(CaffeModelError, match=rf"{path}: layer 'conv3_1'"):
        Illust2Vec.from_files(tag_model=path, feature_model=None, tag_list=files["tag_list"])


def test_missing_model_is_named(files: dict) -> None:
    only_tags = Illust2Vec.from_files(tag_model=files["tag"], feature_model=None, tag_list=files["tag_list"])
    with pytest.raises(RuntimeError, match="feature model was not loaded"):
        only_tags.features(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match="tag_model, feature_model, or both"):
        Illust2Vec.from_files(tag_model=None, feature_model=None, tag_list=files["tag_list"])


# ---------------------------------------------------------------------------------- preprocessing


def test_preprocess_channel_order_and_mean(model: Illust2Vec) -> None:
    image = np.empty((50, 70, 3), dtype=np.uint8)
    image[...] = (10, 20, 30)  # R, G, B
    x = model.preprocess([image])
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    expected = [30 - MEAN_BGR[0], 20 - MEAN_BGR[1], 10 - MEAN_BGR[2]]
    for channel, value in enumerate(expected):
        torch.testing.assert_close(x[0, channel], torch.full((224, 224), value), atol=1e-4, rtol=0)


def test_preprocess_gray_and_alpha(model: Illust2Vec) -> None:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((90, 120, 1), 77, np.uint8)], axis=2)
    gray = rgb[:, :, 1]
    gray_alpha = np.stack([gray, np.zeros_like(gray)], axis=2)
    x = model.preprocess([rgb, rgba, gray, gray_alpha, rgb.astype(np.float64)])
    assert x.shape == (5, 3, 224, 224)
    assert torch.equal(x[0], x[1]) and torch.equal(x[2], x[3]) and torch.equal(x[0], x[4])
    mean = torch.tensor(MEAN_BGR, dtype=torch.float32).view(3, 1, 1)
    restored = x[2] + mean
    torch.testing.assert_close(restored[0], restored[1]) and torch.testing.assert_close(restored[1], restored[2])
    with pytest.raises(ValueError, match="image 0: shape"):
        model.preprocess([np.zeros((4, 4, 5), np.uint8)])
    with pytest.raises(TypeError, match="image 0: dtype int32"):
        model.preprocess([np.zeros((4, 4, 3), np.int32)])


@pytest.mark.parametrize("shape", [(300, 200), (100, 150), (224, 224)])
def test_preprocess_resizes_bilinearly(model: Illust2Vec, shape: tuple) -> None:
    image = np.random.default_rng(11).integers(0, 256, (*shape, 3), dtype=np.uint8)
    x = model.preprocess([image])[0].numpy()
    expected = np_resize(image, 224)[:, :, ::-1].transpose(2, 0, 1) - np.array(MEAN_BGR)[:, None, None]
    # torch computes the sampling positions in float32: up to 255 * 1e-5 apart from float64 ones
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-2)
    assert np.abs(x - expected).mean() < 1e-3


def test_mean_file(files: dict, tmp_path: Path) -> None:
    mean = tmp_path / "image_mean.npy"
    np.save(mean, np.stack([np.full((4, 4), v) for v in (100.0, 110.0, 120.0)]))
    model = Illust2Vec.from_files(tag_model=files["tag"], feature_model=None, tag_list=files["tag_list"], mean=mean)
    x = model.preprocess([np.zeros((8, 8, 3), np.uint8)])
    assert x[0, :, 0, 0].tolist() == [-100.0, -110.0, -120.0]


# ---------------------------------------------------------------------------------- plausible tags


def test_plausible_tags() -> None:
    tags = [f"t{i}" for i in range(NUM_TAGS)]
    probs = np.zeros((2, NUM_TAGS))
    probs[0, [0, 1, 2, 511]] = [0.9, 0.5, 0.6, 0.55]  # 0.5 is not > 0.5
    probs[0, 512 + 7] = 0.25
    probs[0, 1024 + 3] = 0.2  # copyright threshold 0.2: not kept
    probs[0, 1536:] = [0.1, 0.7, 0.2]
    probs[1, 1536:] = [0.8, 0.15, 0.05]
    thresholds = {"general": 0.5, "character": 0.2, "copyright": 0.2}
    first, second = plausible_tags(probs, tags, thresholds)
    assert first == {
        "general": [("t0", 0.9), ("t2", 0.6), ("t511", 0.55)],
        "character": [("t519", 0.25)],
        "copyright": [],
        "rating": [("t1537", 0.7), ("t1538", 0.2), ("t1536", 0.1)],
    }
    assert second["general"] == second["character"] == second["copyright"] == []
    assert second["rating"] == [("t1536", 0.8), ("t1537", 0.15), ("t1538", 0.05)]
    assert plausible_tags(probs[0], tags, thresholds) == [first]
    assert CATEGORIES["rating"] == (1536, 1539)
    with pytest.raises(ValueError, match="thresholds"):
        plausible_tags(probs, tags, {"general": 0.5})
