"""The checkers of notebook 09 (the DDPM forward step, the ancestral step, DPM-Solver++(2M)) tested both ways.

The references pass, and so do other correct ways of writing them; an unfinished exercise gets "not
implemented yet"; and each entry of a catalogue of plausible wrong answers, each the one wrong line a
student might write, is rejected with a hint that names its mistake.
"""

from __future__ import annotations

import math

import pytest
import torch
from checker_cases import assert_leaves_random_stream, assert_named

from labs_lib.checks import check_ancestral_step, check_ddpm_forward_step, check_dpmpp_2m_step


def test_checks_do_not_disturb_the_global_random_stream():
    assert_leaves_random_stream((check_ddpm_forward_step, forward_reference),
                                (check_ancestral_step, ancestral_reference),
                                (check_dpmpp_2m_step, solver_reference))


# --- exercise 1: the forward step ----------------------------------------------------------------------


def forward_reference(x_prev, alpha_bar_prev, alpha_bar, noise):
    """The notebook's solution."""
    ratio = alpha_bar / alpha_bar_prev
    return torch.sqrt(ratio) * x_prev + torch.sqrt(1 - ratio) * noise


def forward_with_math(x_prev, alpha_bar_prev, alpha_bar, noise):
    """Correct too: Python numbers through math.sqrt."""
    a = math.sqrt(float(alpha_bar) / float(alpha_bar_prev))
    return a * x_prev + math.sqrt(1 - a * a) * noise


@pytest.mark.parametrize("fn", [forward_reference, forward_with_math])
def test_forward_step_accepts_correct_answers(fn):
    report = check_ddpm_forward_step(fn)
    assert report.passed, report.message
    assert "exact marginal" in report.message


FORWARD_MISTAKES = {
    "the jump from data": (lambda x, ap, a, e: a.sqrt() * x + (1 - a).sqrt() * e, "the jump from clean data"),
    "no square roots": (lambda x, ap, a, e: (a / ap) * x + (1 - a / ap) * e, "the square roots are missing"),
    "noise std squared": (lambda x, ap, a, e: (a / ap).sqrt() * x + (1 - a / ap) * e, "missing its square root"),
    "ratio upside down": (lambda x, ap, a, e: (ap / a).sqrt() * x + (1 - a / ap).clamp(min=0).sqrt() * e,
                          "upside down"),
    "total noise": (lambda x, ap, a, e: (a / ap).sqrt() * x + (1 - a).sqrt() * e, "the total noise of level k"),
    "x not scaled": (lambda x, ap, a, e: x + (1 - a / ap).sqrt() * e, "x is not scaled"),
}


@pytest.mark.parametrize("name", FORWARD_MISTAKES)
def test_forward_step_mistakes_are_named(name):
    fn, hint = FORWARD_MISTAKES[name]
    assert_named(check_ddpm_forward_step(fn), hint)


def test_forward_step_in_place_and_wrong_shape():
    def in_place(x, ap, a, e):
        x.mul_((a / ap).sqrt())
        return x + (1 - a / ap).sqrt() * e

    assert_named(check_ddpm_forward_step(in_place), "modified its input x_prev in place")
    assert_named(check_ddpm_forward_step(lambda x, ap, a, e: forward_reference(x, ap, a, e).sum(-1)),
                 "returned shape")


# --- exercise 2: the ancestral step ---------------------------------------------------------------------


def ancestral_reference(x, x1_hat, alpha, beta, alpha_next, beta_next, noise):
    """The notebook's solution: the posterior written with a = α/α'."""
    a = alpha / alpha_next
    kernel_var = beta**2 - a**2 * beta_next**2
    mean = alpha_next * kernel_var / beta**2 * x1_hat + a * beta_next**2 / beta**2 * x
    std = beta_next * torch.sqrt(kernel_var.clamp(min=0)) / beta
    return mean + std * noise


def ancestral_in_ddpm_notation(x, x1_hat, alpha, beta, alpha_next, beta_next, noise):
    """Correct too: DDPM's ᾱ notation on a VP path (ᾱ = α², β² = 1 − ᾱ), with β_k = 1 − ᾱ_t/ᾱ_{t'}."""
    ab, ab_prev = alpha**2, alpha_next**2
    beta_k = 1 - ab / ab_prev
    mean = ab_prev.sqrt() * beta_k / (1 - ab) * x1_hat + (1 - beta_k).sqrt() * (1 - ab_prev) / (1 - ab) * x
    var = (1 - ab_prev) / (1 - ab) * beta_k
    return mean + var.clamp(min=0).sqrt() * noise


def ancestral_by_precisions(x, x1_hat, alpha, beta, alpha_next, beta_next, noise):
    """Correct too: Bayes' rule as two precisions that add (the notebook's derivation), even into t' = 1."""
    a = alpha / alpha_next
    kappa2 = beta**2 - a**2 * beta_next**2
    p1, p2 = 1 / beta_next**2, a**2 / kappa2
    var = 1 / (p1 + p2)
    return var * (p1 * alpha_next * x1_hat + p2 * x / a) + var.sqrt() * noise


@pytest.mark.parametrize("fn", [ancestral_reference, ancestral_in_ddpm_notation, ancestral_by_precisions])
def test_ancestral_step_accepts_correct_answers(fn):
    report = check_ancestral_step(fn)
    assert report.passed, report.message


def _eps(x, x1, a, b):
    return (x - a * x1) / b


def _post(x, x1, a, b, a2, b2):
    k = a / a2
    kv = b**2 - k**2 * b2**2
    return a2 * kv / b**2 * x1 + k * b2**2 / b**2 * x, b2 * torch.sqrt(kv.clamp(min=0)) / b, kv.clamp(min=0).sqrt()


ANCESTRAL_MISTAKES = {
    "DDIM": (lambda x, x1, a, b, a2, b2, e: a2 * x1 + b2 * _eps(x, x1, a, b), "that is deterministic DDIM"),
    "no noise": (lambda x, x1, a, b, a2, b2, e: _post(x, x1, a, b, a2, b2)[0], "the noise is missing"),
    "noise β'": (lambda x, x1, a, b, a2, b2, e: _post(x, x1, a, b, a2, b2)[0] + b2 * e, "scaled by β'"),
    "variance": (lambda x, x1, a, b, a2, b2, e: _post(x, x1, a, b, a2, b2)[0] + _post(x, x1, a, b, a2, b2)[1] ** 2 * e,
                 "the variance σ̃²"),
    "kernel std": (lambda x, x1, a, b, a2, b2, e: _post(x, x1, a, b, a2, b2)[0] + _post(x, x1, a, b, a2, b2)[2] * e,
                   "the forward kernel's standard deviation"),
    "inverted kernel": (lambda x, x1, a, b, a2, b2, e: (x - _post(x, x1, a, b, a2, b2)[2] * e) / (a / a2),
                        "inverts the forward kernel"),
}


@pytest.mark.parametrize("name", ANCESTRAL_MISTAKES)
def test_ancestral_step_mistakes_are_named(name):
    fn, hint = ANCESTRAL_MISTAKES[name]
    assert_named(check_ancestral_step(fn), hint)


def test_ancestral_step_unnamed_mistake_gets_the_difference():
    report = check_ancestral_step(lambda *args: 1.01 * ancestral_reference(*args))
    assert_named(report, "differs from the posterior mean")


# --- exercise 3: DPM-Solver++(2M) ---------------------------------------------------------------------


def _lam(path, t):
    s = path.scheduler(torch.tensor(t))
    return s.alpha_t, s.beta_t, torch.log(s.alpha_t / s.beta_t)


def solver_reference(path, x, t_prev, t, t_next, d_prev, d):
    """The notebook's solution."""
    _, _, lam_prev = _lam(path, t_prev)
    _, beta, lam = _lam(path, t)
    alpha_next, beta_next, lam_next = _lam(path, t_next)
    h = lam_next - lam
    r = (lam - lam_prev) / h
    dd = (1 + 1 / (2 * r)) * d - 1 / (2 * r) * d_prev
    return beta_next / beta * x + alpha_next * (1 - torch.exp(-h)) * dd


def solver_with_floats(path, x, t_prev, t, t_next, d_prev, d):
    """Correct too: λ as Python floats, and the update written as DDIM plus a correction."""
    lp, lam, ln = (math.log(float(path.scheduler(torch.tensor(s)).alpha_t / path.scheduler(torch.tensor(s)).beta_t))
                   for s in (t_prev, t, t_next))
    nxt, now = path.scheduler(torch.tensor(t_next)), path.scheduler(torch.tensor(t))
    h, r = ln - lam, (lam - lp) / (ln - lam)
    ddim = float(nxt.beta_t / now.beta_t) * x + float(nxt.alpha_t) * (1 - math.exp(-h)) * d
    return ddim + float(nxt.alpha_t) * (1 - math.exp(-h)) / (2 * r) * (d - d_prev)


@pytest.mark.parametrize("fn", [solver_reference, solver_with_floats])
def test_solver_step_accepts_correct_answers(fn):
    report = check_dpmpp_2m_step(fn)
    assert report.passed, report.message
    assert "reduces to the first-order step" in report.message


def _solver_variant(first_order=False, r_inverted=False, sign=1.0, decay=None, in_t=False, scale_alpha=False,
                    double_h=False):
    def fn(path, x, t_prev, t, t_next, d_prev, d):
        ap, bp, lp = _lam(path, t_prev)
        a, b, lam = _lam(path, t)
        a2, b2, l2 = _lam(path, t_next)
        h = l2 - lam
        r = (t - t_prev) / (t_next - t) if in_t else (lam - lp) / h
        if r_inverted:
            r = 1 / r
        dd = d if first_order else (1 + sign / (2 * r)) * d - sign / (2 * r) * d_prev
        w = (1 - torch.exp(-2 * h)) if double_h else (1 - torch.exp(-h))
        if decay == "negative":
            w = -w
        return (a2 / a if scale_alpha else b2 / b) * x + a2 * w * dd
    return fn


SOLVER_MISTAKES = {
    "first order": (_solver_variant(first_order=True), "this is the first-order step (DDIM)"),
    "r inverted": (_solver_variant(r_inverted=True), "r is upside down"),
    "sign": (_solver_variant(sign=-1.0), "the extrapolation has the wrong sign"),
    "decay sign": (_solver_variant(decay="negative"), "the factor is e^{−h} − 1"),
    "steps in t": (_solver_variant(in_t=True), "the step sizes are measured in t"),
    "alpha scale": (_solver_variant(scale_alpha=True), "x is scaled by α'/α"),
    "log-SNR": (_solver_variant(double_h=True), "log-SNR"),
}


@pytest.mark.parametrize("name", SOLVER_MISTAKES)
def test_solver_step_mistakes_are_named(name):
    fn, hint = SOLVER_MISTAKES[name]
    assert_named(check_dpmpp_2m_step(fn), hint)


def test_solver_step_in_place():
    def in_place(path, x, t_prev, t, t_next, d_prev, d):
        out = solver_reference(path, x, t_prev, t, t_next, d_prev, d)
        d.zero_()
        return out

    assert_named(check_dpmpp_2m_step(in_place), "modified its input d in place")
