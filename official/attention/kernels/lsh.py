"""`lsh`: Reformer's LSH attention (shared-QK, angular hashing, sorted chunks).

Kitaev, Kaiser & Levskaya 2020, "Reformer: The Efficient Transformer",
ICLR, arXiv 2001.04451, Sec. 2-3 (garden spec
`efficient_attention_survey.md` Sec. 8.2). Details follow the authors' code
(tensor2tensor/trax `MergedMultiHashedCausalAttentionV2` / trax
`LSHSelfAttention`):

1. Shared-QK (Sec. 3 "Shared-QK Transformer"): the keys are the queries
   normalised to unit RMS, k_j = q_j / sqrt(mean(q_j^2) + 1e-6), so
   logits = scale * q_i.k_j. The `key` argument only fixes S (= T): a
   Reformer layer shares its query and key projections.
2. Angular LSH (Sec. 2, Eq. 3): per round r, h(x) = argmax([xR_r; -xR_r])
   with a random (D, num_buckets / 2) matrix R_r (`rotations`, (D,
   num_hashes, num_buckets / 2)).
3. Per round, positions are stably sorted by (bucket, position) and cut
   into chunks of `chunk_size`; each chunk attends to itself and the chunk
   before it (Fig. 2; the first chunk has none).
4. Fallback tiers as in the code's additive -1e5 (different bucket, unless
   `attend_across_buckets`) and -1e6 (the query's own position: "a token
   may not attend to itself unless it has no other valid targets", Sec. 3)
   penalties: a query attends its lowest non-empty tier (same-bucket keys,
   else other-bucket keys, else itself), across all rounds. They are
   applied exactly (masks + a per-tier round merge) rather than as float32
   offsets, whose rounding at 1e5 is ~4e-3. Causal and user masks remove
   keys (j > i by original positions).
5. Multi-round (Sec. 3 "Multi-round LSH attention", Eq. 6): a pair met in
   N_ij rounds has its logit lowered by log N_ij in each
   (`allow_duplicates=False`, the code's duplicate counting), and rounds
   merge with o = sum_r exp(lse_r - logsumexp_r lse_r) o_r
   (`online_softmax.merge_partials`).
6. Causal. In the paper a chunk boundary falls wherever the sort puts it,
   and how many tokens sort before query i depends on the buckets of
   *later* tokens too: a later token can move a chunk boundary and change
   which earlier keys query i sees (`tests/attention/test_lsh_kernel.py`
   shows it). With `strict_causal=True` (default) query i attends the
   keys of its own bucket that are at most `chunk_size` sorted slots
   before it — its `chunk_size` latest same-bucket predecessors, a set
   fixed by positions <= i (within the bucket the sort is by position) —
   and itself only if there is none; keys of other buckets are masked, not
   penalised (their sorted slots depend on later tokens). The window lies
   inside the paper's chunk + previous chunk, so the cost is unchanged.
   `strict_causal=False` is the paper's pattern, causal-masked.

Cost: hashing O(R L D num_buckets), sort O(R L log L), attention
O(R L 2C D) time; chunks are processed one at a time (`keras.ops.map`) over
the sorted (B, H, R, L, D) arrays, so memory is O(R L D) plus one chunk's
(B, H, R, C, 2C) scores, no (L, L) tensor (a user mask of shape (B, T, S) is
gathered per chunk, never expanded). Requires T = S (self-attention) and
static lengths. Lengths that are not a chunk
multiple are padded with keys that sort last and are masked. A row with no
allowed key returns 0.

Rotations: the paper draws them at random; here they are a fixed,
seeded, non-trainable weight `lsh_rotations` of `MultiHeadAttention`
(register_kernel(params=...)), shared by all heads and batch items, so a
saved model hashes identically after loading. Functional calls pass
`rotations=` or get them drawn from `seed` (default 0).
"""

import math

import keras
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels._approx_utils import NEG
from official.attention.kernels._approx_utils import check_bool
from official.attention.kernels._approx_utils import check_int
from official.attention.kernels._approx_utils import numpy_rng
from official.attention.kernels._approx_utils import pad_axis
from official.attention.kernels._approx_utils import rank3_mask
from official.attention.kernels._approx_utils import static_len
from official.attention.kernels.block_mask import take_block
from official.attention.kernels.common import repeat_kv_heads
from official.attention.kernels.online_softmax import merge_partials

NAME = "lsh"
# Fallback tiers (trax: dots - 1e5 * bucket mismatch - 1e6 * self): a row
# uses its lowest non-empty tier. Applied exactly (mask + per-tier merge)
# instead of as float32 offsets, whose rounding at 1e5 is ~4e-3.
TIER_BUCKET = 1
TIER_SELF = 2
TIER_NONE = 3


# ------------------------------------------------------------------ hashing


def draw_rotations(dim, num_hashes, num_buckets, seed=0):
    """(dim, num_hashes, num_buckets // 2) float64 N(0, 1) rotations."""
    return numpy_rng(seed).standard_normal((dim, num_hashes, num_buckets // 2))


class RotationInitializer(keras.initializers.Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        r = draw_rotations(shape[0], shape[1], 2 * shape[2], self.seed)
        return ops.convert_to_tensor(r, dtype=dtype or "float32")

    def get_config(self):
        return {"seed": self.seed}


def _check_buckets(num_buckets):
    check_int(NAME, "num_buckets", num_buckets)
    if num_buckets > 1 and num_buckets % 2:
        raise ValueError(
            f"attention kernel '{NAME}': num_buckets must be 1 or even "
            f"(h(x) = argmax([xR; -xR])); received {num_buckets}."
        )


def lsh_params(
    layer, query_shape, key_shape, num_heads, num_kv_heads, key_dim, options
):
    """The non-trainable rotations (D, num_hashes, num_buckets / 2)."""
    nb = options.get("num_buckets", 32)
    nh = options.get("num_hashes", 2)
    _check_buckets(nb)
    check_int(NAME, "num_hashes", nh)
    if nb == 1:
        return {}
    r = layer.add_weight(
        name="lsh_rotations",
        shape=(key_dim, nh, nb // 2),
        initializer=RotationInitializer(options.get("seed")),
        trainable=False,
    )
    return {"rotations": r}


def hash_buckets(x, rotations, num_buckets):
    """Angular LSH (Eq. 3): x (B, H, L, D) -> buckets (B, H, R, L) int32."""
    if num_buckets == 1:
        shape = ops.shape(x)
        r = rotations.shape[1] if rotations is not None else 1
        return ops.zeros((shape[0], shape[1], r, shape[2]), "int32")
    rot = ops.einsum("bhld,drk->bhrlk", x, ops.cast(rotations, x.dtype))
    rot = ops.concatenate([rot, -rot], axis=-1)
    return ops.cast(ops.argmax(rot, axis=-1), "int32")


def unit_keys(x):
    """Kitaev's make_unit_length: x / sqrt(mean(x^2) + 1e-6)."""
    return x / ops.sqrt(ops.mean(x * x, axis=-1, keepdims=True) + 1e-6)


# ------------------------------------------------------------------ helpers


def _sorted(x, perm):
    """x (B, H, L[, D]) gathered per round by perm (B, H, R, L)."""
    if len(x.shape) == 3:
        return ops.take_along_axis(
            ops.broadcast_to(x[:, :, None], ops.shape(perm)), perm, axis=3
        )
    shape = tuple(ops.shape(perm)) + (ops.shape(x)[-1],)
    return ops.take_along_axis(
        ops.broadcast_to(x[:, :, None], shape), perm[..., None], axis=3
    )


class _Window:
    """Slices of chunk n of the sorted sequence (axis 3 of (B, H, R, Lp,
    ...)): the chunk's queries and its key window [previous chunk, own
    chunk] (own chunk only when there is a single chunk)."""

    def __init__(self, n, c, nc):
        self.n, self.c, self.nc = n, c, nc

    def own(self, x):
        return take_block(x, 3, self.n * self.c, self.c)

    def keys(self, x):
        if self.nc == 1:
            return self.own(x)
        prev = take_block(x, 3, ops.maximum(self.n - 1, 0) * self.c, self.c)
        return ops.concatenate([prev, self.own(x)], axis=3)


def sorted_slots(n, c, nc):
    """Sorted indices of chunk n's queries (c, 1) and window keys (1, w)."""
    qs = n * c + ops.arange(c, dtype="int32")
    if nc == 1:
        return qs[:, None], qs[None, :]
    ks = (n - 1) * c + ops.arange(2 * c, dtype="int32")
    return qs[:, None], ks[None, :]


def _mask_values(m3, qpos, kpos, length):
    """User mask at (query position, key position) pairs; m3 (B'|1, T|1,
    S|1), qpos (B, ..., c, 1), kpos (B, ..., 1, w)."""
    bm, tm, sm = m3.shape
    tm_n = length if tm != 1 else 1
    sm_n = length if sm != 1 else 1
    idx = ops.zeros_like(qpos) + ops.zeros_like(kpos)
    if tm != 1:
        idx = idx + ops.minimum(qpos, length - 1) * sm_n
    if sm != 1:
        idx = idx + ops.minimum(kpos, length - 1)
    if bm != 1:
        bidx = ops.arange(ops.shape(qpos)[0], dtype="int32")
        bidx = ops.reshape(bidx, (-1,) + (1,) * (len(qpos.shape) - 1))
        idx = idx + bidx * (tm_n * sm_n)
    return ops.take(ops.reshape(m3, (-1,)), idx, axis=0)


def rounds_of_sorted(x, perm):
    """Per-token values of every round x (B, H, R', Lp), laid out in each
    round's sorted order: (B, H, R, Lp, R')."""
    per_token = ops.transpose(x, (0, 1, 3, 2))  # (B, H, Lp, R')
    shape = tuple(ops.shape(perm)) + (ops.shape(x)[2],)
    return ops.take_along_axis(
        ops.broadcast_to(per_token[:, :, None], shape), perm[..., None], axis=3
    )


def duplicate_counts(win, su, sb, across, strict):
    """N_ij: in how many rounds key j is in query i's window, for chunk
    `win`'s (query, window key) pairs of every round (trax `dup_counts`).

    su, sb (B, H, R, Lp, R'): sorted slot and bucket of each token in every
    round r', laid out in round r's order. Window of round r': chunk mode,
    j in i's chunk or the one before, same bucket unless `across`; strict
    (causal) mode, same bucket and 0 <= s_r'(i) - s_r'(j) <= c.

    Returns float32 (B, H, R, c, w)."""
    c = win.c
    qu, qb = win.own(su)[..., :, None, :], win.own(sb)[..., :, None, :]
    ku, kb = win.keys(su)[..., None, :, :], win.keys(sb)[..., None, :, :]
    same = ops.equal(qb, kb)
    if strict:
        gap = qu - ku
        hit = ops.logical_and(same, ops.logical_and(gap >= 0, gap <= c))
    else:
        lq, lk = qu // c, ku // c
        hit = ops.equal(lq, lk)
        if win.nc > 1:
            hit = ops.logical_or(hit, ops.equal(lq, lk + 1))
        if not across:
            hit = ops.logical_and(hit, same)
    return ops.sum(ops.cast(hit, "float32"), axis=-1)


def _softmax_tiers(logits, allowed, tier, v):
    """Per query row: softmax over the allowed keys of the row's best tier;
    returns the normalised output, its log-sum-exp (-inf if no key) and
    the tier used (TIER_NONE if no key)."""
    tier = ops.where(allowed, tier, TIER_NONE)
    best = ops.min(tier, axis=-1)
    allowed = ops.logical_and(allowed, tier == best[..., None])
    logits = ops.where(allowed, logits, NEG)
    m = ops.stop_gradient(ops.max(logits, axis=-1))
    p = ops.where(allowed, ops.exp(logits - m[..., None]), 0.0)
    den = ops.sum(p, axis=-1)
    ok = den > 0.0
    safe = ops.where(ok, den, 1.0)
    o = ops.einsum("bhrcw,bhrwd->bhrcd", p, v) / safe[..., None]
    lse = ops.where(ok, m + ops.log(safe), float("-inf"))
    return o, lse, best


# -------------------------------------------------------------------- kernel


@register_kernel(NAME, params=lsh_params)
def lsh_attention(
    query,
    key,
    value,
    causal=False,
    mask=None,
    scale=None,
    num_buckets=32,
    num_hashes=2,
    chunk_size=64,
    rotations=None,
    seed=None,
    attend_across_buckets=False,
    allow_duplicates=False,
    strict_causal=True,
):
    """Reformer LSH self-attention with shared QK.

    Options:
        scale: float or None. Logit scale; None = 1 / sqrt(D).
        num_buckets: int, 1 or even. Hash buckets per round.
        num_hashes: int. Hash rounds R.
        chunk_size: int. Sorted positions per chunk C (each attends 2C keys).
        rotations: (D, R, num_buckets / 2) tensor or None (drawn from
            `seed`).
        seed: int or None. Seed of drawn rotations (None = 0).
        attend_across_buckets: bool. Do not penalise different-bucket keys
            inside the chunk window.
        allow_duplicates: bool. Skip the log N_ij duplicate correction.
        strict_causal: bool. With causal=True, attend the `chunk_size`
            latest same-bucket positions (a window that depends on
            positions <= i only); False = the paper's chunk + previous
            chunk, where later tokens can shift chunk boundaries and change
            earlier outputs.
    """
    _check_buckets(num_buckets)
    check_int(NAME, "num_hashes", num_hashes)
    check_int(NAME, "chunk_size", chunk_size)
    check_bool(NAME, "attend_across_buckets", attend_across_buckets)
    check_bool(NAME, "allow_duplicates", allow_duplicates)
    check_bool(NAME, "strict_causal", strict_causal)
    strict = causal and strict_causal
    if strict and attend_across_buckets:
        raise ValueError(
            f"attention kernel '{NAME}': attend_across_buckets lets keys of "
            "other buckets, whose sorted positions depend on later tokens, "
            "into a causal window; use strict_causal=False for the paper's "
            "(non-strict) chunked causal attention."
        )
    b = ops.shape(query)[0]
    length, s = static_len(query, 1), static_len(key, 1)
    h, d = query.shape[2], query.shape[3]
    if not (isinstance(length, int) and isinstance(s, int)):
        raise ValueError(
            f"attention kernel '{NAME}': needs static sequence lengths "
            "(sorted chunks have static sizes); pad to a fixed length."
        )
    if length != s:
        raise ValueError(
            f"attention kernel '{NAME}': shared-QK LSH attention is "
            f"self-attention (T == S); received T={length}, S={s}."
        )
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    if num_buckets > 1:
        if rotations is None:
            rotations = draw_rotations(
                d, num_hashes, num_buckets, 0 if seed is None else seed
            )
        expected = (d, num_hashes, num_buckets // 2)
        if tuple(rotations.shape) != expected:
            raise ValueError(
                f"attention kernel '{NAME}': rotations must have shape "
                f"{expected} (D, num_hashes, num_buckets / 2); received "
                f"{tuple(rotations.shape)}."
            )
        rotations = ops.convert_to_tensor(rotations, "float32")
    else:
        rotations = None

    c = max(1, min(chunk_size, length))
    nc = -(-length // c)
    lp = nc * c
    _, v = repeat_kv_heads(value, value, h)
    qk = ops.transpose(ops.cast(query, "float32"), (0, 2, 1, 3))  # (B,H,L,D)
    v = ops.transpose(ops.cast(v, "float32"), (0, 2, 1, 3))
    qk, v = pad_axis(qk, 2, lp - length), pad_axis(v, 2, lp - length)

    # Hash, then sort every round by (bucket, position); padding sorts last.
    pos = ops.arange(lp, dtype="int32")
    buckets = hash_buckets(qk, rotations, num_buckets)
    if num_buckets == 1:
        buckets = ops.broadcast_to(buckets[:, :, :1], (b, h, num_hashes, lp))
    buckets = ops.where(pos < length, buckets, num_buckets)
    buckets = ops.stop_gradient(buckets)
    perm = ops.cast(ops.argsort(buckets * lp + pos, axis=-1), "int32")
    undo = ops.cast(ops.argsort(perm, axis=-1), "int32")  # sorted slots

    sq = _sorted(qk, perm)  # (B, H, R, Lp, D)
    sk = _sorted(unit_keys(qk), perm)
    sv = _sorted(v, perm)
    sbk = ops.take_along_axis(buckets, perm, axis=3)  # (B, H, R, Lp)
    dedupe = num_hashes > 1 and not allow_duplicates
    if dedupe:
        su, sb = rounds_of_sorted(undo, perm), rounds_of_sorted(buckets, perm)
    m3 = rank3_mask(mask)

    def chunk(n):
        """Chunk n of every round: its c queries against its window."""
        win = _Window(n, c, nc)
        qpos, kpos = win.own(perm)[..., :, None], win.keys(perm)[..., None, :]
        qb, kb = win.own(sbk)[..., :, None], win.keys(sbk)[..., None, :]
        logits = (
            ops.einsum("bhrcd,bhrwd->bhrcw", win.own(sq), win.keys(sk)) * scale
        )
        allowed = kpos < length
        if nc > 1:  # chunk 0 has no previous chunk
            allowed = ops.logical_and(
                allowed,
                ops.logical_or(n > 0, ops.arange(2 * c, dtype="int32") >= c),
            )
        if causal:
            allowed = ops.logical_and(allowed, kpos <= qpos)
        if strict:  # same bucket, at most c sorted slots back
            qs, ks = sorted_slots(n, c, nc)
            allowed = ops.logical_and(allowed, ops.equal(qb, kb))
            allowed = ops.logical_and(allowed, qs - ks <= c)
        if m3 is not None:
            allowed = ops.logical_and(
                allowed, _mask_values(m3, qpos, kpos, length)
            )
        tier = TIER_SELF * ops.cast(ops.equal(qpos, kpos), "int32")
        if not attend_across_buckets and not strict:
            tier = tier + TIER_BUCKET * ops.cast(ops.not_equal(qb, kb), "int32")
        if dedupe:
            counts = duplicate_counts(
                win, su, sb, attend_across_buckets, strict
            )
            logits = logits - ops.stop_gradient(
                ops.log(ops.maximum(counts, 1.0))
            )
        return _softmax_tiers(logits, allowed, tier, win.keys(sv))

    o, lse, best = ops.map(chunk, ops.arange(nc, dtype="int32"))
    # (nc, B, H, R, c, ...) -> (B, H, R, Lp, ...), then back to positions.
    o = ops.reshape(ops.transpose(o, (1, 2, 3, 0, 4, 5)), (b, h, -1, lp, d))
    lse, best = (
        ops.reshape(ops.transpose(x, (1, 2, 3, 0, 4)), (b, h, -1, lp))
        for x in (lse, best)
    )
    o = ops.take_along_axis(o, undo[..., None], axis=3)
    lse = ops.take_along_axis(lse, undo, axis=3)
    best = ops.take_along_axis(best, undo, axis=3)
    # Rounds whose best tier is worse than another round's do not count.
    top = ops.min(best, axis=2, keepdims=True)
    lse = ops.where(best == top, lse, float("-inf"))
    out, _ = merge_partials(o, lse, axis=2)  # (B, H, Lp, D)
    out = ops.transpose(out[:, :, :length], (0, 2, 1, 3))
    return ops.cast(out, query.dtype)
