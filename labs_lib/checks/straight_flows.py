r"""Checkers for notebook 10: the minibatch optimal-transport pairing, Hutchinson's divergence
estimator and the log-likelihood integral, and the Poisson field of a set of charges.

The references are the library's (the policy is stated in :mod:`labs_lib.checks`):
:func:`labs_lib.coupling.ot_coupling`, :func:`labs_lib.likelihood.log_likelihood` (Euler, exact
divergence) and :func:`labs_lib.poisson.poisson_field`. Hutchinson's estimator is random: it is
compared with the *analytic* divergence of a stand-in field whose Jacobian is known in closed
form, exactly where Rademacher probes make it exact (a diagonal Jacobian), statistically elsewhere
(mean and variance over thousands of independent probes, against the closed forms).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..coupling import ot_coupling
from ..likelihood import divergence, log_likelihood, standard_normal_log_density
from ..poisson import poisson_field
from ._framework import (CheckFailed, Ok, call_guarded, checker, close, diagnose, on_probe_device, require_device_safe,
                         require_function, require_state_shaped, require_tensor, rounded, shapes_text)

# --- exercise 1: the minibatch optimal-transport pairing -------------------------------------------

# Batches of points in the plane, in 3-D and images; (1, 2) a batch of one, (7, 2) odd.
OT_SHAPES: tuple[tuple[int, ...], ...] = ((8, 2), (7, 2), (6, 3), (5, 1, 2, 2), (1, 2))


def _ot_mistakes(x_0: Tensor, x_1: Tensor) -> dict[str, Tensor]:
    """The named mistakes of the pairing exercise: hint → the reordered x_1 that wrong code returns."""
    from scipy.optimize import linear_sum_assignment

    a, b = x_0.flatten(1).double(), x_1.flatten(1).double()
    dist = torch.cdist(a, b)
    _, unsquared = linear_sum_assignment(dist.numpy())
    _, worst = linear_sum_assignment(dist.pow(2).numpy(), maximize=True)
    cols = torch.as_tensor(linear_sum_assignment(dist.pow(2).numpy())[1])
    by_norm = torch.empty_like(cols)
    by_norm[a.norm(dim=1).argsort()] = b.norm(dim=1).argsort()
    return {
        "x_1 came back in its own order: that is the independent coupling (pair i is whatever was drawn i-th). "
        "Reorder x_1 by the assignment that minimises the total squared distance.": x_1,
        "the pairs were matched by the order of their norms (smallest noise with smallest data): that keeps "
        "lengths close but ignores directions. Solve the assignment on the full cost matrix "
        "C[i, j] = ||x_0[i] - x_1[j]||².": x_1[by_norm],
        "the assignment minimises the sum of distances, not of squared distances: square the cost matrix, "
        "C = torch.cdist(x_0, x_1) ** 2.": x_1[torch.as_tensor(unsquared)],
        "this pairing maximises the total squared distance (maximize=True, or a negated cost): minimise it.":
            x_1[torch.as_tensor(worst)],
        "the permutation was applied the wrong way round: linear_sum_assignment returns (rows, cols) with "
        "x_0[rows[k]] matched to x_1[cols[k]], so the answer is x_1[cols], not x_1[argsort(cols)].":
            x_1[cols.argsort()],
    }


@checker("the minibatch optimal-transport pairing")
def check_ot_pairing(fn: Callable, ok: Ok) -> None:
    """Check ``fn(x_0, x_1)``: ``x_1`` reordered so that the pairs ``(x_0[i], out[i])`` have the least total
    squared distance, for state shapes :data:`OT_SHAPES` (images flattened for the distance)."""
    require_function(fn, "check_ot_pairing", "my_ot_pairing")
    gen = torch.Generator().manual_seed(0)
    for shape in OT_SHAPES:
        x_0 = torch.randn(shape, generator=gen)
        x_1 = 1.5 + torch.randn(shape, generator=gen)
        out = call_guarded(lambda x_0=x_0, x_1=x_1: fn(x_0, x_1), {"x_0": x_0, "x_1": x_1}, "your pairing",
                           "Index x_1 with the permutation instead (x_1[cols]), which returns a new tensor.")
        out = require_tensor(out, "your pairing")
        if out.dtype in (torch.int64, torch.int32) and out.shape == (shape[0],):
            raise CheckFailed("your function returned the permutation (indices): return the reordered data "
                              "samples x_1[cols], of x_1's shape.")
        require_state_shaped(out, x_1, "your pairing", "Return x_1 reordered, the same shape. (For images, flatten "
                             "the samples to compute distances, x.flatten(1), but index the original x_1.)")
        # each row of out must be a row of x_1, each row of x_1 used once
        matched = torch.cdist(out.flatten(1).double(), x_1.flatten(1).double()).min(1)
        reordering = bool((matched.values < 1e-6).all()) and len(set(matched.indices.tolist())) == shape[0]
        # the total squared distance of the pairs (x_0[i], y[i]): yours, and that of the best pairing
        cost, best = (float((x_0 - y).double().flatten(1).pow(2).sum()) for y in (out, ot_coupling(x_0, x_1)))
        if not reordering or cost > best * (1 + 1e-6) + 1e-9:
            raise diagnose(out, _ot_mistakes(x_0, x_1),
                           f"for x of shape {shape} your output is not a reordering of x_1: some data samples are "
                           "missing, repeated or changed (each one must be used exactly once: a greedy nearest "
                           "neighbour can pick the same one twice). Solve the assignment with "
                           "scipy.optimize.linear_sum_assignment." if not reordering else
                           f"for x of shape {shape} your pairs have total squared distance {cost:.4f}, "
                           f"but the best pairing has {best:.4f}.")
    probe = on_probe_device(torch.randn(OT_SHAPES[0]), torch.randn(OT_SHAPES[0]))
    require_device_safe(lambda: fn(*probe))
    ok(f"reorders x_1 (nothing lost or repeated) into the pairing of least total squared distance, for state "
       f"shapes {shapes_text(OT_SHAPES)}")
    ok("leaves x_0 and x_1 untouched")


# --- exercise 2a: Hutchinson's divergence estimator ---------------------------------------------------

# A stand-in field with a closed-form Jacobian: u_t(x) = tanh(x Wᵀ + t c), J = diag(1 - u²) W.
_W = torch.tensor([[0.8, -1.1, 0.3], [0.5, 0.4, -0.9], [-0.7, 0.6, 1.2]])
_C = torch.tensor([0.3, -0.2, 0.5])


def _dense_field(x: Tensor, t: Tensor | float) -> Tensor:
    d = x.shape[1]
    t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1)
    return torch.tanh(x @ _W[:d, :d].T.to(x.dtype) + t * _C[:d].to(x.dtype))


def _diagonal_field(x: Tensor, t: Tensor | float) -> Tensor:
    """An elementwise field: its Jacobian is diagonal, its divergence written out in :func:`_diagonal_div`."""
    return x + t * torch.sin(x) * x


def _diagonal_div(x: Tensor, t: float) -> Tensor:
    return (1 + t * (torch.cos(x) * x + torch.sin(x))).sum(1)


def _call_divergence(fn: Callable, field: Callable, x: Tensor, t: float, n_probes: int, gen: torch.Generator) -> Tensor:
    out = call_guarded(lambda: fn(field, x, t, n_probes, gen), {"x": x}, "your estimator",
                       "Differentiate a detached copy instead: x = x.detach().requires_grad_(True).")
    out = require_tensor(out, "your estimator")
    if out.shape != (x.shape[0],):
        raise CheckFailed(f"for x of shape {tuple(x.shape)} your estimator returned shape {tuple(out.shape)}: return "
                          f"one divergence per sample, shape ({x.shape[0]},). Sum vᵀJ·v over the coordinates "
                          "(.sum(1)) and average over the probes.")
    return out.detach()


@checker("Hutchinson's divergence estimator")
def check_hutchinson_divergence(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(field, x, t, n_probes, generator)``, an estimate of :math:`\nabla\cdot u_t(x)` per sample,
    shape ``(batch,)``, the mean of :math:`v^\top J v` over ``n_probes`` Rademacher probes per sample.

    Exact on a field with a diagonal Jacobian (where every Rademacher probe gives the trace); on a field with
    a dense Jacobian, unbiased with the variance :math:`2\sum_{i\ne j}S_{ij}^2` of Rademacher probes
    (:math:`S = (J + J^\top)/2`), measured over 4,000 independent probes; and the same inside ``torch.no_grad()``."""
    require_function(fn, "check_hutchinson_divergence", "my_hutchinson_divergence")
    gen = torch.Generator().manual_seed(0)
    # 1. a diagonal Jacobian: every ±1 probe gives the exact divergence
    for shape, t, k in (((6, 2), 0.3, 1), ((5, 3), 0.8, 3), ((1, 2), 0.5, 2)):
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        out = _call_divergence(fn, _diagonal_field, x, t, k, gen)
        exact = _diagonal_div(x, t)
        if not close(out, exact, 1e-6):
            hints = {
                f"the estimate is the divergence divided by d = {shape[1]}: sum vᵀJ·v over the coordinates, .sum(1), "
                "instead of averaging them, .mean(1).": exact / shape[1],
                f"the estimate is {k} times the divergence: average the probes' estimates (divide by n_probes), "
                "do not add them up.": exact * k,
                "the estimate has the wrong sign: the divergence is +vᵀJv (the gradient of vᵀu, times v).": -exact,
            }
            fallback = (f"for a field whose Jacobian is diagonal (u_i depends on x_i only), Rademacher probes give "
                        f"the exact divergence with every probe, but for x of shape {shape} and {k} probe(s) yours "
                        f"is off (yours {rounded(out, 3)}, the divergence {rounded(exact, 3)}). "
                        + _probe_law_hint(fn, gen))
            raise diagnose(out, hints, fallback)
    ok("exact, as Rademacher probes must be, on a field with a diagonal Jacobian (shapes (6, 2), (5, 3), (1, 2); "
       "1 to 3 probes); sums over coordinates and averages over probes")
    # 2. a dense Jacobian: unbiased, with the Rademacher variance
    x0 = torch.tensor([[0.4, -0.7, 0.2]], dtype=torch.float64)
    n, t = 4000, 0.6
    jac = (1 - _dense_field(x0, t)[0] ** 2)[:, None] * _W.double()  # J = diag(1 - u²) W, written out, not by autograd
    s = (jac + jac.T) / 2
    exact, var = float(torch.diagonal(jac).sum()), float(2 * (s.pow(2).sum() - torch.diagonal(s).pow(2).sum()))
    out = _call_divergence(fn, _dense_field, x0.expand(n, 3).clone(), t, 1, gen)
    mean, spread = float(out.mean()), float(out.var())
    if spread < 1e-12:
        raise CheckFailed("on a field with a dense Jacobian, 4,000 copies of one point got the same estimate: every "
                          "sample must get its own probe (draw v of x's shape, not of shape (d,)).")
    if abs(mean - exact) > 5 * math.sqrt(var / n) + 1e-9:
        raise CheckFailed(f"on a field with a dense Jacobian your estimate is biased: its mean over 4,000 probes is "
                          f"{mean:.4f}, the divergence is {exact:.4f} (standard error {math.sqrt(var / n):.4f}). "
                          "Is vᵀJ multiplied by v before summing over coordinates?")
    if not 0.75 * var < spread < 1.3 * var:
        raise CheckFailed(f"on a field with a dense Jacobian the variance of your single-probe estimates is "
                          f"{spread:.4f}; ±1 probes give 2 Σ_(i≠j) S_ij² = {var:.4f}. Use Rademacher probes.")
    ok(f"unbiased on a field with a dense Jacobian (mean {mean:.3f} of 4,000 probes, divergence {exact:.3f}), "
       f"with the variance of ±1 probes ({spread:.3f}, theory {var:.3f})")
    ok("one fresh probe per sample, x left untouched")
    # 3. inside torch.no_grad(), where the log-likelihood integral and the lab's cells call it
    x = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    try:
        with torch.no_grad():
            out = _call_divergence(fn, _diagonal_field, x, 0.3, 2, gen)
    except RuntimeError as err:
        if "does not require grad" not in str(err):
            raise
        out = None
    if out is None or not close(out, _diagonal_div(x, 0.3), 1e-6):
        raise CheckFailed("your estimator works normally but fails when called inside `with torch.no_grad():`, as "
                          "the log-likelihood integral calls it: there autograd records nothing, so u has no graph "
                          "to differentiate. Compute u and its vector–Jacobian products inside "
                          "`with torch.enable_grad():`.")
    ok("works when called inside torch.no_grad(), as the log-likelihood integral calls it")


def _probe_law_hint(fn: Callable, gen: torch.Generator) -> str:
    """What the mean of many single-probe estimates on the diagonal field says about the probes' law."""
    x = torch.full((4000, 2), 0.7, dtype=torch.float64)
    ratio = float(_call_divergence(fn, _diagonal_field, x, 0.5, 1, gen).mean() / _diagonal_div(x[:1], 0.5))
    if 0.42 < ratio < 0.58:
        return ("On average it is half the divergence: probes of 0s and 1s (torch.randint(0, 2, ...)) have "
                "E[v_i²] = 1/2; make them ±1: 2 * torch.randint(0, 2, ...) - 1.")
    if 0.28 < ratio < 0.4:
        return ("On average it is a third of the divergence: uniform probes (torch.rand * 2 - 1) have E[v_i²] = 1/3; "
                "the estimator needs E[vvᵀ] = I, e.g. ±1 probes.")
    return ("Draw Rademacher probes, v = 2 * torch.randint(0, 2, x.shape, generator=generator) - 1 (as x's dtype), "
            "and return the sum over coordinates of (vᵀJ)·v, vᵀJ from torch.autograd.grad(u, x, grad_outputs=v). "
            "(Gaussian probes are unbiased too, but never exact: use ±1.)")


# --- exercise 2b: the log-likelihood integral ---------------------------------------------------------


def _likelihood_field(x: Tensor, t: Tensor | float) -> Tensor:
    """A time-dependent field with a dense Jacobian, in any dimension up to 3."""
    return _dense_field(x, t) * (1 + torch.as_tensor(t, dtype=x.dtype)) - 0.5 * x


def _likelihood_mistakes(x: Tensor, n: int) -> dict[str, Tensor]:
    """Hint → what a wrong backward integral returns (Euler, exact divergence)."""
    h = 1.0 / n

    def run(times: list[float], dx_sign: float = -1.0, d_sign: float = 1.0, scale: float = 1.0,
            div_after: bool = False, prior_at_x: bool = False, constant: bool = True) -> Tensor:
        y, acc = x.clone(), torch.zeros(x.shape[0], dtype=x.dtype)
        for t in times:
            y_new = y + dx_sign * h * _likelihood_field(y, t)
            acc = acc + scale * h * divergence(_likelihood_field, y_new if div_after else y, t)
            y = y_new
        start = x if prior_at_x else y
        prior = standard_normal_log_density(start) if constant else -0.5 * start.pow(2).sum(1)
        return prior - d_sign * acc

    back = [1 - i * h for i in range(n)]
    return {
        "the divergence was added: log p_1(x) = log p_0(X_0) − ∫ div u dt (the density rises where the flow "
        "converges, div < 0).": run(back, d_sign=-1.0),
        "the integral ran forward from t = 0: the data point is X_1 = x, so start at t = 1 and step back to 0, "
        "t = 1 − i·h.": run([i * h for i in range(n)]),
        "the state moved forward, y + h·u: going back in time, y ← y − h·u_t(y).": run(back, dx_sign=1.0),
        "the divergence was taken after the step: Euler uses the slope and the divergence at the same point, "
        "before moving it.": run(back, div_after=True),
        "the step size h is missing from the divergence term: accumulate h · div u_t(y).": run(back, scale=n),
        "the noise's log-density was taken at x: take it where the backward flow ends, log N(X_0; 0, I).":
            run(back, prior_at_x=True),
        "the Gaussian's normalising constant −(d/2) log 2π is missing: use ll.standard_normal_log_density(y).":
            run(back, constant=False),
    }


@checker("the log-likelihood integral")
def check_log_likelihood(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(field, x, n_steps, divergence_fn)``: Euler backwards from :math:`t = 1` to 0 on ``n_steps``
    uniform steps, :math:`\log p_1(x) = \log\mathcal N(X_0; 0, I) - \int_0^1\nabla\cdot u_t(X_t)\,dt`, against
    :func:`labs_lib.likelihood.log_likelihood` (``method="euler"``, exact divergence)."""
    require_function(fn, "check_log_likelihood", "my_log_likelihood")
    gen = torch.Generator().manual_seed(1)
    cases = (((5, 2), 10), ((4, 3), 7), ((1, 2), 3))
    for shape, n in cases:
        x = 1.5 * torch.randn(shape, generator=gen, dtype=torch.float64)
        out = call_guarded(lambda x=x, n=n: fn(_likelihood_field, x, n, divergence), {"x": x}, "your log-likelihood",
                           "Start from a copy, y = x.clone(), and build new tensors (y = y - h * u).")
        out = require_tensor(out, "your log-likelihood").detach()
        if out.shape != (shape[0],):
            raise CheckFailed(f"for x of shape {shape} your log-likelihood has shape {tuple(out.shape)}: return one "
                              f"log-density per sample, shape ({shape[0]},).")
        ref = log_likelihood(_likelihood_field, x, n_steps=n, method="euler")
        if not close(out, ref, 1e-6):
            raise diagnose(out, _likelihood_mistakes(x, n),
                           f"for x of shape {shape} and {n} Euler steps your log-likelihood is {rounded(out, 3)}, the "
                           f"reference {rounded(ref, 3)}.", near=lambda a, b: close(a, b, 1e-6))
    ok(f"matches labs_lib's Euler log-likelihood for x of shapes {', '.join(str(c[0]) for c in cases)} and "
       f"{', '.join(str(c[1]) for c in cases)} steps: backwards from t = 1, divergence subtracted, log N(X_0) added")
    ok("leaves x untouched")


# --- exercise 3: the Poisson field --------------------------------------------------------------------

# (points, charges, D): D = 2, 3, 4 (data in 1, 2, 3 dimensions), so that a hard-wired exponent shows.
POISSON_CASES: tuple[tuple[int, int, int], ...] = ((6, 5, 3), (4, 7, 2), (5, 3, 4), (1, 1, 3))


def _poisson_mistakes(x: Tensor, c: Tensor, right_for: list[int]) -> dict[str, Tensor]:
    """Hint → what a wrong Poisson field returns; ``right_for``: the dimensions D where it was right."""
    d = x.shape[1]
    diff = x[:, None] - c[None]
    r = diff.norm(dim=-1, keepdim=True)

    def mean(power: float) -> Tensor:
        return (diff / r**power).mean(1)

    return {
        # right in an earlier dimension, wrong now: an exponent written as a number
        **{f"your field is right for D = {fixed} but not for D = {d}: the exponent is fixed at {fixed}. Use "
           f"D = x.shape[1], ||x − c_i||^D.": mean(fixed) for fixed in right_for},
        "the field points towards the charges: use x − c_i, not c_i − x (like charges repel: field lines leave "
        "the data).": -mean(d),
        f"the charges' fields were summed, not averaged: divide by the number of charges n ({c.shape[0]} here) "
        "with .mean over the charges, so that the field does not grow with the data set.": mean(d) * c.shape[0],
        f"the exponent is D + 1 = {d + 1}: in D dimensions a charge's field falls like r^-(D-1), so divide x − c_i "
        f"by ||x − c_i||^D, D = x.shape[1] = {d} (the data's dimension plus one).": mean(d + 1),
        f"the exponent is D − 1 = {d - 1}: that is the fall-off of the field's size, but x − c_i has length r "
        f"already; divide by ||x − c_i||^D, D = x.shape[1] = {d}.": mean(d - 1),
        "each charge contributes a unit vector: divide x − c_i by ||x − c_i||^D, so that near charges count more "
        "than far ones.": mean(1),
    }


@checker("the Poisson field")
def check_poisson_field(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(x, charges)``: :math:`\frac1n\sum_i (x - c_i)/\|x - c_i\|^D` for points ``(batch, D)`` and
    charges ``(n, D)``, D = 2, 3 and 4, against :func:`labs_lib.poisson.poisson_field`."""
    require_function(fn, "check_poisson_field", "my_poisson_field")
    gen = torch.Generator().manual_seed(2)
    right_for: list[int] = []
    for b, n, d in POISSON_CASES:
        x = 2 * torch.randn(b, d, generator=gen, dtype=torch.float64)
        c = torch.randn(n, d, generator=gen, dtype=torch.float64)
        out = call_guarded(lambda x=x, c=c: fn(x, c), {"x": x, "charges": c}, "your field",
                           "Build new tensors (x - c) instead of changing x or the charges.",
                           lambda err, b=b, n=n, d=d:
                               f"a shape mismatch for x of shape {(b, d)} and charges {(n, d)} ({err}). "
                               "Pair every point with every charge: x[:, None, :] - charges[None, :, :] has "
                               "shape (batch, n, D).")
        out = require_state_shaped(out, x, "your field", f"Return one D-vector per point, shape {(b, d)}: average "
                                   "over the charges' axis.")
        ref = poisson_field(x, c)
        if not close(out, ref, 1e-6):
            raise diagnose(out, _poisson_mistakes(x, c, right_for),
                           f"for x of shape {(b, d)} and {n} charges your field is off: first row "
                           f"{rounded(out[0])}, expected {rounded(ref[0])}.")
        right_for.append(d)
    probe = on_probe_device(torch.randn(3, 3), torch.randn(4, 3))
    require_device_safe(lambda: fn(*probe))
    ok(f"matches (1/n) Σ_i (x − c_i)/||x − c_i||^D for (points, charges, D) = "
       f"{', '.join(str(case) for case in POISSON_CASES)}")
    ok("the exponent follows the dimension D, the charges are averaged, x and the charges are untouched")
