"""Distributions against mathematics: analytic scores and log-densities, sample moments
with tolerances from their standard errors, the geometry of the toy data sets, and the
error messages for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.distributions import MultivariateNormal

from labs_lib import Checkerboard, Circles, Density, Gaussian, GaussianMixture, Moons


def random_spd(d: int, gen: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """A random symmetric positive definite matrix with a well-bounded condition number."""
    L = torch.randn(d, d, generator=gen, dtype=dtype)
    return L @ L.T / d + 0.5 * torch.eye(d, dtype=dtype)


def gaussian_cases(gen):
    yield "iso-1d", torch.tensor([0.7], dtype=torch.float64), torch.tensor([[2.0]], dtype=torch.float64)
    yield ("diag-2d", torch.tensor([1.0, -2.0], dtype=torch.float64),
           torch.diag(torch.tensor([0.5, 3.0], dtype=torch.float64)))
    for d in (1, 2, 3):
        yield f"full-{d}d", torch.randn(d, generator=gen, dtype=torch.float64), random_spd(d, gen)


def mixtures() -> dict[str, GaussianMixture]:
    gen = torch.Generator().manual_seed(7)
    means = torch.tensor([[0.0, 0.0], [2.0, 1.0], [-1.0, 3.0]], dtype=torch.float64)
    covs = torch.stack([random_spd(2, gen) for _ in range(3)])
    return {
        "random_2d": GaussianMixture.random_2d(5, std=0.8, scale=3.0, seed=1),
        "symmetric_2d": GaussianMixture.symmetric_2d(6, radius=2.0, std=0.7),
        "non_isotropic": GaussianMixture(means, covs, torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)),
        "per_mode_std_3d": GaussianMixture.isotropic(torch.randn(4, 3, generator=gen),
                                                     torch.tensor([0.5, 1.0, 1.5, 0.8])),
    }


# --- Gaussian: score and log-density ---------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 17])
def test_gaussian_score_is_minus_precision_times_offset(batch, gen):
    for name, mean, cov in gaussian_cases(gen):
        g = Gaussian(mean, cov)
        x = torch.randn(batch, mean.shape[0], generator=gen, dtype=torch.float64) * 2
        expected = -(x - mean) @ torch.linalg.inv(cov).T  # -Σ^{-1}(x - μ), row-wise
        torch.testing.assert_close(g.score(x), expected, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("batch", [1, 9])
def test_gaussian_log_density_matches_torch_distributions(batch, gen):
    for name, mean, cov in gaussian_cases(gen):
        g = Gaussian(mean, cov)
        x = torch.randn(batch, mean.shape[0], generator=gen, dtype=torch.float64) * 3
        ref = MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)
        out = g.log_density(x)
        assert out.shape == (batch,)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10, msg=name)


def test_gaussian_isotropic_and_float32(gen):
    g = Gaussian.isotropic(3, std=2.0)
    assert g.mean.dtype == torch.float32 and g.shape == (3,) and g.dim == 3
    torch.testing.assert_close(g.cov, 4.0 * torch.eye(3))
    x = torch.randn(5, 3, generator=gen)
    torch.testing.assert_close(g.score(x), -x / 4.0)
    ref = MultivariateNormal(torch.zeros(3), 4.0 * torch.eye(3)).log_prob(x)
    torch.testing.assert_close(g.log_density(x), ref)


def test_score_in_no_grad_does_not_touch_x(gen):
    g = Gaussian(torch.tensor([1.0, -1.0]), torch.tensor([[2.0, 0.5], [0.5, 1.0]]))
    x = torch.randn(6, 2, generator=gen)
    x_copy = x.clone()
    with torch.no_grad():
        s = g.score(x)
    assert torch.equal(x, x_copy)
    assert not x.requires_grad and x.grad is None
    assert not s.requires_grad
    torch.testing.assert_close(s, -(x - g.mean) @ torch.linalg.inv(g.cov).T)
    # with a leaf that requires grad: no gradient is accumulated into it
    xr = x.clone().requires_grad_(True)
    s2 = g.score(xr)
    assert xr.grad is None and not s2.requires_grad
    torch.testing.assert_close(s2, s)


# --- Gaussian mixture: log-density and score --------------------------------------------------


@pytest.mark.parametrize("name", list(mixtures()))
def test_mixture_log_density_matches_scipy(name, gen):
    gm = mixtures()[name]
    d = gm.shape[0]
    x = (torch.randn(50, d, generator=gen) * 2).to(gm.means.dtype)
    # Independent: log Σ_k π_k N(x; μ_k, Σ_k) with SciPy's densities, in float64.
    dens = sum(float(w) * multivariate_normal(m.double().numpy(), c.double().numpy()).pdf(x.double().numpy())
               for w, m, c in zip(gm.weights, gm.means, gm.covs))
    ref = torch.from_numpy(np.log(np.atleast_1d(dens)))
    out = gm.log_density(x)
    assert out.shape == (50,)
    rtol = 1e-10 if gm.means.dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", list(mixtures()))
def test_mixture_score_is_posterior_weighted_gaussian_score(name, gen):
    gm = mixtures()[name]
    gm = GaussianMixture(gm.means.double(), gm.covs.double(), gm.weights.double())
    x = torch.randn(40, gm.shape[0], generator=gen, dtype=torch.float64) * 2
    # ∇ log Σ_k π_k N_k(x) = Σ_k r_k(x) (-Σ_k^{-1}(x - μ_k)), r_k = π_k N_k(x) / p(x).
    comps = torch.stack([MultivariateNormal(m, c).log_prob(x) for m, c in zip(gm.means, gm.covs)], 1)
    r = torch.softmax(comps + gm.weights.log(), dim=1)  # (n, K)
    scores = torch.stack([-(x - m) @ torch.linalg.inv(c).T for m, c in zip(gm.means, gm.covs)], 1)  # (n, K, d)
    expected = (r.unsqueeze(-1) * scores).sum(1)
    torch.testing.assert_close(gm.score(x), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(mixtures()))
def test_mixture_score_matches_finite_differences(name, gen):
    gm = mixtures()[name]
    gm = GaussianMixture(gm.means.double(), gm.covs.double(), gm.weights.double())
    d = gm.shape[0]
    x = torch.randn(10, d, generator=gen, dtype=torch.float64)
    eps = 1e-5  # central differences: truncation O(eps²) ≈ 1e-10, rounding O(1e-16/eps) ≈ 1e-11
    fd = torch.stack([(gm.log_density(x + eps * e) - gm.log_density(x - eps * e)) / (2 * eps)
                      for e in torch.eye(d, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(gm.score(x), fd, rtol=1e-6, atol=1e-7)


def test_mixture_weights_are_normalised_and_components_sum():
    gm = GaussianMixture.isotropic(torch.tensor([[0.0, 0.0], [3.0, 0.0]]), 1.0, torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(gm.weights, torch.tensor([0.25, 0.75]))
    assert gm.n_modes == 2
    x = torch.tensor([[0.5, 0.5], [2.0, -1.0]])
    torch.testing.assert_close(gm.component_log_densities(x).logsumexp(1), gm.log_density(x))


# --- Sampling ---------------------------------------------------------------------------------


def test_gaussian_sample_moments(gen):
    n = 100_000
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    cov = random_spd(3, gen)
    x = Gaussian(mean, cov).sample(n, generator=gen)
    assert x.shape == (n, 3) and x.dtype == torch.float64
    # SE of a mean coordinate: √(Σ_ii / n); of a covariance entry: √((Σ_ii Σ_jj + Σ_ij²)/n)
    # (Gaussian fourth moments). Five SEs each.
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert bool(((x.mean(0) - mean).abs() < 5 * se_mean).all())
    var = torch.diagonal(cov)
    se_cov = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    assert bool(((torch.cov(x.T) - cov).abs() < 5 * se_cov).all())


@pytest.mark.parametrize("n", [1, 2, 33])
def test_sample_shapes(n):
    cases = [(Gaussian.isotropic(4), (4,)), (GaussianMixture.symmetric_2d(3), (2,)),
             (GaussianMixture.isotropic(torch.zeros(2, 5), 1.0), (5,)), (Moons(), (2,)), (Circles(), (2,)),
             (Checkerboard(), (2,))]
    for dist, shape in cases:
        x = dist.sample(n)
        assert x.shape == (n, *shape) and x.dtype == torch.float32, type(dist).__name__
        assert dist.shape == shape and dist.dim == math.prod(shape)


def test_mixture_component_frequencies_match_weights(gen):
    n = 40_000
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4])
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    stds = torch.tensor([0.5, 1.0, 0.7, 0.3])
    gm = GaussianMixture.isotropic(means, stds, weights)
    x = gm.sample(n, generator=gen)
    # Modes are ≥ 10 apart and std ≤ 1: a sample lands nearer to another mode with
    # probability < Φ(-5) ≈ 3e-7, so the nearest mean identifies the component.
    idx = torch.cdist(x, means).argmin(1)
    freq = torch.bincount(idx, minlength=4).double() / n
    # binomial SE √(p(1-p)/n) ≤ 0.0025; five SEs
    se = (weights.double() * (1 - weights.double()) / n).sqrt()
    assert bool(((freq - weights.double()).abs() < 5 * se).all()), freq
    for k in range(4):  # and each component is N(μ_k, std_k² I)
        xk = x[idx == k].double()
        nk = xk.shape[0]
        assert bool(((xk.mean(0) - means[k]).abs() < 5 * stds[k] / math.sqrt(nk)).all())
        # SE of a sample variance: var·√(2/n_k)
        assert bool(((xk.var(0) - stds[k] ** 2).abs() < 5 * stds[k] ** 2 * math.sqrt(2 / nk)).all())


@pytest.mark.parametrize("dist", [Gaussian.isotropic(2), GaussianMixture.random_2d(4), Moons(), Circles(),
                                  Checkerboard()], ids=lambda d: type(d).__name__)
def test_generator_makes_samples_reproducible(dist):
    a = dist.sample(100, generator=torch.Generator().manual_seed(3))
    b = dist.sample(100, generator=torch.Generator().manual_seed(3))
    c = dist.sample(100, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # and the generator, not the global stream, is what is used
    torch.manual_seed(99)
    d = dist.sample(100, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, d)


# --- Toy data sets ----------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_moons_geometry(scale, gen):
    n = 20_000
    x = Moons(noise=0.0, scale=scale).sample(n, generator=gen).double()
    # Noise-free: each point lies on the upper moon (circle of radius `scale` about
    # scale·(-0.5, -0.25), upper half) or the lower moon (about scale·(0.5, 0.25), lower half).
    c_up, c_lo = scale * torch.tensor([-0.5, -0.25]), scale * torch.tensor([0.5, 0.25])
    d_up, d_lo = (x - c_up).norm(dim=1), (x - c_lo).norm(dim=1)
    up = ((d_up - scale).abs() < 1e-5 * scale) & (x[:, 1] >= c_up[1] - 1e-6)
    lo = ((d_lo - scale).abs() < 1e-5 * scale) & (x[:, 1] <= c_lo[1] + 1e-6)
    assert bool((up | lo).all())
    # each moon has probability 1/2: binomial SE √(0.25/n) ≈ 0.0035; five SEs
    assert abs(float(up.double().mean()) - 0.5) < 5 * math.sqrt(0.25 / n)
    # the two moons' means are scale·(∓0.5, ±(2/π - 0.25)), so the data are centred at 0:
    # per coordinate SD ≤ scale·0.75, SE ≤ 0.75·scale/√n
    assert bool((x.mean(0).abs() < 5 * 0.75 * scale / math.sqrt(n)).all())


@pytest.mark.parametrize("factor, noise", [(0.3, 0.0), (0.5, 0.0), (0.8, 0.0), (0.3, 0.05), (0.5, 0.05)])
def test_circles_radii(factor, noise, gen):
    n, scale = 20_000, 3.0
    x = Circles(noise=noise, factor=factor, scale=scale).sample(n, generator=gen).double()
    r = x.norm(dim=1)
    # Split at the mid radius. It is (1 - factor)/2·scale from each circle, i.e. ≥ 5 noise SDs
    # (0.25·scale vs 0.05·scale) in the noisy cases, so a point is put on the wrong circle
    # with probability ≤ Φ(-5) ≈ 3e-7: the split is the circle a point was drawn from.
    inner = r < (1 + factor) / 2 * scale
    if noise == 0:
        assert bool(((r[inner] - factor * scale).abs() < 1e-5).all())
        assert bool(((r[~inner] - scale).abs() < 1e-5).all())
    else:
        # Radial noise is ≈ N(0, (noise·scale)²), and E|ρe + σε| = ρ + σ²/(2ρ) + O(σ⁴) in 2-D:
        # the mean radius of each circle lies within 5 SE (= 5·noise·scale/√n_c) of it.
        for mask, rho in ((inner, factor), (~inner, 1.0)):
            rc = r[mask]
            expected = scale * (rho + noise**2 / (2 * rho))
            assert abs(float(rc.mean()) - expected) < 5 * noise * scale / math.sqrt(rc.numel())
            # and the spread is the noise: SE of a standard deviation ≈ σ/√(2n). The norm's SD is
            # σ(1 - σ²/(8ρ²) + …), a deficit σ³/(8ρ²) ≤ 5e-4 here (σ = 0.15, ρ ≥ 0.9): allow 1e-3.
            assert abs(float(rc.std()) - noise * scale) < 5 * noise * scale / math.sqrt(2 * rc.numel()) + 1e-3
    # each circle has probability 1/2: binomial SE √(0.25/n) ≈ 0.0035; five SEs
    assert abs(float(inner.double().mean()) - 0.5) < 5 * math.sqrt(0.25 / n)


@pytest.mark.parametrize("grid", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_checkerboard_dark_squares_and_equal_mass(grid, scale, gen):
    n = 20_000
    x = Checkerboard(grid=grid, scale=scale).sample(n, generator=gen)
    assert bool((x.abs() <= scale).all())
    cell = torch.floor((x.double() / scale + 1) / 2 * grid).long().clamp(0, grid - 1)  # (n, 2): (i, j)
    assert bool(((cell[:, 0] + cell[:, 1]) % 2 == 0).all()), "a point fell on a light square"
    dark = [(i, j) for i in range(grid) for j in range(grid) if (i + j) % 2 == 0]
    counts = torch.zeros(grid, grid)
    counts.index_put_((cell[:, 0], cell[:, 1]), torch.ones(n), accumulate=True)
    p = 1 / len(dark)
    # each dark square gets mass 1/#dark: binomial SE √(p(1-p)/n); five SEs
    for i, j in dark:
        assert abs(float(counts[i, j]) / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
    # uniform within its square: the offset inside a cell has mean 1/2 (SE √(1/12/n))
    frac = (x.double() / scale + 1) / 2 * grid - cell
    assert bool(((frac.mean(0) - 0.5).abs() < 5 * math.sqrt(1 / 12 / n)).all())


def test_toy_sets_device_default_cpu():
    for d in (Moons(), Circles(), Checkerboard()):
        assert d.sample(3).device.type == "cpu"


# --- Validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: Gaussian(torch.zeros(2, 1), torch.eye(2)), ValueError, r"mean must have shape \(d,\), got \(2, 1\)"),
    (lambda: Gaussian(torch.zeros(2), torch.eye(3)), ValueError,
     r"cov must have shape \(2, 2\) to match mean, got \(3, 3\)"),
    (lambda: Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])), ValueError, "cov must be symmetric"),
    (lambda: Gaussian(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])), ValueError, "positive definite"),
    (lambda: Gaussian(torch.zeros(2), torch.zeros(2, 2)), ValueError, "positive definite"),
    (lambda: Gaussian([0.0, 0.0], torch.eye(2)), TypeError, "mean must be a torch.Tensor, got list"),
    (lambda: Gaussian.isotropic(2, std=0.0), ValueError, r"std must be > 0"),
    (lambda: Gaussian.isotropic(0), ValueError, "dim must be a positive integer"),
    (lambda: GaussianMixture(torch.zeros(3), torch.eye(3)), ValueError, r"means must have shape \(K, d\), got \(3,\)"),
    (lambda: GaussianMixture(torch.zeros(3, 2), torch.eye(2).expand(2, 2, 2)), ValueError,
     r"covs must have shape \(3, 2, 2\) to match means, got \(2, 2, 2\)"),
    (lambda: GaussianMixture(torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2), torch.ones(3)), ValueError,
     r"weights must have shape \(2,\), got \(3,\)"),
    (lambda: GaussianMixture(torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2), torch.tensor([1.0, -0.5])), ValueError,
     "weights must be non-negative with a positive sum"),
    (lambda: GaussianMixture(torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2), torch.zeros(2)), ValueError,
     "weights must be non-negative with a positive sum"),
    (lambda: GaussianMixture(torch.zeros(2, 2), torch.stack([torch.eye(2), -torch.eye(2)])), ValueError,
     "every covariance in covs must be positive definite"),
    (lambda: GaussianMixture.isotropic(torch.zeros(2, 2), -1.0), ValueError, "std must be > 0"),
    (lambda: GaussianMixture.isotropic(torch.zeros(2, 2), torch.tensor([1.0, 0.0])), ValueError, "std must be > 0"),
    (lambda: GaussianMixture.symmetric_2d(0), ValueError, "n_modes must be a positive integer"),
    (lambda: GaussianMixture.random_2d(3, std=-1.0), ValueError, "std must be > 0"),
    (lambda: Circles(factor=0.0), ValueError, r"factor \(inner radius / outer radius\) must be in \(0, 1\), got 0.0"),
    (lambda: Circles(factor=1.0), ValueError, r"must be in \(0, 1\)"),
    (lambda: Circles(factor=1.5), ValueError, r"must be in \(0, 1\)"),
    (lambda: Moons(noise=-0.1), ValueError, r"noise must be ≥ 0, got -0.1"),
    (lambda: Moons(scale=0.0), ValueError, r"scale must be > 0"),
    (lambda: Checkerboard(grid=0), ValueError, "grid must be a positive integer"),
    (lambda: Checkerboard(grid=2.0), ValueError, "grid must be a positive integer"),
])
def test_constructor_validation(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10"])
@pytest.mark.parametrize("dist", [Gaussian.isotropic(2), GaussianMixture.symmetric_2d(3), Moons(), Circles(),
                                  Checkerboard()], ids=lambda d: type(d).__name__)
def test_sample_rejects_bad_n(dist, n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        dist.sample(n)


@pytest.mark.parametrize("density", [Gaussian.isotropic(2), GaussianMixture.symmetric_2d(3)],
                         ids=lambda d: type(d).__name__)
def test_log_density_and_score_reject_wrong_shapes(density):
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got \(5, 3\)\.$"):
        density.log_density(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got \(2,\)\. Did you forget the "
                                         r"batch axis\? Try x\.unsqueeze\(0\)"):
        density.log_density(torch.zeros(2))
    with pytest.raises(ValueError, match=r"got \(4, 1, 2\)"):
        density.log_density(torch.zeros(4, 1, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        density.score(torch.zeros(5, 3))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        density.log_density(torch.zeros(5, 2, dtype=torch.int64))


def test_density_is_abstract():
    with pytest.raises(TypeError):
        Density()  # type: ignore[abstract]


# --- where a density is evaluated ------------------------------------------------------------


class _Recorded(Density):
    """A student-style density: a standard Gaussian that records the device of every input."""

    shape = (2,)

    def __init__(self, *tensors):
        self.held = tensors[0] if tensors else None
        self.seen: list[torch.device] = []

    def log_density(self, x):
        self.seen.append(x.device)
        return -0.5 * x.pow(2).sum(1)


def test_a_density_knows_its_device_from_its_own_tensors():
    assert _Recorded().device == torch.device("cpu")
    assert _Recorded(torch.zeros(2, device="meta")).device.type == "meta"
    net = torch.nn.Linear(2, 1).to("meta")

    class WithNetwork(_Recorded):
        def __init__(self):
            super().__init__()
            self.net = net

    assert WithNetwork().device.type == "meta"
    assert Gaussian.isotropic(2).device == torch.device("cpu")


def test_plots_evaluate_a_density_on_its_own_device(monkeypatch):
    from labs_lib import plotting

    density = _Recorded()
    monkeypatch.setattr(_Recorded, "device", property(lambda self: torch.device("meta")))
    # a meta tensor cannot be plotted (torch refuses to copy it to the CPU), but it must have been asked for
    with pytest.raises(NotImplementedError, match="meta tensor"):
        plotting.plot_density(density, (-2, 2, -2, 2), resolution=8)
    assert density.seen == [torch.device("meta")]
