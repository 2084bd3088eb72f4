"""The `ecoformer` kernel against a float64 NumPy reference of its formula.

Reference (EcoFormer, Liu et al. 2022, sec. 4; official `KernelSH.forward`
and `linear_attention_bias`): per head z = x / ||x||, D2 = ||z - a_i||^2
(explicit differences, as the official `square_dist`), sigma = mean D2 over
tokens and anchors, phi = exp(-D2 / 2 sigma) - mu, codes = sign(A phi),
then the *explicit* N x N smoother s_ij = H_i.H_j + c (c = b + 1):
sum_j s_ij v_j / sum_j s_ij, or the released form
(sum_j H_i.H_j v_j + c v_i) / (sum_j H_i.H_j + N c). The kernel computes the
linear-time form; equality with the quadratic form is spec check 5.2.1.
Eagerly and under `tf.function(jit_compile=True)`.

The random inputs are checked to keep every pre-sign value |A phi| above
1e-5 (float32 error ~1e-6), so float32 vs float64 cannot flip a bit
(asserted, not assumed).
"""

import re

import numpy as np
import pytest
import tensorflow as tf

from official.attention import MultiHeadAttention
from official.attention import attention
from official.quantization import pairwise_hamming_distance
from official.quantization.kernelized_hash import kernelized_hash_codes

TOL = 1e-5
B, T, H, D, BITS, M = 2, 24, 2, 8, 8, 6


def hash_params(h=H, d=D, bits=BITS, m=M, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        hash_weights=rng.normal(size=(h, bits, m)).astype("float32"),
        anchors=(rng.normal(size=(h, m, d)) / np.sqrt(d)).astype("float32"),
        feature_mean=(0.1 * rng.normal(size=(h, m))).astype("float32"),
    )


def ref_codes(x, hash_weights, anchors, feature_mean, token_mask=None):
    """(B, N, H, D) -> codes (B, N, H, b) and pre-sign values, float64."""
    z = np.transpose(np.asarray(x, np.float64), (0, 2, 1, 3))
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    a = np.asarray(anchors, np.float64)
    d2 = ((z[:, :, :, None, :] - a[None, :, None, :, :]) ** 2).sum(-1)
    if token_mask is None:
        sigma = d2.mean(axis=(2, 3), keepdims=True)
    else:
        w = np.asarray(token_mask, np.float64)[:, None, :, None]
        sigma = ((d2.mean(-1, keepdims=True) * w).sum(2, keepdims=True)
                 / np.maximum(w.sum(2, keepdims=True), 1.0))
    sigma = np.maximum(sigma, 1e-12)  # as the kernel (all keys masked)
    phi = np.exp(-d2 / (2 * sigma)) - np.asarray(
        feature_mean, np.float64)[None, :, None, :]
    y = np.einsum("bhnm,hkm->bhnk", phi, np.asarray(hash_weights, np.float64))
    codes = np.where(y >= 0, 1.0, -1.0)
    return np.transpose(codes, (0, 2, 1, 3)), np.transpose(y, (0, 2, 1, 3))


def reference(q, k, v, params, causal=False, mask=None,
              normalize="kernel_smoother", offset=None, margin=1e-5):
    h = q.shape[2]
    k = np.repeat(np.asarray(k), h // k.shape[2], axis=2)
    v = np.repeat(np.asarray(v, np.float64), h // v.shape[2], axis=2)
    t, s = q.shape[1], k.shape[1]
    keys = None
    if mask is not None:
        m = np.asarray(mask, bool)
        m = m if m.ndim == 3 else m[None]
        if m.shape[1] == 1:
            keys = np.broadcast_to(m[:, 0], (q.shape[0], s))
    hq, yq = ref_codes(q, **params)
    hk, yk = ref_codes(k, **params, token_mask=keys)
    # No value within `margin` of the sign threshold (else a bit may flip).
    assert min(np.abs(yq).min(), np.abs(yk).min()) > margin
    bits = hq.shape[-1]
    c = bits + 1.0 if offset is None else offset
    dot = np.einsum("bthk,bshk->bhts", hq, hk)
    if normalize == "official":
        num = np.einsum("bhts,bshd->bthd", dot, v) + c * v
        den = dot.sum(-1) + s * c  # (B, H, T)
        return num / np.transpose(den, (0, 2, 1))[..., None]
    sim = dot + c
    allowed = np.ones((q.shape[0], 1, t, s), bool)
    if causal:
        allowed &= np.arange(s)[None, :] <= np.arange(t)[:, None] + s - t
    if mask is not None:
        allowed = allowed & m[:, None]
    sim = np.where(allowed, sim, 0.0)
    den = sim.sum(-1, keepdims=True)
    p = np.where(den > 0, sim / np.where(den > 0, den, 1.0), 0.0)
    return np.einsum("bhts,bshd->bthd", p, v)


def run(q, k, v, jit, **kw):
    def fn(q, k, v):
        return attention(q, k, v, kernel="ecoformer", **kw)

    if jit:
        fn = tf.function(fn, jit_compile=True)
    return np.asarray(fn(q, k, v))


def inputs(t=T, s=T, h=H, h_kv=H, seed=1):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, t, h, D)).astype("float32")
    k = rng.normal(size=(B, s, h_kv, D)).astype("float32")
    v = rng.normal(size=(B, s, h_kv, D)).astype("float32")
    return q, k, v


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
@pytest.mark.parametrize("normalize", ["kernel_smoother", "official"])
def test_self_attention_matches_quadratic_reference(normalize, jit):
    q, _, v = inputs()
    p = hash_params()
    got = run(q, q, v, jit, normalize=normalize, **p)
    want = reference(q, q, v, p, normalize=normalize)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=TOL)


CASES = ["cross", "padding", "causal", "decode", "causal_t_gt_s", "tmask",
         "gqa", "offset"]
XLA_CASES = ["padding", "causal", "decode", "tmask"]  # compiles are slow


@pytest.mark.parametrize(
    "case,jit", [(c, False) for c in CASES] + [(c, True) for c in XLA_CASES])
def test_cases_match_reference(case, jit):
    t, s = T, T
    h, h_kv = (4, 2) if case == "gqa" else (H, H)
    if case == "cross":
        t, s = 10, 17
    if case == "decode":
        t, s = 1, 17
    if case == "causal_t_gt_s":
        t, s = 13, 9
    q, k, v = inputs(t, s, h, h_kv)
    p = hash_params(h=h, seed=3)
    kw, ref_kw = {}, {}
    if case == "padding":
        mask = np.arange(s)[None, None, :] < np.array([s - 7, 0])[:, None,
                                                                  None]
        kw = ref_kw = dict(mask=mask)  # example 1: no allowed key at all
    if case in ("causal", "decode", "causal_t_gt_s"):
        kw, ref_kw = dict(causal=True, chunk_size=5), dict(causal=True)
    if case == "tmask":  # varies along queries: explicit fallback
        mask = np.random.default_rng(4).random((t, s)) < 0.6
        mask[3] = False
        kw = ref_kw = dict(mask=mask)
    if case == "offset":
        kw, ref_kw = dict(similarity_offset=30.0), dict(offset=30.0)
    got = run(q, k, v, jit, **kw, **p)
    want = reference(q, k, v, p, **ref_kw)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=TOL)
    if case == "padding":
        assert np.all(got[1] == 0.0)
    if case == "causal_t_gt_s":
        assert np.all(got[:, : t - s] == 0.0)


def test_masked_keys_do_not_change_the_output():
    """Padded keys leave the sums *and* the keys' RBF sigma: two opposite
    fillings of the padding give the same output (a sigma over all keys,
    mutation-checked, changes the allowed keys' codes)."""
    q, k, v = inputs(t=8, s=16)
    p = hash_params(seed=5)
    mask = np.arange(16)[None, None, :] < np.array([4, 10])[:, None, None]
    outs = []
    for sign in (1.0, -1.0):
        k2, v2 = k.copy(), v.copy()
        k2[0, 4:] = sign * p["anchors"][:, 0]
        k2[1, 10:] = sign * p["anchors"][:, 1]
        v2[:, 10:], v2[0, 4:] = 1e3 * sign, 1e3 * sign
        outs.append(run(q, k2, v2, False, mask=mask, **p))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)
    np.testing.assert_allclose(
        outs[0], reference(q, k2, v2, p, mask=mask), atol=TOL, rtol=TOL)


def test_linear_form_without_bias_fix_fails_reference():
    """Mutation check: the official c*v_i numerator is *not* the consistent
    smoother, so the reference comparison separates the two."""
    q, _, v = inputs()
    p = hash_params()
    got = run(q, q, v, False, normalize="official", **p)
    want = reference(q, q, v, p, normalize="kernel_smoother")
    assert np.abs(got - want).max() > 100 * TOL


def test_codes_hamming_identity_and_positive_similarity():
    q, _, _ = inputs()
    p = hash_params()
    z = np.transpose(q, (0, 2, 1, 3))
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    codes = np.asarray(kernelized_hash_codes(z, p["anchors"],
                                             p["hash_weights"],
                                             p["feature_mean"]))
    want, _ = ref_codes(q, **p)
    np.testing.assert_array_equal(codes, np.transpose(want, (0, 2, 1, 3)))
    c = codes[0, 0]
    dot = c @ c.T
    ham = np.asarray(pairwise_hamming_distance(c, c))
    np.testing.assert_array_equal(dot, BITS - 2 * ham)
    assert (dot + BITS + 1).min() >= 1


def test_straight_through_gradient_is_clipped_identity():
    """d codes/dz = d clip(A phi(z), -1, 1)/dz (official BinaryQuantizer:
    gradient 1 where |y| < 1, else 0), against float64 finite differences;
    the unclipped identity STE (mutation) gives a different gradient."""
    rng = np.random.default_rng(7)
    p = hash_params(seed=8)
    z = rng.normal(size=(1, H, 12, D))
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    w = rng.normal(size=(1, H, 12, BITS))
    zt = tf.constant(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        codes = kernelized_hash_codes(zt, p["anchors"], p["hash_weights"],
                                      p["feature_mean"])
        loss = tf.reduce_sum(codes * w)
    got = tape.gradient(loss, zt).numpy()

    def surrogate(zz, clip=True):
        a = np.asarray(p["anchors"], np.float64)
        d2 = ((zz[:, :, :, None] - a[None, :, None]) ** 2).sum(-1)
        sig = d2.mean(axis=(2, 3), keepdims=True)
        phi = np.exp(-d2 / (2 * sig)) - p["feature_mean"][None, :, None]
        y = np.einsum("bhnm,hkm->bhnk", phi, p["hash_weights"])
        return np.sum((np.clip(y, -1, 1) if clip else y) * w)

    def numeric(clip):
        g = np.zeros_like(z)
        eps = 1e-6
        for idx in np.ndindex(z.shape):
            zp, zm = z.copy(), z.copy()
            zp[idx] += eps
            zm[idx] -= eps
            g[idx] = (surrogate(zp, clip) - surrogate(zm, clip)) / (2 * eps)
        return g

    clipped = numeric(True)
    np.testing.assert_allclose(got, clipped, atol=2e-4, rtol=1e-3)
    assert np.abs(numeric(False) - clipped).max() > 1e-2


def test_additions_only_path_equals_float_matmul():
    """H^T (KV) with int8 codes and an int32 fixed-point KV state equals the
    float product: the multiplication-free path of sec. 4.3."""
    rng = np.random.default_rng(9)
    codes = np.where(rng.random((64, 16)) < 0.5, -1, 1).astype(np.int8)
    kv = np.round(rng.normal(size=(16, 32)) * 2**12).astype(np.int32)
    # Each output is a signed sum of KV rows: select, negate, accumulate.
    acc = np.zeros((64, 32), np.int32)
    for r in range(16):
        acc += np.where(codes[:, r:r + 1] > 0, kv[r], -kv[r])
    np.testing.assert_array_equal(
        acc, (codes.astype(np.float64) @ kv.astype(np.float64)).astype(
            np.int32))


def test_invalid_options_raise():
    q, k, v = inputs()
    p = hash_params()
    with pytest.raises(ValueError, match="normalize"):
        attention(q, k, v, kernel="ecoformer", normalize="x", **p)
    with pytest.raises(ValueError, match="official"):
        attention(q, k, v, kernel="ecoformer", normalize="official",
                  causal=True, **p)
    with pytest.raises(ValueError, match="hash_weights"):
        attention(q, k, v, kernel="ecoformer")
    with pytest.raises(ValueError, match="expected hash_weights"):
        attention(q, k, v, kernel="ecoformer", num_bits=4, **p)
    with pytest.raises(ValueError, match="similarity_offset"):
        attention(q, k, v, kernel="ecoformer", similarity_offset=BITS, **p)


def test_in_multi_head_attention_layer():
    """The layer creates A, anchors and mean as non-trainable weights
    (register_kernel(params=)), passes them to the kernel, and the task
    gradient reaches the projections but not the hash functions."""
    layer = MultiHeadAttention(
        num_heads=H, key_dim=D, kernel="ecoformer",
        kernel_options={"num_bits": BITS, "num_anchors": M})
    x = np.random.default_rng(10).normal(size=(2, 15, 16)).astype("float32")
    out = np.asarray(layer(x))
    hashes = {w.name: w for w in layer.non_trainable_weights}
    assert sorted(hashes) == ["hash_anchors", "hash_feature_mean",
                              "hash_weights"]
    assert tuple(hashes["hash_weights"].shape) == (H, BITS, M)
    assert len(layer.trainable_weights) == 8  # q, k, v, o kernels + biases
    q = np.asarray(layer.query_dense(
        np.reshape(np.asarray(x), (30, -1)))).reshape(2, 15, H, D)
    k, v = (np.asarray(t) for t in layer.project_kv(x, x))
    p = dict(hash_weights=np.asarray(hashes["hash_weights"]),
             anchors=np.asarray(hashes["hash_anchors"]),
             feature_mean=np.asarray(hashes["hash_feature_mean"]))
    inner = reference(q, k, v, p, margin=0.0).reshape(30, H * D)
    want = np.asarray(layer.output_dense(inner.astype("float32")))
    want = want.reshape(2, 15, -1)
    np.testing.assert_allclose(out, want, atol=1e-5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None and np.any(np.asarray(g)) for g in grads)


# ------------------------------------------------ linear memory (XLA program)
_ARRAY = re.compile(r"\b(?:f|s|u|pred|bf)\d*\[([0-9,]*)\]")
L_BIG = 8192


def largest_array(fn, *args):
    """Element count of the largest array in the (lowered, not compiled)
    XLA program of `fn(*args)` (method of test_chunked_memory.py)."""
    hlo = tf.function(fn, jit_compile=True).experimental_get_compiler_ir(
        *args)(stage="hlo")
    return max(int(np.prod([int(x) for x in dims.split(",") if x]))
               for dims in _ARRAY.findall(hlo))


@pytest.mark.parametrize("causal", [False, True])
def test_no_length_squared_array_forward_or_backward(causal):
    """At T = S = 8192 the program (forward + gradient) holds no array
    bigger than 64 * L * H elements, while `dense` holds the L x L scores
    (control). Measured: non-causal 262,144 = L H D (the inputs), causal
    1,048,576 = L H C (the chunk-64 tiles of the shared causal core); a
    query-dependent (T, S) mask (explicit fallback) gives L^2 H."""
    p = {k: tf.constant(v) for k, v in hash_params(d=16).items()}
    x = tf.zeros((1, L_BIG, H, 16))

    def grad(kernel, **kw):
        def fn(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = attention(x, x, x, kernel=kernel, causal=causal, **kw)
            return out, tape.gradient(out, x)
        return fn

    biggest = largest_array(grad("ecoformer", **p), x)
    assert biggest <= 64 * L_BIG * H, biggest
    assert largest_array(grad("dense"), x) >= L_BIG * L_BIG
