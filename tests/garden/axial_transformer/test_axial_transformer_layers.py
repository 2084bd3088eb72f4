"""Axial Transformer layers: shifts, axial positional embedding, the axial
attention layer against a float64 NumPy reference, identity-at-init blocks,
bits/dim, config round trips."""

import math

import keras
import numpy as np
import pytest

import garden
from garden.axial_transformer import axial_transformer_layers as layers


def test_shifts():
    x = np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    down = np.asarray(layers.shift_down(x))
    right = np.asarray(layers.shift_right(x))
    np.testing.assert_array_equal(down[:, 0], 0)
    np.testing.assert_array_equal(down[:, 1:], x[:, :-1])
    np.testing.assert_array_equal(right[:, :, 0], 0)
    np.testing.assert_array_equal(right[:, :, 1:], x[:, :, :-1])


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)])
def test_axial_positional_embedding_is_a_sum_of_axis_tables(shape):
    layer = layers.AxialPositionalEmbedding(shape, 6)
    x = np.zeros((1, *shape, 6), "float32")
    out = np.asarray(layer(x))[0]
    assert sum(math.prod(w.shape) for w in layer.trainable_weights) == (
        6 * sum(shape))
    tables = [np.asarray(t) for t in layer.tables]
    expected = 0.0
    for i, t in enumerate(tables):
        view = [1] * len(shape) + [6]
        view[i] = shape[i]
        expected = expected + t.reshape(view)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def _reference_axial_attention(x, layer):
    """Float64 NumPy: per-line softmax attention with the layer's weights."""
    x = x.astype(np.float64)
    w = {name: [np.asarray(v, np.float64) for v in sub.weights]
         for name, sub in (("q", layer.query), ("k", layer.key),
                           ("v", layer.value), ("o", layer.proj_out))}
    q, k, v = (x @ w[n][0] + w[n][1] for n in "qkv")
    b, n1, n2, d = x.shape
    h = layer.num_heads
    split = lambda a: a.reshape(b, n1, n2, h, d // h)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    if layer.axis == 0:  # attend along the height: columns
        q, k, v = (a.transpose(0, 2, 1, 3, 4) for a in (q, k, v))
    s = np.einsum("blthd,blshd->blhts", q, k) / np.sqrt(d // h)
    if layer.masked:
        t = s.shape[-1]
        s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = np.einsum("blhts,blshd->blthd", p, v)
    if layer.axis == 0:
        out = out.transpose(0, 2, 1, 3, 4)
    return out.reshape(b, n1, n2, d) @ w["o"][0] + w["o"][1]


@pytest.mark.parametrize("axis,masked", [(0, True), (1, True), (1, False)])
def test_axial_attention_layer_matches_numpy(axis, masked):
    keras.utils.set_random_seed(0)
    layer = layers.AxialAttention(8, 2, axis, masked=masked)
    x = np.random.default_rng(axis).standard_normal((2, 3, 5, 8))
    out = np.asarray(layer(x.astype("float32")))
    np.testing.assert_allclose(out, _reference_axial_attention(x, layer),
                               atol=2e-5)


def test_single_row_input_works():
    layer = layers.AxialAttention(8, 2, 1, masked=True)
    x = np.ones((2, 3, 5, 8), "float32")
    assert layer(x[:, :1]).shape == (2, 1, 5, 8)


@pytest.mark.parametrize("scale,identity", [(1e-10, True), (1.0, False)])
def test_block_starts_as_identity_with_tiny_residual_scale(scale, identity):
    """Official res_init_scale = 1e-10: the residual branches start ~0."""
    keras.utils.set_random_seed(0)
    block = layers.AxialTransformerBlock(16, 2, 1, masked=True,
                                         res_init_scale=scale)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 16))
    change = np.max(np.abs(np.asarray(block(x.astype("float32"))) - x))
    assert (change < 1e-3) == identity, change


@pytest.mark.parametrize("layer", [
    layers.AxialPositionalEmbedding((3, 4), 8, init_scale=2.0),
    layers.AxialAttention(8, 2, 0, masked=True, out_init_scale=0.5),
    layers.AxialTransformerBlock(8, 2, 1, masked=True, mlp_ratio=3,
                                 dropout=0.1, res_init_scale=0.5),
], ids=["pos", "attention", "block"])
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer)


def test_bits_per_dim():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 2, 2, 1, 5)).astype("float32")
    images = rng.integers(0, 5, (3, 2, 2, 1))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_p, images[..., None], -1)[..., 0]
    per_image = nll.reshape(3, -1).mean(1) / np.log(2)
    bpd = garden.axial_transformer.bits_per_dim
    np.testing.assert_allclose(bpd(logits, images), per_image.mean(),
                               rtol=1e-5)
    weights = np.array([1.0, 0.0, 3.0])
    np.testing.assert_allclose(
        bpd(logits, images, weights),
        (per_image * weights).sum() / weights.sum(), rtol=1e-5)
    uniform = np.zeros_like(logits)
    np.testing.assert_allclose(bpd(uniform, images), np.log2(5), rtol=1e-6)
