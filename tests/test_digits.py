"""The embedded digits data set and the digit metrics: the split, the labelled sampler, the held-out
classifier, the W2 distance with its real-vs-real floor, and the memorization check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labs_lib import Digits, LabelledImages, LabelledSampleable, Sampleable, load_digits_split
from labs_lib import digit_metrics as dm


@pytest.fixture(scope="module")
def split():
    return load_digits_split()


# --- the split ---------------------------------------------------------------------------------


def test_split_sizes_shapes_and_range(split):
    assert split.train_images.shape == (1347, 1, 8, 8) and split.test_images.shape == (450, 1, 8, 8)
    assert split.train_labels.shape == (1347,) and split.test_labels.shape == (450,)
    assert split.train_images.dtype == torch.float32 and split.train_labels.dtype == torch.int64
    for x in (split.train_images, split.test_images):
        assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    # The original pixels are the integers 0..16: scaled, they sit on a grid of step 1/8.
    assert torch.allclose((split.train_images + 1) * 8, ((split.train_images + 1) * 8).round())


def test_split_is_stratified_and_complete(split):
    from sklearn.datasets import load_digits

    raw = load_digits()
    counts = np.bincount(raw.target)
    test_counts = np.bincount(split.test_labels.numpy(), minlength=10)
    np.testing.assert_allclose(test_counts, counts * 450 / 1797, atol=1)
    # Train and test together are exactly the original images (as a multiset of (image, label)).
    def keys(images, labels):
        pix = ((images.reshape(len(images), -1) + 1) * 8).round().long()
        return sorted(map(tuple, torch.cat([pix, labels[:, None]], 1).tolist()))

    ours = keys(torch.cat([split.train_images, split.test_images]), torch.cat([split.train_labels, split.test_labels]))
    theirs = keys(torch.tensor(raw.images, dtype=torch.float32) / 8 - 1, torch.tensor(raw.target))
    assert ours == theirs


def test_split_is_deterministic_and_cache_safe(split):
    again = load_digits_split()
    assert torch.equal(again.train_images, split.train_images) and torch.equal(again.test_labels, split.test_labels)
    again.train_images.zero_()  # mutating a returned tensor must not corrupt the cache
    assert torch.equal(load_digits_split().train_images, split.train_images)
    other = load_digits_split(seed=1)
    assert not torch.equal(other.test_labels, split.test_labels)


@pytest.mark.parametrize("kwargs", [{"test_size": 0}, {"test_size": 1790}, {"test_size": 1.5}])
def test_split_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        load_digits_split(**kwargs)


# --- the sampler -------------------------------------------------------------------------------


def test_digits_is_a_labelled_sampleable():
    train, test = Digits("train"), Digits("test")
    assert isinstance(train, LabelledSampleable) and isinstance(train, Sampleable)
    assert len(train) == 1347 and len(test) == 450
    assert train.shape == (1, 8, 8) and train.dim == 64 and train.num_classes == 10
    assert train.sample(5).shape == (5, 1, 8, 8)


def test_labelled_samples_are_real_pairs(gen, split):
    x, y = Digits("train").sample_labelled(200, gen)
    assert x.shape == (200, 1, 8, 8) and y.shape == (200,) and y.dtype == torch.int64
    # every drawn image is a stored training image carrying the drawn label
    d = torch.cdist(x.reshape(200, -1), split.train_images.reshape(1347, -1))
    match = d.argmin(1)
    assert float(d.min(1).values.max()) == 0.0
    assert torch.equal(split.train_labels[match], y)


def test_sampling_by_class_and_reproducibility():
    data = Digits("test")
    x, y = data.sample_labelled(30, torch.Generator().manual_seed(0), label=7)
    assert bool((y == 7).all())
    x2, _ = data.sample_labelled(30, torch.Generator().manual_seed(0), label=7)
    assert torch.equal(x, x2)
    assert torch.equal(data.sample(10, torch.Generator().manual_seed(3)),
                       data.sample(10, torch.Generator().manual_seed(3)))


def test_sample_is_roughly_uniform_over_classes(gen):
    _, y = Digits("train").sample_labelled(20_000, gen)
    freq = np.bincount(y.numpy(), minlength=10) / 20_000
    # each class is about 10%; the standard error of a frequency is √(0.1·0.9/20000) ≈ 0.002
    assert np.all(np.abs(freq - 0.1) < 0.012)


def test_to_device_returns_samples_there():
    data = Digits("test").to("cpu")
    assert data.sample(3).device.type == "cpu"


@pytest.mark.parametrize("bad, err", [
    (lambda: Digits("valid"), ValueError),
    (lambda: Digits().sample(0), ValueError),
    (lambda: Digits().sample_labelled(3, label=10), ValueError),
    (lambda: Digits().sample_labelled(3, label=-1), ValueError),
    (lambda: Digits().sample_labelled(3, label=2.0), ValueError),
    (lambda: LabelledImages(torch.zeros(4, 8, 8), torch.zeros(4, dtype=torch.long)), ValueError),
    (lambda: LabelledImages(torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.long)), ValueError),
    (lambda: LabelledImages(torch.zeros(4, 1, 8, 8), torch.zeros(4)), TypeError),
    (lambda: LabelledImages(torch.zeros(4, 1, 8, 8, dtype=torch.long), torch.zeros(4, dtype=torch.long)), TypeError),
    (lambda: LabelledImages(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 5]), num_classes=3), ValueError),
    (lambda: LabelledImages(torch.zeros(2, 1, 8, 8), torch.tensor([0, 0]), num_classes=3).sample_labelled(1, label=2),
     ValueError),
])
def test_bad_input_is_explained(bad, err):
    with pytest.raises(err):
        bad()


# --- the metrics -------------------------------------------------------------------------------


def test_classifier_is_accurate_on_held_out_digits(split):
    # The calibration: 99.1% on the real test digits (trained on the training split only).
    acc = dm.classifier_accuracy(split.test_images, split.test_labels)
    assert acc >= 0.98
    assert dm.digit_classifier() is dm.digit_classifier()  # fitted once
    wrong = (split.test_labels + 1) % 10
    assert dm.classifier_accuracy(split.test_images, wrong) < 0.05
    per_class = dm.accuracy_per_class(split.test_images, split.test_labels)
    assert per_class.shape == (10,) and np.all(per_class >= 0.9)
    assert np.isnan(dm.accuracy_per_class(split.test_images[:1], split.test_labels[:1])).sum() == 9


def test_w2_floor_and_distances(split):
    floor = dm.digit_w2_floor()
    assert 2.6 < floor < 3.1  # the calibration measured ≈ 2.88
    assert dm.digit_w2(split.test_images) == pytest.approx(0.0, abs=1e-9)
    assert dm.digit_w2(split.train_images[:450]) == pytest.approx(floor, rel=0.05)
    noise = torch.randn(450, 1, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    assert dm.digit_w2(noise) > 2 * floor
    # a smaller set is compared with a subset of the test digits of its size
    assert dm.digit_w2(split.test_images[:100]) > 0
    with pytest.raises(ValueError, match="at most 450"):
        dm.digit_w2(torch.zeros(451, 1, 8, 8))


def test_memorization_report_separates_copies_from_new_digits(split):
    copies = dm.memorization_report(split.train_images[:200])
    assert copies.ratio == 0.0 and copies.copy_fraction == 1.0
    fresh = dm.memorization_report(split.test_images)
    assert fresh.ratio == pytest.approx(1.0) and fresh.copy_fraction < 0.02
    assert "ratio 1.00" in repr(fresh)


@pytest.mark.parametrize("images, err", [
    (torch.zeros(3, 64), ValueError),
    (torch.zeros(3, 1, 28, 28), ValueError),
    (torch.zeros(3, 1, 8, 8, dtype=torch.long), TypeError),
    (torch.full((3, 1, 8, 8), float("nan")), ValueError),
    (torch.zeros(0, 1, 8, 8), ValueError),
])
def test_metrics_reject_bad_images(images, err):
    with pytest.raises(err):
        dm.classify_digits(images)


def test_accuracy_needs_one_label_per_image(split):
    with pytest.raises(ValueError, match="labels must have shape"):
        dm.classifier_accuracy(split.test_images[:5], split.test_labels[:4])


# --- the image grid --------------------------------------------------------------------------


def test_plot_image_grid_tiles_images(split):
    from labs_lib import plotting

    ax = plotting.plot_image_grid(split.test_images[:20], n_cols=5, row_labels=list("abcd"),
                                  col_labels=[str(i) for i in range(5)])
    canvas = ax.images[0].get_array()
    assert canvas.shape == (4 * 9 - 1, 5 * 9 - 1)  # 8-pixel images with one-pixel gaps
    np.testing.assert_allclose(np.asarray(canvas[:8, :8]), split.test_images[0, 0].numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == list("abcd")
    # the gaps are drawn light grey, unlike the white (-1) background of a digit
    assert np.isnan(np.asarray(canvas.filled(np.nan) if np.ma.isMaskedArray(canvas) else canvas)[8, 0])
    gap_rgba = ax.images[0].cmap(np.ma.masked_invalid([np.nan]))[0]
    white = ax.images[0].cmap(ax.images[0].norm(-1.0))
    assert abs(gap_rgba[0] - 0.82) < 0.01 and white[0] > 0.99
    plotting.plot_image_grid(split.test_images[:3, 0], n_cols=3)  # (n, h, w) works too
    with pytest.raises(ValueError, match="multiple"):
        plotting.plot_image_grid(split.test_images[:7], n_cols=5)
    with pytest.raises(ValueError, match="row_labels"):
        plotting.plot_image_grid(split.test_images[:10], n_cols=5, row_labels=["a"])
    with pytest.raises(ValueError, match="shape"):
        plotting.plot_image_grid(torch.zeros(4, 64), n_cols=2)
