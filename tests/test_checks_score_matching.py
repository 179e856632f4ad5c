"""The checkers of notebook 06 (DSM loss, score from the vector field, Langevin-corrected SDE)
tested both ways.

The references pass; an unfinished exercise gets "not implemented yet"; and each entry of a
catalogue of plausible wrong implementations is rejected with a hint that names its mistake.
"""

from __future__ import annotations

import math

import pytest
import torch
from checker_cases import assert_named

import labs_lib as ll
from labs_lib.checks import check_dsm_loss, check_langevin_corrected_sde, check_score_from_velocity
from labs_lib.training import dsm_loss


def _ab(path, t, x):
    s = path.scheduler(t)
    return ll.expand_time(s.alpha_t, x), ll.expand_time(s.beta_t, x)


# --- exercise 1: the DSM loss ----------------------------------------------------------------------


def dsm_reference(model, path, eps, z, t):
    a, b = _ab(path, t, z)
    x_t = a * z + b * eps
    return (model(x_t, t) + eps / b).pow(2).flatten(1).sum(1).mean()


def dsm_with_path_sample(model, path, eps, z, t):
    """Correct: x_t from path.sample, the target from the conditional score."""
    x_t = path.sample(eps, z, t).x_t
    return (model(x_t, t) - path.conditional_score(x_t, z, t)).pow(2).flatten(1).sum(1).mean()


def dsm_library(model, path, eps, z, t):
    return dsm_loss(model, path, eps, z, t)


@pytest.mark.parametrize("fn", [dsm_reference, dsm_with_path_sample, dsm_library])
def test_dsm_references_pass(fn):
    report = check_dsm_loss(fn)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(4, 1, 3, 3)" in report.message


def _dsm(x_of, target_of, reduce=lambda r: r.pow(2).flatten(1).sum(1).mean(), time_of=lambda t: t):
    def fn(model, path, eps, z, t):
        a, b = _ab(path, t, z)
        x = x_of(a, b, z, eps)
        return reduce(model(x, time_of(t)) - target_of(a, b, eps))
    return fn


def _x(a, b, z, eps):
    return a * z + b * eps


def _target(a, b, eps):
    return -eps / b


def dsm_no_broadcast(model, path, eps, z, t):
    s = path.scheduler(t)
    x_t = s.alpha_t * z + s.beta_t * eps
    return (model(x_t, t) + eps / s.beta_t).pow(2).flatten(1).sum(1).mean()


def dsm_detached(model, path, eps, z, t):
    a, b = _ab(path, t, z)
    x_t = a * z + b * eps
    return (model(x_t, t).detach() + eps / b).pow(2).flatten(1).sum(1).mean()


def dsm_item(model, path, eps, z, t):
    return dsm_reference(model, path, eps, z, t).item()


def dsm_per_sample(model, path, eps, z, t):
    a, b = _ab(path, t, z)
    return (model(a * z + b * eps, t) + eps / b).pow(2).flatten(1).sum(1)


def dsm_in_place(model, path, eps, z, t):
    a, b = _ab(path, t, z)
    x_t = a * z + b * eps
    eps /= b
    return (model(x_t, t) + eps).pow(2).flatten(1).sum(1).mean()


def dsm_linear_path_only(model, path, eps, z, t):
    tt = ll.expand_time(t, z)
    return (model(tt * z + (1 - tt) * eps, t) + eps / (1 - tt)).pow(2).flatten(1).sum(1).mean()


def dsm_sample_swapped(model, path, eps, z, t):
    x_t = path.sample(z, eps, t).x_t  # data and noise swapped
    _, b = _ab(path, t, z)
    return (model(x_t, t) + eps / b).pow(2).flatten(1).sum(1).mean()


DSM_MISTAKES = [
    (_dsm(_x, lambda a, b, eps: eps / b), "wrong sign"),
    (_dsm(_x, lambda a, b, eps: -eps / b**2), "divide the noise by β_t once"),
    (_dsm(_x, lambda a, b, eps: -eps), "without the 1/β_t"),
    (_dsm(lambda a, b, z, eps: z, _target), "clean data z"),
    (_dsm(lambda a, b, z, eps: b * z + a * eps, _target), "α and β swapped"),
    (dsm_sample_swapped, "path.sample(eps, z, t)"),
    (_dsm(_x, _target, reduce=lambda r: r.pow(2).mean()), "averages over the"),
    (_dsm(_x, _target, reduce=lambda r: r.pow(2).sum()), "sums over the batch"),
    (_dsm(_x, _target, reduce=lambda r: r.flatten(1).norm(dim=1).mean()), "not squared"),
    (_dsm(_x, _target, reduce=lambda r: r.abs().flatten(1).sum(1).mean()), "not squared"),
    (_dsm(_x, _target, time_of=lambda t: 1 - t), "time 1 − t"),
    (dsm_detached, "carries no gradient"),
    (dsm_item, "Python number"),
    (dsm_per_sample, "one value per sample"),
    (dsm_no_broadcast, "reshape them to (batch, 1, ...)"),
    (dsm_in_place, "in place"),
    (dsm_linear_path_only, "formulas of the linear path"),
]


@pytest.mark.parametrize("fn, expected", DSM_MISTAKES, ids=[f"{i}" for i in range(len(DSM_MISTAKES))])
def test_dsm_mistakes_are_caught(fn, expected):
    report = check_dsm_loss(fn)
    assert_named(report, expected)


def test_dsm_beta2_weighting_is_recognised():
    def weighted(model, path, eps, z, t):
        return dsm_loss(model, path, eps, z, t, weighting="beta2")

    report = check_dsm_loss(weighted)
    assert report.passed is False and "β_t²-weighted" in report.message, report.message


def test_dsm_not_implemented_and_wrong_argument():
    def stub(model, path, eps, z, t):
        raise NotImplementedError("Exercise: my_dsm_loss")

    report = check_dsm_loss(stub)
    assert report.passed is None and "not implemented yet" in report.message
    report = check_dsm_loss(ll.DenoisingScoreMatchingTrainer)
    assert report.passed is False and "pass your function itself" in report.message


# --- exercise 2: the score from the vector field ------------------------------------------------------


def _coefs(path, t, x):
    s = path.scheduler(t)
    return tuple(ll.expand_time(v, x) for v in (s.alpha_t, s.beta_t, s.d_alpha_t, s.d_beta_t))


def score_reference(path, u, x, t):
    a, b, da, db = _coefs(path, t, x)
    return (a * u - da * x) / (b**2 * da - a * b * db)


def score_via_posterior_mean(path, u, x, t):
    """Correct: solve u = α̇ E[z|x] + β̇ E[ε|x] with x = α E[z|x] + β E[ε|x] for E[ε|x], then s = −E[ε|x]/β."""
    a, b, da, db = _coefs(path, t, x)
    e_eps = (a * u - da * x) / (a * db - b * da)
    return -e_eps / b


def score_library(path, u, x, t):
    return path.velocity_to_score(u, x, t)


@pytest.mark.parametrize("fn", [score_reference, score_via_posterior_mean, score_library])
def test_score_from_velocity_references_pass(fn):
    report = check_score_from_velocity(fn)
    assert report.passed is True, report.message
    assert "exact score" in report.message


def _conv(formula):
    def fn(path, u, x, t):
        a, b, da, db = _coefs(path, t, x)
        return formula(u, x, a, b, da, db)
    return fn


def score_condot_only(path, u, x, t):
    """Right for α_t = t, β_t = 1 − t only."""
    tt = ll.expand_time(t, x)
    return (tt * u - x) / (1 - tt)


def score_no_broadcast(path, u, x, t):
    s = path.scheduler(t)
    a, b, da, db = s.alpha_t, s.beta_t, s.d_alpha_t, s.d_beta_t
    return (a * u - da * x) / (b**2 * da - a * b * db)


def score_sums_coordinates(path, u, x, t):
    return score_reference(path, u, x, t).sum(-1, keepdim=True)


def score_returns_none(path, u, x, t):
    score_reference(path, u, x, t)


def score_in_place(path, u, x, t):
    a, b, da, db = _coefs(path, t, x)
    u *= a
    return (u - da * x) / (b**2 * da - a * b * db)


SCORE_MISTAKES = [
    (_conv(lambda u, x, a, b, da, db: -(a * u - da * x) / (b**2 * da - a * b * db)), "sign is flipped"),
    (_conv(lambda u, x, a, b, da, db: (a * u + da * x) / (b**2 * da - a * b * db)), "α̇_t·x term has the wrong sign"),
    (_conv(lambda u, x, a, b, da, db: a * u / (b**2 * da - a * b * db)), "α̇_t·x term is missing"),
    (_conv(lambda u, x, a, b, da, db: (a * u - da * x) / (b * da - a * b * db)), "β_t where β_t² belongs"),
    (_conv(lambda u, x, a, b, da, db: (a * u - da * x) / (b**2 * da + a * b * db)), "second term has the wrong sign"),
    (_conv(lambda u, x, a, b, da, db: (b * u - db * x) / (a**2 * db - b * a * da)), "swapped"),
    (_conv(lambda u, x, a, b, da, db: (b**2 * da / a - db * b) * u + da / a * x), "other direction"),
    (_conv(lambda u, x, a, b, da, db: -(x - a * u) / b**2), "conditional score formula"),
    (_conv(lambda u, x, a, b, da, db: a * u - da * x), "denominator is missing"),
    (score_condot_only, "formula of the linear (CondOT) path"),
    (score_no_broadcast, "reshape them to (batch, 1, ...)"),
    (score_sums_coordinates, "returned shape"),
    (score_returns_none, "returned None"),
    (score_in_place, "in place"),
]


@pytest.mark.parametrize("fn, expected", SCORE_MISTAKES, ids=[f"{i}" for i in range(len(SCORE_MISTAKES))])
def test_score_from_velocity_mistakes_are_caught(fn, expected):
    report = check_score_from_velocity(fn)
    assert_named(report, expected)


def test_score_from_velocity_not_implemented():
    def stub(path, u, x, t):
        raise NotImplementedError("Exercise: my_score_from_velocity")

    report = check_score_from_velocity(stub)
    assert report.passed is None and "not implemented yet" in report.message


# --- exercise 3: the Langevin-corrected SDE --------------------------------------------------------------


class SDEBase(ll.SDE):
    def __init__(self, vector_field, score, sigma):
        self.vector_field, self.score, self.sigma = vector_field, score, sigma

    def drift(self, x, t):
        return self.vector_field(x, t) + 0.5 * self.sigma**2 * self.score(x, t)

    def diffusion(self, x, t):
        return self.sigma


class SDETensorDiffusion(SDEBase):
    """Correct: σ as a tensor of x's shape."""

    def diffusion(self, x, t):
        return self.sigma * torch.ones_like(x)


@pytest.mark.parametrize("cls", [SDEBase, SDETensorDiffusion, ll.LangevinCorrectedSDE])
def test_langevin_corrected_references_pass(cls):
    report = check_langevin_corrected_sde(cls)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")


def _drift(formula):
    class Wrong(SDEBase):
        def drift(self, x, t):
            return formula(self, x, t)
    return Wrong


def _diffusion(formula):
    class Wrong(SDEBase):
        def diffusion(self, x, t):
            return formula(self)
    return Wrong


class SDEWrongSignature(SDEBase):
    def __init__(self, score, sigma):
        super().__init__(None, score, sigma)


class SDEInPlaceReally(SDEBase):
    def drift(self, x, t):
        out = self.vector_field(x, t) + 0.5 * self.sigma**2 * self.score(x, t)
        x.zero_()
        return out


SDE_MISTAKES = [
    (_drift(lambda self, x, t: self.vector_field(x, t) + self.sigma**2 * self.score(x, t)), "factor ½ is missing"),
    (_drift(lambda self, x, t: self.vector_field(x, t) + 0.5 * self.sigma * self.score(x, t)), "not ½σ²"),
    (_drift(lambda self, x, t: self.vector_field(x, t) - 0.5 * self.sigma**2 * self.score(x, t)), "wrong sign"),
    (_drift(lambda self, x, t: 0.5 * self.sigma**2 * self.score(x, t)), "vector field is missing"),
    (_drift(lambda self, x, t: self.vector_field(x, t)), "score term is missing"),
    (_drift(lambda self, x, t: self.vector_field(x, t) + 0.5 * self.sigma**2 * self.score(x, 1 - t)), "time 1 − t"),
    (_drift(lambda self, x, t: self.vector_field(x, t) + 0.5 * self.sigma**2 * self.score(x, 0.0 * t)), "time 0"),
    (_drift(lambda self, x, t: self.vector_field(x, t) + 0.5 * self.sigma**2 * self.vector_field(x, t)), "used twice"),
    (_drift(lambda self, x, t: self.vector_field(x, t) + self.sigma * self.score(x, t)), "multiplied by σ"),
    (_drift(lambda self, x, t: self.vector_field(x, t) + 0.5 * 1.7**2 * self.score(x, t)), "differs from"),
    (_diffusion(lambda self: self.sigma**2), "σ², the variance"),
    (_diffusion(lambda self: 0.5 * self.sigma**2), "½σ²"),
    (_diffusion(lambda self: math.sqrt(self.sigma)), "√σ"),
    (_diffusion(lambda self: 0.0), "probability-flow ODE"),
    (_diffusion(lambda self: 1.0), "returned 1 whatever σ is"),
    (_diffusion(lambda self: None), "returned None"),
    (SDEWrongSignature, "def __init__(self, vector_field, score, sigma)"),
    (SDEInPlaceReally, "in place"),
]


@pytest.mark.parametrize("cls, expected", SDE_MISTAKES, ids=[f"{i}" for i in range(len(SDE_MISTAKES))])
def test_langevin_corrected_mistakes_are_caught(cls, expected):
    report = check_langevin_corrected_sde(cls)
    assert_named(report, expected)


def test_langevin_corrected_not_implemented_and_not_a_class():
    class Stub(ll.SDE):
        def __init__(self, vector_field, score, sigma):
            self.sigma = sigma

        def drift(self, x, t):
            raise NotImplementedError("Exercise: MyLangevinCorrectedSDE.drift")

        def diffusion(self, x, t):
            raise NotImplementedError("Exercise: MyLangevinCorrectedSDE.diffusion")

    report = check_langevin_corrected_sde(Stub)
    assert report.passed is None and "not implemented yet" in report.message
    report = check_langevin_corrected_sde(SDEBase(lambda x, t: x, lambda x, t: x, 1.0))
    assert report.passed is False and "pass your class itself" in report.message
