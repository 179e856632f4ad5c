"""labs_lib: the small library behind the Flow Matching & Diffusion Labs.

It grows with the course, chapter by chapter:

=====================  ==========================================================
module                 what it holds
=====================  ==========================================================
``config``             device choice and the seeding helper
``distributions``      ``Sampleable``, ``Density``, Gaussian, Gaussian mixture, toy 2-D data
``dynamics``           ``ODE``, ``SDE``, linear ODE, Brownian motion, OU, Langevin
``simulators``         Euler, Heun, Euler–Maruyama, recorded trajectories
``metrics``            W2, energy distance, MMD, and their noise floors
``plotting``           densities, samples, vector fields, trajectories, animations
``checks``             one checker per exercise
``authoring``          the student-notebook generator
=====================  ==========================================================
"""

from .config import get_device, seed_everything
from .distributions import Checkerboard, Circles, Density, Gaussian, GaussianMixture, Moons, Sampleable
from .dynamics import ODE, SDE, BrownianMotion, LangevinSDE, LinearODE, OrnsteinUhlenbeck, expand_time
from .metrics import energy_distance, loglog_slope, mmd_rbf, noise_floor, sample_quality, wasserstein2
from .simulators import (EulerMaruyamaSimulator, EulerSimulator, HeunSimulator, ODESimulator, SDESimulator,
                         Simulator, Trajectory, time_grid)

__version__ = "0.1.0"

__all__ = [
    "get_device", "seed_everything",
    "Sampleable", "Density", "Gaussian", "GaussianMixture", "Moons", "Circles", "Checkerboard",
    "ODE", "SDE", "LinearODE", "BrownianMotion", "OrnsteinUhlenbeck", "LangevinSDE", "expand_time",
    "Simulator", "ODESimulator", "SDESimulator", "EulerSimulator", "HeunSimulator",
    "EulerMaruyamaSimulator", "Trajectory", "time_grid",
    "wasserstein2", "energy_distance", "loglog_slope", "mmd_rbf", "noise_floor", "sample_quality",
]
