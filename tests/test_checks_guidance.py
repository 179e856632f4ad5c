"""The checkers of notebook 07 (the CFG loss and the CFG vector field) tested both ways.

The references pass; an unfinished exercise gets "not implemented yet"; and each entry of a
catalogue of plausible wrong implementations is rejected with a hint that names its mistake.
"""

from __future__ import annotations

import pytest
import torch
from checker_cases import assert_leaves_random_stream, assert_named

from labs_lib import cfg_loss
from labs_lib.checks import check_cfg_field, check_cfg_loss

# --- references, and correct variants that must pass too ------------------------------------


def loss_with_boolean_indexing(model, path, x_0, x_1, t, y, drop_mask, null_label):
    """Correct: the labels copied, then overwritten by boolean indexing; the error summed by hand."""
    y_in = y.clone()
    y_in[drop_mask] = null_label
    s = path.sample(x_0, x_1, t)
    err = model(s.x_t, s.t, y_in) - s.dx_t
    return (err**2).reshape(len(err), -1).sum(dim=1).mean()


def field_reference(model, x, t, y, w, null_label):
    u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([torch.full_like(y, null_label), y]))
    u_null, u_cond = u.chunk(2)
    return (1 - w) * u_null + w * u_cond


def field_difference_form(model, x, t, y, w, null_label):
    """Correct: u(x|∅) + w·(u(x|y) − u(x|∅)), conditional half first."""
    u = model(torch.cat([x, x]), t.repeat(2), torch.cat([y, torch.full_like(y, null_label)]))
    u_cond, u_null = u.chunk(2)
    return u_null + w * (u_cond - u_null)


def loss_in_float64(model, path, x_0, x_1, t, y, drop_mask, null_label):
    """Correct: the same loss computed in float64 (a right value and gradient in another dtype)."""
    s = path.sample(x_0.double(), x_1.double(), t.double())
    pred = model(s.x_t.float(), t, torch.where(drop_mask, null_label, y)).double()
    return (pred - s.dx_t).pow(2).flatten(1).sum(1).mean()


@pytest.mark.parametrize("fn", [cfg_loss, loss_with_boolean_indexing, loss_in_float64])
def test_loss_references_pass(fn):
    report = check_cfg_loss(fn)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(4, 1, 3, 3)" in report.message and "(8, 1, 8, 8)" in report.message


@pytest.mark.parametrize("fn", [field_reference, field_difference_form])
def test_field_references_pass(fn):
    report = check_cfg_field(fn)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")


def _stub(*args):
    raise NotImplementedError("Exercise: my_cfg_loss")


@pytest.mark.parametrize("checker", [check_cfg_loss, check_cfg_field])
def test_unfinished_exercise_is_not_a_failure(checker):
    report = checker(_stub)
    assert report.passed is None
    assert "not implemented yet" in report.message


@pytest.mark.parametrize("checker", [check_cfg_loss, check_cfg_field])
def test_passing_something_else_than_a_function(checker):
    report = checker("my_cfg_loss")
    assert report.passed is False and "pass your function itself" in report.message


def test_checks_do_not_disturb_the_global_random_stream():
    assert_leaves_random_stream((check_cfg_loss, cfg_loss), (check_cfg_field, field_reference))


# --- the CFG loss: a catalogue of mistakes --------------------------------------------------


def _sq(err):
    return err.pow(2).flatten(1).sum(1).mean()


def loss_mask_inverted(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.where(~drop_mask, null_label, y)) - s.dx_t)


def loss_mask_ignored(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, y) - s.dx_t)


def loss_all_dropped(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.full_like(y, null_label)) - s.dx_t)


def loss_null_zero(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.where(drop_mask, 0, y)) - s.dx_t)


def loss_null_last_class(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.where(drop_mask, null_label - 1, y)) - s.dx_t)


def loss_null_minus_one(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.where(drop_mask, -1, y)) - s.dx_t)


def loss_condot_target(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.where(drop_mask, null_label, y)) - (x_1 - x_0))


def loss_predicts_data(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.where(drop_mask, null_label, y)) - x_1)


def loss_swapped_endpoints(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_1, x_0, t)
    return _sq(model(s.x_t, t, torch.where(drop_mask, null_label, y)) - s.dx_t)


def loss_model_at_data(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(x_1, t, torch.where(drop_mask, null_label, y)) - s.dx_t)


def loss_mean_over_pixels(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return (model(s.x_t, t, torch.where(drop_mask, null_label, y)) - s.dx_t).pow(2).mean()


def loss_sum_over_batch(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return (model(s.x_t, t, torch.where(drop_mask, null_label, y)) - s.dx_t).pow(2).sum()


def loss_not_squared(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return (model(s.x_t, t, torch.where(drop_mask, null_label, y)) - s.dx_t).flatten(1).norm(dim=1).mean()


def loss_per_sample(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return (model(s.x_t, t, torch.where(drop_mask, null_label, y)) - s.dx_t).pow(2).flatten(1).sum(1)


def loss_item(model, path, x_0, x_1, t, y, drop_mask, null_label):
    return cfg_loss(model, path, x_0, x_1, t, y, drop_mask, null_label).item()


def loss_detached(model, path, x_0, x_1, t, y, drop_mask, null_label):
    with torch.no_grad():
        return cfg_loss(model, path, x_0, x_1, t, y, drop_mask, null_label)


def loss_in_place(model, path, x_0, x_1, t, y, drop_mask, null_label):
    y[drop_mask] = null_label
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, y) - s.dx_t)


def loss_fresh_mask(model, path, x_0, x_1, t, y, drop_mask, null_label):
    fresh = torch.rand(len(y)) < 0.5
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.where(fresh, null_label, y)) - s.dx_t)


def loss_null_labels_on_the_cpu(model, path, x_0, x_1, t, y, drop_mask, null_label):
    s = path.sample(x_0, x_1, t)
    return _sq(model(s.x_t, t, torch.where(drop_mask, torch.full((len(y),), null_label), y)) - s.dx_t)


LOSS_MISTAKES = [
    (loss_null_labels_on_the_cpu, "Create it on x.device"),
    (loss_mask_inverted, "where drop_mask is False"),
    (loss_mask_ignored, "no label was dropped"),
    (loss_all_dropped, "every label was replaced"),
    (loss_null_zero, "became 0, a real class"),
    (loss_null_last_class, "the last real class"),
    (loss_null_minus_one, "not -1"),
    (loss_condot_target, "CondOT"),
    (loss_predicts_data, "not the data point x_1"),
    (loss_swapped_endpoints, "swapped"),
    (loss_model_at_data, "not at the data point x_1"),
    (loss_mean_over_pixels, "averaged over every coordinate"),
    (loss_sum_over_batch, "summed over the batch"),
    (loss_not_squared, "not squared"),
    (loss_per_sample, "one value per sample"),
    (loss_item, "after .item() or float()"),
    (loss_detached, "carries no gradient"),
    (loss_in_place, "in place"),
    (loss_fresh_mask, "drawing new random numbers"),
]


@pytest.mark.parametrize("fn, hint", LOSS_MISTAKES, ids=[f.__name__ for f, _ in LOSS_MISTAKES])
def test_loss_mistakes_are_named(fn, hint):
    report = check_cfg_loss(fn)
    assert_named(report, hint)


# --- the CFG field: a catalogue of mistakes -------------------------------------------------


def _branches(model, x, t, y, null_label):
    u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([torch.full_like(y, null_label), y]))
    return u.chunk(2)


def field_swapped(model, x, t, y, w, null_label):
    u_null, u_cond = _branches(model, x, t, y, null_label)
    return w * u_null + (1 - w) * u_cond


def field_halves_swapped(model, x, t, y, w, null_label):
    u_cond, u_null = _branches(model, x, t, y, null_label)  # but the first half is ∅
    return (1 - w) * u_null + w * u_cond


def field_one_plus_w(model, x, t, y, w, null_label):
    u_null, u_cond = _branches(model, x, t, y, null_label)
    return u_cond + w * (u_cond - u_null)


def field_guided_only(model, x, t, y, w, null_label):
    _, u_cond = _branches(model, x, t, y, null_label)
    return w * u_cond


def field_null_zero(model, x, t, y, w, null_label):
    u_null, u_cond = _branches(model, x, t, y, 0)
    return (1 - w) * u_null + w * u_cond


def field_null_last_class(model, x, t, y, w, null_label):
    u_null, u_cond = _branches(model, x, t, y, null_label - 1)
    return (1 - w) * u_null + w * u_cond


def field_null_plus_one(model, x, t, y, w, null_label):
    u_null, u_cond = _branches(model, x, t, y, null_label + 1)
    return (1 - w) * u_null + w * u_cond


def field_unweighted_null(model, x, t, y, w, null_label):
    u_null, u_cond = _branches(model, x, t, y, null_label)
    return u_null + w * u_cond


def field_average(model, x, t, y, w, null_label):
    u_null, u_cond = _branches(model, x, t, y, null_label)
    return 0.5 * (u_null + u_cond)


def field_two_calls(model, x, t, y, w, null_label):
    return (1 - w) * model(x, t, torch.full_like(y, null_label)) + w * model(x, t, y)


def field_time_not_stacked(model, x, t, y, w, null_label):
    u = model(torch.cat([x, x]), t, torch.cat([torch.full_like(y, null_label), y]))
    u_null, u_cond = u.chunk(2)
    return (1 - w) * u_null + w * u_cond


def field_not_split(model, x, t, y, w, null_label):
    return model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([torch.full_like(y, null_label), y]))


def field_no_return(model, x, t, y, w, null_label):
    u_null, u_cond = _branches(model, x, t, y, null_label)
    (1 - w) * u_null + w * u_cond


def field_float_labels(model, x, t, y, w, null_label):
    labels = torch.cat([torch.full(y.shape, float(null_label)), y.float()])
    u_null, u_cond = model(torch.cat([x, x]), torch.cat([t, t]), labels).chunk(2)
    return (1 - w) * u_null + w * u_cond


def field_in_place(model, x, t, y, w, null_label):
    out = field_reference(model, x, t, y, w, null_label)
    y.fill_(0)
    return out


def field_null_labels_on_the_cpu(model, x, t, y, w, null_label):
    null = torch.full((len(y),), null_label)
    u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([null, y]))
    u_null, u_cond = u.chunk(2)
    return (1 - w) * u_null + w * u_cond


FIELD_MISTAKES = [
    (field_null_labels_on_the_cpu, "Create it on x.device"),
    (field_swapped, "swapped"),
    (field_halves_swapped, "the first half is u(x|∅)"),
    (field_one_plus_w, "(1 + w) convention"),
    (field_guided_only, "(1 − w)·u(x|∅) is missing"),
    (field_null_zero, "the label 0, a real class"),
    (field_null_last_class, "the last real class"),
    (field_null_plus_one, "not -1 or a new number"),
    (field_unweighted_null, "needs the weight (1 − w)"),
    (field_average, "guidance scale was ignored"),
    (field_two_calls, "ONE call"),
    (field_time_not_stacked, "torch.cat([t, t])"),
    (field_not_split, ".chunk(2)"),
    (field_no_return, "forget `return`"),
    (field_float_labels, "integer tensor"),
    (field_in_place, "in place"),
]


@pytest.mark.parametrize("fn, hint", FIELD_MISTAKES, ids=[f.__name__ for f, _ in FIELD_MISTAKES])
def test_field_mistakes_are_named(fn, hint):
    report = check_cfg_field(fn)
    assert_named(report, hint)


def test_the_device_probe_runs_the_references_to_the_end():
    """The probe is not vacuous: the references run on the meta device and return meta tensors (an
    operation the meta device cannot do would end the probe without a verdict)."""
    from labs_lib.checks._framework import PROBE_DEVICE, on_probe_device
    from labs_lib.checks.guidance import CheckModel, _field_inputs, cfg_loss_inputs
    from labs_lib.paths import AffinePath, CosineScheduler

    model, *inputs = on_probe_device(CheckModel(), *cfg_loss_inputs((6, 2), 10))
    assert cfg_loss(model, AffinePath(CosineScheduler()), *inputs, 3).device == PROBE_DEVICE
    model, *inputs = on_probe_device(CheckModel(), *_field_inputs((6, 2), 30))
    assert field_reference(model, *inputs, 2.5, 3).device == PROBE_DEVICE
