r"""Checkers for notebook 05: the conditional flow matching loss, and the ODE of a learned field.

The loss is compared with the definition the course trains with, :func:`labs_lib.losses.cfm_loss`
(the reference policy is stated in :mod:`labs_lib.checks`):

.. math:: \frac1B\sum_{i=1}^B \big\|u^\theta_{t_i}(x_{t_i}) - (\dot\alpha_{t_i}x_1^{(i)} + \dot\beta_{t_i}x_0^{(i)})\big\|^2,
          \qquad x_t = \alpha_t x_1 + \beta_t x_0,

the squared norm summed over a sample's coordinates and averaged over the batch. Two
schedules are tried: the linear (CondOT) one, and the cosine one, whose
:math:`\dot\alpha_t, \dot\beta_t` are not constant, so that a loss hard-wired to
:math:`x_1 - x_0` is caught.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..dynamics import ODE, VectorFieldODE
from ..losses import cfm_loss
from ..times import expand_time
from ..models import MLPField
from ..paths import AffinePath, CosineScheduler
from ..simulators import EulerSimulator, time_grid
from ._framework import (LOSS_SCHEDULES, LOSS_SHAPES, CheckFailed, ElementwiseNet, Ok, call_guarded,
                         check_loss_exercise, checker, close, construct, diagnose, per_sample_sum, require_scalar_loss,
                         require_state_shaped, require_subclass)


def _check_field() -> ElementwiseNet:
    r"""A stand-in field :math:`u_t(x) = a\tanh(x) + b\,x\cos(3t) + c\,t + d`, elementwise and trainable."""
    return ElementwiseNet(lambda x, t, a, b, c, d: a * torch.tanh(x) + b * x * torch.cos(3 * t) + c * t + d,
                          (0.8, -0.6, 1.4, 0.3))


def _loss_inputs(seed: int = 0):
    """``(where, a fresh stand-in field, (path, x_0, x_1, t))`` for both schedules and every test shape."""
    gen = torch.Generator().manual_seed(seed)
    for name, scheduler in LOSS_SCHEDULES:
        for shape in LOSS_SHAPES:
            x_0 = torch.randn(shape, generator=gen)
            x_1 = 2.0 + 0.5 * torch.randn(shape, generator=gen)
            # t away from 1, where the library clamps the time of singular formulas
            t = 0.05 + 0.9 * torch.rand(shape[0], generator=gen)
            yield (f"with the {name} schedule and x of shape {shape}", _check_field(),
                   (AffinePath(scheduler), x_0, x_1, t))


def _call_loss(fn: Callable, model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor) -> Tensor:
    out = call_guarded(lambda: fn(model, path, x_0, x_1, t), {"x_0": x_0, "x_1": x_1, "t": t}, "your loss",
                       "Build new tensors instead (`x = x * ...`, not `x *= ...`).",
                       lambda err: f"a shape mismatch for x of shape {tuple(x_0.shape)} ({err}). The schedule "
                                   "values path.scheduler(t).alpha_t etc. have shape (batch,): reshape them to "
                                   "(batch, 1, ...) before multiplying with x, e.g. ll.expand_time(alpha, x_0).")
    return require_scalar_loss(out, x_0, "x_0")


def _path_point(path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(x_t, its velocity)`` with the schedule values reshaped to broadcast against the states."""
    s = path.scheduler(t)
    a, b, da, db = (expand_time(v, x_0) for v in (s.alpha_t, s.beta_t, s.d_alpha_t, s.d_beta_t))
    return a * x_1 + b * x_0, da * x_1 + db * x_0


def _cfm_mistakes(model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor) -> dict[str, Tensor]:
    """The named mistakes of exercise 1: hint → the loss that wrong line of code returns on this input."""

    def loss(x: Tensor, time: Tensor, target: Tensor) -> Tensor:
        return per_sample_sum((model(x, time) - target) ** 2).mean()

    x_t, target = _path_point(path, x_0, x_1, t)
    swapped_x_t, swapped_target = _path_point(path, x_1, x_0, t)
    ref, u = loss(x_t, t, target), model(x_t, t)
    d, batch = x_0[0].numel(), x_0.shape[0]
    mistakes = {
        "the target has the wrong sign: the velocity of x_t = α_t x_1 + β_t x_0 is "
        "α̇_t x_1 + β̇_t x_0 (for the linear path x_1 − x_0, not x_0 − x_1).": loss(x_t, t, -target),
        "the network was evaluated at the data x_1. Evaluate it at the point on the path, "
        "x_t = α_t x_1 + β_t x_0.": loss(x_1, t, target),
        "the network was evaluated at the noise x_0. Evaluate it at the point on the path, "
        "x_t = α_t x_1 + β_t x_0.": loss(x_0, t, target),
        "the network was evaluated at time 1 − t; call it at the time t of the path point: "
        "model(x_t, t).": loss(x_t, 1 - t, target),
        "x_0 and x_1 are swapped: x_t = α_t x_1 + β_t x_0, so that x_t is noise at t = 0 "
        "and data at t = 1.": loss(swapped_x_t, t, target),
        "x_0 and x_1 are swapped (in x_t and in the target): x_t = α_t x_1 + β_t x_0 is "
        "noise at t = 0 and data at t = 1.": loss(swapped_x_t, t, swapped_target),
        "the target must be the velocity α̇_t x_1 + β̇_t x_0 (the time derivative of x_t), "
        "not the point x_t itself.": loss(x_t, t, x_t),
        "the target must be the velocity α̇_t x_1 + β̇_t x_0, not the data x_1.": loss(x_t, t, x_1),
        "the target x_1 − x_t points from x_t to the data, but it is not the path's velocity: use "
        "α̇_t x_1 + β̇_t x_0 (the time derivative of x_t).": loss(x_t, t, x_1 - x_t),
        f"the loss is {d}× too small: it averages over the {d} coordinates of a sample (a .mean() over "
        "everything?). Sum the squared error over a sample's coordinates, average only over the batch.": ref / d,
        f"the loss is {batch}× too large: it sums over the batch. Average over the batch "
        "(.mean()) after summing over each sample's coordinates.": ref * batch,
        "the error is not squared: use the squared norm ‖u − target‖², a sum of squares "
        "(not absolute values).": per_sample_sum((u - target).abs()).mean(),
        "the norm is not squared: the loss is the *squared* norm ‖u − target‖², averaged "
        "over the batch.": (u - target).flatten(1).norm(dim=1).mean(),
    }
    if t.numel() > 1:
        t_0 = t[:1].expand_as(t)
        x_t0, target_0 = _path_point(path, x_0, x_1, t_0)
        mistakes["one time was used for the whole batch (t[0], or a single torch.rand(1)): every sample "
                 "has its own time t[i]; use the tensor t of shape (batch,) as given."] = loss(x_t0, t_0, target_0)
    if isinstance(path.scheduler, CosineScheduler):
        linear_x_t = expand_time(t, x_0) * x_1 + (1 - expand_time(t, x_0)) * x_0
        hint = ("uses the formulas of the linear path (x_t = t x_1 + (1 − t) x_0, target "
                "x_1 − x_0) for every path. Take α_t, β_t, α̇_t, β̇_t from "
                "path.scheduler(t): the check also uses the cosine schedule.")
        mistakes.update({
            f"the target {hint}": loss(x_t, t, x_1 - x_0),
            f"x_t {hint}": loss(linear_x_t, t, target),
            f"your loss {hint}": loss(linear_x_t, t, x_1 - x_0),
        })
    if x_0.ndim == 2 and x_0.shape[0] == x_0.shape[1]:
        # (batch,)-shaped schedule values broadcast along the coordinates instead of the batch
        s = path.scheduler(t)
        mistakes["the schedule values (shape (batch,)) were broadcast along the coordinates instead "
                 "of the batch: reshape them to (batch, 1, ...), e.g. ll.expand_time(alpha, x_0)."] = loss(
            s.alpha_t * x_1 + s.beta_t * x_0, t, s.d_alpha_t * x_1 + s.d_beta_t * x_0)
    return mistakes


@checker("conditional flow matching loss")
def check_cfm_loss(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(model, path, x_0, x_1, t)`` against the conditional flow matching loss:
    value (two schedules, several state shapes) and gradients with respect to the network."""
    check_loss_exercise(fn, ok, "cfm_loss", _call_loss, _loss_inputs(), cfm_loss, _cfm_mistakes,
                        "the conditional flow matching loss", "matches ‖u_θ(x_t, t) − (α̇_t x_1 + β̇_t x_0)‖², "
                        "summed over coordinates and averaged over the batch, for the CondOT and cosine schedules")


# --- the learned ODE ---------------------------------------------------------------------------


def _networks():
    """Pairs of distinct small networks (so that a drift that ignores its network shows), with states."""
    gen = torch.Generator().manual_seed(5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nets = {2: (MLPField(2, (16, 16)), MLPField(2, (16, 16))), 3: (MLPField(3, (16,)), MLPField(3, (16,)))}
    field_a, field_b = _check_field(), _check_field()
    with torch.no_grad():
        field_b.coef.mul_(-1.5)
    yield nets[2], torch.randn(1, 2, generator=gen)
    yield nets[2], torch.randn(6, 2, generator=gen)
    yield nets[3], torch.randn(5, 3, generator=gen)
    yield (field_a, field_b), torch.randn(4, 1, 3, 3, generator=gen)


def _make(cls: type, net: nn.Module) -> ODE:
    return construct(cls, (net,), lambda err: f"{cls.__name__}(model) failed: {err}. __init__ must take the network "
                                              "as its one argument and keep it, e.g. self.model = model.")


def _drift(ode: ODE, x: Tensor, t: Tensor) -> Tensor:
    out = call_guarded(lambda: ode.drift(x, t), {"x": x}, "drift", "Return a new tensor.")
    return require_state_shaped(out, x, "drift", "The velocity has the shape of the state: return the "
                                "network's output as it is.").detach()


def _drift_mistakes(net: nn.Module, x: Tensor, t: Tensor) -> dict[str, Tensor]:
    """The named mistakes of exercise 2: hint → the drift that wrong line of code returns for the network."""
    ref = net(x, t)
    return {
        "the drift has the wrong sign: it is the network's output u_t(x) = model(x, t).": -ref,
        "the network was evaluated at time 1 − t; the drift at time t is model(x, t).": net(x, 1 - t),
        "the drift returned x + u_t(x), an Euler step of size 1. Return only the velocity "
        "model(x, t): the simulator takes the steps.": x + ref,
        "the drift ignores t (the network was called at time 0): pass the time on, "
        "model(x, t). The field changes along the path.": net(x, torch.tensor(0.0)),
        "the drift ignores t (the network was called at time 1): pass the time on, "
        "model(x, t).": net(x, torch.tensor(1.0)),
    }


@checker("learned ODE")
def check_learned_ode(cls: type, ok: Ok) -> None:
    """Check an ODE class whose drift is a network: ``cls(model).drift(x, t)`` must be ``model(x, t)``."""
    require_subclass(cls, ODE, "learned_ode")
    times = [torch.tensor(v) for v in (0.3, 0.8, 0.0)]  # 0.3 first: 1 − t, 0 and 1 all differ from t
    for (net_a, net_b), x in _networks():
        ode_a, ode_b = _make(cls, net_a), _make(cls, net_b)
        for t in times:
            out = _drift(ode_a, x, t)
            with torch.no_grad():
                ref = net_a(x, t)
                if close(out, _drift(ode_b, x, t)) and not close(ref, net_b(x, t)):
                    raise CheckFailed("two different networks gave the same drift: your drift ignores the "
                                      "network passed to __init__ (a global variable?). Use self.model.")
                if not close(out, ref):
                    raise diagnose(out, _drift_mistakes(net_a, x, t),
                                   f"for x of shape {tuple(x.shape)} and t = {float(t):.1f} your drift differs "
                                   f"from model(x, t) by up to {float((out - ref).abs().max()):.3g}.")
    ok("drift(x, t) equals model(x, t) for two MLPs (d = 2, 3), an elementwise network on image-shaped "
       "states (batch, 1, 3, 3), and t = 0.3, 0.8, 0")

    net = next(iter(_networks()))[0][0]  # a 2-D MLP
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(6))
    t = torch.linspace(0.1, 0.9, 7)
    try:
        out = _drift(_make(cls, net), x, t)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckFailed(f"drift failed for per-sample times t of shape (batch,): {err}. An ODE's drift "
                          "takes t as a 0-dim tensor or as one time per sample; pass t straight to the "
                          "network (no float(t)).") from None
    with torch.no_grad():
        if not close(out, net(x, t)):
            raise CheckFailed("with one time per sample (t of shape (batch,)) your drift differs from "
                              "model(x, t): pass t to the network unchanged.")
    ok("also accepts one time per sample, t of shape (batch,)")

    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(7))
    grid = time_grid(10)
    mine = EulerSimulator(_make(cls, net)).simulate(x0, grid)
    ref = EulerSimulator(VectorFieldODE(net)).simulate(x0, grid)
    if not close(mine, ref, 1e-4):
        raise CheckFailed("simulated with Euler's method, your ODE does not follow the network's field.")
    ok("Euler's method on your ODE reproduces the flow of the network's field")


__all__ = ["check_cfm_loss", "check_learned_ode"]
