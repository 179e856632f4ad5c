"""The exercise checkers of notebook 01: the reference passes, an unfinished exercise gets a
reminder, and a catalogue of plausible wrong answers is each rejected with a message that
names the mistake."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from checker_cases import assert_named

from labs_lib import (EulerMaruyamaSimulator, EulerSimulator, HeunSimulator, LinearODE, ODESimulator, OrnsteinUhlenbeck,
                      SDESimulator)
from labs_lib.checks import CheckReport, check_euler_maruyama_step, check_euler_step, check_heun_step

CHECKERS = {
    "euler": (check_euler_step, EulerSimulator, ODESimulator, "Euler step"),
    "heun": (check_heun_step, HeunSimulator, ODESimulator, "Heun step"),
    "euler_maruyama": (check_euler_maruyama_step, EulerMaruyamaSimulator, SDESimulator, "Euler–Maruyama step"),
}


def ode_sim(step):
    return type("StudentODESimulator", (ODESimulator,), {"step": step})


def sde_sim(step):
    return type("StudentSDESimulator", (SDESimulator,), {"step": step})


# --- the reference passes; the unfinished exercise is reminded -----------------------------------


@pytest.mark.parametrize("which", list(CHECKERS))
def test_reference_implementation_passes(which):
    checker, reference, _, title = CHECKERS[which]
    report = checker(reference)
    assert isinstance(report, CheckReport)
    assert report.passed is True and bool(report), report.message
    assert report.message.endswith(f"✔ {title}: all checks passed.")
    assert report.message.count("✓") >= 2 and "✗" not in report.message
    assert repr(report) == report.message


@pytest.mark.parametrize("which", list(CHECKERS))
def test_unfinished_exercise_is_not_implemented_yet(which):
    checker, _, base, title = CHECKERS[which]

    def step(self, x, t, h):
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: step")

    report = checker(type("Stub", (base,), {"step": step}))
    assert report.passed is None and not bool(report)
    assert report.message.startswith(f"… {title}: not implemented yet.")
    assert "raise NotImplementedError" in report.message


@pytest.mark.parametrize("which", list(CHECKERS))
@pytest.mark.parametrize("variant", ["reference", "wrong", "crash", "unfinished"])
def test_checkers_leave_the_global_rng_untouched(which, variant):
    checker, reference, base, _ = CHECKERS[which]

    def wrong(self, x, t, h):
        return x - h * torch.randn_like(x)  # draws from the global stream and is wrong

    def crash(self, x, t, h):
        torch.randn(3)
        raise RuntimeError("boom")

    def unfinished(self, x, t, h):
        raise NotImplementedError

    cls = reference if variant == "reference" else type("S", (base,), {"step": locals()[variant]})
    torch.manual_seed(123)
    before = torch.get_rng_state()
    checker(cls)
    assert torch.equal(torch.get_rng_state(), before)
    # and the stream continues exactly where it was
    expected = torch.Generator().manual_seed(123)
    assert torch.equal(torch.randn(5), torch.randn(5, generator=expected))


@pytest.mark.parametrize("which", list(CHECKERS))
def test_passing_an_instance_or_the_wrong_base_is_explained(which):
    checker, reference, base, title = CHECKERS[which]
    instance = reference(LinearODE.decay(1.0) if base is ODESimulator else OrnsteinUhlenbeck(1.0, 1.0))
    for arg in (instance, object(), "MyEulerSimulator"):
        report = checker(arg)
        assert report.passed is False
        assert f"pass your class itself (a subclass of {base.__name__})" in report.message
    other = EulerMaruyamaSimulator if base is ODESimulator else EulerSimulator
    report = checker(other)
    assert report.passed is False and f"a subclass of {base.__name__}" in report.message


# --- Euler: a catalogue of mistakes ---------------------------------------------------------------


def _u(self, x, t):
    return self.ode.drift(x, t)


def e_wrong_sign(self, x, t, h):
    return x - h * _u(self, x, t)


def e_missing_h(self, x, t, h):
    return x + _u(self, x, t)


def e_drift_at_t_plus_h(self, x, t, h):
    return x + h * _u(self, x, t + h)


def e_increment_only(self, x, t, h):
    return h * _u(self, x, t)


def e_in_place(self, x, t, h):
    x += h * _u(self, x, t)
    return x


def e_in_place_add_(self, x, t, h):
    return x.add_(h * _u(self, x, t))


def e_sum_keepdim(self, x, t, h):
    return x + h * _u(self, x, t).sum(-1, keepdim=True)


def e_first_column(self, x, t, h):
    return x + h * _u(self, x, t)[:, :1]


def e_sum_no_keepdim(self, x, t, h):
    return x + h * _u(self, x, t).sum(-1)


def e_batch_mean(self, x, t, h):
    return x + h * _u(self, x, t).mean(0, keepdim=True)


def e_sqrt_h(self, x, t, h):
    return x + math.sqrt(h) * _u(self, x, t)


def e_returns_x(self, x, t, h):
    _ = x + h * _u(self, x, t)
    return x


def e_swapped_args(self, x, t, h):
    return x + h * self.ode.drift(t, x)


def e_no_return(self, x, t, h):
    x = x + h * _u(self, x, t)


def e_numpy(self, x, t, h):
    return (x + h * _u(self, x, t)).numpy()


def e_flattened(self, x, t, h):
    return (x + h * _u(self, x, t)).reshape(x.shape[0], -1)


def e_attribute_error(self, x, t, h):
    return x + h * self.drift(x, t)


EULER_MISTAKES = [
    ("wrong_sign", e_wrong_sign, "the update has the wrong sign"),
    ("missing_h", e_missing_h, "the slope must be multiplied by the step size h"),
    ("drift_at_t_plus_h", e_drift_at_t_plus_h, "the drift was evaluated at t + h"),
    ("increment_only", e_increment_only, "returned only the increment h·u_t(x)"),
    ("in_place_iadd", e_in_place, "step modified its input x in place"),
    ("in_place_add_", e_in_place_add_, "step modified its input x in place"),
    ("sum_keepdim", e_sum_keepdim, "is the same for every entry along axis 1"),
    ("slice_first_column", e_first_column, "is the same for every entry along axis 1"),
    ("sum_without_keepdim", e_sum_no_keepdim, "collapsed that axis and broadcasting copied it back"),
    ("mean_over_batch", e_batch_mean, "is the same for every particle (axis 0, the batch)"),
    ("sqrt_h", e_sqrt_h, "the increment scales with √h"),
    ("returns_x", e_returns_x, "the step returned x unchanged"),
    ("swapped_drift_args", e_swapped_args, "the arguments of drift are swapped"),
    ("forgot_return", e_no_return, "step returned None. Did you forget `return`?"),
    ("returns_numpy", e_numpy, "step must return a torch.Tensor, got ndarray"),
    ("flattens_images", e_flattened, "for x of shape (4, 1, 3, 3) step returned shape (4, 9)"),
    ("attribute_error", e_attribute_error, "your code raised AttributeError"),
    ("heun_instead", HeunSimulator.step, "the result differs from x + h·u_t(x) by up to"),
]


# --- Heun: a catalogue of mistakes ----------------------------------------------------------------


def h_euler(self, x, t, h):
    return x + h * _u(self, x, t)


def h_sum(self, x, t, h):
    u = _u(self, x, t)
    return x + h * (u + _u(self, x + h * u, t + h))


def h_second_at_t(self, x, t, h):
    u = _u(self, x, t)
    return x + 0.5 * h * (u + _u(self, x + h * u, t))


def h_second_at_x(self, x, t, h):
    u = _u(self, x, t)
    return x + 0.5 * h * (u + _u(self, x, t + h))


def h_midpoint(self, x, t, h):
    u = _u(self, x, t)
    return x + h * _u(self, x + 0.5 * h * u, t + 0.5 * h)


def h_in_place(self, x, t, h):
    u = _u(self, x, t)
    x_guess = x + h * u
    x += 0.5 * h * (u + _u(self, x_guess, t + h))
    return x


def h_in_place_guess(self, x, t, h):
    u = _u(self, x, t)
    guess = x
    guess += h * u  # aliases x
    return guess + 0.5 * h * (u + _u(self, guess, t + h))


def h_from_guess(self, x, t, h):
    u = _u(self, x, t)
    guess = x + h * u
    return guess + 0.5 * h * (u + _u(self, guess, t + h))


def h_increment_only(self, x, t, h):
    u = _u(self, x, t)
    return 0.5 * h * (u + _u(self, x + h * u, t + h))


def h_wrong_sign(self, x, t, h):
    u = _u(self, x, t)
    return x - 0.5 * h * (u + _u(self, x + h * u, t + h))


def h_wrong_sign_both(self, x, t, h):
    u = _u(self, x, t)
    return x - 0.5 * h * (u + _u(self, x - h * u, t + h))


def h_sum_keepdim(self, x, t, h):
    u = _u(self, x, t).sum(-1, keepdim=True)
    return x + 0.5 * h * (u + _u(self, x + h * u, t + h).sum(-1, keepdim=True))


def h_returns_x(self, x, t, h):
    return x


def h_no_return(self, x, t, h):
    u = _u(self, x, t)
    x + 0.5 * h * (u + _u(self, x + h * u, t + h))


HEUN_MISTAKES = [
    ("euler_step", h_euler, "this is an Euler step"),
    ("sum_not_average", h_sum, "the two slopes are summed, not averaged"),
    ("second_slope_at_t", h_second_at_t, "the second slope must be taken at time t + h"),
    ("second_slope_at_x", h_second_at_x, "the second slope must be taken at the predicted point"),
    ("midpoint", h_midpoint, "this is the midpoint method"),
    ("in_place_update", h_in_place, "step modified its input x in place"),
    ("in_place_guess", h_in_place_guess, "step modified its input x in place"),
    ("starts_from_guess", h_from_guess, "start from x"),
    ("increment_only", h_increment_only, "returned only the increment"),
    ("wrong_sign", h_wrong_sign, "the update has the wrong sign"),
    ("wrong_sign_predictor_too", h_wrong_sign_both, "the update has the wrong sign"),
    ("sum_keepdim", h_sum_keepdim, "collapsed that axis and broadcasting copied it back"),
    ("returns_x", h_returns_x, "the step returned x unchanged"),
    ("forgot_return", h_no_return, "Did you forget `return`?"),
]


# --- Euler–Maruyama: a catalogue of mistakes --------------------------------------------------------


def _b(self, x, t):
    return self.sde.drift(x, t)


def _s(self, x, t):
    return self.sde.diffusion(x, t)


def em_h_not_sqrt_h(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * h * torch.randn_like(x)


def em_normal_std_h(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * torch.normal(0.0, h, size=x.shape)


def em_missing_sigma(self, x, t, h):
    return x + h * _b(self, x, t) + math.sqrt(h) * torch.randn_like(x)


def em_sigma_squared(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) ** 2 * math.sqrt(h) * torch.randn_like(x)


def em_no_noise(self, x, t, h):
    return x + h * _b(self, x, t)


def em_shared_across_particles(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.randn(1)


def em_shared_across_particles_per_coord(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.randn(x.shape[1:])


def em_shared_across_coordinates(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.randn(x.shape[0], 1)


def em_drift_at_t_plus_h(self, x, t, h):
    return x + h * _b(self, x, t + h) + _s(self, x, t) * math.sqrt(h) * torch.randn_like(x)


def em_diffusion_at_t_plus_h(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t + h) * math.sqrt(h) * torch.randn_like(x)


def em_wrong_drift_sign(self, x, t, h):
    return x - h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.randn_like(x)


def em_missing_h_on_drift(self, x, t, h):
    return x + _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.randn_like(x)


def em_sqrt_h_on_drift(self, x, t, h):
    return x + math.sqrt(h) * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.randn_like(x)


def em_no_drift(self, x, t, h):
    return x + _s(self, x, t) * math.sqrt(h) * torch.randn_like(x)


def em_no_sqrt_h(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * torch.randn_like(x)


def em_torch_sqrt_of_float(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * torch.sqrt(h) * torch.randn_like(x)


def em_uniform_noise(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.rand_like(x)


def em_in_place(self, x, t, h):
    x += h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.randn_like(x)
    return x


def em_drift_at_predicted_point(self, x, t, h):
    x_pred = x + h * _b(self, x, t)
    return x + h * _b(self, x_pred, t) + _s(self, x, t) * math.sqrt(h) * torch.randn_like(x)


def em_drift_at_midpoint(self, x, t, h):
    x_mid = x + 0.5 * h * _b(self, x, t)
    return x + h * _b(self, x_mid, t) + _s(self, x, t) * math.sqrt(h) * torch.randn_like(x)


def em_diffusion_at_predicted_point(self, x, t, h):
    x_pred = x + h * _b(self, x, t)
    return x + h * _b(self, x, t) + _s(self, x_pred, t) * math.sqrt(h) * torch.randn_like(x)


def em_rademacher_noise(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.sign(torch.randn_like(x))


def em_centred_uniform_noise(self, x, t, h):
    eps = (torch.rand_like(x) - 0.5) * math.sqrt(12.0)  # mean 0, variance 1, but not normal
    return x + h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * eps


def em_noise_made_on_the_cpu(self, x, t, h):
    return x + h * _b(self, x, t) + _s(self, x, t) * math.sqrt(h) * torch.randn(x.shape)


EM_MISTAKES = [
    ("noise_made_on_the_cpu", em_noise_made_on_the_cpu, "Create it on x.device"),
    ("drift_at_predicted_point", em_drift_at_predicted_point,
     "the drift was evaluated at the predicted point x + h·u_t(x)"),
    ("drift_at_midpoint", em_drift_at_midpoint, "the drift was evaluated at x + (h/2)·u_t(x)"),
    ("diffusion_at_predicted_point", em_diffusion_at_predicted_point,
     "the diffusion was evaluated at the predicted point x + h·u_t(x)"),
    ("rademacher_noise", em_rademacher_noise, "the noise is not Gaussian (kurtosis 1.00"),
    ("centred_uniform_noise", em_centred_uniform_noise, "it looks uniform"),
    ("h_instead_of_sqrt_h", em_h_not_sqrt_h, "the noise must scale with √h, not h"),
    ("normal_with_std_h", em_normal_std_h, "the noise must scale with √h, not h"),
    ("missing_sigma", em_missing_sigma, "the noise is missing the diffusion coefficient σ_t(x)"),
    ("sigma_squared", em_sigma_squared, "the noise is scaled by σ² instead of σ"),
    ("no_noise", em_no_noise, "the step gave the same result with different random seeds"),
    ("noise_shared_across_particles", em_shared_across_particles,
     "all particles moved identically: the noise is shared"),
    ("noise_shared_across_particles_per_coordinate", em_shared_across_particles_per_coord,
     "all particles moved identically: the noise is shared"),
    ("noise_shared_across_coordinates", em_shared_across_coordinates,
     "the noise of different coordinates is correlated"),
    ("drift_at_t_plus_h", em_drift_at_t_plus_h, "the drift was evaluated at t + h"),
    ("diffusion_at_t_plus_h", em_diffusion_at_t_plus_h, "the diffusion was evaluated at t + h"),
    ("wrong_drift_sign", em_wrong_drift_sign, "the drift term has the wrong sign"),
    ("missing_h_on_drift", em_missing_h_on_drift, "the drift must be multiplied by h"),
    ("sqrt_h_on_drift", em_sqrt_h_on_drift, "the drift was multiplied by √h"),
    ("no_drift", em_no_drift, "the drift term h·u_t(x) is missing"),
    ("no_sqrt_h_on_noise", em_no_sqrt_h, "the noise has no √h"),
    ("torch_sqrt_of_float", em_torch_sqrt_of_float, "take its square root with math.sqrt(h)"),
    ("uniform_noise", em_uniform_noise, "torch.rand/rand_like draw uniform numbers"),
    ("in_place", em_in_place, "step modified its input x in place"),
]


# (checker, how a step becomes a simulator class, catalogue) for each one-step exercise
STEP_CATALOGUES = {"Euler step": (check_euler_step, ode_sim, EULER_MISTAKES),
                   "Heun step": (check_heun_step, ode_sim, HEUN_MISTAKES),
                   "Euler–Maruyama step": (check_euler_maruyama_step, sde_sim, EM_MISTAKES)}
STEP_CASES = [(exercise, step, hint, f"{exercise}: {name}") for exercise, (_, _, catalogue) in STEP_CATALOGUES.items()
              for name, step, hint in catalogue]


@pytest.mark.parametrize("exercise, step, expected", [c[:3] for c in STEP_CASES], ids=[c[3] for c in STEP_CASES])
def test_step_mistakes_are_named(exercise, step, expected):
    checker, as_class, _ = STEP_CATALOGUES[exercise]
    report = checker(as_class(step))
    assert_named(report, expected)
    assert f"✗ {exercise}: " in report.message


def test_catalogues_are_large_enough():
    assert min(len(EULER_MISTAKES), len(HEUN_MISTAKES), len(EM_MISTAKES)) >= 6


def test_a_correct_but_differently_written_em_step_passes():
    """Equivalent formulations must not be rejected: noise drawn with torch.randn(x.shape),
    h ** 0.5 instead of math.sqrt(h), terms in another order."""

    def step(self, x, t, h):
        eps = torch.randn(x.shape, dtype=x.dtype, device=x.device)
        return self.sde.diffusion(x, t) * eps * h**0.5 + (x + self.sde.drift(x, t) * h)

    report = check_euler_maruyama_step(sde_sim(step))
    assert report.passed is True, report.message


@pytest.mark.parametrize("variant", ["normal", "float64", "randn_shape", "sqrt_tensor"])
def test_more_correct_em_steps_pass(variant):
    """Gaussian noise drawn any reasonable way, and a step computed in float64, are right answers."""

    def step(self, x, t, h):
        b, s = self.sde.drift(x, t), self.sde.diffusion(x, t)
        if variant == "normal":
            return x + h * b + s * torch.normal(0.0, math.sqrt(h), size=x.shape, device=x.device)
        if variant == "float64":
            x64 = x.double()
            return x64 + h * b.double() + s.double() * math.sqrt(h) * torch.randn_like(x64)
        if variant == "randn_shape":
            return x + b * h + s * torch.randn(*x.shape, device=x.device) * math.sqrt(h)
        return x + h * b + s * torch.sqrt(torch.tensor(h)) * torch.randn_like(x)

    report = check_euler_maruyama_step(sde_sim(step))
    assert report.passed is True, report.message


def test_a_correct_but_differently_written_heun_step_passes():
    def step(self, x, t, h):
        k1 = self.ode.drift(x, t)
        k2 = self.ode.drift(x + h * k1, t + h)
        return x + h * (k1 + k2) / 2

    assert check_heun_step(ode_sim(step)).passed is True


def test_reports_are_reproducible():
    a = check_euler_maruyama_step(sde_sim(em_missing_sigma)).message
    b = check_euler_maruyama_step(sde_sim(em_missing_sigma)).message
    assert a == b
    np.testing.assert_equal(check_euler_step(EulerSimulator).message, check_euler_step(EulerSimulator).message)


def test_the_device_probe_runs_the_em_reference_to_the_end():
    from labs_lib.checks._framework import PROBE_DEVICE, on_probe_device
    from labs_lib.checks.simulators import _CheckSDE

    x, t = on_probe_device(torch.randn(6, 2), torch.tensor(0.4))
    assert EulerMaruyamaSimulator(_CheckSDE()).step(x, t, 0.25).device == PROBE_DEVICE


# --- a step that asks the simulator itself for the drift -----------------------------------------


class EulerOwnDrift(EulerSimulator):
    def step(self, x, t, h):
        return x + h * self.drift(x, t)  # the drift belongs to self.ode


class EulerMaruyamaOwnDiffusion(EulerMaruyamaSimulator):
    def step(self, x, t, h):
        return x + h * self.sde.drift(x, t) + self.diffusion(x, t) * math.sqrt(h) * torch.randn_like(x)


@pytest.mark.parametrize("checker, cls, holder", [
    (check_euler_step, EulerOwnDrift, "self.ode.drift(x, t)"),
    (check_euler_maruyama_step, EulerMaruyamaOwnDiffusion, "self.sde.diffusion(x, t)"),
])
def test_self_drift_gets_a_hint_towards_the_equation(checker, cls, holder):
    report = checker(cls)
    assert report.passed is False
    assert "has no attribute" in report.message and f"call {holder}" in report.message, report.message
