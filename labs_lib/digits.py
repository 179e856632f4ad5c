r"""Labelled image data: the interface, and scikit-learn's handwritten digits.

Guided generation needs data that come with a label: pairs :math:`(z, y)` drawn from a joint
distribution :math:`p_{\rm data}(z, y)`. :class:`~labs_lib.distributions.LabelledSampleable` adds that to
:class:`~labs_lib.distributions.Sampleable`: ``sample(n)`` still returns images only (so every
unlabelled tool, such as the noise floor of :mod:`labs_lib.metrics`, keeps working), and
``sample_labelled(n)`` returns the images *and* their labels.

The course's image data set is scikit-learn's handwritten digits (``sklearn.datasets.load_digits``):
1,797 grey-scale 8×8 images of the digits 0–9, about 180 of each, shipped inside scikit-learn,
so nothing is downloaded. Pixels (0 to 16 in the original) are scaled to :math:`[-1, 1]`,
and the images are split once, stratified by digit and seeded, into 1,347 training and 450
held-out test images. Models train on the training split only; the test split is what their
samples are compared with (:mod:`labs_lib.digit_metrics`). MNIST is an optional extra in
:mod:`labs_lib.mnist`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ._validation import as_tensor, validate_positive_int
from .distributions import LabelledSampleable

#: the digits' images have one channel of 8×8 pixels
DIGIT_SHAPE: tuple[int, int, int] = (1, 8, 8)
#: ten classes, the digits 0–9
N_DIGIT_CLASSES: int = 10


class LabelledImages(LabelledSampleable):
    """The empirical distribution of a fixed set of labelled images (sampled with replacement).

    Args:
        images: shape ``(N, channels, height, width)``, floating point.
        labels: shape ``(N,)``, integers in ``0 .. num_classes - 1``.
        num_classes: the number of classes (default: ``labels.max() + 1``).
        device: where samples are returned (the set itself stays where it was given).
    """

    def __init__(self, images: Tensor, labels: Tensor, num_classes: int | None = None,
                 device: torch.device | str | None = None):
        images, labels = as_tensor(images, "images"), as_tensor(labels, "labels")
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, channels, height, width), got {tuple(images.shape)}.")
        if not torch.is_floating_point(images):
            raise TypeError(f"images must be floating point, got {images.dtype}.")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape (N,) = ({images.shape[0]},), got {tuple(labels.shape)}.")
        if torch.is_floating_point(labels) or labels.dtype == torch.bool:
            raise TypeError(f"labels must be integers, got {labels.dtype}.")
        if images.shape[0] == 0:
            raise ValueError("the image set is empty.")
        labels = labels.long()
        n_cls = int(labels.max()) + 1 if num_classes is None else validate_positive_int(num_classes, "num_classes")
        if int(labels.min()) < 0 or int(labels.max()) >= n_cls:
            raise ValueError(f"labels must lie in 0 .. {n_cls - 1}, got values from {int(labels.min())} "
                             f"to {int(labels.max())}.")
        self.images, self.labels, self.num_classes = images, labels, n_cls
        self.shape = tuple(images.shape[1:])
        self.device = torch.device(device) if device is not None else images.device
        self._index_by_class = [torch.nonzero(labels == k).flatten() for k in range(n_cls)]

    def __len__(self) -> int:
        return self.images.shape[0]

    def sample_labelled(self, n: int, generator: torch.Generator | None = None,
                        label: int | None = None) -> tuple[Tensor, Tensor]:
        validate_positive_int(n, "n")
        if label is None:
            idx = torch.randint(len(self), (n,), generator=generator)
        else:
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < self.num_classes:
                raise ValueError(f"label must be an integer in 0 .. {self.num_classes - 1}, got {label!r}.")
            pool = self._index_by_class[label]
            if pool.numel() == 0:
                raise ValueError(f"the set holds no example of class {label}.")
            idx = pool[torch.randint(pool.numel(), (n,), generator=generator)]
        idx = idx.to(self.images.device)
        return self.images[idx].to(self.device), self.labels[idx].to(self.device)

    def to(self, device: torch.device | str) -> LabelledImages:
        """The same set, returning its samples on ``device``."""
        return LabelledImages(self.images, self.labels, self.num_classes, device)


@dataclass(frozen=True)
class DigitsSplit:
    """The digits split once into a training and a held-out test set (all on the CPU).

    Attributes:
        train_images: shape ``(n_train, 1, 8, 8)``, pixels in ``[-1, 1]``.
        train_labels: shape ``(n_train,)``, int64 digits 0–9.
        test_images: shape ``(n_test, 1, 8, 8)``.
        test_labels: shape ``(n_test,)``.
    """

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor


@lru_cache(maxsize=4)
def _split_arrays(test_size: int, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    images = (raw.images.astype(np.float32) / 16.0) * 2.0 - 1.0  # (1797, 8, 8) in [-1, 1]
    x_tr, x_te, y_tr, y_te = train_test_split(images, raw.target.astype(np.int64), test_size=test_size,
                                              stratify=raw.target, random_state=seed)
    for a in (x_tr, x_te, y_tr, y_te):
        a.setflags(write=False)
    return x_tr, y_tr, x_te, y_te


def load_digits_split(test_size: int = 450, seed: int = 0) -> DigitsSplit:
    """scikit-learn's 1,797 digits as ``[-1, 1]`` images, split (stratified, seeded) into train and test.

    The default is 1,347 training and 450 test images. The split is computed once and cached;
    every call returns fresh tensors, so changing them cannot corrupt the cache.
    """
    validate_positive_int(test_size, "test_size")
    if test_size >= 1797 - N_DIGIT_CLASSES:
        raise ValueError(f"test_size must leave training images of every digit, got {test_size} of 1797.")
    x_tr, y_tr, x_te, y_te = _split_arrays(test_size, seed)
    return DigitsSplit(torch.tensor(x_tr).unsqueeze(1), torch.tensor(y_tr),
                       torch.tensor(x_te).unsqueeze(1), torch.tensor(y_te))


class Digits(LabelledImages):
    """One split of the handwritten digits as a labelled sampler of ``(batch, 1, 8, 8)`` images.

    Args:
        split: ``"train"`` (1,347 images) or ``"test"`` (450 held-out images).
        device: where samples are returned.
        test_size, seed: the split (see :func:`load_digits_split`).
    """

    def __init__(self, split: str = "train", device: torch.device | str | None = None,
                 test_size: int = 450, seed: int = 0):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
        s = load_digits_split(test_size, seed)
        images, labels = (s.train_images, s.train_labels) if split == "train" else (s.test_images, s.test_labels)
        super().__init__(images, labels, N_DIGIT_CLASSES, device)
        self.split = split
