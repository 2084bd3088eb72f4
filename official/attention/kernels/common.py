"""Helpers shared by kernels: grouped-query head repetition, masks."""

from keras import ops


def repeat_kv_heads(key, value, num_query_heads):
    """Repeats (B, S, H_kv, D) key/value heads to H query heads."""
    h_kv = key.shape[2]
    if h_kv == num_query_heads:
        return key, value
    reps = num_query_heads // h_kv
    return ops.repeat(key, reps, axis=2), ops.repeat(value, reps, axis=2)


def heads_to_batch(x):
    """(B, S, H, D) -> (B * H, S, D): every head its own batch row (one
    transpose, so per-head matmuls read contiguous (S, D) rows)."""
    _, length, _, d = ops.shape(x)
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (-1, length, d))


def batch_to_heads(x, heads):
    """Inverse of `heads_to_batch`: (B * H, S, D) -> (B, S, H, D)."""
    _, length, d = ops.shape(x)
    x = ops.reshape(x, (-1, heads, length, d))
    return ops.transpose(x, (0, 2, 1, 3))


def causal_mask(t, s):
    """(T, S) boolean; query i sees keys j <= i + (S - T) (decoding aligned)."""
    rows = ops.arange(t)[:, None] + (s - t)
    cols = ops.arange(s)[None, :]
    return cols <= rows


def combined_mask(t, s, causal, mask):
    """Boolean mask broadcastable to (B, 1, T, S), or None."""
    out = None
    if causal:
        out = causal_mask(t, s)[None, None]
    if mask is not None:
        m = mask if len(mask.shape) == 3 else mask[None]
        m = m[:, None]
        out = m if out is None else ops.logical_and(out, m)
    return out
