"""Simulators against mathematics: closed-form flows, exact discrete recursions, measured
convergence orders, Brownian and Ornstein–Uhlenbeck moments, trajectories, blow-ups, and
input validation.

Conventions: step ``i`` (0-based) advances ``ts[i] → ts[i+1]``; ``x_k`` is the state after
``k`` steps. Every random draw is seeded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labs_lib import (ODE, BrownianMotion, EulerMaruyamaSimulator, EulerSimulator, HeunSimulator, LinearODE,
                      OrnsteinUhlenbeck, time_grid)
from labs_lib._validation import validate_same_device
from labs_lib.metrics import loglog_slope
from labs_lib.simulators import Trajectory


class ElementwiseDecay(ODE):
    """u(x) = -θ x, elementwise, so that any state shape (images included) works."""

    def __init__(self, theta: float):
        self.theta = theta

    def drift(self, x, t):
        return -self.theta * x


def grid64(n: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """A uniform float64 grid (a float32 grid cast to float64 carries ~1e-8 relative step errors)."""
    return torch.linspace(t0, t1, n + 1, dtype=torch.float64)


def slope_se(hs, rel_errs) -> float:
    """Standard error of the least-squares log-log slope when log(err_i) carries independent
    noise of standard deviation ``rel_errs[i]`` (= SE_i / err_i, to first order)."""
    lg = np.log(np.asarray(hs))
    w = (lg - lg.mean()) / ((lg - lg.mean()) ** 2).sum()
    return float(np.sqrt((w**2 * np.asarray(rel_errs) ** 2).sum()))


# --- Euler / Heun on linear ODEs ------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_euler_decay_matches_exact_recursion_and_flow(dim, batch, gen):
    theta, n = 1.3, 50
    x0 = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    ode = LinearODE(-theta * torch.eye(dim, dtype=torch.float64))
    ts = grid64(n)
    h, T = 1.0 / n, 1.0
    out = EulerSimulator(ode).simulate(x0, ts)
    assert out.shape == (batch, dim) and out.dtype == torch.float64
    # Euler on x' = -θx is the linear recursion x_{k+1} = (1 - θh) x_k: exact up to rounding.
    torch.testing.assert_close(out, (1 - theta * h) ** n * x0, rtol=1e-12, atol=1e-12)
    # Against the flow e^{-θT} x0: (1-θh)^n = e^{-θT} e^{-δ} with δ = -n log(1-θh) - θT ≥ 0,
    # so 0 ≤ e^{-θT} - (1-θh)^n ≤ e^{-θT} δ exactly (a rigorous bound, not a rule of thumb).
    delta = -n * math.log(1 - theta * h) - theta * T
    exact = math.exp(-theta * T) * x0
    err = (exact - out).abs()
    assert bool((err <= math.exp(-theta * T) * delta * x0.abs() + 1e-14).all())
    assert bool((err >= math.exp(-theta * T) * (delta - delta**2 / 2) * x0.abs() - 1e-14).all())
    # The library's own constructor gives the same float32 result.
    out32 = EulerSimulator(LinearODE.decay(theta, dim)).simulate(x0.float(), time_grid(n))
    torch.testing.assert_close(out32, out.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_heun_decay_matches_exact_recursion(dim, gen):
    theta, n = 2.0, 40
    h = 1.0 / n
    x0 = torch.randn(9, dim, generator=gen, dtype=torch.float64)
    ode = LinearODE(-theta * torch.eye(dim, dtype=torch.float64))
    out = HeunSimulator(ode).simulate(x0, grid64(n))
    # Heun on x' = -θx: x_{k+1} = (1 - θh + (θh)²/2) x_k, the degree-2 Taylor polynomial of e^{-θh}.
    torch.testing.assert_close(out, (1 - theta * h + (theta * h) ** 2 / 2) ** n * x0, rtol=1e-12, atol=1e-12)


def _spiral64(decay=0.5, omega=3.0) -> LinearODE:
    return LinearODE(LinearODE.spiral(decay, omega).A.double())


@pytest.mark.parametrize("batch", [1, 5, 32])
@pytest.mark.parametrize("method", ["euler", "heun"])
def test_spiral_exact_discrete_solution(method, batch, gen):
    ode, n, T = _spiral64(), 64, 1.0
    h = T / n
    x0 = torch.randn(batch, 2, generator=gen, dtype=torch.float64)
    A = ode.A
    eye = torch.eye(2, dtype=torch.float64)
    # Row-vector convention x_{k+1} = x_k M^T with M = I + hA (Euler) or I + hA + (hA)²/2 (Heun).
    M = eye + h * A if method == "euler" else eye + h * A + (h * A) @ (h * A) / 2
    sim = (EulerSimulator if method == "euler" else HeunSimulator)(ode)
    out = sim.simulate(x0, grid64(n, 0.0, T))
    torch.testing.assert_close(out, x0 @ torch.linalg.matrix_power(M, n).T, rtol=1e-10, atol=1e-12)
    # Against the flow e^{TA}x0: (I + hA) = exp(hA - (hA)²/2 + O(h³)) and
    # I + hA + (hA)²/2 = exp(hA - (hA)³/6 + O(h⁴)), and everything commutes with A, so the
    # global errors are, to leading order,
    #     Euler: -(T h / 2) A² e^{TA} x0,     Heun: -(T h² / 6) A³ e^{TA} x0.
    # The next order is smaller by a factor O(h‖A‖) ≈ 3/64 ≈ 0.05; allow 3× that, 0.15.
    flow = ode.flow(x0, T)
    if method == "euler":
        predicted = -(T * h / 2) * flow @ (A @ A).T
    else:
        predicted = -(T * h**2 / 6) * flow @ (A @ A @ A).T
    rel = ((out - flow - predicted).norm(dim=1) / predicted.norm(dim=1)).max()
    assert float(rel) < 0.15


@pytest.mark.parametrize("method, order, tol", [("euler", 1.0, 0.15), ("heun", 2.0, 0.2)])
@pytest.mark.parametrize("T", [0.5, 1.0, 2.0])
def test_measured_convergence_order(method, order, tol, T, gen):
    """The log-log slope of the final error against h is the order of the method.

    Deterministic and in float64 (rounding ~1e-16 is far below the smallest Heun error,
    ~1e-6 at 320 steps), so the only deviation from the asymptotic order is the
    pre-asymptotic O(h) correction of the error constant, well inside the tolerance.
    """
    ode = _spiral64()
    x0 = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    exact = ode.flow(x0, T)
    sim = (EulerSimulator if method == "euler" else HeunSimulator)(ode)
    # The same step sizes h = 1/10 ... 1/320 whatever T, so that the pre-asymptotic range
    # (|hA| ≈ 0.3 at the coarsest) is the same for both horizons.
    ns = [round(T * n) for n in (10, 20, 40, 80, 160, 320)]
    errs = [float((sim.simulate(x0, grid64(n, 0.0, T)) - exact).norm(dim=1).max()) for n in ns]
    assert all(e1 > e2 for e1, e2 in zip(errs, errs[1:])), errs  # error decreases monotonically
    slope = loglog_slope([T / n for n in ns], errs)
    assert abs(slope - order) < tol, (slope, errs)


# --- Euler–Maruyama on Ornstein–Uhlenbeck: weak order and exact discrete moments ---------------


def test_euler_maruyama_weak_order_on_ou_mean_and_variance():
    r"""EM on dX = -θX dt + σ dW is the linear recursion x_{k+1} = a x_k + σ√h ε_k, a = 1-θh,
    so from a fixed x0 its law after n steps is exactly Gaussian with

        mean_n = a^n x0,     var_n = σ²h (1 - a^{2n}) / (1 - a²)   (v_{k+1} = a² v_k + σ²h),

    while the SDE has mean e^{-θT}x0 and variance σ²/(2θ)(1 - e^{-2θT}) (marginal_mean_var).
    We test (i) the simulated moments equal the discrete ones within 5 SE, and (ii) the
    weak error |E_h - E| decays with slope ≈ 1 in h.
    """
    theta, sigma, T, x0v, N = 2.0, 1.0, 1.0, 10.0, 1_000_000
    ou = OrnsteinUhlenbeck(theta, sigma)
    sim = EulerMaruyamaSimulator(ou)
    x0 = torch.full((N, 1), x0v, dtype=torch.float64)
    mean_T, var_T = ou.marginal_mean_var(x0[:1], T)
    mean_T = float(mean_T)
    ns = [4, 8, 16, 32]  # θh from 0.5 down to 1/16
    hs = [T / n for n in ns]
    torch.manual_seed(2024)
    m_err, v_err, m_se, v_se = [], [], [], []
    for n, h in zip(ns, hs):
        a = 1 - theta * h
        mean_n = a**n * x0v
        var_n = sigma**2 * h * (1 - a ** (2 * n)) / (1 - a**2)
        xs = sim.simulate(x0, grid64(n, 0.0, T))
        m, v = float(xs.mean()), float(xs.var())
        # SE of a sample mean: √(var/N) ≈ √(0.245/1e6) ≈ 5e-4; of a Gaussian sample variance:
        # var·√(2/N) ≈ 3.5e-4. Five SEs: a seeded run cannot flake, and a wrong moment by
        # even 1% of the variance (2.5e-3) is caught.
        se_m, se_v = math.sqrt(var_n / N), var_n * math.sqrt(2 / N)
        assert abs(m - mean_n) < 5 * se_m, (n, m, mean_n)
        assert abs(v - var_n) < 5 * se_v, (n, v, var_n)
        m_err.append(abs(m - mean_T))
        v_err.append(abs(v - var_T))
        m_se.append(se_m)
        v_se.append(se_v)
    # The exact discrete weak errors decay with slope ≈ 1: 1.03 (mean) and 1.11 (variance)
    # over this range (the excess over 1 is the O(h²) term at θh = 0.5).
    exact_m = [abs((1 - theta * h) ** n * x0v - mean_T) for n, h in zip(ns, hs)]
    exact_v = [abs(sigma**2 * h * (1 - (1 - theta * h) ** (2 * n)) / (1 - (1 - theta * h) ** 2) - var_T)
               for n, h in zip(ns, hs)]
    s_exact_m, s_exact_v = loglog_slope(hs, exact_m), loglog_slope(hs, exact_v)
    assert abs(s_exact_m - 1) < 0.15 and abs(s_exact_v - 1) < 0.15
    # The measured slopes carry the sampling noise propagated through the fit:
    # SE(slope) = √Σ w_i² (SE_i/err_i)² ≈ 0.003 (mean) and ≈ 0.02 (variance). Allow 5 SE.
    s_m, s_v = loglog_slope(hs, m_err), loglog_slope(hs, v_err)
    se_sm = slope_se(hs, [s / e for s, e in zip(m_se, exact_m)])
    se_sv = slope_se(hs, [s / e for s, e in zip(v_se, exact_v)])
    assert se_sm < 0.01 and se_sv < 0.03  # the design keeps the fit informative
    assert abs(s_m - s_exact_m) < 5 * se_sm, (s_m, s_exact_m, se_sm)
    assert abs(s_v - s_exact_v) < 5 * se_sv, (s_v, s_exact_v, se_sv)
    assert abs(s_m - 1) < 0.15 + 5 * se_sm and abs(s_v - 1) < 0.15 + 5 * se_sv


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_brownian_motion_variance_and_covariance(sigma):
    """W_t ~ N(0, σ² t) and Cov(W_s, W_t) = σ² min(s, t); EM is exact in law for BM."""
    N, d = 20_000, 2
    n_samples = N * d  # coordinates are independent Brownian motions
    sim = EulerMaruyamaSimulator(BrownianMotion(sigma))
    torch.manual_seed(11)
    traj = sim.simulate_with_trajectory(torch.zeros(N, d), time_grid(100, 0.0, 2.0), every=25)
    assert traj.times.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert torch.equal(traj.states[0], torch.zeros(N, d))
    for t, w in zip(traj.times[1:].tolist(), traj.states[1:]):
        w = w.double().reshape(-1)
        var = sigma**2 * t
        # SE of the mean: σ√t/√n; SE of the sample variance of Gaussians: var·√(2/n)
        # (n = 40,000 → 0.7% of var). Five SEs each.
        assert abs(float(w.mean())) < 5 * math.sqrt(var / n_samples)
        assert abs(float(w.var()) - var) < 5 * var * math.sqrt(2 / n_samples)
    # Cov(W_0.5, W_2) = σ²·0.5. For centred jointly Gaussian X, Y the product XY has variance
    # Var X Var Y + Cov², so SE = √((σ⁴·0.5·2 + σ⁴·0.25)/n); five SEs.
    a, b = traj.states[1].double().reshape(-1), traj.states[4].double().reshape(-1)
    cov = float((a * b).mean())
    se = sigma**2 * math.sqrt((0.5 * 2.0 + 0.25) / n_samples)
    assert abs(cov - sigma**2 * 0.5) < 5 * se


@pytest.mark.parametrize("theta, sigma", [(0.5, 1.0), (1.0, 0.5), (2.0, 2.0), (4.0, 1.0)])
def test_ou_stationary_variance(theta, sigma):
    """After θT = 6 relaxation times from x0 = 3, Var X_T = σ²/(2θ) up to e^{-12} ≈ 6e-6 (relative)."""
    N = 40_000
    h = 0.01 / theta  # θh = 0.01: EM's stationary variance σ²/(θ(2-θh)) is 0.5% above σ²/(2θ)
    T = 6.0 / theta
    n = round(T / h)
    ou = OrnsteinUhlenbeck(theta, sigma)
    torch.manual_seed(5)
    xs = EulerMaruyamaSimulator(ou).simulate(torch.full((N, 1), 3.0, dtype=torch.float64),
                                             grid64(n, 0.0, T))
    v_stat = ou.stationary_variance
    assert v_stat == pytest.approx(sigma**2 / (2 * theta))
    em_stat = sigma**2 / (theta * (2 - theta * h))
    var = float(xs.var())
    # SE of the variance: v√(2/N) = 0.71% of v. Tolerance: 5 SE plus the known 0.5% EM bias.
    assert abs(var - v_stat) < 5 * v_stat * math.sqrt(2 / N) + (em_stat - v_stat)
    # and the mean has forgotten x0: e^{-6}·3 ≈ 7e-3, within 5 SE (= 5√(v/N)) of the discrete a^n x0.
    assert abs(float(xs.mean()) - (1 - theta * h) ** n * 3.0) < 5 * math.sqrt(v_stat / N)


# --- Trajectories ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, every", [(10, 1), (10, 3), (10, 10), (10, 25), (7, 2), (64, 8)])
@pytest.mark.parametrize("state", [(2,), (1, 4, 4)])
def test_trajectory_shapes_and_times(n, every, state):
    batch = 5
    ts = time_grid(n, 0.5, 2.0)
    x0 = torch.ones(batch, *state)
    traj = EulerSimulator(ElementwiseDecay(1.0)).simulate_with_trajectory(x0, ts, every=every)
    assert isinstance(traj, Trajectory)
    k = math.ceil(n / every) + 1
    assert traj.states.shape == (k, batch, *state)
    assert traj.times.shape == (k,)
    assert float(traj.times[0]) == float(ts[0]) and float(traj.times[-1]) == float(ts[-1])
    idx = sorted(set(range(0, n + 1, every)) | {n})
    torch.testing.assert_close(traj.times, ts[idx])
    assert torch.equal(traj.final, traj.states[-1])


@pytest.mark.parametrize("every", [1, 4, 5])
@pytest.mark.parametrize("state", [(3,), (1, 4, 4)])
def test_trajectory_final_equals_simulate_under_same_seed(every, state, gen):
    x0 = torch.randn(6, *state, generator=gen)
    ts = time_grid(20)
    for sim in (EulerMaruyamaSimulator(OrnsteinUhlenbeck(1.0, 0.7)), HeunSimulator(ElementwiseDecay(0.9)),
                EulerSimulator(ElementwiseDecay(0.9))):
        torch.manual_seed(3)
        final = sim.simulate(x0, ts)
        torch.manual_seed(3)
        traj = sim.simulate_with_trajectory(x0, ts, every=every)
        assert torch.equal(traj.final, final)
        assert torch.equal(traj.states[0], x0)


@pytest.mark.parametrize("state", [(2,), (1, 4, 4)])
def test_trajectory_records_distinct_states_without_aliasing(state, gen):
    theta, n = 1.5, 12
    h = 1.0 / n
    x0 = torch.randn(4, *state, generator=gen, dtype=torch.float64)
    x0_copy = x0.clone()
    traj = EulerSimulator(ElementwiseDecay(theta)).simulate_with_trajectory(x0, grid64(n), every=1)
    # states[j] is x_j = (1-θh)^j x0: every recorded state is its own value, not a view of the last.
    for j in range(n + 1):
        torch.testing.assert_close(traj.states[j], (1 - theta * h) ** j * x0, rtol=1e-12, atol=1e-12)
    for j in range(n):
        assert not torch.equal(traj.states[j], traj.states[j + 1])
    assert torch.equal(x0, x0_copy)  # the simulator did not modify its input
    traj.states[0].zero_()  # the record is a copy: writing into it leaves x0 alone
    assert torch.equal(x0, x0_copy)
    # stochastic case: all recorded states differ
    torch.manual_seed(1)
    st = EulerMaruyamaSimulator(OrnsteinUhlenbeck(1.0, 1.0)).simulate_with_trajectory(x0, grid64(6))
    flat = st.states.reshape(st.states.shape[0], -1)
    assert all(not torch.equal(flat[i], flat[j]) for i in range(len(flat)) for j in range(i))


def test_image_shaped_states_em_and_heun(gen):
    x0 = torch.randn(8, 1, 4, 4, generator=gen)
    torch.manual_seed(0)
    traj = EulerMaruyamaSimulator(OrnsteinUhlenbeck(1.0, 0.5)).simulate_with_trajectory(x0, time_grid(10), every=2)
    assert traj.states.shape == (6, 8, 1, 4, 4)
    out = HeunSimulator(ElementwiseDecay(2.0)).simulate(x0.double(), grid64(10))
    h = 0.1
    torch.testing.assert_close(out, (1 - 2 * h + (2 * h) ** 2 / 2) ** 10 * x0.double())


# --- Blow-ups -------------------------------------------------------------------------------

F32_MAX = float(torch.finfo(torch.float32).max)


def first_overflow_step(x0_abs: float, theta: float, hs: list[float]) -> int:
    """Independently (log space, float64, no simulator): the first 0-based Euler step i of
    x' = -θx that produces a non-finite float32 value. Step i computes the drift -θx_i, then
    x_{i+1} = x_i + h(-θx_i) = (1-θh)x_i; with θ > 1 the drift |θx_i| overflows before
    |θh x_i| does, so the step is non-finite as soon as θ|x_i| or |x_{i+1}| exceeds the
    largest float32."""
    log_max = math.log(F32_MAX)
    log_x = math.log(x0_abs)
    for i, h in enumerate(hs):
        if math.log(theta) + log_x > log_max:
            return i
        log_x += math.log(abs(1 - theta * h))
        if log_x > log_max:
            return i
    raise AssertionError("no overflow")


@pytest.mark.parametrize("m", range(0, 10))
def test_blow_up_names_the_first_nonfinite_step(m):
    """u = -θx with θ = 1000, h = 0.01: each Euler step multiplies by 1 - θh = -9, and the
    drift θ|x_k| = 1000·9^k overflows float32 at k = 38 (9^37·1000 ≈ 2.0e38 < 3.4e38 <
    9^38·1000 ≈ 1.8e39: a margin of 1.7 and 5.3, far above rounding). Shifting x0 by 9^-m
    moves the failing step across the simulator's internal check blocks (every 8 steps),
    block boundaries included."""
    theta, n = 1000.0, 100
    ts = time_grid(n)
    hs = torch.diff(ts).tolist()
    x0v = 9.0**-m
    expected = first_overflow_step(x0v, theta, hs)
    assert expected == 38 + m
    with pytest.raises(FloatingPointError, match=rf"at step {expected} \(t = ") as info:
        EulerSimulator(LinearODE.decay(theta)).simulate(torch.full((3, 1), x0v), ts)
    msg = str(info.value)
    assert f"t = {float(ts[expected]):.4g}" in msg
    assert "step size h = 0.01 is probably too large" in msg
    # the same check when recording a trajectory
    with pytest.raises(FloatingPointError, match=rf"at step {expected} "):
        EulerSimulator(LinearODE.decay(theta)).simulate_with_trajectory(torch.full((3, 1), x0v), ts, every=3)


def test_blow_up_reports_the_step_size_of_the_failing_step():
    """On a non-uniform grid the message names h of the step that blew up."""
    theta = 1000.0
    hs = [0.01, 0.012, 0.011] * 20  # factors -9, -11, -10 in turn
    ts = torch.tensor([0.0] + list(np.cumsum(hs)), dtype=torch.float32)
    hs32 = torch.diff(ts).tolist()
    expected = first_overflow_step(1.0, theta, hs32)
    # The failing step's h differs from that of the first step of its check block (blocks of
    # 8 steps), so this test tells the two apart.
    assert f"{hs32[expected]:.3g}" != f"{hs32[expected // 8 * 8]:.3g}"
    with pytest.raises(FloatingPointError, match=rf"at step {expected} ") as info:
        EulerSimulator(LinearODE.decay(theta)).simulate(torch.ones(2, 1), ts)
    assert f"h = {hs32[expected]:.3g} is probably too large" in str(info.value)


def test_large_but_finite_states_do_not_raise():
    # θ = 100, h = 0.1: the factor is -9 and 9^10 ≈ 3.5e9 is finite in float32.
    out = EulerSimulator(LinearODE.decay(100.0)).simulate(torch.ones(2, 1), time_grid(10))
    torch.testing.assert_close(out, torch.full((2, 1), (-9.0) ** 10), rtol=1e-4, atol=0.0)


def test_stochastic_blow_up_raises():
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        EulerMaruyamaSimulator(OrnsteinUhlenbeck(1000.0, 1.0)).simulate(torch.ones(4, 2), time_grid(100))


# --- Input validation -----------------------------------------------------------------------


@pytest.fixture
def euler():
    return EulerSimulator(LinearODE.decay(1.0, 2))


def test_x0_without_batch_axis(euler):
    with pytest.raises(ValueError, match=r"x0 must have shape \(batch, \.\.\.\).*unsqueeze\(0\)"):
        euler.simulate(torch.ones(2), time_grid(5))


def test_x0_integer_dtype(euler):
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        euler.simulate(torch.ones(3, 2, dtype=torch.int64), time_grid(5))


def test_x0_not_a_tensor(euler):
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor, got list"):
        euler.simulate([[1.0, 2.0]], time_grid(5))


@pytest.mark.parametrize("ts, exc, pattern", [
    (torch.linspace(0, 1, 6).reshape(2, 3), ValueError, r"ts must be a 1-D tensor of times, got shape \(2, 3\)"),
    (torch.tensor([0.0, 0.5, 0.5, 1.0]), ValueError,
     r"strictly increasing, but ts\[2\] = 0.5 is not larger than ts\[1\]"),
    (torch.tensor([0.0, 1.0, 0.5]), ValueError, r"strictly increasing, but ts\[2\]"),
    (torch.tensor([1.0, 0.0]), ValueError, r"strictly increasing"),
    (torch.tensor([0.0]), ValueError, r"at least two times \(start and end\), got 1"),
    (torch.tensor([]), ValueError, r"at least two times"),
    (torch.arange(5), TypeError, r"ts must be floating point \(e\.g\. torch\.linspace"),
    (torch.tensor([0.0, float("nan"), 1.0]), ValueError, r"NaN or infinite"),
    (torch.tensor([0.0, 0.5, float("inf")]), ValueError, r"NaN or infinite"),
    (np.linspace(0, 1, 5), TypeError, r"ts must be a torch.Tensor, got ndarray"),
])
def test_bad_time_grids(euler, ts, exc, pattern):
    with pytest.raises(exc, match=pattern):
        euler.simulate(torch.ones(3, 2), ts)
    with pytest.raises(exc, match=pattern):
        euler.simulate_with_trajectory(torch.ones(3, 2), ts)


def test_check_same_device_helper():
    cpu, meta = torch.zeros(2), torch.zeros(2, device="meta")
    validate_same_device(x0=cpu, ts=torch.ones(3))  # same device: fine
    with pytest.raises(ValueError, match=r"same device, got x0 on cpu, ts on meta\. Move them with \.to\(device\)"):
        validate_same_device(x0=cpu, ts=meta)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device (CUDA)")
def test_time_grid_on_other_device(euler):
    with pytest.raises(ValueError, match="same device"):
        euler.simulate(torch.ones(3, 2), time_grid(5, device="cuda"))


def test_sde_passed_to_ode_simulator_suggests_euler_maruyama():
    with pytest.raises(TypeError, match=r"ode must be a labs_lib ODE, got OrnsteinUhlenbeck\..*EulerMaruyamaSimulator"):
        EulerSimulator(OrnsteinUhlenbeck(1.0, 1.0))
    with pytest.raises(TypeError, match=r"got BrownianMotion\..*EulerMaruyamaSimulator"):
        HeunSimulator(BrownianMotion())


def test_non_dynamics_rejected():
    with pytest.raises(TypeError, match=r"ode must be a labs_lib ODE, got function\.$"):
        EulerSimulator(lambda x, t: -x)
    with pytest.raises(TypeError, match=r"sde must be a labs_lib SDE \(with drift and diffusion\), got LinearODE"):
        EulerMaruyamaSimulator(LinearODE.decay(1.0))


@pytest.mark.parametrize("every", [0, -2, 1.5, "3", True])
def test_every_must_be_positive_int(euler, every):
    with pytest.raises(ValueError, match="every must be a positive integer"):
        euler.simulate_with_trajectory(torch.ones(3, 2), time_grid(5), every=every)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"n_steps": 0}, "n_steps must be a positive integer"),
    ({"n_steps": 10, "t0": 1.0, "t1": 1.0}, r"t1 must be larger than t0, got t0 = 1.0, t1 = 1.0"),
    ({"n_steps": 10, "t0": 1.0, "t1": 0.0}, "t1 must be larger than t0"),
])
def test_time_grid_validation(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        time_grid(**kwargs)


def test_time_grid_values():
    ts = time_grid(4, 1.0, 3.0)
    assert ts.tolist() == [1.0, 1.5, 2.0, 2.5, 3.0]


def test_simulate_does_not_track_gradients(gen):
    x0 = torch.randn(3, 2, generator=gen, requires_grad=True)
    out = EulerSimulator(LinearODE.decay(1.0, 2)).simulate(x0, time_grid(5))
    assert not out.requires_grad
