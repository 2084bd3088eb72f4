"""`axial` kernel == float64 dense attention restricted to the same line.

Ho et al. 2019 §3.1: axial attention along axis a attends only to positions
that share every other coordinate. Reference: `dense_reference` on the
flattened grid with the additive mask M[p, p'] = 0 iff p and p' agree on all
axes but a (and, when causal, p'_a <= p_a). Cases: rows and columns of a 5x7
image, every axis of a 3x4x5 grid (video / sliced channels), causal and not,
grouped-query heads, user masks of every broadcast shape (incl. fully masked
rows), a 1 x L image (row attention == 1-D attention), a -1 (inferred) grid
size, eagerly and under `tf.function(jit_compile=True)`.

The implicit-attention-matrix probe (v = one-hot identity; the output *is*
the attention matrix) pins the support: row attention is nonzero exactly on
the row (causal: on its left part), a row layer followed by a column layer
covers the whole image (the paper's "full receptive field after two
layers"). `test_detects_*` are mutation checks: a wrong axis permutation or
inverse permutation in the layout helpers makes the comparison fail by
orders of magnitude.
"""

import math
import zlib

import numpy as np
import pytest
import tensorflow as tf
from attention_reference import dense_reference

from official.attention import MultiHeadAttention
from official.attention import attention
from official.attention.kernels import axial

TOL = 1e-5  # float32 kernel vs float64 reference


def line_mask(shape, axis, causal):
    """(T, T) boolean: same line along `axis` (and causal along it)."""
    coords = np.stack(np.unravel_index(np.arange(math.prod(shape)), shape), 1)
    axis = axis % len(shape)
    others = [i for i in range(len(shape)) if i != axis]
    same = np.all(coords[:, None, others] == coords[None, :, others], -1)
    if causal:
        same &= coords[None, :, axis] <= coords[:, None, axis]
    return same


def qkv(name, b, shape, h, h_kv, d):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    t = math.prod(shape)
    q = rng.standard_normal((b, t, h, d)).astype("float32")
    k = rng.standard_normal((b, t, h_kv, d)).astype("float32")
    v = rng.standard_normal((b, t, h_kv, d)).astype("float32")
    return q, k, v


# name: (spatial shape, axis, causal, heads, kv heads)
CASES = {
    "row": ((5, 7), 1, False, 2, 2),
    "column": ((5, 7), 0, False, 2, 2),
    "row_causal": ((5, 7), 1, True, 2, 2),
    "column_causal": ((5, 7), 0, True, 2, 1),
    "row_negative_axis_gqa": ((5, 7), -1, True, 4, 2),
    "grid3d_axis0": ((3, 4, 5), 0, False, 2, 2),
    "grid3d_axis1_causal": ((3, 4, 5), 1, True, 2, 2),
    "grid3d_axis2_causal": ((3, 4, 5), 2, True, 2, 1),
}


def run(q, k, v, jit, **kwargs):
    fn = lambda q, k, v: attention(q, k, v, kernel="axial", **kwargs)  # noqa
    if jit:
        fn = tf.function(fn, jit_compile=True)
    return np.asarray(fn(q, k, v))


@pytest.mark.parametrize("name", sorted(CASES))
def test_equals_restricted_dense_eager(name):
    shape, axis, causal, h, h_kv = CASES[name]
    q, k, v = qkv(name, 2, shape, h, h_kv, 16)
    ref = dense_reference(q, k, v, mask=line_mask(shape, axis, causal))
    out = run(q, k, v, False, causal=causal, spatial_shape=shape, axis=axis)
    assert out.dtype == np.float32 and out.shape == q.shape
    np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ["row_causal", "column_causal",
                                  "grid3d_axis1_causal"])
def test_equals_restricted_dense_under_xla(name):
    shape, axis, causal, h, h_kv = CASES[name]
    q, k, v = qkv(name, 2, shape, h, h_kv, 16)
    ref = dense_reference(q, k, v, mask=line_mask(shape, axis, causal))
    eager = run(q, k, v, False, causal=causal, spatial_shape=shape, axis=axis)
    xla = run(q, k, v, True, causal=causal, spatial_shape=shape, axis=axis)
    np.testing.assert_allclose(xla, ref, atol=TOL, rtol=0)
    np.testing.assert_allclose(xla, eager, atol=1e-6, rtol=0)


def test_single_row_image_is_plain_attention():
    q, k, v = qkv("one_row", 2, (1, 12), 2, 2, 8)
    for causal in (False, True):
        out = run(q, k, v, False, causal=causal, spatial_shape=(1, 12),
                  axis=1)
        ref = dense_reference(q, k, v, causal=causal)
        np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)


MASKS = ["full", "padding", "query", "2d"]


def make_mask(kind, b, t, rng):
    if kind == "full":  # (B, T, S), with two fully masked query rows
        m = rng.random((b, t, t)) > 0.4
        m[0, 3] = False
        m[1, 10] = False
    elif kind == "padding":  # (B, 1, S)
        m = rng.random((b, 1, t)) > 0.3
    elif kind == "query":  # (B, T, 1): query 4 of batch 0 sees nothing
        m = np.ones((b, t, 1), bool)
        m[0, 4] = False
    else:  # (T, S)
        m = rng.random((t, t)) > 0.3
    return m


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("axis", [0, 1])
def test_user_masks(kind, axis):
    shape = (5, 7)
    q, k, v = qkv(f"mask-{kind}-{axis}", 2, shape, 2, 2, 8)
    m = make_mask(kind, 2, 35, np.random.default_rng(axis))
    restricted = line_mask(shape, axis, True)
    ref = dense_reference(q, k, v, mask=(m if m.ndim == 3 else m[None])
                          & restricted)
    out = run(q, k, v, False, causal=True, mask=m, spatial_shape=shape,
              axis=axis)
    np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)
    if kind == "full":  # a query with no allowed key returns 0
        assert np.all(out[0, 3] == 0) and np.all(out[1, 10] == 0)


def test_user_mask_under_xla():
    shape = (5, 7)
    q, k, v = qkv("mask-xla", 2, shape, 2, 2, 8)
    m = make_mask("full", 2, 35, np.random.default_rng(3))
    ref = dense_reference(q, k, v, mask=m & line_mask(shape, 1, False))
    out = run(q, k, v, True, mask=m, spatial_shape=shape, axis=1)
    np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)


def test_inferred_axis_size_static_and_unknown_length():
    q, k, v = qkv("infer", 2, (5, 7), 2, 2, 8)
    ref = dense_reference(q, k, v, mask=line_mask((5, 7), 0, True))
    out = run(q, k, v, False, causal=True, spatial_shape=(-1, 7), axis=0)
    np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)
    spec = tf.TensorSpec((None, None, 2, 8), tf.float32)

    @tf.function(input_signature=[spec] * 3)
    def unknown(q, k, v):
        return attention(q, k, v, kernel="axial", causal=True,
                         spatial_shape=(-1, 7), axis=0)

    np.testing.assert_allclose(unknown(q, k, v), ref, atol=TOL, rtol=0)


def test_chunked_inner_kernel():
    shape = (6, 10)
    q, k, v = qkv("chunked", 2, shape, 2, 1, 8)
    ref = dense_reference(q, k, v, mask=line_mask(shape, 1, True))
    out = run(q, k, v, True, causal=True, spatial_shape=shape, axis=1,
              inner_kernel="chunked",
              inner_options={"chunk_size": 4, "query_chunk_size": 3})
    np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)


def test_gradients_equal_masked_dense():
    shape = (4, 5)
    q, k, v = (tf.constant(a) for a in qkv("grad", 2, shape, 2, 2, 8))
    mask = line_mask(shape, 0, True)
    w = tf.constant(np.random.default_rng(0).standard_normal(q.shape),
                    tf.float32)
    grads = []
    for fn in (
        lambda: attention(q, k, v, kernel="axial", causal=True,
                          spatial_shape=shape, axis=0),
        lambda: attention(q, k, v, kernel="dense", mask=mask),
    ):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            loss = tf.reduce_sum(fn() * w)
        grads.append(tape.gradient(loss, [q, k, v]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def implicit_matrix(shape, axis, causal, seed):
    """The kernel's attention matrix A (T, T): v = identity, one head."""
    t = math.prod(shape)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, t, 1, t)).astype("float32")
    k = rng.standard_normal((1, t, 1, t)).astype("float32")
    eye = np.eye(t, dtype="float32")[None, :, None, :]
    return run(q, k, eye, False, causal=causal, spatial_shape=shape,
               axis=axis)[0, :, 0, :]


@pytest.mark.parametrize("causal", [False, True])
def test_support_and_two_layer_coverage(causal):
    shape = (5, 7)
    row = implicit_matrix(shape, 1, causal, 0)
    col = implicit_matrix(shape, 0, False, 1)
    np.testing.assert_allclose(row.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(row > 0, line_mask(shape, 1, causal))
    np.testing.assert_array_equal(col > 0, line_mask(shape, 0, False))
    # Row then column attention: every output sees every input when the
    # row layer is unmasked; with a causal row layer, (r, c) sees exactly
    # the inputs (r', c') with c' <= c (all rows).
    both = col @ row
    if causal:
        cols = np.tile(np.arange(7), 5)
        np.testing.assert_array_equal(both > 0,
                                      cols[None, :] <= cols[:, None])
    else:
        assert np.all(both > 0)


@pytest.mark.parametrize("shape,axis", [((5, 7), 0), ((5, 7), 1),
                                        ((3, 4, 5), 0), ((3, 4, 5), 1),
                                        ((3, 4, 5), 2), ((2, 3, 4, 5), 2)])
def test_layout_round_trip_is_exact(shape, axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, math.prod(shape), 3, 4)).astype("float32")
    moved = axial.to_axis_last(x, shape, axis)
    lines = math.prod(shape) // shape[axis]
    assert tuple(moved.shape) == (2 * lines, shape[axis], 3, 4)
    np.testing.assert_array_equal(axial.from_axis_last(moved, shape, axis), x)
    # Each moved sequence is one line of the grid, in axis order.
    idx = axial.line_indices(shape, axis)
    np.testing.assert_array_equal(np.asarray(moved)[:lines], x[0][idx])


def _broken_permutation(k, axis):
    return list(range(k))  # forgets to move `axis` last


def test_detects_wrong_permutation(monkeypatch):
    shape, axis, causal, h, h_kv = CASES["column_causal"]
    q, k, v = qkv("column_causal", 2, shape, h, h_kv, 16)
    ref = dense_reference(q, k, v, mask=line_mask(shape, axis, causal))
    monkeypatch.setattr(axial, "_permutation", _broken_permutation)
    out = run(q, k, v, False, causal=causal, spatial_shape=shape, axis=axis)
    assert np.max(np.abs(out - ref)) > 1e3 * TOL


def test_detects_missing_inverse_permutation(monkeypatch):
    shape, axis, causal, h, h_kv = CASES["column"]
    q, k, v = qkv("column", 2, shape, h, h_kv, 16)
    ref = dense_reference(q, k, v, mask=line_mask(shape, axis, causal))

    def no_inverse(x, spatial_shape, axis):
        return tf.reshape(x, (-1, math.prod(spatial_shape), *x.shape[2:]))

    monkeypatch.setattr(axial, "from_axis_last", no_inverse)
    out = run(q, k, v, False, causal=causal, spatial_shape=shape, axis=axis)
    assert np.max(np.abs(out - ref)) > 1e3 * TOL


def test_in_multi_head_attention_layer():
    """MultiHeadAttention(kernel="axial") == kernel="dense" + line mask."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 35, 16)).astype("float32")
    axial_layer = MultiHeadAttention(
        num_heads=2, key_dim=8, kernel="axial",
        kernel_options={"spatial_shape": (-1, 7), "axis": 1})
    dense_layer = MultiHeadAttention(num_heads=2, key_dim=8)
    out = axial_layer(x, causal=True)
    dense_layer(x)
    dense_layer.set_weights(axial_layer.get_weights())
    ref = dense_layer(x, attention_mask=line_mask((5, 7), 1, True))
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("options,match", [
    ({}, "spatial_shape is required"),
    ({"spatial_shape": (5, 6)}, "35"),
    ({"spatial_shape": (5, 7), "axis": 2}, "axis"),
    ({"spatial_shape": (-1, -1)}, "at most one -1"),
    ({"spatial_shape": (-1, 6)}, "multiple"),
    ({"spatial_shape": (5, 7), "inner_kernel": "axial"}, "inner_kernel"),
    ({"spatial_shape": (5, 7), "bogus": 1}, "unknown options"),
])
def test_bad_options_raise(options, match):
    q, k, v = qkv("bad", 1, (5, 7), 2, 2, 8)
    with pytest.raises(ValueError, match=match):
        attention(q, k, v, kernel="axial", **options)


def test_different_query_and_key_grids_raise():
    q, k, v = qkv("qk", 1, (5, 7), 2, 2, 8)
    with pytest.raises(ValueError, match="T == S"):
        attention(q[:, :14], k, v, kernel="axial", spatial_shape=(2, 7))
