"""Robustness across seeds: each notebook's models trained with several seeds and judged by the yardsticks.

A single training run is one draw. For every model a notebook presents, this trains it again with
``n_seeds`` seeds (network initialisation and minibatches), with the notebook's own recipe, and
reports for each figure of its verdict the median and the worst over the seeds, and on how many
seeds the verdict passes. The recipes mirror the notebooks' training cells (Lab 05 sections 3, 6, 7
and 8; Lab 06 sections 3, 4, 9 and 10; Lab 07 section 6; Lab 08 sections 2, 5 and 6); change both
together. The rows marked as ablations (Lab 05 section 6, Lab 07 section 8, Lab 08 sections 5 and 6)
are recipes the notebooks only quote.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

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


# Lab 05 section 6's retraining of the mixture model (with 8,000 steps, 50 Heun steps and 64 Fourier features
# of x, given where used): batches of 512, logit-normal times, the cosine learning-rate schedule.
RETRAINING = {"batch_size": 512, "times": ll.logit_normal_times, "lr_schedule": "cosine"}


def _train_flow(data, hidden, steps, lr, seed, source=None, batch_size=256, times=ll.uniform_times,
                lr_schedule="linear", position_features=0) -> tuple[ll.MLPField, float]:
    """Lab 05's training: an MLP trained by CFM with ``seed``; returns it and its training seconds.

    The defaults are the first recipe (sections 3, 7, 8): uniform times, the linear learning-rate schedule.
    Section 6's retraining (:data:`RETRAINING`) draws logit-normal times, follows the cosine schedule and
    gives the network ``position_features`` random Fourier features of x (scale 0.5).
    """
    ll.seed_everything(seed)
    model = ll.MLPField(2, hidden=hidden, position_features=position_features, position_scale=0.5)
    hist = ll.ConditionalFlowMatchingTrainer(
        model, ll.AffinePath(ll.CondOTScheduler()), data=data, source=source, time_sampler=times).train(
        n_steps=steps, batch_size=batch_size, lr=lr, seed=seed, device="cpu", progress=False, lr_schedule=lr_schedule)
    return model, hist.seconds


def _flow(data, hidden, steps, lr, yardstick, source=None, heun=False, **training):
    """Lab 05's recipes (:func:`_train_flow`, with ``training``'s keywords), sampled with 100 network
    evaluations: 100 Euler steps, or 50 Heun steps (``heun``, as the retrained model)."""
    simulator, n_steps = (ll.HeunSimulator, 50) if heun else (ll.EulerSimulator, 100)

    def run(seed: int) -> Outcome:
        model, seconds = _train_flow(data, hidden, steps, lr, seed, source, **training)
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
        sigma = lambda t: 4.0 * (1 - t)  # noqa: E731
        if kind == "converted":
            sde = ll.LangevinCorrectedSDE.from_flow(flow, path, sigma)
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
            sde = ll.LangevinCorrectedSDE(flow, score, sigma)
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
        flow, seconds = _train_flow(target, (128,) * 3, 8000, 5e-3, seed, position_features=64, **RETRAINING)
        sde = ll.LangevinCorrectedSDE.from_flow(flow, path, lambda t: 4.0 * (1 - t))
        x0 = torch.randn(N_JUDGE, 2, generator=torch.Generator().manual_seed(1000 + seed))
        torch.manual_seed(2000 + seed)
        with torch.no_grad():
            report = yardstick(ll.EulerMaruyamaSimulator(sde).simulate(x0, ll.time_grid(200)))
        return Outcome(_plane(report), report.passed, seconds)

    return run


def _train_unet(seed: int, n_steps: int = 1800, lr_schedule: str = "cosine") -> tuple[ll.UNet, float]:
    """Lab 07 section 6: the small U-Net trained by CFG (1,800 steps, the cosine schedule); the model and seconds."""
    ll.seed_everything(seed)
    model = ll.UNet(num_classes=10, channels=(16, 32), emb_dim=32)
    hist = ll.CFGTrainer(model, ll.AffinePath(ll.CondOTScheduler()), ll.Digits("train"), eta=0.1).train(
        n_steps=n_steps, batch_size=128, lr=2e-3, lr_schedule=lr_schedule, seed=seed, device="cpu", progress=False)
    return model, hist.seconds


def _judge_digits(model: torch.nn.Module, w: float, seed: int, seconds: float,
                  autoencoder: ll.Autoencoder | None = None) -> Outcome:
    """450 digits at guidance scale ``w``, sampled as Labs 07 and 08 do (25 Heun steps) from noise ``seed``,
    judged on the test half; with an ``autoencoder``, ``model`` is a latent field and the samples are decoded."""
    labels = torch.arange(10).repeat_interleave(45)
    if autoencoder is None:
        samples = ll.generate_guided(model, labels, w, n_steps=25, method="heun", seed=seed).cpu()
    else:
        samples = ll.generate_latent_guided(model, autoencoder, labels, w, n_steps=25, method="heun", seed=seed).cpu()
    report = digit_metrics.DigitYardstick("test")(samples, labels)
    figures = {"accuracy": 100 * report.accuracy, "spread": report.spread, "features": report.features,
               "two-sample": report.two_sample}
    return Outcome(figures, report.passed, seconds)


# Lab 08's training times for both its generators, leaning towards the data end: t = σ(0.5 + ξ).
DATA_END_TIMES = partial(ll.logit_normal_times, mean=0.5)


def _latent_digits(w: float, n_steps: int = 5000, time_sampler: Callable = DATA_END_TIMES):
    """Lab 08 section 5: the dense autoencoder (8 numbers, 3,000 steps) and the latent MLP field (5,000 CFG
    steps, training times t = σ(0.5 + ξ)), training seed ``seed``, judged on one draw of 450 decoded digits at ``w``.
    ``n_steps`` and ``time_sampler`` change the field's training, for the section's ablation."""

    def run(seed: int) -> Outcome:
        ll.seed_everything(seed)
        ae = ll.Autoencoder((1, 8, 8), latent_channels=8, hidden=(256, 256))
        train = ll.Digits("train")
        first = ll.AutoencoderTrainer(ae, train).train(3000, batch_size=128, lr=2e-3, lr_schedule="cosine",
                                                       seed=seed, device="cpu", progress=False)
        ae.eval()
        ll.seed_everything(seed)
        field = ll.LabelledMLPField(ae.latent_shape, hidden=(256, 256, 256))
        second = ll.CFGTrainer(field, ll.AffinePath(ll.CondOTScheduler()), ll.LatentImages(ae, train), eta=0.1,
                               time_sampler=time_sampler).train(
            n_steps=n_steps, batch_size=256, lr=2e-3, lr_schedule="cosine", seed=seed, device="cpu", progress=False)
        return _judge_digits(field, w, 1000 + seed, first.seconds + second.seconds, autoencoder=ae)

    return run


def _train_dit(seed: int, n_steps: int = 2400, time_sampler: Callable = DATA_END_TIMES) -> tuple[ll.DiT, float]:
    """Lab 08 section 6: the DiT on pixels (4×4 patches, 4 blocks of width 64, CFG, cosine lr, training times
    t = σ(0.5 + ξ) leaning towards the data end) trained with ``seed``; the model and seconds. ``n_steps`` and
    ``time_sampler`` change the training, for the section's ablation."""
    ll.seed_everything(seed)
    model = ll.DiT(num_classes=10, patch_size=4, width=64, depth=4, heads=4)
    hist = ll.CFGTrainer(model, ll.AffinePath(ll.CondOTScheduler()), ll.Digits("train"), eta=0.1,
                         time_sampler=time_sampler).train(
        n_steps=n_steps, batch_size=128, lr=2e-3, lr_schedule="cosine", seed=seed, device="cpu", progress=False)
    return model, hist.seconds


def _dit_digits(w: float, n_steps: int = 2400, time_sampler: Callable = DATA_END_TIMES):
    """:func:`_train_dit` with training seed ``seed``, judged on one draw of 450 digits at ``w``."""

    def run(seed: int) -> Outcome:
        model, seconds = _train_dit(seed, n_steps, time_sampler)
        return _judge_digits(model, w, 1000 + seed, seconds)

    return run


def _guided_digits(w: float, n_steps: int = 1800, lr_schedule: str = "cosine"):
    """Lab 07's recipe with training seed ``seed``, judged on one draw of 450 digits at ``w``."""

    def run(seed: int) -> Outcome:
        model, seconds = _train_unet(seed, n_steps, lr_schedule)
        return _judge_digits(model, w, 1000 + seed, seconds)

    return run


def _digit_draws(train: Callable[[int], tuple[torch.nn.Module, float]], w: float, draws: Sequence[int]):
    """A notebook's own digit model, ``train(0)`` (training seed 0), judged on several fresh draws of 450 digits,
    noise seeds ``draws`` (the notebooks' is 8): how much one verdict moves from draw to draw. Trained once, on
    the first call."""
    trained: list[tuple[torch.nn.Module, float]] = []

    def run(draw: int) -> Outcome:
        if not trained:
            trained.append(train(0))
        model, seconds = trained[0]
        return _judge_digits(model, w, draw, seconds)

    run.runs = list(draws)  # judged once per draw instead of once per training seed
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
         _flow(gmm, (128,) * 3, 8000, 5e-3, y_gmm, heun=True, position_features=64, **RETRAINING)),
        ("05 the same without the Fourier features of x (ablation)",
         _flow(gmm, (128,) * 3, 8000, 5e-3, y_gmm, heun=True, **RETRAINING)),
        # Section 6's changes added one at a time to the first recipe, in the order the lab quotes them.
        ("05 ablation: the first recipe with 8,000 steps", _flow(gmm, (128,) * 3, 8000, 5e-3, y_gmm)),
        ("05 ablation: + the cosine lr", _flow(gmm, (128,) * 3, 8000, 5e-3, y_gmm, lr_schedule="cosine")),
        ("05 ablation: + logit-normal t", _flow(gmm, (128,) * 3, 8000, 5e-3, y_gmm, lr_schedule="cosine",
                                                times=ll.logit_normal_times)),
        ("05 ablation: + batches of 512", _flow(gmm, (128,) * 3, 8000, 5e-3, y_gmm, lr_schedule="cosine",
                                                times=ll.logit_normal_times, batch_size=512)),
        # What section 6 says did not do what the Fourier features do, and what they need.
        ("05 ablation: no Fourier features, 16,000 steps",
         _flow(gmm, (128,) * 3, 16000, 5e-3, y_gmm, heun=True, **RETRAINING)),
        ("05 ablation: no Fourier features, width 256",
         _flow(gmm, (256,) * 3, 8000, 5e-3, y_gmm, heun=True, **RETRAINING)),
        ("05 ablation: the Fourier features with 4,000 steps",
         _flow(gmm, (128,) * 3, 4000, 5e-3, y_gmm, heun=True, position_features=64, **RETRAINING)),
        ("05 moons (MLP 4×128, 3,000 steps)", _flow(moons, (128,) * 4, 3000, 3e-3, y_moons)),
        ("05 checkerboard (MLP 4×128, 2,000 steps)", _flow(board, (128,) * 4, 2000, 5e-3, y_board)),
        ("05 circles → checkerboard (MLP 4×128, 3,000 steps)", _flow(board, (128,) * 4, 3000, 3e-3, y_board,
                                                                      source=ll.Circles())),
        ("06 flow network + converted score, σ_t = 4β_t", _score_sampler("converted", gmm, y_gmm)),
        ("06 DSM network, σ_t = 4β_t", _score_sampler("dsm", gmm, y_gmm)),
        ("06 ε-network, σ_t = 4β_t", _score_sampler("eps", gmm, y_gmm)),
        ("06 flow network, Lab 05's recipe: converted score, σ_t = 4β_t", _lab05_recipe_sde(y_gmm)),
        ("07 U-Net digits at w = 1 (test half; 1,800 steps, cosine lr, Heun 25)", _guided_digits(1.0)),
        ("07 the same with 600 steps and the linear lr (ablation)", _guided_digits(1.0, 600, "linear")),
        ("07 the notebook's model (seed 0) on 12 fresh draws of 450 digits at w = 1 (noise seeds 8, 100–110)",
         _digit_draws(_train_unet, 1.0, [8, *range(100, 111)])),
        ("08 latent flow at w = 1 (test half; dense autoencoder, 8 numbers, 3,000 steps, + MLP field, 5,000 steps, "
         "t = σ(0.5 + ξ), Heun 25)",
         _latent_digits(1.0)),
        ("08 DiT on pixels at w = 1 (test half; 4×4 patches, 2,400 steps, cosine lr, t = σ(0.5 + ξ), Heun 25)",
         _dit_digits(1.0)),
        ("08 the notebook's DiT (seed 0) on 12 fresh draws of 450 digits at w = 1 (noise seeds 8, 100–110)",
         _digit_draws(_train_dit, 1.0, [8, *range(100, 111)])),
        ("08 ablation: latent flow with uniform t and 3,000 steps", _latent_digits(1.0, 3000, ll.uniform_times)),
        ("08 ablation: latent flow with uniform t and 5,000 steps", _latent_digits(1.0, 5000, ll.uniform_times)),
        ("08 ablation: latent flow with data-end t and 3,000 steps", _latent_digits(1.0, 3000)),
        ("08 ablation: DiT with uniform t", _dit_digits(1.0, time_sampler=ll.uniform_times)),
        ("08 ablation: DiT with t = σ(ξ)", _dit_digits(1.0, time_sampler=ll.logit_normal_times)),
        ("08 ablation: DiT with 1,200 steps", _dit_digits(1.0, 1200)),
    ]


def _group_rows(table: str) -> dict[str, list[str]]:
    """The rows of a robustness ``table`` grouped by model: the model's name → its lines (a figure each)."""
    groups: dict[str, list[str]] = {}
    name = None
    for line in table.splitlines():
        if not line.startswith("| ") or line.startswith("| model |"):
            continue
        first = line.split("|")[1].strip()
        if first:
            name = first
        if name is not None:
            groups.setdefault(name, []).append(line)
    return groups


def run_notes(readme: str) -> list[str]:
    """The lines under README's robustness table that say how and when its rows were measured."""
    return [line for line in readme.splitlines() if line.startswith(("*This table alone:", "*Rows "))]


def run(n_seeds: int = 5, rows: Sequence[str] = (), previous: str = "") -> str:
    """The robustness table: one row per model and figure, median and worst over ``n_seeds`` seeds.

    With ``rows`` (prefixes of model names, e.g. ``["07"]``) only those models are trained; every other
    model keeps its rows from ``previous``, the table as README holds it (a model missing there is
    left out). The table keeps the order of :func:`models`.
    """
    seeds = list(range(n_seeds))
    lines = [f"**Every model the notebooks train, with {n_seeds} seeds ({', '.join(map(str, seeds))})**, judged by "
             f"the yardstick (2-D: {N_JUDGE:,} samples; digits: 450 samples against the test half). "
             "Off-support in %; the worst is the largest value (for the spread: the farthest from 1; for "
             "accuracy: the smallest).", "",
             "| model | passes | figure | median | worst | all seeds | training (median) |",
             "|---|---:|---|---:|---:|---|---:|"]
    kept, every_model = _group_rows(previous), models()
    chosen = {name for name, _ in every_model if not rows or name.startswith(tuple(rows))}
    if not chosen:
        raise SystemExit(f"no model's name starts with {', '.join(rows)}: the models are "
                         + "; ".join(name for name, _ in every_model))
    for name, train_and_judge in every_model:
        if name not in chosen:
            lines.extend(kept.get(name, []))
            continue
        start = time.perf_counter()
        runs = getattr(train_and_judge, "runs", seeds)  # a row of draws of one model says which
        outcomes = [train_and_judge(s) for s in runs]
        passes = sum(o.passed for o in outcomes)
        seconds = float(np.median([o.seconds for o in outcomes]))
        for k, figure in enumerate(outcomes[0].figures):
            values = [o.figures[figure] for o in outcomes]
            first = f"| {name} | {passes} / {len(runs)} |" if k == 0 else "| | |"
            lines.append(f"{first} {figure} | {np.median(values):.3f} | {_worst(figure, values):.3f} | "
                         f"{', '.join(f'{v:.3f}' for v in values)} | {f'{seconds:.0f} s' if k == 0 else ''} |")
        print(f"{name}: {passes}/{len(runs)} pass ({time.perf_counter() - start:.0f} s)", flush=True)
    return "\n".join(lines)
