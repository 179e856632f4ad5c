r"""Checkers for notebook 06: the denoising score matching loss, the score of a Gaussian path
computed from its vector field, and the Langevin-corrected SDE.

* :func:`check_dsm_loss` compares ``fn(model, path, eps, z, t)`` (the noise first, as the source
  point ``x_0`` of ``path.sample(x_0, x_1, t)``) with :func:`labs_lib.losses.dsm_loss`
  (``weighting="none"``):

  .. math:: \frac1B\sum_{i=1}^B \big\|s^\theta_{t_i}(x_{t_i}) + \varepsilon^{(i)}/\beta_{t_i}\big\|^2,
            \qquad x_t = \alpha_t z + \beta_t\varepsilon .

* :func:`check_score_from_velocity` compares ``fn(path, u, x, t)`` with
  :meth:`labs_lib.paths.AffinePath.velocity_to_score`,
  :math:`(\alpha_t u - \dot\alpha_t x)/(\beta_t^2\dot\alpha_t - \alpha_t\beta_t\dot\beta_t)`, for three
  schedules, and then feeds it the exact marginal field of a Gaussian mixture, whose exact
  score it must return.
* :func:`check_langevin_corrected_sde` builds ``cls(vector_field, score, sigma)`` for several σ
  and compares its drift with :math:`u_t(x) + \tfrac12\sigma^2 s_t(x)` and its diffusion with σ.

Two schedules at least (CondOT and cosine) are always tried, and the times avoid
:math:`\alpha_t = \beta_t`, so that swapping α and β shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..distributions import GaussianMixture
from ..dynamics import SDE
from ..losses import dsm_loss
from ..paths import AffinePath, CondOTScheduler, CosineScheduler, GaussianMixturePath, SqrtScheduler
from ..times import expand_time
from ._framework import (LOSS_SCHEDULES, LOSS_SHAPES, LOSS_TOL, SHAPES, CheckFailed, ElementwiseNet, Ok,
                         broadcast_values, call_guarded, check_loss_exercise, checker, close, construct, diagnose,
                         per_sample_sum, per_sample_time, require_function, require_scalar_loss, require_state_shaped,
                         require_subclass, shapes_text, states_and_times)

_BROADCAST_HINT = ("the schedule values path.scheduler(t).alpha_t, .beta_t, ... have shape (batch,), like t: "
                   "reshape them to (batch, 1, ...) before multiplying with the states, e.g. "
                   "ll.expand_time(s.beta_t, x).")
_COORDINATES_HINT = f"the schedule values were broadcast along the coordinates instead of the batch. {_BROADCAST_HINT}"


def _times(gen: torch.Generator, batch: int) -> Tensor:
    """Times in [0.1, 0.85], away from 1 (where the library clamps) and from 0 (α = 0)."""
    return 0.1 + 0.75 * torch.rand(batch, generator=gen)


# --- exercise 1: the denoising score matching loss ------------------------------------------------


def _loss_inputs(seed: int = 0):
    r"""``(where, a fresh stand-in score, (path, eps, z, t))`` for both schedules and every test shape; the
    stand-in is :math:`s_t(x) = a\,x(1 + t) + b\sin(x) + c\,t + d`, elementwise and trainable."""
    gen = torch.Generator().manual_seed(seed)
    for name, scheduler in LOSS_SCHEDULES:
        for shape in LOSS_SHAPES:
            z = 1.5 + 0.5 * torch.randn(shape, generator=gen)
            eps = torch.randn(shape, generator=gen)
            score = ElementwiseNet(lambda x, t, a, b, c, d: a * x * (1 + t) + b * torch.sin(x) + c * t + d,
                                   (-0.9, 0.7, 1.3, -0.4))
            yield (f"with the {name} schedule and z of shape {shape}", score,
                   (AffinePath(scheduler), eps, z, _times(gen, shape[0])))


def _call_untouched(fn: Callable, leading: tuple, inputs: dict[str, Tensor], what: str, like: Tensor) -> object:
    """``fn(*leading, *inputs)`` through :func:`call_guarded`, shape errors explained against ``like``."""
    return call_guarded(lambda: fn(*leading, *inputs.values()), inputs, what,
                        "Build new tensors instead (`eps = eps / beta`, not `eps /= beta`).",
                        lambda err: f"{what} failed with a shape mismatch for states of shape {tuple(like.shape)} "
                                    f"({err}). Hint: {_BROADCAST_HINT}")


def _call_loss(fn: Callable, model: nn.Module, path: AffinePath, eps: Tensor, z: Tensor, t: Tensor) -> Tensor:
    out = _call_untouched(fn, (model, path), {"eps": eps, "z": z, "t": t}, "your loss", z)
    return require_scalar_loss(out, z, "z")


def _dsm_mistakes(model: nn.Module, path: AffinePath, eps: Tensor, z: Tensor, t: Tensor) -> dict[str, Tensor]:
    """The named mistakes of exercise 1: hint → the loss that wrong line of code returns on this input."""
    s = path.scheduler(t)
    a, b = expand_time(s.alpha_t, z), expand_time(s.beta_t, z)
    x_t = a * z + b * eps
    d, batch = z[0].numel(), z.shape[0]

    def loss(x, target, time=t, weight=1.0):
        return (weight * per_sample_sum((model(x, time) - target) ** 2)).mean()

    ref, residual = loss(x_t, -eps / b), model(x_t, t) + eps / b
    mistakes = {
        "the target has the wrong sign: the conditional score of x_t = α_t z + β_t ε is −ε/β_t (it points from x_t "
        "back towards α_t z), so the residual is s(x_t) + ε/β_t.": loss(x_t, eps / b),
        "the target is −ε/β_t², but x_t − α_t z = β_t ε, so −(x_t − α_t z)/β_t² = −ε/β_t: divide the noise by β_t "
        "once.": loss(x_t, -eps / b**2),
        "the target is −ε: that is the ε-prediction target up to sign, without the 1/β_t. The conditional score is "
        "−ε/β_t.": loss(x_t, -eps),
        "the target is +ε: the conditional score is −ε/β_t (minus sign, and divided by β_t).": loss(x_t, eps),
        "the network was evaluated at the clean data z. Evaluate it at the noisy point x_t = α_t z + β_t ε: the "
        "score is a function of where the particle is.": loss(z, -eps / b),
        "the network was evaluated at the noise ε. Evaluate it at the noisy point x_t = α_t z + β_t ε.":
            loss(eps, -eps / b),
        "x_t has α and β swapped: x_t = α_t z + β_t ε is noise at t = 0 and data at t = 1. (With path.sample the "
        "order is path.sample(eps, z, t): noise x_0 first, data x_1 second.)": loss(b * z + a * eps, -eps / b),
        "the network was evaluated at time 1 − t; call it at the time of the path point: model(x_t, t).":
            loss(x_t, -eps / b, 1 - t),
        "this is the β_t²-weighted loss ‖β_t s + ε‖² (the ε-prediction loss in disguise). This exercise asks for "
        "the plain, unweighted one: ‖s(x_t) + ε/β_t‖².": loss(x_t, -eps / b, t, b.reshape(-1) ** 2),
        f"the loss is {d}× too small: it averages over the {d} coordinates of a sample (a .mean() over "
        "everything?). Sum the squared error over a sample's coordinates, average only over the batch.": ref / d,
        f"the loss is {batch}× too large: it sums over the batch. Average over the batch (.mean()) after summing "
        "over each sample's coordinates.": ref * batch,
        "the error is not squared: use the squared norm ‖s + ε/β_t‖², a sum of squares (not absolute values).":
            per_sample_sum(residual.abs()).mean(),
        "the norm is not squared: the loss is the *squared* norm ‖s + ε/β_t‖², averaged over the batch.":
            residual.flatten(1).norm(dim=1).mean(),
        "the residual is not squared at all: square it, (s + ε/β_t)², before summing.":
            per_sample_sum(residual).mean(),
        "the noise and the data are swapped: the loss is called as my_dsm_loss(model, path, eps, z, t), noise "
        "first, in the order of path.sample(x_0, x_1, t).": loss(a * eps + b * z, -z / b),
    }
    if isinstance(path.scheduler, CosineScheduler):
        tl = expand_time(t, z)
        mistakes["x_t uses the formulas of the linear path (x_t = t z + (1 − t) ε, target −ε/(1 − t)) for every "
                 "path. Take α_t and β_t from path.scheduler(t): the check also uses the cosine "
                 "schedule."] = loss(tl * z + (1 - tl) * eps, -eps / (1 - tl))
    if z.ndim == 2 and z.shape[0] == z.shape[1]:
        aw, bw = s.alpha_t, s.beta_t  # (batch,) values broadcast along the coordinates
        mistakes[_COORDINATES_HINT] = loss(aw * z + bw * eps, -eps / bw)
    return mistakes


@checker("denoising score matching loss")
def check_dsm_loss(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(model, path, eps, z, t)`` against the (unweighted) denoising score matching loss:
    value (two schedules, several state shapes) and gradients with respect to the network."""
    check_loss_exercise(fn, ok, "dsm_loss", _call_loss, _loss_inputs(), dsm_loss, _dsm_mistakes,
                        "the denoising score matching loss", "matches ‖s_θ(x_t, t) + ε/β_t‖² with x_t = α_t z + "
                        "β_t ε, summed over coordinates and averaged over the batch, for the CondOT and cosine "
                        "schedules")


# --- exercise 2: the score from the vector field -------------------------------------------------


def _call_conversion(fn: Callable, path: AffinePath, u: Tensor, x: Tensor, t: Tensor) -> Tensor:
    out = _call_untouched(fn, (path,), {"u": u, "x": x, "t": t}, "your conversion", x)
    return require_state_shaped(out, x, "your function", "A score has one value per particle and coordinate, "
                                f"like x. {_BROADCAST_HINT}")


def _conversion_mistakes(path: AffinePath, u: Tensor, x: Tensor, t: Tensor) -> dict[str, Tensor]:
    s = path.scheduler(t)
    a, b, da, db = (expand_time(v, x) for v in (s.alpha_t, s.beta_t, s.d_alpha_t, s.d_beta_t))
    num, den = a * u - da * x, b**2 * da - a * b * db
    ref = num / den
    mistakes = {
        "the sign is flipped: the score is (α_t u − α̇_t x)/(β_t² α̇_t − α_t β_t β̇_t). Check the signs when you "
        "solve for the score.": -ref,
        "the α̇_t·x term has the wrong sign: the numerator is α_t u − α̇_t x.": (a * u + da * x) / den,
        "the α̇_t·x term is missing: the numerator is α_t u − α̇_t x (eliminate E[z | x] from both "
        "formulas, including the part of u that is proportional to x).": a * u / den,
        "the denominator has β_t where β_t² belongs: it is β_t² α̇_t − α_t β_t β̇_t.": num / (b * da - a * b * db),
        "the denominator's second term has the wrong sign: it is β_t² α̇_t − α_t β_t β̇_t (β̇_t < 0, so both terms "
        "are positive).": num / (b**2 * da + a * b * db),
        "α and β (and their derivatives) are swapped. The path is x_t = α_t z + β_t ε: α_t multiplies the "
        "data, β_t the noise.": (b * u - db * x) / (a**2 * db - b * a * da),
        "this is the other direction: you turned the input into a vector field ((β_t² α̇_t/α_t − β̇_t β_t)·u + "
        "(α̇_t/α_t)·x). Here u is the vector field and you return the score.": (b**2 * da / a - db * b) * u + da / a * x,
        "the result is the conditional score formula −(x − α_t u)/β_t²; u is a velocity, not a data "
        "point. Solve the two formulas for the score instead.": -(x - a * u) / b**2,
        "the denominator is missing: divide α_t u − α̇_t x by β_t² α̇_t − α_t β_t β̇_t.": num,
    }
    if not isinstance(path.scheduler, CondOTScheduler):
        tl = expand_time(t, x)
        mistakes["your conversion uses the formula of the linear (CondOT) path, (t·u − x)/(1 − t), for every "
                 "path. Take α_t, β_t, α̇_t, β̇_t from path.scheduler(t): the check also uses other "
                 "schedules."] = (tl * u - x) / (1 - tl)
    if x.ndim == 2 and x.shape[0] == x.shape[1]:
        aw, bw, daw, dbw = s.alpha_t, s.beta_t, s.d_alpha_t, s.d_beta_t
        mistakes[_COORDINATES_HINT] = (aw * u - daw * x) / (bw**2 * daw - aw * bw * dbw)
    return mistakes


@checker("score from the vector field")
def check_score_from_velocity(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(path, u, x, t)``: the score of a Gaussian path from its vector field ``u`` at ``x``."""
    require_function(fn, "check_score_from_velocity", "my_score_from_velocity")
    gen = torch.Generator().manual_seed(1)
    for name, scheduler in (*LOSS_SCHEDULES, ("square-root", SqrtScheduler())):
        path = AffinePath(scheduler)
        for shape in LOSS_SHAPES:
            x = 2 * torch.randn(shape, generator=gen)
            u = torch.randn(shape, generator=gen)
            t = _times(gen, shape[0])
            out = _call_conversion(fn, path, u, x, t)
            ref = path.velocity_to_score(u, x, t)
            if not close(out, ref, LOSS_TOL):
                raise diagnose(out, _conversion_mistakes(path, u, x, t),
                               f"with the {name} schedule and x of shape {tuple(x.shape)} your score differs "
                               f"from (α_t u − α̇_t x)/(β_t² α̇_t − α_t β_t β̇_t) by up to "
                               f"{float((out - ref).abs().max()):.3g}.")
    ok("matches (α_t u − α̇_t x)/(β_t² α̇_t − α_t β_t β̇_t) for the CondOT, cosine and square-root "
       f"schedules and state shapes {shapes_text(LOSS_SHAPES)}")

    # The meaning of the formula: the exact marginal field of a Gaussian mixture turns into
    # its exact marginal score.
    data = GaussianMixture.symmetric_2d(3, radius=3.0, std=0.6)
    for name, scheduler in LOSS_SCHEDULES:
        exact = GaussianMixturePath(AffinePath(scheduler), data)
        for t0 in (0.2, 0.5, 0.8):
            x = exact.marginal(t0).sample(64, generator=gen)
            t = torch.full((64,), t0)
            out = _call_conversion(fn, exact.path, exact.vector_field(x, t), x, t)
            ref = exact.score(x, t)
            if not close(out, ref, 1e-3):
                raise CheckFailed(f"for the exact marginal field of a Gaussian mixture ({name} schedule, "
                                  f"t = {t0}) your conversion differs from the exact score by up to "
                                  f"{float((out - ref).abs().max()):.3g}.")
    ok("turns the exact marginal vector field of a Gaussian mixture into its exact score")


# --- exercise 3: the Langevin-corrected SDE -------------------------------------------------------

# σ values away from 1 and √2 (where σ, σ² and σ²/2 coincide) and different from each other,
# so that a hard-coded σ shows.
LANGEVIN_SIGMAS: tuple[float, ...] = (0.6, 1.7, 2.5)


def _u(x: Tensor, t: Tensor) -> Tensor:
    """A test vector field: elementwise, time-dependent, nonlinear."""
    t = per_sample_time(t, x)
    return torch.sin(x) + 2 * t - 0.3


def _s(x: Tensor, t: Tensor) -> Tensor:
    """A test score: elementwise, time-dependent, different from the field."""
    t = per_sample_time(t, x)
    return -x * (1 + t) + torch.cos(3 * t)


def _sde_outputs(cls: type, method: str, sigmas: tuple[float, ...], seed: int):
    """``(σ, x, t, what cls(_u, _s, σ).method(x, t) returned)`` for each σ, on the states and times of ``seed``."""
    for sigma in sigmas:
        sde = construct(cls, (_u, _s, sigma), lambda err, sigma=sigma: f"{cls.__name__}(vector_field, score, {sigma}) "
                        f"failed with TypeError: {err}. The constructor must be "
                        "`def __init__(self, vector_field, score, sigma)`.")
        for x, t in states_and_times(torch.Generator().manual_seed(seed), 0.15, 0.2):
            yield sigma, x, t, call_guarded(lambda sde=sde, x=x, t=t: getattr(sde, method)(x, t), {"x": x}, method,
                                            "Return a new tensor: the simulator still needs the current state.")


def _corrected_drift_mistakes(sigma: float, x: Tensor, t: Tensor) -> dict[str, Tensor]:
    """The named mistakes of exercise 3's drift: hint → what that wrong drift returns at ``(x, t)``."""
    u, s = _u(x, t), _s(x, t)
    return {
        "the factor ½ is missing: the drift is u_t(x) + ½σ²·s_t(x). (Langevin dynamics dX = ½σ²∇log p dt + σ dW "
        "keeps p; without the ½ it over-corrects.)": u + sigma**2 * s,
        "the score is multiplied by ½σ, not ½σ²: the drift is u_t(x) + ½σ²·s_t(x) (the noise's variance per unit "
        "time is σ²).": u + 0.5 * sigma * s,
        "the score term has the wrong sign: the drift is u_t(x) + ½σ²·s_t(x), which pulls particles uphill in "
        "density to undo the spreading of the noise.": u - 0.5 * sigma**2 * s,
        "the vector field is missing: the drift is u_t(x) + ½σ²·s_t(x); the Langevin term corrects the flow, it "
        "does not replace it.": 0.5 * sigma**2 * s,
        "the score term is missing: the drift is u_t(x) + ½σ²·s_t(x); without it the noise spreads the samples "
        "away from p_t.": u,
        "the score was evaluated at time 1 − t. Every term is evaluated at the current time t: self.score(x, t).":
            u + 0.5 * sigma**2 * _s(x, 1 - t),
        "the score was evaluated at time 0. Call self.score(x, t) at the current time.":
            u + 0.5 * sigma**2 * _s(x, 0 * t),
        "the vector field was used twice: the correction term is ½σ² times the *score*, self.score(x, t).":
            u + 0.5 * sigma**2 * u,
        "the score is multiplied by σ: the drift is u_t(x) + ½σ²·s_t(x), with the square of σ and the factor ½.":
            u + sigma * s,
    }


def _corrected_diffusion_mistakes(sigma: float, x: Tensor, t: Tensor) -> dict[str, Tensor | float]:
    """The named mistakes of exercise 3's diffusion: hint → what that wrong diffusion returns (a number:
    that constant everywhere)."""
    return {
        "diffusion returned σ², the variance. The coefficient of dW is σ itself.": sigma**2,
        "diffusion returned ½σ², the factor of the score in the drift. The coefficient of dW is σ itself.":
            0.5 * sigma**2,
        "diffusion returned √σ. The coefficient of dW is σ itself; the simulator supplies the √h.": math.sqrt(sigma),
        "diffusion returned 0: that is the probability-flow ODE. Return σ.": 0.0,
        "diffusion returned 1 whatever σ is: return the σ given to the constructor.": 1.0,
        "diffusion returned the drift. It must return the noise coefficient σ.":
            _u(x, t) + 0.5 * sigma**2 * _s(x, t),
    }


@checker("Langevin-corrected SDE")
def check_langevin_corrected_sde(cls: type, ok: Ok) -> None:
    r"""Check ``cls(vector_field, score, sigma)``: drift :math:`u_t(x) + \tfrac12\sigma^2 s_t(x)`,
    diffusion σ, for several σ (0 included), state shapes and times."""
    require_subclass(cls, SDE, "langevin_corrected_sde")
    for sigma, x, t, out in _sde_outputs(cls, "drift", LANGEVIN_SIGMAS, seed=0):
        out = require_state_shaped(out, x, "drift", "Keep every term the shape of x.")
        ref = _u(x, t) + 0.5 * sigma**2 * _s(x, t)
        if not close(out, ref, LOSS_TOL):
            raise diagnose(out, _corrected_drift_mistakes(sigma, x, t),
                           f"for σ = {sigma} and x of shape {tuple(x.shape)} the drift differs from u_t(x) + "
                           f"½σ²·s_t(x) by up to {float((out - ref).abs().max()):.3g}.")
    ok(f"drift is u_t(x) + ½σ²·s_t(x) for σ = {', '.join(map(str, LANGEVIN_SIGMAS))} and state shapes "
       f"{shapes_text(SHAPES)} (one time for all, or one per particle)")

    for sigma, x, t, out in _sde_outputs(cls, "diffusion", LANGEVIN_SIGMAS, seed=1):
        values = broadcast_values(out, x, "diffusion")
        if not close(values, torch.full_like(x, sigma), LOSS_TOL):
            raise diagnose(values, _corrected_diffusion_mistakes(sigma, x, t),
                           f"for σ = {sigma} the diffusion should be σ everywhere, but yours ranges from "
                           f"{float(values.min()):.4g} to {float(values.max()):.4g}.")
    ok("diffusion is σ (a number or a tensor that broadcasts against x)")

    _, x, t, out = next(_sde_outputs(cls, "drift", (0.0,), seed=2))
    if not close(out, _u(x, t), LOSS_TOL):
        raise CheckFailed("with σ = 0 the drift must be the vector field u_t(x) itself (the probability-flow ODE).")
    ok("σ = 0 gives back the ODE of the vector field")
