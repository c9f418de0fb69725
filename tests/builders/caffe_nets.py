"""illust2vec-shaped Caffe nets with random weights: the real tag model's layer names and topology,
with widths divided by a `divisor` so that the tests stay fast (divisor 1 gives the full-size model).
"""

from __future__ import annotations

import numpy as np

from preprocessing.tags.caffe import CaffeLayer, CaffeNet
from preprocessing.tags.illust2vec import NUM_TAGS

# The tag model's body as i2v released it: 3x3 convolutions (pad 1, each followed by an in-place ReLU
# named relu<stage>) and 2x2 max pools of stride 2.
BODY = (
    ("conv1_1", 64),
    "pool1",
    ("conv2_1", 128),
    "pool2",
    ("conv3_1", 256),
    ("conv3_2", 256),
    "pool3",
    ("conv4_1", 512),
    ("conv4_2", 512),
    "pool4",
    ("conv5_1", 512),
    ("conv5_2", 512),
    "pool5",
    ("conv6_1", 1024),
    ("conv6_2", 1024),
    ("conv6_3", 1024),
)
DIVISOR = 16  # conv1_1 has 4 channels, conv6_x 64; conv6_4 keeps its 1539 outputs


def conv_layers(
    rng: np.random.Generator, name: str, bottom: str, cin: int, cout: int, *, gain: float = 2.0, scale: float = 1.0
) -> list[CaffeLayer]:
    """A 3x3 pad-1 convolution with He-scaled weights (so activations keep their size) and its in-place ReLU."""
    weight = rng.standard_normal((cout, cin, 3, 3), dtype=np.float32) * np.float32(np.sqrt(gain / (cin * 9)) * scale)
    bias = rng.standard_normal(cout, dtype=np.float32) * np.float32(0.05)
    params = {"num_output": cout, "kernel": 3, "pad": 1}
    conv = CaffeLayer(name, "Convolution", (bottom,), (name,), (weight, bias), params)
    return [conv, CaffeLayer(name.replace("conv", "relu"), "ReLU", (name,), (name,))]


def body_layers(rng: np.random.Generator, divisor: int) -> tuple[list[CaffeLayer], str, int]:
    """conv1_1 .. relu6_3 with widths divided by `divisor`; (layers, last blob, its channels)."""
    layers: list[CaffeLayer] = []
    blob, channels = "data", 3
    for item in BODY:
        if isinstance(item, str):
            pool = {"pool": "max", "kernel": 2, "stride": 2}
            layers.append(CaffeLayer(item, "Pooling", (blob,), (item,), params=pool))
            blob = item
        else:
            name, width = item
            out = max(width // divisor, 1)
            scale = 1 / 64 if channels == 3 else 1.0  # inputs are mean-subtracted pixels, about +-100
            layers += conv_layers(rng, name, blob, channels, out, scale=scale)
            blob, channels = name, out
    return layers, blob, channels


def make_tag_net(divisor: int, seed: int = 0) -> CaffeNet:
    """The tag model: body, conv6_4 (1539, linear), then pool6 (AVE 7x7) and prob (Sigmoid) as i2v ships."""
    rng = np.random.default_rng(seed)
    layers, blob, channels = body_layers(rng, divisor)
    layers += conv_layers(rng, "conv6_4", blob, channels, NUM_TAGS, gain=1.0)[:1]  # linear: no ReLU
    layers += [
        CaffeLayer("pool6", "Pooling", ("conv6_4",), ("pool6",), params={"pool": "ave", "kernel": 7}),
        CaffeLayer("prob", "Sigmoid", ("pool6",), ("prob",)),
    ]
    return CaffeNet("illust2vec_tag", tuple(layers), inputs=("data",))


def make_feature_net(divisor: int, seed: int = 1, *, flatten: bool = False) -> CaffeNet:
    """A feature model: a data layer, the body, then either conv6_4 (1024, ReLU) + global AVE pool6 +
    encode1 (assumed stack), or encode1 straight on the flattened conv6_3 map (flatten=True)."""
    rng = np.random.default_rng(seed)
    layers = [CaffeLayer("data", "Data", (), ("data", "label"))]
    body, blob, channels = body_layers(rng, divisor)
    layers += body
    fan_in = channels * 49
    if not flatten:
        layers += conv_layers(rng, "conv6_4", blob, channels, 1024 // divisor)
        pool = {"pool": "ave", "global_pooling": True}
        layers.append(CaffeLayer("pool6", "Pooling", ("conv6_4",), ("pool6",), params=pool))
        blob, fan_in = "pool6", 1024 // divisor
    weight = rng.standard_normal((4096, fan_in), dtype=np.float32) * np.float32(np.sqrt(1 / fan_in))
    bias = rng.standard_normal(4096, dtype=np.float32) * np.float32(0.05)
    layers += [
        CaffeLayer("encode1", "InnerProduct", (blob,), ("encode1",), (weight, bias), {"num_output": 4096}),
        CaffeLayer("encode1neuron", "Sigmoid", ("encode1",), ("encode1neuron",)),
    ]
    return CaffeNet("illust2vec", tuple(layers))
