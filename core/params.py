"""`params.yaml`, validated once at load.

Every stage goes through `load_params`, so a typo in a key, a wrong type or a missing path stops the
run before any work starts, with a message that names the key path the user has to fix
(`domains.cat.source.path: no such folder ...`). Stages then read only their own section, the one
`dvc.yaml` lists under `params:` for them, so DVC re-runs exactly the stages whose knobs changed.
Each section and each option is declared here once, with its default; the stages receive them typed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from core.errors import UserError

DEFAULT_PARAMS_FILE = "params.yaml"

# Glob patterns matched case-insensitively against the file name (folder sources) or the member path
# (archives). Extensions only pre-filter: every candidate is still decoded and checked.
DEFAULT_IMAGE_GLOBS = ("*.jpg", "*.jpeg", "*.png", "*.webp", "*.bmp", "*.gif", "*.tif", "*.tiff")

DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class ParamsError(UserError, ValueError):
    """A params.yaml problem; the message names the key path (and the file) to fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FolderSource(_Section):
    """Every image under a folder, recursively (symlinks may not leave the folder)."""

    kind: Literal["folder"]
    path: Path
    include: tuple[str, ...] = DEFAULT_IMAGE_GLOBS
    exclude: tuple[str, ...] = ()


class ArchiveSource(_Section):
    """A zip or tar archive (plain, gz, bz2, xz), as CelebA ships `img_align_celeba.zip`."""

    kind: Literal["archive"]
    path: Path
    include: tuple[str, ...] = DEFAULT_IMAGE_GLOBS
    exclude: tuple[str, ...] = ()


Source = Annotated[FolderSource | ArchiveSource, Field(discriminator="kind")]
SOURCE_KINDS = ("folder", "archive")


class DetectorParams(_Section):
    """A face detector by registered name (preprocessing/faces/detectors.py) and its options."""

    name: str
    options: dict[str, Any] = {}


class AlignParams(_Section):
    """Where a face lands in its crop. `eyes` (humans): a similarity transform putting the eye centres
    at fixed points, `eye_distance` and `eye_height` as fractions of `size`. `box` (anime, cats): a square
    of `margin` times the detector's box, moved up by `shift_up` box heights to take in the hair.

    With `eyes`, `reframe_turned` keeps a turned head whole: the eye distance foreshortens with yaw, so the
    eye framing alone zooms into a profile and pushes it off the crop. Past `turned_yaw` degrees (estimated
    from the eyes, nose and box) the framing blends into one sized by the box and centred on it
    (preprocessing/faces/align.py, `align_turned`); heads below it are cropped exactly as without it, and
    `reframe_turned: false` crops every head so. The default 35 sits above what landmark and box noise
    make of frontal and slightly turned faces, so their crops do not change.

    `crop` is for datasets that come as face crops (the Anime-Face-Dataset, CelebA aligned, UTKFace, cat
    crops): each picture's centred square of `crop_box` times its shorter side becomes the crop, whatever
    a detector says. The domain's detector, if it has one, still runs: `select.require_face` drops the
    pictures where it finds no face, and the faces it finds measure how the crops frame a face, which the
    model file records so that translating a new photo frames its face the same way.
    """

    method: Literal["eyes", "box", "crop"] = "eyes"
    size: Annotated[int, Field(ge=16, le=512)] = 256
    eye_distance: Annotated[float, Field(gt=0, lt=1)] = 0.3
    eye_height: Annotated[float, Field(gt=0, lt=1)] = 0.4
    margin: Annotated[float, Field(ge=1, le=4)] = 1.5
    shift_up: Annotated[float, Field(ge=-1, le=1)] = 0.0
    reframe_turned: bool = True
    turned_yaw: Annotated[float, Field(ge=0, le=90)] = 35.0
    level: bool = True  # box: turn the crop so the eye line is level, when the detector gives eyes
    crop_box: Annotated[float, Field(gt=0, le=1)] = 1.0


class SelectParams(_Section):
    """Which detected faces become crops. For align method `crop`, `min_face_size` is the side of the
    picture's square in source pixels, `require_face` (on by default) keeps only pictures in whose square
    the detector finds a face of at least `min_score`, and `faces`, `max_roll_degrees` do not apply."""

    faces: Literal["largest", "all"] = "largest"
    min_face_size: Annotated[int, Field(ge=1)] = 40  # box side in source pixels
    min_score: float = -1e9  # detector units (dlib HOG scores can be negative)
    max_roll_degrees: Annotated[float, Field(ge=0, le=180)] = 45.0
    require_face: bool = True


class TaggerParams(_Section):
    """Which tagger names the faces of a domain (preprocessing/tags/taggers.py), and its options."""

    name: str = "none"  # none | animeface_colors | human_hair | illust2vec
    options: dict[str, Any] = {}


class DomainParams(_Section):
    """One domain (human, anime, cat, ...): the unit a user adds to extend the pipeline."""

    source: Source
    detector: DetectorParams | None = None  # required by the faces stage, unless align.method is crop
    align: AlignParams = AlignParams()
    select: SelectParams = SelectParams()
    tagger: TaggerParams = TaggerParams()  # read by the tags stage

    @model_validator(mode="after")
    def _crops_need_a_detector_to_check(self) -> DomainParams:
        if self.align.method == "crop" and self.detector is None and self.select.require_face:
            raise ValueError(
                "select.require_face: checking that each crop holds a face needs a detector; name one under "
                "detector, or set select.require_face: false to take every picture as it is"
            )
        return self


class ExecutorParams(_Section):
    """Where the per-item work of a stage runs; the output never depends on it.

    `thread` and `process` run on this machine (`process` in a pool that the flow owns, which avoids
    Prefect starting an API server in every worker process); `dask` hands the chunks to a Dask
    cluster through prefect-dask (`dask_address` of a running scheduler, or a local cluster).
    Threads suit work that releases the GIL (image decoding, hashing, file I/O: ingest); processes
    suit pure-Python work. `chunk_size` is the largest chunk (core.executor.chunk_size_for).
    """

    kind: Literal["thread", "process", "dask"] = "thread"
    workers: PositiveInt = 2
    chunk_size: PositiveInt = 256
    dask_address: str | None = None
    task_retries: Annotated[int, Field(ge=0, le=10)] = 1


class IngestParams(_Section):
    max_pixels: PositiveInt = 50_000_000
    max_bytes: PositiveInt = 64 * 1024 * 1024
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO")
    executor: ExecutorParams = ExecutorParams()

    @field_validator("formats")
    @classmethod
    def _upper(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f.upper() for f in formats)


class FacesParams(_Section):
    """The faces stage: how crops are stored and where the work runs."""

    crop_format: Literal["png", "jpeg", "webp"] = "png"
    jpeg_quality: Annotated[int, Field(ge=50, le=100)] = 95
    shard_max_bytes: Annotated[int, Field(ge=1 << 16)] = 64 * 1024 * 1024
    contact_sheet: Annotated[int, Field(ge=1, le=400)] = 64  # crops on the contact sheet
    executor: ExecutorParams = ExecutorParams(kind="process", chunk_size=16)


RGB = tuple[
    Annotated[int, Field(ge=0, le=255)], Annotated[int, Field(ge=0, le=255)], Annotated[int, Field(ge=0, le=255)]
]

# The colour vocabulary: name -> reference sRGB colours (several where a name covers light and dark
# shades). A measured colour takes the name of its nearest reference in CIELAB. Names follow
# illust2vec's tags ("<name> hair", "<name> eyes"), so every tagger speaks the same vocabulary.
DEFAULT_HAIR_COLORS: dict[str, tuple[RGB, ...]] = {
    "blonde": ((243, 224, 150), (222, 186, 106), (196, 160, 92)),
    "brown": ((150, 100, 60), (110, 72, 44), (76, 52, 38)),
    "black": ((28, 28, 32), (50, 48, 56)),
    "blue": ((60, 90, 200), (130, 165, 230), (40, 50, 120)),
    "pink": ((250, 175, 205), (230, 120, 170)),
    "purple": ((130, 80, 170), (185, 145, 215), (80, 50, 110)),
    "green": ((70, 160, 90), (160, 215, 140), (40, 90, 60)),
    "red": ((200, 45, 45), (150, 35, 40), (165, 75, 45)),
    "silver": ((195, 200, 215),),
    "white": ((246, 246, 246),),
    "orange": ((245, 145, 50),),
    "aqua": ((80, 205, 215),),
    "grey": ((128, 128, 128), (165, 160, 158)),
}
DEFAULT_EYE_COLORS: dict[str, tuple[RGB, ...]] = {
    "blue": ((60, 100, 210), (130, 170, 235)),
    "red": ((200, 40, 50), (140, 30, 40)),
    "brown": ((130, 80, 45), (90, 60, 40)),
    "green": ((60, 160, 80), (120, 200, 120)),
    "purple": ((140, 80, 180), (190, 150, 220)),
    "yellow": ((235, 200, 60),),
    "pink": ((240, 130, 180),),
    "aqua": ((70, 200, 210),),
    "black": ((30, 30, 35),),
    "orange": ((240, 140, 40),),
    "grey": ((128, 128, 128),),
}


class Illust2VecThresholds(_Section):
    """illust2vec keeps a tag when its probability is above the threshold of the tag's category."""

    general: Annotated[float, Field(ge=0, le=1)] = 0.25  # illust2vec's own default
    character: Annotated[float, Field(ge=0, le=1)] = 0.5
    copyright: Annotated[float, Field(ge=0, le=1)] = 0.5


class TagsParams(_Section):
    """The tags@<domain> stage and the shared tag vocabulary (what a user can condition generation on)."""

    hair_colors: dict[str, tuple[RGB, ...]] = DEFAULT_HAIR_COLORS
    eye_colors: dict[str, tuple[RGB, ...]] = DEFAULT_EYE_COLORS
    # Other illust2vec general tags kept as named tags (gender, accessories, expression).
    other: tuple[str, ...] = ("male", "1girl", "1boy", "glasses", "hat", "smile", "open mouth", "blush")
    thresholds: Illust2VecThresholds = Illust2VecThresholds()
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 32
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    executor: ExecutorParams = ExecutorParams(kind="thread", chunk_size=256)

    @field_validator("hair_colors", "eye_colors")
    @classmethod
    def _palette(cls, palette: dict[str, tuple[RGB, ...]]) -> dict[str, tuple[RGB, ...]]:
        if not palette:
            raise ValueError("at least one colour is needed")
        for name, references in palette.items():
            if not re.match(r"^[a-z][a-z -]*$", name):
                raise ValueError(f"colour name {name!r} must be lowercase words")
            if not references:
                raise ValueError(f"{name}: at least one reference colour [r, g, b] is needed")
        return palette


SplitKey = Literal["image", "source", "source_folder"]


class DatasetParams(_Section):
    """The dataset@<domain> stage: filters, near-duplicates, splits, weights and the training pixels."""

    image_size: Annotated[int, Field(ge=16, le=1024)] = 128  # stored side; the loader resizes to the model's
    splits: dict[Literal["train", "val", "test"], Annotated[float, Field(ge=0, le=1)]] = {
        "train": 0.9,
        "val": 0.05,
        "test": 0.05,
    }
    # What keeps faces together in one split: the photo (image), its source (for a crawl: the game page),
    # or the source's folder. Per-domain choices override the default.
    split_key: SplitKey = "image"
    split_key_by_domain: dict[str, SplitKey] = {}
    split_salt: str = "twingan-1"  # changing it draws new splits
    near_duplicate_distance: Annotated[int, Field(ge=-1, le=32)] = 8  # pHash bits; -1 keeps every face
    near_duplicate_colour_distance: Annotated[float, Field(ge=0)] = 12.0  # mean CIELAB distance of 4x4 thumbnails
    min_source_size: Annotated[float, Field(ge=0)] = 48.0  # face side in source pixels before upscaling
    min_sharpness: Annotated[float, Field(ge=0)] = 30.0  # variance of the Laplacian at 128 px
    min_brightness: Annotated[float, Field(ge=0, le=255)] = 20.0
    max_brightness: Annotated[float, Field(ge=0, le=255)] = 245.0
    max_aspect: Annotated[float, Field(ge=1)] = 2.5  # of the detector's box
    balance: tuple[Literal["hair", "eyes", "gender"], ...] = ()  # sampling weights even these out
    max_weight: Annotated[float, Field(ge=1)] = 10.0
    shard_rows: Annotated[int, Field(ge=1)] = 4096
    row_group_rows: Annotated[int, Field(ge=1, le=65536)] = 64  # the loader's unit of work
    # Pixel shards uncompressed by default: the loader reads them faster than zstd (each worker decompresses
    # whole row groups), at the cost of disk (benchmarks/README.md, loader).
    compression: Literal["none", "lz4", "zstd"] = "none"
    contact_sheet: Annotated[int, Field(ge=1, le=400)] = 48
    executor: ExecutorParams = ExecutorParams(kind="thread", chunk_size=256)

    @field_validator("splits")
    @classmethod
    def _fractions(cls, splits: dict[str, float]) -> dict[str, float]:
        if "train" not in splits or splits["train"] <= 0:
            raise ValueError("a train fraction above 0 is needed")
        if abs(sum(splits.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions must sum to 1, got {sum(splits.values()):g}")
        return {name: splits[name] for name in ("train", "val", "test") if name in splits}


def _power_of_two(n: int) -> int:
    if n & (n - 1):
        raise ValueError(f"must be a power of two, got {n}")
    return n


# The side of the networks' images: train.resolution, and the resolution a model file records.
Resolution = Annotated[int, Field(ge=8, le=1024), AfterValidator(_power_of_two)]


class NetworkOptions(_Section):
    """How the Twin-GAN's networks are built: the one declaration of each option and its default.

    training/networks.py `NetworkConfig` is these options plus what training derives (the domains, the
    resolution and the widths of the condition); `NetworkParams` is these options plus the conditioning
    switches that training turns into those widths.
    """

    channel_base: Annotated[int, Field(ge=64)] = 4096  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: Annotated[int, Field(ge=8)] = 256
    feature_embed_dim: Annotated[int, Field(ge=1, le=1024)] = 64  # the reference features' learned projection
    norm: Literal["instance", "batch"] = "instance"
    unet_skips: bool = True
    max_skip_resolution: Annotated[int, Field(ge=0)] = 0  # 0: skips at every resolution
    equalized_lr: bool = True
    pixel_norm: bool = True
    d_spectral_norm: bool = False
    d_projection: bool = False
    mbstd_group: Annotated[int, Field(ge=1)] = 4


class NetworkParams(NetworkOptions):
    """train.network: the networks' options, and what their condition holds."""

    condition_on_tags: bool = True  # the vocabulary's multi-hot tags enter the normalisation of G
    # A reference character's illust2vec features enter it too (through one learned projection): needs a
    # domain tagged by illust2vec; `twingan translate --reference` then asks for that character's look.
    condition_on_features: bool = False


# Loss numbers are strict: `true` or "10" in params.yaml is an error, not a weight of 1 or 10.
LossWeight = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]
_GENERATOR_WEIGHTS = ("recon_l1", "recon_gan", "translation_gan", "semantic", "cycle")


class LossParams(_Section):
    """train.loss: weights and kinds of the Twin-GAN losses (training/losses.py); the defaults are the
    original Twin-GAN's reference run. A weight of 0 removes its term and the computation only it needs
    (cycle=0 skips the decode back; semantic=0 and cycle=0 together skip re-encoding the translations)."""

    recon_l1: LossWeight = 1.0  # same-domain reconstruction L1 (the original's l_cyc_weight)
    recon_gan: LossWeight = 1.0  # GAN loss on reconstructions (the original added it when the train size >= 64)
    translation_gan: LossWeight = 1.0  # cross-domain GAN on translations, all ordered pairs of domains
    semantic: LossWeight = 0.1  # L1 between E(x) and E(translation of x) (the original's l_content_weight)
    cycle: LossWeight = 0.0  # optional pixel cycle x -> other domain -> back, L1; 0 = off (the original had none)
    adversarial: Literal["nonsaturating", "hinge"] = "nonsaturating"  # the original: sigmoid BCE
    gradient_penalty: Literal["dragan", "r1", "none"] = "dragan"  # the original: DRAGAN
    gp_weight: LossWeight = 0.25  # DRAGAN lambda (the original's 0.25); for R1 this is gamma (e.g. 10)
    dragan_scale: Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)] = 0.5  # perturbation scale * std(x)
    gp_every: Annotated[int, Field(ge=1, strict=True)] = 1  # lazy regularisation (StyleGAN2): every N D steps, x N

    @model_validator(mode="after")
    def _generator_has_a_loss(self) -> LossParams:
        if not any(getattr(self, name) > 0 for name in _GENERATOR_WEIGHTS):
            raise ValueError(f"at least one of {', '.join(_GENERATOR_WEIGHTS)} must be > 0: the generator has no loss")
        return self


class GrowingParams(_Section):
    """PGGAN progressive growing: from start_resolution up to train.resolution, each phase `phase_steps`
    long, the first `fade_steps` of each fading the new resolution in. Off: fixed-resolution training."""

    enabled: bool = False
    start_resolution: Annotated[int, Field(ge=4)] = 8
    phase_steps: Annotated[int, Field(ge=1)] = 20000
    fade_steps: Annotated[int, Field(ge=0)] = 10000


class TrainParams(_Section):
    """The train stage (flows/train.py)."""

    domains: tuple[str, ...] = ()  # dataset domains to train together (2 or more); empty: every domain
    resolution: Resolution = 128
    batch_size: Annotated[int, Field(ge=1)] = 16  # per domain and per GPU
    steps: Annotated[int, Field(ge=1)] = 100000
    # StyleGAN2's Adam step: the weights are equalised (N(0, 1), scaled at run time), so 0.0002 learns 10x slower
    lr_g: Annotated[float, Field(gt=0)] = 0.002
    lr_d: Annotated[float, Field(gt=0)] = 0.002
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.0, 0.99)
    ema_half_life_images: Annotated[float, Field(ge=0)] = 10000.0  # 0: no EMA (the EMA is what gets saved)
    ema_rampup: Annotated[float, Field(ge=0)] = 0.05  # half-life at most this fraction of images seen so far
    network: NetworkParams = NetworkParams()
    loss: LossParams = LossParams()
    growing: GrowingParams = GrowingParams()
    balanced: bool = False  # draw by the dataset's tag-balanced weights
    hflip: bool = True
    shuffle_window: Annotated[int, Field(ge=1)] = 8
    num_workers: Annotated[int, Field(ge=0, le=64)] = 2
    seed: int = 0
    deterministic: bool = False  # deterministic kernels (slower on GPU); CPU runs are deterministic anyway
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    precision: Literal["fp32", "bf16"] = "bf16"  # bf16 autocast on CUDA; CPUs always run fp32
    compile: bool = False  # torch.compile the networks (about 20 s more start-up)
    channels_last: bool = True
    log_every: Annotated[int, Field(ge=1)] = 100
    sample_every: Annotated[int, Field(ge=1)] = 2000
    checkpoint_every: Annotated[int, Field(ge=1)] = 2000
    # Also keep the EMA model every N steps (models/checkpoints/snapshots/step-NNNNNNN.pt, a model file each), to
    # choose among afterwards (benchmarks/select_checkpoint.py); 0: off.
    snapshot_every: Annotated[int, Field(ge=0)] = 0
    samples: Annotated[int, Field(ge=1, le=64)] = 8  # fixed inputs per domain on the sample grids

    @field_validator("domains")
    @classmethod
    def _two_domains(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        if domains and (len(domains) < 2 or len(set(domains)) != len(domains)):
            raise ValueError("at least two distinct domains are needed to translate between")
        return domains


class DemoDataParams(_Section):
    """The embedded demo profile: real sample photographs shipped in scikit-image, plus drawn
    (synthetic, labelled as such) anime faces, written where the demo domains' sources point."""

    out: Path = Path("data/demo")
    seed: int = 0
    anime_faces: Annotated[int, Field(ge=1, le=1000)] = 24
    cat_crops: Annotated[int, Field(ge=1, le=1000)] = 12
    include_bad_files: bool = True


class CrawlParams(_Section):
    """One crawl of Getchu's monthly release listings (a `scrape.<name>` entry; stage `scrape@<name>`).

    Politeness defaults follow what public Getchu crawlers used without trouble (about 1 request/s, 2 at
    a time); `download_delay` is a floor that AutoThrottle never goes below, so the site never sees more
    than `concurrency_per_domain / download_delay` requests per second.
    """

    base_url: str = "https://www.getchu.com"
    first_month: str = Field("2016-01", pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    last_month: str = Field("2016-12", pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    genre: str = "pc_soft"  # PC games; dvd_game, doujin, ... are other Getchu genres
    gage: Literal["all", "adult", "normal", ""] = "all"
    domain: str = "anime"  # written into the manifest's domain column
    user_agent: str = "twingan-scraper/0.1 (+{contact})"
    contact_url: str = "https://github.com/twingan-pipeline/twingan-pipeline#scraping"
    obey_robots: bool = True
    download_delay: Annotated[float, Field(ge=0)] = 1.0
    concurrency_per_domain: Annotated[int, Field(ge=1, le=16)] = 2
    autothrottle: bool = True
    autothrottle_target_concurrency: Annotated[float, Field(gt=0)] = 1.0
    retries: Annotated[int, Field(ge=0, le=20)] = 3
    retry_backoff_seconds: Annotated[float, Field(ge=0)] = 2.0  # the site waits 2, 4, 8 ... s after errors
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    http_cache: bool = True  # a re-run over crawled months reads from data/scrape-cache/<name>
    max_image_bytes: PositiveInt = 5_000_000
    max_image_pixels: PositiveInt = 20_000_000
    close_after_pages: Annotated[int, Field(ge=0)] = 0  # stop after N responses (0: no limit), for trials

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+$", url.rstrip("/")):
            raise ValueError("must be http(s)://host[:port] with no path")
        return url.rstrip("/")

    def months(self) -> list[tuple[int, int]]:
        start, end = (tuple(int(p) for p in m.split("-")) for m in (self.first_month, self.last_month))
        if start > end:
            raise ParamsError(f"first_month {self.first_month} is after last_month {self.last_month}")
        months, (year, month) = [], start
        while (year, month) <= end:
            months.append((year, month))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months


class RebuildParams(_Section):
    """The end-to-end flow (`twingan rebuild`): which stages may fail transiently, and the push."""

    flaky_stages: tuple[str, ...] = ("scrape",)
    retries: Annotated[int, Field(ge=0, le=20)] = 2
    retry_delay_seconds: Annotated[float, Field(ge=0)] = 60.0
    push: bool = True
    remote: str | None = None


class IndexParams(_Section):
    """The index stage (flows/index.py): FAISS indexes of every dataset crop's embedding, per domain.

    `exact` (IndexFlatIP) scans every vector: exact, no training, fine to some 100k crops. `ivf`
    (IndexIVFFlat) clusters the vectors into `nlist` lists with k-means (trained on at most
    `train_per_list` vectors per list) and scans the `nprobe` nearest lists per query. `auto` builds
    `ivf` for a domain with at least `ivf_from_rows` crops, `exact` below.
    """

    kind: Literal["auto", "exact", "ivf"] = "auto"
    ivf_from_rows: Annotated[int, Field(ge=1)] = 500_000
    nlist: Annotated[int, Field(ge=0)] = 0  # 0: 4 x sqrt(rows); at most rows / 39 (k-means needs points)
    nprobe: Annotated[int, Field(ge=1)] = 64
    train_per_list: Annotated[int, Field(ge=39, le=1024)] = 256
    splits: tuple[Literal["train", "val", "test"], ...] = ("train", "val", "test")
    batch_size: Annotated[int, Field(ge=1)] | None = None  # None: 64 on CUDA, 1 on a CPU (memory-bound)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    recall_k: Annotated[int, Field(ge=1)] = 8  # metrics: recall@k of IVF against exact search,
    recall_queries: Annotated[int, Field(ge=1)] = 1000  # on this many indexed crops as queries
    agreement_samples: Annotated[int, Field(ge=0)] = 64  # metrics: crops per domain pair; 0: off
    seed: int = 0

    @field_validator("splits")
    @classmethod
    def _some_splits(cls, splits: tuple[str, ...]) -> tuple[str, ...]:
        if not splits or len(set(splits)) != len(splits):
            raise ValueError("name each split to index once, at least one of train, val, test")
        return splits


class EvaluateParams(_Section):
    """The evaluate stage (flows/evaluate.py): metrics of models/twingan.pt on one dataset split.

    FID and KID need an Inception file (`inception`, a path; see evaluation/inception.py); without
    it they are reported as not computed. The other metrics need only the installed detectors.
    """

    source: str = "human"  # translated into `target`: FID/KID both ways, AnimeFace, pose, hair metrics one way
    target: str = "anime"
    split: Literal["train", "val", "test"] = "val"  # no fallback: a split without faces is reported as such
    max_images: Annotated[int, Field(ge=1)] = 1000  # per domain, the split's first faces (face-id order)
    batch_size: Annotated[int, Field(ge=1)] = 32
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    seed: int = 0  # KID's subsets
    inception: Path | None = None  # TorchScript Inception-v3 (StyleGAN2-ADA's inception-2015-12-05.pt)
    kid_subset_size: Annotated[int, Field(ge=2)] = 1000
    kid_subsets: Annotated[int, Field(ge=1)] = 100
    upscale: Annotated[int, Field(ge=32, le=2048)] = 128  # side images are resized to before face detection
    workers: Annotated[int, Field(ge=1, le=64)] = 2  # processes for AnimeFace and dlib
    hair_colors: tuple[str, ...] = ()  # hair colours to ask for; empty: every hair tag of the model
    hair_images: Annotated[int, Field(ge=1)] = 16  # source faces translated per colour
    background_images: Annotated[int, Field(ge=0)] = 32  # source faces put on 5 backgrounds (0: not measured)
    source_min_yaw: Annotated[float, Field(ge=0)] = 0.15  # |yaw proxy| above which a face counts as turned
    target_min_yaw: Annotated[float, Field(ge=0)] = 0.04
    samples: Annotated[int, Field(ge=1, le=64)] = 8  # faces per domain on plots/evaluate/samples.png


class Params(_Section):
    profile: Annotated[str, Field(pattern=DOMAIN_NAME.pattern)] = "demo"  # set by `twingan profile` (core/profiles.py)
    domains: dict[str, DomainParams]
    demo_data: DemoDataParams = DemoDataParams()
    ingest: IngestParams = IngestParams()
    scrape: dict[str, CrawlParams] = {}
    faces: FacesParams = FacesParams()
    tags: TagsParams = TagsParams()
    dataset: DatasetParams = DatasetParams()
    train: TrainParams = TrainParams()
    rebuild: RebuildParams = RebuildParams()
    index: IndexParams = IndexParams()
    evaluate: EvaluateParams = EvaluateParams()

    @field_validator("scrape")
    @classmethod
    def _crawl_names(cls, crawls: dict[str, CrawlParams]) -> dict[str, CrawlParams]:
        for name in crawls:
            if not DOMAIN_NAME.match(name):
                raise ValueError(f"crawl name {name!r} must be lowercase letters, digits and '_' (a folder name)")
        return crawls

    @field_validator("domains")
    @classmethod
    def _domain_names(cls, domains: dict[str, DomainParams]) -> dict[str, DomainParams]:
        if not domains:
            raise ValueError("at least one domain is needed")
        for name in domains:
            if not DOMAIN_NAME.match(name):
                raise ValueError(
                    f"domain name {name!r} must be lowercase letters, digits and '_', starting with a "
                    "letter (it becomes a folder and a DVC stage name)"
                )
        return domains


class LoadedParams:
    """Validated params plus the folder that relative paths in them are relative to."""

    def __init__(self, params: Params, root: Path, file: Path) -> None:
        self.params = params
        self.root = root
        self.file = file

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    def crawl(self, name: str) -> CrawlParams:
        try:
            crawl = self.params.scrape[name]
        except KeyError:
            known = ", ".join(sorted(self.params.scrape)) or "none"
            raise ParamsError(f"scrape.{name}: no such crawl in {self.file} (known: {known})") from None
        try:
            crawl.months()
        except ParamsError as error:
            raise ParamsError(f"scrape.{name}: {error}") from None
        return crawl

    def domain(self, name: str) -> DomainParams:
        try:
            return self.params.domains[name]
        except KeyError:
            known = ", ".join(sorted(self.params.domains))
            raise ParamsError(f"domains.{name}: no such domain in {self.file} (known: {known})") from None

    def source_path(self, domain: str) -> Path:
        """The domain's source on disk, checked now: it may be written by an earlier stage."""
        source = self.domain(domain).source
        path = self.resolve(source.path)
        key = f"domains.{domain}.source.path"
        if source.kind == "folder" and not path.is_dir():
            what = "is not a folder" if path.exists() else "no such folder"
            raise ParamsError(f"{key}: {what}: {path}")
        if source.kind == "archive" and not path.is_file():
            what = "is not a file" if path.exists() else "no such archive"
            raise ParamsError(f"{key}: {what}: {path}")
        return path


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        # Discriminated unions put the tag ("folder") into the location; users never write it.
        if i > 0 and loc[i - 1] == "source" and part in SOURCE_KINDS:
            continue
        parts.append(str(part))
    return ".".join(parts) or "<top level>"


def format_validation_error(error: ValidationError, file: Path) -> str:
    lines = [f"{file}: invalid parameters"]
    for item in error.errors():
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelt, or not used by this version)"
        elif item["type"] == "missing":
            message = "required key is missing"
        message = message.removeprefix("Value error, ")  # our validators' own messages
        if not item["loc"]:  # a check across sections names its own keys
            lines.append(f"  {message}")
            continue
        given = item.get("input")
        # The value given, unless the message already says what it was ("must be a power of two, got 48").
        shown = item["type"] not in ("missing", "extra_forbidden") and "got " not in message
        suffix = f" (got {given!r})" if shown else ""
        lines.append(f"  {_key_path(tuple(item['loc']))}: {message}{suffix}")
    return "\n".join(lines)


def parse_params(raw: Any, file: Path) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{file}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(format_validation_error(error, file)) from None


def load_params(file: Path | str = DEFAULT_PARAMS_FILE) -> LoadedParams:
    file = Path(file).absolute()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{file}: no such params file (run from the project root, or pass --params)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ParamsError(f"{file}: not valid YAML: {error}") from None
    return LoadedParams(parse_params(raw, file), root=file.parent, file=file)
