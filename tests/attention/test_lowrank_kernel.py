"""`lowrank` (Linformer, Wang et al. 2020, Eq. 7).

- Exact limit (spec check 8.3.3): k = S with E = F = I is dense attention
  (shared, per-head and key-value-shared projections).
- General case against float64 softmax(Q (E K)^T / sqrt(D)) (F V) with
  random E, F, including S shorter than the projections' n (first S
  columns), key-padding masks (masked keys/values zeroed before the
  projection) and grouped-query heads; a mutation (projecting with E^T's
  last S columns) fails it.
- Batch items are independent (output order follows input order).
- Refusals: causal, query-varying masks, S > n, bad shapes.
- The params hook: E, F sized (k, n) from the layer's key length (or
  `max_length`), trainable.
"""

import numpy as np
import pytest
import tensorflow as tf
from attention_reference import dense_reference
from keras import ops

from official.attention import MultiHeadAttention
from official.attention import attention
from official.attention.kernels import lowrank

TOL = 2e-5
B, S, H, H_KV, D = 2, 29, 4, 2, 8


def data(seed=0, t=S, s=S):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, t, H, D)).astype("float32")
    k = rng.standard_normal((B, s, H_KV, D)).astype("float32")
    v = rng.standard_normal((B, s, H_KV, D)).astype("float32")
    return q, k, v


def linformer_reference(q, k, v, e, f, mask=None):
    q, k, v, e, f = (np.asarray(x, np.float64) for x in (q, k, v, e, f))
    b, s = k.shape[:2]
    if mask is not None:
        keep = np.broadcast_to(np.asarray(mask)[:, 0], (b, s))
        k, v = k * keep[:, :, None, None], v * keep[:, :, None, None]
    e, f = e[..., :s], f[..., :s]
    eq = "ks,bshd->bkhd" if e.ndim == 2 else "hks,bshd->bkhd"
    kp, vp = np.einsum(eq, e, k), np.einsum(eq, f, v)
    out = dense_reference(q, kp, vp)
    if mask is not None:
        out = np.where(np.asarray(mask).any(-1)[:, :, None, None], out, 0.0)
    return out


@pytest.mark.parametrize(
    "opts",
    [
        {},
        dict(share_kv=True),
        dict(share_heads=False),
    ],
    ids=["shared_heads", "shared_kv", "per_head"],
)
def test_identity_projections_are_dense(opts):
    q, k, v = data()
    eye = np.eye(S, dtype="float32")
    if opts.get("share_heads") is False:
        eye = np.stack([eye] * H_KV)
    proj = (
        dict(e_proj=eye)
        if opts.get("share_kv")
        else dict(e_proj=eye, f_proj=eye)
    )
    out = attention(q, k, v, kernel="lowrank", k=S, **proj, **opts)
    assert np.abs(np.asarray(out) - dense_reference(q, k, v)).max() < TOL


def projections(k, n, per_head=False, seed=0):
    rng = np.random.default_rng(seed)
    shape = (H_KV, k, n) if per_head else (k, n)
    return (rng.standard_normal((2,) + shape) / np.sqrt(k)).astype("float32")


# name: (T, S, n, k, per_head, padding mask)
CASES = {
    "square": (S, S, S, 8, False, False),
    "shorter_than_n": (S, 21, 40, 8, False, False),
    "cross_t_ne_s": (11, S, S, 6, True, False),
    "padding_mask": (S, S, 32, 8, False, True),
    "per_head_padding": (S, 21, 32, 12, True, True),
}


def make_case(name):
    t, s, n, k, per_head, padded = CASES[name]
    q, kk, v = data(1, t, s)
    e, f = projections(k, n, per_head)
    mask = None
    if padded:
        mask = np.arange(s)[None, None, :] < np.array([s, s - 8])[:, None, None]
    opts = dict(k=k, e_proj=e, f_proj=f, share_heads=not per_head)
    return (q, kk, v), mask, opts, linformer_reference(q, kk, v, e, f, mask)


def run(args, mask, opts, jit=False):
    def fn(q, k, v):
        return attention(q, k, v, kernel="lowrank", mask=mask, **opts)

    if jit:
        fn = tf.function(fn, jit_compile=True)
    return np.asarray(fn(*args))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_float64_linformer(name):
    args, mask, opts, want = make_case(name)
    assert np.abs(run(args, mask, opts) - want).max() < TOL


def test_xla_matches_float64_linformer():
    args, mask, opts, want = make_case("per_head_padding")
    assert np.abs(run(args, mask, opts, jit=True) - want).max() < TOL


def test_reference_check_detects_wrong_columns(monkeypatch):
    """Projecting with the last S columns instead of the first S."""
    real = lowrank.project
    monkeypatch.setattr(
        lowrank,
        "project",
        lambda x, p, s: real(x, ops.flip(p, axis=-1), s),
    )
    args, mask, opts, want = make_case("shorter_than_n")
    assert np.abs(run(args, mask, opts) - want).max() > 1e-2


def test_fully_masked_item_returns_zero():
    q, k, v = data()
    mask = np.zeros((B, 1, S), bool)
    mask[0] = True
    out = np.asarray(attention(q, k, v, kernel="lowrank", k=8, mask=mask))
    assert np.all(out[1] == 0) and np.abs(out[0]).max() > 0


def test_batch_items_are_independent():
    q, k, v = data(3)
    out = np.asarray(attention(q, k, v, kernel="lowrank", k=8))
    swapped = np.asarray(
        attention(q[::-1], k[::-1], v[::-1], kernel="lowrank", k=8)
    )
    assert np.abs(out[::-1] - swapped).max() < 1e-6


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(causal=True), "causal"),
        (dict(mask=np.ones((S, S), bool)), "key-padding"),
        (dict(e_proj=np.zeros((8, S - 1), "float32")), "fixed maximum"),
        (dict(e_proj=np.zeros((4, S), "float32")), "must have shape"),
        (dict(k=0), "`k`"),
        (dict(share_kv=1), "share_kv"),
    ],
)
def test_refusals(kwargs, match):
    q, k, v = data()
    kwargs = dict(kwargs)
    mask = kwargs.pop("mask", None)
    causal = kwargs.pop("causal", False)
    with pytest.raises(ValueError, match=match):
        attention(
            q,
            k,
            v,
            kernel="lowrank",
            causal=causal,
            mask=mask,
            **dict(dict(k=8), **kwargs),
        )


def test_layer_projections_from_key_length():
    layer = MultiHeadAttention(
        num_heads=2,
        key_dim=4,
        kernel="lowrank",
        kernel_options=dict(k=5, share_heads=False),
    )
    x = np.zeros((1, 12, 8), "float32")
    layer(x)
    own = {
        w.name: (tuple(w.shape), w.trainable)
        for w in layer.weights
        if w.name.startswith("lowrank")
    }
    assert own == {
        "lowrank_e": ((2, 5, 12), True),
        "lowrank_f": ((2, 5, 12), True),
    }
    shared = MultiHeadAttention(
        num_heads=2,
        key_dim=4,
        kernel="lowrank",
        kernel_options=dict(k=5, share_kv=True, max_length=20),
    )
    shared(x)  # a shorter input uses the first 12 of n = 20 columns
    own = [
        (w.name, tuple(w.shape))
        for w in shared.weights
        if w.name.startswith("lowrank")
    ]
    assert own == [("lowrank_e", (5, 20))]


def test_layer_needs_a_length():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, kernel="lowrank")
    with pytest.raises(ValueError, match="max_length"):
        layer.build((None, None, 8))
