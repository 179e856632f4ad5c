"""The score-matching parts of labs_lib: the DSM and ε-prediction trainers, the u ↔ score
conversions of Gaussian paths, and the Langevin-corrected SDE.

The statistical tests use common random numbers: every loss below is evaluated on the *same*
seeded batch (``torch.manual_seed`` before each call), so a comparison between two models is a
comparison of two fixed numbers, and the tolerances are set by the batch's Monte Carlo error.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import labs_lib as ll
from labs_lib.distributions import Sampleable
from labs_lib.training import dsm_loss, noise_prediction_loss

SCHEDULERS = [ll.CondOTScheduler(), ll.CosineScheduler(), ll.SqrtScheduler()]


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are small: one thread is several times faster than two that wait on
    each other when other processes share the CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _target() -> ll.GaussianMixture:
    return ll.GaussianMixture.symmetric_2d(5, radius=4.0, std=0.5)


class FieldModule(nn.Module):
    """Wrap a plain function ``(x, t) -> tensor`` as a module (the trainers need parameters)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return self.fn(x, t)


class FixedData(Sampleable):
    """Always the same batch: makes a loss reproducible by hand."""

    def __init__(self, z: torch.Tensor):
        self.z = z
        self.shape = tuple(z.shape[1:])

    def sample(self, n, generator=None):
        assert n == self.z.shape[0]
        return self.z.clone()


# --- the losses, by hand -------------------------------------------------------------------


def _hand_batch(z: torch.Tensor, t_max: float, seed: int):
    """The noise and times the trainers draw after ``data.sample``, in the same order."""
    torch.manual_seed(seed)
    eps = torch.randn_like(z)
    t = t_max * torch.rand(z.shape[0])
    return eps, t


@pytest.mark.parametrize("scheduler", SCHEDULERS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("weighting", ["none", "beta2"])
def test_dsm_loss_equals_hand_computation(scheduler, weighting):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(64, 2, generator=gen)
    model = ll.MLPField(2, (16, 16))
    path = ll.AffinePath(scheduler)
    trainer = ll.DenoisingScoreMatchingTrainer(model, path, FixedData(z), t_max=0.9, weighting=weighting)
    torch.manual_seed(7)
    loss = trainer.loss(64)

    eps, t = _hand_batch(z, 0.9, 7)
    s = scheduler(t)
    alpha, beta = s.alpha_t[:, None], s.beta_t[:, None]
    x_t = alpha * z + beta * eps
    with torch.no_grad():
        out = model(x_t, t)
    weight = beta**2 if weighting == "beta2" else torch.ones_like(beta)
    expected = (weight * (out + eps / beta) ** 2).sum(1).mean()
    assert torch.allclose(loss.detach(), expected, rtol=1e-5)
    # and the loss carries gradients to the model
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_noise_prediction_loss_equals_hand_computation():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(32, 1, 3, 3, generator=gen)  # image-shaped data
    path = ll.AffinePath(ll.CondOTScheduler())
    weights = torch.linspace(-1, 1, 9).view(1, 1, 3, 3)
    model = FieldModule(lambda x, t: torch.tanh(x) * weights + t.view(-1, 1, 1, 1))
    trainer = ll.NoisePredictionTrainer(model, path, FixedData(z), t_max=0.95)
    torch.manual_seed(3)
    loss = trainer.loss(32)

    eps, t = _hand_batch(z, 0.95, 3)
    tt = t.view(-1, 1, 1, 1)
    x_t = tt * z + (1 - tt) * eps
    expected = ((torch.tanh(x_t) * weights + tt - eps) ** 2).flatten(1).sum(1).mean()
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_loss_functions_match_the_trainers_and_validate(gen):
    path = ll.AffinePath(ll.CosineScheduler())
    z, eps = torch.randn(16, 1, 3, 3, generator=gen), torch.randn(16, 1, 3, 3, generator=gen)
    t = 0.9 * torch.rand(16, generator=gen)
    model = FieldModule(lambda x, t: 0.5 * x - t.view(-1, 1, 1, 1))
    beta = path.scheduler(t).beta_t.view(-1, 1, 1, 1)
    x_t = path.sample(eps, z, t).x_t
    plain = (model(x_t, t) + eps / beta).pow(2).flatten(1).sum(1).mean()
    assert torch.allclose(dsm_loss(model, path, eps, z, t), plain)
    weighted = (beta * model(x_t, t) + eps).pow(2).flatten(1).sum(1).mean()
    assert torch.allclose(dsm_loss(model, path, eps, z, t, weighting="beta2"), weighted)
    assert torch.allclose(noise_prediction_loss(model, path, eps, z, t),
                          (model(x_t, t) - eps).pow(2).flatten(1).sum(1).mean())
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(model, path, eps, z, t, weighting="beta")
    with pytest.raises(ValueError, match="t must"):
        dsm_loss(model, path, eps, z, torch.rand(3))


def test_noise_prediction_is_dsm_with_beta2_weighting():
    """ε-prediction with ε^θ = −β_t s^θ and DSM weighted by β_t² are the same number."""
    data = _target()
    path = ll.AffinePath(ll.CosineScheduler())
    score = ll.MLPField(2, (16,))
    eps_model = FieldModule(lambda x, t: -path.scheduler(t).beta_t[:, None] * score(x, t))
    dsm = ll.DenoisingScoreMatchingTrainer(score, path, data, t_max=0.97, weighting="beta2")
    npt = ll.NoisePredictionTrainer(eps_model, path, data, t_max=0.97)
    torch.manual_seed(11)
    a = dsm.loss(500)
    torch.manual_seed(11)
    b = npt.loss(500)
    assert torch.allclose(a, b, rtol=1e-5)


# --- the minimisers --------------------------------------------------------------------------

# One large seeded batch for all comparisons (common random numbers). With t_max = 0.9 the
# unweighted target −ε/β_t stays below 10 per coordinate in size (E[1/β_t²] = 10); the Monte
# Carlo error of the cross term 2E[δ·(s* + ε/β)] is then about 2|δ|·√(10/N) ≈ 0.03|δ| at
# N = 50,000, well below the gap E|δ|² that the perturbations below open (the smallest, a
# shift by (0.1, 0.1), opens 0.02 against an error of about 0.004).
_N = 50_000
_T_MAX = 0.9


def _perturbations(exact: ll.GaussianMixturePath):
    return {
        "scaled by 1.1": lambda x, t: 1.1 * exact.score(x, t),
        "scaled by 0.9": lambda x, t: 0.9 * exact.score(x, t),
        "shifted by 0.1": lambda x, t: exact.score(x, t) + 0.1,
        "rotated by 5 degrees": lambda x, t: exact.score(x, t) @ torch.tensor(
            [[math.cos(0.087), -math.sin(0.087)], [math.sin(0.087), math.cos(0.087)]]),
        "conditional score of the nearest mode": lambda x, t: _nearest_mode_score(exact, x, t),
        "Gaussian with the data's covariance": lambda x, t: _moment_matched_score(exact, x, t),
    }


def _nearest_mode_score(exact: ll.GaussianMixturePath, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    s = exact.path.scheduler(t)
    a, b = s.alpha_t[:, None], s.beta_t[:, None]
    mu = exact.data.means
    d = x[:, None, :] - a[:, None, :] * mu[None]  # (batch, K, 2)
    k = d.norm(dim=-1).argmin(1)
    var = a**2 * exact.data.covs[0, 0, 0] + b**2
    return -d[torch.arange(len(x)), k] / var


def _moment_matched_score(exact: ll.GaussianMixturePath, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    data = exact.data
    mean = (data.weights[:, None] * data.means).sum(0)
    second = (data.weights[:, None, None] * (data.covs + data.means[:, :, None] * data.means[:, None, :])).sum(0)
    cov = second - mean[:, None] * mean[None, :]
    s = exact.path.scheduler(t)
    a, b = s.alpha_t[:, None, None], s.beta_t[:, None, None]
    C = a**2 * cov + b**2 * torch.eye(2)
    return -torch.linalg.solve(C, (x - a[:, :, 0] * mean).unsqueeze(-1)).squeeze(-1)


def _loss(trainer: ll.Trainer, seed: int = 5) -> float:
    torch.manual_seed(seed)
    with torch.no_grad():
        return float(trainer.loss(_N))


@pytest.mark.parametrize("weighting", ["none", "beta2"])
def test_dsm_loss_is_minimised_by_the_marginal_score(weighting):
    data = _target()
    path = ll.AffinePath(ll.CondOTScheduler())
    exact = ll.GaussianMixturePath(path, data)

    def trainer(fn):
        return ll.DenoisingScoreMatchingTrainer(FieldModule(fn), path, data, t_max=_T_MAX, weighting=weighting)

    best = _loss(trainer(exact.score))
    for name, fn in _perturbations(exact).items():
        worse = _loss(trainer(fn))
        assert worse > best, f"the DSM loss of the score {name} ({worse:.4f}) is not above the exact one ({best:.4f})"


def test_dsm_loss_gap_is_the_mean_squared_score_error():
    """L(s) − L(s*) = E|s − s*|²: the conditional target differs from the marginal one by
    noise with mean zero given x_t, so it adds a constant and nothing else."""
    data = _target()
    path = ll.AffinePath(ll.CondOTScheduler())
    exact = ll.GaussianMixturePath(path, data)
    delta = torch.tensor([0.3, -0.2])
    best = _loss(ll.DenoisingScoreMatchingTrainer(FieldModule(exact.score), path, data, t_max=_T_MAX))
    worse = _loss(ll.DenoisingScoreMatchingTrainer(FieldModule(lambda x, t: exact.score(x, t) + delta),
                                                    path, data, t_max=_T_MAX))
    # E|δ|² = 0.13; the cross term's Monte Carlo error is about 0.03·0.36 ≈ 0.01.
    assert abs((worse - best) - float(delta.pow(2).sum())) < 0.04


def test_noise_prediction_is_minimised_by_minus_beta_times_the_score():
    data = _target()
    path = ll.AffinePath(ll.CondOTScheduler())
    exact = ll.GaussianMixturePath(path, data)

    def eps_of(score_fn):
        return lambda x, t: -path.scheduler(t).beta_t[:, None] * score_fn(x, t)

    def trainer(fn):
        return ll.NoisePredictionTrainer(FieldModule(fn), path, data, t_max=0.99)

    best = _loss(trainer(eps_of(exact.score)))
    for name, fn in _perturbations(exact).items():
        worse = _loss(trainer(eps_of(fn)))
        assert worse > best, f"ε from the score {name} ({worse:.4f}) does not lose to the exact one ({best:.4f})"
    # Predicting the *conditional* noise is impossible (x_t does not determine ε): the best
    # loss stays well above 0, and predicting 0 or x_t itself is worse still.
    assert best > 0.1
    assert _loss(trainer(lambda x, t: torch.zeros_like(x))) > best
    assert _loss(trainer(lambda x, t: x)) > best


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ll.DenoisingScoreMatchingTrainer, ll.NoisePredictionTrainer])
@pytest.mark.parametrize("t_max", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_trainers_reject_t_max_outside_the_open_interval(cls, t_max):
    with pytest.raises(ValueError, match="t_max must lie in \\(0, 1\\)"):
        cls(ll.MLPField(2, (8,)), ll.AffinePath(ll.CondOTScheduler()), _target(), t_max=t_max)


@pytest.mark.parametrize("cls", [ll.DenoisingScoreMatchingTrainer, ll.NoisePredictionTrainer])
@pytest.mark.parametrize("t_max", ["0.9", None, [0.9]])
def test_trainers_reject_a_t_max_that_is_not_a_number(cls, t_max):
    with pytest.raises(TypeError, match="t_max"):
        cls(ll.MLPField(2, (8,)), ll.AffinePath(ll.CondOTScheduler()), _target(), t_max=t_max)


@pytest.mark.parametrize("weighting", ["beta", "Beta2", None, "lambda"])
def test_dsm_rejects_an_unknown_weighting(weighting):
    with pytest.raises(ValueError, match="weighting must be 'none' or 'beta2'"):
        ll.DenoisingScoreMatchingTrainer(ll.MLPField(2, (8,)), ll.AffinePath(ll.CondOTScheduler()), _target(),
                                         weighting=weighting)


@pytest.mark.parametrize("cls", [ll.DenoisingScoreMatchingTrainer, ll.NoisePredictionTrainer])
def test_trainers_reject_wrong_types(cls):
    path, data = ll.AffinePath(ll.CondOTScheduler()), _target()
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
    exact = ll.GaussianMixturePath(path, _target())
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
    exact = ll.GaussianMixturePath(ll.AffinePath(ll.CondOTScheduler()), _target())
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
    data = _target()
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
