"""`linear_elu` and `linear_relu` equal a float64 NumPy reference of the same
formula, eagerly and under XLA; causal never lets a later token change an
earlier output; SLA's depthwise-conv and key-position terms.

Reference: o_i = sum_j w_ij v_j / (sum_j w_ij + eps), w_ij = phi(q_i).phi(k_j)
over the allowed (i, j) (causal: j <= i + S - T; mask True), phi = elu + 1 or
ReLU, computed with explicit (T, S) weights in float64 - a different
evaluation order from the kernels' phi(K)^T V state and block prefix sums.

Mutation checks: a block mask that lets later keys in (ones instead of a
lower triangle) and an inclusive instead of exclusive block prefix sum both
fail the causality and reference checks; the rank check fails without the
DWC term.
"""

import json
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.attention import MultiHeadAttention
from official.attention import attention
from official.attention.kernels import linear_attention as la

TOL = 2e-5
EPS = 1e-6
KERNELS = ("linear_elu", "linear_relu")
CHUNKS = (64, 8, 7, 3)  # one block, divides 24, ragged, many blocks


def phi(kernel, x):
    if kernel == "linear_elu":
        return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))
    return np.maximum(x, 0.0)


def reference(kernel, q, k, v, causal=False, mask=None, eps=EPS):
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b, t, h, _ = q.shape
    s, h_kv = k.shape[1], k.shape[2]
    k = np.repeat(k, h // h_kv, axis=2)
    v = np.repeat(v, h // h_kv, axis=2)
    w = np.einsum("bthf,bshf->bhts", phi(kernel, q), phi(kernel, k))
    allowed = np.ones((b, 1, t, s), bool)
    if causal:
        allowed &= np.arange(s)[None, :] <= np.arange(t)[:, None] + s - t
    if mask is not None:
        m = np.asarray(mask, bool)
        allowed = allowed & (m if m.ndim == 3 else m[None])[:, None]
    w = np.where(allowed, w, 0.0)
    num = np.einsum("bhts,bshd->bthd", w, v)
    return num / (w.sum(-1).transpose(0, 2, 1)[..., None] + eps)


# name: (B, T, S, H, H_kv, D, causal, mask kind)
CASES = {
    "gqa": (2, 24, 24, 4, 2, 16, False, None),
    "padding_mask": (2, 24, 24, 4, 2, 16, False, "padding"),
    "cross_full_mask_mha": (2, 11, 24, 4, 4, 16, False, "full"),
    "mask_2d_causal": (1, 24, 24, 4, 2, 16, True, "2d"),
    "causal": (2, 24, 24, 4, 2, 16, True, None),
    "causal_padding_mqa": (2, 24, 24, 4, 1, 16, True, "padding"),
    "decode_causal": (2, 5, 24, 4, 2, 16, True, "padding"),
    "decode_one_token": (2, 1, 24, 4, 2, 16, True, None),
    "causal_t_gt_s": (2, 30, 24, 4, 2, 16, True, None),
}


def make_case(name):
    b, t, s, h, h_kv, d, causal, kind = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    q = rng.standard_normal((b, t, h, d)).astype("float32")
    k = rng.standard_normal((b, s, h_kv, d)).astype("float32")
    v = rng.standard_normal((b, s, h_kv, d)).astype("float32")
    mask = None
    if kind == "padding":  # (B, 1, S); batch 1 keeps its first 15 keys
        lengths = np.array([s - 3, 15])[:b]
        mask = (np.arange(s)[None, :] < lengths[:, None])[:, None, :]
    elif kind == "full":  # (B, T, S) with one fully masked row
        mask = rng.uniform(size=(b, t, s)) < 0.6
        mask[0, 3] = False
    elif kind == "2d":  # (T, S) band
        mask = np.abs(np.arange(t)[:, None] - np.arange(s)[None, :]) < 6
    return q, k, v, causal, mask


def run(kernel, q, k, v, causal, mask, xla=False, **opts):
    def fn(q, k, v, mask):
        return attention(q, k, v, kernel=kernel, causal=causal, mask=mask,
                         **opts)

    if xla:
        fn = tf.function(fn, jit_compile=True)
    return keras.ops.convert_to_numpy(fn(q, k, v, mask))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kernel", KERNELS)
def test_equals_float64_reference_eager(kernel, case):
    q, k, v, causal, mask = make_case(case)
    expected = reference(kernel, q, k, v, causal, mask)
    for chunk in CHUNKS:
        out = run(kernel, q, k, v, causal, mask, chunk_size=chunk)
        np.testing.assert_allclose(out, expected, atol=TOL, rtol=0,
                                   err_msg=f"chunk_size={chunk}")


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kernel", KERNELS)
def test_equals_float64_reference_xla(kernel, case):
    q, k, v, causal, mask = make_case(case)
    expected = reference(kernel, q, k, v, causal, mask)
    out = run(kernel, q, k, v, causal, mask, xla=True, chunk_size=7)
    np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("kernel", KERNELS)
def test_unknown_lengths_traced_once(kernel):
    spec = tf.TensorSpec((2, None, 4, 16), tf.float32)
    kv_spec = tf.TensorSpec((2, None, 2, 16), tf.float32)

    @tf.function(input_signature=[spec, kv_spec, kv_spec])
    def fn(q, k, v):
        return attention(q, k, v, kernel=kernel, causal=True, chunk_size=7)

    for name in ("causal", "decode_causal", "causal_t_gt_s"):
        q, k, v, _, _ = make_case(name)
        np.testing.assert_allclose(
            fn(q, k, v).numpy(), reference(kernel, q, k, v, True),
            atol=TOL, rtol=0, err_msg=name)


@pytest.mark.parametrize("kernel", KERNELS)
def test_bfloat16_inputs_return_bfloat16(kernel):
    q, k, v, causal, _ = make_case("causal")
    out = attention(*(tf.cast(a, tf.bfloat16) for a in (q, k, v)),
                    kernel=kernel, causal=True)
    assert out.dtype == tf.bfloat16
    expected = reference(kernel, *(tf.cast(tf.cast(a, tf.bfloat16),
                                           tf.float32).numpy()
                                   for a in (q, k, v)), causal=True)
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), expected,
                               atol=3e-2)


# ----------------------------------------------------------------- causality


def _prefix_unchanged(kernel, cut, xla=False, chunk=7):
    """Outputs at positions < cut after changing q, k, v at positions >= cut."""
    q, k, v, _, _ = make_case("causal")
    rng = np.random.default_rng(7)
    q2, k2, v2 = (a.copy() for a in (q, k, v))
    for a in (q2, k2, v2):
        a[:, cut:] = rng.standard_normal(a[:, cut:].shape) * 5
    a = run(kernel, q, k, v, True, None, xla=xla, chunk_size=chunk)
    b = run(kernel, q2, k2, v2, True, None, xla=xla, chunk_size=chunk)
    return np.max(np.abs(a[:, :cut] - b[:, :cut]))


@pytest.mark.parametrize("kernel", KERNELS)
def test_later_tokens_never_change_earlier_outputs(kernel):
    for cut in (1, 6, 7, 10, 14, 23):  # block edges and block interiors
        assert _prefix_unchanged(kernel, cut) == 0.0, cut
    assert _prefix_unchanged(kernel, 10, xla=True) == 0.0


@pytest.mark.parametrize("kernel", KERNELS)
def test_detects_leaky_block_mask(kernel, monkeypatch):
    monkeypatch.setattr(la, "block_causal_mask",
                        lambda c, dtype: keras.ops.ones((c, c), dtype))
    assert _prefix_unchanged(kernel, 10) > 1e-2
    q, k, v, causal, mask = make_case("causal")
    out = run(kernel, q, k, v, causal, mask, chunk_size=7)
    assert np.max(np.abs(out - reference(kernel, q, k, v, True))) > 1e-2


@pytest.mark.parametrize("kernel", KERNELS)
def test_detects_inclusive_prefix_sum(kernel, monkeypatch):
    monkeypatch.setattr(la, "exclusive_cumsum",
                        lambda x: keras.ops.cumsum(x, axis=1))
    assert _prefix_unchanged(kernel, 10) > 1e-2
    q, k, v, causal, mask = make_case("causal")
    out = run(kernel, q, k, v, causal, mask, chunk_size=7)
    assert np.max(np.abs(out - reference(kernel, q, k, v, True))) > 1e-2


# ------------------------------------------------------- gradients and masks


@pytest.mark.parametrize("kernel", KERNELS)
def test_causal_gradients_equal_explicit_weights(kernel):
    """The block prefix-sum gradient equals the gradient of the explicit
    (T, S) masked form (the kernel's full-mask path), eager and XLA."""
    q, k, v, _, pad = make_case("causal_padding_mqa")
    q, k, v = (tf.constant(a) for a in (q, k, v))
    t = q.shape[1]
    full = np.tril(np.ones((t, t), bool))[None] & pad  # (B, T, S): explicit

    def grads(mask, causal):
        def fn(q, k, v):
            with tf.GradientTape() as tape:
                tape.watch([q, k, v])
                out = attention(q, k, v, kernel=kernel, causal=causal,
                                mask=mask, chunk_size=7)
                loss = tf.reduce_sum(out * tf.cos(out))
            return tape.gradient(loss, [q, k, v])
        return fn

    expected = grads(tf.constant(full), False)(q, k, v)
    for xla in (False, True):
        fn = grads(tf.constant(pad), True)  # (B, 1, S): block prefix sums
        if xla:
            fn = tf.function(fn, jit_compile=True)
        for g, e in zip(fn(q, k, v), expected):
            np.testing.assert_allclose(g.numpy(), e.numpy(), atol=1e-4)


@pytest.mark.parametrize("kernel", KERNELS)
def test_both_multiplication_orders_agree(kernel):
    """phi(Q) (phi(K)^T V) (no mask) equals (phi(Q) phi(K)^T) V (an all-True
    (B, T, S) mask takes the explicit path), as SLAB's code assumes when it
    picks the cheaper order."""
    q, k, v, _, _ = make_case("gqa")
    every = np.ones((q.shape[0], q.shape[1], k.shape[1]), bool)
    assert la.key_padding_mask(tf.constant(every)) is None  # explicit path
    np.testing.assert_allclose(run(kernel, q, k, v, False, None),
                               run(kernel, q, k, v, False, every), atol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
def test_masked_keys_do_not_matter(kernel):
    q, k, v, _, mask = make_case("padding_mask")
    k2, v2 = k.copy(), v.copy()
    k2[1, 15:] = 100.0
    v2[1, 15:] = -100.0
    a = run(kernel, q, k, v, False, mask)
    b = run(kernel, q, k2, v2, False, mask)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel", KERNELS)
def test_fully_masked_row_is_zero(kernel):
    q, k, v, causal, mask = make_case("cross_full_mask_mha")
    out = run(kernel, q, k, v, causal, mask)
    np.testing.assert_array_equal(out[0, 3], 0.0)
    keys_none = np.zeros((2, 1, 24), bool)
    np.testing.assert_array_equal(run(kernel, q, k, v, False, keys_none), 0.0)


@pytest.mark.parametrize("kernel", KERNELS)
def test_bad_options_raise(kernel):
    q, k, v, _, _ = make_case("gqa")
    for opts in (dict(chunk_size=0), dict(chunk_size=2.5), dict(eps=-1.0),
                 dict(scale=1.0)):
        with pytest.raises(ValueError):
            attention(q, k, v, kernel=kernel, **opts)


# --------------------------------------------------------- SLA (linear_relu)

ROWS, COLS = 4, 6


def dwc_reference(v, kernel, bias, rows, cols):
    """Depthwise 'same' conv of each head's values on the (rows, cols) grid,
    PyTorch Conv2d (cross-correlation, zero padding k // 2), float64."""
    v = np.asarray(v, np.float64)
    b, s, h, d = v.shape
    kk = kernel.shape[0]
    r = kk // 2
    grid = v.reshape(b, rows, cols, h, d)
    padded = np.pad(grid, ((0, 0), (r, r), (r, r), (0, 0), (0, 0)))
    out = np.zeros_like(grid)
    for i in range(kk):
        for j in range(kk):
            out += padded[:, i:i + rows, j:j + cols] * kernel[i, j, :, 0]
    return (out + bias).reshape(b, s, h, d)


def sla_inputs(seed=0, h=4, h_kv=2, d=8):
    rng = np.random.default_rng(seed)
    s = ROWS * COLS
    q = rng.standard_normal((2, s, h, d)).astype("float32")
    k = rng.standard_normal((2, s, h_kv, d)).astype("float32")
    v = rng.standard_normal((2, s, h_kv, d)).astype("float32")
    dwc_k = rng.standard_normal((3, 3, d, 1)).astype("float32")
    dwc_b = rng.standard_normal((d,)).astype("float32")
    pos = rng.standard_normal((s, h_kv, d)).astype("float32")
    return q, k, v, dwc_k, dwc_b, pos


@pytest.mark.parametrize("xla", [False, True], ids=["eager", "xla"])
def test_sla_with_dwc_and_key_positions_equals_reference(xla):
    q, k, v, dwc_k, dwc_b, pos = sla_inputs()
    opts = dict(spatial_shape=(ROWS, COLS), dwc_kernel_size=3,
                key_position_embedding=True, dwc_kernel=dwc_k,
                dwc_bias=dwc_b, key_position=pos)

    def fn(q, k, v):
        return attention(q, k, v, kernel="linear_relu", **opts)

    if xla:
        fn = tf.function(fn, jit_compile=True)
    out = keras.ops.convert_to_numpy(fn(q, k, v))
    v_rep = np.repeat(v, 2, axis=2)
    expected = (reference("linear_relu", q, k + pos, v)
                + dwc_reference(v_rep, dwc_k, dwc_b, ROWS, COLS))
    np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)
    # Control: without P the output differs (P really enters K).
    wrong = reference("linear_relu", q, k, v) + dwc_reference(
        v_rep, dwc_k, dwc_b, ROWS, COLS)
    assert np.max(np.abs(out - wrong)) > 1e-2


def test_sla_dead_relu_row_returns_dwc_term():
    """eps only matters when ReLU(q_i) = 0: the attention part is then 0."""
    q, k, v, dwc_k, dwc_b, _ = sla_inputs(1)
    q[0, 5] = -np.abs(q[0, 5]) - 0.1
    out = attention(q, k, v, kernel="linear_relu", spatial_shape=(ROWS, COLS),
                    dwc_kernel_size=3, dwc_kernel=dwc_k, dwc_bias=dwc_b)
    dwc = dwc_reference(np.repeat(v, 2, axis=2), dwc_k, dwc_b, ROWS, COLS)
    np.testing.assert_allclose(out.numpy()[0, 5], dwc[0, 5], atol=1e-5)
    assert np.all(np.isfinite(out.numpy()))


def _implicit_matrix(with_dwc):
    """The (S, S) map v -> o of one head: value = identity (one-hot probe),
    features of rank <= 8 (query/key dims 8..63 are negative, so ReLU
    zeroes them); the DWC filter is the same for every channel, so on the
    identity it adds the grid's banded convolution matrix."""
    rows = cols = 8
    s = rows * cols
    rng = np.random.default_rng(3)
    q = -np.abs(rng.standard_normal((1, s, 1, s))).astype("float32") - 0.1
    k = q.copy()
    q[..., :8] = rng.standard_normal((1, s, 1, 8))
    k[..., :8] = rng.standard_normal((1, s, 1, 8))
    v = np.eye(s, dtype="float32")[None, :, None, :]
    opts = {}
    if with_dwc:
        filt = rng.standard_normal((3, 3)).astype("float32")
        opts = dict(spatial_shape=(rows, cols), dwc_kernel_size=3,
                    dwc_kernel=np.repeat(filt[:, :, None, None], s, axis=2),
                    dwc_bias=np.zeros((s,), "float32"))
    out = attention(q, k, v, kernel="linear_relu", **opts)
    return out.numpy()[0, :, 0, :]


def test_dwc_raises_the_rank_of_the_attention_map():
    """SLAB's motivation for DWC: relu linear attention has rank <= head
    dim; adding the depthwise conv term gives a full-rank map."""
    def rank(m):  # float32 outputs: count singular values above 1e-4 max
        sv = np.linalg.svd(m.astype(np.float64), compute_uv=False)
        return int(np.sum(sv > 1e-4 * sv[0]))

    plain, with_dwc = rank(_implicit_matrix(False)), rank(
        _implicit_matrix(True))
    assert plain <= 8, plain
    assert with_dwc > 8 * 4, with_dwc


def test_sla_option_errors():
    q, k, v, dwc_k, dwc_b, pos = sla_inputs()
    dwc = dict(spatial_shape=(ROWS, COLS), dwc_kernel_size=3,
               dwc_kernel=dwc_k, dwc_bias=dwc_b)
    bad = [
        dict(dwc, causal=True),  # conv would leak later tokens
        dict(dwc, mask=np.ones((2, 1, 24), bool)),
        dict(dwc, spatial_shape=(5, 5)),  # 25 != 24 tokens
        dict(dwc, dwc_kernel_size=4),  # even kernel
        dict(spatial_shape=(ROWS, COLS)),  # no weights
        dict(key_position_embedding=True),  # no key_position tensor
        dict(spatial_shape=(4, -6), dwc_kernel=dwc_k, dwc_bias=dwc_b),
    ]
    for opts in bad:
        opts = dict(opts)
        causal = opts.pop("causal", False)
        mask = opts.pop("mask", None)
        with pytest.raises(ValueError):
            attention(q, k, v, kernel="linear_relu", causal=causal,
                      mask=mask, **opts)


def test_multi_head_attention_owns_the_sla_weights():
    """register_kernel(params=...): MultiHeadAttention creates DWC and key
    positions, trains them, serialises the options, and equals the
    functional kernel called with the same tensors."""
    d_model, heads = 16, 2
    layer = MultiHeadAttention(
        heads, d_model // heads, kernel="linear_relu",
        kernel_options={"spatial_shape": [ROWS, COLS], "dwc_kernel_size": 3,
                        "key_position_embedding": True})
    x = np.random.default_rng(0).standard_normal(
        (2, ROWS * COLS, d_model)).astype("float32")
    with tf.GradientTape() as tape:
        out = layer(x)
        loss = tf.reduce_sum(out ** 2)
    params = layer.kernel_params
    assert tuple(params["dwc_kernel"].shape) == (3, 3, 8, 1)
    assert tuple(params["dwc_bias"].shape) == (8,)
    assert tuple(params["key_position"].shape) == (ROWS * COLS, heads, 8)
    # 4 projections (3 x (16*16+16) + 16*16+16) + 3*3*8 + 8 + 24*16.
    assert layer.count_params() == 4 * (16 * 16 + 16) + 80 + 384
    grads = tape.gradient(loss, [params["dwc_kernel"], params["dwc_bias"],
                                 params["key_position"]])
    assert all(np.any(g.numpy()) for g in grads)
    params["key_position"].assign(
        np.random.default_rng(1).standard_normal((24, heads, 8)))
    q = layer._project(layer.query_dense, x, heads)
    k, v = layer.project_kv(x, x)
    direct = attention(q, k, v, kernel="linear_relu",
                       spatial_shape=(ROWS, COLS), dwc_kernel_size=3,
                       key_position_embedding=True, **params)
    direct = tf.reshape(
        layer.output_dense(tf.reshape(direct, (48, d_model))), (2, 24, -1))
    np.testing.assert_allclose(layer(x).numpy(), direct.numpy(), atol=1e-6)
    config = json.loads(json.dumps(layer.get_config()))
    clone = MultiHeadAttention.from_config(config)
    clone.build((2, 24, d_model))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy(), atol=0)


# -------------------------------------------------- linear cost (structure)

_L = 8192


def _largest_array(kernel, causal):
    import re

    pattern = re.compile(r"\b(?:f|s|u|pred|bf)\d*\[([0-9,]*)\]")
    q = tf.zeros((1, _L, 2, 16))

    def fn(q, k, v):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = attention(q, k, v, kernel=kernel, causal=causal)
        return out, tape.gradient(out, [q, k, v])

    hlo = tf.function(fn, jit_compile=True).experimental_get_compiler_ir(
        q, q, q)(stage="hlo")
    return max(int(np.prod([int(x) for x in dims.split(",") if x]))
               for dims in pattern.findall(hlo))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kernel", KERNELS)
def test_no_length_squared_array_forward_or_backward(kernel, causal):
    """The XLA program (forward + backward) at L = 8192 declares no array
    larger than O(L * chunk) elements: cost is linear in L. (`dense` holds
    the L x L scores, see test_chunked_memory.py.)"""
    biggest = _largest_array(kernel, causal)
    assert biggest <= 2 * _L * la.DEFAULT_CHUNK, biggest
    assert biggest * 64 <= _L * _L
