"""The checkers of notebook 05 (conditional flow matching loss, learned ODE) tested both ways.

The references pass, and so do a few other correct answers; an unfinished exercise gets
"not implemented yet"; and each entry of a catalogue of plausible wrong answers is rejected
with a hint that names its mistake.
"""

from __future__ import annotations

import pytest
import torch

from checker_cases import assert_named
import labs_lib as ll
from labs_lib.checks import check_cfm_loss, check_learned_ode
from labs_lib.training import cfm_loss

# --- exercise 1: the conditional flow matching loss -------------------------------------------


def _schedule(path, t, x):
    s = path.scheduler(t)
    return [ll.expand_time(v, x) for v in (s.alpha_t, s.beta_t, s.d_alpha_t, s.d_beta_t)]


def cfm_reference(model, path, x_0, x_1, t):
    """The notebook's solution: the schedule from path.scheduler, reshaped with expand_time."""
    a, b, da, db = _schedule(path, t, x_0)
    x_t = a * x_1 + b * x_0
    target = da * x_1 + db * x_0
    return (model(x_t, t) - target).pow(2).flatten(1).sum(1).mean()


def cfm_with_path_sample(model, path, x_0, x_1, t):
    """Correct too: path.sample gives x_t and its velocity."""
    s = path.sample(x_0, x_1, t)
    return ((model(s.x_t, t) - s.dx_t) ** 2).reshape(len(t), -1).sum(dim=1).mean()


def cfm_with_view(model, path, x_0, x_1, t):
    """Correct too: reshaping by hand and passing t as a column."""
    s = path.scheduler(t)
    shape = (-1,) + (1,) * (x_0.ndim - 1)
    x_t = s.alpha_t.view(shape) * x_1 + s.beta_t.view(shape) * x_0
    target = s.d_alpha_t.view(shape) * x_1 + s.d_beta_t.view(shape) * x_0
    diff = model(x_t, t.view(shape)) - target
    return torch.sum(diff**2) / x_0.shape[0]


@pytest.mark.parametrize("fn", [cfm_reference, cfm_with_path_sample, cfm_with_view, cfm_loss])
def test_cfm_loss_correct_answers_pass(fn):
    report = check_cfm_loss(fn)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(4, 1, 3, 3)" in report.message and "cosine" in report.message


def test_cfm_loss_not_implemented():
    def stub(model, path, x_0, x_1, t):
        raise NotImplementedError("Exercise: my_cfm_loss")

    report = check_cfm_loss(stub)
    assert report.passed is None
    assert "not implemented yet" in report.message


def _loss(x_t_fn=None, target_fn=None, time_fn=lambda t: t, reduce=None, model_wrap=lambda u: u):
    """A CFM loss with one ingredient replaced."""

    def fn(model, path, x_0, x_1, t):
        a, b, da, db = _schedule(path, t, x_0)
        x_t = a * x_1 + b * x_0 if x_t_fn is None else x_t_fn(a, b, x_0, x_1, t)
        target = da * x_1 + db * x_0 if target_fn is None else target_fn(da, db, x_0, x_1, t)
        diff = model_wrap(model(x_t, time_fn(t))) - target
        return diff.pow(2).flatten(1).sum(1).mean() if reduce is None else reduce(diff)

    return fn


def _broadcast_wrong(model, path, x_0, x_1, t):
    s = path.scheduler(t)  # shape (batch,), multiplied with x of shape (batch, d) as it is
    x_t = s.alpha_t * x_1 + s.beta_t * x_0
    return (model(x_t, t) - (s.d_alpha_t * x_1 + s.d_beta_t * x_0)).pow(2).flatten(1).sum(1).mean()


def _linear_only(model, path, x_0, x_1, t):
    tt = ll.expand_time(t, x_0)
    x_t = tt * x_1 + (1 - tt) * x_0
    return (model(x_t, t) - (x_1 - x_0)).pow(2).flatten(1).sum(1).mean()


def _detached(model, path, x_0, x_1, t):
    with torch.no_grad():
        return cfm_reference(model, path, x_0, x_1, t)


def _item(model, path, x_0, x_1, t):
    return cfm_reference(model, path, x_0, x_1, t).item()


def _in_place(model, path, x_0, x_1, t):
    a, b, da, db = _schedule(path, t, x_0)
    target = da * x_1 + db * x_0
    x_1 *= a
    x_1 += b * x_0
    return (model(x_1, t) - target).pow(2).flatten(1).sum(1).mean()


def _no_return(model, path, x_0, x_1, t):
    cfm_reference(model, path, x_0, x_1, t)


def _target_is_xt(model, path, x_0, x_1, t):
    a, b, _, _ = _schedule(path, t, x_0)
    x_t = a * x_1 + b * x_0
    return (model(x_t, t) - x_t).pow(2).flatten(1).sum(1).mean()


WRONG_CFM = {
    "target reversed (x_0 - x_1)": (_loss(target_fn=lambda da, db, x0, x1, t: -(da * x1 + db * x0)), "wrong sign"),
    "model at x_1": (_loss(x_t_fn=lambda a, b, x0, x1, t: x1), "evaluated at the data x_1"),
    "model at x_0": (_loss(x_t_fn=lambda a, b, x0, x1, t: x0), "evaluated at the noise x_0"),
    "model at 1 - t": (_loss(time_fn=lambda t: 1 - t), "time 1 − t"),
    "x_t swapped": (_loss(x_t_fn=lambda a, b, x0, x1, t: a * x0 + b * x1), "x_0 and x_1 are swapped"),
    "x_t and target swapped": (_loss(x_t_fn=lambda a, b, x0, x1, t: a * x0 + b * x1,
                                     target_fn=lambda da, db, x0, x1, t: da * x0 + db * x1),
                               "x_0 and x_1 are swapped (in x_t and in the target)"),
    "target is x_t": (_target_is_xt, "not the point x_t"),
    "target is x_1": (_loss(target_fn=lambda da, db, x0, x1, t: x1), "not the data x_1"),
    "mean over coordinates": (_loss(reduce=lambda d: d.pow(2).mean()), "averages over the 2 coordinates"),
    "sum over the batch": (_loss(reduce=lambda d: d.pow(2).sum()), "6× too large: it sums over the batch"),
    "abs instead of square": (_loss(reduce=lambda d: d.abs().flatten(1).sum(1).mean()), "error is not squared"),
    "norm not squared": (_loss(reduce=lambda d: d.flatten(1).norm(dim=1).mean()), "norm is not squared"),
    "per-sample losses": (_loss(reduce=lambda d: d.pow(2).flatten(1).sum(1)), "one value per sample"),
    "per-coordinate losses": (_loss(reduce=lambda d: d.pow(2).mean(0)), "must be a single number"),
    "detached output": (_loss(model_wrap=lambda u: u.detach()), "carries no gradient"),
    "computed under no_grad": (_detached, "carries no gradient"),
    "returns .item()": (_item, "Python number"),
    "linear-path formulas for every path": (_linear_only, "uses the formulas of the linear path"),
    "schedule not reshaped": (_broadcast_wrong, "reshape them to (batch, 1, ...)"),
    "modifies x_1 in place": (_in_place, "modified its input x_1 in place"),
    "no return": (_no_return, "Did you forget `return`?"),
}


@pytest.mark.parametrize("name", WRONG_CFM, ids=list(WRONG_CFM))
def test_cfm_loss_wrong_answers_are_caught(name):
    fn, hint = WRONG_CFM[name]
    report = check_cfm_loss(fn)
    assert_named(report, hint)


def test_cfm_loss_only_condot_is_caught_on_the_cosine_schedule():
    # The linear-path shortcut passes the CondOT cases, so the failure must name the cosine one.
    report = check_cfm_loss(_linear_only)
    assert "path.scheduler(t)" in report.message


def test_cfm_loss_rejects_a_class_instead_of_a_function():
    report = check_cfm_loss(ll.MLPField)
    assert report.passed is False and "pass your function itself" in report.message


def test_cfm_loss_check_does_not_touch_the_global_random_stream():
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    check_cfm_loss(cfm_reference)
    assert torch.equal(torch.rand(3), expected)


# --- exercise 2: the ODE of a learned field ----------------------------------------------------


class LearnedODE(ll.ODE):
    """The notebook's solution."""

    def __init__(self, model):
        self.model = model

    def drift(self, x, t):
        return self.model(x, t)


class LearnedODENoGrad(ll.ODE):
    """Correct too: no graph is built during simulation."""

    def __init__(self, model):
        self.net = model

    @torch.no_grad()
    def drift(self, x, t):
        return self.net(x, t).detach()


@pytest.mark.parametrize("cls", [LearnedODE, LearnedODENoGrad, ll.VectorFieldODE])
def test_learned_ode_correct_answers_pass(cls):
    report = check_learned_ode(cls)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(batch, 1, 3, 3)" in report.message


def test_learned_ode_not_implemented():
    class Stub(ll.ODE):
        def __init__(self, model):
            raise NotImplementedError("Exercise: MyLearnedODE.__init__")

        def drift(self, x, t):
            raise NotImplementedError("Exercise: MyLearnedODE.drift")

    report = check_learned_ode(Stub)
    assert report.passed is None
    assert "not implemented yet" in report.message


def _ode(drift, init=None):
    class Wrong(ll.ODE):
        def __init__(self, model):
            self.model = model
            if init is not None:
                init(self, model)

        def drift(self, x, t):
            return drift(self, x, t)

    return Wrong


_GLOBAL_NET = ll.MLPField(2, (8,))


class NoArgument(ll.ODE):
    def __init__(self):
        self.model = _GLOBAL_NET

    def drift(self, x, t):
        return self.model(x, t)


class NotAnODE:
    def __init__(self, model):
        self.model = model

    def drift(self, x, t):
        return self.model(x, t)


def _float_time(self, x, t):
    return self.model(x, float(t))


WRONG_ODE = {
    "1 - t": (_ode(lambda s, x, t: s.model(x, 1 - t)), "time 1 − t"),
    "minus the field": (_ode(lambda s, x, t: -s.model(x, t)), "wrong sign"),
    "forgot t (time 0)": (_ode(lambda s, x, t: s.model(x, 0.0)), "ignores t"),
    "forgot t (time 1)": (_ode(lambda s, x, t: s.model(x, 1.0)), "ignores t"),
    "Euler step instead of the drift": (_ode(lambda s, x, t: x + s.model(x, t)), "an Euler step of size 1"),
    "returns x": (_ode(lambda s, x, t: x), "ignores the network passed to __init__"),
    "global network": (_ode(lambda s, x, t: _GLOBAL_NET(x[:, :2], t) if x.ndim == 2 and x.shape[1] == 2 else x),
                       "ignores the network passed to __init__"),
    "summed over the batch": (_ode(lambda s, x, t: s.model(x, t).sum(0)), "drift returned shape"),
    "first sample only": (_ode(lambda s, x, t: s.model(x, t)[0]), "drift returned shape"),
    "no return": (_ode(lambda s, x, t: None), "Did you forget `return`?"),
    "float(t)": (_ode(_float_time), "per-sample times t of shape (batch,)"),
    "no model argument": (NoArgument, "__init__ must take the network"),
    "not an ODE": (NotAnODE, "subclass of ODE"),
}


@pytest.mark.parametrize("name", WRONG_ODE, ids=list(WRONG_ODE))
def test_learned_ode_wrong_answers_are_caught(name):
    cls, hint = WRONG_ODE[name]
    report = check_learned_ode(cls)
    assert_named(report, hint)


def test_learned_ode_in_place_modification_is_caught():
    report = check_learned_ode(_ode(lambda s, x, t: x.mul_(1.0).add_(1.0) - x + s.model(x, t) - 1.0))
    assert report.passed is False
    assert "modified its input x in place" in report.message
