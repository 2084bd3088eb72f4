"""Cosine decay with linear warm-up (MAE App. A.1, Point-MAE Sec. 4)."""

import math

import keras
import numpy as np
import pytest

from official.training import CosineWithWarmup
from official.training import build_optimizer
from official.training import cosine_with_warmup


def reference(step, peak, total, warmup, floor, init=0.0):
    """MAE `util/lr_sched.py` `adjust_learning_rate`, per step."""
    if step < warmup:
        return init + (peak - init) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def test_values_at_start_end_of_warmup_and_end():
    lr = cosine_with_warmup(
        1e-3, total_steps=100, warmup_steps=10, min_learning_rate=1e-5
    )
    assert float(lr(0)) == 0.0
    np.testing.assert_allclose(float(lr(5)), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(
        float(lr(10)), 1e-3, rtol=1e-6
    )  # end of warm-up = peak
    np.testing.assert_allclose(
        float(lr(55)), 1e-5 + (1e-3 - 1e-5) / 2, rtol=1e-5
    )
    np.testing.assert_allclose(float(lr(100)), 1e-5, rtol=1e-5)  # end = min
    np.testing.assert_allclose(float(lr(1000)), 1e-5, rtol=1e-5)  # stays at min


@pytest.mark.parametrize(
    "warmup,init", [(0, 0.0), (7, 0.0), (7, 1e-4), (50, 0.0)]
)
def test_every_step_matches_the_reference(warmup, init):
    lr = CosineWithWarmup(2e-3, 50, warmup, 1e-6, initial_learning_rate=init)
    ours = np.array([float(lr(s)) for s in range(60)])
    ref = np.array(
        [reference(s, 2e-3, 50, warmup, 1e-6, init) for s in range(60)]
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)
    assert np.all(np.diff(ours[warmup:]) <= 1e-12)  # monotone after warm-up


def test_serializes_alone_and_inside_an_optimizer():
    lr = cosine_with_warmup(
        1e-3, total_steps=100, warmup_steps=10, min_learning_rate=1e-5
    )
    config = keras.saving.serialize_keras_object(lr)
    assert "garden>CosineWithWarmup" in str(config)
    revived = keras.saving.deserialize_keras_object(config)
    assert isinstance(revived, CosineWithWarmup)
    assert revived.get_config() == lr.get_config()

    optimizer = build_optimizer(
        learning_rate=1e-3, warmup_steps=10, total_steps=100
    )
    again = keras.optimizers.AdamW.from_config(optimizer.get_config())
    assert isinstance(again._learning_rate, CosineWithWarmup)
    assert (
        again._learning_rate.get_config()
        == optimizer._learning_rate.get_config()
    )


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="warmup_steps"):
        CosineWithWarmup(1e-3, total_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="total_steps"):
        CosineWithWarmup(1e-3, total_steps=0)
