"""The checkers of notebook 05 (conditional flow matching loss, training loop, Euler sampler) tested both ways.

The references pass, and so do a few other correct answers; an unfinished exercise gets
"not implemented yet"; and each entry of a catalogue of plausible wrong answers is rejected
with a hint that names its mistake.
"""

from __future__ import annotations

import pytest
import torch
from checker_cases import assert_leaves_random_stream, assert_named

import labs_lib as ll
from labs_lib.checks import check_cfm_loss, check_euler_sampler, check_training_loop
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
    assert_leaves_random_stream((check_cfm_loss, cfm_reference))


# --- exercise 2: the training loop ------------------------------------------------------------


def loop_reference(model, path, data, loss_fn, n_steps, batch_size, lr):
    """The notebook's solution: the learning rate set by hand, draws in the trainer's order."""
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(n_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * (1 - 0.9 * step / n_steps)
        x_1 = data.sample(batch_size).to(device)
        x_0 = torch.randn_like(x_1)
        t = torch.rand(batch_size, device=device)
        loss = loss_fn(model, path, x_0, x_1, t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def loop_with_scheduler(model, path, data, loss_fn, n_steps, batch_size, lr):
    """Correct too: a LambdaLR schedule, noise and times drawn before the data, tensors returned."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1 - 0.9 * k / n_steps)
    losses = []
    for _ in range(n_steps):
        optimizer.zero_grad()
        x_0, t = torch.randn(batch_size, 2), torch.rand(batch_size)
        loss = loss_fn(model, path, x_0, data.sample(batch_size), t)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.detach())
    return torch.stack(losses)


@pytest.mark.parametrize("fn", [loop_reference, loop_with_scheduler, ll.cfm_training_loop])
def test_training_loop_correct_answers_pass(fn):
    report = check_training_loop(fn)
    assert report.passed is True, report.message


def test_training_loop_solution_takes_exactly_the_trainers_steps():
    # The lab trains its first network with the student's loop; the solution's steps are the trainer's,
    # bit for bit, so that the lab's figures do not depend on which of the two trained it.
    data, path = ll.GaussianMixture.symmetric_2d(5, radius=4.0, std=0.5), ll.AffinePath(ll.CondOTScheduler())
    runs = []
    for train in (loop_reference, ll.cfm_training_loop):
        ll.seed_everything(1)
        model = ll.MLPField(2, hidden=(32, 32))
        ll.seed_everything(0)
        runs.append((train(model, path, data, cfm_loss, 300, 64, 5e-3), model.state_dict()))
    (mine, mine_w), (lib, lib_w) = runs
    assert mine == lib
    assert all(torch.equal(mine_w[k], lib_w[k]) for k in mine_w)


def test_training_loop_not_implemented():
    def stub(model, path, data, loss_fn, n_steps, batch_size, lr):
        raise NotImplementedError("Exercise: my_training_loop")

    assert check_training_loop(stub).passed is None


def _loop(*, zero_grad=True, stale=False, factor=None, sgd=False, noise=torch.randn_like,
          times=lambda b: torch.rand(b), fixed_noise=False, ret="items", fresh_data=True, x_1_is_noise=False):
    """A loop with one mistake, chosen by the arguments."""

    def loop(model, path, data, loss_fn, n_steps, batch_size, lr):
        schedule = factor or (lambda k: 1 - 0.9 * k / n_steps)
        optimizer = (torch.optim.SGD if sgd else torch.optim.Adam)(model.parameters(), lr=lr)
        losses, tensors, x_1, x_0 = [], [], data.sample(batch_size), None
        for step in range(n_steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * schedule(step, n_steps) if factor else lr * schedule(step)
            if fresh_data:
                x_1 = data.sample(batch_size) if step else x_1
            x_0 = x_0 if (fixed_noise and x_0 is not None) else noise(x_1)
            args = (x_1, x_0) if x_1_is_noise else (x_0, x_1)
            loss = loss_fn(model, path, *args, times(batch_size))
            if zero_grad:
                optimizer.zero_grad()
            if stale:
                optimizer.step()
                loss.backward()
            else:
                loss.backward()
                optimizer.step()
            losses.append(loss.item())
            tensors.append(loss)
        return {"items": losses, "none": None, "short": losses[:-1], "tensors": tensors}[ret]

    return loop


WRONG_LOOPS = {
    "no zero_grad": (_loop(zero_grad=False), "never zeroed"),
    "step before backward": (_loop(stale=True), "leaves the network as it was"),
    "constant lr": (_loop(factor=lambda k, n: 1.0), "stays at lr all along"),
    "lr to zero": (_loop(factor=lambda k, n: 1 - k / n), "falls to zero"),
    "lr one step ahead": (_loop(factor=lambda k, n: 1 - 0.9 * (k + 1) / n), "one step ahead"),
    "SGD": (_loop(sgd=True), "torch.optim.SGD"),
    "uniform noise": (_loop(noise=torch.rand_like), "standard Gaussian"),
    "Gaussian times": (_loop(times=lambda b: torch.randn(b)), "outside [0, 1]"),
    "one time per batch": (_loop(times=lambda b: torch.rand(1).expand(b)), "share one time"),
    "the same noise every step": (_loop(fixed_noise=True), "the same at every step"),
    "one data batch for all steps": (_loop(fresh_data=False), "one fresh batch per step"),
    "noise and data swapped": (_loop(x_1_is_noise=True), "is not the batch that data.sample returned"),
    "returns nothing": (_loop(ret="none"), "Did you forget `return losses`?"),
    "a loss short": (_loop(ret="short"), "39 losses for 40 steps"),
    "loss tensors with their graphs": (_loop(ret="tensors"), "losses.append(loss.item())"),
}


@pytest.mark.parametrize("name", WRONG_LOOPS, ids=list(WRONG_LOOPS))
def test_training_loop_wrong_answers_are_caught(name):
    fn, hint = WRONG_LOOPS[name]
    assert_named(check_training_loop(fn), hint)


def test_training_loop_that_never_steps_is_named():
    def loop(model, path, data, loss_fn, n_steps, batch_size, lr):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        for _ in range(n_steps):
            x_1 = data.sample(batch_size)
            loss = loss_fn(model, path, torch.randn_like(x_1), x_1, torch.rand(batch_size))
            loss.backward()
            optimizer.zero_grad()  # between backward and step: every step is a zero step
            optimizer.step()
            losses.append(loss.item())
        return losses

    assert_named(check_training_loop(loop), "leaves the network as it was")


def test_training_loop_check_does_not_touch_the_global_random_stream():
    assert_leaves_random_stream((check_training_loop, loop_reference), (check_euler_sampler, euler_sampler))


# --- exercise 3: sampling by Euler's method ------------------------------------------------------


@torch.no_grad()
def euler_sampler(model, x_0, n_steps):
    """The notebook's solution: one network call per step, at the time the step starts."""
    h = 1.0 / n_steps
    x = x_0
    for k in range(n_steps):
        x = x + h * model(x, torch.tensor(k * h))
    return x


def euler_sampler_per_sample_times(model, x_0, n_steps):
    """Right too: one time per sample, a linspace grid, detach instead of no_grad."""
    times = torch.linspace(0, 1, n_steps + 1)
    x = x_0.clone()
    for t, t_next in zip(times[:-1], times[1:]):
        x = (x + (t_next - t) * model(x, t.expand(x.shape[0]))).detach()
    return x


def library_sampler(model, x_0, n_steps):
    return ll.EulerSimulator(ll.VectorFieldODE(model)).simulate(x_0, ll.time_grid(n_steps))


@pytest.mark.parametrize("fn", [euler_sampler, euler_sampler_per_sample_times, library_sampler])
def test_euler_sampler_correct_answers_pass(fn):
    report = check_euler_sampler(fn)
    assert report.passed is True, report.message
    assert "(batch, 1, 3, 3)" in report.message


def test_euler_sampler_not_implemented():
    def stub(model, x_0, n_steps):
        raise NotImplementedError("Exercise: my_euler_sampler")

    assert check_euler_sampler(stub).passed is None


def _sampler(time=lambda k, h: k * h, count=lambda n: n, size=lambda n: 1 / n, no_grad=True, heun=False,
             trajectory=False, in_place=False):
    """A sampler with one mistake, chosen by the arguments."""

    def fn(model, x_0, n_steps):
        h, x, states = size(n_steps), x_0, [x_0]
        with torch.set_grad_enabled(not no_grad):
            for k in range(count(n_steps)):
                t = torch.tensor(time(k, h))
                u = model(x, t)
                if heun:
                    u = (u + model(x + h * u, torch.tensor(time(k + 1, h)))) / 2
                if in_place:
                    x += h * u
                else:
                    x = x + h * u
                states.append(x)
        return torch.stack(states) if trajectory else x

    return fn


WRONG_SAMPLERS = {
    "time at the end of the step": (_sampler(time=lambda k, h: (k + 1) * h), "the time its step ends"),
    "time 0 always": (_sampler(time=lambda k, h: 0.0), "always gets time 0"),
    "time backwards": (_sampler(time=lambda k, h: 1 - k * h), "runs backwards"),
    "one step too many": (_sampler(count=lambda n: n + 1), "n_steps + 1 steps"),
    "step 1/(n - 1)": (_sampler(size=lambda n: 1 / max(n - 1, 1)), "1/(n_steps − 1)"),
    "step size 1": (_sampler(size=lambda n: 1.0), "missing its size"),
    "Heun": (_sampler(heun=True), "that is Heun's method"),
    "with gradients": (_sampler(no_grad=False), "carry a gradient graph"),
    "whole trajectory": (_sampler(trajectory=True), "not the whole trajectory"),
    "in place on x_0": (_sampler(in_place=True), "modified its input x_0 in place"),
}


@pytest.mark.parametrize("name", WRONG_SAMPLERS, ids=list(WRONG_SAMPLERS))
def test_euler_sampler_wrong_answers_are_caught(name):
    fn, hint = WRONG_SAMPLERS[name]
    assert_named(check_euler_sampler(fn), hint)


def test_euler_sampler_rejects_a_class():
    assert_named(check_euler_sampler(ll.VectorFieldODE), "pass your function itself")
