"""Robustness across seeds: each notebook's models trained with several seeds and judged by the yardsticks.

A single training run is one draw. For every model a notebook presents, this trains it again with
``n_seeds`` seeds (network initialisation and minibatches), with the notebook's own recipe, and
reports for each figure of its verdict the median and the worst over the seeds, and on how many
seeds the verdict passes. The recipes mirror the notebooks' training cells (Lab 05 sections 3, 6, 7
and 8; Lab 06 sections 3, 4, 9 and 10; Lab 07 section 6); change both together. One row, the
ablation of Lab 05 section 6, is a recipe the notebook only quotes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

import labs_lib as ll
from labs_lib import digit_metrics

N_JUDGE = 10_000


@dataclass
class Outcome:
    """One model's verdict figures for one seed: ``figures`` by name, whether it ``passed``, and training seconds."""

    figures: dict[str, float]
    passed: bool
    seconds: float


def _plane(report: ll.QualityReport) -> dict[str, float]:
    return {"levels": report["levels"], "off-support": 100 * report["off-support"], "regions": report["regions"]}


def _train_flow(data, hidden, steps, lr, seed, source=None, batch_size=256, retrained=False,
                position_features=0) -> tuple[ll.MLPField, float]:
    """Lab 05's training: an MLP trained by CFM with ``seed``; returns it and its training seconds.

    The first recipe (sections 3, 7, 8): uniform times, the linear learning-rate schedule.
    ``retrained=True`` is section 6's retraining: logit-normal times, the cosine schedule; section 6
    also gives the network ``position_features`` random Fourier features of x (scale 0.5).
    """
    ll.seed_everything(seed)
    model = ll.MLPField(2, hidden=hidden, position_features=position_features, position_scale=0.5)
    hist = ll.ConditionalFlowMatchingTrainer(
        model, ll.AffinePath(ll.CondOTScheduler()), data=data, source=source,
        time_sampler=ll.logit_normal_times if retrained else ll.uniform_times).train(
        n_steps=steps, batch_size=batch_size, lr=lr, seed=seed, device="cpu", progress=False,
        lr_schedule="cosine" if retrained else "linear")
    return model, hist.seconds


def _flow(data, hidden, steps, lr, yardstick, source=None, batch_size=256, retrained=False, position_features=0):
    """Lab 05's recipes (:func:`_train_flow`), sampled with 100 network evaluations: 100 Euler steps,
    or 50 Heun steps for the retrained model."""
    simulator, n_steps = (ll.HeunSimulator, 50) if retrained else (ll.EulerSimulator, 100)

    def run(seed: int) -> Outcome:
        model, seconds = _train_flow(data, hidden, steps, lr, seed, source, batch_size, retrained, position_features)
        gen = torch.Generator().manual_seed(1000 + seed)
        start = source.sample(N_JUDGE, generator=gen) if source is not None else torch.randn(N_JUDGE, 2, generator=gen)
        with torch.no_grad():
            samples = simulator(ll.VectorFieldODE(model)).simulate(start, ll.time_grid(n_steps))
        report = yardstick(samples)
        return Outcome(_plane(report), report.passed, seconds)

    return run


def _score_sampler(kind: str, target, yardstick):
    """Lab 06's recipes: a flow network (and a DSM or ε-network) sampled with σ_t = 4β_t, 200 steps."""
    path = ll.AffinePath(ll.CondOTScheduler())

    def run(seed: int) -> Outcome:
        ll.seed_everything(seed)
        flow = ll.MLPField(2, hidden=(128, 128, 128))
        hist = ll.ConditionalFlowMatchingTrainer(flow, path, target).train(
            n_steps=2000, batch_size=256, lr=2e-3, seed=seed, device="cpu", progress=False)
        seconds = hist.seconds
        if kind == "converted":
            def score(x, t):
                return path.velocity_to_score(flow(x, t), x, t)
        else:
            net = ll.MLPField(2, hidden=(128, 128, 128))
            trainer = (ll.DenoisingScoreMatchingTrainer(net, path, target, t_max=0.99) if kind == "dsm"
                       else ll.NoisePredictionTrainer(net, path, target, t_max=0.99))
            seconds += trainer.train(n_steps=2000, batch_size=256, lr=2e-3, seed=seed, device="cpu",
                                     progress=False).seconds
            if kind == "dsm":
                score = net
            else:
                def score(x, t):
                    return path.noise_to_score(net(x, t), x, t)
        sde = ll.LangevinCorrectedSDE(flow, score, lambda t: 4.0 * (1 - t))
        gen = torch.Generator().manual_seed(1000 + seed)
        x0 = torch.randn(N_JUDGE, 2, generator=gen)
        torch.manual_seed(2000 + seed)
        with torch.no_grad():
            report = yardstick(ll.EulerMaruyamaSimulator(sde).simulate(x0, ll.time_grid(200)))
        return Outcome(_plane(report), report.passed, seconds)

    return run


def _lab05_recipe_sde(yardstick):
    """Lab 06 section 10's sampler: the flow network of Lab 05's section-6 recipe (:func:`_train_flow`),
    its field and converted score with noise σ_t = 4β_t, 200 Euler–Maruyama steps. Its probability-flow
    ODE with Heun is the row "05 mixture retrained": the same networks from the same starts."""
    path = ll.AffinePath(ll.CondOTScheduler())
    target = ll.GaussianMixture.symmetric_2d(5, radius=4.0, std=0.5)

    def run(seed: int) -> Outcome:
        flow, seconds = _train_flow(target, (128,) * 3, 8000, 5e-3, seed, batch_size=512, retrained=True,
                                    position_features=64)

        def score(x, t):
            return path.velocity_to_score(flow(x, t), x, t)

        sde = ll.LangevinCorrectedSDE(flow, score, lambda t: 4.0 * (1 - t))
        x0 = torch.randn(N_JUDGE, 2, generator=torch.Generator().manual_seed(1000 + seed))
        torch.manual_seed(2000 + seed)
        with torch.no_grad():
            report = yardstick(ll.EulerMaruyamaSimulator(sde).simulate(x0, ll.time_grid(200)))
        return Outcome(_plane(report), report.passed, seconds)

    return run


def _guided_digits(w: float):
    """Lab 07's recipe: the small U-Net trained by CFG (600 steps), 450 digits at guidance scale ``w``."""
    path = ll.AffinePath(ll.CondOTScheduler())
    train = ll.Digits("train")
    yardstick = digit_metrics.DigitYardstick("test")
    labels = torch.arange(10).repeat_interleave(45)

    def run(seed: int) -> Outcome:
        ll.seed_everything(seed)
        model = ll.UNet(num_classes=10, channels=(16, 32), emb_dim=32)
        hist = ll.CFGTrainer(model, path, train, eta=0.1).train(
            n_steps=600, batch_size=128, lr=2e-3, seed=seed, device="cpu", progress=False)
        samples = ll.generate_guided(model, labels, w, n_steps=20, seed=1000 + seed).cpu()
        report = yardstick(samples, labels)
        figures = {"accuracy": 100 * report.accuracy, "spread": report.spread, "features": report.features,
                   "two-sample": report.two_sample}
        return Outcome(figures, report.passed, hist.seconds)

    return run


# For each figure, which end is worse: the largest value, or (spread) the one farthest from 1.
def _worst(name: str, values: list[float]) -> float:
    if name == "spread":
        return max(values, key=lambda v: abs(v - 1))
    if name == "accuracy":
        return min(values)
    return max(values)


def models() -> list[tuple[str, Callable[[int], Outcome]]]:
    gmm = ll.GaussianMixture.symmetric_2d(5, radius=4.0, std=0.5)
    board, moons = ll.Checkerboard(), ll.Moons()
    y_gmm, y_board, y_moons = ll.Yardstick(gmm), ll.Yardstick(board), ll.Yardstick(moons)
    return [
        ("05 mixture (MLP 3×128, 2,000 steps)", _flow(gmm, (128,) * 3, 2000, 5e-3, y_gmm)),
        ("05 mixture retrained (8,000 × 512, logit-normal t, cosine lr, Heun, 64 Fourier features of x)",
         _flow(gmm, (128,) * 3, 8000, 5e-3, y_gmm, batch_size=512, retrained=True, position_features=64)),
        ("05 the same without the Fourier features of x (ablation)",
         _flow(gmm, (128,) * 3, 8000, 5e-3, y_gmm, batch_size=512, retrained=True)),
        ("05 moons (MLP 4×128, 3,000 steps)", _flow(moons, (128,) * 4, 3000, 3e-3, y_moons)),
        ("05 checkerboard (MLP 4×128, 2,000 steps)", _flow(board, (128,) * 4, 2000, 5e-3, y_board)),
        ("05 circles → checkerboard (MLP 4×128, 3,000 steps)", _flow(board, (128,) * 4, 3000, 3e-3, y_board,
                                                                      source=ll.Circles())),
        ("06 flow network + converted score, σ_t = 4β_t", _score_sampler("converted", gmm, y_gmm)),
        ("06 DSM network, σ_t = 4β_t", _score_sampler("dsm", gmm, y_gmm)),
        ("06 ε-network, σ_t = 4β_t", _score_sampler("eps", gmm, y_gmm)),
        ("06 flow network, Lab 05's recipe: converted score, σ_t = 4β_t", _lab05_recipe_sde(y_gmm)),
        ("07 U-Net digits at w = 1 (test half)", _guided_digits(1.0)),
    ]


def run(n_seeds: int = 5) -> str:
    """The robustness table: one row per model and figure, median and worst over ``n_seeds`` seeds."""
    seeds = list(range(n_seeds))
    lines = [f"**Every model the notebooks train, with {n_seeds} seeds ({', '.join(map(str, seeds))})**, judged by "
             f"the yardstick (2-D: {N_JUDGE:,} samples; digits: 450 samples against the test half). "
             "Off-support in %; the worst is the largest value (for the spread: the farthest from 1; for "
             "accuracy: the smallest).", "",
             "| model | passes | figure | median | worst | all seeds | training (median) |",
             "|---|---:|---|---:|---:|---|---:|"]
    for name, train_and_judge in models():
        start = time.perf_counter()
        outcomes = [train_and_judge(s) for s in seeds]
        passes = sum(o.passed for o in outcomes)
        seconds = float(np.median([o.seconds for o in outcomes]))
        for k, figure in enumerate(outcomes[0].figures):
            values = [o.figures[figure] for o in outcomes]
            first = f"| {name} | {passes} / {n_seeds} |" if k == 0 else "| | |"
            lines.append(f"{first} {figure} | {np.median(values):.3f} | {_worst(figure, values):.3f} | "
                         f"{', '.join(f'{v:.3f}' for v in values)} | {f'{seconds:.0f} s' if k == 0 else ''} |")
        print(f"{name}: {passes}/{n_seeds} pass ({time.perf_counter() - start:.0f} s)", flush=True)
    return "\n".join(lines)
