"""Guided flow matching and classifier-free guidance: labelled path samples, the trainer's label
dropping, the one-call CFG field, guided generation, and the label-conditioned MLP. The CFG loss
with its drop mask, and ``drop_labels``, are tested in ``test_losses.py``."""

from __future__ import annotations

import pytest
import torch
from loss_cases import PATH, Recorder, labelled_batch
from torch import nn

import labs_lib as ll
from labs_lib import (CFGTrainer, CFGVectorField, Digits, GuidedPathSample, LabelledMLPField, UNet, generate_guided,
                      sample_guided_path)

# --- labelled path samples ---------------------------------------------------------------------


def test_guided_path_sample_pairs_images_with_their_labels(gen):
    data = Digits("train")
    s = sample_guided_path(PATH, data, 64, generator=gen)
    assert isinstance(s, GuidedPathSample) and isinstance(s, ll.PathSample)
    assert s.x_t.shape == s.dx_t.shape == s.x_0.shape == s.x_1.shape == (64, 1, 8, 8)
    assert s.t.shape == s.y.shape == (64,) and s.y.dtype == torch.int64
    tt = s.t.view(-1, 1, 1, 1)
    assert torch.allclose(s.x_t, tt * s.x_1 + (1 - tt) * s.x_0)
    assert torch.allclose(s.dx_t, s.x_1 - s.x_0)
    # each x_1 is a training digit that carries the label y
    train = data.images.reshape(len(data), -1)
    idx = torch.cdist(s.x_1.reshape(64, -1), train).argmin(1)
    assert torch.equal(data.labels[idx], s.y)


def test_guided_path_sample_is_reproducible():
    a = sample_guided_path(PATH, Digits(), 8, generator=torch.Generator().manual_seed(5))
    b = sample_guided_path(PATH, Digits(), 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.x_t, b.x_t) and torch.equal(a.y, b.y)


def test_guided_path_sample_rejects_unlabelled_data():
    with pytest.raises(TypeError, match="LabelledSampleable"):
        sample_guided_path(PATH, ll.Moons(), 4)
    with pytest.raises(TypeError, match="AffinePath"):
        sample_guided_path("path", Digits(), 4)


# --- the trainer -------------------------------------------------------------------------------


def test_trainer_drops_labels_with_probability_eta():
    model = Recorder()
    trainer = CFGTrainer(model, PATH, Digits(), eta=0.2)
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(40):
            trainer.loss(500)
    labels = torch.cat(model.labels)
    frac = float((labels == 10).double().mean())
    # 20,000 Bernoulli(0.2) draws: standard error 0.0028, tolerance 5 of them
    assert abs(frac - 0.2) < 0.014
    kept = labels[labels != 10]
    assert int(kept.min()) == 0 and int(kept.max()) == 9


def test_trainer_eta_zero_and_one():
    for eta, expect_null in ((0.0, False), (1.0, True)):
        model = Recorder()
        with torch.no_grad():
            CFGTrainer(model, PATH, Digits(), eta=eta).loss(64)
        assert bool((model.labels[-1] == 10).all()) is expect_null
        assert bool((model.labels[-1] == 10).any()) is expect_null


@pytest.mark.parametrize("eta", [-0.1, 1.5, "0.1", True])
def test_trainer_rejects_bad_eta(eta):
    with pytest.raises(ValueError, match="eta"):
        CFGTrainer(Recorder(), PATH, Digits(), eta=eta)


def test_trainer_rejects_unlabelled_data():
    with pytest.raises(TypeError, match="LabelledSampleable"):
        CFGTrainer(Recorder(), PATH, ll.Moons())


def test_cfg_trainer_takes_the_null_label_from_the_model():
    assert CFGTrainer(Recorder(), PATH, Digits()).null_label == 10
    with pytest.raises(ValueError, match="num_classes=10"):
        CFGTrainer(Recorder(num_classes=7), PATH, Digits())
    with pytest.raises(TypeError, match="no null_label attribute"):
        CFGTrainer(nn.Linear(2, 2), PATH, Digits())


def test_short_training_lowers_the_loss():
    model = LabelledMLPField((1, 8, 8), 10, hidden=(64, 64))
    history = CFGTrainer(model, PATH, Digits(), eta=0.1).train(150, batch_size=64, lr=2e-3, progress=False,
                                                               device="cpu")
    assert history.losses.shape == (150,)
    assert history.losses[-20:].mean() < 0.8 * history.losses[:5].mean()
    assert not model.training


# --- the guided field --------------------------------------------------------------------------


@pytest.mark.parametrize("w", [0.0, 1.0, 0.5, 2.5, 7.0])
def test_cfg_field_is_the_weighted_combination(w):
    model = Recorder()
    x, _, t, _, _ = labelled_batch((6, 1, 8, 8))
    y = torch.arange(6)
    out = CFGVectorField(model, y, w)(x, t)
    null = torch.full_like(y, 10)
    with torch.no_grad():
        expected = (1 - w) * model(x, t, null) + w * model(x, t, y)
    assert torch.allclose(out, expected, atol=1e-6)


def test_cfg_field_makes_one_network_call():
    model = Recorder()
    x = torch.randn(5, 2)
    CFGVectorField(model, torch.arange(5), 3.0)(x, torch.tensor(0.4))
    assert model.calls == [10]
    model.calls.clear()
    CFGVectorField(model, torch.arange(5), 1.0)(x, 0.4)  # w = 1: only the guided branch
    assert model.calls == [5]


def test_cfg_field_scalar_and_batched_time_agree():
    model = Recorder()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 2, 3, 4])
    field = CFGVectorField(model, y, 2.0)
    assert torch.allclose(field(x, torch.tensor(0.3)), field(x, torch.full((4,), 0.3)))


def test_cfg_field_validation():
    with pytest.raises(TypeError, match="no null_label attribute"):
        CFGVectorField(lambda x, t, y: x, torch.arange(3), 2.0)
    with pytest.raises(ValueError, match="integer labels"):
        CFGVectorField(Recorder(), torch.zeros(3), 2.0)
    with pytest.raises(TypeError, match="number"):
        CFGVectorField(Recorder(), torch.arange(3), "2")
    with pytest.raises(ValueError, match="batch"):
        CFGVectorField(Recorder(), torch.arange(3), 2.0)(torch.randn(4, 2), 0.5)


def test_cfg_field_in_an_ode():
    model = Recorder()
    ode = ll.VectorFieldODE(CFGVectorField(model, torch.arange(4), 2.0))
    out = ll.EulerSimulator(ode).simulate(torch.randn(4, 1, 8, 8), ll.time_grid(5))
    assert out.shape == (4, 1, 8, 8) and model.calls == [8] * 5


def test_cfg_on_gaussian_classes_moves_toward_the_requested_mean():
    """For two Gaussian classes N(±m, I) and the CondOT path, u(x | y) is exact; the CFG field with w > 1
    points further towards the requested class than the guided field does (it extrapolates away from ∅)."""

    class Exact(nn.Module):
        num_classes = null_label = 2

        def forward(self, x, t, y):
            m = torch.tensor([[2.0], [-2.0], [0.0]])[y]  # class means; ∅ → the mixture's mean 0 (a rough stand-in)
            tt = t.view(-1, 1)
            # CondOT velocity of N(m, I) data: E[z|x] = m + t (x - t m) / (t² + (1-t)²), u = (E[z|x] - x) / (1 - t)
            ez = m + tt * (x - tt * m) / (tt**2 + (1 - tt) ** 2)
            return (ez - x) / (1 - tt)

    x = torch.zeros(2, 1)
    t = torch.full((2,), 0.5)
    y = torch.tensor([0, 1])
    u1 = CFGVectorField(Exact(), y, 1.0)(x, t)
    u4 = CFGVectorField(Exact(), y, 4.0)(x, t)
    assert float(u1[0]) > 0 > float(u1[1])
    assert float(u4[0]) == pytest.approx(4 * float(u1[0])) and float(u4[1]) == pytest.approx(4 * float(u1[1]))


# --- generation --------------------------------------------------------------------------------


def test_generate_guided_is_seeded_and_shaped():
    torch.manual_seed(0)
    model = UNet(channels=(8, 16))
    labels = torch.tensor([0, 3, 9])
    a = generate_guided(model, labels, 2.0, n_steps=4, seed=1)
    b = generate_guided(model, labels, 2.0, n_steps=4, seed=1, method="heun")
    assert a.shape == (3, 1, 8, 8) and torch.isfinite(a).all()
    assert torch.equal(a, generate_guided(model, labels, 2.0, n_steps=4, seed=1))
    assert not torch.equal(a, b)
    model.train()
    generate_guided(model, labels, 2.0, n_steps=2)
    assert model.training  # the mode is restored
    with pytest.raises(ValueError, match="method"):
        generate_guided(model, labels, 2.0, method="rk4")


# --- the label-conditioned MLP -----------------------------------------------------------------


def test_labelled_mlp_shapes_and_conditioning():
    torch.manual_seed(0)
    net = LabelledMLPField((1, 8, 8), 10, hidden=(32, 32))
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 10])
    out = net(x, 0.5, y)
    assert out.shape == (5, 1, 8, 8)
    assert torch.allclose(out, net(x, torch.full((5,), 0.5), y))
    assert not torch.allclose(out, net(x, 0.5, torch.full_like(y, 10)))
    assert net.label.num_embeddings == 11 and net.null_label == 10
    assert net.n_parameters() == sum(p.numel() for p in net.parameters())
    flat = LabelledMLPField((3,), 2, hidden=(8,))
    assert flat(torch.randn(4, 3), torch.rand(4), torch.tensor([0, 1, 2, 0])).shape == (4, 3)


@pytest.mark.parametrize("call, match", [
    (lambda n: n(torch.randn(2, 64), 0.5, torch.zeros(2, dtype=torch.long)), "x must have shape"),
    (lambda n: n(torch.randn(2, 1, 8, 8), 0.5, torch.zeros(3, dtype=torch.long)), "y must"),
    (lambda n: n(torch.randn(2, 1, 8, 8), 0.5, torch.zeros(2)), "y must"),
])
def test_labelled_mlp_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call(LabelledMLPField((1, 8, 8), 10, hidden=(8,)))
    with pytest.raises(ValueError):
        LabelledMLPField((1, 0, 8))
    with pytest.raises(ValueError):
        LabelledMLPField((1, 8, 8), hidden=())


def test_cfg_trainer_trains_with_the_loss_it_is_given():
    seen = []

    def my_cfg_loss(model, path, x_0, x_1, t, y, drop_mask, null_label):
        seen.append((tuple(x_1.shape), y.dtype, drop_mask.dtype, null_label))
        return ll.cfg_loss(model, path, x_0, x_1, t, y, drop_mask, null_label)

    runs = []
    for loss_fn in (my_cfg_loss, None):
        torch.manual_seed(0)
        model = LabelledMLPField((1, 8, 8), hidden=(16,))
        trainer = (CFGTrainer(model, PATH, Digits("train")) if loss_fn is None else
                   CFGTrainer(model, PATH, Digits("train"), loss_fn=loss_fn))
        runs.append(trainer.train(5, batch_size=4, seed=1, progress=False).losses)
    assert seen == [((4, 1, 8, 8), torch.int64, torch.bool, 10)] * 5
    assert (runs[0] == runs[1]).all()  # the library's cfg_loss is the default
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        CFGTrainer(LabelledMLPField((1, 8, 8), hidden=(16,)), PATH, Digits("train"), loss_fn="cfg_loss")


def test_cfg_trainer_draws_its_times_from_its_time_sampler():
    # The default keeps Lab 07's stream: uniform_times is torch.rand, the draw the trainer always made.
    seen = []

    def recording_loss(model, path, x_0, x_1, t, y, drop_mask, null_label):
        seen.append(t.clone())
        return ll.cfg_loss(model, path, x_0, x_1, t, y, drop_mask, null_label)

    model = LabelledMLPField((1, 8, 8), hidden=(16,))
    torch.manual_seed(3)
    CFGTrainer(model, PATH, Digits("train"), loss_fn=recording_loss).loss(6)
    torch.manual_seed(3)
    Digits("train").sample_labelled(6)
    torch.randn(6, 1, 8, 8)
    assert torch.equal(seen[0], torch.rand(6))
    fixed = CFGTrainer(model, PATH, Digits("train"), loss_fn=recording_loss,
                       time_sampler=lambda n, device: torch.full((n,), 0.3, device=device))
    fixed.loss(6)
    assert torch.equal(seen[1], torch.full((6,), 0.3))
    with pytest.raises(ValueError, match=r"must return 6 times in \[0, 1\]"):
        CFGTrainer(model, PATH, Digits("train"), time_sampler=lambda n, device: torch.full((n,), 2.0)).loss(6)
    with pytest.raises(TypeError, match="time_sampler must be a function.*got float"):
        CFGTrainer(model, PATH, Digits("train"), time_sampler=0.5)
