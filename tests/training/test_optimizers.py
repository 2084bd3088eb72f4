"""AdamW with the papers' no-weight-decay rule, and `build_optimizer`.

Point-MAE `tools/builder.py` / MAE `util/misc.py`: no decay on 1-D params,
biases, and any param whose name contains "token"; decay on everything else.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from official.training import CosineWithWarmup
from official.training import Trainer
from official.training import build_optimizer
from official.training import exclude_from_weight_decay
from official.training import no_weight_decay_variables
from tests.training import testlib


class Tokens(keras.layers.Layer):
    """A class token (3-D: only the name excludes it) and a 3-D pos_embed."""

    def build(self, input_shape):
        self.cls_token = self.add_weight(shape=(1, 1, 6), name="cls_token")
        self.pos_embed = self.add_weight(shape=(1, 3, 6), name="pos_embed")

    def call(self, x):
        return x + self.pos_embed + self.cls_token


def model_with_every_kind_of_weight():
    ids = keras.Input((3,), dtype="int32")
    x = keras.layers.Embedding(10, 6, name="token_embedding")(ids)
    x = Tokens(name="extras")(x)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Dense(6, name="fc")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv1D(4, 2, name="conv")(x)
    return keras.Model(ids, x)


EXCLUDED = {
    "token_embedding/embeddings",  # 2-D, but "token" in its path
    "extras/cls_token",  # 3-D, "token" in its name
    "norm/gamma",
    "norm/beta",
    "bn/gamma",
    "bn/beta",  # norms (1-D)
    "fc/bias",
    "conv/bias",  # biases
}
DECAYED = {"extras/pos_embed", "fc/kernel", "conv/kernel"}


def paths(variables):
    return {v.path for v in variables}


def test_the_rule_selects_norms_biases_1d_and_tokens():
    model = model_with_every_kind_of_weight()
    excluded = paths(no_weight_decay_variables(model))
    assert excluded == EXCLUDED
    assert paths(model.trainable_variables) - excluded == DECAYED


def decay_after_one_zero_gradient_step(optimizer, model):
    """Zero gradients: Adam's step is 0, so only weight decay moves weights."""
    variables = model.trainable_variables
    before = {v.path: np.array(v) for v in variables}
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in variables])
    return {
        v.path: np.array(v) / np.where(before[v.path] == 0, 1, before[v.path])
        for v in variables
        if np.any(before[v.path] != 0)
    }, before


def test_adamw_skips_decay_for_excluded_and_applies_it_to_kernels():
    model = model_with_every_kind_of_weight()
    for v in model.trainable_variables:  # make every weight non-zero
        v.assign(np.full(v.shape, 0.5, "float32"))
    optimizer = build_optimizer(
        learning_rate=0.1, weight_decay=0.2, model=model
    )
    ratios, _ = decay_after_one_zero_gradient_step(optimizer, model)
    for path, ratio in ratios.items():
        expected = 1.0 if path in EXCLUDED else 1.0 - 0.1 * 0.2
        np.testing.assert_allclose(ratio, expected, rtol=1e-6, err_msg=path)


def test_the_check_catches_a_plain_adamw():
    """The broken variant: Keras' AdamW without the rule decays everything."""
    model = model_with_every_kind_of_weight()
    for v in model.trainable_variables:
        v.assign(np.full(v.shape, 0.5, "float32"))
    plain = keras.optimizers.AdamW(learning_rate=0.1, weight_decay=0.2)
    ratios, _ = decay_after_one_zero_gradient_step(plain, model)
    decayed_excluded = [p for p in EXCLUDED if not np.allclose(ratios[p], 1.0)]
    assert sorted(decayed_excluded) == sorted(EXCLUDED)


def test_trainer_applies_the_rule():
    """Through the Trainer: zero loss gradient, only decay changes weights."""

    def zero_loss(model, x, y, y_pred):
        return 0.0 * keras.ops.sum(y_pred)

    trainer = Trainer(
        testlib.TinyRegressor,
        dict(learning_rate=0.1, weight_decay=0.3),
        loss_fn=zero_loss,
        seed=0,
        verbose=0,
    )
    trainer._setup(next(iter(testlib.dataset())))
    for v in trainer.model.trainable_variables:
        v.assign(np.full(v.shape, 0.5, "float32"))
    trainer.fit(testlib.dataset(), steps=1)
    for v in trainer.model.trainable_variables:
        expected = 0.5 if v.path.endswith("bias") else 0.5 * (1 - 0.1 * 0.3)
        np.testing.assert_allclose(
            np.array(v), expected, rtol=1e-6, err_msg=v.path
        )


def test_build_optimizer_options():
    adamw = build_optimizer(
        learning_rate=1e-3,
        weight_decay=0.05,
        warmup_steps=5,
        total_steps=50,
        min_lr=1e-6,
        clip_norm=10.0,
        beta_2=0.95,
    )
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert isinstance(adamw._learning_rate, CosineWithWarmup)
    assert adamw._learning_rate.get_config()["min_learning_rate"] == 1e-6
    assert adamw.global_clipnorm == 10.0
    assert (
        adamw.beta_2 == 0.95
        and adamw.epsilon == 1e-8
        and adamw.weight_decay == 0.05
    )
    constant = build_optimizer(
        name="adam", learning_rate=3e-4, weight_decay=None
    )
    assert isinstance(constant, keras.optimizers.Adam)
    np.testing.assert_allclose(float(constant.learning_rate), 3e-4, rtol=1e-6)
    sgd = build_optimizer(
        name="sgd", learning_rate=0.1, momentum=0.8, weight_decay=None
    )
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.8
    scaled = build_optimizer(loss_scale=True)
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)
    assert isinstance(scaled.inner_optimizer, keras.optimizers.AdamW)
    with pytest.raises(ValueError, match="total_steps"):
        build_optimizer(warmup_steps=5)
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(name="lamb")


def test_rule_reaches_the_inner_optimizer_of_a_loss_scale_optimizer():
    model = model_with_every_kind_of_weight()
    scaled = build_optimizer(
        learning_rate=0.1, weight_decay=0.2, loss_scale=True
    )
    excluded = exclude_from_weight_decay(scaled, model)
    assert paths(excluded) == EXCLUDED
    inner = scaled.inner_optimizer
    fc_bias = next(v for v in model.trainable_variables if v.path == "fc/bias")
    fc_kernel = next(
        v for v in model.trainable_variables if v.path == "fc/kernel"
    )
    assert not inner._use_weight_decay(fc_bias) and inner._use_weight_decay(
        fc_kernel
    )
