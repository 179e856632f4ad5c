r"""Numerical simulators for ODEs and SDEs on a time grid :math:`t_0 < t_1 < \dots < t_n`.

A simulator needs exactly one method, :meth:`Simulator.step`, that advances a batch of
states from :math:`t` to :math:`t + h`. Everything else (looping over the grid, recording
a trajectory, catching a blow-up) lives in the base class, once.

* Euler (ODE, order 1): :math:`x' = x + h\,u_t(x)`.
* Heun (ODE, order 2): predict :math:`\tilde x = x + h\,u_t(x)`, then average the slopes,
  :math:`x' = x + \tfrac h2\,[u_t(x) + u_{t+h}(\tilde x)]`.
* Euler–Maruyama (SDE, weak order 1): :math:`x' = x + h\,u_t(x) + \sigma_t(x)\sqrt h\,\varepsilon`,
  :math:`\varepsilon \sim \mathcal N(0, I)`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ._validation import validate_batch, validate_positive_int, validate_same_device, validate_time_grid
from .dynamics import ODE, SDE

_CHECK_EVERY = 8


def _all_finite(x: Tensor) -> bool:
    """Whether every entry of ``x`` is finite.

    A NaN or ±inf entry makes the sum non-finite, and a sum costs a fifth of
    ``isfinite(x).all()`` on the CPU; only when the sum is not finite (which a sum of huge
    finite values can also be) do we pay for the exact test.
    """
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


@dataclass
class Trajectory:
    """States recorded along a simulation.

    Attributes:
        times: shape ``(k,)``, the recorded times (always the first and the last grid time).
        states: shape ``(k, batch, *state_shape)``; ``states[j]`` is the batch at ``times[j]``.
    """

    times: Tensor
    states: Tensor

    @property
    def final(self) -> Tensor:
        """The states at the last recorded time, shape ``(batch, *state_shape)``."""
        return self.states[-1]


class Simulator(ABC):
    """Advances a batch of states along a time grid; subclasses implement :meth:`step`."""

    @abstractmethod
    def step(self, x: Tensor, t: Tensor, h: float) -> Tensor:
        """One step from time ``t`` to ``t + h``.

        Args:
            x: the current states, shape ``(batch, *state_shape)``. Must not be modified.
            t: the current time, a 0-dim tensor on ``x``'s device.
            h: the step size, a positive Python float.

        Returns:
            The states at time ``t + h``, a new tensor of the same shape as ``x``.
        """

    def _prepare(self, x0: Tensor, ts: Tensor) -> tuple[Tensor, list[Tensor], list[float]]:
        x0 = validate_batch(x0, "x0")
        ts = validate_time_grid(ts, "ts")
        validate_same_device(x0=x0, ts=ts)
        ts = ts.to(x0.dtype)
        # One unbind up front is cheaper than indexing the grid at every step.
        return x0, list(ts.unbind()), torch.diff(ts).tolist()

    def _run(self, x: Tensor, times: list[Tensor], hs: list[float], states: Tensor | None = None,
             rec_idx: list[int] | None = None) -> Tensor:
        """The one loop behind both public methods; writes recorded states into ``states``."""
        last_ok, last_ok_step = x, 0
        j = 1
        n = len(hs)
        for i, h in enumerate(hs):
            x = self.step(x, times[i], h)
            # Checking every step would cost ~15% of a cheap SDE step; a NaN or inf never
            # turns finite again, so checking every few steps catches it all the same.
            if (i + 1) % _CHECK_EVERY == 0 or i + 1 == n:
                if not _all_finite(x):
                    raise self._locate_blow_up(last_ok, last_ok_step, i, times, hs)
                last_ok, last_ok_step = x, i + 1
            if states is not None and i + 1 == rec_idx[j]:
                states[j] = x
                j += 1
        return x

    def _locate_blow_up(self, x: Tensor, first: int, last: int, times: list[Tensor],
                        hs: list[float]) -> FloatingPointError:
        """Replay steps ``first..last`` one by one to name the step where the state blew up."""
        for i in range(first, last + 1):
            x = self.step(x, times[i], hs[i])
            if not _all_finite(x):
                where = f"at step {i} (t = {float(times[i]):.4g} → {float(times[i]) + hs[i]:.4g})"
                h = hs[i]  # the size of the step that blew up (grids need not be uniform)
                break
        else:  # a stochastic step may not blow up again on the replay
            where = f"between step {first} and step {last} (t ≈ {float(times[first]):.4g}–{float(times[last]):.4g})"
            h = max(hs[first:last + 1])
        return FloatingPointError(
            f"the state became NaN or infinite {where}. The step size h = {h:.3g} is probably "
            "too large for this drift: use a finer time grid (more steps)."
        )

    @torch.no_grad()
    def simulate(self, x0: Tensor, ts: Tensor) -> Tensor:
        """Simulate from ``ts[0]`` to ``ts[-1]`` and return only the final states.

        Args:
            x0: initial states, shape ``(batch, *state_shape)``.
            ts: time grid, shape ``(n_steps + 1,)``, strictly increasing, on ``x0``'s device.

        Returns:
            The states at ``ts[-1]``, shape ``(batch, *state_shape)``.

        Raises:
            FloatingPointError: if a state becomes NaN or infinite, naming the step.
        """
        x, times, hs = self._prepare(x0, ts)
        return self._run(x, times, hs)

    @torch.no_grad()
    def simulate_with_trajectory(self, x0: Tensor, ts: Tensor, every: int = 1) -> Trajectory:
        """Simulate and record the states at every ``every``-th grid time (and at the end).

        Args:
            x0: initial states, shape ``(batch, *state_shape)``.
            ts: time grid, shape ``(n_steps + 1,)``.
            every: record one state every ``every`` steps.

        Returns:
            A :class:`Trajectory` with ``times`` of shape ``(k,)`` and ``states`` of shape
            ``(k, batch, *state_shape)``, where ``k = ceil(n_steps / every) + 1``.
        """
        validate_positive_int(every, "every")
        x, times, hs = self._prepare(x0, ts)
        n = len(hs)
        rec_idx = list(range(0, n + 1, every))
        if rec_idx[-1] != n:
            rec_idx.append(n)
        states = torch.empty((len(rec_idx), *x.shape), dtype=x.dtype, device=x.device)
        states[0] = x
        self._run(x, times, hs, states, rec_idx)
        return Trajectory(times=torch.stack([times[i] for i in rec_idx]), states=states)


class ODESimulator(Simulator, ABC):
    """A simulator for an :class:`~labs_lib.dynamics.ODE`, available as ``self.ode``."""

    def __init__(self, ode: ODE):
        if not isinstance(ode, ODE):
            hint = " It is an SDE: use an SDE simulator such as EulerMaruyamaSimulator." if isinstance(ode, SDE) else ""
            raise TypeError(f"ode must be a labs_lib ODE, got {type(ode).__name__}.{hint}")
        self.ode = ode


class SDESimulator(Simulator, ABC):
    """A simulator for an :class:`~labs_lib.dynamics.SDE`, available as ``self.sde``."""

    def __init__(self, sde: SDE):
        if not isinstance(sde, SDE):
            raise TypeError(f"sde must be a labs_lib SDE (with drift and diffusion), got {type(sde).__name__}.")
        self.sde = sde


class EulerSimulator(ODESimulator):
    """Euler's method: follow the current slope for a whole step (global error O(h))."""

    def step(self, x: Tensor, t: Tensor, h: float) -> Tensor:
        return x + h * self.ode.drift(x, t)


class HeunSimulator(ODESimulator):
    """Heun's method: average the slope at the start and at an Euler guess of the end (O(h²))."""

    def step(self, x: Tensor, t: Tensor, h: float) -> Tensor:
        u = self.ode.drift(x, t)
        x_guess = x + h * u
        return x + 0.5 * h * (u + self.ode.drift(x_guess, t + h))


class EulerMaruyamaSimulator(SDESimulator):
    """Euler–Maruyama: an Euler step plus a Gaussian kick of standard deviation σ√h."""

    def step(self, x: Tensor, t: Tensor, h: float) -> Tensor:
        noise = torch.randn_like(x)
        return x + h * self.sde.drift(x, t) + self.sde.diffusion(x, t) * math.sqrt(h) * noise


def time_grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """A uniform grid of ``n_steps + 1`` times from ``t0`` to ``t1``, shape ``(n_steps + 1,)``."""
    validate_positive_int(n_steps, "n_steps")
    if not t1 > t0:
        raise ValueError(f"t1 must be larger than t0, got t0 = {t0}, t1 = {t1}.")
    return torch.linspace(t0, t1, n_steps + 1, device=device, dtype=dtype)
