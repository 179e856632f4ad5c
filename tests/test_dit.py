"""The diffusion transformer: patchify and unpatchify (a hand-built example, the exact round trip,
the equivalence with a strided convolution), the sine-cosine position codes, the modulation,
adaLN-Zero (every block the identity at init, the whole network zero, gradients reaching the gates
after one step), classifier-free guidance through ``generate_guided`` and ``CFGTrainer``, the
latent-image use, and the error messages for bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from loss_cases import PATH

from labs_lib import (CFGTrainer, CFGVectorField, Digits, DiT, generate_guided, modulate, patchify,
                      sincos_position_embedding, unpatchify)
from labs_lib.dit import DiTBlock


def _inputs(batch=4, channels=1, height=8, width=8, num_classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=gen)
    t = torch.rand(batch, generator=gen)
    y = torch.randint(num_classes + 1, (batch,), generator=gen)  # the null label included
    return x, t, y


def _randomise_zero_layers(model: DiT, seed: int = 0) -> DiT:
    """Give the zero-initialised layers random weights, as training would: a network with a non-zero output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "modulation" in name or name.startswith("final.linear"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model


# --- patchify / unpatchify ---------------------------------------------------------------------


def test_patchify_token_order_by_hand():
    x = torch.arange(32.0).reshape(1, 2, 4, 4)  # channel 0 holds 0..15, channel 1 holds 16..31, row by row
    tokens = patchify(x, 2)
    expected = torch.tensor([
        [0, 1, 4, 5, 16, 17, 20, 21],  # patch row 0, column 0: channel 0's 2×2 pixels, then channel 1's
        [2, 3, 6, 7, 18, 19, 22, 23],  # row 0, column 1
        [8, 9, 12, 13, 24, 25, 28, 29],  # row 1, column 0
        [10, 11, 14, 15, 26, 27, 30, 31],  # row 1, column 1
    ], dtype=torch.float32)
    assert tokens.shape == (1, 4, 8)
    assert torch.equal(tokens[0], expected)


def test_patchify_of_a_wide_image_runs_along_the_width_first():
    x = torch.arange(8.0).reshape(1, 1, 2, 4)  # [[0 1 2 3], [4 5 6 7]]
    assert torch.equal(patchify(x, 2)[0], torch.tensor([[0.0, 1, 4, 5], [2, 3, 6, 7]]))
    assert torch.equal(patchify(x, 1)[0, :, 0], torch.arange(8.0))  # p = 1: one token per pixel, row-major


@pytest.mark.parametrize("shape, p", [((3, 1, 8, 8), 2), ((2, 3, 8, 12), 4), ((2, 4, 2, 2), 1), ((1, 1, 8, 8), 8),
                                      ((2, 2, 6, 4), 2)])
def test_unpatchify_inverts_patchify_exactly(shape, p, gen):
    x = torch.randn(shape, generator=gen)
    tokens = patchify(x, p)
    b, c, h, w = shape
    assert tokens.shape == (b, (h // p) * (w // p), c * p * p)
    assert torch.equal(unpatchify(tokens, p, h, w), x)
    assert torch.equal(patchify(unpatchify(tokens, p, h, w), p), tokens)


def test_a_linear_map_of_the_tokens_is_a_strided_convolution(gen):
    x = torch.randn(2, 3, 8, 8, generator=gen)
    weight, bias = torch.randn(5, 3, 2, 2, generator=gen), torch.randn(5, generator=gen)
    conv = F.conv2d(x, weight, bias, stride=2)  # (2, 5, 4, 4)
    linear = patchify(x, 2) @ weight.reshape(5, -1).T + bias  # (2, 16, 5)
    torch.testing.assert_close(linear, conv.flatten(2).transpose(1, 2))


@pytest.mark.parametrize("call, err, match", [
    (lambda: patchify(torch.randn(2, 1, 7, 8), 2), ValueError, "divisible by the patch size 2"),
    (lambda: patchify(torch.randn(2, 1, 8, 8), 3), ValueError, "divisible by the patch size 3"),
    (lambda: patchify(torch.randn(1, 8, 8), 2), ValueError, r"\(batch, channels, height, width\)"),
    (lambda: patchify(torch.randn(2, 1, 8, 8), 0), ValueError, "patch_size must be a positive integer"),
    (lambda: patchify(torch.randn(2, 1, 8, 8), 2.0), ValueError, "patch_size must be a positive integer"),
    (lambda: patchify([[1.0]], 1), TypeError, "torch.Tensor"),
    (lambda: unpatchify(torch.randn(2, 16, 4), 2, 8, 7), ValueError, "divisible by the patch size"),
    (lambda: unpatchify(torch.randn(2, 15, 4), 2, 8, 8), ValueError, r"tokens must have shape \(batch, 16"),
    (lambda: unpatchify(torch.randn(2, 16, 6), 2, 8, 8), ValueError, "tokens must have shape"),
])
def test_bad_patching_is_explained(call, err, match):
    with pytest.raises(err, match=match):
        call()


# --- positions and modulation ------------------------------------------------------------------


def test_position_codes_follow_their_formula_in_row_major_order():
    gh, gw, dim = 3, 5, 16
    codes = sincos_position_embedding(gh, gw, dim)
    assert codes.shape == (15, 16) and codes.dtype == torch.float32
    omega = [10000 ** (-k / 4) for k in range(4)]
    for i in range(gh):
        for j in range(gw):
            n = i * gw + j
            expected = ([math.sin(w * i) for w in omega] + [math.cos(w * i) for w in omega]
                        + [math.sin(w * j) for w in omega] + [math.cos(w * j) for w in omega])
            torch.testing.assert_close(codes[n], torch.tensor(expected))
    assert torch.cdist(codes, codes).add(torch.eye(15)).min() > 0.1  # every patch gets its own code


def test_position_codes_need_a_width_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_embedding(2, 2, 6)
    with pytest.raises(ValueError, match="divisible by 4"):
        DiT(width=30, heads=3)


def test_modulate_is_shift_and_scale_per_example(gen):
    h = torch.randn(3, 5, 8, generator=gen)
    shift, scale = torch.randn(3, 8, generator=gen), torch.randn(3, 8, generator=gen)
    out = modulate(h, shift, scale)
    for b in range(3):
        for n in range(5):
            torch.testing.assert_close(out[b, n], h[b, n] * (1 + scale[b]) + shift[b])
    assert torch.equal(modulate(h, torch.zeros(3, 8), torch.zeros(3, 8)), h)  # zero modulation: the identity


# --- adaLN-Zero ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_block_is_the_identity_at_init(seed):
    torch.manual_seed(seed)
    block = DiTBlock(width=32, heads=4, mlp_ratio=4.0, cond_dim=16)
    gen = torch.Generator().manual_seed(seed)
    h, c = torch.randn(5, 7, 32, generator=gen), 10 * torch.randn(5, 16, generator=gen)
    assert torch.equal(block(h, c), h)  # exactly: each branch is multiplied by a gate that is exactly 0


def test_the_blocks_of_a_fresh_dit_are_identities_and_its_output_is_zero():
    torch.manual_seed(0)
    model = DiT(patch_size=2, width=32, depth=3, heads=4)
    x, t, y = _inputs(6)
    tokens_in, tokens_out = [], []

    def record(module, inputs, output):
        tokens_in.append(inputs[0])
        tokens_out.append(output)

    for block in model.blocks:
        block.register_forward_hook(record)
    out = model(x, t, y)
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(x))
    assert len(tokens_out) == 3 and all(torch.equal(a, b) for a, b in zip(tokens_in, tokens_out))


def test_gradients_reach_the_gates_after_one_step():
    """At init only the zero final layer gets a gradient (everything before it is multiplied by its zero
    weights); after one optimiser step the gradient reaches every block's gates: zero-init is no dead end."""
    torch.manual_seed(0)
    model = DiT(patch_size=2, width=32, depth=2, heads=4)
    x, t, y = _inputs(8)
    target = torch.randn_like(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def gate_grads():
        opt.zero_grad()
        (model(x, t, y) - target).pow(2).mean().backward()
        w = model.width
        # the modulation's output is (shift1, scale1, gate1, shift2, scale2, gate2), each `width` rows
        return [(b.modulation[1].weight.grad[2 * w:3 * w], b.modulation[1].weight.grad[5 * w:6 * w])
                for b in model.blocks]

    first = gate_grads()
    assert float(model.final.linear.weight.grad.abs().sum()) > 0
    assert all(float(g.abs().sum()) == 0 for pair in first for g in pair)
    opt.step()
    second = gate_grads()
    for i, (g_attn, g_mlp) in enumerate(second):
        assert float(g_attn.abs().sum()) > 0 and float(g_mlp.abs().sum()) > 0, f"no gradient to block {i}'s gates"


def test_a_few_steps_switch_the_blocks_on():
    torch.manual_seed(0)
    model = DiT(patch_size=2, width=32, depth=2, heads=4)
    x, t, y = _inputs(8)
    target = torch.randn_like(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        (model(x, t, y) - target).pow(2).mean().backward()
        opt.step()
    h, c = torch.randn(2, 16, 32), torch.randn(2, 32)
    assert not torch.allclose(model.blocks[0](h, c), h)  # no longer the identity


# --- the whole network -------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, shape", [
    ({}, (4, 1, 8, 8)),
    ({"patch_size": 1, "width": 32, "depth": 1}, (3, 1, 8, 8)),
    ({"patch_size": 4, "width": 48, "heads": 3}, (2, 1, 8, 12)),
    ({"image_channels": 4, "patch_size": 1, "width": 32, "depth": 2}, (5, 4, 2, 2)),  # a latent image
])
def test_output_has_the_input_shape(kwargs, shape):
    torch.manual_seed(0)
    model = _randomise_zero_layers(DiT(**kwargs))
    x, t, y = _inputs(shape[0], *shape[1:])
    out = model(x, t, y)
    assert out.shape == shape and bool(torch.isfinite(out).all())


def test_output_depends_on_time_label_and_position():
    torch.manual_seed(0)
    model = _randomise_zero_layers(DiT(width=32, depth=2))
    x, t, y = _inputs()
    base = model(x, t, y)
    assert torch.allclose(model(x, 0.3, y), model(x, torch.full((4,), 0.3), y))
    assert not torch.allclose(base, model(x, t + 0.1, y))
    assert not torch.allclose(base, model(x, t, (y + 1) % 11))
    assert model.embedding.label.num_embeddings == 11 and model.null_label == 10
    # the position codes break the transformer's symmetry: moving the image is not moving the output
    shifted = torch.roll(x, shifts=2, dims=3)
    assert not torch.allclose(model(shifted, t, y), torch.roll(base, shifts=2, dims=3), atol=1e-4)


def test_every_parameter_receives_a_gradient_once_trained_a_little():
    torch.manual_seed(0)
    model = _randomise_zero_layers(DiT(width=32, depth=2))
    x, t, y = _inputs(8)
    model(x, t, y).pow(2).sum().backward()
    used = torch.unique(y)
    for name, p in model.named_parameters():
        if name.startswith("embedding.label"):
            assert bool((p.grad[used].abs().sum(1) > 0).all()), name
        else:
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, f"no gradient reaches {name}"


def test_tiny_overfit():
    """On 8 fixed digits with fixed times and labels, the DiT drives the regression error well down."""
    torch.manual_seed(0)
    digits = Digits().images[:8]
    x, t, y = _inputs(8, seed=1)
    target = digits - x
    model = DiT(width=32, depth=2, heads=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = (model(x, t, y) - target).pow(2).mean()
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    assert min(losses[-10:]) < 0.1 * losses[0]


# --- classifier-free guidance ------------------------------------------------------------------


def test_generate_guided_runs_on_an_untrained_dit():
    torch.manual_seed(0)
    model = DiT(width=32, depth=2)
    labels = torch.tensor([0, 3, 9])
    noise = torch.randn((3, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    out = generate_guided(model, labels, 2.0, n_steps=4, seed=1)
    assert out.shape == (3, 1, 8, 8) and torch.equal(out, noise)  # a zero field leaves the noise where it is
    _randomise_zero_layers(model)
    for w in (0.0, 1.0, 3.0):
        out = generate_guided(model, labels, w, n_steps=4, seed=1, method="heun")
        assert out.shape == (3, 1, 8, 8) and bool(torch.isfinite(out).all())
        assert not torch.equal(out, noise)


def test_cfg_field_uses_the_dit_null_label():
    torch.manual_seed(0)
    model = _randomise_zero_layers(DiT(width=32, depth=1))
    x, t, _ = _inputs(4)
    y = torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        expected = -1.5 * model(x, t, torch.full_like(y, 10)) + 2.5 * model(x, t, y)
        torch.testing.assert_close(CFGVectorField(model, y, 2.5)(x, t), expected)


def test_cfg_trainer_trains_a_dit():
    model = DiT(width=32, depth=2)
    history = CFGTrainer(model, PATH, Digits(), eta=0.1).train(30, batch_size=32, lr=2e-3, progress=False, seed=0)
    assert history.losses.shape == (30,) and bool(torch.isfinite(torch.tensor(history.losses)).all())
    assert history.losses[-5:].mean() < history.losses[:5].mean()
    assert not model.training


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call, err, match", [
    (lambda m: m(torch.randn(2, 8, 8), 0.5, torch.zeros(2, dtype=torch.long)), ValueError, "x must have shape"),
    (lambda m: m(torch.randn(2, 3, 8, 8), 0.5, torch.zeros(2, dtype=torch.long)), ValueError, "x must have shape"),
    (lambda m: m(torch.randn(2, 1, 7, 8), 0.5, torch.zeros(2, dtype=torch.long)), ValueError, "divisible by the patch"),
    (lambda m: m(torch.zeros(2, 1, 8, 8, dtype=torch.long), 0.5, torch.zeros(2, dtype=torch.long)), TypeError,
     "floating-point"),
    (lambda m: m(torch.randn(2, 1, 8, 8), 0.5, torch.zeros(3, dtype=torch.long)), ValueError, "y must have shape"),
    (lambda m: m(torch.randn(2, 1, 8, 8), 0.5, torch.zeros(2)), TypeError, "integer"),
    (lambda m: m(torch.randn(2, 1, 8, 8), 0.5, torch.tensor([0, 11])), ValueError, "null label"),
    (lambda m: m(torch.randn(2, 1, 8, 8), 0.5, torch.tensor([-1, 3])), ValueError, "0 .. 10"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.rand(3), torch.zeros(2, dtype=torch.long)), ValueError, "t must"),
])
def test_bad_input_is_explained(call, err, match):
    model = DiT(width=32, depth=1)
    with pytest.raises(err, match=match):
        call(model)


@pytest.mark.parametrize("kwargs, match", [
    ({"patch_size": 0}, "patch_size"), ({"patch_size": 2.0}, "patch_size"), ({"width": 36, "heads": 8}, "heads"),
    ({"num_classes": 0}, "num_classes"), ({"depth": 0}, "depth"), ({"mlp_ratio": 0}, "mlp_ratio"),
    ({"image_channels": 0}, "image_channels"),
])
def test_bad_construction_is_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiT(**kwargs)
