"""Checkers for notebook 07: the classifier-free guidance loss and the CFG vector field.

Both exercises receive a network ``model(x, t, y)``. The checkers pass a small stand-in network
whose output depends on ``x``, ``t`` and the label in a nonlinear way (so that every mistake moves
the answer), which records how it was called and rejects impossible labels with a clear message.

Lab 08's latent CFG loss (:mod:`labs_lib.checks.latent`) is the same loss on encoded images: its
checker uses this module's stand-in network, loss inputs and table of named mistakes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..losses import cfg_loss
from ..paths import AffinePath, CosineScheduler
from ._framework import (CheckFailed, Ok, check_loss_values, checker, close, diagnose, on_probe_device,
                         require_device_safe, require_function, require_repeatable, require_same_device,
                         require_scalar_loss, require_state_shaped, run_untouched, shapes_text)

# (batch, *state) shapes tried by both checkers: points, vectors, small and digit-sized images
GUIDANCE_SHAPES: tuple[tuple[int, ...], ...] = ((6, 2), (5, 3), (4, 1, 3, 3), (8, 1, 8, 8))
_NUM_CLASSES = 3  # labels 0, 1, 2 and the null label 3
CFG_PATH = AffinePath(CosineScheduler())  # the loss's path; not CondOT, whose velocity is x_1 - x_0


class CheckModel(nn.Module):
    r"""A stand-in guided field :math:`u(x, t, y) = \tanh(a_y x + b_y t) + c_y x t` with a row per label.

    It records the batch size of every call, and raises :class:`CheckFailed` (with a hint) when
    it receives a label outside ``0 .. num_classes`` or a time that does not match the batch.
    """

    def __init__(self, num_classes: int = _NUM_CLASSES, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        k = num_classes + 1
        self.num_classes = self.null_label = num_classes
        self.a = nn.Parameter(0.5 + torch.rand(k, generator=gen))
        self.b = nn.Parameter(torch.randn(k, generator=gen) * 2)
        self.c = nn.Parameter(torch.randn(k, generator=gen))
        self.calls: list[int] = []

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        require_same_device(x, t, y, self.a)
        if not isinstance(y, Tensor) or torch.is_floating_point(y):
            raise CheckFailed(f"the model's labels must be an integer tensor, got {type(y).__name__}"
                              + (f" of dtype {y.dtype}" if isinstance(y, Tensor) else "") + ".")
        if y.shape != (x.shape[0],):
            raise CheckFailed(f"the model was called with x of batch {x.shape[0]} but labels of shape "
                              f"{tuple(y.shape)}: every row of x needs its own label.")
        if y.device.type != "meta" and (bool((y < 0).any()) or bool((y > self.num_classes).any())):
            raise CheckFailed(f"the model received the label {int(y[(y < 0) | (y > self.num_classes)][0])}, but "
                              f"labels must lie in 0 .. {self.num_classes}: the null label is null_label = "
                              f"{self.num_classes} (the number of classes), not -1 or a new number.")
        t = torch.as_tensor(t, dtype=x.dtype)
        if t.ndim == 1 and t.shape[0] != x.shape[0]:
            raise CheckFailed(f"the model was called with x of batch {x.shape[0]} but t of shape {tuple(t.shape)}: "
                              "when you stack two copies of x, stack two copies of t as well (torch.cat([t, t])).")
        self.calls.append(x.shape[0])
        shape = (-1,) + (1,) * (x.ndim - 1)
        tt = t.reshape(shape) if t.ndim == 1 else t
        a, b, c = self.a[y].reshape(shape), self.b[y].reshape(shape), self.c[y].reshape(shape)
        return torch.tanh(a * x + b * tt) + c * x * tt


def _labels(n: int, gen: torch.Generator) -> Tensor:
    """Labels covering every real class (0 .. num_classes - 1) where the batch allows."""
    y = torch.randint(_NUM_CLASSES, (n,), generator=gen)
    y[: min(n, _NUM_CLASSES)] = torch.arange(min(n, _NUM_CLASSES))
    return y


# --- exercise 1: the CFG training loss ------------------------------------------------------


def cfg_loss_inputs(shape: tuple[int, ...], seed: int):
    gen = torch.Generator().manual_seed(seed)
    n = shape[0]
    x_1 = torch.randn(shape, generator=gen)
    x_0 = torch.randn(shape, generator=gen)
    t = 0.05 + 0.9 * torch.rand(n, generator=gen)
    y = _labels(n, gen)
    drop = torch.zeros(n, dtype=torch.bool)
    drop[torch.randperm(n, generator=gen)[: max(1, (2 * n) // 5)]] = True  # about 40% dropped, never none or all
    drop[0], drop[1] = False, True  # keep a 0 and drop a 1, so that a wrong null label always shows
    return x_0, x_1, t, y, drop


def _call_loss(fn: Callable, model: nn.Module, path: AffinePath, *args) -> Tensor:
    """``fn(model, path, x_0, x_1, t, y, drop_mask, null_label)`` (``args`` from ``x_0`` on), called twice
    with different seeds: it must leave its inputs untouched, return a single number, and the same one."""
    torch.manual_seed(1)
    out, changed = run_untouched(lambda: fn(model, path, *args),
                                 dict(zip(("x_0", "x_1", "t", "y", "drop_mask"), args)))
    if changed:
        raise CheckFailed(f"your loss modified its input {changed[0]} in place (e.g. y[drop_mask] = ...). "
                          "Build a new tensor instead: torch.where(drop_mask, null_label, y).")
    require_scalar_loss(out, args[1], "x_1")
    require_repeatable(lambda: fn(model, path, *args), out, "x_0, t and drop_mask")
    return out


def cfg_loss_mistakes(model: nn.Module, path: AffinePath, x_0: Tensor, x_1: Tensor, t: Tensor, y: Tensor, drop: Tensor,
                   null: int) -> dict[str, Tensor]:
    """The named mistakes of exercise 1: hint → the loss that wrong line of code returns on this input."""

    def sq(pred, target):
        return (pred - target).pow(2).flatten(1).sum(1).mean()

    s, swapped = path.sample(x_0, x_1, t), path.sample(x_1, x_0, t)
    nulls = torch.full_like(y, null)
    y_ok = torch.where(drop, nulls, y)
    pred = model(s.x_t, t, y_ok)
    return {
        "the labels were dropped where drop_mask is False: replace y by null_label where drop_mask is True "
        "(torch.where(drop_mask, null_label, y)).": sq(model(s.x_t, t, torch.where(drop, y, nulls)), s.dx_t),
        "no label was dropped: replace y by null_label wherever drop_mask is True before calling the model.":
            sq(model(s.x_t, t, y), s.dx_t),
        "every label was replaced by the null label: drop only where drop_mask is True.":
            sq(model(s.x_t, t, nulls), s.dx_t),
        "dropped labels became 0, a real class. The null label ∅ is the extra index null_label (= the number of "
        "classes), so that the network can tell 'no label' from the digit 0.":
            sq(model(s.x_t, t, torch.where(drop, torch.zeros_like(y), y)), s.dx_t),
        "dropped labels became null_label - 1, the last real class. Use null_label itself.":
            sq(model(s.x_t, t, torch.where(drop, torch.full_like(y, null - 1), y)), s.dx_t),
        "the target x_1 - x_0 is the velocity of the linear (CondOT) path only. Use the path's own conditional "
        "velocity: s = path.sample(x_0, x_1, t), target s.dx_t.": sq(pred, x_1 - x_0),
        "the network must regress the velocity s.dx_t of the path, not the data point x_1.": sq(pred, x_1),
        "x_0 and x_1 are swapped: path.sample takes the noise first, path.sample(x_0, x_1, t).":
            sq(model(swapped.x_t, t, y_ok), swapped.dx_t),
        "the network must be evaluated at the point on the path, x_t = s.x_t, not at the data point x_1.":
            sq(model(x_1, t, y_ok), s.dx_t),
        "the network must be evaluated at the point on the path, x_t = s.x_t, not at the noise x_0.":
            sq(model(x_0, t, y_ok), s.dx_t),
        "the loss was averaged over every coordinate. This course's loss sums the squared error over one "
        "sample's coordinates and averages over the batch: (...).pow(2).flatten(1).sum(1).mean().":
            (pred - s.dx_t).pow(2).mean(),
        "the loss was summed over the batch: average it over the batch with .mean() (after summing over "
        "each sample's coordinates).": (pred - s.dx_t).pow(2).flatten(1).sum(1).sum(),
        "the norm is not squared: the loss is the *squared* error, (...).pow(2).flatten(1).sum(1).mean().":
            (pred - s.dx_t).flatten(1).norm(dim=1).mean(),
        "the error is not squared: use (prediction - target).pow(2), not the absolute value.":
            (pred - s.dx_t).abs().flatten(1).sum(1).mean(),
    }


@checker("CFG loss")
def check_cfg_loss(fn: Callable, ok: Ok) -> None:
    """Check ``fn(model, path, x_0, x_1, t, y, drop_mask, null_label)`` against the CFG loss
    ``mean_i ||model(x_t, t, ỹ) - dx_t||²`` with ``ỹ = null_label`` where ``drop_mask``."""
    require_function(fn, "check_cfg_loss", "my_cfg_loss")
    # (where, a fresh stand-in model, the loss's other arguments) for every shape
    cases = ((f"for x of shape {shape}", CheckModel(seed=k), (CFG_PATH, *cfg_loss_inputs(shape, 10 + k), _NUM_CLASSES))
             for k, shape in enumerate(GUIDANCE_SHAPES))
    check_loss_values(lambda model, *args: _call_loss(fn, model, *args), cases, cfg_loss, cfg_loss_mistakes,
                      "the CFG loss")
    probe = on_probe_device(CheckModel(), *cfg_loss_inputs(GUIDANCE_SHAPES[0], 10))
    require_device_safe(lambda: fn(probe[0], CFG_PATH, *probe[1:], _NUM_CLASSES))
    ok(f"matches mean ‖u(x_t | ỹ) − dx_t‖² for shapes {shapes_text(GUIDANCE_SHAPES)} (a cosine path, so the "
       "target is the path's own velocity)")
    ok("drops exactly the labels where drop_mask is True, to the null label")
    ok("returns a 0-dim tensor that backpropagates into the network, leaves its inputs untouched, and "
       "creates its tensors on the inputs' device")


# --- exercise 2: the CFG vector field -------------------------------------------------------


def _field_inputs(shape: tuple[int, ...], seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    t = torch.rand(shape[0], generator=gen)
    return x, t, _labels(shape[0], gen)


_GUIDANCE_SCALES = (2.5, 0.4, 4.0, 3.0)


def _field_mistakes(model: nn.Module, x: Tensor, t: Tensor, y: Tensor, w: float, null: int) -> dict[str, Tensor]:
    """The named mistakes of exercise 2: hint → the field that wrong line of code returns on this input."""
    u_null, u_cond = model(x, t, torch.full_like(y, null)), model(x, t, y)
    return {
        "the weights are swapped (or the halves of the batched output are): w multiplies the "
        "guided branch u(x|y) and (1 − w) the unguided u(x|∅). After torch.cat([x, x]) with labels "
        "[∅; y], the first half is u(x|∅).": w * u_null + (1 - w) * u_cond,
        "this is the (1 + w) convention, u(x|y) + w·(u(x|y) − u(x|∅)). Here w = 1 must give plain "
        "guided sampling: (1 − w)·u(x|∅) + w·u(x|y).": (1 + w) * u_cond - w * u_null,
        "the unguided term (1 − w)·u(x|∅) is missing.": w * u_cond,
        "the unguided branch used the label 0, a real class. Use the null label: "
        "torch.full_like(y, null_label).": (1 - w) * model(x, t, torch.zeros_like(y)) + w * u_cond,
        "the unguided branch used null_label - 1, the last real class. Use null_label itself.":
            (1 - w) * model(x, t, torch.full_like(y, null - 1)) + w * u_cond,
        "this is u(x|∅) + w·u(x|y): the unguided branch needs the weight (1 − w).": u_null + w * u_cond,
        "the difference is the wrong way round: u(x|∅) + w·(u(x|∅) − u(x|y)) pushes away from the "
        "label. Guidance moves towards it: u(x|∅) + w·(u(x|y) − u(x|∅)).": u_null + w * (u_null - u_cond),
        "the guidance scale was ignored: this is the plain average of the two branches.": 0.5 * (u_null + u_cond),
    }


@checker("CFG vector field")
def check_cfg_field(fn: Callable, ok: Ok) -> None:
    """Check ``fn(model, x, t, y, w, null_label)`` against ``(1 − w)·u(x|∅) + w·u(x|y)``,
    computed with one batched call of the model."""
    require_function(fn, "check_cfg_field", "my_cfg_field")
    null = _NUM_CLASSES
    for k, (shape, w) in enumerate(zip(GUIDANCE_SHAPES, _GUIDANCE_SCALES)):
        model = CheckModel(seed=20 + k)
        x, t, y = _field_inputs(shape, 30 + k)
        with torch.no_grad():
            out, changed = run_untouched(lambda model=model, x=x, t=t, y=y, w=w: fn(model, x, t, y, w, null),
                                         {"x": x, "t": t, "y": y})
        if changed:
            raise CheckFailed(f"your field modified its input {changed[0]} in place; build new tensors instead.")
        n = shape[0]
        doubled = isinstance(out, Tensor) and out.ndim > 0 and out.shape[0] == 2 * n
        require_state_shaped(out, x, "the field", "It must have x's shape." + (
            " That is the whole batched output: split it into its two halves with .chunk(2) and combine them."
            if doubled else ""))
        calls = list(model.calls)  # before the reference's own calls
        with torch.no_grad():
            ref = (1 - w) * model(x, t, torch.full_like(y, null)) + w * model(x, t, y)
            if not close(out, ref, tol=1e-5):
                raise diagnose(out, _field_mistakes(model, x, t, y, w, null),
                               f"for x of shape {shape} and w = {w} the field differs from (1 − w)·u(x|∅) + "
                               f"w·u(x|y) by up to {float((out - ref).abs().max()):.3g}.")
        if calls != [2 * n]:
            if len(calls) > 1:
                raise CheckFailed(f"the values are right, but the network was called {len(calls)} times "
                                  f"(batches {calls}). Run both branches in ONE call: stack torch.cat([x, x]), "
                                  "torch.cat([t, t]) and the labels torch.cat([null labels, y]), then split the "
                                  "output with .chunk(2). On a GPU one big batch costs about as much as one small one.")
            raise CheckFailed(f"the network was called with batches {calls}; expected one call with the "
                              f"stacked batch of {2 * n}.")
    probe = on_probe_device(CheckModel(), *_field_inputs(GUIDANCE_SHAPES[0], 30))
    with torch.no_grad():
        require_device_safe(lambda: fn(*probe, _GUIDANCE_SCALES[0], null))
    ok(f"matches (1 − w)·u(x|∅) + w·u(x|y) for shapes {shapes_text(GUIDANCE_SHAPES)} and w = "
       f"{', '.join(str(w) for w in _GUIDANCE_SCALES)}")
    ok("runs both branches in one batched network call, returns x's shape on x's device")
