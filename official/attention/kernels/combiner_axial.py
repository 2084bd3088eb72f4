"""`combiner_axial`: Combiner-Axial (Ren et al. 2021, arXiv 2107.05768, §4).

The sequence is read as a (L/s rows) x (s columns) grid, row-major. Query
(r, c) attends directly to its own row (columns c' <= c when causal) and,
for every other row t (t < r when causal), to ONE summary of row t taken at
its own column c: the span value is the row-attention output of row t at
column c (row t attends to itself without a mask, so it summarises the whole
row), the span key is a summary key of the same cell. s + L/s logits per
query, one softmax: O(L (s + L/s)) = O(L sqrt L) at s = sqrt L.

Span keys (`row_summary`, the official TF options):

* "none": the cell's own key k_(t,c);
* "wsum": the row-attention-weighted keys, sum_c' p_(t,c)(c') k_(t,c')
  (default here: no weights);
* "proj": the official LM setting (`AxialRowMajorLM`, and the JAX
  `_SelfAttAxialRowmajor`): LayerNorm(x_(t,c) + W1 o_(t,c) + b1) W2 + b2,
  o the row-attention output, x the attention layer's input (a residual);
* "wsum_proj": "proj" applied to the "wsum" keys.

The projections are kernel-owned weights (register_kernel(params=...)):
`MultiHeadAttention.build` creates them when `kernel_options` ask for a
"proj" summary; `summary_residual` (the layer input x, (B, L, D_model)) must
then be passed per call (garden/combiner's `CombinerAttention` does).

Official code: google-research `combiner/combiner/tf/approx_attention.py`
`axial_rowmajor`. Non-causal: the official function drops both masks, so a
query also sees its own row through its own summary; here that summary is
masked so the parts partition the sequence.
"""

import keras
import numpy as np
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels import combiner_common as cc

ROW_SUMMARIES = ("none", "wsum", "proj", "wsum_proj")
PROJ_WEIGHTS = (
    "summary_dense_kernel", "summary_dense_bias", "summary_norm_gamma",
    "summary_norm_beta", "summary_head_kernel", "summary_head_bias",
)


def row_allowed(num_rows, causal):
    """(R, R) bool [query row, summarised row]."""
    idx = np.arange(num_rows)
    if causal:
        return idx[None, :] < idx[:, None]
    return idx[None, :] != idx[:, None]


def _project(pre, residual, w, eps):
    """LN(residual + pre W1 + b1) W2 + b2 on (B, R, s, H, D) cells."""
    h, d = pre.shape[3], pre.shape[4]
    w1 = ops.reshape(ops.cast(w["summary_dense_kernel"], "float32"),
                     (h, d, -1))
    x = ops.einsum("brshd,hde->brse", pre, w1)
    x = x + ops.cast(w["summary_dense_bias"], "float32") + residual
    mean = ops.mean(x, axis=-1, keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
    x = (x - mean) * ops.rsqrt(var + eps)
    x = x * ops.cast(w["summary_norm_gamma"], "float32")
    x = x + ops.cast(w["summary_norm_beta"], "float32")
    w2 = ops.reshape(ops.cast(w["summary_head_kernel"], "float32"),
                     (-1, h, d))
    out = ops.einsum("brse,ehd->brshd", x, w2)
    return out + ops.reshape(
        ops.cast(w["summary_head_bias"], "float32"), (h, d))


def axial_parts(q, k, v, causal, segment_length, row_summary="wsum",
                residual=None, weights=None, norm_epsilon=1e-5):
    """Logit blocks (B, R, s, H, .) [row (s), summaries (R)] and merge."""
    s = segment_length
    num_rows = q.shape[1] // s
    qs, ks, vs = cc.segment(q, s), cc.segment(k, s), cc.segment(v, s)
    row_logits = ops.einsum("brqhd,brkhd->brqhk", qs, ks)
    row_probs = cc.softmax(row_logits)  # unmasked: whole row
    row_out = ops.einsum("brqhk,brkhd->brqhd", row_probs, vs)
    if row_summary == "none":
        key_row = ks
    else:
        if "wsum" in row_summary:
            pre = ops.einsum("brqhk,brkhd->brqhd", row_probs, ks)
        else:
            pre = row_out
        key_row = pre
        if "proj" in row_summary:
            res = ops.reshape(residual, (-1, num_rows, s, residual.shape[-1]))
            key_row = _project(pre, res, weights, norm_epsilon)

    local = row_logits
    if causal:
        local = cc.masked(local, np.tri(s, dtype=bool)[None, None, :, None])
    spans = ops.einsum("brchd,btchd->brcht", qs, key_row)
    spans = cc.masked(
        spans, row_allowed(num_rows, causal)[None, :, None, None, :])

    def merge(w):
        w_local, w_span = w
        out = ops.einsum("brchk,brkhd->brchd", w_local, vs)
        out = out + ops.einsum("brcht,btchd->brchd", w_span, row_out)
        return cc.unsegment(out)

    return [local, spans], merge


def _needs_proj(options):
    return "proj" in options.get("row_summary", "wsum")


def axial_params(layer, query_shape, key_shape, num_heads, num_kv_heads,
                 key_dim, options):
    """Kernel-owned weights of the "proj" summary (official
    `rowmajor_param_post`: trail_dense to the model width, LayerNorm,
    trail_dense to heads; normal(0.02) kernels, zero biases)."""
    if not _needs_proj(options):
        return {}
    width = query_shape[-1]
    inner = num_heads * key_dim

    def normal():  # a fresh instance per weight (unseeded ones repeat)
        return keras.initializers.RandomNormal(stddev=0.02)

    def add(name, shape, init):
        return layer.add_weight(name=name, shape=shape, initializer=init)

    return {
        "summary_dense_kernel": add("summary_dense_kernel", (inner, width),
                                    normal()),
        "summary_dense_bias": add("summary_dense_bias", (width,), "zeros"),
        "summary_norm_gamma": add("summary_norm_gamma", (width,), "ones"),
        "summary_norm_beta": add("summary_norm_beta", (width,), "zeros"),
        "summary_head_kernel": add("summary_head_kernel", (width, inner),
                                   normal()),
        "summary_head_bias": add("summary_head_bias", (inner,), "zeros"),
    }


@register_kernel("combiner_axial", params=axial_params)
def combiner_axial(query, key, value, causal=False, mask=None, scale=None,
                   segment_length=None, row_summary="wsum",
                   summary_residual=None, summary_norm_epsilon=1e-5,
                   summary_dense_kernel=None, summary_dense_bias=None,
                   summary_norm_gamma=None, summary_norm_beta=None,
                   summary_head_kernel=None, summary_head_bias=None):
    """Combiner-Axial attention (see the module docstring).

    Options:
        scale: float > 0. Query scale (default 1/sqrt(D)).
        segment_length: int. Row length s; default: the divisor of L
            minimising s + L/s. Causal inputs are padded to whole rows.
        row_summary: "none", "wsum" (default), "proj" (official LM),
            "wsum_proj".
        summary_residual: (B, L, D_model) layer input, for "proj".
        summary_norm_epsilon: float. LayerNorm epsilon of "proj" (1e-5,
            official TF).
        summary_*: the "proj" weights (made by `axial_params`).
    """
    name = "combiner_axial"
    length = cc.check_inputs(name, query, key, mask)
    if row_summary not in ROW_SUMMARIES:
        raise ValueError(
            f"attention kernel '{name}': unknown row_summary "
            f"'{row_summary}'; expected one of {list(ROW_SUMMARIES)}."
        )
    s, padded = cc.resolve_segment_length(name, length, segment_length,
                                          causal)
    weights = dict(
        summary_dense_kernel=summary_dense_kernel,
        summary_dense_bias=summary_dense_bias,
        summary_norm_gamma=summary_norm_gamma,
        summary_norm_beta=summary_norm_beta,
        summary_head_kernel=summary_head_kernel,
        summary_head_bias=summary_head_bias,
    )
    residual = None
    if "proj" in row_summary:
        missing = [n for n, w in weights.items() if w is None]
        if summary_residual is None:
            missing.append("summary_residual")
        if missing:
            raise ValueError(
                f"attention kernel '{name}': row_summary='{row_summary}' "
                f"needs the projection weights {list(PROJ_WEIGHTS)} (made "
                "by MultiHeadAttention.build via register_kernel(params=)) "
                "and `summary_residual`, the attention input (B, L, "
                "D_model) (garden.combiner.CombinerAttention passes it); "
                f"missing: {missing}."
            )
        residual = cc.pad_to(ops.cast(summary_residual, "float32"), padded)

    def build(q, k, v):
        return axial_parts(q, k, v, causal, s, row_summary, residual,
                           weights, summary_norm_epsilon)

    return cc.run(query, key, value, scale, length, padded, build)
