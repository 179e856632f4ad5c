"""The checkers of notebook 04 (probability paths) tested both ways.

The references (and equivalent rewritings of them) pass; an unfinished exercise gets "not implemented
yet"; and each entry of a catalogue of plausible wrong answers is rejected with a hint naming its mistake.
"""

from __future__ import annotations

import pytest
import torch
from checker_cases import assert_leaves_random_stream, assert_named

import labs_lib as ll
from labs_lib import Scheduler, SchedulerOutput, SqrtScheduler, expand_time
from labs_lib.checks import check_conditional_score, check_conditional_vector_field, check_sqrt_scheduler

# --- exercise 1: the square-root schedule --------------------------------------------------------


class SqrtWithPowers(Scheduler):
    """Correct, written differently: powers instead of sqrt, constants from t."""

    def __call__(self, t):
        return SchedulerOutput(alpha_t=t.clone(), beta_t=(1 - t) ** 0.5, d_alpha_t=t * 0 + 1,
                               d_beta_t=-0.5 * (1 - t) ** -0.5)


@pytest.mark.parametrize("cls", [SqrtScheduler, SqrtWithPowers])
def test_sqrt_scheduler_references_pass(cls):
    report = check_sqrt_scheduler(cls)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(4, 1, 1, 1)" in report.message and "finite differences" in report.message


def _sched(alpha, beta, d_alpha, d_beta):
    """A Scheduler class from four functions of t."""

    class Wrong(Scheduler):
        def __call__(self, t):
            return SchedulerOutput(alpha(t), beta(t), d_alpha(t), d_beta(t))

    return Wrong


def _root(t):
    return torch.sqrt(1 - t)


def _one(t):
    return torch.ones_like(t)


class _ReturnsTuple(Scheduler):
    def __call__(self, t):
        return t, _root(t), _one(t), -0.5 / _root(t)


class _ForgotReturn(Scheduler):
    def __call__(self, t):
        SchedulerOutput(t, _root(t), _one(t), -0.5 / _root(t))


class _NotASubclass:
    def __call__(self, t):
        return SchedulerOutput(t, _root(t), _one(t), -0.5 / _root(t))


SCHEDULER_MISTAKES = {
    "d_beta_sign": (_sched(lambda t: t, _root, _one, lambda t: 0.5 / _root(t)), "wrong sign"),
    "missing_half": (_sched(lambda t: t, _root, _one, lambda t: -1 / _root(t)), "the factor ½ is missing"),
    "no_half_no_sign": (_sched(lambda t: t, _root, _one, lambda t: 1 / _root(t)), "missing and the sign is wrong"),
    "root_times_half": (_sched(lambda t: t, _root, _one, lambda t: -0.5 * _root(t)), "not √u/2"),
    "linear_derivative": (_sched(lambda t: t, _root, _one, lambda t: -_one(t)), "derivative of the linear schedule"),
    "power_wrong": (_sched(lambda t: t, _root, _one, lambda t: -0.5 / (1 - t)), "not −1/(2(1 − t))"),
    "swapped": (_sched(_root, lambda t: t, lambda t: -0.5 / _root(t), _one), "α and β are swapped"),
    "beta_linear": (_sched(lambda t: t, lambda t: 1 - t, _one, lambda t: -_one(t)), "linear (CondOT) schedule"),
    "beta_sqrt_t": (_sched(lambda t: t, torch.sqrt, _one, lambda t: 0.5 / torch.sqrt(t)), "runs the wrong way"),
    "float_derivatives": (_sched(lambda t: t, _root, lambda t: 1.0, lambda t: -0.5 / _root(t)),
                          "d_alpha_t is a float, not a tensor"),
    "zero_dim_derivative": (_sched(lambda t: t, _root, lambda t: torch.tensor(1.0), lambda t: -0.5 / _root(t)),
                            "for t of shape (9,), d_alpha_t has shape ()"),
    "d_alpha_zero": (_sched(lambda t: t, _root, torch.zeros_like, lambda t: -0.5 / _root(t)), "d_alpha_t is 0"),
    "d_alpha_t": (_sched(lambda t: t, _root, lambda t: t, lambda t: -0.5 / _root(t)), "is α_t itself"),
    "d_beta_zero": (_sched(lambda t: t, _root, _one, torch.zeros_like), "d_beta_t is 0"),
    "float32_constant": (_sched(lambda t: t, _root, lambda t: torch.ones(t.shape), lambda t: -0.5 / _root(t)),
                         "for t of dtype torch.float64, d_alpha_t has dtype torch.float32"),
    "clamped_beta": (_sched(lambda t: t, lambda t: _root(t).clamp(min=0.05), _one, lambda t: -0.5 / _root(t)),
                     "beta_1 = 0.05 (should be 0.0)"),
    "returns_tuple": (_ReturnsTuple, "must return ll.SchedulerOutput"),
    "forgot_return": (_ForgotReturn, "Did you forget `return`?"),
    "not_a_subclass": (_NotASubclass, "a subclass of Scheduler"),
}


@pytest.mark.parametrize("name", list(SCHEDULER_MISTAKES))
def test_sqrt_scheduler_mistakes_are_rejected_with_a_hint(name):
    cls, expected = SCHEDULER_MISTAKES[name]
    report = check_sqrt_scheduler(cls)
    assert_named(report, expected)
    assert "✗ square-root schedule" in report.message


class _SchedStub(Scheduler):
    def __call__(self, t):
        raise NotImplementedError("Exercise: MySqrtScheduler.__call__")


def test_sqrt_scheduler_not_implemented():
    report = check_sqrt_scheduler(_SchedStub)
    assert report.passed is None
    assert "not implemented yet" in report.message


# --- exercises 2 and 3: conditional vector field and score ---------------------------------------


def reference_field(scheduler, x, z, t):
    return ll.AffinePath(scheduler).conditional_vector_field(x, z, t)


def field_seed_form(scheduler, x, z, t):
    """Correct, in the other common form (α̇ − β̇α/β) z + (β̇/β) x, with a hand-made reshape of t."""
    t = t.reshape(-1, *([1] * (x.ndim - 1))) if t.ndim else t
    s = scheduler(t)
    ratio = s.d_beta_t / s.beta_t
    return (s.d_alpha_t - ratio * s.alpha_t) * z + ratio * x


def reference_score(scheduler, x, z, t):
    return ll.AffinePath(scheduler).conditional_score(x, z, t)


def score_written_differently(scheduler, x, z, t):
    s = scheduler(expand_time(t, x))
    return (s.alpha_t * z - x) * s.beta_t.pow(-2)


@pytest.mark.parametrize("fn", [reference_field, field_seed_form])
def test_conditional_vector_field_references_pass(fn):
    report = check_conditional_vector_field(fn)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(4, 1, 3, 3)" in report.message and "cosine" in report.message


@pytest.mark.parametrize("fn", [reference_score, score_written_differently])
def test_conditional_score_references_pass(fn):
    report = check_conditional_score(fn)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "autograd" in report.message


def _field(expr):
    """A student function from an expression in (a, b, da, db, x, z, t) with t broadcast correctly."""

    def fn(scheduler, x, z, t):
        s = scheduler(expand_time(t, x))
        return expr(s.alpha_t, s.beta_t, s.d_alpha_t, s.d_beta_t, x, z, expand_time(t, x))

    return fn


def _field_no_broadcast(scheduler, x, z, t):
    s = scheduler(t)  # (batch,) against (batch, d): a shape error
    return s.d_alpha_t * z + s.d_beta_t / s.beta_t * (x - s.alpha_t * z)


def _field_2d_only(scheduler, x, z, t):
    s = scheduler(t.view(-1, 1))  # fine for (batch, d), wrong for images
    return s.d_alpha_t * z + s.d_beta_t / s.beta_t * (x - s.alpha_t * z)


def _field_forgot_return(scheduler, x, z, t):
    s = scheduler(expand_time(t, x))
    s.d_alpha_t * z + s.d_beta_t / s.beta_t * (x - s.alpha_t * z)


def _field_in_place(scheduler, x, z, t):
    s = scheduler(expand_time(t, x))
    x -= s.alpha_t * z
    return s.d_alpha_t * z + s.d_beta_t / s.beta_t * x


def _field_sums_over_batch(scheduler, x, z, t):
    s = scheduler(expand_time(t, x))
    return (s.d_alpha_t * z + s.d_beta_t / s.beta_t * (x - s.alpha_t * z)).sum(0)


FIELD_MISTAKES = {
    "sign_of_ratio_term": (_field(lambda a, b, da, db, x, z, t: da * z - db / b * (x - a * z)), "wrong sign"),
    "alpha_dot_x": (_field(lambda a, b, da, db, x, z, t: da * x + db / b * (x - a * z)), "α̇·z, not α̇·x"),
    "missing_alpha": (_field(lambda a, b, da, db, x, z, t: da * z + db / b * (x - z)), "subtract α_t·z, not z"),
    "beta_for_ratio": (_field(lambda a, b, da, db, x, z, t: da * z + b * (x - a * z)), "by β̇_t/β_t, not by β_t"),
    "no_division": (_field(lambda a, b, da, db, x, z, t: da * z + db * (x - a * z)), "must be divided by β_t"),
    "beta_squared": (_field(lambda a, b, da, db, x, z, t: da * z + db / b**2 * (x - a * z)), "not by β_t²"),
    "ratio_inverted": (_field(lambda a, b, da, db, x, z, t: da * z + b / db * (x - a * z)), "upside down"),
    "alpha_not_dot": (_field(lambda a, b, da, db, x, z, t: a * z + db / b * (x - a * z)), "its derivative α̇_t"),
    "path_point": (_field(lambda a, b, da, db, x, z, t: a * z + b * x), "a point of the path"),
    "x_as_x0": (_field(lambda a, b, da, db, x, z, t: da * z + db * x), "x_0 = (x − α_t z)/β_t"),
    "condot_only": (_field(lambda a, b, da, db, x, z, t: (z - x) / (1 - t)), "linear schedule only"),
    "no_broadcast": (_field_no_broadcast, "a shape error for x of shape (6, 2) and t of shape (6,)"),
    "two_d_only": (_field_2d_only, "ll.expand_time(t, x)"),
    "forgot_return": (_field_forgot_return, "Did you forget `return`?"),
    "in_place": (_field_in_place, "modified its input x in place"),
    "sums_over_batch": (_field_sums_over_batch, "must have x's shape"),
    "not_callable": (None, "pass your function itself"),
}


@pytest.mark.parametrize("name", list(FIELD_MISTAKES))
def test_conditional_vector_field_mistakes_are_rejected_with_a_hint(name):
    fn, expected = FIELD_MISTAKES[name]
    report = check_conditional_vector_field(fn)
    assert_named(report, expected)
    assert "✗ conditional vector field" in report.message


def _score_no_broadcast(scheduler, x, z, t):
    s = scheduler(t)
    return -(x - s.alpha_t * z) / s.beta_t**2


SCORE_MISTAKES = {
    "missing_minus": (_field(lambda a, b, da, db, x, z, t: (x - a * z) / b**2), "the sign is wrong"),
    "beta_not_squared": (_field(lambda a, b, da, db, x, z, t: -(x - a * z) / b), "variance β_t², not by the standard"),
    "x_minus_z": (_field(lambda a, b, da, db, x, z, t: -(x - z) / b**2), "mean of p_t(·|z) is α_t z, not z"),
    "plus_alpha_z": (_field(lambda a, b, da, db, x, z, t: -(x + a * z) / b**2), "subtract the mean"),
    "returns_noise": (_field(lambda a, b, da, db, x, z, t: (x - a * z) / b), "is the noise x_0"),
    "no_variance": (_field(lambda a, b, da, db, x, z, t: -(x - a * z)), "division by the variance β_t² is missing"),
    "half": (_field(lambda a, b, da, db, x, z, t: -(x - a * z) / (2 * b**2)), "no factor ½"),
    "vector_field": (_field(lambda a, b, da, db, x, z, t: da * z + db / b * (x - a * z)),
                     "this is the conditional vector field"),
    "no_broadcast": (_score_no_broadcast, "a shape error for x of shape (6, 2)"),
}


@pytest.mark.parametrize("name", list(SCORE_MISTAKES))
def test_conditional_score_mistakes_are_rejected_with_a_hint(name):
    fn, expected = SCORE_MISTAKES[name]
    report = check_conditional_score(fn)
    assert_named(report, expected)
    assert "✗ conditional score" in report.message


def _stub(scheduler, x, z, t):
    raise NotImplementedError("Exercise: my_function")


@pytest.mark.parametrize("check", [check_conditional_vector_field, check_conditional_score])
def test_field_checkers_not_implemented(check):
    report = check(_stub)
    assert report.passed is None
    assert "not implemented yet" in report.message


def test_checkers_leave_the_global_random_stream_alone():
    assert_leaves_random_stream((check_sqrt_scheduler, SqrtScheduler),
                                (check_conditional_vector_field, reference_field),
                                (check_conditional_score, reference_score))
