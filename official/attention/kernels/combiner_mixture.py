"""`combiner_mixture`: Combiner-Mixture (Ren et al. 2021, arXiv 2107.05768,
§4).

The sequence is a (R = L/s rows) x (s columns) grid, row-major, and TWO
axial partitions share one softmax (a mixture of factorisations): one
summarises earlier rows column by column, the other row by row.

Causal (official `axial_mixture_unidir` / JAX `_AxialMixtureAtt`, JAX
semantics: a true cummax), for query (r, c):

* column direct: (t, c) for rows t < r                         -- R logits
* row direct: (r, c') for c' <= c                              -- s logits
* previous rows by column: for every other column t != c, one span over
  {(r', t): r' < r}; key = max over it of k, value = its values averaged
  with softmax(cummax_r' q . k)                                -- s logits
* top-left by row: for every row t < r, one span over {(t, c'): c' < c}
  (key = running max of the keys left of c, value from the running-max
  query of that row)                                           -- R logits
* top-right by row: for every row t < r, one span over {(t, c'): c' > c}
                                                               -- R logits

3R + 2s logits per query (the spec's "2L/s + 2s" miscounts the three
R-sized blocks): O(L sqrt L) at s = sqrt L. The direct parts plus the
column spans partition the past, and so do the direct parts plus the
top-left/top-right spans; positions of earlier rows appear in both.

Non-causal (the official TF `axial_mixture_bidir` structure: row + column
direct, summaries top-down and bottom-up by column, left-right and
right-left by row), with JAX cummax instead of the TF cumsum
approximation, and with the summaries that have no positions masked (row 0
has nothing above, column 0 nothing to the left, ...; the TF code leaves
them as unmasked logits on empty summaries). The query's own position is in
both direct blocks, as in the official code, so each of the two partitions
(row direct + top-down + bottom-up; column direct + left-right + right-left)
covers the whole sequence: 3R + 3s logits per query.
"""

import numpy as np
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels import combiner_common as cc


def _row_summaries(q, k, v, reverse):
    """For each cell (t, c): key and value of the span of row t strictly
    left of c (reverse: strictly right), from a running-max query."""
    s = q.shape[2]
    span_q = cc.cummax(q, axis=2, reverse=reverse)
    logits = ops.einsum("brchd,brkhd->brchk", span_q, k)
    inclusive = np.tri(s, dtype=bool)  # [c, k]: k <= c
    if reverse:
        inclusive = inclusive.T
    logits = cc.masked(logits, inclusive[None, None, :, None, :])
    summary = ops.einsum("brchk,brkhd->brchd", cc.softmax(logits), v)
    step = -1 if reverse else 1
    key = cc.shift(cc.cummax(k, axis=2, reverse=reverse), 2, step)
    return key, cc.shift(summary, 2, step)


def _column_summaries(q, k, v, reverse):
    """For each cell (r, t): key and value of the span of column t strictly
    above row r (reverse: strictly below)."""
    num_rows = q.shape[1]
    span_q = cc.cummax(q, axis=1, reverse=reverse)
    logits = ops.einsum("brchd,btchd->brcht", span_q, k)
    inclusive = np.tri(num_rows, dtype=bool)  # [r, t]: t <= r
    if reverse:
        inclusive = inclusive.T
    logits = cc.masked(logits, inclusive[None, :, None, None, :])
    summary = ops.einsum("brcht,btchd->brchd", cc.softmax(logits), v)
    step = -1 if reverse else 1
    key = cc.shift(cc.cummax(k, axis=1, reverse=reverse), 1, step)
    return key, cc.shift(summary, 1, step)


def mixture_parts(q, k, v, causal, segment_length):
    """Logit blocks (B, R, s, H, .) and merge (see the module docstring for
    the block order)."""
    s = segment_length
    num_rows = q.shape[1] // s
    cq, ck, cv = cc.segment(q, s), cc.segment(k, s), cc.segment(v, s)
    rows = np.arange(num_rows)
    cols = np.arange(s)
    first_col = (cols >= 1)[None, None, :, None, None]
    last_col = (cols <= s - 2)[None, None, :, None, None]

    col = ops.einsum("brchd,btchd->brcht", cq, ck)
    row = ops.einsum("brchd,brkhd->brchk", cq, ck)
    down_k, down_v = _column_summaries(cq, ck, cv, reverse=False)
    by_col_down = ops.einsum("brchd,brthd->brcht", cq, down_k)
    left_k, left_v = _row_summaries(cq, ck, cv, reverse=False)
    by_row_left = ops.einsum("brchd,btchd->brcht", cq, left_k)
    right_k, right_v = _row_summaries(cq, ck, cv, reverse=True)
    by_row_right = ops.einsum("brchd,btchd->brcht", cq, right_k)

    if causal:
        earlier = rows[None, :] < rows[:, None]  # [r, t]
        col = cc.masked(col, earlier[None, :, None, None, :])
        row = cc.masked(row, np.tri(s, dtype=bool)[None, None, :, None, :])
        # Other columns only (own column is direct), nothing above row 0.
        other = (cols[None, :] != cols[:, None])[None, None, :, None, :]
        by_col_down = cc.masked(
            by_col_down, other & (rows >= 1)[None, :, None, None, None])
        by_row_left = cc.masked(
            by_row_left, earlier[None, :, None, None, :] & first_col)
        by_row_right = cc.masked(
            by_row_right, earlier[None, :, None, None, :] & last_col)
        blocks = [col, row, by_col_down, by_row_left, by_row_right]
        values = [("col", cv), ("row", cv), ("by_col", down_v),
                  ("by_row", left_v), ("by_row", right_v)]
    else:
        up_k, up_v = _column_summaries(cq, ck, cv, reverse=True)
        by_col_up = ops.einsum("brchd,brthd->brcht", cq, up_k)
        by_col_down = cc.masked(
            by_col_down, (rows >= 1)[None, :, None, None, None])
        by_col_up = cc.masked(
            by_col_up, (rows <= num_rows - 2)[None, :, None, None, None])
        by_row_left = cc.masked(by_row_left, first_col)
        by_row_right = cc.masked(by_row_right, last_col)
        blocks = [row, col, by_col_down, by_col_up, by_row_left,
                  by_row_right]
        values = [("row", cv), ("col", cv), ("by_col", down_v),
                  ("by_col", up_v), ("by_row", left_v),
                  ("by_row", right_v)]

    patterns = {
        "col": "brcht,btchd->brchd",     # (t, c): same column
        "row": "brchk,brkhd->brchd",     # (r, k): same row
        "by_col": "brcht,brthd->brchd",  # summary stored at (r, t)
        "by_row": "brcht,btchd->brchd",  # summary stored at (t, c)
    }

    def merge(weights):
        out = None
        for w, (kind, val) in zip(weights, values):
            term = ops.einsum(patterns[kind], w, val)
            out = term if out is None else out + term
        return cc.unsegment(out)

    return blocks, merge


@register_kernel("combiner_mixture")
def combiner_mixture(query, key, value, causal=False, mask=None, scale=None,
                     segment_length=None):
    """Combiner-Mixture attention (see the module docstring).

    Options:
        scale: float > 0. Query scale (default 1/sqrt(D)).
        segment_length: int. Row length s; default: the divisor of L
            minimising s + L/s. Causal inputs are padded to whole rows.
    """
    name = "combiner_mixture"
    length = cc.check_inputs(name, query, key, mask)
    s, padded = cc.resolve_segment_length(name, length, segment_length,
                                          causal)

    def build(q, k, v):
        return mixture_parts(q, k, v, causal, s)

    return cc.run(query, key, value, scale, length, padded, build,
                  fold=True)
