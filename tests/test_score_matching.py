"""The score-matching parts of labs_lib outside the losses: the DSM and ε-prediction trainers
(their validation, and a short run that brings the learned score closer to the exact marginal
score), the noise/velocity ↔ score conversions of Gaussian paths, and the Langevin-corrected SDE.
The DSM and ε-prediction losses themselves (by hand, and minimised by the marginal score) are
tested in ``test_losses.py``.

Every random draw is seeded (``torch.manual_seed`` or a ``torch.Generator``), so no statistical
tolerance can flake.
"""

from __future__ import annotations

import pytest
import torch
from loss_cases import SCHEDULERS, mixture_target

import labs_lib as ll


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are small: one thread is several times faster than two that wait on
    each other when other processes share the CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- the trainers: validation and a short run ---------------------------------------------------


@pytest.mark.parametrize("cls", [ll.DenoisingScoreMatchingTrainer, ll.NoisePredictionTrainer])
@pytest.mark.parametrize("t_max", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_trainers_reject_t_max_outside_the_open_interval(cls, t_max):
    with pytest.raises(ValueError, match="t_max must lie in \\(0, 1\\)"):
        cls(ll.MLPField(2, (8,)), ll.AffinePath(ll.CondOTScheduler()), mixture_target(), t_max=t_max)


@pytest.mark.parametrize("cls", [ll.DenoisingScoreMatchingTrainer, ll.NoisePredictionTrainer])
@pytest.mark.parametrize("t_max", ["0.9", None, [0.9]])
def test_trainers_reject_a_t_max_that_is_not_a_number(cls, t_max):
    with pytest.raises(TypeError, match="t_max"):
        cls(ll.MLPField(2, (8,)), ll.AffinePath(ll.CondOTScheduler()), mixture_target(), t_max=t_max)


@pytest.mark.parametrize("weighting", ["beta", "Beta2", None, "lambda"])
def test_dsm_rejects_an_unknown_weighting(weighting):
    with pytest.raises(ValueError, match="weighting must be 'none' or 'beta2'"):
        ll.DenoisingScoreMatchingTrainer(ll.MLPField(2, (8,)), ll.AffinePath(ll.CondOTScheduler()), mixture_target(),
                                         weighting=weighting)


@pytest.mark.parametrize("cls", [ll.DenoisingScoreMatchingTrainer, ll.NoisePredictionTrainer])
def test_trainers_reject_wrong_types(cls):
    path, data = ll.AffinePath(ll.CondOTScheduler()), mixture_target()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        cls(lambda x, t: x, path, data)
    with pytest.raises(TypeError, match="path must be an AffinePath"):
        cls(ll.MLPField(2, (8,)), ll.CondOTScheduler(), data)
    with pytest.raises(TypeError, match="data must be a labs_lib Sampleable"):
        cls(ll.MLPField(2, (8,)), path, torch.randn(10, 2))


@pytest.mark.parametrize("kind", ["dsm", "dsm-beta2", "noise"])
def test_training_brings_the_score_closer_to_the_marginal_score(kind):
    """A short run must move the learned score towards the exact one. (The unweighted DSM
    loss itself is too noisy to show progress in 300 steps: its irreducible part,
    E|ε/β_t|², dominates; the error against the exact score is what the training lowers.)"""
    # A single Gaussian: its marginal score is linear in x, so a short run can learn it well.
    data = ll.GaussianMixture(torch.tensor([[2.0, -1.0]]), 0.25 * torch.eye(2)[None], torch.ones(1))
    path = ll.AffinePath(ll.CondOTScheduler())
    exact = ll.GaussianMixturePath(path, data)
    model = ll.MLPField(2, (32, 32))
    if kind == "noise":
        trainer = ll.NoisePredictionTrainer(model, path, data)
        score = lambda x, t: path.noise_to_score(model(x, t), x, t)  # noqa: E731
    else:
        trainer = ll.DenoisingScoreMatchingTrainer(model, path, data, weighting="none" if kind == "dsm" else "beta2")
        score = model

    gen = torch.Generator().manual_seed(0)
    points = [(exact.marginal(t).sample(400, generator=gen), torch.tensor(t)) for t in (0.2, 0.5, 0.8)]

    def error() -> float:
        with torch.no_grad():
            return sum(float((score(x, t) - exact.score(x, t)).pow(2).sum(1).mean()) for x, t in points)

    before = error()
    history = trainer.train(300, batch_size=128, lr=3e-3, progress=False, device="cpu")
    assert history.losses.shape == (300,) and history.seconds > 0
    after = error()
    assert after < 0.5 * before, (before, after)
    assert not model.training
    if kind != "dsm":  # bounded targets: the loss itself goes down
        assert history.losses[-50:].mean() < history.losses[:50].mean()


# --- noise → score, velocity ↔ score ---------------------------------------------------------------


@pytest.mark.parametrize("scheduler", SCHEDULERS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("shape", [(6, 2), (4, 1, 3, 3)])
def test_noise_to_score_is_the_conditional_score(scheduler, shape, gen):
    path = ll.AffinePath(scheduler)
    z, eps = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    for t in (torch.tensor(0.3), torch.rand(shape[0], generator=gen) * 0.95):
        x = path.sample(eps, z, t.expand(shape[0])).x_t
        beta = ll.expand_time(scheduler(t).beta_t, eps)
        assert torch.allclose(path.noise_to_score(eps, x, t), -eps / beta)
        assert torch.allclose(path.noise_to_score(eps, x, t), path.conditional_score(x, z, t), atol=1e-4)


def test_noise_to_score_stays_finite_at_t_1_and_validates():
    path = ll.AffinePath(ll.CondOTScheduler())
    eps = torch.ones(3, 2)
    out = path.noise_to_score(eps, eps, torch.tensor(1.0))
    assert torch.isfinite(out).all() and torch.allclose(out, -eps / (1 - path.t_max), rtol=1e-3)
    with pytest.raises(ValueError, match="t must lie in"):
        path.noise_to_score(eps, eps, torch.tensor(1.5))
    with pytest.raises(ValueError, match="shape"):
        path.noise_to_score(eps, eps, torch.rand(5))
    with pytest.raises(TypeError):
        path.noise_to_score(eps.numpy(), eps, torch.tensor(0.5))
    with pytest.raises(ValueError, match="shape"):
        path.noise_to_score(eps, torch.ones(3, 3), torch.tensor(0.5))


@pytest.mark.parametrize("scheduler", SCHEDULERS, ids=lambda s: type(s).__name__)
def test_velocity_score_conversion_on_the_exact_mixture(scheduler, gen):
    """Both directions of the conversion turn the exact marginal field into the exact score."""
    path = ll.AffinePath(scheduler)
    exact = ll.GaussianMixturePath(path, mixture_target())
    for t in (0.1, 0.4, 0.7, 0.9):
        x = exact.marginal(t).sample(500, generator=gen)
        tt = torch.tensor(t)
        u, s = exact.vector_field(x, tt), exact.score(x, tt)
        assert torch.allclose(path.velocity_to_score(u, x, tt), s, atol=1e-3, rtol=1e-3)
        assert torch.allclose(path.score_to_velocity(s, x, tt), u, atol=1e-3, rtol=1e-3)
    # one time per particle works too
    t = 0.05 + 0.9 * torch.rand(500, generator=gen)
    x = torch.randn(500, 2, generator=gen) * 3
    assert torch.allclose(path.velocity_to_score(exact.vector_field(x, t), x, t), exact.score(x, t),
                          atol=1e-3, rtol=1e-3)


# --- the Langevin-corrected SDE -----------------------------------------------------------------------


def _u(x, t):
    return torch.sin(x) + t


def _s(x, t):
    return -x * (1 + t)


@pytest.mark.parametrize("sigma", [0.0, 0.7, 2])
@pytest.mark.parametrize("shape", [(5, 2), (3, 1, 3, 3)])
def test_langevin_corrected_sde_with_constant_sigma(sigma, shape, gen):
    sde = ll.LangevinCorrectedSDE(_u, _s, sigma)
    x, t = torch.randn(shape, generator=gen), torch.tensor(0.3)
    assert torch.allclose(sde.drift(x, t), _u(x, t) + 0.5 * sigma**2 * _s(x, t))
    assert float(torch.as_tensor(sde.diffusion(x, t))) == pytest.approx(sigma)
    assert isinstance(sde, ll.SDE)


def test_langevin_corrected_sde_with_time_dependent_sigma(gen):
    sde = ll.LangevinCorrectedSDE(_u, _s, lambda t: 2 * (1 - t))
    x = torch.randn(4, 2, generator=gen)
    for t in (0.0, 0.25, 0.9):
        tt = torch.tensor(t)
        sig = 2 * (1 - t)
        assert torch.allclose(sde.drift(x, tt), _u(x, tt) + 0.5 * sig**2 * _s(x, tt))
        assert float(sde.diffusion(x, tt)) == pytest.approx(sig)


def test_sigma_zero_is_the_probability_flow_ode(gen):
    exact = ll.GaussianMixturePath(ll.AffinePath(ll.CondOTScheduler()), mixture_target())
    sde = ll.LangevinCorrectedSDE(exact.vector_field, exact.score, 0.0)
    ode = ll.VectorFieldODE(exact.vector_field)
    x, t = 3 * torch.randn(50, 2, generator=gen), torch.tensor(0.6)
    assert torch.equal(sde.drift(x, t), ode.drift(x, t))
    # Euler–Maruyama with σ = 0 is Euler on the ODE: same samples, whatever the seed
    ts = ll.time_grid(20)
    torch.manual_seed(1)
    a = ll.EulerMaruyamaSimulator(sde).simulate(x, ts)
    b = ll.EulerSimulator(ode).simulate(x, ts)
    assert torch.allclose(a, b, atol=1e-5)


def test_langevin_corrected_sde_validates():
    with pytest.raises(TypeError, match="vector_field must be callable"):
        ll.LangevinCorrectedSDE(torch.zeros(2), _s, 1.0)
    with pytest.raises(TypeError, match="score must be callable"):
        ll.LangevinCorrectedSDE(_u, None, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        ll.LangevinCorrectedSDE(_u, _s, -0.5)
    with pytest.raises(TypeError, match="sigma"):
        ll.LangevinCorrectedSDE(_u, _s, "1")


class CountingField(torch.nn.Module):
    """A small field network that counts its calls."""

    def __init__(self):
        super().__init__()
        self.net, self.calls = ll.MLPField(2, hidden=(16,)), 0

    def forward(self, x, t):
        self.calls += 1
        return self.net(x, t)


@pytest.mark.parametrize("sigma", [0.0, 1.5, lambda t: 4 * (1 - t)])
def test_from_flow_is_the_same_sde_with_one_network_call_per_step(sigma, gen):
    path = ll.AffinePath(ll.CondOTScheduler())
    field = CountingField()
    plain = ll.LangevinCorrectedSDE(field, lambda x, t: path.velocity_to_score(field(x, t), x, t), sigma)
    fast = ll.LangevinCorrectedSDE.from_flow(field, path, sigma)
    x = 2 * torch.randn(64, 2, generator=gen)
    with torch.no_grad():
        for t in (0.1, 0.5, 0.9):
            tt = torch.tensor(t)
            expected = plain.drift(x, tt)
            field.calls = 0
            assert torch.equal(fast.drift(x, tt), expected)  # the same numbers, bit for bit
            assert field.calls == 1
            assert float(torch.as_tensor(fast.diffusion(x, tt))) == pytest.approx(
                float(torch.as_tensor(plain.diffusion(x, tt))))
    with pytest.raises(TypeError, match="path must be a Gaussian path with velocity_to_score"):
        ll.LangevinCorrectedSDE.from_flow(field, ll.CondOTScheduler(), 1.0)


def test_the_probability_flow_ode_does_not_evaluate_the_score(gen):
    def no_score(x, t):
        raise AssertionError("σ = 0 needs no score")

    x = torch.randn(5, 2, generator=gen)
    assert torch.equal(ll.LangevinCorrectedSDE(_u, no_score, 0.0).drift(x, torch.tensor(0.4)), _u(x, 0.4))


def _mode_statistics(x: torch.Tensor, data: ll.GaussianMixture) -> tuple[torch.Tensor, float]:
    """Fraction of the samples nearest to each mode, and the mean squared distance to that mode."""
    k = torch.cdist(x, data.means).argmin(1)
    fractions = torch.bincount(k, minlength=len(data.means)).double() / len(x)
    return fractions, float((x - data.means[k]).pow(2).sum(1).mean())


def test_the_sde_with_the_exact_field_and_score_keeps_the_marginal_path():
    """With the exact u_t and ∇log p_t the SDE reaches the target for every σ; without the
    ½σ² score correction it does not. n = 1000 samples, 150 Euler–Maruyama steps, seeded.

    * W2 to 1000 target samples must stay below the 95th percentile of the noise floor (two
      independent target sets of that size) plus 25% for the time discretisation. A single W2
      at this size scatters a lot (most of it is the chance imbalance of the mode counts
      between the two sets): the floor's median is about 0.65, its 95th percentile about 0.9.
    * The mean squared distance of a sample to its nearest mode must be within 10% of the
      data's 2·0.5² = 0.5 (standard error about 3.5% at n = 1000; Euler–Maruyama's bias at
      150 steps is about 3% for σ = 2).
    """
    data = mixture_target()
    path = ll.AffinePath(ll.CondOTScheduler())
    exact = ll.GaussianMixturePath(path, data)
    ts = ll.time_grid(150)
    n = 1000
    floor = ll.noise_floor(data, ll.wasserstein2, n, repeats=10, seed=1)
    reference = data.sample(n, generator=torch.Generator().manual_seed(0))
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(2))
    target_spread = 2 * 0.5**2
    for sigma in (0.0, 1.0, 2.0):
        torch.manual_seed(3)
        sde = ll.LangevinCorrectedSDE(exact.vector_field, exact.score, sigma)
        x1 = ll.EulerMaruyamaSimulator(sde).simulate(x0, ts)
        w2 = ll.wasserstein2(x1, reference)
        assert w2 < 1.25 * floor.high, f"σ = {sigma}: W2 = {w2:.3f} against the floor {floor}"
        fractions, spread = _mode_statistics(x1, data)
        assert abs(spread / target_spread - 1) < 0.1, f"σ = {sigma}: spread {spread:.3f}"
        assert (fractions - 0.2).abs().max() < 0.06, f"σ = {sigma}: mode shares {fractions.tolist()}"
    # The same noise without the score correction spreads the samples out.
    torch.manual_seed(3)
    plain = ll.EulerMaruyamaSimulator(ll.LangevinCorrectedSDE(exact.vector_field, lambda x, t: 0 * x, 2.0))
    x1 = plain.simulate(x0, ts)
    assert _mode_statistics(x1, data)[1] > 2 * target_spread
    assert ll.wasserstein2(x1, reference) > 1.25 * floor.high
