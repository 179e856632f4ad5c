"""Device choice and seeding: the two lines every notebook starts with."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_DEVICES = ("cuda", "mps", "cpu")


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the device to run on.

    Order: an explicit ``prefer`` argument, then the ``LABS_DEVICE`` environment
    variable, then CUDA, Apple's MPS, and the CPU, whichever is available first.
    """
    # An empty LABS_DEVICE (e.g. `LABS_DEVICE= make lab`) means "not set": choose automatically.
    from_env = os.environ.get("LABS_DEVICE", "").strip()
    choice = prefer or from_env or None
    if choice is not None:
        choice = choice.strip().lower()
        if choice.split(":")[0] not in _DEVICES:
            where = "" if prefer else " (from the LABS_DEVICE environment variable)"
            raise ValueError(f"device must be one of {_DEVICES} (optionally 'cuda:N'), got {choice!r}{where}.")
        if choice.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but torch.cuda.is_available() is False.")
        if choice == "mps" and not torch.backends.mps.is_available():
            raise ValueError("device 'mps' was asked for, but torch.backends.mps.is_available() is False.")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that a cell reruns identically."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
