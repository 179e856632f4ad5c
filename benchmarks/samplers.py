"""Sampler speed and quality: a trained 2-D flow model against the number of steps."""

from __future__ import annotations

import statistics
import time

import torch

import labs_lib as ll


def run(n_samples: int = 10_000, train_steps: int = 3000, rounds: int = 5) -> str:
    data = ll.GaussianMixture.symmetric_2d(5, radius=4.0, std=0.5)
    path = ll.AffinePath(ll.CondOTScheduler())
    model = ll.MLPField(2, (128, 128, 128))
    hist = ll.ConditionalFlowMatchingTrainer(model, path, data).train(
        train_steps, batch_size=256, lr=2e-3, seed=0, device="cpu", progress=False)
    ode = ll.VectorFieldODE(model)
    yardstick = ll.Yardstick(data, n=n_samples)
    x0 = torch.randn(n_samples, 2, generator=torch.Generator().manual_seed(2))
    lines = [f"**Flow model on a 5-mode Gaussian mixture** (MLP, {model.n_parameters():,} parameters, "
             f"{train_steps:,} CFM steps in {hist.seconds:.0f} s; {n_samples:,} samples judged by the yardstick; "
             f"exact samples: levels {yardstick.floor_median['levels']:.3f}, off-support "
             f"{100 * yardstick.floor_median['off-support']:.2f}%, "
             f"regions {yardstick.floor_median['regions']:.3f})", "",
             "| sampler | steps | field evaluations | median time | levels | off-support | regions | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, cls, evals in [("Euler", ll.EulerSimulator, 1), ("Heun", ll.HeunSimulator, 2)]:
        sim = cls(ode)
        for steps in [2, 4, 8, 16, 32, 64, 128]:
            ts = ll.time_grid(steps)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                x1 = sim.simulate(x0, ts)
                times.append(time.perf_counter() - start)
            report = yardstick(x1)
            lines.append(f"| {name} | {steps} | {steps * evals} | {statistics.median(times) * 1000:.0f} ms "
                         f"| {report['levels']:.3f} | {100 * report['off-support']:.2f}% | {report['regions']:.3f} "
                         f"| {'✓' if report.passed else '✗'} |")
    return "\n".join(lines)
