"""`dense`: the reference softmax attention, scores in float32."""

import math

from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels.common import combined_mask
from official.attention.kernels.common import repeat_kv_heads


@register_kernel("dense")
def dense_attention(query, key, value, causal=False, mask=None, scale=None):
    """Full (B, H, T, S) score matrix; a fully masked row returns zeros."""
    h, d = query.shape[2], query.shape[3]
    key, value = repeat_kv_heads(key, value, h)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    dtype = query.dtype
    scores = ops.einsum(
        "bthd,bshd->bhts",
        ops.cast(query, "float32"),
        ops.cast(key, "float32"),
    ) * scale
    allowed = combined_mask(
        ops.shape(query)[1], ops.shape(key)[1], causal, mask
    )
    if allowed is not None:
        scores = ops.where(allowed, scores, -1e30)
    weights = ops.softmax(scores, axis=-1)
    if allowed is not None:
        weights = ops.where(allowed, weights, 0.0)
    out = ops.einsum("bhts,bshd->bthd", weights, ops.cast(value, "float32"))
    return ops.cast(out, dtype)
