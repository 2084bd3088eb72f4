"""`performer` (FAVOR+, Choromanski et al. 2021).

- The kernel computes exactly the FAVOR+ estimator: it equals a float64
  NumPy evaluation of phi(q).phi(k) weights (Lemma 1, Eq. 4-5) with the
  same W, for every path (non-causal, causal prefix sums with ragged
  chunks, decoding T < S, T > S, key-padding and query-varying masks).
- The causal prefix-sum form equals the masked quadratic form with the
  same features, values and gradients (spec check 8.3.4).
- The estimator: phi(q).phi(k) is unbiased for exp(q.k / sqrt(D)) (Monte
  Carlo, 3 standard errors); the attention error vs float64 softmax
  decreases as m grows (calibrated below); orthogonal features beat i.i.d.
  ones. Mutations (dropping or halving the -||x||^2/2 term of Lemma 1) fail
  these checks.

Calibration (L = 64, D = 16, q, k ~ N(0, 0.25), mean relative Frobenius
error over 8 draws of W, m = 16/64/256/1024; three data seeds):
  orthogonal  err(1024) 0.070-0.108, err(64)/err(1024) 2.87-2.97
  i.i.d.      err(1024) 0.114-0.159, ratio 1.97-2.29 (not always monotone)
  causal      err(1024) 0.057-0.084, ratio 2.79-3.08
  half norm   err(1024) 0.115-0.166, ratio 1.89-2.12   (broken)
  no norm     err(1024) 0.191-0.274, ratio 1.37-1.52   (broken)
Thresholds: monotone, ratio in [2.5, 8], err(1024) < 0.13.
"""

import zlib

import numpy as np
import pytest
import tensorflow as tf
from attention_reference import dense_reference
from keras import ops

from official.attention import attention
from official.attention.kernels import performer
from official.attention.kernels._approx_utils import prefix_scan

TOL = 2e-5


def favor_reference(q, k, v, w, causal=False, mask=None):
    """Float64 FAVOR+ attention with features W (m, D), scale 1/sqrt(D)."""
    q, k, v, w = (np.asarray(x, np.float64) for x in (q, k, v, w))
    b, t, h, d = q.shape
    s, h_kv = k.shape[1], k.shape[2]
    k, v = np.repeat(k, h // h_kv, 2), np.repeat(v, h // h_kv, 2)

    def phi(x):
        x = x * d**-0.25
        sq = 0.5 * (x * x).sum(-1, keepdims=True)
        return np.exp(x @ w.T - sq) / np.sqrt(len(w))

    a = np.einsum("bthm,bshm->bhts", phi(q), phi(k))
    allowed = np.ones((b, 1, t, s), bool)
    if causal:
        allowed &= np.arange(s)[None, :] <= np.arange(t)[:, None] + s - t
    if mask is not None:
        m = np.asarray(mask, bool)
        allowed = allowed & (m if m.ndim == 3 else m[None])[:, None]
    a = np.where(allowed, a, 0.0)
    den = a.sum(-1, keepdims=True)
    a = np.where(den > 0, a / np.where(den > 0, den, 1.0), 0.0)
    return np.einsum("bhts,bshd->bthd", a, v)


# name: (B, T, S, H, H_kv, causal, mask kind, chunk_size)
CASES = {
    "noncausal_gqa": (2, 37, 37, 4, 2, False, None, 128),
    "causal_ragged": (2, 37, 37, 4, 2, True, None, 5),
    "causal_padding_mqa": (2, 37, 37, 4, 1, True, "pad", 8),
    "causal_one_chunk": (1, 37, 37, 4, 4, True, None, 64),
    "decode_t_lt_s": (2, 9, 37, 4, 2, True, "pad", 4),
    "causal_t_gt_s": (2, 37, 20, 4, 2, True, None, 6),
    "full_mask": (2, 37, 37, 4, 2, False, "full", 8),
    "causal_full_mask": (2, 37, 37, 4, 2, True, "full", 8),
    "causal_2d_mask": (1, 30, 30, 4, 2, True, "2d", 8),
}
D = 8


def make_case(name):
    b, t, s, h, h_kv, causal, kind, chunk = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    q = rng.standard_normal((b, t, h, D)).astype("float32")
    k = rng.standard_normal((b, s, h_kv, D)).astype("float32")
    v = rng.standard_normal((b, s, h_kv, D)).astype("float32")
    mask = None
    if kind == "pad":
        mask = (
            np.arange(s)[None, None, :] < np.array([s, s - 9])[:b, None, None]
        )
    elif kind == "full":
        mask = rng.random((b, t, s)) > 0.3
        mask[0, 2] = False
    elif kind == "2d":
        mask = rng.random((t, s)) > 0.2
    w = performer.draw_random_features(32, D, seed=7).astype("float32")
    return (q, k, v), causal, mask, dict(random_features=w, chunk_size=chunk)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_float64_favor(name):
    (q, k, v), causal, mask, opts = make_case(name)
    out = attention(
        q, k, v, kernel="performer", causal=causal, mask=mask, **opts
    )
    want = favor_reference(q, k, v, opts["random_features"], causal, mask)
    assert np.abs(np.asarray(out) - want).max() < TOL


def test_xla_matches_float64_favor():
    (q, k, v), causal, mask, opts = make_case("decode_t_lt_s")
    fn = tf.function(
        lambda q, k, v: attention(
            q, k, v, kernel="performer", causal=causal, mask=mask, **opts
        ),
        jit_compile=True,
    )
    want = favor_reference(q, k, v, opts["random_features"], causal, mask)
    assert np.abs(np.asarray(fn(q, k, v)) - want).max() < TOL


def prefix_and_quadratic(q, k, v, opts):
    """Causal prefix sums vs the same causal pattern as an explicit (T, T)
    mask (which takes the masked quadratic form)."""
    tri = np.tril(np.ones((q.shape[1], q.shape[1]), bool))
    prefix = attention(q, k, v, kernel="performer", causal=True, **opts)
    quad = attention(q, k, v, kernel="performer", mask=tri, **opts)
    return prefix, quad


def test_prefix_sums_equal_quadratic_form():
    (q, k, v), _, _, opts = make_case("causal_ragged")
    prefix, quad = prefix_and_quadratic(q, k, v, opts)
    assert np.abs(np.asarray(prefix) - np.asarray(quad)).max() < 1e-5


def test_prefix_sum_gradients_equal_quadratic_form():
    (q, k, v), _, _, opts = make_case("causal_ragged")
    q, k, v = (tf.constant(x) for x in (q, k, v))
    wts = tf.constant(np.random.default_rng(1).standard_normal(q.shape))
    wts = tf.cast(wts, "float32")
    grads = []
    for form in (0, 1):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = prefix_and_quadratic(q, k, v, opts)[form]
            loss = tf.reduce_sum(out * wts)
        grads.append(tape.gradient(loss, [q, k, v]))
    for a, b in zip(*grads):
        assert np.isfinite(a.numpy()).all()
        assert np.abs(a.numpy() - b.numpy()).max() < 1e-4


@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_prefix_scan_order(n):
    """The block prefix scan on a non-commutative operator (2x2 matrix
    products) equals the sequential left-to-right products."""
    m = np.random.default_rng(n).standard_normal((n, 2, 2)).astype("float32")
    (out,) = prefix_scan(
        lambda a, b: (ops.matmul(a[0], b[0]),), (ops.convert_to_tensor(m),)
    )
    want = [m[0]]
    for x in m[1:]:
        want.append(want[-1] @ x)
    assert np.abs(np.asarray(out) - np.stack(want)).max() < 1e-4


# --- the estimator ----------------------------------------------------------


def broken_half_norm(x, w):
    return ops.matmul(x, ops.transpose(w)) - 0.25 * ops.sum(
        x * x, axis=-1, keepdims=True
    )


def broken_no_norm(x, w):
    return ops.matmul(x, ops.transpose(w))


def kernel_estimates(scale_in, seed):
    """Per-feature products phi_r(q) phi_r(k) m for one random (q, k) pair
    (20000 i.i.d. features, so the standard error is the textbook one) and
    the exact exp(q.k / sqrt(D))."""
    d = 16
    rng = np.random.default_rng(seed)
    q, k = scale_in * rng.standard_normal((2, 1, d))
    w = performer.draw_random_features(20000, d, seed, orthogonal=False)
    w = w.astype("float32")
    r = d**-0.25
    lq, lk = (
        np.asarray(performer.log_features(ops.cast(x * r, "float32"), w))[0]
        for x in (q, k)
    )
    return np.exp(lq.astype(np.float64) + lk), np.exp(q[0] @ k[0] / np.sqrt(d))


def z_scores():
    out = []
    for scale_in, seed in [(0.5, 0), (0.5, 1), (0.7, 2), (0.7, 3)]:
        prod, exact = kernel_estimates(scale_in, seed)
        se = prod.std() / np.sqrt(len(prod))
        out.append(abs(prod.mean() - exact) / se)
    return out


def test_positive_features_are_unbiased(monkeypatch):
    """E[phi(q).phi(k)] = exp(q.k / sqrt(D)) within 3 standard errors; the
    estimator with half the -||x||^2/2 term is off by many (measured z:
    correct 0.1-1.9, broken 3.4-31, sum 63)."""
    assert max(z_scores()) < 3.0
    monkeypatch.setattr(performer, "log_features", broken_half_norm)
    assert sum(z_scores()) > 30.0


def relative_errors(ms, causal=False, orthogonal=True, seeds=range(8)):
    rng = np.random.default_rng(0)
    q, k = (0.5 * rng.standard_normal((2, 1, 64, 2, 16))).astype("float32")
    v = rng.standard_normal((1, 64, 2, 16)).astype("float32")
    ref = dense_reference(q, k, v, causal=causal)
    errs = []
    for m in ms:
        e = []
        for seed in seeds:
            w = performer.draw_random_features(m, 16, seed, orthogonal)
            out = attention(
                q,
                k,
                v,
                kernel="performer",
                causal=causal,
                random_features=w.astype("float32"),
            )
            e.append(
                np.linalg.norm(np.asarray(out) - ref) / np.linalg.norm(ref)
            )
        errs.append(float(np.mean(e)))
    return errs


def converges(errs):
    decreasing = all(a > b for a, b in zip(errs, errs[1:]))
    ratio = errs[1] / errs[3]
    return decreasing and 2.5 <= ratio <= 8.0 and errs[3] < 0.13


MS = [16, 64, 256, 1024]


@pytest.mark.parametrize("causal", [False, True])
def test_error_decreases_with_num_features(causal):
    errs = relative_errors(MS, causal=causal)
    assert converges(errs), errs


@pytest.mark.parametrize("broken", [broken_half_norm, broken_no_norm])
def test_convergence_check_rejects_biased_features(monkeypatch, broken):
    monkeypatch.setattr(performer, "log_features", broken)
    assert not converges(relative_errors(MS))


def test_orthogonal_features_beat_iid():
    """Sec. 2.4 / Theorem 2: lower mean error at the same m."""
    ms = [64, 256]
    orth = relative_errors(ms)
    iid = relative_errors(ms, orthogonal=False)
    assert all(o < 0.93 * i for o, i in zip(orth, iid)), (orth, iid)


def test_random_features_are_block_orthogonal():
    d = 16
    w = performer.draw_random_features(40, d, seed=0)
    for start in (0, 16, 32):
        blk = w[start : start + d]
        gram = blk @ blk.T
        assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-10
    norms = np.linalg.norm(performer.draw_random_features(4096, d, 1), axis=1)
    assert abs(norms.mean() - np.sqrt(d - 0.5)) < 0.1  # chi(d) mean
    iid = performer.draw_random_features(16, d, 0, orthogonal=False)
    blk = iid @ iid.T
    assert np.abs(blk - np.diag(np.diag(blk))).max() > 1.0


# --- stability and options ---------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_large_inputs_stay_finite(causal):
    """Stabilisers keep exp() in range for logits of several hundred."""
    (q, k, v), _, mask, opts = make_case("causal_padding_mqa")
    out = attention(
        8 * q, 8 * k, v, kernel="performer", causal=causal, mask=mask, **opts
    )
    assert np.isfinite(np.asarray(out)).all()


def test_seeded_functional_features():
    (q, k, v), _, _, _ = make_case("noncausal_gqa")
    a, b, c = (
        np.asarray(
            attention(q, k, v, kernel="performer", seed=s, num_features=16)
        )
        for s in (0, 0, 1)
    )
    assert np.array_equal(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize(
    "opts,match",
    [
        (dict(random_features=np.zeros((8, 3), "float32")), "must be"),
        (
            dict(random_features=np.zeros((8, D), "float32"), num_features=4),
            "num_features",
        ),
        (dict(num_features=0), "num_features"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(orthogonal=1), "orthogonal"),
    ],
)
def test_bad_options_raise(opts, match):
    q = np.zeros((1, 6, 2, D), "float32")
    with pytest.raises(ValueError, match=match):
        attention(q, q, q, kernel="performer", **opts)
