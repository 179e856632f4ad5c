r"""Samplers that are wrong on purpose: the catalogue every sample-quality verdict must reject.

A verdict is only as good as its calibration: before a "✓" means anything, the measure behind it
must be seen to reject samples that are known to be wrong in the ways a trained model goes wrong
(too narrow, too wide, mass between modes, blurred edges, wrong proportions, lost diversity) and
to accept exact samples. Each sampler here is a small, exactly known corruption of a target.
``tests/test_yardstick.py`` and ``tests/test_digit_metrics.py`` run the whole catalogue through
the verdicts; Lab 05 shows it to students.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ._validation import as_tensor, validate_positive, validate_positive_int
from .distributions import Checkerboard, GaussianMixture, Moons, Sampleable
from .yardstick import QualityReport, Yardstick


class FunctionSampler(Sampleable):
    """A :class:`Sampleable` from a function ``draw(n, generator) -> (n, *shape)``, with a name for tables."""

    def __init__(self, name: str, draw: Callable[[int, torch.Generator | None], Tensor], shape: tuple[int, ...]):
        self.name, self._draw, self.shape = name, draw, tuple(shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        validate_positive_int(n, "n")
        return self._draw(n, generator)

    def __repr__(self) -> str:
        return f"FunctionSampler({self.name!r})"


def rescaled_mixture(mixture: GaussianMixture, factor: float) -> FunctionSampler:
    """Every component's standard deviation multiplied by ``factor`` (0.8: 20% too narrow)."""
    factor = validate_positive(factor, "factor")
    wrong = GaussianMixture(mixture.means, factor**2 * mixture.covs, mixture.weights)
    return FunctionSampler(f"blobs ×{factor:g} in width", wrong.sample, mixture.shape)


def reweighted_mixture(mixture: GaussianMixture, weights: Tensor) -> FunctionSampler:
    """The same components with other weights (a zero weight drops a mode)."""
    weights = as_tensor(weights, "weights").to(mixture.weights)
    wrong = GaussianMixture(mixture.means, mixture.covs, weights)
    dropped = int((weights == 0).sum())
    name = f"{dropped} mode{'s' if dropped > 1 else ''} dropped" if dropped else "wrong mode weights"
    return FunctionSampler(name, wrong.sample, mixture.shape)


def with_bridges(mixture: GaussianMixture, fraction: float = 0.02, jitter: float = 0.1) -> FunctionSampler:
    """A ``fraction`` of the samples moved onto the straight segments between neighbouring means.

    Neighbours are consecutive modes (as in ``GaussianMixture.symmetric_2d``, the last joined
    to the first); each bridge point is uniform along its segment with Gaussian ``jitter``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    jitter = validate_positive(jitter, "jitter", allow_zero=True)

    def draw(n: int, generator: torch.Generator | None) -> Tensor:
        x = mixture.sample(n, generator=generator)
        k = round(fraction * n)
        start = torch.randint(mixture.n_modes, (k,), generator=generator)
        u = torch.rand(k, 1, generator=generator, dtype=x.dtype)
        a, b = mixture.means[start], mixture.means[(start + 1) % mixture.n_modes]
        x[:k] = a + u * (b - a) + jitter * torch.randn(k, x.shape[1], generator=generator, dtype=x.dtype)
        return x[torch.randperm(n, generator=generator)]

    return FunctionSampler(f"{100 * fraction:g}% of the mass on bridges", draw, mixture.shape)


def blurred(target: Sampleable, std: float) -> FunctionSampler:
    """Target samples plus independent :math:`\\mathcal N(0, \\text{std}^2 I)` noise."""
    std = validate_positive(std, "std")

    def draw(n: int, generator: torch.Generator | None) -> Tensor:
        x = target.sample(n, generator=generator)
        return x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)

    return FunctionSampler(f"blurred by σ = {std:g}", draw, target.shape)


def thicker_moons(moons: Moons, factor: float = 1.25) -> FunctionSampler:
    """Moons whose jitter is ``factor`` times the target's (1.25: 25% thicker)."""
    wrong = Moons(noise=moons.noise * validate_positive(factor, "factor"), scale=moons.scale)
    return FunctionSampler(f"moons {100 * (factor - 1):+.0f}% thick", wrong.sample, moons.shape)


def plane_catalogue(target: Sampleable) -> dict[str, Sampleable]:
    """The exact sampler and the wrong samplers that apply to ``target``, by name.

    A Gaussian mixture gets blobs 20% too narrow and 10% too wide, 2% of the mass on bridges,
    the first mode's weight doubled and the last mode dropped; a checkerboard gets a blur of
    σ = 0.05; moons get a jitter 25% thicker. The first entry is always ``"exact"``: the target.
    """
    catalogue: dict[str, Sampleable] = {"exact": target}
    wrong: list[FunctionSampler] = []
    if isinstance(target, GaussianMixture):
        k = target.n_modes
        heavier = target.weights.clone()
        heavier[0] *= 2
        dropped = target.weights.clone()
        dropped[-1] = 0
        wrong = [rescaled_mixture(target, 0.8), rescaled_mixture(target, 1.1), with_bridges(target, 0.02),
                 reweighted_mixture(target, heavier)] + ([reweighted_mixture(target, dropped)] if k > 1 else [])
    elif isinstance(target, Checkerboard):
        wrong = [blurred(target, 0.05)]
    elif isinstance(target, Moons):
        wrong = [thicker_moons(target, 1.25)]
    else:
        raise TypeError(f"no catalogue of wrong samplers for {type(target).__name__}; "
                        "there is one for GaussianMixture, Checkerboard and Moons.")
    catalogue.update({w.name: w for w in wrong})
    return catalogue


def shrunk_digits(images: Tensor, labels: Tensor, factor: float = 0.8) -> Tensor:
    """Each digit moved towards the mean of its class in the training split: ``mean + factor·(x − mean)``.

    Lost diversity with no loss of legibility: ``factor = 0.8`` keeps every digit readable and
    removes 20% of the within-class spread. Images ``(n, 1, 8, 8)``, labels ``(n,)``.
    """
    from .digits import load_digits_split

    factor = validate_positive(factor, "factor")
    split = load_digits_split(seed=0)
    means = torch.stack([split.train_images[split.train_labels == k].mean(0) for k in range(10)])
    labels = as_tensor(labels, "labels").long().cpu()
    means = means[labels].to(images)
    return means + factor * (images - means)


def blurred_digits(images: Tensor) -> Tensor:
    """Each ``8 × 8`` digit ``(n, 1, 8, 8)`` smoothed with the 3 × 3 binomial kernel (edges replicated)."""
    images = as_tensor(images, "images")
    k = torch.tensor([0.25, 0.5, 0.25], dtype=images.dtype, device=images.device)
    kernel = (k[:, None] * k[None, :]).reshape(1, 1, 3, 3)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(images, (1, 1, 1, 1), mode="replicate"), kernel)


#: The seeds of a calibration run: 60 exact sample sets per target, 20 sets of every wrong sampler.
CALIBRATION_EXACT_SEEDS = range(1000, 1060)
CALIBRATION_WRONG_SEEDS = range(20)


def calibration_reports(yardstick: Yardstick, exact_seeds: Iterable[int] = CALIBRATION_EXACT_SEEDS,
                        wrong_seeds: Iterable[int] = CALIBRATION_WRONG_SEEDS) -> dict[str, list[QualityReport]]:
    """``yardstick``'s reports on its own target's catalogue (:func:`plane_catalogue`), by sampler name.

    ``"exact"`` gets one report per seed of ``exact_seeds``, every wrong sampler one per seed of
    ``wrong_seeds``; each set has ``yardstick.n`` samples drawn with ``torch.Generator().manual_seed(seed)``.
    This is the measurement behind every statement the course makes about the verdict and the floor
    ratio (that exact sets pass and score about 0.8, that each mistake is rejected and how far off it
    scores): ``tests/test_yardstick.py`` asserts those statements on it, ``python -m benchmarks --only
    calibration`` prints it.
    """
    seeds = {"exact": list(exact_seeds), "wrong": list(wrong_seeds)}
    return {name: [yardstick(sampler.sample(yardstick.n, generator=torch.Generator().manual_seed(seed)))
                   for seed in seeds["exact" if name == "exact" else "wrong"]]
            for name, sampler in plane_catalogue(yardstick.target).items()}
