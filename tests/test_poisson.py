"""Poisson flow: the field of point charges against its closed forms (one charge, far away, symmetry),
the prior against its radial law, and the backward ODE against where its field lines must end."""

from __future__ import annotations

import math

import pytest
import torch

import labs_lib as ll
from labs_lib.poisson import PoissonFlowODE, augment, poisson_field, poisson_prior, poisson_sample, poisson_time_grid

# --- the field ----------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_one_charge_field_is_radial_with_magnitude_r_to_the_minus_d_minus_1(gen, d):
    c = torch.randn(1, d, generator=gen, dtype=torch.float64)
    x = c + torch.randn(30, d, generator=gen, dtype=torch.float64) * 3
    e = poisson_field(x, c)
    r = (x - c).norm(dim=1, keepdim=True)
    assert torch.allclose(e, (x - c) / r * r ** (1 - d), rtol=1e-12)  # direction (x - c)/r, size r^{-(D-1)}


def test_the_field_is_the_mean_of_the_charges_fields(gen):
    charges = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    x = 4 + torch.randn(5, 3, generator=gen, dtype=torch.float64)
    each = torch.stack([poisson_field(x, c[None]) for c in charges])
    assert torch.allclose(poisson_field(x, charges), each.mean(0), rtol=1e-12)
    # the same charges twice: the same field (a mean, not a sum)
    assert torch.allclose(poisson_field(x, charges.repeat(2, 1)), poisson_field(x, charges), rtol=1e-12)


def test_far_away_many_charges_look_like_one_at_their_centre(gen):
    charges = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    direction = torch.nn.functional.normalize(torch.randn(20, 3, generator=gen, dtype=torch.float64), dim=1)
    errors = []
    for r in (1e2, 1e3):
        x = charges.mean(0) + r * direction
        one = poisson_field(x, charges.mean(0, keepdim=True))
        errors.append(float(((poisson_field(x, charges) - one).norm(dim=1) / one.norm(dim=1)).max()))
    # about the centre the dipole term vanishes: the relative error falls like r^-2 (100x per decade)
    assert errors[0] < 1e-3 and errors[1] < errors[0] / 50


def test_the_field_of_charges_on_the_plane_points_up_above_it_and_is_divergence_free(gen):
    data = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    x = augment(torch.randn(40, 2, generator=gen, dtype=torch.float64), torch.rand(40, generator=gen).double() + 0.1)
    e = poisson_field(x, augment(data))
    assert bool((e[:, -1] > 0).all())
    # away from the charges the field is divergence-free: Gauss's law with no charge inside
    assert ll.divergence(lambda y, t: poisson_field(y, augment(data)), x, 0.0).abs().max() < 1e-9
    # mirror symmetry: the field at (x, -z) is that at (x, z) with E_z flipped
    mirrored = poisson_field(x * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64), augment(data))
    assert torch.allclose(mirrored, e * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64), rtol=1e-12)


def test_the_field_rejects_bad_input():
    with pytest.raises(ValueError, match="same number of coordinates"):
        poisson_field(torch.zeros(3, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="sits exactly on a charge"):
        poisson_field(torch.zeros(3, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="2 axes"):
        poisson_field(torch.zeros(3), torch.zeros(1, 3))


# --- the prior and the ODE -------------------------------------------------------------------------


def test_the_prior_has_the_radial_law_of_uniform_hemisphere_directions():
    # For N = 2: P(|x - c| < r) = 1 - z / sqrt(r² + z²) (the solid angle of the cone through the circle)
    z, n = 5.0, 40_000
    x = poisson_prior(n, 2, z, center=torch.tensor([1.0, -2.0]), generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64)
    r = (x - torch.tensor([1.0, -2.0], dtype=torch.float64)).norm(dim=1)
    for radius in (2.0, 5.0, 15.0):
        expected = 1 - z / math.sqrt(radius**2 + z**2)
        se = math.sqrt(expected * (1 - expected) / n)
        assert abs(float((r < radius).double().mean()) - expected) < 5 * se


def test_with_one_charge_the_field_lines_are_straight_and_land_on_it(gen):
    charge = torch.tensor([[0.7, -0.4]], dtype=torch.float64)
    x = poisson_prior(50, 2, 30.0, center=charge[0], generator=gen, dtype=torch.float64)
    ts = poisson_time_grid(200, 30.0, 1e-4, dtype=torch.float64)
    out = ll.HeunSimulator(PoissonFlowODE(charge)).simulate(x, ts)
    # A radial line from the charge: dx/ds = -(x - c) exactly, so x - c shrinks in proportion to z,
    # from z = 30 to z = 1e-4; each Heun step multiplies it by 1 - h + h²/2 (relative error ~ n h³/6 = 0.8%).
    h = float(ts[1] - ts[0])
    assert torch.allclose(out - charge, (x - charge) * (1 - h + h**2 / 2) ** 200, rtol=1e-9, atol=1e-15)
    assert torch.allclose(out - charge, (x - charge) * (1e-4 / 30.0), rtol=0.02)


def test_the_exact_flow_of_a_finite_data_set_lands_on_its_points():
    data = torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples = poisson_sample(data, 300, z_min=1e-3, n_steps=80, generator=torch.Generator().manual_seed(2))
    nearest = torch.cdist(samples, data).min(1).values
    spacing = torch.cdist(data, data).fill_diagonal_(float("inf")).min(1).values
    # memorisation: the samples sit within about z_min of a data point, far closer than the points' spacing
    assert float(nearest.median()) < 0.01 < 0.05 * float(spacing.median())
    # and every data point attracts some of them (the flow does not collapse onto one point)
    assert len(set(torch.cdist(samples, data).argmin(1).tolist())) > 25


def test_the_ode_accepts_one_time_per_sample(gen):
    data = torch.randn(10, 2, generator=gen)
    x, t = torch.randn(6, 2, generator=gen), torch.rand(6, generator=gen)
    ode = PoissonFlowODE(data)
    per_sample = ode.drift(x, t)
    one_by_one = torch.cat([ode.drift(x[i:i + 1], t[i]) for i in range(6)])
    assert torch.allclose(per_sample, one_by_one)


def test_time_grid_and_sampler_reject_bad_input():
    with pytest.raises(ValueError, match="z_min must be below z_max"):
        poisson_time_grid(10, 1.0, 2.0)
    with pytest.raises(ValueError, match="method"):
        poisson_sample(torch.zeros(3, 2), 5, method="rk4")
    with pytest.raises(ValueError, match="z_max"):
        poisson_prior(5, 2, -1.0)
