"""Shared fixtures for the labs_lib test suite.

Layout: ``test_<module>.py`` tests the library module of that name (``test_metrics.py`` holds every
metric, autocorrelation and the multi-set sample quality included); ``test_checks_<module>.py``
tests the checkers of ``labs_lib/checks/<module>.py``, and ``test_checks_framework.py`` what they
share (dtype, device, the student's own errors, refusals); the tooling of ``labs_lib/authoring``
is tested in ``test_authoring.py`` (generator and command line), ``test_front_matter.py`` (front
matter and slides), ``test_course_map.py`` (figures and run times) and ``test_execution.py``;
``test_notebooks.py`` runs every student notebook; ``course_files.py`` builds small courses.

Every test is seeded (a ``torch.Generator`` or ``torch.manual_seed``), so that a statistical
tolerance, once justified by its standard error, can never flake.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display, no GUI backend

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread. The tensors here are small to medium, and on a shared 2-core machine
# PyTorch's second thread mostly spins waiting for the first: measured on the simulator
# statistics tests, 1 thread took 9 s of CPU time and 2 threads 61 s (wall 35 s vs 190 s).
torch.set_num_threads(1)


@pytest.fixture
def gen() -> torch.Generator:
    """A freshly seeded CPU generator."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture(autouse=True)
def _seed_and_close_figures():
    """Seed the global stream for code that draws from it (Euler–Maruyama uses
    ``torch.randn_like``), and close every figure a test opened."""
    torch.manual_seed(0)
    yield
    plt.close("all")
