"""The checkers of notebook 10 (the OT pairing, Hutchinson's estimator, the log-likelihood integral, the
Poisson field) tested both ways.

The references pass, and so do a few other correct answers; an unfinished exercise gets "not
implemented yet"; and each entry of a catalogue of plausible wrong answers, each the one wrong
line a student might write, is rejected with a hint that names its mistake.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from checker_cases import assert_leaves_random_stream, assert_named
from scipy.optimize import linear_sum_assignment

from labs_lib.checks import check_hutchinson_divergence, check_log_likelihood, check_ot_pairing, check_poisson_field
from labs_lib.coupling import ot_coupling
from labs_lib.likelihood import standard_normal_log_density
from labs_lib.poisson import poisson_field

CHECKERS = [check_ot_pairing, check_hutchinson_divergence, check_log_likelihood, check_poisson_field]


def test_checks_do_not_disturb_the_global_random_stream():
    assert_leaves_random_stream(*zip(CHECKERS, [ot_reference, hutchinson_reference, log_likelihood_reference,
                                                poisson_field]))


# --- exercise 1: the OT pairing ------------------------------------------------------------------------


def ot_reference(x_0, x_1):
    """The notebook's solution: the squared-distance cost matrix and SciPy's exact assignment."""
    cost = torch.cdist(x_0.flatten(1), x_1.flatten(1)) ** 2
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return x_1[torch.as_tensor(cols, device=x_1.device)]


def ot_with_brute_force(x_0, x_1):
    """Correct too, for tiny batches only: every permutation tried (the checker's largest batch is 8)."""
    import itertools
    a, b = x_0.flatten(1), x_1.flatten(1)
    best = min(itertools.permutations(range(len(a))), key=lambda p: float((a - b[list(p)]).pow(2).sum()))
    return x_1[list(best)]


@pytest.mark.parametrize("fn", [ot_coupling, ot_reference, ot_with_brute_force])
def test_ot_correct_answers_pass(fn):
    report = check_ot_pairing(fn)
    assert report.passed is True, report.message
    assert "least total squared distance" in report.message


def _assign(cost):
    return torch.as_tensor(linear_sum_assignment(cost.numpy())[1])


def ot_identity(x_0, x_1):
    return x_1


def ot_by_sorted_norms(x_0, x_1):
    order = torch.empty(len(x_0), dtype=torch.long)
    order[x_0.flatten(1).norm(dim=1).argsort()] = x_1.flatten(1).norm(dim=1).argsort()
    return x_1[order]


def ot_unsquared(x_0, x_1):
    return x_1[_assign(torch.cdist(x_0.flatten(1), x_1.flatten(1)))]


def ot_maximised(x_0, x_1):
    cost = torch.cdist(x_0.flatten(1), x_1.flatten(1)) ** 2
    return x_1[torch.as_tensor(linear_sum_assignment(cost.numpy(), maximize=True)[1])]


def ot_inverse_permutation(x_0, x_1):
    return x_1[_assign(torch.cdist(x_0.flatten(1), x_1.flatten(1)) ** 2).argsort()]


def ot_greedy_nearest(x_0, x_1):
    return x_1[torch.cdist(x_0.flatten(1), x_1.flatten(1)).argmin(1)]


def ot_returns_permutation(x_0, x_1):
    return _assign(torch.cdist(x_0.flatten(1), x_1.flatten(1)) ** 2)


def ot_not_flattened(x_0, x_1):
    return x_1[_assign(torch.cdist(x_0, x_1) ** 2)]


def ot_returns_numpy(x_0, x_1):
    return ot_reference(x_0, x_1).numpy()


def ot_shuffles_in_place(x_0, x_1):
    x_1[:] = ot_reference(x_0, x_1.clone())
    return x_1


OT_MISTAKES = [
    (ot_identity, "that is the independent coupling"),
    (ot_by_sorted_norms, "matched by the order of their norms"),
    (ot_unsquared, "square the cost matrix"),
    (ot_maximised, "maximises the total squared distance"),
    (ot_inverse_permutation, "the permutation was applied the wrong way round"),
    (ot_greedy_nearest, "a greedy nearest neighbour can pick the same one twice"),
    (ot_returns_permutation, "returned the permutation (indices)"),
    (ot_not_flattened, "your code raised"),
    (ot_returns_numpy, "must return a torch.Tensor"),
    (ot_shuffles_in_place, "modified its input x_1 in place"),
]


@pytest.mark.parametrize("fn, hint", OT_MISTAKES, ids=[f.__name__ for f, _ in OT_MISTAKES])
def test_ot_mistakes_are_named(fn, hint):
    assert_named(check_ot_pairing(fn), hint)


# --- exercise 2a: Hutchinson's estimator ----------------------------------------------------------------


def _vjp_estimates(field, x, t, probes, enable_grad=True):
    """vᵀJv per sample for each probe of ``probes`` (k, batch, d): shape (k, batch); gradients switched on
    inside unless ``enable_grad`` is False (the mistake)."""
    with torch.enable_grad() if enable_grad else contextlib.nullcontext():
        x = x.detach().requires_grad_(True)
        u = field(x, t)
        out = []
        for i, v in enumerate(probes):
            (g,) = torch.autograd.grad(u, x, grad_outputs=v, retain_graph=i < len(probes) - 1)
            out.append((g * v).sum(1))
    return torch.stack(out)


def _rademacher(n_probes, x, generator):
    return (2 * torch.randint(0, 2, (n_probes, *x.shape), generator=generator) - 1).to(x.dtype)


def hutchinson_reference(field, x, t, n_probes=1, generator=None):
    """The notebook's solution."""
    return _vjp_estimates(field, x, t, _rademacher(n_probes, x, generator)).mean(0)


def hutchinson_with_sign_trick(field, x, t, n_probes=1, generator=None):
    """Correct too: ±1 probes from torch.sign of Gaussians, the global generator."""
    return _vjp_estimates(field, x, t, torch.sign(torch.randn(n_probes, *x.shape, dtype=x.dtype))).mean(0)


@pytest.mark.parametrize("fn", [hutchinson_reference, hutchinson_with_sign_trick])
def test_hutchinson_correct_answers_pass(fn):
    report = check_hutchinson_divergence(fn)
    assert report.passed is True, report.message
    assert "with the variance of ±1 probes" in report.message


def hutchinson_mean_over_coordinates(field, x, t, n_probes=1, generator=None):
    probes = _rademacher(n_probes, x, generator)
    return (_vjp_estimates(field, x, t, probes) / x.shape[1]).mean(0)


def hutchinson_sum_over_probes(field, x, t, n_probes=1, generator=None):
    return _vjp_estimates(field, x, t, _rademacher(n_probes, x, generator)).sum(0)


def hutchinson_gaussian(field, x, t, n_probes=1, generator=None):
    return _vjp_estimates(field, x, t, torch.randn(n_probes, *x.shape, generator=generator, dtype=x.dtype)).mean(0)


def hutchinson_zero_one_probes(field, x, t, n_probes=1, generator=None):
    probes = torch.randint(0, 2, (n_probes, *x.shape), generator=generator).to(x.dtype)
    return _vjp_estimates(field, x, t, probes).mean(0)


def hutchinson_uniform_probes(field, x, t, n_probes=1, generator=None):
    probes = 2 * torch.rand(n_probes, *x.shape, generator=generator, dtype=x.dtype) - 1
    return _vjp_estimates(field, x, t, probes).mean(0)


def hutchinson_one_probe_for_all(field, x, t, n_probes=1, generator=None):
    probes = _rademacher(n_probes, x[:1], generator).expand(n_probes, *x.shape)
    return _vjp_estimates(field, x, t, probes).mean(0)


def hutchinson_negated(field, x, t, n_probes=1, generator=None):
    return -hutchinson_reference(field, x, t, n_probes, generator)


def hutchinson_not_multiplied_by_v(field, x, t, n_probes=1, generator=None):
    x = x.detach().requires_grad_(True)
    v = _rademacher(1, x, generator)[0]
    (g,) = torch.autograd.grad(field(x, t), x, grad_outputs=v)
    return g.sum(1)


def hutchinson_keeps_coordinates(field, x, t, n_probes=1, generator=None):
    x = x.detach().requires_grad_(True)
    v = _rademacher(1, x, generator)[0]
    (g,) = torch.autograd.grad(field(x, t), x, grad_outputs=v)
    return g * v


def hutchinson_without_enable_grad(field, x, t, n_probes=1, generator=None):
    """Right with gradients on; inside torch.no_grad() u has no graph and autograd.grad raises."""
    return _vjp_estimates(field, x, t, _rademacher(n_probes, x, generator), enable_grad=False).mean(0)


def hutchinson_in_place(field, x, t, n_probes=1, generator=None):
    x.requires_grad_(True)
    return hutchinson_reference(field, x, t, n_probes, generator)


HUTCHINSON_MISTAKES = [
    (hutchinson_mean_over_coordinates, "instead of averaging them, .mean(1)"),
    (hutchinson_sum_over_probes, "average the probes' estimates"),
    (hutchinson_gaussian, "Gaussian probes are unbiased too, but never exact"),
    (hutchinson_zero_one_probes, "probes of 0s and 1s"),
    (hutchinson_uniform_probes, "uniform probes"),
    (hutchinson_one_probe_for_all, "every sample must get its own probe"),
    (hutchinson_negated, "the wrong sign"),
    (hutchinson_not_multiplied_by_v, "Draw Rademacher probes"),
    (hutchinson_keeps_coordinates, "return one divergence per sample"),
    (hutchinson_without_enable_grad, "inside `with torch.enable_grad():`"),
]


@pytest.mark.parametrize("fn, hint", HUTCHINSON_MISTAKES, ids=[f.__name__ for f, _ in HUTCHINSON_MISTAKES])
def test_hutchinson_mistakes_are_named(fn, hint):
    assert_named(check_hutchinson_divergence(fn), hint)


def test_hutchinson_may_switch_on_the_gradient_of_x():
    # requires_grad_ on the caller's x is a change of x's state, not of its values: allowed, and right
    assert check_hutchinson_divergence(hutchinson_in_place).passed is True


# --- exercise 2b: the log-likelihood integral -------------------------------------------------------------


def log_likelihood_reference(field, x, n_steps, divergence_fn):
    """The notebook's solution: Euler backwards, the divergence accumulated on the way."""
    h = 1.0 / n_steps
    y, acc = x.clone(), torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(n_steps):
        t = 1.0 - i * h
        acc = acc + h * divergence_fn(field, y, t)
        y = y - h * field(y, torch.tensor(t, dtype=x.dtype)).detach()
    return standard_normal_log_density(y) - acc


def _variant(sign=-1.0, forward=False, dx=-1.0, after=False, scale=1.0, at_x=False, constant=True):
    def fn(field, x, n_steps, divergence_fn):
        h = 1.0 / n_steps
        y, acc = x.clone(), torch.zeros(x.shape[0], dtype=x.dtype)
        for i in range(n_steps):
            t = i * h if forward else 1.0 - i * h
            y_new = y + dx * h * field(y, t).detach()
            acc = acc + scale * h * divergence_fn(field, y_new if after else y, t)
            y = y_new
        start = x if at_x else y
        prior = standard_normal_log_density(start) if constant else -0.5 * start.pow(2).sum(1)
        return prior + sign * acc
    return fn


def log_likelihood_in_place(field, x, n_steps, divergence_fn):
    h = 1.0 / n_steps
    acc = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(n_steps):
        t = 1.0 - i * h
        acc = acc + h * divergence_fn(field, x, t)
        x -= h * field(x, t).detach()
    return standard_normal_log_density(x) - acc


def log_likelihood_summed(field, x, n_steps, divergence_fn):
    return log_likelihood_reference(field, x, n_steps, divergence_fn).sum()


LIKELIHOOD_MISTAKES = [
    (_variant(sign=1.0), "the divergence was added"),
    (_variant(forward=True), "the integral ran forward from t = 0"),
    (_variant(dx=1.0), "the state moved forward"),
    (_variant(after=True), "the divergence was taken after the step"),
    (_variant(scale=10.0), "the step size h is missing"),
    (_variant(at_x=True), "the noise's log-density was taken at x"),
    (_variant(constant=False), "normalising constant"),
    (log_likelihood_in_place, "modified its input x in place"),
    (log_likelihood_summed, "return one log-density per sample"),
]


def test_log_likelihood_correct_answer_passes():
    report = check_log_likelihood(log_likelihood_reference)
    assert report.passed is True, report.message
    assert "divergence subtracted" in report.message


@pytest.mark.parametrize("fn, hint", LIKELIHOOD_MISTAKES, ids=[h[:30] for _, h in LIKELIHOOD_MISTAKES])
def test_log_likelihood_mistakes_are_named(fn, hint):
    assert_named(check_log_likelihood(fn), hint)


# --- exercise 3: the Poisson field -------------------------------------------------------------------------


def poisson_reference(x, charges):
    """The notebook's solution: every point against every charge, then the mean over charges."""
    diff = x[:, None, :] - charges[None, :, :]
    return (diff / diff.norm(dim=-1, keepdim=True) ** x.shape[1]).mean(1)


def poisson_with_cdist(x, charges):
    """Correct too: distances by cdist, the sum written as matrix products."""
    w = torch.cdist(x, charges) ** (-x.shape[1]) / charges.shape[0]
    return x * w.sum(1, keepdim=True) - w @ charges


@pytest.mark.parametrize("fn", [poisson_field, poisson_reference, poisson_with_cdist])
def test_poisson_correct_answers_pass(fn):
    report = check_poisson_field(fn)
    assert report.passed is True, report.message
    assert "the exponent follows the dimension D" in report.message


def _power(p):
    def fn(x, charges):
        diff = x[:, None, :] - charges[None, :, :]
        return (diff / diff.norm(dim=-1, keepdim=True) ** p(x.shape[1])).mean(1)
    return fn


def poisson_wrong_sign(x, charges):
    return -poisson_reference(x, charges)


def poisson_summed(x, charges):
    diff = x[:, None, :] - charges[None, :, :]
    return (diff / diff.norm(dim=-1, keepdim=True) ** x.shape[1]).sum(1)


def poisson_not_broadcast(x, charges):
    diff = x - charges
    return diff / diff.norm(dim=-1, keepdim=True) ** x.shape[1]


def poisson_per_charge(x, charges):
    diff = x[:, None, :] - charges[None, :, :]
    return diff / diff.norm(dim=-1, keepdim=True) ** x.shape[1]


def poisson_numpy(x, charges):
    return poisson_reference(x, charges).numpy()


POISSON_MISTAKES = [
    (poisson_wrong_sign, "the field points towards the charges"),
    (poisson_summed, "summed, not averaged"),
    (_power(lambda d: d + 1), "the exponent is D + 1"),
    (_power(lambda d: d - 1), "the exponent is D − 1"),
    (_power(lambda d: 1), "each charge contributes a unit vector"),
    (_power(lambda d: 3), "right for D = 3 but not for D = 2: the exponent is fixed at 3"),
    (_power(lambda d: 2), "the exponent is D − 1 = 2"),  # wrong in the first case, D = 3
    (poisson_not_broadcast, "Pair every point with every charge"),
    (poisson_per_charge, "average over the charges' axis"),
    (poisson_numpy, "must return a torch.Tensor"),
]


@pytest.mark.parametrize("fn, hint", POISSON_MISTAKES, ids=[h[:30] for _, h in POISSON_MISTAKES])
def test_poisson_mistakes_are_named(fn, hint):
    assert_named(check_poisson_field(fn), hint)
