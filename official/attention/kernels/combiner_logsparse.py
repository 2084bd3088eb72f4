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

Cost (the O(L log L) of §4, kept linear per level under XLA on CPU): each
level makes three passes over (B, L, H, D) data (query logits against the
sibling block's key, span logits of the keys, the span-weighted values)
plus O(L / 2^l) work; block keys and queries are pooled bottom-up from the
level below; every reduction of a (..., D)-sized product runs over at most
32 elements (`combiner_common.dot_last`, `span_values`), because XLA's CPU
pipeline splits longer ones into an unfused reduce-window that writes the
whole product to memory; the blocks a query uses are addressed as the
sibling of its own block (a pair swap, `sibling`) rather than a padded
shift. Measured timings: garden/combiner/README.md.
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


def _pooled_levels(x, valid, local_summary, levels):
    """Pooled block summaries of x (B, P, H, D) (P a power of two) at levels
    1..levels-1: a list whose entry l is (B, P / 2^l, H, D) (entry 0 None).

    Built bottom-up: a level-(l+1) block is the union of two level-l
    blocks, so its max (sum) is the max (sum) of theirs; "mean" divides the
    sum by the block's count of positions < L. Each level costs O(P / 2^l)
    instead of a pass over all P positions (the same values for "max"; sums
    only change rounding order). `valid` (P,) NumPy bool or None (all
    positions count)."""
    act, pool = local_summary.split("-")
    if act == "relu":
        x = ops.relu(x)
    combine = ops.max if pool == "max" else ops.sum
    if valid is not None:
        x = ops.where(ops.convert_to_tensor(valid[None, :, None, None]), x,
                      cc.NEG if pool == "max" else 0.0)
    _, padded, h, d = x.shape
    out = [None]
    for level in range(1, levels):
        x = combine(ops.reshape(x, (-1, x.shape[1] // 2, 2, h, d)), axis=2)
        if pool == "mean":
            c = 2**level
            counts = c if valid is None else np.maximum(
                valid.reshape(padded // c, c).sum(-1), 1)[None, :, None, None]
            out.append(x / counts)
        else:
            out.append(x)
    return out


def sibling(x):
    """(B, n, ...) -> the same with blocks 2m and 2m + 1 swapped (n even).

    The block a query uses at a level is the sibling of its own level-l
    block b in the dyadic tree: b - 1 when bit l of i is set (b odd), b + 1
    when it is 0 (the right block, non-causal). A pair swap is pure index
    arithmetic inside XLA's fused loops, unlike a shift (a pad, with a
    bounds check per element), and one swap serves both sides."""
    shape = tuple(x.shape)
    pairs = ops.reshape(x, (-1, shape[1] // 2, 2) + shape[2:])
    return ops.reshape(ops.flip(pairs, axis=2), (-1,) + shape[1:])


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
    # Causal queries only use blocks left of their own, all positions < L;
    # non-causal right blocks may reach past L and are summarised over
    # their positions < L.
    valid = None
    if not causal and padded != length:
        valid = np.arange(padded) < length
    pooled_q = _pooled_levels(qp, valid, local_summary, levels)
    pooled_k = _pooled_levels(kp, valid, local_summary, levels)
    steps = (1,) if causal else (1, -1)  # left block; right block
    used = {1: level_used, -1: right_level_used}
    logits = {step: [] for step in steps}
    span_values = []
    for level in range(levels):
        c = 2**level
        if level == 0:  # one-position blocks: the key and value themselves
            span_k, span_v = kp, vp
        else:
            span_k = pooled_k[level]
            span_v = cc.span_values(
                pooled_q[level], cc.segment(kp, c), cc.segment(vp, c),
                None if valid is None else valid.reshape(padded // c, c))
        # One logit per query against the sibling block's key; it is the
        # left logit where bit `level` of i is 1 and the right one where
        # it is 0 (the other one masked).
        lg = cc.dot_last(cc.segment(qp, c), sibling(span_k)[:, :, None])
        lg = ops.reshape(lg, (-1, padded, heads))[:, :length]
        for step in steps:
            lg_step = lg
            if span_log_count:
                lg_step = lg + ops.convert_to_tensor(
                    span_log_counts(length, level, step))[None, :, None]
            logits[step].append(
                cc.masked(lg_step, used[step](length, level)[None, :, None]))
        span_values.append(
            ops.repeat(sibling(span_v), c, axis=1)[:, :length])
    blocks = [cc.dot_last(q, k)[..., None]]
    blocks += [ops.stack(logits[step], axis=-1) for step in steps if levels]

    def merge(weights):
        out = weights[0] * v
        if not levels:
            return out
        # Left and right weights of a level share the sibling's value; one
        # of the two is exactly 0 (masked logit).
        span_w = weights[1] if causal else weights[1] + weights[2]
        for level, val in enumerate(span_values):
            out = out + span_w[..., level:level + 1] * val
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
