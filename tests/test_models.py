"""Field networks: the Fourier time features against their formula, ``batch_times``'
broadcasting rules, ``MLPField``'s shapes, time dependence, gradients and parameter count,
and the error messages for bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labs_lib import MLPField
from labs_lib.models import FourierPosition, FourierTime
from labs_lib.times import batch_times

# --- FourierTime -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 8])
def test_fourier_features_match_their_formula(k, gen):
    emb = FourierTime(k)
    t = torch.rand(11, generator=gen)
    feats = emb(t)
    assert emb.dim == 2 * k + 1
    assert feats.shape == (11, 2 * k + 1)
    torch.testing.assert_close(feats[:, 0], t)
    for j in range(1, k + 1):
        torch.testing.assert_close(feats[:, j], torch.sin(2 * math.pi * j * t))
        torch.testing.assert_close(feats[:, k + j], torch.cos(2 * math.pi * j * t))


def test_fourier_features_are_a_buffer_not_parameters():
    emb = FourierTime(4)
    assert list(emb.parameters()) == []  # frequencies are fixed, not trained
    assert "freqs" in dict(emb.named_buffers())
    assert emb.to(torch.float64).freqs.dtype == torch.float64  # buffers follow .to()


def test_fourier_features_of_nearby_times_differ():
    # The point of the features: times 0.01 apart are easy to tell apart for the network.
    emb = FourierTime(8)
    f = emb(torch.tensor([0.50, 0.51]))
    assert float((f[0] - f[1]).norm()) > 0.5


@pytest.mark.parametrize("k", [0, -2, 1.5, True, "4"])
def test_fourier_rejects_bad_frequency_counts(k):
    with pytest.raises(ValueError, match="n_frequencies must be a positive integer"):
        FourierTime(k)


# --- batch_times -----------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.3, torch.tensor(0.3), torch.tensor([0.3] * 5), torch.full((5, 1), 0.3)])
def test_batch_times_accepts_scalars_and_per_sample_times(t):
    x = torch.zeros(5, 2, dtype=torch.float64)
    out = batch_times(t, x)
    assert out.shape == (5,)
    assert out.dtype == torch.float64  # follows x
    torch.testing.assert_close(out, torch.full((5,), 0.3, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(4,), (6, 1), (5, 2)])
def test_batch_times_rejects_wrong_batch(shape):
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(batch,\) = \(5,\)"):
        batch_times(torch.zeros(shape), torch.zeros(5, 2))


# --- MLPField --------------------------------------------------------------------------------


def make_field(dim: int = 2, hidden=(16, 16), seed: int = 0, **kw) -> MLPField:
    torch.manual_seed(seed)
    return MLPField(dim, hidden, **kw)


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("batch", [1, 7])
def test_mlp_output_shape_for_scalar_and_batched_times(dim, batch, gen):
    model = make_field(dim)
    x = torch.randn(batch, dim, generator=gen)
    t_batch = torch.rand(batch, generator=gen)
    for t in (0.25, torch.tensor(0.25), t_batch, t_batch.unsqueeze(1)):
        out = model(x, t)
        assert out.shape == (batch, dim)
        assert out.dtype == torch.float32
        assert bool(torch.isfinite(out).all())


def test_scalar_time_equals_the_same_time_for_every_sample(gen):
    model = make_field()
    x = torch.randn(9, 2, generator=gen)
    torch.testing.assert_close(model(x, torch.tensor(0.4)), model(x, torch.full((9,), 0.4)))
    torch.testing.assert_close(model(x, 0.4), model(x, torch.full((9,), 0.4)))


def test_samples_are_processed_independently(gen):
    # Row i of the output depends on row i of the input only (no mixing across the batch).
    model = make_field()
    x, t = torch.randn(8, 2, generator=gen), torch.rand(8, generator=gen)
    full = model(x, t)
    for i in (0, 5):
        torch.testing.assert_close(model(x[i:i + 1], t[i:i + 1]), full[i:i + 1])


def test_output_depends_on_time_and_state(gen):
    model = make_field()
    x = torch.randn(6, 2, generator=gen)
    assert not torch.allclose(model(x, 0.1), model(x, 0.9))
    assert not torch.allclose(model(x, 0.5), model(x + 1, 0.5))


def test_gradients_reach_every_parameter(gen):
    model = make_field()
    x, t = torch.randn(10, 2, generator=gen), torch.rand(10, generator=gen)
    model(x, t).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_architecture_and_parameter_count():
    model = make_field(3, hidden=(32, 16), n_frequencies=4)
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3 + 9, 32), (32, 16), (16, 3)]
    expected = (12 * 32 + 32) + (32 * 16 + 16) + (16 * 3 + 3)
    assert model.n_parameters() == expected == sum(p.numel() for p in model.parameters())
    # The default network of the course: three hidden layers of 128 (the size notebooks quote).
    assert MLPField(2).n_parameters() == (19 * 128 + 128) + 2 * (128 * 128 + 128) + (128 * 2 + 2)


def test_same_seed_same_network(gen):
    x = torch.randn(4, 2, generator=gen)
    torch.testing.assert_close(make_field(seed=3)(x, 0.5), make_field(seed=3)(x, 0.5))
    assert not torch.allclose(make_field(seed=3)(x, 0.5), make_field(seed=4)(x, 0.5))


def test_double_precision_model_takes_double_inputs(gen):
    model = make_field().double()
    out = model(torch.randn(3, 2, generator=gen, dtype=torch.float64), 0.5)
    assert out.dtype == torch.float64


@pytest.mark.parametrize("hidden", [(), [], (16, 0), (16, -4), (16.0,), [8, "8"]])
def test_mlp_rejects_bad_hidden_widths(hidden):
    with pytest.raises(ValueError, match="hidden must be a non-empty list of positive layer widths"):
        MLPField(2, hidden)


@pytest.mark.parametrize("dim", [0, -1, 2.0])
def test_mlp_rejects_bad_dim(dim):
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        MLPField(dim)


@pytest.mark.parametrize("shape", [(2,), (5, 3), (5, 1), (4, 2, 1), (4, 1, 3, 3)])
def test_mlp_rejects_wrong_state_shapes(shape):
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        make_field()(torch.zeros(shape), 0.5)


def test_mlp_rejects_non_tensors_and_wrong_time_shapes():
    model = make_field()
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        model([[0.0, 1.0]], 0.5)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(batch,\) = \(4,\)"):
        model(torch.zeros(4, 2), torch.zeros(3))


# --- FourierPosition and MLPField's position features -----------------------------------------


def test_fourier_position_is_sines_and_cosines_of_its_directions(gen):
    torch.manual_seed(0)
    emb = FourierPosition(2, n_features=5, scale=0.5)
    x = torch.randn(7, 2, generator=gen)
    angles = 2 * math.pi * (x[:, :1] * emb.directions[:, 0] + x[:, 1:] * emb.directions[:, 1])
    torch.testing.assert_close(emb(x), torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))
    assert emb.dim == 10
    # every pair (sin, cos) lies on the unit circle: the features are bounded whatever the scale of x
    torch.testing.assert_close(emb(100 * x)[:, :5] ** 2 + emb(100 * x)[:, 5:] ** 2, torch.ones(7, 5))


def test_fourier_position_frequencies_have_the_requested_scale():
    # B_ij ~ N(0, s²): with 20,000 entries the sample standard deviation is within 2% of s (~3 s.e.)
    torch.manual_seed(1)
    directions = FourierPosition(2, n_features=10_000, scale=0.7).directions
    assert directions.shape == (10_000, 2)
    assert abs(float(directions.std()) / 0.7 - 1) < 0.02
    assert abs(float(directions.mean())) < 0.02


def test_fourier_position_is_saved_with_the_model():
    model = make_field(position_features=6, seed=2)
    state = model.state_dict()
    assert "position.directions" in state
    clone = make_field(position_features=6, seed=9)  # other random directions ...
    clone.load_state_dict(state)  # ... replaced by the saved ones
    x = torch.randn(4, 2)
    torch.testing.assert_close(clone(x, 0.3), model(x, 0.3))


def test_position_features_widen_the_input_only(gen):
    plain, rich = make_field(hidden=(32, 16)), make_field(hidden=(32, 16), position_features=8)
    first = [m for m in rich.net if isinstance(m, nn.Linear)][0]
    assert first.in_features == 2 + 16 + 17  # x, 8 sines and 8 cosines, the time features
    assert rich.n_parameters() == plain.n_parameters() + 16 * 32
    x, t = torch.randn(5, 2, generator=gen), torch.rand(5, generator=gen)
    assert rich(x, t).shape == (5, 2)
    rich(x, t).pow(2).sum().backward()
    assert all(p.grad is not None for p in rich.parameters())
    assert plain.position is None  # the default network is unchanged


@pytest.mark.parametrize("bad", [-1, 2.5, True, "8"])
def test_mlp_rejects_bad_position_features(bad):
    with pytest.raises(ValueError, match="position_features must be a whole number >= 0"):
        MLPField(2, position_features=bad)


@pytest.mark.parametrize("scale, error", [(0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                          ("1", TypeError)])
def test_fourier_position_rejects_bad_scales(scale, error):
    with pytest.raises(error, match="scale"):
        MLPField(2, position_features=4, position_scale=scale)
