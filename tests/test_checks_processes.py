"""The checkers of notebook 02 (Brownian motion, Ornstein–Uhlenbeck) tested both ways.

The references pass; an unfinished exercise gets "not implemented yet"; and each entry of a
catalogue of plausible wrong classes is rejected with a hint that names its mistake.
"""

from __future__ import annotations

import math

import pytest
import torch

from checker_cases import assert_named
from labs_lib import SDE, BrownianMotion, OrnsteinUhlenbeck
from labs_lib.checks import check_brownian_motion, check_ou_process

# --- references, and a few correct variants that must pass too ------------------------------


class BrownianAsTensor(SDE):
    """Correct: the diffusion as a tensor of x's shape instead of a float."""

    def __init__(self, sigma):
        self.sigma = sigma

    def drift(self, x, t):
        return x * 0

    def diffusion(self, x, t):
        return self.sigma * torch.ones_like(x)


class OUWithZeroDimSigma(SDE):
    """Correct: σ returned as a 0-dim tensor, drift written as x times a number."""

    def __init__(self, theta, sigma):
        self.theta, self.sigma = theta, sigma

    def drift(self, x, t):
        return x * (-self.theta)

    def diffusion(self, x, t):
        return torch.tensor(self.sigma)


@pytest.mark.parametrize("cls", [BrownianMotion, BrownianAsTensor])
def test_brownian_references_pass(cls):
    report = check_brownian_motion(cls)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")
    assert "(4, 1, 3, 3)" in report.message and "float64" in report.message


@pytest.mark.parametrize("cls", [OrnsteinUhlenbeck, OUWithZeroDimSigma])
def test_ou_references_pass(cls):
    report = check_ou_process(cls)
    assert report.passed is True, report.message
    assert report.message.endswith("all checks passed.")


class _BMStub(SDE):
    def __init__(self, sigma):
        raise NotImplementedError("Exercise: MyBrownianMotion.__init__")

    def drift(self, x, t):
        raise NotImplementedError

    def diffusion(self, x, t):
        raise NotImplementedError


class _OUStubMethods(SDE):
    """Constructor done, methods not yet."""

    def __init__(self, theta, sigma):
        self.theta, self.sigma = theta, sigma

    def drift(self, x, t):
        raise NotImplementedError("Exercise: MyOUProcess.drift")

    def diffusion(self, x, t):
        raise NotImplementedError("Exercise: MyOUProcess.diffusion")


def test_not_implemented_is_reported_kindly():
    for report in (check_brownian_motion(_BMStub), check_ou_process(_OUStubMethods)):
        assert report.passed is None
        assert "not implemented yet" in report.message
        assert "Traceback" not in report.message


def test_checks_leave_the_global_random_stream_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    check_brownian_motion(BrownianMotion)
    check_ou_process(OrnsteinUhlenbeck)
    torch.testing.assert_close(torch.rand(3), expected)


# --- Brownian motion: the catalogue of mistakes ---------------------------------------------


def brownian(drift=None, diffusion=None, init=None):
    """A Brownian-motion class with one method replaced by a wrong one."""

    class Wrong(SDE):
        def __init__(self, sigma):
            self.sigma = sigma
            if init is not None:
                init(self, sigma)

        def drift(self, x, t):
            return drift(self, x) if drift else torch.zeros_like(x)

        def diffusion(self, x, t):
            return diffusion(self, x) if diffusion else self.sigma

    return Wrong


def _drop_sigma(self, sigma):
    del self.sigma
    self.s = sigma


def _hard_code_sigma(self, sigma):
    self.sigma = 1.7


BROWNIAN_MISTAKES = {
    "drift σ (a number)": (brownian(drift=lambda s, x: s.sigma), "the drift is σ"),
    "drift σ·x": (brownian(drift=lambda s, x: s.sigma * x), "the drift is σ·x"),
    "drift scalar 0": (brownian(drift=lambda s, x: 0), "the values are right, but drift returned int 0"),
    "drift 0-dim tensor": (brownian(drift=lambda s, x: torch.tensor(0.0)), "must return a tensor of exactly x's shape"),
    "drift zeros(n, 1)": (brownian(drift=lambda s, x: torch.zeros(x.shape[0], 1)), "shape (6, 1)"),
    "drift zeros(x.shape) loses dtype": (brownian(drift=lambda s, x: torch.zeros(x.shape)), "dtype torch.float32"),
    "drift in place": (brownian(drift=lambda s, x: x.zero_()), "modified its input x in place"),
    "drift zeros on the CPU": (brownian(drift=lambda s, x: torch.zeros(x.shape, dtype=x.dtype)), "Create it on x.device"),
    "diffusion full on the CPU": (brownian(diffusion=lambda s, x: torch.full(x.shape, s.sigma, dtype=x.dtype)),
                                  "Create it on x.device"),
    "drift forgets return": (brownian(drift=lambda s, x: None), "forget `return`"),
    "diffusion σ²": (brownian(diffusion=lambda s, x: s.sigma**2), "σ², the variance"),
    "diffusion 1": (brownian(diffusion=lambda s, x: 1.0), "returned 1 whatever σ is"),
    "diffusion √σ": (brownian(diffusion=lambda s, x: math.sqrt(s.sigma)), "returned √σ"),
    "diffusion 0": (brownian(diffusion=lambda s, x: 0.0), "no noise at all"),
    "diffusion σ·x": (brownian(diffusion=lambda s, x: s.sigma * x), "does not depend on the state"),
    "diffusion per particle only": (brownian(diffusion=lambda s, x: torch.full((x.shape[0], 1), s.sigma)),
                                    "does not broadcast to x's shape"),
    "diffusion a string": (brownian(diffusion=lambda s, x: "sigma"), "must return a number"),
    "hard-coded σ": (brownian(init=_hard_code_sigma), "ignores the σ passed to the constructor"),
    "σ stored under another name": (brownian(init=_drop_sigma, diffusion=lambda s, x: s.s),
                                    "does not store σ as self.sigma"),
}


@pytest.mark.parametrize("name", list(BROWNIAN_MISTAKES))
def test_brownian_mistakes_are_caught(name):
    cls, expected = BROWNIAN_MISTAKES[name]
    report = check_brownian_motion(cls)
    assert_named(report, expected)


def test_brownian_rejects_non_sde_and_wrong_constructor():
    class NotAnSDE:
        def __init__(self, sigma):
            self.sigma = sigma

    report = check_brownian_motion(NotAnSDE)
    assert report.passed is False and "subclass of SDE" in report.message
    report = check_brownian_motion(BrownianMotion(1.0))  # an instance, not the class
    assert report.passed is False and "pass your class itself" in report.message

    class NoArgs(SDE):
        def __init__(self):
            self.sigma = 1.0

        def drift(self, x, t):
            return torch.zeros_like(x)

        def diffusion(self, x, t):
            return self.sigma

    report = check_brownian_motion(NoArgs)
    assert report.passed is False and "def __init__(self, sigma)" in report.message


def test_brownian_crash_is_reported_without_traceback():
    report = check_brownian_motion(brownian(diffusion=lambda s, x: s.sigmaa))
    assert report.passed is False
    assert "your code raised AttributeError" in report.message


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
    assert len(BROWNIAN_MISTAKES) >= 6 and len(OU_MISTAKES) >= 6
