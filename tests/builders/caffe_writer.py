"""A `.caffemodel` writer for the tests: it encodes the subset that preprocessing.tags.caffe reads.

Why: the illust2vec tests need real Caffe files (both the current format and the deprecated V1 one) with
known layers and random weights. The product only reads these files, so the writer lives here, beside
the tests that make them.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from preprocessing.tags.caffe import (
    _NEW,
    _V1,
    I32,
    LEN,
    POOL_METHODS,
    V1_TYPES,
    VARINT,
    CaffeLayer,
    CaffeModelError,
    CaffeNet,
    _Format,
)

_V1_ENUMS = {name: number for number, name in V1_TYPES.items()}
_Piece = bytes | memoryview


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: ten bytes of two's complement, as protobuf writes them
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def _uint_field(number: int, value: int) -> bytes:
    return _key(number, VARINT) + _varint(value)


def _float_field(number: int, value: float) -> bytes:
    return _key(number, I32) + struct.pack("<f", value)


def _message(number: int, pieces: list[_Piece]) -> list[_Piece]:
    return [_key(number, LEN) + _varint(sum(len(p) for p in pieces)), *pieces]


def _string_field(number: int, text: str) -> bytes:
    return b"".join(_message(number, [text.encode("utf-8")]))


def _sorted(fields: list[tuple[int, list[_Piece]]]) -> list[_Piece]:
    """Fields in number order, as protobuf serializers write them (stable for repeated fields)."""
    return [piece for _, pieces in sorted(fields, key=lambda item: item[0]) for piece in pieces]


def _hw_fields(
    pair: tuple[int, int], default: tuple[int, int], square: int, h: int, w: int
) -> list[tuple[int, list[_Piece]]]:
    if pair == default:
        return []
    if pair[0] == pair[1]:
        return [(square, [_uint_field(square, pair[0])])]
    return [(h, [_uint_field(h, pair[0])]), (w, [_uint_field(w, pair[1])])]


def _encode_params(layer_type: str, params: Mapping[str, Any]) -> list[_Piece]:
    """A parameter message body; only non-default values are written, as Caffe's own files do."""
    fields: list[tuple[int, list[_Piece]]] = []
    if layer_type == "Convolution":
        fields.append((1, [_uint_field(1, params["num_output"])]))
        if not params["bias_term"]:
            fields.append((2, [_uint_field(2, 0)]))
        fields += _hw_fields(params["pad"], (0, 0), 3, 9, 10)
        if params["kernel"] is None:
            raise ValueError("a Convolution layer needs a kernel")
        fields += _hw_fields(params["kernel"], (0, 0), 4, 11, 12)
        if params["group"] != 1:
            fields.append((5, [_uint_field(5, params["group"])]))
        fields += _hw_fields(params["stride"], (1, 1), 6, 13, 14)
        if params["dilation"] != (1, 1):
            dh, dw = params["dilation"]
            dilation: list[_Piece] = [_uint_field(18, dh)]
            if dw != dh:
                dilation.append(_uint_field(18, dw))
            fields.append((18, dilation))
    elif layer_type == "Pooling":
        if params["pool"] != "max":
            fields.append((1, [_uint_field(1, POOL_METHODS.index(params["pool"]))]))
        if params["kernel"] is not None:
            fields += _hw_fields(params["kernel"], (0, 0), 2, 5, 6)
        fields += _hw_fields(params["stride"], (1, 1), 3, 7, 8)
        fields += _hw_fields(params["pad"], (0, 0), 4, 9, 10)
        if params["global_pooling"]:
            fields.append((12, [_uint_field(12, 1)]))
    elif layer_type == "InnerProduct":
        fields.append((1, [_uint_field(1, params["num_output"])]))
        if not params["bias_term"]:
            fields.append((2, [_uint_field(2, 0)]))
        if params["axis"] != 1:
            fields.append((5, [_uint_field(5, params["axis"])]))
        if params["transpose"]:
            fields.append((6, [_uint_field(6, 1)]))
    elif layer_type == "Dropout" and params["dropout_ratio"] != 0.5:
        fields.append((1, [_float_field(1, params["dropout_ratio"])]))
    elif layer_type == "ReLU" and params["negative_slope"] != 0.0:
        fields.append((1, [_float_field(1, params["negative_slope"])]))
    return _sorted(fields)


def _encode_blob(blob: np.ndarray, legacy: bool) -> list[_Piece]:
    """BlobProto: packed float data and a BlobShape, or (V1) the legacy num/channels/height/width."""
    data = np.ascontiguousarray(blob, dtype="<f4")
    pieces: list[_Piece] = []
    if legacy and data.ndim <= 4:
        dims = (1,) * (4 - data.ndim) + data.shape
        pieces += [_uint_field(number, dim) for number, dim in zip((1, 2, 3, 4), dims, strict=True)]
    pieces += _message(5, [data.reshape(-1).view(np.uint8).data])  # the array's own buffer: no copy
    if not (legacy and data.ndim <= 4):
        dims_bytes = b"".join(_varint(d) for d in data.shape)
        pieces += _message(7, _message(1, [dims_bytes]) if data.shape else [])
    return pieces


def _encode_layer(layer: CaffeLayer, fmt: _Format, source: str) -> list[_Piece]:
    fields: list[tuple[int, list[_Piece]]] = [(fmt.name, [_string_field(fmt.name, layer.name)])]
    if fmt is _NEW:
        fields.append((fmt.type, [_string_field(fmt.type, layer.type)]))
    else:
        number = _V1_ENUMS.get(layer.type)
        if number is None and layer.type.startswith("V1:"):
            number = int(layer.type[3:])
        if number is None:
            raise CaffeModelError(f"{source}: layer {layer.name!r}: type {layer.type!r} has no V1 enum")
        fields.append((fmt.type, [_uint_field(fmt.type, number)]))
    fields += [(fmt.bottom, [_string_field(fmt.bottom, b)]) for b in layer.bottoms]
    fields += [(fmt.top, [_string_field(fmt.top, t)]) for t in layer.tops]
    fields += [(fmt.blobs, _message(fmt.blobs, _encode_blob(b, legacy=fmt is _V1))) for b in layer.blobs]
    if layer.type in fmt.params:
        body = _encode_params(layer.type, layer.params)
        if body:
            fields.append((fmt.params[layer.type], _message(fmt.params[layer.type], body)))
    return _sorted(fields)


def write_caffemodel(net: CaffeNet, path: str | Path, *, v1: bool = False) -> None:
    """Write `net` as a NetParameter (V1 `layers` with legacy 4-D blob shapes when v1=True), atomically:
    a temporary file in the same folder, then os.replace. V1 blobs of layers other than Convolution and
    InnerProduct with fewer than 4 axes read back as 4-D, as they would from Caffe."""
    path = Path(path)
    fmt = _V1 if v1 else _NEW
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if net.name:
                handle.write(_string_field(1, net.name))
            for name in net.inputs:
                handle.write(_string_field(3, name))
            for layer in net.layers:
                for piece in _message(fmt.net_field, _encode_layer(layer, fmt, str(path))):
                    handle.write(piece)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
