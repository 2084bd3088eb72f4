"""`combiner_logsparse`: Combiner-Logsparse (Ren et al. 2021, arXiv
2107.05768, §4).

Query i attends directly to itself (Omega_i^0 = {i}) and, for every level
l = 0..n_levels-1 whose bit is set in i, to the dyadic block of 2^l
positions immediately left of i's own level-l block,
[(i // 2^l - 1) 2^l, (i // 2^l) 2^l). These blocks are the binary
decomposition of [0, i), so the union covers every j < i exactly once with
n_levels + 1 logits per query: O(L log L) time and memory. Each block is a
span: max-pooled key, value = softmax(q_block . k_j)-weighted values with
q_block the max-pooled query of the block.

Official code: google-research `combiner/combiner/jax/model/layer.py`
`_SelfAttLogn` (roll/mask bookkeeping; mask `(pos // 2^l) % 2`). Differences:

* levels: the official uses n_levels = ceil(log2(L - 1)), which misses the
  last position when L = 2^k + 1 (it needs a level-k block) and every
  position but 0 when L = 2; here n_levels = ceil(log2 L) (`num_levels`),
  found by the coverage test (tests/attention/test_combiner_kernels.py);
* non-causal (not in the official code): the mirror image on the same
  dyadic tree, for every level whose bit is 0 in i the block immediately
  right of i's level-l block, which decomposes (i, L); blocks that reach
  past L are summarised over their positions < L only. Left and right
  blocks share the block summaries: 2 n_levels + 1 logits per query.
"""

import numpy as np
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels import combiner_common as cc


def num_levels(length):
    """ceil(log2 L): enough dyadic levels for position L - 1 (0 if L = 1)."""
    return int(length - 1).bit_length() if length > 1 else 0


def level_used(length, level):
    """(L,) bool: bit `level` of i is set (query i uses the block left of
    its level-`level` block)."""
    return ((np.arange(length) >> level) & 1) == 1


def right_level_used(length, level):
    """(L,) bool: bit `level` of i is 0 and the block right of i's
    level-`level` block starts before L."""
    pos = np.arange(length)
    return (((pos >> level) & 1) == 0) & ((((pos >> level) + 1) << level)
                                          < length)


def _block_summaries(qb, kb, vb, valid, local_summary):
    """Span key and value (B, n, H, D) of every block (B, n, c, H, D);
    `valid` (n, c) NumPy bool or None (all valid)."""
    if qb.shape[2] == 1:
        return kb[:, :, 0], vb[:, :, 0]
    if valid is None:
        span_q = cc.pool_summary(qb, 2, local_summary)
        span_k = cc.pool_summary(kb, 2, local_summary)
        return span_k, cc.span_values(span_q, kb, vb)
    m = ops.convert_to_tensor(valid[None, :, :, None, None])
    counts = np.maximum(valid.sum(-1), 1)[None, :, None, None]
    act, pool = local_summary.split("-")
    if act == "relu":
        qb, kb = ops.relu(qb), ops.relu(kb)
    if pool == "max":
        span_q = ops.max(ops.where(m, qb, cc.NEG), axis=2)
        span_k = ops.max(ops.where(m, kb, cc.NEG), axis=2)
    else:
        span_q = ops.sum(ops.where(m, qb, 0.0), axis=2)
        span_k = ops.sum(ops.where(m, kb, 0.0), axis=2)
        if pool == "mean":
            span_q, span_k = span_q / counts, span_k / counts
    return span_k, cc.span_values(span_q, kb, vb, valid)


def span_log_counts(length, level, step):
    """(L,) log of the number of positions < L in the block a query uses at
    `level` (step 1: the block left of its own, -1: right of it)."""
    c = 2**level
    start = ((np.arange(length) // c) - step) * c
    size = np.clip(length - start, 1, c)
    return np.log(size).astype("float32")


def logsparse_parts(q, k, v, causal, local_summary="identity-max",
                    span_log_count=False):
    """Logit blocks (B, L, H, .) [self (1), left levels (n_levels), right
    levels (n_levels, non-causal only)] and merge."""
    length, heads = q.shape[1], q.shape[2]
    levels = num_levels(length)
    padded = 1 << int(length - 1).bit_length()  # next power of two
    qp, kp, vp = (cc.pad_to(x, padded) for x in (q, k, v))
    sides = {1: (level_used, [], [])}
    if not causal:
        sides[-1] = (right_level_used, [], [])
    for level in range(levels):
        c = 2**level
        qb, kb, vb = (cc.segment(x, c) for x in (qp, kp, vp))
        valid = None
        if not causal and padded != length:
            valid = (np.arange(padded) < length).reshape(padded // c, c)
        span_k, span_v = _block_summaries(qb, kb, vb, valid, local_summary)
        for step, (used, logits, values) in sides.items():
            # step 1: block b - 1 (left of the own block); -1: block b + 1.
            # Multiply-reduce, not a batch of matrix-vector einsums (slow
            # on XLA CPU, see `span_values`).
            lg = ops.sum(qb * cc.shift(span_k, 1, step)[:, :, None], axis=-1)
            lg = ops.reshape(lg, (-1, padded, heads))[:, :length]
            if span_log_count:
                lg = lg + ops.convert_to_tensor(
                    span_log_counts(length, level, step))[None, :, None]
            logits.append(cc.masked(lg, used(length, level)[None, :, None]))
            values.append(ops.repeat(cc.shift(span_v, 1, step), c,
                                     axis=1)[:, :length])
    blocks = [ops.sum(q * k, axis=-1)[..., None]]
    span_values = []
    for _, logits, values in sides.values():
        if logits:
            blocks.append(ops.stack(logits, axis=-1))
            span_values += values

    def merge(weights):
        out = weights[0] * v
        spans = ops.concatenate(weights[1:], axis=-1) if weights[1:] else None
        for i, val in enumerate(span_values):
            out = out + spans[..., i:i + 1] * val
        return out

    return blocks, merge


@register_kernel("combiner_logsparse")
def combiner_logsparse(query, key, value, causal=False, mask=None,
                       scale=None, local_summary="identity-max",
                       span_log_count=False):
    """Combiner-Logsparse attention (see the module docstring).

    Options:
        scale: float > 0. Query scale (default 1/sqrt(D)).
        local_summary: "identity-max" (official) or {identity, relu} x
            {max, mean, sum}: how block keys and block queries are pooled.
        span_log_count: bool. Garden extension (off in the paper): add
            log |block| (2^l, or its positions < L) to each block logit.
    """
    length = cc.check_inputs("combiner_logsparse", query, key, mask)
    cc.check_summary(local_summary)

    def build(q, k, v):
        return logsparse_parts(q, k, v, causal, local_summary, span_log_count)

    return cc.run(query, key, value, scale, length, length, build)
