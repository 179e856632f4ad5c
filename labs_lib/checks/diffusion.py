r"""Checkers for notebook 09: one step of the DDPM forward chain, one ancestral (reverse) step, and one
step of DPM-Solver++(2M).

The references are the library's (the policy is stated in :mod:`labs_lib.checks`):
:func:`labs_lib.diffusion.ddpm_step_coefficients` for the forward step (with the noise given, so that
the answer is one tensor, not a law), :func:`labs_lib.diffusion.ddpm_posterior` for the ancestral step,
and :func:`labs_lib.diffusion.dpmpp_2m_step` for the solver. The schedule values are passed as 0-dim
tensors, so that ``math.sqrt`` and ``torch.sqrt`` both work on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import product

import torch
from torch import Tensor

from ..diffusion import ddpm_posterior, ddpm_step_coefficients, dpmpp_2m_step
from ..paths import AffinePath, CosineScheduler
from ._framework import (SHAPES, CheckFailed, Ok, call_guarded, checker, close, diagnose, on_probe_device,
                         require_device_safe, require_function, require_state_shaped, shapes_text)

#: the variance-preserving path of the lab (the DDPM chain and the posterior assume α² + β² = 1)
VP_PATH = AffinePath(CosineScheduler())


def _levels(t: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(alpha_t, beta_t)`` of the lab's cosine path as 0-dim tensors of ``dtype``."""
    s = VP_PATH.scheduler(torch.tensor(t, dtype=torch.float64))
    return s.alpha_t.to(dtype), s.beta_t.to(dtype)


def _call(fn: Callable, args: tuple, inputs: dict[str, Tensor], x: Tensor, what: str) -> Tensor:
    out = call_guarded(lambda: fn(*args), inputs, what, "Build a new tensor (`a * x + b * noise`), not `x *= ...` or "
                       "`x.add_(...)`: the caller still needs x.")
    return require_state_shaped(out, x, what, "The result must have the shape of x: the schedule values are "
                                "numbers (0-dim tensors) that multiply whole states.")


# --- exercise 1: one step of the forward chain ----------------------------------------------------------

# (ᾱ_{k-1}, ᾱ_k): a step from clean data, an ordinary step, a step into near-pure noise, and a step
# that adds no noise (ᾱ_k = ᾱ_{k-1}), where x must come back unchanged.
FORWARD_LEVELS: tuple[tuple[float, float], ...] = ((1.0, 0.98), (0.81, 0.64), (0.3, 0.02), (0.5, 0.5))


def _forward_mistakes(x: Tensor, noise: Tensor, ab_prev: Tensor, ab: Tensor) -> dict[str, Tensor]:
    """The named mistakes of the forward-step exercise: hint → what that wrong line returns."""
    ratio = ab / ab_prev
    return {
        "this is the jump from clean data to level k, √ᾱ_k·x + √(1 − ᾱ_k)·ε: one step of the chain starts from "
        "level k − 1, so it uses the ratio ᾱ_k / ᾱ_{k−1}: √(ᾱ_k/ᾱ_{k−1})·x + √(1 − ᾱ_k/ᾱ_{k−1})·ε.":
            ab.sqrt() * x + (1 - ab).sqrt() * noise,
        "the square roots are missing: the scale of x is √(ᾱ_k/ᾱ_{k−1}) and the noise's standard deviation "
        "√(1 − ᾱ_k/ᾱ_{k−1}) (the variances add up to 1, the standard deviations do not).":
            ratio * x + (1 - ratio) * noise,
        "the noise's standard deviation is missing its square root: √(1 − ᾱ_k/ᾱ_{k−1}), not 1 − ᾱ_k/ᾱ_{k−1}.":
            ratio.sqrt() * x + (1 - ratio) * noise,
        "the ratio is upside down: the signal shrinks along the forward chain, so x is scaled by "
        "√(ᾱ_k/ᾱ_{k−1}) ≤ 1.": (1 / ratio).sqrt() * x + (1 - ratio).clamp(min=0).sqrt() * noise,
        "the noise is scaled by √(1 − ᾱ_k), the total noise of level k; one step adds only what the level "
        "k − 1 lacks: √(1 − ᾱ_k/ᾱ_{k−1}).": ratio.sqrt() * x + (1 - ab).sqrt() * noise,
        "x is not scaled: the forward chain shrinks the signal by √(ᾱ_k/ᾱ_{k−1}) as it adds noise, which keeps "
        "the variance bounded (variance preserving).": x + (1 - ratio).sqrt() * noise,
    }


@checker("DDPM forward step")
def check_ddpm_forward_step(fn: Callable, ok: Ok) -> None:
    """Check ``fn(x_prev, alpha_bar_prev, alpha_bar, noise)`` against
    :math:`\\sqrt{\\bar\\alpha_k/\\bar\\alpha_{k-1}}\\,x
    + \\sqrt{1 - \\bar\\alpha_k/\\bar\\alpha_{k-1}}\\,\\varepsilon`, and that chained from data it keeps the
    marginal law :math:`\\mathcal N(\\sqrt{\\bar\\alpha_k}x_0, (1 - \\bar\\alpha_k)I)`."""
    require_function(fn, "check_ddpm_forward_step", "my_ddpm_forward_step")
    gen = torch.Generator().manual_seed(0)
    for shape, (ab_prev_f, ab_f) in product(SHAPES, FORWARD_LEVELS):
        x, noise = (torch.randn(shape, generator=gen) for _ in range(2))
        ab_prev, ab = torch.tensor(ab_prev_f), torch.tensor(ab_f)
        out = _call(fn, (x, ab_prev, ab, noise), {"x_prev": x, "noise": noise}, x, "your forward step")
        a, b = ddpm_step_coefficients(ab_prev, ab)
        if not close(out, a * x + b * noise):
            raise diagnose(out, _forward_mistakes(x, noise, ab_prev, ab),
                           f"for x of shape {shape}, ᾱ_(k−1) = {ab_prev_f} and ᾱ_k = {ab_f} your step differs from "
                           f"√(ᾱ_k/ᾱ_(k−1))·x + √(1 − ᾱ_k/ᾱ_(k−1))·noise by up to "
                           f"{float((out - a * x - b * noise).abs().max()):.3g}.")
    ok(f"matches √(ᾱ_k/ᾱ_(k−1))·x + √(1 − ᾱ_k/ᾱ_(k−1))·noise for x of shapes {shapes_text(SHAPES)} and "
       f"(ᾱ_(k−1), ᾱ_k) = {', '.join(map(str, FORWARD_LEVELS))}, including a step that adds no noise")
    # The marginal: 40,000 chains of 8 steps from one data point, in float64.
    x0 = torch.tensor([[1.5, -0.5]], dtype=torch.float64)
    bars = torch.cos(0.5 * math.pi * torch.linspace(0, 0.9, 9, dtype=torch.float64)) ** 2  # ᾱ_0 = 1 > ... > ᾱ_8
    x = x0.repeat(40_000, 1)
    for k in range(1, len(bars)):
        x = fn(x, bars[k - 1], bars[k], torch.randn(x.shape, generator=gen, dtype=torch.float64))
    mean_err = float((x.mean(0) - bars[-1].sqrt() * x0[0]).abs().max())
    var_err = float((x.var(0) - (1 - bars[-1])).abs().max())
    if mean_err > 0.03 or var_err > 0.03:  # 5 standard errors of 40,000 samples
        raise CheckFailed("chained over 8 steps from x_0 = (1.5, −0.5), your steps end with mean off by "
                          f"{mean_err:.3f} and variance off by {var_err:.3f} from N(√ᾱ·x_0, (1 − ᾱ)I).")
    ok(f"chained over 8 steps from x_0, 40,000 samples have the mean √ᾱ_8·x_0 and the variance 1 − ᾱ_8 = "
       f"{float(1 - bars[-1]):.3f} of the exact marginal (within {max(mean_err, var_err):.3f})")
    probe = on_probe_device(x0.float(), torch.tensor(0.9), torch.tensor(0.8), torch.randn(1, 2))
    require_device_safe(lambda: fn(*probe))
    ok("leaves its inputs untouched and works on x's device")


# --- exercise 2: one ancestral step ---------------------------------------------------------------------

# (t, t'): course times on the cosine path, t < t' (noise → data): an early step, a long one, a short one
# and the last step into t' = 1 (β' = 0: no noise is left to add).
ANCESTRAL_TIMES: tuple[tuple[float, float], ...] = ((0.05, 0.2), (0.3, 0.7), (0.6, 0.65), (0.9, 1.0))


def _ancestral_mistakes(x: Tensor, x1: Tensor, noise: Tensor, a: Tensor, b: Tensor, a2: Tensor,
                        b2: Tensor) -> dict[str, Tensor]:
    """The named mistakes of the ancestral-step exercise: hint → what that wrong line returns."""
    mean, std = ddpm_posterior(x, x1, a, b, a2, b2)
    eps_hat = (x - a * x1) / b
    k = a / a2
    kernel_std = (b**2 - k**2 * b2**2).clamp(min=0).sqrt()
    return {
        "there is no noise in this step: that is deterministic DDIM, α'·x̂₁ + β'·ε̂. The ancestral step samples "
        "the posterior: its mean plus σ̃·noise.": a2 * x1 + b2 * eps_hat,
        "the noise is missing: return the posterior mean plus σ̃ times the given noise.": mean,
        "the noise is scaled by β', the whole noise level at t'; the posterior's standard deviation is smaller, "
        "σ̃ = β'·√(1 − (αβ')²/(α'β)²) (given x_t, part of x_t' is already known).": mean + b2 * noise,
        "the noise is scaled by the variance σ̃², not the standard deviation σ̃.": mean + std**2 * noise,
        "the noise is scaled by the forward kernel's standard deviation √(β² − (α/α')²β'²) (DDPM's √β_k); "
        "the exercise asks for the posterior's, σ̃ = β'·√(1 − (αβ')²/(α'β)²), which is smaller.":
            mean + kernel_std * noise,
        "the two weights of the mean are swapped: x̂₁ is weighted by α'(β² − a²β'²)/β² and x by aβ'²/β², "
        "with a = α/α'.": (a * b2**2 / b**2) * x1 + (a2 * kernel_std**2 / b**2) * x + std * noise,
        "this inverts the forward kernel, (x − √(β² − a²β'²)·noise)/a: the reverse step must use what the model "
        "predicts, x̂₁, through the posterior mean.": (x - kernel_std * noise) / k,
    }


@checker("ancestral step")
def check_ancestral_step(fn: Callable, ok: Ok) -> None:
    """Check ``fn(x, x1_hat, alpha, beta, alpha_next, beta_next, noise)``: a sample of the DDPM posterior
    :math:`q(x_{t'} \\mid x_t = x, x_1 = \\hat x_1)`, its mean plus its standard deviation times ``noise``."""
    require_function(fn, "check_ancestral_step", "my_ancestral_step")
    gen = torch.Generator().manual_seed(1)
    for shape, (t, t_next) in product(SHAPES, ANCESTRAL_TIMES):
        x, x1, noise = (torch.randn(shape, generator=gen) for _ in range(3))
        (a, b), (a2, b2) = _levels(t, x.dtype), _levels(t_next, x.dtype)
        out = _call(fn, (x, x1, a, b, a2, b2, noise), {"x": x, "x1_hat": x1, "noise": noise}, x, "your ancestral step")
        mean, std = ddpm_posterior(x, x1, a, b, a2, b2)
        if not close(out, mean + std * noise, tol=1e-4):
            raise diagnose(out, _ancestral_mistakes(x, x1, noise, a, b, a2, b2),
                           f"for x of shape {shape} from t = {t} to t' = {t_next} your step differs from the "
                           f"posterior mean + σ̃·noise by up to {float((out - mean - std * noise).abs().max()):.3g}.",
                           near=lambda u, v: close(u, v, tol=1e-4))
    ok(f"matches the posterior mean + σ̃·noise for x of shapes {shapes_text(SHAPES)} and (t, t') = "
       f"{', '.join(map(str, ANCESTRAL_TIMES))} on the cosine path")
    ok("the last step, into t' = 1 (β' = 0), adds no noise and lands on the predicted data x̂₁")
    probe = on_probe_device(torch.randn(2, 2), torch.randn(2, 2), *_levels(0.3, torch.float32),
                            *_levels(0.5, torch.float32), torch.randn(2, 2))
    require_device_safe(lambda: fn(*probe))
    ok("leaves its inputs untouched and works on x's device")


# --- exercise 3: one step of DPM-Solver++(2M) -------------------------------------------------------------

# (t_prev, t, t_next) on the cosine path: steps of equal and unequal size in λ, near noise and near data.
SOLVER_TIMES: tuple[tuple[float, float, float], ...] = ((0.1, 0.2, 0.3), (0.2, 0.5, 0.6), (0.7, 0.75, 0.95),
                                                        (0.02, 0.05, 0.4))


def _solver_mistakes(x: Tensor, d_prev: Tensor, d: Tensor, times: tuple[float, float, float]) -> dict[str, Tensor]:
    """The named mistakes of the DPM-Solver++(2M) exercise: hint → what that wrong line returns."""
    (ap, bp), (a, b), (a2, b2) = (_levels(t, torch.float64) for t in times)
    lp, lam, l2 = (float(torch.log(u / v)) for u, v in ((ap, bp), (a, b), (a2, b2)))
    h, x, d_prev, d = l2 - lam, x.double(), d_prev.double(), d.double()
    r = (lam - lp) / h

    def update(dd: Tensor, decay: float = -math.expm1(-h), scale: float = float(b2 / b)) -> Tensor:
        return scale * x + float(a2) * decay * dd  # the step with the bracket dd, its weight and scale of x

    extrap = (1 + 0.5 / r) * d - (0.5 / r) * d_prev
    ru = (times[1] - times[0]) / (times[2] - times[1])  # r measured in t
    return {
        "this is the first-order step (DDIM): it uses only d. The second-order step extrapolates the data "
        "prediction linearly in λ: (1 + 1/(2r))·d − 1/(2r)·d_prev.": update(d),
        "r is upside down: r = (λ − λ_prev)/h is the previous step's length over this one's, h = λ' − λ.":
            update((1 + 0.5 * r) * d - 0.5 * r * d_prev),
        "the extrapolation has the wrong sign: the bracket is (1 + 1/(2r))·d − 1/(2r)·d_prev (d_prev is "
        "subtracted).": update((1 - 0.5 / r) * d + (0.5 / r) * d_prev),
        "the factor is e^{−h} − 1 or 1 − e^{h}: it is α'·(1 − e^{−h}) = −α'·expm1(−h), a positive number for h > 0.":
            update(extrap, decay=math.expm1(-h)),
        "the step sizes are measured in t; DPM-Solver's are in λ = log(α/β), where the ODE's linear part is "
        "solved exactly: h = λ' − λ and r = (λ − λ_prev)/h.":
            update((1 + 0.5 / ru) * d - (0.5 / ru) * d_prev),
        "x is scaled by α'/α; the exact linear part multiplies it by β'/β (the noise part of x is carried along).":
            update(extrap, scale=float(a2 / a)),
        "λ must be log(α/β); this used the log-SNR log(α²/β²) = 2λ for h, which changes the weight 1 − e^{−h}.":
            update(extrap, decay=-math.expm1(-2 * h)),
    }


@checker("DPM-Solver++(2M) step")
def check_dpmpp_2m_step(fn: Callable, ok: Ok) -> None:
    """Check ``fn(path, x, t_prev, t, t_next, d_prev, d)``: one second-order step of DPM-Solver++(2M) from ``t``
    to ``t_next``, with the data predictions ``d`` at ``t`` and ``d_prev`` at ``t_prev``."""
    require_function(fn, "check_dpmpp_2m_step", "my_dpmpp_2m_step")
    gen = torch.Generator().manual_seed(2)
    for shape, times in product(SHAPES, SOLVER_TIMES):
        x, d_prev, d = (torch.randn(shape, generator=gen) for _ in range(3))
        out = _call(fn, (VP_PATH, x, *times, d_prev, d), {"x": x, "d_prev": d_prev, "d": d}, x,
                    "your DPM-Solver++(2M) step")
        ref = dpmpp_2m_step(VP_PATH, x, *times, d_prev, d)
        if not close(out, ref, tol=1e-4):
            raise diagnose(out, _solver_mistakes(x, d_prev, d, times),
                           f"for x of shape {shape} and (t_prev, t, t_next) = {times} your step differs from "
                           f"(β'/β)·x + α'(1 − e^(−h))·[(1 + 1/(2r))·d − d_prev/(2r)] by up to "
                           f"{float((out - ref).abs().max()):.3g}.", near=lambda u, v: close(u, v, tol=1e-4))
    ok(f"matches (β'/β)·x + α'(1 − e^(−h))·[(1 + 1/(2r))·d − d_prev/(2r)] for x of shapes {shapes_text(SHAPES)} "
       f"and (t_prev, t, t_next) = {', '.join(map(str, SOLVER_TIMES))}")
    x, d = (torch.randn(4, 2, generator=gen) for _ in range(2))
    if not close(fn(VP_PATH, x, 0.2, 0.4, 0.6, d, d.clone()), dpmpp_2m_step(VP_PATH, x, None, 0.4, 0.6, None, d)):
        raise CheckFailed("with d_prev = d (a prediction that does not change) the step must reduce to DDIM, "
                          "(β'/β)·x + α'(1 − e^(−h))·d.")
    ok("with d_prev = d it reduces to the first-order step, deterministic DDIM")
    require_device_safe(lambda: fn(*on_probe_device(VP_PATH, x, 0.2, 0.4, 0.6, d, d)))
    ok("leaves its inputs untouched and works on x's device")
