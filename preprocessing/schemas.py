"""The Parquet schemas of the preprocessing stages, declared once.

The scraper writes `data/raw/anime/` with the same raw-manifest schema, so every later stage treats an
ingested folder, an archive and a crawl alike.
"""

from __future__ import annotations

import pyarrow as pa

from twingan.parquet import declare

RAW_MANIFEST = declare(
    "raw_manifest",
    1,
    [
        # SHA-256 of the stored bytes: the image's identity, its file name and its dedup key.
        pa.field("id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        # Where it came from: the folder or archive as params name it, and the path inside it.
        # Exact duplicates keep the first source in (source_uri, member) order; others go to rejects.
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("member", pa.string(), nullable=False),
        # Relative to the raw folder: images/<id[:2]>/<id>.<ext>. Bytes are stored as received.
        pa.field("path", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        # PIL mode as stored (RGB, L, CMYK, P, RGBA, I;16, ...); readers convert with preprocessing.images.
        pa.field("mode", pa.string(), nullable=False),
        # Upright size, after the EXIF orientation has been applied.
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        # EXIF orientation tag of the stored bytes (1 = upright); readers rotate accordingly.
        pa.field("exif_orientation", pa.int8(), nullable=False),
        pa.field("byte_size", pa.int64(), nullable=False),
        # How many other source items had the same bytes (each listed in rejects as a duplicate).
        pa.field("duplicates", pa.int32(), nullable=False),
    ],
)

RAW_REJECTS = declare(
    "raw_rejects",
    1,
    [
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("member", pa.string(), nullable=False),
        # One of preprocessing.ingest.reasons.Reason.
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("byte_size", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("duplicate_of", pa.string()),
    ],
)
