"""The checkers of notebook 03 (score by autograd, Langevin SDE) tested both ways.

The references pass, and so do a few other correct answers; an unfinished exercise gets
"not implemented yet"; and each entry of a catalogue of plausible wrong answers is rejected
with a hint that names its mistake.
"""

from __future__ import annotations

import math

import pytest
import torch
from checker_cases import assert_leaves_random_stream, assert_named

from labs_lib import SDE, Gaussian, LangevinSDE
from labs_lib.checks import check_autograd_score, check_langevin_sde

# --- exercise 1: the score by autograd ------------------------------------------------------


def score_reference(log_density, x):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_density(x).sum(), x)
    return grad


def score_backward(log_density, x):
    """Correct too: backward() on a detached leaf copy, then read its .grad."""
    with torch.enable_grad():
        leaf = x.detach().clone().requires_grad_(True)
        log_density(leaf).sum().backward()
    return leaf.grad


def score_grad_outputs(log_density, x):
    """Correct too: a vector-Jacobian product with a vector of ones instead of the sum."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        lp = log_density(leaf)
        (grad,) = torch.autograd.grad(lp, leaf, grad_outputs=torch.ones_like(lp))
    return grad


@pytest.mark.parametrize("fn", [score_reference, score_backward, score_grad_outputs])
def test_autograd_score_correct_answers_pass(fn):
    report = check_autograd_score(fn)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(4, 1, 3, 3)" in report.message and "no_grad" in report.message


def test_autograd_score_accepts_the_library_score():
    # Density.score is labs_lib's own answer to this exercise.
    from labs_lib.checks.langevin import _cases

    for case in _cases(0):
        assert torch.allclose(case.density.score(case.x), case.score(case.x), atol=1e-4, rtol=1e-4)


def test_autograd_score_not_implemented():
    def stub(log_density, x):
        raise NotImplementedError("Exercise: autograd_score")

    report = check_autograd_score(stub)
    assert report.passed is None
    assert "not implemented yet" in report.message


def _with_grad(reduce, transform=lambda lp: lp):
    def fn(log_density, x):
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(reduce(transform(log_density(leaf))), leaf)
        return grad
    return fn


def score_mean(log_density, x):
    return _with_grad(torch.mean)(log_density, x)


def score_of_p(log_density, x):
    return _with_grad(torch.sum, torch.exp)(log_density, x)


def score_sign(log_density, x):
    return -score_reference(log_density, x)


def score_backward_non_scalar(log_density, x):
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        log_density(leaf).backward()
    return leaf.grad


def score_no_enable_grad(log_density, x):
    leaf = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_density(leaf).sum(), leaf)
    return grad


def score_modifies_x(log_density, x):
    x.requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(log_density(x).sum(), x)
    return grad


def score_backward_on_input(log_density, x):
    """backward() on the caller's own tensor: fine until the caller's x requires grad."""
    with torch.enable_grad():
        leaf = x if x.requires_grad else x.detach().requires_grad_(True)
        log_density(leaf).sum().backward()
    return leaf.grad.clone()


def score_returns_none(log_density, x):
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        log_density(leaf * 1.0).sum().backward()
    return (leaf * 1.0).grad  # a non-leaf: its .grad is None


def score_detached_zero(log_density, x):
    return torch.zeros_like(x)


def score_forgot_requires_grad(log_density, x):
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(log_density(x.detach()).sum(), x.detach())
    return grad


def score_tuple(log_density, x):
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        return torch.autograd.grad(log_density(leaf).sum(), leaf)


def score_keeps_graph(log_density, x):
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_density(leaf).sum(), leaf, create_graph=True)
    return grad


def score_flat(log_density, x):
    return score_reference(log_density, x).reshape(x.shape[0], -1)


def score_twice(log_density, x):
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        log_density(leaf).sum().backward()
        log_density(leaf).sum().backward()
    return leaf.grad


def score_ignores_constant(log_density, x):
    """Normalises by subtracting the batch's log-density at the first point (wrong: couples samples)."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        lp = log_density(leaf)
        (grad,) = torch.autograd.grad((lp - lp[0]).sum(), leaf)
    return grad


SCORE_MISTAKES = [
    (score_mean, "divided by the batch size"),
    (score_of_p, "gradient of the density p(x), not of log p(x)"),
    (score_sign, "wrong sign"),
    (score_backward_non_scalar, "Sum them first"),
    (score_no_enable_grad, "torch.enable_grad()"),
    (score_modifies_x, "switched on gradients for the caller's x"),
    (score_backward_on_input, "accumulated a gradient into the caller's x.grad"),
    (score_returns_none, "returned None"),
    (score_detached_zero, "all zeros"),
    (score_forgot_requires_grad, "x must require gradients *before*"),
    (score_tuple, "returned a tuple"),
    (score_keeps_graph, "still attached to an autograd graph"),
    (score_flat, "the same shape as x"),
    (score_twice, "twice the true one"),
    (score_ignores_constant, "differs from the analytic"),
]


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
@pytest.mark.parametrize("fn, expected", SCORE_MISTAKES, ids=[f.__name__ for f, _ in SCORE_MISTAKES])
def test_autograd_score_mistakes_are_recognised(fn, expected):
    report = check_autograd_score(fn)
    assert_named(report, expected)
    assert "Traceback" not in report.message


def test_autograd_score_rejects_a_non_function():
    report = check_autograd_score(LangevinSDE)
    assert report.passed is False
    assert "pass your function itself" in report.message


def test_autograd_score_leaves_the_global_random_stream_alone():
    assert_leaves_random_stream((check_autograd_score, score_reference))


# --- exercise 2: the Langevin SDE -----------------------------------------------------------


class _Langevin(SDE):
    """Configurable Langevin class: ``drift = scale(σ)·score``, ``diffusion = noise(σ)``."""

    scale = staticmethod(lambda s: 0.5 * s**2)
    noise = staticmethod(lambda s: s)

    def __init__(self, density, sigma):
        self.density, self.sigma = density, sigma

    def drift(self, x, t):
        return type(self).scale(self.sigma) * self.density.score(x)

    def diffusion(self, x, t):
        return type(self).noise(self.sigma)


def _variant(name, scale=None, noise=None):
    attrs = {}
    if scale is not None:
        attrs["scale"] = staticmethod(scale)
    if noise is not None:
        attrs["noise"] = staticmethod(noise)
    return type(name, (_Langevin,), attrs)


class LangevinTensorDiffusion(_Langevin):
    """Correct too: σ as a tensor of x's shape, and the score through autograd by hand."""

    def drift(self, x, t):
        return 0.5 * self.sigma**2 * score_reference(self.density.log_density, x)

    def diffusion(self, x, t):
        return torch.full_like(x, self.sigma)


@pytest.mark.parametrize("cls", [LangevinSDE, _Langevin, LangevinTensorDiffusion])
def test_langevin_correct_answers_pass(cls):
    report = check_langevin_sde(cls)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(4, 1, 3, 3)" in report.message


def test_langevin_not_implemented():
    class Stub(SDE):
        def __init__(self, density, sigma):
            self.density, self.sigma = density, sigma

        def drift(self, x, t):
            raise NotImplementedError("Exercise: MyLangevinSDE.drift")

        def diffusion(self, x, t):
            raise NotImplementedError("Exercise: MyLangevinSDE.diffusion")

    report = check_langevin_sde(Stub)
    assert report.passed is None
    assert "not implemented yet" in report.message


class LangevinLogDensity(_Langevin):
    def drift(self, x, t):
        return 0.5 * self.sigma**2 * self.density.log_density(x)


class LangevinLogDensityBroadcast(_Langevin):
    def drift(self, x, t):
        lp = self.density.log_density(x)
        return 0.5 * self.sigma**2 * lp.reshape(-1, *([1] * (x.ndim - 1))).expand_as(x)


class LangevinFixedTarget(_Langevin):
    """Ignores the density it was given and uses one fixed Gaussian."""

    def drift(self, x, t):
        g = Gaussian.isotropic(2)
        score = g.score(x.reshape(x.shape[0], -1)[:, :2])
        return 0.5 * self.sigma**2 * score.repeat(1, 5)[:, : x[0].numel()].reshape(x.shape)


class LangevinNoReturn(_Langevin):
    def drift(self, x, t):
        0.5 * self.sigma**2 * self.density.score(x)


class LangevinArgsSwapped(SDE):
    def __init__(self, sigma, density):
        self.density, self.sigma = density, sigma

    def drift(self, x, t):
        return 0.5 * self.sigma**2 * self.density.score(x)

    def diffusion(self, x, t):
        return self.sigma


class LangevinInPlace(_Langevin):
    def drift(self, x, t):
        score = self.density.score(x)
        x.mul_(1.0).add_(0.0)
        x += 1e-3
        return 0.5 * self.sigma**2 * score


class LangevinDriftOnTheCPU(_Langevin):
    def drift(self, x, t):
        return 0.5 * self.sigma**2 * self.density.score(x) + torch.zeros(x.shape, dtype=x.dtype)  # a CPU tensor


LANGEVIN_MISTAKES = [
    (_variant("NoHalf", scale=lambda s: s**2), "missing the factor ½"),
    (_variant("SigmaNotSquared", scale=lambda s: 0.5 * s), "uses σ where it needs σ²"),
    (_variant("SigmaInsteadOfHalfSigmaSquared", scale=lambda s: s), "uses σ where it needs ½σ²"),
    (_variant("NoSigmaSquared", scale=lambda s: 0.5), "missing the factor σ²"),
    (_variant("JustScore", scale=lambda s: 1.0), "just the score"),
    (_variant("WrongSign", scale=lambda s: -0.5 * s**2), "wrong sign"),
    (_variant("DiffusionSquared", noise=lambda s: s**2), "diffusion returns σ²"),
    (_variant("DiffusionSqrt", noise=lambda s: math.sqrt(s)), "diffusion returns √σ"),
    (_variant("DiffusionHalf", noise=lambda s: s / 2), "diffusion returns σ/2"),
    (_variant("DiffusionHalfSquared", noise=lambda s: s**2 / 2), "diffusion returns ½σ²"),
    (_variant("DiffusionOne", noise=lambda s: 1.0), "diffusion returns 1"),
    (LangevinLogDensity, "the shape of log_density(x)"),
    (LangevinLogDensityBroadcast, "uses log_density(x)"),
    (LangevinFixedTarget, "does drift use the density passed to __init__"),
    (LangevinNoReturn, "Did you forget `return`?"),
    (LangevinArgsSwapped, "store its arguments in that order"),
    (LangevinInPlace, "changed its input x in place"),
    (LangevinDriftOnTheCPU, "Create it on x.device"),
]


@pytest.mark.parametrize("cls, expected", LANGEVIN_MISTAKES, ids=[c.__name__ for c, _ in LANGEVIN_MISTAKES])
def test_langevin_mistakes_are_recognised(cls, expected):
    report = check_langevin_sde(cls)
    assert_named(report, expected)


def test_langevin_rejects_a_non_sde():
    report = check_langevin_sde(score_reference)
    assert report.passed is False
    assert "subclass of SDE" in report.message
