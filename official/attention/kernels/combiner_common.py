"""Shared pieces of the Combiner kernels (Ren et al. 2021, arXiv 2107.05768).

Combiner (§3) treats attention as a conditional expectation
A(x_i) = E_{p(j|i)}[v_j] and partitions the support Omega_i into a direct
part Omega_i^0 and spans Omega_i^1..Omega_i^{n_i}. Inside a span the
probability factorises as p(j|i) = p(Omega_i^r|i) q_r(j) with a "local
expectation" q_r(j) that does not depend on i, so a span costs one
logit q_i . k_r against a summary key and contributes one summary value
v_r = sum_j q_r(j) v_j shared by every query. The direct logits and the span
logits go through ONE softmax (`joint_softmax`).

Conventions of all four kernels (`combiner_fixed`, `combiner_logsparse`,
`combiner_axial`, `combiner_mixture`):

* self-attention only (T == S), no `mask` (the sparsity pattern is the
  structure); `causal` selects the autoregressive partition;
* the query is multiplied by `scale` (default 1/sqrt(D)) before any
  pooling, as the official code does (`get_qkv` scales the query, then
  `pooling_summary` / `cummax` act on it); max-pooling commutes with a
  positive scale, so span logits are max(q) . k * scale;
* logits, softmax and sums in float32; the output has the query dtype;
* masked logits are set to -1e30 (never added), so their softmax weight is
  exactly 0;
* lengths are static; a causal sequence whose length is not a multiple of
  the segment is padded at the end (padding is in everyone's future, so it
  never reaches a real position) and the output sliced back.
"""

import math

import numpy as np
from keras import ops

from official.attention.kernels.common import batch_to_heads
from official.attention.kernels.common import heads_to_batch
from official.attention.kernels.common import repeat_kv_heads

NEG = -1e30

SUMMARY_KINDS = tuple(
    f"{act}-{pool}" for act in ("identity", "relu")
    for pool in ("max", "mean", "sum")
)


def check_inputs(name, query, key, mask):
    """Static self-attention lengths and no user mask, or a ValueError."""
    if mask is not None:
        raise ValueError(
            f"attention kernel '{name}': `mask` is not supported (the "
            "Combiner partition is the sparsity pattern); use causal=True "
            "for autoregressive attention and mask=None."
        )
    t, s = query.shape[1], key.shape[1]
    if t is None or s is None:
        raise ValueError(
            f"attention kernel '{name}' needs static sequence lengths; "
            f"received query {tuple(query.shape)}, key {tuple(key.shape)}."
        )
    if t != s:
        raise ValueError(
            f"attention kernel '{name}' is self-attention: query length {t} "
            f"must equal key length {s} (no cached decoding)."
        )
    return t


def prepare(query, key, value, scale):
    """Float32 q (already multiplied by scale), k, v with H query heads."""
    h, d = query.shape[2], query.shape[3]
    key, value = repeat_kv_heads(key, value, h)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if scale <= 0:
        raise ValueError(
            f"Combiner kernels need a positive scale (max-pooled queries); "
            f"got {scale}."
        )
    q = ops.cast(query, "float32") * scale
    return q, ops.cast(key, "float32"), ops.cast(value, "float32")


def default_segment_length(length):
    """The divisor s of `length` minimising s + length / s (the logits per
    query of Combiner-Fixed/Axial); the smaller one on a tie. It is
    sqrt(length) for perfect squares and sqrt(length / 2) or sqrt(2 length)
    for odd powers of two."""
    best = None
    for s in range(1, int(math.isqrt(length)) + 1):
        if length % s:
            continue
        for cand in (s, length // s):
            key = (cand + length // cand, cand)
            if best is None or key < best:
                best = key
    return best[1]


def resolve_segment_length(name, length, segment_length, causal):
    """(s, padded length). Causal inputs are padded up to a multiple of s;
    non-causal ones must be a multiple (padding would be attended)."""
    s = default_segment_length(length) if segment_length is None else int(
        segment_length)
    if s < 1:
        raise ValueError(
            f"attention kernel '{name}': segment_length must be >= 1; got "
            f"{segment_length}."
        )
    padded = -(-length // s) * s
    if padded != length and not causal:
        raise ValueError(
            f"attention kernel '{name}': non-causal attention needs the "
            f"length ({length}) to be a multiple of segment_length ({s}); "
            "pad the sequence or choose another segment_length."
        )
    return s, padded


def pad_to(x, length, axis=1):
    """Zero-pads `axis` of x at the end up to `length`."""
    current = x.shape[axis]
    if current == length:
        return x
    widths = [[0, 0] for _ in range(len(x.shape))]
    widths[axis] = [0, length - current]
    return ops.pad(x, widths)


def segment(x, s):
    """(B, L, H, D) -> (B, L / s, s, H, D)."""
    _, length, h, d = x.shape
    return ops.reshape(x, (-1, length // s, s, h, d))


def unsegment(x):
    """(B, n, s, H, D) -> (B, n * s, H, D)."""
    _, n, s, h, d = x.shape
    return ops.reshape(x, (-1, n * s, h, d))


def check_summary(kind):
    if kind not in SUMMARY_KINDS:
        raise ValueError(
            f"Unknown local_summary '{kind}'; expected one of "
            f"{list(SUMMARY_KINDS)} (the official 'deepset' owns weights and "
            "is not implemented)."
        )


def pool_summary(x, axis, kind="identity-max"):
    """Cheap span summary (official `pooling_summary`): activation
    ("identity" or "relu") then pooling ("max", "mean", "sum") over `axis`
    (removed)."""
    check_summary(kind)
    act, pool = kind.split("-")
    if act == "relu":
        x = ops.relu(x)
    if pool == "max":
        return ops.max(x, axis=axis)
    if pool == "mean":
        return ops.mean(x, axis=axis)
    return ops.sum(x, axis=axis)


# XLA's CPU pipeline rewrites every reduction over an axis longer than this
# into a reduce-window of this width followed by a second reduce (the
# TreeReductionRewriter, for accuracy), and the reduce-window is not fused
# with its elementwise producer: sum(q * k, axis=-1) over D = 64, or a
# weighted sum over a 64-position span, writes the whole product to memory
# and reads it back. Reductions over at most this many elements stay one
# fused loop; `dot_last` and `span_values` keep every reduction of a
# (..., H, D)-sized product at or below it.
FUSED_REDUCE = 32


def dot_last(a, b):
    """sum(a * b, axis=-1) (broadcasting), with the last axis reduced in
    slices of at most `FUSED_REDUCE` elements whose partial sums are then
    added (the same tree as XLA's rewrite, without materialising a * b:
    5-10x faster at D = 64 and 64k tokens on the 2-core test machine)."""
    d = max(a.shape[-1], b.shape[-1])
    out = None
    for i in range(0, d, FUSED_REDUCE):
        part = ops.sum(a[..., i:i + FUSED_REDUCE] * b[..., i:i + FUSED_REDUCE],
                       axis=-1)
        out = part if out is None else out + part
    return out


def _chunk(size):
    """The largest divisor of `size` that is at most FUSED_REDUCE."""
    return max(g for g in range(1, FUSED_REDUCE + 1) if size % g == 0)


def span_values(span_query, keys, values, allowed=None):
    """Summary value of every span: v_r = sum_j softmax_j(q_r . k_j) v_j
    (the local expectation q_r(j) of §3, shared by all queries).

    span_query (B, n, H, D) (already scaled); keys/values (B, n, s, H, D);
    `allowed` optional NumPy bool (n, s) (positions outside a span).
    Returns (B, n, H, D).

    Written as multiply-and-reduce, not einsum (a batch of B n H
    matrix-vector products, slow under XLA on CPU). Spans longer than
    `FUSED_REDUCE` are split into chunks of g <= 32 positions and the
    softmax-weighted sum is assembled from per-chunk maxima m_c, sums
    z_c = sum exp(l_j - m_c) and partial values u_c = sum exp(l_j - m_c) v_j:
    v_r = sum_c e^(m_c - M) u_c / sum_c e^(m_c - M) z_c, M = max_c m_c (the
    same quantity; only the rounding order differs). The rescaling between
    the two reductions keeps XLA from merging them back into one long,
    unfused reduction (4-5x faster per span level at 64k tokens).
    """
    logits = dot_last(span_query[:, :, None], keys)  # (B, n, s, H)
    if allowed is not None:
        logits = masked(logits, allowed[None, :, :, None])
    s = keys.shape[2]
    if s == 1:
        return values[:, :, 0]
    g = _chunk(s)
    if s <= FUSED_REDUCE or g < 8:
        weights = ops.softmax(logits, axis=2)
        return ops.sum(weights[..., None] * values, axis=2)
    _, n, _, h, d = values.shape
    lg = ops.reshape(logits, (-1, n, s // g, g, h))
    chunk_max = ops.max(lg, axis=3)  # (B, n, m, H)
    e = ops.exp(lg - chunk_max[:, :, :, None])  # (B, n, m, g, H)
    chunk_sum = ops.sum(e, axis=3)
    chunk_val = ops.sum(
        e[..., None] * ops.reshape(values, (-1, n, s // g, g, h, d)), axis=3)
    return merge_chunks(chunk_max, chunk_sum, chunk_val)


def merge_chunks(chunk_max, chunk_sum, chunk_val):
    """sum_c e^(m_c - M) u_c / sum_c e^(m_c - M) z_c over the chunk axis 2:
    chunk_max m_c, chunk_sum z_c (B, n, m, H), chunk_val u_c (B, n, m, H, D).
    A chunk whose positions are all masked has m_c = NEG and weight 0 (if
    the whole span is masked every chunk weighs 1: the plain mean, as the
    softmax over equal logits gives)."""
    rescale = ops.exp(chunk_max - ops.max(chunk_max, axis=2)[:, :, None])
    total = ops.sum(rescale * chunk_sum, axis=2)  # (B, n, H)
    # A batched matrix-vector product over the chunks: as a reduction, XLA
    # fuses it with the chunk reduction into one nested loop, up to 3x
    # slower.
    merged = ops.einsum("bnmh,bnmhd->bnhd", rescale, chunk_val)
    return merged / total[..., None]


def _take(x, axis, start, stop):
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def shift(x, axis, amount):
    """Shifts x by `amount` along `axis` (> 0: towards higher indices, as
    the official `shift_right`; < 0: `shift_left`), filling with zeros."""
    n = x.shape[axis]
    widths = [[0, 0] for _ in range(len(x.shape))]
    if amount > 0:
        widths[axis] = [amount, 0]
        return ops.pad(_take(x, axis, 0, n - amount), widths)
    widths[axis] = [0, -amount]
    return ops.pad(_take(x, axis, -amount, n), widths)


def cummax(x, axis, reverse=False):
    """Inclusive running maximum along `axis` (JAX `lax.cummax`; the
    official TF code approximates it with a cumsum, `approx_cummax`).

    Hillis-Steele doubling: ceil(log2 n) steps of max(x, x shifted by
    2^k). Static shapes, pad/slice/maximum only, so it compiles with XLA and
    exports (keras.ops.associative_scan fails under XLA in Keras 3.15's
    TensorFlow backend: both tf.cond branches are compiled with mismatched
    shapes).
    """
    n = x.shape[axis]
    if reverse:
        x = ops.flip(x, axis=axis)
    step = 1
    while step < n:
        widths = [[0, 0] for _ in range(len(x.shape))]
        widths[axis] = [step, 0]
        shifted = ops.pad(_take(x, axis, 0, n - step), widths,
                          constant_values=NEG)
        x = ops.maximum(x, shifted)
        step *= 2
    if reverse:
        x = ops.flip(x, axis=axis)
    return x


def masked(logits, allowed):
    """Sets logits where `allowed` (NumPy bool, broadcastable) is False to
    NEG."""
    allowed = np.asarray(allowed, bool)
    if allowed.all():
        return logits
    return ops.where(ops.convert_to_tensor(allowed), logits, NEG)


def softmax(logits):
    """Softmax over the last axis (a size-1 axis gives ones without Keras'
    "softmax over one element" warning)."""
    if logits.shape[-1] == 1:
        return ops.ones_like(logits)
    return ops.softmax(logits, axis=-1)


def joint_softmax(blocks):
    """One float32 softmax over the concatenated last axes of `blocks`
    (§3: direct and span logits share the normaliser Z_i); returns the
    weights split back into blocks. (The kernels use the equivalent
    `joint_exp`, which never concatenates; this is the reference form.)"""
    sizes = [b.shape[-1] for b in blocks]
    weights = softmax(ops.concatenate(blocks, axis=-1))
    out, start = [], 0
    for size in sizes:
        out.append(weights[..., start:start + size])
        start += size
    return out


def joint_exp(blocks):
    """The joint softmax of `blocks` without concatenating them: returns
    (e_b = exp(l_b - M) per block, Z = sum over all blocks of sum(e_b)),
    M the running maximum over every block's last axis (held out of the
    gradient: the result does not depend on it). softmax = e_b / Z; a
    linear merge can divide its output by Z once instead of every weight.

    The concatenation costs a full copy of the logits, transposed when the
    blocks' layouts differ (the optimised HLO of `combiner_fixed` at 1k
    spent more time in its concat-subtract-exp fusion than in all of its
    matmuls)."""
    peak = None
    for b in blocks:
        m = ops.max(b, axis=-1)
        peak = m if peak is None else ops.maximum(peak, m)
    peak = ops.stop_gradient(peak)[..., None]
    exps = [ops.exp(b - peak) for b in blocks]
    total = None
    for e in exps:
        part = ops.sum(e, axis=-1)
        total = part if total is None else total + part
    return exps, total


def run(query, key, value, scale, length, padded_length, build,
        fold=False):
    """Shared driver (after `check_inputs`): float32 prep, causal
    end-padding, one joint softmax over `build(q, k, v) -> (logit blocks,
    merge)`, slicing back to `length`, cast to the query dtype.

    Every block's leading axes flatten to (B, L, H) in query order and
    `merge` is linear in the weights, so the softmax's division by Z is
    applied once to the merged (B, L, H, D) output (`joint_exp`).

    With `fold` (for kernels whose heads never interact) the heads are
    moved into the batch first, so `build` sees H = 1 and every per-segment
    matmul reads contiguous (segment, D) rows instead of transposing its
    operands from (segment, H, D). In-process A/B on the 2-core test
    machine (B = 1, H = 4, D = 64), folded / not at 1k, 4k, 16k, 64k:
    `combiner_mixture` 0.87, 0.72, 0.77, 0.69; `combiner_fixed` 0.94, 1.00,
    0.94, 0.98; `combiner_axial` 0.97-1.00 (not folded: its "proj" summary
    mixes heads); `combiner_logsparse` 1.14-1.36 (slower: not folded)."""
    q, k, v = prepare(query, key, value, scale)
    heads = q.shape[2]
    if fold and heads > 1:
        # (B, L, H, D) -> (B H, L, 1, D)
        q, k, v = (heads_to_batch(x)[:, :, None] for x in (q, k, v))
    if padded_length != length:
        q, k, v = (pad_to(x, padded_length) for x in (q, k, v))
    blocks, merge = build(q, k, v)
    exps, total = joint_exp(blocks)
    out = merge(exps)
    out = out / ops.reshape(total, (-1,) + tuple(out.shape[1:-1]) + (1,))
    if padded_length != length:
        out = out[:, :length]
    if fold and heads > 1:
        out = batch_to_heads(out[:, :, 0], heads)
    return ops.cast(out, query.dtype)
