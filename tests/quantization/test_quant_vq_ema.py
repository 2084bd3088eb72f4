"""EMA codebook, dead-code restart and their compiled behaviour."""

import numpy as np
import tensorflow as tf
from quant_reference import SonnetEMA
from quant_reference import laplace

from official.quantization import VectorQuantizer

K, D = 8, 3


def make_vq(codebook, cluster_size=None, **kwargs):
    layer = VectorQuantizer(K, ema=True, **kwargs)
    layer.build((None, D))
    layer.codebook.assign(codebook)
    if cluster_size is not None:
        layer.cluster_size.assign(cluster_size)
    return layer


def data(seed, n=40):
    return np.random.default_rng(seed).normal(size=(n, D)).astype("float32")


def test_ema_update_matches_numpy_for_three_steps():
    codebook = data(0, K)
    layer = make_vq(codebook, decay=0.8, epsilon=1e-3)
    ref = SonnetEMA(codebook, decay=0.8, eps=1e-3)
    assert not layer.codebook.trainable
    for step in range(3):
        z = data(10 + step)
        out = layer(z, training=True)
        idx = ref.step(z.astype(np.float64))
        np.testing.assert_array_equal(out["indices"], idx)
        np.testing.assert_allclose(layer.cluster_size.numpy(), ref.n, rtol=1e-5)
        np.testing.assert_allclose(
            layer.codebook.numpy(), ref.e, rtol=1e-4, atol=1e-5
        )


def test_first_step_closed_form():
    # From N = 1, m = e: e'_k = (d e_k + (1-d) sum_{i->k} z_i) / N~'_k.
    codebook = data(1, K)
    layer = make_vq(codebook, decay=0.5, epsilon=1e-5)
    z = data(2)
    idx = np.asarray(layer(z, training=True)["indices"])
    counts = np.bincount(idx, minlength=K)
    sums = np.zeros((K, D))
    np.add.at(sums, idx, z)
    n_new = 0.5 + 0.5 * counts
    expected = (0.5 * codebook + 0.5 * sums) / laplace(n_new, 1e-5)[:, None]
    np.testing.assert_allclose(layer.codebook.numpy(), expected, rtol=1e-5)


def test_no_ema_update_without_training():
    codebook = data(3, K)
    layer = make_vq(codebook)
    layer(data(4))
    layer(data(4), training=False)
    np.testing.assert_array_equal(layer.codebook.numpy(), codebook)
    np.testing.assert_array_equal(layer.cluster_size.numpy(), np.ones(K))


def restart_setup(ema):
    """Codes 0-3 sit on the data, 4-7 far away with low EMA usage."""
    rng = np.random.default_rng(5)
    codebook = rng.normal(size=(K, D)).astype("float32")
    codebook[4:] += 100.0
    usage = np.array([1, 1, 1, 1, 0.3, 0.3, 0.3, 2.0], "float32")
    layer = VectorQuantizer(
        K, ema=ema, decay=0.9, epsilon=1e-5, dead_code_threshold=0.5, seed=7
    )
    layer.build((None, D))
    layer.codebook.assign(codebook)
    layer.cluster_size.assign(usage)
    return layer, codebook, usage


def check_restart(ema):
    layer, codebook, usage = restart_setup(ema)
    z = data(6, n=32)
    out = layer(z, training=True)
    idx = np.asarray(out["indices"])
    assert idx.max() < 4  # far codes are never picked
    counts = np.bincount(idx, minlength=K)
    n_new = 0.9 * usage + 0.1 * counts
    # Codes 4-6 fall to 0.27 < 0.5: dead. Code 7 decays to 1.8: alive.
    dead = n_new < 0.5
    np.testing.assert_array_equal(dead, [0, 0, 0, 0, 1, 1, 1, 0])
    new = layer.codebook.numpy()
    if ema:
        sums = np.zeros((K, D))
        np.add.at(sums, idx, z)
        m = codebook * laplace(usage, 1e-5)[:, None]
        live = (0.9 * m + 0.1 * sums) / laplace(n_new, 1e-5)[:, None]
    else:
        live = codebook
    np.testing.assert_allclose(new[~dead], live[~dead], rtol=1e-5)
    # Dead codes become distinct encoder outputs of this batch.
    for k in np.flatnonzero(dead):
        assert np.any(np.all(z == new[k], axis=-1)), k
    assert len({tuple(r) for r in new[dead]}) == dead.sum()
    np.testing.assert_allclose(layer.cluster_size.numpy()[dead], 0.5)
    np.testing.assert_allclose(
        layer.cluster_size.numpy()[~dead], n_new[~dead], rtol=1e-6
    )
    return new


def test_dead_codes_restart_ema():
    check_restart(ema=True)


def test_dead_codes_restart_gradient_codebook():
    check_restart(ema=False)


def test_restart_is_seeded_and_training_only():
    first = check_restart(ema=True)
    second = check_restart(ema=True)
    np.testing.assert_array_equal(first, second)
    layer, codebook, usage = restart_setup(ema=True)
    layer(data(6, n=32), training=False)
    np.testing.assert_array_equal(layer.codebook.numpy(), codebook)
    np.testing.assert_array_equal(layer.cluster_size.numpy(), usage)


def test_ema_and_restart_inside_xla_function():
    eager, _, _ = restart_setup(ema=True)
    compiled, _, _ = restart_setup(ema=True)
    z = tf.constant(data(6, n=32))

    @tf.function(jit_compile=True)
    def train_step(x):
        return compiled(x, training=True)

    out_c = train_step(z)
    out_e = eager(z, training=True)
    np.testing.assert_array_equal(out_c["indices"], out_e["indices"])
    np.testing.assert_allclose(out_c["loss"], out_e["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        compiled.cluster_size.numpy(), eager.cluster_size.numpy(), rtol=1e-5
    )
    # XLA draws a different random stream than eager TF (stateless RNG
    # algorithm differs), so only the live codes are compared exactly;
    # restarted codes must be batch vectors in both.
    dead = eager.cluster_size.numpy() == 0.5
    assert dead.sum() == 3
    np.testing.assert_allclose(
        compiled.codebook.numpy()[~dead],
        eager.codebook.numpy()[~dead],
        rtol=1e-5,
    )
    for row in compiled.codebook.numpy()[dead]:
        assert np.any(np.all(z.numpy() == row, axis=-1))
    # A second compiled step keeps updating the variables.
    before = compiled.cluster_size.numpy()
    train_step(z)
    assert not np.allclose(compiled.cluster_size.numpy(), before)


def test_restart_draws_distinct_batch_vectors():
    # All 8 codes dead and exactly 8 vectors: the restart must be a
    # permutation of the batch (sampling with replacement would repeat a
    # vector with probability 1 - 8!/8^8 = 0.998).
    layer = VectorQuantizer(
        K, ema=True, decay=0.9, dead_code_threshold=5.0, seed=3
    )
    layer.build((None, D))
    z = data(8, n=K)
    layer(z, training=True)
    new = layer.codebook.numpy()
    order = np.lexsort(new.T)
    np.testing.assert_array_equal(new[order], z[np.lexsort(z.T)])
