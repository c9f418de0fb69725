"""Read Caffe `.caffemodel` files (a serialized `NetParameter`) without caffe or protobuf.

Why: illust2vec's released weights are Caffe protobufs. Caffe is unmaintained and the protobuf package
would need a generated caffe_pb2, while the few messages that inference needs are small enough to
decode here. Float arrays are read with np.frombuffer, so the 180 MB tag model loads in about a second.

Decoded: the net's name and inputs; per layer its name, type, bottoms, tops, blobs, and the parameters
of Convolution, Pooling, InnerProduct, Dropout and ReLU. Every other field is skipped. Both the current
format (`layer`, field 100, string types) and the deprecated V1 format (`layers`, field 2, enum types)
are read; V0 nets are refused.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core.errors import UserError

VARINT, I64, LEN, I32 = 0, 1, 2, 5  # protobuf wire types; 3 and 4 (groups) never occur in caffe.proto

# V1LayerParameter.LayerType, under the names that the current format uses (caffe's upgrade_proto.cpp).
V1_TYPES: dict[int, str] = {
    1: "Accuracy",
    2: "BNLL",
    3: "Concat",
    4: "Convolution",
    5: "Data",
    6: "Dropout",
    7: "EuclideanLoss",
    8: "Flatten",
    9: "HDF5Data",
    10: "HDF5Output",
    11: "Im2col",
    12: "ImageData",
    13: "InfogainLoss",
    14: "InnerProduct",
    15: "LRN",
    16: "MultinomialLogisticLoss",
    17: "Pooling",
    18: "ReLU",
    19: "Sigmoid",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    22: "Split",
    23: "TanH",
    24: "WindowData",
    25: "Eltwise",
    26: "Power",
    27: "SigmoidCrossEntropyLoss",
    28: "HingeLoss",
    29: "MemoryData",
    30: "ArgMax",
    31: "Threshold",
    32: "DummyData",
    33: "Slice",
    34: "MVN",
    35: "AbsVal",
    36: "Silence",
    37: "ContrastiveLoss",
    38: "Exp",
    39: "Deconvolution",
}
POOL_METHODS = ("max", "ave", "stochastic")  # PoolingParameter.PoolMethod, in enum order

# Every known param with its default: a layer's params always hold all of them, so equal layers compare equal.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "Convolution": {
        "num_output": 0,
        "bias_term": True,
        "kernel": None,
        "stride": (1, 1),
        "pad": (0, 0),
        "group": 1,
        "dilation": (1, 1),
    },
    "Pooling": {"pool": "max", "kernel": None, "stride": (1, 1), "pad": (0, 0), "global_pooling": False},
    "InnerProduct": {"num_output": 0, "bias_term": True, "axis": 1, "transpose": False},
    "Dropout": {"dropout_ratio": 0.5},
    "ReLU": {"negative_slope": 0.0},
}
_PAIRS = {"kernel", "stride", "pad", "dilation"}
_BOOLS = {"bias_term", "global_pooling", "transpose"}
_FLOATS = {"dropout_ratio", "negative_slope"}


class CaffeModelError(UserError, ValueError):
    """A caffemodel that cannot be decoded or does not hold a usable net; the message names the file."""


class _Format(NamedTuple):
    """Field numbers of one layer message format (LayerParameter or V1LayerParameter)."""

    net_field: int
    name: int
    type: int
    bottom: int
    top: int
    blobs: int
    params: dict[str, int]  # layer type -> field of its parameter message


_NEW = _Format(
    100, 1, 2, 3, 4, 7, {"Convolution": 106, "Dropout": 108, "InnerProduct": 117, "Pooling": 121, "ReLU": 123}
)
_V1 = _Format(2, 4, 5, 2, 3, 6, {"Convolution": 10, "Dropout": 12, "InnerProduct": 17, "Pooling": 19, "ReLU": 30})


def _pair(value: Any, key: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int | np.integer):
        return (int(value), int(value))
    pair = [int(v) for v in value]
    if len(pair) != 2:
        raise ValueError(f"{key} must be an int or a (height, width) pair, got {value!r}")
    return (pair[0], pair[1])


def normalize_params(layer_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with defaults filled in and values coerced (ints to pairs, floats to float32 precision),
    so that a layer read back from a file equals the layer that was written."""
    defaults = _DEFAULTS.get(layer_type)
    if defaults is None:
        return dict(params)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {layer_type} params {unknown}; known: {sorted(defaults)}")
    merged = {**defaults, **params}
    for key, value in merged.items():
        if key in _PAIRS:
            merged[key] = _pair(value, key)
        elif key in _BOOLS:
            merged[key] = bool(value)
        elif key in _FLOATS:
            merged[key] = float(np.float32(value))
        elif key == "pool":
            if value not in POOL_METHODS:
                raise ValueError(f"pool must be one of {POOL_METHODS}, got {value!r}")
        else:
            merged[key] = int(value)
    return merged


@dataclass(frozen=True, eq=False)
class CaffeLayer:
    """One layer as the file stores it. Blobs are float32 in Caffe's layout: convolution weights
    (out, in/group, kh, kw), inner-product weights (out, in), biases (out,)."""

    name: str
    type: str
    bottoms: tuple[str, ...] = ()
    tops: tuple[str, ...] = ()
    blobs: tuple[np.ndarray, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bottoms", tuple(self.bottoms))
        object.__setattr__(self, "tops", tuple(self.tops))
        object.__setattr__(self, "blobs", tuple(np.ascontiguousarray(b, dtype=np.float32) for b in self.blobs))
        object.__setattr__(self, "params", normalize_params(self.type, self.params))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CaffeLayer):
            return NotImplemented
        same = (self.name, self.type, self.bottoms, self.tops, self.params) == (
            other.name,
            other.type,
            other.bottoms,
            other.tops,
            other.params,
        )
        return (
            same
            and len(self.blobs) == len(other.blobs)
            and all(
                a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
                for a, b in zip(self.blobs, other.blobs, strict=True)
            )
        )


@dataclass(frozen=True, eq=False)
class CaffeNet:
    """A net's layers in file order (Caffe runs them in this order) and its declared input blobs."""

    name: str
    layers: tuple[CaffeLayer, ...]
    inputs: tuple[str, ...] = ()
    source: str = ""  # the file it came from, for error messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "inputs", tuple(self.inputs))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CaffeNet):
            return NotImplemented
        return (self.name, self.inputs, self.layers) == (other.name, other.inputs, other.layers)

    def layer(self, name: str) -> CaffeLayer:
        """The first layer called `name` (train/test variants of a data layer may share a name)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise CaffeModelError(f"{self.source or self.name or 'net'}: no layer named {name!r}")


# ---------------------------------------------------------------------------------------------- reading


class _Field(NamedTuple):
    number: int
    wire: int
    value: int  # the varint itself, else the offset where the payload starts
    end: int  # offset just after the field
    at: int  # offset of the field's key, for error messages


class _Reader:
    """Walks protobuf wire format in one bytes buffer; its errors name the file and the byte offset."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source

    def error(self, pos: int, message: str) -> CaffeModelError:
        return CaffeModelError(f"{self.source}: byte {pos}: {message}")

    def varint(self, pos: int, end: int, what: str) -> tuple[int, int]:
        data, start, result, shift = self.data, pos, 0, 0
        while pos < end:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise self.error(start, f"varint longer than 10 bytes in {what}: not protobuf data")
        raise self.error(start, f"{what} ends inside a varint (file truncated?)")

    def next_field(self, pos: int, end: int, what: str) -> _Field:
        key, body = self.varint(pos, end, what)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise self.error(pos, f"field number 0 in {what}: not protobuf data")
        if wire == VARINT:
            value, after = self.varint(body, end, f"field {number} of {what}")
            return _Field(number, wire, value, after, pos)
        if wire == LEN:
            length, start = self.varint(body, end, f"field {number} of {what}")
            after = start + length
        elif wire in (I64, I32):
            start, after = body, body + (8 if wire == I64 else 4)
        elif wire in (3, 4):
            raise self.error(pos, f"field {number} of {what} is a group (wire type {wire}): caffe.proto has none")
        else:
            raise self.error(pos, f"invalid wire type {wire} for field {number} of {what}: not protobuf data")
        if after > end:
            raise self.error(
                pos, f"field {number} of {what} needs {after - start} bytes, {end - start} are left (file truncated?)"
            )
        return _Field(number, wire, start, after, pos)

    def fields(self, start: int, end: int, what: str) -> Iterator[_Field]:
        pos = start
        while pos < end:
            found = self.next_field(pos, end, what)
            yield found
            pos = found.end

    def expect(self, f: _Field, wire: int, what: str) -> None:
        if f.wire != wire:
            raise self.error(f.at, f"{what} (field {f.number}) has wire type {f.wire}, expected {wire}")

    def string(self, f: _Field, what: str) -> str:
        self.expect(f, LEN, what)
        try:
            return self.data[f.value : f.end].decode("utf-8")
        except UnicodeDecodeError as error:
            raise self.error(f.at, f"{what} is not UTF-8 text: {error}") from None

    def uint(self, f: _Field, what: str) -> int:
        self.expect(f, VARINT, what)
        return f.value

    def int64(self, f: _Field, what: str) -> int:
        value = self.uint(f, what)
        return value - (1 << 64) if value >= 1 << 63 else value

    def uints(self, f: _Field, what: str) -> list[int]:
        """A repeated integer field, packed (one LEN field) or not (one varint per field)."""
        if f.wire == VARINT:
            return [f.value]
        self.expect(f, LEN, what)
        values, pos = [], f.value
        while pos < f.end:
            value, pos = self.varint(pos, f.end, what)
            values.append(value)
        return values

    def float32(self, f: _Field, what: str) -> float:
        self.expect(f, I32, what)
        return struct.unpack_from("<f", self.data, f.value)[0]

    def packed(self, f: _Field, dtype: str, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        nbytes = f.end - f.value
        if nbytes % size:
            raise self.error(f.at, f"{what}: {nbytes} bytes of packed {dtype} values is not a multiple of {size}")
        return np.frombuffer(self.data, dtype=dtype, count=nbytes // size, offset=f.value).astype(np.float32)

    def unpacked_run(self, f: _Field, end: int, dtype: str) -> tuple[np.ndarray, int]:
        """The run of unpacked repeated floats that starts with field `f` (a one-byte key then the value,
        repeated), decoded at once: old writers emit millions of them, too many for a Python loop."""
        record = np.dtype([("key", "u1"), ("value", dtype)])
        if f.value != f.at + 1:  # a key in more than one byte (non-canonical): just this value
            return np.frombuffer(self.data, dtype=dtype, count=1, offset=f.value).astype(np.float32), f.end
        count = (end - f.at) // record.itemsize
        records = np.frombuffer(self.data, dtype=record, count=count, offset=f.at)
        others = np.flatnonzero(records["key"] != self.data[f.at])
        run = int(others[0]) if others.size else count
        return records["value"][:run].astype(np.float32), f.at + run * record.itemsize


def _decode_net(reader: _Reader) -> CaffeNet:
    name, inputs = "", []
    spans: dict[int, list[tuple[int, int]]] = {_NEW.net_field: [], _V1.net_field: []}
    for f in reader.fields(0, len(reader.data), "NetParameter"):
        if f.number == 1:
            name = reader.string(f, "NetParameter.name")
        elif f.number == 3:
            inputs.append(reader.string(f, "NetParameter.input"))
        elif f.number in spans:
            reader.expect(f, LEN, "a NetParameter layer")
            spans[f.number].append((f.value, f.end))
    new, old = spans[_NEW.net_field], spans[_V1.net_field]
    if new and old:
        raise CaffeModelError(f"{reader.source}: holds both `layer` (field 100) and V1 `layers` (field 2)")
    if not new and not old:
        raise CaffeModelError(f"{reader.source}: holds no layers: not a caffemodel")
    fmt = _NEW if new else _V1
    layers = tuple(_decode_layer(reader, start, end, index, fmt) for index, (start, end) in enumerate(new or old))
    return CaffeNet(name, layers, tuple(inputs), reader.source)


def _decode_layer(reader: _Reader, start: int, end: int, index: int, fmt: _Format) -> CaffeLayer:
    what = f"layer #{index}"
    name, layer_type, bottoms, tops = "", "", [], []
    blobs: list[tuple[int, int]] = []
    params: dict[int, tuple[int, int]] = {}
    param_fields = set(fmt.params.values())
    for f in reader.fields(start, end, what):
        if f.number == fmt.name:
            name = reader.string(f, f"{what} name")
        elif f.number == fmt.type:
            if fmt is _NEW:
                layer_type = reader.string(f, f"{what} type")
            else:
                number = reader.uint(f, f"{what} type")
                layer_type = V1_TYPES.get(number, f"V1:{number}")
        elif f.number == fmt.bottom:
            bottoms.append(reader.string(f, f"{what} bottom"))
        elif f.number == fmt.top:
            tops.append(reader.string(f, f"{what} top"))
        elif f.number == fmt.blobs:
            reader.expect(f, LEN, f"{what} blob")
            blobs.append((f.value, f.end))
        elif f.number in param_fields:
            reader.expect(f, LEN, f"{what} parameters")
            params[f.number] = (f.value, f.end)
        elif fmt is _V1 and f.number == 1:
            raise reader.error(f.at, f"{what} is a V0 layer, which is not supported: upgrade the net with caffe")
    label = f"layer {name!r}" if name else what
    if not layer_type:
        raise CaffeModelError(f"{reader.source}: {label} has no type")
    span = params.get(fmt.params.get(layer_type, -1), (0, 0))
    decoded = _decode_params(reader, layer_type, *span, label)
    arrays = tuple(
        _fit_blob(layer_type, k, _decode_blob(reader, s, e, f"{label} blob {k}")) for k, (s, e) in enumerate(blobs)
    )
    return CaffeLayer(name, layer_type, tuple(bottoms), tuple(tops), arrays, decoded)


def _decode_blob(reader: _Reader, start: int, end: int, what: str) -> np.ndarray:
    legacy: dict[int, int] = {}
    shape: tuple[int, ...] | None = None
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    pos = start
    while pos < end:
        f = reader.next_field(pos, end, what)
        pos = f.end
        if f.number == 5 and f.wire == I32:
            run, pos = reader.unpacked_run(f, end, "<f4")
            floats.append(run)
        elif f.number == 8 and f.wire == I64:
            run, pos = reader.unpacked_run(f, end, "<f8")
            doubles.append(run)
        elif f.number == 5:
            floats.append(reader.packed(f, "<f4", f"{what} data"))
        elif f.number == 8:
            doubles.append(reader.packed(f, "<f8", f"{what} double_data"))
        elif f.number == 7:
            reader.expect(f, LEN, f"{what} shape")
            dims = [d for g in reader.fields(f.value, f.end, what) if g.number == 1 for d in reader.uints(g, what)]
            shape = tuple(d - (1 << 64) if d >= 1 << 63 else d for d in dims)
        elif f.number in (1, 2, 3, 4):
            legacy[f.number] = reader.int64(f, f"{what} legacy dimension")
    # Caffe's Blob::FromProto prefers double_data when present.
    parts = doubles or floats
    data = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.empty(0, np.float32))
    if shape is None:
        shape = tuple(legacy.get(k, 0) for k in (1, 2, 3, 4)) if legacy else (data.size,)
    if any(d < 0 for d in shape) or math.prod(shape) != data.size:
        raise CaffeModelError(f"{reader.source}: {what}: shape {shape} does not fit the {data.size} values stored")
    return data.reshape(shape)


def _fit_blob(layer_type: str, index: int, blob: np.ndarray) -> np.ndarray:
    """Drop the leading 1s of legacy 4-D shapes: V1 files store an inner-product weight as (1, 1, out, in)
    and biases as (1, 1, 1, out); Caffe itself matches legacy shapes from the last axis."""
    ndims = {"Convolution": (4, 1), "InnerProduct": (2, 1)}.get(layer_type, ())
    if index >= len(ndims) or blob.ndim <= ndims[index]:
        return blob
    lead = blob.ndim - ndims[index]
    return blob.reshape(blob.shape[lead:]) if all(d == 1 for d in blob.shape[:lead]) else blob


def _hw(
    reader: _Reader, values: list[int], h: int | None, w: int | None, what: str, lone: int | None = None
) -> tuple[int, int] | None:
    """A (height, width) pair from a repeated field (0, 1 or 2 values) or from its *_h/*_w fields; `lone`
    fills the other of *_h/*_w when only one is set (pads default to 0; kernels and strides must be paired)."""
    if h is not None or w is not None:
        if values:
            raise CaffeModelError(f"{reader.source}: {what}: both the repeated field and *_h/*_w are set")
        if (h is None or w is None) and lone is None:
            raise CaffeModelError(f"{reader.source}: {what}: only one of *_h and *_w is set")
        return (lone if h is None else h, lone if w is None else w)  # type: ignore[return-value]
    if len(values) > 2:
        raise CaffeModelError(f"{reader.source}: {what}: {len(values)} values, only 2-D layers are supported")
    return (values[0], values[-1]) if values else None


def _decode_params(reader: _Reader, layer_type: str, start: int, end: int, label: str) -> dict[str, Any]:
    decode = {
        "Convolution": _conv_params,
        "Pooling": _pool_params,
        "InnerProduct": _inner_product_params,
        "Dropout": _dropout_params,
        "ReLU": _relu_params,
    }.get(layer_type)
    return decode(reader, start, end, f"{label} {layer_type} parameters") if decode else {}


def _collect(reader: _Reader, start: int, end: int, what: str, lists: set[int]) -> tuple[dict, dict]:
    """The fields of a parameter message: repeated integer fields in `lists`, the rest last-wins."""
    repeated: dict[int, list[int]] = {number: [] for number in lists}
    single: dict[int, _Field] = {}
    for f in reader.fields(start, end, what):
        if f.number in repeated:
            repeated[f.number].extend(reader.uints(f, f"{what} field {f.number}"))
        else:
            single[f.number] = f
    return repeated, single


def _conv_params(reader: _Reader, start: int, end: int, what: str) -> dict[str, Any]:
    lists, single = _collect(reader, start, end, what, {3, 4, 6, 18})

    def uint(number: int, default: int | None) -> int | None:
        return reader.uint(single[number], f"{what} field {number}") if number in single else default

    def count(number: int, default: int) -> int:
        return reader.uint(single[number], f"{what} field {number}") if number in single else default

    kernel = _hw(reader, lists[4], uint(11, None), uint(12, None), f"{what} kernel")
    if kernel is None:
        raise CaffeModelError(f"{reader.source}: {what}: no kernel_size")
    return {
        "num_output": count(1, 0),
        "bias_term": bool(count(2, 1)),
        "kernel": kernel,
        "stride": _hw(reader, lists[6], uint(13, None), uint(14, None), f"{what} stride") or (1, 1),
        "pad": _hw(reader, lists[3], uint(9, None), uint(10, None), f"{what} pad", 0) or (0, 0),
        "group": count(5, 1),
        "dilation": _hw(reader, lists[18], None, None, f"{what} dilation") or (1, 1),
    }


def _pool_params(reader: _Reader, start: int, end: int, what: str) -> dict[str, Any]:
    lists, single = _collect(reader, start, end, what, {2, 3, 4})

    def uint(number: int, default: int | None) -> int | None:
        return reader.uint(single[number], f"{what} field {number}") if number in single else default

    method = reader.uint(single[1], f"{what} pool") if 1 in single else 0
    if method not in range(len(POOL_METHODS)):
        raise CaffeModelError(f"{reader.source}: {what}: unknown pooling method {method}")
    global_pooling = bool(uint(12, 0))
    kernel = _hw(reader, lists[2], uint(5, None), uint(6, None), f"{what} kernel")
    if kernel is None and not global_pooling:
        raise CaffeModelError(f"{reader.source}: {what}: no kernel_size and not global_pooling")
    return {
        "pool": POOL_METHODS[method],
        "kernel": kernel,
        "stride": _hw(reader, lists[3], uint(7, None), uint(8, None), f"{what} stride") or (1, 1),
        "pad": _hw(reader, lists[4], uint(9, None), uint(10, None), f"{what} pad", 0) or (0, 0),
        "global_pooling": global_pooling,
    }


def _inner_product_params(reader: _Reader, start: int, end: int, what: str) -> dict[str, Any]:
    params: dict[str, Any] = {"num_output": 0, "bias_term": True, "axis": 1, "transpose": False}
    for f in reader.fields(start, end, what):
        if f.number == 1:
            params["num_output"] = reader.uint(f, f"{what} num_output")
        elif f.number == 2:
            params["bias_term"] = bool(reader.uint(f, f"{what} bias_term"))
        elif f.number == 5:
            params["axis"] = reader.int64(f, f"{what} axis")
        elif f.number == 6:
            params["transpose"] = bool(reader.uint(f, f"{what} transpose"))
    return params


def _dropout_params(reader: _Reader, start: int, end: int, what: str) -> dict[str, Any]:
    ratio = [reader.float32(f, f"{what} dropout_ratio") for f in reader.fields(start, end, what) if f.number == 1]
    return {"dropout_ratio": ratio[-1] if ratio else 0.5}


def _relu_params(reader: _Reader, start: int, end: int, what: str) -> dict[str, Any]:
    slope = [reader.float32(f, f"{what} negative_slope") for f in reader.fields(start, end, what) if f.number == 1]
    return {"negative_slope": slope[-1] if slope else 0.0}


def read_caffemodel(path: str | Path) -> CaffeNet:
    """The net in a .caffemodel (either format). Raises FileNotFoundError, or CaffeModelError naming the
    file and the byte offset where the bytes stop making sense."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such caffemodel", str(path)) from None
    if not data:
        raise CaffeModelError(f"{path}: empty file, not a caffemodel")
    return _decode_net(_Reader(data, str(path)))
