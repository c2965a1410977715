"""The procedural Yin-Yang data set."""

from __future__ import annotations

import numpy as np

from qgen.datasets import yinyang


def test_splits_are_balanced_deterministic_and_inside_the_disc():
    points, labels = yinyang.split("test")
    assert points.shape == (1000, 4)
    again, labels_again = yinyang.split("test")
    np.testing.assert_array_equal(points, again)
    np.testing.assert_array_equal(labels, labels_again)
    counts = np.bincount(labels, minlength=3)
    assert counts.min() > 280  # the class is drawn uniformly first
    x, y = points[:, 0], points[:, 1]
    assert np.all(np.hypot(x - 0.5, y - 0.5) <= 0.5)
    np.testing.assert_allclose(points[:, 2:], 1 - points[:, :2])
    train, _ = yinyang.split("train")
    assert len(train) == 5000 and not np.array_equal(train[:1000], points)


def test_classes_follow_the_geometry():
    assert yinyang.which_class(0.75, 0.5) == 2  # the right dot
    assert yinyang.which_class(0.25, 0.5) == 2  # the left dot
    assert yinyang.which_class(0.5, 0.9) == 1  # upper half, far from the right circle: yin
    assert yinyang.which_class(0.5, 0.1) == 0  # lower half, far from the left circle: yang
    assert yinyang.which_class(0.25, 0.7) == 1  # inside the left small circle ring: yin
    assert yinyang.which_class(0.75, 0.3) == 0  # inside the right small circle ring: yang


def test_spike_times_encode_values_linearly():
    times = yinyang.spike_times(np.array([[0.0, 1.0, 0.5, 0.25]]))
    np.testing.assert_allclose(times, [[0.15, 2.0, 1.075, 0.6125, 0.9]])
