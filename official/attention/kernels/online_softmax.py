"""The online-softmax state and its associative merge (flash / split-K core).

A softmax over keys can be computed piecewise. For one query row and a key
range R with scores s_j, the running state is (Lean Attention, arXiv
2405.10480, Sec. 4.1 of the garden spec `lean_attention.md`; FlashAttention-2,
arXiv 2307.08691, Alg. 1):

    m_R = max_j s_j,  l_R = sum_j exp(s_j - m_R),
    acc_R = sum_j exp(s_j - m_R) v_j

Two states merge with the rescaling operator

    m = max(m_1, m_2),  l = e^{m_1-m} l_1 + e^{m_2-m} l_2,  acc likewise,

which is associative and commutative with identity (-inf, 0, 0), so any
partition of the keys, merged in any order, gives softmax(s) V exactly.
`online_update` is the sequential form used by `chunked` (fold one key block
into the state); `merge_partials` is the normalised form used by `split_k`:
each partial is (o_i = acc_i / l_i, lse_i = m_i + log l_i) and

    lse = logsumexp_i lse_i,  o = sum_i exp(lse_i - lse) o_i.

All statistics are float32. Masked scores are set to the finite `NEG` rather
than -inf so that exp(m_old - m_new) never evaluates -inf - (-inf); masked
probabilities are zeroed explicitly, and a row with no allowed key ends with
l = 0 and output 0 (the `dense` kernel's convention).
"""

from keras import ops

NEG = -1e30


def rescale_factor(m_old, m_new):
    """exp(m_old - m_new): how much the old state shrinks (the flash term)."""
    return ops.exp(m_old - m_new)


def online_update(state, scores, allowed, value, einsum_pv):
    """Folds one key block into the running (m, l, acc) state.

    Args:
        state: (m (..., t), l (..., t), acc (..., t, d)), float32.
        scores: (..., t, s) float32 block of scaled logits.
        allowed: boolean broadcastable to `scores`, or None (all allowed).
        value: the value block, passed to `einsum_pv`.
        einsum_pv: fn(p (..., t, s), value) -> (..., t, d).
    """
    m, denom, acc = state
    if allowed is not None:
        scores = ops.where(allowed, scores, NEG)
    m_new = ops.maximum(m, ops.max(scores, axis=-1))
    alpha = rescale_factor(m, m_new)
    p = ops.exp(scores - m_new[..., None])
    if allowed is not None:
        p = ops.where(allowed, p, 0.0)
    denom_new = alpha * denom + ops.sum(p, axis=-1)
    acc_new = alpha[..., None] * acc + einsum_pv(p, value)
    return m_new, denom_new, acc_new


def finalize(m, denom, acc):
    """(m, l, acc) -> (o = acc / l (0 where l = 0), lse = m + log l).

    Where l = 0 (no allowed key) the returned lse is m (= NEG), a finite
    stand-in that keeps exp(s - lse) of masked scores at exp(0) (they are
    zeroed by the mask anyway) and never produces inf or NaN.
    """
    has_keys = denom > 0.0
    safe = ops.where(has_keys, denom, 1.0)
    o = ops.where(has_keys[..., None], acc / safe[..., None], 0.0)
    return o, m + ops.log(safe)


def partial_softmax(scores, allowed, value, einsum_pv):
    """One partial (o_i normalised, lse_i) of a key range, all at once.

    lse_i is -inf for a range with no allowed key (the merge identity).
    """
    if allowed is not None:
        scores = ops.where(allowed, scores, NEG)
    m = ops.max(scores, axis=-1)
    p = ops.exp(scores - m[..., None])
    if allowed is not None:
        p = ops.where(allowed, p, 0.0)
    denom = ops.sum(p, axis=-1)
    has_keys = denom > 0.0
    safe = ops.where(has_keys, denom, 1.0)
    o = einsum_pv(p, value) / safe[..., None]
    lse = ops.where(has_keys, m + ops.log(safe), float("-inf"))
    return o, lse


def merge_weights(lses, lse):
    """exp(lse_i - lse): the weight of each normalised partial."""
    return ops.exp(lses - lse)


def merge_partials(outputs, lses, axis=0):
    """Merges normalised partials (o_i, lse_i) stacked along `axis`.

    o = sum_i exp(lse_i - lse) o_i, lse = logsumexp_i lse_i (Lean Attention's
    associative softmax re-scaling). Partials with lse_i = -inf (empty key
    ranges) are the identity; if every partial is empty the result is
    (0, -inf).

    Args:
        outputs: (..., N, ..., D) float32, N partials along `axis`.
        lses: `outputs.shape[:-1]`, float32.
        axis: the partial axis (an axis of `lses`; negative counts from the
            end of `lses`).

    Returns:
        (o, lse) with the partial axis removed.
    """
    rank = len(lses.shape)
    axis = axis % rank
    m = ops.max(lses, axis=axis, keepdims=True)
    finite = ops.isfinite(m)
    m_safe = ops.where(finite, m, 0.0)
    w = merge_weights(lses, m_safe)  # exp(-inf) = 0 for empty partials
    total = ops.sum(w, axis=axis, keepdims=True)
    has_keys = total > 0.0
    safe_total = ops.where(has_keys, total, 1.0)
    o = (
        ops.sum(w[..., None] * outputs, axis=axis)
        / ops.squeeze(safe_total, axis=axis)[..., None]
    )
    lse = ops.where(has_keys, m_safe + ops.log(safe_total), float("-inf"))
    return o, ops.squeeze(lse, axis=axis)


def merge_pair(o1, lse1, o2, lse2):
    """Binary form of `merge_partials` (the associative operator itself)."""
    return merge_partials(
        ops.stack([o1, o2], axis=0), ops.stack([lse1, lse2], axis=0), axis=0
    )
