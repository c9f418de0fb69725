"""The Twin-GAN networks: one encoder and one generator shared by every domain, one discriminator per domain.

What follows the original (jerryli27/TwinGAN, ../shared/research/twingan.md §1):

- The encoder mirrors the PGGAN discriminator down to a 4x4 latent; the generator is a PGGAN generator that starts
  from that latent. UNet skips concatenate each encoder block's output, taken *before* its average pool, into the
  generator block of the same resolution. The skip at resolution r therefore has `channels(r // 2)` channels,
  as in the original (its 256x256 tap has 32 channels).
- All conv kernels are shared between domains; the domain is chosen only by per-domain normalisation parameters
  (`DomainNorm`), in the encoder and in the generator. The normalisation is also where a tag vector enters, as a
  zero-initialised linear map onto the scale and shift (like the original's style-conditioned batch norm).
- Conv unit in E and G: conv -> DomainNorm -> LeakyReLU(0.2) -> PixelNorm. Discriminators have no normalisation,
  a 1-scalar minibatch stddev channel and a linear logit. to_rgb is linear (no tanh).
- Every resolution's layers exist from construction, so a checkpoint has the same keys at every growing stage;
  `resolution` and `alpha` in `forward` select the stage and the fade-in.

What differs, on purpose: instance norm is the default (batch-size independent, works with mixed-domain batches;
the original's batch renorm at batch 3 was fragile), "batch" keeps one set of running statistics per domain;
equalised learning rate is on by default (the original had it off).

Networks only: losses, the training loop and checkpoint files live elsewhere. `NetworkConfig` holds every
construction argument, so a checkpoint that stores `config.to_dict()` rebuilds its networks without other files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, get_args

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from core.params import NetworkOptions, Resolution

__all__ = [
    "Discriminator",
    "DomainNorm",
    "Encoder",
    "EqualizedConv2d",
    "EqualizedLinear",
    "Generator",
    "MinibatchStdDev",
    "NetworkConfig",
    "PixelNorm",
    "TwinGAN",
    "count_parameters",
    "resolve_domain",
]

DomainArg = int | str | Tensor
"""A domain: its index, its name, or a LongTensor (B,) of indices (one per sample, domains may be mixed)."""

LRELU_SLOPE = 0.2
NORM_KINDS: tuple[str, ...] = get_args(NetworkOptions.model_fields["norm"].annotation)
_MIN_CHANNELS = 8


# The leading keys of a file's `network` dict, as files have always had them (see `file_order`).
FILE_ORDER = ("domains", "resolution", "channel_base", "channel_max", "tag_dim", "feature_dim")


class NetworkConfig(NetworkOptions):
    """Everything needed to rebuild the networks; stored in checkpoints and model files (`to_dict` / `from_dict`).

    The options (channel widths, norm, skips, ...) and their defaults are `core.params.NetworkOptions`, declared
    once for params.yaml and for the networks; what training derives is added here.
    """

    domains: tuple[str, ...]
    resolution: Resolution
    tag_dim: Annotated[int, Field(ge=0)] = 0  # named tags in the condition (0: no tags)
    feature_dim: Annotated[int, Field(ge=0)] = 0  # reference features after them (0: none)

    @field_validator("domains")
    @classmethod
    def _domain_names(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        if not domains:
            raise ValueError("domains must name at least one domain")
        for name in domains:
            # A dot would break state_dict keys (the discriminators are keyed by domain name).
            if not name or "." in name:
                raise ValueError(f"a domain name must be a non-empty string without '.', got {name!r}")
        if len(set(domains)) != len(domains):
            raise ValueError(f"domain names must be unique, got {domains}")
        return domains

    @model_validator(mode="after")
    def _projection_needs_a_condition(self) -> NetworkConfig:
        if self.d_projection and self.condition_dim == 0:
            raise ValueError("d_projection needs a condition: set tag_dim or feature_dim > 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (domains as a list), so the dict survives JSON, YAML and `torch.load(weights_only=True)`;
        keys in the order model files have always had (`file_order`), so equal weights give equal bytes."""
        return file_order(self.model_dump(mode="json"), FILE_ORDER)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NetworkConfig:
        """Rebuild from `to_dict`. Unknown keys are errors, not ignored: a typo must not silently use a default."""
        unknown = sorted(set(d) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"unknown NetworkConfig key(s): {', '.join(unknown)}")
        missing = [name for name, field in cls.model_fields.items() if field.is_required() and name not in d]
        if missing:
            raise ValueError(f"missing NetworkConfig key(s): {', '.join(missing)}")
        return cls.model_validate(dict(d))

    @property
    def condition_dim(self) -> int:
        """Width of the condition vector G and D take: named tags (multi-hot), then the reference features."""
        return self.tag_dim + self.feature_dim

    @property
    def norm_condition_dim(self) -> int:
        """What the normalisation layers see: the tags, and the features after their learned projection."""
        return self.tag_dim + (self.feature_embed_dim if self.feature_dim else 0)

    def channels(self, resolution: int) -> int:
        """Feature maps at `resolution`: halved per doubling of the side, capped, and never below 8."""
        return max(_MIN_CHANNELS, min(self.channel_base // resolution, self.channel_max))

    @property
    def resolutions(self) -> tuple[int, ...]:
        """(4, 8, ..., resolution): every stage of progressive growing."""
        return tuple(2**k for k in range(2, int(math.log2(self.resolution)) + 1))

    def skips_at(self, resolution: int) -> bool:
        """Whether the generator block at `resolution` takes a UNet skip."""
        if not self.unet_skips or resolution < 8:
            return False
        return self.max_skip_resolution == 0 or resolution <= self.max_skip_resolution


def resolve_domain(domains: tuple[str, ...], domain: DomainArg) -> int | Tensor:
    """A domain name or index as an int, or a per-sample index tensor as a LongTensor (B,)."""
    if isinstance(domain, str):
        if domain not in domains:
            raise ValueError(f"unknown domain {domain!r}; known: {', '.join(domains)}")
        return domains.index(domain)
    if isinstance(domain, Tensor):
        if domain.dtype.is_floating_point or domain.dtype.is_complex or domain.dtype == torch.bool:
            raise ValueError(f"a domain tensor must hold integer indices, got {domain.dtype}")
        if domain.dim() == 0:
            domain = int(domain)
        elif domain.dim() == 1:
            return domain.long()
        else:
            raise ValueError(f"a domain tensor must have shape (B,), got {tuple(domain.shape)}")
    if isinstance(domain, bool) or not isinstance(domain, int | np.integer):
        raise TypeError(f"domain must be an index, a name or a LongTensor, got {type(domain).__name__}")
    if not 0 <= domain < len(domains):
        raise ValueError(f"domain index {domain} out of range for {len(domains)} domain(s)")
    return int(domain)


# ------------------------------------------------------------------------------------------------ building blocks


class EqualizedConv2d(nn.Module):
    """Conv2d with PGGAN's equalised learning rate: weights N(0, 1), scaled at run time by gain / sqrt(fan_in).

    The run-time scale makes every layer learn at the same speed under Adam whatever its fan-in. With
    `equalized=False` it is a plain conv initialised N(0, 0.02), as in the original Twin-GAN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        equalized: bool = True,
        gain: float = math.sqrt(2.0),
    ) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_in = in_channels * kernel_size * kernel_size
        self.scale = gain / math.sqrt(fan_in) if equalized else 1.0
        nn.init.normal_(self.weight, 0.0, 1.0 if equalized else 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        out_c, in_c, k, _ = self.weight.shape
        return f"{in_c}, {out_c}, kernel_size={k}, bias={self.bias is not None}, scale={self.scale:.4g}"


class EqualizedLinear(nn.Module):
    """Linear layer with the equalised learning rate of `EqualizedConv2d` (same rules, fan_in = in_features)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        equalized: bool = True,
        gain: float = math.sqrt(2.0),
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = gain / math.sqrt(in_features) if equalized else 1.0
        nn.init.normal_(self.weight, 0.0, 1.0 if equalized else 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape
        return f"{in_f}, {out_f}, bias={self.bias is not None}, scale={self.scale:.4g}"


class PixelNorm(nn.Module):
    """PGGAN's pixelwise feature normalisation: each pixel's feature vector to unit RMS.

    Keeps G and E activations from escalating; the mean of squares is taken in float32 so bf16 autocast cannot
    overflow or lose it.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.float().square().mean(dim=1, keepdim=True) + self.eps).to(x.dtype)


class MinibatchStdDev(nn.Module):
    """Appends one channel: the standard deviation across a group of samples, averaged to one scalar per group.

    Lets a discriminator see a lack of variety (mode collapse) that no single sample shows. The group is the
    largest divisor of the batch that is <= `group_size` (StyleGAN2 requires divisibility; any batch works here).
    As in PGGAN/StyleGAN2, sample n belongs to group n % (B / G). Computed in float32 whatever the autocast dtype.
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size = group_size
        self.eps = eps

    def group(self, batch: int) -> int:
        return next(g for g in range(min(self.group_size, batch), 0, -1) if batch % g == 0)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = self.group(b)
        y = x.float().reshape(g, b // g, c, h, w)
        std = (y.var(dim=0, unbiased=False) + self.eps).sqrt()  # (B/G, C, H, W)
        stat = std.mean(dim=(1, 2, 3)).reshape(1, b // g, 1, 1, 1)
        stat = stat.expand(g, b // g, 1, h, w).reshape(b, 1, h, w)
        return torch.cat([x, stat.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


class DomainNorm(nn.Module):
    """Normalisation whose scale and shift are chosen by the domain and shifted by the tag vector.

    This is the domain switch of Twin-GAN: all conv kernels are shared, and the per-domain (gamma, beta) decide
    which domain E reads and G writes. gamma = 1 + domain_gamma[d] + tag_gamma(tags), beta = domain_beta[d] +
    tag_beta(tags); all start at zero, so at init every domain is the same network and tags are a no-op.

    kind="instance": per-sample statistics (any batch size, mixed domains in one batch). kind="batch": one
    BatchNorm2d per domain, so each domain keeps its own running statistics for eval (as the original's
    per-domain batch renorm, with its eps 1e-3 and decay 0.99); a batch must then hold a single domain.
    """

    def __init__(self, channels: int, num_domains: int, tag_dim: int = 0, kind: str = "instance") -> None:
        super().__init__()
        if kind not in NORM_KINDS:
            raise ValueError(f"kind must be one of {NORM_KINDS}, got {kind!r}")
        self.kind = kind
        self.channels = channels
        self.num_domains = num_domains
        self.tag_dim = tag_dim
        if kind == "instance":
            self.norm: nn.Module = nn.InstanceNorm2d(channels, affine=False)
        else:
            self.norm = nn.ModuleList(
                nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01, affine=False) for _ in range(num_domains)
            )
        self.domain_gamma = nn.Parameter(torch.zeros(num_domains, channels))
        self.domain_beta = nn.Parameter(torch.zeros(num_domains, channels))
        self.tag_gamma: nn.Linear | None = None
        self.tag_beta: nn.Linear | None = None
        if tag_dim > 0:
            self.tag_gamma = nn.Linear(tag_dim, channels, bias=False)
            self.tag_beta = nn.Linear(tag_dim, channels, bias=False)
            nn.init.zeros_(self.tag_gamma.weight)
            nn.init.zeros_(self.tag_beta.weight)

    def _normalise(self, x: Tensor, domain: int | Tensor) -> Tensor:
        if self.kind == "instance":
            return self.norm(x)
        if isinstance(domain, Tensor):
            # Batch statistics over a mix of domains describe neither domain; refuse rather than train on them.
            first = domain[0]
            if not bool((domain == first).all()):
                raise ValueError(
                    "norm='batch' needs one domain per batch; got a mixed-domain batch (use norm='instance')"
                )
            domain = int(first)
        return self.norm[domain](x)

    def _per_domain(self, table: Tensor, domain: int | Tensor) -> Tensor:
        """(1, C) for one domain, (B, C) for per-sample domains. One-hot matmul, not indexing: its backward is
        deterministic on GPUs (index backward accumulates atomically)."""
        if isinstance(domain, Tensor):
            return F.one_hot(domain.to(table.device), self.num_domains).to(table.dtype) @ table
        return table[domain].unsqueeze(0)

    def forward(self, x: Tensor, domain: int | Tensor, tags: Tensor | None = None) -> Tensor:
        if isinstance(domain, Tensor) and domain.shape != (x.shape[0],):
            raise ValueError(f"domain tensor of shape {tuple(domain.shape)} for a batch of {x.shape[0]}")
        y = self._normalise(x, domain)
        gamma = 1.0 + self._per_domain(self.domain_gamma, domain)
        beta = self._per_domain(self.domain_beta, domain)
        if tags is not None and self.tag_gamma is not None and self.tag_beta is not None:
            gamma = gamma + self.tag_gamma(tags)
            beta = beta + self.tag_beta(tags)
        return y * gamma[:, :, None, None] + beta[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.channels}, num_domains={self.num_domains}, tag_dim={self.tag_dim}, kind={self.kind!r}"


class DomainConv(nn.Module):
    """The conv unit of E and G: conv -> DomainNorm -> LeakyReLU(0.2) -> PixelNorm. No bias: the norm shifts."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, config: NetworkConfig, tag_dim: int):
        super().__init__()
        self.conv = EqualizedConv2d(in_channels, out_channels, kernel_size, bias=False, equalized=config.equalized_lr)
        self.norm = DomainNorm(out_channels, len(config.domains), tag_dim, config.norm)
        self.pixel_norm = PixelNorm() if config.pixel_norm else nn.Identity()

    def forward(self, x: Tensor, domain: int | Tensor, tags: Tensor | None = None) -> Tensor:
        x = F.leaky_relu(self.norm(self.conv(x), domain, tags), LRELU_SLOPE)
        return self.pixel_norm(x)


class DiscriminatorConv(nn.Module):
    """The conv unit of D: conv (with bias) -> LeakyReLU(0.2); no normalisation, as PGGAN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, equalized: bool) -> None:
        super().__init__()
        self.conv = EqualizedConv2d(in_channels, out_channels, kernel_size, equalized=equalized)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.conv(x), LRELU_SLOPE)


def downsample(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 2)


def upsample(x: Tensor) -> Tensor:
    # Nearest-neighbour: its backward is a deterministic sum on CPU and GPU (bilinear's is not on CUDA).
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def _fade(new: Tensor, old: Tensor, alpha: float) -> Tensor:
    """alpha * new + (1 - alpha) * old; exactly `old` at alpha 0, and callers skip it at alpha 1."""
    return new * alpha + old * (1.0 - alpha)


def _stage(config: NetworkConfig, image_or_none: Tensor | None, resolution: int | None, alpha: float) -> int:
    """Validate the growing stage and return its resolution."""
    r = config.resolution if resolution is None else int(resolution)
    if r not in config.resolutions:
        raise ValueError(f"resolution {r} is not one of this network's {config.resolutions}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha < 1.0 and r == 4:
        raise ValueError("alpha < 1 needs a lower resolution to fade from; 4x4 has none")
    if image_or_none is not None and tuple(image_or_none.shape[-3:]) != (3, r, r):
        raise ValueError(f"expected images (B, 3, {r}, {r}), got {tuple(image_or_none.shape)}")
    return r


# ------------------------------------------------------------------------------------------------ networks


class EncoderBlock(nn.Module):
    """conv keeping channels, conv raising them (the UNet tap), as one PGGAN discriminator block; E pools after."""

    def __init__(self, resolution: int, config: NetworkConfig) -> None:
        super().__init__()
        c_in, c_out = config.channels(resolution), config.channels(resolution // 2)
        self.conv0 = DomainConv(c_in, c_in, 3, config, tag_dim=0)
        self.conv1 = DomainConv(c_in, c_out, 3, config, tag_dim=0)

    def forward(self, x: Tensor, domain: int | Tensor) -> Tensor:
        return self.conv1(self.conv0(x, domain), domain)


class Encoder(nn.Module):
    """Image -> 4x4 latent plus the UNet skips; the domain picks the normalisation parameters it reads with."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.from_rgb = nn.ModuleDict(
            {str(r): DomainConv(3, config.channels(r), 1, config, 0) for r in config.resolutions}
        )
        self.blocks = nn.ModuleDict({str(r): EncoderBlock(r, config) for r in config.resolutions if r >= 8})

    def forward(
        self, image: Tensor, domain: DomainArg, *, resolution: int | None = None, alpha: float = 1.0
    ) -> tuple[Tensor, dict[int, Tensor]]:
        """Returns latent (B, channels(4), 4, 4) and skips {res: (B, channels(res // 2), res, res)} for res r..8.

        At alpha < 1 the image also enters at r/2 (average-pooled) and is blended in after the new top block's pool.
        """
        r = _stage(self.config, image, resolution, alpha)
        d = resolve_domain(self.config.domains, domain)
        x = self.from_rgb[str(r)](image, d)
        skips: dict[int, Tensor] = {}
        res = r
        while res >= 8:
            skips[res] = self.blocks[str(res)](x, d)
            x = downsample(skips[res])
            if res == r and alpha < 1.0:
                x = _fade(x, self.from_rgb[str(r // 2)](downsample(image), d), alpha)
            res //= 2
        return x, skips


class GeneratorBlock(nn.Module):
    """Upsample, concatenate the encoder's skip at this resolution (if this block takes one), two conv units."""

    def __init__(self, resolution: int, config: NetworkConfig) -> None:
        super().__init__()
        self.takes_skip = config.skips_at(resolution)
        c_prev, c_out = config.channels(resolution // 2), config.channels(resolution)
        # The encoder's tap at this resolution has channels(resolution // 2) channels, like the upsampled input.
        self.skip_channels = c_prev if self.takes_skip else 0
        self.conv0 = DomainConv(c_prev + self.skip_channels, c_out, 3, config, config.norm_condition_dim)
        self.conv1 = DomainConv(c_out, c_out, 3, config, config.norm_condition_dim)

    def forward(self, x: Tensor, skip: Tensor | None, domain: int | Tensor, tags: Tensor | None) -> Tensor:
        x = upsample(x)
        if self.takes_skip:
            # No skip given (tag-conditioned generation from a latent alone): zeros, i.e. the skip's weights idle.
            if skip is None:
                skip = x.new_zeros(x.shape[0], self.skip_channels, x.shape[2], x.shape[3])
            x = torch.cat([x, skip.to(x.dtype)], dim=1)
        return self.conv1(self.conv0(x, domain, tags), domain, tags)


class Generator(nn.Module):
    """4x4 latent (+ skips) -> image; the domain picks the normalisation parameters, i.e. the output domain."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        c4 = config.channels(4)
        self.input0 = DomainConv(c4, c4, 3, config, config.norm_condition_dim)
        self.input1 = DomainConv(c4, c4, 3, config, config.norm_condition_dim)
        # A reference image's features (illust2vec's 4096-d encoding, say) are too wide to enter every
        # normalisation layer directly: one learned projection, shared by the layers, maps them down first.
        self.feature_embed: EqualizedLinear | None = None
        if config.feature_dim:
            self.feature_embed = EqualizedLinear(
                config.feature_dim, config.feature_embed_dim, bias=False, equalized=config.equalized_lr
            )
        self.blocks = nn.ModuleDict({str(r): GeneratorBlock(r, config) for r in config.resolutions if r >= 8})
        # Linear 1x1 to RGB with gain 1 (PGGAN): outputs are unbounded, the data live in [-1, 1].
        self.to_rgb = nn.ModuleDict(
            {
                str(r): EqualizedConv2d(config.channels(r), 3, 1, equalized=config.equalized_lr, gain=1.0)
                for r in config.resolutions
            }
        )

    def _condition(self, tags: Tensor | None, batch: int) -> Tensor | None:
        """The condition as the normalisation layers take it: tags as given, features unit-length then projected
        (a reference without features is all zeros and stays a no-op)."""
        if tags is None:
            return None
        width = self.config.condition_dim
        if tags.shape != (batch, width):
            raise ValueError(f"tags must have shape ({batch}, {width}), got {tuple(tags.shape)}")
        if self.feature_embed is None:
            return tags
        named, features = tags[:, : self.config.tag_dim], tags[:, self.config.tag_dim :]
        return torch.cat([named, self.feature_embed(F.normalize(features, dim=1))], dim=1)

    def forward(
        self,
        latent: Tensor,
        skips: Mapping[int, Tensor] | None,
        domain: DomainArg,
        tags: Tensor | None = None,
        *,
        resolution: int | None = None,
        alpha: float = 1.0,
    ) -> Tensor:
        """Image (B, 3, r, r). Skips missing (None, or not at some resolution) are zeros; tags None = no tags."""
        r = _stage(self.config, None, resolution, alpha)
        c4 = self.config.channels(4)
        if latent.dim() != 4 or tuple(latent.shape[1:]) != (c4, 4, 4):
            raise ValueError(f"expected a latent (B, {c4}, 4, 4), got {tuple(latent.shape)}")
        tags = self._condition(tags, latent.shape[0])
        d = resolve_domain(self.config.domains, domain)
        skips = skips or {}
        x = self.input1(self.input0(latent, d, tags), d, tags)
        prev = x
        for res in self.config.resolutions[1:]:
            if res > r:
                break
            prev = x
            x = self.blocks[str(res)](x, skips.get(res), d, tags)
        image = self.to_rgb[str(r)](x)
        if alpha < 1.0:
            image = _fade(image, upsample(self.to_rgb[str(r // 2)](prev)), alpha)
        return image


class DiscriminatorBlock(nn.Module):
    """conv keeping channels, conv raising them, average pool (PGGAN)."""

    def __init__(self, resolution: int, config: NetworkConfig, equalized: bool) -> None:
        super().__init__()
        c_in, c_out = config.channels(resolution), config.channels(resolution // 2)
        self.conv0 = DiscriminatorConv(c_in, c_in, 3, equalized)
        self.conv1 = DiscriminatorConv(c_in, c_out, 3, equalized)

    def forward(self, x: Tensor) -> Tensor:
        return downsample(self.conv1(self.conv0(x)))


class Discriminator(nn.Module):
    """PGGAN discriminator for one domain: logits (B,), optionally with a projection term on the tag vector.

    With spectral norm the equalised-LR scale is not applied (spectral norm sets the weight scale itself; the two
    together would shrink every layer by sqrt(2 / fan_in)).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        eq = config.equalized_lr and not config.d_spectral_norm
        c4 = config.channels(4)
        self.from_rgb = nn.ModuleDict(
            {str(r): DiscriminatorConv(3, config.channels(r), 1, eq) for r in config.resolutions}
        )
        self.blocks = nn.ModuleDict({str(r): DiscriminatorBlock(r, config, eq) for r in config.resolutions if r >= 8})
        self.mbstd = MinibatchStdDev(config.mbstd_group)
        self.conv = DiscriminatorConv(c4 + 1, c4, 3, eq)
        self.fc = EqualizedLinear(c4 * 16, c4, equalized=eq)
        self.out = EqualizedLinear(c4, 1, equalized=eq, gain=1.0)
        self.embed = (
            EqualizedLinear(config.condition_dim, c4, bias=False, equalized=eq, gain=1.0)
            if config.d_projection
            else None
        )
        if config.d_spectral_norm:
            for module in [m for m in self.modules() if isinstance(m, EqualizedConv2d | EqualizedLinear)]:
                nn.utils.parametrizations.spectral_norm(module)

    def forward(
        self, image: Tensor, tags: Tensor | None = None, *, resolution: int | None = None, alpha: float = 1.0
    ) -> Tensor:
        r = _stage(self.config, image, resolution, alpha)
        x = self.from_rgb[str(r)](image)
        res = r
        while res >= 8:
            x = self.blocks[str(res)](x)
            if res == r and alpha < 1.0:
                x = _fade(x, self.from_rgb[str(r // 2)](downsample(image)), alpha)
            res //= 2
        x = self.conv(self.mbstd(x))
        h = F.leaky_relu(self.fc(x.flatten(1)), LRELU_SLOPE)
        logits = self.out(h).squeeze(1)
        if self.embed is not None and tags is not None:
            if tags.shape != (image.shape[0], self.config.condition_dim):
                raise ValueError(
                    f"tags must have shape ({image.shape[0]}, {self.config.condition_dim}), got {tuple(tags.shape)}"
                )
            # Projection discriminator (Miyato & Koyama 2018): inner product of the tag embedding and the features.
            logits = logits + (self.embed(tags) * h).sum(dim=1)
        return logits


class TwinGAN(nn.Module):
    """One encoder and one generator shared by all domains, one discriminator per domain."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        clashes = [name for name in config.domains if hasattr(nn.ModuleDict, name)]
        if clashes:
            raise ValueError(f"domain name(s) {clashes} clash with nn.ModuleDict attributes; rename the domain(s)")
        self.config = config
        self.encoder = Encoder(config)
        self.generator = Generator(config)
        self.discriminators = nn.ModuleDict({name: Discriminator(config) for name in config.domains})

    def domain_index(self, domain: DomainArg) -> int | Tensor:
        return resolve_domain(self.config.domains, domain)

    def encode(self, image: Tensor, domain: DomainArg, **grow: Any) -> tuple[Tensor, dict[int, Tensor]]:
        return self.encoder(image, self.domain_index(domain), **grow)

    def decode(
        self,
        latent: Tensor,
        skips: Mapping[int, Tensor] | None,
        domain: DomainArg,
        tags: Tensor | None = None,
        **grow: Any,
    ) -> Tensor:
        return self.generator(latent, skips, self.domain_index(domain), tags, **grow)

    def translate(
        self, image: Tensor, source: DomainArg, target: DomainArg, tags: Tensor | None = None, **grow: Any
    ) -> Tensor:
        latent, skips = self.encode(image, source, **grow)
        return self.decode(latent, skips, target, tags, **grow)

    def discriminate(self, image: Tensor, domain: str, tags: Tensor | None = None, **grow: Any) -> Tensor:
        if domain not in self.discriminators:
            raise ValueError(f"unknown domain {domain!r}; known: {', '.join(self.config.domains)}")
        return self.discriminators[domain](image, tags, **grow)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Encoder and generator: they are trained together, by the generator's optimiser."""
        return [*self.encoder.parameters(), *self.generator.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminators.parameters())


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def file_order(options: Mapping[str, Any], first: Sequence[str]) -> dict[str, Any]:
    """`options` with the keys `first` leading, in that order: the order checkpoints and model files had
    before the options were declared once (core/params.py NetworkOptions now lists its own first), kept so
    that files stay byte-identical for identical weights and settings."""
    return {**{key: options[key] for key in first if key in options}, **options}
