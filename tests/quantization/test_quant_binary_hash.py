"""Binary hashing (sign + straight-through) and the Hamming identity."""

import numpy as np
import pytest
import tensorflow as tf

from official.quantization import BinaryHash
from official.quantization import binary_hash
from official.quantization import hamming_distance
from official.quantization import pairwise_hamming_distance


def test_codes_values():
    x = np.array([-2.0, -0.1, 0.0, 0.1, 3.0], "float32")
    np.testing.assert_array_equal(binary_hash(x), [-1, -1, 1, 1, 1])
    np.testing.assert_array_equal(binary_hash(x, "01"), [0, 0, 1, 1, 1])


def test_straight_through_gradient():
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 8)), tf.float32)
    w = tf.constant(np.random.default_rng(1).normal(size=(3, 8)), tf.float32)
    for codes, factor in (("pm1", 1.0), ("01", 0.5)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(w * binary_hash(x, codes))
        np.testing.assert_allclose(tape.gradient(y, x), factor * w, atol=1e-6)


def test_hamming_identity_against_bit_count():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 32)).astype("float32")
    b = rng.normal(size=(5, 32)).astype("float32")
    ca, cb = np.asarray(binary_hash(a)), np.asarray(binary_hash(b))
    ref = (ca[:, None, :] != cb[None, :, :]).sum(-1)
    np.testing.assert_array_equal(pairwise_hamming_distance(ca, cb), ref)
    np.testing.assert_array_equal(
        hamming_distance(ca[:, None, :], cb[None, :, :]), ref
    )
    # {0, 1} codes give the same distances.
    za, zb = (ca + 1) / 2, (cb + 1) / 2
    np.testing.assert_array_equal(
        pairwise_hamming_distance(za, zb, codes="01"), ref
    )
    np.testing.assert_array_equal(hamming_distance(ca, ca), 0.0)
    np.testing.assert_array_equal(hamming_distance(ca, -ca), 32.0)


def test_layer_and_config():
    layer = BinaryHash(codes="01", name="bh")
    clone = BinaryHash.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = np.array([[-1.0, 2.0]], "float32")
    np.testing.assert_array_equal(clone(x), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="codes"):
        BinaryHash(codes="pm")
