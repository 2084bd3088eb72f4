"""`chunked` and `split_k` equal float64 dense attention (forward, gradients).

Every case has S = 24 keys, so the block/split counts below cover: one block
(size > S), 3 blocks that divide S, a ragged count (7 does not divide 24),
many blocks, and for split_k more splits (40) than keys. Cases cover padding
masks, (B, T, S) and (T, S) masks with fully masked rows, causal self
attention, causal decoding with T < S (queries aligned to the last T keys),
causal with T > S (leading rows see no key), grouped-query (H_kv = 2),
multi-query (H_kv = 1) and multi-head (H_kv = H) layouts, and large logits
(scale x30) that stress the max-rescaling.

The `test_detects_*` tests are the mutation checks: each breaks one step of
the algorithm (online rescaling, merge weights, backward masking) and shows
that the comparison used here then fails by orders of magnitude.
"""

import zlib

import numpy as np
import pytest
import tensorflow as tf
from attention_reference import dense_reference
from keras import ops

from official.attention import attention
from official.attention.kernels import chunked
from official.attention.kernels import online_softmax

TOL = 2e-5  # forward, float32 kernels vs float64 reference
GRAD_TOL = 1e-4  # chunked gradients vs dense gradients

OPTIONS = {
    "chunked": [
        dict(chunk_size=64, query_chunk_size=64),  # 1 block (> S)
        dict(chunk_size=8, query_chunk_size=8),  # 3 blocks, divide S
        dict(chunk_size=7, query_chunk_size=5),  # ragged blocks
        dict(chunk_size=3, query_chunk_size=24),  # 8 key blocks
        # the same tiles through the loops (the defaults unroll <= 64 tiles)
        dict(chunk_size=7, query_chunk_size=5, max_unrolled_tiles=0),
        dict(chunk_size=3, query_chunk_size=24, max_unrolled_tiles=7),
    ],
    "split_k": [
        dict(num_splits=1),
        dict(num_splits=3),
        dict(num_splits=5),  # does not divide 24
        dict(num_splits=40),  # more splits than keys
    ],
}
KERNEL_OPTIONS = [
    pytest.param(
        kernel,
        opts,
        id=f"{kernel}-" + "-".join(f"{k}{v}" for k, v in opts.items()),
    )
    for kernel, all_opts in OPTIONS.items()
    for opts in all_opts
]
RAGGED = {"chunked": OPTIONS["chunked"][2], "split_k": OPTIONS["split_k"][2]}

# name: (B, T, S, H, H_kv, D, causal, mask kind, scale multiplier)
CASES = {
    "gqa": (2, 24, 24, 4, 2, 16, False, None, 1.0),
    "padding_mask": (2, 24, 24, 4, 2, 16, False, "padding", 1.0),
    "causal": (2, 24, 24, 4, 2, 16, True, None, 1.0),
    "causal_padding_mqa": (2, 24, 24, 4, 1, 16, True, "padding", 1.0),
    "decode_causal": (2, 5, 24, 4, 2, 16, True, "padding", 1.0),
    "decode_one_token": (2, 1, 24, 4, 2, 16, True, None, 1.0),
    "cross_full_mask_mha": (2, 11, 24, 4, 4, 16, False, "full", 1.0),
    "mask_2d_causal": (1, 24, 24, 4, 2, 16, True, "2d", 1.0),
    "causal_t_gt_s": (2, 30, 24, 4, 2, 16, True, None, 1.0),
    "large_logits": (2, 24, 24, 4, 2, 16, True, "padding", 30.0),
}


def make_case(name):
    b, t, s, h, h_kv, d, causal, mask_kind, mult = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    q = rng.standard_normal((b, t, h, d)).astype("float32")
    k = rng.standard_normal((b, s, h_kv, d)).astype("float32")
    v = rng.standard_normal((b, s, h_kv, d)).astype("float32")
    mask = None
    if mask_kind == "padding":  # (B, 1, S): batch 1 keeps its first 15 keys
        lengths = np.array([s - 3, 15])[:b]
        mask = np.arange(s)[None, None, :] < lengths[:, None, None]
    elif mask_kind == "full":  # (B, T, S) with one fully masked row
        mask = rng.random((b, t, s)) > 0.4
        mask[0, 2] = False
    elif mask_kind == "2d":  # (T, S)
        mask = rng.random((t, s)) > 0.3
    scale = mult / np.sqrt(d)
    return dict(query=q, key=k, value=v, causal=causal, mask=mask, scale=scale)


def reference(case):
    return dense_reference(
        case["query"],
        case["key"],
        case["value"],
        causal=case["causal"],
        mask=case["mask"],
        scale=case["scale"],
    )


def run(kernel, case, opts, jit=False):
    args = (case["query"], case["key"], case["value"])
    mask = case["mask"]

    def fn(q, k, v):
        return attention(
            q,
            k,
            v,
            kernel=kernel,
            causal=case["causal"],
            mask=mask,
            scale=case["scale"],
            **opts,
        )

    if jit:
        fn = tf.function(fn, jit_compile=True)
    return np.asarray(fn(*args))


def max_err(kernel, case_name, opts, jit=False):
    case = make_case(case_name)
    out = run(kernel, case, opts, jit=jit)
    assert out.shape == case["query"].shape
    return float(np.abs(out - reference(case)).max())


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_dense_matches_reference(case_name):
    """Pins the conventions shared by the reference and `dense`."""
    assert max_err("dense", case_name, {}) < TOL


@pytest.mark.parametrize("case_name", sorted(CASES))
@pytest.mark.parametrize("kernel,opts", KERNEL_OPTIONS)
def test_eager_matches_reference(kernel, opts, case_name):
    assert max_err(kernel, case_name, opts) < TOL


@pytest.mark.parametrize("kernel,opts", KERNEL_OPTIONS)
def test_xla_matches_reference_all_counts(kernel, opts):
    assert max_err(kernel, "causal_padding_mqa", opts, jit=True) < TOL


@pytest.mark.parametrize(
    "case_name", ["decode_causal", "cross_full_mask_mha", "causal_t_gt_s"]
)
@pytest.mark.parametrize("kernel", ["chunked", "split_k"])
def test_xla_matches_reference_cases(kernel, case_name):
    assert max_err(kernel, case_name, RAGGED[kernel], jit=True) < TOL


# --- gradients ---------------------------------------------------------------


def grads(kernel, case, opts, jit=False):
    q, k, v = (tf.constant(case[n]) for n in ("query", "key", "value"))
    w = tf.constant(
        np.random.default_rng(7).standard_normal(case["query"].shape),
        "float32",
    )

    def fn():
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = attention(
                q,
                k,
                v,
                kernel=kernel,
                causal=case["causal"],
                mask=case["mask"],
                scale=case["scale"],
                **opts,
            )
            loss = tf.reduce_sum(out * w)
        return tape.gradient(loss, [q, k, v])

    if jit:
        fn = tf.function(fn, jit_compile=True)
    return [np.asarray(g) for g in fn()]


def grad_err(kernel, case_name, opts, jit=False):
    """Max |g - g_dense| over dq, dk, dv, each divided by max(1, max|g_dense|)
    (absolute for O(1) gradients; relative for the x30-scaled logits, whose
    dq is ~30x larger)."""
    case = make_case(case_name)
    ref = grads("dense", case, {})
    got = grads(kernel, case, opts, jit=jit)
    return max(
        float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))
        for a, b in zip(got, ref)
    )


@pytest.mark.parametrize(
    "case_name",
    [
        "causal_padding_mqa",
        "cross_full_mask_mha",
        "decode_causal",
        "causal_t_gt_s",
        "large_logits",
    ],
)
def test_chunked_gradients_match_dense_eager(case_name):
    assert grad_err("chunked", case_name, RAGGED["chunked"]) < GRAD_TOL


def test_chunked_gradients_match_dense_xla():
    # One case only: compiling the two-pass custom backward takes ~15 s here.
    err = grad_err("chunked", "causal_padding_mqa", RAGGED["chunked"], jit=True)
    assert err < GRAD_TOL


def test_split_k_gradients_match_dense():
    assert grad_err("split_k", "cross_full_mask_mha", dict(num_splits=40)) < (
        GRAD_TOL
    )


# --- options -----------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["chunked", "split_k"])
def test_unknown_option_raises(kernel):
    case = make_case("gqa")
    with pytest.raises(ValueError, match="unknown options"):
        attention(
            case["query"], case["key"], case["value"], kernel=kernel, block=4
        )


@pytest.mark.parametrize(
    "kernel,opts",
    [
        ("chunked", dict(chunk_size=0)),
        ("chunked", dict(query_chunk_size=2.5)),
        ("chunked", dict(max_unrolled_tiles=-1)),
        ("split_k", dict(num_splits=0)),
        ("split_k", dict(num_splits=True)),
    ],
)
def test_bad_option_values_raise(kernel, opts):
    case = make_case("gqa")
    with pytest.raises(ValueError, match="(positive|non-negative) int"):
        attention(
            case["query"], case["key"], case["value"], kernel=kernel, **opts
        )


# --- dtypes and dynamic shapes -----------------------------------------------


@pytest.mark.parametrize("kernel", ["chunked", "split_k"])
def test_bfloat16_inputs_keep_dtype(kernel):
    case = make_case("causal_padding_mqa")
    q, k, v = (ops.cast(case[n], "bfloat16") for n in ("query", "key", "value"))
    out = attention(
        q, k, v, kernel=kernel, causal=True, mask=case["mask"], **RAGGED[kernel]
    )
    assert out.dtype == "bfloat16"
    err = np.abs(np.asarray(ops.cast(out, "float32")) - reference(case)).max()
    assert err < 5e-2


@pytest.mark.parametrize("kernel", ["chunked", "split_k"])
def test_unknown_lengths_in_graph(kernel):
    """Traced once with T, S = None; correct for two different lengths."""
    spec_q = tf.TensorSpec((None, None, 4, 16), "float32")
    spec_kv = tf.TensorSpec((None, None, 2, 16), "float32")

    @tf.function(input_signature=[spec_q, spec_kv, spec_kv])
    def fn(q, k, v):
        return attention(q, k, v, kernel=kernel, causal=True, **RAGGED[kernel])

    for name in ("causal", "decode_causal"):
        case = make_case(name)
        case["mask"] = None
        out = fn(case["query"], case["key"], case["value"])
        assert np.abs(np.asarray(out) - reference(case)).max() < TOL
    assert fn.experimental_get_tracing_count() == 1


# --- mutation checks: the comparisons above can fail -------------------------


def test_detects_missing_online_rescaling(monkeypatch):
    """Dropping exp(m_old - m_new) (FlashAttention-2 Alg. 1 line 9)."""
    assert max_err("chunked", "gqa", RAGGED["chunked"]) < TOL
    monkeypatch.setattr(
        online_softmax, "rescale_factor", lambda m_old, m_new: m_old * 0 + 1
    )
    assert max_err("chunked", "gqa", RAGGED["chunked"]) > 100 * TOL


def test_detects_missing_merge_weights(monkeypatch):
    """Merging partials without exp(lse_i - lse) (plain average)."""
    monkeypatch.setattr(
        online_softmax,
        "merge_weights",
        lambda lses, lse: ops.where(ops.isfinite(lses), 1.0, 0.0),
    )
    assert max_err("split_k", "gqa", dict(num_splits=3)) > 100 * TOL


def test_detects_unmasked_backward(monkeypatch):
    """A backward pass that forgets the mask when recomputing P."""

    def unmasked_probs(plan, q_blk, k_blk, lse_blk, q0, k0):
        return ops.exp(chunked._scores(q_blk, k_blk) - lse_blk[..., None])

    monkeypatch.setattr(chunked, "_probs", unmasked_probs)
    case = "causal_padding_mqa"
    assert max_err("chunked", case, RAGGED["chunked"]) < TOL  # forward intact
    assert grad_err("chunked", case, RAGGED["chunked"]) > 100 * GRAD_TOL
