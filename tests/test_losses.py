r"""The training losses of ``labs_lib.losses``, each against a hand computation and against the
theory that makes it a valid training objective.

* ``cfm_loss``: against explicit loops over the batch with the schedulers' α_t, β_t and their
  derivatives written out (CondOT, cosine, sqrt; 2-D, 3-D and image-shaped states); it carries
  gradients, vanishes for the straight-line velocity of a single pair, and differs from the flow
  matching loss against the exact marginal field of a Gaussian mixture by a constant that does not
  depend on the network, so that their gradients agree.
* ``dsm_loss`` and ``noise_prediction_loss``: against λ_t‖s^θ + ε/β_t‖² (λ_t = 1 or β_t²) and
  ‖ε^θ − ε‖², directly and as the trainers draw their batches; ε-prediction with ε^θ = −β_t s^θ is
  DSM weighted by β_t²; both are minimised by the exact marginal score of a Gaussian mixture (and
  by ε = −β_t ∇log p_t), and the DSM gap L(s) − L(s*) is the mean squared score error E|s − s*|².
* ``cfg_loss`` and ``drop_labels``: the CFM loss with the dropped labels replaced by the null
  label, against a per-sample hand computation; the drop mask is validated.

The statistical tests use common random numbers: every loss compared is evaluated on the *same*
seeded batch (``torch.manual_seed`` before each call), so a comparison between two models is a
comparison of two fixed numbers, and the tolerances are set by the batch's Monte Carlo error.
"""

from __future__ import annotations

import math

import pytest
import torch
from loss_cases import (PATH, SCHEDULE_FORMULAS, SCHEDULERS, Fixed, Recorder, hand_cfm, labelled_batch, mixture_target,
                        seeded_field)
from torch import nn

import labs_lib as ll
from labs_lib import AffinePath, CondOTScheduler, CosineScheduler, GaussianMixture, GaussianMixturePath
from labs_lib.losses import cfg_loss, cfm_loss, drop_labels, dsm_loss, noise_prediction_loss

# --- small helpers ------------------------------------------------------------------------------


class Elementwise(nn.Module):
    """u(x, t) = a·tanh(x) + b·x·cos(3t) + c·t, elementwise: works on any state shape."""

    def __init__(self):
        super().__init__()
        self.coef = nn.Parameter(torch.tensor([0.7, -0.4, 1.3]))

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]).view(-1, *([1] * (x.ndim - 1)))
        a, b, c = self.coef
        return a * torch.tanh(x) + b * x * torch.cos(3 * t) + c * t


class FieldModule(nn.Module):
    """Wrap a plain function ``(x, t) -> tensor`` as a module (the trainers need parameters)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return self.fn(x, t)


# --- cfm_loss: by hand --------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", SCHEDULE_FORMULAS, ids=list(SCHEDULE_FORMULAS))
@pytest.mark.parametrize("shape", [(7, 2), (5, 3), (4, 1, 3, 3)], ids=["2d", "3d", "image"])
def test_cfm_loss_matches_a_hand_computation(schedule, shape, gen):
    sched, *formulas = SCHEDULE_FORMULAS[schedule]
    x_0, x_1 = torch.randn(shape, generator=gen), 2 + torch.randn(shape, generator=gen)
    t = 0.95 * torch.rand(shape[0], generator=gen)
    model = Elementwise() if len(shape) > 2 or shape[1] != 2 else seeded_field()
    loss = cfm_loss(model, AffinePath(sched), x_0, x_1, t)
    assert loss.ndim == 0
    assert float(loss.detach()) == pytest.approx(hand_cfm(model, *formulas, x_0, x_1, t), rel=1e-5)


def test_cfm_loss_carries_gradients_to_the_model(gen):
    model = seeded_field()
    x_0, x_1, t = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen), torch.rand(6, generator=gen)
    loss = cfm_loss(model, PATH, x_0, x_1, t)
    assert loss.requires_grad
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cfm_loss_is_zero_for_the_straight_line_velocity(gen):
    # On the CondOT path with a single (x_0, x_1) pair the velocity is x_1 - x_0 at every t:
    # a "model" that knows the pair has zero loss.
    x_0, x_1 = torch.randn(1, 2, generator=gen), torch.randn(1, 2, generator=gen)

    class Knows(nn.Module):
        def forward(self, x, t):
            return (x_1 - x_0).expand_as(x)

    for t in (0.0, 0.3, 1.0):
        assert float(cfm_loss(Knows(), PATH, x_0, x_1, torch.tensor([t]))) == 0.0


# --- cfm_loss: against the theory ---------------------------------------------------------------


def _mixture_batch(seed: int, n: int = 100_000):
    """One large seeded CondOT batch from three Gaussian modes, and the exact marginal velocity
    at its points: ``(s, t, u_marg)``."""
    data = GaussianMixture.symmetric_2d(3, radius=2.5, std=0.5)
    exact = GaussianMixturePath(PATH, data)
    gen = torch.Generator().manual_seed(seed)
    x_1, x_0, t = data.sample(n, generator=gen), torch.randn(n, 2, generator=gen), torch.rand(n, generator=gen)
    s = PATH.sample(x_0, x_1, t)
    return s, t, exact.vector_field(s.x_t, t)


def test_cfm_and_fm_losses_differ_by_a_network_independent_constant():
    r"""L_FM(θ) = L_CFM(θ) - C with C independent of θ. On one batch,

        ‖u_θ - u_cond‖² - ‖u_θ - u_marg‖² = ‖u_cond‖² - ‖u_marg‖² - 2 u_θ·(u_cond - u_marg),

    and the last term averages to zero because u_marg(x) = E[u_cond | x_t = x]. So the
    difference of the batch losses must agree across networks up to the Monte Carlo error of
    that cross term, whose standard error we estimate from the batch itself.
    """
    n = 100_000
    s, t, u_marg = _mixture_batch(3, n)
    const = float((s.dx_t.pow(2).sum(1) - u_marg.pow(2).sum(1)).mean())  # network-free part
    for seed in range(3):
        with torch.no_grad():
            out = 3 * seeded_field(seed)(s.x_t, t)  # scaled up so that the cross term matters
        cfm = (out - s.dx_t).pow(2).sum(1)
        fm = (out - u_marg).pow(2).sum(1)
        cross = -2 * (out * (s.dx_t - u_marg)).sum(1)
        se = float(cross.std()) / math.sqrt(n)
        assert abs(float((cfm - fm).mean()) - const) < 4 * se, seed
    # and the constant is what the CFM loss cannot go below: E‖u_cond - u_marg‖² > 0
    assert float((s.dx_t - u_marg).pow(2).sum(1).mean()) > 1.0


def test_cfm_and_fm_gradients_agree():
    # The gradients of the two losses on one large batch point the same way (their difference
    # is the gradient of a mean-zero cross term, which shrinks like 1/√n).
    s, t, u_marg = _mixture_batch(4)
    model = seeded_field(1)
    grads = []
    for target in (s.dx_t, u_marg):
        model.zero_grad()
        (model(s.x_t, t) - target).pow(2).sum(1).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    cos = float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))
    assert cos > 0.99


# --- cfm_loss: validation -----------------------------------------------------------------------


def test_cfm_loss_rejects_mismatched_batches(gen):
    model = seeded_field()
    x = torch.randn(4, 2, generator=gen)
    with pytest.raises(ValueError, match="x_0 and x_1 must have the same shape"):
        cfm_loss(model, PATH, x, torch.randn(5, 2, generator=gen), torch.rand(5, generator=gen))
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\) = \(4,\)"):
        cfm_loss(model, PATH, x, x, torch.rand(3, generator=gen))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        cfm_loss(model, PATH, x, x, torch.full((4,), 1.5))


# --- dsm_loss and noise_prediction_loss: by hand ------------------------------------------------


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
    trainer = ll.DenoisingScoreMatchingTrainer(model, path, Fixed(z), t_max=0.9, weighting=weighting)
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
    trainer = ll.NoisePredictionTrainer(model, path, Fixed(z), t_max=0.95)
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
    data = mixture_target()
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


# --- dsm_loss and noise_prediction_loss: the minimisers -----------------------------------------

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
        return float(trainer.loss(_N).detach())


@pytest.mark.parametrize("weighting", ["none", "beta2"])
def test_dsm_loss_is_minimised_by_the_marginal_score(weighting):
    data = mixture_target()
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
    data = mixture_target()
    path = ll.AffinePath(ll.CondOTScheduler())
    exact = ll.GaussianMixturePath(path, data)
    delta = torch.tensor([0.3, -0.2])
    best = _loss(ll.DenoisingScoreMatchingTrainer(FieldModule(exact.score), path, data, t_max=_T_MAX))
    worse = _loss(ll.DenoisingScoreMatchingTrainer(FieldModule(lambda x, t: exact.score(x, t) + delta),
                                                    path, data, t_max=_T_MAX))
    # E|δ|² = 0.13; the cross term's Monte Carlo error is about 0.03·0.36 ≈ 0.01.
    assert abs((worse - best) - float(delta.pow(2).sum())) < 0.04


def test_noise_prediction_is_minimised_by_minus_beta_times_the_score():
    data = mixture_target()
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


# --- drop_labels and cfg_loss -------------------------------------------------------------------


def test_drop_labels():
    y = torch.tensor([3, 1, 4, 1])
    out = drop_labels(y, torch.tensor([True, False, False, True]), 10)
    assert out.tolist() == [10, 1, 4, 10] and y.tolist() == [3, 1, 4, 1]


@pytest.mark.parametrize("scheduler", [CondOTScheduler(), CosineScheduler()])
def test_cfg_loss_by_hand(scheduler):
    path = AffinePath(scheduler)
    model = Recorder()
    x_1, y, t, x_0, drop = labelled_batch()
    loss = cfg_loss(model, path, x_0, x_1, t, y, drop, 10)
    assert torch.equal(model.labels[-1], torch.where(drop, 10, y))
    s = scheduler(t.view(-1, 1, 1, 1))
    x_t = s.alpha_t * x_1 + s.beta_t * x_0
    target = s.d_alpha_t * x_1 + s.d_beta_t * x_0
    with torch.no_grad():
        labels = torch.where(drop, 10, y)  # the null label 10 where the label is dropped
        by_hand = sum(float(((model(x_t[i:i + 1], t[i:i + 1], labels[i:i + 1]) - target[i]) ** 2).sum())
                      for i in range(6)) / 6
    assert float(loss.detach()) == pytest.approx(by_hand, rel=1e-5)
    loss.backward()
    assert model.a.grad is not None and float(model.a.grad.abs().sum()) > 0


def test_cfg_loss_validates_the_mask():
    x_1, y, t, x_0, drop = labelled_batch()
    with pytest.raises(TypeError, match="bool"):
        cfg_loss(Recorder(), PATH, x_0, x_1, t, y, drop.float(), 10)
    with pytest.raises(ValueError, match="drop_mask"):
        cfg_loss(Recorder(), PATH, x_0, x_1, t, y, drop[:3], 10)
