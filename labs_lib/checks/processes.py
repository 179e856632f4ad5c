r"""Checkers for notebook 02: Brownian motion and the Ornstein–Uhlenbeck process as SDE classes.

Both exercises ask for the two coefficients of an SDE :math:`dX_t = u_t(X_t)\,dt + \sigma_t(X_t)\,dW_t`:

* Brownian motion :math:`dX_t = \sigma\,dW_t`: drift 0, diffusion σ;
* Ornstein–Uhlenbeck :math:`dX_t = -\theta X_t\,dt + \sigma\,dW_t`: drift :math:`-\theta x`, diffusion σ.

The checkers build the student's class with several parameter values (so that a hard-coded
θ or σ shows), call ``drift`` and ``diffusion`` on states of several shapes (images included)
and dtypes, and compare with the formulas above: the drift exactly (a new tensor of ``x``'s
shape and dtype, ``x`` left untouched), the diffusion after broadcasting it against ``x`` (a
float or a tensor that broadcasts, as :mod:`labs_lib.dynamics` allows). Wrong answers are
matched against a list of common mistakes (σ² instead of σ, a wrong sign, θ left out...).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import Tensor

from ..dynamics import SDE
from ._framework import (SHAPES, CheckFailed, Ok, broadcast_to_state, broadcast_values, call_guarded, checker, close,
                         construct, named_mistake, require_coefficients_device_safe, require_subclass, shapes_text,
                         states_and_times)

# Parameter values are chosen so that every catalogued mistake gives a different number:
# no θ or σ equals 1 (σ² = √σ = σ there), no θ equals 1/2 (σ/√(2θ) = σ there), θ ≠ σ
# (so that swapping them shows), and the values differ from instance to instance (so that a
# hard-coded parameter shows).
BROWNIAN_SIGMAS: tuple[float, ...] = (0.6, 1.7, 2.5)
OU_PARAMETERS: tuple[tuple[float, float], ...] = ((2.0, 0.6), (0.7, 1.5), (3.0, 2.5))  # (θ, σ)

Mistakes = dict[str, Tensor | float]  # hint → what that mistake returns (a number: that constant everywhere)
_SYMBOLS = {"sigma": "σ", "theta": "θ"}  # the parameters as the reports write them


def _inputs(seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    """States of every shape in SHAPES (float32), plus a float64 batch, with a time for each.

    The time is a 0-dim tensor, as in a simulation, except for one shape where every particle
    has its own time (shape ``(batch,)``, as in training).
    """
    gen = torch.Generator().manual_seed(seed)
    # Batches first: a drift that mixes the samples (e.g. pulled towards the batch mean) looks like
    # another mistake on a single point, so the single point comes last.
    yield from states_and_times(gen, 0.2, 0.15, sorted(range(len(SHAPES)), key=lambda i: SHAPES[i][0] == 1))
    yield 2 * torch.randn(7, 1, generator=gen, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)


def _shapes_text() -> str:
    return shapes_text(SHAPES) + " and (7, 1) in float64"


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"


def _construct(cls: type, params: dict[str, float]) -> object:
    """``cls(*params.values())``, the parameters in their order."""
    args = tuple(params.values())
    return construct(cls, args, lambda err: f"{cls.__name__}({', '.join(map(str, args))}) failed with TypeError: "
                     f"{err}. The constructor must be `def __init__(self, {', '.join(params)})`.")


def _call(obj: object, method: str, x: Tensor, t: Tensor) -> object:
    """Call ``obj.<method>(x, t)`` and make sure ``x`` was not modified."""
    return call_guarded(lambda: getattr(obj, method)(x, t), {"x": x}, method,
                        "Return a new tensor (`-self.theta * x`, `torch.zeros_like(x)`, not `x *= ...` or "
                        "`x.mul_(...)`): the simulator still needs the current state after asking for the "
                        "coefficients.")


def _require_deterministic(objects: list[object], method: str, x: Tensor, t: Tensor) -> None:
    """A coefficient is a function of x and t: two calls with different random seeds agree."""
    for obj in objects:
        torch.manual_seed(11)
        first = _call(obj, method, x, t)
        torch.manual_seed(12)
        second = _call(obj, method, x, t)
        if isinstance(first, Tensor) and isinstance(second, Tensor) and first.shape == second.shape \
                and not close(first, second):
            raise CheckFailed(f"{method} is random: it gave different values for the same x and t (torch.randn "
                              f"inside it?). The coefficients of an SDE are fixed functions of x and t; the "
                              f"simulator draws the noise and multiplies it by the diffusion (σ·√h·ε).")


def _require_per_sample(objects: list[object], method: str, x: Tensor, t: Tensor) -> None:
    """Each sample's coefficient must depend on that sample alone, not on the rest of the batch."""
    for obj in objects:
        whole = _call(obj, method, x, t)
        if not isinstance(whole, Tensor) or whole.shape != x.shape:
            return  # the value checks name shape mistakes
        for i in range(x.shape[0]):
            t_i = t[i:i + 1] if t.ndim == 1 else t
            alone = _call(obj, method, x[i:i + 1], t_i)
            if isinstance(alone, Tensor) and alone.shape == x[i:i + 1].shape and not close(alone, whole[i:i + 1]):
                raise CheckFailed(f"{method} of one sample depends on the other samples in the batch: for the "
                                  f"same state it gives a different value alone than inside a batch (a mean, sum "
                                  f"or std over axis 0, e.g. x.mean(0)?). Each particle's {method} must depend "
                                  f"on that particle's own x only.")


def _check_drift(out: object, x: Tensor, ref: Tensor, mistakes: Mistakes, formula: str, how: str,
                 ignores: Callable[[], str | None] = lambda: None) -> None:
    """The drift must be a new tensor equal to ``ref``: same shape and dtype as ``x``.

    A wrong value is compared with ``mistakes`` (hint → wrong value) first; if none matches,
    ``ignores()`` may name a constructor argument that the code ignores.
    """
    if out is None:
        raise CheckFailed("drift returned None. Did you forget `return`?")
    if isinstance(out, Tensor) and out.shape == x.shape:
        if not torch.is_floating_point(out) or out.dtype != x.dtype:
            raise CheckFailed(f"for x of dtype {x.dtype} drift returned dtype {out.dtype}. Build the drift "
                              f"from x ({how}) so that it keeps x's dtype and device.")
        if not close(out, ref):
            raise CheckFailed(named_mistake(out, mistakes) or ignores()
                              or f"for x of shape {tuple(x.shape)} the drift differs from {formula} by up to "
                                 f"{float((out - ref).abs().max()):.3g}.")
        return
    # A number, a 0-dim tensor or a tensor of another shape: say what the values would have
    # been (the mistake may be in the formula too), then ask for x's shape.
    if not isinstance(out, (int, float, Tensor)) or isinstance(out, bool):
        raise CheckFailed(f"drift must return a torch.Tensor of x's shape, got {_describe(out)}.")
    full = broadcast_to_state(out, x)
    shape_text = (f"drift returned {_describe(out)} for x of shape {tuple(x.shape)}; it must return a tensor "
                  f"of exactly x's shape ({how}): a drift gives one velocity per particle and coordinate, and "
                  "code that uses it (quiver plots, training losses) relies on that.")
    if full is not None:
        if close(full, ref):
            raise CheckFailed(f"the values are right, but {shape_text}")
        hint = named_mistake(full, mistakes)
        if hint:
            raise CheckFailed(f"{hint} (Also, {shape_text})")
    raise CheckFailed(shape_text)


def _check_diffusion(out: object, x: Tensor, sigma: float, mistakes: Mistakes,
                     ignores: Callable[[], str | None] = lambda: None) -> None:
    values = broadcast_values(out, x, "diffusion", "a number (such as self.sigma)", "Return a number (self.sigma) "
                              "or a tensor of x's shape (self.sigma * torch.ones_like(x)).")
    ref = torch.full_like(x, sigma)
    if not close(values, ref):
        raise CheckFailed(named_mistake(values, mistakes) or ignores()
                          or f"for σ = {sigma} and x of shape {tuple(x.shape)} the diffusion should be σ = {sigma} "
                             f"everywhere, but yours ranges from {float(values.min()):.4g} to "
                             f"{float(values.max()):.4g}.")


def _same_for_all(objects: list[object], method: str, x: Tensor, t: Tensor) -> bool:
    """Whether ``method`` gives one answer for instances built with different parameters."""
    try:
        outs = [torch.as_tensor(_call(o, method, x, t), dtype=x.dtype).expand(x.shape) for o in objects]
    except (TypeError, RuntimeError, ValueError):  # not a number or tensor, or not x's shape
        return False
    return all(close(outs[0], o) for o in outs[1:])


def _ignored_hint(objects: list[object], method: str, x: Tensor, t: Tensor, params: list[dict[str, float]],
                  name: str, fix: str) -> str | None:
    """A hint when ``method`` answers the same for every value of the parameter ``name``, else None."""
    if not _same_for_all(objects, method, x, t):
        return None
    symbol, values = _SYMBOLS[name], ", ".join(str(p[name]) for p in params)
    return (f"{method} gives the same result for {symbol} = {values}: it ignores the "
            f"{symbol} passed to the constructor (a hard-coded value?). Store it in __init__ ({fix}.")


def _check_attributes(objects: list[object], params: list[dict[str, float]]) -> None:
    for obj, p in zip(objects, params):
        for name, expected in p.items():
            symbol = _SYMBOLS[name]
            if not hasattr(obj, name):
                raise CheckFailed(f"your class works, but it does not store {symbol} as self.{name}. Add "
                                  f"`self.{name} = {name}` to __init__: other code (and the sliders below) "
                                  f"reads the parameter from there.")
            got = getattr(obj, name)
            try:
                same = math.isclose(float(got), expected, rel_tol=1e-6)
            except (TypeError, ValueError):
                same = False
            if not same:
                raise CheckFailed(f"built with {symbol} = {expected}, your object has self.{name} = {got!r}. "
                                  f"Store the constructor's argument unchanged: `self.{name} = {name}`.")


def _check_process(ok: Callable[[str], None], cls: type, exercise: str, params: list[dict[str, float]],
                   seeds: tuple[int, int], drift: Callable[..., Tensor], drift_formula: str, drift_code: str,
                   drift_mistakes: Callable[..., Mistakes], diffusion_mistakes: Callable[..., Mistakes],
                   parameters_text: str, drift_parameter: tuple[str, str] | None = None) -> None:
    """The body of both checkers, for an SDE class built as ``cls(*p.values())`` for each ``p`` in ``params``.

    Its drift must be ``drift(x, **p)`` (``drift_formula`` in words, ``drift_code`` in code), its
    diffusion σ = ``p["sigma"]``; ``drift_mistakes(x, **p)`` and ``diffusion_mistakes(x, **p)`` name the
    wrong ones. The drift is tried on the inputs of ``_inputs(seeds[0])``, the diffusion on those of
    ``_inputs(seeds[1])``. ``drift_parameter``, ``(name, fix)``, is a parameter the drift depends on, so
    that a drift which ignores it can be named; ``parameters_text`` lists the parameter values.
    """
    require_subclass(cls, SDE, exercise)
    objects = [_construct(cls, p) for p in params]
    x_batch, t_batch = next(_inputs(0))
    for method in ("drift", "diffusion"):
        _require_deterministic(objects, method, x_batch, t_batch)
        _require_per_sample(objects, method, x_batch, t_batch)
    for obj, p in zip(objects, params):
        for x, t in _inputs(seeds[0]):
            # (without a drift_parameter, a wrong drift is never blamed on an ignored parameter)
            ignored = drift_parameter and (lambda: _ignored_hint(objects, "drift", x, t, params, *drift_parameter))
            _check_drift(_call(obj, "drift", x, t), x, drift(x, **p), drift_mistakes(x, **p), drift_formula,
                         drift_code, ignored or (lambda: None))
    ok(f"drift is {drift_formula}, as a new tensor of x's shape and dtype, for x of shapes {_shapes_text()}")

    for obj, p in zip(objects, params):
        for x, t in _inputs(seeds[1]):
            _check_diffusion(_call(obj, "diffusion", x, t), x, p["sigma"], diffusion_mistakes(x, **p),
                             ignores=lambda: _ignored_hint(objects, "diffusion", x, t, params, "sigma",
                                                           "`self.sigma = sigma`) and return self.sigma"))
    ok(f"diffusion is σ (broadcasting against x) for {parameters_text}")
    _check_attributes(objects, params)
    require_coefficients_device_safe(objects[0], x_batch, t_batch)
    ok(f"stores the constructor's {' and '.join(_SYMBOLS[name] for name in params[0])} as "
       f"{' and '.join('self.' + name for name in params[0])}, leaves x untouched and creates its tensors on "
       "x's device")


# --- Brownian motion: drift 0, diffusion σ ---------------------------------------------------


def _brownian_drift_mistakes(x: Tensor, sigma: float) -> Mistakes:
    return {
        "the drift is σ. Brownian motion has no drift at all: return zeros of x's shape "
        "(torch.zeros_like(x)); σ belongs in diffusion.": sigma,
        "the drift is σ·x. Brownian motion has no drift at all: return torch.zeros_like(x); "
        "σ belongs in diffusion.": sigma * x,
        "the drift is x itself. Brownian motion has no drift: return torch.zeros_like(x).": x,
        "the drift is −x. Brownian motion has no drift (nothing pulls it back, unlike the OU "
        "process): return torch.zeros_like(x).": -x,
    }


def _brownian_diffusion_mistakes(x: Tensor, sigma: float) -> Mistakes:
    return {
        "diffusion returned σ², the variance. The diffusion coefficient multiplies dW, so it "
        "is the standard deviation σ (σ·W_t then has variance σ²t).": sigma**2,
        "diffusion returned √σ. The coefficient of dW is σ itself; the square root belongs to "
        "the time step (the simulator multiplies by √h).": math.sqrt(sigma),
        "diffusion returned 0: that is no noise at all. Return σ (self.sigma).": 0.0,
        "diffusion returned −σ. Return σ itself (a diffusion coefficient is ≥ 0).": -sigma,
        "diffusion returned σ·x. For Brownian motion the noise does not depend on the "
        "state: return the constant σ (self.sigma).": sigma * x,
        "diffusion returned 1 whatever σ is: return the σ given to the constructor, "
        "self.sigma.": 1.0,
    }


@checker("Brownian motion")
def check_brownian_motion(cls: type, ok: Ok) -> None:
    r"""Check a Brownian-motion class ``cls(sigma)``: drift 0 (a tensor of x's shape), diffusion σ."""
    _check_process(ok, cls, "brownian_motion", [{"sigma": s} for s in BROWNIAN_SIGMAS], seeds=(0, 2),
                   drift=lambda x, sigma: torch.zeros_like(x), drift_formula="0", drift_code="torch.zeros_like(x)",
                   drift_mistakes=_brownian_drift_mistakes, diffusion_mistakes=_brownian_diffusion_mistakes,
                   parameters_text=f"σ = {', '.join(map(str, BROWNIAN_SIGMAS))}")


# --- the Ornstein–Uhlenbeck process: drift −θx, diffusion σ ---------------------------------


def _ou_drift_mistakes(x: Tensor, theta: float, sigma: float) -> Mistakes:
    return {
        "the drift has the wrong sign: +θ·x pushes the state away from 0 and the paths "
        "explode. The OU drift pulls back: −θ·x.": theta * x,
        "the drift is −x: θ is missing. Multiply by the mean-reversion rate: −θ·x "
        "(-self.theta * x).": -x,
        "the drift is the constant −θ: it must be proportional to the state, −θ·x, so that "
        "the pull towards 0 grows with the distance from 0.": -theta,
        "the drift uses σ where θ belongs: it should be −θ·x. (If your __init__ reads "
        "(sigma, theta), the order must be (theta, sigma).)": -sigma * x,
        "the drift is −x/θ: multiply by θ instead of dividing, −θ·x.": -x / theta,
        "the drift is 0: that is Brownian motion. The OU process adds the pull towards 0, "
        "−θ·x.": 0.0,
        "the drift is −θ·x + σ: the noise does not belong in the drift; diffusion returns σ "
        "separately.": -theta * x + sigma,
    }


def _ou_diffusion_mistakes(x: Tensor, theta: float, sigma: float) -> Mistakes:
    return {
        "diffusion returned σ/√(2θ), the standard deviation of the stationary law. The "
        "coefficient of dW is σ itself; the stationary spread is a consequence of the SDE, "
        "not a part of it.": sigma / math.sqrt(2 * theta),
        "diffusion returned σ²/(2θ), the variance of the stationary law. The coefficient of "
        "dW is σ itself.": sigma**2 / (2 * theta),
        "diffusion returned σ², the variance. The diffusion coefficient multiplies dW, so it "
        "is σ itself.": sigma**2,
        "diffusion returned √σ. The coefficient of dW is σ itself; the square root belongs to "
        "the time step (the simulator multiplies by √h).": math.sqrt(sigma),
        "diffusion returned θ: θ and σ are swapped. The constructor is __init__(self, theta, "
        "sigma) and diffusion returns σ.": theta,
        "diffusion returned 0: that is the decay ODE, without noise. Return σ (self.sigma).": 0.0,
        "diffusion returned −σ. Return σ itself (a diffusion coefficient is ≥ 0); the minus "
        "sign belongs to the drift.": -sigma,
        "diffusion returned −θ·x, the drift. Return the noise coefficient σ.": -theta * x,
        "diffusion returned 1 whatever σ is: return the σ given to the constructor, "
        "self.sigma.": 1.0,
    }


@checker("Ornstein–Uhlenbeck process")
def check_ou_process(cls: type, ok: Ok) -> None:
    r"""Check an Ornstein–Uhlenbeck class ``cls(theta, sigma)``: drift −θx, diffusion σ."""
    _check_process(ok, cls, "ou_process", [{"theta": a, "sigma": b} for a, b in OU_PARAMETERS], seeds=(3, 4),
                   drift=lambda x, theta, sigma: -theta * x, drift_formula="−θ·x", drift_code="-self.theta * x",
                   drift_mistakes=_ou_drift_mistakes, diffusion_mistakes=_ou_diffusion_mistakes,
                   parameters_text="(θ, σ) = " + ", ".join(f"({a}, {b})" for a, b in OU_PARAMETERS),
                   drift_parameter=("theta", "`self.theta = theta`) and use -self.theta * x"))
