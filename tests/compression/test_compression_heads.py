"""Attention-head and FFN-neuron pruning (spec 2.2, 2.3 check 5): gate
gradients against an explicit-gate reference, gated == sliced to 1e-6,
exact parameter counts."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from compression_fixtures import tiny_attention_model
from keras import ops

from official import compression as C
from official.attention import attention
from official.compression import head_pruning
from official.compression.layer_keys import layer_key


def _explicit_gate_logits(model, x, xi):
    """TinyAttentionModel's forward with a gate xi_h on each head's output
    before W_O (Michel et al. 2019, sec. 4)."""
    attn = model.attn
    q = attn._project(attn.query_dense, x, attn.num_heads)
    k, v = attn.project_kv(x, x)
    o = attention(q, k, v, kernel=attn.kernel)
    o = o * ops.reshape(xi, (1, 1, -1, 1))
    h = x + attn._output(o)
    h = h + model.mlp(model.norm(h))
    return model.head(ops.mean(h, axis=1))


def _gate_gradients(model, x, y):
    xi = tf.Variable(tf.ones(model.attn.num_heads))
    with tf.GradientTape() as tape:
        logits = _explicit_gate_logits(model, x, xi)
        loss = ops.mean(keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True))
    return np.abs(tape.gradient(loss, xi).numpy()), logits


@pytest.mark.parametrize("num_kv_heads", [None, 2])
def test_importance_is_the_explicit_gate_gradient(num_kv_heads):
    model, x = tiny_attention_model(num_kv_heads=num_kv_heads)
    y = np.array([0, 1, 2, 3])
    want, logits = _gate_gradients(model, x, y)
    np.testing.assert_allclose(logits, model(x), atol=1e-6)  # same model
    got = C.head_importance(model, [(x, y)], normalize=False)
    key = layer_key(model, model.attn)
    np.testing.assert_allclose(got[key], want, rtol=1e-4, atol=1e-9)
    # Two batches: the mean of the per-batch |dL/dxi|.
    want2, _ = _gate_gradients(model, x[:2], y[:2])
    two = C.head_importance(model, [(x, y), (x[:2], y[:2])],
                            normalize=False)[key]
    np.testing.assert_allclose(two, (want + want2) / 2, rtol=1e-4)
    normed = C.head_importance(model, [(x, y)])[key]
    assert np.linalg.norm(normed) == pytest.approx(1.0)


def test_importance_check_catches_abs_inside_the_sum():
    """Broken variant: sum |W_O * dL/dW_O| over the head's rows."""
    model, x = tiny_attention_model()
    y = np.array([0, 1, 2, 3])
    want, _ = _gate_gradients(model, x, y)
    kernel = model.attn.output_dense.kernel
    with tf.GradientTape() as tape:
        loss = ops.mean(keras.losses.sparse_categorical_crossentropy(
            y, model(x), from_logits=True))
    g = tape.gradient(loss, kernel).numpy().reshape(4, 4, -1)
    broken = np.abs(kernel.numpy().reshape(4, 4, -1) * g).sum(axis=(1, 2))
    assert not np.allclose(broken, want, rtol=1e-2)


def _twin(num_kv_heads=None):
    a, x = tiny_attention_model(seed=1, num_kv_heads=num_kv_heads)
    b, _ = tiny_attention_model(seed=2, num_kv_heads=num_kv_heads)
    b.set_weights(a.get_weights())
    return a, b, x


def _expected_removed(dim, key_dim, removed_q, removed_kv):
    """q: D*d + d (bias) and o: d*D per query head; k, v: 2(D*d + d) per
    KV head."""
    return (removed_q * (dim * key_dim + key_dim + key_dim * dim)
            + removed_kv * 2 * (dim * key_dim + key_dim))


@pytest.mark.parametrize("num_kv_heads,keep,removed_kv", [
    (None, [0, 2], 2), (None, [3], 3), (2, [2, 3], 1)])
def test_gated_equals_sliced_and_params_drop_exactly(num_kv_heads, keep,
                                                      removed_kv):
    gated, sliced, x = _twin(num_kv_heads)
    path = layer_key(gated, gated.attn)
    w_o = gated.attn.output_dense.kernel.numpy()
    with C.head_gates(gated, C.keep_to_gates(gated, {path: keep})):
        want = ops.convert_to_numpy(gated(x))
    before = sliced.count_params()
    summary = C.prune_heads(sliced, {path: keep})
    got = ops.convert_to_numpy(sliced(x))
    assert np.max(np.abs(got - want)) <= 1e-6
    assert sliced.attn.num_heads == len(keep)
    assert summary[path]["heads"] == (4, len(keep))
    removed = _expected_removed(16, 4, 4 - len(keep), removed_kv)
    assert before - sliced.count_params() == removed
    assert summary[path]["params_removed"] == removed
    # The gates were undone on exit.
    np.testing.assert_array_equal(gated.attn.output_dense.kernel.numpy(),
                                  w_o)
    assert sliced.attn.query_dense.kernel.path.endswith("attn/query/kernel")


def test_shared_qk_kernel_has_no_key_projection_to_prune():
    """`lsh` layers share the query projection as keys (no `key_dense`):
    the predicted reduction drops the key term and the sliced model equals
    the gated one (one bucket: the kernel owns no rotation weights)."""
    opts = {"num_buckets": 1, "chunk_size": 6}
    gated, x = tiny_attention_model(seed=1, kernel="lsh", kernel_options=opts)
    sliced, _ = tiny_attention_model(seed=2, kernel="lsh",
                                     kernel_options=opts)
    sliced.set_weights(gated.get_weights())
    assert sliced.attn.key_dense is None
    path, keep = layer_key(gated, gated.attn), [1, 3]
    with C.head_gates(gated, C.keep_to_gates(gated, {path: keep})):
        want = ops.convert_to_numpy(gated(x))
    before = sliced.count_params()
    summary = C.prune_heads(sliced, {path: keep})
    assert np.max(np.abs(ops.convert_to_numpy(sliced(x)) - want)) <= 1e-6
    # q (D*d + d) and o (d*D) per query head, v (D*d + d) per KV head.
    removed = 2 * (16 * 4 + 4 + 4 * 16) + 2 * (16 * 4 + 4)
    assert before - sliced.count_params() == removed
    assert summary[path]["params_removed"] == removed
    assert sliced.attn.key_dense is None


def test_gated_sliced_check_catches_a_wrong_head_layout(monkeypatch):
    """Broken variant: W_O rows read as (d, H) instead of (H, d)."""

    def wrong_output(dense, heads, key_dim):
        kernel = dense.kernel.numpy()
        d_out = kernel.shape[1]
        kernel = kernel.reshape(key_dim, -1, d_out)[:, heads].reshape(
            -1, d_out)
        return head_pruning.resized_copy(
            dense, (None, kernel.shape[0]), [kernel, dense.bias.numpy()])

    monkeypatch.setattr(head_pruning, "_slice_output", wrong_output)
    gated, sliced, x = _twin()
    path = layer_key(gated, gated.attn)
    with C.head_gates(gated, C.keep_to_gates(gated, {path: [0, 2]})):
        want = ops.convert_to_numpy(gated(x))
    C.prune_heads(sliced, {path: [0, 2]})
    assert np.max(np.abs(ops.convert_to_numpy(sliced(x)) - want)) > 1e-3


def test_selection_scopes_groups_and_errors():
    model, x = tiny_attention_model(num_kv_heads=2)
    path = layer_key(model, model.attn)
    imp = {path: np.array([0.1, 0.2, 0.9, 0.05])}
    # Groups {0, 1} and {2, 3}: scores 0.3 and 0.95.
    assert C.select_heads(model, imp, 0.5) == {path: [2, 3]}
    assert C.select_heads(model, imp, 0.5, scope="global") == {path: [2, 3]}
    with pytest.raises(ValueError, match="whole groups"):
        C.prune_heads(model, {path: [1, 2]})
    with pytest.raises(ValueError, match="at least one"):
        C.prune_heads(model, {path: []})


def test_pruned_model_trains_under_xla():
    model, x = tiny_attention_model()
    y = np.array([0, 1, 2, 3])
    C.prune_heads(model, {model.attn: [1, 3]})  # a layer as key
    C.prune_neurons(model, C.select_neurons(model, 0.5))
    model.compile(optimizer="adam", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    after = model.get_weights()
    assert len(after) == len(before)
    assert all(not np.array_equal(a, b) for a, b in zip(after, before))


def test_ffn_masked_equals_sliced_and_params_drop_exactly():
    masked, sliced, x = _twin()
    keep = C.select_neurons(masked, 0.25)
    path = layer_key(masked, masked.mlp)
    assert len(keep[path]) == 8
    scores = C.neuron_importance(masked.mlp)
    assert set(keep[path]) == set(np.argsort(-scores)[:8])
    C.mask_neurons(masked, keep)
    want = ops.convert_to_numpy(masked(x))
    before = sliced.count_params()
    summary = C.prune_neurons(sliced, keep)
    got = ops.convert_to_numpy(sliced(x))
    assert np.max(np.abs(got - want)) <= 1e-6
    removed = (32 - 8) * (16 + 1 + 16)  # W1 column, b1 entry, W2 row
    assert before - sliced.count_params() == removed
    assert summary[path] == {"hidden": (32, 8), "params_removed": removed}
    assert sliced.mlp.hidden_dim == 8
    # Broken variant: slicing W2 columns instead of rows cannot even run
    # (shape mismatch), and slicing the wrong units changes the output.
    wrong = {path: sorted(set(range(32)) - set(keep[path]))[:8]}
    _, other, _ = _twin()
    C.prune_neurons(other, wrong)
    assert np.max(np.abs(ops.convert_to_numpy(other(x)) - want)) > 1e-3
