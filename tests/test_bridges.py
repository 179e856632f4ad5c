"""The course's objects against the libraries students use next (the optional ``bridges`` extra).

Each test imports its library with ``pytest.importorskip``: without ``make bridges`` it is skipped,
with it, it must pass. The same comparisons are shown side by side at the end of Labs 05, 09 and 10.

* torchcfm's ``ConditionalFlowMatcher`` with ``sigma = 0`` is the course's CondOT path and target;
  its examples' loss averages over coordinates too, so it is the course's :func:`cfm_loss` over ``d``.
* torchcfm's exact minibatch OT plan pairs the samples as :func:`ot_coupling` does.
* diffusers' ``DDPMScheduler`` and ``DDIMScheduler``, given the per-step variances of the course's
  cosine path on a grid, noise and denoise exactly as the course's path, :class:`DDPMSimulator` and
  :class:`DDIMSimulator` do. diffusers keeps its schedule in float32, hence the float32 tolerances.
"""

from __future__ import annotations

import pytest
import torch

from labs_lib import (AffinePath, CondOTScheduler, CosineScheduler, DDIMSimulator, DDPMSimulator, Gaussian,
                      GaussianMixture, GaussianMixturePath, MLPField, cfm_loss, ddpm_alpha_bars,
                      ddpm_step_coefficients, ot_coupling, uniform_time_grid)

F64 = torch.float64


def _pairs(n: int, shape: tuple[int, ...], dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(n, *shape, generator=gen, dtype=dtype),
            3 + torch.randn(n, *shape, generator=gen, dtype=dtype))


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
def test_torchcfm_conditional_flow_matcher_is_the_condot_path(shape):
    cfm = pytest.importorskip("torchcfm.conditional_flow_matching")
    x_0, x_1 = _pairs(128, shape)
    t = torch.rand(128, generator=torch.Generator().manual_seed(1), dtype=F64)
    t_theirs, x_t, u_t = cfm.ConditionalFlowMatcher(sigma=0.0).sample_location_and_conditional_flow(x_0, x_1, t=t)
    ours = AffinePath(CondOTScheduler()).sample(x_0, x_1, t)
    assert torch.equal(t_theirs, t)
    assert torch.allclose(ours.x_t, x_t, rtol=0, atol=1e-12)
    assert torch.allclose(ours.dx_t, u_t, rtol=0, atol=1e-12)


def test_torchcfm_style_loss_is_the_course_loss_over_the_dimension():
    cfm = pytest.importorskip("torchcfm.conditional_flow_matching")
    x_0, x_1 = _pairs(256, (2,), torch.float32)
    t = torch.rand(256, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = MLPField(2, hidden=(32, 32))
    _, x_t, u_t = cfm.ConditionalFlowMatcher(sigma=0.0).sample_location_and_conditional_flow(x_0, x_1, t=t)
    theirs = torch.mean((model(x_t, t) - u_t) ** 2)  # the loss line of torchcfm's examples
    ours = cfm_loss(model, AffinePath(CondOTScheduler()), x_0, x_1, t)
    assert ours.item() == pytest.approx(2 * theirs.item(), rel=1e-6)


def test_torchcfm_exact_ot_plan_pairs_as_ot_coupling():
    ot = pytest.importorskip("torchcfm.optimal_transport")
    x_0, x_1 = _pairs(64, (2,))
    plan = torch.as_tensor(ot.OTPlanSampler(method="exact").get_map(x_0, x_1))
    # a uniform plan between two batches of 64 is a permutation matrix over 64
    assert torch.allclose(plan.sum(1), torch.full((64,), 1 / 64, dtype=plan.dtype))
    assert torch.equal(ot_coupling(x_0, x_1), x_1[plan.argmax(1)])


def _diffusers_setup(n_steps: int = 40, dtype: torch.dtype = F64):
    """The course's cosine path on a grid of ``n_steps`` steps, its exact score for a two-blob mixture,
    and diffusers' schedule arguments for the same noise levels.

    DDPM's step ``j = 0, ..., K-1`` (noisiest last) ends at :math:`\\bar\\alpha_{j+1}` of
    :func:`ddpm_alpha_bars` (whose level 0 is the data itself), i.e. at course time ``ts[K-1-j]``.
    """
    path = AffinePath(CosineScheduler())
    target = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=dtype),
                             torch.stack([0.3 * torch.eye(2, dtype=dtype)] * 2), torch.tensor([0.4, 0.6], dtype=dtype))
    exact = GaussianMixturePath(path, target)
    ts = uniform_time_grid(n_steps, dtype=F64)
    alpha_bars = ddpm_alpha_bars(CosineScheduler(), ts)
    ts = ts.to(dtype)
    betas = ddpm_step_coefficients(alpha_bars[:-1], alpha_bars[1:])[1] ** 2  # DDPM's beta_k, k = 1..K
    kwargs = dict(num_train_timesteps=n_steps, trained_betas=betas.numpy(), clip_sample=False,
                  prediction_type="epsilon")
    return path, exact, ts, alpha_bars, kwargs


def _epsilon(path: AffinePath, exact: GaussianMixturePath, x: torch.Tensor, t: float) -> torch.Tensor:
    """The exact noise prediction at course time ``t``: :math:`\\hat\\varepsilon = -\\beta_t\\nabla\\log p_t`."""
    tt = torch.full((len(x),), t, dtype=x.dtype)
    return -path.scheduler(tt).beta_t[:, None] * exact.score(x, tt)


def test_diffusers_ddpm_noising_and_steps_are_the_course_ones():
    diffusers = pytest.importorskip("diffusers")
    # float32 throughout: the step's fresh noise must be the same numbers on both sides (one seed, one dtype)
    path, exact, ts, alpha_bars, kwargs = _diffusers_setup(dtype=torch.float32)
    k = len(ts) - 1
    scheduler = diffusers.DDPMScheduler(variance_type="fixed_small", **kwargs)
    assert torch.allclose(scheduler.alphas_cumprod.double(), alpha_bars[1:], rtol=0, atol=1e-6)
    x_1, noise = _pairs(200, (2,), torch.float32)
    sampler = DDPMSimulator(path, exact.score, "score")
    for j in (k - 1, k // 2, 3):
        t = float(ts[k - 1 - j])
        x = scheduler.add_noise(x_1, noise, torch.full((200,), j))
        assert torch.allclose(x, path.sample(noise, x_1, torch.full((200,), t)).x_t, rtol=0, atol=1e-5)
        # one ancestral step from level j to j - 1
        torch.manual_seed(j)
        ours = sampler.step(x, torch.tensor(t), float(ts[k - j]) - t)
        theirs = scheduler.step(_epsilon(path, exact, x, t), j, x,
                                generator=torch.Generator().manual_seed(j)).prev_sample
        # measured: at most 1.2e-5 (float32 rounding, on samples of size ~5)
        assert torch.allclose(theirs, ours, rtol=0, atol=5e-5), (ours - theirs).abs().max()


def test_diffusers_ddim_sampling_is_the_course_ddim():
    diffusers = pytest.importorskip("diffusers")
    path, exact, ts, _, kwargs = _diffusers_setup()
    k = len(ts) - 1
    scheduler = diffusers.DDIMScheduler(set_alpha_to_one=True, **kwargs)  # the last step lands on the data
    scheduler.set_timesteps(k)
    assert scheduler.timesteps.tolist() == list(range(k - 1, -1, -1))
    x_0 = Gaussian.isotropic(2).sample(300).double()
    x = x_0.float()
    for i, j in enumerate(scheduler.timesteps):
        x = scheduler.step(_epsilon(path, exact, x.double(), float(ts[i])).float(), j, x, eta=0.0).prev_sample
    ours = DDIMSimulator(path, exact.score, "score").simulate(x_0, ts)
    # 40 steps in float32 against float64: the difference stays at float32's rounding (measured 1.1e-5)
    assert torch.allclose(x.double(), ours, rtol=0, atol=5e-5), (x.double() - ours).abs().max()
