"""`lsh`: Reformer's LSH attention (shared-QK, angular hashing, sorted chunks).

Kitaev, Kaiser & Levskaya 2020, "Reformer: The Efficient Transformer",
ICLR, arXiv 2001.04451, Sec. 2-3 (garden spec
`efficient_attention_survey.md` Sec. 8.2). Details follow the authors' code
(tensor2tensor/trax `MergedMultiHashedCausalAttentionV2` / trax
`LSHSelfAttention`):

1. Shared-QK (Sec. 3 "Shared-QK Transformer"): the keys are the queries
   normalised to unit RMS, k_j = q_j / sqrt(mean(q_j^2) + 1e-6), so
   logits = scale * q_i.k_j. The `key` argument only fixes S (= T). The
   kernel is registered with `shared_qk=True`, so `MultiHeadAttention`
   builds no key projection for it (Q, V and output projections only).
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

Cost: hashing O(R L D num_buckets), one sort O(R L log L) of the distinct
keys bucket * Lp + position (giving the permutation and the sorted
buckets), the inverse permutation by an O(R L) scatter, attention
O(R L 2C D). Sorted rows are gathered straight from the (B, L, H, D)
inputs (`token_rows`, one row gather per tensor; keys are normalised
after the gather). The log N_ij correction compares one int32 code per
token and round (`window_codes`) instead of (slot, bucket) pairs. Chunks
are processed `ROWS_PER_STEP // C` at a time (`keras.ops.map`) over the
sorted (B, H, R, Lp, D) arrays, so memory is O(R L D) plus one step's
(B, H, R, G, C, 2C) scores, no (L, L) tensor (a user mask of shape
(B, T, S) is gathered per chunk, never expanded). Requires T = S
(self-attention) and static lengths. Lengths that are not a chunk multiple
are padded with keys that sort last and are masked. A row with no allowed
key returns 0.

Measured (B=1, H=4, D=64, float32, XLA, defaults: 32 buckets, 2 rounds,
C=64; median process CPU ms on 2 shared cores at L = 1k / 4k / 16k / 64k,
two runs): 21-24 / 85-90 / 355-384 / 1427-1582, log-log slope 1.01-1.02
(causal 22 / 72 / 353 / 1521, 1.03), against 53-60 / 198-264 /
1031-1124 / 5197-5796, slope 1.10-1.11, for the previous version (same
outputs bit for bit): its three `take_along_axis` gathers (per-element
broadcast indices, the key normalisation fused into the gather) cost 9x
more at 64k than at 16k, and the log N_ij count over (.., C, 2C, R') int
tensors with a minor axis of R' = 2 took half the time at every length.

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


def hash_buckets(x, rotations, num_buckets, token_major=False):
    """Angular LSH (Eq. 3): x (B, H, L, D) (or (B, L, H, D) if
    `token_major`) -> buckets (B, H, R, L) int32."""
    if num_buckets == 1:
        shape = ops.shape(x)
        hx, lx = (shape[2], shape[1]) if token_major else (shape[1], shape[2])
        r = rotations.shape[1] if rotations is not None else 1
        return ops.zeros((shape[0], hx, r, lx), "int32")
    spec = "blhd,drk->bhrlk" if token_major else "bhld,drk->bhrlk"
    rot = ops.einsum(spec, x, ops.cast(rotations, x.dtype))
    rot = ops.concatenate([rot, -rot], axis=-1)
    return ops.cast(ops.argmax(rot, axis=-1), "int32")


def unit_keys(x):
    """Kitaev's make_unit_length: x / sqrt(mean(x^2) + 1e-6)."""
    return x / ops.sqrt(ops.mean(x * x, axis=-1, keepdims=True) + 1e-6)


# ------------------------------------------------------------------ helpers


def token_rows(x, perm, num_heads):
    """Rows of x (B, N, H_x, F) in every round's sorted order.

    perm (B, H, R, n): token (< N) at sorted slot s of head h, round r. Head h
    reads x's head h // (H / H_x) (grouped-query values need no repeat).
    One row gather of the flattened (B * N * H_x, F) rows, in x's own
    layout: no transposed copy of x and no per-element index tensor
    (`take_along_axis` with a broadcast (.., Lp, F) index cost ~15x more at
    L = 64k, see the module docstring). Returns (B, H, R, n, F).
    """
    b = ops.shape(perm)[0]
    tokens, hx = x.shape[1], x.shape[2]
    heads = ops.arange(num_heads, dtype="int32") // (num_heads // hx)
    batch = ops.arange(b, dtype="int32") * (tokens * hx)
    idx = (
        perm * hx
        + ops.reshape(heads, (1, -1, 1, 1))
        + ops.reshape(batch, (-1, 1, 1, 1))
    )
    return ops.take(ops.reshape(x, (-1, x.shape[3])), idx, axis=0)


def inverse_permutation(perm):
    """undo with undo[..., perm[..., s]] = s along the last axis: one O(L)
    scatter (an argsort of perm would be a second O(L log L) sort)."""
    shape = ops.shape(perm)
    lp = perm.shape[-1]
    rows = ops.size(perm) // lp
    offset = ops.reshape(ops.arange(rows, dtype="int32") * lp, (-1, 1))
    flat = ops.reshape(ops.reshape(perm, (-1, lp)) + offset, (-1, 1))
    slots = ops.reshape(
        ops.broadcast_to(ops.arange(lp, dtype="int32"), (rows, lp)), (-1,)
    )
    return ops.reshape(ops.scatter(flat, slots, (rows * lp,)), shape)


# Sorted rows per `keras.ops.map` step (G = ROWS_PER_STEP // chunk_size
# chunks at a time): fewer, larger loop steps, same work per chunk. At
# L = 4k, C = 64 (CPU ms): G = 1 104, 4 99, 8 92, 16 97, 32 96; memory per
# step is (B, H, R, G, C, 2C) scores.
ROWS_PER_STEP = 512


class _Window:
    """Chunks [s G, (s + 1) G) of the sorted sequence, from arrays laid out
    (B, H, R, front + ns G c, ...) on axis 3: `front` = c dummy rows (a
    previous chunk for chunk 0, masked: its positions are Lp) when there
    is more than one chunk, then the ns G chunks (the last ones dummy if
    G does not divide nc). `both(x)` gives the chunks' queries
    (.., G, c, ..) and their key windows [previous chunk, own chunk]
    (.., G, 2c, ..) (own chunk only when there is a single chunk)."""

    def __init__(self, s, c, g, nc):
        self.s, self.c, self.g, self.nc = s, c, g, nc
        self.n = s * g + ops.arange(g, dtype="int32")  # chunk indices

    def _blocks(self, x, first, count):
        """Rows [first c, (first + count) c) as (.., count, c, ..)."""
        blk = take_block(x, 3, first * self.c, count * self.c)
        tail = tuple(x.shape[4:])
        return ops.reshape(
            blk, (-1,) + tuple(x.shape[1:3]) + (count, self.c) + tail
        )

    def both(self, x):
        if self.nc == 1:
            own = self._blocks(x, 0, 1)
            return own, own
        blk = self._blocks(x, self.s * self.g, self.g + 1)
        own = blk[:, :, :, 1:]
        return own, ops.concatenate([blk[:, :, :, :-1], own], axis=4)


def sorted_slots(n, c, nc):
    """Sorted indices of the queries (G, c, 1) and window keys (G, 1, w)
    of chunks n (G,)."""
    qs = n[:, None] * c + ops.arange(c, dtype="int32")
    if nc == 1:
        return qs[:, :, None], qs[:, None, :]
    ks = (n[:, None] - 1) * c + ops.arange(2 * c, dtype="int32")
    return qs[:, :, None], ks[:, None, :]


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
    """Per-token values of every round x (B, H, R', Lp'), laid out in each
    round r's sorted order perm (B, H, R, n): (R', B, H, R, n)."""
    per_token = ops.transpose(x, (0, 3, 1, 2))  # (B, Lp', H, R')
    rows = token_rows(per_token, perm, x.shape[1])  # (B, H, R, n, R')
    return ops.transpose(rows, (4, 0, 1, 2, 3))


def window_codes(slots, buckets, c, nc, lp, across, strict):
    """An int32 code per token and round r' (slots, buckets (B, H, R',
    Lp): sorted slot and bucket) and a span such that key j is in query
    i's round-r' window iff 0 <= code_i - code_j <= span:

    - chunk mode (the paper): j in i's chunk or the one before (span 1;
      0 with a single chunk), same bucket unless `across`: code =
      bucket * (nc + 1) + chunk (a bucket step moves the code by more than
      any chunk difference, so different buckets never fall in the span);
    - strict causal: same bucket and 0 <= s(i) - s(j) <= c: code =
      bucket * (Lp + c) + slot, span c.
    """
    if strict:
        return buckets * (lp + c) + slots, c
    span = 1 if nc > 1 else 0
    chunk = slots // c
    return (chunk if across else buckets * (nc + 1) + chunk), span


def duplicate_counts(win, codes, span):
    """N_ij: in how many rounds key j is in query i's window, for the
    (query, window key) pairs of `win`'s chunks in every round (trax
    `dup_counts`).

    codes (R', B, H, R, n): `window_codes` of each token in round r',
    laid out in round r's sorted order. One pass per round r' (R' is
    small), each over (.., G, c, w) with the key axis minor.

    Returns float32 (B, H, R, G, c, w)."""
    counts = 0
    for r2 in range(codes.shape[0]):
        qc, kc = win.both(codes[r2])
        gap = qc[..., :, None] - kc[..., None, :]
        hit = ops.logical_and(gap >= 0, gap <= span)
        counts = counts + ops.cast(hit, "int32")
    return ops.cast(counts, "float32")


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
    o = ops.einsum("...cw,...wd->...cd", p, v) / safe[..., None]
    lse = ops.where(ok, m + ops.log(safe), float("-inf"))
    return o, lse, best


# -------------------------------------------------------------------- kernel


@register_kernel(NAME, params=lsh_params, shared_qk=True)
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
    c = max(1, min(chunk_size, length))
    nc = -(-length // c)
    lp = nc * c
    if (num_buckets + 1) * (lp + c) >= 2**31:
        raise ValueError(
            f"attention kernel '{NAME}': the int32 codes bucket * (Lp + C) "
            f"+ slot overflow for num_buckets={num_buckets}, padded length "
            f"Lp={lp}, chunk_size C={c}."
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

    g = max(1, min(nc, ROWS_PER_STEP // c))  # chunks per loop step
    steps = -(-nc // g)
    front = c if nc > 1 else 0  # dummy previous chunk of chunk 0
    back = (steps * g - nc) * c  # dummy chunks filling the last step
    # Token-major (B, Lp + 1, H, D) throughout, row Lp all zeros (what the
    # dummy sorted rows read): rows are gathered straight from this layout
    # (`token_rows`), no (B, H, L, D) transposed copies.
    qk = pad_axis(ops.cast(query, "float32"), 1, lp + 1 - length)
    v = pad_axis(ops.cast(value, "float32"), 1, lp + 1 - length)

    # Hash, then sort every round by (bucket, position); padding sorts last.
    # The keys bucket * Lp + position are distinct, so one sort of the keys
    # gives both the permutation (key % Lp) and the sorted buckets.
    pos = ops.arange(lp, dtype="int32")
    buckets = hash_buckets(qk[:, :lp], rotations, num_buckets, True)
    if num_buckets == 1:
        buckets = ops.broadcast_to(buckets[:, :, :1], (b, h, num_hashes, lp))
    buckets = ops.where(pos < length, buckets, num_buckets)
    buckets = ops.stop_gradient(buckets)
    skey = ops.sort(buckets * lp + pos, axis=-1)
    perm = skey % lp  # (B, H, R, Lp): token at each sorted slot
    undo = inverse_permutation(perm)  # sorted slot of each token
    # Sorted arrays with the dummy rows: position Lp (masked), bucket
    # num_buckets, zero vectors.
    perm = pad_axis(pad_axis(perm, 3, front, lp, before=True), 3, back, lp)
    sbk = pad_axis(skey // lp, 3, front, num_buckets, before=True)
    sbk = pad_axis(sbk, 3, back, num_buckets)
    sq = token_rows(qk, perm, h)  # (B, H, R, front + Lp + back, D)
    sk = unit_keys(sq)  # row-wise, so it commutes with the sort
    sv = token_rows(v, perm, h)
    dedupe = num_hashes > 1 and not allow_duplicates
    if dedupe:
        codes, span = window_codes(
            undo, buckets, c, nc, lp, attend_across_buckets, strict
        )
        codes = rounds_of_sorted(pad_axis(codes, 3, 1), perm)
    m3 = rank3_mask(mask)

    def step(i):
        """Chunks [i G, (i + 1) G) of every round against their windows."""
        win = _Window(i, c, g, nc)
        qpos, kpos = win.both(perm)
        qpos, kpos = qpos[..., :, None], kpos[..., None, :]
        qb, kb = win.both(sbk)
        qb, kb = qb[..., :, None], kb[..., None, :]
        (q_own, _), (_, k_win) = win.both(sq), win.both(sk)
        logits = ops.einsum("...cd,...wd->...cw", q_own, k_win) * scale
        # Dummy rows (chunk 0's previous chunk, padding) sit at Lp.
        allowed = kpos < length
        if causal:
            allowed = ops.logical_and(allowed, kpos <= qpos)
        if strict:  # same bucket, at most c sorted slots back
            qs, ks = sorted_slots(win.n, c, nc)
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
            counts = duplicate_counts(win, codes, span)
            logits = logits - ops.stop_gradient(
                ops.log(ops.maximum(counts, 1.0))
            )
        return _softmax_tiers(logits, allowed, tier, win.both(sv)[1])

    o, lse, best = ops.map(step, ops.arange(steps, dtype="int32"))
    # Unsort: token t of series (b, h, r) sits at sorted slot undo[.., t]
    # of chunk n = slot // c, i.e. at row ((n // G) (B H R) + (b H + h) R
    # + r) G c + (n % G) c + slot % c of the stacked (steps, B, H, R, G, c)
    # step outputs; gathered straight into (B, T, H, R) order.
    slot = ops.transpose(undo[..., :length], (0, 3, 1, 2))  # (B, T, H, R)
    per_step = ops.size(lse) // steps  # B H R G c
    series = ops.reshape(
        ops.arange(per_step // (g * c), dtype="int32"),
        (-1, 1, h, num_hashes),
    )
    n = slot // c
    idx = (n // g) * per_step + series * (g * c) + (n % g) * c + slot % c
    o = ops.take(ops.reshape(o, (-1, d)), idx, axis=0)  # (B, T, H, R, D)
    lse = ops.take(ops.reshape(lse, (-1,)), idx, axis=0)
    best = ops.take(ops.reshape(best, (-1,)), idx, axis=0)
    # Rounds whose best tier is worse than another round's do not count.
    top = ops.min(best, axis=3, keepdims=True)
    lse = ops.where(best == top, lse, float("-inf"))
    out, _ = merge_partials(o, lse, axis=3)  # (B, T, H, D)
    return ops.cast(out, query.dtype)
