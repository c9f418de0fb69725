"""The shared tag vocabulary, and naming a measured colour with it.

Every tagger answers in the same words ("green hair", "blue eyes", "male"), in one fixed order, so the
dataset stage can histogram them and the generator can be conditioned on a multi-hot vector whose
positions mean the same thing for every domain. Colours are named by the nearest reference colour in
CIELAB, where equal distances look roughly equally different (in RGB a dark brown is "closer" to black
than a person would say).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# sRGB (D65) to CIE XYZ, IEC 61966-2-1; then XYZ to L*a*b* with the D65 white point.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def srgb_to_lab(rgb: np.ndarray | Sequence[float]) -> np.ndarray:
    """CIELAB of sRGB colours given on a 0-255 scale; any leading shape, last axis RGB."""
    values = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE_D65
    delta = 6 / 29
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


@dataclass(frozen=True)
class Palette:
    """Colour names, each with one or more reference colours (light and dark shades of one name)."""

    names: tuple[str, ...]
    reference_names: tuple[str, ...]  # one entry per reference colour
    reference_lab: np.ndarray = field(repr=False)  # (references, 3)

    @classmethod
    def from_mapping(cls, colours: Mapping[str, Iterable[Sequence[int]]]) -> Palette:
        names, reference_names, references = [], [], []
        for name, shades in colours.items():
            names.append(name)
            for shade in shades:
                reference_names.append(name)
                references.append(shade)
        return cls(tuple(names), tuple(reference_names), srgb_to_lab(np.array(references, dtype=np.float64)))

    def nearest(self, rgb: Sequence[float], allowed: Sequence[str] | None = None) -> tuple[str, float]:
        """The name of the closest reference colour and its CIELAB distance (CIE76 delta E)."""
        distances = np.linalg.norm(self.reference_lab - srgb_to_lab(rgb), axis=1)
        if allowed is not None:
            unknown = sorted(set(allowed) - set(self.names))
            if unknown:
                raise ValueError(f"colours not in the palette: {', '.join(unknown)} (palette: {', '.join(self.names)})")
            mask = np.array([name in allowed for name in self.reference_names])
            distances = np.where(mask, distances, np.inf)
        best = int(np.argmin(distances))
        return self.reference_names[best], float(distances[best])


@dataclass(frozen=True)
class Vocabulary:
    """The named tags in their fixed order: hair colours, eye colours, then other tags."""

    hair: Palette
    eyes: Palette
    other: tuple[str, ...]

    @classmethod
    def from_params(cls, tags: object) -> Vocabulary:
        """From the `tags` section of params (core.params.TagsParams)."""
        return cls(
            hair=Palette.from_mapping(tags.hair_colors),  # type: ignore[attr-defined]
            eyes=Palette.from_mapping(tags.eye_colors),  # type: ignore[attr-defined]
            other=tuple(tags.other),  # type: ignore[attr-defined]
        )

    @property
    def hair_tags(self) -> tuple[str, ...]:
        return tuple(hair_tag(name) for name in self.hair.names)

    @property
    def eye_tags(self) -> tuple[str, ...]:
        return tuple(eye_tag(name) for name in self.eyes.names)

    @property
    def tags(self) -> tuple[str, ...]:
        return self.hair_tags + self.eye_tags + self.other

    def multi_hot(self, tags: Iterable[str]) -> np.ndarray:
        """A 0/1 vector in vocabulary order; an unknown tag is an error, not a silent zero."""
        index = {tag: i for i, tag in enumerate(self.tags)}
        vector = np.zeros(len(index), dtype=np.float32)
        for tag in tags:
            if tag not in index:
                raise ValueError(f"unknown tag {tag!r}; the vocabulary (params tags) has: {', '.join(self.tags)}")
            vector[index[tag]] = 1.0
        return vector


def hair_tag(colour: str) -> str:
    return f"{colour} hair"


def eye_tag(colour: str) -> str:
    return f"{colour} eyes"
