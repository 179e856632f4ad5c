"""Checkers for notebook 01: the Euler, Heun and Euler–Maruyama steps."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..dynamics import ODE, SDE
from ..simulators import ODESimulator, SDESimulator, Simulator
from ._framework import (SHAPES, CheckFailed, Ok, call_step, checker, close, diagnose, on_probe_device,
                         require_device_safe, require_subclass, rounded, shapes_text)

# --- test dynamics: time-dependent and nonlinear, so that mistakes show -------------------


class _CheckODE(ODE):
    r""":math:`u_t(x) = -0.8\,x + 2\cos(3t) + 0.5\sin(x)`: elementwise, so any state shape works."""

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return -0.8 * x + 2 * torch.cos(3 * t) + 0.5 * torch.sin(x)


class _CheckSDE(SDE):
    r"""The drift of :class:`_CheckODE` with diffusion :math:`\sigma_t(x) = 1.1 + t + 0.2\tanh(x)`.

    σ stays well away from 1 (≈ 1.5 at the moment check's t = 0.4), so that σ, σ² and a
    missing σ give clearly different variances.
    """

    drift = _CheckODE.drift

    def diffusion(self, x: Tensor, t: Tensor) -> Tensor:
        return 1.1 + t + 0.2 * torch.tanh(x)


def _collapsed_axis(out: Tensor, x: Tensor, ref: Tensor) -> str | None:
    """Recognise a broadcasting bug: the update ``out - x`` is constant along an axis where the
    right update is not (a sum, mean or slice collapsed the axis, broadcasting copied it back)."""
    for axis in range(x.ndim):
        # whether your update, then the right one, is constant along the axis
        constant = [close(inc, inc.narrow(axis, 0, 1).expand_as(inc)) for inc in (out - x, ref - x)]
        if x.shape[axis] > 1 and constant == [True, False]:
            where = "particle (axis 0, the batch)" if axis == 0 else f"entry along axis {axis}"
            return (f"for x of shape {tuple(x.shape)} your update x' − x is the same for every {where}, "
                    "where it should vary: a sum, mean or slice (e.g. u.sum(-1, keepdim=True) or u[:, :1]) "
                    "collapsed that axis and broadcasting copied it back. Keep every term the same shape as x.")
    return None


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    for shape in SHAPES:
        yield torch.randn(shape, generator=gen), torch.tensor(0.3 + 0.1 * len(shape)), 0.25


def _check_ode_step(cls: type, exercise: str, seed: int, expected: Callable, shown: str, named: str,
                    ok: Callable[[str], None]) -> None:
    """The body shared by the one-step ODE checkers: ``cls(ode).step`` against ``expected``.

    ``expected(ode, x, t, h)`` returns the right new state and a function that returns the named
    mistakes (hint → what that mistake returns; built only on a failure, since some of them call
    the drift in ways a correct step never does); ``shown`` is the formula the report prints,
    ``named`` how a failure names it.
    """
    require_subclass(cls, ODESimulator, exercise)
    ode = _CheckODE()
    sim = cls(ode)
    for x, t, h in _inputs(seed):
        out = call_step(sim, x, t, h)
        ref, mistakes = expected(ode, x, t, h)
        if not close(out, ref):
            raise diagnose(out, mistakes(), _collapsed_axis(out, x, ref) or
                           f"for x of shape {tuple(x.shape)} the result differs from {named} by up to "
                           f"{float((out - ref).abs().max()):.3g}.")
    ok(f"matches {shown} for state shapes {shapes_text(SHAPES)}")
    ok("returns a new tensor of x's shape and leaves x untouched")


def _euler_expected(ode: ODE, x: Tensor, t: Tensor, h: float) -> tuple[Tensor, Callable[[], dict[str, Tensor]]]:
    u = ode.drift(x, t)
    return x + h * u, lambda: {
        "the update has the wrong sign: move *along* the vector field, x + h·u_t(x).": x - h * u,
        "the slope must be multiplied by the step size h: x + h·u_t(x).": x + u,
        "the step returned only the increment h·u_t(x); add it to the current state x.": h * u,
        "the drift was evaluated at t + h. Euler uses the slope at the *start* of the step, u_t(x).":
            x + h * ode.drift(x, t + h),
        "the increment scales with √h; for an ODE step it is h·u_t(x) (√h belongs to the noise of an SDE).":
            x + math.sqrt(h) * u,
        "the step returned x unchanged: return the new state x + h·u_t(x).": x,
        "the slope was multiplied by h², not h: the Euler step is x + h·u_t(x).": x + h**2 * u,
        "the arguments of drift are swapped: call drift(x, t), the state first and then the time.":
            x + h * ode.drift(t, x),
    }


@checker("Euler step")
def check_euler_step(cls: type, ok: Ok) -> None:
    """Check an Euler simulator class: ``step`` must return ``x + h·u_t(x)``."""
    _check_ode_step(cls, "euler_step", 0, _euler_expected, "x + h·u_t(x)", "x + h·u_t(x)", ok)


def _heun_expected(ode: ODE, x: Tensor, t: Tensor, h: float) -> tuple[Tensor, Callable[[], dict[str, Tensor]]]:
    u = ode.drift(x, t)
    guess = x + h * u
    u_end = ode.drift(guess, t + h)
    return x + 0.5 * h * (u + u_end), lambda: {
        "this is an Euler step. Heun also evaluates the slope at the predicted end point "
        "x̃ = x + h·u_t(x) and averages the two slopes.": x + h * u,
        "the two slopes are summed, not averaged (the same as a corrector that takes a full Euler step "
        "from the predicted point, x̃ + h·u_{t+h}(x̃)): the step is x + (h/2)·[u_t(x) + u_{t+h}(x̃)].":
            x + h * (u + u_end),
        "the second slope must be taken at time t + h, the end of the step: u_{t+h}(x̃).":
            x + 0.5 * h * (u + ode.drift(guess, t)),
        "the second slope must be taken at the predicted point x̃ = x + h·u_t(x), not at x.":
            x + 0.5 * h * (u + ode.drift(x, t + h)),
        "this is the midpoint method (slope at t + h/2). Heun averages the slopes at both "
        "ends of the step.": x + h * ode.drift(x + 0.5 * h * u, t + 0.5 * h),
        "the step returned x̃ + (h/2)·(...) instead of x + (h/2)·(...): start from x.":
            guess + 0.5 * h * (u + u_end),
        "the step returned only the increment (h/2)·[u_t(x) + u_{t+h}(x̃)]; add it to the current "
        "state x.": 0.5 * h * (u + u_end),
        "the update has the wrong sign: move *along* the vector field, x + (h/2)·[...].":
            x - 0.5 * h * (u + u_end),
        "the update has the wrong sign: predict x̃ = x + h·u_t(x) and step x + (h/2)·[...], "
        "both along the vector field.": x - 0.5 * h * (u + ode.drift(x - h * u, t + h)),
        "the step returned x unchanged: return the new state x + (h/2)·[u_t(x) + u_{t+h}(x̃)].": x,
        "the corrector uses only the end slope, x + h·u_{t+h}(x̃): average it with the start slope, "
        "x + (h/2)·[u_t(x) + u_{t+h}(x̃)].": x + h * u_end,
    }


@checker("Heun step")
def check_heun_step(cls: type, ok: Ok) -> None:
    """Check a Heun simulator class against ``x + h/2·[u_t(x) + u_{t+h}(x + h·u_t(x))]``."""
    _check_ode_step(cls, "heun_step", 1, _heun_expected, "x + (h/2)·[u_t(x) + u_(t+h)(x + h·u_t(x))]",
                    "Heun's step", ok)


# For the Euler–Maruyama check: N copies of one state, so that the increments' moments can be read
# off. The tolerances are five standard errors of each moment under the exact law (the check is
# seeded, so it cannot flake): with N = 2,000,000 the mean's standard error is σ√h/√N ≈ 0.0006,
# the variance's √(2/N) ≈ 0.1% of it, the kurtosis's √(24/N) ≈ 0.0035. That separates the drift at
# x, at the midpoint x + (h/2)·u and at the predicted point x + h·u (0.006 apart, ten standard
# errors), σ at x and at x + h·u (4% of the variance), and Gaussian noise from noise that is not
# (±1 noise has kurtosis 1, uniform noise 1.8, against 3).
_EM_N = 2_000_000
_EM_SE = 5.0


def _within(a: Tensor, b: Tensor | float, tol: Tensor | float) -> bool:
    """Whether ``a`` and ``b`` agree within ``tol`` in every coordinate."""
    return bool(((a - b).abs() <= tol).all())


def _em_mistakes(sde: SDE, x1: Tensor, t: Tensor, h: float) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The named mistakes of the drift term, then those of the noise term: hint → the mean (the variance) of
    the increments (float64, per coordinate) that wrong step has from the state ``x1`` of shape ``(1, d)``."""

    def u(x: Tensor, time: Tensor) -> Tensor:
        return sde.drift(x, time)[0].double()

    def sigma(x: Tensor, time: Tensor) -> Tensor:
        return sde.diffusion(x, time)[0].double()

    u_x, sig = u(x1, t), sigma(x1, t)
    pred, half = x1 + h * sde.drift(x1, t), x1 + 0.5 * h * sde.drift(x1, t)
    means = {
        "the drift term has the wrong sign: x + h·u_t(x) + noise.": -h * u_x,
        "the drift must be multiplied by h (and the noise by √h).": u_x,
        "the drift was evaluated at t + h: Euler–Maruyama uses u_t(x) at the start of the step.": h * u(x1, t + h),
        "the drift was evaluated at the predicted point x + h·u_t(x) (a Heun-like step). "
        "Euler–Maruyama takes the drift at the current state: u_t(x).": h * u(pred, t),
        "the drift was evaluated at x + (h/2)·u_t(x) (a midpoint step). Euler–Maruyama takes the "
        "drift at the current state: u_t(x).": h * u(half, t),
        "the drift was evaluated at the predicted point x + h·u_t(x) at time t + h. Euler–Maruyama "
        "takes the drift at the start of the step: u_t(x).": h * u(pred, t + h),
        "the drift was multiplied by √h; the drift scales with h, only the noise with √h.": math.sqrt(h) * u_x,
        "the mean increment is 0: the drift term h·u_t(x) is missing.": torch.zeros_like(u_x),
        "the noise does not average 0: torch.rand/rand_like draw uniform numbers in [0, 1). Use "
        "standard normal noise, ε = torch.randn_like(x).": h * u_x + 0.5 * sig * math.sqrt(h),
    }
    variances = {
        "the noise must scale with √h, not h: σ_t(x)·√h·ε.": sig**2 * h**2,
        "the noise is missing the diffusion coefficient σ_t(x): σ_t(x)·√h·ε.": torch.full_like(sig, h),
        "the noise is scaled by σ² instead of σ: σ_t(x)·√h·ε.": sig**4 * h,
        "the diffusion was evaluated at t + h: use σ_t(x) at the start of the step.": sigma(x1, t + h)**2 * h,
        "the diffusion was evaluated at the predicted point x + h·u_t(x): use σ_t(x) at the current "
        "state.": sigma(pred, t)**2 * h,
        "the noise has no √h: a Brownian increment over a step h has standard deviation √h.": sig**2,
        "the noise is uniform: torch.rand draws from [0, 1), whose variance is 1/12. Use standard "
        "normal noise, ε = torch.randn_like(x).": sig**2 * h / 12,
    }
    return means, variances


@checker("Euler–Maruyama step")
def check_euler_maruyama_step(cls: type, ok: Ok) -> None:
    """Check an Euler–Maruyama class: increments must have mean ``h·u_t(x)``, variance
    ``σ_t(x)²·h`` and Gaussian shape, with independent noise across particles and coordinates."""
    require_subclass(cls, SDESimulator, "euler_maruyama_step")
    sde = _CheckSDE()
    sim = cls(sde)
    # The moments are checked first, on a batch in the plane, so that a noise of the wrong
    # shape (e.g. one ε per particle, shared by its coordinates) is named by the statistics
    # below rather than by a shape error on image-shaped states. The report lists the
    # properties in their usual order all the same.
    inputs = list(_inputs(2))
    _check_random(sim, *inputs[0])
    # The increments of _EM_N copies of one state x1 of shape (1, 2), and their mean and variance per coordinate.
    x1 = torch.randn(1, 2, generator=torch.Generator().manual_seed(3))
    t, h = torch.tensor(0.4), 0.25
    x = x1.expand(_EM_N, 2).contiguous()
    torch.manual_seed(0)
    inc = (call_step(sim, x, t, h) - x).double()
    mean, var = inc.mean(0), inc.var(0)
    centred = inc - mean
    exp_mean, exp_var = h * sde.drift(x1, t)[0].double(), sde.diffusion(x1, t)[0].double()**2 * h
    mean_mistakes, var_mistakes = _em_mistakes(sde, x1, t, h)
    near_mean = functools.partial(_within, tol=_EM_SE * (exp_var / _EM_N).sqrt())
    near_var = functools.partial(_within, tol=_EM_SE * exp_var * math.sqrt(2 / _EM_N) + 1e-12)

    # Identical particles that moved identically share their noise; this comes before the
    # mean, which a single shared draw shifts by a random amount.
    if float(var.max()) < 1e-8:
        raise CheckFailed("all particles moved identically: the noise is shared. Draw an independent "
                          "ε for every particle and coordinate: torch.randn_like(x).")
    if not near_mean(mean, exp_mean):
        raise diagnose(mean, mean_mistakes, f"the average increment should be h·u_t(x) = {rounded(exp_mean)}, but "
                       f"yours averages {rounded(mean)}.", near_mean)
    if not near_var(var, exp_var):
        raise diagnose(var, var_mistakes, f"the increments' variance should be σ_t(x)²·h = {rounded(exp_var)}, but "
                       f"yours is {rounded(var)}.", near_var)
    # Standard normal noise has kurtosis E[ε⁴]/E[ε²]² = 3; its standard error here is √(24/N).
    kurt = (centred**4).mean(0) / var.clamp_min(1e-300) ** 2
    if not _within(kurt, 3, _EM_SE * math.sqrt(24 / _EM_N)):
        k = float(kurt.mean())
        what = ("it takes only two values, like ±1 (torch.sign(torch.randn_like(x)) or a coin flip)" if k < 1.3
                else "it looks uniform (torch.rand scaled to the right variance?)" if k < 2.2
                else "its tails are wrong")
        raise CheckFailed(f"the increments have the right mean and variance, but the noise is not Gaussian "
                          f"(kurtosis {k:.2f}, where a normal distribution has 3): {what}. A Brownian "
                          "increment is normal: ε = torch.randn_like(x).")
    corr = centred.prod(1).mean() / var.prod().sqrt()  # of the two coordinates
    if abs(float(corr)) > 0.05:
        raise CheckFailed(f"the noise of different coordinates is correlated ({float(corr):.2f}): draw one "
                          "independent ε per coordinate, with the same shape as x (torch.randn_like(x)).")

    for x, t, h in inputs:
        _check_random(sim, x, t, h)
    x_probe, t_probe, h = on_probe_device(*inputs[1])
    require_device_safe(lambda: sim.step(x_probe, t_probe, h))
    ok("returns a new tensor of x's shape, leaves x untouched, is random, and keeps x's device")
    ok("the increments average h·u_t(x) (the drift term is right)")
    ok("the increments' variance is σ_t(x)²·h (the noise scales with √h)")
    ok("the noise is Gaussian (kurtosis 3)")
    ok("the noise is independent across coordinates")


def _check_random(sim: Simulator, x: Tensor, t: Tensor, h: float) -> None:
    torch.manual_seed(1)
    out = call_step(sim, x, t, h)
    torch.manual_seed(2)
    if close(out, call_step(sim, x, t, h)) and x.numel() > 1:
        raise CheckFailed("the step gave the same result with different random seeds: "
                          "add the noise term σ_t(x)·√h·ε with ε = torch.randn_like(x).")
