r"""A calibrated verdict on samples in the plane: does a sampler reproduce a target we know exactly?

Why not one distance? ``W2`` between 1,000 generated and 1,000 target points sits near its noise
floor for samplers that are visibly wrong: blobs 20% too narrow, 2% of the mass on bridges
between modes, a blurred checkerboard (Lab 05 measures it). Where the target's density
:math:`p` is known, three figures can each see one kind of mistake, with a floor far below
the mistakes, because they look at many samples (10,000 by default) through :math:`p` itself:

* **levels** — the Kolmogorov–Smirnov distance between the values of :math:`\log p(x)` at the
  samples and at target samples. A sampler that is too narrow lands too often where :math:`p` is
  high; too wide, blurred or too thick, too often where it is low. In units of probability:
  0.05 means that some level of :math:`p` has 5% of the mass on the wrong side of it.
* **off-support** — the fraction of samples where :math:`p` is lower than at 99.9% of the
  target's own samples: mass between the modes, outside the squares, off the curves. The target
  puts 0.1% there (nothing at all for a density that is flat on its support).
* **regions** — the total variation between the fractions of samples in the cells of an
  8 × 8 grid over the target's range (and outside it) and the target's: wrong mode weights,
  a dropped mode, mass moved from one place to another.

Each figure stands beside its **floor**: the same figure for exact samples of the same size,
scored the same way (median and largest of ``floor_repeats`` sets). A sampler passes when every
figure is within its tolerance; the tolerances sit well above the floors (at n = 10,000 the
largest of 20 exact sets stays below 0.8 of each tolerance, and none of 60 seeded exact sets per
target is rejected: ``tests/test_yardstick.py``) and below every mistake in the calibration
catalogue (:mod:`labs_lib.wrong_samplers`), which the same tests reject on every seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import ks_2samp
from torch import Tensor

from ._validation import validate_batch, validate_positive, validate_positive_int
from .distributions import Sampleable

#: What each figure may reach before the verdict fails, in units of probability mass.
DEFAULT_TOLERANCES = {"levels": 0.03, "off-support": 0.0025, "regions": 0.05}
#: The fraction of the target's own mass that counts as off its support.
OFF_SUPPORT_LEVEL = 0.001


def format_figure(name: str, value: float) -> str:
    """A figure's value as the reports print it: a percentage for the off-support mass."""
    return f"{100 * value:.2f}%" if name == "off-support" else f"{value:.3f}"


@dataclass(frozen=True)
class Figure:
    """One figure of a :class:`QualityReport`, read against exact samples of the same size.

    Attributes:
        name: ``"levels"``, ``"off-support"`` or ``"regions"``.
        value: the figure for the samples judged.
        floor_median, floor_max: the same figure for exact sample sets: median and largest.
        tolerance: the largest value accepted.
    """

    name: str
    value: float
    floor_median: float
    floor_max: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.value <= self.tolerance

    def format(self, value: float) -> str:
        """``value`` as this figure prints it (see :func:`format_figure`)."""
        return format_figure(self.name, value)

    def __str__(self) -> str:
        return f"{self.name} {self.format(self.value)} {'✓' if self.passed else '✗'}"


@dataclass(frozen=True)
class QualityReport:
    """The three figures of a :class:`Yardstick` for one set of samples, and the verdict.

    Attributes:
        figures: ``{"levels": Figure, "off-support": Figure, "regions": Figure}``.
        n: how many samples were judged.
    """

    figures: dict[str, Figure] = field(repr=False)
    n: int

    @property
    def passed(self) -> bool:
        """True when every figure is within its tolerance."""
        return all(f.passed for f in self.figures.values())

    def __getitem__(self, name: str) -> float:
        """The value of one figure, e.g. ``report["off-support"]``."""
        return self.figures[name].value

    @property
    def worst(self) -> float:
        """The largest ``value / tolerance`` over the figures: at most 1 when the report passes."""
        return max(f.value / f.tolerance for f in self.figures.values())

    @property
    def floor_ratio(self) -> float:
        """The largest ``value / floor_max`` over the figures: the samples' distance from exact ones in units of
        the worst of the yardstick's exact sample sets. About 0.8 for exact samples, at most 1 for most of them;
        a figure whose floor is 0 (no exact sample off a flat support) is divided by one sample's worth, 1/n.
        """
        return max(f.value / max(f.floor_max, 1 / self.n) for f in self.figures.values())

    def __str__(self) -> str:
        return " · ".join(str(f) for f in self.figures.values())

    def brief(self) -> str:
        """One short line for tables: the three values and the mark."""
        f = self.figures
        return (f"levels {f['levels'].value:.3f}  off-support {100 * f['off-support'].value:5.2f}%  "
                f"regions {f['regions'].value:.3f}  {'✓' if self.passed else '✗'}")

    def verdict(self) -> str:
        """The figures and one mark: ✓ when all pass, ✗ with the failing figures named.

        The floors and tolerances are the yardstick's, printed by ``repr(yardstick)``.
        """
        failed = [name for name, f in self.figures.items() if not f.passed]
        mark = "✓ as good as exact samples" if not failed else "✗ " + ", ".join(failed) + " off"
        return f"{self}  → {mark}"


class Yardstick:
    """Judges samples of ``target`` (a 2-D distribution with an exact density) against exact ones.

    The reference (``reference_size`` target samples, their log-densities, the grid of regions)
    and the floors are computed once, when the yardstick is made; each call then costs one
    log-density evaluation of the samples.

    Args:
        target: a distribution that can both sample and evaluate its exact density: a
            ``Sampleable`` that is a ``Density`` (a Gaussian, a mixture) or knows its
            ``exact_log_density`` (``Moons``, ``Circles``, ``Checkerboard``).
        n: the number of samples every call judges.
        tolerances: overrides of :data:`DEFAULT_TOLERANCES`, by figure name.
        reference_size: target samples behind the reference levels and region fractions.
        floor_repeats: exact sample sets of size ``n`` behind each floor.
        grid: cells per axis of the regions figure.
        seed: seeds the reference and the floors.

    Example::

        yardstick = ll.Yardstick(ll.Moons())
        print(yardstick(samples).verdict())   # samples: shape (10_000, 2)
    """

    def __init__(self, target: Sampleable, n: int = 10_000, tolerances: dict[str, float] | None = None,
                 reference_size: int = 100_000, floor_repeats: int = 20, grid: int = 8, seed: int = 0):
        log_density = getattr(target, "exact_log_density", getattr(target, "log_density", None))
        if not isinstance(target, Sampleable) or not callable(log_density):
            raise TypeError(f"target must both sample and evaluate its exact density (a labs_lib Sampleable with "
                            f"log_density or exact_log_density, such as GaussianMixture, Moons or Checkerboard), "
                            f"got {type(target).__name__}.")
        self._log_density = log_density
        if len(target.shape) != 1 or target.shape[0] not in (1, 2):
            raise ValueError(f"the yardstick judges points on the line or in the plane, got samples of shape "
                             f"{tuple(target.shape)}.")
        self.target = target
        self.n = validate_positive_int(n, "n")
        self.grid = validate_positive_int(grid, "grid")
        validate_positive_int(floor_repeats, "floor_repeats")
        validate_positive_int(reference_size, "reference_size")
        unknown = set(tolerances or {}) - set(DEFAULT_TOLERANCES)
        if unknown:
            raise ValueError(f"unknown figure(s) {sorted(unknown)} in tolerances; the figures are "
                             f"{list(DEFAULT_TOLERANCES)}.")
        self.tolerances = {**DEFAULT_TOLERANCES,
                           **{k: validate_positive(v, f"tolerances[{k!r}]") for k, v in (tolerances or {}).items()}}

        # The density is evaluated in the dtype and on the device the target samples in.
        probe = target.sample(1, generator=torch.Generator().manual_seed(seed))
        self._dtype, self._device = probe.dtype, probe.device
        gen = torch.Generator().manual_seed(seed)
        reference = self._sample(reference_size, gen)
        levels = self._levels(reference)
        self._reference_levels = np.sort(levels)
        self.off_support_level = float(np.quantile(levels, OFF_SUPPORT_LEVEL))
        finite = reference.numpy()
        pad = 1e-6 * (finite.max(0) - finite.min(0) + 1)
        self._edges = [np.linspace(lo - p, hi + p, grid + 1) for lo, hi, p in
                       zip(finite.min(0), finite.max(0), pad)]
        self._reference_regions = self._regions(finite)

        floors = np.array([self._figures(self._sample(self.n, gen)) for _ in range(floor_repeats)])
        self._floor_sets = floor_repeats
        self.floor_median = dict(zip(DEFAULT_TOLERANCES, np.median(floors, axis=0)))
        self.floor_max = dict(zip(DEFAULT_TOLERANCES, floors.max(axis=0)))
        too_noisy = [k for k in DEFAULT_TOLERANCES if self.floor_max[k] >= self.tolerances[k]]
        if too_noisy:
            raise ValueError(f"with n = {self.n} samples, exact samplers already reach the tolerance of "
                             f"{too_noisy} (largest floor {[round(self.floor_max[k], 4) for k in too_noisy]}): "
                             "judge more samples (a larger n) or raise those tolerances.")

    def _sample(self, n: int, gen: torch.Generator) -> Tensor:
        return self.target.sample(n, generator=gen).detach().cpu().double()

    def _levels(self, x: Tensor) -> np.ndarray:
        """``log p(x)`` as float64 NumPy, with ``-inf`` (off a bounded support) kept."""
        with torch.no_grad():
            log_p = self._log_density(x.to(dtype=self._dtype, device=self._device))
        log_p = log_p.detach().double().cpu().numpy()
        if np.isnan(log_p).any() or np.isposinf(log_p).any():
            raise ValueError("the target's log_density returned NaN or +inf; it cannot judge samples.")
        return log_p

    def _regions(self, x: np.ndarray) -> np.ndarray:
        counts, _ = np.histogramdd(x, bins=self._edges)
        inside = counts.ravel() / len(x)
        return np.append(inside, 1.0 - inside.sum())  # the last cell: outside the grid

    def _figures(self, x: Tensor) -> tuple[float, float, float]:
        levels = self._levels(x)
        # KS on levels: -inf (off a bounded support) becomes a value below every finite level.
        both = np.concatenate([levels, self._reference_levels])
        lowest = both[np.isfinite(both)].min(initial=0.0) - 1.0
        ks = ks_2samp(np.where(np.isfinite(levels), levels, lowest),
                      np.where(np.isfinite(self._reference_levels), self._reference_levels, lowest)).statistic
        off = float((levels < self.off_support_level).mean())
        tv = 0.5 * float(np.abs(self._regions(x.numpy()) - self._reference_regions).sum())
        return float(ks), off, tv

    def __call__(self, samples: Tensor) -> QualityReport:
        """Judge ``samples``, shape ``(n, d)`` with the yardstick's ``n``."""
        x = validate_batch(samples, "samples", dim=self.target.shape[0])
        if x.shape[0] != self.n:
            raise ValueError(f"this yardstick judges exactly n = {self.n} samples (its floors are for that size), "
                             f"got {x.shape[0]}. Draw {self.n}, or make a Yardstick(target, n={x.shape[0]}).")
        x = x.detach().cpu().double()
        if not bool(torch.isfinite(x).all()):
            raise ValueError("samples contain NaN or infinite values: the sampler diverged; there is nothing to judge.")
        values = self._figures(x)
        figures = {name: Figure(name, v, float(self.floor_median[name]), float(self.floor_max[name]),
                                self.tolerances[name])
                   for name, v in zip(DEFAULT_TOLERANCES, values)}
        return QualityReport(figures=figures, n=self.n)

    def __repr__(self) -> str:
        floors = ", ".join(f"{k} {format_figure(k, float(self.floor_median[k]))}" for k in DEFAULT_TOLERANCES)
        accepted = ", ".join(format_figure(k, self.tolerances[k]) for k in DEFAULT_TOLERANCES)
        return (f"Yardstick({type(self.target).__name__}, n={self.n:,}): exact samples score {floors} "
                f"(medians of {self._floor_sets} sets); accepted up to {accepted}")
