"""The checkers of notebook 08 (patchify, modulate, the latent CFG loss) tested both ways.

The references pass, and so do a few other correct answers; an unfinished exercise gets "not
implemented yet"; and each entry of a catalogue of plausible wrong answers, each the one wrong
line a student might write, is rejected with a hint that names its mistake.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from checker_cases import assert_leaves_random_stream, assert_named

from labs_lib.checks import check_latent_cfg_loss, check_modulate, check_patchify
from labs_lib.dit import modulate, patchify
from labs_lib.losses import cfg_loss
from labs_lib.models import null_label_of

CHECKERS = [check_patchify, check_modulate, check_latent_cfg_loss]

# --- every checker ----------------------------------------------------------------------------------


class Patchify:
    def __call__(self, x, p):
        return patchify(x, p)


@pytest.mark.parametrize("checker", CHECKERS)
@pytest.mark.parametrize("given", [Patchify, "my_function"])
def test_passing_something_else_than_a_function(checker, given):
    report = checker(given)
    assert_named(report, "pass your function itself")


def test_checks_do_not_disturb_the_global_random_stream():
    assert_leaves_random_stream((check_patchify, patchify), (check_modulate, modulate),
                                (check_latent_cfg_loss, latent_reference))


# --- exercise 1: patchify ------------------------------------------------------------------------------


def patchify_reference(x, patch_size):
    """The notebook's solution: split height and width, put the patch grid first, flatten."""
    b, c, h, w = x.shape
    p = patch_size
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def patchify_with_unfold(x, patch_size):
    """Correct too: F.unfold's (B, C·p·p, N), transposed."""
    return F.unfold(x, kernel_size=patch_size, stride=patch_size).transpose(1, 2)


def patchify_with_einops_style_views(x, p):
    """Correct too: Tensor.unfold twice, (B, C, H/p, W/p, p, p), then the grid first."""
    b, c = x.shape[:2]
    patches = x.unfold(2, p, p).unfold(3, p, p)
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)


@pytest.mark.parametrize("fn", [patchify, patchify_reference, patchify_with_unfold, patchify_with_einops_style_views])
def test_patchify_correct_answers_pass(fn):
    report = check_patchify(fn)
    assert report.passed is True, report.message
    assert "gives x back exactly" in report.message and "(2, 3, 4, 6)" in report.message


def _grid(x, p):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p)


def _tokens(x, p, grid):
    b, c, h, w = x.shape
    return grid.reshape(b, (h // p) * (w // p), c * p * p)


def patchify_column_major(x, p):
    return _tokens(x, p, _grid(x, p).permute(0, 4, 2, 1, 3, 5))


def patchify_channel_last(x, p):
    return _tokens(x, p, _grid(x, p).permute(0, 2, 4, 3, 5, 1))


def patchify_pixels_transposed(x, p):
    return _tokens(x, p, _grid(x, p).permute(0, 2, 4, 1, 5, 3))


def patchify_image_transposed(x, p):
    return patchify_reference(x.transpose(2, 3), p)


def patchify_plain_reshape(x, p):
    return x.reshape(x.shape[0], -1, x.shape[1] * p * p)


def patchify_unfold_layout(x, p):
    return F.unfold(x, kernel_size=p, stride=p)


def patchify_flat(x, p):
    return patchify_reference(x, p).flatten(1)


def patchify_no_return(x, p):
    patchify_reference(x, p)


def patchify_numpy(x, p):
    return patchify_reference(x, p).numpy()


def patchify_transposes_in_place(x, p):
    return patchify_reference(x.transpose_(2, 3), p)


def patchify_wrong_order_on_the_cpu(x, p):
    return patchify_reference(x, p) + torch.zeros(patchify_reference(x, p).shape)


def patchify_view_after_permute(x, p):
    b, c, h, w = x.shape
    return _grid(x, p).permute(0, 2, 4, 1, 3, 5).view(b, (h // p) * (w // p), c * p * p)


PATCHIFY_MISTAKES = [
    (patchify_column_major, "column by column (top to bottom"),
    (patchify_channel_last, "channel last, (a, b, c)"),
    (patchify_pixels_transposed, "(b, a) instead of (a, b)"),
    (patchify_image_transposed, "height and width swapped"),
    (patchify_plain_reshape, "a plain x.reshape(B, -1, C·p·p)"),
    (patchify_unfold_layout, "the layout of F.unfold"),
    (patchify_flat, "expected (B, N, C·p·p) = (2, 16, 4)"),
    (patchify_view_after_permute, "use .reshape(...) instead"),
    (patchify_no_return, "Did you forget `return`?"),
    (patchify_numpy, "must return a torch.Tensor, got ndarray"),
    (patchify_transposes_in_place, "modified its input x in place"),
    (patchify_wrong_order_on_the_cpu, "Create it on x.device"),
]


@pytest.mark.parametrize("fn, hint", PATCHIFY_MISTAKES, ids=[f.__name__ for f, _ in PATCHIFY_MISTAKES])
def test_patchify_mistakes_are_named(fn, hint):
    assert_named(check_patchify(fn), hint)


# --- exercise 2: modulate ------------------------------------------------------------------------------


def modulate_reference(h, shift, scale):
    return h * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def modulate_with_none_indexing(h, shift, scale):
    """Correct too: [:, None] and addcmul."""
    return torch.addcmul(h + shift[:, None], h, scale[:, None])


@pytest.mark.parametrize("fn", [modulate, modulate_reference, modulate_with_none_indexing])
def test_modulate_correct_answers_pass(fn):
    report = check_modulate(fn)
    assert report.passed is True, report.message
    assert "returns h exactly" in report.message and "(3, 3, 4)" in report.message


def modulate_without_one(h, shift, scale):
    return h * scale.unsqueeze(1) + shift.unsqueeze(1)


def modulate_swapped(h, shift, scale):
    return h * (1 + shift.unsqueeze(1)) + scale.unsqueeze(1)


def modulate_no_unsqueeze(h, shift, scale):
    return h * (1 + scale) + shift


def modulate_shift_not_unsqueezed(h, shift, scale):
    return h * (1 + scale.unsqueeze(1)) + shift


def modulate_unsqueeze_last(h, shift, scale):
    return h * (1 + scale.unsqueeze(-1)) + shift.unsqueeze(-1)


def modulate_one_minus(h, shift, scale):
    return h * (1 - scale.unsqueeze(1)) + shift.unsqueeze(1)


def modulate_all_added(h, shift, scale):
    return h + scale.unsqueeze(1) + shift.unsqueeze(1)


def modulate_no_shift(h, shift, scale):
    return h * (1 + scale.unsqueeze(1))


def modulate_in_place(h, shift, scale):
    return h.mul_(1 + scale.unsqueeze(1)).add_(shift.unsqueeze(1))


def modulate_summed_over_tokens(h, shift, scale):
    return (h * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)).sum(1)


def modulate_ones_on_the_cpu(h, shift, scale):
    return h * (torch.ones(h.shape) + scale.unsqueeze(1)) + shift.unsqueeze(1)


def modulate_no_return(h, shift, scale):
    h * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def modulate_returns_a_tuple(h, shift, scale):
    return modulate_reference(h, shift, scale), scale


MODULATE_MISTAKES = [
    (modulate_without_one, "the `1 +` is missing"),
    (modulate_swapped, "shift and scale are swapped"),
    (modulate_no_unsqueeze, "with N == B token n got example n's shift and scale"),
    (modulate_shift_not_unsqueezed, "the shift was broadcast along the tokens"),
    (modulate_unsqueeze_last, "give them a token axis, scale.unsqueeze(1)"),
    (modulate_one_minus, "(1 − scale)"),
    (modulate_all_added, "shift and scale were both added"),
    (modulate_no_shift, "the shift is missing"),
    (modulate_in_place, "modified its input h in place"),
    (modulate_summed_over_tokens, "it must keep h's shape (B, N, W)"),
    (modulate_ones_on_the_cpu, "Create it on x.device"),
    (modulate_no_return, "Did you forget `return`?"),
    (modulate_returns_a_tuple, "must return a torch.Tensor, got tuple"),
]


@pytest.mark.parametrize("fn, hint", MODULATE_MISTAKES, ids=[f.__name__ for f, _ in MODULATE_MISTAKES])
def test_modulate_mistakes_are_named(fn, hint):
    assert_named(check_modulate(fn), hint)


def test_without_the_unsqueeze_a_batch_unlike_the_tokens_fails_loudly():
    """With N != B the missing unsqueeze raises a broadcasting error; its hint names the token axis."""
    from labs_lib.checks import CheckFailed
    from labs_lib.checks.latent import _call_modulate

    h, rows = torch.randn(2, 5, 3), torch.randn(2, 3)
    with pytest.raises(CheckFailed, match=r"scale.unsqueeze\(1\) of shape \(B, 1, W\)"):
        _call_modulate(modulate_no_unsqueeze, h, rows, rows)


# --- exercise 3: the CFG loss in latent space ------------------------------------------------------------


def latent_reference(model, autoencoder, path, x_0, images, t, y, drop_mask):
    """The notebook's solution: the frozen encoder under no_grad, then the CFG loss on the latents."""
    with torch.no_grad():
        z = autoencoder.encode(images)
    return cfg_loss(model, path, x_0, z, t, y, drop_mask, null_label_of(model))


def latent_detached(model, autoencoder, path, x_0, images, t, y, drop_mask):
    """Correct too: the latents detached, the CFG loss written out, the null label read from the model."""
    z = autoencoder.encode(images).detach()
    s = path.sample(x_0, z, t)
    labels = torch.where(drop_mask, model.null_label, y)
    return (model(s.x_t, t, labels) - s.dx_t).pow(2).flatten(1).sum(1).mean()


def latent_frozen_by_requires_grad(model, autoencoder, path, x_0, images, t, y, drop_mask):
    """Correct too: the autoencoder frozen by switching its parameters' gradients off."""
    autoencoder.requires_grad_(False)
    return cfg_loss(model, path, x_0, autoencoder.encode(images), t, y, drop_mask, model.null_label)


@pytest.mark.parametrize("fn", [latent_reference, latent_detached, latent_frozen_by_requires_grad])
def test_latent_loss_correct_answers_pass(fn):
    report = check_latent_cfg_loss(fn)
    assert report.passed is True, report.message
    assert "no gradient reaches the autoencoder" in report.message


def _cfg(model, path, x_0, z, t, y, drop_mask, null_label=None):
    return cfg_loss(model, path, x_0, z, t, y, drop_mask, model.null_label if null_label is None else null_label)


def latent_raw(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images, normalise=False)
    return _cfg(model, path, x_0, z, t, y, drop_mask)


def latent_on_images(model, autoencoder, path, x_0, images, t, y, drop_mask):
    return _cfg(model, path, x_0, images, t, y, drop_mask)


def latent_decodes(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.decode(images)
    return _cfg(model, path, x_0, z, t, y, drop_mask)


def latent_fresh_noise(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    return _cfg(model, path, torch.randn_like(z), z, t, y, drop_mask)


def latent_null_hard_coded_10(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    return _cfg(model, path, x_0, z, t, y, drop_mask, null_label=10)


def latent_null_zero(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    return _cfg(model, path, x_0, z, t, y, drop_mask, null_label=0)


def latent_null_hard_coded_1(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    return _cfg(model, path, x_0, z, t, y, drop_mask, null_label=1)


def latent_null_hard_coded_3(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    return _cfg(model, path, x_0, z, t, y, drop_mask, null_label=3)


def latent_mask_ignored(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    return _cfg(model, path, x_0, z, t, y, torch.zeros_like(drop_mask))


def latent_encoder_tracked(model, autoencoder, path, x_0, images, t, y, drop_mask):
    z = autoencoder.encode(images)
    return _cfg(model, path, x_0, z, t, y, drop_mask)


def latent_swapped(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    return _cfg(model, path, z, x_0, t, y, drop_mask)


def latent_detached_loss(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
        return _cfg(model, path, x_0, z, t, y, drop_mask)


def latent_per_sample(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    s = path.sample(x_0, z, t)
    return (model(s.x_t, t, torch.where(drop_mask, model.null_label, y)) - s.dx_t).pow(2).flatten(1).sum(1)


def latent_drops_in_place(model, autoencoder, path, x_0, images, t, y, drop_mask):
    y[drop_mask] = model.null_label
    with torch.no_grad():
        z = autoencoder.encode(images)
    return _cfg(model, path, x_0, z, t, y, torch.zeros_like(drop_mask))


def latent_no_return(model, autoencoder, path, x_0, images, t, y, drop_mask):
    latent_reference(model, autoencoder, path, x_0, images, t, y, drop_mask)


def latent_null_labels_on_the_cpu(model, autoencoder, path, x_0, images, t, y, drop_mask):
    with torch.no_grad():
        z = autoencoder.encode(images)
    s = path.sample(x_0, z, t)
    labels = torch.where(drop_mask, torch.full((len(y),), model.null_label), y)
    return (model(s.x_t, t, labels) - s.dx_t).pow(2).flatten(1).sum(1).mean()


LATENT_MISTAKES = [
    (latent_raw, "the latents are not normalised"),
    (latent_on_images, "Did you use the images themselves?"),
    (latent_decodes, "your loss decodes the images"),
    (latent_fresh_noise, "use the given x_0, t and drop_mask"),
    (latent_null_hard_coded_10, "received the label 10"),
    (latent_null_zero, "dropped labels became 0, a real class of this model: is the null label hard-coded?"),
    (latent_null_hard_coded_1, "became 1, a real class of this model"),
    (latent_null_hard_coded_3, "became 3, a real class of this model"),
    (latent_mask_ignored, "no label was dropped"),
    (latent_encoder_tracked, "the loss's gradient reaches the autoencoder's parameters"),
    (latent_swapped, "x_0 and x_1 are swapped"),
    (latent_detached_loss, "carries no gradient"),
    (latent_per_sample, "one value per sample"),
    (latent_drops_in_place, "modified its input y in place"),
    (latent_no_return, "Did you forget `return`?"),
    (latent_null_labels_on_the_cpu, "Create it on x.device"),
]


@pytest.mark.parametrize("fn, hint", LATENT_MISTAKES, ids=[f.__name__ for f, _ in LATENT_MISTAKES])
def test_latent_loss_mistakes_are_named(fn, hint):
    assert_named(check_latent_cfg_loss(fn), hint)


def test_the_checkers_autoencoder_is_normalised_away_from_the_identity():
    """Forgetting the normalisation moves the loss only if the measured shift is not 0 or the scale not 1."""
    from labs_lib.checks.latent import _autoencoder

    for k in range(2):
        ae = _autoencoder(k)
        assert abs(float(ae.latent_shift)) > 0.1 and abs(float(ae.latent_scale) - 1) > 0.5


def test_the_device_probes_run_the_references_to_the_end():
    """The probes are not vacuous: the references run on the meta device and return meta tensors (an
    operation the meta device cannot do would end a probe without a verdict)."""
    from labs_lib.checks._framework import PROBE_DEVICE, on_probe_device
    from labs_lib.checks.latent import _probe_inputs

    assert latent_reference(*_probe_inputs()).device == PROBE_DEVICE
    assert patchify(on_probe_device(torch.randn(2, 3, 4, 6))[0], 2).device == PROBE_DEVICE
    assert modulate(*on_probe_device(torch.randn(2, 5, 3), torch.randn(2, 3), torch.randn(2, 3))).device == PROBE_DEVICE
