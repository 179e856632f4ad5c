r"""Distances between two sets of samples, and the noise floor that makes them readable.

A distance between two *finite* sample sets is never zero, even when both come from the
same distribution. So every figure this course reports stands beside its **noise floor**:
the same distance between two independent sample sets of the target, of the same size.
A model is as good as we can tell when its distance sits at the floor.

* :func:`wasserstein2` — exact :math:`W_2` between two equal-size empirical measures: the
  optimal matching is found by SciPy's linear-assignment solver (``linear_sum_assignment``).
* :func:`energy_distance` — :math:`2\,\mathbb E\|X-Y\| - \mathbb E\|X-X'\| - \mathbb E\|Y-Y'\|`.
* :func:`mmd_rbf` — squared maximum mean discrepancy with a Gaussian (RBF) kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ._validation import check_batch, check_positive, check_positive_int
from .distributions import Sampleable

Distance = Callable[[Tensor, Tensor], float]


def _pair(x: Tensor, y: Tensor, same_size: bool = False) -> tuple[Tensor, Tensor]:
    x = check_batch(x, "x", ndim=2)
    y = check_batch(y, "y", ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if same_size and x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of samples, got {x.shape[0]} and {y.shape[0]}.")
    for name, t in (("x", x), ("y", y)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values; a distance to it is meaningless.")
    return x.detach().double().cpu(), y.detach().double().cpu()


def wasserstein2(x: Tensor, y: Tensor) -> float:
    r"""Exact 2-Wasserstein distance between the empirical measures of ``x`` and ``y``.

    With equal weights and equal sizes the optimal coupling is a permutation, so
    :math:`W_2^2 = \min_\pi \frac1n \sum_i \|x_i - y_{\pi(i)}\|^2`, solved exactly.

    Args:
        x, y: shape ``(n, d)`` each (same ``n``; a few thousand at most: the solver is cubic).
    """
    x, y = _pair(x, y, same_size=True)
    cost = torch.cdist(x, y).pow(2).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def energy_distance(x: Tensor, y: Tensor) -> float:
    r"""Energy distance :math:`2\,\mathbb E\|X-Y\| - \mathbb E\|X-X'\| - \mathbb E\|Y-Y'\|`.

    The within-set means leave out the zero diagonal (unbiased U-statistics).

    Args:
        x: shape ``(n, d)``; y: shape ``(m, d)``.
    """
    x, y = _pair(x, y)
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("energy_distance needs at least two samples in each set.")
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).sum() / (n * (n - 1))
    yy = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * xy - xx - yy)


def mmd_rbf(x: Tensor, y: Tensor, bandwidth: float = 1.0) -> float:
    r"""Unbiased squared MMD with the kernel :math:`k(a, b) = \exp(-\|a-b\|^2 / (2\ell^2))`.

    Args:
        x: shape ``(n, d)``; y: shape ``(m, d)``; bandwidth: :math:`\ell > 0`.
    """
    x, y = _pair(x, y)
    ell = check_positive(bandwidth, "bandwidth")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("mmd_rbf needs at least two samples in each set.")

    def k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * ell**2))

    kxx = (k(x, x).sum() - n) / (n * (n - 1))
    kyy = (k(y, y).sum() - m) / (m * (m - 1))
    return float(kxx + kyy - 2 * k(x, y).mean())


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x`.

    For an error that behaves like :math:`C h^p`, the slope against the step size :math:`h`
    is the order :math:`p`.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1 or len(xa) < 2:
        raise ValueError(f"x and y must be 1-D with the same length ≥ 2, got shapes {xa.shape} and {ya.shape}.")
    if (xa <= 0).any() or (ya <= 0).any() or not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ValueError("x and y must be positive and finite to take logarithms.")
    return float(np.polyfit(np.log(xa), np.log(ya), 1)[0])


@dataclass
class NoiseFloor:
    """The distance between independent target sample sets of one size: its spread.

    Attributes:
        values: one distance per repeat, shape ``(repeats,)``.
        n: the sample size used on both sides.
    """

    values: np.ndarray
    n: int

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    @property
    def high(self) -> float:
        """The 95th percentile: a same-distribution pair rarely lies above it."""
        return float(np.quantile(self.values, 0.95))

    def __repr__(self) -> str:
        return f"NoiseFloor(median={self.median:.3g}, 95%={self.high:.3g}, n={self.n}, repeats={len(self.values)})"


def noise_floor(target: Sampleable, distance: Distance, n: int, repeats: int = 10,
                seed: int = 0) -> NoiseFloor:
    """Distances between ``repeats`` pairs of independent ``n``-sample sets of ``target``."""
    check_positive_int(n, "n")
    check_positive_int(repeats, "repeats")
    gen = torch.Generator().manual_seed(seed)
    vals = [distance(target.sample(n, generator=gen).cpu(), target.sample(n, generator=gen).cpu())
            for _ in range(repeats)]
    return NoiseFloor(values=np.asarray(vals), n=n)


@dataclass
class SampleQuality:
    """A distance from samples to the target, read against its noise floor."""

    name: str
    value: float
    floor: NoiseFloor = field(repr=False)

    @property
    def ratio(self) -> float:
        """``value / floor.median``: 1 means as close as two target samples of this size."""
        return self.value / self.floor.median

    def __repr__(self) -> str:
        return f"{self.name} = {self.value:.3f} (noise floor {self.floor.median:.3f}, ratio {self.ratio:.2f})"


def sample_quality(samples: Tensor, target: Sampleable, distance: Distance = wasserstein2,
                   name: str = "W2", repeats: int = 10, seed: int = 0) -> SampleQuality:
    """Distance from ``samples`` (shape ``(n, d)``) to fresh target samples, with its floor.

    The reference set is drawn with ``seed`` and the floor with ``seed + 1``, so the figure
    is reproducible and the floor does not reuse the reference.
    """
    samples = check_batch(samples, "samples", ndim=2)
    n = samples.shape[0]
    gen = torch.Generator().manual_seed(seed)
    reference = target.sample(n, generator=gen).cpu()
    value = distance(samples.detach().cpu(), reference)
    return SampleQuality(name, value, noise_floor(target, distance, n, repeats, seed + 1))
