"""`local_global` (Longformer) equals float64 dense attention restricted to
the sliding-window (+ dilation) + global pattern, built here independently
from positions (Beltagy et al. 2020, Sec. 3.1; spec check 8.3.1); with a
window >= the length it equals plain dense attention; the implicit
attention matrix (one-hot values) has exactly the claimed support.

Lengths (37, 29) are not multiples of the block sizes used (8, 5, 16), so
padded query blocks and clipped key windows are exercised.
"""

import zlib

import numpy as np
import pytest
import tensorflow as tf
from attention_reference import dense_reference

from official.attention import attention

TOL = 2e-5


def longformer_pattern(t, s, causal, window, dilation, glob):
    """(T, S) boolean pattern from the paper's definition."""
    qpos = np.arange(t)[:, None] + (s - t if causal else 0)
    kpos = np.arange(s)[None, :]
    diff = kpos - qpos
    right = 0 if causal else window * dilation
    band = (diff >= -window * dilation) & (diff <= right)
    band &= diff % dilation == 0
    is_global_key = np.isin(kpos, glob)
    is_global_query = np.isin(qpos, glob)
    allowed = band | is_global_key | is_global_query
    if causal:
        allowed &= kpos <= qpos
    return allowed


# name: (B, T, S, H, H_kv, D, causal, window, dilation, global, block, mask)
CASES = {
    "band": (2, 37, 37, 4, 2, 8, False, 3, 1, 0, 8, None),
    "band_causal": (2, 37, 37, 4, 2, 8, True, 3, 1, 0, 8, None),
    "dilated_global_idx": (2, 37, 37, 4, 2, 8, False, 3, 2, [0, 5], 5, "pad"),
    "causal_global_full_mask": (2, 37, 37, 4, 1, 8, True, 5, 1, 3, 7, "full"),
    "causal_dilated_2d_mask": (1, 37, 37, 4, 2, 8, True, 2, 3, [4], 16, "2d"),
    "decode_t_lt_s": (2, 9, 37, 4, 2, 8, True, 4, 1, [0, 30], 4, "pad"),
    "window_zero_global": (1, 29, 29, 4, 4, 8, True, 0, 1, [3], None, None),
    "default_block": (2, 29, 29, 2, 2, 8, False, 6, 1, 2, None, "full"),
}


def make_case(name):
    b, t, s, h, h_kv, d, causal, window, dil, glob, block, kind = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    q = rng.standard_normal((b, t, h, d)).astype("float32")
    k = rng.standard_normal((b, s, h_kv, d)).astype("float32")
    v = rng.standard_normal((b, s, h_kv, d)).astype("float32")
    mask = None
    if kind == "pad":
        mask = (
            np.arange(s)[None, None, :] < np.array([s, s - 9])[:b, None, None]
        )
    elif kind == "full":
        mask = rng.random((b, t, s)) > 0.3
        mask[0, 2] = False  # a fully masked row returns 0
    elif kind == "2d":
        mask = rng.random((t, s)) > 0.2
    opts = dict(
        window=window, dilation=dil, global_tokens=glob, block_size=block
    )
    glob_idx = list(range(glob)) if isinstance(glob, int) else glob
    pattern = longformer_pattern(t, s, causal, window, dil, glob_idx)
    full = (
        pattern[None]
        if mask is None
        else pattern[None] & (mask if mask.ndim == 3 else mask[None])
    )
    return (q, k, v), causal, mask, opts, dense_reference(q, k, v, mask=full)


def run(args, causal, mask, opts, jit=False):
    def fn(q, k, v):
        return attention(
            q, k, v, kernel="local_global", causal=causal, mask=mask, **opts
        )

    if jit:
        fn = tf.function(fn, jit_compile=True)
    return np.asarray(fn(*args))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pattern_reference(name):
    args, causal, mask, opts, want = make_case(name)
    assert np.abs(run(args, causal, mask, opts) - want).max() < TOL


@pytest.mark.parametrize(
    "name",
    [
        "causal_global_full_mask",
        pytest.param("decode_t_lt_s", marks=pytest.mark.large),
    ],
)
def test_xla_matches_pattern_reference(name):
    args, causal, mask, opts, want = make_case(name)
    assert np.abs(run(args, causal, mask, opts, jit=True) - want).max() < TOL


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block", [None, 6, 64])
def test_window_covering_length_is_dense(causal, block):
    rng = np.random.default_rng(4)
    q = rng.standard_normal((2, 29, 4, 8)).astype("float32")
    k = rng.standard_normal((2, 29, 2, 8)).astype("float32")
    v = rng.standard_normal((2, 29, 2, 8)).astype("float32")
    out = attention(
        q,
        k,
        v,
        kernel="local_global",
        causal=causal,
        window=29,
        block_size=block,
    )
    assert np.abs(np.asarray(out) - dense_reference(q, k, v, causal)).max() < (
        TOL
    )


def test_pattern_check_detects_a_narrower_window():
    """The reference comparison fails for an off-by-one window."""
    args, causal, mask, opts, want = make_case("band")
    opts = dict(opts, window=opts["window"] - 1)
    assert np.abs(run(args, causal, mask, opts) - want).max() > 1e-2


@pytest.mark.parametrize("causal", [False, True])
def test_implicit_attention_matrix_support(causal):
    """v = one-hot identity (D = S): the output is the attention matrix A.
    Global rows/columns are full (causal: up to the diagonal), band entries
    positive, everything else exactly 0, rows sum to 1."""
    s, glob = 24, [0, 13]
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, s, 1, s)).astype("float32")
    k = rng.standard_normal((1, s, 1, s)).astype("float32")
    eye = np.eye(s, dtype="float32")[None, :, None, :]
    a = np.asarray(
        attention(
            q,
            k,
            eye,
            kernel="local_global",
            causal=causal,
            window=2,
            global_tokens=glob,
            block_size=5,
        )
    )[0, :, 0, :]
    pattern = longformer_pattern(s, s, causal, 2, 1, glob)
    assert np.all(a[pattern] > 0) and np.all(a[~pattern] == 0)
    assert np.allclose(a.sum(axis=1), 1.0, atol=1e-5)
    tri = np.tril(np.ones((s, s), bool)) if causal else np.ones((s, s), bool)
    for g in glob:
        assert np.all(a[g][tri[g]] > 0)  # global row sees all (allowed) keys
        assert np.all(a[:, g][tri[:, g]] > 0)  # every query sees g


@pytest.mark.parametrize(
    "opts,match",
    [
        (dict(window=-1), "window"),
        (dict(dilation=0), "dilation"),
        (dict(global_tokens=[3, 99]), "out of range"),
        (dict(global_tokens=[-1]), ">= 0"),
        (dict(global_tokens=True), "global_tokens"),
        (dict(block_size=0), "block_size"),
    ],
)
def test_bad_options_raise(opts, match):
    q = np.zeros((1, 10, 2, 4), "float32")
    with pytest.raises(ValueError, match=match):
        attention(q, q, q, kernel="local_global", **opts)
