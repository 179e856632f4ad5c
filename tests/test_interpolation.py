"""Spherical interpolation of noise vectors (labs_lib.interpolation), against its geometry."""

import math

import pytest
import torch

import labs_lib as ll


def _pair(shape=(5, 3), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=torch.float64),
            torch.randn(shape, generator=gen, dtype=torch.float64))


def test_endpoints_are_the_two_vectors():
    a, b = _pair((4, 1, 3, 3))
    assert torch.allclose(ll.slerp(a, b, 0.0), a)
    assert torch.allclose(ll.slerp(a, b, 1.0), b)


def test_unit_vectors_stay_on_the_sphere_at_constant_angular_speed():
    a, b = _pair((6, 8))
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    theta = torch.acos((a * b).sum(1))
    for s in (0.1, 0.25, 0.5, 0.9):
        z = ll.slerp(a, b, s)
        assert torch.allclose(z.norm(dim=1), torch.ones(6, dtype=torch.float64))
        # the angle to z_a is s θ and to z_b (1 − s) θ: the great circle, walked at constant speed
        assert torch.allclose(torch.acos((z * a).sum(1).clamp(-1, 1)), s * theta)
        assert torch.allclose(torch.acos((z * b).sum(1).clamp(-1, 1)), (1 - s) * theta)


def test_orthogonal_vectors_of_equal_norm_give_the_circle():
    a = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    s = 1 / 3
    expected = 2 * torch.tensor([[math.cos(math.pi / 6), math.sin(math.pi / 6)]], dtype=torch.float64)
    assert torch.allclose(ll.slerp(a, b, s), expected)


def test_gaussian_noise_keeps_its_norm_where_the_line_loses_it():
    # in d = 64 independent standard normal vectors have norm ≈ 8 and are nearly orthogonal
    a, b = _pair((2000, 64), seed=1)
    mid_line = (0.5 * a + 0.5 * b).norm(dim=1).mean() / 8
    mid_circle = ll.slerp(a, b, 0.5).norm(dim=1).mean() / 8
    assert abs(mid_line - math.sqrt(0.5)) < 0.02
    assert abs(mid_circle - 1.0) < 0.02


def test_one_fraction_per_pair():
    a, b = _pair((3, 4))
    s = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    z = ll.slerp(a, b, s)
    assert torch.allclose(z[0], a[0]) and torch.allclose(z[2], b[2])
    assert torch.allclose(z[1], ll.slerp(a[1:2], b[1:2], 0.5)[0])


def test_parallel_vectors_fall_back_to_the_line():
    a = torch.tensor([[1.0, 2.0, 3.0]])
    b = 2 * a
    z = ll.slerp(a, b, 0.25)
    assert torch.isfinite(z).all()
    assert torch.allclose(z, 0.75 * a + 0.25 * b)


def test_bad_inputs_say_what_was_expected():
    a, b = _pair((3, 2))
    with pytest.raises(ValueError, match="same shape"):
        ll.slerp(a, b[:2], 0.5)
    with pytest.raises(ValueError, match="shape \\(batch,\\)"):
        ll.slerp(a, b, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="nonzero"):
        ll.slerp(torch.zeros(3, 2), b.float(), 0.5)
    with pytest.raises(ValueError, match="opposite"):
        ll.slerp(a, -a, 0.5)
    with pytest.raises(ValueError, match="finite"):
        ll.slerp(a, b, float("nan"))
    with pytest.raises(TypeError, match="torch.Tensor"):
        ll.slerp([1.0, 2.0], b, 0.5)
    with pytest.raises(ValueError, match="batch"):
        ll.slerp(torch.randn(3), torch.randn(3), 0.5)
