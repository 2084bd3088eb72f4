"""VectorQuantizer (gradient codebook): assignment, loss, gradients."""

import numpy as np
import pytest
import tensorflow as tf
from quant_reference import distances
from quant_reference import perplexity
from quant_reference import vq

from official.quantization import VectorQuantizer

K, D = 8, 3


def make_vq(**kwargs):
    layer = VectorQuantizer(K, **kwargs)
    layer.build((None, D))
    codebook = np.random.default_rng(0).normal(size=(K, D)).astype("float32")
    layer.codebook.assign(codebook)
    return layer, codebook


@pytest.mark.parametrize("ema", [False, True])
def test_argmin_quantized_and_loss_match_numpy(ema):
    layer, codebook = make_vq(beta=0.3, ema=ema)
    z = np.random.default_rng(1).normal(size=(4, 5, D)).astype("float32")
    out = layer(z)
    idx, q, loss = vq(z.astype(np.float64), codebook, 0.3, ema)
    np.testing.assert_array_equal(out["indices"], idx)
    np.testing.assert_allclose(out["quantized"], q, atol=1e-6)
    np.testing.assert_allclose(out["loss"], loss, rtol=1e-5)
    assert out["indices"].dtype == tf.int32
    # The chosen code is a true argmin of the directly computed distances.
    dist = distances(z.reshape(-1, D), codebook)
    np.testing.assert_allclose(
        dist[np.arange(20), np.ravel(out["indices"])], dist.min(-1), atol=1e-5
    )


def test_straight_through_reaches_encoder():
    layer, _ = make_vq()
    x = tf.constant(np.random.default_rng(2).normal(size=(6, 4)), tf.float32)
    w_enc = tf.Variable(
        np.random.default_rng(3).normal(size=(4, D)), dtype=tf.float32
    )
    g = tf.constant(np.random.default_rng(4).normal(size=(6, D)), tf.float32)
    with tf.GradientTape() as tape:
        z = x @ w_enc
        total = tf.reduce_sum(g * layer(z)["quantized"])
    grad = tape.gradient(total, w_enc)
    # d/dW sum(g * z) = x^T g: the quantizer is the identity backwards.
    np.testing.assert_allclose(grad, tf.transpose(x) @ g, rtol=1e-5)


def test_loss_gradients_follow_stop_gradient_placement():
    beta = 0.25
    layer, codebook = make_vq(beta=beta)
    z = tf.constant(np.random.default_rng(5).normal(size=(10, D)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        loss = layer(z)["loss"]
    idx = distances(z.numpy(), codebook).argmin(-1)
    q = codebook[idx]
    n = z.numpy().size
    # Encoder sees only the commitment term: 2 beta (z - e) / n.
    np.testing.assert_allclose(
        tape.gradient(loss, z), 2 * beta * (z.numpy() - q) / n, atol=1e-6
    )
    # Codebook sees only the codebook term: sum_{i->k} 2 (e_k - z_i) / n.
    ref = np.zeros_like(codebook)
    np.add.at(ref, idx, 2 * (q - z.numpy()) / n)
    np.testing.assert_allclose(
        tf.convert_to_tensor(tape.gradient(loss, layer.codebook)),
        ref,
        atol=1e-6,
    )


def test_perplexity_numpy_and_uniform():
    layer, codebook = make_vq()
    z = np.random.default_rng(6).normal(size=(50, D)).astype("float32")
    out = layer(z)
    np.testing.assert_allclose(
        out["perplexity"], perplexity(out["indices"], K), rtol=1e-5
    )
    uniform = np.tile(codebook, (3, 1))  # every code used 3 times
    np.testing.assert_allclose(layer(uniform)["perplexity"], K, rtol=1e-5)
    np.testing.assert_allclose(layer(uniform[:1])["perplexity"], 1.0)


def test_no_update_outside_training():
    layer, codebook = make_vq(dead_code_threshold=10.0)
    z = np.random.default_rng(7).normal(size=(16, D)).astype("float32")
    layer(z)
    layer(z, training=False)
    np.testing.assert_array_equal(layer.codebook.numpy(), codebook)
    np.testing.assert_array_equal(layer.cluster_size.numpy(), np.ones(K))


def test_gradient_codebook_is_not_moved_by_training_call():
    layer, codebook = make_vq(decay=0.9)
    z = np.random.default_rng(8).normal(size=(16, D)).astype("float32")
    out = layer(z, training=True)
    np.testing.assert_array_equal(layer.codebook.numpy(), codebook)
    counts = np.bincount(np.ravel(out["indices"]), minlength=K)
    np.testing.assert_allclose(
        layer.cluster_size.numpy(), 0.9 + 0.1 * counts, rtol=1e-6
    )
    assert layer.codebook.trainable
    assert not layer.cluster_size.trainable


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_codes"):
        VectorQuantizer(0)
    with pytest.raises(ValueError, match="decay"):
        VectorQuantizer(4, decay=1.0)
