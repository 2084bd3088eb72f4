"""`lowrank`: Linformer's length projections of keys and values.

Wang, Li, Khabsa, Fang & Ma 2020, "Linformer: Self-Attention with Linear
Complexity", arXiv 2006.04768, Sec. 4, Eq. 7 (garden spec
`efficient_attention_survey.md` Sec. 8.2):

    head = softmax(Q (E K)^T / sqrt(D)) (F V),   E, F: (k, n)

E and F project the n = S keys/values along the sequence to k rows, so the
scores are (T, k): O(T k D + S k D) time; queries are processed in blocks
of 512 (`keras.ops.map`), so the live scores are (B, H, 512, k). A shorter
input uses the first S columns of the (k, max_length) projections (as
fairseq's Linformer, `compress_k.weight[:, :S]`). Sharing (Sec. 4
"Additional Efficiency Techniques"): one E and one F shared across heads
by default (head-wise sharing, the fairseq default); `share_kv=True` uses
E for both (key-value sharing); `share_heads=False` gives each key/value
head its own (k, n) projections (Eq. 7's E_i, F_i). Layer-wise sharing
means passing the same tensors to several layers.

Masks: only key-padding masks (no variation along queries) can be applied
before the projection; masked keys and values are zeroed, so they do not
enter E K or F V. Linformer mixes all positions into every projected row,
so `causal=True` and masks that vary along queries raise ValueError (the
spec: "Linformer is rejected for causal use").

Weights: `MultiHeadAttention(kernel="lowrank")` owns E (`lowrank_e`) and F
(`lowrank_f`), trainable, created through register_kernel(params=...) with
n = the layer's key length (or option `max_length`), initialised as
fairseq's `xavier_uniform_(gain=1/sqrt(2))`. Functional calls pass
`e_proj=` / `f_proj=` or get fixed random projections with i.i.d.
N(0, 1/k) entries drawn from `seed` (the Johnson-Lindenstrauss projections
of the paper's Theorem 2).
"""

import math

import keras
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels._approx_utils import check_bool
from official.attention.kernels._approx_utils import check_int
from official.attention.kernels._approx_utils import key_padding
from official.attention.kernels._approx_utils import numpy_rng
from official.attention.kernels._approx_utils import pad_axis
from official.attention.kernels._approx_utils import static_len

NAME = "lowrank"
DEFAULT_K = 256
QUERY_BLOCK = 512  # queries per step of the score loop


def _proj_shape(k, n, num_kv_heads, share_heads):
    return (k, n) if share_heads else (num_kv_heads, k, n)


def lowrank_params(
    layer, query_shape, key_shape, num_heads, num_kv_heads, key_dim, options
):
    """Trainable E (and F unless share_kv): (k, n) or (H_kv, k, n)."""
    k = options.get("k", DEFAULT_K)
    check_int(NAME, "k", k)
    n = options.get("max_length") or key_shape[1]
    if n is None:
        raise ValueError(
            f"attention kernel '{NAME}': the projections need the maximum "
            "sequence length; the layer was built with an unknown key length "
            "— pass kernel_options={'max_length': n}."
        )
    check_int(NAME, "max_length", n)
    share_kv = options.get("share_kv", False)
    share_heads = options.get("share_heads", True)
    check_bool(NAME, "share_kv", share_kv)
    check_bool(NAME, "share_heads", share_heads)
    shape = _proj_shape(k, n, num_kv_heads, share_heads)

    def init():  # xavier_uniform_(gain = 1/sqrt(2)) on Linear(n, k)
        return keras.initializers.VarianceScaling(
            scale=0.5, mode="fan_avg", distribution="uniform"
        )

    out = {
        "e_proj": layer.add_weight(
            name="lowrank_e", shape=shape, initializer=init()
        )
    }
    if not share_kv:
        out["f_proj"] = layer.add_weight(
            name="lowrank_f", shape=shape, initializer=init()
        )
    return out


def random_projection(k, n, seed=0, num_kv_heads=None):
    """(k, n) (or (H_kv, k, n)) i.i.d. N(0, 1/k) float32 (Theorem 2)."""
    shape = (k, n) if num_kv_heads is None else (num_kv_heads, k, n)
    r = numpy_rng(seed).standard_normal(shape) / math.sqrt(k)
    return r.astype("float32")


def project(x, proj, s):
    """E x along the sequence: x (B, S, Hkv, D), proj (k, n) / (Hkv, k, n)
    with n >= S (first S columns used) -> (B, k, Hkv, D)."""
    p = ops.cast(proj, "float32")
    p = p[..., :s]
    if len(p.shape) == 2:
        return ops.einsum("ks,bshd->bkhd", p, x)
    return ops.einsum("hks,bshd->bkhd", p, x)


def _rows(qs, kp, vp):
    """softmax(Q (EK)^T) (FV) for queries (B, t, Hkv, G, D)."""
    weights = ops.softmax(ops.einsum("btkgd,bjkd->bkgtj", qs, kp), axis=-1)
    return ops.einsum("bkgtj,bjkd->btkgd", weights, vp)


def _blocked_rows(qs, kp, vp, t):
    """`_rows` over blocks of QUERY_BLOCK queries (`keras.ops.map`), so the
    live scores are (B, H, QUERY_BLOCK, k) whatever T is."""
    if not isinstance(t, int) or t <= QUERY_BLOCK:
        return _rows(qs, kp, vp)
    nb = -(-t // QUERY_BLOCK)
    qs = pad_axis(qs, 1, nb * QUERY_BLOCK - t)
    shape = list(ops.shape(qs))
    qs = ops.reshape(qs, [shape[0], nb, QUERY_BLOCK] + shape[2:])
    out = ops.map(
        lambda q: _rows(q, kp, vp), ops.transpose(qs, (1, 0, 2, 3, 4, 5))
    )
    out = ops.transpose(out, (1, 0, 2, 3, 4, 5))
    return ops.reshape(out, [shape[0], -1] + shape[2:])[:, :t]


@register_kernel(NAME, params=lowrank_params)
def lowrank_attention(
    query,
    key,
    value,
    causal=False,
    mask=None,
    scale=None,
    k=DEFAULT_K,
    e_proj=None,
    f_proj=None,
    share_kv=False,
    share_heads=True,
    max_length=None,
    seed=None,
):
    """Linformer attention softmax(Q (E K)^T * scale) (F V).

    Options:
        scale: float or None. Logit scale; None = 1 / sqrt(D).
        k: int. Projected length.
        e_proj, f_proj: (k, n) or (H_kv, k, n) tensors, n >= S; None =
            random N(0, 1/k) projections drawn from `seed` (f_proj = e_proj
            if share_kv).
        share_kv: bool. F = E.
        share_heads: bool. One (k, n) pair for all heads (else per head).
        max_length: int or None. n for the layer's projections (default:
            the key length at build time).
        seed: int or None. Seed of drawn projections (None = 0).
    """
    check_int(NAME, "k", k)
    check_bool(NAME, "share_kv", share_kv)
    check_bool(NAME, "share_heads", share_heads)
    if causal:
        raise ValueError(
            f"attention kernel '{NAME}': Linformer's projections mix every "
            "position into each projected key, so causal attention is not "
            "supported."
        )
    valid = key_padding(mask)
    if mask is not None and valid is None:
        raise ValueError(
            f"attention kernel '{NAME}': only key-padding masks (constant "
            "along queries, e.g. (B, 1, S)) can be applied before the length "
            f"projection; received a mask of shape {tuple(mask.shape)}."
        )
    b = ops.shape(query)[0]
    t, s = static_len(query, 1), static_len(key, 1)
    h, d, h_kv = query.shape[2], query.shape[3], key.shape[2]
    g = h // h_kv
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    if e_proj is None:
        n = max_length or s
        if not isinstance(n, int):
            raise ValueError(
                f"attention kernel '{NAME}': drawing projections needs a "
                "static key length or `max_length`."
            )
        e_proj = random_projection(
            k,
            n,
            0 if seed is None else seed,
            None if share_heads else h_kv,
        )
    if f_proj is None:
        f_proj = (
            e_proj
            if share_kv
            else random_projection(
                k,
                e_proj.shape[-1],
                (0 if seed is None else seed) + 1,
                None if share_heads else h_kv,
            )
        )
    for name, p in (("e_proj", e_proj), ("f_proj", f_proj)):
        rank_ok = len(p.shape) == (2 if share_heads else 3)
        heads_ok = share_heads or p.shape[0] == h_kv
        if not (rank_ok and heads_ok and p.shape[-2] == k):
            raise ValueError(
                f"attention kernel '{NAME}': {name} must have shape "
                f"{_proj_shape(k, 'n', h_kv, share_heads)}; received "
                f"{tuple(p.shape)}."
            )
        if isinstance(s, int) and p.shape[-1] is not None and (p.shape[-1] < s):
            raise ValueError(
                f"attention kernel '{NAME}': {name} covers {p.shape[-1]} "
                f"positions but the keys have S={s} (Linformer needs a "
                "fixed maximum length)."
            )
    kf = ops.cast(key, "float32")
    vf = ops.cast(value, "float32")
    if valid is not None:
        keep = ops.cast(valid, "float32")[:, :, None, None]
        kf, vf = kf * keep, vf * keep
    kp = project(kf, e_proj, s)  # (B, k, Hkv, D)
    vp = project(vf, f_proj, s)
    qs = ops.reshape(ops.cast(query, "float32") * scale, (b, t, h_kv, g, d))
    out = _blocked_rows(qs, kp, vp, t)
    if valid is not None:  # a batch item with no valid key returns 0
        any_key = ops.any(valid, axis=-1)[:, None, None, None, None]
        out = ops.where(any_key, out, 0.0)
    return ops.cast(ops.reshape(out, (b, t, h, d)), query.dtype)
