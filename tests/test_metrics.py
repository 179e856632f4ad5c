"""Sample distances against mathematics: exact W2 identities, closed-form energy distance
and MMD between Gaussians, the noise floor, and input validation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from scipy.stats import norm

from labs_lib import (Gaussian, GaussianMixture, Moons, OrnsteinUhlenbeck, autocorrelation, energy_distance, mmd_rbf,
                      noise_floor, sample_quality, wasserstein2)
from labs_lib.metrics import NoiseFloor, SampleQuality
from labs_lib.simulators import EulerMaruyamaSimulator, time_grid

# --- W2: exact identities ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 200])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_w2_of_identical_sets_is_zero(n, d, gen):
    x = torch.randn(n, d, generator=gen)
    # cdist may evaluate ‖a‖² + ‖b‖² - 2a·b, leaving ~1e-16 on the diagonal in float64: √ ≈ 1e-8
    assert wasserstein2(x, x) < 1e-7
    assert wasserstein2(x, x[torch.randperm(n, generator=gen)]) < 1e-7  # a permutation is free


@pytest.mark.parametrize("n", [1, 5, 300])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_w2_of_a_translation_is_its_length(n, d, gen):
    """For y = x + v: Σ‖x_i - x_π(i) - v‖² = Σ‖x_i - x_π(i)‖² + n‖v‖² (the cross term vanishes
    because Σ_i (x_i - x_π(i)) = 0), minimised by π = id. So W2 = ‖v‖ exactly."""
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    v = torch.randn(d, generator=gen, dtype=torch.float64) * 3
    y = (x + v)[torch.randperm(n, generator=gen)]
    assert wasserstein2(x, y) == pytest.approx(float(v.norm()), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("n", [2, 10, 500])
def test_w2_in_1d_is_the_sorted_matching(n, gen):
    """On the line the monotone (sorted) coupling is optimal for the convex cost |a - b|²."""
    x = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    y = 0.5 * torch.randn(n, 1, generator=gen, dtype=torch.float64) ** 3 + 1.0
    expected = math.sqrt(float(((x.sort(0).values - y.sort(0).values) ** 2).mean()))
    assert wasserstein2(x, y) == pytest.approx(expected, rel=1e-9)


def test_w2_small_example_by_hand():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # the matching (0↔1, 1↔0) costs 1 + 1: W2 = 1
    assert wasserstein2(x, y) == pytest.approx(1.0)
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # one point moved by 5 out of two: W2 = √(25/2)
    assert wasserstein2(x[:1].expand(2, 2), z) == pytest.approx(math.sqrt(12.5))


@pytest.mark.parametrize("d", [1, 3])
def test_w2_is_a_metric_and_homogeneous(d, gen):
    x, y, z = (torch.randn(50, d, generator=gen, dtype=torch.float64) + i for i in range(3))
    assert wasserstein2(x, y) == pytest.approx(wasserstein2(y, x), rel=1e-12)
    assert wasserstein2(x, z) <= wasserstein2(x, y) + wasserstein2(y, z) + 1e-12
    assert wasserstein2(2.5 * x, 2.5 * y) == pytest.approx(2.5 * wasserstein2(x, y), rel=1e-9)


# --- energy distance and MMD against closed forms ---------------------------------------------


def energy_1d(v: float, s: float) -> float:
    """Population energy distance between N(0, s²) and N(v, s²) on the line:
    X - Y ~ N(-v, τ²), τ = s√2, E|X - Y| = τ√(2/π) e^{-v²/(2τ²)} + |v|(1 - 2Φ(-|v|/τ)),
    and E|X - X'| = τ√(2/π)."""
    tau = s * math.sqrt(2)
    e_xy = (tau * math.sqrt(2 / math.pi) * math.exp(-v * v / (2 * tau * tau))
            + abs(v) * (1 - 2 * norm.cdf(-abs(v) / tau)))
    return 2 * e_xy - 2 * tau * math.sqrt(2 / math.pi)


def mmd_gauss(v: float, s: float, ell: float, d: int) -> float:
    """Population MMD² between N(0, s²I) and N(v e_1, s²I) with k = exp(-‖a-b‖²/(2ℓ²)):
    E k(X, Y) = c·exp(-v²/(2(ℓ² + 2s²))), E k(X, X') = c, c = (ℓ²/(ℓ² + 2s²))^{d/2}."""
    c = (ell**2 / (ell**2 + 2 * s**2)) ** (d / 2)
    return 2 * c * (1 - math.exp(-v * v / (2 * (ell**2 + 2 * s**2))))


def repeats_of(distance, v: float, d: int, n: int = 400, repeats: int = 12, seed: int = 0, **kw) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    shift = torch.zeros(d, dtype=torch.float64)
    shift[0] = v
    return np.array([distance(torch.randn(n, d, generator=gen, dtype=torch.float64),
                              torch.randn(n, d, generator=gen, dtype=torch.float64) + shift, **kw)
                     for _ in range(repeats)])


@pytest.mark.parametrize("v", [0.0, 0.3, 1.0])
def test_energy_distance_matches_closed_form_in_1d(v):
    """The estimator is unbiased (U-statistics within sets, independent sets across), so the
    mean of 12 repeats lies within 5 SE = 5·SD/√12 of the population value (0 when v = 0)."""
    vals = repeats_of(energy_distance, v, d=1)
    se = vals.std(ddof=1) / math.sqrt(len(vals))
    assert abs(vals.mean() - energy_1d(v, 1.0)) < 5 * se
    if v > 0:  # clearly positive: the average of the repeats is more than 5 SE above 0
        assert vals.mean() > 5 * se and energy_1d(v, 1.0) > 0


@pytest.mark.parametrize("v, d, ell", [(0.0, 2, 1.0), (0.5, 2, 1.0), (1.0, 3, 2.0), (2.0, 1, 0.5)])
def test_mmd_matches_closed_form(v, d, ell):
    """Unbiased MMD²: the mean of 12 repeats lies within 5 SE of the Gaussian closed form."""
    vals = repeats_of(mmd_rbf, v, d=d, bandwidth=ell)
    se = vals.std(ddof=1) / math.sqrt(len(vals))
    assert abs(vals.mean() - mmd_gauss(v, 1.0, ell, d)) < 5 * se
    if v > 0:  # clearly positive: the average of the repeats is more than 5 SE above 0
        assert vals.mean() > 5 * se


@pytest.mark.parametrize("distance", [energy_distance, mmd_rbf], ids=["energy", "mmd"])
def test_same_distribution_is_at_floor_and_shift_is_clearly_above(distance):
    """Same distribution: the distance is inside the spread of its own noise floor (its
    expectation is 0). A shift of 1 in 2-D: the population value (ED ≈ 0.45, MMD² ≈ 0.1)
    is tens of floor SDs (≈ 0.005 and 0.002 at n = 500) above zero."""
    target = Gaussian.isotropic(2)
    n = 500
    floor = noise_floor(target, distance, n, repeats=20, seed=0)
    sd = float(np.std(floor.values))
    # 20 unbiased values with mean 0: their average is within 5 SE = 5·sd/√20 of 0
    assert abs(float(np.mean(floor.values))) < 5 * sd / math.sqrt(20)
    gen = torch.Generator().manual_seed(1)
    x, y = target.sample(n, generator=gen), target.sample(n, generator=gen)
    assert abs(distance(x, y)) < 5 * sd
    shifted = distance(x, y + torch.tensor([1.0, 0.0]))
    assert shifted > floor.high + 10 * sd


def test_energy_distance_of_a_set_with_itself_is_slightly_negative(gen):
    """With unbiased within-set means (diagonal left out) D(x, x) = 2S/n² - 2S/(n(n-1)) < 0,
    where S = Σ_ij ‖x_i - x_j‖: = -2S/(n²(n-1))."""
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    S = float(torch.cdist(x, x).sum())
    assert energy_distance(x, x) == pytest.approx(-2 * S / (30**2 * 29), rel=1e-6)


# --- noise floor and sample quality -------------------------------------------------------------


def test_noise_floor_values_and_decrease_with_n():
    target = GaussianMixture.symmetric_2d(3, radius=2.0, std=0.5)
    floors = [noise_floor(target, wasserstein2, n, repeats=6, seed=0) for n in (50, 200, 800)]
    for f, n in zip(floors, (50, 200, 800)):
        assert isinstance(f, NoiseFloor) and f.n == n
        assert isinstance(f.values, np.ndarray) and f.values.shape == (6,)
        assert bool((f.values > 0).all())
        assert f.high >= f.median
        assert re.fullmatch(rf"NoiseFloor\(median=[\d.e-]+, 95%=[\d.e-]+, n={n}, repeats=6\)", repr(f))
    medians = [f.median for f in floors]
    # Empirical W2 between two n-samples in 2-D shrinks roughly like n^{-1/2} (up to logs): a
    # factor ≈ 2 per 4× more samples, far outside the ≈ 15% spread of a median of 6.
    assert medians[0] > 1.3 * medians[1] > 1.3**2 * medians[2], medians


@pytest.mark.parametrize("repeats", [1, 3, 10])
def test_noise_floor_returns_repeats_values_reproducibly(repeats):
    target = Gaussian.isotropic(2)
    a = noise_floor(target, energy_distance, 40, repeats=repeats, seed=3)
    b = noise_floor(target, energy_distance, 40, repeats=repeats, seed=3)
    c = noise_floor(target, energy_distance, 40, repeats=repeats, seed=4)
    assert a.values.shape == (repeats,)
    assert np.array_equal(a.values, b.values) and not np.array_equal(a.values, c.values)


def test_sample_quality_repr_and_ratio():
    target = GaussianMixture.symmetric_2d(3, radius=2.0, std=0.5)
    samples = target.sample(300, generator=torch.Generator().manual_seed(10))
    q = sample_quality(samples, target, repeats=5, seed=0)
    assert isinstance(q, SampleQuality) and q.name == "W2"
    assert re.fullmatch(r"W2 = \d+\.\d{3} \(noise floor \d+\.\d{3}, ratio \d+\.\d{2}\)", repr(q)), repr(q)
    assert repr(q) == f"W2 = {q.value:.3f} (noise floor {q.floor.median:.3f}, ratio {q.ratio:.2f})"
    assert q.ratio == pytest.approx(q.value / q.floor.median)
    assert q.floor.n == 300 and q.floor.values.shape == (5,)
    # reproducible
    q2 = sample_quality(samples, target, repeats=5, seed=0)
    assert q2.value == q.value and np.array_equal(q2.floor.values, q.floor.values)
    # the reference set is drawn with `seed`: the value is W2 to target.sample(n, seed)
    ref = target.sample(300, generator=torch.Generator().manual_seed(0))
    assert q.value == pytest.approx(wasserstein2(samples, ref))
    # samples from the target sit at the floor (ratio ≈ 1, below the floor's spread), samples
    # from a shifted target do not
    assert q.value <= 1.5 * q.floor.high
    bad = sample_quality(samples + 2.0, target, repeats=5, seed=0)
    assert bad.ratio > 5


def test_sample_quality_with_another_distance():
    target = Gaussian.isotropic(2)
    samples = target.sample(100, generator=torch.Generator().manual_seed(1))
    q = sample_quality(samples, target, distance=energy_distance, name="energy", repeats=3)
    assert repr(q).startswith("energy = ") and "noise floor" in repr(q)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", [wasserstein2, energy_distance, mmd_rbf],
                         ids=["w2", "energy", "mmd"])
def test_metric_validation(distance):
    with pytest.raises(ValueError, match=r"x and y must have the same dimension, got \(5, 2\) and \(5, 3\)"):
        distance(torch.zeros(5, 2), torch.zeros(5, 3))
    x = torch.zeros(5, 2)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN or infinite values; a distance to it is meaningless"):
        distance(x, torch.zeros(5, 2))
    y = torch.zeros(5, 2)
    y[0, 0] = float("inf")
    with pytest.raises(ValueError, match="y contains NaN or infinite values"):
        distance(torch.zeros(5, 2), y)
    with pytest.raises(ValueError, match=r"x must have 2 axes, got shape \(5,\)"):
        distance(torch.zeros(5), torch.zeros(5, 1))
    with pytest.raises(ValueError, match=r"y must have 2 axes, got shape \(5, 1, 2\)"):
        distance(torch.zeros(5, 2), torch.zeros(5, 1, 2))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        distance(np.zeros((5, 2)), torch.zeros(5, 2))


def test_w2_needs_equal_sizes_but_others_do_not(gen):
    with pytest.raises(ValueError, match="x and y must hold the same number of samples, got 5 and 6"):
        wasserstein2(torch.zeros(5, 2), torch.zeros(6, 2))
    x, y = torch.randn(5, 2, generator=gen), torch.randn(8, 2, generator=gen)
    assert math.isfinite(energy_distance(x, y)) and math.isfinite(mmd_rbf(x, y))


def test_small_sets_and_bandwidth():
    with pytest.raises(ValueError, match="energy_distance needs at least two samples in each set"):
        energy_distance(torch.zeros(1, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="mmd_rbf needs at least two samples in each set"):
        mmd_rbf(torch.zeros(4, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="bandwidth must be > 0, got 0.0"):
        mmd_rbf(torch.zeros(4, 2), torch.zeros(4, 2), bandwidth=0.0)


def test_noise_floor_and_sample_quality_validation():
    target = Gaussian.isotropic(2)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        noise_floor(target, wasserstein2, 0)
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        noise_floor(target, wasserstein2, 10, repeats=0)
    with pytest.raises(ValueError, match=r"samples must have 2 axes, got shape \(10,\)"):
        sample_quality(torch.zeros(10), target)


def test_metrics_accept_tensors_that_require_grad(gen):
    x = torch.randn(20, 2, generator=gen, requires_grad=True)
    y = torch.randn(20, 2, generator=gen)
    for distance in (wasserstein2, energy_distance, mmd_rbf):
        assert isinstance(distance(x, y), float)


# --- autocorrelation ---------------------------------------------------------------------------------

# labs_lib.metrics.autocorrelation: the FFT sums against the direct definition, an AR(1)
# process against its exact autocorrelation φ^ℓ, the OU process against e^{-θ s}, and input checks.
def direct(paths: torch.Tensor, max_lag: int) -> torch.Tensor:
    """The estimator written out as a loop over lags: the definition, without the FFT."""
    x = paths.double()
    c = x - x.mean()
    var = c.pow(2).mean()
    k, b = x.shape
    return torch.stack([(c[: k - lag] * c[lag:]).sum() / (b * (k - lag)) / var for lag in range(max_lag + 1)])


@pytest.mark.parametrize("k,batch,max_lag", [(2, 1, 1), (17, 3, 16), (64, 5, 10), (100, 1, 0)])
def test_matches_the_direct_sums(k, batch, max_lag, gen):
    paths = torch.randn(k, batch, generator=gen).cumsum(0)
    out = autocorrelation(paths, max_lag)
    assert out.shape == (max_lag + 1,) and out.dtype == torch.float64
    torch.testing.assert_close(out, direct(paths, max_lag), rtol=1e-10, atol=1e-12)
    assert out[0].item() == pytest.approx(1.0)


def test_accepts_trajectory_shaped_paths(gen):
    paths = torch.randn(30, 4, 1, generator=gen)
    torch.testing.assert_close(autocorrelation(paths, 5), autocorrelation(paths[..., 0], 5))


def test_ar1_matches_phi_to_the_lag(gen):
    # x_{j+1} = φ x_j + √(1-φ²) ε, started in its stationary law N(0, 1): ρ(ℓ) = φ^ℓ exactly.
    phi, k, b = 0.8, 400, 500
    x = torch.empty(k, b, dtype=torch.float64)
    x[0] = torch.randn(b, generator=gen, dtype=torch.float64)
    for j in range(1, k):
        x[j] = phi * x[j - 1] + math.sqrt(1 - phi**2) * torch.randn(b, generator=gen, dtype=torch.float64)
    rho = autocorrelation(x, 10)
    # 200,000 pairs per lag, strongly correlated in time: the standard error is about 0.005.
    torch.testing.assert_close(rho, phi ** torch.arange(11, dtype=torch.float64), rtol=0, atol=0.03)


def test_stationary_ou_decays_like_exp_minus_theta_s():
    torch.manual_seed(3)
    theta, sigma, h = 2.0, 1.0, 0.01
    ou = OrnsteinUhlenbeck(theta, sigma)
    x0 = math.sqrt(ou.stationary_variance) * torch.randn(1000, 1)
    states = EulerMaruyamaSimulator(ou).simulate_with_trajectory(x0, time_grid(400, 0.0, 4.0)).states
    rho = autocorrelation(states, 50)
    lags = h * torch.arange(51, dtype=torch.float64)
    torch.testing.assert_close(rho, torch.exp(-theta * lags), rtol=0, atol=0.04)


@pytest.mark.parametrize("paths,max_lag,error,match", [
    ([[1.0, 2.0]], 0, TypeError, "torch.Tensor"),
    (torch.randn(5), 1, ValueError, "at least 2 axes"),
    (torch.randn(5, 2, 2), 1, ValueError, "1-D paths"),
    (torch.arange(10).view(5, 2), 1, TypeError, "floating-point"),
    (torch.randn(5, 2), 5, ValueError, "max_lag"),
    (torch.randn(5, 2), -1, ValueError, "max_lag"),
    (torch.randn(5, 2), 1.0, ValueError, "max_lag"),
    (torch.ones(5, 2), 1, ValueError, "constant"),
    (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), 1, ValueError, "NaN"),
])
def test_bad_input_is_explained(paths, max_lag, error, match):
    with pytest.raises(error, match=match):
        autocorrelation(paths, max_lag)


# --- sample_quality over several sets ----------------------------------------------------------------

# ``sample_quality`` over several independent sample sets (median of their distances) and
# ``SampleQuality.verdict``: the single-set behaviour is unchanged, the median is what it says,
# and the verdict's mark follows the ratio.
TARGET = GaussianMixture.symmetric_2d(3, radius=2.0, std=0.5)


def sets(k: int, n: int = 200, seed: int = 5, shift: float = 0.0):
    gen = torch.Generator().manual_seed(seed)
    return [TARGET.sample(n, generator=gen) + shift for _ in range(k)]


def test_one_set_in_a_list_is_the_single_set_case():
    (x,) = sets(1)
    a, b = sample_quality(x, TARGET, repeats=4, seed=2), sample_quality([x], TARGET, repeats=4, seed=2)
    assert a.value == b.value and np.array_equal(a.floor.values, b.floor.values)
    assert repr(a) == repr(b) and a.sets == b.sets == 1
    assert "median of" not in repr(a)


@pytest.mark.parametrize("container", [list, tuple])
def test_median_over_sets_with_fresh_references(container):
    xs = sets(3)
    q = sample_quality(container(xs), TARGET, repeats=4, seed=7)
    gen = torch.Generator().manual_seed(7)  # the references are drawn one after the other
    expected = np.median([wasserstein2(x, TARGET.sample(200, generator=gen)) for x in xs])
    assert q.value == pytest.approx(expected)
    assert q.sets == 3 and q.floor.n == 200
    # the floor is the same as for a single set of that size
    assert np.array_equal(q.floor.values, noise_floor(TARGET, wasserstein2, 200, 4, seed=8).values)
    assert repr(q) == (f"W2 = {q.value:.3f} (median of 3 sets of 200; noise floor {q.floor.median:.3f}, "
                       f"ratio {q.ratio:.2f})")


def test_tensor_split_is_accepted_and_other_distances_work():
    x = torch.cat(sets(3))
    q = sample_quality(x.split(200), TARGET, distance=energy_distance, name="energy", repeats=3)
    assert q.sets == 3 and repr(q).startswith("energy = ")


def test_median_of_sets_scatters_less_than_one_set():
    # Moons at n = 500: the two moons' proportions fluctuate, so single-set W2 ratios of a
    # perfect sampler spread widely. The median of 3 sets must spread less (seeded: no flake).
    moons = Moons()
    gen = torch.Generator().manual_seed(0)
    draws = [moons.sample(500, generator=gen) for _ in range(18)]
    singles = [sample_quality(x, moons, repeats=1, seed=100 + i).value for i, x in enumerate(draws)]
    triples = [sample_quality(draws[i:i + 3], moons, repeats=1, seed=200 + i).value for i in range(0, 18, 3)]
    assert np.std(triples) < np.std(singles)


def test_sets_must_share_a_shape_and_exist():
    with pytest.raises(ValueError, match="every sample set must have the same shape"):
        sample_quality([torch.zeros(10, 2), torch.zeros(12, 2)], TARGET)
    with pytest.raises(ValueError, match="non-empty list"):
        sample_quality([], TARGET)
    with pytest.raises(ValueError, match=r"samples must have 2 axes"):
        sample_quality([torch.zeros(10)], TARGET)


def test_sample_quality_gives_a_figure_not_a_verdict():
    # Verdicts come from the calibrated yardstick; W2 at these sizes cannot see errors inside modes.
    floor = NoiseFloor(values=np.array([1.0, 2.0, 3.0]), n=50)  # median 2
    q = SampleQuality("W2", 2.4, floor)
    assert q.ratio == pytest.approx(1.2) and not hasattr(q, "verdict")
    assert "✓" not in repr(q) and "ratio 1.20" in repr(q)


def test_shifted_samples_are_far_from_the_floor():
    q = sample_quality(sets(3, shift=1.5), TARGET, repeats=4)
    assert q.ratio > 1.5
