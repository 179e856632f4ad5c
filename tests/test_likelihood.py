"""The instantaneous change of variables against mathematics: exact divergences of fields with a
closed-form trace, Hutchinson's estimator (mean and variance), and log-likelihoods of flows whose
density is known exactly (a Gaussian, a Gaussian mixture's marginal path)."""

from __future__ import annotations

import math

import pytest
import torch

from labs_lib import AffinePath, CondOTScheduler, Gaussian, GaussianMixture, GaussianMixturePath
from labs_lib.likelihood import (METHOD_ORDERS, divergence, hutchinson_divergence, log_likelihood,
                                 standard_normal_log_density)
from labs_lib.metrics import loglog_slope

# --- exact divergence -------------------------------------------------------------------------


def _linear(A: torch.Tensor):
    return lambda x, t: x @ A.T


@pytest.mark.parametrize("d", [1, 2, 5])
def test_divergence_of_a_linear_field_is_the_trace(d, gen):
    A = torch.randn(d, d, generator=gen, dtype=torch.float64)
    x = torch.randn(7, d, generator=gen, dtype=torch.float64)
    assert torch.allclose(divergence(_linear(A), x, 0.3), torch.full((7,), float(A.trace()), dtype=torch.float64))


def test_divergence_of_an_elementwise_field():
    """u_i = sin(x_i) t + x_i³: div = t Σ cos(x_i) + 3 Σ x_i²."""
    x = torch.linspace(-2, 2, 12, dtype=torch.float64).reshape(4, 3)
    field = lambda x, t: torch.sin(x) * t + x**3  # noqa: E731
    expected = 0.7 * torch.cos(x).sum(1) + 3 * (x**2).sum(1)
    assert torch.allclose(divergence(field, x, 0.7), expected)


def _mixing_field(x, t):
    """A nonlinear field whose coordinates mix: its Jacobian is full and not symmetric."""
    W = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1], [2.0, 0.1, -0.4]], dtype=x.dtype)
    return torch.tanh(x @ W.T) * (1 + torch.as_tensor(t, dtype=x.dtype)) + x[:, [1, 2, 0]] ** 2


def test_divergence_matches_the_trace_of_the_autograd_jacobian(gen):
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    traces = torch.stack([torch.autograd.functional.jacobian(lambda y: _mixing_field(y[None], 0.2)[0], xi).trace()
                          for xi in x])
    assert torch.allclose(divergence(_mixing_field, x, 0.2), traces)


def test_divergence_under_no_grad_and_with_a_constant_field(gen):
    x = torch.randn(4, 2, generator=gen)
    with torch.no_grad():
        div = divergence(_linear(torch.eye(2)), x, 0.0)
    assert torch.equal(div, torch.full((4,), 2.0)) and not div.requires_grad
    assert torch.equal(divergence(lambda x, t: torch.ones(4, 2), x, 0.0), torch.zeros(4))  # no dependence on x


def test_divergence_of_a_network_leaves_no_gradients_behind(gen):
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    div = divergence(lambda x, t: net(x), torch.randn(3, 2, generator=gen), 0.5)
    assert div.shape == (3,) and not div.requires_grad
    assert all(p.grad is None for p in net.parameters())


def test_divergence_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        divergence(lambda x, t: x, torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="x's shape"):
        divergence(lambda x, t: x[:, :1], torch.zeros(3, 2), 0.0)
    with pytest.raises(TypeError, match="callable"):
        divergence("field", torch.zeros(3, 2), 0.0)
    with pytest.raises(FloatingPointError, match="NaN"):
        divergence(lambda x, t: torch.sqrt(x), torch.zeros(3, 2), 0.0)  # d/dx √x = ∞ at 0
    with pytest.raises(ValueError, match="probe"):
        hutchinson_divergence(lambda x, t: x, torch.zeros(3, 2), 0.0, probe="uniform")


# --- Hutchinson -------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_with_the_closed_form_variance(probe, gen):
    """One point copied n times: n independent one-probe estimates of tr J. With S = (J + Jᵀ)/2,
    Var = 2(‖S‖_F² - Σ S_ii²) for Rademacher probes, 2‖S‖_F² for Gaussian ones. The mean must lie
    within 5 standard errors of tr J. The sample variance of n = 20000 estimates has relative standard
    error √((κ - 1)/n), κ the estimates' kurtosis: measured κ = 1.8 (Rademacher) and 9.1 (Gaussian),
    so 0.6% and 2.0%, and 15% is over 7 standard errors. Measured: variance off by -0.5% and +1.3%,
    mean off by -0.44 and -1.74 standard errors."""
    x0 = torch.tensor([[0.3, -0.5, 0.8]], dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda y: _mixing_field(y[None], 0.2)[0], x0[0])
    S = (J + J.T) / 2
    var = 2 * (S.pow(2).sum() - S.diagonal().pow(2).sum()) if probe == "rademacher" else 2 * S.pow(2).sum()
    n = 20000
    est = hutchinson_divergence(_mixing_field, x0.expand(n, 3), 0.2, generator=gen, probe=probe)
    se = math.sqrt(float(var) / n)
    assert abs(float(est.mean() - J.trace())) < 5 * se
    assert float(est.var()) == pytest.approx(float(var), rel=0.15)


def test_hutchinson_with_rademacher_probes_is_exact_for_a_diagonal_jacobian(gen):
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    field = lambda x, t: torch.sin(x)  # noqa: E731
    assert torch.allclose(hutchinson_divergence(field, x, 0.0, generator=gen), divergence(field, x, 0.0))


def test_hutchinson_variance_falls_with_the_number_of_probes(gen):
    x = torch.tensor([[0.3, -0.5, 0.8]], dtype=torch.float64).expand(4000, 3)
    v1 = hutchinson_divergence(_mixing_field, x, 0.2, n_probes=1, generator=gen).var()
    v8 = hutchinson_divergence(_mixing_field, x, 0.2, n_probes=8, generator=gen).var()
    # relative standard errors √((κ - 1)/4000): κ = 1.8 for one probe, nearer 3 for the mean of 8, so
    # 1.4% and ≤ 2.2%, and ≤ 2.6% on the ratio: 25% is over 9 standard errors
    assert float(v1 / v8) == pytest.approx(8, rel=0.25)


# --- log-likelihood ---------------------------------------------------------------------------


def test_log_likelihood_of_a_gaussian_in_closed_form(gen):
    """Data N(m, s²I), CondOT path: X_t = t z + (1-t) ε is N(t m, σ_t² I), σ_t² = t² s² + (1-t)², and
    the marginal field is u_t(x) = m + (σ_t'/σ_t)(x - t m), with divergence d σ_t'/σ_t: written here
    from the formula, independently of labs_lib.paths. log p_1 is the Gaussian's log-density."""
    d, s = 3, 0.6
    m = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)

    def field(x, t):
        var = t**2 * s**2 + (1 - t) ** 2
        return m + (t * s**2 - (1 - t)) / var * (x - t * m)

    x = m + s * torch.randn(50, d, generator=gen, dtype=torch.float64)
    exact = Gaussian(m, s**2 * torch.eye(d, dtype=torch.float64)).log_density(x)
    # max |error| over the 50 points (measured): 16 steps 1.9e-2, 32: 4.3e-3, 64: 1.0e-3, 128: 2.5e-4 (slope 2.08)
    errs = [float((log_likelihood(field, x, n) - exact).abs().max()) for n in (32, 64)]
    assert errs[1] < 2e-3
    assert errs[0] / errs[1] == pytest.approx(4, rel=0.2)  # Heun: halving h quarters the error


def _mixture() -> GaussianMixture:
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    covs = torch.tensor([[[0.5, 0.2], [0.2, 0.4]], [[0.3, 0.0], [0.0, 0.3]], [[0.6, -0.1], [-0.1, 0.3]]],
                        dtype=torch.float64)
    return GaussianMixture(means, covs, torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64))


@pytest.fixture(scope="module")
def mixture_case():
    data = _mixture()
    mp = GaussianMixturePath(AffinePath(CondOTScheduler()), data)
    x = data.sample(64, generator=torch.Generator().manual_seed(1)).double()
    # The exact field is clamped to t_max = 1 - 1e-4, so p_{t_max} is what its ODE reaches exactly;
    # marginal(1.0) is also taken at t_max (it differs from the data density by up to 1.6e-3 here).
    return mp, x, mp.marginal(AffinePath.t_max).log_density(x)


def test_log_likelihood_of_the_exact_mixture_field_converges_at_the_solvers_order(mixture_case):
    """Mean |error| against marginal(1 - 1e-4).log_density, 2-D mixture of 3 correlated Gaussians,
    64 points, float64 (measured):
        n_steps       16       32       64       128     slope
        heun        3.5e-3   1.0e-3   2.7e-4   7.0e-5    1.89
        euler       1.4e-1   7.6e-2   3.9e-2   2.0e-2    0.95
    (The max error over points: Heun 9.0e-3 → 2.4e-4, slope 1.76; with 4 and 8 steps Heun is far off
    the asymptote, 0.53 and 0.059.)"""
    mp, x, ref = mixture_case
    ns = [16, 32, 64, 128]
    for method, order in METHOD_ORDERS.items():
        errs = [float((log_likelihood(mp.vector_field, x, n, method=method, t1=AffinePath.t_max) - ref).abs().mean())
                for n in ns]
        assert loglog_slope([1 / n for n in ns], errs) == pytest.approx(order, abs=0.25), (method, errs)
        if method == "heun":
            assert errs[-1] < 2e-4


def test_log_likelihood_to_t_equal_one_matches_the_data_density(mixture_case):
    mp, x, _ = mixture_case
    err = (log_likelihood(mp.vector_field, x, 64) - mp.data.log_density(x)).abs().max()
    assert err < 3e-3  # measured 9.2e-4: Heun's error plus the field frozen at t_max for the last 1e-4


def test_hutchinson_log_likelihood_is_unbiased(mixture_case, gen):
    """400 copies of 2 points: the trajectory is the exact-divergence one, only the accumulated
    divergence is random, so the mean must be within 5 standard errors of the exact-divergence value.
    Measured (16 Heun steps, one probe): one estimate's standard deviation 0.17 and 0.09 nats; the
    means off by -0.53 and -1.45 standard errors."""
    mp, x, _ = mixture_case
    copies = x[:2].repeat_interleave(400, 0)
    exact = log_likelihood(mp.vector_field, x[:2], 16)
    est = log_likelihood(mp.vector_field, copies, 16, divergence="hutchinson", generator=gen).reshape(2, 400)
    se = est.std(1) / math.sqrt(400)
    assert bool((se > 0).all())
    assert bool(((est.mean(1) - exact).abs() < 5 * se).all()), (est.mean(1) - exact, se)


def test_log_likelihood_under_no_grad_keeps_no_graph(gen):
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    with torch.no_grad():
        ll = log_likelihood(lambda x, t: net(x), torch.randn(5, 2, generator=gen), 4)
    assert ll.shape == (5,) and not ll.requires_grad and bool(torch.isfinite(ll).all())
    assert all(p.grad is None for p in net.parameters())


def test_log_likelihood_of_the_zero_field_is_the_noise_density(gen):
    x = torch.randn(5, 3, generator=gen)
    assert torch.allclose(log_likelihood(lambda x, t: 0 * x, x, 3), standard_normal_log_density(x))


def test_log_likelihood_rejects_bad_input_and_names_a_blow_up():
    x = torch.zeros(3, 2)
    for kwargs, match in [({"method": "rk4"}, "method"), ({"divergence": "approx"}, "divergence"),
                          ({"t1": 0.0}, "t1"), ({"t1": 1.5}, "t1"), ({"n_steps": 0}, "n_steps"),
                          ({"n_probes": 0}, "n_probes")]:
        with pytest.raises(ValueError, match=match):
            log_likelihood(lambda x, t: x, x, **kwargs)
    with pytest.raises(ValueError, match="NaN"):
        log_likelihood(lambda x, t: x, torch.full((3, 2), float("nan")))
    with pytest.raises(FloatingPointError, match="step 0"):
        log_likelihood(lambda x, t: x / (1 - t), torch.ones(3, 2), 4)  # infinite at t = 1
