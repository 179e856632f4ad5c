"""Minibatch optimal-transport couplings and straightness: the coupling against brute force, the
straightness measures against flows whose trajectories are known (lines, circles), and a short
OT-CFM training that must come out straighter than independent coupling."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from labs_lib import AffinePath, CondOTScheduler, GaussianMixture, MLPField
from labs_lib.coupling import FixedPairs, one_step_error, ot_coupling, reflow_pairs, straightness
from labs_lib.metrics import optimal_assignment, wasserstein2
from labs_lib.training import ConditionalFlowMatchingTrainer, OTConditionalFlowMatchingTrainer, ReflowTrainer

# --- the coupling -----------------------------------------------------------------------------


def test_ot_coupling_is_a_permutation(gen):
    x_0, x_1 = torch.randn(50, 3, generator=gen), torch.randn(50, 3, generator=gen)
    paired = ot_coupling(x_0, x_1)
    perm = optimal_assignment(x_0, x_1)
    assert sorted(perm.tolist()) == list(range(50))  # nothing lost, nothing repeated
    assert torch.equal(paired, x_1[perm])


def test_ot_coupling_minimises_the_cost_over_all_permutations(gen):
    x_0, x_1 = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    cost = lambda y: float((x_0 - y).pow(2).sum())  # noqa: E731
    brute = min(cost(x_1[list(p)]) for p in itertools.permutations(range(6)))
    assert cost(ot_coupling(x_0, x_1)) == pytest.approx(brute, rel=1e-6)
    # the same assignment is behind W2: W2² = min cost / n
    assert wasserstein2(x_0, x_1) ** 2 == pytest.approx(brute / 6, rel=1e-6)


def test_ot_coupling_of_a_batch_with_itself_is_the_identity(gen):
    x = torch.randn(40, 2, generator=gen)
    assert torch.equal(optimal_assignment(x, x), torch.arange(40))
    shuffled = torch.randperm(40, generator=gen)
    assert torch.equal(ot_coupling(x, x[shuffled]), x)  # a shuffled copy is put back in order


def test_ot_coupling_works_on_images_and_rejects_mismatched_batches(gen):
    x = torch.randn(5, 1, 4, 4, generator=gen)
    assert torch.equal(ot_coupling(x, x.flip(0)), x)
    with pytest.raises(ValueError, match="same shape"):
        ot_coupling(torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="NaN"):
        ot_coupling(torch.zeros(4, 2), torch.full((4, 2), float("nan")))


# --- straightness -----------------------------------------------------------------------------


def test_a_constant_field_is_straight(gen):
    x_0 = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    field = lambda x, t: torch.tensor([1.0, -2.0], dtype=x.dtype).expand_as(x)  # noqa: E731
    assert straightness(field, x_0, 10) < 1e-20
    assert one_step_error(field, x_0, 10) < 1e-20


def test_the_condot_field_towards_a_point_is_straight(gen):
    """The exact marginal field from N(0, I) to a point mass at m is the conditional field,
    u_t(x) = (m - x)/(1 - t): every trajectory is the line x_0 → m at constant speed. At t = 1 it is
    0/0, and the path (time clamped to 1 - 1e-4) returns 0 at x = m: Heun's last stage would see that
    0 (straightness measured 1.1e4 with t1 = 1). So the flow stops at t1 = 0.999."""
    path = AffinePath(CondOTScheduler())
    m = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    field = lambda x, t: path.conditional_vector_field(x, m.expand_as(x), t)  # noqa: E731
    x_0 = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    assert straightness(field, x_0, 20, t1=0.999) < 1e-20
    assert one_step_error(field, x_0, 20, t1=0.999) < 1e-20
    assert straightness(field, x_0, 20) > 1  # the 0/0 at t = 1, as said above


def test_a_rotation_is_curved_by_the_closed_form_amount(gen):
    """u(x) = Jx, J the rotation generator: X_t = R(t) X_0, speed |X_0|, chord X_1 - X_0 of squared
    length 2(1 - cos 1)|X_0|². Since ∫u dt is the chord, ∫‖u - chord‖² dt = |X_0|²(1 - 2(1 - cos 1)).
    One Euler step lands at (I + J) X_0 and the flow at R(1) X_0; M = I + J - R(1) is a scaled
    rotation (a combination of I and J), so ‖M X_0‖² = ‖M‖₂² |X_0|² exactly."""
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    field = lambda x, t: x @ J.T  # noqa: E731
    x_0 = torch.randn(25, 2, generator=gen, dtype=torch.float64)
    r2 = float(x_0.pow(2).sum(1).mean())
    expected = r2 * (1 - 2 * (1 - math.cos(1)))
    assert straightness(field, x_0, 400) == pytest.approx(expected, rel=1e-4)
    c = float(torch.linalg.matrix_norm(torch.eye(2, dtype=torch.float64) + J - torch.linalg.matrix_exp(J), ord=2))**2
    assert one_step_error(field, x_0, 400) == pytest.approx(c * r2, rel=1e-4)
    assert straightness(field, x_0, 400) > 0.1


def test_straightness_rejects_bad_input():
    with pytest.raises(TypeError, match="callable"):
        straightness(None, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="n_steps"):
        one_step_error(lambda x, t: x, torch.zeros(3, 2), 0)
    with pytest.raises(ValueError, match="t1"):
        straightness(lambda x, t: x, torch.zeros(3, 2), t1=0.0)
    with pytest.raises(FloatingPointError):
        straightness(lambda x, t: x / 0, torch.ones(3, 2), 8)


# --- OT-CFM training --------------------------------------------------------------------------


def test_ot_cfm_learns_a_straighter_field_than_independent_coupling():
    """Three Gaussians (std 0.4) at (±3, 0) and (0, 3); MLPField(2, hidden=(64, 64)), 300 steps of
    batch 128, lr 3e-3; measured on 500 fixed noise points with 50 Heun steps (seeds 0-4):
        straightness  independent 1.50, 1.24, 1.48, 1.42, 1.38    OT 0.067, 0.065, 0.066, 0.066, 0.071
        one-step err  independent 2.90, 2.58, 2.87, 2.77, 2.56    OT 0.42, 0.39, 0.37, 0.43, 0.41
    A factor ≥ 18 in straightness and ≥ 6 in one-step error on every seed, so factors of 5 and 3
    cannot flake. (~2 s on one thread: the assignment doubles the OT run's time at this batch.)"""
    data = GaussianMixture.isotropic(torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]]), 0.4)
    path = AffinePath(CondOTScheduler())
    x_0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(99))
    measured = {}
    for name, cls in (("independent", ConditionalFlowMatchingTrainer), ("ot", OTConditionalFlowMatchingTrainer)):
        torch.manual_seed(0)
        model = MLPField(2, hidden=(64, 64))
        cls(model, path, data).train(300, batch_size=128, lr=3e-3, seed=0, progress=False)
        measured[name] = (straightness(model, x_0, 50), one_step_error(model, x_0, 50))
    assert measured["ot"][0] * 5 < measured["independent"][0], measured
    assert measured["ot"][1] * 3 < measured["independent"][1], measured


def test_the_ot_trainer_pairs_each_batch_optimally(gen):
    data = GaussianMixture.isotropic(torch.tensor([[-3.0, 0.0], [3.0, 0.0]]), 0.4)
    trainer = OTConditionalFlowMatchingTrainer(MLPField(2, hidden=(8,)), AffinePath(CondOTScheduler()), data)
    x_0, x_1 = torch.randn(16, 2, generator=gen), data.sample(16)
    a, b = trainer.couple(x_0, x_1)
    assert torch.equal(a, x_0) and torch.equal(b, ot_coupling(x_0, x_1))
    plain = ConditionalFlowMatchingTrainer(MLPField(2, hidden=(8,)), AffinePath(CondOTScheduler()), data)
    assert plain.couple(x_0, x_1)[1] is x_1


# --- reflow -----------------------------------------------------------------------------------


def test_reflow_pairs_are_the_odes_endpoints_of_their_noise(gen):
    """A linear field u(x) = a - x has the solution X_1 = a + (x_0 - a) e^{-1}: the pairs must hold it."""
    a = torch.tensor([1.0, -2.0], dtype=torch.float64)
    x_0 = torch.randn(40, 2, generator=gen, dtype=torch.float64)
    pairs = reflow_pairs(lambda x, t: a - x, x_0, n_steps=200)
    assert torch.equal(pairs.x_0, x_0) and len(pairs) == 40 and pairs.shape == (2,)
    assert torch.allclose(pairs.x_1, a + (x_0 - a) * math.exp(-1), atol=1e-5)  # Heun, h = 1/200: error ~h²
    euler = reflow_pairs(lambda x, t: a - x, x_0, n_steps=200, method="euler")
    assert (euler.x_1 - pairs.x_1).abs().max() > 1e-4  # the method is used


def test_fixed_pairs_are_drawn_whole(gen):
    x_0 = torch.arange(20.0).reshape(10, 2)
    pairs = FixedPairs(x_0, -x_0)
    a, b = pairs.sample_pairs(64, generator=gen)
    assert torch.equal(b, -a)  # row i of both is one pair
    assert set(a[:, 0].tolist()) <= set(x_0[:, 0].tolist())
    assert torch.equal(pairs.sample(5, generator=torch.Generator().manual_seed(3)),
                       pairs.sample_pairs(5, generator=torch.Generator().manual_seed(3))[1])


def test_fixed_pairs_reject_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        FixedPairs(torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="NaN"):
        FixedPairs(torch.zeros(4, 2), torch.full((4, 2), float("nan")))
    with pytest.raises(ValueError, match="method"):
        reflow_pairs(lambda x, t: x, torch.zeros(4, 2), method="rk4")
    with pytest.raises(TypeError, match="FixedPairs"):
        ReflowTrainer(MLPField(2, hidden=(8,)), AffinePath(CondOTScheduler()), (torch.zeros(4, 2), torch.zeros(4, 2)))


def test_the_reflow_trainer_regresses_the_chords_of_its_pairs(gen):
    """Pairs (x_0, x_0 + v) of one shift v: the chord field is the constant v, and the loss of a model that
    returns v is 0 on every batch. (A trainer that separated the pairs would see other chords.)"""
    v = torch.tensor([2.0, -1.0])
    x_0 = torch.randn(100, 2, generator=gen)

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.v = torch.nn.Parameter(v.clone())

        def forward(self, x, t):
            return self.v.expand_as(x)

    trainer = ReflowTrainer(Constant(), AffinePath(CondOTScheduler()), FixedPairs(x_0, x_0 + v))
    assert float(trainer.loss(64).detach()) < 1e-10
    a, b = trainer.draw(32)
    assert torch.allclose(b - a, v.expand(32, 2))


def test_reflow_straightens_a_trained_flow():
    """The three Gaussians of the OT test; an independent-coupling model (300 steps, as there), then its
    reflow: 2,000 pairs simulated with 50 Heun steps, the same network trained on them for 300 steps.
    Measured on 500 fixed noise points (seeds 0-2): straightness 1.50 → about 0.1, a factor > 10; a
    factor of 4 cannot flake."""
    data = GaussianMixture.isotropic(torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]]), 0.4)
    path = AffinePath(CondOTScheduler())
    x_0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(99))
    torch.manual_seed(0)
    model = MLPField(2, hidden=(64, 64))
    ConditionalFlowMatchingTrainer(model, path, data).train(300, batch_size=128, lr=3e-3, seed=0, progress=False)
    pairs = reflow_pairs(model, torch.randn(2000, 2, generator=torch.Generator().manual_seed(5)))
    reflowed = MLPField(2, hidden=(64, 64))
    ReflowTrainer(reflowed, path, pairs).train(300, batch_size=128, lr=3e-3, seed=1, progress=False)
    before, after = straightness(model, x_0, 50), straightness(reflowed, x_0, 50)
    assert after * 4 < before, (before, after)
