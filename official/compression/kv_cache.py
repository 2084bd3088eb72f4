"""int8 KV cache: quantize on write, dequantize on read (survey T4; spec
2.2 "int8 KV cache", 2.3 check 4).

For every cached token t and head h (keys and values separately):
s[t, h] = max_d |k[t, h, d]| / 127, q = round(k / s) in [-127, 127] stored
as int8, s stored as float32; the attention reads k_hat = q * s. Per
element |k - k_hat| <= s[t, h] / 2 (round to nearest), and an all-zero row
gets s = 0, q = 0, k_hat = 0 exactly (no division by zero). The payload is
1 byte per element instead of 4 (float32): exactly 4x smaller, plus one
float32 scale per (token, head), i.e. 4 / D_head extra bytes per element.

Decoding itself is the model's: the helpers drive any
`step_fn(token_ids, cache) -> (logits, new_cache)` that follows
`official.attention.MultiHeadAttention`'s cache convention (a list with one
`(k, v)` pair per layer, each (B, S, H_kv, D_head), the new positions
appended at the end), e.g. the `lean_attention` decoder's
`forward_with_cache`. With `kv_dtype="int8"` the cache is held as int8 +
scales between steps: `int8_step(step_fn)` dequantizes the past, runs the
step, and quantizes the positions it appended (within one step the new
token attends to its own key/value in float, as it was just computed). It
is written in `keras.ops`, so a caller can compile it once for every cache
length; dequantization is not fused into the attention kernel, so the int8
cache saves memory, not time.
"""

import numpy as np
from keras import ops

QMAX = 127.0


def quantize_kv(x):
    """(B, S, H, D) float -> (int8 q, float32 scale (B, S, H, 1))."""
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    if any(d == 0 for d in x.shape):  # an empty cache (TF's max refuses it)
        shape = tuple(x.shape)
        return (ops.zeros(shape, "int8"),
                ops.zeros(shape[:-1] + (1,), "float32"))
    scale = ops.max(ops.abs(x), axis=-1, keepdims=True) / QMAX
    safe = ops.where(scale > 0, scale, ops.ones_like(scale))
    q = ops.clip(ops.round(x / safe), -QMAX, QMAX)
    return ops.cast(q, "int8"), scale


def dequantize_kv(q, scale, dtype="float32"):
    """k_hat = q * s."""
    return ops.cast(ops.cast(q, "float32") * scale, dtype)


def kv_bytes(cache):
    """Bytes of a float cache: a list of (k, v) arrays."""
    total = 0
    for k, v in cache:
        for a in (k, v):
            a = ops.convert_to_numpy(a)
            total += a.size * a.dtype.itemsize
    return total


class Int8KVCache:
    """Per-layer int8 keys/values with per-(token, head) float32 scales.

    Args:
        float_cache: list of (k, v) per layer, each (B, S, H_kv, D); may
            have S = 0 (an empty cache).
        dtype: dtype of the dequantized tensors `read` returns.
    """

    def __init__(self, float_cache, dtype="float32"):
        self.dtype = dtype
        self.layers = []
        for k, v in float_cache:
            qk, sk = quantize_kv(k)
            qv, sv = quantize_kv(v)
            self.layers.append([qk, sk, qv, sv])

    @property
    def length(self):
        return int(self.layers[0][0].shape[1])

    def append(self, index, k_new, v_new):
        """Quantizes (B, T, H, D) new keys/values onto layer `index`."""
        entry = self.layers[index]
        parts = quantize_kv(k_new) + quantize_kv(v_new)
        for j, new in enumerate(parts):
            entry[j] = ops.concatenate([entry[j], new], axis=1)

    def read(self, index):
        """Dequantized (k, v) of layer `index`."""
        qk, sk, qv, sv = self.layers[index]
        return (dequantize_kv(qk, sk, self.dtype),
                dequantize_kv(qv, sv, self.dtype))

    def as_float(self):
        return [self.read(i) for i in range(len(self.layers))]

    def advance(self, int8_step_fn, token_ids):
        """One step of `int8_step(step_fn)`; returns the logits."""
        logits, packed = int8_step_fn(token_ids,
                                      [tuple(e) for e in self.layers])
        self.layers = [list(e) for e in packed]
        return logits

    def nbytes(self):
        """(payload bytes, scale bytes)."""
        payload = scales = 0
        for qk, sk, qv, sv in self.layers:
            payload += 2 * int(np.prod(qk.shape))  # int8: 1 byte
            scales += 4 * (int(np.prod(sk.shape)) + int(np.prod(sv.shape)))
        return payload, scales


class _FloatCache:
    """The float cache behind the same interface (the reference path)."""

    def __init__(self, float_cache):
        self.cache = list(float_cache)

    def as_float(self):
        return self.cache

    def advance(self, step_fn, token_ids):
        logits, self.cache = step_fn(token_ids, self.cache)
        return logits


def int8_step(step_fn):
    """Wraps a float-cache step into one on packed int8 caches.

    Returns `fn(token_ids, packed) -> (logits, packed)`, `packed` a list of
    `(q_k, s_k, q_v, s_v)` per layer: the past is dequantized, `step_fn`
    runs, and the positions it appended are quantized and concatenated.
    Pure `keras.ops`, so callers may compile it (e.g. as a graph with a
    `None` cache length; `tests/compression/compression_table.py` does).
    """

    def fn(token_ids, packed):
        past = [(dequantize_kv(qk, sk), dequantize_kv(qv, sv))
                for qk, sk, qv, sv in packed]
        logits, new = step_fn(token_ids, past)
        out = []
        for (qk, sk, qv, sv), (k, v) in zip(packed, new):
            start = ops.shape(qk)[1]
            nk, nsk = quantize_kv(k[:, start:])
            nv, nsv = quantize_kv(v[:, start:])
            out.append((ops.concatenate([qk, nk], axis=1),
                        ops.concatenate([sk, nsk], axis=1),
                        ops.concatenate([qv, nv], axis=1),
                        ops.concatenate([sv, nsv], axis=1)))
        return logits, out

    return fn


def make_cache(empty_cache, kv_dtype, step_fn, int8_step_fn=None):
    """(cache object, its step function) for `kv_dtype`; the cache's
    `advance(step, token_ids)` runs one step and returns the logits."""
    if kv_dtype == "int8":
        return Int8KVCache(empty_cache), int8_step_fn or int8_step(step_fn)
    if kv_dtype in (None, "float32", "float"):
        return _FloatCache(empty_cache), step_fn
    raise ValueError(f"kv_dtype must be 'float32' or 'int8'; got "
                     f"'{kv_dtype}'.")


def teacher_forced_logits(step_fn, token_ids, empty_cache, kv_dtype="float32",
                          prefill=0, int8_step_fn=None):
    """Logits of every position, computed one token at a time via the cache.

    The first `prefill` tokens go through one step together; every later
    token is its own step. With a correct cache the result equals the full
    causal forward (spec 2.3 check 4). `int8_step_fn`: optional compiled
    `int8_step(step_fn)`.

    Returns:
        (B, T, V) NumPy logits, and the final cache object (`Int8KVCache`
        for kv_dtype "int8").
    """
    ids = np.asarray(token_ids).astype("int32")
    cache, step = make_cache(empty_cache, kv_dtype, step_fn, int8_step_fn)
    outputs = []
    start = 0
    if prefill:
        outputs.append(ops.convert_to_numpy(
            cache.advance(step, ids[:, :prefill])))
        start = prefill
    for t in range(start, ids.shape[1]):
        outputs.append(ops.convert_to_numpy(
            cache.advance(step, ids[:, t:t + 1])))
    return np.concatenate(outputs, axis=1), cache


def decode_greedy(step_fn, prompt_ids, max_new_tokens, empty_cache,
                  kv_dtype="float32", int8_step_fn=None):
    """Greedy decoding with a float32 or int8 KV cache.

    Returns:
        dict `token_ids` (B, T + N) int32, `logits` (B, N, V) (the logits
        that chose each new token) and `cache` (the cache object).
    """
    ids = np.asarray(prompt_ids).astype("int32")
    cache, step = make_cache(empty_cache, kv_dtype, step_fn, int8_step_fn)
    logits = cache.advance(step, ids)
    steps = []
    for i in range(max_new_tokens):
        last = ops.convert_to_numpy(logits[:, -1])
        steps.append(last)
        nxt = np.argmax(last, axis=-1).astype("int32")[:, None]
        ids = np.concatenate([ids, nxt], axis=1)
        if i + 1 < max_new_tokens:
            logits = cache.advance(step, nxt)
    return {"token_ids": ids, "logits": np.stack(steps, axis=1),
            "cache": cache}
