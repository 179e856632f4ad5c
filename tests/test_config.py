"""Device choice, seeding, and the shared input checks of ``labs_lib._validation``."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from labs_lib import get_device, seed_everything
from labs_lib._validation import (as_tensor, validate_batch, validate_positive, validate_positive_int,
                                  validate_shape_tail, validate_time_grid)

NO_ACCELERATOR = not torch.cuda.is_available() and not torch.backends.mps.is_available()


# --- get_device -------------------------------------------------------------------------------------


@pytest.mark.skipif(not NO_ACCELERATOR, reason="this machine has an accelerator")
def test_get_device_defaults_to_cpu(monkeypatch):
    monkeypatch.delenv("LABS_DEVICE", raising=False)
    assert get_device() == torch.device("cpu")


@pytest.mark.parametrize("value", ["cpu", "CPU", "Cpu"])
def test_labs_device_env_var_is_honoured(monkeypatch, value):
    monkeypatch.setenv("LABS_DEVICE", value)
    assert get_device() == torch.device("cpu")


@pytest.mark.parametrize("value", ["tpu", "gpu", "cuda0", "xla", "cpu cpu"])
def test_invalid_labs_device_is_rejected(monkeypatch, value):
    monkeypatch.setenv("LABS_DEVICE", value)
    with pytest.raises(ValueError, match=r"device must be one of \('cuda', 'mps', 'cpu'\) \(optionally 'cuda:N'\), got "
                                         + repr(value.lower())):
        get_device()


@pytest.mark.skipif(not NO_ACCELERATOR, reason="this machine has an accelerator")
@pytest.mark.parametrize("value", ["", "  "])
def test_empty_labs_device_means_automatic(monkeypatch, value):
    monkeypatch.setenv("LABS_DEVICE", value)
    assert get_device() == torch.device("cpu")


def test_invalid_labs_device_names_the_environment_variable(monkeypatch):
    monkeypatch.setenv("LABS_DEVICE", "tpu")
    with pytest.raises(ValueError, match="from the LABS_DEVICE environment variable"):
        get_device()


def test_explicit_preference_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("LABS_DEVICE", "tpu")  # would be an error
    assert get_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="got 'tpu'"):
        get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("how", ["argument", "env"])
@pytest.mark.parametrize("value", ["cuda", "cuda:1", "CUDA"])
def test_asking_for_cuda_without_cuda_errors(monkeypatch, how, value):
    monkeypatch.delenv("LABS_DEVICE", raising=False)
    if how == "env":
        monkeypatch.setenv("LABS_DEVICE", value)
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for, but torch\.cuda\.is_available\(\) is False"):
        get_device(value if how == "argument" else None)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available here")
def test_asking_for_mps_without_mps_errors():
    with pytest.raises(ValueError,
                       match=r"device 'mps' was asked for, but torch\.backends\.mps\.is_available\(\) is False"):
        get_device("mps")


# --- seed_everything ----------------------------------------------------------------------------------


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3)


@pytest.mark.parametrize("seed", [0, 1, 2024, 2**32 + 5])
def test_seed_everything_makes_python_numpy_and_torch_reproducible(seed):
    seed_everything(seed)
    a = _draws()
    seed_everything(seed)
    b = _draws()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    seed_everything(seed + 1)
    c = _draws()
    assert a[0] != c[0] and a[1] != c[1] and not torch.equal(a[2], c[2])


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got"):
        seed_everything(seed)


# --- the shared validation helpers ----------------------------------------------------------------------


def test_as_tensor():
    t = torch.zeros(2)
    assert as_tensor(t, "t") is t
    with pytest.raises(TypeError, match="t must be a torch.Tensor, got float"):
        as_tensor(1.0, "t")


@pytest.mark.parametrize("kwargs, x, exc, pattern", [
    ({}, torch.zeros(3), ValueError, r"x must have shape \(batch, \.\.\.\) with at least 2 axes, got \(3,\)\. "
                                     r"A single state needs a batch axis: x\.unsqueeze\(0\)"),
    ({"dim": 2}, torch.zeros(2), ValueError,
     r"x must have shape \(batch, 2\), got \(2,\)\. Did you forget the batch axis"),
    ({"dim": 2}, torch.zeros(4, 3), ValueError, r"x must have shape \(batch, 2\), got \(4, 3\)\.$"),
    ({"ndim": 3}, torch.zeros(4, 3), ValueError, r"x must have 3 axes, got shape \(4, 3\)"),
    ({"min_ndim": 3}, torch.zeros(4, 3), ValueError, "at least 3 axes"),
    ({}, torch.zeros(4, 3, dtype=torch.int32), TypeError, "x must be a floating-point tensor, got dtype torch.int32"),
    ({}, [[0.0]], TypeError, "x must be a torch.Tensor, got list"),
])
def test_validate_batch_errors(kwargs, x, exc, pattern):
    with pytest.raises(exc, match=pattern):
        validate_batch(x, "x", **kwargs)


@pytest.mark.parametrize("shape", [(1, 2), (5, 3), (4, 1, 3, 3)])
def test_validate_batch_accepts(shape):
    x = torch.zeros(shape, dtype=torch.float64)
    assert validate_batch(x) is x


def test_validate_time_grid_accepts_increasing_float_grids():
    ts = torch.tensor([0.0, 0.1, 0.5])
    assert validate_time_grid(ts) is ts


@pytest.mark.parametrize("value, kwargs, expected", [(1, {}, 1.0), (2.5, {}, 2.5), (0, {"allow_zero": True}, 0.0),
                                                      (torch.tensor(3.0), {}, 3.0)])
def test_validate_positive_accepts(value, kwargs, expected):
    out = validate_positive(value, "p", **kwargs)
    assert out == expected and isinstance(out, float)


@pytest.mark.parametrize("value, kwargs, exc, pattern", [
    (0, {}, ValueError, r"p must be > 0, got 0\.0"),
    (-1.0, {"allow_zero": True}, ValueError, r"p must be ≥ 0, got -1\.0"),
    (float("nan"), {}, ValueError, "p must be finite"),
    (float("inf"), {}, ValueError, "p must be finite"),
    (True, {}, TypeError, "p must be a real number, got bool"),
    ("1", {}, TypeError, "p must be a real number, got str"),
    (torch.ones(2), {}, ValueError, r"p must be a number, got a tensor of shape \(2,\)"),
])
def test_validate_positive_rejects(value, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        validate_positive(value, "p", **kwargs)


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "2", None])
def test_validate_positive_int_rejects(value):
    with pytest.raises(ValueError, match=r"k must be a positive integer, got"):
        validate_positive_int(value, "k")
    assert validate_positive_int(3, "k") == 3


def test_check_shape_tail():
    validate_shape_tail(torch.zeros(5, 1, 4, 4), (1, 4, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 1, 4, 4\), got \(5, 4, 4\)"):
        validate_shape_tail(torch.zeros(5, 4, 4), (1, 4, 4))
