"""Input checks shared by every public function of ``labs_lib``.

Each ``validate_*`` helper raises a ``ValueError`` or ``TypeError`` whose message says what was
expected and what arrived, so that a student sees the mistake, not a shape error
deep inside PyTorch. (The name ``check_*`` is kept for the exercise checkers of
:mod:`labs_lib.checks`, which report instead of raising.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def as_tensor(value: object, name: str) -> Tensor:
    """Return ``value`` unchanged if it is a tensor; otherwise explain what was expected."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    return value


def validate_batch(x: object, name: str = "x", *, dim: int | None = None, ndim: int | None = None,
                min_ndim: int = 2) -> Tensor:
    """Check a batch of states.

    Args:
        x: tensor of shape ``(batch, *state_shape)``.
        dim: if given, ``x`` must be ``(batch, dim)``.
        ndim: if given, the exact number of axes.
        min_ndim: the least number of axes (2 means ``(batch, d)`` at least).
    """
    x = as_tensor(x, name)
    if dim is not None:
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(
                f"{name} must have shape (batch, {dim}), got {tuple(x.shape)}."
                + (" Did you forget the batch axis? Try x.unsqueeze(0)." if x.ndim == 1 else "")
            )
    elif ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {tuple(x.shape)}.")
    elif x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have shape (batch, ...) with at least {min_ndim} axes, got {tuple(x.shape)}."
            " A single state needs a batch axis: x.unsqueeze(0)."
        )
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}.")
    return x


def validate_time_grid(ts: object, name: str = "ts") -> Tensor:
    """Check a 1-D, strictly increasing, finite time grid with at least two points."""
    ts = as_tensor(ts, name)
    if ts.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor of times, got shape {tuple(ts.shape)}.")
    if ts.numel() < 2:
        raise ValueError(f"{name} needs at least two times (start and end), got {ts.numel()}.")
    if not torch.is_floating_point(ts):
        raise TypeError(f"{name} must be floating point (e.g. torch.linspace(0, 1, 101)), got {ts.dtype}.")
    if not bool(torch.isfinite(ts).all()):
        raise ValueError(f"{name} contains NaN or infinite times.")
    if not bool((ts[1:] > ts[:-1]).all()):
        i = int(torch.nonzero(ts[1:] <= ts[:-1])[0])
        raise ValueError(
            f"{name} must be strictly increasing, but {name}[{i + 1}] = {float(ts[i + 1]):.4g} "
            f"is not larger than {name}[{i}] = {float(ts[i]):.4g}."
        )
    return ts


def validate_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    """Check a real parameter such as σ or θ: finite and positive (or non-negative)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number, got a tensor of shape {tuple(value.shape)}.")
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}.")
    return value


def validate_same_device(**tensors: Tensor) -> None:
    """Check that all named tensors live on one device."""
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, Tensor)}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"tensors must be on the same device, got {listing}. Move them with .to(device).")


def validate_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def validate_shape_tail(x: Tensor, tail: Sequence[int], name: str = "x") -> None:
    """Check that ``x`` has shape ``(batch, *tail)``."""
    if tuple(x.shape[1:]) != tuple(tail):
        raise ValueError(f"{name} must have shape (batch, {', '.join(map(str, tail))}), got {tuple(x.shape)}.")
