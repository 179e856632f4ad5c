r"""Likelihoods of a flow: the instantaneous change of variables (Lab 10).

A flow :math:`\dot X_t = u_t(X_t)` carries the noise :math:`p_0 = \mathcal N(0, I)` to :math:`p_1`.
Along one trajectory the log-density changes by minus the divergence of the field (the
continuity equation :math:`\partial_t p_t = -\nabla\cdot(p_t u_t)` read in the moving frame):

.. math:: \frac{d}{dt}\log p_t(X_t) = -\nabla\cdot u_t(X_t)
          = -\operatorname{tr}\frac{\partial u_t}{\partial x}(X_t),
          \qquad
          \log p_1(X_1) = \log p_0(X_0) - \int_0^1 \nabla\cdot u_t(X_t)\,dt .

So the exact likelihood of a data point :math:`x` is one ODE solve *backwards*: from
:math:`X_1 = x` to :math:`X_0`, accumulating the divergence on the way, then adding
:math:`\log\mathcal N(X_0; 0, I)`. This is the maximum-likelihood view of a flow: the
continuous-time version of the change of variables :math:`\log p_X(x) = \log p_Z(f^{-1}(x)) + \log|\det Df^{-1}(x)|`.

Two ways to get the divergence:

* :func:`divergence` — exact, one backward pass per coordinate: :math:`d` passes. Fine for the
  course's 2-D fields.
* :func:`hutchinson_divergence` — Hutchinson's trace estimator
  :math:`\nabla\cdot u = \mathbb E_v[v^\top J v]` for probes with :math:`\mathbb E[vv^\top] = I`:
  one vector–Jacobian product per probe, whatever :math:`d`, unbiased but noisy.

Both evaluate ``field`` on a batch and differentiate the batch sum, so they assume the field treats
samples independently (no batch normalisation across samples), as every field of this course does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._validation import validate_batch, validate_positive_int

#: A time-dependent field ``field(x, t)``: ``x`` of shape ``(batch, d)``, ``t`` a 0-dim tensor → ``(batch, d)``.
Field = Callable[[Tensor, Tensor], Tensor]

#: The probe laws of :func:`hutchinson_divergence`.
PROBES = ("rademacher", "gaussian")

#: The ODE methods of :func:`log_likelihood` and their orders (global error O(h^order)).
METHOD_ORDERS = {"euler": 1, "heun": 2}


def _as_time(t: Tensor | float, x: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim not in (0, 1) or (t.ndim == 1 and t.shape != (x.shape[0],)):
        raise ValueError(f"t must be a scalar or have shape (batch,) = ({x.shape[0]},), got {tuple(t.shape)}.")
    return t


def _evaluate(field: Field, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(x_with_grad, u)``: the field at a detached copy of ``x`` that autograd can differentiate."""
    if not callable(field):
        raise TypeError(f"field must be callable as field(x, t), got {type(field).__name__}.")
    xg = x.detach().requires_grad_(True)
    u = field(xg, t)
    if not isinstance(u, Tensor) or u.shape != x.shape:
        got = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
        raise ValueError(f"field(x, t) must return a tensor of x's shape {tuple(x.shape)}, got {got}.")
    return xg, u


def _vjp(u: Tensor, xg: Tensor, v: Tensor, retain: bool) -> Tensor:
    r""":math:`v^\top \partial u/\partial x` per sample; zeros where ``u`` does not depend on ``x`` at all."""
    if not u.requires_grad:  # e.g. a constant field: its Jacobian is zero
        return torch.zeros_like(xg)
    (g,) = torch.autograd.grad(u, xg, grad_outputs=v, retain_graph=retain, allow_unused=True)
    return torch.zeros_like(xg) if g is None else g


def _exact(u: Tensor, xg: Tensor) -> Tensor:
    d = xg.shape[1]
    div = torch.zeros(xg.shape[0], dtype=xg.dtype, device=xg.device)
    for i in range(d):
        e = torch.zeros_like(u)
        e[:, i] = 1
        div = div + _vjp(u, xg, e, retain=i < d - 1)[:, i]
    return div


def _probes(shape: torch.Size, probe: str, generator: torch.Generator | None, like: Tensor) -> Tensor:
    # Drawn on the CPU with the (CPU) generator, then moved: the same numbers on every device.
    if probe == "rademacher":
        v = torch.randint(0, 2, shape, generator=generator).to(like.dtype) * 2 - 1
    else:
        v = torch.randn(shape, generator=generator, dtype=like.dtype)
    return v.to(like.device)


def _hutchinson(u: Tensor, xg: Tensor, n_probes: int, probe: str, generator: torch.Generator | None) -> Tensor:
    total = torch.zeros(xg.shape[0], dtype=xg.dtype, device=xg.device)
    for k in range(n_probes):
        v = _probes(xg.shape, probe, generator, xg)
        total = total + (_vjp(u, xg, v, retain=k < n_probes - 1) * v).sum(1)
    return total / n_probes


def _check_probe_args(n_probes: int, probe: str) -> None:
    validate_positive_int(n_probes, "n_probes")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}.")


def _check_finite(value: Tensor, what: str) -> None:
    if not bool(torch.isfinite(value).all()):
        raise FloatingPointError(f"{what} is NaN or infinite: the field (or its Jacobian) is not finite there.")


def divergence(field: Field, x: Tensor, t: Tensor | float) -> Tensor:
    r"""The exact divergence :math:`\nabla\cdot u_t(x) = \sum_i \partial u_i/\partial x_i` by autograd.

    One backward pass per coordinate (the :math:`i`-th pass gives row :math:`i` of the Jacobian
    summed over the batch, whose :math:`i`-th entry per sample is :math:`\partial u_i/\partial x_i`):
    cost :math:`d` times a gradient, so meant for small :math:`d`. Works inside ``torch.no_grad()``;
    the result is detached and no graph is kept.

    Args:
        field: ``field(x, t) -> u``, shapes ``(batch, d) -> (batch, d)``; samples treated independently.
        x: the points, shape ``(batch, d)``.
        t: the time, a number, a 0-dim tensor or shape ``(batch,)``.

    Returns:
        Shape ``(batch,)``: the divergence at each point.

    Raises:
        ValueError: if ``x`` is not ``(batch, d)`` or the field returns another shape.
        FloatingPointError: if the divergence is NaN or infinite.
    """
    x = validate_batch(x, "x", ndim=2)
    t = _as_time(t, x)
    with torch.enable_grad():
        xg, u = _evaluate(field, x, t)
        div = _exact(u, xg)
    _check_finite(div, "the divergence")
    return div.detach()


def hutchinson_divergence(field: Field, x: Tensor, t: Tensor | float, n_probes: int = 1,
                          generator: torch.Generator | None = None, probe: str = "rademacher") -> Tensor:
    r"""Hutchinson's unbiased estimate of :math:`\nabla\cdot u_t(x) = \operatorname{tr} J`,
    :math:`J = \partial u/\partial x`.

    For a random probe :math:`v` with :math:`\mathbb E[vv^\top] = I`,
    :math:`\mathbb E[v^\top J v] = \operatorname{tr}(J\,\mathbb E[vv^\top]) = \operatorname{tr}J`; one
    vector–Jacobian product :math:`v^\top J` per probe, whatever :math:`d`. The estimate is the mean
    over ``n_probes`` independent probes (independent across samples too). With
    :math:`S = (J + J^\top)/2` (only the symmetric part counts, :math:`v^\top J v = v^\top S v`), the
    variance of one probe's estimate is

    * Rademacher (:math:`v_i = \pm 1`): :math:`2\sum_{i \ne j} S_{ij}^2 = 2(\|S\|_F^2 - \sum_i S_{ii}^2)`
      — zero for a diagonal Jacobian, the least of all probes with :math:`\mathbb E[vv^\top] = I`;
    * Gaussian (:math:`v \sim \mathcal N(0, I)`): :math:`2\|S\|_F^2`.

    Args:
        field: ``field(x, t) -> u``, shapes ``(batch, d) -> (batch, d)``.
        x: the points, shape ``(batch, d)``.
        t: the time, a number, a 0-dim tensor or shape ``(batch,)``.
        n_probes: probes per sample; the variance falls as ``1 / n_probes``.
        generator: a CPU ``torch.Generator`` for the probes (reproducible estimates).
        probe: ``"rademacher"`` (default) or ``"gaussian"``.

    Returns:
        Shape ``(batch,)``: the estimate at each point (detached).
    """
    x = validate_batch(x, "x", ndim=2)
    t = _as_time(t, x)
    _check_probe_args(n_probes, probe)
    with torch.enable_grad():
        xg, u = _evaluate(field, x, t)
        div = _hutchinson(u, xg, n_probes, probe, generator)
    _check_finite(div, "the divergence estimate")
    return div.detach()


def _field_and_divergence(field: Field, x: Tensor, t: Tensor, how: str, n_probes: int, probe: str,
                          generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """``u_t(x)`` and its divergence from one evaluation of the field, both detached."""
    with torch.enable_grad():
        xg, u = _evaluate(field, x, t)
        div = _exact(u, xg) if how == "exact" else _hutchinson(u, xg, n_probes, probe, generator)
    return u.detach(), div.detach()


def standard_normal_log_density(x: Tensor) -> Tensor:
    r""":math:`\log\mathcal N(x; 0, I) = -\tfrac12\|x\|^2 - \tfrac d2\log 2\pi`, the noise's log-density.

    ``x`` of shape ``(batch, d)`` → shape ``(batch,)``."""
    x = validate_batch(x, "x", ndim=2)
    return -0.5 * (x**2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)


def log_likelihood(field: Field, x: Tensor, n_steps: int = 100, method: str = "heun", divergence: str = "exact",
                   n_probes: int = 1, generator: torch.Generator | None = None, probe: str = "rademacher",
                   t1: float = 1.0) -> Tensor:
    r"""The model's log-density :math:`\log p_{t_1}(x)` by the instantaneous change of variables.

    Integrates the augmented ODE backwards from :math:`t_1` (data; 1 by default) to 0 (noise),
    on a uniform grid of ``n_steps`` steps :math:`h = t_1/n`:

    .. math:: \frac{d}{dt}X_t = u_t(X_t), \quad \frac{d}{dt}A_t = -\nabla\cdot u_t(X_t), \qquad
              X_{t_1} = x,\ A_{t_1} = 0,

    so that :math:`A_0 = \int_0^{t_1}\nabla\cdot u_t(X_t)\,dt` and
    :math:`\log p_{t_1}(x) = \log\mathcal N(X_0; 0, I) - A_0`. A backward Heun step from :math:`t`
    to :math:`t - h` (:math:`k` the field, :math:`\delta` its divergence) reads

    .. math:: \tilde x = x - h\,k(x, t), \quad x' = x - \tfrac h2\,[k(x, t) + k(\tilde x, t - h)], \quad
              A' = A + \tfrac h2\,[\delta(x, t) + \delta(\tilde x, t - h)];

    Euler keeps the first slope only. Heun's error falls like :math:`h^2`, Euler's like :math:`h`.

    With ``divergence="hutchinson"`` the trajectory :math:`X_t` is the same as with the exact
    divergence (the probes enter :math:`A` only), and :math:`A` is linear in the divergence values,
    so the estimate is an unbiased estimate of the exact-divergence result at the same ``n_steps``
    (not of the true :math:`\log p` — that bias is the ODE solver's). Its exponential is *not*
    an unbiased estimate of the density.

    Works under ``torch.no_grad()`` (gradients are switched on inside, for the divergence
    only); every step's graph is freed before the next, and the result is detached.

    Args:
        field: ``field(x, t) -> u_t(x)``, shapes ``(batch, d) -> (batch, d)``, ``t`` a 0-dim tensor;
            it must carry :math:`\mathcal N(0, I)` at :math:`t = 0` to the model at :math:`t = 1`.
        x: data points, shape ``(batch, d)``. Use float64 for accuracy below ~1e-5.
        n_steps: ODE steps.
        method: ``"heun"`` (default) or ``"euler"``.
        divergence: ``"exact"`` (:func:`divergence`, :math:`d` backward passes per evaluation) or
            ``"hutchinson"`` (:func:`hutchinson_divergence`, ``n_probes`` passes).
        n_probes, generator, probe: the Hutchinson probes (ignored when exact).
        t1: the time of the data, in ``(0, 1]``: e.g. ``1 - 1e-4`` to stop short of a singular end.

    Returns:
        Shape ``(batch,)``: :math:`\log p_{t_1}(x)` per sample.

    Raises:
        ValueError: for a bad ``method``, ``divergence``, ``probe``, ``t1`` or shape.
        FloatingPointError: if the state or the accumulated divergence turns NaN or infinite,
            naming the step.
    """
    x = validate_batch(x, "x", ndim=2)
    validate_positive_int(n_steps, "n_steps")
    if method not in METHOD_ORDERS:
        raise ValueError(f"method must be one of {tuple(METHOD_ORDERS)}, got {method!r}.")
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}.")
    _check_probe_args(n_probes, probe)
    if isinstance(t1, bool) or not isinstance(t1, (int, float)) or not 0 < t1 <= 1:
        raise ValueError(f"t1 must be a number in (0, 1] (the time of the data), got {t1!r}.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values.")

    def slope(y: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return _field_and_divergence(field, y, t, divergence, n_probes, probe, generator)

    times = torch.linspace(float(t1), 0.0, n_steps + 1, dtype=x.dtype, device=x.device)
    h = float(t1) / n_steps
    y = x.detach()
    acc = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(n_steps):
        k1, d1 = slope(y, times[i])
        if method == "euler":
            y, acc = y - h * k1, acc + h * d1
        else:
            k2, d2 = slope(y - h * k1, times[i + 1])
            y, acc = y - 0.5 * h * (k1 + k2), acc + 0.5 * h * (d1 + d2)
        if not (bool(torch.isfinite(y).all()) and bool(torch.isfinite(acc).all())):
            raise FloatingPointError(
                f"the state or the log-determinant became NaN or infinite at step {i} "
                f"(t = {float(times[i]):.4g} → {float(times[i + 1]):.4g}). Is the field finite near t = {t1}? "
                "Try more steps, or stop short of a singular end with t1 < 1.")
    return standard_normal_log_density(y) - acc
