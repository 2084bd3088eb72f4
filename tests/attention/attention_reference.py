"""Float64 NumPy dense attention: the reference every exact kernel must equal.

softmax(Q K^T * scale, masked) V with query (B, T, H, D), key/value
(B, S, H_kv, D) (query head h uses key/value head h // (H / H_kv)), mask
broadcastable to (B, T, S) (True = may attend), causal aligned to the last T
keys (query i sees keys j <= i + S - T); a row with no allowed key is 0.
"""

import numpy as np


def dense_reference(query, key, value, causal=False, mask=None, scale=None):
    q = np.asarray(query, np.float64)
    k = np.asarray(key, np.float64)
    v = np.asarray(value, np.float64)
    b, t, h, d = q.shape
    s, h_kv = k.shape[1], k.shape[2]
    k = np.repeat(k, h // h_kv, axis=2)
    v = np.repeat(v, h // h_kv, axis=2)
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    scores = np.einsum("bthd,bshd->bhts", q, k) * scale
    allowed = np.ones((b, 1, t, s), bool)
    if causal:
        allowed &= np.arange(s)[None, :] <= np.arange(t)[:, None] + s - t
    if mask is not None:
        m = np.asarray(mask, bool)
        m = m if m.ndim == 3 else m[None]
        allowed = allowed & m[:, None]
    scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    p = np.exp(scores - row_max)
    denom = p.sum(axis=-1, keepdims=True)
    p = np.where(denom > 0, p / np.where(denom > 0, denom, 1.0), 0.0)
    return np.einsum("bhts,bshd->bthd", p, v)
