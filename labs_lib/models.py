"""Neural networks for time-dependent fields :math:`(x, t) \\mapsto \\mathbb R^d`.

A flow model learns a vector field :math:`u^\\theta_t(x)`, a score model a score
:math:`s^\\theta_t(x)`: both are maps from a state and a time to a vector of the state's shape,
so one network class serves both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import as_tensor, validate_positive, validate_positive_int
from .times import batch_times


class FourierTime(nn.Module):
    r"""Embed a time :math:`t \in [0, 1]` as :math:`[t, \sin(2\pi k t), \cos(2\pi k t)]_{k=1..K}`.

    A raw scalar ``t`` makes it hard for a small network to change its output quickly in time;
    sines and cosines of several frequencies give it those features for free.
    """

    def __init__(self, n_frequencies: int = 8):
        super().__init__()
        validate_positive_int(n_frequencies, "n_frequencies")
        self.register_buffer("freqs", 2 * math.pi * torch.arange(1, n_frequencies + 1, dtype=torch.float32))
        self.dim = 2 * n_frequencies + 1

    def forward(self, t: Tensor) -> Tensor:
        """``t`` of shape ``(batch,)`` → features of shape ``(batch, 2K + 1)``."""
        angles = t.unsqueeze(-1) * self.freqs
        return torch.cat([t.unsqueeze(-1), torch.sin(angles), torch.cos(angles)], dim=-1)


class FourierPosition(nn.Module):
    r"""Random Fourier features of a position :math:`x \in \mathbb R^d`:
    :math:`[\sin 2\pi Bx, \cos 2\pi Bx]` with a fixed matrix :math:`B \in \mathbb R^{m \times d}`,
    :math:`B_{ij} \sim \mathcal N(0, s^2)`, drawn once from torch's random state and kept as a buffer.

    A multilayer perceptron fed the raw coordinates learns smooth functions first and sharp ones
    very slowly (its *spectral bias*). A field that must change abruptly across a short distance,
    such as the marginal field of a mixture at the boundary between two modes, is such a sharp
    function. Sines and cosines of random directions and frequencies (scale ``s``, in cycles per
    unit of ``x``) give the network those variations for free (Tancik et al., 2020).
    """

    def __init__(self, dim: int, n_features: int, scale: float):
        super().__init__()
        validate_positive_int(dim, "dim")
        validate_positive_int(n_features, "n_features")
        validate_positive(scale, "scale")
        self.register_buffer("directions", scale * torch.randn(n_features, dim))
        self.dim = 2 * n_features

    def forward(self, x: Tensor) -> Tensor:
        """``x`` of shape ``(batch, d)`` → features of shape ``(batch, 2m)``."""
        angles = 2 * math.pi * x @ self.directions.T
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def null_label_of(model: nn.Module) -> int:
    """The index of the null label :math:`\\varnothing` of a label-conditioned model: its ``null_label``.

    It is the one place the course reads it from: the CFG trainer drops labels to it, the CFG
    field and the checkers ask the model for it. :class:`LabelledMLPField` and
    :class:`~labs_lib.unet.UNet` set it to ``num_classes``; a model of your own needs the attribute.
    """
    null = getattr(model, "null_label", None)
    if isinstance(null, bool) or not isinstance(null, int) or null < 0:
        raise TypeError(f"{type(model).__name__} has no null_label attribute (an int >= 0): a label-conditioned "
                        "model stores the index of its null label there, e.g. self.null_label = num_classes.")
    return null


class MLPField(nn.Module):
    """A multilayer perceptron for a field on :math:`\\mathbb R^d`: input ``(x, t)``, output like ``x``.

    Args:
        dim: the state dimension ``d``.
        hidden: widths of the hidden layers.
        n_frequencies: Fourier features of the time (see :class:`FourierTime`).
        position_features: random Fourier features of ``x`` added to the input (see
            :class:`FourierPosition`); 0, the default, feeds the coordinates alone.
        position_scale: the scale ``s`` of their frequencies, in cycles per unit of ``x``.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128, 128), n_frequencies: int = 8,
                 position_features: int = 0, position_scale: float = 0.5):
        super().__init__()
        self.dim = validate_positive_int(dim, "dim")
        if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive layer widths, got {hidden!r}.")
        if isinstance(position_features, bool) or not isinstance(position_features, int) or position_features < 0:
            raise ValueError(f"position_features must be a whole number >= 0 (0: none), got {position_features!r}.")
        self.time = FourierTime(n_frequencies)
        self.position = FourierPosition(dim, position_features, position_scale) if position_features else None
        widths = [dim + (self.position.dim if self.position else 0) + self.time.dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        layers.append(nn.Linear(widths[-1], dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``x`` of shape ``(batch, dim)``, ``t`` scalar or ``(batch,)`` → shape ``(batch, dim)``."""
        x = as_tensor(x, "x")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}), got {tuple(x.shape)}.")
        features = [x, self.time(batch_times(t, x))]
        if self.position is not None:
            features.insert(1, self.position(x))
        return self.net(torch.cat(features, dim=-1))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class LabelledMLPField(nn.Module):
    r"""An MLP for a label-conditioned field :math:`u^\theta_t(x \mid y)` on samples of any shape.

    The input is the flattened sample, Fourier features of the time and a learned embedding of
    the label (``num_classes + 1`` rows: the last is the null label :math:`\varnothing` of
    classifier-free guidance); the output is reshaped to the sample's shape.

    Args:
        shape: the shape of one sample, e.g. ``(1, 8, 8)`` for the digits.
        num_classes: number of real labels; label ``num_classes`` is the null label.
        hidden: widths of the hidden layers.
        label_dim: size of the label embedding.
    """

    def __init__(self, shape: Sequence[int], num_classes: int = 10, hidden: Sequence[int] = (256, 256, 256),
                 label_dim: int = 32, n_frequencies: int = 8):
        super().__init__()
        self.shape = tuple(shape)
        if not self.shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.shape):
            raise ValueError(f"shape must be a non-empty tuple of positive integers, got {shape!r}.")
        self.num_classes = validate_positive_int(num_classes, "num_classes")
        self.null_label = num_classes
        if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive layer widths, got {hidden!r}.")
        self.dim = math.prod(self.shape)
        self.label = nn.Embedding(num_classes + 1, validate_positive_int(label_dim, "label_dim"))
        self.time = FourierTime(n_frequencies)
        widths = [self.dim + label_dim + self.time.dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        layers.append(nn.Linear(widths[-1], self.dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor | float, y: Tensor) -> Tensor:
        """``x`` ``(batch, *shape)``, ``t`` scalar or ``(batch,)``, ``y`` ``(batch,)`` int64 in
        ``0 .. num_classes`` → shape ``(batch, *shape)``."""
        x = as_tensor(x, "x")
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"x must have shape (batch, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}.")
        y = as_tensor(y, "y")
        if y.shape != (x.shape[0],) or torch.is_floating_point(y):
            raise ValueError(f"y must hold integer labels of shape (batch,) = ({x.shape[0]},), "
                             f"got shape {tuple(y.shape)}, dtype {y.dtype}.")
        h = torch.cat([x.flatten(1), self.label(y.long()), self.time(batch_times(t, x))], dim=1)
        return self.net(h).view(x.shape)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
