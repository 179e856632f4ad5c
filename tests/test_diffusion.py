"""Diffusion as discretised SDEs, against closed forms: the DDPM forward chain's marginals, the VP
forward SDE's mean and variance ODEs, DDIM and DDPM with the exact score of a Gaussian, measured
convergence orders on a Gaussian-mixture path, the step schedules, and input validation.

Everything runs in float64 (the 1/α_t of the data prediction near t = 0 would cost float32 digits),
every random draw is seeded, and tolerances cite a standard error or a measured figure.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from labs_lib import (AffinePath, CondOTScheduler, CosineScheduler, EulerMaruyamaSimulator, EulerSimulator,
                      GaussianMixture, GaussianMixturePath, HeunSimulator, SqrtScheduler, VectorFieldODE)
from labs_lib.diffusion import (NFE_SAMPLERS, DDIMSimulator, DDPMSimulator, DPMSolverPP2M, VPForwardSDE,
                                data_prediction, ddpm_alpha_bars, ddpm_forward_step, ddpm_posterior,
                                ddpm_step_coefficients, dpmpp_2m_step, karras_time_grid, log_snr_time_grid,
                                power_time_grid, prediction_to_score, probability_flow_ode, samplers_at_nfe,
                                uniform_time_grid, validate_vp_scheduler, vp_reverse_sde)
from labs_lib.metrics import loglog_slope

F64 = torch.float64


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def path():
    return AffinePath(CosineScheduler())


@pytest.fixture
def gaussian_path(path):
    """A single Gaussian as data: every marginal, field and score is closed form."""
    mu = torch.tensor([[1.0, -0.5]], dtype=F64)
    cov = torch.tensor([[[0.5, 0.2], [0.2, 0.3]]], dtype=F64)
    return GaussianMixturePath(path, GaussianMixture(mu, cov))


@pytest.fixture
def mixture_path():
    return _mixture_path()


def _mixture_path():
    path = AffinePath(CosineScheduler())
    means = torch.tensor([[-1.5, 0.5], [1.0, -1.0], [0.5, 1.5]], dtype=F64)
    covs = torch.stack([0.3 * torch.eye(2, dtype=F64), torch.tensor([[0.4, 0.1], [0.1, 0.2]], dtype=F64),
                        0.25 * torch.eye(2, dtype=F64)])
    return GaussianMixturePath(path, GaussianMixture(means, covs, torch.tensor([0.3, 0.4, 0.3], dtype=F64)))


def eps_model(gmp):
    """The exact ε-prediction of a mixture path, ε̂ = -β_t ∇log p_t."""
    sch = gmp.path.scheduler
    return lambda x, t: -sch(torch.as_tensor(t, dtype=x.dtype).clamp(max=gmp.path.t_max)).beta_t * gmp.score(x, t)


# ---------------------------------------------------------------------------------------------------
# The forward process
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheduler", [CondOTScheduler(), SqrtScheduler()])
def test_non_vp_schedulers_are_rejected_with_a_clear_error(scheduler):
    for make in (lambda: validate_vp_scheduler(scheduler), lambda: VPForwardSDE(scheduler),
                 lambda: ddpm_alpha_bars(scheduler, uniform_time_grid(10, dtype=F64))):
        with pytest.raises(ValueError, match="variance preserving"):
            make()


def test_cosine_scheduler_is_vp():
    validate_vp_scheduler(CosineScheduler())


def test_alpha_bars_are_alpha_squared_in_ddpm_order():
    sch = CosineScheduler()
    ts = torch.linspace(0, 1, 21, dtype=F64)
    ab = ddpm_alpha_bars(sch, ts)
    assert ab.shape == (21,)
    assert torch.allclose(ab, sch(ts.flip(0)).alpha_t ** 2)
    assert float(ab[0]) == pytest.approx(1.0) and float(ab[-1]) == pytest.approx(0.0, abs=1e-15)
    assert bool((ab[1:] < ab[:-1]).all())


def test_forward_chain_marginal_parameters_are_exact():
    """Propagating (mean coefficient, variance) through the kernel's coefficients gives
    √ᾱ_k and 1 - ᾱ_k at every level, for an uneven grid too."""
    ts = karras_time_grid(CosineScheduler(), 30, dtype=F64)
    ab = ddpm_alpha_bars(CosineScheduler(), ts)
    mean, var = torch.tensor(1.0), torch.tensor(0.0)
    for k in range(1, len(ab)):
        a, b = ddpm_step_coefficients(ab[k - 1], ab[k])
        mean, var = a * mean, a**2 * var + b**2
        assert float(mean) == pytest.approx(math.sqrt(float(ab[k])), abs=1e-12)
        assert float(var) == pytest.approx(1 - float(ab[k]), abs=1e-12)


def test_forward_chain_samples_match_the_marginals():
    """20,000 seeded chains from x_0 = (1, -2): at levels 5, 10 and 20 of 20, the sample mean and
    variance of each coordinate lie within 5 standard errors of √ᾱ x_0 and 1 - ᾱ
    (SE of a mean √((1-ᾱ)/N), of a variance (1-ᾱ)√(2/(N-1)))."""
    n = 20_000
    ab = ddpm_alpha_bars(CosineScheduler(), torch.linspace(0, 1, 21, dtype=F64))
    x0 = torch.tensor([1.0, -2.0], dtype=F64)
    x = x0.expand(n, 2).clone()
    gen = torch.Generator().manual_seed(0)
    for k in range(1, 21):
        x = ddpm_forward_step(x, ab[k - 1], ab[k], generator=gen)
        if k in (5, 10, 20):
            v = 1 - float(ab[k])
            se_m, se_v = math.sqrt(v / n), v * math.sqrt(2 / (n - 1))
            assert (x.mean(0) - math.sqrt(float(ab[k])) * x0).abs().max() < 5 * se_m, k
            assert (x.var(0) - v).abs().max() < 5 * se_v, k


def test_vp_sde_reproduces_the_paths_mean_and_variance_odes():
    r"""With m(τ) = α_{1-τ}, v(τ) = β²_{1-τ}: dm/dτ = -θ m and dv/dτ = -2θ v + g² (central
    differences, step 1e-5, error ~1e-9), and g² = 2θ on a VP path."""
    sch = CosineScheduler()
    sde = VPForwardSDE(sch)
    x = torch.ones(1, 1, dtype=F64)
    d = 1e-5
    for tau in (0.05, 0.3, 0.5, 0.8, 0.95):
        m = lambda u: float(sch(torch.tensor(1 - u)).alpha_t)  # noqa: E731
        v = lambda u: float(sch(torch.tensor(1 - u)).beta_t) ** 2  # noqa: E731
        dm, dv = (m(tau + d) - m(tau - d)) / (2 * d), (v(tau + d) - v(tau - d)) / (2 * d)
        tt = torch.tensor(tau)
        theta = -float(sde.drift(x, tt))  # drift of the state 1 is -θ
        g2 = float(sde.diffusion(x, tt)) ** 2
        assert dm == pytest.approx(-theta * m(tau), abs=1e-8)
        assert dv == pytest.approx(-2 * theta * v(tau) + g2, abs=1e-8)
        assert g2 == pytest.approx(2 * theta, rel=1e-10)
        assert float(sde.theta(tt)) == pytest.approx(theta, rel=1e-12)


def test_forward_sde_marginal_and_clamped_ends():
    sde = VPForwardSDE(CosineScheduler())
    x0 = torch.tensor([[2.0, -1.0]], dtype=F64)
    mean, std = sde.marginal_mean_std(x0, 0.5)
    assert torch.allclose(mean, math.cos(math.pi / 4) * x0) and std == pytest.approx(math.sin(math.pi / 4))
    # τ = 1 (t = 0, α = 0) is clamped: finite, large
    assert math.isfinite(float(sde.theta(torch.tensor(1.0)))) and float(sde.theta(torch.tensor(1.0))) > 1e3
    with pytest.raises(ValueError, match="tau"):
        sde.marginal_mean_std(x0, 1.5)


# ---------------------------------------------------------------------------------------------------
# Samplers with the exact field
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["velocity", "score", "epsilon"])
def test_prediction_kinds_give_the_same_sampler(kind, mixture_path):
    """A velocity, a score and an ε-prediction of one path are one model: the samplers agree
    (to 1e-9 for DDIM, where only float64 round-off through the conversions separates them)."""
    model = {"velocity": mixture_path.vector_field, "score": mixture_path.score, "epsilon": eps_model(mixture_path)}
    torch.manual_seed(0)
    x = torch.randn(64, 2)
    ts = uniform_time_grid(20, dtype=F64)
    ref = DDIMSimulator(mixture_path.path, mixture_path.score, "score").simulate(x, ts)
    got = DDIMSimulator(mixture_path.path, model[kind], kind).simulate(x, ts)
    assert torch.allclose(got, ref, atol=1e-9)
    ref2 = DPMSolverPP2M(mixture_path.path, mixture_path.score, "score").sample(x, ts)
    assert torch.allclose(DPMSolverPP2M(mixture_path.path, model[kind], kind).sample(x, ts), ref2, atol=1e-9)
    u_ref = mixture_path.vector_field(x, torch.tensor(0.4))
    u = probability_flow_ode(mixture_path.path, model[kind], kind).drift(x, torch.tensor(0.4))
    assert torch.allclose(u, u_ref, atol=1e-9)


def test_ddim_transports_noise_to_the_gaussian_data_exactly_in_parameters(gaussian_path):
    """With the exact score of Gaussian data, a DDIM step is affine in x, so the 200-step map
    y = A x + b sends N(0, I) to N(b, A Aᵀ) exactly; read A and b off 3 points.
    Measured: max |b - μ| = 9.4e-4 (the N(0, I) start in place of p_{t_min}, of the order of
    α_{t_min}|μ| = 1.6e-3), max |A Aᵀ - Σ| = 6.5e-3 at 200 steps and 1.29e-2 at 100 (the O(h)
    discretisation: ratio 1.99); tolerances 1e-2, and a ratio in (1.6, 2.4) for order 1."""
    sim = DDIMSimulator(gaussian_path.path, gaussian_path.score, "score")
    mu, cov = gaussian_path.data.means[0], gaussian_path.data.covs[0]
    probe = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=F64)
    errs = []
    for n in (100, 200):
        y = sim.simulate(probe, uniform_time_grid(n, dtype=F64))
        b, A = y[0], (y[1:] - y[0]).T
        errs.append(float((A @ A.T - cov).abs().max()))
        assert float((b - mu).abs().max()) < 1e-2
    assert errs[1] < 1e-2
    assert 1.6 < errs[0] / errs[1] < 2.4, errs


def test_ddim_and_heun_samples_have_the_gaussian_moments(gaussian_path):
    """N(0, I) pushed by DDIM (200 steps) and Heun on the PF-ODE: sample mean and covariance within
    5 SE (SE of a mean √(Σ_ii/N) ≤ 0.005, of a covariance entry ≤ 0.005) plus the 0.0065 bias above.
    Measured (seed 1): mean errors ≤ 0.0026 for both, covariance ≤ 0.0060 (DDIM) and 0.0046 (Heun)."""
    n = 20_000
    torch.manual_seed(1)
    x = torch.randn(n, 2)
    mu, cov = gaussian_path.data.means[0], gaussian_path.data.covs[0]
    for sim in (DDIMSimulator(gaussian_path.path, gaussian_path.score, "score"),
                HeunSimulator(probability_flow_ode(gaussian_path.path, gaussian_path.score, "score"))):
        y = sim.simulate(x, uniform_time_grid(200, dtype=F64))
        assert float((y.mean(0) - mu).abs().max()) < 5 * 0.005
        assert float((torch.cov(y.T) - cov).abs().max()) < 5 * 0.005 + 0.0065


def test_ddpm_ancestral_reaches_the_gaussian_data(gaussian_path):
    """DDPM with the exact score, 200 steps, 20,000 seeded samples. Measured (seed 1): mean errors
    0.011 and 0.006, covariance errors up to 0.0095 (the O(h) bias of dropping Var[x_1 | x_t]:
    0.032 at 100 steps). Tolerances: mean 5 SE = 0.025; covariance 5 SE + 0.015 = 0.04."""
    torch.manual_seed(1)
    x = torch.randn(20_000, 2)
    y = DDPMSimulator(gaussian_path.path, gaussian_path.score, "score").simulate(x, uniform_time_grid(200, dtype=F64))
    mu, cov = gaussian_path.data.means[0], gaussian_path.data.covs[0]
    assert float((y.mean(0) - mu).abs().max()) < 0.025
    assert float((torch.cov(y.T) - cov).abs().max()) < 0.04


def test_data_prediction_is_the_posterior_mean_of_gaussian_data(gaussian_path):
    """For data N(μ, Σ), E[x_1 | x_t = x] = μ + α Σ (α² Σ + β² I)^{-1} (x - α μ): Tweedie in closed form."""
    mu, cov = gaussian_path.data.means[0], gaussian_path.data.covs[0]
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
    for kind, model in (("score", gaussian_path.score), ("velocity", gaussian_path.vector_field),
                        ("epsilon", eps_model(gaussian_path))):
        for t in (0.2, 0.6, 0.95):
            s = gaussian_path.path.scheduler(torch.tensor(t))
            C = s.alpha_t**2 * cov + s.beta_t**2 * torch.eye(2)
            expected = mu + s.alpha_t * (x - s.alpha_t * mu) @ torch.linalg.solve(C, cov).T
            got = data_prediction(gaussian_path.path, model, kind)(x, t)
            assert torch.allclose(got, expected, atol=1e-8), (kind, t)


def test_ddpm_posterior_by_bayes_rule_in_one_dimension(path):
    """The posterior of x_{t'} given x_t and x_1, computed from the two Gaussians of Bayes' rule directly."""
    x, x1 = torch.tensor([[0.7]]), torch.tensor([[-1.2]])
    for t, t_next in ((0.2, 0.3), (0.5, 0.9), (0.05, 0.6)):
        (a, b), (a2, b2) = [(float(v.alpha_t), float(v.beta_t)) for v in (path.scheduler(torch.tensor(t)),
                                                                        path.scheduler(torch.tensor(t_next)))]
        k, kv = a / a2, b**2 - (a / a2) ** 2 * b2**2  # x_t = k x_{t'} + N(0, kv)
        prec = 1 / b2**2 + k**2 / kv  # prior N(a2 x1, b2²) times the likelihood of x_t
        mean = (a2 * x1 / b2**2 + k * x / kv) / prec
        got_mean, got_std = ddpm_posterior(x, x1, a, b, a2, b2)
        assert torch.allclose(got_mean, mean, atol=1e-10) and abs(float(got_std) - prec**-0.5) < 1e-10


def test_first_order_2m_step_is_ddim_and_the_last_step_lands_on_the_prediction(mixture_path):
    path, x = mixture_path.path, torch.randn(9, 2, generator=torch.Generator().manual_seed(1))
    d = data_prediction(path, mixture_path.score, "score")(x, 0.3)
    ddim = DDIMSimulator(path, mixture_path.score, "score").step(x, torch.tensor(0.3), 0.2)
    assert torch.allclose(dpmpp_2m_step(path, x, None, 0.3, 0.5, None, d), ddim, atol=1e-10)
    alpha_1 = float(path.scheduler(torch.tensor(1.0)).alpha_t)
    assert torch.allclose(dpmpp_2m_step(path, x, 0.1, 0.3, 1.0, d.flip(0), d), alpha_1 * d)
    # with equal predictions the extrapolation changes nothing
    assert torch.allclose(dpmpp_2m_step(path, x, 0.1, 0.3, 0.5, d, d), ddim, atol=1e-10)


def test_2m_step_arguments_are_checked(mixture_path):
    path, x = mixture_path.path, torch.zeros(2, 2)
    with pytest.raises(ValueError, match="together"):
        dpmpp_2m_step(path, x, 0.1, 0.3, 0.5, None, x)
    with pytest.raises(ValueError, match="increase"):
        dpmpp_2m_step(path, x, 0.4, 0.3, 0.5, x, x)


def test_ddpm_equals_ddim_with_eta_one(mixture_path):
    """The posterior written out (DDPMSimulator) and DDIM's η = 1 are one step: same seed, same samples."""
    x = torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
    ts = karras_time_grid(mixture_path.path.scheduler, 12, dtype=F64)
    torch.manual_seed(5)
    a = DDPMSimulator(mixture_path.path, mixture_path.score, "score").simulate(x, ts)
    torch.manual_seed(5)
    b = DDIMSimulator(mixture_path.path, mixture_path.score, "score", eta=1.0).simulate(x, ts)
    assert torch.allclose(a, b, atol=1e-10)


def test_reverse_sde_reaches_the_gaussian_data(gaussian_path):
    """Euler–Maruyama on Anderson's reverse SDE, 200 steps from t = 1e-3. Measured (seed 3): mean
    errors ≤ 0.002, covariance errors ≤ 0.006; tolerance 5 SE + 0.01."""
    torch.manual_seed(3)
    x = torch.randn(20_000, 2)
    sde = vp_reverse_sde(gaussian_path.path, gaussian_path.score, "score")
    y = EulerMaruyamaSimulator(sde).simulate(x, uniform_time_grid(200, dtype=F64))
    assert float((y.mean(0) - gaussian_path.data.means[0]).abs().max()) < 0.025
    assert float((torch.cov(y.T) - gaussian_path.data.covs[0]).abs().max()) < 0.035


# Measured on the Karras grid (σ_max = σ(0.05) = 12.7, σ_min = 0.002, ρ = 7), 8 ... 128 steps, 256
# samples of p_0.05 (seed 0), error = RMS distance to Heun with 2000 uniform steps:
#   DDIM  2.96e-01 → 1.72e-02, slope 1.02      Euler 1.22e-01 → 7.77e-03, slope 0.99
#   Heun  4.80e-02 → 2.09e-04, slope 1.96      DPM-Solver++(2M) 2.52e-01 → 4.84e-04, slope 2.25
# Tolerance ±0.3 around the order. On a uniform t grid DPM-Solver++(2M) measures only 1.4 over
# 16 ... 256 steps: its steps in λ near t = 1 do not shrink (λ ≈ -log(1 - t)), see the lab.
T0 = 0.05


def _karras(n):
    sch = CosineScheduler()
    s = sch(torch.tensor(T0, dtype=F64))
    return karras_time_grid(sch, n, sigma_max=float(s.beta_t / s.alpha_t), dtype=F64)


@functools.lru_cache(maxsize=1)
def _start_and_reference():
    """256 samples of p_0.05 (seed 0) and their images at t = 1 under Heun with 2000 uniform steps
    (error ≈ 5e-5 · (128/2000)² ≈ 2e-7, far below the smallest error fitted, 2e-4); computed once."""
    gmp = _mixture_path()
    torch.manual_seed(0)
    x0 = gmp.marginal(T0).sample(256).to(F64)
    ref = HeunSimulator(VectorFieldODE(gmp.vector_field)).simulate(x0, torch.linspace(T0, 1, 2001, dtype=F64))
    return x0, ref


@pytest.mark.parametrize("method", ["ddim", "euler", "heun", "dpm++2m"])
def test_measured_convergence_order_on_a_mixture(method, mixture_path):
    path = mixture_path.path
    x0, ref = _start_and_reference()
    ode = probability_flow_ode(path, mixture_path.score, "score")
    run, order = {
        "ddim": (DDIMSimulator(path, mixture_path.score, "score").simulate, DDIMSimulator.order),
        "euler": (EulerSimulator(ode).simulate, 1),
        "heun": (HeunSimulator(ode).simulate, 2),
        "dpm++2m": (DPMSolverPP2M(path, mixture_path.score, "score").sample, DPMSolverPP2M.order),
    }[method]
    ns = [8, 16, 32, 64, 128]
    errs = [float(((run(x0, _karras(n)) - ref) ** 2).sum(1).mean().sqrt()) for n in ns]
    slope = loglog_slope([1 / n for n in ns], errs)
    assert abs(slope - order) < 0.3, (slope, errs)


def test_image_shaped_states(path):
    """(batch, c, h, w) states go through every sampler. Data a point mass at 0: x̂_1 = 0, so
    ε̂ = x/β_t; DDIM and DPM-Solver++(2M) map a state at t to β'/β times itself, and every sampler
    ends exactly at 0 (β_1 = 0 kills DDPM's last noise)."""
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    sch = path.scheduler
    point_mass_eps = lambda x, t: x / sch(torch.as_tensor(t, dtype=x.dtype)).beta_t  # noqa: E731
    ts = uniform_time_grid(6, dtype=F64)
    for run in (DDIMSimulator(path, point_mass_eps, "epsilon").simulate,
                DPMSolverPP2M(path, point_mass_eps, "epsilon").sample,
                DDPMSimulator(path, point_mass_eps, "epsilon").simulate):
        assert run(x, ts).shape == x.shape
        assert torch.allclose(run(x, ts), torch.zeros_like(x), atol=1e-12)
    mid = DDIMSimulator(path, point_mass_eps, "epsilon").simulate(x, ts[:3])
    ratio = float(sch(ts[2]).beta_t / sch(ts[0]).beta_t)
    assert torch.allclose(mid, ratio * x, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Step schedules
# ---------------------------------------------------------------------------------------------------

def _log_snr(t):
    s = CosineScheduler()(t)
    return torch.log(s.alpha_t**2 / s.beta_t**2)


@pytest.mark.parametrize("n", [2, 5, 32])
def test_schedules_increase_from_near_zero_to_one(n):
    sch = CosineScheduler()
    grids = (uniform_time_grid(n, dtype=F64), log_snr_time_grid(sch, n, dtype=F64), karras_time_grid(sch, n, dtype=F64))
    for ts in grids:
        assert ts.shape == (n + 1,) and bool((ts[1:] > ts[:-1]).all())
        assert 0 < float(ts[0]) < 0.01 and float(ts[-1]) == 1.0
    assert float(uniform_time_grid(n)[0]) == pytest.approx(1e-3)
    assert float(log_snr_time_grid(sch, n, t_min=0.02)[0]) == pytest.approx(0.02)


def test_power_grid_spacing():
    """t_i = t_min + (1 - t_min)(i/n)^rho: rho = 1 is the uniform grid; rho > 1 shortens the steps near noise."""
    assert torch.allclose(power_time_grid(10, 1.0, dtype=F64), uniform_time_grid(10, dtype=F64))
    ts = power_time_grid(16, 1.2, dtype=F64)
    steps = ts.diff()
    assert float(ts[0]) == 1e-3 and float(ts[-1]) == 1.0 and bool((steps > 0).all())
    assert bool((steps.diff() > 0).all())  # every step longer than the one before
    assert torch.allclose(ts[8], torch.tensor(1e-3 + (1 - 1e-3) * 0.5**1.2, dtype=F64))
    assert bool((power_time_grid(16, 0.8, dtype=F64).diff().diff() < 0).all())
    with pytest.raises(ValueError, match="rho"):
        power_time_grid(8, -1.0)
    with pytest.raises(ValueError, match="t_min"):
        power_time_grid(8, 1.2, t_min=0.7)


def test_log_snr_grid_is_uniform_in_lambda():
    ts = log_snr_time_grid(CosineScheduler(), 16, t_min=1e-3, dtype=F64)
    lam = _log_snr(ts[:-1])
    steps = lam[1:] - lam[:-1]
    assert torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-9)
    assert float(lam[0]) == pytest.approx(float(_log_snr(torch.tensor(1e-3))), abs=1e-9)
    assert float(lam[-1]) == pytest.approx(-float(lam[0]), abs=1e-9)


def test_karras_grid_hits_its_sigmas():
    sch = CosineScheduler()
    ts = karras_time_grid(sch, 10, sigma_min=0.01, sigma_max=50.0, rho=7.0, dtype=F64)
    s = sch(ts[:-1])
    sig = s.beta_t / s.alpha_t
    i = torch.arange(10, dtype=F64) / 9
    want = (50.0 ** (1 / 7) + i * (0.01 ** (1 / 7) - 50.0 ** (1 / 7))) ** 7
    assert torch.allclose(sig, want, rtol=1e-9)


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [torch.tensor([0.0, 0.5, 0.5, 1.0]), torch.tensor([1.0, 0.5, 0.0])])
def test_non_increasing_grids_are_rejected(bad, mixture_path):
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        DDIMSimulator(mixture_path.path, mixture_path.score, "score").simulate(x, bad)
    with pytest.raises(ValueError, match="strictly increasing"):
        DPMSolverPP2M(mixture_path.path, mixture_path.score, "score").sample(x, bad)
    with pytest.raises(ValueError, match="strictly increasing"):
        ddpm_alpha_bars(CosineScheduler(), bad)


def test_wrong_shapes_are_rejected(mixture_path):
    ts = uniform_time_grid(4, dtype=F64)
    with pytest.raises(ValueError, match="batch"):
        DDIMSimulator(mixture_path.path, mixture_path.score, "score").simulate(torch.zeros(2), ts)
    with pytest.raises(ValueError, match="batch"):
        DPMSolverPP2M(mixture_path.path, mixture_path.score, "score").sample(torch.zeros(2), ts)
    flat = lambda x, t: x.sum(1)  # noqa: E731  (forgets the feature axis)
    with pytest.raises(ValueError, match="shape of x"):
        DDIMSimulator(mixture_path.path, flat, "score").simulate(torch.zeros(4, 2), ts)
    with pytest.raises(ValueError, match="shape of x"):
        probability_flow_ode(mixture_path.path, flat, "velocity").drift(torch.zeros(4, 2), torch.tensor(0.5))
    with pytest.raises(ValueError, match="batch"):
        ddpm_forward_step(torch.zeros(3), 1.0, 0.5)


def test_bad_arguments_are_named(mixture_path):
    path = mixture_path.path
    with pytest.raises(ValueError, match="kind"):
        prediction_to_score(path, mixture_path.score, "noise")
    with pytest.raises(TypeError, match="AffinePath"):
        DDIMSimulator(mixture_path, mixture_path.score, "score")
    with pytest.raises(TypeError, match="callable"):
        DDIMSimulator(path, 3.0, "score")
    with pytest.raises(ValueError, match="eta"):
        DDIMSimulator(path, mixture_path.score, "score", eta=1.5)
    with pytest.raises(ValueError, match="noise only grows"):
        ddpm_forward_step(torch.zeros(3, 2), 0.5, 0.9)
    with pytest.raises(ValueError, match="alpha_bar_prev"):
        ddpm_step_coefficients(0.0, 0.0)
    with pytest.raises(ValueError, match="n_steps"):
        log_snr_time_grid(CosineScheduler(), 1)
    with pytest.raises(ValueError, match="n_steps"):
        uniform_time_grid(0)
    with pytest.raises(ValueError, match="t_min"):
        uniform_time_grid(4, t_min=0.0)
    with pytest.raises(ValueError, match="sigma_min"):
        karras_time_grid(CosineScheduler(), 4, sigma_min=5.0, sigma_max=1.0)


# ---------------------------------------------------------------------------------------------------
# The samplers at a budget of network evaluations
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("nfe", [1, 2, 3, 8, 16])
def test_samplers_at_nfe_spend_exactly_the_budget(mixture_path, nfe):
    """Each sampler calls the network exactly nfe times (Heun: None for an odd budget), on the grid it is
    given, and returns what its class returns with that grid."""
    calls = []

    def counted(x, t):
        calls.append(1)
        return mixture_path.score(x, t)

    path, score = mixture_path.path, mixture_path.score
    x0 = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
    grid, ode = functools.partial(power_time_grid, rho=1.3), probability_flow_ode(path, score, "score")
    runs = samplers_at_nfe(path, counted, "score", grid=grid)
    assert tuple(runs) == NFE_SAMPLERS
    direct = {"Euler (PF-ODE)": lambda n: EulerSimulator(ode).simulate(x0, grid(n)),
              "Heun (PF-ODE)": lambda n: HeunSimulator(ode).simulate(x0, grid(n // 2)),
              "DDPM (ancestral)": lambda n: DDPMSimulator(path, score, "score").simulate(x0, grid(n)),
              "DDIM": lambda n: DDIMSimulator(path, score, "score").simulate(x0, grid(n)),
              "DPM-Solver++(2M)": lambda n: DPMSolverPP2M(path, score, "score").sample(x0, grid(n))}
    for name, run in runs.items():
        calls.clear()
        torch.manual_seed(3)  # DDPM's step noise
        out = run(x0, nfe)
        if name == "Heun (PF-ODE)" and nfe % 2:
            assert out is None and not calls
            continue
        assert len(calls) == nfe, name
        torch.manual_seed(3)
        assert torch.equal(out, direct[name](nfe)), name


def test_samplers_at_nfe_reject_a_bad_budget(mixture_path):
    runs = samplers_at_nfe(mixture_path.path, mixture_path.score, "score")
    for bad in (0, -2, 2.0):
        with pytest.raises(ValueError, match="nfe"):
            runs["DDIM"](torch.zeros(3, 2), bad)
