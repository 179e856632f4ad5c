"""Probability paths against mathematics: schedules and their derivatives, the affine path and its
velocity, the conditional field and score of the Gaussian path, the exact Gaussian-mixture marginal
path (moments, score, vector field, continuity equation), the u ↔ score conversions, behaviour at
and near t = 1, and input validation.

Identities are checked in float64 with tight tolerances; every statistical check is seeded and its
tolerance is a stated multiple of the estimator's standard error.
"""

from __future__ import annotations

import math

import pytest
import torch

from labs_lib import (AffinePath, CondOTScheduler, CosineScheduler, EulerSimulator, Gaussian, GaussianMixture,
                      GaussianMixturePath, HeunSimulator, Scheduler, SchedulerOutput, SqrtScheduler, VectorFieldODE)
from labs_lib.paths import validate_scheduler

F64 = torch.float64
SCHEDULERS = [CondOTScheduler, SqrtScheduler, CosineScheduler]
SCHED_IDS = ["condot", "sqrt", "cosine"]
# (batch, d) for d = 1, 2, 3, and image-shaped states (batch, channels, height, width)
SHAPES = [(5, 1), (6, 2), (4, 3), (3, 1, 4, 4)]
SHAPE_IDS = ["d1", "d2", "d3", "image"]

sched_param = pytest.mark.parametrize("sched_cls", SCHEDULERS, ids=SCHED_IDS)
shape_param = pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)


def bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample time ``(batch,)`` reshaped to broadcast against ``x``."""
    return t.view(-1, *([1] * (x.ndim - 1)))


def mixture_2d(dtype=F64) -> GaussianMixture:
    """Three unequal modes with full (non-isotropic) covariances, so that every term of the exact
    formulas (Σ_k, the weights π_k) is exercised."""
    g = torch.Generator().manual_seed(7)
    means = torch.tensor([[-2.0, 0.5], [1.5, 1.0], [0.5, -2.0]], dtype=dtype)
    a = 0.4 * torch.randn(3, 2, 2, generator=g, dtype=dtype)
    covs = a @ a.transpose(1, 2) + 0.1 * torch.eye(2, dtype=dtype)
    return GaussianMixture(means, covs, torch.tensor([0.2, 0.5, 0.3], dtype=dtype))


def mixture_1d(dtype=F64) -> GaussianMixture:
    return GaussianMixture.isotropic(torch.tensor([[-2.0], [1.5]], dtype=dtype), torch.tensor([0.5, 0.3], dtype=dtype),
                                     torch.tensor([0.3, 0.7], dtype=dtype))


# --- schedulers -------------------------------------------------------------------------------


@sched_param
def test_scheduler_boundary_conditions(sched_cls):
    out = sched_cls()(torch.tensor([0.0, 1.0], dtype=F64))
    # α_0 = 0, β_0 = 1 (pure noise) and α_1 = 1, β_1 = 0 (pure data); cos(π/2) is 6e-17 in float64.
    torch.testing.assert_close(out.alpha_t, torch.tensor([0.0, 1.0], dtype=F64), rtol=0, atol=1e-15)
    torch.testing.assert_close(out.beta_t, torch.tensor([1.0, 0.0], dtype=F64), rtol=0, atol=1e-15)
    validate_scheduler(sched_cls())  # the library's own validator agrees


@sched_param
def test_scheduler_derivatives_match_central_differences(sched_cls):
    sched = sched_cls()
    t = torch.linspace(0.01, 0.99, 99, dtype=F64)
    h = 1e-6
    # Central differences err by h²/6·|f'''| + rounding ~1e-16/h: at most ~1e-8 here (the square
    # root's f''' = -3/8 (1-t)^(-5/2) peaks at 4e4 at t = 0.99), far below the tolerance.
    plus, minus, out = sched(t + h), sched(t - h), sched(t)
    torch.testing.assert_close(out.d_alpha_t, (plus.alpha_t - minus.alpha_t) / (2 * h), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out.d_beta_t, (plus.beta_t - minus.beta_t) / (2 * h), rtol=1e-6, atol=1e-7)


@sched_param
@pytest.mark.parametrize("tshape", [(), (7,), (7, 1), (2, 3, 1, 1)], ids=["0-dim", "batch", "batch1", "image"])
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
def test_scheduler_output_has_the_shape_and_dtype_of_t(sched_cls, tshape, dtype):
    t = torch.rand(tshape, dtype=dtype)
    out = sched_cls()(t)
    assert isinstance(out, SchedulerOutput)
    for value in (out.alpha_t, out.beta_t, out.d_alpha_t, out.d_beta_t):
        assert isinstance(value, torch.Tensor) and value.shape == t.shape and value.dtype == dtype


def test_cosine_scheduler_is_variance_preserving():
    t = torch.linspace(0, 1, 101, dtype=F64)
    s = CosineScheduler()(t)
    torch.testing.assert_close(s.alpha_t**2 + s.beta_t**2, torch.ones_like(t), rtol=0, atol=1e-14)
    # and so is its derivative: d/dt (α² + β²) = 2(αα̇ + ββ̇) = 0
    torch.testing.assert_close(s.alpha_t * s.d_alpha_t + s.beta_t * s.d_beta_t, torch.zeros_like(t), rtol=0, atol=1e-14)


def test_the_other_schedulers_are_not_variance_preserving():
    t = torch.tensor([0.5], dtype=F64)
    s = CondOTScheduler()(t)
    assert float(s.alpha_t**2 + s.beta_t**2) == pytest.approx(0.5)
    s = SqrtScheduler()(t)
    assert float(s.alpha_t**2 + s.beta_t**2) == pytest.approx(0.75)


class _Lambda(Scheduler):
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, t):
        return self.fn(t)


def _out(alpha, beta, d_alpha=None, d_beta=None):
    return SchedulerOutput(alpha, beta, torch.ones_like(alpha) if d_alpha is None else d_alpha,
                           -torch.ones_like(beta) if d_beta is None else d_beta)


@pytest.mark.parametrize("fn, expected", [
    (lambda t: _out(1 - t, t), "alpha_0 = 1 (should be 0.0), beta_0 = 0 (should be 1.0), alpha_1 = 0"),
    (lambda t: _out(t, 1 - 0.5 * t), "beta_1 = 0.5 (should be 0.0)"),
    (lambda t: _out(t + 0.1, 1 - t), "alpha_0 = 0.1 (should be 0.0), alpha_1 = 1.1 (should be 1.0)"),
    (lambda t: _out(t, torch.full_like(t, float("nan"))), "beta_0 = nan (should be 1.0), beta_1 = nan"),
    (lambda t: _out(t, torch.sqrt(1 - t) + 1e-3), "beta_1 = 0.001 (should be 0.0)"),
], ids=["swapped", "beta_1", "alpha_offset", "nan", "beta_1_small"])
def test_validate_scheduler_names_the_wrong_boundary_value(fn, expected):
    with pytest.raises(ValueError, match="must start at noise") as err:
        validate_scheduler(_Lambda(fn))
    assert expected in str(err.value)
    with pytest.raises(ValueError, match="must start at noise"):
        AffinePath(_Lambda(fn))  # the path validates its schedule on construction


@pytest.mark.parametrize("fn, expected", [
    (lambda t: (t, 1 - t, 1.0, -1.0), "must return a SchedulerOutput, got tuple"),
    (lambda t: SchedulerOutput(t, 1 - t, 1.0, -1.0), "d_alpha_t must be a tensor of t's shape (2,)"),
    (lambda t: SchedulerOutput(t, 1 - t, torch.tensor(1.0), torch.tensor(-1.0)), "got shape ()"),
    (lambda t: SchedulerOutput(t, (1 - t).tolist(), torch.ones_like(t), -torch.ones_like(t)),
     "beta_t must be a tensor"),
], ids=["tuple", "float_derivative", "0dim_derivative", "list"])
def test_validate_scheduler_rejects_malformed_outputs(fn, expected):
    with pytest.raises(TypeError) as err:
        validate_scheduler(_Lambda(fn))
    assert expected in str(err.value)


def test_validate_scheduler_and_path_reject_non_schedulers():
    with pytest.raises(TypeError, match="must be a labs_lib Scheduler, got function"):
        validate_scheduler(lambda t: t)
    with pytest.raises(TypeError, match="must be a labs_lib Scheduler"):
        AffinePath(CondOTScheduler)  # the class, not an instance


# --- the affine path: sample -------------------------------------------------------------------


@sched_param
@shape_param
def test_sample_endpoints_are_source_and_data(sched_cls, shape, gen):
    path = AffinePath(sched_cls())
    x0, x1 = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    n = shape[0]
    s0 = path.sample(x0, x1, torch.zeros(n))
    s1 = path.sample(x0, x1, torch.ones(n))
    assert s0.x_t.shape == s1.x_t.shape == s0.dx_t.shape == shape
    torch.testing.assert_close(s0.x_t, x0, rtol=0, atol=1e-7)
    # float32 cos(π/2) = -4.4e-8, so the cosine path leaves a trace of x_0 of that relative size
    torch.testing.assert_close(s1.x_t, x1, rtol=0, atol=1e-6)
    assert s0.x_0 is x0 and s0.x_1 is x1 and s0.t.shape == (n,)


@sched_param
@shape_param
def test_sample_velocity_is_the_time_derivative(sched_cls, shape, gen):
    path = AffinePath(sched_cls())
    x0, x1 = torch.randn(shape, generator=gen, dtype=F64), torch.randn(shape, generator=gen, dtype=F64)
    t = 0.01 + 0.98 * torch.rand(shape[0], generator=gen, dtype=F64)
    h = 1e-6
    fd = (path.sample(x0, x1, t + h).x_t - path.sample(x0, x1, t - h).x_t) / (2 * h)
    s = path.sample(x0, x1, t)
    torch.testing.assert_close(s.dx_t, fd, rtol=1e-6, atol=1e-6)
    # and it is the closed form α̇_t x_1 + β̇_t x_0 with a different time per sample
    sc = path.scheduler(bcast(t, x0))
    torch.testing.assert_close(s.dx_t, sc.d_alpha_t * x1 + sc.d_beta_t * x0, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(s.x_t, sc.alpha_t * x1 + sc.beta_t * x0, rtol=1e-14, atol=1e-14)


# --- the conditional vector field and score ----------------------------------------------------


@sched_param
@shape_param
def test_conditional_vector_field_is_the_velocity_of_the_conditional_flow(sched_cls, shape, gen):
    """u_t(x | z) evaluated at x_t = α_t z + β_t x_0 (with x_1 = z) is d/dt x_t: the derivation in reverse."""
    path = AffinePath(sched_cls())
    x0, z = torch.randn(shape, generator=gen, dtype=F64), torch.randn(shape, generator=gen, dtype=F64)
    t = 0.99 * torch.rand(shape[0], generator=gen, dtype=F64)
    s = path.sample(x0, z, t)
    torch.testing.assert_close(path.conditional_vector_field(s.x_t, z, t), s.dx_t, rtol=1e-10, atol=1e-10)
    # a 0-dim time works too (the whole batch at one time, as in a simulation)
    t0 = torch.tensor(0.37, dtype=F64)
    s = path.sample(x0, z, t0.expand(shape[0]))
    torch.testing.assert_close(path.conditional_vector_field(s.x_t, z, t0), s.dx_t, rtol=1e-10, atol=1e-10)


@sched_param
@pytest.mark.parametrize("simulator", [EulerSimulator, HeunSimulator])
def test_conditional_ode_follows_the_conditional_path(sched_cls, simulator, gen):
    """Simulating dX/dt = u_t(X | z) from X_0 ~ N(0, I) follows x_t = α_t z + β_t X_0 on [0, 0.99]."""
    path = AffinePath(sched_cls())
    z = 2 * torch.randn(64, 2, generator=gen, dtype=F64)
    x0 = torch.randn(64, 2, generator=gen, dtype=F64)
    ode = VectorFieldODE(lambda x, t: path.conditional_vector_field(x, z, t))
    traj = simulator(ode).simulate_with_trajectory(x0, torch.linspace(0, 0.99, 201, dtype=F64))
    exact = torch.stack([path.sample(x0, z, t.expand(64)).x_t for t in traj.times])
    err = float((traj.states - exact).abs().max())
    # Measured: Euler 2e-2 (sqrt), 1e-2 (cosine); Heun 1e-2 (sqrt), 3e-4 (cosine); the CondOT field
    # is linear in time along each path, so both are exact to rounding there.
    bound = {(EulerSimulator, "condot"): 1e-12, (HeunSimulator, "condot"): 1e-12,
             (EulerSimulator, "sqrt"): 5e-2, (HeunSimulator, "sqrt"): 3e-2,
             (EulerSimulator, "cosine"): 3e-2, (HeunSimulator, "cosine"): 1e-3}
    assert err < bound[(simulator, SCHED_IDS[SCHEDULERS.index(sched_cls)])]


@sched_param
def test_conditional_ode_carries_noise_to_z(sched_cls, gen):
    """Euler on the full interval [0, 1] lands on z: the conditional path ends in the point mass δ_z."""
    path = AffinePath(sched_cls())
    z = 2 * torch.randn(64, 2, generator=gen, dtype=F64)
    x0 = torch.randn(64, 2, generator=gen, dtype=F64)
    ode = VectorFieldODE(lambda x, t: path.conditional_vector_field(x, z, t))
    errors = [float((EulerSimulator(ode).simulate(x0, torch.linspace(0, 1, n + 1, dtype=F64)) - z).abs().max())
              for n in (100, 400)]
    if sched_cls is CondOTScheduler:
        # u = (z - x)/(1 - t): Euler's last step has h = 1 - t and lands exactly on z
        assert errors[1] < 1e-12
    elif sched_cls is CosineScheduler:
        assert errors[0] < 5e-3 and errors[1] < errors[0] / 4  # measured 6e-4 and 4e-5
    else:
        # β_t = √(1-t) is not Lipschitz at t = 1, so the error shrinks only like √h (halves per 4× steps)
        assert errors[0] < 0.3 and errors[1] < 0.6 * errors[0]


@sched_param
def test_heun_reaches_z_despite_the_clamped_field_at_one(sched_cls, gen):
    """Heun's corrector evaluates the field at t = 1, where it is singular and clamped to t_max:
    it stays finite and Heun still reaches z, to first order in h, for CondOT and cosine."""
    path = AffinePath(sched_cls())
    z, x0 = 2 * torch.randn(32, 2, generator=gen, dtype=F64), torch.randn(32, 2, generator=gen, dtype=F64)
    ode = VectorFieldODE(lambda x, t: path.conditional_vector_field(x, z, t))
    out = HeunSimulator(ode).simulate(x0, torch.linspace(0, 1, 401, dtype=F64))
    assert bool(torch.isfinite(out).all())
    if sched_cls is not SqrtScheduler:  # (the square root's β̇_t/β_t = -1/(2(1-t)) makes that step stiff)
        assert float((out - z).abs().max()) < 5 / 400 * float((z - x0).abs().max())


@sched_param
@pytest.mark.parametrize("d", [1, 2, 3])
def test_conditional_score_is_the_autograd_score_of_the_gaussian(sched_cls, d, gen):
    path = AffinePath(sched_cls())
    for t in (0.0, 0.2, 0.5, 0.9, 0.999):
        z = torch.randn(1, d, generator=gen, dtype=F64)
        x = torch.randn(8, d, generator=gen, dtype=F64)
        s = path.scheduler(torch.tensor(t, dtype=F64))
        gauss = Gaussian(s.alpha_t * z[0], s.beta_t**2 * torch.eye(d, dtype=F64))
        mix = GaussianMixture(s.alpha_t * z, (s.beta_t**2 * torch.eye(d, dtype=F64)).unsqueeze(0))
        got = path.conditional_score(x, z.expand(8, d), t)
        torch.testing.assert_close(got, gauss.score(x), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(got, mix.score(x), rtol=1e-9, atol=1e-9)


@sched_param
def test_conditional_field_and_score_accept_image_shapes(sched_cls, gen):
    """Image-shaped states give the same numbers as their flattened versions."""
    path = AffinePath(sched_cls())
    x, z = torch.randn(3, 1, 4, 4, generator=gen), torch.randn(3, 1, 4, 4, generator=gen)
    t = torch.tensor([0.1, 0.5, 0.8])
    for fn in (path.conditional_vector_field, path.conditional_score):
        out = fn(x, z, t)
        assert out.shape == x.shape
        torch.testing.assert_close(out.flatten(1), fn(x.flatten(1), z.flatten(1), t))
        # and a per-sample time equals one call per sample
        rows = torch.cat([fn(x[i:i + 1], z[i:i + 1], t[i]) for i in range(3)])
        torch.testing.assert_close(out, rows)


@sched_param
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
def test_everything_is_finite_at_and_near_one(sched_cls, dtype, gen):
    path = AffinePath(sched_cls())
    gm = GaussianMixturePath(path, mixture_2d(dtype))
    x, z = torch.randn(6, 2, generator=gen, dtype=dtype), torch.randn(6, 2, generator=gen, dtype=dtype)
    for t in (1 - 1e-3, 1 - 1e-5, 1 - 1e-7, 1 - 1e-9, 1.0, 0.0):
        tt = torch.full((6,), t, dtype=dtype)
        s = path.sample(x, z, tt)
        outs = [s.x_t, s.dx_t, path.conditional_vector_field(x, z, t), path.conditional_score(x, z, tt),
                path.velocity_to_score(x, z, t), path.score_to_velocity(x, z, t),
                gm.vector_field(x, t), gm.score(x, tt), gm.marginal(t).log_density(x)]
        assert all(bool(torch.isfinite(o).all()) for o in outs), f"non-finite output at t = {t}"
    # the clamp only changes what is singular: x_t is exact at t = 1
    torch.testing.assert_close(path.sample(x, z, torch.ones(6, dtype=dtype)).x_t, z, rtol=0, atol=1e-6)


@sched_param
def test_sample_conditional_has_the_gaussian_moments(sched_cls):
    """x ~ N(α_t z, β_t² I). With N draws per coordinate, the sample mean has standard error β/√N and
    the sample variance β²√(2/N); we allow 5 standard errors (the draws are seeded)."""
    path = AffinePath(sched_cls())
    n = 20_000
    z = torch.tensor([[1.5, -0.5, 3.0]], dtype=F64).expand(n, 3)
    for t in (0.0, 0.3, 0.7, 0.95):
        x = path.sample_conditional(z, t, generator=torch.Generator().manual_seed(11))
        s = path.scheduler(torch.tensor(t, dtype=F64))
        a, b = float(s.alpha_t), float(s.beta_t)
        assert (x.mean(0) - a * z[0]).abs().max() < 5 * b / math.sqrt(n)
        assert (x.var(0) - b**2).abs().max() < 5 * b**2 * math.sqrt(2 / n)
    # seeded draws repeat; t = 1 returns the data point; image shapes and per-sample times work
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    zi = torch.randn(4, 1, 4, 4, dtype=F64)
    ti = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=F64)
    torch.testing.assert_close(path.sample_conditional(zi, ti, g1), path.sample_conditional(zi, ti, g2))
    torch.testing.assert_close(path.sample_conditional(zi, 1.0), zi, rtol=0, atol=1e-15)


# --- the Gaussian-mixture marginal path --------------------------------------------------------


def _mixture_moments(gm: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    w = gm.weights
    mean = (w[:, None] * gm.means).sum(0)
    second = (w[:, None, None] * (gm.covs + gm.means[:, :, None] * gm.means[:, None, :])).sum(0)
    return mean, second - mean[:, None] * mean[None, :]


@sched_param
def test_marginal_is_the_law_of_the_affine_path(sched_cls):
    """marginal(t) is N(α μ_k, α² Σ_k + β² I) per mode, and its mean and covariance match those of
    x_t = α_t x_1 + β_t x_0 with x_1 from the mixture. Tolerance: 5 standard errors, each estimated
    from the samples themselves (the mixture has heavier tails than one Gaussian)."""
    data = mixture_2d()
    path = AffinePath(sched_cls())
    gm = GaussianMixturePath(path, data)
    g = torch.Generator().manual_seed(5)
    n = 20_000
    for t in (0.0, 0.3, 0.6, 0.9, 1.0):
        m = gm.marginal(t)
        s = path.scheduler(torch.tensor(min(t, path.t_max), dtype=F64))
        torch.testing.assert_close(m.means, s.alpha_t * data.means)
        torch.testing.assert_close(m.covs, s.alpha_t**2 * data.covs + s.beta_t**2 * torch.eye(2, dtype=F64))
        x_t = path.sample(torch.randn(n, 2, generator=g, dtype=F64), data.sample(n, generator=g),
                          torch.full((n,), t, dtype=F64)).x_t
        mean, cov = _mixture_moments(m)
        centred = x_t - x_t.mean(0)
        products = centred[:, :, None] * centred[:, None, :]
        assert bool(((x_t.mean(0) - mean).abs() <= 5 * x_t.std(0) / math.sqrt(n)).all())
        assert bool(((products.mean(0) - cov).abs() <= 5 * products.std(0) / math.sqrt(n)).all())
    # the ends: N(0, I) at t = 0 and the data at t = 1
    torch.testing.assert_close(gm.marginal(0.0).covs, torch.eye(2, dtype=F64).expand(3, 2, 2))
    torch.testing.assert_close(gm.marginal(1.0).means, data.means, rtol=0, atol=1e-3)


@sched_param
def test_marginal_score_is_the_autograd_score_of_the_marginal(sched_cls, gen):
    path = AffinePath(sched_cls())
    gm = GaussianMixturePath(path, mixture_2d())
    x = 2 * torch.randn(16, 2, generator=gen, dtype=F64)
    for t in (0.0, 0.25, 0.5, 0.9, 1.0):
        torch.testing.assert_close(gm.score(x, t), gm.marginal(t).score(x), rtol=1e-8, atol=1e-8)
    # a time per sample equals one call per sample
    t = torch.rand(16, generator=gen, dtype=F64)
    rows = torch.cat([gm.score(x[i:i + 1], t[i]) for i in range(16)])
    torch.testing.assert_close(gm.score(x, t), rows)
    rows = torch.cat([gm.vector_field(x[i:i + 1], t[i]) for i in range(16)])
    torch.testing.assert_close(gm.vector_field(x, t), rows)


@sched_param
@pytest.mark.parametrize("t", [0.0, 0.25, 0.5])
def test_marginal_field_is_the_posterior_average_of_conditional_fields(sched_cls, t):
    """u_t(x) = E[u_t(x | z) | x_t = x] ≈ Σ_i w_i u_t(x | z_i), z_i ~ data, w_i ∝ N(x; α_t z_i, β_t² I).

    This self-normalised importance-sampling estimate has (delta-method) standard error
    SE² ≈ Σ_i w̄_i² ‖u_i - û‖² with normalised weights w̄_i, i.e. about std(u)/√ESS where the effective
    sample size is ESS = 1/Σ w̄_i². We allow 5 SE and require ESS ≥ 500. The estimator is unreliable
    when β_t is small (t near 1): the weights then pile onto the few z_i with α_t z_i closest to x,
    the ESS collapses, and both estimate and SE become noise. Hence t ≤ 0.5 here; the closed-form
    test below covers t up to 1.
    """
    data = mixture_2d()
    path = AffinePath(sched_cls())
    gm = GaussianMixturePath(path, data)
    g = torch.Generator().manual_seed(int(100 * t) + 1)
    x = gm.marginal(t).sample(4, generator=g)
    m = 20_000
    zs = data.sample(m, generator=g)
    s = path.scheduler(torch.tensor(t, dtype=F64))
    log_w = -((x[:, None, :] - s.alpha_t * zs[None]) ** 2).sum(-1) / (2 * s.beta_t**2)
    w = torch.softmax(log_w, dim=1)  # (4, m)
    u = path.conditional_vector_field(x.repeat_interleave(m, 0), zs.repeat(4, 1), t).view(4, m, 2)
    estimate = (w[..., None] * u).sum(1)
    se = ((w[..., None] ** 2) * (u - estimate[:, None]) ** 2).sum(1).sqrt()
    assert float((1 / (w**2).sum(1)).min()) >= 500
    assert bool(((gm.vector_field(x, t) - estimate).abs() <= 5 * se + 1e-12).all())


@sched_param
@pytest.mark.parametrize("d", [1, 2, 3])
def test_marginal_field_of_one_isotropic_gaussian_has_the_closed_form(sched_cls, d, gen):
    """For data N(μ, s²I): p_t = N(α μ, (α² s² + β²) I) and
    u_t(x) = α̇ μ + (α α̇ s² + β β̇)/(α² s² + β²) · (x - α μ), at every t up to 1 (clamped to t_max)."""
    mu, std = torch.randn(1, d, generator=gen, dtype=F64), 0.7
    path = AffinePath(sched_cls())
    gm = GaussianMixturePath(path, GaussianMixture.isotropic(mu, std))
    x = torch.randn(10, d, generator=gen, dtype=F64)
    for t in (0.0, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0):
        sc = path.scheduler(torch.tensor(min(t, path.t_max), dtype=F64))
        a, b, da, db = sc.alpha_t, sc.beta_t, sc.d_alpha_t, sc.d_beta_t
        closed = da * mu + (a * da * std**2 + b * db) / (a**2 * std**2 + b**2) * (x - a * mu)
        torch.testing.assert_close(gm.vector_field(x, t), closed, rtol=1e-9, atol=1e-9)


@sched_param
def test_continuity_equation_holds_in_1d(sched_cls):
    """∂_t p_t + ∂_x(p_t u_t) = 0, by central differences on a grid (float64).

    Central differences in t (step 1e-4) and x (step 0.005) have relative errors ~1e-6; the residual of
    the exact field is ~1e-5 of ‖∂_t p‖, while a field with the wrong sign leaves a residual of order 1.
    """
    path = AffinePath(sched_cls())
    gm = GaussianMixturePath(path, mixture_1d())
    xs = torch.linspace(-7, 7, 2801, dtype=F64)
    dx, dt = float(xs[1] - xs[0]), 1e-4
    for t in (0.2, 0.5, 0.8):
        def p(s):
            return gm.marginal(s).log_density(xs[:, None]).exp()

        dp_dt = (p(t + dt) - p(t - dt)) / (2 * dt)
        for sign, small in ((1, True), (-1, False)):
            flux = p(t) * sign * gm.vector_field(xs[:, None], t)[:, 0]
            residual = dp_dt[1:-1] + (flux[2:] - flux[:-2]) / (2 * dx)
            rel = float(residual.norm() / dp_dt[1:-1].norm())
            assert (rel < 1e-4) if small else (rel > 0.5), f"t = {t}, sign = {sign}: relative residual {rel:.3g}"


@sched_param
def test_exact_marginal_field_transports_noise_to_the_marginals(sched_cls, gen):
    """The marginalization trick: X_0 ~ N(0, I) pushed by the exact u_t has the law p_t.
    Compared through means and covariances at t = 0.5 and t = 1 (5 standard errors)."""
    path = AffinePath(sched_cls())
    gm = GaussianMixturePath(path, mixture_2d())
    n = 1500
    x0 = torch.randn(n, 2, generator=gen, dtype=F64)
    # 40 Heun steps: against 400 steps particles move by 5e-4 on average (4e-2 at worst, between
    # modes), so the moments move by ~1e-3, inside the tolerance
    traj = HeunSimulator(VectorFieldODE(gm.vector_field)).simulate_with_trajectory(
        x0, torch.linspace(0, 1, 41, dtype=F64), every=20)
    for t, x in zip(traj.times.tolist()[1:], traj.states[1:]):
        mean, cov = _mixture_moments(gm.marginal(t))
        centred = x - x.mean(0)
        products = centred[:, :, None] * centred[:, None, :]
        assert bool(((x.mean(0) - mean).abs() <= 5 * x.std(0) / math.sqrt(n) + 1e-3).all()), t
        assert bool(((products.mean(0) - cov).abs() <= 5 * products.std(0) / math.sqrt(n) + 1e-3).all()), t


# --- u ↔ score ---------------------------------------------------------------------------------


@sched_param
def test_velocity_and_score_convert_into_each_other_on_the_marginal_path(sched_cls, gen):
    path = AffinePath(sched_cls())
    gm = GaussianMixturePath(path, mixture_2d())
    x = 2 * torch.randn(12, 2, generator=gen, dtype=F64)
    for t in (0.05, 0.3, 0.6, 0.9, torch.rand(12, generator=gen, dtype=F64) * 0.9 + 0.05):
        u, score = gm.vector_field(x, t), gm.score(x, t)
        torch.testing.assert_close(path.velocity_to_score(u, x, t), score, rtol=1e-8, atol=1e-8)
        torch.testing.assert_close(path.score_to_velocity(score, x, t), u, rtol=1e-8, atol=1e-8)


@sched_param
@shape_param
def test_velocity_and_score_convert_into_each_other_on_the_conditional_path(sched_cls, shape, gen):
    """The conditional path is a Gaussian path too (its data is δ_z), so the same conversion holds."""
    path = AffinePath(sched_cls())
    x, z = torch.randn(shape, generator=gen, dtype=F64), torch.randn(shape, generator=gen, dtype=F64)
    t = 0.05 + 0.9 * torch.rand(shape[0], generator=gen, dtype=F64)
    u, score = path.conditional_vector_field(x, z, t), path.conditional_score(x, z, t)
    torch.testing.assert_close(path.velocity_to_score(u, x, t), score, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(path.score_to_velocity(score, x, t), u, rtol=1e-9, atol=1e-9)


# --- input validation --------------------------------------------------------------------------


@pytest.fixture
def path():
    return AffinePath(CondOTScheduler())


@pytest.mark.parametrize("method", ["conditional_vector_field", "conditional_score", "velocity_to_score",
                                    "score_to_velocity"])
def test_pair_methods_validate_their_inputs(path, method):
    fn = getattr(path, method)
    x, z = torch.randn(4, 2), torch.randn(4, 2)
    cases = [
        ((x, torch.randn(4, 3), 0.5), ValueError, "must have the same shape, got (4, 2) and (4, 3)"),
        ((x, z, 1.5), ValueError, r"t must lie in [0, 1], got values from 1.5"),
        ((x, z, torch.tensor([0.2, -0.1, 0.5, 0.5])), ValueError, "t must lie in [0, 1]"),
        ((x, z, float("nan")), ValueError, "t must lie in [0, 1], got values from nan"),
        ((x, z, torch.rand(3)), ValueError, "t must be a scalar or have shape (batch,) = (4,), got (3,)"),
        ((x, z, "0.5"), TypeError, "t must be a number or a tensor of times, got str"),
        ((x, z, None), TypeError, "t must be a number or a tensor of times, got NoneType"),
        ((x.numpy(), z, 0.5), TypeError, "must be a torch.Tensor, got ndarray"),
        ((x, z.long(), 0.5), TypeError, "must be a floating-point tensor"),
        ((x[0], z[0], 0.5), ValueError, "x.unsqueeze(0)"),
    ]
    for args, exc, text in cases:
        with pytest.raises(exc) as err:
            fn(*args)
        assert text in str(err.value), (args, str(err.value))


def test_sample_validates_its_inputs(path):
    x0, x1 = torch.randn(4, 2), torch.randn(4, 2)
    with pytest.raises(TypeError, match="t must be a torch.Tensor, got float"):
        path.sample(x0, x1, 0.5)
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\) = \(4,\), got \(\)"):
        path.sample(x0, x1, torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\) = \(4,\), got \(4, 1\)"):
        path.sample(x0, x1, torch.rand(4, 1))
    with pytest.raises(ValueError, match=r"x_0 and x_1 must have the same shape"):
        path.sample(torch.randn(4, 3), x1, torch.rand(4))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        path.sample(x0, x1, torch.tensor([0.1, 0.2, 1.2, 0.3]))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        path.sample_conditional(x1, -0.5)


def test_gaussian_mixture_path_validates_its_inputs(path):
    data = mixture_2d()
    with pytest.raises(TypeError, match="path must be an AffinePath, got CondOTScheduler"):
        GaussianMixturePath(CondOTScheduler(), data)
    with pytest.raises(TypeError, match="data must be a GaussianMixture, got Gaussian"):
        GaussianMixturePath(path, Gaussian.isotropic(2))
    gm = GaussianMixturePath(path, data)
    x = torch.randn(5, 2, dtype=F64)
    for fn in (gm.vector_field, gm.score):
        with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got \(5, 3\)"):
            fn(torch.randn(5, 3, dtype=F64), 0.5)
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
            fn(x, 1.01)
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\], got values from nan"):
            fn(x, float("nan"))
        with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(batch,\) = \(5,\)"):
            fn(x, torch.rand(2))
        with pytest.raises(TypeError, match="t must be a number or a tensor of times, got str"):
            fn(x, "half")
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
            gm.marginal(bad)
