r"""Interpolating between samples through a flow's noise (Lab 10).

A flow's ODE is a deterministic map from noise to data, so a path between two noise vectors
:math:`z_a, z_b` gives a path between the two samples they map to. The straight line
:math:`(1-s)z_a + s z_b` is the obvious path, and a poor one in many dimensions: a standard
Gaussian vector in :math:`\mathbb R^d` has norm close to :math:`\sqrt d` (within about
:math:`\pm 0.7`), and two independent ones are nearly orthogonal, so the midpoint of the line has
norm about :math:`\sqrt{d/2}`: noise the flow almost never started from in training.

**Spherical interpolation** (slerp; Shoemake 1985, used for generative models by White 2016) follows
the great circle instead,

.. math:: z_s = \frac{\sin((1-s)\theta)}{\sin\theta}\, z_a + \frac{\sin(s\theta)}{\sin\theta}\, z_b,
          \qquad \cos\theta = \frac{\langle z_a, z_b\rangle}{\|z_a\|\,\|z_b\|},

which keeps the norm when :math:`\|z_a\| = \|z_b\|` and, for two independent Gaussian vectors, stays
in the thin shell where the noise lives.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validation import validate_batch

# Below this angle (radians) the two vectors are treated as parallel and the straight line is used:
# sin θ in the denominator would lose all precision, and the two paths agree to O(θ²) there anyway.
_PARALLEL_ANGLE = 1e-4


def _fractions(s: float | Tensor, batch: int, like: Tensor) -> Tensor:
    """``s`` as a ``(batch, 1, ..., 1)`` tensor that broadcasts against ``like``."""
    s = torch.as_tensor(s, dtype=like.dtype, device=like.device)
    if s.ndim == 0:
        s = s.expand(batch)
    if s.shape != (batch,):
        raise ValueError(f"s must be a number or a tensor of shape (batch,) = ({batch},), got shape {tuple(s.shape)}.")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("s must be finite.")
    return s.reshape(batch, *([1] * (like.ndim - 1)))


def slerp(z_a: Tensor, z_b: Tensor, s: float | Tensor) -> Tensor:
    r"""Spherical interpolation from ``z_a`` (``s = 0``) to ``z_b`` (``s = 1``), one pair per row.

    Each pair is flattened to compute its angle :math:`\theta`; pairs closer than 1e-4 radians to
    parallel are interpolated linearly.

    Args:
        z_a, z_b: shape ``(batch, *state_shape)``; no row may be zero, and no pair opposite.
        s: the fraction of the way, a number or one per pair ``(batch,)`` (0 to 1 interpolates;
           outside that range the circle is continued).

    Returns:
        Shape ``(batch, *state_shape)``.
    """
    z_a, z_b = validate_batch(z_a, "z_a"), validate_batch(z_b, "z_b")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must have the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}.")
    s = _fractions(s, z_a.shape[0], z_a)
    a, b = z_a.flatten(1), z_b.flatten(1)
    norms = a.norm(dim=1) * b.norm(dim=1)
    if not bool((norms > 0).all()):
        raise ValueError("slerp needs nonzero vectors: the angle to a zero vector is undefined.")
    cos = ((a * b).sum(1) / norms).clamp(-1.0, 1.0)
    theta = torch.acos(cos).reshape(s.shape)
    if bool((theta > torch.pi - _PARALLEL_ANGLE).any()):
        raise ValueError("slerp is undefined for opposite vectors (z_b = -c z_a): every great circle joins them.")
    parallel = theta < _PARALLEL_ANGLE
    safe = torch.where(parallel, torch.ones_like(theta), theta)  # avoids 0/0 in the unused branch
    w_a = torch.where(parallel, 1 - s, torch.sin((1 - s) * safe) / torch.sin(safe))
    w_b = torch.where(parallel, s, torch.sin(s * safe) / torch.sin(safe))
    return w_a * z_a + w_b * z_b


__all__ = ["slerp"]
