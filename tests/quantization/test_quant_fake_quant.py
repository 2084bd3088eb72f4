"""Fake int8 quantization against a NumPy reference (official/quantization)."""

import numpy as np
import pytest
import tensorflow as tf

from official.quantization import FakeQuant
from official.quantization import fake_quant


def np_fake_quant(x, axis=None, num_bits=8):
    """NumPy reference: s = max|x| / (2^(b-1)-1), round half to even."""
    qmax = np.float32(2 ** (num_bits - 1) - 1)
    x = np.asarray(x, np.float32)
    if axis is None:
        red = tuple(range(x.ndim))
    else:
        red = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    scale = np.max(np.abs(x), axis=red, keepdims=True) / qmax
    return np.clip(np.round(x / scale), -qmax, qmax) * scale, scale


@pytest.mark.parametrize(
    "shape,axis", [((5, 7), None), ((5, 7), 0), ((5, 7), -1), ((3, 4, 6), 1)]
)
def test_matches_numpy(shape, axis):
    x = np.random.default_rng(0).normal(size=shape).astype("float32") * 3
    ref, scale = np_fake_quant(x, axis)
    out = np.asarray(fake_quant(x, axis=axis))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * scale.max())
    levels = out / scale
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert np.abs(np.round(levels)).max() == 127  # the abs-max hits 127


def test_scale_is_max_over_127_and_ties_to_even():
    x = np.array([127.0, 0.5, 1.5, 2.5, -2.5, 126.6], "float32")
    out = np.asarray(fake_quant(x))  # scale exactly 1
    np.testing.assert_array_equal(out, [127.0, 0.0, 2.0, 2.0, -2.0, 127.0])


def test_per_channel_scales_are_independent():
    x = np.array([[0.013, 100.0], [-0.004, 50.0], [0.007, -3.0]], "float32")
    out = np.asarray(fake_quant(x, axis=-1))  # columns scaled separately
    for c in range(2):
        np.testing.assert_allclose(out[:, c], fake_quant(x[:, c]), atol=1e-7)
    # Per tensor, the small column would collapse to 0 (scale 100/127).
    np.testing.assert_array_equal(np.asarray(fake_quant(x))[:, 0], 0.0)
    assert np.all(out[:, 0] != 0.0)


def test_num_bits_4():
    x = np.linspace(-1, 1, 11).astype("float32")
    ref, _ = np_fake_quant(x, num_bits=4)
    np.testing.assert_allclose(fake_quant(x, num_bits=4), ref, atol=1e-6)
    assert len(np.unique(np.asarray(fake_quant(x, num_bits=4)))) <= 15


def test_zero_channel_gives_zeros_not_nan():
    x = np.array([[0.0, 1.0], [0.0, -2.0]], "float32")
    out = np.asarray(fake_quant(x, axis=-1))
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, 0], [0.0, 0.0])


def test_gradient_is_identity_dynamic():
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 6)), tf.float32)
    w = tf.constant(np.random.default_rng(2).normal(size=(4, 6)), tf.float32)
    for axis in (None, 0, -1):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(w * fake_quant(x, axis=axis))
        np.testing.assert_allclose(tape.gradient(y, x), w, atol=1e-6)


def test_static_range_clips_value_and_gradient():
    x = tf.constant([-3.0, -1.0, 0.3, 1.9, 2.5], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fake_quant(x, max_value=2.0)
        total = tf.reduce_sum(y)
    s = 2.0 / 127
    ref = np.clip(np.round(np.clip(x.numpy(), -2, 2) / s), -127, 127) * s
    np.testing.assert_allclose(y, ref, atol=1e-6)
    np.testing.assert_array_equal(tape.gradient(total, x), [0, 1, 1, 1, 0])


def test_layer_config_round_trip():
    layer = FakeQuant(axis=-1, num_bits=6, max_value=None, name="fq")
    clone = FakeQuant.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = np.random.default_rng(3).normal(size=(2, 5)).astype("float32")
    np.testing.assert_allclose(clone(x), np_fake_quant(x, -1, 6)[0], atol=1e-6)
