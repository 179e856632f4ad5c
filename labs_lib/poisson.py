r"""Poisson flow (PFGM, Xu et al. 2022): data as electric charges in one more dimension (Lab 10).

Put the :math:`n` data points :math:`y_i \in \mathbb R^N` on the plane :math:`z = 0` of
:math:`\mathbb R^{N+1}` and treat them as equal point charges. In :math:`D = N + 1` dimensions a point
charge at :math:`c` has the field :math:`(\tilde x - c)/\|\tilde x - c\|^{D}` (the solution of
Poisson's equation, up to the area of the unit sphere, which we drop), so the field of the data is

.. math:: E(\tilde x) = \frac1n \sum_{i=1}^n \frac{\tilde x - \tilde y_i}{\|\tilde x - \tilde y_i\|^{N+1}},
          \qquad \tilde x = (x, z),\ \tilde y_i = (y_i, 0).

It needs no training: it is a sum over the data set. Far away (distance :math:`r` much larger than
the data's spread) it is the field of one charge at the data's centre: radial, of magnitude
:math:`r^{-N}`, so that field lines leave the upper half-space spread *uniformly over directions*.
Read backwards, a field line started at a uniformly drawn point of a large hemisphere ends on the
plane :math:`z = 0` at a point distributed like the data (the flux through a surface is conserved
along field lines). That is a generative ODE with no network.

In practice one starts on the plane :math:`z = z_{\max}` instead of a hemisphere: the hemisphere's
directions, carried along the radial lines (which are field lines out there) to that plane, give the
prior of :func:`poisson_prior`, :math:`p(x) \propto z_{\max} / (\|x - c\|^2 + z_{\max}^2)^{(N+1)/2}`.
Then :math:`z` itself serves as the time, :math:`dx/dz = E_x/E_z` (:math:`E_z > 0` everywhere above the
plane), and with :math:`s = -\log z` the ODE reads

.. math:: \frac{dx}{ds} = -z\,\frac{E_x(x, z)}{E_z(x, z)}, \qquad z = e^{-s},

run from :math:`s = -\log z_{\max}` up to :math:`s = -\log z_{\min}`: in :math:`s` the flow is smooth at
both ends (far away :math:`dx/ds \approx -(x - c)`; near a charge :math:`dx/ds \approx -(x - y_i)`), so
a uniform grid in :math:`s` works. :class:`PoissonFlowODE` is that ODE, for the course's simulators.

**The catch.** Near the plane the field of the nearest charge dominates, and the field line ends
*on* a data point: this exact field reproduces the training set, not the distribution it came
from. PFGM trains a network on the field precisely so that it does not (the network smooths it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._validation import validate_batch, validate_positive, validate_positive_int
from .dynamics import ODE
from .simulators import EulerSimulator, HeunSimulator, time_grid

#: Points per chunk of :func:`poisson_field`: bounds the memory of the (points × charges × D) differences.
CHUNK = 2048


def poisson_field(x: Tensor, charges: Tensor) -> Tensor:
    r"""The field of equal point charges in :math:`D` dimensions, :math:`E(x) = \frac1n\sum_i (x - c_i)/\|x - c_i\|^D`.

    The average over charges (not the sum) keeps the field's size independent of :math:`n`: far
    away it is the field :math:`(x - \bar c)/\|x - \bar c\|^D` of a single charge at their mean.

    Args:
        x: the points where the field is evaluated, shape ``(batch, D)``; none exactly on a charge.
        charges: the charges' positions, shape ``(n, D)`` (for PFGM: the data with a 0 appended).

    Returns:
        Shape ``(batch, D)``, in the dtype of ``x``.

    Raises:
        ValueError: if the shapes do not match, or a point sits on a charge (the field is infinite).
    """
    x = validate_batch(x, "x", ndim=2)
    charges = validate_batch(charges, "charges", ndim=2)
    if x.shape[1] != charges.shape[1]:
        raise ValueError(f"x and charges must have the same number of coordinates D, got x of shape "
                         f"{tuple(x.shape)} and charges of shape {tuple(charges.shape)}. For PFGM, append "
                         "the z coordinate to both (0 for the charges).")
    d = x.shape[1]
    charges = charges.to(dtype=x.dtype, device=x.device)
    out = []
    for chunk in x.split(CHUNK):
        diff = chunk[:, None, :] - charges[None, :, :]  # (b, n, D)
        dist = diff.norm(dim=-1, keepdim=True)  # (b, n, 1)
        if not bool((dist > 0).all()):
            raise ValueError("a point of x sits exactly on a charge, where the field is infinite.")
        out.append((diff / dist**d).mean(1))
    return torch.cat(out)


def augment(x: Tensor, z: Tensor | float = 0.0) -> Tensor:
    """``(x, z)``: points of :math:`\\mathbb R^N` lifted to :math:`\\mathbb R^{N+1}`.

    ``x`` of shape ``(batch, N)``; ``z`` a number or shape ``(batch,)``. Returns shape ``(batch, N + 1)``."""
    x = validate_batch(x, "x", ndim=2)
    z = torch.as_tensor(z, dtype=x.dtype, device=x.device)
    return torch.cat([x, z.expand(x.shape[0]).unsqueeze(1)], dim=1)


def poisson_prior(n: int, dim: int, z_max: float, center: Tensor | None = None,
                  generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Starting points on the plane :math:`z = z_{\max}`: uniform directions of the upper hemisphere,
    carried along radial lines from ``center`` to that plane.

    A direction :math:`(u, u_z)` uniform on the upper half of the unit sphere of :math:`\mathbb R^{N+1}`
    gives the point :math:`x = c + z_{\max}\,u/u_z`; its density is
    :math:`\propto z_{\max}/(\|x - c\|^2 + z_{\max}^2)^{(N+1)/2}`, heavy-tailed (a few points start
    very far out, and the ODE, linear there in :math:`s = -\log z`, brings them in).

    Args:
        n: how many points.
        dim: :math:`N`, the data's dimension.
        z_max: the height of the starting plane: large against the data's spread.
        center: :math:`c`, shape ``(dim,)``: the data's mean (the charge that stands for all of
            them far away); the origin when ``None``.
        generator: a CPU generator, for reproducible draws.

    Returns:
        Shape ``(n, dim)``: the :math:`x` coordinates (the :math:`z` coordinate is ``z_max``).
    """
    validate_positive_int(n, "n")
    validate_positive_int(dim, "dim")
    z_max = validate_positive(z_max, "z_max")
    g = torch.randn(n, dim + 1, generator=generator, dtype=torch.float64)
    g[:, -1] = g[:, -1].abs()  # the upper hemisphere (the direction's law is that of g / |g|)
    # |u_z| = 0 has probability 0, but a float64 draw can come close: keep the ratio finite.
    x = z_max * g[:, :-1] / g[:, -1:].clamp_min(1e-12)
    if center is not None:
        center = validate_batch(center.reshape(1, -1), "center", dim=dim)
        x = x + center.to(torch.float64).cpu()
    return x.to(dtype)


class PoissonFlowODE(ODE):
    r"""The backward Poisson-flow ODE in :math:`s = -\log z`: :math:`dx/ds = -z\,E_x/E_z`, :math:`z = e^{-s}`.

    Simulate it with any of the course's ODE simulators on :func:`poisson_time_grid`, from
    ``z_max`` down to ``z_min``; :func:`poisson_sample` does all of it.

    Args:
        data: the charges' positions on the plane, shape ``(n, N)``.
    """

    def __init__(self, data: Tensor):
        self.data = validate_batch(data, "data", ndim=2)
        self._charges = augment(self.data)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        z = torch.exp(-torch.as_tensor(t, dtype=x.dtype, device=x.device))  # 0-dim, or one per sample
        e = poisson_field(augment(x, z), self._charges)
        return -z.reshape(-1, 1) * e[:, :-1] / e[:, -1:]


def poisson_time_grid(n_steps: int, z_max: float, z_min: float, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""A uniform grid in :math:`s = -\log z` from :math:`z_{\max}` (first) down to :math:`z_{\min}` (last)."""
    z_max, z_min = validate_positive(z_max, "z_max"), validate_positive(z_min, "z_min")
    if not z_min < z_max:
        raise ValueError(f"z_min must be below z_max (the flow goes down to the data plane), got z_min = {z_min}, "
                         f"z_max = {z_max}.")
    return time_grid(n_steps, -math.log(z_max), -math.log(z_min), dtype=dtype)


@torch.no_grad()
def poisson_sample(data: Tensor, n: int, z_max: float = 40.0, z_min: float = 1e-3, n_steps: int = 100,
                   method: str = "heun", generator: torch.Generator | None = None) -> Tensor:
    r"""Samples of the exact Poisson flow of ``data``: :func:`poisson_prior` at ``z_max`` (centred on the
    data's mean), then :class:`PoissonFlowODE` down to ``z_min``.

    Args:
        data: shape ``(n_data, N)``.
        n: how many samples.
        z_max, z_min: the start and end heights; ``z_max`` large against the data's spread.
        n_steps: steps of the ODE, uniform in :math:`-\log z`.
        method: ``"heun"`` or ``"euler"``.
        generator: for the starting points.

    Returns:
        Shape ``(n, N)``, the ``x`` coordinates at ``z_min``, in ``data``'s dtype.
    """
    data = validate_batch(data, "data", ndim=2)
    simulators = {"heun": HeunSimulator, "euler": EulerSimulator}
    if method not in simulators:
        raise ValueError(f"method must be one of {tuple(simulators)}, got {method!r}.")
    x = poisson_prior(n, data.shape[1], z_max, center=data.mean(0), generator=generator, dtype=data.dtype)
    ts = poisson_time_grid(n_steps, z_max, z_min, dtype=data.dtype).to(data.device)
    return simulators[method](PoissonFlowODE(data)).simulate(x.to(data.device), ts)
