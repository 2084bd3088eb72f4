"""`ecoformer`: linear attention on learned kernelized binary hash codes.

EcoFormer (Liu et al. 2022, NeurIPS, https://arxiv.org/abs/2209.09004,
sec. 4.3 "linear attention with binary codes"); official code
ziplab/EcoFormer@a277f9e `pvt/performer.py` (`EcoformerFastAttention`,
`linear_attention_bias`) and `pvt/hashing/ksh.py` (`KernelSH.forward`).

Per head, queries and keys are l2-normalised, z = x / ||x||, and hashed
with b-bit kernelized hash functions H(z) = sign(A phi(z)) in {-1, +1}^b
(`official.quantization.kernelized_hash`). For ±1 codes
H_i.H_j = b - 2 d_H(H_i, H_j) (Hamming distance), so the similarity

    s_ij = H(q_i).H(k_j) + c,   c = b + 1 (official `args.nbits + 1`)

is an affine function of the Hamming affinity and is >= 1. By
associativity the kernel smoother costs O(N b D) time and O(b D) state per
head, and H_i^T(.) needs only additions and subtractions:

    normalize="kernel_smoother" (default):
        out_i = [H_i^T (sum_j H_j v_j^T) + c sum_j v_j]
                / [H_i . (sum_j H_j) + c N_i]  (= sum_j s_ij v_j / sum_j s_ij)
    normalize="official" (the released `linear_attention_bias`):
        out_i = [H_i^T (sum_j H_j v_j^T) + c v_i] / [H_i . (sum_j H_j) + c N]

The official numerator's bias term is c·v_i (the query's own value) rather
than c·sum_j v_j, so its weights do not sum to one; it is kept to reproduce
the released code and checkpoints and is defined for unmasked, non-causal
self-attention only (T == S).

Hash weights: `register_kernel(params=ecoformer_params)` gives every
`MultiHeadAttention(kernel="ecoformer")` three non-trainable variables per
layer — `hash_weights` A (H, b, m), `hash_anchors` (H, m, D),
`hash_feature_mean` (H, m) — which the KSH fit (eager, outside `call`)
assigns; the official code keeps them as buffers, updated by the KSH
optimisation and never by the task gradient. Options `num_bits` (16) and
`num_anchors` (25) size them.

The kernel smoother is the shared linear-attention core
(`kernels/linear_attention.py`, `linear_attention_core`) on augmented codes,
since s_ij = [H_i, sqrt(c)].[H_j, sqrt(c)]: it brings key-padding masks
(masked keys also leave the keys' RBF sigma), `causal=True` (block prefix
sums; with T < S query i sees keys j <= i + S - T) and, for masks that vary
along queries, the explicit O(T S) fallback. A row without allowed keys
returns 0. Grouped-query key/value heads are repeated before hashing, so
query head h hashes its keys with its own functions.
"""

import math

import keras
from keras import ops

from official.attention.interface import register_kernel
from official.attention.kernels.common import repeat_kv_heads
from official.attention.kernels.linear_attention import DEFAULT_CHUNK
from official.attention.kernels.linear_attention import key_padding_mask
from official.attention.kernels.linear_attention import linear_attention_core
from official.quantization.kernelized_hash import kernelized_hash_codes

NORMALIZE = ("kernel_smoother", "official")
DEFAULT_NUM_BITS = 16
DEFAULT_NUM_ANCHORS = 25
_EPS = 1e-6


def ecoformer_params(layer, query_shape, key_shape, num_heads, num_kv_heads,
                     key_dim, options):
    """Non-trainable hash-function variables of one attention layer.

    Initial values: A ~ N(0, 1) (official `nn.init.normal_`); anchors ~
    N(0, 1/D) (the official buffer starts at zeros, which hashes every token
    to the same code until the first fit; random anchors make the unfitted
    layer a random kernelized hash instead); mean 0.
    """
    bits = int(options.get("num_bits", DEFAULT_NUM_BITS))
    anchors = int(options.get("num_anchors", DEFAULT_NUM_ANCHORS))
    if bits < 1 or anchors < 1:
        raise ValueError(
            "ecoformer: num_bits and num_anchors must be >= 1; got "
            f"{bits}, {anchors}.")
    return {
        "hash_weights": layer.add_weight(
            shape=(num_heads, bits, anchors),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False, name="hash_weights"),
        "anchors": layer.add_weight(
            shape=(num_heads, anchors, key_dim),
            initializer=keras.initializers.RandomNormal(
                stddev=1.0 / math.sqrt(key_dim)),
            trainable=False, name="hash_anchors"),
        "feature_mean": layer.add_weight(
            shape=(num_heads, anchors), initializer="zeros",
            trainable=False, name="hash_feature_mean"),
    }


def l2_normalize_heads(x):
    """x / ||x||_2 over the last axis, float32 (official: no epsilon)."""
    x = ops.cast(x, "float32")
    return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=-1, keepdims=True),
                                    1e-24))


def hash_heads(x, hash_weights, anchors, feature_mean, token_mask=None):
    """(B, N, H, D) queries or keys -> (B, N, H, b) codes in {-1, +1}."""
    z = l2_normalize_heads(ops.transpose(x, (0, 2, 1, 3)))
    codes = kernelized_hash_codes(z, anchors, hash_weights, feature_mean,
                                  token_mask=token_mask)
    return ops.transpose(codes, (0, 2, 1, 3))


def _check(query, hash_weights, anchors, num_bits, num_anchors, normalize,
           similarity_offset, causal, mask, key):
    if normalize not in NORMALIZE:
        raise ValueError(f"ecoformer: normalize must be one of {NORMALIZE}; "
                         f"got {normalize!r}.")
    if hash_weights is None or anchors is None:
        raise ValueError(
            "ecoformer: needs `hash_weights` (H, b, m) and `anchors` "
            "(H, m, D) (MultiHeadAttention(kernel='ecoformer') creates them; "
            "fit them with official.quantization.kernelized_hash."
            "fit_kernelized_hash).")
    h, d = query.shape[2], query.shape[3]
    bits, m = hash_weights.shape[1], hash_weights.shape[2]
    if (hash_weights.shape[0] != h or tuple(anchors.shape) != (h, m, d)
            or (num_bits is not None and num_bits != bits)
            or (num_anchors is not None and num_anchors != m)):
        raise ValueError(
            f"ecoformer: with {h} heads of size {d}, expected hash_weights "
            f"(H, b, m) = ({h}, {num_bits or 'b'}, {num_anchors or 'm'}) and "
            f"anchors (H, m, D); received {tuple(hash_weights.shape)} and "
            f"{tuple(anchors.shape)}.")
    if similarity_offset is not None and not similarity_offset > bits:
        raise ValueError(
            f"ecoformer: similarity_offset c must be > b = {bits} so that "
            f"every similarity H_i.H_j + c is positive; got "
            f"{similarity_offset}.")
    t, s = query.shape[1], key.shape[1]
    if normalize == "official" and (causal or mask is not None or (
            t is not None and s is not None and t != s)):
        raise ValueError(
            "ecoformer: normalize='official' (the c*v_i bias of the released "
            "code) is defined for unmasked, non-causal self-attention "
            f"(T == S) only; got causal={causal}, mask="
            f"{None if mask is None else tuple(mask.shape)}, T={t}, S={s}.")
    return bits


@register_kernel("ecoformer", params=ecoformer_params)
def ecoformer_attention(query, key, value, causal=False, mask=None,
                        hash_weights=None, anchors=None, feature_mean=None,
                        num_bits=None, num_anchors=None,
                        normalize="kernel_smoother", similarity_offset=None,
                        chunk_size=DEFAULT_CHUNK):
    """Hashed linear attention; see the module docstring.

    Options: `hash_weights` (H, b, m), `anchors` (H, m, D), `feature_mean`
    (H, m) or None (a layer passes its variables); `num_bits`,
    `num_anchors` (only checked against them; they size the layer's
    variables); `normalize`; `similarity_offset` c (None = b + 1, must be
    > b); `chunk_size` of the causal prefix sums.
    """
    bits = _check(query, hash_weights, anchors, num_bits, num_anchors,
                  normalize, similarity_offset, causal, mask, key)
    c = float(bits + 1 if similarity_offset is None else similarity_offset)
    h = query.shape[2]
    key, value = repeat_kv_heads(key, ops.cast(value, "float32"), h)
    keys = key_padding_mask(mask)
    if keys is not None:
        keys = ops.broadcast_to(keys, (ops.shape(key)[0], ops.shape(key)[1]))
    hq = hash_heads(query, hash_weights, anchors, feature_mean)
    if key is query and keys is None:
        hk = hq  # shared Q == K (EcoFormer's `to_qk`): hash once
    else:
        hk = hash_heads(key, hash_weights, anchors, feature_mean, keys)
    if normalize == "official":
        out = _official_bias_form(hq, hk, value, c)
    else:
        root = math.sqrt(c)
        out = linear_attention_core(
            _append_constant(hq, root), _append_constant(hk, root), value,
            causal=causal, mask=mask, eps=_EPS, chunk_size=chunk_size)
    return ops.cast(out, query.dtype)


def _append_constant(codes, value):
    """(..., b) -> (..., b + 1) with `value` in the extra slot."""
    return ops.concatenate(
        [codes, ops.full_like(codes[..., :1], value)], axis=-1)


def _official_bias_form(hq, hk, v, c):
    """Released `linear_attention_bias`: [H_i^T (sum_j H_j v_j^T) + c v_i]
    / [H_i . sum_j H_j + N c] (float32, as its autocast-disabled part)."""
    n = ops.cast(ops.shape(hk)[1], "float32")
    kv = ops.einsum("bshk,bshd->bhkd", hk, v)
    ksum = ops.sum(hk, axis=1)  # (B, H, b)
    num = ops.einsum("bthk,bhkd->bthd", hq, kv) + c * v
    den = ops.einsum("bthk,bhk->bth", hq, ksum) + n * c
    return num / den[..., None]
