"""Small models, fixed data and the hand computation of the CFM loss that ``test_losses.py`` shares
with the tests of the trainers built on the losses (``test_training.py``, ``test_score_matching.py``,
``test_guidance.py``), kept in one place."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from labs_lib import AffinePath, CondOTScheduler, CosineScheduler, GaussianMixture, MLPField, Sampleable, SqrtScheduler

PATH = AffinePath(CondOTScheduler())

SCHEDULERS = [CondOTScheduler(), CosineScheduler(), SqrtScheduler()]


class Fixed(Sampleable):
    """A 'distribution' that returns the same batch every time (for hand computations)."""

    def __init__(self, batch: Tensor):
        self.batch = batch
        self.shape = tuple(batch.shape[1:])

    def sample(self, n: int, generator=None) -> Tensor:
        assert n == self.batch.shape[0]
        return self.batch.clone()


def seeded_field(seed: int = 0, hidden=(16, 16)) -> MLPField:
    torch.manual_seed(seed)
    return MLPField(2, hidden)


def mixture_target() -> GaussianMixture:
    """Five Gaussian modes on a circle of radius 4 (std 0.5): the score-matching tests' data."""
    return GaussianMixture.symmetric_2d(5, radius=4.0, std=0.5)


# --- the conditional flow matching loss, by hand ------------------------------------------------


def hand_cfm(model, alpha, beta, d_alpha, d_beta, x_0, x_1, t):
    """‖u(x_t, t) - (α̇ x_1 + β̇ x_0)‖² summed over a sample's coordinates, averaged over the batch,
    written out with explicit loops so that it shares no code with labs_lib."""
    total = 0.0
    for i in range(x_0.shape[0]):
        ti = float(t[i])
        xt = alpha(ti) * x_1[i] + beta(ti) * x_0[i]
        target = d_alpha(ti) * x_1[i] + d_beta(ti) * x_0[i]
        out = model(xt.unsqueeze(0), t[i:i + 1])[0]
        total += float(((out - target) ** 2).sum().detach())
    return total / x_0.shape[0]


SCHEDULE_FORMULAS = {
    "condot": (CondOTScheduler(), lambda t: t, lambda t: 1 - t, lambda t: 1.0, lambda t: -1.0),
    "cosine": (CosineScheduler(), lambda t: math.sin(math.pi * t / 2), lambda t: math.cos(math.pi * t / 2),
               lambda t: math.pi / 2 * math.cos(math.pi * t / 2), lambda t: -math.pi / 2 * math.sin(math.pi * t / 2)),
    "sqrt": (SqrtScheduler(), lambda t: t, lambda t: math.sqrt(1 - t), lambda t: 1.0,
             lambda t: -0.5 / math.sqrt(1 - t)),
}


# --- guidance: a labelled field and a labelled batch --------------------------------------------


class Recorder(nn.Module):
    """A guided field u(x, t, y) = tanh(a_y·x + b_y·t) that records the batches and labels it saw."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.num_classes = self.null_label = num_classes
        self.a = nn.Parameter(0.5 + torch.rand(num_classes + 1, generator=gen))
        self.b = nn.Parameter(torch.randn(num_classes + 1, generator=gen))
        self.calls: list[int] = []
        self.labels: list[torch.Tensor] = []

    def forward(self, x, t, y):
        self.calls.append(x.shape[0])
        self.labels.append(y.detach().clone())
        shape = (-1,) + (1,) * (x.ndim - 1)
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]) if torch.as_tensor(t).ndim == 0 else t
        return torch.tanh(self.a[y].reshape(shape) * x + self.b[y].reshape(shape) * t.reshape(shape))


def labelled_batch(shape=(6, 1, 3, 3), seed=0):
    """``x_1, y, t, x_0, drop``: seeded data, labels in 0..9, times, noise, and every other label dropped."""
    gen = torch.Generator().manual_seed(seed)
    x_1, x_0 = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    t = torch.rand(shape[0], generator=gen)
    y = torch.randint(10, (shape[0],), generator=gen)
    drop = torch.tensor([True, False] * (shape[0] // 2))
    return x_1, y, t, x_0, drop
