"""`lsh` (Reformer, Kitaev et al. 2020).

- Exact limit (spec check 8.3.2): with one bucket and one chunk covering
  the sequence, LSH attention is dense shared-QK attention in which a
  token attends to itself only when it has no other allowed key.
- Against an independent loop reference that spells out the paper's
  definition per query: the union over rounds of each round's window
  (same chunk or the previous one in the (bucket, position) sort; strict
  causal: same bucket, at most C sorted slots back), one softmax over that
  multiset with logits lowered by log N_ij (pairs met in N_ij rounds) and
  the code's fallback tiers (other bucket, then self). The comparison fails
  without the duplicate correction or with a one-position-narrower window.
- Hashing: deterministic for a seed; collision probability falls with the
  angle between vectors (angular LSH, Eq. 3; spec check 8.3.2).
"""

import numpy as np
import pytest
import tensorflow as tf
from attention_reference import dense_reference
from keras import ops

from official.attention import attention
from official.attention.kernels import lsh

TOL = 2e-5


def shared_qk_keys(q):
    q = np.asarray(q, np.float64)
    return q / np.sqrt((q * q).mean(-1, keepdims=True) + 1e-6)


def dense_without_self(q, v, causal=False, mask=None):
    b, t, h, d = q.shape
    allowed = np.ones((b, t, t), bool)
    if causal:
        allowed &= np.tril(np.ones((t, t), bool))
    if mask is not None:
        allowed &= mask if mask.ndim == 3 else mask[None]
    others = allowed & ~np.eye(t, dtype=bool)
    allowed = np.where(others.any(-1, keepdims=True), others, allowed)
    v = np.repeat(v, h // v.shape[2], 2)
    return dense_reference(q, shared_qk_keys(q), v, mask=allowed)


def lsh_reference(
    q,
    v,
    rot,
    num_buckets,
    chunk,
    causal=False,
    mask=None,
    across=False,
    allow_dup=False,
    strict=True,
):
    """Per-query loop over the paper's definition (module docstring)."""
    q = np.asarray(q, np.float64)
    b, n, h, d = q.shape
    v = np.repeat(np.asarray(v, np.float64), h // v.shape[2], 2)
    k = shared_qk_keys(q)
    strict = strict and causal
    rounds = rot.shape[1] if rot is not None else 1
    nc = -(-n // chunk)
    m = (
        None
        if mask is None
        else np.broadcast_to(mask if mask.ndim == 3 else mask[None], (b, n, n))
    )
    out = np.zeros((b, n, h, d))
    for bi in range(b):
        for hi in range(h):
            x = q[bi, :, hi]
            if num_buckets == 1:
                bk = np.zeros((rounds, n), int)
            else:
                r = np.einsum("ld,drk->rlk", x, rot)
                bk = np.argmax(np.concatenate([r, -r], -1), -1)
            slot = np.zeros((rounds, n), int)
            for rr in range(rounds):
                order = sorted(range(n), key=lambda t: (bk[rr, t], t))
                slot[rr, order] = np.arange(n)

            def window(rr, i, j):
                same = bk[rr, i] == bk[rr, j]
                if strict:
                    return same and 0 <= slot[rr, i] - slot[rr, j] <= chunk
                ci, cj = slot[rr, i] // chunk, slot[rr, j] // chunk
                near = ci == cj or (nc > 1 and cj == ci - 1)
                return near and (same or across)

            for i in range(n):
                cands = []  # (tier, logit, j)
                for rr in range(rounds):
                    for j in range(n):
                        ci, cj = slot[rr, i] // chunk, slot[rr, j] // chunk
                        near = ci == cj or (nc > 1 and cj == ci - 1)
                        if not (window(rr, i, j) if strict else near):
                            continue
                        if (causal and j > i) or (
                            m is not None and not m[bi, i, j]
                        ):
                            continue
                        tier = 2 if i == j else 0
                        if not strict and not across and bk[rr, i] != bk[rr, j]:
                            tier = 1
                        logit = x[i] @ k[bi, j, hi] / np.sqrt(d)
                        if rounds > 1 and not allow_dup:
                            hits = sum(window(r2, i, j) for r2 in range(rounds))
                            logit -= np.log(max(hits, 1))
                        cands.append((tier, logit, j))
                if not cands:
                    continue
                best = min(c[0] for c in cands)
                lg = np.array([c[1] for c in cands if c[0] == best])
                js = [c[2] for c in cands if c[0] == best]
                p = np.exp(lg - lg.max())
                out[bi, i, hi] = (p / p.sum()) @ v[bi, js, hi]
    return out


B, N, H, H_KV, D = 2, 37, 2, 1, 8


def data(seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, N, H, D)).astype("float32")
    v = rng.standard_normal((B, N, H_KV, D)).astype("float32")
    pad = np.arange(N)[None, None, :] < np.array([N, N - 7])[:, None, None]
    full = rng.random((B, N, N)) > 0.3
    full[0, 4] = False  # a fully masked row returns 0
    return q, v, {"pad": pad, "full": full, None: None}


def run(q, v, causal, mask, jit=False, **opts):
    def fn(q, v):
        return attention(
            q,
            q[:, :, : v.shape[2]],
            v,
            kernel="lsh",
            causal=causal,
            mask=mask,
            **opts,
        )

    if jit:
        fn = tf.function(fn, jit_compile=True)
    return np.asarray(fn(q, v))


# --- exact limit -------------------------------------------------------------


@pytest.mark.parametrize("num_hashes", [1, 3])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask_kind", [None, "pad", "full"])
def test_one_bucket_one_chunk_is_dense_without_self(
    num_hashes, causal, mask_kind
):
    q, v, masks = data()
    out = run(
        q,
        v,
        causal,
        masks[mask_kind],
        num_buckets=1,
        num_hashes=num_hashes,
        chunk_size=64,
    )
    want = dense_without_self(q, v, causal, masks[mask_kind])
    assert np.abs(out - want).max() < TOL


# --- against the loop reference ---------------------------------------------

# (num_buckets, num_hashes, chunk, causal, across, allow_dup, strict, mask)
CASES = {
    "two_rounds": (4, 2, 8, False, False, False, True, None),
    "causal_strict": (4, 2, 8, True, False, False, True, None),
    "causal_strict_3_rounds_pad": (4, 3, 8, True, False, False, True, "pad"),
    "causal_paper_chunks": (4, 2, 8, True, False, False, False, None),
    "across_buckets_full_mask": (4, 2, 8, False, True, False, True, "full"),
    "allow_duplicates": (4, 2, 8, False, False, True, True, None),
    "ragged_chunks_pad": (8, 2, 5, False, False, False, True, "pad"),
}


def case(name, **override):
    nb, nh, c, causal, across, dup, strict, kind = CASES[name]
    q, v, masks = data(1)
    rot = lsh.draw_rotations(D, nh, nb, seed=3)
    opts = dict(
        num_buckets=nb,
        num_hashes=nh,
        chunk_size=c,
        rotations=rot.astype("float32"),
        attend_across_buckets=across,
        allow_duplicates=dup,
        strict_causal=strict,
    )
    want = lsh_reference(
        q, v, rot, nb, c, causal, masks[kind], across, dup, strict
    )
    opts.update(override)
    return q, v, causal, masks[kind], opts, want


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_loop_reference(name):
    q, v, causal, mask, opts, want = case(name)
    assert np.abs(run(q, v, causal, mask, **opts) - want).max() < TOL


@pytest.mark.parametrize("chunks_per_step", [1, 3])
@pytest.mark.parametrize(
    "name", ["causal_strict_3_rounds_pad", "ragged_chunks_pad"]
)
def test_several_loop_steps_match_loop_reference(
    monkeypatch, name, chunks_per_step
):
    """The chunk loop takes ROWS_PER_STEP // C chunks per step (the default
    runs these short inputs in one step): 1 or 3 chunks per step, the last
    step padded with a dummy chunk (nc = 5 and 8)."""
    q, v, causal, mask, opts, want = case(name)
    monkeypatch.setattr(
        lsh, "ROWS_PER_STEP", chunks_per_step * opts["chunk_size"]
    )
    assert np.abs(run(q, v, causal, mask, **opts) - want).max() < TOL


def test_xla_matches_loop_reference():
    q, v, causal, mask, opts, want = case("causal_strict_3_rounds_pad")
    assert np.abs(run(q, v, causal, mask, jit=True, **opts) - want).max() < (
        TOL
    )


def test_reference_check_detects_missing_duplicate_correction():
    q, v, causal, mask, opts, want = case("two_rounds", allow_duplicates=True)
    assert np.abs(run(q, v, causal, mask, **opts) - want).max() > 1e-3


def test_reference_check_detects_narrower_causal_window(monkeypatch):
    """A strict window one sorted slot shorter (qs - ks <= C - 1)."""
    real = lsh.sorted_slots
    monkeypatch.setattr(
        lsh,
        "sorted_slots",
        lambda n, c, nc: (real(n, c, nc)[0] + 1, real(n, c, nc)[1]),
    )
    q, v, causal, mask, opts, want = case("causal_strict")
    assert np.abs(run(q, v, causal, mask, **opts) - want).max() > 1e-3


def test_identical_rounds_equal_one_round():
    q, v, _ = data(2)
    rot = lsh.draw_rotations(D, 1, 4, seed=5).astype("float32")
    one = run(
        q,
        v,
        False,
        None,
        num_buckets=4,
        num_hashes=1,
        chunk_size=8,
        rotations=rot,
    )
    three = run(
        q,
        v,
        False,
        None,
        num_buckets=4,
        num_hashes=3,
        chunk_size=8,
        rotations=np.concatenate([rot] * 3, axis=1),
    )
    assert np.abs(one - three).max() < 1e-5


def test_inverse_permutation_undoes_the_sort():
    """Sort/unsort round trip is the identity (spec check 8.3.2)."""
    rng = np.random.default_rng(0)
    perm = np.argsort(rng.random((2, 3, 2, 50)), axis=-1).astype("int32")
    undo = np.asarray(lsh.inverse_permutation(ops.convert_to_tensor(perm)))
    assert np.array_equal(undo, np.argsort(perm, axis=-1))
    x = rng.random((2, 3, 2, 50))
    sorted_x = np.take_along_axis(x, perm, -1)
    assert np.array_equal(np.take_along_axis(sorted_x, undo, -1), x)


# --- hashing -----------------------------------------------------------------


def test_hashing_is_deterministic_for_a_seed():
    assert np.array_equal(
        lsh.draw_rotations(8, 2, 16, seed=4),
        lsh.draw_rotations(8, 2, 16, seed=4),
    )
    q, v, _ = data()
    opts = dict(num_buckets=4, num_hashes=2, chunk_size=8)
    a = run(q, v, False, None, seed=4, **opts)
    b = run(q, v, False, None, seed=4, **opts)
    c = run(q, v, False, None, seed=5, **opts)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_collision_probability_falls_with_angle():
    """10k random unit pairs in 5 angle bins: P(same bucket) is strictly
    decreasing (angular LSH, Andoni et al. 2015 as used in Eq. 3)."""
    rng = np.random.default_rng(0)
    d, pairs = 16, 10000
    x = rng.standard_normal((pairs, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.standard_normal((pairs, d))
    y -= (y * x).sum(1, keepdims=True) * x
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    theta = rng.uniform(0, np.pi, pairs)
    z = np.cos(theta)[:, None] * x + np.sin(theta)[:, None] * y
    rot = lsh.draw_rotations(d, 1, 8, seed=0)
    both = np.stack([x, z])[:, None].astype("float32")  # (2, 1, pairs, d)
    buckets = np.asarray(lsh.hash_buckets(ops.convert_to_tensor(both), rot, 8))[
        :, 0, 0
    ]
    same = buckets[0] == buckets[1]
    bins = np.digitize(theta, np.linspace(0, np.pi, 6)[1:-1])
    rates = [same[bins == i].mean() for i in range(5)]
    assert all(a > b for a, b in zip(rates, rates[1:])), rates
    assert rates[0] > 0.5 and rates[-1] < 0.05, rates


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_buckets=3), "1 or even"),
        (dict(num_hashes=0), "num_hashes"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(rotations=np.zeros((D, 1, 2), "float32")), "rotations"),
        (dict(causal=True, attend_across_buckets=True), "strict_causal"),
        (dict(num_buckets=2**28), "overflow"),
    ],
)
def test_bad_options_raise(kwargs, match):
    q = np.zeros((1, 10, 2, D), "float32")
    with pytest.raises(ValueError, match=match):
        attention(q, q, q, kernel="lsh", **kwargs)


def test_cross_attention_raises():
    q = np.zeros((1, 10, 2, D), "float32")
    kv = np.zeros((1, 12, 2, D), "float32")
    with pytest.raises(ValueError, match="T == S"):
        attention(q, kv, kv, kernel="lsh")
