"""The calibration of the verdict on generated digits: real digits accepted, digits with lost
diversity (shrunk towards their class means) and blurred digits rejected; the Fréchet distance
against its closed form; and the evidence that W2 in pixel space rewards lost diversity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labs_lib import digit_metrics as dm
from labs_lib import load_digits_split
from labs_lib.metrics import frechet_distance
from labs_lib.wrong_samplers import blurred_digits, shrunk_digits


@pytest.fixture(scope="module")
def yardstick() -> dm.DigitYardstick:
    return dm.DigitYardstick("test")


def real_sets(seeds):
    """Sets of 450 training digits, 45 of each class, drawn with other seeds than the floors'."""
    for seed in seeds:
        yield dm.training_sets(torch.full((10,), 45), 1, seed=seed)[0]


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    a = torch.randn(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.0])
    b = torch.randn(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([1.5, 0.5]) + torch.tensor([1.0, 0.0])
    # diagonal covariances: |Δμ|² + Σ_i (s_i - r_i)²
    exact = 1.0 + (1.0 - 1.5) ** 2 + (2.0 - 0.5) ** 2
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.02)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        frechet_distance(a[:1], b)


def test_real_digits_are_accepted(yardstick):
    for images, labels in real_sets(range(100, 106)):
        report = yardstick(images, labels)
        assert report.passed, report.verdict()
    held_out = yardstick(*dm.held_out_half("validation"))  # real digits the feature network never saw
    assert held_out.passed, held_out.verdict()


@pytest.mark.parametrize("mistake", ["shrunk 20%", "blurred"])
def test_wrong_digits_are_rejected(yardstick, mistake):
    for images, labels in real_sets(range(200, 205)):
        wrong = shrunk_digits(images, labels, 0.8) if mistake == "shrunk 20%" else blurred_digits(images)
        report = yardstick(wrong, labels)
        assert not report.passed, report.verdict()
        if mistake == "shrunk 20%":
            assert report.spread == pytest.approx(0.8 * 0.99, abs=0.03) and not report.checks["spread"]


def test_w2_in_pixel_space_rewards_lost_diversity():
    # The reason for the spread figure: shrunk digits come closer to the held-out digits than real ones.
    (images, labels), = real_sets([300])
    assert dm.digit_w2(shrunk_digits(images, labels, 0.8)) < dm.digit_w2(images)


def test_held_out_halves_are_disjoint_stratified_and_cover_the_test_split():
    (va, vl), (te, tl) = dm.held_out_half("validation"), dm.held_out_half("test")
    assert len(va) + len(te) == 450
    assert np.abs(np.bincount(vl.numpy(), minlength=10) - np.bincount(tl.numpy(), minlength=10)).max() <= 1
    flat = lambda x: {tuple(r) for r in x.reshape(len(x), -1).tolist()}  # noqa: E731
    assert not flat(va) & flat(te)
    with pytest.raises(ValueError, match="'validation' or 'test'"):
        dm.held_out_half("train")


def test_spread_and_reports_explain_bad_input(yardstick):
    split = load_digits_split()
    with pytest.raises(ValueError, match="every digit 0-9 at least twice"):
        dm.within_class_spread(split.test_images[:5], split.test_labels[:5])
    with pytest.raises(ValueError, match="labels must have shape"):
        dm.within_class_spread(split.test_images[:5], split.test_labels[:4])
    (images, labels), = real_sets([400])
    text = yardstick(images, labels).verdict()
    assert "spread" in text and "features" in text and "two-sample" in text and text.endswith("real digits")


def test_classifier_confidence_is_high_on_real_digits_and_low_on_noise():
    split = load_digits_split()
    real = dm.classifier_confidence(split.test_images)
    assert real.shape == (len(split.test_images),) and real.dtype == torch.float64
    assert float(real.mean()) > 0.97
    assert bool(((real >= 0.1) & (real <= 1.0)).all())
    # a flat grey image has no digit in it; the classifier spreads its probability
    grey = torch.zeros(20, 1, 8, 8)
    assert float(dm.classifier_confidence(grey).mean()) < float(real.mean()) - 0.2
    # ...but confidence is no measure of realism: an empty page (every pixel background) is "sure"
    assert float(dm.classifier_confidence(-torch.ones(5, 1, 8, 8)).mean()) > 0.9
    with pytest.raises(ValueError, match="NaN"):
        dm.classifier_confidence(torch.full((2, 1, 8, 8), float("nan")))
