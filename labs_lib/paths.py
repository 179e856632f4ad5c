r"""Probability paths: how noise turns into data, one time slice at a time.

A **conditional** path :math:`p_t(\cdot \mid z)` runs from the noise distribution at
:math:`t = 0` to a point mass at the data point :math:`z` at :math:`t = 1`. The **affine**
paths of this course interpolate a source sample :math:`x_0` and a data sample :math:`x_1 = z`:

.. math:: x_t = \alpha_t\,x_1 + \beta_t\,x_0, \qquad \alpha_0 = \beta_1 = 0,\ \alpha_1 = \beta_0 = 1.

With :math:`x_0 \sim \mathcal N(0, I)` this is the Gaussian path
:math:`p_t(x \mid z) = \mathcal N(\alpha_t z, \beta_t^2 I)`; with any other source it is the
interpolation between two arbitrary distributions. Differentiating :math:`x_t` in time gives
the conditional velocity, the regression target of flow matching:

.. math:: \frac{d}{dt}x_t = \dot\alpha_t\,x_1 + \dot\beta_t\,x_0 .

Written as a field of the current position (eliminating :math:`x_0 = (x - \alpha_t z)/\beta_t`),

.. math:: u_t(x \mid z) = \dot\alpha_t z + \frac{\dot\beta_t}{\beta_t}(x - \alpha_t z), \qquad
          \nabla_x \log p_t(x \mid z) = -\frac{x - \alpha_t z}{\beta_t^2}.

**Near t = 1.** :math:`\beta_t \to 0` there, so the last two formulas divide by zero at
:math:`t = 1` (and :math:`\dot\beta_t = -\infty` for :math:`\beta_t = \sqrt{1-t}`). The functions
that need it clamp time to :attr:`AffinePath.t_max` :math:`= 1 - 10^{-4}`, so they stay finite
(large, as the mathematics says) and never return NaN. :meth:`AffinePath.sample` returns the
exact :math:`x_t` on all of :math:`[0, 1]` and takes its velocity at the clamped time.

The design follows Meta's ``flow_matching`` library: a scheduler has one required method that
returns a small dataclass, and a path's ``sample`` returns a :class:`PathSample`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ._validation import as_tensor, validate_batch
from .distributions import GaussianMixture
from .times import expand_time


@dataclass
class SchedulerOutput:
    r"""The schedule at times ``t``: :math:`\alpha_t, \beta_t` and their time derivatives (same shape as ``t``)."""

    alpha_t: Tensor
    beta_t: Tensor
    d_alpha_t: Tensor
    d_beta_t: Tensor


class Scheduler(ABC):
    r"""A noise schedule :math:`(\alpha_t, \beta_t)` with
    :math:`\alpha_0 = 0, \alpha_1 = 1, \beta_0 = 1, \beta_1 = 0`."""

    @abstractmethod
    def __call__(self, t: Tensor) -> SchedulerOutput:
        """Evaluate the schedule and its derivatives at times ``t`` (any shape, values in [0, 1])."""


class CondOTScheduler(Scheduler):
    r"""The linear ("conditional optimal transport") schedule :math:`\alpha_t = t,\ \beta_t = 1 - t`."""

    def __call__(self, t: Tensor) -> SchedulerOutput:
        one = torch.ones_like(t)
        return SchedulerOutput(alpha_t=t, beta_t=1 - t, d_alpha_t=one, d_beta_t=-one)


class SqrtScheduler(Scheduler):
    r""":math:`\alpha_t = t,\ \beta_t = \sqrt{1 - t}`: more noise late in the path (:math:`\dot\beta_1 = -\infty`)."""

    def __call__(self, t: Tensor) -> SchedulerOutput:
        root = torch.sqrt(1 - t)
        return SchedulerOutput(alpha_t=t, beta_t=root, d_alpha_t=torch.ones_like(t), d_beta_t=-0.5 / root)


class CosineScheduler(Scheduler):
    r""":math:`\alpha_t = \sin(\pi t/2),\ \beta_t = \cos(\pi t/2)`: variance preserving,
    :math:`\alpha_t^2 + \beta_t^2 = 1`."""

    def __call__(self, t: Tensor) -> SchedulerOutput:
        a = 0.5 * math.pi * t
        return SchedulerOutput(alpha_t=torch.sin(a), beta_t=torch.cos(a),
                               d_alpha_t=0.5 * math.pi * torch.cos(a), d_beta_t=-0.5 * math.pi * torch.sin(a))


def validate_scheduler(scheduler: Scheduler, atol: float = 1e-6) -> None:
    r"""Raise ``ValueError`` unless :math:`\alpha_0 = 0, \beta_0 = 1, \alpha_1 = 1, \beta_1 = 0`."""
    if not isinstance(scheduler, Scheduler):
        raise TypeError(f"scheduler must be a labs_lib Scheduler, got {type(scheduler).__name__}.")
    t = torch.tensor([0.0, 1.0])
    out = scheduler(t)
    if not isinstance(out, SchedulerOutput):
        raise TypeError(f"a Scheduler must return a SchedulerOutput, got {type(out).__name__}.")
    for name in ("alpha_t", "beta_t", "d_alpha_t", "d_beta_t"):
        value = getattr(out, name)
        if not isinstance(value, Tensor) or value.shape != t.shape:
            got = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(f"{name} must be a tensor of t's shape {tuple(t.shape)} (one value per time), got {got}.")
    got = {"alpha_0": out.alpha_t[0], "beta_0": out.beta_t[0], "alpha_1": out.alpha_t[1], "beta_1": out.beta_t[1]}
    want = {"alpha_0": 0.0, "beta_0": 1.0, "alpha_1": 1.0, "beta_1": 0.0}
    # `not <=` (rather than `>`) so that a NaN counts as wrong
    wrong = [f"{k} = {float(got[k]):.4g} (should be {v})" for k, v in want.items()
             if not abs(float(got[k]) - v) <= atol]
    if wrong:
        raise ValueError("the schedule must start at noise (alpha_0 = 0, beta_0 = 1) and end at data "
                         f"(alpha_1 = 1, beta_1 = 0), but {', '.join(wrong)}.")


@dataclass
class PathSample:
    """A batch drawn from a path.

    Attributes:
        x_t: points on the path, shape ``(batch, ...)``.
        dx_t: their conditional velocity :math:`\\dot\\alpha_t x_1 + \\dot\\beta_t x_0`, same shape.
        x_0: the source samples, same shape.
        x_1: the data samples, same shape.
        t: the times, shape ``(batch,)``.
    """

    x_t: Tensor
    dx_t: Tensor
    x_0: Tensor
    x_1: Tensor
    t: Tensor


def _check_pair(x: Tensor, z: Tensor, t: Tensor, xname: str = "x", zname: str = "z") -> Tensor:
    x = validate_batch(x, xname)
    z = validate_batch(z, zname)
    if x.shape != z.shape:
        raise ValueError(f"{xname} and {zname} must have the same shape, got {tuple(x.shape)} and {tuple(z.shape)}.")
    if x.device != z.device:
        raise ValueError(f"{xname} is on {x.device} but {zname} is on {z.device}.")
    return expand_time(_as_time(t, x), x)


def _as_time(t: object, x: Tensor) -> Tensor:
    """``t`` as a tensor of ``x``'s dtype and device, checked to lie in [0, 1] (NaN rejected)."""
    try:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"t must be a number or a tensor of times, got {type(t).__name__}.") from err
    # A meta tensor (shapes only, used by the checkers to test device handling) has no values to check.
    if t.device.type != "meta" and not bool(((t >= 0) & (t <= 1)).all()):  # NaN fails both comparisons
        raise ValueError(f"t must lie in [0, 1], got values from {float(t.min()):.4g} to {float(t.max()):.4g}.")
    return t


class AffinePath:
    r"""The affine path :math:`x_t = \alpha_t x_1 + \beta_t x_0` of a :class:`Scheduler`.

    With a standard Gaussian source this is the Gaussian conditional path
    :math:`\mathcal N(\alpha_t z, \beta_t^2 I)`; shapes ``(batch, d)`` and image-shaped
    ``(batch, c, h, w)`` work alike.
    """

    #: the latest time the singular formulas are evaluated at (see the module docstring)
    t_max: float = 1 - 1e-4

    def __init__(self, scheduler: Scheduler):
        validate_scheduler(scheduler)
        self.scheduler = scheduler

    def _schedule(self, t: Tensor, clamp: bool) -> SchedulerOutput:
        return self.scheduler(t.clamp(max=self.t_max) if clamp else t)

    def sample(self, x_0: Tensor, x_1: Tensor, t: Tensor) -> PathSample:
        """Points on the path between ``x_0`` (source) and ``x_1`` (data) at times ``t`` (shape ``(batch,)``)."""
        t = as_tensor(t, "t")
        if t.ndim != 1 or t.shape[0] != validate_batch(x_1, "x_1").shape[0]:
            raise ValueError(f"t must have shape (batch,) = ({x_1.shape[0]},), got {tuple(t.shape)}.")
        tt = _check_pair(x_0, x_1, t, "x_0", "x_1")
        s = self._schedule(tt, clamp=False)
        # The derivatives may be infinite at t = 1 (the square-root schedule), so they are taken
        # at the clamped time like every singular formula here; x_t itself is exact.
        ds = self._schedule(tt, clamp=True)
        return PathSample(x_t=s.alpha_t * x_1 + s.beta_t * x_0, dx_t=ds.d_alpha_t * x_1 + ds.d_beta_t * x_0,
                          x_0=x_0, x_1=x_1, t=t)

    def sample_conditional(self, z: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Draw :math:`x \sim \mathcal N(\alpha_t z, \beta_t^2 I)`; ``z`` is ``(batch, ...)``, ``t`` scalar or
        ``(batch,)``."""
        tt = _check_pair(z, z, t, "z", "z")
        s = self._schedule(tt, clamp=False)
        noise = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        return s.alpha_t * z + s.beta_t * noise

    def conditional_vector_field(self, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        r""":math:`u_t(x \mid z) = \dot\alpha_t z + \frac{\dot\beta_t}{\beta_t}(x - \alpha_t z)`, time clamped to
        ``t_max``."""
        s = self._schedule(_check_pair(x, z, t), clamp=True)
        return s.d_alpha_t * z + s.d_beta_t / s.beta_t * (x - s.alpha_t * z)

    def conditional_score(self, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        r""":math:`\nabla_x \log \mathcal N(x; \alpha_t z, \beta_t^2 I) = -(x - \alpha_t z)/\beta_t^2`, time clamped
        to ``t_max``."""
        s = self._schedule(_check_pair(x, z, t), clamp=True)
        return -(x - s.alpha_t * z) / s.beta_t**2

    def velocity_to_score(self, u: Tensor, x: Tensor, t: Tensor) -> Tensor:
        r"""The score of a Gaussian path from its (marginal or conditional) vector field.

        Both are linear in :math:`\mathbb E[z \mid x]`; eliminating it gives
        :math:`\nabla \log p_t(x)
        = \dfrac{\alpha_t u_t(x) - \dot\alpha_t x}{\beta_t^2\dot\alpha_t - \alpha_t\beta_t\dot\beta_t}`
        (time clamped to ``t_max``).
        """
        s = self._schedule(_check_pair(u, x, t, "u", "x"), clamp=True)
        return (s.alpha_t * u - s.d_alpha_t * x) / (s.beta_t**2 * s.d_alpha_t - s.alpha_t * s.beta_t * s.d_beta_t)

    def noise_to_score(self, eps: Tensor, x: Tensor, t: Tensor) -> Tensor:
        r"""The score from a noise prediction ``eps`` at the point ``x``: :math:`x_t = \alpha_t z + \beta_t\varepsilon`
        gives :math:`\nabla\log p_t(x_t \mid z) = -\varepsilon/\beta_t` (time clamped to ``t_max``).

        The same signature as :meth:`velocity_to_score`, ``(prediction, x, t)``; the score does
        not depend on ``x`` beyond the prediction, which must have its shape."""
        s = self._schedule(_check_pair(eps, x, t, "eps", "x"), clamp=True)
        return -eps / s.beta_t

    def score_to_velocity(self, score: Tensor, x: Tensor, t: Tensor) -> Tensor:
        r"""The inverse of :meth:`velocity_to_score`:
        :math:`u_t(x) = \big(\beta_t^2\frac{\dot\alpha_t}{\alpha_t} - \dot\beta_t\beta_t\big)\nabla\log p_t(x)
        + \frac{\dot\alpha_t}{\alpha_t}x`
        (time clamped to ``[10^{-4}, t_max]``: at :math:`t = 0`, :math:`\alpha_t = 0`)."""
        tt = _check_pair(score, x, t, "score", "x").clamp(min=1 - self.t_max)
        s = self._schedule(tt, clamp=True)
        ratio = s.d_alpha_t / s.alpha_t
        return (s.beta_t**2 * ratio - s.d_beta_t * s.beta_t) * score + ratio * x


def _batched_matvec(M: Tensor, v: Tensor) -> Tensor:
    """``M_k v_bk`` for ``M`` of shape ``(K, d, d)`` or ``(batch, K, d, d)`` and ``v`` of shape ``(batch, K, d)``."""
    return torch.einsum("kij,bkj->bki" if M.ndim == 3 else "bkij,bkj->bki", M, v)


class GaussianMixturePath:
    r"""The exact marginal path of a Gaussian path whose data distribution is a Gaussian mixture.

    If :math:`z \sim \sum_k \pi_k \mathcal N(\mu_k, \Sigma_k)` and :math:`x_t = \alpha_t z + \beta_t \varepsilon`,
    then :math:`p_t = \sum_k \pi_k \mathcal N(\alpha_t\mu_k, C_k)` with :math:`C_k = \alpha_t^2\Sigma_k + \beta_t^2 I`.
    The marginal vector field and score are posterior averages of the conditional ones. Per
    component, with :math:`d_k = x - \alpha_t\mu_k`,

    .. math:: \mathbb E[z \mid x, k] = \mu_k + \alpha_t\Sigma_k C_k^{-1} d_k, \qquad
              \mathbb E[\varepsilon \mid x, k] = \beta_t C_k^{-1} d_k,

    weighted by the responsibilities :math:`w_k(x) \propto \pi_k \mathcal N(x; \alpha_t\mu_k, C_k)`:

    .. math:: u_t(x) = \dot\alpha_t\,\mathbb E[z \mid x] + \dot\beta_t\,\mathbb E[\varepsilon \mid x], \qquad
              \nabla\log p_t(x) = -\textstyle\sum_k w_k(x)\, C_k^{-1} d_k .

    Neither formula divides by :math:`\beta_t`, so they hold up to :math:`t = 1` for the CondOT and
    cosine schedules; time is clamped to :attr:`AffinePath.t_max` all the same, for
    :math:`\dot\beta_t` of the square-root schedule.
    """

    def __init__(self, path: AffinePath, data: GaussianMixture):
        if not isinstance(path, AffinePath):
            raise TypeError(f"path must be an AffinePath, got {type(path).__name__}.")
        if not isinstance(data, GaussianMixture):
            raise TypeError(f"data must be a GaussianMixture, got {type(data).__name__}.")
        self.path, self.data = path, data

    def _posterior(self, x: Tensor, t: Tensor):
        x = validate_batch(x, "x", dim=self.data.shape[0])
        t = _as_time(t, x).clamp(max=self.path.t_max)
        s = self.path.scheduler(expand_time(t, x))  # each field (batch, 1) or 0-dim
        a, b = s.alpha_t, s.beta_t
        a3 = a.reshape(-1, 1, 1) if a.ndim else a  # broadcast over (batch, K, d)
        b3 = b.reshape(-1, 1, 1) if b.ndim else b
        mu, cov = self.data.means.to(x), self.data.covs.to(x)
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        # C_k for every batch element: (batch or 1, K, d, d)
        C = (a3.unsqueeze(-1) ** 2) * cov + (b3.unsqueeze(-1) ** 2) * eye
        d = x.unsqueeze(1) - a3 * mu  # (batch, K, d)
        chol = torch.linalg.cholesky(C)
        # C_k^{-1} d_k through the explicit inverse: the K (or batch × K) inverses are tiny, and a
        # broadcast cholesky_solve over the batch costs ~8× more on the CPU.
        Cinv_d = _batched_matvec(torch.cholesky_inverse(chol), d)  # (batch, K, d)
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_w = (torch.log(self.data.weights.to(x)) - 0.5 * log_det - 0.5 * (d * Cinv_d).sum(-1))
        w = torch.softmax(log_w, dim=1).unsqueeze(-1)  # (batch, K, 1)
        return s, w, Cinv_d, a3, b3, mu, cov

    def marginal(self, t: float) -> GaussianMixture:
        r""":math:`p_t` itself, as a :class:`GaussianMixture` (for plots, samples and densities)."""
        t = float(t)
        if not 0 <= t <= 1:
            raise ValueError(f"t must lie in [0, 1], got {t}.")
        s = self.path.scheduler(torch.tensor(min(t, self.path.t_max), dtype=self.data.means.dtype))
        d = self.data.shape[0]
        eye = torch.eye(d, dtype=self.data.means.dtype, device=self.data.means.device)
        return GaussianMixture(s.alpha_t * self.data.means, s.alpha_t**2 * self.data.covs + s.beta_t**2 * eye,
                               self.data.weights)

    def vector_field(self, x: Tensor, t: Tensor) -> Tensor:
        """The exact marginal vector field :math:`u_t(x)`; ``x`` is ``(batch, d)``, ``t`` scalar or ``(batch,)``."""
        s, w, Cinv_d, a3, b3, mu, cov = self._posterior(x, t)
        e_z = (w * (mu + a3 * _batched_matvec(cov, Cinv_d))).sum(1)
        e_eps = (w * b3 * Cinv_d).sum(1)
        return s.d_alpha_t * e_z + s.d_beta_t * e_eps

    def score(self, x: Tensor, t: Tensor) -> Tensor:
        """The exact marginal score :math:`\\nabla \\log p_t(x)`; shapes as in :meth:`vector_field`."""
        _, w, Cinv_d, *_ = self._posterior(x, t)
        return -(w * Cinv_d).sum(1)
