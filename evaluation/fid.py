"""Fréchet distance (FID) and kernel distance (KID) between two sets of feature vectors.

Both are defined on any features; with Inception-v3's 2048-d pool features (inception.py) they are FID
(Heusel et al. 2017) and KID (Bińkowski et al. 2018). Conventions, as clean-fid and torch-fidelity use them:

- FID: the mean and the unbiased covariance (N - 1) of each set, in float64;
  FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
- KID: the unbiased estimator of the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
  averaged over `subsets` random subsets of `subset_size` vectors drawn without replacement from each set
  (the subset size is capped by the smaller set, as StyleGAN2-ADA does); the standard deviation over the
  subsets comes with it. Being unbiased, it is centred on 0 for two samples of one distribution and can be
  slightly negative.

The trace term: tr((S1 S2)^(1/2)) equals the sum of the square roots of the eigenvalues of
S1^(1/2) S2 S1^(1/2), a symmetric positive semi-definite matrix; `eigh` gives its eigenvalues as real
numbers, and rounding only leaves tiny negative ones, clipped to 0. scipy.linalg.sqrtm of the non-symmetric
product S1 S2 (the reference implementations) can return complex results or fail outright when the
product is singular, which it is whenever a set has fewer vectors than dimensions (covariances of fewer
than 2049 Inception features); pytorch-fid then adds an epsilon to the diagonals, changing the value.
The two agree to about 1e-8 on well-conditioned covariances (tests/test_evaluate.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureStats:
    """Mean and unbiased covariance of a set of feature vectors, in float64."""

    mean: np.ndarray  # (d,)
    cov: np.ndarray  # (d, d)
    count: int

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        x = _features(features, "features")
        if len(x) < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {len(x)}")
        return cls(mean=x.mean(axis=0), cov=np.cov(x, rowvar=False), count=len(x))


def _features(features: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be (N, d), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contain NaN or infinite values")
    return x


def _significant(values: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise set to 0: below n * eps * the largest, as numpy's
    matrix_rank decides. Why: a singular covariance (fewer images than dimensions) has hundreds of eigenvalues
    that are 0 up to +-1e-16, and their square roots (1e-8 each) would add BLAS-dependent noise to the trace."""
    cutoff = len(values) * np.finfo(values.dtype).eps * float(np.abs(values).max(initial=0.0))
    return np.where(values > cutoff, values, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (rounding noise set to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(_significant(values))) @ vectors.T


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """tr((cov1 cov2)^(1/2)) as the sum of sqrt(eigenvalues) of cov1^(1/2) cov2 cov1^(1/2)."""
    root = _psd_sqrt(cov1)
    middle = root @ cov2 @ root
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(_significant(values)).sum())


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """The Fréchet distance between the Gaussians fitted to two feature sets; >= 0, symmetric."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature sizes differ: {a.mean.shape[0]} and {b.mean.shape[0]}")
    mean_term = float(np.sum((a.mean - b.mean) ** 2))
    trace_term = float(np.trace(a.cov) + np.trace(b.cov)) - 2.0 * trace_sqrt_product(a.cov, b.cov)
    return max(mean_term + trace_term, 0.0)  # rounding can leave -1e-12 for identical sets


@dataclass(frozen=True)
class KernelDistance:
    """KID: the mean over subsets of the unbiased squared MMD, its standard deviation, and the sizes used."""

    mean: float
    std: float
    subset_size: int
    subsets: int


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD between two equally sized samples with the cubic polynomial kernel."""
    m, d = x.shape
    if y.shape != (m, d) or m < 2:
        raise ValueError(f"two samples of equal size >= 2 are needed, got {x.shape} and {y.shape}")
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_distance(
    x: np.ndarray, y: np.ndarray, *, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> KernelDistance:
    """KID of two feature sets: `subsets` draws of min(subset_size, len(x), len(y)) vectors from each."""
    x, y = _features(x, "x"), _features(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} and {y.shape[1]}")
    m = min(subset_size, len(x), len(y))
    if m < 2 or subsets < 1:
        raise ValueError(f"KID needs subsets >= 1 of at least 2 vectors, got {subsets} of {m}")
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            mmd2_unbiased(x[rng.choice(len(x), m, replace=False)], y[rng.choice(len(y), m, replace=False)])
            for _ in range(subsets)
        ]
    )
    return KernelDistance(mean=float(values.mean()), std=float(values.std()), subset_size=m, subsets=subsets)
