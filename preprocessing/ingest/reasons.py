"""Why a source item was not stored. Each becomes a row of `rejects.parquet` and a metrics count."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    EMPTY = "empty"  # zero bytes
    TOO_LARGE = "too_large"  # more bytes than ingest.max_bytes (checked before reading)
    NOT_AN_IMAGE = "not_an_image"  # no image decoder recognises the bytes
    UNSUPPORTED_FORMAT = "unsupported_format"  # an image, but not in ingest.formats
    TOO_MANY_PIXELS = "too_many_pixels"  # over ingest.max_pixels (decompression bombs)
    CORRUPT = "corrupt"  # recognised, but the pixels do not decode (truncated, bad data)
    UNREADABLE = "unreadable"  # the file or archive member could not be read (I/O, CRC, encrypted)
    UNSAFE_PATH = "unsafe_path"  # archive member named outside the archive (absolute, '..')
    SYMLINK_OUTSIDE = "symlink_outside"  # a symlink in a source folder pointing outside it
    NOT_A_FILE = "not_a_file"  # a link member, device, fifo or symlinked folder
    DUPLICATE = "duplicate"  # the same bytes as an item already stored


ALL_REASONS = tuple(reason.value for reason in Reason)
