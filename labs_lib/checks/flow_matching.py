r"""Checkers for notebook 05: the conditional flow matching loss, the training loop, and sampling by Euler's method.

The loss is compared with the definition the course trains with, :func:`labs_lib.losses.cfm_loss`
(the reference policy is stated in :mod:`labs_lib.checks`):

.. math:: \frac1B\sum_{i=1}^B \big\|u^\theta_{t_i}(x_{t_i})
          - (\dot\alpha_{t_i}x_1^{(i)} + \dot\beta_{t_i}x_0^{(i)})\big\|^2,
          \qquad x_t = \alpha_t x_1 + \beta_t x_0,

the squared norm summed over a sample's coordinates and averaged over the batch. Two
schedules are tried: the linear (CondOT) one, and the cosine one, whose
:math:`\dot\alpha_t, \dot\beta_t` are not constant, so that a loss hard-wired to
:math:`x_1 - x_0` is caught.

The training loop is judged by what it does, not by how it is written: the checker hands it a data
set that keeps every batch it gives out and a loss that records every call, then checks the draws
(the data's own batches, fresh standard Gaussian noise and uniform times every step) and replays
Adam with the linearly decaying learning rate on the recorded batches, from the same initial
weights; the student's final weights must be the replay's.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector

from ..distributions import Sampleable
from ..dynamics import VectorFieldODE
from ..losses import cfm_loss
from ..models import MLPField
from ..paths import AffinePath, CondOTScheduler, CosineScheduler
from ..simulators import EulerSimulator, HeunSimulator, time_grid
from ._framework import (LOSS_SCHEDULES, LOSS_SHAPES, CheckFailed, ElementwiseNet, Ok, call_guarded,
                         check_loss_exercise, checker, close, diagnose, per_sample_sum, require_function,
                         require_scalar_loss, require_state_shaped)


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


def _cfm_mistakes(model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor) -> dict[str, Tensor]:
    """The named mistakes of exercise 1: hint → the loss that wrong line of code returns on this input."""

    def loss(x: Tensor, time: Tensor, target: Tensor) -> Tensor:
        return per_sample_sum((model(x, time) - target) ** 2).mean()

    s, swapped = path.sample(x_0, x_1, t), path.sample(x_1, x_0, t)
    x_t, target = s.x_t, s.dx_t
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
        "and data at t = 1.": loss(swapped.x_t, t, target),
        "x_0 and x_1 are swapped (in x_t and in the target): x_t = α_t x_1 + β_t x_0 is "
        "noise at t = 0 and data at t = 1.": loss(swapped.x_t, t, swapped.dx_t),
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
        one = path.sample(x_0, x_1, t[:1].expand_as(t))
        mistakes["one time was used for the whole batch (t[0], or a single torch.rand(1)): every sample has its "
                 "own time t[i]; use the tensor t of shape (batch,) as given."] = loss(one.x_t, one.t, one.dx_t)
    if isinstance(path.scheduler, CosineScheduler):
        linear = AffinePath(CondOTScheduler()).sample(x_0, x_1, t)
        hint = ("uses the formulas of the linear path (x_t = t x_1 + (1 − t) x_0, target x_1 − x_0) for every "
                "path. Take α_t, β_t, α̇_t, β̇_t from path.scheduler(t): the check also uses the cosine schedule.")
        mistakes.update({
            f"the target {hint}": loss(x_t, t, linear.dx_t),
            f"x_t {hint}": loss(linear.x_t, t, target),
            f"your loss {hint}": loss(linear.x_t, t, linear.dx_t),
        })
    if x_0.ndim == 2 and x_0.shape[0] == x_0.shape[1]:
        # (batch,)-shaped schedule values broadcast along the coordinates instead of the batch
        raw = path.scheduler(t)
        mistakes["the schedule values (shape (batch,)) were broadcast along the coordinates instead "
                 "of the batch: reshape them to (batch, 1, ...), e.g. ll.expand_time(alpha, x_0)."] = loss(
            raw.alpha_t * x_1 + raw.beta_t * x_0, t, raw.d_alpha_t * x_1 + raw.d_beta_t * x_0)
    return mistakes


@checker("conditional flow matching loss")
def check_cfm_loss(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(model, path, x_0, x_1, t)`` against the conditional flow matching loss:
    value (two schedules, several state shapes) and gradients with respect to the network."""
    check_loss_exercise(fn, ok, "cfm_loss", _call_loss, _loss_inputs(), cfm_loss, _cfm_mistakes,
                        "the conditional flow matching loss", "matches ‖u_θ(x_t, t) − (α̇_t x_1 + β̇_t x_0)‖², "
                        "summed over coordinates and averaged over the batch, for the CondOT and cosine schedules")


# --- the training loop ---------------------------------------------------------------------------

# The checker's run: few steps of a small network, a learning rate large enough that every mistake
# of the schedule or the optimiser moves the final weights well beyond float32 rounding.
_LOOP_STEPS, _LOOP_BATCH, _LOOP_LR = 40, 64, 0.02


class _RecordedData(Sampleable):
    """Points of N((2, −1), 0.5² I) from a generator of their own (so that the student's draws of noise
    and times keep the global random stream to themselves); every batch given out is kept."""

    shape = (2,)

    def __init__(self):
        self.generator = torch.Generator().manual_seed(11)
        self.batches: list[Tensor] = []

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise CheckFailed(f"data.sample takes the number of points, a positive int, got {n!r}: "
                              "data.sample(batch_size).")
        batch = torch.tensor([2.0, -1.0]) + 0.5 * torch.randn(n, 2, generator=self.generator)
        self.batches.append(batch.clone())
        return batch


class _RecordingLoss:
    """``ll.cfm_loss`` that checks and keeps the inputs of every call, and the value it returned."""

    def __init__(self, data: _RecordedData, batch_size: int):
        self.data, self.batch_size = data, batch_size
        self.calls: list[tuple[Tensor, Tensor, Tensor]] = []
        self.values: list[float] = []

    def __call__(self, model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor) -> Tensor:
        step = len(self.calls) + 1
        if not all(isinstance(v, Tensor) for v in (x_0, x_1, t)):
            raise CheckFailed(f"at step {step} loss_fn got x_0, x_1, t that are not all tensors: call it as "
                              "loss_fn(model, path, x_0, x_1, t).")
        if not self.data.batches or not torch.equal(x_1.detach().cpu(), self.data.batches[-1]):
            raise CheckFailed(f"at step {step} the x_1 given to loss_fn is not the batch that data.sample returned "
                              "just before: x_1 is this step's data, x_1 = data.sample(batch_size); x_0 is the noise.")
        if x_1.shape != (self.batch_size, 2):
            raise CheckFailed(f"at step {step} the data batch has shape {tuple(x_1.shape)}, not (batch_size, 2) = "
                              f"({self.batch_size}, 2): draw data.sample(batch_size).")
        if x_0.shape != x_1.shape:
            raise CheckFailed(f"at step {step} the noise x_0 has shape {tuple(x_0.shape)} but the data x_1 has shape "
                              f"{tuple(x_1.shape)}: draw one noise vector per data point, torch.randn_like(x_1).")
        if t.shape != (self.batch_size,):
            raise CheckFailed(f"at step {step} t has shape {tuple(t.shape)}: loss_fn takes one time per sample, "
                              f"t of shape (batch_size,) = ({self.batch_size},).")
        if not bool(((t >= 0) & (t <= 1)).all()):
            raise CheckFailed(f"at step {step} some times lie outside [0, 1] (from {float(t.min()):.2f} to "
                              f"{float(t.max()):.2f}): draw t uniformly on [0, 1], torch.rand(batch_size).")
        self.calls.append((x_0.detach().cpu().clone(), x_1.detach().cpu().clone(), t.detach().cpu().clone()))
        value = cfm_loss(model, path, x_0, x_1, t)
        self.values.append(float(value.detach()))
        return value


def _replay(model: nn.Module, path: AffinePath, calls: list, lr: float,
            factor: Callable[[int, int], float] = lambda k, n: 1 - 0.9 * k / n, zero_grad: bool = True,
            sgd: bool = False) -> Tensor:
    """The weights after training a copy of ``model`` on the recorded batches, as one flattened vector.

    The reference with the defaults (step k of n at the learning rate ``lr·factor(k, n)``); the arguments
    make the named mistakes: another decay, gradients never zeroed, or SGD for Adam. (``optimizer.step()``
    before ``loss.backward()`` after zeroing the gradients steps on no gradient at all: the network stays
    as it was.)"""
    model = copy.deepcopy(model)
    opt = (torch.optim.SGD if sgd else torch.optim.Adam)(model.parameters(), lr=lr)
    for k, (x_0, x_1, t) in enumerate(calls):
        for group in opt.param_groups:
            group["lr"] = lr * factor(k, len(calls))
        if zero_grad:
            opt.zero_grad()
        cfm_loss(model, path, x_0, x_1, t).backward()
        opt.step()
    return parameters_to_vector(model.parameters()).detach()


def _loop_mistakes(model: nn.Module, path: AffinePath, calls: list, lr: float) -> dict[str, Tensor]:
    """The named mistakes of the loop exercise: hint → the final weights that wrong loop ends with."""
    replay = functools.partial(_replay, model, path, calls, lr)
    decay = "lower it linearly to a tenth: step k (counting from 0) uses lr·(1 − 0.9·k/n_steps)"
    return {
        "your loop leaves the network as it was: every step needs loss.backward() and then optimizer.step(), "
        "in that order (with optimizer.zero_grad() before the backward pass, not between it and the "
        "step).": parameters_to_vector(model.parameters()).detach(),
        "the gradients are never zeroed, so they add up over the steps: call optimizer.zero_grad() at every "
        "step, before loss.backward().": replay(zero_grad=False),
        f"the learning rate stays at lr all along: {decay}.": replay(lambda k, n: 1.0),
        f"the learning rate falls to zero, not to a tenth: {decay}.": replay(lambda k, n: 1 - k / n),
        f"the learning rate runs one step ahead (the first step already uses less than lr): {decay}.":
            replay(lambda k, n: 1 - 0.9 * (k + 1) / n),
        "the steps are plain gradient descent (torch.optim.SGD): the exercise asks for "
        "torch.optim.Adam(model.parameters(), lr=lr).": replay(sgd=True),
    }


def _require_draws(calls: list) -> None:
    """The noise and the times of the recorded calls: fresh each step, N(0, I) and U[0, 1] by their moments."""
    x_0 = torch.stack([c[0] for c in calls])  # (steps, batch, 2)
    t = torch.stack([c[2] for c in calls])  # (steps, batch)
    mean, std, t_mean, t_std = float(x_0.mean()), float(x_0.std()), float(t.mean()), float(t.std())
    # With 5,120 noise values and 2,560 times, the moments of the right laws sit far inside the bounds below
    # (standard errors 0.014 for the noise's mean and std, 0.006 and 0.004 for the times').
    for wrong, failure in (
            (torch.equal(x_0[0], x_0[1]), "the noise x_0 is the same at every step: draw fresh noise in the loop, "
                                          "x_0 = torch.randn_like(x_1)."),
            (torch.equal(t[0], t[1]), "the times t are the same at every step: draw fresh times in the loop, "
                                      "t = torch.rand(batch_size)."),
            (bool((t == t[:, :1]).all()), "all the samples of a batch share one time: every sample has its own, "
                                          "t = torch.rand(batch_size) (shape (batch_size,)), not torch.rand(1)."),
            (abs(mean) > 0.1 or abs(std - 1) > 0.1,
             f"the noise x_0 has mean {mean:.2f} and standard deviation {std:.2f}, not 0 and 1: draw it from the "
             "standard Gaussian, x_0 = torch.randn_like(x_1) (not torch.rand)."),
            (abs(t_mean - 0.5) > 0.05 or abs(t_std - math.sqrt(1 / 12)) > 0.03,
             f"the times have mean {t_mean:.2f} and standard deviation {t_std:.2f}, not those of U[0, 1] "
             f"(0.5 and {math.sqrt(1 / 12):.2f}): draw t = torch.rand(batch_size).")):
        if wrong:
            raise CheckFailed(failure)


def _loss_list(out: object, values: list[float]) -> list[float]:
    """What the loop returned, as floats, checked against the loss values of its ``len(values)`` steps."""
    if out is None:
        raise CheckFailed("your loop returned None. Did you forget `return losses`?")
    if (isinstance(out, Tensor) and out.requires_grad) or (
            isinstance(out, (list, tuple)) and any(isinstance(v, Tensor) and v.requires_grad for v in out)):
        raise CheckFailed("your loop returns loss tensors that still carry their autograd graphs: each keeps its "
                          "step's whole graph alive (2,000 steps of it in the lab), and NumPy cannot read them. "
                          "Append the number, losses.append(loss.item()).")
    if isinstance(out, Tensor):
        out = out.detach().flatten().tolist()
    try:
        losses = [float(v) for v in out]
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailed(f"your loop must return the list of the steps' losses as numbers, got "
                          f"{type(out).__name__}.") from None
    if len(losses) != len(values):
        raise CheckFailed(f"your loop returned {len(losses)} losses for {len(values)} steps: one per step, "
                          "appended once per step (losses.append(loss.item())).")
    if not all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(losses, values)):
        raise CheckFailed("the returned losses are not the values loss_fn computed at each step, in order: "
                          "append loss.item() once per step, right after computing it.")
    return losses


@checker("training loop")
def check_training_loop(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(model, path, data, loss_fn, n_steps, batch_size, lr) -> list[float]``: Adam on ``loss_fn``
    over fresh batches (data, standard Gaussian noise, uniform times), the learning rate lowered linearly
    from ``lr`` to a tenth, the loss of every step returned."""
    require_function(fn, "check_training_loop", "my_training_loop")
    torch.manual_seed(0)
    model = MLPField(2, (32, 32))
    start = copy.deepcopy(model)
    path = AffinePath(CondOTScheduler())
    data = _RecordedData()
    loss_fn = _RecordingLoss(data, _LOOP_BATCH)
    out = fn(model, path, data, loss_fn, _LOOP_STEPS, _LOOP_BATCH, _LOOP_LR)
    if len(loss_fn.calls) != _LOOP_STEPS:
        raise CheckFailed(f"for n_steps = {_LOOP_STEPS} your loop called loss_fn {len(loss_fn.calls)} times: "
                          "once per step, on that step's batch.")
    if len(data.batches) != _LOOP_STEPS:
        raise CheckFailed(f"for n_steps = {_LOOP_STEPS} your loop drew {len(data.batches)} data batches: one fresh "
                          "batch per step, data.sample(batch_size), inside the loop.")
    losses = _loss_list(out, loss_fn.values)
    ok(f"calls loss_fn once per step on a fresh data batch, and returns the {_LOOP_STEPS} losses in order")
    _require_draws(loss_fn.calls)
    ok("draws fresh noise x_0 ~ N(0, I) and one time t ~ U[0, 1] per sample at every step")
    reference = _replay(start, path, loss_fn.calls, _LOOP_LR)
    mine = parameters_to_vector(model.parameters()).detach()
    if not close(mine, reference, 1e-4):
        raise diagnose(mine, _loop_mistakes(start, path, loss_fn.calls, _LOOP_LR),
                       f"after {_LOOP_STEPS} steps your network's weights differ from those of Adam with the "
                       f"learning rate lr·(1 − 0.9·k/n_steps) on the same batches, by up to "
                       f"{float((mine - reference).abs().max()):.3g}: one Adam step per batch, after zeroing the "
                       "gradients and calling loss.backward().")
    ok(f"the weights end where Adam ends, with the learning rate lowered linearly from lr to lr/10 "
       f"(the loss fell from {losses[0]:.2f} to {sum(losses[-5:]) / 5:.2f})")


# --- sampling: Euler's method on the network's field ----------------------------------------------


def _sampler_cases():
    """``(network, x_0)`` pairs: MLPs in d = 2 and 3, and an elementwise field on image-shaped states."""
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(0)  # the checker runs on a fork of the global random stream (see run_check)
    mlp_2, mlp_3 = MLPField(2, (16, 16)), MLPField(3, (16,))
    yield mlp_2, torch.randn(6, 2, generator=gen)
    yield mlp_3, torch.randn(5, 3, generator=gen)
    yield _check_field(), torch.randn(4, 1, 3, 3, generator=gen)
    yield mlp_2, torch.randn(1, 2, generator=gen)


def _euler(net: nn.Module, x: Tensor, n_steps: int, step_size: float | None = None, count: int | None = None,
           time: Callable[[int, float], float] = lambda k, h: k * h) -> Tensor:
    """Euler's method on ``net``'s field: the reference with the defaults, a named mistake otherwise."""
    h = 1 / n_steps if step_size is None else step_size
    with torch.no_grad():
        for k in range(n_steps if count is None else count):
            x = x + h * net(x, torch.tensor(time(k, h)))
    return x


def _sampler_mistakes(net: nn.Module, x_0: Tensor, n_steps: int) -> dict[str, Tensor]:
    """The named mistakes of the sampling exercise: hint → the samples that wrong loop returns."""
    mistakes = {
        "each step evaluates the network at the time its step ends, (k + 1)·h: Euler's method takes the velocity "
        "at the start of the step, at time k·h.": _euler(net, x_0, n_steps, time=lambda k, h: (k + 1) * h),
        "the network always gets time 0: pass the time of the step, k·h, so that the field changes along the "
        "way.": _euler(net, x_0, n_steps, time=lambda k, h: 0.0),
        "the time runs backwards (1 − k·h): the flow goes from the noise at t = 0 to the data at t = 1, so step "
        "k starts at time k·h.": _euler(net, x_0, n_steps, time=lambda k, h: 1 - k * h),
        "your loop takes n_steps + 1 steps: n_steps steps of size 1/n_steps reach t = 1 exactly.":
            _euler(net, x_0, n_steps, count=n_steps + 1),
        "that is Heun's method (two network calls per step); the exercise asks for Euler's method, one call "
        "per step.": HeunSimulator(VectorFieldODE(net)).simulate(x_0, time_grid(n_steps)),
        "the step is missing its size: x + h·u_t(x), not x + u_t(x).": _euler(net, x_0, n_steps, step_size=1.0),
    }
    if n_steps > 1:  # (at n_steps = 1 the step 1/(n_steps − 1) does not exist)
        mistakes["the step size is 1/(n_steps − 1): n_steps equal steps from t = 0 to t = 1 have size "
                 "1/n_steps."] = _euler(net, x_0, n_steps, step_size=1 / (n_steps - 1))
    return mistakes


def _call_sampler(fn: Callable, net: nn.Module, x_0: Tensor, n_steps: int) -> Tensor:
    out = call_guarded(lambda: fn(net, x_0, n_steps), {"x_0": x_0}, "your sampler",
                       "Build new tensors (`x = x + ...`), starting from x = x_0, not `x += ...` on x_0.")
    return require_state_shaped(out, x_0, "your sampler", "Return only the states at t = 1, not the "
                                "whole trajectory.")


@checker("Euler sampler")
def check_euler_sampler(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(model, x_0, n_steps)`` → the states at :math:`t = 1` of Euler's method on
    :math:`\frac{d}{dt}x = u^\theta_t(x)` from :math:`x_0` at :math:`t = 0`, in ``n_steps`` equal steps."""
    require_function(fn, "check_euler_sampler", "my_euler_sampler")
    for net, x_0 in _sampler_cases():
        for n_steps in (4, 10, 1):  # 4 first: at n_steps = 1, time k·h run backwards is the step's end
            out = _call_sampler(fn, net, x_0, n_steps)
            if out.requires_grad:
                raise CheckFailed("your samples carry a gradient graph: sampling needs none, and the graph of "
                                  "hundreds of network calls fills the memory. Keep the @torch.no_grad() line "
                                  "above the function (or use `with torch.no_grad():`).")
            ref = EulerSimulator(VectorFieldODE(net)).simulate(x_0, time_grid(n_steps))
            if not close(out.detach(), ref, 1e-4):
                raise diagnose(out.detach(), _sampler_mistakes(net, x_0, n_steps),
                               f"for x_0 of shape {tuple(x_0.shape)} and n_steps = {n_steps} your samples differ "
                               f"from Euler's method on the network's field by up to "
                               f"{float((out.detach() - ref).abs().max()):.3g}.", lambda a, b: close(a, b, 1e-4))
    ok("equals ll.EulerSimulator(ll.VectorFieldODE(model)).simulate(x_0, ll.time_grid(n_steps)) for n_steps = 4, "
       "10, 1, on two MLPs (d = 2, 3) and a field on image-shaped states (batch, 1, 3, 3); leaves x_0 untouched "
       "and returns samples without a gradient graph")


__all__ = ["check_cfm_loss", "check_training_loop", "check_euler_sampler"]
