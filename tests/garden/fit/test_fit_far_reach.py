"""Behavioural proxy (spec `fit.md` Sec. 6.4 (a)): FIT learns a label that
depends on two distant groups; with the global path cut it cannot."""

import numpy as np
import pytest

from garden.fit.fit_far_reach import far_reach_accuracy
from garden.fit.fit_far_reach import far_reach_batch
from garden.fit.fit_far_reach import train_far_reach

# Measured (400 steps, batch 64, lr 2e-3, 1024 test images): FIT "(1)1(1)"
# 1.000; the same depth without global layers "(2)" 0.532 (chance 0.5).
FIT_MIN, CUT_MAX = 0.9, 0.65


def test_label_needs_both_groups():
    x, y = far_reach_batch(np.random.default_rng(0), 512)
    a, b = x[:, 0, 0, 0], x[:, -1, -1, 0]
    assert np.all(x[:, :4, :4, 0] == a[:, None, None])
    assert np.all(x[:, -4:, -4:, 0] == b[:, None, None])
    assert np.array_equal(y, (a != b).astype(y.dtype))
    assert 0.4 < y.mean() < 0.6  # balanced; neither bit alone predicts y
    assert abs(np.mean(y == a) - 0.5) < 0.1


@pytest.mark.large
@pytest.mark.parametrize("layers,cut", [("(1)1(1)", False), ("(2)", True)])
def test_far_reach(layers, cut):
    model, _ = train_far_reach(layers, steps=400, learning_rate=2e-3)
    acc = far_reach_accuracy(model)
    if cut:
        assert acc < CUT_MAX, acc
    else:
        assert acc > FIT_MIN, acc
