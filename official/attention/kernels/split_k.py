"""`split_k`: exact attention as merged partial softmaxes (Flash-Decoding /
Lean Attention).

Lean Attention (Sanovar et al., arXiv 2405.10480; garden spec
`lean_attention.md` Sec. 4.1) and Flash-Decoding split the key/value context
into pieces, compute for each piece i a normalised partial output o_i and its
log-sum-exp lse_i independently (in parallel), and combine them with the
associative softmax re-scaling

    lse = logsumexp_i lse_i,    o = sum_i exp(lse_i - lse) o_i.

Here the context is cut into `num_splits` equal pieces of ceil(S / num_splits)
keys (the Flash-Decoding partition; Lean Attention's stream-K schedule only
changes *which* ranges are merged, and the merge is exact for any partition).
All partials are computed in one vectorised einsum, so the live score tensor
is (B, H, T, S) as in `dense`: this kernel targets decoding (T small, S long),
where that is O(S); it is exact for any T. Empty pieces (more splits than
keys, or fully masked) are the merge identity (lse = -inf).

`merge_partials` and `merge_pair` are the public merge operators.
"""

import math

from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels.block_mask import BlockMask
from official.attention.kernels.block_mask import pad_axis
from official.attention.kernels.block_mask import pad_mask
from official.attention.kernels.online_softmax import merge_pair  # noqa: F401
from official.attention.kernels.online_softmax import merge_partials
from official.attention.kernels.online_softmax import partial_softmax


def _pv(p, v):
    """(B, N, Hkv, G, T, s) x (B, N, s, Hkv, D) -> (B, N, Hkv, G, T, D)."""
    return ops.einsum("bnkgts,bnskd->bnkgtd", p, v)


def split_partials(qs, k, v, allowed, num_splits):
    """Partials of each context piece.

    Args:
        qs: (B, T, Hkv, G, D) float32, already scaled.
        k, v: (B, S_pad, Hkv, D) float32, S_pad = num_splits * piece.
        allowed: None or boolean (B|1, T, S_pad).
        num_splits: int.

    Returns:
        o (B, N, Hkv, G, T, D) normalised partial outputs and
        lse (B, N, Hkv, G, T).
    """
    b, s_pad, h_kv, d = ops.shape(k)
    piece = s_pad // num_splits
    kb = ops.reshape(k, (b, num_splits, piece, h_kv, d))
    vb = ops.reshape(v, (b, num_splits, piece, h_kv, d))
    scores = ops.einsum("btkgd,bnskd->bnkgts", qs, kb)
    if allowed is not None:
        a = ops.reshape(allowed, (-1, ops.shape(allowed)[1], num_splits, piece))
        allowed = ops.transpose(a, (0, 2, 1, 3))[:, :, None, None]
    return partial_softmax(scores, allowed, vb, _pv)


@register_kernel("split_k")
def split_k_attention(
    query, key, value, causal=False, mask=None, scale=None, num_splits=4
):
    """Exact attention from `num_splits` merged partial softmaxes.

    Options:
        scale: float or None. Logit scale; None = 1 / sqrt(D).
        num_splits: int. Number of context pieces (any count >= 1, also more
            than the number of keys).
    """
    if (
        isinstance(num_splits, bool)
        or not isinstance(num_splits, int)
        or num_splits < 1
    ):
        raise ValueError(
            "attention kernel 'split_k': `num_splits` must be a positive int;"
            f" received {num_splits!r}."
        )
    b, t, h, d = ops.shape(query)
    s, h_kv = ops.shape(key)[1], key.shape[2]
    g = h // h_kv
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    piece = (s + num_splits - 1) // num_splits
    s_pad = num_splits * piece - s
    qs = ops.reshape(ops.cast(query, "float32") * scale, (b, t, h_kv, g, d))
    k = pad_axis(ops.cast(key, "float32"), 1, s_pad)
    v = pad_axis(ops.cast(value, "float32"), 1, s_pad)
    s_padded = not (isinstance(s_pad, int) and s_pad == 0)
    tiles = BlockMask(t, s, s_padded, causal, pad_mask(mask, 0, s_pad), lead=0)
    allowed = tiles.tile(0, t, 0, num_splits * piece)
    if allowed is not None:
        allowed = ops.broadcast_to(
            allowed, (ops.shape(allowed)[0], t, num_splits * piece)
        )
    o, lse = split_partials(qs, k, v, allowed, num_splits)
    out, _ = merge_partials(o, lse, axis=1)  # (B, Hkv, G, T, D)
    out = ops.reshape(ops.transpose(out, (0, 3, 1, 2, 4)), (b, t, h, d))
    return ops.cast(out, query.dtype)
