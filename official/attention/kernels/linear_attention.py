"""Kernelised linear attention: `linear_elu` and `linear_relu` (SLAB's SLA).

Both kernels compute, per head, with a non-negative feature map phi,

    o_i = sum_j phi(q_i).phi(k_j) v_j / (sum_j phi(q_i).phi(k_j) + eps)

(Katharopoulos et al. 2020, "Transformers are RNNs", arXiv 2006.16236,
eq. 4-6; eps = 1e-6 as in their code and in SLAB's). Non-causal, it is
evaluated right to left, phi(Q) (phi(K)^T V), in O(B H (T + S) F D) time and
O(F D) state per head. Causal (eq. 8-10: S_i = sum_{j<=i} phi(k_j) v_j^T,
z_i = sum_{j<=i} phi(k_j)) uses chunked prefix sums: the sequence is cut into
blocks of `chunk_size`; inside a block the masked (C x C) products are formed
explicitly, across blocks an exclusive prefix sum of per-block states
(B, n, H, F, D) carries the prefix (a pairwise O(n) scan, see
`exclusive_cumsum`). Time O(L C F + L F D), memory O(L C + (L / C) F D):
linear in L, and no position ever reads a later key.

Masks: a key-padding mask (rank 3 with T-axis size 1, or rank 2 (1, S))
zeroes phi(k_j) of masked keys and keeps the linear cost. A mask that varies
along the query axis cannot be factorised; it falls back to the explicit
(B, H, T, S) weights phi(Q) phi(K)^T (O(T S), still the same formula - the
"(Q K^T) V" order SLAB's code also uses for short sequences). A row with no
allowed key returns 0 (numerator 0, denominator eps).

Everything is computed in float32 (SLAB disables autocast for this part) and
cast back to the query dtype. Grouped-query key/value heads are repeated.
"""

import math

import keras
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels.common import combined_mask
from official.attention.kernels.common import repeat_kv_heads

DEFAULT_EPS = 1e-6
DEFAULT_CHUNK = 64


# ----------------------------------------------------------------- the core


def key_padding_mask(mask):
    """(B or 1, S) boolean if `mask` only varies along keys, else None."""
    if mask is None:
        return None
    if len(mask.shape) == 2:
        return mask if mask.shape[0] == 1 else None
    return mask[:, 0] if mask.shape[1] == 1 else None


def linear_attention_core(phi_q, phi_k, value, causal=False, mask=None,
                          eps=DEFAULT_EPS, chunk_size=DEFAULT_CHUNK):
    """The shared formula on features.

    Args:
        phi_q: (B, T, H, F) non-negative query features, float32.
        phi_k: (B, S, H, F) key features (kv heads already repeated).
        value: (B, S, H, D).
        causal: bool. Query i sees keys j <= i + S - T.
        mask: boolean broadcastable to (B, T, S) or None.

    Returns:
        (B, T, H, D) float32.
    """
    keys = key_padding_mask(mask)
    if mask is not None and keys is None:
        t, s = ops.shape(phi_q)[1], ops.shape(phi_k)[1]
        return _explicit(phi_q, phi_k, value,
                         combined_mask(t, s, causal, mask), eps)
    if keys is not None:
        phi_k = phi_k * ops.cast(keys, phi_k.dtype)[:, :, None, None]
    if causal:
        return _causal_chunked(phi_q, phi_k, value, eps, chunk_size)
    return _global(phi_q, phi_k, value, eps)


def _global(phi_q, phi_k, value, eps):
    """phi(Q) (phi(K)^T V) / (phi(Q) phi(K)^T 1 + eps): O((T + S) F D)."""
    kv = ops.einsum("bshf,bshd->bhfd", phi_k, value)
    z = ops.sum(phi_k, axis=1)  # (B, H, F)
    num = ops.einsum("bthf,bhfd->bthd", phi_q, kv)
    den = ops.einsum("bthf,bhf->bth", phi_q, z)
    return num / (den[..., None] + eps)


def _explicit(phi_q, phi_k, value, allowed, eps):
    """Explicit weights phi(q_i).phi(k_j), masked: O(T S F)."""
    weights = ops.einsum("bthf,bshf->bhts", phi_q, phi_k)
    if allowed is not None:
        weights = ops.where(allowed, weights, 0.0)
    num = ops.einsum("bhts,bshd->bthd", weights, value)
    den = ops.transpose(ops.sum(weights, axis=-1), (0, 2, 1))  # (B, T, H)
    return num / (den[..., None] + eps)


def _pad_axis1(x, before, after):
    """Zero-pads axis 1 of a rank-4 tensor (static or traced amounts)."""
    if isinstance(before, int) and isinstance(after, int):
        if before == 0 and after == 0:
            return x
        return ops.pad(x, ((0, 0), (before, after), (0, 0), (0, 0)))
    shape = ops.shape(x)
    parts = []
    for n in (before, None, after):
        if n is None:
            parts.append(x)
        else:
            parts.append(ops.zeros((shape[0], n, shape[2], shape[3]), x.dtype))
    return ops.concatenate(parts, axis=1)


def block_causal_mask(c, dtype):
    """(C, C) lower-triangular ones: key j of a block is seen by query i >= j
    of the same block."""
    return ops.tril(ops.ones((c, c), dtype))


def exclusive_cumsum(x):
    """Sum over the blocks strictly before each block (axis 1).

    With a static block count n this is a pairwise (up-sweep / down-sweep)
    scan: log2(n) levels of halving size, O(n) additions in all. (XLA lowers
    `cumsum` to a blocked reduce-window doing O(n^1.5) additions, which made
    the causal kernel's time grow faster than L: 24 % of the 16k forward.)
    Unknown n falls back to `cumsum`.
    """
    n = x.shape[1]
    if n is None:
        total = ops.cumsum(x, axis=1)
        return ops.concatenate([ops.zeros_like(total[:, :1]), total[:, :-1]],
                               axis=1)
    return _pairwise_exclusive_scan(x, n)


def _pairwise_exclusive_scan(x, n):
    if n == 1:
        return ops.zeros_like(x)
    rest = tuple(x.shape[2:])
    if n % 2:
        pad = [(0, 0), (0, 1)] + [(0, 0)] * len(rest)
        return _pairwise_exclusive_scan(ops.pad(x, pad), n + 1)[:, :n]
    pairs = ops.reshape(x, (-1, n // 2, 2) + rest)
    first = pairs[:, :, 0]
    before = _pairwise_exclusive_scan(first + pairs[:, :, 1], n // 2)
    out = ops.stack([before, before + first], axis=2)
    return ops.reshape(out, (-1, n) + rest)


def _causal_chunked(phi_q, phi_k, value, eps, chunk_size):
    """Causal linear attention by block prefix sums (see module docstring)."""
    t, s = ops.shape(phi_q)[1], ops.shape(phi_k)[1]
    static = isinstance(t, int) and isinstance(s, int)
    if static:
        q_front, k_front = max(s - t, 0), max(t - s, 0)
        length = max(t, s)
        c = max(1, min(chunk_size, length))
        end = (-length) % c
    else:
        q_front = ops.maximum(s - t, 0)
        k_front = ops.maximum(t - s, 0)
        length = ops.maximum(t, s)
        c = chunk_size
        end = (c - length % c) % c
    # Align: after the front padding, query i sees keys j <= i (same length).
    q = _pad_axis1(phi_q, q_front, end)
    k = _pad_axis1(phi_k, k_front, end)
    v = _pad_axis1(value, k_front, end)
    shape_q, shape_v = ops.shape(q), ops.shape(v)
    b, h, f, d = shape_q[0], shape_q[2], shape_q[3], shape_v[3]
    q = ops.reshape(q, (b, -1, c, h, f))
    k = ops.reshape(k, (b, -1, c, h, f))
    v = ops.reshape(v, (b, -1, c, h, d))
    # Inside each block: explicit lower-triangular weights.
    w = ops.einsum("bnihf,bnjhf->bnhij", q, k) * block_causal_mask(c, q.dtype)
    num = ops.einsum("bnhij,bnjhd->bnihd", w, v)
    den = ops.transpose(ops.sum(w, axis=-1), (0, 1, 3, 2))  # (B, n, C, H)
    # Across blocks: exclusive prefix sums of the block states.
    kv = ops.einsum("bnjhf,bnjhd->bnhfd", k, v)
    z = ops.sum(k, axis=2)  # (B, n, H, F)
    kv_prev = exclusive_cumsum(kv)
    z_prev = exclusive_cumsum(z)
    num = num + ops.einsum("bnihf,bnhfd->bnihd", q, kv_prev)
    den = den + ops.einsum("bnihf,bnhf->bnih", q, z_prev)
    out = num / (den[..., None] + eps)
    out = ops.reshape(out, (b, -1, h, d))
    return out[:, q_front:q_front + t]


# ------------------------------------------------------------ shared checks


def _check_common(name, eps, chunk_size):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or (
            chunk_size < 1):
        raise ValueError(
            f"attention kernel '{name}': chunk_size must be a positive int; "
            f"received {chunk_size!r}.")
    if not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(
            f"attention kernel '{name}': eps must be a float >= 0; received "
            f"{eps!r}.")


def _features(query, key, value, feature_map):
    h = query.shape[2]
    phi_q = feature_map(ops.cast(query, "float32"))
    phi_k = feature_map(ops.cast(key, "float32"))
    phi_k, v = repeat_kv_heads(phi_k, ops.cast(value, "float32"), h)
    return phi_q, phi_k, v


# ---------------------------------------------------------------- linear_elu


def elu_feature_map(x):
    """phi(x) = elu(x) + 1 > 0 (Katharopoulos et al. 2020, eq. 7)."""
    return ops.elu(x) + 1.0


@register_kernel("linear_elu")
def linear_elu_attention(query, key, value, causal=False, mask=None,
                         eps=DEFAULT_EPS, chunk_size=DEFAULT_CHUNK):
    """Linear attention with phi = elu + 1 (Katharopoulos et al. 2020)."""
    _check_common("linear_elu", eps, chunk_size)
    phi_q, phi_k, v = _features(query, key, value, elu_feature_map)
    out = linear_attention_core(phi_q, phi_k, v, causal, mask, eps,
                                chunk_size)
    return ops.cast(out, query.dtype)


# --------------------------------------------------------------- linear_relu


def depthwise_value_conv(value, spatial_shape, dwc_kernel, dwc_bias):
    """SLAB's DWC(V): a depthwise k x k convolution of each head's values on
    the (h, w) token grid (raster order), weights shared across heads.

    value (B, S, H, D) with S = h * w; dwc_kernel (k, k, D, 1); dwc_bias
    (D,). Zero "same" padding, = PyTorch `Conv2d(D, D, k, groups=D,
    padding=k // 2)` on `rearrange(v, "b (w h) c -> b c w h")` (official
    `slab_deit.py` `Attention.forward`).
    """
    rows, cols = int(spatial_shape[0]), int(spatial_shape[1])
    shape = ops.shape(value)
    b, s, h, d = shape[0], shape[1], shape[2], shape[3]
    x = ops.transpose(value, (0, 2, 1, 3))  # (B, H, S, D)
    x = ops.reshape(x, (-1, rows, cols, d))
    x = ops.depthwise_conv(x, ops.cast(dwc_kernel, x.dtype), padding="same",
                           data_format="channels_last")
    x = x + ops.cast(dwc_bias, x.dtype)
    x = ops.reshape(x, (b, h, s, d))
    return ops.transpose(x, (0, 2, 1, 3))


def _sla_options(spatial_shape, dwc_kernel_size, key_position_embedding):
    if spatial_shape is not None:
        if len(spatial_shape) != 2 or not all(
                isinstance(n, int) and n > 0 for n in spatial_shape):
            raise ValueError(
                "attention kernel 'linear_relu': spatial_shape must be two "
                f"positive ints (rows, cols); received {spatial_shape!r}.")
    if (isinstance(dwc_kernel_size, bool) or not isinstance(
            dwc_kernel_size, int) or dwc_kernel_size < 1
            or dwc_kernel_size % 2 == 0):
        raise ValueError(
            "attention kernel 'linear_relu': dwc_kernel_size must be a "
            "positive odd int (PyTorch's padding k // 2 keeps the grid only "
            f"for odd k); received {dwc_kernel_size!r}.")
    if not isinstance(key_position_embedding, bool):
        raise ValueError(
            "attention kernel 'linear_relu': key_position_embedding must be "
            f"a bool; received {key_position_embedding!r}.")


def linear_relu_params(layer, query_shape, key_shape, num_heads,
                       num_kv_heads, key_dim, options):
    """SLA's own weights (register_kernel(params=...)).

    * `spatial_shape=(rows, cols)` -> `dwc_kernel` (k, k, D_head, 1) and
      `dwc_bias` (D_head,), k = `dwc_kernel_size` (5): one depthwise conv
      shared by all heads, PyTorch Conv2d default init U(+-1/sqrt(k*k)).
    * `key_position_embedding=True` -> `key_position` (S, H_kv, D_head),
      zeros (SLAB's `positional_encoding`, added to K before the ReLU).
    """
    spatial_shape = options.get("spatial_shape")
    k = options.get("dwc_kernel_size", 5)
    key_pos = options.get("key_position_embedding", False)
    _sla_options(None if spatial_shape is None else tuple(spatial_shape), k,
                 key_pos)
    out = {}
    if key_pos:
        if key_shape[1] is None:
            raise ValueError(
                "attention kernel 'linear_relu': key_position_embedding needs "
                "a static key length; received key shape "
                f"{tuple(key_shape)}.")
        out["key_position"] = layer.add_weight(
            name="key_position", shape=(key_shape[1], num_kv_heads, key_dim),
            initializer="zeros")
    if spatial_shape is not None:
        bound = 1.0 / math.sqrt(k * k)
        out["dwc_kernel"] = layer.add_weight(
            name="dwc_kernel", shape=(k, k, key_dim, 1),
            initializer=keras.initializers.RandomUniform(-bound, bound))
        out["dwc_bias"] = layer.add_weight(
            name="dwc_bias", shape=(key_dim,),
            initializer=keras.initializers.RandomUniform(-bound, bound))
    return out


@register_kernel("linear_relu", params=linear_relu_params)
def linear_relu_attention(query, key, value, causal=False, mask=None,
                          eps=DEFAULT_EPS, chunk_size=DEFAULT_CHUNK,
                          spatial_shape=None, dwc_kernel_size=5,
                          key_position_embedding=False, dwc_kernel=None,
                          dwc_bias=None, key_position=None):
    """SLAB's simplified linear attention (Guo et al. 2024, SLA):

        O = ReLU(Q) (ReLU(K + P)^T V) / (ReLU(Q) ReLU(K + P)^T 1 + eps)
            + DWC(V)

    P (`key_position`) and DWC (`dwc_kernel`, `dwc_bias`) are optional and
    created by `MultiHeadAttention` through `linear_relu_params` when
    `key_position_embedding=True` / `spatial_shape=(rows, cols)` are kernel
    options; functional callers pass the tensors themselves. The DWC term
    mixes neighbouring values on the image grid, so it needs T = S =
    rows * cols and is refused with `causal` or `mask` (it would let masked
    or later tokens into the output).
    """
    _check_common("linear_relu", eps, chunk_size)
    if spatial_shape is not None:
        spatial_shape = tuple(spatial_shape)
    _sla_options(spatial_shape, dwc_kernel_size, key_position_embedding)
    if key_position_embedding and key_position is None:
        raise ValueError(
            "attention kernel 'linear_relu': key_position_embedding=True needs "
            "the `key_position` (S, H_kv, D) tensor (MultiHeadAttention "
            "creates it).")
    use_dwc = dwc_kernel is not None or spatial_shape is not None
    if use_dwc:
        if dwc_kernel is None or dwc_bias is None or spatial_shape is None:
            raise ValueError(
                "attention kernel 'linear_relu': the depthwise-conv term needs "
                "spatial_shape, dwc_kernel and dwc_bias together "
                "(MultiHeadAttention creates the weights from spatial_shape).")
        if causal or mask is not None:
            raise ValueError(
                "attention kernel 'linear_relu': the depthwise-conv term "
                "(spatial_shape) cannot be combined with causal or mask: the "
                "convolution would mix masked or later tokens into the output.")
        t, s = query.shape[1], key.shape[1]
        cells = spatial_shape[0] * spatial_shape[1]
        if (t is not None and t != cells) or (s is not None and s != cells):
            raise ValueError(
                "attention kernel 'linear_relu': the depthwise-conv term needs "
                f"T = S = rows * cols = {cells}; received T={t}, S={s}.")
    if key_position is not None:
        key = ops.cast(key, "float32") + ops.cast(key_position, "float32")
    phi_q, phi_k, v = _features(query, key, value, ops.relu)
    out = linear_attention_core(phi_q, phi_k, v, causal, mask, eps,
                                chunk_size)
    if use_dwc:
        out = out + depthwise_value_conv(v, spatial_shape, dwc_kernel,
                                         dwc_bias)
    return ops.cast(out, query.dtype)
