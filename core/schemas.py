"""Every Parquet schema of the pipeline, declared once: each stage writes and reads its tables through them.

The scraper writes its images with the raw-manifest schema, so every later stage treats an ingested
folder, an archive and a crawl alike; its `pages.parquet` is CRAWL_PAGES.
"""

from __future__ import annotations

import pyarrow as pa

from core.parquet import declare

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

POINT = pa.struct([pa.field("name", pa.string()), pa.field("x", pa.float32()), pa.field("y", pa.float32())])

FACES = declare(
    "faces",
    1,
    [
        # f"{image_id}-{face_index}": stable across runs, unique within a domain.
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("face_index", pa.int16(), nullable=False),  # rank by box area in the image, 0 = largest
        pa.field("box", pa.list_(pa.float32(), 4), nullable=False),  # x0, y0, x1, y1 in upright source pixels
        pa.field("score", pa.float32(), nullable=False),
        pa.field("landmarks", pa.list_(POINT), nullable=False),  # named points in source pixels
        # 2x3 affine matrix, row-major, source pixel -> crop pixel; invert it to paste a crop back.
        pa.field("transform", pa.list_(pa.float64(), 6), nullable=False),
        pa.field("roll_degrees", pa.float32(), nullable=False),
        pa.field("align_method", pa.string(), nullable=False),
        pa.field("detector", pa.string(), nullable=False),
        pa.field("detector_version", pa.string(), nullable=False),
        pa.field("crop_size", pa.int16(), nullable=False),
        pa.field("crop_format", pa.string(), nullable=False),
        pa.field("crop_sha256", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),  # crops-00000.parquet
        pa.field("shard_row", pa.int32(), nullable=False),
        # Eye-centre error of the crop, re-measured by dlib's 5-point predictor, as a fraction of the crop
        # size (eyes-aligned domains with a dlib detector; null elsewhere).
        pa.field("eye_error", pa.float32()),
        # Detector extras as JSON (AnimeFace: hair, skin and eye colours), for the tags stage.
        pa.field("attributes", pa.string(), nullable=False),
    ],
)

FACE_REJECTS = declare(
    "face_rejects",
    1,
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("face_index", pa.int16()),  # null: the whole image (unreadable, no face)
        # no_face | too_small | low_score | roll | extra_face | unreadable
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ],
)

CROPS = declare(
    "crops",
    1,
    [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("image", pa.binary(), nullable=False),  # encoded PNG, JPEG or WebP, as faces.crop_format says
    ],
)

RGB8 = pa.list_(pa.uint8(), 3)
ILLUST2VEC_FEATURES = 4096

TAGS = declare(
    "tags",
    1,
    [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("tagger", pa.string(), nullable=False),
        # Code version plus, for illust2vec, the SHA-256 prefixes of the weight files used.
        pa.field("tagger_version", pa.string(), nullable=False),
        # Named tags of the shared vocabulary ("green hair", "blue eyes", "male"); empty when none applies.
        pa.field("tags", pa.list_(pa.string()), nullable=False),
        # Measured colours (sRGB), and their CIELAB distance to the named colour: a small distance is a
        # confident name. Null when the tagger does not measure them or could not (detail says why).
        pa.field("hair_rgb", RGB8),
        pa.field("eye_rgb", RGB8),
        pa.field("skin_rgb", RGB8),
        pa.field("hair_delta_e", pa.float32()),
        pa.field("eye_delta_e", pa.float32()),
        # illust2vec's probability of each vocabulary tag, in the vocabulary order the file's metadata
        # records (NaN for a vocabulary tag illust2vec does not know); null for the colour taggers.
        pa.field("probabilities", pa.list_(pa.float32())),
        # illust2vec's 4096-d feature (layer encode1), for conditioning on a reference character.
        pa.field("features", pa.list_(pa.float16(), ILLUST2VEC_FEATURES)),
        pa.field("detail", pa.string(), nullable=False),
    ],
)

SPLITS = ("train", "val", "test")

DATASET_MANIFEST = declare(
    "dataset_manifest",
    2,
    [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # train | val | test
        # Where the training pixels are: pixels-<split>-NNNNN.parquet and the row in it.
        pa.field("shard", pa.string(), nullable=False),
        pa.field("shard_row", pa.int32(), nullable=False),
        # Named tags of the shared vocabulary (the file's metadata records the vocabulary, in order).
        pa.field("tags", pa.list_(pa.string()), nullable=False),
        # Sampling weight for tag-balanced training (mean 1 over the split; 1 when balancing is off).
        pa.field("weight", pa.float32(), nullable=False),
        # Lineage: the stored raw image, the source it came from (folder or archive, or for a crawl the
        # game page) and the path or URL inside it, and the face's box in the source photo.
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("member", pa.string(), nullable=False),
        pa.field("raw_path", pa.string(), nullable=False),
        pa.field("box", pa.list_(pa.float32(), 4), nullable=False),
        pa.field("crop_sha256", pa.string(), nullable=False),
        # Quality measures the filters used: 64-bit perceptual hash (hex), variance of the Laplacian of the
        # grey crop, mean luminance (0-255), and the source pixels behind one crop pixel's width
        # (above 1: the crop was upscaled).
        pa.field("phash", pa.string(), nullable=False),
        pa.field("sharpness", pa.float32(), nullable=False),
        pa.field("brightness", pa.float32(), nullable=False),
        pa.field("source_size", pa.float32(), nullable=False),  # the face's side in source pixels
        # The tags stage's illust2vec feature of the face, copied so training can condition on a reference
        # character's look; null when the domain's tagger computes none (colour taggers).
        pa.field("features", pa.list_(pa.float16(), ILLUST2VEC_FEATURES)),
    ],
)

DATASET_PIXELS = declare(
    "dataset_pixels",
    1,
    [
        pa.field("face_id", pa.string(), nullable=False),
        # Decoded RGB, uint8, row-major (H, W, 3) at the file metadata's image_size: training reads
        # these without decoding an image format.
        pa.field("pixels", pa.binary(), nullable=False),
    ],
)

DATASET_DUPLICATES = declare(
    "dataset_duplicates",
    1,
    [
        pa.field("kept_face_id", pa.string(), nullable=False),
        pa.field("removed_face_id", pa.string(), nullable=False),
        pa.field("distance", pa.int8(), nullable=False),  # Hamming distance of the perceptual hashes
    ],
)

DATASET_REJECTS = declare(
    "dataset_rejects",
    1,
    [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # too_small | blurry | too_dark | too_bright | aspect
        pa.field("value", pa.float32(), nullable=False),
        pa.field("threshold", pa.float32(), nullable=False),
    ],
)

INDEX_IDS = declare(
    "index_ids",
    1,
    [
        # Row `position` of data/index/<domain>.faiss is this face's embedding (the model's encoder latent,
        # encoded in its own domain, L2-normalised). The file's metadata records the model's encoder digest
        # and step, so a search with another model is refused.
        pa.field("position", pa.int64(), nullable=False),
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        # Where the crop's pixels are: data/datasets/<domain>/<shard>, row `shard_row` (to show it).
        pa.field("shard", pa.string(), nullable=False),
        pa.field("shard_row", pa.int32(), nullable=False),
    ],
)


# ------------------------------------------------------------------------ the crawl's pages.parquet

#: Every `page_status`, in the order the metrics list them; a closed set, checked when pages.parquet is built.
#: ok (portraits found), no_characters (a game without portraits), missing (404 or an empty shell), not_a_game
#: (another genre tab), gated (the age gate kept the page even after gc=gc: nothing of it was read), failed (the
#: page could not be fetched or decoded, after the retries: nothing of it was read; why is in `page_failure`).
PAGE_STATUSES = ("ok", "no_characters", "missing", "not_a_game", "gated", "failed")

#: Pages the crawl did not read: a later record of the same game that did read it wins (scraping/tables.py).
UNREAD_STATUSES = ("gated", "failed")

# Version 2 added page_failure.
CRAWL_PAGES = declare(
    "crawl_pages",
    2,
    [
        # One row per portrait; a game page without portraits (or missing, gated, failed) has one row with no character.
        pa.field("game_id", pa.int64(), nullable=False),
        pa.field("page_url", pa.string(), nullable=False),
        pa.field("page_status", pa.string(), nullable=False),  # one of PAGE_STATUSES
        # For a failed page, why (scraping/failures.py): http_<status>, timeout, dns, connection, undecodable,
        # robots, ...; null for every other status.
        pa.field("page_failure", pa.string()),
        pa.field("title", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("release_date", pa.string()),  # ISO date when the page gives one
        pa.field("release_text", pa.string()),
        pa.field("genre_tab", pa.string()),
        pa.field("character_index", pa.int32()),
        pa.field("character_name", pa.string()),
        pa.field("cv", pa.string()),
        pa.field("image_url", pa.string()),
        pa.field("fullbody_url", pa.string()),
        pa.field("standard_name", pa.bool_()),
        pa.field("image_status", pa.string()),  # stored | duplicate | the failure reason (offsite: not fetched)
        pa.field("image_id", pa.string()),  # sha256: the id in manifest.parquet
    ],
)
