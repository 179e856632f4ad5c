"""labs_lib.metrics.autocorrelation: the FFT sums against the direct definition, an AR(1)
process against its exact autocorrelation φ^ℓ, the OU process against e^{-θ s}, and input checks."""

from __future__ import annotations

import math

import pytest
import torch

from labs_lib import OrnsteinUhlenbeck, autocorrelation
from labs_lib.simulators import EulerMaruyamaSimulator, time_grid


def direct(paths: torch.Tensor, max_lag: int) -> torch.Tensor:
    """The estimator written out as a loop over lags: the definition, without the FFT."""
    x = paths.double()
    c = x - x.mean()
    var = c.pow(2).mean()
    k, b = x.shape
    return torch.stack([(c[: k - lag] * c[lag:]).sum() / (b * (k - lag)) / var for lag in range(max_lag + 1)])


@pytest.mark.parametrize("k,batch,max_lag", [(2, 1, 1), (17, 3, 16), (64, 5, 10), (100, 1, 0)])
def test_matches_the_direct_sums(k, batch, max_lag, gen):
    paths = torch.randn(k, batch, generator=gen).cumsum(0)
    out = autocorrelation(paths, max_lag)
    assert out.shape == (max_lag + 1,) and out.dtype == torch.float64
    torch.testing.assert_close(out, direct(paths, max_lag), rtol=1e-10, atol=1e-12)
    assert out[0].item() == pytest.approx(1.0)


def test_accepts_trajectory_shaped_paths(gen):
    paths = torch.randn(30, 4, 1, generator=gen)
    torch.testing.assert_close(autocorrelation(paths, 5), autocorrelation(paths[..., 0], 5))


def test_ar1_matches_phi_to_the_lag(gen):
    # x_{j+1} = φ x_j + √(1-φ²) ε, started in its stationary law N(0, 1): ρ(ℓ) = φ^ℓ exactly.
    phi, k, b = 0.8, 400, 500
    x = torch.empty(k, b, dtype=torch.float64)
    x[0] = torch.randn(b, generator=gen, dtype=torch.float64)
    for j in range(1, k):
        x[j] = phi * x[j - 1] + math.sqrt(1 - phi**2) * torch.randn(b, generator=gen, dtype=torch.float64)
    rho = autocorrelation(x, 10)
    # 200,000 pairs per lag, strongly correlated in time: the standard error is about 0.005.
    torch.testing.assert_close(rho, phi ** torch.arange(11, dtype=torch.float64), rtol=0, atol=0.03)


def test_stationary_ou_decays_like_exp_minus_theta_s():
    torch.manual_seed(3)
    theta, sigma, h = 2.0, 1.0, 0.01
    ou = OrnsteinUhlenbeck(theta, sigma)
    x0 = math.sqrt(ou.stationary_variance) * torch.randn(1000, 1)
    states = EulerMaruyamaSimulator(ou).simulate_with_trajectory(x0, time_grid(400, 0.0, 4.0)).states
    rho = autocorrelation(states, 50)
    lags = h * torch.arange(51, dtype=torch.float64)
    torch.testing.assert_close(rho, torch.exp(-theta * lags), rtol=0, atol=0.04)


@pytest.mark.parametrize("paths,max_lag,error,match", [
    ([[1.0, 2.0]], 0, TypeError, "torch.Tensor"),
    (torch.randn(5), 1, ValueError, "at least 2 axes"),
    (torch.randn(5, 2, 2), 1, ValueError, "1-D paths"),
    (torch.arange(10).view(5, 2), 1, TypeError, "floating-point"),
    (torch.randn(5, 2), 5, ValueError, "max_lag"),
    (torch.randn(5, 2), -1, ValueError, "max_lag"),
    (torch.randn(5, 2), 1.0, ValueError, "max_lag"),
    (torch.ones(5, 2), 1, ValueError, "constant"),
    (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), 1, ValueError, "NaN"),
])
def test_bad_input_is_explained(paths, max_lag, error, match):
    with pytest.raises(error, match=match):
        autocorrelation(paths, max_lag)
