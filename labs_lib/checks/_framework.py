"""The machinery every checker shares: reports, failures, and the common step properties.

Checkers for the exercises: one function per exercise, called by the cell after it.

A checker runs the student's code on seeded inputs of several shapes, compares it with
the reference in ``labs_lib``, and returns a :class:`CheckReport` whose text says what was
verified. On a wrong answer it names the property that failed and, where it recognises a
common mistake (a wrong sign, ``h`` instead of ``√h``, the drift at the wrong time...),
says so. An exercise that still raises ``NotImplementedError`` gets a one-line reminder.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from ..simulators import Simulator

# State shapes every checker tries: a single point, a batch in the plane, 3-D states and
# image-shaped states (batch, channels, height, width).
SHAPES: tuple[tuple[int, ...], ...] = ((1, 2), (6, 2), (5, 3), (4, 1, 3, 3))


class CheckFailed(Exception):
    """A property of the student's answer does not hold; the message says which and why."""


@dataclass
class CheckReport:
    """What a checker verified. ``passed`` is None while the exercise is not implemented."""

    exercise: str
    passed: bool | None
    lines: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.passed)

    @property
    def message(self) -> str:
        return "\n".join(self.lines)

    def __repr__(self) -> str:
        return self.message


def run_check(exercise: str, body: Callable[[Callable[[str], None]], None]) -> CheckReport:
    """Run ``body(ok)``, where ``ok(text)`` records a verified property and a failure raises
    :class:`CheckFailed`; turn the outcome into a report."""
    lines: list[str] = []
    try:
        # The checks seed torch; forking keeps the notebook's own random stream untouched.
        with torch.random.fork_rng(devices=[]):
            body(lambda text: lines.append(f"✓ {text}"))
    except NotImplementedError:
        return CheckReport(exercise, None, [
            f"… {exercise}: not implemented yet. Replace the `raise NotImplementedError` in the "
            "cell above with your code, run that cell, then run this check again."])
    except CheckFailed as failure:
        return CheckReport(exercise, False, lines + [f"✗ {exercise}: {failure}"])
    except Exception as err:  # the student's code crashed: show the error, not a traceback
        hint = _hint_for_error(err)
        return CheckReport(exercise, False, lines + [
            f"✗ {exercise}: your code raised {type(err).__name__}: {err}" + (f"\n  Hint: {hint}" if hint else "")])
    return CheckReport(exercise, True, lines + [f"✔ {exercise}: all checks passed."])


def _hint_for_error(err: Exception) -> str:
    text = str(err)
    if isinstance(err, TypeError) and "sqrt" in text:
        return "h is a Python float: take its square root with math.sqrt(h) or h ** 0.5."
    if isinstance(err, RuntimeError) and "size of tensor" in text:
        return "a shape mismatch: keep every term the same shape as x (no sums or slices over axes)."
    return ""


def close(a: Tensor, b: Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol, atol=tol))


def call_step(sim: Simulator, x: Tensor, t: Tensor, h: float) -> Tensor:
    """Call ``sim.step`` and check the properties every step must have."""
    x_before = x.clone()
    out = sim.step(x, t, h)
    if not isinstance(out, Tensor):
        raise CheckFailed(f"step must return a torch.Tensor, got {type(out).__name__}. Did you forget `return`?")
    if not torch.equal(x, x_before):
        raise CheckFailed("step modified its input x in place (e.g. `x += ...`). Build a new tensor "
                          "instead (`x = x + ...`): the simulator may have stored the old x in a trajectory.")
    if out.shape != x.shape:
        raise CheckFailed(f"for x of shape {tuple(x.shape)} step returned shape {tuple(out.shape)}. "
                          "Every term must keep x's shape: check for a sum, a slice or a stray broadcast.")
    return out


def diagnose(out: Tensor, candidates: dict[str, Tensor], fallback: str) -> CheckFailed:
    for hint, wrong in candidates.items():
        if close(out, wrong):
            return CheckFailed(hint)
    return CheckFailed(fallback)


def require_subclass(cls: type, base: type, exercise: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise CheckFailed(f"pass your class itself (a subclass of {base.__name__}), e.g. "
                          f"check_{exercise}(MyClass), not {cls!r}.")


def per_sample_sum(sq: Tensor) -> Tensor:
    """Sum a ``(batch, *state_shape)`` tensor over everything but the batch: shape ``(batch,)``."""
    return sq.flatten(1).sum(1)


def per_sample_time(t: Tensor | float, x: Tensor) -> Tensor:
    """The time a stand-in network received, shaped to broadcast against ``x``.

    Accepts what a student may reasonably pass (a number, a 0-dim tensor, or one time per sample in
    any shape with ``batch`` elements) and fails with a hint for anything else.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.numel() == 1:
        return t.reshape(())
    if t.numel() == x.shape[0]:
        return t.reshape(-1, *([1] * (x.ndim - 1)))
    raise CheckFailed(f"the network was called with t of shape {tuple(t.shape)} for x of shape "
                      f"{tuple(x.shape)}: pass one time per sample, t of shape (batch,).")


def require_gradient(loss: Tensor, model: torch.nn.Module,
                     reference_loss: Callable[[torch.nn.Module], Tensor], tol: float = 1e-4) -> None:
    """Check that a loss with the right value also has the right gradient with respect to ``model``.

    ``reference_loss(m)`` computes the reference loss with the network ``m``; it is evaluated on an
    untouched copy of ``model``. A loss computed through ``.detach()``, ``torch.no_grad()`` or NumPy
    has no gradient, or a wrong one.
    """
    if loss.grad_fn is None:
        raise CheckFailed("the loss has the right value but carries no gradient: the network's output "
                          "was detached (.detach(), torch.no_grad(), or a detour through NumPy). "
                          "Training needs loss.backward() to reach the network's parameters.")
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    fresh = copy.deepcopy(model)
    ref_grads = torch.autograd.grad(reference_loss(fresh), list(fresh.parameters()))
    if any(g is None or not close(g, r, tol) for g, r in zip(grads, ref_grads)):
        raise CheckFailed("the loss has the right value, but its gradient with respect to the network's "
                          "parameters is wrong: is part of the computation detached?")


def require_scalar_loss(out: object, x: Tensor, name: str = "x") -> Tensor:
    """Check that a loss function returned a 0-dim tensor (for states ``x`` of shape ``(batch, ...)``)."""
    if isinstance(out, (float, int)):
        raise CheckFailed("the loss is a Python number (after .item() or float()?): return the tensor itself, "
                          "so that loss.backward() can reach the network's parameters.")
    if not isinstance(out, Tensor):
        raise CheckFailed(f"the loss must be a torch.Tensor, got {type(out).__name__}. Did you forget `return`?")
    if out.ndim != 0:
        if out.shape in ((x.shape[0],), (x.shape[0], 1)):
            raise CheckFailed(f"the loss has shape {tuple(out.shape)}: one value per sample. Average the "
                              "per-sample squared errors over the batch (.mean()) to get a single number.")
        raise CheckFailed(f"the loss must be a single number (a 0-dim tensor), got shape {tuple(out.shape)} "
                          f"for {name} of shape {tuple(x.shape)}. Sum the squared error over each sample's "
                          "coordinates, then average over the batch.")
    return out
