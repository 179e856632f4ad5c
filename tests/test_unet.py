"""The small U-Net: shapes, the skip connections, time and label conditioning, gradient flow,
input validation, and a tiny overfitting run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labs_lib import UNet, load_digits_split
from labs_lib.unet import ResidualBlock


def _inputs(batch=4, channels=1, size=8, num_classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=gen)
    t = torch.rand(batch, generator=gen)
    y = torch.randint(num_classes + 1, (batch,), generator=gen)
    return x, t, y


@pytest.mark.parametrize("kwargs, shape", [
    ({}, (4, 1, 8, 8)),
    ({"channels": (16, 32)}, (3, 1, 8, 8)),
    ({"channels": (8,)}, (2, 1, 5, 7)),  # one level: no resampling, any size
    ({"channels": (8, 16, 32), "image_channels": 3, "blocks_per_level": 2}, (2, 3, 16, 12)),
])
def test_output_has_the_input_shape(kwargs, shape):
    torch.manual_seed(0)
    net = UNet(**kwargs)
    x, t, y = _inputs(shape[0], shape[1], 8)
    x = torch.randn(shape)
    assert net(x, t, y).shape == shape


def test_scalar_time_is_broadcast():
    torch.manual_seed(0)
    net = UNet(channels=(8, 16))
    x, t, y = _inputs()
    assert torch.allclose(net(x, 0.3, y), net(x, torch.full((4,), 0.3), y))


def test_output_depends_on_time_and_label():
    torch.manual_seed(0)
    net = UNet(channels=(8, 16))
    x, t, y = _inputs()
    base = net(x, t, y)
    assert not torch.allclose(base, net(x, t + 0.1, y))
    assert not torch.allclose(base, net(x, t, (y + 1) % 11))
    # the null label (index num_classes) has its own row
    assert net.embedding.label.num_embeddings == 11 and net.null_label == 10
    assert not torch.allclose(net(x, t, torch.zeros_like(y)), net(x, t, torch.full_like(y, 10)))


def test_skip_connections_carry_the_encoder_features():
    torch.manual_seed(0)
    net = UNet(channels=(8, 16, 32))
    x, t, y = _inputs(2, size=8)
    encoded, decoder_inputs = [], []
    for blocks in net.encoder:
        blocks[-1].register_forward_hook(lambda m, inp, out: encoded.append(out))
    for blocks in net.decoder:
        blocks[0].register_forward_pre_hook(lambda m, inp: decoder_inputs.append(inp[0]))
    net(x, t, y)
    assert [e.shape[1:] for e in encoded] == [(8, 8, 8), (16, 4, 4), (32, 2, 2)]
    # decoding runs coarsest first; each decoder level sees [its own features, the encoder's] stacked
    for dec_in, enc_out in zip(decoder_inputs, reversed(encoded)):
        c = enc_out.shape[1]
        assert dec_in.shape == (2, 2 * c, *enc_out.shape[2:])
        assert torch.equal(dec_in[:, c:], enc_out)


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    net = UNet(channels=(8, 16))
    x, t, y = _inputs(8)
    y[:2] = 10  # include the null label
    net(x, t, y).pow(2).sum().backward()
    for name, p in net.named_parameters():
        if name.startswith("embedding.label"):
            used = torch.unique(y)
            assert bool((p.grad[used].abs().sum(1) > 0).all()), name
            continue
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, f"no gradient reaches {name}"


def test_input_gradient_reaches_every_pixel():
    torch.manual_seed(0)
    net = UNet(channels=(8, 16))
    x, t, y = _inputs(1)
    x.requires_grad_(True)
    net(x, t, y)[0, 0, 3, 4].backward()
    assert bool((x.grad.abs() > 0).float().mean() > 0.5)  # a wide receptive field through the levels


def test_residual_block_shortcut():
    block = ResidualBlock(8, 8, 4)
    assert isinstance(block.shortcut, nn.Identity)
    wider = ResidualBlock(8, 16, 4)
    assert isinstance(wider.shortcut, nn.Conv2d)
    assert wider(torch.randn(2, 8, 4, 4), torch.randn(2, 4)).shape == (2, 16, 4, 4)


def test_tiny_overfit():
    """On 8 fixed digits with fixed times and labels, the U-Net drives the regression error to ~0."""
    torch.manual_seed(0)
    digits = load_digits_split().train_images[:8]
    x, t, y = _inputs(8, seed=1)
    target = digits - x  # a CondOT-like velocity target
    net = UNet(channels=(8, 16), emb_dim=16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = (net(x, t, y) - target).pow(2).mean()
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    assert min(losses[-10:]) < 0.05 * losses[0]


def test_n_parameters_counts_them_all():
    net = UNet(channels=(8, 16))
    assert net.n_parameters() == sum(p.numel() for p in net.parameters()) > 0


@pytest.mark.parametrize("call, err, match", [
    (lambda n: n(torch.randn(2, 8, 8), torch.rand(2), torch.zeros(2, dtype=torch.long)), ValueError, "shape"),
    (lambda n: n(torch.randn(2, 3, 8, 8), torch.rand(2), torch.zeros(2, dtype=torch.long)), ValueError, "shape"),
    (lambda n: n(torch.randn(2, 1, 7, 8), torch.rand(2), torch.zeros(2, dtype=torch.long)), ValueError, "divisible"),
    (lambda n: n(torch.randn(2, 1, 8, 8), torch.rand(2), torch.zeros(3, dtype=torch.long)), ValueError, "y must"),
    (lambda n: n(torch.randn(2, 1, 8, 8), torch.rand(2), torch.zeros(2)), TypeError, "integer"),
    (lambda n: n(torch.randn(2, 1, 8, 8), torch.rand(2), torch.tensor([0, 11])), ValueError, "null label"),
    (lambda n: n(torch.randn(2, 1, 8, 8), torch.rand(3), torch.zeros(2, dtype=torch.long)), ValueError, "t must"),
])
def test_bad_input_is_explained(call, err, match):
    net = UNet(channels=(8, 16))
    with pytest.raises(err, match=match):
        call(net)


@pytest.mark.parametrize("kwargs", [{"channels": ()}, {"channels": (8, 0)}, {"num_classes": 0},
                                    {"blocks_per_level": 0}, {"channels": (8.0,)}])
def test_bad_construction_is_explained(kwargs):
    with pytest.raises(ValueError):
        UNet(**kwargs)


def test_trace_lists_every_stage_in_order():
    net = UNet(channels=(8, 16))
    x, t, y = _inputs(2)
    trace = net.trace(x, t, y)
    stages = [name for name, _ in trace]
    assert stages[0].startswith("embedding") and stages[-1].startswith("head")
    assert [s.split(":")[0] for s in stages[1:]] == [
        "stem", "encoder level 0", "downsample 0 → 1", "encoder level 1", "midcoder",
        "decoder level 1", "upsample 1 → 0", "decoder level 0", "head"]
    assert dict(trace)["midcoder: residual block"] == (2, 16, 4, 4)
    assert trace[-1][1] == (2, 1, 8, 8)
    assert not any(m._forward_hooks for m in net.modules())  # the hooks are removed again
