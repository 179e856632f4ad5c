r"""Every training loss of the course, with one calling convention.

Each loss is the value on **one batch**, given all of its randomness, so that a checker (or a
student) can recompute it exactly. The arguments always come in the order of
:meth:`~labs_lib.paths.AffinePath.sample`:

.. code-block:: python

    loss(model, path, x_0, x_1, t, ...)    # x_t = α_t x_1 + β_t x_0

``x_0`` is the source point, ``x_1`` the data point, both of shape ``(batch, ...)``; ``t`` has
shape ``(batch,)``. On a Gaussian path the source point *is* the noise: :math:`x_0 = \varepsilon`.
Every loss sums the squared error over the coordinates of a sample and averages over the batch.

=============================  =====================================================================
loss                           regresses
=============================  =====================================================================
:func:`cfm_loss`               the conditional velocity :math:`\dot\alpha_t x_1 + \dot\beta_t x_0`
:func:`dsm_loss`               the conditional score :math:`-x_0/\beta_t` (optionally weighted by :math:`\beta_t^2`)
:func:`noise_prediction_loss`  the noise :math:`x_0` (ε-prediction, DDPM)
:func:`cfg_loss`               the conditional velocity given a label, some labels dropped to :math:`\varnothing`
=============================  =====================================================================
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._validation import as_tensor, validate_batch
from .paths import AffinePath
from .times import expand_time

DSM_WEIGHTINGS = ("none", "beta2")


def _squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    """``‖prediction − target‖²`` summed over a sample's coordinates, averaged over the batch (0-dim)."""
    return (prediction - target).pow(2).flatten(1).sum(1).mean()


def cfm_loss(model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor) -> Tensor:
    r"""The conditional flow matching loss on one batch (a 0-dim tensor that carries gradients).

    .. math:: \frac1B \sum_{i=1}^B \big\| u^\theta_{t_i}(x_{t_i})
              - (\dot\alpha_{t_i} x_1^{(i)} + \dot\beta_{t_i} x_0^{(i)}) \big\|^2,
              \qquad x_{t_i} = \alpha_{t_i} x_1^{(i)} + \beta_{t_i} x_0^{(i)} .

    Args:
        model: the field network, called as ``model(x_t, t)`` with ``t`` of shape ``(batch,)``.
        path: the affine path that gives :math:`\alpha_t, \beta_t` and their derivatives.
        x_0: source samples, shape ``(batch, ...)``.
        x_1: data samples, same shape.
        t: times in [0, 1], shape ``(batch,)``.
    """
    s = path.sample(x_0, x_1, t)
    return _squared_error(model(s.x_t, s.t), s.dx_t)


def dsm_loss(model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor,
             weighting: str = "none") -> Tensor:
    r"""The denoising score matching loss on one batch (a 0-dim tensor that carries gradients).

    With :math:`x_t = \alpha_t x_1 + \beta_t x_0` and :math:`x_0 = \varepsilon \sim \mathcal N(0, I)`, the
    conditional score is :math:`-\varepsilon/\beta_t`, and the loss is

    .. math:: \frac1B \sum_{i=1}^B \lambda_{t_i}\big\| s^\theta_{t_i}(x_{t_i}) + \varepsilon^{(i)}/\beta_{t_i} \big\|^2,

    with :math:`\lambda_t = 1` (``weighting="none"``) or :math:`\beta_t^2` (``"beta2"``, the same
    number as :func:`noise_prediction_loss` for :math:`\varepsilon^\theta = -\beta_t s^\theta`).

    Args:
        model: the score network, called as ``model(x_t, t)`` with ``t`` of shape ``(batch,)``.
        path: the Gaussian path that gives :math:`\alpha_t, \beta_t`.
        x_0: the noise ε, standard Gaussian, shape ``(batch, ...)``.
        x_1: data samples :math:`z`, same shape.
        t: times in [0, 1), shape ``(batch,)`` (at :math:`t = 1`, :math:`\beta_t = 0` and the
            unweighted target is infinite).
        weighting: ``"none"`` or ``"beta2"``.
    """
    if weighting not in DSM_WEIGHTINGS:
        raise ValueError(f"weighting must be 'none' or 'beta2', got {weighting!r}.")
    s = path.sample(x_0, x_1, t)
    beta = expand_time(path.scheduler(s.t).beta_t, x_1)
    if weighting == "beta2":
        return _squared_error(beta * model(s.x_t, s.t), -x_0)
    return _squared_error(model(s.x_t, s.t), -x_0 / beta)


def noise_prediction_loss(model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor) -> Tensor:
    r"""The ε-prediction (DDPM) loss on one batch:
    :math:`\frac1B\sum_i \|\varepsilon^\theta_{t_i}(x_{t_i}) - x_0^{(i)}\|^2` with
    :math:`x_t = \alpha_t x_1 + \beta_t x_0`, :math:`x_0 = \varepsilon`; shapes as in :func:`dsm_loss`."""
    s = path.sample(x_0, x_1, t)
    return _squared_error(model(s.x_t, s.t), x_0)


def drop_labels(y: Tensor, drop_mask: Tensor, null_label: int) -> Tensor:
    """``y`` with the entries where ``drop_mask`` is True replaced by ``null_label`` (a new tensor)."""
    return torch.where(drop_mask, torch.full_like(y, null_label), y)


def cfg_loss(model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor, y: Tensor,
             drop_mask: Tensor, null_label: int) -> Tensor:
    r"""The classifier-free guidance training loss on one batch (given all its randomness).

    .. math:: \frac1B\sum_i \big\|u^\theta_{t_i}(x_{t_i} \mid \tilde y_i)
              - (\dot\alpha_{t_i} x_{1,i} + \dot\beta_{t_i} x_{0,i})\big\|^2,
              \qquad \tilde y_i = \varnothing \text{ where } \texttt{drop\_mask}_i, \text{ else } y_i .

    Args:
        model: called as ``model(x, t, y)``.
        x_0, x_1: noise and data, shape ``(batch, ...)``; t: times, shape ``(batch,)``.
        y: the labels of ``x_1``, shape ``(batch,)``.
        drop_mask: bool, shape ``(batch,)``: which labels are replaced by ``null_label``.
        null_label: the index of :math:`\varnothing` (the model's ``null_label``).
    """
    x_1 = validate_batch(x_1, "x_1")
    y, drop_mask = as_tensor(y, "y"), as_tensor(drop_mask, "drop_mask")
    if y.shape != (x_1.shape[0],) or drop_mask.shape != (x_1.shape[0],):
        raise ValueError(f"y and drop_mask must have shape (batch,) = ({x_1.shape[0]},), "
                         f"got {tuple(y.shape)} and {tuple(drop_mask.shape)}.")
    if drop_mask.dtype != torch.bool:
        raise TypeError(f"drop_mask must be a bool tensor, got {drop_mask.dtype}.")
    s = path.sample(x_0, x_1, t)
    return _squared_error(model(s.x_t, s.t, drop_labels(y, drop_mask, null_label)), s.dx_t)
