"""Shared blocks in official/layers, official/attention/layer and
official/ops/masking."""

import keras
import numpy as np

from official.attention import MultiHeadAttention
from official.layers import MLP
from official.layers import TransformerBlock
from official.layers import sincos_2d
from official.ops.masking import random_masking_indices


def test_masking_batch_of_many():
    noise = np.random.RandomState(0).rand(5, 10).astype("float32")
    ids_keep, ids_masked, ids_restore, mask = (
        np.asarray(t) for t in random_masking_indices(noise, 4))
    order = np.argsort(noise, axis=1, kind="stable")
    np.testing.assert_array_equal(ids_keep, order[:, :4])
    np.testing.assert_array_equal(ids_masked, order[:, 4:])
    np.testing.assert_array_equal(np.take_along_axis(order, ids_restore, 1),
                                  np.tile(np.arange(10), (5, 1)))
    assert mask.shape == (5, 10) and np.all(mask.sum(1) == 6)
    for b in range(5):
        assert np.all(mask[b, ids_keep[b]] == 0)
        assert np.all(mask[b, ids_masked[b]] == 1)


def test_projections_start_different_with_linear_fans():
    layer = MultiHeadAttention(num_heads=4, key_dim=16)
    layer.build((2, 5, 64))
    kernels = [np.asarray(d.kernel) for d in (
        layer.query_dense, layer.key_dense, layer.value_dense,
        layer.output_dense)]
    for k in kernels:
        assert k.shape == (64, 64)  # PyTorch Linear layout (in, out)
        # Xavier uniform with fan_in = fan_out = 64: limit sqrt(6/128).
        assert np.abs(k).max() <= np.sqrt(6 / 128) + 1e-6
        assert np.abs(k).max() > 0.8 * np.sqrt(6 / 128)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(kernels[i], kernels[j])


def test_mlp_layers_start_different():
    mlp = MLP(32)
    mlp.build((2, 32))
    assert not np.allclose(np.asarray(mlp.fc1.kernel),
                           np.asarray(mlp.fc2.kernel).T)


def test_transformer_block_parameter_count_and_mask():
    block = TransformerBlock(num_heads=4)
    x = np.random.RandomState(0).rand(2, 6, 32).astype("float32")
    out = np.asarray(block(x))
    params = sum(int(np.prod(w.shape)) for w in block.trainable_weights)
    assert params == 12 * 32 * 32 + 13 * 32  # timm Block
    # A key masked out for every query must not change the output of others.
    mask = np.ones((2, 6, 6), bool)
    mask[:, :, 5] = False
    x2 = x.copy()
    x2[:, 5] += 10.0
    a = np.asarray(block(x, attention_mask=mask))
    b = np.asarray(block(x2, attention_mask=mask))
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-5)
    assert not np.allclose(out[:, :5], a[:, :5])


def test_sincos_2d_layout():
    table = sincos_2d(8, 3, cls_token=True)
    assert table.shape == (10, 8)
    assert np.all(table[0] == 0)
    # First half encodes the column: rows in the same column share it.
    grid = table[1:].reshape(3, 3, 8)
    np.testing.assert_allclose(grid[0, :, :4], grid[2, :, :4])
    np.testing.assert_allclose(grid[:, 0, 4:], grid[:, 2, 4:])
    keras.backend.clear_session()
