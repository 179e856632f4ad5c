"""Lab 09's samplers against the number of network evaluations (NFE), with the exact field of a mixture.

The exact score of the Gaussian mixture of Labs 05, 06 and 09 stands in for the network, so that the
figures measure each sampler's own error: no training noise, nothing to retrain. Each cell is the
median floor ratio (:attr:`labs_lib.yardstick.QualityReport.floor_ratio`) over the seeds of the starting
noise, with how many of them pass the yardstick's verdict.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

import labs_lib as ll

NFES = (1, 2, 4, 8, 16, 32, 64, 128)
SCHEDULE_NFE = 16
# The tuned grid's exponent was chosen on seeds 11–15 of the starting noise; these it has not seen.
HELD_OUT_SEEDS = tuple(range(16, 26))


def _cell(run: Callable, n: int, yardstick: ll.Yardstick, seeds: tuple[int, ...]) -> str:
    reports = []
    for seed in seeds:
        torch.manual_seed(seed)  # DDPM's step noise
        x0 = torch.randn(yardstick.n, 2, generator=torch.Generator().manual_seed(seed))
        samples = run(x0, n)
        if samples is None:
            return "—"
        reports.append(yardstick(samples))
    ratio = statistics.median(r.floor_ratio for r in reports)
    passed = sum(r.passed for r in reports)
    return f"{ratio:.2f} ({passed}/{len(seeds)})"


def run(n_seeds: int = 5) -> str:
    start = time.perf_counter()
    target = ll.GaussianMixture.symmetric_2d(5, radius=4.0, std=0.5)
    path = ll.AffinePath(ll.CosineScheduler())
    exact = ll.GaussianMixturePath(path, target)
    yardstick = ll.Yardstick(target)
    seeds = tuple(range(11, 11 + n_seeds))
    lines = [f"**Lab 09's samplers against NFE, exact field** (the cosine path, the 5-mode mixture's exact score; "
             f"10,000 samples from each of {n_seeds} seeds of the starting noise, uniform steps in t from 1e-3). "
             "Each cell: the median floor ratio (largest figure over the worst of 20 exact sets; exact samples "
             "score 0.80 in median) and how many seeds pass the verdict.", "",
             "| sampler | " + " | ".join(f"{n} NFE" for n in NFES) + " |",
             "|---|" + "---:|" * len(NFES)]
    for name, sampler in ll.samplers_at_nfe(path, exact.score, "score").items():
        lines.append(f"| {name} | " + " | ".join(_cell(sampler, n, yardstick, seeds) for n in NFES) + " |")
    scheduler = path.scheduler
    grids = {
        "uniform in t": ll.uniform_time_grid,
        "uniform in λ": lambda n: ll.log_snr_time_grid(scheduler, n),
        "EDM (σ 0.002–80, ρ = 7)": lambda n: ll.karras_time_grid(scheduler, n),
        "EDM (σ 0.02–20, ρ = 7)": lambda n: ll.karras_time_grid(scheduler, n, sigma_min=0.02, sigma_max=20.0),
        "t = u^1.2 (tuned on seeds 11–15)": lambda n: ll.power_time_grid(n, rho=1.2),
    }
    names = ("Heun (PF-ODE)", "DDIM", "DPM-Solver++(2M)")
    lines += ["", f"**Step schedules at {SCHEDULE_NFE} NFE** (same samples and cells; the last two rows on "
              f"{len(HELD_OUT_SEEDS)} other seeds)", "",
              "| schedule | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, grid in grids.items():
        runs = ll.samplers_at_nfe(path, exact.score, "score", grid)
        lines.append(f"| {label} | " + " | ".join(_cell(runs[s], SCHEDULE_NFE, yardstick, seeds) for s in names) + " |")
    held_out = HELD_OUT_SEEDS
    for label in ("uniform in t", "t = u^1.2 (tuned on seeds 11–15)"):
        runs = ll.samplers_at_nfe(path, exact.score, "score", grids[label])
        lines.append(f"| {label.split(' (')[0]}, held-out seeds {held_out[0]}–{held_out[-1]} | "
                     + " | ".join(_cell(runs[s], SCHEDULE_NFE, yardstick, held_out) for s in names) + " |")
    lines.append(f"\n*These two tables: {time.perf_counter() - start:.0f} s.*")
    return "\n".join(lines)
