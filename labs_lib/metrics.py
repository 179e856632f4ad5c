r"""Distances between two sets of samples, and the noise floor that makes them readable.

A distance between two *finite* sample sets is never zero, even when both come from the
same distribution. So every figure this course reports stands beside its **noise floor**:
the same distance between two independent sample sets of the target, of the same size.
A model is as good as we can tell when its distance sits at the floor.

* :func:`wasserstein2` — exact :math:`W_2` between two equal-size empirical measures: the
  optimal matching (:func:`optimal_assignment`) is found by SciPy's linear-assignment solver
  (``linear_sum_assignment``).
* :func:`energy_distance` — :math:`2\,\mathbb E\|X-Y\| - \mathbb E\|X-X'\| - \mathbb E\|Y-Y'\|`.
* :func:`mmd_rbf` — squared maximum mean discrepancy with a Gaussian (RBF) kernel.
* :func:`frechet_distance` — the distance between Gaussians fitted to two sets (FID's formula).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ._validation import validate_batch, validate_positive, validate_positive_int
from .distributions import Sampleable

Distance = Callable[[Tensor, Tensor], float]


def _pair(x: Tensor, y: Tensor, same_size: bool = False) -> tuple[Tensor, Tensor]:
    x = validate_batch(x, "x", ndim=2)
    y = validate_batch(y, "y", ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if same_size and x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of samples, got {x.shape[0]} and {y.shape[0]}.")
    for name, t in (("x", x), ("y", y)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values; a distance to it is meaningless.")
    return x.detach().double().cpu(), y.detach().double().cpu()


def optimal_assignment(x: Tensor, y: Tensor) -> Tensor:
    r"""The permutation :math:`\pi` that minimises :math:`\sum_i \|x_i - y_{\pi(i)}\|^2`, solved exactly.

    The one home of the assignment behind :func:`wasserstein2` and the minibatch optimal-transport
    coupling of :func:`labs_lib.coupling.ot_coupling`: SciPy's ``linear_sum_assignment`` on the
    squared distances, computed in float64 on the CPU.

    Args:
        x, y: shape ``(n, d)`` each (same ``n``; a few thousand at most: the solver is cubic).

    Returns:
        Shape ``(n,)``, int64, on the CPU: ``y[perm]`` is the point matched to ``x`` row by row.
    """
    x, y = _pair(x, y, same_size=True)
    _, cols = linear_sum_assignment(torch.cdist(x, y).pow(2).numpy())
    return torch.from_numpy(cols).long()


def wasserstein2(x: Tensor, y: Tensor) -> float:
    r"""Exact 2-Wasserstein distance between the empirical measures of ``x`` and ``y``.

    With equal weights and equal sizes the optimal coupling is a permutation, so
    :math:`W_2^2 = \min_\pi \frac1n \sum_i \|x_i - y_{\pi(i)}\|^2`, solved exactly by
    :func:`optimal_assignment`.

    Args:
        x, y: shape ``(n, d)`` each (same ``n``; a few thousand at most: the solver is cubic).
    """
    perm = optimal_assignment(x, y)
    x, y = _pair(x, y, same_size=True)
    return float((x - y[perm]).pow(2).sum(1).mean().sqrt())


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
    ell = validate_positive(bandwidth, "bandwidth")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("mmd_rbf needs at least two samples in each set.")

    def k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * ell**2))

    kxx = (k(x, x).sum() - n) / (n * (n - 1))
    kyy = (k(y, y).sum() - m) / (m * (m - 1))
    return float(kxx + kyy - 2 * k(x, y).mean())


def frechet_distance(x: Tensor, y: Tensor) -> float:
    r"""Fréchet distance between Gaussians fitted to two feature sets (as in FID, on any features).

    .. math:: \|\mu_x - \mu_y\|^2 + \operatorname{tr}\big(\Sigma_x + \Sigma_y - 2(\Sigma_x\Sigma_y)^{1/2}\big)

    It compares means and covariances only, so it sees lost diversity (a smaller covariance) and
    shifted features, not the finer shape. The matrix square root is SciPy's ``sqrtm``.

    Args:
        x: shape ``(n, d)``; y: shape ``(m, d)``; both with at least two samples.
    """
    from scipy.linalg import sqrtm

    x, y = _pair(x, y)
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError("frechet_distance needs at least two samples in each set.")
    xa, ya = x.numpy(), y.numpy()
    # A small ridge keeps the product positive definite when a feature is constant in one set.
    ridge = 1e-6 * np.eye(xa.shape[1])
    cx, cy = np.atleast_2d(np.cov(xa, rowvar=False)) + ridge, np.atleast_2d(np.cov(ya, rowvar=False)) + ridge
    root = sqrtm(cx @ cy)
    root = root.real if np.iscomplexobj(root) else root  # rounding leaves tiny imaginary parts
    return float(((xa.mean(0) - ya.mean(0)) ** 2).sum() + np.trace(cx + cy - 2 * root))


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
    validate_positive_int(n, "n")
    validate_positive_int(repeats, "repeats")
    gen = torch.Generator().manual_seed(seed)
    vals = [distance(target.sample(n, generator=gen).cpu(), target.sample(n, generator=gen).cpu())
            for _ in range(repeats)]
    return NoiseFloor(values=np.asarray(vals), n=n)


@dataclass
class SampleQuality:
    """A distance from samples to the target, read against its noise floor.

    It gives a figure, not a verdict: at the sample sizes an exact assignment allows (a few
    thousand), W2 in the plane cannot tell exact samples from blobs 20% too narrow or from 2% of the
    mass on bridges between modes (Lab 05 measures it). Verdicts come from
    :class:`labs_lib.yardstick.Yardstick`, which is calibrated against such samplers.

    Attributes:
        name: the distance's name, e.g. ``"W2"``.
        value: the distance; with several sample sets, the median of their distances.
        floor: the noise floor at the same sample size.
        sets: how many independent sample sets ``value`` is the median of.
    """

    name: str
    value: float
    floor: NoiseFloor = field(repr=False)
    sets: int = field(default=1, repr=False)

    @property
    def ratio(self) -> float:
        """``value / floor.median``: 1 means as close as two target samples of this size."""
        return self.value / self.floor.median

    def __repr__(self) -> str:
        of = f"median of {self.sets} sets of {self.floor.n}; " if self.sets > 1 else ""
        return f"{self.name} = {self.value:.3f} ({of}noise floor {self.floor.median:.3f}, ratio {self.ratio:.2f})"


def sample_quality(samples: Tensor | Sequence[Tensor], target: Sampleable, distance: Distance = wasserstein2,
                   name: str = "W2", repeats: int = 10, seed: int = 0) -> SampleQuality:
    """Distance from ``samples`` (shape ``(n, d)``) to fresh target samples, with its floor.

    The reference set is drawn with ``seed`` and the floor with ``seed + 1``, so the figure
    is reproducible and the floor does not reuse the reference.

    ``samples`` may also be a list of ``k`` independent sets, each ``(n, d)``: each is compared
    with its own fresh reference set (drawn one after the other with ``seed``; the first is the
    single-set reference), and the value is the **median** of the ``k`` distances. For a perfect
    sampler that median and the floor's median estimate the same number, with less scatter
    than a single set gives.
    """
    sets = list(samples) if isinstance(samples, (list, tuple)) else [samples]
    if not sets:
        raise ValueError("samples must be a tensor of shape (n, d) or a non-empty list of such tensors.")
    sets = [validate_batch(x, "samples", ndim=2) for x in sets]
    n = sets[0].shape[0]
    if any(x.shape != sets[0].shape for x in sets):
        raise ValueError(f"every sample set must have the same shape, got {[tuple(x.shape) for x in sets]}.")
    gen = torch.Generator().manual_seed(seed)
    values = [distance(x.detach().cpu(), target.sample(n, generator=gen).cpu()) for x in sets]
    value = float(np.median(values)) if len(values) > 1 else values[0]
    return SampleQuality(name, value, noise_floor(target, distance, n, repeats, seed + 1), sets=len(sets))


def autocorrelation(paths: Tensor, max_lag: int) -> Tensor:
    r"""Empirical autocorrelation of stationary 1-D paths recorded on a uniform time grid.

    For a stationary process the correlation between :math:`X_t` and :math:`X_{t+\ell}` does
    not depend on :math:`t`, so the estimate pools every path and every start time:

    .. math:: \hat\rho(\ell) = \frac{\sum_{i}\sum_{j=0}^{k-1-\ell} (x_{j,i} - m)(x_{j+\ell,i} - m)}
                                   {b\,(k - \ell)\, v},

    where :math:`m` and :math:`v` are the mean and variance of all entries, ``k`` the number of
    recorded times and ``b`` the number of paths; :math:`\hat\rho(0) = 1`. The sums are computed
    with NumPy's FFT, in float64, so long paths are cheap. For the OU process in its stationary
    law, :math:`\rho(\ell) = e^{-\theta \ell \Delta t}`.

    Args:
        paths: shape ``(k, batch)`` or ``(k, batch, 1)`` (as in ``Trajectory.states``):
            ``paths[j, i]`` is path ``i`` at the ``j``-th recorded time.
        max_lag: the largest lag, in recorded steps, ``0 ≤ max_lag < k``.

    Returns:
        Shape ``(max_lag + 1,)``, float64: :math:`\hat\rho(0), \dots, \hat\rho(\text{max\_lag})`.
    """
    x = validate_batch(paths, "paths")  # a floating-point tensor with at least 2 axes
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(f"paths must have shape (k, batch) or (k, batch, 1) for 1-D paths, got {tuple(paths.shape)}.")
    k = x.shape[0]
    if isinstance(max_lag, bool) or not isinstance(max_lag, int) or not 0 <= max_lag < k:
        raise ValueError(f"max_lag must be an integer with 0 ≤ max_lag < {k} (the number of recorded times), "
                         f"got {max_lag!r}.")
    x = x.detach().double().cpu().numpy()
    if not np.isfinite(x).all():
        raise ValueError("paths contains NaN or infinite values.")
    centred = x - x.mean()
    var = float((centred**2).mean())
    if var == 0:
        raise ValueError("paths are constant: their autocorrelation is undefined.")
    n_fft = 1 << (2 * k - 1).bit_length()  # zero padding: no wrap-around between lags
    spectrum = np.fft.rfft(centred, n=n_fft, axis=0)  # NumPy's FFT is several times faster here
    power = spectrum.real**2 + spectrum.imag**2
    sums = np.fft.irfft(power, n=n_fft, axis=0)[: max_lag + 1].sum(axis=1)
    counts = x.shape[1] * (k - np.arange(max_lag + 1))
    return torch.from_numpy(sums / counts / var)


def distance_curve(states: Tensor, target: Sampleable, distance: Distance = wasserstein2,
                   seed: int = 0) -> np.ndarray:
    """The distance from a cloud of particles to the target at every recorded time.

    Every frame is compared with the *same* reference set of ``n`` target samples (drawn with
    ``seed``), so that the curve's wiggles come from the particles, not from the reference.
    Read the curve against ``noise_floor(target, distance, n, seed=...)`` with another seed:
    once it sits at the floor, the particles are as close to the target as we can tell.

    Args:
        states: shape ``(k, n, d)``, e.g. ``Trajectory.states``: ``n`` particles at ``k`` times.
        target: the distribution the particles should reach; its samples have shape ``(d,)``.
        distance: a sample distance such as :func:`wasserstein2` or :func:`energy_distance`.
        seed: seeds the reference set.

    Returns:
        Shape ``(k,)``: the distance at each recorded time.
    """
    if not isinstance(states, Tensor):
        raise TypeError(f"states must be a torch.Tensor of shape (k, n, d), got {type(states).__name__}. "
                        "For a simulation, pass trajectory.states.")
    if states.ndim != 3:
        raise ValueError(f"states must have shape (k, n, d) (recorded times, particles, coordinates), got "
                         f"{tuple(states.shape)}.")
    if not isinstance(target, Sampleable):
        raise TypeError(f"target must be a labs_lib Sampleable (with sample(n)), got {type(target).__name__}.")
    if tuple(target.shape) != tuple(states.shape[2:]):
        raise ValueError(f"the target's samples have shape {tuple(target.shape)}, but the particles have shape "
                         f"{tuple(states.shape[2:])}.")
    if not callable(distance):
        raise TypeError(f"distance must be a function of two sample sets, got {type(distance).__name__}.")
    reference = target.sample(states.shape[1], generator=torch.Generator().manual_seed(seed)).cpu()
    return np.asarray([distance(frame.detach().cpu(), reference) for frame in states])
