"""int8 KV cache (spec 2.2, 2.3 check 4, 2.4 memory): quantizer bound,
exact 4x payload, cached decoding == full causal forward (float cache) and
within a measured bound (int8 cache)."""

import numpy as np
import pytest
from compression_fixtures import TinyCausalLM
from keras import ops

from official import compression as C

# The first decoding step attends over one key; Keras warns about a softmax
# over an axis of size 1, which is exactly right there.
pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using a softmax over axis -1")


def _kv(seed=0, shape=(2, 7, 4, 16)):
    rng = np.random.default_rng(seed)
    # Heads with magnitudes two decades apart.
    scale = np.logspace(-2, 0, shape[2])[None, None, :, None]
    return (rng.normal(size=shape) * scale).astype("float32")


def _violation(x, x_hat):
    """max(|x - x_hat| - s/2), s = max_d |x[b, t, h, :]| / 127 per
    (token, head); <= 0 when the bound holds."""
    s = np.abs(x).max(axis=-1, keepdims=True) / 127.0
    return float(np.max(np.abs(x - x_hat) - s / 2 - 1e-7))


def test_kv_quantizer_bound_range_and_zero_rows():
    x = _kv()
    x[0, 2, 1] = 0.0  # an all-zero (token, head) row
    q, s = C.quantize_kv(x)
    q, s = ops.convert_to_numpy(q), ops.convert_to_numpy(s)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    assert s.shape == (2, 7, 4, 1) and s.dtype == np.float32
    x_hat = ops.convert_to_numpy(C.dequantize_kv(q, s))
    assert _violation(x, x_hat) <= 0.0
    assert np.all(x_hat[0, 2, 1] == 0.0) and np.all(np.isfinite(x_hat))


def test_bound_catches_a_scale_shared_over_heads():
    """Broken variant: one scale per token for all heads."""
    x = _kv()
    s = np.abs(x).max(axis=(-2, -1), keepdims=True) / 127.0
    x_hat = np.round(x / s) * s
    assert _violation(x, x_hat) > 0.0


def test_int8_cache_bytes_are_exactly_a_quarter_plus_scales():
    k, v = _kv(1), _kv(2)
    cache = C.Int8KVCache([(k, v)])
    payload, scales = cache.nbytes()
    float_bytes = C.kv_cache.kv_bytes([(k, v)])
    assert payload * 4 == float_bytes
    # One float32 scale per (token, head) for k and for v: 4 / D per entry.
    assert scales == 2 * 4 * k.size // k.shape[-1]
    cache.append(0, k[:, :3], v[:, :3])
    assert cache.length == 7 + 3 and cache.nbytes()[0] == 2 * 2 * 10 * 4 * 16


@pytest.fixture(scope="module")
def lm():
    import keras

    keras.utils.set_random_seed(0)
    model = TinyCausalLM()
    ids = np.random.default_rng(0).integers(0, 32, size=(2, 24))
    model(ids)
    return model, ids


def test_float_cache_equals_full_causal_forward(lm):
    model, ids = lm
    full = ops.convert_to_numpy(model(ids))
    for prefill in (0, 5):
        got, cache = C.teacher_forced_logits(
            model.step, ids, model.empty_cache(2), prefill=prefill)
        assert np.max(np.abs(got - full)) < 1e-5
    assert cache.as_float()[0][0].shape == (2, 24, 4, 8)


def test_exactness_check_catches_a_broken_cache(lm):
    """Broken variant: the cache drops its oldest position every step."""
    model, ids = lm
    full = ops.convert_to_numpy(model(ids))

    def forgetful_step(token_ids, cache):
        cache = [(k[:, 1:], v[:, 1:]) if k.shape[1] > 3 else (k, v)
                 for k, v in cache]
        return model.step(token_ids, cache)

    got, _ = C.teacher_forced_logits(forgetful_step, ids,
                                     model.empty_cache(2))
    assert np.max(np.abs(got - full)) > 1e-3


def _int8_cache_error(model, ids):
    full = ops.convert_to_numpy(model(ids))
    got, cache = C.teacher_forced_logits(model.step, ids,
                                         model.empty_cache(2),
                                         kv_dtype="int8")
    assert isinstance(cache, C.Int8KVCache)
    diff = float(np.max(np.abs(got - full)))
    top1 = float(np.mean(np.argmax(got, -1) == np.argmax(full, -1)))
    return diff, top1


# Measured on this model (logits std 0.054): int8 max |diff| 4.3e-4,
# top-1 1.0; the 4-bit grid below: 8.4e-3, top-1 0.979. Threshold between.
MAX_LOGIT_DIFF = 2e-3


def test_int8_cache_logits_within_measured_bound(lm):
    diff, top1 = _int8_cache_error(*lm)
    assert 0.0 < diff < MAX_LOGIT_DIFF, diff  # > 0: the int8 path ran
    assert top1 >= 0.99, top1


def test_int8_bound_catches_a_coarser_cache(lm, monkeypatch):
    """Broken variant: a 15-level grid stored in the int8 cache."""
    exact = C.kv_cache.quantize_kv

    def coarse(x):
        q, s = exact(x)
        q = ops.round(ops.cast(q, "float32") * 7 / 127) * 127 / 7
        return ops.cast(ops.round(q), "int8"), s

    monkeypatch.setattr(C.kv_cache, "quantize_kv", coarse)
    diff, top1 = _int8_cache_error(*lm)
    assert diff > MAX_LOGIT_DIFF or top1 < 0.99


def test_greedy_decoding_with_int8_cache_matches_float(lm):
    model, ids = lm
    out32 = C.decode_greedy(model.step, ids[:, :8], 12, model.empty_cache(2))
    out8 = C.decode_greedy(model.step, ids[:, :8], 12, model.empty_cache(2),
                           kv_dtype="int8")
    assert out32["token_ids"].shape == (2, 20)
    np.testing.assert_array_equal(out8["token_ids"], out32["token_ids"])
    assert np.max(np.abs(out8["logits"] - out32["logits"])) < MAX_LOGIT_DIFF
    # The float path equals recomputing the full prefix for every token.
    ref = ids[:, :8]
    for _ in range(12):
        nxt = np.argmax(ops.convert_to_numpy(model(ref))[:, -1], -1)
        ref = np.concatenate([ref, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(out32["token_ids"], ref)
    with pytest.raises(ValueError, match="kv_dtype"):
        C.decode_greedy(model.step, ids[:, :8], 2, model.empty_cache(2),
                        kv_dtype="int4")
