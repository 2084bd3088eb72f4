"""Shared-QK in `MultiHeadAttention(kernel="lsh")` (Reformer, Kitaev et al.
2020 Sec. 3 "Shared-QK Transformer"; spec efficient_attention_survey.md
Sec. 8.2): the kernel derives its keys from the queries, so the layer owns
no key projection.

- Parameter count 2·D·D + 2·D (query, value) + D·D + D (output); the only
  other weight is the non-trainable `lsh_rotations`. Against the old layer
  (a separate, unused `key` EinsumDense) this count test fails by D·D + D.
- The layer equals the functional `attention(q, q, v, kernel="lsh",
  rotations=...)` computed from its own weights (eager and XLA, also with
  grouped-query values), gradients reach every trainable weight, and a
  `.keras` save/load (and get_config/from_config) reproduces the outputs.
- Other kernels are unchanged: a `dense` layer still has `key_dense` and
  3·D·D + 3·D + D·D + D parameters in the same weight order.
"""

import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.attention import MultiHeadAttention
from official.attention import attention
from official.attention.interface import kernel_shares_qk

B, SEQ, WIDTH, HEADS = 2, 16, 32, 4
HEAD = WIDTH // HEADS
OPTIONS = dict(num_buckets=4, num_hashes=2, chunk_size=4)


def lsh_layer(num_kv_heads=None, **kwargs):
    return MultiHeadAttention(
        num_heads=HEADS,
        key_dim=HEAD,
        num_kv_heads=num_kv_heads,
        kernel="lsh",
        kernel_options=OPTIONS,
        name="attn",
        **kwargs,
    )


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, SEQ, WIDTH)).astype("float32")


def built(layer, causal=False):
    layer(inputs(), causal=causal)
    return layer


def n_params(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_registry_flag():
    assert kernel_shares_qk("lsh")
    assert not kernel_shares_qk("dense")
    with pytest.raises(ValueError, match="Unknown attention kernel"):
        kernel_shares_qk("no_such_kernel")


def test_parameter_count_is_shared_qk():
    """Q and V (D·D + D each) + output (D·D + D): no key projection."""
    keras.utils.set_random_seed(0)
    layer = built(lsh_layer())
    d = WIDTH
    assert n_params(layer.trainable_weights) == 2 * d * d + 2 * d + d * d + d
    assert [w.name for w in layer.non_trainable_weights] == ["lsh_rotations"]


def test_no_key_weights():
    keras.utils.set_random_seed(0)
    layer = built(lsh_layer())
    assert layer.key_dense is None
    paths = [w.path for w in layer.weights]
    assert not [p for p in paths if "key" in p.split("/")], paths
    with pytest.raises(ValueError, match="shares the query and key"):
        layer.project_kv(inputs(), inputs())


def functional_reference(layer, x, causal):
    """attention(q, q, v, kernel="lsh") from the layer's own weights."""
    wq, bq = (w.numpy() for w in layer.query_dense.weights)
    wv, bv = (w.numpy() for w in layer.value_dense.weights)
    wo, bo = (w.numpy() for w in layer.output_dense.weights)
    h_kv = layer.num_kv_heads
    q = (x @ wq + bq).reshape(B, SEQ, HEADS, HEAD)
    v = (x @ wv + bv).reshape(B, SEQ, h_kv, HEAD)
    rot = layer.kernel_params["rotations"]
    o = attention(
        q, q[:, :, :h_kv], v, kernel="lsh", causal=causal, rotations=rot,
        **OPTIONS,
    )
    return np.asarray(o).reshape(B, SEQ, WIDTH) @ wo + bo


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("num_kv_heads", [None, 2])
def test_layer_equals_functional_shared_qk(causal, num_kv_heads):
    keras.utils.set_random_seed(1)
    layer = built(lsh_layer(num_kv_heads), causal)
    x = inputs(1)
    want = functional_reference(layer, x, causal)
    eager = np.asarray(layer(x, causal=causal))
    assert np.abs(eager - want).max() < 1e-5
    if causal and num_kv_heads is None:
        xla = tf.function(
            lambda t: layer(t, causal=True), jit_compile=True
        )(x)
        assert np.abs(np.asarray(xla) - want).max() < 1e-5


def test_gradients_reach_every_trainable_weight():
    keras.utils.set_random_seed(2)
    layer = built(lsh_layer(), causal=True)
    x = tf.constant(inputs(2))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, causal=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 6  # query, value, output kernels and biases
    for w, g in zip(layer.trainable_weights, grads):
        assert g is not None and np.abs(np.asarray(g)).max() > 0, w.path


def test_save_load_and_config_round_trip():
    keras.utils.set_random_seed(3)
    inp = keras.Input((SEQ, WIDTH))
    out = lsh_layer()(inp, causal=True)
    model = keras.Model(inp, keras.layers.Dense(3)(out))
    x = inputs(3)
    want = np.asarray(model(x))
    path = os.path.join(tempfile.mkdtemp(), "lsh.keras")
    model.save(path)
    keras.utils.set_random_seed(4)  # a fresh build would draw other weights
    loaded = keras.saving.load_model(path)
    assert np.array_equal(np.asarray(loaded(x)), want)
    assert loaded.get_layer("attn").key_dense is None

    layer = model.get_layer("attn")
    clone = MultiHeadAttention.from_config(layer.get_config())
    clone(x, causal=True)
    assert clone.key_dense is None
    clone.set_weights(layer.get_weights())
    assert np.array_equal(
        np.asarray(clone(x, causal=True)), np.asarray(layer(x, causal=True))
    )


def test_cache_and_cross_attention_raise():
    keras.utils.set_random_seed(5)
    layer = built(lsh_layer())
    x = inputs()
    past = np.zeros((B, 3, HEADS, HEAD), "float32")
    with pytest.raises(ValueError, match="cache"):
        layer(x, cache=(past, past))
    with pytest.raises(ValueError, match="key length"):
        layer(x, x[:, :8])


def test_other_kernels_keep_their_key_projection():
    keras.utils.set_random_seed(6)
    layer = MultiHeadAttention(num_heads=HEADS, key_dim=HEAD, kernel="dense")
    layer(inputs())
    d = WIDTH
    assert layer.key_dense is not None
    assert n_params(layer.trainable_weights) == 3 * d * d + 3 * d + d * d + d
    names = [w.path.split("/")[-2] for w in layer.weights]
    assert names == ["query", "query", "key", "key", "value", "value",
                     "attention_output", "attention_output"]
