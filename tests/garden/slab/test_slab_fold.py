"""BatchNorm folding is exact and removes every norm.

After a few training steps (non-trivial running statistics, alpha != 1),
and again with randomised norm states, `fold_batchnorm(model)` gives the
same inference logits (<= 1e-5, float32) with no RepBN / PRepBN /
LayerNorm layer, no running-statistics weight and no rsqrt in its graph.
Mutation checks: folding without alpha, or without the shift b W, changes
the logits by far more than the tolerance (measured: see README).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import garden
from garden.slab import slab_fold
from garden.slab.slab_fold import fold_batchnorm
from garden.slab.slab_norms import ProgressiveRepBN
from garden.slab.slab_norms import RepBatchNorm
from garden.slab.slab_norms import prepbn_layers

FOLD_TOL = 1e-5
NORM_TYPES = (RepBatchNorm, ProgressiveRepBN, keras.layers.LayerNormalization,
              keras.layers.BatchNormalization)


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = garden.build("slab", preset="tiny")
    x = garden.example_inputs("slab", preset="tiny", batch_size=8, seed=3)
    y = garden.example_labels("slab", preset="tiny", batch_size=8, seed=3)
    optimizer = keras.optimizers.AdamW(learning_rate=3e-3)
    for step in range(6):  # eager steps (cheaper than tracing fit here)
        xb = {"images": x["images"][4 * (step % 2):4 * (step % 2) + 4]}
        yb = y[4 * (step % 2):4 * (step % 2) + 4]
        with tf.GradientTape() as tape:
            loss = model.compute_loss(y=yb, y_pred=model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
    return model, x


def randomised(seed=0):
    keras.utils.set_random_seed(seed)
    model = garden.build("slab", preset="tiny")
    x = garden.example_inputs("slab", preset="tiny", batch_size=4, seed=4)
    model(x, training=False)
    r = np.random.default_rng(seed)
    for layer in prepbn_layers(model):
        bn = layer.repbn
        c = bn.gamma.shape[0]
        bn.gamma.assign(r.standard_normal(c))
        bn.beta.assign(r.standard_normal(c))
        bn.alpha.assign(r.standard_normal(1))
        bn.moving_mean.assign(r.standard_normal(c))
        bn.moving_variance.assign(r.uniform(0.3, 3.0, c))
    return model, x


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def fold_error(model, x):
    folded = fold_batchnorm(model)
    return float(np.max(np.abs(logits(folded, x) - logits(model, x))))


def test_trained_state_is_non_trivial(trained):
    model, _ = trained
    for layer in prepbn_layers(model):
        assert abs(float(layer.repbn.alpha.numpy()[0]) - 1.0) > 1e-3
        assert np.max(np.abs(layer.repbn.moving_mean.numpy())) > 1e-3


def test_fold_is_exact_after_training(trained):
    model, x = trained
    assert fold_error(model, x) <= FOLD_TOL


def test_fold_is_exact_with_random_norm_states():
    for seed in (0, 1):
        model, x = randomised(seed)
        assert fold_error(model, x) <= FOLD_TOL


def _graph_op_types(model, x):
    fn = tf.function(lambda t: model(t, training=False))
    graph = fn.get_concrete_function(
        tf.TensorSpec(x["images"].shape, tf.float32)).graph
    return [op.type for op in graph.get_operations()]


def test_folded_model_has_no_norm_layers_weights_or_ops(trained):
    model, x = trained
    folded = fold_batchnorm(model)
    layers = folded._flatten_layers(include_self=False)
    assert not [type(layer).__name__ for layer in layers
                if isinstance(layer, NORM_TYPES)]
    names = [w.path for w in folded.weights]
    assert not [n for n in names if "moving" in n or "norm" in n], names
    before, after = _graph_op_types(model, x), _graph_op_types(folded, x)
    assert before.count("Rsqrt") == 5  # 2 blocks x 2 norms + final norm
    assert after.count("Rsqrt") == 0
    assert len(after) < len(before)
    # The source model is untouched and still has its norms.
    assert len(prepbn_layers(model)) == 5


def test_folded_model_round_trips_through_keras_file(trained, tmp_path):
    model, x = trained
    folded = fold_batchnorm(model)
    path = str(tmp_path / "folded.keras")
    folded.save(path)
    loaded = garden.load(path)
    assert loaded.norm_type == "folded"
    np.testing.assert_array_equal(logits(loaded, x), logits(folded, x))


_REAL_AFFINE = slab_fold.norm_affine


def _drop_alpha(layer):
    a, b = _REAL_AFFINE(layer)
    alpha = (layer.repbn if isinstance(layer, ProgressiveRepBN)
             else layer).alpha.numpy().astype(np.float64)
    return a - alpha, b


def _drop_shift(layer):
    a, b = _REAL_AFFINE(layer)
    return a, np.zeros_like(b)


@pytest.mark.parametrize("wrong", [_drop_alpha, _drop_shift],
                         ids=["no_alpha", "no_shift"])
def test_detects_wrong_fold(trained, wrong, monkeypatch):
    model, x = trained
    monkeypatch.setattr(slab_fold, "norm_affine", wrong)
    error = fold_error(model, x)
    assert error > 1e3 * FOLD_TOL, error


def test_only_batchnorm_models_fold():
    model = garden.slab.SLABDeiT(
        **{**garden.preset_info("slab", "tiny")["config"],
           "norm_type": "layernorm"})
    with pytest.raises(ValueError, match="layernorm"):
        fold_batchnorm(model)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_folded_model_exports(trained, fmt, tmp_path):
    from official import export

    model, x = trained
    folded = fold_batchnorm(model)
    path = str(tmp_path / f"folded.{fmt}")
    export.export_model(folded, path, x, format=fmt)
    diffs = export.check_parity(folded, path, x)
    assert max(diffs.values()) <= 1e-4, diffs
