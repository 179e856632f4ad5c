"""The checkers of notebook 02 (Brownian paths, Ornstein–Uhlenbeck) tested both ways.

The references pass; an unfinished exercise gets "not implemented yet"; and each entry of a
catalogue of plausible wrong answers is rejected with a hint that names its mistake.
"""

from __future__ import annotations

import math

import pytest
import torch
from checker_cases import assert_leaves_random_stream, assert_named

import labs_lib as ll
from labs_lib import SDE, OrnsteinUhlenbeck
from labs_lib.checks import check_brownian_paths, check_ou_process

# --- references, and a few correct variants that must pass too ------------------------------


class OUWithZeroDimSigma(SDE):
    """Correct: σ returned as a 0-dim tensor, drift written as x times a number."""

    def __init__(self, theta, sigma):
        self.theta, self.sigma = theta, sigma

    def drift(self, x, t):
        return x * (-self.theta)

    def diffusion(self, x, t):
        return torch.tensor(self.sigma)


@pytest.mark.parametrize("cls", [OrnsteinUhlenbeck, OUWithZeroDimSigma])
def test_ou_references_pass(cls):
    report = check_ou_process(cls)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")


class _OUStubMethods(SDE):
    """Constructor done, methods not yet."""

    def __init__(self, theta, sigma):
        self.theta, self.sigma = theta, sigma

    def drift(self, x, t):
        raise NotImplementedError("Exercise: MyOUProcess.drift")

    def diffusion(self, x, t):
        raise NotImplementedError("Exercise: MyOUProcess.diffusion")


def test_not_implemented_is_reported_kindly():
    def paths_stub(n_paths, n_steps, T):
        raise NotImplementedError("Exercise: my_brownian_paths")

    for report in (check_brownian_paths(paths_stub), check_ou_process(_OUStubMethods)):
        assert report.passed is None
        assert "not implemented yet" in report.message
        assert "Traceback" not in report.message


def test_checks_leave_the_global_random_stream_alone():
    assert_leaves_random_stream((check_brownian_paths, brownian_paths), (check_ou_process, OrnsteinUhlenbeck))


# --- Brownian paths: the reference, other right answers, the catalogue of mistakes ---------------


def brownian_paths(n_paths, n_steps, T):
    """The notebook's solution: W_0 = 0, then the running sum of √h·ε steps."""
    h = T / n_steps
    steps = math.sqrt(h) * torch.randn(n_steps, n_paths)
    return torch.cat([torch.zeros(1, n_paths), steps.cumsum(dim=0)])


def brownian_paths_by_loop(n_paths, n_steps, T):
    """Right too: a loop over the steps, float64, paths drawn as rows then transposed."""
    h = T / n_steps
    eps = torch.randn(n_paths, n_steps, dtype=torch.float64).T
    w = [torch.zeros(n_paths, dtype=torch.float64)]
    for k in range(n_steps):
        w.append(w[-1] + h**0.5 * eps[k])
    return torch.stack(w)


def brownian_paths_by_simulator(n_paths, n_steps, T):
    """Right too: Euler–Maruyama on ll.BrownianMotion, which is exact for it."""
    traj = ll.EulerMaruyamaSimulator(ll.BrownianMotion(1.0)).simulate_with_trajectory(
        torch.zeros(n_paths, 1), ll.time_grid(n_steps, 0.0, T))
    return traj.states[..., 0]


@pytest.mark.parametrize("fn", [brownian_paths, brownian_paths_by_loop, brownian_paths_by_simulator])
def test_brownian_paths_right_answers_pass(fn):
    report = check_brownian_paths(fn)
    assert report.passed is True, report.message


def _paths(scale=lambda h: math.sqrt(h), h_of=lambda n, T: T / n, draw=torch.randn, start=True, cumsum=True,
           same_for_all=False, transpose=False, ret=True, seed=None, shift=0.0):
    """A paths function with one mistake, chosen by the arguments."""

    def fn(n_paths, n_steps, T):
        if seed is not None:
            torch.manual_seed(seed)
        h = h_of(n_steps, T)
        eps = draw(n_steps, 1 if same_for_all else n_paths).expand(n_steps, n_paths) + shift
        steps = scale(h) * eps
        values = steps.cumsum(0) if cumsum else steps
        paths = torch.cat([torch.zeros(1, n_paths), values]) if start else values
        if not ret:
            return None
        return paths.T if transpose else paths

    return fn


BROWNIAN_PATH_MISTAKES = {
    "h for √h": (_paths(scale=lambda h: h), "variance h², not h"),
    "no scaling": (_paths(scale=lambda h: 1.0), "variance 1, not h"),
    "h = 1/n_steps": (_paths(h_of=lambda n, T: 1 / n), "the step is 1/n_steps, not T/n_steps"),
    "h^(1/4)": (_paths(scale=lambda h: h**0.25), "variance √h, not h"),
    "uniform steps": (_paths(draw=lambda *s: (torch.rand(*s) - 0.5) * math.sqrt(12)), "not Gaussian"),
    "signs": (_paths(draw=lambda *s: torch.randint(0, 2, s).float() * 2 - 1), "not Gaussian"),
    "no running sum": (_paths(cumsum=False), "not a running sum"),
    "no start row": (_paths(start=False), "include the start W_0 = 0"),
    "transposed": (_paths(transpose=True), "rows are times and columns are paths"),
    "one path for all": (_paths(same_for_all=True), "all paths are the same"),
    "drift in the steps": (_paths(shift=0.3), "do not have mean 0"),
    "no return": (_paths(ret=False), "Did you forget `return`?"),
    "seeded inside": (_paths(seed=0), "do not seed inside your function"),
}


@pytest.mark.parametrize("name", list(BROWNIAN_PATH_MISTAKES))
def test_brownian_path_mistakes_are_caught(name):
    fn, expected = BROWNIAN_PATH_MISTAKES[name]
    assert_named(check_brownian_paths(fn), expected)


def test_brownian_paths_drawn_time_by_time_are_named():
    def fn(n_paths, n_steps, T):
        times = torch.linspace(0, T, n_steps + 1)[:, None]
        return times.sqrt() * torch.randn(n_steps + 1, n_paths)  # the right marginals, no running sum

    assert_named(check_brownian_paths(fn), "each W_t was drawn on its own")


def test_brownian_paths_not_starting_at_zero_are_named():
    def fn(n_paths, n_steps, T):
        return 1.0 + brownian_paths(n_paths, n_steps, T)

    assert_named(check_brownian_paths(fn), "every path starts at W_0 = 0")


def test_brownian_paths_rejects_a_class():
    report = check_brownian_paths(OrnsteinUhlenbeck)
    assert report.passed is False and "pass your function itself" in report.message


# --- Ornstein–Uhlenbeck: the catalogue of mistakes -------------------------------------------


def ou(drift=None, diffusion=None, init=None, order=("theta", "sigma")):
    """An OU class with one part replaced by a wrong one."""

    class Wrong(SDE):
        def __init__(self, a, b):
            values = dict(zip(order, (a, b)))
            self.theta, self.sigma = values["theta"], values["sigma"]
            if init is not None:
                init(self, a, b)

        def drift(self, x, t):
            return drift(self, x) if drift else -self.theta * x

        def diffusion(self, x, t):
            return diffusion(self, x) if diffusion else self.sigma

    return Wrong


def _hard_code_theta(self, theta, sigma):
    self.theta = 2.0


def _hard_code_sigma_ou(self, theta, sigma):
    self.sigma = 1.0 + 0.25


OU_MISTAKES = {
    "drift +θx": (ou(drift=lambda s, x: s.theta * x), "wrong sign"),
    "drift −x": (ou(drift=lambda s, x: -x), "θ is missing"),
    "drift −θ (tensor)": (ou(drift=lambda s, x: torch.full_like(x, -s.theta)), "the constant −θ"),
    "drift −θ (a number)": (ou(drift=lambda s, x: -s.theta), "the constant −θ"),
    "drift −σx": (ou(drift=lambda s, x: -s.sigma * x), "uses σ where θ belongs"),
    "arguments swapped": (ou(order=("sigma", "theta")), "uses σ where θ belongs"),
    "drift −x/θ": (ou(drift=lambda s, x: -x / s.theta), "−x/θ"),
    "drift 0": (ou(drift=lambda s, x: torch.zeros_like(x)), "that is Brownian motion"),
    "drift −θx + σ": (ou(drift=lambda s, x: -s.theta * x + s.sigma), "the noise does not belong in the drift"),
    "drift summed over coordinates": (ou(drift=lambda s, x: -s.theta * x.sum(-1, keepdim=True)),
                                      "must return a tensor of exactly x's shape"),
    "drift in place": (ou(drift=lambda s, x: x.mul_(-s.theta)), "modified its input x in place"),
    "drift through a CPU constant": (ou(drift=lambda s, x: -torch.full(x.shape, s.theta, dtype=x.dtype) * x),
                                     "Create it on x.device"),
    "diffusion ones on the CPU": (ou(diffusion=lambda s, x: s.sigma * torch.ones(x.shape, dtype=x.dtype)),
                                  "Create it on x.device"),
    "drift hard-coded θ": (ou(init=_hard_code_theta), "ignores the θ passed to the constructor"),
    "diffusion σ/√(2θ)": (ou(diffusion=lambda s, x: s.sigma / math.sqrt(2 * s.theta)),
                          "standard deviation of the stationary law"),
    "diffusion σ²/(2θ)": (ou(diffusion=lambda s, x: s.sigma**2 / (2 * s.theta)), "variance of the stationary law"),
    "diffusion σ²": (ou(diffusion=lambda s, x: s.sigma**2), "σ², the variance"),
    "diffusion 1": (ou(diffusion=lambda s, x: 1.0), "returned 1 whatever σ is"),
    "diffusion √σ": (ou(diffusion=lambda s, x: s.sigma**0.5), "returned √σ"),
    "diffusion θ": (ou(diffusion=lambda s, x: s.theta), "θ and σ are swapped"),
    "diffusion −σ": (ou(diffusion=lambda s, x: -s.sigma), "returned −σ"),
    "diffusion is the drift": (ou(diffusion=lambda s, x: -s.theta * x), "the drift"),
    "diffusion hard-coded σ": (ou(init=_hard_code_sigma_ou), "ignores the σ passed to the constructor"),
    "drift a number": (ou(drift=lambda s, x: 0), "drift returned int 0"),
    "drift a 0-dim tensor": (ou(drift=lambda s, x: torch.tensor(0.0)), "must return a tensor of exactly x's shape"),
    "drift loses dtype": (ou(drift=lambda s, x: -s.theta * x.float()), "dtype torch.float32"),
    "drift forgets return": (ou(drift=lambda s, x: None), "forget `return`"),
    "diffusion per particle only": (ou(diffusion=lambda s, x: torch.full((x.shape[0], 1), s.sigma)),
                                    "does not broadcast to x's shape"),
    "diffusion a string": (ou(diffusion=lambda s, x: "sigma"), "must return a number"),
    "diffusion 0": (ou(diffusion=lambda s, x: 0.0), "without noise"),
    "diffusion σ·x": (ou(diffusion=lambda s, x: s.sigma * x), "ranges from"),
    "diffusion of shape (batch, batch)": (ou(diffusion=lambda s, x: s.sigma * torch.ones(x.shape[0], x.shape[0])),
                                          "does not broadcast to x's shape"),
}


@pytest.mark.parametrize("name", list(OU_MISTAKES))
def test_ou_mistakes_are_caught(name):
    cls, expected = OU_MISTAKES[name]
    report = check_ou_process(cls)
    assert_named(report, expected)


def test_ou_requires_stored_parameters():
    class Renamed(SDE):
        def __init__(self, theta, sigma):
            self.rate, self.noise = theta, sigma

        def drift(self, x, t):
            return -self.rate * x

        def diffusion(self, x, t):
            return self.noise

    report = check_ou_process(Renamed)
    assert report.passed is False
    assert "does not store θ as self.theta" in report.message
    # Everything before the attributes was verified and says so.
    assert report.message.count("✓") == 2


def test_the_catalogues_are_large_enough():
    assert len(BROWNIAN_PATH_MISTAKES) >= 6 and len(OU_MISTAKES) >= 6


def test_ou_rejects_non_sde_and_wrong_constructor():
    class NotAnSDE:
        def __init__(self, theta, sigma):
            self.theta, self.sigma = theta, sigma

    assert_named(check_ou_process(NotAnSDE), "subclass of SDE")
    assert_named(check_ou_process(OrnsteinUhlenbeck(1.0, 1.0)), "pass your class itself")  # an instance

    class OneArg(SDE):
        def __init__(self, theta):
            self.theta, self.sigma = theta, 1.0

        def drift(self, x, t):
            return -self.theta * x

        def diffusion(self, x, t):
            return self.sigma

    assert_named(check_ou_process(OneArg), "def __init__(self, theta, sigma)")


def test_ou_crash_is_reported_without_traceback():
    assert_named(check_ou_process(ou(diffusion=lambda s, x: s.sigmaa)), "your code raised AttributeError")
