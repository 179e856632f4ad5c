"""The two ways the library shapes a time against a batch of states ``x`` of shape ``(batch, ...)``.

* :func:`expand_time` makes a time *broadcast* against ``x``: ``(batch,)`` → ``(batch, 1, ..., 1)``,
  for formulas such as :math:`\alpha_t x_1 + \beta_t x_0` written on whole batches.
* :func:`batch_times` makes a time *one entry per sample*, ``(batch,)``, as networks take it.

Both accept a Python number, a 0-dim tensor or a ``(batch,)`` tensor, put it on ``x``'s device and
dtype, and reject any other shape with a message that names the expected one.
"""

from __future__ import annotations

import torch
from torch import Tensor


def expand_time(t: Tensor | float, x: Tensor) -> Tensor:
    """Reshape a time for broadcasting against ``x`` of shape ``(batch, *state_shape)``.

    Returns a tensor of shape ``(batch, 1, ..., 1)`` (or 0-dim if ``t`` is a scalar).
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape (batch,) = ({x.shape[0]},), got {tuple(t.shape)}.")
    return t.view(-1, *([1] * (x.ndim - 1)))


def batch_times(t: Tensor | float, x: Tensor) -> Tensor:
    """A time as a ``(batch,)`` tensor on ``x``'s device: scalars are broadcast to the batch."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    t = t.reshape(-1) if t.numel() == x.shape[0] else t
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape (batch,) = ({x.shape[0]},), got {tuple(t.shape)}.")
    return t
