r"""How good are generated digits? Three measurements against held-out real digits.

* **Accuracy on the requested class** (:func:`classifier_accuracy`): a support-vector classifier,
  trained once on the *training* split only, labels each generated image; the score is the
  fraction labelled with the digit that was asked for. It measures whether guidance works, not
  whether the images are varied: a model that draws the same perfect "3" every time scores 100%.
* **A distance between distributions** (:func:`digit_w2`): the exact 2-Wasserstein distance
  between the generated images and the 450 held-out test digits, both flattened to 64 pixels.
  It drops only when the samples cover the real digits' variety *and* look like them. Two sets of
  real digits are not at distance 0 either, so it is read beside its **floor**
  (:func:`digit_w2_floor`): the same distance between real training digits and the test digits.
* **Memorization** (:func:`memorization_check`): how far each generated image is from its nearest
  training image, compared with the same distance for held-out real digits. A model that copies its
  training set sits much closer than real unseen digits do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ._validation import as_tensor, check_positive_int
from .digits import DIGIT_SHAPE, N_DIGIT_CLASSES, load_digits_split
from .metrics import wasserstein2


def _flat_images(images: object, name: str = "images") -> Tensor:
    """Check digit images ``(n, 1, 8, 8)`` and return them flattened, ``(n, 64)``, float64 on the CPU."""
    images = as_tensor(images, name)
    if images.ndim != 4 or tuple(images.shape[1:]) != DIGIT_SHAPE:
        raise ValueError(f"{name} must be digit images of shape (n, 1, 8, 8), got {tuple(images.shape)}.")
    if not torch.is_floating_point(images):
        raise TypeError(f"{name} must be floating point, got {images.dtype}.")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contains NaN or infinite pixels.")
    return images.detach().reshape(images.shape[0], -1).double().cpu()


@lru_cache(maxsize=2)
def digit_classifier(seed: int = 0):
    """A scikit-learn ``SVC`` fitted on the flattened training split (cached: fitted once per process).

    It never sees the test split, so its accuracy on the test digits is an honest reference
    (about 99%).
    """
    from sklearn.svm import SVC

    split = load_digits_split(seed=seed)
    clf = SVC(C=10.0, gamma="scale")
    clf.fit(split.train_images.reshape(len(split.train_images), -1).numpy(), split.train_labels.numpy())
    return clf


def classify_digits(images: Tensor) -> Tensor:
    """The held-out classifier's digit for each image: ``(n, 1, 8, 8)`` → ``(n,)`` int64.

    Pixels are clipped to ``[-1, 1]`` first, the range of real digits.
    """
    flat = _flat_images(images).clamp(-1, 1).numpy()
    return torch.as_tensor(digit_classifier().predict(flat), dtype=torch.long)


def classifier_accuracy(images: Tensor, labels: Tensor) -> float:
    """The fraction of ``images`` ``(n, 1, 8, 8)`` that the classifier labels as the requested ``labels`` ``(n,)``."""
    labels = as_tensor(labels, "labels")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape (n,) = ({images.shape[0]},), got {tuple(labels.shape)}.")
    return float((classify_digits(images) == labels.cpu().long()).double().mean())


def accuracy_per_class(images: Tensor, labels: Tensor) -> np.ndarray:
    """The accuracy for each requested digit 0–9, shape ``(10,)`` (NaN for a digit never requested)."""
    labels = as_tensor(labels, "labels").cpu().long()
    hits = (classify_digits(images) == labels).double()
    return np.array([float(hits[labels == k].mean()) if bool((labels == k).any()) else float("nan")
                     for k in range(N_DIGIT_CLASSES)])


def _test_reference(n: int, seed: int) -> Tensor:
    test = load_digits_split(seed=0).test_images.reshape(-1, 64).double()
    if n > len(test):
        raise ValueError(f"at most {len(test)} images can be compared with the {len(test)} test digits, got {n}.")
    if n == len(test):
        return test
    gen = torch.Generator().manual_seed(seed)
    return test[torch.randperm(len(test), generator=gen)[:n]]


def digit_w2(images: Tensor, seed: int = 0) -> float:
    """Exact W2 between ``images`` ``(n, 1, 8, 8)`` and ``n`` held-out test digits, in flattened pixel space.

    With ``n = 450`` (the default test size) the whole test split is the reference; a smaller
    ``n`` uses a seeded random subset of it. Pixels are clipped to ``[-1, 1]``.
    """
    flat = _flat_images(images).clamp(-1, 1)
    return wasserstein2(flat, _test_reference(flat.shape[0], seed))


@lru_cache(maxsize=8)
def digit_w2_floor(n: int = 450, seed: int = 0) -> float:
    """The real-vs-real floor of :func:`digit_w2`: W2 between ``n`` random *training* digits and ``n`` test digits.

    A generator whose digits were as good as fresh real ones would score about this. (Cached.)
    """
    check_positive_int(n, "n")
    train = load_digits_split(seed=0).train_images.reshape(-1, 64).double()
    gen = torch.Generator().manual_seed(seed + 1)
    subset = train[torch.randperm(len(train), generator=gen)[:n]]
    return wasserstein2(subset, _test_reference(n, seed))


def nearest_training_distance(images: Tensor) -> Tensor:
    """Euclidean distance of each image ``(n, 1, 8, 8)`` to its nearest training digit, shape ``(n,)``."""
    flat = _flat_images(images).clamp(-1, 1)
    train = load_digits_split(seed=0).train_images.reshape(-1, 64).double()
    return torch.cdist(flat, train).min(dim=1).values


@dataclass
class MemorizationCheck:
    """Nearest-training-digit distances of generated digits and of held-out real digits.

    Attributes:
        generated: shape ``(n,)``, one distance per generated image.
        held_out: shape ``(450,)``, one distance per test digit (real digits the model never saw).
    """

    generated: np.ndarray
    held_out: np.ndarray

    @property
    def ratio(self) -> float:
        """Median generated distance over median held-out distance: near 1 is healthy, near 0 is copying."""
        return float(np.median(self.generated) / np.median(self.held_out))

    @property
    def copy_fraction(self) -> float:
        """Fraction of generated digits closer to a training digit than 99% of the held-out digits are."""
        return float((self.generated < np.quantile(self.held_out, 0.01)).mean())

    def __repr__(self) -> str:
        return (f"MemorizationCheck(median distance to the nearest training digit: generated "
                f"{np.median(self.generated):.2f}, held-out real {np.median(self.held_out):.2f}; "
                f"ratio {self.ratio:.2f}; near-copies {100 * self.copy_fraction:.1f}%)")


def memorization_check(images: Tensor) -> MemorizationCheck:
    """Compare the generated ``images`` ``(n, 1, 8, 8)`` with held-out real digits (see :class:`MemorizationCheck`)."""
    held_out = load_digits_split(seed=0).test_images
    return MemorizationCheck(generated=nearest_training_distance(images).numpy(),
                             held_out=nearest_training_distance(held_out).numpy())
