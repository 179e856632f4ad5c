"""Checkers for notebook 03: the score of a density by autograd, and the Langevin SDE.

Both are compared with **analytic** scores (Gaussians with non-diagonal covariances, a
Gaussian mixture with unequal weights, and a Gaussian on image-shaped states), never with
autograd itself, so that a checker cannot share a mistake with the code it checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import NamedTuple

import torch
from torch import Tensor

from ..distributions import Density, Gaussian, GaussianMixture
from ..dynamics import SDE
from ..times import expand_time
from ._framework import (CheckFailed, Ok, broadcast_to_state, checker, close, construct, diagnose,
                         require_coefficients_device_safe, require_function, require_state_shaped, require_subclass,
                         run_untouched, shapes_text)

_TOL = 1e-4  # float32 autograd against a float64 formula: agreement to ~1e-6 is typical


# --- test densities with analytic scores ----------------------------------------------------


def _analytic_score(density: Density, x: Tensor) -> Tensor:
    r""":math:`\sum_k w_k(x)\,(-\Sigma_k^{-1}(x - \mu_k))` with responsibilities :math:`w_k(x)`, computed in
    float64 from the parameters of a Gaussian mixture, a Gaussian (one component) or an :class:`_ImageGaussian`."""
    gm = density.gaussian if isinstance(density, _ImageGaussian) else density
    if isinstance(gm, Gaussian):
        gm = GaussianMixture(gm.mean[None], gm.cov[None])
    diff = x.reshape(x.shape[0], 1, -1).double() - gm.means.double()  # (n, K, d)
    covs = gm.covs.double()
    prec = torch.linalg.inv(covs)  # (K, d, d)
    maha = torch.einsum("nki,kij,nkj->nk", diff, prec, diff)
    resp = torch.softmax(torch.log(gm.weights.double()) - 0.5 * torch.logdet(covs) - 0.5 * maha, dim=1)  # (n, K)
    comp = -torch.einsum("kij,nkj->nki", prec, diff)
    return (resp.unsqueeze(-1) * comp).sum(1).reshape(x.shape).to(x.dtype)


class _ImageGaussian(Density):
    """A Gaussian with a non-diagonal covariance on states of shape ``(1, 3, 3)`` (tiny images)."""

    def __init__(self, gen: torch.Generator):
        a = torch.randn(9, 9, generator=gen) / 3
        self.gaussian = Gaussian(0.3 * torch.randn(9, generator=gen), a @ a.T + 0.5 * torch.eye(9))
        self.shape = (1, 3, 3)

    def log_density(self, x: Tensor) -> Tensor:
        return self.gaussian.log_density(x.reshape(x.shape[0], 9))


class _ProbeDensity(Density):
    """The standard Gaussian on the plane, written with operations the meta device can run (the
    library's Gaussian validates its covariance with values the meta device does not have)."""

    shape = (2,)

    def log_density(self, x: Tensor) -> Tensor:
        return -0.5 * x.pow(2).flatten(1).sum(1)


class _Case(NamedTuple):
    """A density with an analytic score, and a batch of points to evaluate them at."""

    name: str
    density: Density
    x: Tensor

    def score(self, x: Tensor) -> Tensor:
        return _analytic_score(self.density, x)

    @property
    def where(self) -> str:
        return f"for {self.name} (x of shape {tuple(self.x.shape)})"


def _cases(seed: int) -> list[_Case]:
    """The test beds, in the order they are tried. The first has batch 6, so that the usual
    mistakes (a mean over the batch, ∇p instead of ∇log p...) are diagnosed on it."""
    gen = torch.Generator().manual_seed(seed)
    g2 = Gaussian(torch.tensor([0.5, -1.0]), torch.tensor([[1.5, 0.6], [0.6, 0.8]]))
    a3 = torch.randn(3, 3, generator=gen)
    g3 = Gaussian(torch.tensor([1.0, 0.0, -0.5]), a3 @ a3.T + 0.5 * torch.eye(3))
    gm = GaussianMixture(torch.tensor([[-1.5, 0.0], [1.5, 0.5], [0.0, 2.0]]),
                         torch.tensor([[[0.8, 0.3], [0.3, 0.5]], [[0.5, -0.2], [-0.2, 0.9]], [[0.6, 0.0], [0.0, 0.6]]]),
                         torch.tensor([0.5, 0.3, 0.2]))
    img = _ImageGaussian(gen)

    def near(center: Tensor, n: int, scale: float = 1.0) -> Tensor:
        return center + scale * torch.randn(n, *center.shape, generator=gen)

    return [
        _Case("a 2-D Gaussian with a non-diagonal covariance", g2, near(g2.mean, 6)),
        _Case("the same Gaussian at a single point", g2, near(g2.mean, 1)),
        _Case("a 3-D Gaussian", g3, near(g3.mean, 5)),
        _Case("a 2-D Gaussian mixture", gm, near(torch.tensor([0.0, 0.7]), 8, 1.5)),
        _Case("a Gaussian on image-shaped states", img, near(img.gaussian.mean.reshape(1, 3, 3), 4, 0.5)),
    ]


# --- exercise 1: the score by autograd ------------------------------------------------------

_SCALAR_HINT = ("your code called backward (or autograd.grad) on the whole batch of log-densities, shape (batch,), "
                "and autograd can only start from a single number. Sum them first: log_density(x).sum(). The "
                "samples are independent, so the gradient of the sum with respect to x[i] is exactly ∇log p(x[i]).")
_ENABLE_GRAD_HINT = ("it works normally but fails when called inside `with torch.no_grad():` (as the "
                     "simulators call it): there autograd records nothing. Compute the gradient inside "
                     "`with torch.enable_grad():`.")
_REQUIRES_GRAD_HINT = ("autograd had nothing to differentiate: x must require gradients *before* log_density is "
                       "evaluated. Work on a copy: x = x.detach().requires_grad_().")


def _require_score(fn: Callable, case: _Case, x: Tensor, *, no_grad: bool = False) -> None:
    """Call the student's ``fn(log_density, x)`` (inside ``torch.no_grad()`` if ``no_grad``), check what every
    answer must satisfy, and compare it with the analytic score: a named mistake, else how far it is off."""
    was_requiring = x.requires_grad
    try:
        with torch.no_grad() if no_grad else nullcontext():
            out, changed = run_untouched(lambda: fn(case.density.log_density, x), {"x": x})
    except RuntimeError as err:
        text = str(err)
        if "only for scalar outputs" in text:
            raise CheckFailed(_SCALAR_HINT) from None
        if "does not require grad" in text:
            raise CheckFailed(_ENABLE_GRAD_HINT if no_grad else _REQUIRES_GRAD_HINT) from None
        if "requires_grad flags of leaf" in text or "leaf Variable" in text:
            raise CheckFailed("do not change the caller's x; make a fresh leaf tensor to differentiate: "
                              "x = x.detach().requires_grad_().") from None
        raise
    if x.requires_grad and not was_requiring:
        raise CheckFailed("your function switched on gradients for the caller's x (x.requires_grad_() on the "
                          "input): afterwards every computation with x would be recorded by autograd. Work on "
                          "a copy instead: x = x.detach().requires_grad_().")
    if was_requiring and x.grad is not None:
        raise CheckFailed("your function accumulated a gradient into the caller's x.grad (backward on the input "
                          "itself). Differentiate a detached copy, x.detach().requires_grad_(), or use "
                          "torch.autograd.grad, which returns the gradient without storing it.")
    if changed:
        raise CheckFailed("your function changed the values of its input x in place. Leave x untouched.")
    if out is None:
        raise CheckFailed("your function returned None. If you read x.grad: it is only filled for the leaf tensor "
                          "you called requires_grad_() on, after backward(); torch.autograd.grad(total, x) returns "
                          "the gradient directly (a tuple: take its first element). And do not forget `return`.")
    if isinstance(out, (tuple, list)) and len(out) == 1 and isinstance(out[0], Tensor):
        raise CheckFailed("your function returned a tuple holding one tensor: torch.autograd.grad returns a "
                          "tuple, one gradient per input. Return its first element.")
    require_state_shaped(out, x, "your function", "The score has one gradient per sample, of the sample's shape: "
                         "the same shape as x.")
    if out.requires_grad:
        raise CheckFailed("the score you return is still attached to an autograd graph (it requires grad). "
                          "Return a plain tensor: the gradient from torch.autograd.grad (without create_graph) "
                          "or .detach() it.")
    x = x.detach()
    if close(out, case.score(x), _TOL):
        return
    if no_grad:
        raise CheckFailed(f"inside torch.no_grad() your score is wrong {case.where}: compute the "
                          "gradient inside `with torch.enable_grad():`.")
    raise diagnose(out, _score_mistakes(case, x), f"{case.where} your score differs from the analytic "
                   f"∇log p(x) by up to {float((out - case.score(x)).abs().max()):.3g}.")


def _score_mistakes(case: _Case, x: Tensor) -> dict[str, Tensor]:
    """The named mistakes of exercise 1: hint → the score that wrong line of code returns at ``x``."""
    ref = case.score(x)
    with torch.no_grad():
        p = expand_time(case.density.log_density(x).exp(), x)  # (batch, 1, ...): broadcasts against the score
    n = x.shape[0]
    mistakes = {
        "the score has the wrong sign: it is +∇log p(x), pointing uphill towards high density "
        "(for a Gaussian, towards the mean).": -ref,
        f"your score is the true one divided by the batch size ({n}): you differentiated the *mean* of the "
        "log-densities. Use the sum: the gradient of Σ_j log p(x_j) with respect to x_i is ∇log p(x_i).": ref / n,
        "this is the gradient of the density p(x), not of log p(x): ∇p = p·∇log p. Differentiate "
        "log_density(x) itself, not its exp().": p * ref,
        "your score is all zeros: is the gradient really taken of log_density(x) with respect to the tensor "
        "you pass in?": torch.zeros_like(ref),
    }
    if n > 1:
        mistakes["the score is twice the true one: did you call backward() twice, or sum twice?"] = 2 * ref
    return mistakes


@checker("Score by autograd")
def check_autograd_score(fn: Callable, ok: Ok) -> None:
    """Check ``fn(log_density, x)``: it must return ``∇_x log p(x)`` of ``x``'s shape, leave ``x``
    untouched, and work inside ``torch.no_grad()``."""
    require_function(fn, "check_autograd_score", "autograd_score")
    cases = _cases(0)
    for case in cases:
        _require_score(fn, case, case.x.clone())
    ok(f"matches the analytic scores of Gaussians and a Gaussian mixture, for x of shapes "
       f"{shapes_text(c.x.shape for c in cases)}")
    ok("returns a plain tensor of x's shape and leaves x untouched (no requires_grad on the input)")

    for case in (cases[0], cases[4]):
        _require_score(fn, case, case.x.clone(), no_grad=True)
    ok("works when called inside torch.no_grad(), as the simulators call it")

    case = cases[3]
    _require_score(fn, case, case.x.clone().requires_grad_(True))
    ok("works on an x that itself requires grad, without touching x.grad")

    x = case.x.clone()
    out = fn(lambda z: case.density.log_density(z) + 7.0, x)  # an unnormalised density
    if not (isinstance(out, Tensor) and close(out, case.score(x), _TOL)):
        raise CheckFailed("adding a constant to log p (dividing p by a normalising constant) changed your "
                          "score; it must not.")
    ok("ignores the normalising constant: log p + 7 has the same score")


# --- exercise 2: the Langevin SDE -----------------------------------------------------------


def _diffusion_tensor(value: object, x: Tensor) -> Tensor:
    """What diffusion returned (a number or a tensor that broadcasts against x) expanded to x's shape."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
        raise CheckFailed(f"diffusion must return a number (σ) or a tensor, got {type(value).__name__}.")
    d = broadcast_to_state(value, x)
    if d is None:  # only a tensor can fail to broadcast
        raise CheckFailed(f"diffusion returned shape {tuple(value.shape)}, which does not broadcast against x of "
                          f"shape {tuple(x.shape)}. A constant σ is simply the number self.sigma.")
    return d


def _ignores_density(cls: type, cases: list[_Case], case: _Case, sigma: float, x: Tensor, t: Tensor,
                     out: Tensor) -> str:
    """" Does it use the density passed to __init__?" when the drift is the same for another density
    of the same dimension (then the density is ignored); nothing otherwise, so that a mistake in the
    score is not blamed on the constructor."""
    others = [c.density for c in cases if c.density is not case.density and c.x.shape[1:] == x.shape[1:]]
    try:
        with torch.no_grad():
            again = cls(others[0], sigma).drift(x, t) if others else None
    except Exception:
        return ""
    if isinstance(again, Tensor) and close(again, out, _TOL):
        return " It is the same for another density: does drift use the density passed to __init__ (self.density)?"
    return ""


def _drift_mistakes(sigma: float, score: Tensor, logp: Tensor) -> dict[str, Tensor]:
    """The named mistakes of exercise 2's drift: hint → what that wrong drift returns, from the analytic
    ``score`` at x and the log-densities ``logp`` of shape ``(batch,)``."""
    ref = 0.5 * sigma**2 * score
    return {
        "the drift has the wrong sign: +½σ²∇log p(x) pushes particles uphill, towards high density.": -ref,
        "the drift is missing the factor ½: it is ½σ²∇log p(x).": sigma**2 * score,
        "the drift uses σ where it needs σ²: ½σ²∇log p(x).": 0.5 * sigma * score,
        "the drift uses σ where it needs ½σ²: ½σ²∇log p(x).": sigma * score,
        "the drift is missing the factor σ²: ½σ²∇log p(x). (With σ = 1 you would not notice; "
        "with other σ the noise and the drift no longer balance.)": 0.5 * score,
        "the drift is just the score: multiply it by ½σ².": score,
        "the drift uses log_density(x), a number per sample; it needs the score "
        "self.density.score(x), the gradient of log p.": 0.5 * sigma**2 * expand_time(logp, score).expand_as(score),
    }


def _diffusion_mistakes(sigma: float) -> dict[str, float]:
    """The named mistakes of exercise 2's diffusion: hint → the constant that wrong diffusion returns."""
    return {
        "diffusion returns σ²; the diffusion coefficient is σ itself (the noise term is σ dW).": sigma**2,
        "diffusion returns √σ; the diffusion coefficient is σ itself.": math.sqrt(sigma),
        "diffusion returns σ/2; the ½ belongs to the drift (½σ²), the diffusion is σ.": sigma / 2,
        "diffusion returns ½σ², the drift's factor; the diffusion coefficient is σ.": sigma**2 / 2,
        "diffusion returns 1: use the σ passed to __init__.": 1.0,
    }


@checker("Langevin SDE")
def check_langevin_sde(cls: type, ok: Ok) -> None:
    """Check a Langevin SDE class ``cls(density, sigma)``: drift ``½σ²∇log p(x)``, diffusion ``σ``."""
    require_subclass(cls, SDE, "langevin_sde")
    cases = _cases(1)
    sigmas = (1.6, 0.7)
    for case in cases:
        for sigma in sigmas:
            sde = construct(cls, (case.density, sigma), lambda err: f"could not build {cls.__name__}(density, "
                            f"sigma): {err}. The constructor takes the density first, then σ.")
            x, t = case.x.clone(), torch.tensor(0.3)
            try:
                with torch.no_grad():  # as the simulators call it
                    out, changed = run_untouched(lambda sde=sde, x=x, t=t: sde.drift(x, t), {"x": x})
            except TypeError as err:
                raise CheckFailed(f"drift raised TypeError: {err}. Does __init__(self, density, sigma) store "
                                  "its arguments in that order (self.density = density, self.sigma = sigma)?"
                                  ) from None
            if changed:
                raise CheckFailed("drift changed its input x in place; leave x untouched.")
            logp = case.density.log_density(x)
            shape_fix = "It must have x's shape."
            if isinstance(out, Tensor) and out.shape == logp.shape:
                shape_fix = ("That is the shape of log_density(x), one number per sample: the drift needs the "
                             "score, self.density.score(x), which has x's shape.")
            require_state_shaped(out, x, "drift", shape_fix)
            score = case.score(x)
            ref = 0.5 * sigma**2 * score
            if not close(out, ref, _TOL):
                raise diagnose(out, _drift_mistakes(sigma, score, logp),
                               f"with σ = {sigma}, {case.where} your drift differs from ½σ²∇log p(x) by up to "
                               f"{float((out - ref).abs().max()):.3g}."
                               + _ignores_density(cls, cases, case, sigma, x, t, out))
            diff = _diffusion_tensor(sde.diffusion(x, t), x)
            if not close(diff, torch.full_like(diff, sigma), _TOL):
                raise diagnose(diff, _diffusion_mistakes(sigma), f"with σ = {sigma} diffusion returned values "
                               f"up to {float(diff.abs().max()):.3g}; it must be σ.")
    ok(f"drift = ½σ²∇log p(x) for σ in {sigmas}, Gaussians and a Gaussian mixture, x of shapes "
       f"{shapes_text(c.x.shape for c in cases)}")
    require_coefficients_device_safe(cls(_ProbeDensity(), 1.5), torch.randn(6, 2), torch.tensor(0.3))
    ok("diffusion = σ, drift works inside torch.no_grad() without changing x, and both create their "
       "tensors on x's device")
