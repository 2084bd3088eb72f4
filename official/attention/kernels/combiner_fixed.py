"""`combiner_fixed`: Combiner-Fixed (Ren et al. 2021, arXiv 2107.05768, §4).

The sequence is cut into segments of s tokens (the Sparse Transformer
"fixed" pattern). Query i in segment n attends directly to its own segment
(Omega_i^0; j <= i when causal) and to every other segment m (m < n when
causal) through one span logit against the max-pooled key of segment m; the
span value is the segment's values averaged with softmax(q_m . k_j), q_m the
max-pooled query of the segment. One softmax over s + L/s logits per query:
O(L (s + L/s)) time and memory, O(L sqrt L) at s = sqrt L.

Official code: google-research `combiner/combiner/tf/approx_attention.py`
`sqrt_fixed_full` (`local_summary='identity-max'`) and the JAX
`_SelfAttSqrtn`. Non-causal: the official function drops both masks, so a
query sees its own segment twice (directly and as a span); here the own
segment's span is masked so the parts partition the sequence (the paper's
"full attention" factorisation).
"""

import math

import numpy as np
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels import combiner_common as cc


def span_allowed(num_segments, causal):
    """(n, n) bool [query segment, span segment]: strictly earlier segments
    when causal, every other segment otherwise."""
    idx = np.arange(num_segments)
    if causal:
        return idx[None, :] < idx[:, None]
    return idx[None, :] != idx[:, None]


def fixed_parts(q, k, v, causal, segment_length,
                local_summary="identity-max", span_log_count=False):
    """Logit blocks and merge of Combiner-Fixed on (padded) q, k, v.

    q (already scaled), k, v: (B, L, H, D) float32, L a multiple of s.
    Blocks (B, L/s, s, H, .): local (s), spans (L/s).
    """
    s = segment_length
    n = q.shape[1] // s
    qs, ks, vs = cc.segment(q, s), cc.segment(k, s), cc.segment(v, s)
    span_q = cc.pool_summary(qs, 2, local_summary)  # (B, n, H, D)
    span_k = cc.pool_summary(ks, 2, local_summary)
    span_v = cc.span_values(span_q, ks, vs)

    local = ops.einsum("bnqhd,bnkhd->bnqhk", qs, ks)
    if causal:
        tril = np.tri(s, dtype=bool)
        local = cc.masked(local, tril[None, None, :, None, :])
    spans = ops.einsum("bnqhd,bmhd->bnqhm", qs, span_k)
    if span_log_count:
        # Garden extension (spec check 5): + log|Omega^r| makes a span of
        # identical keys/values weigh exactly like its s direct logits.
        spans = spans + math.log(s)
    allowed = span_allowed(n, causal)
    spans = cc.masked(spans, allowed[None, :, None, None, :])

    def merge(weights):
        w_local, w_span = weights
        out = ops.einsum("bnqhk,bnkhd->bnqhd", w_local, vs)
        out = out + ops.einsum("bnqhm,bmhd->bnqhd", w_span, span_v)
        return cc.unsegment(out)

    return [local, spans], merge


@register_kernel("combiner_fixed")
def combiner_fixed(query, key, value, causal=False, mask=None, scale=None,
                   segment_length=None, local_summary="identity-max",
                   span_log_count=False):
    """Combiner-Fixed attention (see the module docstring).

    Options:
        scale: float > 0. Query scale (default 1/sqrt(D)).
        segment_length: int. s; default: the divisor of L minimising
            s + L/s. Causal inputs are padded to a multiple of s.
        local_summary: "identity-max" (official) or {identity, relu} x
            {max, mean, sum}: how span keys and span queries are pooled.
        span_log_count: bool. Garden extension (off in the paper): add
            log s to every span logit.
    """
    length = cc.check_inputs("combiner_fixed", query, key, mask)
    cc.check_summary(local_summary)
    s, padded = cc.resolve_segment_length(
        "combiner_fixed", length, segment_length, causal)

    def build(q, k, v):
        return fixed_parts(q, k, v, causal, s, local_summary, span_log_count)

    return cc.run(query, key, value, scale, length, padded, build,
                  fold=True)
