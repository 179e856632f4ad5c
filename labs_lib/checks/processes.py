r"""Checkers for notebook 02: Brownian paths from the definition, and the Ornstein–Uhlenbeck process as an SDE class.

* **Brownian paths** are judged by the definition, statistically: paths on :math:`[0, T]` must start at
  0 and have increments :math:`\mathcal N(0, h)`, :math:`h = T/n_{\rm steps}`, independent across steps
  and paths, which the checker tests by moments of 200,000 increments (variance, mean, kurtosis,
  successive correlation) and by :math:`\operatorname{Var}[W_T] = T`. The common mistakes (``h``
  for ``√h``, ``1/n_steps`` for ``T/n_steps``, no running sum...) each give a known variance ratio.
* **Ornstein–Uhlenbeck** :math:`dX_t = -\theta X_t\,dt + \sigma\,dW_t`: drift :math:`-\theta x`,
  diffusion σ. The checker builds the student's class with several parameter values (so that a
  hard-coded θ or σ shows), calls ``drift`` and ``diffusion`` on states of several shapes (images
  included) and dtypes, and compares with the formulas: the drift exactly (a new tensor of ``x``'s
  shape and dtype, ``x`` left untouched), the diffusion after broadcasting it against ``x`` (a float
  or a tensor that broadcasts, as :mod:`labs_lib.dynamics` allows). Wrong answers are matched against
  a list of common mistakes (σ² instead of σ, a wrong sign, θ left out...).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ..dynamics import SDE
from ._framework import (SHAPES, CheckFailed, Ok, broadcast_to_state, broadcast_values, call_guarded, checker, close,
                         construct, named_mistake, require_coefficients_device_safe, require_function, require_subclass,
                         require_tensor, shapes_text, states_and_times)

# Parameter values are chosen so that every catalogued mistake gives a different number:
# no θ or σ equals 1 (σ² = √σ = σ there), no θ equals 1/2 (σ/√(2θ) = σ there), θ ≠ σ
# (so that swapping them shows), and the values differ from instance to instance (so that a
# hard-coded parameter shows).
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


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"


def _call(obj: object, method: str, x: Tensor, t: Tensor) -> object:
    """Call ``obj.<method>(x, t)`` and make sure ``x`` was not modified."""
    return call_guarded(lambda: getattr(obj, method)(x, t), {"x": x}, method,
                        "Return a new tensor (`-self.theta * x`, `torch.zeros_like(x)`, not `x *= ...` or "
                        "`x.mul_(...)`): the simulator still needs the current state after asking for the "
                        "coefficients.")


def _require_fixed_per_sample(objects: list[object], method: str, x: Tensor, t: Tensor) -> None:
    """A coefficient is a fixed function of x and t: two calls with different random seeds agree; and each
    sample's coefficient depends on that sample alone, not on the rest of the batch."""
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
    for obj in objects:
        whole = _call(obj, method, x, t)
        if not isinstance(whole, Tensor) or whole.shape != x.shape:
            return  # the value checks name shape mistakes
        for i in range(x.shape[0]):
            alone = _call(obj, method, x[i:i + 1], t[i:i + 1] if t.ndim == 1 else t)
            if isinstance(alone, Tensor) and alone.shape == x[i:i + 1].shape and not close(alone, whole[i:i + 1]):
                raise CheckFailed(f"{method} of one sample depends on the other samples in the batch: for the "
                                  f"same state it gives a different value alone than inside a batch (a mean, sum "
                                  f"or std over axis 0, e.g. x.mean(0)?). Each particle's {method} must depend "
                                  f"on that particle's own x only.")


def _check_drift(out: object, x: Tensor, ref: Tensor, mistakes: Mistakes, ignores: Callable[[], str | None]) -> None:
    """The drift must be a new tensor equal to ``ref`` (−θ·x): same shape and dtype as ``x``.

    A wrong value is compared with ``mistakes`` (hint → wrong value) first; if none matches,
    ``ignores()`` may name a constructor argument that the code ignores.
    """
    if out is None:
        raise CheckFailed("drift returned None. Did you forget `return`?")
    if isinstance(out, Tensor) and out.shape == x.shape:
        if not torch.is_floating_point(out) or out.dtype != x.dtype:
            raise CheckFailed(f"for x of dtype {x.dtype} drift returned dtype {out.dtype}. Build the drift "
                              "from x (-self.theta * x) so that it keeps x's dtype and device.")
        if not close(out, ref):
            raise CheckFailed(named_mistake(out, mistakes) or ignores()
                              or f"for x of shape {tuple(x.shape)} the drift differs from −θ·x by up to "
                                 f"{float((out - ref).abs().max()):.3g}.")
        return
    # A number, a 0-dim tensor or a tensor of another shape: say what the values would have
    # been (the mistake may be in the formula too), then ask for x's shape.
    if not isinstance(out, (int, float, Tensor)) or isinstance(out, bool):
        raise CheckFailed(f"drift must return a torch.Tensor of x's shape, got {_describe(out)}.")
    full = broadcast_to_state(out, x)
    shape_text = (f"drift returned {_describe(out)} for x of shape {tuple(x.shape)}; it must return a tensor "
                  "of exactly x's shape (-self.theta * x): a drift gives one velocity per particle and coordinate, "
                  "and code that uses it (quiver plots, training losses) relies on that.")
    if full is not None and close(full, ref):
        raise CheckFailed(f"the values are right, but {shape_text}")
    hint = None if full is None else named_mistake(full, mistakes)
    raise CheckFailed(f"{hint} (Also, {shape_text})" if hint else shape_text)


def _ignored_hint(objects: list[object], method: str, x: Tensor, t: Tensor, params: list[dict[str, float]],
                  name: str, fix: str) -> str | None:
    """A hint when ``method`` answers the same for every value of the parameter ``name``, else None."""
    try:
        outs = [torch.as_tensor(_call(o, method, x, t), dtype=x.dtype).expand(x.shape) for o in objects]
    except (TypeError, RuntimeError, ValueError):  # not a number or tensor, or not x's shape
        return None
    if not all(close(outs[0], o) for o in outs[1:]):
        return None
    symbol, values = _SYMBOLS[name], ", ".join(str(p[name]) for p in params)
    return (f"{method} gives the same result for {symbol} = {values}: it ignores the "
            f"{symbol} passed to the constructor (a hard-coded value?). Store it in __init__ ({fix}.")


# --- Brownian paths from the definition ----------------------------------------------------------

# The checker's run: enough paths and steps that the moments below are known to about 1% (standard
# errors: 0.3% for the steps' variance, 2% for the variance at the end, 1.1% for the kurtosis), on
# [0, T] with T ≠ 1, so that a step of 1/n_steps instead of T/n_steps shows.
_PATHS, _STEPS, _HORIZON = 4000, 50, 2.0


def _step_variance_mistakes(h: float) -> dict[str, float]:
    """The named mistakes of the paths exercise: hint → the steps' variance in units of h that it gives."""
    return {
        "the steps have variance h², not h: scale the Gaussian steps by √h (math.sqrt(h)), not by h. "
        "The variance of an increment equals the length of its time span.": h,
        "the steps have variance 1, not h: multiply the standard Gaussian steps by √h.": 1 / h,
        f"the step is 1/n_steps, not T/n_steps: the paths must cover [0, T] (here T = {_HORIZON:g}), so "
        "h = T / n_steps.": 1 / _HORIZON,
        "the steps have variance √h, not h: scale the Gaussian steps by √h, so that their variance is h.":
            1 / math.sqrt(h),
    }


@checker("Brownian paths")
def check_brownian_paths(fn: Callable, ok: Ok) -> None:
    r"""Check ``fn(n_paths, n_steps, T)`` → Brownian paths on the grid :math:`t_k = kT/n_{\rm steps}`, shape
    ``(n_steps + 1, n_paths)``, by the definition: :math:`W_0 = 0`, increments :math:`\mathcal N(0, h)` with
    :math:`h = T/n_{\rm steps}`, independent across steps and paths, so that :math:`W_T \sim \mathcal N(0, T)`."""
    require_function(fn, "check_brownian_paths", "my_brownian_paths")
    torch.manual_seed(0)
    for n_paths, n_steps, horizon in ((3, 7, 0.5), (_PATHS, _STEPS, _HORIZON)):
        out = require_tensor(fn(n_paths, n_steps, horizon), "your function")
        expected = (n_steps + 1, n_paths)
        if out.shape != expected:
            hint = {(n_paths, n_steps + 1): "rows are times and columns are paths: transpose it",
                    (n_steps, n_paths): "include the start W_0 = 0 as the first row (n_steps + 1 grid times)"}
            raise CheckFailed(f"for n_paths = {n_paths}, n_steps = {n_steps} your paths have shape {tuple(out.shape)}, "
                              f"not (n_steps + 1, n_paths) = {expected}"
                              + (f": {hint[tuple(out.shape)]}." if tuple(out.shape) in hint else "."))
        if not torch.is_floating_point(out) or not bool(torch.isfinite(out).all()):
            raise CheckFailed("your paths must be a floating-point tensor of finite numbers.")
    ok(f"returns a tensor of shape (n_steps + 1, n_paths), e.g. {expected}")
    paths = out.detach().double()
    if bool((paths[0] != 0).any()):
        raise CheckFailed("every path starts at W_0 = 0: the first row must be zeros (then add up the steps).")
    ok("every path starts at W_0 = 0")
    h = _HORIZON / _STEPS
    steps = paths.diff(dim=0)  # (n_steps, n_paths)
    final_var = float(paths[-1].var())
    if final_var < 1e-6:
        raise CheckFailed("all paths are the same: draw independent steps for every path, one Gaussian per "
                          "(step, path), e.g. torch.randn(n_steps, n_paths).")
    ratio = float(steps.var()) / h
    if abs(ratio - 1) > 0.05:
        hint = named_mistake(torch.tensor(ratio), _step_variance_mistakes(h), lambda a, b: abs(float(a / b) - 1) < 0.05)
        if hint is None and abs(ratio - 2) < 0.1 and abs(final_var / h - 1) < 0.1:
            hint = ("the values W_t are independent draws, not a running sum: W_t is the sum of the steps "
                    "before t (torch.cumsum over the time axis, dim=0).")
        if hint is None and abs(ratio / _STEPS - 1) < 0.1 and abs(final_var / _HORIZON - 1) < 0.1:
            # W_(t_k) = √t_k·ε_k: each value has the right law N(0, t_k), but successive values are
            # independent, so an increment has variance t_k + t_(k+1), n_steps·h on average.
            hint = ("each W_t was drawn on its own from N(0, t): every single value has the right law, but "
                    "W_(t+h) must be W_t plus a small independent step, not a fresh draw. Build the paths as "
                    "the running sum of independent N(0, h) steps (torch.cumsum over the time axis).")
        raise CheckFailed(hint or f"the increments W_(t+h) − W_t have variance {ratio:.3g}·h, not h = T/n_steps: each "
                          "is √h times a standard Gaussian.")
    centred = steps - steps.mean()
    kurtosis = float(centred.pow(4).mean() / centred.pow(2).mean() ** 2)
    if abs(kurtosis - 3) > 0.2:
        raise CheckFailed(f"the increments have the right variance but are not Gaussian (their kurtosis is "
                          f"{kurtosis:.2f}, a Gaussian's is 3): draw them with torch.randn, not torch.rand or signs.")
    mean = float(steps.mean()) / math.sqrt(h / steps.numel())
    if abs(mean) > 5:
        raise CheckFailed(f"the increments do not have mean 0 (their mean is {float(steps.mean()):.3g}, "
                          f"{abs(mean):.0f} standard errors away): centred Gaussian steps, √h·torch.randn.")
    ok("increments W_(t+h) − W_t are N(0, h) with h = T/n_steps (variance, mean and kurtosis)")
    lag_corr = float(torch.corrcoef(torch.stack([steps[:-1].flatten(), steps[1:].flatten()]))[0, 1])
    if abs(final_var / _HORIZON - 1) > 0.1 or abs(lag_corr) > 0.02:
        raise CheckFailed(f"Var[W_T] is {final_var:.3g} for T = {_HORIZON:g}, and successive increments have "
                          f"correlation {lag_corr:+.2f}: W_t must be the running sum of independent steps "
                          "(torch.cumsum over the time axis, dim=0), so that Var[W_T] = T.")
    again = fn(_PATHS, _STEPS, _HORIZON)
    if isinstance(again, Tensor) and again.shape == out.shape and torch.equal(again, out):
        raise CheckFailed("two calls returned the same paths: do not seed inside your function; each call draws "
                          "new random steps.")
    ok(f"increments independent (successive ones uncorrelated, {lag_corr:+.3f}) and Var[W_T] = T "
       f"({final_var:.2f} for T = {_HORIZON:g}); a new draw on every call")


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
    r"""Check an Ornstein–Uhlenbeck class ``cls(theta, sigma)``: drift −θx, diffusion σ.

    Built once for each (θ, σ) of ``OU_PARAMETERS``; the drift is tried on the inputs of
    ``_inputs(3)``, the diffusion on those of ``_inputs(4)``, each against its catalogue of mistakes.
    """
    require_subclass(cls, SDE, "ou_process")
    params = [{"theta": a, "sigma": b} for a, b in OU_PARAMETERS]
    objects = [construct(cls, args, lambda err, args=args: f"{cls.__name__}{args} failed with TypeError: {err}. "
                         "The constructor must be `def __init__(self, theta, sigma)`.") for args in OU_PARAMETERS]
    x_batch, t_batch = next(_inputs(0))
    for method in ("drift", "diffusion"):
        _require_fixed_per_sample(objects, method, x_batch, t_batch)
    for obj, p in zip(objects, params):
        for x, t in _inputs(3):
            ignored = functools.partial(_ignored_hint, objects, "drift", x, t, params, "theta",
                                        "`self.theta = theta`) and use -self.theta * x")
            _check_drift(_call(obj, "drift", x, t), x, -p["theta"] * x, _ou_drift_mistakes(x, **p), ignored)
    ok(f"drift is −θ·x, as a new tensor of x's shape and dtype, for x of shapes {shapes_text(SHAPES)} and (7, 1) "
       "in float64")

    for obj, (theta, sigma) in zip(objects, OU_PARAMETERS):
        for x, t in _inputs(4):
            values = broadcast_values(_call(obj, "diffusion", x, t), x, "diffusion", "a number (such as self.sigma)",
                                      "Return a number (self.sigma) or a tensor of x's shape "
                                      "(self.sigma * torch.ones_like(x)).")
            if not close(values, torch.full_like(x, sigma)):
                raise CheckFailed(named_mistake(values, _ou_diffusion_mistakes(x, theta, sigma))
                                  or _ignored_hint(objects, "diffusion", x, t, params, "sigma",
                                                   "`self.sigma = sigma`) and return self.sigma")
                                  or f"for σ = {sigma} and x of shape {tuple(x.shape)} the diffusion should be "
                                     f"σ = {sigma} everywhere, but yours ranges from {float(values.min()):.4g} to "
                                     f"{float(values.max()):.4g}.")
    ok("diffusion is σ (broadcasting against x) for (θ, σ) = " + ", ".join(f"({a}, {b})" for a, b in OU_PARAMETERS))

    for obj, p in zip(objects, params):  # the parameters, stored unchanged where other code reads them
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
    require_coefficients_device_safe(objects[0], x_batch, t_batch)
    ok("stores the constructor's θ and σ as self.theta and self.sigma, leaves x untouched and creates its "
       "tensors on x's device")
