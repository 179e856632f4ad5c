"""Distributions: things we can sample from, and things whose density we can evaluate.

Two small interfaces carry the whole course:

* :class:`Sampleable` — ``sample(n)`` returns ``n`` i.i.d. draws of shape ``(n, *shape)``.
  Data sets (moons, checkerboard, digits) are only sampleable: we have examples, no formula.
  The 2-D toy sets do know their exact density (``exact_log_density``), but only so that
  sample-quality verdicts (:mod:`labs_lib.yardstick`) can ask where a generated point lies; they
  are not ``Density`` objects, so no sampler or trainer of the course can lean on it.
* :class:`Density` — ``log_density(x)`` returns ``log p(x)`` of shape ``(n,)``; the score
  :math:`\\nabla_x \\log p(x)` then comes for free from autograd (:meth:`Density.score`).

Gaussians and Gaussian mixtures are both, which is why they are the test beds of the course:
samples to train on, and an exact density (and exact marginal paths, later) to compare against.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from ._validation import as_tensor, validate_batch, validate_positive, validate_positive_int


class Sampleable(ABC):
    """A distribution we can draw samples from."""

    #: shape of one sample, e.g. ``(2,)`` for points in the plane
    shape: tuple[int, ...]

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` i.i.d. samples, shape ``(n, *self.shape)``."""

    @property
    def dim(self) -> int:
        """Number of coordinates of one sample (``prod(shape)``)."""
        return math.prod(self.shape)


class LabelledSampleable(Sampleable):
    """A distribution over labelled examples :math:`(z, y)`, with labels ``0 .. num_classes - 1``."""

    #: number of classes; labels are the integers ``0 .. num_classes - 1``
    num_classes: int

    @abstractmethod
    def sample_labelled(self, n: int, generator: torch.Generator | None = None,
                        label: int | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` labelled examples: images ``(n, *shape)`` and labels ``(n,)`` (int64).

        With ``label`` given, draw from the class ``label`` only (:math:`p_{\\rm data}(z \\mid y)`).
        """

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` examples and drop their labels, shape ``(n, *shape)``."""
        return self.sample_labelled(n, generator)[0]


class Density(ABC):
    """A distribution whose (possibly unnormalised) log-density we can evaluate."""

    shape: tuple[int, ...]

    @abstractmethod
    def log_density(self, x: Tensor) -> Tensor:
        """``log p(x)`` for a batch ``x`` of shape ``(n, *shape)``; returns shape ``(n,)``."""

    @property
    def device(self) -> torch.device:
        """The device :meth:`log_density` expects its input on: that of the density's own tensors.

        The first tensor attribute found (a mean, a mixture's means, a buffer) decides; a density
        holding no tensor is evaluated on the CPU. A density whose tensors live elsewhere (in a
        network, say) overrides this property.
        """
        for value in vars(self).values():
            if isinstance(value, Tensor):
                return value.device
            if isinstance(value, nn.Module):
                param = next(value.parameters(), None)
                if param is not None:
                    return param.device
        return torch.device("cpu")

    def score(self, x: Tensor) -> Tensor:
        """The score :math:`\\nabla_x \\log p(x)`, shape ``(n, *shape)``, computed by autograd.

        Because the samples of a batch are independent, the gradient of the *sum* of the
        log-densities with respect to the batch is the batch of per-sample gradients.
        Works inside ``torch.no_grad()`` and never modifies ``x``.
        """
        x = validate_batch(x, "x")
        with torch.enable_grad():
            x_ = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.log_density(x_).sum(), x_)
        return grad


def _device_dtype(t: Tensor) -> dict:
    return {"device": t.device, "dtype": t.dtype}


class Gaussian(Sampleable, Density):
    r"""The normal distribution :math:`\mathcal N(\mu, \Sigma)` in :math:`\mathbb R^d`.

    Args:
        mean: shape ``(d,)``.
        cov: shape ``(d, d)``, symmetric positive definite.
    """

    def __init__(self, mean: Tensor, cov: Tensor):
        mean, cov = as_tensor(mean, "mean"), as_tensor(cov, "cov")
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape (d,), got {tuple(mean.shape)}.")
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(f"cov must have shape ({d}, {d}) to match mean, got {tuple(cov.shape)}.")
        if cov.device != mean.device:
            raise ValueError(f"mean is on {mean.device} but cov is on {cov.device}.")
        if not torch.allclose(cov, cov.T, atol=1e-6):
            raise ValueError("cov must be symmetric.")
        try:
            self._chol = torch.linalg.cholesky(cov.to(mean.dtype))
        except RuntimeError as err:  # torch reports the failing minor; say what it means
            raise ValueError("cov must be positive definite (its Cholesky factorisation failed).") from err
        self.mean, self.cov = mean, cov.to(mean.dtype)
        self.shape = (d,)
        self._log_det = 2 * torch.log(torch.diagonal(self._chol)).sum()

    @classmethod
    def isotropic(cls, dim: int, std: float = 1.0, device: torch.device | str | None = None) -> Gaussian:
        """:math:`\\mathcal N(0, \\text{std}^2 I_d)`."""
        validate_positive_int(dim, "dim")
        std = validate_positive(std, "std")
        return cls(torch.zeros(dim, device=device), std**2 * torch.eye(dim, device=device))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        validate_positive_int(n, "n")
        eps = torch.randn(n, self.shape[0], generator=generator, **_device_dtype(self.mean))
        return self.mean + eps @ self._chol.T

    def log_density(self, x: Tensor) -> Tensor:
        x = validate_batch(x, "x", dim=self.shape[0])
        diff = (x - self.mean).unsqueeze(-1)  # (n, d, 1)
        sol = torch.linalg.solve_triangular(self._chol, diff, upper=False).squeeze(-1)
        d = self.shape[0]
        return -0.5 * (sol**2).sum(-1) - 0.5 * self._log_det - 0.5 * d * math.log(2 * math.pi)

    def to(self, device: torch.device | str) -> Gaussian:
        return Gaussian(self.mean.to(device), self.cov.to(device))


class GaussianMixture(Sampleable, Density):
    r"""A mixture :math:`\sum_k \pi_k \mathcal N(\mu_k, \Sigma_k)`.

    Args:
        means: shape ``(K, d)``.
        covs: shape ``(K, d, d)``.
        weights: shape ``(K,)``, non-negative; normalised here.
    """

    def __init__(self, means: Tensor, covs: Tensor, weights: Tensor | None = None):
        means, covs = as_tensor(means, "means"), as_tensor(covs, "covs")
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}.")
        k, d = means.shape
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape ({k}, {d}, {d}) to match means, got {tuple(covs.shape)}.")
        if weights is None:
            weights = torch.ones(k, device=means.device, dtype=means.dtype)
        weights = as_tensor(weights, "weights")
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},), got {tuple(weights.shape)}.")
        if bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError("weights must be non-negative with a positive sum.")
        try:
            self._chol = torch.linalg.cholesky(covs.to(means.dtype))
        except RuntimeError as err:
            raise ValueError("every covariance in covs must be positive definite.") from err
        self.means, self.covs = means, covs.to(means.dtype)
        self.weights = (weights / weights.sum()).to(means.dtype)
        self.shape = (d,)
        self._log_dets = 2 * torch.log(torch.diagonal(self._chol, dim1=-2, dim2=-1)).sum(-1)

    @property
    def n_modes(self) -> int:
        return self.means.shape[0]

    @classmethod
    def isotropic(cls, means: Tensor, std: float | Tensor, weights: Tensor | None = None) -> GaussianMixture:
        """Mixture of :math:`\\mathcal N(\\mu_k, \\text{std}_k^2 I)`; ``std`` a number or shape ``(K,)``."""
        means = as_tensor(means, "means")
        k, d = means.shape
        std_t = torch.as_tensor(std, dtype=means.dtype, device=means.device).expand(k)
        if bool((std_t <= 0).any()):
            raise ValueError(f"std must be > 0, got {std}.")
        covs = std_t.view(k, 1, 1) ** 2 * torch.eye(d, dtype=means.dtype, device=means.device)
        return cls(means, covs, weights)

    @classmethod
    def random_2d(cls, n_modes: int, std: float = 0.3, scale: float = 6.0, seed: int = 0,
                  device: torch.device | str | None = None) -> GaussianMixture:
        """Equal-weight modes with means uniform in the square ``[-scale, scale]²``."""
        validate_positive_int(n_modes, "n_modes")
        validate_positive(std, "std")
        validate_positive(scale, "scale")
        gen = torch.Generator().manual_seed(seed)
        means = (torch.rand(n_modes, 2, generator=gen) * 2 - 1) * scale
        return cls.isotropic(means.to(device), std)

    @classmethod
    def symmetric_2d(cls, n_modes: int, radius: float = 5.0, std: float = 0.5,
                     device: torch.device | str | None = None) -> GaussianMixture:
        """Equal-weight modes evenly spaced on a circle of the given radius."""
        validate_positive_int(n_modes, "n_modes")
        validate_positive(radius, "radius")
        validate_positive(std, "std")
        angles = torch.arange(n_modes, dtype=torch.float32) * (2 * math.pi / n_modes)
        means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        return cls.isotropic(means.to(device), std)

    def component_log_densities(self, x: Tensor) -> Tensor:
        """``log π_k + log N(x; μ_k, Σ_k)`` for every component, shape ``(n, K)``."""
        x = validate_batch(x, "x", dim=self.shape[0])
        if x.device != self.means.device:
            raise ValueError(f"x is on {x.device} but the mixture is on {self.means.device}.")
        diff = (x.unsqueeze(1) - self.means).unsqueeze(-1)  # (n, K, d, 1)
        sol = torch.linalg.solve_triangular(self._chol, diff, upper=False).squeeze(-1)
        d = self.shape[0]
        log_norm = -0.5 * self._log_dets - 0.5 * d * math.log(2 * math.pi)
        return torch.log(self.weights) + log_norm - 0.5 * (sol**2).sum(-1)

    def log_density(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_densities(x), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        validate_positive_int(n, "n")
        dev = self.means.device
        idx = torch.multinomial(self.weights.cpu(), n, replacement=True, generator=generator).to(dev)
        eps = torch.randn(n, self.shape[0], 1, generator=generator, dtype=self.means.dtype).to(dev)
        return self.means[idx] + (self._chol[idx] @ eps).squeeze(-1)

    def to(self, device: torch.device | str) -> GaussianMixture:
        return GaussianMixture(self.means.to(device), self.covs.to(device), self.weights.to(device))


class _Toy2D(Sampleable):
    """Base for the i.i.d. 2-D toy data sets; samples are drawn on the CPU and then moved."""

    shape = (2,)

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        validate_positive_int(n, "n")
        return self._sample(n, generator).to(self.device)

    @abstractmethod
    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor: ...


def _curve_log_density(x: Tensor, nodes: Tensor, std: float) -> Tensor:
    r"""Log-density of points spread uniformly along a curve and jittered by :math:`\mathcal N(0, \text{std}^2 I)`.

    The curve is given by ``nodes`` (shape ``(m, 2)``), the midpoints of ``m`` equal pieces of
    its parameter range, so the density is the midpoint rule for
    :math:`\int \mathcal N(x;\, c(a), \text{std}^2 I)\, \mathrm d a` over the normalised parameter.
    Gaussians summed on a grid finer than their width integrate almost exactly (the error falls
    like :math:`e^{-2\pi^2 \text{std}^2/\Delta^2}` for node spacing :math:`\Delta`): the callers keep
    :math:`\Delta` at most half of ``std``.

    Args:
        x: shape ``(n, 2)``.
        nodes: shape ``(m, 2)``.
    """
    x = validate_batch(x, "x", dim=2)
    nodes = nodes.to(device=x.device, dtype=torch.float64)
    log_norm = math.log(nodes.shape[0]) + math.log(2 * math.pi * std**2)
    # Blocks of points keep the (block, m, 2) differences small; squared differences (not cdist)
    # keep the gradient finite at a node, so the score by autograd works everywhere.
    parts = [torch.logsumexp(-(block.double().unsqueeze(1) - nodes).pow(2).sum(-1) / (2 * std**2), dim=1)
             for block in x.split(4096)]
    return (torch.cat(parts) - log_norm).to(x.dtype)


class Moons(_Toy2D):
    """Two interleaving half circles with Gaussian jitter ``noise``, scaled by ``scale``.

    ``exact_log_density`` is exact up to a quadrature along the half circles
    (:func:`_curve_log_density`), so sample-quality verdicts can ask where each generated point lies.
    """

    def __init__(self, noise: float = 0.05, scale: float = 3.0, device=None):
        super().__init__(device)
        self.noise = validate_positive(noise, "noise", allow_zero=True)
        self.scale = validate_positive(scale, "scale")

    def _sample(self, n, generator):
        upper = torch.rand(n, generator=generator) < 0.5
        angle = torch.rand(n, generator=generator) * math.pi
        x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
        y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
        pts = torch.stack([x - 0.5, y - 0.25], dim=1)
        pts = pts + self.noise * torch.randn(n, 2, generator=generator)
        return self.scale * pts

    def exact_log_density(self, x: Tensor) -> Tensor:
        """``log p(x)``, shape ``(n,)``, for ``x`` of shape ``(n, 2)`` (for judging samples only)."""
        if self.noise == 0:
            raise ValueError("Moons(noise=0) lies on two curves: it has no density in the plane. Use noise > 0.")
        m = max(64, math.ceil(2 * math.pi / self.noise))  # node spacing ≤ noise / 2 along each half circle
        a = (torch.arange(m, dtype=torch.float64) + 0.5) * (math.pi / m)
        upper = torch.stack([torch.cos(a) - 0.5, torch.sin(a) - 0.25], dim=1)
        lower = torch.stack([0.5 - torch.cos(a), 0.25 - torch.sin(a)], dim=1)
        return _curve_log_density(x, self.scale * torch.cat([upper, lower]), self.scale * self.noise)


class Circles(_Toy2D):
    """Two concentric circles (radii ``scale`` and ``factor·scale``) with Gaussian jitter.

    Like :class:`Moons`, it knows its exact density (up to quadrature along the circles).
    """

    def __init__(self, noise: float = 0.05, factor: float = 0.5, scale: float = 3.0, device=None):
        super().__init__(device)
        self.noise = validate_positive(noise, "noise", allow_zero=True)
        if not 0 < factor < 1:
            raise ValueError(f"factor (inner radius / outer radius) must be in (0, 1), got {factor}.")
        self.factor = factor
        self.scale = validate_positive(scale, "scale")

    def _sample(self, n, generator):
        inner = torch.rand(n, generator=generator) < 0.5
        angle = torch.rand(n, generator=generator) * 2 * math.pi
        radius = torch.where(inner, torch.tensor(self.factor), torch.tensor(1.0))
        pts = radius.unsqueeze(1) * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        pts = pts + self.noise * torch.randn(n, 2, generator=generator)
        return self.scale * pts

    def exact_log_density(self, x: Tensor) -> Tensor:
        """``log p(x)``, shape ``(n,)``, for ``x`` of shape ``(n, 2)`` (for judging samples only)."""
        if self.noise == 0:
            raise ValueError("Circles(noise=0) lies on two curves: it has no density in the plane. Use noise > 0.")
        # Half the points on each circle, uniform in angle: equally many nodes on each.
        m = max(64, math.ceil(4 * math.pi / self.noise))  # spacing ≤ noise / 2 on the outer circle
        a = (torch.arange(m, dtype=torch.float64) + 0.5) * (2 * math.pi / m)
        ring = torch.stack([torch.cos(a), torch.sin(a)], dim=1)
        return _curve_log_density(x, self.scale * torch.cat([ring, self.factor * ring]), self.scale * self.noise)


class Checkerboard(_Toy2D):
    """Uniform on the dark squares of a ``grid × grid`` board covering ``[-scale, scale]²``.

    Its density is constant on the dark squares and zero elsewhere: ``exact_log_density`` is
    ``-inf`` off them.
    """

    def __init__(self, grid: int = 4, scale: float = 3.0, device=None):
        super().__init__(device)
        self.grid = validate_positive_int(grid, "grid")
        self.scale = validate_positive(scale, "scale")

    def _sample(self, n, generator):
        g = self.grid
        # Pick a dark square uniformly, then a point uniformly inside it.
        dark = torch.tensor([(i, j) for i in range(g) for j in range(g) if (i + j) % 2 == 0])
        cell = dark[torch.randint(len(dark), (n,), generator=generator)]
        pts = (cell + torch.rand(n, 2, generator=generator)) / g  # in [0, 1]^2
        return self.scale * (2 * pts - 1)

    def on_dark_square(self, x: Tensor) -> Tensor:
        """Whether each point lies on a dark square: ``(n, 2)`` → ``(n,)`` bool."""
        x = validate_batch(x, "x", dim=2)
        u = (x.detach() / self.scale + 1) / 2 * self.grid  # board coordinates, squares of side 1
        inside = ((u >= 0) & (u < self.grid)).all(dim=1)
        cell = u.floor().long()
        return inside & ((cell[:, 0] + cell[:, 1]) % 2 == 0)

    def exact_log_density(self, x: Tensor) -> Tensor:
        """``log p(x)``, shape ``(n,)``: ``-log(area of the dark squares)`` on them, ``-inf`` elsewhere."""
        n_dark = (self.grid**2 + 1) // 2
        log_p = -math.log(n_dark * (2 * self.scale / self.grid) ** 2)
        on = self.on_dark_square(x)
        return torch.where(on, torch.full(on.shape, log_p, dtype=x.dtype, device=x.device),
                           torch.full(on.shape, -math.inf, dtype=x.dtype, device=x.device))
