"""Cached `split_k` decoding equals full recomputation (garden spec
`lean_attention.md` Sec. 4.2, check 4), for any split count; deliberately
broken caches fail the same comparison."""

import keras
import numpy as np
import pytest
from keras import ops

import garden
from garden.lean_attention import LeanAttentionDecoder

PROMPT, NEW = 9, 24
LOGIT_TOL = 1e-5
# Measured: exact decoding differs from recomputation by 1.8e-7 to 2.4e-7
# (every split count, eager and graph); the two broken caches below by 0.36
# and 0.37 (and their greedy tokens diverge).
BROKEN_MIN_ERR = 1e-2


def _tiny(**overrides):
    keras.utils.set_random_seed(0)
    model = garden.build("lean_attention", preset="tiny", **overrides)
    model.build()
    return model


@pytest.fixture(scope="module")
def model():
    return _tiny()


@pytest.fixture(scope="module")
def prompt():
    ids = garden.example_inputs("lean_attention", batch_size=2, seed=3)
    return ids["token_ids"][:, :PROMPT]


def _copy_weights(dst, src):
    dst.build()
    dst.set_weights(src.get_weights())
    return dst


def decode_error(model, prompt, compiled=True, prefill_chunk=None):
    """(tokens identical?, max |logit diff|) of cached vs recomputed."""
    cached = model.generate(prompt, NEW, use_cache=True, compiled=compiled,
                            prefill_chunk=prefill_chunk)
    full = model.generate(prompt, NEW, use_cache=False, compiled=compiled)
    same = bool(np.array_equal(cached["token_ids"], full["token_ids"]))
    return same, float(np.abs(cached["logits"] - full["logits"]).max())


@pytest.mark.parametrize("compiled", [True, False])
def test_cached_greedy_decode_equals_recomputation(model, prompt, compiled):
    same, err = decode_error(model, prompt, compiled=compiled)
    assert same
    assert err < LOGIT_TOL, err


def test_chunked_prefill_equals_one_shot(model, prompt):
    same, err = decode_error(model, prompt, prefill_chunk=4)
    assert same and err < LOGIT_TOL, err


def test_split_count_does_not_change_results(model, prompt):
    """Any partition of the cache merges to the same softmax (Sec. 4.1)."""
    ref = _copy_weights(_tiny(attention_kernel="dense"), model)
    want = ref.generate(prompt, NEW, use_cache=False)
    for splits in (1, 3, 7, 64):
        other = _copy_weights(_tiny(num_splits=splits), model)
        got = other.generate(prompt, NEW, use_cache=True)
        np.testing.assert_array_equal(got["token_ids"], want["token_ids"])
        err = np.abs(got["logits"] - want["logits"]).max()
        assert err < LOGIT_TOL, (splits, err)


def test_generated_tokens_are_not_trivial(model, prompt):
    """The equality above is not two constant outputs agreeing."""
    out = model.generate(prompt, NEW)["token_ids"][:, PROMPT:]
    assert len(np.unique(out)) > 3


def test_cache_grows_by_one_position_per_step(model, prompt):
    _, cache = model.prefill(prompt)
    assert len(cache) == model.num_layers
    step = model._step_fn(True)
    _, cache = step(prompt[:, -1:], cache)
    for k, v in cache:
        assert tuple(k.shape) == (2, PROMPT + 1, 4, 8) == tuple(v.shape)


def test_context_beyond_max_length_raises(model, prompt):
    with pytest.raises(ValueError, match="max_length"):
        model.generate(prompt, 64)


class OffByOnePositions(LeanAttentionDecoder):
    """Broken: tokens after a cache reuse the previous position id."""

    def positions(self, start, length):
        return super().positions(ops.maximum(start - 1, 0), length)


class StaleCache(LeanAttentionDecoder):
    """Broken: the cache is never extended past the prompt."""

    def forward_with_cache(self, token_ids, cache):
        logits, new_cache = super().forward_with_cache(token_ids, cache)
        if self.cache_length(cache) == 0:
            return logits, new_cache
        return logits, cache


@pytest.mark.parametrize("broken_cls", [OffByOnePositions, StaleCache])
def test_broken_cache_fails_the_comparison(model, prompt, broken_cls):
    broken = broken_cls(**model.get_config())
    _copy_weights(broken, model)
    same, err = decode_error(broken, prompt, compiled=False)
    assert not same or err > BROKEN_MIN_ERR
    assert err > BROKEN_MIN_ERR, err
