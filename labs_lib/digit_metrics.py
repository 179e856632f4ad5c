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
* **Memorization** (:func:`memorization_report`): how far each generated image is from its nearest
  training image, compared with the same distance for held-out real digits. A model that copies its
  training set sits much closer than real unseen digits do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ._validation import as_tensor, validate_positive_int
from .digits import DIGIT_SHAPE, N_DIGIT_CLASSES, load_digits_split
from .metrics import frechet_distance, wasserstein2


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


def classifier_confidence(images: Tensor) -> Tensor:
    """How sure a classifier is of each image's digit: ``(n, 1, 8, 8)`` → ``(n,)`` float64 in ``[0.1, 1]``.

    The probability that :func:`digit_feature_network` (a small neural classifier fitted on the
    training split) gives its most likely digit, pixels clipped to ``[-1, 1]``. About 0.99 on the
    held-out real digits. It is *not* a measure of realism: the network was never shown anything
    but digits: it is sure of blends of two digits (Lab 10 measures it), and of an empty image.
    """
    flat = _flat_images(images).clamp(-1, 1).numpy()
    return torch.from_numpy(digit_feature_network().predict_proba(flat).max(axis=1))


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
    validate_positive_int(n, "n")
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
class MemorizationReport:
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
        return (f"MemorizationReport(median distance to the nearest training digit: generated "
                f"{np.median(self.generated):.2f}, held-out real {np.median(self.held_out):.2f}; "
                f"ratio {self.ratio:.2f}; near-copies {100 * self.copy_fraction:.1f}%)")


def memorization_report(images: Tensor) -> MemorizationReport:
    """Compare the generated ``images`` ``(n, 1, 8, 8)`` with held-out real digits (see :class:`MemorizationReport`)."""
    held_out = load_digits_split(seed=0).test_images
    return MemorizationReport(generated=nearest_training_distance(images).numpy(),
                             held_out=nearest_training_distance(held_out).numpy())


# --- the calibrated verdict on generated digits --------------------------------------------------
#
# Accuracy says whether guidance works; W2 in pixel space rewards lost diversity (real digits shrunk
# 20% towards their class means score *below* the real-vs-real floor). The yardstick below reports
# three figures that each see one kind of mistake, each read against the same figure for sets of
# real training digits of the same size, and is calibrated in tests/test_digit_metrics.py on real
# digits (accepted) and on digits shrunk towards their class means and blurred (rejected).

#: The accepted range of each figure of :class:`DigitYardstick`.
DIGIT_TOLERANCES = {"spread": (0.92, 1.08), "features": 1.3, "two-sample": 0.06}


@lru_cache(maxsize=1)
def digit_feature_network():
    """A small scikit-learn ``MLPClassifier`` (64 hidden units) fitted on the training split only (cached).

    Its hidden layer is the feature space of the Fréchet distance and the two-sample test: features
    that a digit classifier found useful, where a pixel-space distance weighs every pixel alike.
    """
    from sklearn.neural_network import MLPClassifier

    split = load_digits_split(seed=0)
    net = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, solver="lbfgs", max_iter=300, random_state=0)
    net.fit(split.train_images.reshape(len(split.train_images), -1).numpy(), split.train_labels.numpy())
    return net


def digit_features(images: Tensor) -> np.ndarray:
    """The feature network's hidden layer for each image: ``(n, 1, 8, 8)`` → ``(n, 64)`` float64 (no clipping)."""
    net = digit_feature_network()
    flat = _flat_images(images).numpy()
    return np.maximum(flat @ net.coefs_[0] + net.intercepts_[0], 0.0)


@lru_cache(maxsize=1)
def _training_spread() -> np.ndarray:
    """Each class's within-class spread in the training split, shape ``(10,)``."""
    split = load_digits_split(seed=0)
    flat = split.train_images.reshape(len(split.train_images), -1).double()
    return np.array([_spread(flat[split.train_labels == k]) for k in range(N_DIGIT_CLASSES)])


def _spread(flat: Tensor) -> float:
    """Root mean squared distance of the rows of ``flat`` ``(m, 64)`` to their mean."""
    return float((flat - flat.mean(0)).pow(2).sum(1).mean().sqrt())


def within_class_spread(images: Tensor, labels: Tensor) -> float:
    """Mean over classes of (spread of the images of class k) / (spread of the training digits of class k).

    The spread is the root mean squared pixel distance to the class mean; 1 means as varied as real
    digits, 0.8 means every image 20% closer to its class mean than real ones are. Every class must
    appear at least twice in ``labels`` ``(n,)``.
    """
    flat = _flat_images(images)
    labels = as_tensor(labels, "labels").cpu().long()
    if labels.shape != (flat.shape[0],):
        raise ValueError(f"labels must have shape (n,) = ({flat.shape[0]},), got {tuple(labels.shape)}.")
    counts = torch.bincount(labels, minlength=N_DIGIT_CLASSES)
    if len(counts) != N_DIGIT_CLASSES or bool((counts < 2).any()):
        raise ValueError(f"within_class_spread needs every digit 0-9 at least twice, got counts {counts.tolist()}.")
    ratios = [_spread(flat[labels == k]) / s for k, s in enumerate(_training_spread())]
    return float(np.mean(ratios))


def two_sample_accuracy(images: Tensor, reference: Tensor, seed: int = 0) -> float:
    """How well a classifier tells ``images`` from ``reference`` (both ``(n, 1, 8, 8)``): 0.5 means not at all.

    A logistic regression on the feature network's features, scored by balanced accuracy with
    5-fold cross-validation (stratified, shuffled with ``seed``): a classifier two-sample test.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = digit_features(images), digit_features(reference)
    features = np.concatenate([a, b])
    which = np.r_[np.zeros(len(a)), np.ones(len(b))]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(cross_val_score(classifier, features, which, cv=folds, scoring="balanced_accuracy").mean())


def held_out_half(which: str) -> tuple[Tensor, Tensor]:
    """One half of the 450 held-out digits, ``"validation"`` or ``"test"``: images ``(n, 1, 8, 8)`` and labels
    ``(n,)``, n = 222 and 228 (each class is split in two, so the halves differ by a few digits).

    The split is stratified by class and fixed (seeded), so a guidance scale chosen on the
    validation half is then reported on digits it was not chosen on.
    """
    if which not in ("validation", "test"):
        raise ValueError(f"which must be 'validation' or 'test', got {which!r}.")
    split = load_digits_split(seed=0)
    gen = torch.Generator().manual_seed(12)
    halves: list[list[Tensor]] = [[], []]
    for k in range(N_DIGIT_CLASSES):
        idx = torch.nonzero(split.test_labels == k).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        halves[0].append(idx[: len(idx) // 2])
        halves[1].append(idx[len(idx) // 2:])
    chosen = torch.cat(halves[0 if which == "validation" else 1])
    return split.test_images[chosen], split.test_labels[chosen]


def training_sets(counts: Tensor, n_sets: int, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    """``n_sets`` random sets of training digits with ``counts[k]`` images of digit k: ``[(images, labels), ...]``."""
    split = load_digits_split(seed=0)
    gen = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(split.train_labels == k).flatten() for k in range(N_DIGIT_CLASSES)]
    sets = []
    for _ in range(validate_positive_int(n_sets, "n_sets")):
        idx = torch.cat([members[torch.randperm(len(members), generator=gen)[: int(c)]]
                         for members, c in zip(by_class, counts.tolist())])
        sets.append((split.train_images[idx], split.train_labels[idx]))
    return sets


@dataclass(frozen=True)
class DigitReport:
    """The figures of a :class:`DigitYardstick` for one set of generated digits.

    Attributes:
        accuracy: the held-out classifier's agreement with the requested labels.
        spread: :func:`within_class_spread` (accepted inside ``DIGIT_TOLERANCES["spread"]``).
        features: Fréchet distance to the reference in feature space, over the real-vs-real floor's median.
        two_sample: :func:`two_sample_accuracy` minus the real-vs-real floor's median.
    """

    accuracy: float
    spread: float
    features: float
    two_sample: float

    @property
    def checks(self) -> dict[str, bool]:
        lo, hi = DIGIT_TOLERANCES["spread"]
        return {"spread": lo <= self.spread <= hi, "features": self.features <= DIGIT_TOLERANCES["features"],
                "two-sample": self.two_sample <= DIGIT_TOLERANCES["two-sample"]}

    @property
    def passed(self) -> bool:
        """True when the digits are as varied as real ones and as hard to tell from them."""
        return all(self.checks.values())

    def brief(self) -> str:
        c = self.checks
        mark = lambda name: "✓" if c[name] else "✗"  # noqa: E731
        return (f"accuracy {100 * self.accuracy:5.1f}%  spread {self.spread:.2f} {mark('spread')}  "
                f"features {self.features:.2f}× {mark('features')}  two-sample {self.two_sample:+.2f} "
                f"{mark('two-sample')}")

    def verdict(self) -> str:
        failed = [name for name, ok in self.checks.items() if not ok]
        return self.brief() + ("   ✓ as good as real digits" if not failed else "   ✗ " + ", ".join(failed) + " off")


class DigitYardstick:
    """Judges generated digits, with the labels they were asked for, against one half of the held-out digits.

    Figures (all without clipping the pixels):

    * **spread** — :func:`within_class_spread`: lost diversity (digits drawn towards their class's
      typical shape) shows as a ratio below 1; real digits score 1 within about ±0.02.
    * **features** — the Fréchet distance between the feature-network features of the digits and of
      the reference half, divided by the median of the same distance for real training digits
      (``floor_repeats`` sets of the same size and class counts).
    * **two-sample** — a classifier's balanced accuracy at telling the digits from the reference
      half, minus the same accuracy for real training digits (median over the floor sets).

    Args:
        reference: ``"validation"`` (to choose settings) or ``"test"`` (to report them).
        floor_repeats: real sets behind each floor.
        seed: seeds the real sets and the cross-validation folds.
    """

    def __init__(self, reference: str = "test", floor_repeats: int = 10, seed: int = 0):
        validate_positive_int(floor_repeats, "floor_repeats")
        self.reference_name = reference
        self.reference, _ = held_out_half(reference)
        self.seed, self.floor_repeats = seed, floor_repeats
        self._floors: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    def floors(self, counts: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Fréchet distances and two-sample accuracies of real sets, each shape ``(floor_repeats,)`` (cached).

        The real sets are training digits with the class counts ``counts`` ``(10,)`` of the digits judged.
        """
        key = tuple(counts.tolist())
        if key not in self._floors:
            ref = torch.from_numpy(digit_features(self.reference))
            sets = training_sets(counts, self.floor_repeats, seed=self.seed + 1)
            fd = [frechet_distance(torch.from_numpy(digit_features(x)), ref) for x, _ in sets]
            c2 = [two_sample_accuracy(x, self.reference, seed=self.seed) for x, _ in sets]
            self._floors[key] = (np.asarray(fd), np.asarray(c2))
        return self._floors[key]

    def __call__(self, images: Tensor, labels: Tensor) -> DigitReport:
        """Judge ``images`` ``(n, 1, 8, 8)`` generated for the requested ``labels`` ``(n,)``."""
        flat = _flat_images(images)
        labels = as_tensor(labels, "labels").cpu().long()
        counts = torch.bincount(labels, minlength=N_DIGIT_CLASSES)
        fd_floor, c2_floor = self.floors(counts)
        fd = frechet_distance(torch.from_numpy(digit_features(images)),
                              torch.from_numpy(digit_features(self.reference)))
        return DigitReport(accuracy=classifier_accuracy(images, labels),
                           spread=within_class_spread(flat.reshape(-1, *DIGIT_SHAPE), labels),
                           features=fd / float(np.median(fd_floor)),
                           two_sample=two_sample_accuracy(images, self.reference, seed=self.seed)
                           - float(np.median(c2_floor)))

    def __repr__(self) -> str:
        return f"DigitYardstick(reference={self.reference_name!r}, {len(self.reference)} held-out digits)"
