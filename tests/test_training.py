"""Training loops: the loss history's helpers, the Trainer's seeding, learning-rate schedule,
EMA, device handling, progress bar and NaN guard; the conditional flow matching trainer's batches
(data, source and time samplers, each against a hand computation of its loss), its validation,
and end to end (a trained field samples its target). The losses themselves, by hand and against
the theory, are tested in ``test_losses.py``.

Every random draw is seeded; every statistical tolerance is a stated multiple of its standard
error, so no test can flake.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from loss_cases import PATH, SCHEDULE_FORMULAS, Fixed, hand_cfm, seeded_field
from torch import Tensor, nn

from labs_lib import (Circles, ConditionalFlowMatchingTrainer, CondOTScheduler, EulerSimulator, Gaussian, MLPField,
                      Moons, Trainer, TrainingHistory, VectorFieldODE, logit_normal_times, noise_floor, time_grid,
                      uniform_times, wasserstein2)
from labs_lib.losses import cfm_loss

# --- small helpers -----------------------------------------------------------------------------


class Regression(Trainer):
    """Least squares y = 3x - 1 with a linear model: a loss that a few Adam steps can lower."""

    def loss(self, batch_size: int) -> Tensor:
        x = torch.randn(batch_size, 1, device=self.device)
        return (self.model(x) - (3 * x - 1)).pow(2).mean()


class OneParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))


class LinearInP(Trainer):
    """Loss = p: a constant gradient, so every Adam step moves p by (almost exactly) the current lr."""

    def loss(self, batch_size: int) -> Tensor:
        return self.model.p


class NaNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x, t):
        return self.w * x * float("nan")


def linear_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(1, 1)


# --- TrainingHistory ---------------------------------------------------------------------------


def test_smoothed_is_a_trailing_moving_average():
    h = TrainingHistory(losses=np.array([4.0, 2.0, 6.0, 0.0, 8.0]), seconds=0.0)
    np.testing.assert_allclose(h.smoothed(1), h.losses)
    # window 2: the first value averages itself only
    np.testing.assert_allclose(h.smoothed(2), [4.0, 3.0, 4.0, 3.0, 4.0])
    np.testing.assert_allclose(h.smoothed(3), [4.0, 3.0, 4.0, 8 / 3, 14 / 3])
    np.testing.assert_allclose(h.smoothed(50), np.cumsum(h.losses) / np.arange(1, 6))


def test_final_loss_is_the_mean_of_the_last_tenth():
    h = TrainingHistory(losses=np.arange(100, dtype=float), seconds=0.0)
    assert h.final_loss == pytest.approx(np.mean(np.arange(90, 100)))
    short = TrainingHistory(losses=np.array([5.0, 1.0, 3.0]), seconds=0.0)
    assert short.final_loss == 3.0  # fewer than 10 steps: the last loss
    assert isinstance(h.final_loss, float)


@pytest.mark.parametrize("window", [0, -3, 2.5])
def test_smoothed_rejects_bad_windows(window):
    with pytest.raises(ValueError, match="window must be a positive integer"):
        TrainingHistory(losses=np.ones(5), seconds=0.0).smoothed(window)


# --- Trainer -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_losses_and_weights():
    runs = []
    for _ in range(2):
        model = linear_model(0)
        hist = Regression(model).train(60, batch_size=32, lr=1e-2, seed=5, progress=False)
        runs.append((hist.losses, model.weight.detach().clone()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])
    other = Regression(linear_model(0)).train(60, batch_size=32, lr=1e-2, seed=6, progress=False)
    assert not np.array_equal(other.losses, runs[0][0])


def test_training_seeds_only_when_asked(monkeypatch):
    import labs_lib.training as training

    seeded = []
    monkeypatch.setattr(training, "seed_everything", seeded.append)
    models = [linear_model(0), linear_model(0)]  # (built first: linear_model seeds its own weights)
    first, second = (Regression(m).train(5, batch_size=4, progress=False).losses for m in models)
    assert seeded == [] and not np.array_equal(first, second)  # unseeded runs go on from the current state
    Regression(linear_model(0)).train(5, batch_size=4, progress=False, seed=3)
    assert seeded == [3]
    with pytest.raises(TypeError, match="seed must be an int or None"):
        Regression(linear_model(0)).train(5, batch_size=4, progress=False, seed=1.5)


def test_without_a_device_the_model_trains_where_it_is(monkeypatch):
    import labs_lib.training as training

    def no_default_device(*args):
        if not args:
            raise AssertionError("train() picked a device although none was asked for")
        return torch.device(args[0])

    monkeypatch.setattr(training, "get_device", no_default_device)
    model = linear_model(0)
    trainer = Regression(model)
    trainer.train(3, batch_size=4, progress=False)
    assert trainer.device == torch.device("cpu") and next(model.parameters()).device.type == "cpu"


def test_loss_decreases_and_history_has_one_loss_per_step():
    model = linear_model(0)
    hist = Regression(model).train(300, batch_size=64, lr=0.1, progress=False)
    assert hist.losses.shape == (300,) and hist.losses.dtype == np.float32
    assert hist.seconds > 0
    smooth = hist.smoothed(20)
    assert hist.final_loss < 0.01 * smooth[19]  # starts near |3x - 1|² ~ 10, ends near 0
    assert float(model.weight.detach()) == pytest.approx(3.0, abs=0.05)
    assert float(model.bias.detach()) == pytest.approx(-1.0, abs=0.05)


@pytest.mark.parametrize("schedule, moved", [
    # Σ_{i<n} (1 - 0.9 i/n) = n - 0.45 (n - 1): linearly down to a tenth
    ("linear", lambda n: n - 0.45 * (n - 1)),
    # Σ_{i<n} ½(1 + cos(π i/n)) = n/2 + ½ (the cosines cancel in pairs, except cos 0 = 1): down to zero
    ("cosine", lambda n: n / 2 + 0.5),
])
def test_learning_rate_follows_its_schedule(schedule, moved):
    # With a constant gradient Adam's normalised step is the learning rate itself (up to
    # eps/|g| = 1e-8), so the parameter moves by lr times the sum of the scheduled factors.
    n, lr = 40, 1e-2
    model = OneParameter()
    kwargs = {} if schedule == "linear" else {"lr_schedule": schedule}  # linear is the default
    LinearInP(model).train(n, batch_size=1, lr=lr, progress=False, **kwargs)
    assert float(model.p.detach()) == pytest.approx(-lr * moved(n), rel=1e-5)


def test_unknown_learning_rate_schedules_are_named():
    with pytest.raises(ValueError, match="lr_schedule must be one of 'linear', 'cosine', got 'step'"):
        LinearInP(OneParameter()).train(3, batch_size=1, progress=False, lr_schedule="step")


def test_ema_leaves_the_exponential_moving_average_of_the_weights():
    # With a constant gradient, p after step i is -Σ_{j<i} lr·(1 - 0.9 j/n) (previous test);
    # the average starts as a copy of p after the first step, then p̄ ← d·p̄ + (1 - d)·p.
    n, lr, decay = 40, 1e-2, 0.9
    model = OneParameter()
    LinearInP(model).train(n, batch_size=1, lr=lr, progress=False, ema=decay)
    weights = np.cumsum([-lr * (1 - 0.9 * j / n) for j in range(n)])
    average = weights[0]
    for w in weights[1:]:
        average = decay * average + (1 - decay) * w
    assert float(model.p.detach()) == pytest.approx(average, rel=1e-5)
    assert abs(average - weights[-1]) > 0.02  # far from the last weights (1e-5 relative): the test tells them apart


@pytest.mark.parametrize("ema", [0.0, 1.0, 1.5, -0.1, 1, "0.99"])
def test_ema_must_be_a_decay_between_0_and_1(ema):
    with pytest.raises(ValueError, match="ema must be a decay strictly between 0 and 1"):
        LinearInP(OneParameter()).train(3, batch_size=1, progress=False, ema=ema)


def test_model_ends_in_eval_mode_on_the_requested_device():
    model = nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.1), nn.Linear(4, 1))
    trainer = Regression(model)
    for device in ("cpu", torch.device("cpu")):
        trainer.train(3, batch_size=4, device=device, progress=False)
        assert trainer.device == torch.device("cpu")
        assert next(model.parameters()).device.type == "cpu"
        assert not model.training


def test_unavailable_or_unknown_devices_are_named(monkeypatch):
    trainer = Regression(linear_model())
    with pytest.raises(ValueError, match="device must be one of"):
        trainer.train(3, device="gpu", progress=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="torch.cuda.is_available\\(\\) is False"):
        trainer.train(3, device="cuda", progress=False)


def test_progress_bar_only_when_asked(capsys):
    Regression(linear_model()).train(5, batch_size=4, progress=False)
    assert capsys.readouterr().err == ""
    Regression(linear_model()).train(5, batch_size=4, progress=True, description="fitting a line")
    assert "fitting a line" in capsys.readouterr().err


def test_nan_loss_raises_with_advice():
    data = Gaussian.isotropic(2)
    trainer = ConditionalFlowMatchingTrainer(NaNModel(), PATH, data)
    with pytest.raises(FloatingPointError, match=r"the loss became NaN or infinite before step 5: lower the "
                                                 r"learning rate \(lr = 0\.001\)"):
        trainer.train(5, batch_size=8, lr=1e-3, progress=False)


def test_divergence_is_caught_within_a_hundred_steps():
    class Exploding(Trainer):
        def loss(self, batch_size):
            return self.model.p * torch.tensor(float("inf"))

    with pytest.raises(FloatingPointError, match="before step 100"):
        Exploding(OneParameter()).train(1000, batch_size=1, progress=False)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"n_steps": 0}, "n_steps must be a positive integer"),
    ({"n_steps": 2.5}, "n_steps must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"lr": -1e-3}, r"lr must be > 0"),
    ({"lr": 0.0}, r"lr must be > 0"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_train_rejects_bad_arguments(kwargs, pattern):
    args = {"n_steps": 3, "batch_size": 4, "lr": 1e-3, "seed": 0, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        Regression(linear_model()).train(**args)


def test_trainer_rejects_non_modules_and_parameterless_models():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        Regression(lambda x: x)
    with pytest.raises(ValueError, match="has no parameters to train"):
        Regression(nn.ReLU())


def test_trainer_is_abstract():
    with pytest.raises(TypeError):
        Trainer(linear_model())


# --- ConditionalFlowMatchingTrainer: its batches and time samplers ------------------------------


@pytest.mark.parametrize("with_source", [False, True])
def test_trainer_loss_draws_data_source_and_uniform_times(with_source, gen):
    # The trainer's loss on a batch is cfm_loss on (x_0 from the source, x_1 from the data,
    # t ~ U[0, 1)). Fixed "distributions" pin x_1 (and x_0); the seed pins the remaining draws.
    x_1 = torch.randn(16, 2, generator=gen) + 3
    x_0 = torch.randn(16, 2, generator=gen)
    model = seeded_field()
    trainer = ConditionalFlowMatchingTrainer(model, PATH, Fixed(x_1), Fixed(x_0) if with_source else None)
    torch.manual_seed(7)
    loss = trainer.loss(16)
    torch.manual_seed(7)
    if not with_source:
        x_0 = torch.randn_like(x_1)
    t = torch.rand(16)
    assert bool((t >= 0).all() and (t < 1).all())
    expected = hand_cfm(model, *SCHEDULE_FORMULAS["condot"][1:], x_0, x_1, t)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_trainer_uses_its_time_sampler(gen):
    # A sampler that returns one fixed time makes the trainer's loss cfm_loss at that time.
    x_1 = torch.randn(16, 2, generator=gen) + 3
    x_0 = torch.randn(16, 2, generator=gen)
    model = seeded_field()
    trainer = ConditionalFlowMatchingTrainer(model, PATH, Fixed(x_1), Fixed(x_0),
                                             time_sampler=lambda n, device: torch.full((n,), 0.3, device=device))
    expected = hand_cfm(model, *SCHEDULE_FORMULAS["condot"][1:], x_0, x_1, torch.full((16,), 0.3))
    assert float(trainer.loss(16).detach()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("sampler, pattern", [
    (lambda n, device: torch.rand(n + 1),
     r"must return 16 times in \[0, 1\] as a tensor of shape \(16,\), got \(17,\)"),
    (lambda n, device: 2 * torch.ones(n), r"must return 16 times in \[0, 1\].*got \(16,\)"),
    (lambda n, device: [0.5] * n, r"must return 16 times.*got list"),
])
def test_bad_time_samplers_are_named(sampler, pattern):
    trainer = ConditionalFlowMatchingTrainer(seeded_field(), PATH, Moons(), time_sampler=sampler)
    with pytest.raises(ValueError, match=pattern):
        trainer.loss(16)


def test_time_sampler_must_be_callable():
    with pytest.raises(TypeError, match="time_sampler must be a function.*got float"):
        ConditionalFlowMatchingTrainer(seeded_field(), PATH, Moons(), time_sampler=0.5)


def test_time_samplers_follow_their_laws():
    # uniform: U[0, 1); logit-normal: logit t ~ N(mean, std²). Kolmogorov-Smirnov against the exact laws.
    from scipy import stats
    torch.manual_seed(0)
    t = uniform_times(20_000)
    assert t.shape == (20_000,) and stats.kstest(t.numpy(), "uniform").pvalue > 1e-3
    t = logit_normal_times(20_000, mean=0.5, std=0.7)
    assert t.shape == (20_000,) and bool(((t > 0) & (t < 1)).all())
    # (the laws as frozen distributions: some SciPy releases pass args to a 1-argument cdf for "norm")
    assert stats.kstest(torch.logit(t.double()).numpy(), stats.norm(0.5, 0.7).cdf).pvalue > 1e-3
    # the KS test can fail: the wrong law is rejected
    assert stats.kstest(torch.logit(t.double()).numpy(), stats.norm(0.0, 1.0).cdf).pvalue < 1e-6
    with pytest.raises(ValueError, match="std"):
        logit_normal_times(4, std=0.0)


# --- ConditionalFlowMatchingTrainer: validation -------------------------------------------------


def test_cfm_trainer_validation():
    model = seeded_field()
    data = Gaussian.isotropic(2)
    with pytest.raises(TypeError, match="path must be an AffinePath, got CondOTScheduler"):
        ConditionalFlowMatchingTrainer(model, CondOTScheduler(), data)
    with pytest.raises(TypeError, match="data must be a labs_lib Sampleable, got Tensor"):
        ConditionalFlowMatchingTrainer(model, PATH, torch.randn(10, 2))
    with pytest.raises(TypeError, match="source must be a labs_lib Sampleable, got Tensor"):
        ConditionalFlowMatchingTrainer(model, PATH, data, source=torch.randn(10, 2))
    with pytest.raises(ValueError, match=r"source samples have shape \(3,\) but data samples have shape \(2,\)"):
        ConditionalFlowMatchingTrainer(model, PATH, data, source=Gaussian.isotropic(3))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ConditionalFlowMatchingTrainer(lambda x, t: x, PATH, data)
    # any Sampleable of the right shape is a valid source
    trainer = ConditionalFlowMatchingTrainer(model, PATH, Moons(), source=Circles())
    assert float(trainer.loss(8).detach()) > 0


# --- end to end ---------------------------------------------------------------------------------


def test_cfm_learns_a_gaussian_end_to_end():
    r"""A small MLP trained by CFM for 400 steps carries N(0, I) to a correlated Gaussian.

    Threshold: two independent 1000-sample sets of the target itself lie at the W2 noise floor
    (median ≈ 0.12 here), and a perfect sampler's distance scatters around that median by about
    ±20%. We accept up to 1.5× the median: the ratio the course asks of every 2-D model. An
    untrained network (samples ≈ N(0, I)) sits at ratio ≈ 20, so the test cannot pass by
    accident, and the seeds are fixed, so it cannot flake.
    """
    target = Gaussian(torch.tensor([2.0, -1.0]), torch.tensor([[0.5, 0.3], [0.3, 0.4]]))
    model = seeded_field(0, hidden=(32, 32))
    hist = ConditionalFlowMatchingTrainer(model, PATH, target).train(400, batch_size=256, lr=1e-2, seed=0,
                                                                      progress=False)
    assert hist.final_loss < hist.smoothed(20)[19]
    gen = torch.Generator().manual_seed(11)
    samples = EulerSimulator(VectorFieldODE(model)).simulate(torch.randn(1000, 2, generator=gen), time_grid(50))
    floor = noise_floor(target, wasserstein2, 1000, seed=1)
    w2 = wasserstein2(samples, target.sample(1000, generator=torch.Generator().manual_seed(2)))
    assert w2 <= 1.5 * floor.median, (w2, floor)


# --- a run paused and resumed ---------------------------------------------------------------------


@pytest.mark.parametrize("schedule, ema", [("linear", None), ("cosine", None), ("cosine", 0.9)])
def test_a_paused_and_resumed_run_takes_exactly_the_steps_of_an_uninterrupted_one(schedule, ema):
    # Random batches, Adam's moments and the schedule over the whole run must all carry over the pause;
    # a resume that rebuilt the optimiser or restarted the schedule would change the weights.
    whole, paused = linear_model(0), linear_model(0)
    kwargs = dict(batch_size=8, lr=0.05, seed=4, progress=False, lr_schedule=schedule, ema=ema)
    Regression(whole).train(50, **kwargs)  # the uninterrupted run: its weights are compared at the end
    trainer = Regression(paused)
    first = trainer.train(50, pause_after=20, **kwargs)
    assert first.losses.shape == (20,) and not paused.training
    state = torch.random.get_rng_state()  # a notebook may look at the model between the two cells,
    paused(torch.randn(5, 1))  # drawing random numbers...
    torch.set_rng_state(state)  # ...as long as it leaves the global random state as it found it
    middle = trainer.resume(10, progress=False)
    rest = trainer.resume(progress=False)
    assert middle.losses.shape == (30,) and rest.losses.shape == (50,) and rest.seconds >= first.seconds
    np.testing.assert_array_equal(rest.losses[:20], first.losses)
    for p, q in zip(whole.parameters(), paused.parameters()):
        assert torch.equal(p, q)


def test_resume_goes_on_from_the_random_state_it_finds():
    # The batches after the pause come from the global generator: a notebook that draws random
    # numbers in between gets other batches (as documented), not an error.
    kwargs = dict(batch_size=8, lr=0.05, seed=4, progress=False)
    a, b = Regression(linear_model(0)), Regression(linear_model(0))
    a.train(30, pause_after=10, **kwargs)
    b.train(30, pause_after=10, **kwargs)
    torch.randn(3)
    assert not np.array_equal(a.resume(progress=False).losses, b.resume(progress=False).losses)


def test_resume_says_what_is_wrong():
    trainer = Regression(linear_model(0))
    with pytest.raises(RuntimeError, match="no run to resume: start one with train"):
        trainer.resume()
    trainer.train(10, batch_size=4, progress=False, pause_after=4)
    with pytest.raises(ValueError, match="the run has 6 of its 10 steps left, not 7"):
        trainer.resume(7)
    trainer.resume(progress=False)
    with pytest.raises(RuntimeError, match="the run of 10 steps has finished"):
        trainer.resume()
    for bad in (10, 12):
        with pytest.raises(ValueError, match="pause_after must be fewer than the run's 10 steps"):
            trainer.train(10, batch_size=4, progress=False, pause_after=bad)
    with pytest.raises(ValueError, match="pause_after"):
        trainer.train(10, batch_size=4, progress=False, pause_after=0)


def test_ema_replaces_the_weights_only_when_the_run_ends():
    model = OneParameter()
    trainer = LinearInP(model)
    trainer.train(40, batch_size=1, lr=1e-2, progress=False, ema=0.9, pause_after=20)
    # paused: the current weights, -Σ_{j<20} lr (1 - 0.9 j/40)
    assert float(model.p.detach()) == pytest.approx(sum(-1e-2 * (1 - 0.9 * j / 40) for j in range(20)), rel=1e-5)
    trainer.resume(progress=False)
    reference = OneParameter()
    LinearInP(reference).train(40, batch_size=1, lr=1e-2, progress=False, ema=0.9)
    assert float(model.p.detach()) == pytest.approx(float(reference.p.detach()), rel=1e-6)


# --- the loss a trainer minimises: the library's, or the student's ---------------------------------


def test_cfm_trainer_trains_with_the_loss_it_is_given():
    calls = []

    def my_loss(model, path, x_0, x_1, t):
        calls.append(x_0.shape)
        return cfm_loss(model, path, x_0, x_1, t)

    histories = []
    for loss_fn in (cfm_loss, my_loss, None):
        torch.manual_seed(0)
        model = MLPField(2, hidden=(16,))
        trainer = (ConditionalFlowMatchingTrainer(model, PATH, Gaussian.isotropic(2, 1.0)) if loss_fn is None else
                   ConditionalFlowMatchingTrainer(model, PATH, Gaussian.isotropic(2, 1.0), loss_fn=loss_fn))
        histories.append(trainer.train(20, batch_size=8, seed=3, progress=False).losses)
    assert calls == [(8, 2)] * 20  # the given loss, once per step, on the drawn batch
    np.testing.assert_array_equal(histories[0], histories[1])  # the same loss, the same run
    np.testing.assert_array_equal(histories[0], histories[2])  # and cfm_loss is the default

    def doubled(model, path, x_0, x_1, t):
        return 2 * cfm_loss(model, path, x_0, x_1, t)

    torch.manual_seed(0)
    model = MLPField(2, hidden=(16,))
    other = ConditionalFlowMatchingTrainer(model, PATH, Gaussian.isotropic(2, 1.0), loss_fn=doubled).train(
        20, batch_size=8, seed=3, progress=False).losses
    assert other[0] == pytest.approx(2 * histories[0][0])


@pytest.mark.parametrize("loss_fn, error, pattern", [
    ("cfm_loss", TypeError, "loss_fn must be a function"),
    (MLPField, TypeError, "loss_fn must be a function"),
    (lambda model, path, x_0, x_1, t: ((model(x_0, t) - x_1) ** 2).sum(1), TypeError, "0-dim .*got shape \\(8,\\)"),
    (lambda model, path, x_0, x_1, t: float(((model(x_0, t) - x_1) ** 2).mean().detach()), TypeError,
     "0-dim .*got float"),
    (lambda model, path, x_0, x_1, t: ((model(x_0, t) - x_1) ** 2).mean().detach(), ValueError, "no gradient"),
])
def test_a_bad_loss_fn_is_named(loss_fn, error, pattern):
    model = MLPField(2, hidden=(16,))
    with pytest.raises(error, match=pattern):
        ConditionalFlowMatchingTrainer(model, PATH, Gaussian.isotropic(2, 1.0), loss_fn=loss_fn).train(
            2, batch_size=8, progress=False)


def test_dsm_trainer_trains_with_the_loss_it_is_given():
    from labs_lib import DenoisingScoreMatchingTrainer
    from labs_lib.losses import dsm_loss

    runs = []
    for loss_fn in (None, lambda model, path, x_0, x_1, t: dsm_loss(model, path, x_0, x_1, t)):
        torch.manual_seed(0)
        model = MLPField(2, hidden=(16,))
        runs.append(DenoisingScoreMatchingTrainer(model, PATH, Gaussian.isotropic(2, 1.0), loss_fn=loss_fn).train(
            10, batch_size=8, seed=2, progress=False).losses)
    np.testing.assert_array_equal(runs[0], runs[1])
    with pytest.raises(ValueError, match="carries its own weighting"):
        DenoisingScoreMatchingTrainer(MLPField(2, hidden=(16,)), PATH, Gaussian.isotropic(2, 1.0), weighting="beta2",
                                      loss_fn=dsm_loss)
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        DenoisingScoreMatchingTrainer(MLPField(2, hidden=(16,)), PATH, Gaussian.isotropic(2, 1.0), loss_fn=3)
