"""labs_lib.plotting.plot_histogram_1d: a normalised histogram with the exact density over it."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from labs_lib import Gaussian
from labs_lib.plotting import plot_histogram_1d


@pytest.mark.parametrize("shape", [(2000,), (2000, 1)])
def test_histogram_is_normalised_and_density_is_drawn(shape, gen):
    std = 1.5
    samples = std * torch.randn(shape, generator=gen)
    ax = plot_histogram_1d(samples, density=Gaussian.isotropic(1, std), bins=40)
    heights = np.array([p.get_height() for p in ax.patches])
    widths = np.array([p.get_width() for p in ax.patches])
    assert len(heights) == 40
    assert (heights * widths).sum() == pytest.approx(1.0)
    (line,) = ax.lines
    xs, ys = line.get_data()
    assert ys == pytest.approx(np.exp(-xs**2 / (2 * std**2)) / (std * math.sqrt(2 * math.pi)), rel=1e-4)
    # By default the span is the samples' range, widened by 5% on each side.
    lo, hi = float(samples.min()), float(samples.max())
    assert xs[0] == pytest.approx(lo - 0.05 * (hi - lo), rel=1e-5)
    assert xs[-1] == pytest.approx(hi + 0.05 * (hi - lo), rel=1e-5)


def test_draws_on_the_given_axes_with_a_fixed_range(gen):
    fig, ax = plt.subplots()
    out = plot_histogram_1d(torch.randn(100, generator=gen), ax=ax, x_range=(-4, 4), bins=8)
    assert out is ax and not ax.lines
    assert ax.patches[0].get_x() == pytest.approx(-4.0)
    assert ax.patches[-1].get_x() + ax.patches[-1].get_width() == pytest.approx(4.0)


def test_a_single_value_still_plots():
    ax = plot_histogram_1d(torch.full((5,), 2.0))
    assert len(ax.patches) == 60


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(samples=np.zeros(5)), TypeError, "torch.Tensor"),
    (dict(samples=torch.zeros(5, 2)), ValueError, r"\(n,\) or \(n, 1\)"),
    (dict(samples=torch.zeros(0)), ValueError, "n ≥ 1"),
    (dict(samples=torch.tensor([0.0, float("inf")])), ValueError, "NaN or infinite"),
    (dict(samples=torch.zeros(5), bins=0), ValueError, "bins"),
    (dict(samples=torch.zeros(5), x_range=(1.0, -1.0)), ValueError, "low < high"),
    (dict(samples=torch.zeros(5), density=lambda x: x), TypeError, "Density"),
])
def test_bad_input_is_explained(kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_histogram_1d(**kwargs)
