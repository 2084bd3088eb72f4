"""Helpers shared by kernels: grouped-query head repetition, masks."""

from keras import ops


def repeat_kv_heads(key, value, num_query_heads):
    """Repeats (B, S, H_kv, D) key/value heads to H query heads."""
    h_kv = key.shape[2]
    if h_kv == num_query_heads:
        return key, value
    reps = num_query_heads // h_kv
    return ops.repeat(key, reps, axis=2), ops.repeat(value, reps, axis=2)


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
