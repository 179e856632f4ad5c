"""labs_lib's simulators against a hand-written loop, torchsde and torchdiffeq.

Cases (from the course's benchmark issue):

* OU SDE, 10,000 particles in 2-D, 1,000 Euler–Maruyama steps on [0, 1];
* Euler and Heun on an ODE with a cheap drift (the same size), and on an ODE whose drift is
  an MLP (2,000 particles, 100 steps);
* each ``labs_lib`` case also with a trajectory recorded every 10th step.
"""

from __future__ import annotations

import math

import torch

import labs_lib as ll

from .timing import interleaved, table

try:  # optional extra: pip install -e '.[bench]'
    import torchsde
except ImportError:
    torchsde = None
try:
    import torchdiffeq
except ImportError:
    torchdiffeq = None

MISSING = "not installed (`pip install -e '.[bench]'` adds it)"
PLAIN, PLAIN_TRAJ = "plain loop", "plain loop, every 10th step kept"
LL_TRAJ = "labs_lib simulate_with_trajectory(every=10)"
# A recorded trajectory is compared with a hand-written loop that records one too.
PAIRS = {LL_TRAJ: PLAIN_TRAJ}


def _plain_em(x, ts, theta, sigma, every=None):
    hs = torch.diff(ts).tolist()
    states = None
    if every:
        states = torch.empty((len(hs) // every + 1, *x.shape))
        states[0] = x
    for i, h in enumerate(hs):
        x = x + h * (-theta * x) + sigma * math.sqrt(h) * torch.randn_like(x)
        if every and (i + 1) % every == 0:
            states[(i + 1) // every] = x
    return x if states is None else states


class _TorchsdeOU(torch.nn.Module):
    noise_type, sde_type = "diagonal", "ito"

    def __init__(self, theta, sigma):
        super().__init__()
        self.theta, self.sigma = theta, sigma

    def f(self, t, y):
        return -self.theta * y

    def g(self, t, y):
        return torch.full_like(y, self.sigma)


def ou_case(rounds: int) -> str:
    theta, sigma, n, steps = 1.0, 1.0, 10_000, 1_000
    x0 = torch.randn(n, 2)
    ts = ll.time_grid(steps)
    sim = ll.EulerMaruyamaSimulator(ll.OrnsteinUhlenbeck(theta, sigma))
    cases = {
        PLAIN: lambda: _plain_em(x0, ts, theta, sigma),
        "labs_lib simulate": lambda: sim.simulate(x0, ts),
        PLAIN_TRAJ: lambda: _plain_em(x0, ts, theta, sigma, every=10),
        LL_TRAJ: lambda: sim.simulate_with_trajectory(x0, ts, every=10),
    }
    note = ""
    if torchsde is not None:
        sde = _TorchsdeOU(theta, sigma)
        cases["torchsde sdeint(method='euler')"] = lambda: torchsde.sdeint(
            sde, x0, torch.tensor([0.0, 1.0]), method="euler", dt=1 / steps)
    else:
        note = f"\n\ntorchsde: {MISSING}."
    with torch.no_grad():
        timings = interleaved(cases, PLAIN, rounds, baselines=PAIRS)
    return table(f"OU SDE, {n:,} particles in 2-D, {steps:,} Euler–Maruyama steps", timings) + note


def _plain_ode(drift, x, ts, method, every=None):
    hs = torch.diff(ts).tolist()
    times = ts.unbind()
    states = None
    if every:
        states = torch.empty((len(hs) // every + 1, *x.shape))
        states[0] = x
    for i, h in enumerate(hs):
        t = times[i]
        u = drift(x, t)
        if method == "euler":
            x = x + h * u
        else:
            x = x + 0.5 * h * (u + drift(x + h * u, t + h))
        if every and (i + 1) % every == 0:
            states[(i + 1) // every] = x
    return x if states is None else states


def ode_case(name: str, ode: ll.ODE, n: int, steps: int, rounds: int) -> str:
    x0 = torch.randn(n, 2)
    ts = ll.time_grid(steps)
    out = []
    for method, cls, tde in [("euler", ll.EulerSimulator, "euler"), ("heun", ll.HeunSimulator, "heun2")]:
        sim = cls(ode)
        # The loop's method, simulator and torchdiffeq method are bound as defaults, so each case
        # keeps its own iteration's (they are all timed within it, but that should not need reading).
        cases = {
            PLAIN: lambda method=method: _plain_ode(ode.drift, x0, ts, method),
            "labs_lib simulate": lambda sim=sim: sim.simulate(x0, ts),
            PLAIN_TRAJ: lambda method=method: _plain_ode(ode.drift, x0, ts, method, every=10),
            LL_TRAJ: lambda sim=sim: sim.simulate_with_trajectory(x0, ts, every=10),
        }
        if torchdiffeq is not None:
            cases[f"torchdiffeq odeint(method='{tde}')"] = lambda tde=tde: torchdiffeq.odeint(
                lambda t, y: ode.drift(y, t), x0, torch.tensor([0.0, 1.0]), method=tde,
                options={"step_size": 1 / steps})
        with torch.no_grad():
            timings = interleaved(cases, PLAIN, rounds, baselines=PAIRS)
        out.append(table(f"{method.capitalize()}, {name}: {n:,} particles, {steps:,} steps", timings))
    if torchdiffeq is None:
        out.append(f"torchdiffeq: {MISSING}.")
    return "\n\n".join(out)


def run(rounds: int = 7) -> str:
    torch.manual_seed(0)
    mlp = ll.MLPField(2, (128, 128, 128)).eval()
    sections = [
        ou_case(rounds),
        ode_case("cheap drift (linear spiral)", ll.LinearODE.spiral(), 10_000, 1_000, rounds),
        ode_case(f"MLP drift ({mlp.n_parameters():,} parameters)", ll.VectorFieldODE(mlp), 2_000, 100, rounds),
    ]
    return "\n\n".join(sections)
