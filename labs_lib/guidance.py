r"""Guided flow matching and classifier-free guidance (CFG).

**Guided training.** With labelled data :math:`(z, y) \sim p_{\rm data}(z, y)`, a guided field
:math:`u^\theta_t(x \mid y)` regresses the conditional velocity of a path whose data point was
drawn *with* its label:

.. math:: \mathcal L(\theta) = \mathbb E_{t,\,(z, y),\,x_0}
          \big\|u^\theta_t(x_t \mid y) - (\dot\alpha_t z + \dot\beta_t x_0)\big\|^2 .

**The null label.** Classifier-free guidance trains one network for both :math:`u_t(x \mid y)` and
the unguided :math:`u_t(x) = u_t(x \mid \varnothing)`: each label is replaced by the extra label
:math:`\varnothing` (index ``num_classes``) with probability :math:`\eta`.

**Guided sampling.** On a Gaussian path, Bayes' rule
:math:`\nabla\log p_t(x \mid y) = \nabla\log p_t(x) + \nabla\log p_t(y \mid x)` splits the guided
field into the unguided one plus a classifier term; scaling that term by :math:`w` gives

.. math:: \tilde u_t(x \mid y) = (1 - w)\,u_t(x \mid \varnothing) + w\,u_t(x \mid y),

which :class:`CFGVectorField` evaluates in one batched network call. The training loss is
:func:`labs_lib.losses.cfg_loss`, its loop :class:`labs_lib.training.CFGTrainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._validation import as_tensor, validate_positive_int
from .distributions import LabelledSampleable
from .dynamics import VectorFieldODE
from .models import null_label_of
from .paths import AffinePath, PathSample
from .simulators import EulerSimulator, HeunSimulator, time_grid
from .times import batch_times


@dataclass
class GuidedPathSample(PathSample):
    """A :class:`~labs_lib.paths.PathSample` whose data points come with their labels.

    Attributes:
        y: the labels of ``x_1``, shape ``(batch,)``, int64.
    """

    y: Tensor = field(kw_only=True)


def sample_guided_path(path: AffinePath, data: LabelledSampleable, batch_size: int,
                       generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> GuidedPathSample:
    r"""Draw ``(z, y) ~ p_data``, ``x_0 ~ N(0, I)``, ``t ~ U[0, 1)`` and the point ``x_t`` of the path.

    Returns a :class:`GuidedPathSample`: ``x_t``, ``dx_t``, ``x_0``, ``x_1`` of shape
    ``(batch, *data.shape)``, ``t`` and ``y`` of shape ``(batch,)``.
    """
    if not isinstance(path, AffinePath):
        raise TypeError(f"path must be an AffinePath, got {type(path).__name__}.")
    if not isinstance(data, LabelledSampleable):
        raise TypeError(f"data must be a LabelledSampleable (images with labels), got {type(data).__name__}.")
    validate_positive_int(batch_size, "batch_size")
    x_1, y = data.sample_labelled(batch_size, generator)
    if device is not None:
        x_1, y = x_1.to(device), y.to(device)
    x_0 = torch.randn(x_1.shape, generator=generator, dtype=x_1.dtype).to(x_1.device)
    t = torch.rand(batch_size, generator=generator).to(x_1)
    s = path.sample(x_0, x_1, t)
    return GuidedPathSample(x_t=s.x_t, dx_t=s.dx_t, x_0=s.x_0, x_1=s.x_1, t=s.t, y=y)


class CFGVectorField:
    r"""The guided field :math:`(1 - w)\,u^\theta_t(x \mid \varnothing) + w\,u^\theta_t(x \mid y)`.

    Both branches run in **one** network call on the batch ``[x; x]`` with labels
    ``[∅; y]``, split afterwards. (At ``w = 1`` and ``w = 0`` one branch has weight zero and is
    skipped.) Callable as ``field(x, t)``, so ``VectorFieldODE(field)`` simulates it.

    Args:
        model: ``model(x, t, y)``.
        y: the requested labels, shape ``(batch,)`` (the batch of ``x`` it will be called with).
        guidance_scale: :math:`w \ge 0`; 1 is plain guided sampling, 0 is unguided.

    The null label is the model's own, ``model.null_label`` (see :func:`~labs_lib.models.null_label_of`).
    """

    def __init__(self, model: nn.Module, y: Tensor, guidance_scale: float):
        y = as_tensor(y, "y")
        if y.ndim != 1 or torch.is_floating_point(y):
            raise ValueError(f"y must be a 1-D tensor of integer labels, got shape {tuple(y.shape)}, dtype {y.dtype}.")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)):
            raise TypeError(f"guidance_scale must be a number, got {type(guidance_scale).__name__}.")
        self.model, self.y, self.w, self.null_label = model, y.long(), float(guidance_scale), null_label_of(model)

    def __call__(self, x: Tensor, t: Tensor | float) -> Tensor:
        if x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has a batch of {x.shape[0]} but {self.y.shape[0]} labels were given.")
        t = batch_times(t, x)
        y = self.y.to(x.device)
        if self.w == 1.0:
            return self.model(x, t, y)
        null = torch.full_like(y, self.null_label)
        if self.w == 0.0:
            return self.model(x, t, null)
        u = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([null, y]))
        u_null, u_cond = u.chunk(2)
        return (1 - self.w) * u_null + self.w * u_cond


@torch.no_grad()
def generate_guided(model: nn.Module, labels: Tensor, guidance_scale: float, shape: tuple[int, ...] = (1, 8, 8),
             n_steps: int = 50, method: str = "euler", seed: int = 0,
             device: torch.device | str | None = None) -> Tensor:
    """Sample one image per requested label by simulating the CFG field from noise at ``t = 0`` to ``t = 1``.

    Args:
        labels: shape ``(n,)``, the requested classes.
        shape: the shape of one sample.
        method: ``"euler"`` or ``"heun"``.
        seed: seeds the starting noise (drawn on the CPU, so the same on every device).

    Returns:
        Samples of shape ``(n, *shape)`` on the model's device.
    """
    labels = as_tensor(labels, "labels")
    validate_positive_int(n_steps, "n_steps")
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}.")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn((labels.shape[0], *shape), generator=gen).to(dev)
    ode = VectorFieldODE(CFGVectorField(model, labels.to(dev), guidance_scale))
    sim = EulerSimulator(ode) if method == "euler" else HeunSimulator(ode)
    was_training = model.training
    model.eval()
    try:
        return sim.simulate(x0, time_grid(n_steps, device=dev))
    finally:
        model.train(was_training)
