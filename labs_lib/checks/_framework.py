"""The machinery every checker shares: reports, failures, the guarded call, the loss and device checks.

What a checker does, and the reference policy every checker follows, are stated in :mod:`labs_lib.checks`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import html
import inspect
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..paths import CondOTScheduler, CosineScheduler
from ..simulators import SDESimulator, Simulator

# State shapes every checker tries: a single point, a batch in the plane, 3-D states and
# image-shaped states (batch, channels, height, width).
SHAPES: tuple[tuple[int, ...], ...] = ((1, 2), (6, 2), (5, 3), (4, 1, 3, 3))
# The state shapes of the loss checkers. (6, 2) first: schedule values of shape (batch,) that are
# not reshaped fail loudly there; (3, 3) has batch == dimension, where the same mistake broadcasts
# silently along the wrong axis.
LOSS_SHAPES: tuple[tuple[int, ...], ...] = ((6, 2), (5, 3), (3, 3), (4, 1, 3, 3), (1, 2))
# float32 values against a reference computed the same way: agreement to ~1e-6 is typical
LOSS_TOL = 1e-4
# The schedules of the loss checkers: the cosine one has α̇_t, β̇_t that are not constant, unlike CondOT.
LOSS_SCHEDULES = (("CondOT", CondOTScheduler()), ("cosine", CosineScheduler()))


def shapes_text(shapes: Iterable[Sequence[int]]) -> str:
    """State shapes as the reports list them: ``(6, 2), (5, 3), (4, 1, 3, 3)``."""
    return ", ".join(str(tuple(shape)) for shape in shapes)


def rounded(values: Tensor, count: int | None = None) -> list[float]:
    """The first ``count`` (default: all) of ``values``, flattened, rounded as the reports show numbers."""
    return [round(v, 4) for v in values.flatten()[:count].tolist()]


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

    def _repr_html_(self) -> str:
        """The report as a notebook shows it: a box coloured by the outcome (green passed, red failed,
        amber not done yet) whose last line, the verdict, is bold.

        The text wraps between words at any width (a plain-text output may break a word in two).
        The colours are translucent, so that they read on light and dark themes alike.
        """
        status, colour = _STATUS[self.passed]
        lines = [html.escape(line) for line in self.lines]
        if lines:
            lines[-1] = f"<b>{lines[-1]}</b>"
        return (f'<div class="labs-check labs-check-{status}" style="border-left: 4px solid rgb({colour}); '
                f'background: rgba({colour}, 0.10); padding: 4px 10px; margin: 2px 0; white-space: pre-wrap; '
                'overflow-wrap: break-word; word-break: normal; font-family: var(--jp-code-font-family, monospace); '
                'font-size: var(--jp-code-font-size, 13px); line-height: 1.45">' + "\n".join(lines) + "</div>")


# A report's CSS class suffix and colour (R, G, B), by ``CheckReport.passed``.
_STATUS: dict[bool | None, tuple[str, str]] = {True: ("passed", "46, 125, 50"), False: ("failed", "198, 40, 40"),
                                                None: ("todo", "191, 128, 0")}


Ok = Callable[[str], None]  # what a checker's body calls to record a verified property


def run_check(exercise: str, body: Callable[[Ok], None], subject: object = None) -> CheckReport:
    """Run ``body(ok)``, where ``ok(text)`` records a verified property and a failure raises
    :class:`CheckFailed`; turn the outcome into a report. ``subject`` is the student's function or
    class, so that a stub of *another* exercise reached through it is named as such."""
    lines: list[str] = []
    try:
        # The checks seed torch; forking keeps the notebook's own random stream untouched.
        with torch.random.fork_rng(devices=[]):
            body(lambda text: lines.append(f"✓ {text}"))
    except NotImplementedError as err:
        return CheckReport(exercise, None, [_not_implemented(exercise, err, subject)])
    except CheckFailed as failure:
        return CheckReport(exercise, False, lines + [f"✗ {exercise}: {failure}"])
    except Exception as err:
        if not _raised_by_student(err):
            # Only the checker's own code is on the stack: never blame the student for it.
            return CheckReport(exercise, False, lines + [
                f"✗ {exercise}: the checker itself failed ({type(err).__name__}: {err}). This is a bug in "
                "labs_lib, not a verdict on your code; please report it with your cell's code."])
        hint = _hint_for_error(err)
        return CheckReport(exercise, False, lines + [
            f"✗ {exercise}: your code raised {type(err).__name__}: {err}" + (f"\n  Hint: {hint}" if hint else "")])
    return CheckReport(exercise, True, lines + [f"✔ {exercise}: all checks passed."])


def checker(title: str) -> Callable[[Callable[[Any, Ok], None]], Callable[[Any], CheckReport]]:
    """Make ``body(subject, ok)`` the exercise checker ``check(subject) -> CheckReport``: :func:`run_check`
    runs the body on the student's function or class and reports under ``title``."""

    def decorate(body: Callable[[Any, Ok], None]) -> Callable[[Any], CheckReport]:
        def check(subject: Any) -> CheckReport:
            return run_check(title, lambda ok: body(subject, ok), subject=subject)

        functools.update_wrapper(check, body)
        # help() shows the checker as it is called: check(subject) -> CheckReport
        first = list(inspect.signature(body).parameters.values())[:1]
        check.__signature__ = inspect.Signature(first, return_annotation="CheckReport")
        return check

    return decorate


_LIBRARY = Path(__file__).resolve().parents[1]
_STUB = re.compile(r"Exercise: ([\w.]+)")


def _raised_by_student(err: BaseException) -> bool:
    """Whether the student's code is on the traceback: a frame from a file that is neither labs_lib
    nor an installed package (a notebook cell, a test, a script)."""
    for frame in traceback.extract_tb(err.__traceback__):
        path = frame.filename
        if path.startswith("<") or not (Path(path).resolve().is_relative_to(_LIBRARY) or "site-packages" in path
                                        or "/lib/python" in path):
            return True
    return False


def _own_code(subject: object) -> set:
    """The code objects of the student's function, or of the methods their class defines itself.

    A decorated function (``@torch.no_grad()`` above it, say) counts with the function it wraps."""
    if inspect.isfunction(subject):
        return {subject.__code__, inspect.unwrap(subject).__code__}
    if isinstance(subject, type):
        return {f.__code__ for k in subject.__mro__ if k.__module__.split(".")[0] != "labs_lib"
                for f in vars(k).values() if inspect.isfunction(f)}
    return set()


def _not_implemented(exercise: str, err: NotImplementedError, subject: object) -> str:
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    stub = _STUB.search(str(err))
    if stub and tb is not None and subject is not None and tb.tb_frame.f_code not in _own_code(subject):
        # Raised by a stub the checked code calls: another exercise, whose cell is elsewhere.
        return (f"… {exercise}: your code calls `{stub.group(1)}`, which is still an unfinished exercise. "
                f"Its `raise NotImplementedError` is in the cell of that exercise, not in the cell above: "
                "finish that one first, run its cell, then run this check again.")
    return (f"… {exercise}: not implemented yet. Replace the `raise NotImplementedError` in the "
            "cell above with your code, run that cell, then run this check again.")


def _unfinished_exercise_message(exercise: str) -> str:
    return (f"Exercise: {exercise} is not written yet, and this cell needs it. Write it in its exercise cell "
            "(where it says `raise NotImplementedError`), run that cell, then run this one again. "
            "(Run All stops at the first such cell; the cells above it have run.)")


# `element` is the output's node in JupyterLab's JavaScript renderer. When Run All ends, JupyterLab
# scrolls to the notebook's last cell (the active one since the run started), just after this output
# arrives: so it is brought into view again a moment later, once.
_SCROLL_TO_THIS_CELL = ("const bring = () => element.isConnected && element.scrollIntoView({block: 'center'});\n"
                        "setTimeout(bring, 0); setTimeout(bring, 1000);")


def explain_unfinished_exercises(shell: Any = None) -> bool:
    """In a notebook, show a cell that reaches an unfinished exercise as one short message.

    Without this, such a cell (a simulation that calls your ``step``, say) fails with the whole
    traceback through ``labs_lib``, 20 or 30 red lines that look like a crash, and Run All stops
    there. With it, the error says which exercise is missing and what to do, and the cell is
    scrolled to the middle of the screen; Run All still stops (the cell did fail), and any other
    error keeps its full traceback.

    ``shell`` is the IPython shell (the running one by default). Returns whether the handler was
    installed: False outside IPython, where there is nothing to do.
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
        stub = _STUB.match(str(value))
        if stub is None:
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)  # not a stub: the usual traceback
        else:
            # Run All stops here, but JupyterLab leaves the view where the run had scrolled to, often
            # far below; a line of JavaScript in this cell's output brings the cell to the middle of
            # the screen. (Only JupyterLab and Notebook run it; elsewhere it is an empty output.)
            publisher = getattr(shell, "display_pub", None)
            if publisher is not None:
                publisher.publish(data={"application/javascript": _SCROLL_TO_THIS_CELL})
            shell.showtraceback((etype, NotImplementedError(_unfinished_exercise_message(stub.group(1))), None),
                                exception_only=True)

    shell.set_custom_exc((NotImplementedError,), handler)
    return True


def use_when_checked(yours: Callable, check: Callable[[Callable], CheckReport], library: Callable) -> Callable:
    """``yours`` if it passes ``check``, else ``library``; says in one line which the lab goes on with.

    The cells after an exercise then run on the student's own code as soon as it is right (a
    loss handed to a trainer, say), and on the library's copy until then, so that the notebook
    runs from the start whatever state the exercise is in. ``check`` is the exercise's checker,
    run again here (it is quick and deterministic).
    """
    report = check(yours)
    name = getattr(yours, "__name__", "your function")
    if report.passed:
        print(f"✓ {name} passed its check: the cells below use it.")
        return yours
    state = "is not implemented yet" if report.passed is None else "does not pass its check yet"
    print(f"{name} {state}: the cells below use the library's ll.{library.__name__} until it does "
          "(run this cell again then).")
    return library


def _hint_for_error(err: Exception) -> str:
    text = str(err)
    if isinstance(err, TypeError) and "sqrt" in text:
        return "h is a Python float: take its square root with math.sqrt(h) or h ** 0.5."
    if isinstance(err, RuntimeError) and "view size is not compatible" in text:
        return ("after permute or transpose a tensor's memory is no longer in order, and .view cannot regroup it: "
                "use .reshape(...) instead (it copies when it must).")
    if isinstance(err, RuntimeError) and "size of tensor" in text:
        return "a shape mismatch: keep every term the same shape as x (no sums or slices over axes)."
    if isinstance(err, AttributeError) and err.name in ("drift", "diffusion") and isinstance(err.obj, Simulator):
        # The simulator holds the equation it simulates (self.ode or self.sde); it has no drift itself.
        holder = "self.sde" if isinstance(err.obj, SDESimulator) else "self.ode"
        return (f"a simulator has no {err.name} of its own: the equation it simulates is {holder}, so call "
                f"{holder}.{err.name}(x, t).")
    return ""


def close(a: Tensor, b: Tensor, tol: float = 1e-5) -> bool:
    """Same shape and equal within ``tol``, compared in the wider of the two dtypes: a float64 answer
    to float32 inputs is right when its values are."""
    if a.shape != b.shape:
        return False
    common = torch.promote_types(a.dtype, b.dtype)
    return bool(torch.allclose(a.to(common), b.to(common), rtol=tol, atol=tol))


def is_shape_mismatch(err: BaseException) -> bool:
    """Whether ``err`` is PyTorch's complaint that two tensors do not broadcast."""
    text = str(err)
    return isinstance(err, RuntimeError) and ("size of tensor" in text or "must match" in text)


def run_untouched(call: Callable[[], object], inputs: dict[str, Tensor]) -> tuple[object, list[str]]:
    """What ``call()`` returned, and the names of the ``inputs`` it changed in place (in their order)."""
    before = {name: value.detach().clone() for name, value in inputs.items()}
    out = call()
    return out, [name for name, value in inputs.items() if not torch.equal(value.detach(), before[name])]


def call_guarded(call: Callable[[], object], inputs: dict[str, Tensor], what: str, fix: str,
                 shape_hint: Callable[[str], str] | None = None) -> object:
    """Run the student's code, ``call()``, on ``inputs`` with the guard every checker needs.

    A shape mismatch raised inside it becomes ``shape_hint(error text)`` (when given), and any of
    ``inputs`` changed in place is named: "``what`` modified its input x in place", then ``fix``.
    Returns what ``call()`` returned, unchecked.
    """
    try:
        out, changed = run_untouched(call, inputs)
    except RuntimeError as err:
        if shape_hint is not None and is_shape_mismatch(err):
            raise CheckFailed(shape_hint(str(err))) from None
        raise
    if changed:
        raise CheckFailed(f"{what} modified its input{'s' if len(changed) > 1 else ''} {' and '.join(changed)} "
                          f"in place. {fix}")
    return out


def construct(cls: type, args: tuple, failure: Callable[[TypeError], str]) -> Any:
    """``cls(*args)``; a TypeError (a constructor that takes other arguments) fails with ``failure(err)``."""
    try:
        return cls(*args)
    except TypeError as err:
        raise CheckFailed(failure(err)) from None


def require_tensor(out: object, what: str) -> Tensor:
    """``out``, returned by the student's ``what``, must be a tensor (of any shape); the failure says what came back."""
    if out is None:
        raise CheckFailed(f"{what} returned None. Did you forget `return`?")
    if not isinstance(out, Tensor):
        raise CheckFailed(f"{what} must return a torch.Tensor, got {type(out).__name__}.")
    return out


def require_state_shaped(out: object, x: Tensor, what: str, fix: str) -> Tensor:
    """``out``, returned by the student's ``what`` (``"step"``, ``"drift"``, ...) for states ``x``, must be
    a tensor of ``x``'s shape; the failure says what came back, and ends a shape failure with ``fix``."""
    out = require_tensor(out, what)
    if out.shape != x.shape:
        raise CheckFailed(f"for x of shape {tuple(x.shape)} {what} returned shape {tuple(out.shape)}. {fix}")
    return out


def call_step(sim: Simulator, x: Tensor, t: Tensor, h: float) -> Tensor:
    """Call ``sim.step`` and check the properties every step must have."""
    out = call_guarded(lambda: sim.step(x, t, h), {"x": x}, "step",
                       "Build a new tensor instead (`x = x + ...`, not `x += ...`): the simulator may have stored "
                       "the old x in a trajectory.")
    return require_state_shaped(out, x, "step", "Every term must keep x's shape: check for a sum, a slice or a "
                                "stray broadcast.")


def named_mistake(out: Tensor, candidates: dict[str, Tensor | float],
                  near: Callable[[Tensor, Tensor], bool] = close) -> str | None:
    """The hint of the first named mistake (hint → what that mistake returns; a number stands for a
    tensor of ``out``'s shape filled with it) that ``out`` matches, compared with ``near``."""
    for hint, wrong in candidates.items():
        if near(out, wrong if isinstance(wrong, Tensor) else torch.full_like(out, wrong)):
            return hint
    return None


def diagnose(out: Tensor, candidates: dict[str, Tensor | float], fallback: str,
             near: Callable[[Tensor, Tensor], bool] = close) -> CheckFailed:
    """The failure to raise for a wrong ``out``: the hint of :func:`named_mistake`, else ``fallback``."""
    return CheckFailed(named_mistake(out, candidates, near) or fallback)


def require_function(fn: object, checker: str, example: str) -> None:
    """``fn`` must be a function (any callable but a class): the exercise asks for one."""
    if isinstance(fn, type) or not callable(fn):
        raise CheckFailed(f"pass your function itself, e.g. {checker}({example}), not {fn!r}.")


def require_subclass(cls: type, base: type, exercise: str) -> None:
    """``cls`` must be a subclass of ``base`` that defines every method ``base`` leaves abstract."""
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise CheckFailed(f"pass your class itself (a subclass of {base.__name__}), e.g. "
                          f"check_{exercise}(MyClass), not {cls!r}.")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        own = [name for name in vars(cls) if not name.startswith("__")]
        guesses = {m: difflib.get_close_matches(m, own, n=1, cutoff=0.6) for m in missing}
        said = "; ".join(f"`{m}`" + (f" (you defined `{g[0]}`: a typo?)" if g else "") for m, g in guesses.items())
        raise CheckFailed(f"your class does not define {said}. {base.__name__} needs "
                          f"{'this method' if len(missing) == 1 else 'these methods'}: "
                          f"def {missing[0]}(self, ...) inside the class, spelled exactly so.")


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


def require_repeatable(call: Callable[[], object], first: Tensor, given: str) -> None:
    """Call the student's loss, ``call()``, once more under another global seed: a loss given all its randomness
    (``given``, in words) must return the same number as its ``first`` call, else it drew random numbers of its own."""
    torch.manual_seed(2)
    again = call()
    if not (isinstance(again, Tensor) and close(again.detach(), first.detach(), tol=1e-6)):
        raise CheckFailed(f"your loss changed between two calls with the same inputs: use the given {given} "
                          "instead of drawing new random numbers.")


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


class ElementwiseNet(nn.Module):
    """A small trainable stand-in network ``formula(x, t, *coef)``: elementwise, so that every state shape
    works (images included); trainable, so that a loss checker sees whether gradients reach ``coef``. It
    takes ``t`` as a number, a 0-dim tensor or one time per sample (see :func:`per_sample_time`)."""

    def __init__(self, formula: Callable[..., Tensor], coef: Sequence[float]):
        super().__init__()
        self.formula = formula
        self.coef = nn.Parameter(torch.tensor(coef))

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        return self.formula(x, per_sample_time(t, x), *self.coef)


def check_loss_values(call: Callable[..., Tensor], inputs: Iterable[tuple[str, nn.Module, tuple]],
                      reference: Callable[..., Tensor], mistakes: Callable[..., dict[str, Tensor]],
                      loss_name: str) -> None:
    """The value and gradient checks of a loss exercise. ``inputs`` yields ``(where, model, args)``: the
    input in words ("for x of shape (6, 2)"), a fresh stand-in network and the loss's other arguments.
    The student's loss ``call(model, *args)`` (a guarded call, checked to be 0-dim) must equal the
    library's ``reference(model, *args)`` within :data:`LOSS_TOL`, else the failure names the matching
    ``mistakes(model, *args)`` (hint → wrong loss) or gives both values; then its gradient must be right."""
    for where, model, args in inputs:
        out = call(model, *args)
        with torch.no_grad():
            ref = reference(model, *args)
            if not close(out.detach(), ref, LOSS_TOL):
                wrong = {hint: value.reshape(()) for hint, value in mistakes(model, *args).items()}
                raise diagnose(out.detach().reshape(()), wrong,
                               f"{where} your loss is {float(out):.5g}, but {loss_name} is {float(ref):.5g}.")
        require_gradient(out, model, lambda m, args=args: reference(m, *args))


def check_loss_exercise(fn: Callable, ok: Ok, exercise: str, call: Callable[..., Tensor],
                        inputs: Iterable[tuple[str, nn.Module, tuple]], reference: Callable[..., Tensor],
                        mistakes: Callable[..., dict[str, Tensor]], loss_name: str, matches: str) -> None:
    """The body of the checker ``check_<exercise>`` of a loss ``fn(model, path, x_0, x_1, t)``: a function
    that passes :func:`check_loss_values`, called as ``call(fn, model, *args)``; the report says ``matches``."""
    require_function(fn, f"check_{exercise}", f"my_{exercise}")
    check_loss_values(lambda model, *args: call(fn, model, *args), inputs, reference, mistakes, loss_name)
    ok(matches)
    ok(f"works for state shapes {shapes_text(LOSS_SHAPES)}")
    ok("returns a single number whose gradient reaches the network's parameters")


def states_and_times(gen: torch.Generator, t_0: float, dt: float,
                     order: Iterable[int] = range(len(SHAPES))) -> Iterator[tuple[Tensor, Tensor]]:
    """States ``2·N(0, I)`` of shape ``SHAPES[i]``, ``i`` in ``order``, at a simulation's 0-dim time ``t_0 + dt·i``;
    the particles of the batch ``SHAPES[1]`` get one time each instead (shape ``(batch,)``, as in training)."""
    for i in order:
        x = 2 * torch.randn(SHAPES[i], generator=gen)
        yield x, torch.rand(SHAPES[i][0], generator=gen) if i == 1 else torch.tensor(t_0 + dt * i)


# PyTorch's "meta" device holds shapes and dtypes but no data: code run on it behaves as on a GPU
# where devices are concerned (a tensor made without device= lands on the CPU and mixing it with
# the inputs fails), so device-unsafe code shows without a GPU.
PROBE_DEVICE = torch.device("meta")

DEVICE_HINT = ("your code is right on the CPU but mixes devices: with inputs on another device (a GPU, "
               "or here PyTorch's meta device) it builds a tensor on the CPU, e.g. torch.full((n,), value), "
               "torch.zeros(n) or torch.randn(x.shape) without device=. Create it on x.device: "
               "torch.full((n,), value, device=x.device), torch.full_like(y, value), torch.randn_like(x).")


def on_probe_device(*values: Any) -> list[Any]:
    """Copies of tensors and modules on :data:`PROBE_DEVICE` (other values unchanged)."""
    def moved(v: Any) -> Any:
        if isinstance(v, Tensor):
            return v.to(PROBE_DEVICE)
        if isinstance(v, nn.Module):
            return copy.deepcopy(v).to(PROBE_DEVICE)
        return v

    return [moved(v) for v in values]


def require_device_safe(call: Callable[[], object]) -> None:
    """Run the student's code once more with its inputs on :data:`PROBE_DEVICE` (``call`` does the
    moving, see :func:`on_probe_device`); fail with :data:`DEVICE_HINT` if it mixes devices.

    Operations the meta device cannot do (``.item()``, NumPy) end the probe without a verdict: the
    value checks have already judged the code, and this probe only looks at devices.
    """
    try:
        out = call()
    except RuntimeError as err:
        if "device" in str(err):
            raise CheckFailed(DEVICE_HINT) from None
        return
    except Exception:
        return
    # A 0-dim tensor on the CPU is let through: PyTorch uses it as a number next to any device.
    if isinstance(out, Tensor) and out.device != PROBE_DEVICE and out.ndim > 0:
        raise CheckFailed(DEVICE_HINT)


def require_coefficients_device_safe(sde: object, x: Tensor, t: Tensor) -> None:
    """``sde.drift`` and ``sde.diffusion`` must create their tensors on x's device (see :func:`require_device_safe`)."""
    x_probe, t_probe = on_probe_device(x, t)
    for method in ("drift", "diffusion"):
        require_device_safe(lambda method=method: getattr(sde, method)(x_probe, t_probe))


def require_same_device(*tensors: Tensor) -> None:
    """What a stand-in network does with its inputs: fail, as PyTorch would on a GPU, when they
    are not all on one device."""
    devices = {t.device for t in tensors if isinstance(t, Tensor)}
    if len(devices) > 1:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found {sorted(map(str, devices))}")


def broadcast_values(out: object, x: Tensor, method: str, example: str = "a number",
                     fix: str = "") -> Tensor:
    """What ``method`` returned (a number, or a tensor broadcasting against ``x``) expanded to ``x``'s
    shape; anything else fails, saying what was expected, with ``fix`` appended to a shape failure."""
    if out is None:
        raise CheckFailed(f"{method} returned None. Did you forget `return`?")
    if isinstance(out, bool) or not isinstance(out, (int, float, Tensor)):
        raise CheckFailed(f"{method} must return {example} or a tensor that broadcasts against x, "
                          f"got {type(out).__name__}.")
    value = broadcast_to_state(out, x)
    if value is None:  # only a tensor can fail to broadcast
        raise CheckFailed(f"for x of shape {tuple(x.shape)} {method} returned a tensor of shape "
                          f"{tuple(out.shape)}, which does not broadcast to x's shape.{' ' + fix if fix else ''}")
    return value


def broadcast_to_state(value: int | float | Tensor, x: Tensor) -> Tensor | None:
    """``value`` (a number or a tensor) in x's dtype, expanded to x's shape; None if it does not broadcast so."""
    value = torch.as_tensor(value, dtype=x.dtype)
    try:
        return value.expand(x.shape) if torch.broadcast_shapes(value.shape, x.shape) == x.shape else None
    except RuntimeError:  # the two shapes do not broadcast at all
        return None


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
