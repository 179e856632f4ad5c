r"""Checkers for notebook 04 (probability paths): the square-root schedule with its derivatives,
the conditional vector field and the conditional score of the Gaussian path.

Every checker evaluates at times strictly inside :math:`(0, 1)` (0.1 to 0.9): at :math:`t = 1` the
conditional field and score divide by :math:`\beta_1 = 0`, which is a fact of the mathematics,
not a mistake of the student.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import Normal

from ..paths import (AffinePath, CondOTScheduler, CosineScheduler, Scheduler, SchedulerOutput, SqrtScheduler,
                     validate_scheduler)
from ..times import expand_time
from ._framework import (SHAPES, CheckFailed, Ok, call_guarded, checker, close, diagnose, require_function,
                         require_state_shaped, require_subclass, rounded, shapes_text)

_FIELDS = ("alpha_t", "beta_t", "d_alpha_t", "d_beta_t")


# --- exercise 1: the square-root schedule --------------------------------------------------------


def _call_scheduler(sched: Scheduler, t: Tensor) -> SchedulerOutput:
    out = sched(t)
    if not isinstance(out, SchedulerOutput):
        raise CheckFailed("__call__ must return ll.SchedulerOutput(alpha_t=..., beta_t=..., d_alpha_t=..., "
                          f"d_beta_t=...), got {type(out).__name__}."
                          + (" Did you forget `return`?" if out is None else ""))
    for name in _FIELDS:
        value = getattr(out, name)
        if not isinstance(value, Tensor):
            raise CheckFailed(f"{name} is a {type(value).__name__}, not a tensor: every field needs one value per "
                              "time, with t's shape. Build a constant c as c * torch.ones_like(t).")
        if value.shape != t.shape:
            raise CheckFailed(f"for t of shape {tuple(t.shape)}, {name} has shape {tuple(value.shape)}: every field "
                              "must have t's shape (one value per time). Compute it elementwise from t, and build "
                              "constants with torch.ones_like(t).")
        if value.dtype != t.dtype:
            raise CheckFailed(f"for t of dtype {t.dtype}, {name} has dtype {value.dtype}: build constants with "
                              "torch.ones_like(t), which follows t's dtype and device.")
    return out


def _scheduler_mistakes(t: Tensor, out: SchedulerOutput) -> dict[str, tuple[str, dict[str, Tensor]]]:
    """The named mistakes of exercise 1, per field of the student's ``out`` at ``t``: field → (what its failure
    says when no named mistake matches, {hint → what that wrong formula gives at t})."""
    ref, root = SqrtScheduler()(t), torch.sqrt(1 - t)
    at, yours = t.flatten()[:3].tolist(), {name: rounded(getattr(out, name), 3) for name in _FIELDS}
    return {
        "alpha_t": (f"alpha_t should be α_t = t, but at t = {at} it is {yours['alpha_t']}.", {
            "α and β are swapped: the data weight α_t = t grows from 0 to 1, the noise weight "
            "β_t = √(1 − t) shrinks from 1 to 0.": root,
            "α_t must be t itself, not √t.": torch.sqrt(t),
        }),
        "beta_t": (f"beta_t should be β_t = √(1 − t), but at t = {at} it is {yours['beta_t']}.", {
            "α and β are swapped: β_t = √(1 − t) is the noise weight, α_t = t the data weight.": t,
            "β_t = 1 − t is the linear (CondOT) schedule; this one is β_t = √(1 − t).": 1 - t,
            "β_t = √t runs the wrong way: it must start at 1 (pure noise) and end at 0, so β_t = √(1 − t).":
                torch.sqrt(t),
            "β_t = 1 − √t runs at the wrong speed: take the root of (1 − t), β_t = √(1 − t).":
                1 - torch.sqrt(t),
        }),
        "d_alpha_t": (f"d_alpha_t should be dα_t/dt = 1, but yours is {yours['d_alpha_t']}.", {
            "d_alpha_t is 0, but α_t = t grows at rate 1: d_alpha_t = torch.ones_like(t).": torch.zeros_like(t),
            "d_alpha_t = t is α_t itself; its derivative is 1 (torch.ones_like(t)).": t,
            "α and β are swapped in the derivatives too: d_alpha_t is dα_t/dt = 1.": ref.d_beta_t,
        }),
        "d_beta_t": (f"d_beta_t should be dβ_t/dt = −1/(2√(1 − t)), but at t = {at} yours is {yours['d_beta_t']}.", {
            "d_beta_t has the wrong sign: β_t = √(1 − t) decreases, so dβ_t/dt = −1/(2√(1 − t)) is negative "
            "(the chain rule brings the factor d(1 − t)/dt = −1).": 0.5 / root,
            "the factor ½ is missing: d/du √u = 1/(2√u), so dβ_t/dt = −1/(2√(1 − t)).": -1 / root,
            "the factor ½ is missing and the sign is wrong: dβ_t/dt = −1/(2√(1 − t)) (chain rule: "
            "d(1 − t)/dt = −1).": 1 / root,
            "d_beta_t = −1 is the derivative of the linear schedule 1 − t; differentiate √(1 − t) with the "
            "chain rule: −1/(2√(1 − t)).": -torch.ones_like(t),
            "the derivative of √u is 1/(2√u), not √u/2: dβ_t/dt = −1/(2√(1 − t)).": -0.5 * root,
            "the root is missing in the denominator's place: dβ_t/dt = −1/(2√(1 − t)), not −1/(2(1 − t)).":
                -0.5 / (1 - t),
            "d_beta_t is 0, but β_t changes with t: dβ_t/dt = −1/(2√(1 − t)).": torch.zeros_like(t),
            "α and β are swapped in the derivatives: d_beta_t is dβ_t/dt = −1/(2√(1 − t)).": ref.d_alpha_t,
        }),
    }


@checker("square-root schedule")
def check_sqrt_scheduler(cls: type, ok: Ok) -> None:
    r"""Check a scheduler class for :math:`\alpha_t = t,\ \beta_t = \sqrt{1-t}` and their derivatives."""
    require_subclass(cls, Scheduler, "sqrt_scheduler")
    sched = cls()
    grid = torch.linspace(0.1, 0.9, 9)
    times = [grid, grid[:, None], torch.tensor(0.35), grid[:4].view(4, 1, 1, 1)]
    outs = [_call_scheduler(sched, t) for t in times]
    ok("returns a SchedulerOutput whose four fields are tensors of t's shape and dtype, for t of shape "
       + shapes_text(t.shape for t in times))

    # the values first, then the derivatives, each field against SqrtScheduler at every t
    for fields, verified in ((_FIELDS[:2], "α_t = t and β_t = √(1 − t) at t = 0.1, 0.2, …, 0.9"),
                             (_FIELDS[2:], "dα_t/dt = 1 and dβ_t/dt = −1/(2√(1 − t))")):
        for t, out in zip(times, outs):
            ref = SqrtScheduler()(t)
            for name in fields:
                if not close(getattr(out, name), getattr(ref, name)):
                    fallback, mistakes = _scheduler_mistakes(t, out)[name]
                    raise diagnose(getattr(out, name), mistakes, fallback)
        ok(verified)

    # The derivatives against central differences of the student's own α_t and β_t (float64).
    t = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)
    h = 1e-6
    plus, minus, out = _call_scheduler(sched, t + h), _call_scheduler(sched, t - h), _call_scheduler(sched, t)
    for name, fd, d in (("alpha", (plus.alpha_t - minus.alpha_t) / (2 * h), out.d_alpha_t),
                        ("beta", (plus.beta_t - minus.beta_t) / (2 * h), out.d_beta_t)):
        if not torch.allclose(d, fd, rtol=1e-5, atol=1e-6):
            raise CheckFailed(f"d_{name}_t disagrees with the rate of change of your {name}_t in float64: finite "
                              f"differences give {rounded(fd, 3)}, your derivative {rounded(d, 3)}. Compute "
                              "everything from t (no float32 constants).")
    ok("the derivatives agree with central finite differences of your α_t and β_t (float64)")

    try:
        validate_scheduler(sched)
    except (TypeError, ValueError) as err:
        raise CheckFailed(str(err)) from None
    ok("the schedule starts at noise (α_0 = 0, β_0 = 1) and ends at data (α_1 = 1, β_1 = 0)")


# --- exercises 2 and 3: the conditional vector field and score -----------------------------------

# Three schedules (name, class), the square root first: for it the common mistakes give distinct results,
# while for the linear schedule some coincide (there dα/dt = 1 and (z − x)/(1 − t) is the right answer).
_SCHEDULES: tuple[tuple[str, Callable[[], Scheduler]], ...] = (
    ("square-root", SqrtScheduler), ("cosine", CosineScheduler), ("linear (CondOT)", CondOTScheduler))


def _field_inputs(seed: int):
    """``(x, z, t)`` for every state shape, t of shape (batch,) in [0.1, 0.9], then one 0-dim t."""
    gen = torch.Generator().manual_seed(seed)
    for shape in SHAPES:
        x = torch.randn(shape, generator=gen)
        z = 2 * torch.randn(shape, generator=gen)
        yield x, z, 0.1 + 0.8 * torch.rand(shape[0], generator=gen)
    yield x, z, torch.tensor(0.6)


_TIME_HINT = ("t holds one time per sample: reshape it to broadcast against x before using it, e.g. "
              "s = scheduler(ll.expand_time(t, x)), whose fields then have shape (batch, 1, ..., 1) (or stay "
              "0-dim for a 0-dim t).")


def _call_field(fn: Callable, sched: Scheduler, x: Tensor, z: Tensor, t: Tensor, what: str) -> Tensor:
    out = call_guarded(lambda: fn(sched, x, z, t), {"x": x, "z": z}, "your function",
                       "Build new tensors instead (`x = x - ...`, not `x -= ...`).",
                       lambda err: f"a shape error for x of shape {tuple(x.shape)} and t of shape "
                                   f"{tuple(t.shape)}. {_TIME_HINT}")
    return require_state_shaped(out, x, "your function", f"{what[0].upper()}{what[1:]} must have x's shape (t has "
                                f"shape {tuple(t.shape)}): {_TIME_HINT} Keep every term elementwise, with no sum or "
                                "slice over an axis.")


# The named mistakes of the two formula exercises: hint → what that wrong formula returns, from the
# schedule's values s at t (broadcast against x), the states x and the data points z.


def _field_mistakes(s: SchedulerOutput, x: Tensor, z: Tensor, t: Tensor) -> dict[str, Tensor]:
    a, b, da, db = s.alpha_t, s.beta_t, s.d_alpha_t, s.d_beta_t
    return {
        "the second term has the wrong sign: u = α̇ z + (β̇/β)(x − α z). (β̇ < 0, so that term pulls "
        "x towards α z.)": da * z - db / b * (x - a * z),
        "the first term is α̇·z, not α̇·x: the data point z is what α_t multiplies.":
            da * x + db / b * (x - a * z),
        "inside the bracket subtract α_t·z, not z: x − α_t z is β_t times the noise x_0.":
            da * z + db / b * (x - z),
        "the bracket is multiplied by β̇_t/β_t, not by β_t.": da * z + b * (x - a * z),
        "the bracket must be divided by β_t: u = α̇ z + (β̇/β)(x − α z).": da * z + db * (x - a * z),
        "divide by β_t once, not by β_t²: u = α̇ z + (β̇/β)(x − α z).": da * z + db / b**2 * (x - a * z),
        "the ratio is upside down: β̇_t/β_t, not β_t/β̇_t.": da * z + b / db * (x - a * z),
        "the first term uses α_t; it must use its derivative α̇_t (d_alpha_t).": a * z + db / b * (x - a * z),
        "the term α̇_t·z is missing: u = α̇ z + (β̇/β)(x − α z). The bracket alone is the noise's "
        "share of the velocity; the data's share α̇_t z moves x towards z.": db / b * (x - a * z),
        "this is a point of the path, α_t z + β_t x; the exercise asks for its velocity.": a * z + b * x,
        "this is α̇ z + β̇ x_0 with x in place of x_0. Express x_0 through x first: "
        "x_0 = (x − α_t z)/β_t.": da * z + db * x,
        "(z − x)/(1 − t) is the field of the linear schedule only; use the scheduler's α_t, β_t and "
        "their derivatives.": (z - x) / (1 - expand_time(t, x)),
    }


def _score_mistakes(s: SchedulerOutput, x: Tensor, z: Tensor, t: Tensor) -> dict[str, Tensor]:
    a, b = s.alpha_t, s.beta_t
    return {
        "the sign is wrong: the score points from x towards the mean α_t z, −(x − α_t z)/β_t².":
            (x - a * z) / b**2,
        "divide by the variance β_t², not by the standard deviation β_t.": -(x - a * z) / b,
        "(x − α z)/β_t is the noise x_0 that produced x, not the score; the score is "
        "−x_0/β_t = −(x − α_t z)/β_t².": (x - a * z) / b,
        "the mean of p_t(·|z) is α_t z, not z: −(x − α_t z)/β_t².": -(x - z) / b**2,
        "subtract the mean: −(x − α_t z)/β_t², not −(x + α_t z)/β_t².": -(x + a * z) / b**2,
        "the division by the variance β_t² is missing: −(x − α_t z)/β_t².": -(x - a * z),
        "the ½ of the Gaussian's exponent cancels against the 2 of the derivative of the square: "
        "−(x − α_t z)/β_t², no factor ½.": -(x - a * z) / (2 * b**2),
        "this is the conditional vector field, not the score: the score is −(x − α_t z)/β_t².":
            s.d_alpha_t * z + s.d_beta_t / b * (x - a * z),
    }


# What both formula checkers report last: the inputs they tried
_SHAPES_VERIFIED = f"works for state shapes {shapes_text(SHAPES)}, with t of shape (batch,) or 0-dim"


def _match_every_schedule(ok: Ok, fn: Callable, exercise: str, seed: int, what: str, reference: Callable,
                          mistakes: Callable[..., dict[str, Tensor]], yours: str, formula: str) -> None:
    """What both formula checkers do first: ``fn`` must be a function (the answer to ``exercise``) that
    matches ``reference(path, x, z, t)`` on every schedule and input of :func:`_field_inputs`; the first
    mismatch is diagnosed with the ``mistakes`` table, and each schedule that matches is reported."""
    require_function(fn, f"check_{exercise}", f"my_{exercise}")
    for name, make in _SCHEDULES:
        path = AffinePath(make())
        for x, z, t in _field_inputs(seed):
            out = _call_field(fn, path.scheduler, x, z, t, what)
            ref = reference(path, x, z, t)
            if not close(out, ref):
                raise diagnose(out, mistakes(path.scheduler(expand_time(t, x)), x, z, t),
                               f"with the {name} schedule, for x of shape {tuple(x.shape)} and t of shape "
                               f"{tuple(t.shape)}, {yours} differs from {formula} by up to "
                               f"{float((out - ref).abs().max()):.3g}.")
        ok(f"matches {formula} for the {name} schedule")


@checker("conditional vector field")
def check_conditional_vector_field(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(scheduler, x, z, t)`` against
    :math:`u_t(x \mid z) = \dot\alpha_t z + \frac{\dot\beta_t}{\beta_t}(x - \alpha_t z)`."""
    _match_every_schedule(ok, fn, "conditional_vector_field", 4, "the vector field",
                          AffinePath.conditional_vector_field, _field_mistakes, "your field",
                          "α̇_t z + (β̇_t/β_t)(x − α_t z)")
    ok(_SHAPES_VERIFIED)
    ok("returns a new tensor of x's shape and leaves x and z untouched")


@checker("conditional score")
def check_conditional_score(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(scheduler, x, z, t)`` against
    :math:`\nabla_x \log \mathcal N(x; \alpha_t z, \beta_t^2 I) = -(x - \alpha_t z)/\beta_t^2`."""
    _match_every_schedule(ok, fn, "conditional_score", 5, "the score", AffinePath.conditional_score,
                          _score_mistakes, "your score", "−(x − α_t z)/β_t²")
    # the same numbers as the autograd score of the Gaussian N(α z, β² I)
    sched = SqrtScheduler()
    x, z = torch.randn(8, 2, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64)
    t = torch.tensor(0.45, dtype=torch.float64)
    s = sched(t)
    grad = torch.func.grad(lambda v: Normal(s.alpha_t * z, s.beta_t).log_prob(v).sum())(x)
    out = _call_field(fn, sched, x, z.expand(8, 2), t, "the score")
    # float64 inputs: 1e-6 still rejects any wrong formula, and accepts a schedule evaluated at a
    # float32 copy of t (a rounding of 1e-7, not a mistake)
    if not close(out, grad, tol=1e-6):
        raise CheckFailed("in float64 your score differs from the autograd gradient of log N(x; α_t z, β_t² I) "
                          f"by {float((out - grad).abs().max()):.3g}: compute it from the scheduler's tensors only.")
    ok("equals the autograd gradient of log N(x; α_t z, β_t² I) (float64)")
    ok(_SHAPES_VERIFIED)


__all__ = ["check_sqrt_scheduler", "check_conditional_vector_field", "check_conditional_score"]
