"""The facts notebook 03 measures, checked at library level: distance curves along a simulation,
the OU process as Langevin dynamics of its stationary Gaussian, and the closed-form
stationary variance of Euler–Maruyama for Langevin dynamics on a Gaussian target.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import labs_lib as ll
from labs_lib.dynamics import ou_as_langevin

# --- distance_curve -------------------------------------------------------------------------


def test_distance_curve_compares_every_frame_with_one_reference():
    target = ll.GaussianMixture.symmetric_2d(3, radius=2.0, std=0.5)
    reference = target.sample(200, generator=torch.Generator().manual_seed(4))
    shift = torch.tensor([0.6, -0.8])  # |shift| = 1
    states = torch.stack([reference, reference + shift, reference + 2 * shift])
    curve = ll.distance_curve(states, target, seed=4)
    assert isinstance(curve, np.ndarray) and curve.shape == (3,)
    # A translated copy of a point cloud is at W2 distance exactly |translation| from it.
    np.testing.assert_allclose(curve, [0.0, 1.0, 2.0], atol=1e-6)


def test_distance_curve_matches_the_distance_frame_by_frame():
    target = ll.Gaussian.isotropic(2, 1.5)
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(4, 100, 2, generator=gen) * torch.tensor([0.5, 1.0, 1.5, 3.0]).view(4, 1, 1)
    curve = ll.distance_curve(states, target, distance=ll.energy_distance, seed=9)
    reference = target.sample(100, generator=torch.Generator().manual_seed(9))
    expected = [ll.energy_distance(frame, reference) for frame in states]
    np.testing.assert_allclose(curve, expected, rtol=1e-12)
    # The frame drawn with the target's own spread is the closest one.
    assert int(np.argmin(curve)) == 2


def test_distance_curve_accepts_a_trajectory_on_its_way_to_the_target():
    torch.manual_seed(0)
    target = ll.Gaussian.isotropic(2, 1.0)
    sde = ll.LangevinSDE(target, 1.0)
    traj = ll.EulerMaruyamaSimulator(sde).simulate_with_trajectory(
        torch.full((300, 2), 6.0), ll.time_grid(400, 0.0, 8.0), every=100)
    curve = ll.distance_curve(traj.states, target)
    floor = ll.noise_floor(target, ll.wasserstein2, 300, repeats=8, seed=1)
    assert curve[0] > 5 and curve[-1] < 1.5 * floor.high


@pytest.mark.parametrize("states, target, distance, error, match", [
    ([[[0.0, 1.0]]], None, ll.wasserstein2, TypeError, "torch.Tensor"),
    (torch.zeros(5, 2), None, ll.wasserstein2, ValueError, r"\(k, n, d\)"),
    (torch.zeros(2, 5, 3), None, ll.wasserstein2, ValueError, "shape"),
    (torch.zeros(2, 5, 2), "not a distribution", ll.wasserstein2, TypeError, "Sampleable"),
    (torch.zeros(2, 5, 2), None, "W2", TypeError, "distance"),
])
def test_distance_curve_validates_its_input(states, target, distance, error, match):
    target = ll.Gaussian.isotropic(2) if target is None else target
    with pytest.raises(error, match=match):
        ll.distance_curve(states, target, distance=distance)


# --- OU = Langevin of N(0, σ²/(2θ)) ---------------------------------------------------------


@pytest.mark.parametrize("theta, sigma, dim", [(1.0, 1.0, 1), (0.5, 2.0, 2), (3.0, 0.4, 3)])
def test_ou_is_langevin_of_its_stationary_gaussian(theta, sigma, dim, gen):
    x = 3 * torch.randn(50, dim, generator=gen)
    t = torch.tensor(0.0)
    langevin = ou_as_langevin(theta, sigma, dim)
    ou = ll.OrnsteinUhlenbeck(theta, sigma)
    gaussian = ll.Gaussian.isotropic(dim, math.sqrt(sigma**2 / (2 * theta)))
    torch.testing.assert_close(gaussian.score(x), -(2 * theta / sigma**2) * x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(langevin.drift(x, t), ou.drift(x, t), rtol=1e-5, atol=1e-5)
    assert langevin.diffusion(x, t) == ou.diffusion(x, t) == sigma


# --- Euler–Maruyama's stationary law for Langevin on a Gaussian -----------------------------


@pytest.mark.parametrize("sigma, h", [(1.0, 0.5), (2.0, 0.5), (0.5, 4.0)])
def test_em_stationary_variance_of_gaussian_langevin(sigma, h):
    r"""For the target N(0, s²) the EM chain is x' = (1 - ah)x + σ√h ε with a = σ²/(2s²), whose
    stationary variance is s² / (1 - σ²h/(4s²)): it depends on σ and h only through σ²h."""
    s = 1.5
    torch.manual_seed(0)
    target = ll.Gaussian.isotropic(2, s)
    n = 8_000
    traj = ll.EulerMaruyamaSimulator(ll.LangevinSDE(target, sigma)).simulate_with_trajectory(
        target.sample(n), ll.time_grid(60, 0.0, 60 * h), every=10)
    measured = float(traj.states[-3:].var(dim=1).mean())
    predicted = s**2 / (1 - sigma**2 * h / (4 * s**2))
    # 3 frames x 2 coordinates x 8,000 particles: relative standard error about 1% (the frames
    # are 10 steps apart, so only partly correlated): 3% is a 3-sigma band, and the seed fixes the draw.
    assert measured == pytest.approx(predicted, rel=0.03)
    assert predicted > 1.05 * s**2  # the bias is far larger than the tolerance


def test_em_langevin_blows_up_beyond_the_stability_limit():
    # σ²h > 4s² makes |1 - ah| > 1: the chain diverges, and the simulator says so.
    torch.manual_seed(0)
    target = ll.Gaussian.isotropic(1, 1.0)
    sim = ll.EulerMaruyamaSimulator(ll.LangevinSDE(target, 1.0))
    with pytest.raises(FloatingPointError, match="too large"):
        sim.simulate(target.sample(10), ll.time_grid(2000, 0.0, 2000 * 4.5))
