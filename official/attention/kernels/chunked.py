"""`chunked`: exact flash-style attention that never builds the (T, S) matrix.

FlashAttention-2 (Dao, arXiv 2307.08691), Alg. 1 (forward) and Alg. 2
(backward), written with `keras.ops` loops for a CPU/XLA backend:

- queries are cut into blocks of `query_chunk_size` rows (`ops.map`), keys
  into blocks of `chunk_size` (`ops.fori_loop`); each (query block, key block)
  tile is folded into a float32 running (max, sum, accumulator) state with the
  online-softmax rescaling (`online_softmax.online_update`), so the largest
  live score tensor is (B, H, query_chunk_size, chunk_size); with static
  lengths and at most `max_unrolled_tiles` tiles the forward's two loops are
  unrolled instead (see `_forward`);
- under `causal=True` the key loop of a query block stops at the last key
  block that block can see (about half the tiles are skipped);
- the gradient is a custom one (Alg. 2): the forward saves only the output
  and the per-row log-sum-exp, and the backward recomputes each tile's
  probabilities once, in one pass over key blocks (dK, dV carried per key
  block, dQ accumulated in place into its query rows), on the same rank-3
  tiles (B * H_kv, G * query_chunk_size, chunk_size) as the forward (see
  `_forward`). Memory stays O((T + S) * H * D) in training too.

Lengths that are not block multiples are padded; padded keys are masked,
padded query rows dropped. Grouped-query heads are used in place (query
heads are viewed as (H_kv, H / H_kv)), not repeated. A row with no allowed
key returns 0, like `dense`.
"""

import math

from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels import online_softmax
from official.attention.kernels.block_mask import BlockMask
from official.attention.kernels.block_mask import pad_axis
from official.attention.kernels.block_mask import pad_mask
from official.attention.kernels.block_mask import take_block
from official.attention.kernels.common import batch_to_heads
from official.attention.kernels.common import heads_to_batch

NEG = online_softmax.NEG


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else "a non-negative int"
        raise ValueError(
            f"attention kernel 'chunked': `{name}` must be {kind}; "
            f"received {value!r}."
        )


def _clip(x, low, high):
    """min(max(x, low), high): a Python int when x and high are ints (the
    unrolled forward and eager loops index with ints), else a tensor."""
    if isinstance(x, int) and isinstance(high, int):
        return max(low, min(x, high))
    return ops.clip(ops.convert_to_tensor(x), low, high)


def _num_blocks(n, size):
    return (n + size - 1) // size


def _scores(q_blk, k_blk):
    """(B * Hkv, rows, D) x (B * Hkv, sk, D) -> (B * Hkv, rows, sk)."""
    return ops.einsum("nrd,nsd->nrs", q_blk, k_blk)


def _pv(p, v_blk):
    """(B * Hkv, rows, sk) x (B * Hkv, sk, D) -> (B * Hkv, rows, D)."""
    return ops.einsum("nrs,nsd->nrd", p, v_blk)


class _Plan:
    """Static block plan: sizes, counts, padding and the tile masks."""

    def __init__(
        self, t, s, chunk_size, query_chunk_size, causal, max_unrolled_tiles=0,
        kv_heads=1, groups=1,
    ):
        self.t, self.s = t, s
        self.kv_heads, self.groups = kv_heads, groups
        self.max_unrolled_tiles = max_unrolled_tiles
        self.tc = (
            min(query_chunk_size, t)
            if isinstance(t, int)
            else (query_chunk_size)
        )
        self.sc = min(chunk_size, s) if isinstance(s, int) else chunk_size
        self.nq = _num_blocks(t, self.tc)
        self.nk = _num_blocks(s, self.sc)
        self.t_pad = self.nq * self.tc - t
        self.s_pad = self.nk * self.sc - s
        s_padded = not (isinstance(self.s_pad, int) and self.s_pad == 0)
        self.causal = causal
        self.s_padded = s_padded
        self.mask = None

    def set_mask(self, padded_mask):
        """Binds the (padded) user mask; builds the tile-mask helper."""
        self.mask = BlockMask(
            self.t, self.s, self.s_padded, self.causal, padded_mask
        )

    def tile_mask(self, q0, k0):
        """Allowed-mask of the rank-3 tile (query block at q0, key block at
        k0), broadcastable to (B * Hkv, G * tq, sk); None if all allowed."""
        allowed = self.mask.tile(q0, self.tc, k0, self.sc)
        if allowed is None:
            return None
        return _row_tile_mask(allowed, self.groups, self.kv_heads)

    @property
    def static(self):
        return isinstance(self.t, int) and isinstance(self.s, int)

    @property
    def unrolled(self):
        """Whether the forward is a static graph of at most
        `max_unrolled_tiles` (query block, key block) tiles, not loops."""
        return self.static and self.nq * self.nk <= self.max_unrolled_tiles

    def key_blocks_end(self, q0):
        """Key blocks [0, end) that query rows [q0, q0 + tc) can see (a
        Python int for an int q0 and static lengths, else a tensor)."""
        if not self.causal:
            return self.nk
        last_row = _clip(q0 + self.tc, 0, self.t)
        end = _num_blocks(last_row + (self.s - self.t), self.sc)
        return _clip(end, 0, self.nk)

    def query_blocks_start(self, k0):
        """First query block whose rows can see key k0 (causal)."""
        if not self.causal:
            return 0
        return _clip((k0 - (self.s - self.t)) // self.tc, 0, self.nq)


def _query_rows(x, plan):
    """(B, Tp, Hkv, G, D) -> (nq, B * Hkv, G * tq, D): query block i's rows
    as one (group-major) matrix per kv head, laid out once."""
    b = ops.shape(x)[0]
    h_kv, g, d = x.shape[2], x.shape[3], x.shape[4]
    x = ops.reshape(x, (b, plan.nq, plan.tc, h_kv, g, d))
    x = ops.transpose(x, (1, 0, 3, 4, 2, 5))
    return ops.reshape(x, (plan.nq, -1, g * plan.tc, d))


def _from_query_rows(x, plan):
    """Inverse of `_query_rows`: (nq, B * Hkv, G * tq, D) ->
    (B, nq * tq, Hkv, G, D)."""
    h_kv, g, d = plan.kv_heads, plan.groups, x.shape[-1]
    x = ops.reshape(x, (plan.nq, -1, h_kv, g, plan.tc, d))
    x = ops.transpose(x, (1, 0, 4, 2, 3, 5))
    return ops.reshape(x, (-1, plan.nq * plan.tc, h_kv, g, d))


def _row_tile_mask(allowed, groups, kv_heads):
    """A (B|1, 1, 1, tq, sk) tile mask -> broadcastable to the forward's
    (B * Hkv, G * tq, sk) score tile (rows ordered group-major)."""
    allowed = allowed[:, 0, 0]
    if groups > 1 and allowed.shape[1] != 1:
        allowed = ops.tile(allowed, (1, groups, 1))
    if allowed.shape[0] != 1 and kv_heads > 1:
        allowed = ops.repeat(allowed, kv_heads, axis=0)
    return allowed


def _forward(plan, q_rows, k_rows, v_rows):
    """Query rows (nq, B * Hkv, G * tq, D) (`_query_rows` of the padded
    queries), key/value rows (B * Hkv, Sp, D) (`heads_to_batch`) ->
    o (nq, B * Hkv, G * tq, D), lse (nq, B * Hkv, G * tq).

    The tiles are rank 3: (B * Hkv, G * tq, sk) scores from one batched
    matmul of a query block against a key block. Q, K and V are put in that
    layout once, before the loops, so no tile copies or transposes its
    blocks inside them.

    With static lengths and at most `plan.max_unrolled_tiles` tiles the
    two loops are unrolled into a static graph: block slices are static,
    and XLA may run one tile's Q.K^T matmul while the previous tile's
    softmax runs (the online-softmax state is the only chain between
    tiles). Longer inputs keep the loops, so the graph and its compile time
    stay bounded.
    """
    tc, sc = plan.tc, plan.sc

    def initial_state(q_blk):
        acc0 = ops.zeros_like(q_blk)
        m0 = ops.full_like(acc0[..., 0], NEG)
        return m0, ops.zeros_like(m0), acc0

    def fold(state, q_blk, q0, k0, after=None):
        """One tile: key block k0.. folded into query block q0..'s state.
        `after`: a tensor the tile's Q.K^T must wait for (or None)."""
        allowed = plan.tile_mask(q0, k0)
        k_blk = take_block(k_rows, 1, k0, sc)
        if after is not None:
            k_blk = k_blk + 0.0 * ops.sum(after[:1, :1])
        return online_softmax.online_update(
            state,
            _scores(q_blk, k_blk),
            allowed,
            take_block(v_rows, 1, k0, sc),
            _pv,
        )

    if plan.unrolled:
        outs, done = [], []  # done: each folded tile's running max
        for i in range(plan.nq):
            state = initial_state(q_rows[i])
            for j in range(plan.key_blocks_end(i * tc)):
                # Tile n's Q.K^T may overlap tile n-1's softmax but waits
                # for tile n-2. Unchained, XLA's schedule hoists every
                # Q.K^T and holds all of (T, S) (274 MB of buffers at
                # B = 1, H = 4, L = 4k); chained, 78 MB (loops: 32 MB).
                after = done[-2] if len(done) >= 2 else None
                state = fold(state, q_rows[i], i * tc, j * sc, after)
                done.append(state[0])
            outs.append(online_softmax.finalize(*state))
        o = ops.stack([out[0] for out in outs])
        lse = ops.stack([out[1] for out in outs])
    else:

        def query_block(args):
            q_blk, i = args
            q0 = i * tc
            return online_softmax.finalize(
                *ops.fori_loop(
                    0,
                    plan.key_blocks_end(q0),
                    lambda j, state: fold(state, q_blk, q0, j * sc),
                    initial_state(q_blk),
                )
            )

        o, lse = ops.map(
            query_block, (q_rows, ops.arange(plan.nq, dtype="int32"))
        )
    return o, lse


def _probs(plan, q_blk, k_blk, lse_blk, q0, k0):
    """Recomputed tile probabilities P = exp(S - lse), 0 where masked, on
    rank-3 tiles (B * Hkv, G * tq, sk); q_blk (B * Hkv, G * tq, D), k_blk
    (B * Hkv, sk, D), lse_blk (B * Hkv, G * tq)."""
    scores = _scores(q_blk, k_blk)
    allowed = plan.tile_mask(q0, k0)
    if allowed is None:
        return ops.exp(scores - lse_blk[..., None])
    scores = ops.where(allowed, scores, NEG)
    return ops.where(allowed, ops.exp(scores - lse_blk[..., None]), 0.0)


def _backward(plan, q_rows, k_rows, v_rows, o, lse, do):
    """FlashAttention-2 Alg. 2 in one pass over key blocks (outer) and the
    query blocks that see them (inner): each tile's P and dS are computed
    once and give dV, dK (carried per key block) and dQ (accumulated into
    its query rows in place). q_rows, o, do: (nq, B * Hkv, G * tq, D); lse
    (nq, B * Hkv, G * tq); k_rows, v_rows (B * Hkv, Sp, D). Returns dQ like
    q_rows and dK, dV like k_rows."""
    tc, sc = plan.tc, plan.sc
    delta = ops.sum(do * o, axis=-1)  # D_i = rowsum(dO * O), Alg. 2 line 4

    def row_block(x, i):
        return take_block(x, 0, i, 1)[0]

    def key_block(j, carry):
        dq, dk_all, dv_all = carry
        k0 = j * sc
        k_blk = take_block(k_rows, 1, k0, sc)
        v_blk = take_block(v_rows, 1, k0, sc)

        def body(i, state):
            dq, dk, dv = state
            q_blk, do_blk = row_block(q_rows, i), row_block(do, i)
            p = _probs(plan, q_blk, k_blk, row_block(lse, i), i * tc, k0)
            dv = dv + ops.einsum("nrs,nrd->nsd", p, do_blk)
            dp = _scores(do_blk, v_blk)
            ds = p * (dp - row_block(delta, i)[..., None])
            dk = dk + ops.einsum("nrs,nrd->nsd", ds, q_blk)
            dq_blk = row_block(dq, i) + _pv(ds, k_blk)
            dq = ops.slice_update(dq, (i, 0, 0, 0), dq_blk[None])
            return dq, dk, dv

        dq, dk, dv = ops.fori_loop(
            plan.query_blocks_start(k0),
            plan.nq,
            body,
            (dq, ops.zeros_like(k_blk), ops.zeros_like(v_blk)),
        )
        dk_all = ops.slice_update(dk_all, (0, k0, 0), dk)
        dv_all = ops.slice_update(dv_all, (0, k0, 0), dv)
        return dq, dk_all, dv_all

    return ops.fori_loop(
        0,
        plan.nk,
        key_block,
        (ops.zeros_like(q_rows), ops.zeros_like(k_rows),
         ops.zeros_like(v_rows)),
    )


def _flash(plan, qs, k, v, mask_args):
    """Custom-gradient core on float32 qs (B, T, Hkv, G, D), k/v
    (B, S, Hkv, D); returns (B, T, Hkv, G, D)."""

    @ops.custom_gradient
    def core(qs, k, v, *mask_args):
        plan.set_mask(mask_args[0] if mask_args else None)
        q_rows = _query_rows(pad_axis(qs, 1, plan.t_pad), plan)
        k_rows = heads_to_batch(pad_axis(k, 1, plan.s_pad))
        v_rows = heads_to_batch(pad_axis(v, 1, plan.s_pad))
        o, lse = _forward(plan, q_rows, k_rows, v_rows)
        out = _from_query_rows(o, plan)[:, : plan.t]

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            do = pad_axis(ops.cast(upstream, "float32"), 1, plan.t_pad)
            dq, dk, dv = _backward(
                plan, q_rows, k_rows, v_rows, o, lse, _query_rows(do, plan)
            )
            dq = _from_query_rows(dq, plan)[:, : plan.t]
            dk = batch_to_heads(dk, plan.kv_heads)[:, : plan.s]
            dv = batch_to_heads(dv, plan.kv_heads)[:, : plan.s]
            return (dq, dk, dv) + (None,) * len(mask_args)

        return out, grad

    return core(qs, k, v, *mask_args)


@register_kernel("chunked")
def chunked_attention(
    query,
    key,
    value,
    causal=False,
    mask=None,
    scale=None,
    chunk_size=512,
    query_chunk_size=1024,
    max_unrolled_tiles=64,
):
    """Exact softmax attention in (query_chunk_size x chunk_size) tiles.

    Options:
        scale: float or None. Logit scale; None = 1 / sqrt(D).
        chunk_size: int. Keys per block (the inner online-softmax loop).
        query_chunk_size: int. Queries per block (the outer loop); peak
            score memory is B * H * query_chunk_size * chunk_size floats.
        max_unrolled_tiles: int >= 0. With static lengths and at most this
            many (query block, key block) tiles the loops are unrolled into
            a static graph (faster on XLA:CPU: ≈ 12 % at L = 4k with
            the default blocks, 32 tiles); 0 = always loops.
    """
    _check_int("chunk_size", chunk_size)
    _check_int("query_chunk_size", query_chunk_size)
    _check_int("max_unrolled_tiles", max_unrolled_tiles, minimum=0)
    b, t, h, d = ops.shape(query)
    s, h_kv = ops.shape(key)[1], key.shape[2]
    g = h // h_kv
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    plan = _Plan(
        t, s, chunk_size, query_chunk_size, causal, max_unrolled_tiles,
        kv_heads=h_kv, groups=g,
    )
    qs = ops.reshape(ops.cast(query, "float32") * scale, (b, t, h_kv, g, d))
    k = ops.cast(key, "float32")
    v = ops.cast(value, "float32")
    # The padded mask enters the custom-gradient function as an input (with
    # gradient None) rather than as a captured tensor.
    padded = pad_mask(mask, plan.t_pad, plan.s_pad)
    mask_args = () if padded is None else (padded,)
    out = _flash(plan, qs, k, v, mask_args)
    return ops.cast(ops.reshape(out, (b, t, h, d)), query.dtype)
