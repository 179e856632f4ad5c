r"""Dynamics: ordinary and stochastic differential equations.

An ODE is given by its vector field (drift) :math:`u_t(x)`:

.. math:: \frac{d}{dt} X_t = u_t(X_t).

An SDE adds noise driven by a Brownian motion :math:`W_t`, scaled by the diffusion
coefficient :math:`\sigma_t(x)`:

.. math:: dX_t = u_t(X_t)\,dt + \sigma_t(X_t)\,dW_t.

Conventions shared by every class here:

* ``x`` has shape ``(batch, *state_shape)``; ``drift`` returns the same shape.
* ``t`` is a 0-dim tensor (every particle at the same time, as in a simulation) or a tensor
  of shape ``(batch,)`` (one time per particle, as in training); :func:`expand_time` turns
  either into a shape that broadcasts against ``x``.
* ``diffusion`` returns something that broadcasts against ``x`` (diagonal noise): a plain
  float for a constant σ (the cheapest: no tensor is made), or a tensor of ``x``'s shape.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from ._validation import as_tensor, validate_batch, validate_positive
from .distributions import Density, Gaussian


class ODE(ABC):
    """An ODE :math:`\\dot X_t = u_t(X_t)`; subclasses implement :meth:`drift`."""

    @abstractmethod
    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        """The vector field :math:`u_t(x)`; ``x`` is ``(batch, ...)``, returns the same shape."""


class SDE(ABC):
    """An SDE :math:`dX_t = u_t(X_t)dt + \\sigma_t(X_t) dW_t`."""

    @abstractmethod
    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        """The drift :math:`u_t(x)`, same shape as ``x``."""

    @abstractmethod
    def diffusion(self, x: Tensor, t: Tensor) -> Tensor | float:
        """The diffusion coefficient :math:`\\sigma_t(x)`: a float, or a tensor broadcastable against ``x``."""


class VectorFieldODE(ODE):
    """The ODE of any field ``field(x, t)``: a neural network, or an exact marginal field."""

    def __init__(self, field):
        if not callable(field):
            raise TypeError(f"field must be callable as field(x, t), got {type(field).__name__}.")
        self.field = field

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return self.field(x, t)


class LangevinCorrectedSDE(SDE):
    r"""Sample a probability path with noise:
    :math:`dX_t = \big[u_t(X_t) + \tfrac12\sigma_t^2\nabla\log p_t(X_t)\big]dt + \sigma_t\,dW_t`.

    If ``vector_field`` generates the path :math:`p_t` (its ODE carries :math:`p_0` to
    :math:`p_t`) and ``score`` is :math:`\nabla \log p_t`, this SDE has the same marginals for
    every :math:`\sigma_t \ge 0`: the Langevin term :math:`\tfrac12\sigma_t^2\nabla\log p_t\,dt + \sigma_t dW_t`
    leaves :math:`p_t` unchanged (Fokker–Planck). :math:`\sigma = 0` is the probability-flow ODE.

    Args:
        vector_field: callable ``(x, t) -> u_t(x)``.
        score: callable ``(x, t) -> ∇log p_t(x)``.
        sigma: a constant σ ≥ 0, or a callable ``t -> σ_t`` (``t`` a 0-dim tensor).
    """

    def __init__(self, vector_field, score, sigma):
        for name, f in (("vector_field", vector_field), ("score", score)):
            if not callable(f):
                raise TypeError(f"{name} must be callable as {name}(x, t), got {type(f).__name__}.")
        if not callable(sigma):
            validate_positive(sigma, "sigma", allow_zero=True)
        self.vector_field, self.score, self.sigma = vector_field, score, sigma
        self._path = None  # set by from_flow: the score is converted from the field's own value

    @classmethod
    def from_flow(cls, vector_field, path, sigma) -> LangevinCorrectedSDE:
        r"""The SDE of a flow model alone, its score converted from its field on a Gaussian ``path``:
        :math:`s_t(x) = ` ``path.velocity_to_score(u_t(x), x, t)``.

        The same SDE as ``LangevinCorrectedSDE(u, lambda x, t: path.velocity_to_score(u(x, t), x, t), sigma)``,
        but the drift evaluates the network once per step instead of twice (the conversion needs
        the very value of :math:`u_t(x)` that the drift adds), which halves a sampler's cost.
        """
        if not callable(getattr(path, "velocity_to_score", None)):
            raise TypeError(f"path must be a Gaussian path with velocity_to_score(u, x, t) (e.g. ll.AffinePath), "
                            f"got {type(path).__name__}.")
        sde = cls(vector_field, lambda x, t: path.velocity_to_score(vector_field(x, t), x, t), sigma)
        sde._path = path
        return sde

    def _sigma(self, t: Tensor):
        return self.sigma(t) if callable(self.sigma) else self.sigma

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        u = self.vector_field(x, t)
        if not callable(self.sigma) and self.sigma == 0:
            return u  # the probability-flow ODE: the score is not needed
        sigma = self._sigma(t)
        score = self.score(x, t) if self._path is None else self._path.velocity_to_score(u, x, t)
        return u + 0.5 * sigma**2 * score

    def diffusion(self, x: Tensor, t: Tensor):
        return self._sigma(t)


class LinearODE(ODE):
    r"""The linear ODE :math:`\dot x = A x` in :math:`\mathbb R^d`, with closed-form flow.

    Its flow is the matrix exponential, :math:`\psi_t(x_0) = e^{tA} x_0`; the scalar case
    :math:`A = -\theta I` gives exponential decay :math:`\psi_t(x_0) = e^{-\theta t} x_0`.

    Args:
        A: shape ``(d, d)``.
    """

    def __init__(self, A: Tensor):
        A = as_tensor(A, "A")
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square matrix of shape (d, d), got {tuple(A.shape)}.")
        if not bool(torch.isfinite(A).all()):
            raise ValueError("A must be finite.")
        self.A = A

    @classmethod
    def decay(cls, theta: float, dim: int = 1) -> LinearODE:
        """:math:`u(x) = -\\theta x` in ``dim`` dimensions."""
        theta = validate_positive(theta, "theta", allow_zero=True)
        return cls(-theta * torch.eye(dim))

    @classmethod
    def spiral(cls, decay: float = 0.5, omega: float = 3.0) -> LinearODE:
        """A damped rotation in the plane: trajectories spiral into the origin."""
        return cls(torch.tensor([[-decay, -omega], [omega, -decay]]))

    @property
    def dim(self) -> int:
        return self.A.shape[0]

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        # .to(x) follows the state's dtype and device (a no-op when they already match),
        # so that a float64 convergence study needs no float64 copy of the ODE.
        return x @ self.A.to(x).T

    def flow(self, x0: Tensor, t: float | Tensor) -> Tensor:
        """The exact solution :math:`\\psi_t(x_0) = e^{tA}x_0` at one time ``t``; ``x0`` is ``(batch, d)``."""
        x0 = validate_batch(x0, "x0", dim=self.dim)
        t = torch.as_tensor(t, dtype=x0.dtype)
        if t.ndim != 0:
            raise ValueError(f"t must be a single time, got shape {tuple(t.shape)}.")
        return x0 @ torch.linalg.matrix_exp(t * self.A.to(x0)).T


class BrownianMotion(SDE):
    r"""Scaled Brownian motion :math:`dX_t = \sigma\,dW_t`: zero drift, constant diffusion.

    Started at 0, :math:`X_t \sim \mathcal N(0, \sigma^2 t I)`.
    """

    def __init__(self, sigma: float = 1.0):
        self.sigma = validate_positive(sigma, "sigma", allow_zero=True)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def diffusion(self, x: Tensor, t: Tensor) -> float:
        return self.sigma


class OrnsteinUhlenbeck(SDE):
    r"""The Ornstein–Uhlenbeck process :math:`dX_t = -\theta X_t\,dt + \sigma\,dW_t`.

    For :math:`\theta > 0` it forgets its start exponentially fast and settles into the
    stationary law :math:`\mathcal N(0, \sigma^2/(2\theta))`.
    """

    def __init__(self, theta: float, sigma: float):
        self.theta = validate_positive(theta, "theta", allow_zero=True)
        self.sigma = validate_positive(sigma, "sigma", allow_zero=True)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return -self.theta * x

    def diffusion(self, x: Tensor, t: Tensor) -> float:
        return self.sigma

    @property
    def stationary_variance(self) -> float:
        """:math:`\\sigma^2 / (2\\theta)` (needs θ > 0)."""
        if self.theta == 0:
            raise ValueError("with theta = 0 the process is a Brownian motion: it has no stationary law.")
        return self.sigma**2 / (2 * self.theta)

    def marginal_mean_var(self, x0: Tensor, t: float) -> tuple[Tensor, float]:
        r"""Exact law of :math:`X_t` given :math:`X_0 = x_0`: mean :math:`e^{-\theta t}x_0`,
        variance :math:`\frac{\sigma^2}{2\theta}(1 - e^{-2\theta t})` per coordinate."""
        t = validate_positive(t, "t", allow_zero=True)
        if self.theta == 0:
            return x0.clone(), self.sigma**2 * t
        return math.exp(-self.theta * t) * x0, self.stationary_variance * (1 - math.exp(-2 * self.theta * t))


class LangevinSDE(SDE):
    r"""Overdamped Langevin dynamics for a target density :math:`p`:

    .. math:: dX_t = \tfrac12 \sigma^2 \nabla \log p(X_t)\,dt + \sigma\,dW_t.

    Its stationary law is :math:`p` itself, whatever :math:`\sigma > 0`; σ sets how fast it mixes.
    """

    def __init__(self, density: Density, sigma: float):
        if not isinstance(density, Density):
            raise TypeError(f"density must be a labs_lib Density (with log_density), got {type(density).__name__}.")
        self.density = density
        self.sigma = validate_positive(sigma, "sigma")

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return 0.5 * self.sigma**2 * self.density.score(x)

    def diffusion(self, x: Tensor, t: Tensor) -> float:
        return self.sigma


def ou_as_langevin(theta: float, sigma: float, dim: int = 1) -> LangevinSDE:
    """The OU process written as Langevin dynamics of its stationary Gaussian."""
    var = OrnsteinUhlenbeck(theta, sigma).stationary_variance
    return LangevinSDE(Gaussian.isotropic(dim, math.sqrt(var)), sigma)
