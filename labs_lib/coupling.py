r"""Couplings of noise and data, and how straight the resulting flow is (Lab 10).

Conditional flow matching pairs each noise sample :math:`x_0` with a data sample :math:`x_1` and
regresses the straight velocity :math:`x_1 - x_0` (the CondOT path). With *independent* pairs,
the straight lines of different pairs cross, and the learned marginal field, an average over all
pairs through a point, bends: its trajectories are curved and a few-step sampler misses.

**Minibatch optimal transport** (Pooladian et al. 2023; Tong et al. 2023) re-pairs each batch by
the permutation that minimises the total squared distance,

.. math:: \pi^\star = \arg\min_\pi \sum_{i=1}^n \|x_0^{(i)} - x_1^{(\pi(i))}\|^2 ,

so that the pairs' lines rarely cross (optimal pairs' segments never do, by cyclical
monotonicity). As the batch grows, the coupling tends to the optimal-transport plan, whose
flow is straight. :func:`ot_coupling` computes it with the exact assignment of
:func:`labs_lib.metrics.optimal_assignment`; the trainer that uses it on every batch is
:class:`labs_lib.training.OTConditionalFlowMatchingTrainer` (trainers live together).

Two measures of straightness, for a field :math:`u` and starting points :math:`X_0`:

* :func:`straightness` — :math:`S = \mathbb E \int_0^1 \|u_t(X_t) - (X_1 - X_0)\|^2\,dt` along the
  simulated trajectory: 0 exactly when every trajectory is a line run at constant speed.
* :func:`one_step_error` — :math:`\mathbb E\|X_1^{(1\ \rm Euler\ step)} - X_1^{(n\ \rm steps)}\|^2`:
  what a one-step sampler loses.

**Reflow** (Liu et al. 2022, *rectified flow*) straightens a trained flow further: simulate it from
noise :math:`X_0` to :math:`X_1`, keep the pairs :math:`(X_0, X_1)` (:func:`reflow_pairs`), and train a
new field by conditional flow matching on those fixed pairs instead of independent ones
(:class:`labs_lib.training.ReflowTrainer`). The pairs come from a deterministic map, so their
straight lines do not cross where the old flow's trajectories did not, and the new flow's are
straighter; its endpoints have the old flow's law, so the samples keep their quality (as far as
the old flow had it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validation import validate_batch, validate_positive_int
from .distributions import Sampleable
from .dynamics import VectorFieldODE
from .likelihood import Field
from .metrics import optimal_assignment
from .simulators import EulerSimulator, HeunSimulator, time_grid


def ot_coupling(x_0: Tensor, x_1: Tensor) -> Tensor:
    r"""``x_1`` reordered so that ``(x_0[i], result[i])`` is the minibatch optimal-transport pairing.

    The permutation minimises :math:`\sum_i \|x_0^{(i)} - x_1^{(\pi(i))}\|^2` exactly (an
    :math:`O(n^3)` assignment: a few hundred samples per batch cost milliseconds); the samples are
    flattened for the distance, so images work too. The reordering is a permutation: no sample is
    lost or repeated, and ``x_1``'s marginal law is unchanged.

    Args:
        x_0: noise (source) samples, shape ``(batch, *state_shape)``.
        x_1: data samples, the same shape.

    Returns:
        ``x_1[perm]``, shape of ``x_1``, on its device.
    """
    x_0 = validate_batch(x_0, "x_0")
    x_1 = validate_batch(x_1, "x_1")
    if x_0.shape != x_1.shape:
        raise ValueError(f"x_0 and x_1 must have the same shape (one noise sample per data sample), got "
                         f"{tuple(x_0.shape)} and {tuple(x_1.shape)}.")
    perm = optimal_assignment(x_0.reshape(len(x_0), -1), x_1.reshape(len(x_1), -1))
    return x_1[perm.to(x_1.device)]


def _simulate(field: Field, x_0: Tensor, n_steps: int, t1: float):
    x_0 = validate_batch(x_0, "x_0", ndim=2)
    validate_positive_int(n_steps, "n_steps")
    if not callable(field):
        raise TypeError(f"field must be callable as field(x, t), got {type(field).__name__}.")
    if isinstance(t1, bool) or not isinstance(t1, (int, float)) or not 0 < t1 <= 1:
        raise ValueError(f"t1 must be a number in (0, 1] (where the flow stops), got {t1!r}.")
    ts = time_grid(n_steps, t1=float(t1), device=x_0.device, dtype=x_0.dtype)
    return ts, HeunSimulator(VectorFieldODE(field)).simulate_with_trajectory(x_0, ts)


@torch.no_grad()
def straightness(field: Field, x_0: Tensor, n_steps: int = 100, t1: float = 1.0) -> float:
    r"""How far a flow is from straight: :math:`\mathbb E\int_0^1 \|u_t(X_t) - (X_1 - X_0)\|^2\,dt`.

    The trajectories start at ``x_0`` and are simulated with Heun's method on ``n_steps`` uniform
    steps; the field is evaluated at every grid state and the time integral taken by the
    trapezoidal rule; the expectation is the mean over samples. Since
    :math:`\int_0^1 u_t(X_t)\,dt = X_1 - X_0`, the integrand is the deviation of the velocity from
    its time average: the measure is 0 exactly when every trajectory runs along a line at
    constant speed (and both solvers are then exact, so the computed value is 0 up to rounding),
    and it does not change when a straight flow is merely fast.

    With ``t1 < 1`` the flow stops at ``t1`` and the measure is
    :math:`\mathbb E\int_0^{t_1}\|u_t(X_t) - (X_{t_1} - X_0)/t_1\|^2 dt`: for fields that are
    singular at :math:`t = 1`, such as the conditional field :math:`(z - x)/(1 - t)`, whose value at
    :math:`t = 1` is 0/0 (the course's paths clamp the time and return 0 at :math:`x = z`).

    Args:
        field: ``field(x, t) -> u_t(x)``, shapes ``(batch, d) -> (batch, d)``, ``t`` a 0-dim tensor.
        x_0: starting points (noise samples), shape ``(batch, d)``.
        n_steps: simulation steps.
        t1: where the flow stops, in ``(0, 1]``.

    Returns:
        The mean over samples, a float.
    """
    ts, traj = _simulate(field, x_0, n_steps, t1)
    velocity = torch.stack([field(x, t) for x, t in zip(traj.states, ts)])  # (n + 1, batch, d)
    chord = (traj.states[-1] - traj.states[0]) / float(t1)
    deviation = (velocity - chord).pow(2).sum(-1)  # (n + 1, batch)
    integral = torch.trapezoid(deviation, ts, dim=0)
    if not bool(torch.isfinite(integral).all()):
        raise FloatingPointError("the straightness is NaN or infinite: the field is not finite along the flow.")
    return float(integral.mean())


@torch.no_grad()
def one_step_error(field: Field, x_0: Tensor, n_steps: int = 100, t1: float = 1.0) -> float:
    r""":math:`\mathbb E\|X_1^{(1)} - X_1^{(n)}\|^2`: one Euler step :math:`X_0 + u_0(X_0)` against Heun with
    ``n_steps``.

    Zero for a straight flow at constant speed; the squared distance a one-step sampler is off by.

    Args:
        field: ``field(x, t) -> u_t(x)``, shapes ``(batch, d) -> (batch, d)``.
        x_0: starting points, shape ``(batch, d)``.
        n_steps: steps of the reference solution.
        t1: where the flow stops, in ``(0, 1]`` (the one step then has size ``t1``).

    Returns:
        The mean over samples, a float.
    """
    ts, traj = _simulate(field, x_0, n_steps, t1)
    one_step = x_0 + float(t1) * field(x_0, ts[0])
    return float((one_step - traj.final).pow(2).sum(-1).mean())


class FixedPairs(Sampleable):
    r"""A fixed coupling: ``m`` pairs :math:`(x_0^{(j)}, x_1^{(j)})` of noise and data, drawn as pairs.

    As a :class:`~labs_lib.distributions.Sampleable` it is the law of the data points :math:`x_1`
    (uniform over the ``m`` of them); :meth:`sample_pairs` draws whole pairs, which is what
    :class:`~labs_lib.training.ReflowTrainer` trains on.

    Args:
        x_0: the noise ends, shape ``(m, *state_shape)``.
        x_1: the data ends, the same shape; pair ``j`` is ``(x_0[j], x_1[j])``.
    """

    def __init__(self, x_0: Tensor, x_1: Tensor):
        x_0, x_1 = validate_batch(x_0, "x_0"), validate_batch(x_1, "x_1")
        if x_0.shape != x_1.shape:
            raise ValueError(f"x_0 and x_1 must have the same shape (pair j is (x_0[j], x_1[j])), got "
                             f"{tuple(x_0.shape)} and {tuple(x_1.shape)}.")
        if x_0.device != x_1.device:
            raise ValueError(f"x_0 and x_1 must be on one device, got {x_0.device} and {x_1.device}.")
        if not (bool(torch.isfinite(x_0).all()) and bool(torch.isfinite(x_1).all())):
            raise ValueError("the pairs contain NaN or infinite values: did the simulation that made them diverge?")
        self.x_0, self.x_1 = x_0.detach(), x_1.detach()
        self.shape = tuple(x_0.shape[1:])

    def __len__(self) -> int:
        return self.x_0.shape[0]

    def _indices(self, n: int, generator: torch.Generator | None) -> Tensor:
        validate_positive_int(n, "n")
        return torch.randint(len(self), (n,), generator=generator).to(self.x_0.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` data ends drawn with replacement, shape ``(n, *shape)``."""
        return self.x_1[self._indices(n, generator)]

    def sample_pairs(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` pairs drawn with replacement: ``(x_0, x_1)``, each ``(n, *shape)``, row ``i`` of both one pair."""
        idx = self._indices(n, generator)
        return self.x_0[idx], self.x_1[idx]


#: The ODE solvers of :func:`reflow_pairs`.
REFLOW_METHODS = {"euler": EulerSimulator, "heun": HeunSimulator}


@torch.no_grad()
def reflow_pairs(field: Field, x_0: Tensor, n_steps: int = 50, method: str = "heun") -> FixedPairs:
    r"""The reflow data step: the pairs :math:`(x_0, X_1)`, :math:`X_1` the ODE solution of ``field`` from ``x_0``.

    The field is simulated from :math:`t = 0` to 1 with ``n_steps`` uniform steps of ``method``;
    since it is one deterministic map, the pairs are a coupling of the noise and the flow's own
    samples whose straight lines do not cross (where the flow's trajectories do not).

    Args:
        field: ``field(x, t) -> u_t(x)``, shapes ``(batch, *state) -> (batch, *state)``.
        x_0: the noise, shape ``(batch, *state_shape)``.
        n_steps: ODE steps.
        method: ``"heun"`` (default) or ``"euler"``.

    Returns:
        :class:`FixedPairs` of ``x_0`` and the simulated endpoints.
    """
    x_0 = validate_batch(x_0, "x_0")
    validate_positive_int(n_steps, "n_steps")
    if not callable(field):
        raise TypeError(f"field must be callable as field(x, t), got {type(field).__name__}.")
    if method not in REFLOW_METHODS:
        raise ValueError(f"method must be one of {tuple(REFLOW_METHODS)}, got {method!r}.")
    ts = time_grid(n_steps, device=x_0.device, dtype=x_0.dtype)
    x_1 = REFLOW_METHODS[method](VectorFieldODE(field)).simulate(x_0, ts)
    return FixedPairs(x_0, x_1)
