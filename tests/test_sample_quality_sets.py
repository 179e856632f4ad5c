"""``sample_quality`` over several independent sample sets (median of their distances) and
``SampleQuality.verdict``: the single-set behaviour is unchanged, the median is what it says,
and the verdict's mark follows the ratio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labs_lib import GaussianMixture, Moons, energy_distance, noise_floor, sample_quality, wasserstein2
from labs_lib.metrics import NoiseFloor, SampleQuality

TARGET = GaussianMixture.symmetric_2d(3, radius=2.0, std=0.5)


def sets(k: int, n: int = 200, seed: int = 5, shift: float = 0.0):
    gen = torch.Generator().manual_seed(seed)
    return [TARGET.sample(n, generator=gen) + shift for _ in range(k)]


def test_one_set_in_a_list_is_the_single_set_case():
    (x,) = sets(1)
    a, b = sample_quality(x, TARGET, repeats=4, seed=2), sample_quality([x], TARGET, repeats=4, seed=2)
    assert a.value == b.value and np.array_equal(a.floor.values, b.floor.values)
    assert repr(a) == repr(b) and a.sets == b.sets == 1
    assert "median of" not in repr(a)


@pytest.mark.parametrize("container", [list, tuple])
def test_median_over_sets_with_fresh_references(container):
    xs = sets(3)
    q = sample_quality(container(xs), TARGET, repeats=4, seed=7)
    gen = torch.Generator().manual_seed(7)  # the references are drawn one after the other
    expected = np.median([wasserstein2(x, TARGET.sample(200, generator=gen)) for x in xs])
    assert q.value == pytest.approx(expected)
    assert q.sets == 3 and q.floor.n == 200
    # the floor is the same as for a single set of that size
    assert np.array_equal(q.floor.values, noise_floor(TARGET, wasserstein2, 200, 4, seed=8).values)
    assert repr(q) == (f"W2 = {q.value:.3f} (median of 3 sets of 200; noise floor {q.floor.median:.3f}, "
                       f"ratio {q.ratio:.2f})")


def test_tensor_split_is_accepted_and_other_distances_work():
    x = torch.cat(sets(3))
    q = sample_quality(x.split(200), TARGET, distance=energy_distance, name="energy", repeats=3)
    assert q.sets == 3 and repr(q).startswith("energy = ")


def test_median_of_sets_scatters_less_than_one_set():
    # Moons at n = 500: the two moons' proportions fluctuate, so single-set W2 ratios of a
    # perfect sampler spread widely. The median of 3 sets must spread less (seeded: no flake).
    moons = Moons()
    gen = torch.Generator().manual_seed(0)
    draws = [moons.sample(500, generator=gen) for _ in range(18)]
    singles = [sample_quality(x, moons, repeats=1, seed=100 + i).value for i, x in enumerate(draws)]
    triples = [sample_quality(draws[i:i + 3], moons, repeats=1, seed=200 + i).value for i in range(0, 18, 3)]
    assert np.std(triples) < np.std(singles)


def test_sets_must_share_a_shape_and_exist():
    with pytest.raises(ValueError, match="every sample set must have the same shape"):
        sample_quality([torch.zeros(10, 2), torch.zeros(12, 2)], TARGET)
    with pytest.raises(ValueError, match="non-empty list"):
        sample_quality([], TARGET)
    with pytest.raises(ValueError, match=r"samples must have 2 axes"):
        sample_quality([torch.zeros(10)], TARGET)


def test_sample_quality_gives_a_figure_not_a_verdict():
    # Verdicts come from the calibrated yardstick; W2 at these sizes cannot see errors inside modes.
    floor = NoiseFloor(values=np.array([1.0, 2.0, 3.0]), n=50)  # median 2
    q = SampleQuality("W2", 2.4, floor)
    assert q.ratio == pytest.approx(1.2) and not hasattr(q, "verdict")
    assert "✓" not in repr(q) and "ratio 1.20" in repr(q)


def test_shifted_samples_are_far_from_the_floor():
    q = sample_quality(sets(3, shift=1.5), TARGET, repeats=4)
    assert q.ratio > 1.5
