r"""Checkers for notebook 08: patchify and the adaLN modulation of a diffusion transformer, and the CFG
loss of flow matching in an autoencoder's latent space.

The references are the library's (the policy is stated in :mod:`labs_lib.checks`):
:func:`labs_lib.dit.patchify`, :func:`labs_lib.dit.modulate`, and for the latent loss
:func:`labs_lib.losses.cfg_loss` on the normalised latents ``autoencoder.encode(images)``, computed
without the encoder's gradient. The library itself has no per-batch latent loss: it encodes the
training set once (:class:`~labs_lib.autoencoder.LatentImages`) and trains with the CFG trainer, so
the reference here is those two library calls, written out.

The latent loss is checked with the stand-in guided network of the CFG checkers
(:class:`~labs_lib.checks.guidance.CheckModel`) and with the CFG loss's named mistakes, applied to
the latents, after the mistakes that belong to latent space itself.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from ..autoencoder import Autoencoder
from ..dit import modulate, patchify, unpatchify
from ..losses import cfg_loss
from ..models import null_label_of
from ..paths import AffinePath
from ._framework import (CheckFailed, Ok, call_guarded, check_loss_values, checker, close, diagnose, on_probe_device,
                         require_device_safe, require_function, require_repeatable, require_scalar_loss, require_tensor,
                         shapes_text)
from .guidance import CFG_PATH, CheckModel, cfg_loss_inputs, cfg_loss_mistakes

# --- exercise 1: patchify -------------------------------------------------------------------------

# (image shape (B, C, H, W), patch size): one channel and several, square and not, p = 1 and a single
# patch; (2, 4, 2, 2) with p = 1 has N = C·p·p, where a transposed (B, C·p·p, N) output has the right shape.
PATCHIFY_CASES: tuple[tuple[tuple[int, int, int, int], int], ...] = (
    ((2, 1, 8, 8), 2), ((3, 1, 8, 8), 4), ((2, 3, 4, 6), 2), ((1, 1, 8, 8), 1), ((2, 4, 2, 2), 1), ((2, 4, 2, 2), 2))


def _patchify_mistakes(x: Tensor, p: int) -> dict[str, Tensor]:
    """The named mistakes of the patchify exercise: hint → the tokens that wrong line of code returns for ``x``."""
    b, c, h, w = x.shape
    n, d = (h // p) * (w // p), c * p * p

    def tokens(*axes: int) -> Tensor:  # the 6-D grid permuted so, then flattened to (B, N, C·p·p)
        # x as the grid (B, C, H/p, p, W/p, p): axes (batch, c, i, a, j, b)
        return x.reshape(b, c, h // p, p, w // p, p).permute(0, *axes).reshape(b, n, d)

    return {
        "the tokens are (B, C·p·p, N), the layout of F.unfold / Tensor.unfold: transpose them, .transpose(1, 2), "
        "so that each of the N patches is one row of C·p·p numbers.": patchify(x, p).transpose(1, 2),
        "the patches are listed column by column (top to bottom, then left to right). Tokens go in row-major "
        "order, like reading: patch (i, j) is token i·(W/p) + j, so the patch row i comes before the column j "
        "in the permute: .permute(0, 2, 4, 1, 3, 5).": tokens(4, 2, 1, 3, 5),
        "the image was transposed (height and width swapped): patches column by column and each patch's pixels "
        "too. Keep the axes in order (batch, i, j, c, a, b): .permute(0, 2, 4, 1, 3, 5).": tokens(4, 2, 1, 5, 3),
        "each token lists its pixels channel last, (a, b, c). The course's layout is that of a Conv2d weight, "
        "channel first, (c, a, b): feature c·p² + a·p + b is pixel (c, i·p + a, j·p + b), "
        ".permute(0, 2, 4, 1, 3, 5).": tokens(2, 4, 3, 5, 1),
        "each patch's pixels are transposed, (b, a) instead of (a, b): within a patch, the pixel row a comes "
        "before the column b, .permute(0, 2, 4, 1, 3, 5).": tokens(2, 4, 1, 5, 3),
        "a plain x.reshape(B, -1, C·p·p) cuts the image in memory order, so a token holds a strip of one pixel "
        "row, not a p × p patch. Split the height and width first, x.reshape(B, C, H/p, p, W/p, p), then "
        ".permute(0, 2, 4, 1, 3, 5) and reshape to (B, N, C·p·p).": x.reshape(b, -1, d),
    }


@checker("patchify")
def check_patchify(fn: Callable, ok: Ok) -> None:
    """Check ``fn(x, patch_size)``: images ``(B, C, H, W)`` → tokens ``(B, N, C·p·p)`` in row-major patch order,
    each token in the layout ``(c, a, b)`` of a Conv2d weight; and that :func:`~labs_lib.dit.unpatchify` inverts it."""
    require_function(fn, "check_patchify", "my_patchify")
    gen = torch.Generator().manual_seed(0)
    for shape, p in PATCHIFY_CASES:
        x = torch.randn(shape, generator=gen)
        out = call_guarded(lambda x=x, p=p: fn(x, p), {"x": x}, "your patchify",
                           "patchify only rearranges x: use reshape and permute, which return new tensors.")
        out = require_tensor(out, "your patchify")
        ref = patchify(x, p)
        if not close(out, ref, tol=0):  # a rearrangement: exact
            b, c, h, w = shape
            fallback = (f"for x of shape {shape} and patch_size {p} patchify returned shape {tuple(out.shape)}; "
                        f"expected (B, N, C·p·p) = {tuple(ref.shape)}, N = (H/p)·(W/p) patches of C·p·p numbers."
                        if out.shape != ref.shape else
                        f"for x of shape {shape} and patch_size {p} your tokens have the right shape but not the "
                        f"right order: unpatchify(tokens, {p}, {h}, {w}) does not give x back. Token i·(W/p) + j "
                        "must be patch (i, j), and its feature c·p² + a·p + b the pixel (c, i·p + a, j·p + b).")
            raise diagnose(out, _patchify_mistakes(x, p), fallback, near=lambda a, b: close(a, b, tol=0))
        if not torch.equal(unpatchify(out, p, shape[2], shape[3]).to(x.dtype), x):
            raise CheckFailed(f"for x of shape {shape} unpatchify does not invert your tokens exactly.")
    x_probe = on_probe_device(torch.randn(PATCHIFY_CASES[2][0], generator=gen))[0]
    require_device_safe(lambda: fn(x_probe, PATCHIFY_CASES[2][1]))
    ok(f"matches labs_lib.dit.patchify for (x shape, p) = {', '.join(f'({s}, {p})' for s, p in PATCHIFY_CASES)}: "
       "row-major patches, features in the Conv2d layout (c, a, b)")
    ok("labs_lib.dit.unpatchify(your tokens, p, H, W) gives x back exactly: no pixel is lost or moved")
    ok("leaves x untouched and works on x's device")


# --- exercise 2: modulate -------------------------------------------------------------------------

# (B, N, W) of the tokens h. N == B first: shift and scale of shape (B, W) without .unsqueeze(1) broadcast
# silently along the tokens there (token n gets example n's shift), and fail loudly when N != B.
MODULATE_SHAPES: tuple[tuple[int, int, int], ...] = ((3, 3, 4), (2, 5, 3), (4, 1, 6), (1, 7, 2))


def _modulate_mistakes(h: Tensor, shift: Tensor, scale: Tensor) -> dict[str, Tensor]:
    """The named mistakes of the modulation exercise: hint → what that wrong line of code returns."""
    sh, sc = shift.unsqueeze(1), scale.unsqueeze(1)
    mistakes = {
        "the `1 +` is missing: h·scale + shift. With it, scale = 0 leaves h unchanged; without it, the "
        "zero-initialised modulation of adaLN-Zero multiplies every token by 0 at the start of training. "
        "Return h * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1).": h * sc + sh,
        "shift and scale are swapped: the scale multiplies, h * (1 + scale) + shift.": h * (1 + sh) + sc,
        "this is (1 − scale): the modulation is h · (1 + scale) + shift.": h * (1 - sc) + sh,
        "shift and scale were both added: the scale multiplies, h * (1 + scale) + shift.": h + sc + sh,
        "the shift is missing: h * (1 + scale) + shift.": h * (1 + sc),
    }
    if h.shape[0] == h.shape[1]:
        # (B, W) against (B, N, W) lines up with the last two axes: with N == B it runs, wrongly
        mistakes.update({
            "shift and scale of shape (B, W) were broadcast along the tokens instead of the batch: against h "
            "of shape (B, N, W) they line up with its last two axes, so with N == B token n got example n's "
            "shift and scale (with N != B it fails). Give them a token axis: scale.unsqueeze(1), shape (B, 1, W).":
                h * (1 + scale) + shift,
            "the shift was broadcast along the tokens instead of the batch: shift.unsqueeze(1), shape "
            "(B, 1, W), like the scale.": h * (1 + sc) + shift,
            "the scale was broadcast along the tokens instead of the batch: scale.unsqueeze(1), shape "
            "(B, 1, W), like the shift.": h * (1 + scale) + sh,
        })
    return mistakes


def _call_modulate(fn: Callable, h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    out = call_guarded(lambda: fn(h, shift, scale), {"h": h, "shift": shift, "scale": scale}, "your modulate",
                       "Build a new tensor: h * (1 + ...) + ..., not h *= ... or h.mul_(...).",
                       lambda err: f"a shape mismatch ({err}). shift and scale have shape (B, W), one row per example, "
                       "and h has shape (B, N, W): give them a token axis, scale.unsqueeze(1) of shape (B, 1, W), so "
                       "that they broadcast over the N tokens of each example.")
    out = require_tensor(out, "your modulate")
    if out.shape != h.shape:
        raise CheckFailed(f"for h of shape {tuple(h.shape)} and shift, scale of shape {tuple(shift.shape)} modulate "
                          f"returned shape {tuple(out.shape)}: it must keep h's shape (B, N, W). "
                          "Use scale.unsqueeze(1), shape (B, 1, W), so that the product broadcasts over the tokens.")
    return out


@checker("modulate")
def check_modulate(fn: Callable, ok: Ok) -> None:
    """Check ``fn(h, shift, scale)`` against adaLN's ``h * (1 + scale[:, None]) + shift[:, None]`` for tokens
    ``h`` ``(B, N, W)`` and ``shift``, ``scale`` ``(B, W)``, and that zero shift and scale leave ``h`` unchanged."""
    require_function(fn, "check_modulate", "my_modulate")
    gen = torch.Generator().manual_seed(1)
    for b, n, w in MODULATE_SHAPES:
        h = torch.randn(b, n, w, generator=gen)
        shift, scale = torch.randn(b, w, generator=gen), torch.randn(b, w, generator=gen)
        out = _call_modulate(fn, h, shift, scale)
        ref = modulate(h, shift, scale)
        if not close(out, ref):
            raise diagnose(out, _modulate_mistakes(h, shift, scale),
                           f"for h of shape {(b, n, w)} your modulate differs from h · (1 + scale) + shift "
                           f"(per example, the same for every token) by up to {float((out - ref).abs().max()):.3g}.")
    ok(f"matches h · (1 + scale) + shift, one shift and scale per example, for h of shapes (B, N, W) = "
       f"{shapes_text(MODULATE_SHAPES)} (N = B included, where a wrong broadcast would go unnoticed)")
    h = torch.randn(MODULATE_SHAPES[1], generator=gen)
    zeros = torch.zeros(h.shape[0], h.shape[2])
    if not torch.equal(_call_modulate(fn, h, zeros, zeros.clone()).to(h.dtype), h):
        raise CheckFailed("with shift = scale = 0 modulate must return h exactly: h · (1 + 0) + 0.")
    ok("with shift = scale = 0 it returns h exactly: adaLN-Zero's zero-initialised modulation starts as the identity")
    require_device_safe(lambda: fn(*on_probe_device(h, torch.randn_like(zeros), torch.randn_like(zeros))))
    ok("leaves its inputs untouched and works on h's device")


# --- exercise 3: the CFG loss in latent space -----------------------------------------------------

# (image shape, latent channels, the autoencoder's channels, (batch size, the model's number of classes) per case):
# latents (2, 2, 2) and (3, 2, 2). Two class counts, so that a null label hard-coded to either model's is caught.
_AUTOENCODERS = (((1, 8, 8), 2, (4, 8, 8), ((6, 3), (8, 3))), ((2, 4, 4), 3, (4, 8), ((5, 5),)))


def _autoencoder(k: int) -> Autoencoder:
    """A small seeded autoencoder (untrained: only the maps matter here) whose normalisation is measured on
    seeded images, so that the shift is not 0 nor the scale 1 and a loss on raw latents has another value.

    Its parameters keep ``requires_grad``: a frozen autoencoder in a notebook may have it switched off, but
    here a loss that tracks the encoder's gradient must show it (see :func:`check_latent_cfg_loss`)."""
    image_shape, latent_channels, channels, _ = _AUTOENCODERS[k]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(40 + k)
        ae = Autoencoder(image_shape, latent_channels, channels)
    ae.measure_normalisation(torch.rand((32, *image_shape), generator=torch.Generator().manual_seed(50 + k)))
    return ae


def _cases():
    """``(where, a fresh stand-in model, (autoencoder, path, x_0, images, t, y, drop_mask))``: x_0 of the LATENT
    shape with the CFG loss's t, labels and drop mask, and images in [-1, 1]."""
    k = 0
    for a, (image_shape, _, _, batches) in enumerate(_AUTOENCODERS):
        ae = _autoencoder(a)
        for n, num_classes in batches:
            x_0, _, t, y, drop = cfg_loss_inputs((n, *ae.latent_shape), 70 + k)
            images = 2 * torch.rand((n, *image_shape), generator=torch.Generator().manual_seed(1070 + k)) - 1
            yield (f"for images of shape {(n, *image_shape)} (latents {(n, *ae.latent_shape)})",
                   CheckModel(num_classes, seed=60 + k), (ae, CFG_PATH, x_0, images, t, y, drop))
            k += 1


def _latents(ae: Autoencoder, images: Tensor, normalise: bool = True) -> Tensor:
    with torch.no_grad():
        return ae.encode(images, normalise=normalise)


def _latent_reference(model: nn.Module, ae: Autoencoder, path: AffinePath, x_0: Tensor, images: Tensor, t: Tensor,
                      y: Tensor, drop: Tensor) -> Tensor:
    """The CFG loss on the normalised latents of the images, the frozen encoder outside the graph."""
    return cfg_loss(model, path, x_0, _latents(ae, images), t, y, drop, null_label_of(model))


def _latent_mistakes(model: nn.Module, ae: Autoencoder, path: AffinePath, x_0: Tensor, images: Tensor, t: Tensor,
                     y: Tensor, drop: Tensor) -> dict[str, Tensor]:
    """The named mistakes of the latent-loss exercise: hint → the loss that wrong line of code returns. First those of
    latent space (raw latents, a hard-coded null label), then the CFG loss's own (guidance's table) on the
    right latents."""
    null = null_label_of(model)
    z = _latents(ae, images)
    hard_coded = {f"dropped labels became {k}, a real class of this model: is the null label hard-coded? The "
                  f"loss gets no null_label argument: read it from the model, model.null_label (here {null}, the "
                  "number of classes), as labs_lib.null_label_of(model) does.":
                  cfg_loss(model, path, x_0, z, t, y, drop, k) for k in range(null)}
    return {
        "the latents are not normalised: encode(images, normalise=False) gives the raw latents, of another centre "
        "and size than the flow's source N(0, I). Use autoencoder.encode(images) (normalise=True, the default): "
        "(z − shift)/scale, the latents the generator learns and decode expects.":
            cfg_loss(model, path, x_0, _latents(ae, images, normalise=False), t, y, drop, null),
        **hard_coded,
        **cfg_loss_mistakes(model, path, x_0, z, t, y, drop, null),
    }


def _call_latent_loss(fn: Callable, model: nn.Module, ae: Autoencoder, path: AffinePath, *args: Tensor) -> Tensor:
    """``fn(model, autoencoder, path, x_0, images, t, y, drop_mask)``, guarded, a single number, and the same
    one under another global seed (it must use the x_0 it is given)."""
    x_0, images = args[0], args[1]
    call = partial(fn, model, ae, path, *args)

    def shape_hint(err: str) -> str:
        return (f"a shape mismatch ({err}). x_0 has the shape of the latents, {tuple(x_0.shape)}, and the images "
                f"{tuple(images.shape)}: the loss runs in latent space. Did you use the images themselves? Encode "
                "them first, z = autoencoder.encode(images), and pass z as the data point x_1 of the CFG loss.")

    torch.manual_seed(1)
    try:
        out = call_guarded(call, dict(zip(("x_0", "images", "t", "y", "drop_mask"), args)), "your loss",
                           "Build new tensors instead, e.g. torch.where(drop_mask, model.null_label, y).", shape_hint)
    except ValueError as err:  # the library's own shape checks (decode's, path.sample's) raise ValueError
        if any(f.name == "decode" and f.filename.endswith("autoencoder.py")
               for f in traceback.extract_tb(err.__traceback__)):
            raise CheckFailed("your loss decodes the images: decode maps latents to images. The flow learns the "
                              "latents of the images, so encode them: z = autoencoder.encode(images), then the CFG "
                              "loss on z.") from None
        if str(tuple(images.shape)) in str(err):
            raise CheckFailed(shape_hint(str(err))) from None
        raise
    require_scalar_loss(out, x_0, "x_0")
    require_repeatable(call, out, "x_0, t and drop_mask")
    return out


def _probe_inputs() -> list:
    """The first case on the probe device. The meta device has no values, so the autoencoder's flag "normalisation
    measured" (read with bool()) stays a CPU tensor: encode runs to the end there."""
    _, model, (ae, path, *args) = next(_cases())
    model, ae, *args = on_probe_device(model, ae, *args)
    ae.normalisation_measured = torch.tensor(True)
    return [model, ae, path, *args]


@checker("latent CFG loss")
def check_latent_cfg_loss(fn: Callable, ok: Ok) -> None:
    """Check ``fn(model, autoencoder, path, x_0, images, t, y, drop_mask)`` against the CFG loss on the normalised
    latents ``autoencoder.encode(images)``, with the encoder outside the graph and ``model.null_label`` as ∅."""
    require_function(fn, "check_latent_cfg_loss", "my_latent_cfg_loss")
    check_loss_values(lambda model, *args: _call_latent_loss(fn, model, *args), _cases(), _latent_reference,
                      _latent_mistakes, "the CFG loss on the normalised latents")
    ok("matches cfg_loss(model, path, x_0, z, t, y, drop_mask, model.null_label) on the normalised latents "
       "z = autoencoder.encode(images), for images of shapes (1, 8, 8) and (2, 4, 4), latents (2, 2, 2) and "
       "(3, 2, 2), batches of 5 to 8, models of 3 and 5 classes")
    ok("uses the given x_0 (no new noise), drops the labels where drop_mask is True, and its gradient reaches the "
       "network's parameters")
    # No gradient may reach the autoencoder: a single backward through the encoder would move it away from the
    # decoder it was trained with. The value is the same either way, so only the loss's graph shows it:
    # torch.autograd.grad(loss, its parameters, allow_unused=True) gives None for every parameter the graph does not
    # reach, which torch.no_grad() (or a .detach() of the latents) guarantees.
    _, model, (ae, *args) = next(_cases())
    loss = _call_latent_loss(fn, model, ae, *args)
    # parameters whose gradient the student switched off (autoencoder.requires_grad_(False)) are frozen already
    trainable = [p for p in ae.parameters() if p.requires_grad]
    if trainable and any(g is not None for g in torch.autograd.grad(loss, trainable, allow_unused=True)):
        raise CheckFailed("the value is right, but the loss's gradient reaches the autoencoder's parameters: the "
                          "encoder ran with autograd on, so training would update the frozen compressor too, away "
                          "from its decoder. Encode without tracking it: with torch.no_grad(): z = "
                          "autoencoder.encode(images).")
    ok("no gradient reaches the autoencoder: the frozen compressor stays as it was trained")
    probe = _probe_inputs()
    require_device_safe(lambda: fn(*probe))
    ok("leaves its inputs untouched and creates its tensors on the inputs' device")


__all__ = ["check_patchify", "check_modulate", "check_latent_cfg_loss"]
