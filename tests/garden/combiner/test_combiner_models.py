"""`combiner_lm` and `combiner_classifier` beyond the registry sweep
(tests/test_all_models.py builds, trains under XLA, reloads and exports the
tiny presets, whose four layers use the four kernels).

* The LM is causal end to end: new tokens at positions >= p leave the logits
  of positions < p unchanged, for each variant (a single-variant model per
  kernel, so a leak cannot hide behind another layer).
* The classifier's prediction depends on every position (bidirectional),
  for each variant.
* The Combiner-Axial "proj" summary gets the block input as its residual
  (changing the residual path changes the output) and its weights train.
* Loss conventions, validation errors.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import garden
from garden.combiner import CombinerAttention
from garden.combiner import lm_loss

VARIANTS = ("fixed", "logsparse", "axial", "mixture")


def small(name, variant, **overrides):
    keras.utils.set_random_seed(0)
    config = dict(num_layers=2, variant=variant, hidden_dim=16, num_heads=2)
    config.update(overrides)
    return garden.build(name, preset="tiny", **config)


def assert_lm_causal(model, variant):
    rng = np.random.default_rng(1)
    cuts = (1, 4, 7, 10)
    ids = np.repeat(rng.integers(0, 10, (1, 11)), 1 + len(cuts), axis=0)
    for row, p in enumerate(cuts, 1):  # 11 tokens: padded in the kernels
        ids[row, p:] = (ids[row, p:] + 1 + rng.integers(0, 8, 11 - p)) % 10
    out = model(ids.astype("int32")).numpy()
    for row, p in enumerate(cuts, 1):
        np.testing.assert_allclose(out[row, :p], out[0, :p], atol=1e-6,
                                   err_msg=f"{variant}: cut at {p}")
        assert np.abs(out[row, p:] - out[0, p:]).max() > 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_lm_is_causal(variant):
    assert_lm_causal(small("combiner_lm", variant), variant)


def test_detects_a_bidirectional_layer():
    """Mutation: one block run with causal=False leaks the future (the
    Logsparse kernel accepts any length when not causal)."""
    model = small("combiner_lm", "logsparse")
    model(np.zeros((1, 12), "int32"))
    model.transformer.blocks[1].causal = False
    with pytest.raises(AssertionError):
        assert_lm_causal(model, "logsparse")


@pytest.mark.parametrize("variant", VARIANTS)
def test_classifier_sees_every_position(variant):
    model = small("combiner_classifier", variant)
    rng = np.random.default_rng(2)
    ids = np.repeat(rng.integers(0, 17, (1, 16)), 17, axis=0).astype("int32")
    for p in range(16):  # row p + 1 differs from row 0 at position p only
        ids[p + 1, p] = (ids[p + 1, p] + 5) % 17
    out = model(ids).numpy()
    change = np.abs(out[1:] - out[:1]).max(axis=-1)
    assert np.all(change > 1e-6), change


def test_axial_summary_uses_the_block_input():
    model = small("combiner_lm", "axial", num_layers=1)
    ids = np.arange(12, dtype="int32")[None] % 10
    base = model(ids).numpy()
    attn = model.transformer.blocks[0].attn
    assert isinstance(attn, CombinerAttention)
    assert sorted(attn.kernel_params) == [
        "summary_dense_bias", "summary_dense_kernel", "summary_head_bias",
        "summary_head_kernel", "summary_norm_beta", "summary_norm_gamma"]
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x={"token_ids": ids}, y=None,
                                  y_pred=model(ids, training=True))
    grads = tape.gradient(loss, list(attn.kernel_params.values()))
    assert all(np.any(g.numpy() != 0) for g in grads)
    # Without the residual the same weights give other outputs.
    attn._needs_residual = lambda: False
    attn.kernel_options = dict(attn.kernel_options, row_summary="wsum")
    assert np.abs(model(ids).numpy() - base).max() > 1e-5


def test_dense_variant_is_the_full_attention_baseline():
    model = small("combiner_lm", "dense")
    assert model(np.zeros((1, 12), "int32")).shape == (1, 12, 10)
    assert model.transformer.blocks[0].attn.kernel == "dense"


def test_lm_loss_conventions():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, 5, 7)).astype("float32")
    ids = rng.integers(0, 7, (2, 5))
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    shifted = -np.mean(np.take_along_axis(lp[:, :-1], ids[:, 1:, None], -1))
    np.testing.assert_allclose(float(lm_loss(logits, ids)), shifted,
                               rtol=1e-5)
    targets = rng.integers(0, 7, (2, 5))
    w = np.zeros((2, 5), "float32")
    w[:, 3] = 1
    picked = -np.mean(np.take_along_axis(lp, targets[..., None], -1)[:, 3])
    np.testing.assert_allclose(float(lm_loss(logits, ids, targets, w)),
                               picked, rtol=1e-5)


def test_invalid_configurations_raise():
    with pytest.raises(ValueError, match="variant"):
        small("combiner_lm", "routing")
    with pytest.raises(ValueError, match="variants for"):
        small("combiner_lm", ["fixed", "axial", "mixture"])
    model = small("combiner_lm", "fixed")
    with pytest.raises(ValueError, match="<= 12"):
        model(np.zeros((1, 13), "int32"))
    clf = small("combiner_classifier", "mixture")
    with pytest.raises(ValueError, match="multiple of segment_length"):
        clf(np.zeros((1, 14), "int32"))
    clf_log = small("combiner_classifier", "logsparse")
    assert clf_log(np.zeros((1, 14), "int32")).shape == (1, 10)
