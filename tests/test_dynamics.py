"""Dynamics against mathematics: time broadcasting, drift and diffusion values, the OU
marginals, Langevin drifts, validation, and Langevin dynamics reaching a Gaussian mixture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import labs_lib as ll
from labs_lib import (SDE, BrownianMotion, EulerMaruyamaSimulator, Gaussian, GaussianMixture, LangevinSDE, LinearODE,
                      Moons, OrnsteinUhlenbeck, expand_time, noise_floor, time_grid, wasserstein2)
from labs_lib.dynamics import ou_as_langevin

STATE_SHAPES = [(2,), (3,), (1, 4, 4), (3, 2, 2)]


# --- expand_time ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("state", STATE_SHAPES)
def test_expand_time_shapes(batch, state):
    x = torch.zeros(batch, *state, dtype=torch.float64)
    for t in (0.3, torch.tensor(0.3)):
        te = expand_time(t, x)
        assert te.ndim == 0 and te.dtype == torch.float64 and float(te) == pytest.approx(0.3)
    tb = torch.linspace(0, 1, batch)
    te = expand_time(tb, x)
    assert te.shape == (batch,) + (1,) * len(state) and te.dtype == torch.float64
    assert torch.equal((te + x)[:, ...].reshape(batch, -1)[:, 0], tb.double())  # broadcasts per particle
    assert (te + x).shape == x.shape


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(5, 1), torch.zeros(2, 5)])
def test_expand_time_rejects_wrong_batch(bad):
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(batch,\) = \(5,\), got"):
        expand_time(bad, x)


# --- drift and diffusion values -------------------------------------------------------------


@pytest.mark.parametrize("state", STATE_SHAPES)
@pytest.mark.parametrize("theta, sigma", [(0.0, 1.0), (0.7, 0.3), (2.0, 0.0)])
def test_ou_drift_and_diffusion(state, theta, sigma, gen):
    ou = OrnsteinUhlenbeck(theta, sigma)
    x = torch.randn(4, *state, generator=gen)
    t = torch.tensor(0.5)
    torch.testing.assert_close(ou.drift(x, t), -theta * x)
    assert ou.drift(x, t).shape == x.shape
    assert ou.diffusion(x, t) == sigma and isinstance(ou.diffusion(x, t), float)
    assert isinstance(ou, SDE)


@pytest.mark.parametrize("state", STATE_SHAPES)
def test_brownian_drift_and_diffusion(state, gen):
    bm = BrownianMotion(0.8)
    x = torch.randn(3, *state, generator=gen)
    d = bm.drift(x, torch.tensor(1.0))
    assert torch.equal(d, torch.zeros_like(x)) and d is not x
    assert bm.diffusion(x, torch.tensor(1.0)) == 0.8
    assert BrownianMotion().sigma == 1.0


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("sigma", [0.5, 1.0, math.sqrt(2)])
def test_langevin_drift_is_half_sigma_squared_score(dim, sigma, gen):
    L = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    cov = L @ L.T + 0.3 * torch.eye(dim, dtype=torch.float64)
    mean = torch.randn(dim, generator=gen, dtype=torch.float64)
    target = Gaussian(mean, cov)
    lang = LangevinSDE(target, sigma)
    x = torch.randn(6, dim, generator=gen, dtype=torch.float64)
    expected = 0.5 * sigma**2 * (-(x - mean) @ torch.linalg.inv(cov).T)
    torch.testing.assert_close(lang.drift(x, torch.tensor(0.0)), expected, rtol=1e-10, atol=1e-10)
    assert lang.diffusion(x, torch.tensor(0.0)) == sigma
    # also for a mixture: the drift is ½σ² times its (autograd) score
    gm = GaussianMixture.symmetric_2d(3, radius=2.0, std=0.6)
    y = torch.randn(5, 2, generator=gen)
    torch.testing.assert_close(LangevinSDE(gm, sigma).drift(y, torch.tensor(0.0)), 0.5 * sigma**2 * gm.score(y))


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("theta, sigma", [(0.5, 1.0), (1.0, 0.3), (3.0, 2.0)])
def test_ou_as_langevin_has_the_ou_drift(dim, theta, sigma, gen):
    """The OU law's stationary Gaussian N(0, σ²/(2θ)) has score -2θx/σ², so ½σ²·score = -θx."""
    lang = ou_as_langevin(theta, sigma, dim)
    x = torch.randn(7, dim, generator=gen)
    torch.testing.assert_close(lang.drift(x, torch.tensor(0.0)), OrnsteinUhlenbeck(theta, sigma).drift(x, None),
                               rtol=1e-5, atol=1e-6)
    assert lang.diffusion(x, torch.tensor(0.0)) == sigma
    torch.testing.assert_close(lang.density.cov, sigma**2 / (2 * theta) * torch.eye(dim))


# --- OU marginals ---------------------------------------------------------------------------


@pytest.mark.parametrize("theta, sigma", [(0.5, 1.0), (2.0, 0.3), (1.0, 0.0)])
@pytest.mark.parametrize("t", [0.0, 0.1, 1.0, 5.0])
def test_ou_marginal_mean_var(theta, sigma, t, gen):
    ou = OrnsteinUhlenbeck(theta, sigma)
    x0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    mean, var = ou.marginal_mean_var(x0, t)
    torch.testing.assert_close(mean, math.exp(-theta * t) * x0)
    assert var == pytest.approx(sigma**2 / (2 * theta) * (1 - math.exp(-2 * theta * t)), abs=1e-15)
    # solves the moment ODEs m' = -θm, v' = -2θv + σ² (central differences, error O(dt²))
    if t > 0:
        dt = 1e-5
        (m1, v1), (m0, v0) = ou.marginal_mean_var(x0, t + dt), ou.marginal_mean_var(x0, t - dt)
        torch.testing.assert_close((m1 - m0) / (2 * dt), -theta * mean, rtol=1e-6, atol=1e-8)
        assert (v1 - v0) / (2 * dt) == pytest.approx(-2 * theta * var + sigma**2, abs=1e-6)
    # and tends to the stationary variance
    if sigma > 0:
        assert ou.marginal_mean_var(x0, 50.0)[1] == pytest.approx(ou.stationary_variance, rel=1e-12)


def test_ou_with_zero_theta_is_brownian(gen):
    ou = OrnsteinUhlenbeck(0.0, 1.5)
    x0 = torch.randn(3, 2, generator=gen)
    mean, var = ou.marginal_mean_var(x0, 2.0)
    assert torch.equal(mean, x0) and mean is not x0
    assert var == pytest.approx(1.5**2 * 2.0)
    with pytest.raises(ValueError, match="theta = 0 the process is a Brownian motion: it has no stationary law"):
        _ = ou.stationary_variance  # reading the property is what raises


def test_ou_marginal_rejects_negative_time():
    with pytest.raises(ValueError, match=r"t must be ≥ 0, got -1.0"):
        OrnsteinUhlenbeck(1.0, 1.0).marginal_mean_var(torch.zeros(1, 1), -1.0)


# --- LinearODE ------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_linear_ode_decay_drift_and_flow(dim, gen):
    ode = LinearODE.decay(0.7, dim)
    x = torch.randn(4, dim, generator=gen)
    torch.testing.assert_close(ode.drift(x, torch.tensor(0.0)), -0.7 * x)
    torch.testing.assert_close(ode.flow(x, 2.0), math.exp(-1.4) * x)
    assert ode.dim == dim


def test_linear_ode_flow_is_a_flow(gen):
    """ψ_0 = id, ψ_s∘ψ_t = ψ_{s+t}, and d/dt ψ_t(x) = A ψ_t(x) (central differences, O(dt²))."""
    ode = LinearODE(LinearODE.spiral(0.4, 2.0).A.double())
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(ode.flow(x, 0.0), x)
    torch.testing.assert_close(ode.flow(ode.flow(x, 0.3), 0.5), ode.flow(x, 0.8))
    dt = 1e-6
    deriv = (ode.flow(x, 0.7 + dt) - ode.flow(x, 0.7 - dt)) / (2 * dt)
    torch.testing.assert_close(deriv, ode.drift(ode.flow(x, 0.7), None), rtol=1e-7, atol=1e-8)
    # the spiral's flow rotates by ωt and shrinks by e^{-decay·t}
    r0, r1 = x.norm(dim=1), ode.flow(x, 1.0).norm(dim=1)
    torch.testing.assert_close(r1, math.exp(-0.4) * r0)


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: LinearODE(torch.zeros(2, 3)), ValueError, r"A must be a square matrix of shape \(d, d\), got \(2, 3\)"),
    (lambda: LinearODE(torch.zeros(3)), ValueError, r"A must be a square matrix"),
    (lambda: LinearODE(torch.tensor([[float("nan")]])), ValueError, "A must be finite"),
    (lambda: LinearODE([[1.0]]), TypeError, "A must be a torch.Tensor"),
    (lambda: LinearODE.decay(-1.0), ValueError, r"theta must be ≥ 0, got -1.0"),
    (lambda: OrnsteinUhlenbeck(-0.5, 1.0), ValueError, r"theta must be ≥ 0, got -0.5"),
    (lambda: OrnsteinUhlenbeck(1.0, -2.0), ValueError, r"sigma must be ≥ 0, got -2.0"),
    (lambda: OrnsteinUhlenbeck(float("inf"), 1.0), ValueError, "theta must be finite"),
    (lambda: OrnsteinUhlenbeck("1", 1.0), TypeError, "theta must be a real number, got str"),
    (lambda: OrnsteinUhlenbeck(torch.ones(2), 1.0), ValueError,
     r"theta must be a number, got a tensor of shape \(2,\)"),
    (lambda: BrownianMotion(-1.0), ValueError, r"sigma must be ≥ 0"),
    (lambda: LangevinSDE(Gaussian.isotropic(2), 0.0), ValueError, r"sigma must be > 0, got 0.0"),
    (lambda: LangevinSDE(Gaussian.isotropic(2), -1.0), ValueError, r"sigma must be > 0"),
    (lambda: LangevinSDE(Moons(), 1.0), TypeError,
     "density must be a labs_lib Density \\(with log_density\\), got Moons"),
    (lambda: LangevinSDE(lambda x: -x.pow(2).sum(1), 1.0), TypeError, "got function"),
])
def test_dynamics_validation(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_parameters_accept_zero_dim_tensors():
    ou = OrnsteinUhlenbeck(torch.tensor(2.0), torch.tensor(1.0))
    assert ou.theta == 2.0 and isinstance(ou.theta, float)


def test_linear_ode_flow_validation():
    ode = LinearODE.decay(1.0, 2)
    with pytest.raises(ValueError, match=r"t must be a single time, got shape \(2,\)"):
        ode.flow(torch.zeros(3, 2), torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"x0 must have shape \(batch, 2\), got \(3, 3\)"):
        ode.flow(torch.zeros(3, 3), 1.0)


# --- Langevin dynamics reaches a Gaussian mixture ---------------------------------------------


def test_langevin_reaches_a_gaussian_mixture():
    """2,000 particles from N(0, 8² I) under dX = ½σ²∇log p dt + σ dW with σ = √2 (i.e.
    dX = ∇log p dt + √2 dW) end up distributed as the four-mode mixture p.

    Why it mixes by T = 5: inside a mode (std s = 0.8) the dynamics contract like OU with
    rate 1/s² ≈ 1.6, so a particle starting 25 away has forgotten its start after
    e^{-1.6·5}·25 ≈ 8e-3. Modes need not be crossed: the start and the target are both
    invariant under the quarter-turn rotation that permutes the modes (and the dynamics
    commute with it), so every particle ends in each mode with probability exactly 1/4.
    Cost ≈ 5 s of CPU time: 250 steps take 0.5 s, the seven 2,000-point assignment problems
    (one W2, a six-repeat noise floor) the rest.
    """
    n = 2000
    target = GaussianMixture.symmetric_2d(4, radius=2.5, std=0.8)
    sim = EulerMaruyamaSimulator(LangevinSDE(target, math.sqrt(2.0)))
    gen = torch.Generator().manual_seed(0)
    x0 = 8.0 * torch.randn(n, 2, generator=gen)
    torch.manual_seed(1)
    xs = sim.simulate(x0, time_grid(250, 0.0, 5.0))  # h = 0.02, h/s² ≈ 0.03: stable, small bias
    reference = target.sample(n, generator=gen)
    w2 = wasserstein2(xs, reference)
    floor = noise_floor(target, wasserstein2, n, repeats=6, seed=2)
    # Threshold 1.5 × the floor's 95% quantile. The floor values (W2 between two target sets
    # of 2,000, median ≈ 0.23) spread by ≈ 15% (SD ≈ 0.04) and are right-skewed: the
    # multinomial imbalance of mode counts moves mass ≈ 3.5 between modes. So 1.5·high sits
    # ≥ 5 SDs above the median: room for the error of a 95% quantile read off 6 repeats.
    # EM's bias is far smaller: with h = 0.02 its stationary variance inside a mode is
    # s²/(1 - h/(2s²)), inflating the std by h/(4s²) ≈ 0.8%, a W2 offset ≈ √2·0.8·0.008 ≈ 0.009.
    threshold = 1.5 * floor.high
    assert threshold >= floor.median + 5 * float(np.std(floor.values))
    assert w2 <= threshold, (w2, floor)
    assert w2 <= 1.5 * floor.median  # in fact it sits near the floor's median
    # The test has teeth: the starting cloud is far from the target. W2 ≥ |RMS‖x0‖ - RMS‖y‖|
    # (push both through the 1-Lipschitz map x ↦ ‖x‖, then Minkowski), ≈ 11.3 - 2.7 here.
    def rms(z):
        return float(z.double().pow(2).sum(1).mean().sqrt())

    assert abs(rms(x0) - rms(reference)) > 10 * threshold
    # Each mode holds 1/4 of the particles (by symmetry, see above): binomial SE
    # √(p(1-p)/n) ≈ 0.0097; five SEs.
    freq = torch.bincount(torch.cdist(xs, target.means).argmin(1), minlength=4).double() / n
    assert bool(((freq - 0.25).abs() < 5 * math.sqrt(0.25 * 0.75 / n)).all()), freq


# --- Langevin dynamics -------------------------------------------------------------------------------

# The facts notebook 03 measures, checked at library level: distance curves along a simulation,
# the OU process as Langevin dynamics of its stationary Gaussian, and the closed-form
# stationary variance of Euler–Maruyama for Langevin dynamics on a Gaussian target.
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
