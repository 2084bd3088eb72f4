"""RepBN and PRepBN: the formulas, the LN -> RepBN schedule, its endpoints.

The schedule test computes the expected output of every training call from
an independent closed form (gamma = 1 in the warm-up, then r0 * (T - t) / T
clamped at 0) and the layer's own LN and a NumPy batch norm; replacing the
layer's schedule function by a wrong one (no clamp at 0, or one step late)
makes it fail (`test_detects_wrong_schedule`).

A one-off check against the official PyTorch `LinearNorm`/`RepBN`
(xinghaochen/SLAB prepbn.py, warm 2, step 5, 10 training calls, then eval)
agreed to 1.9e-6 (outputs) and 7e-7 (running statistics); it needs the
official code and PyTorch, so it is not part of this suite (see
garden/slab/README.md).
"""

import keras
import numpy as np
import pytest

import garden
from garden.slab import slab_norms
from garden.slab.slab_norms import ProgressiveRepBN
from garden.slab.slab_norms import RepBatchNorm
from garden.slab.slab_norms import prepbn_ln_weight

C = 6


def batch(seed, shape=(3, 5, C)):
    r = np.random.default_rng(seed)
    return (r.standard_normal(shape) * 2.0 + 0.5).astype("float32")


def randomise(repbn, seed=1):
    r = np.random.default_rng(seed)
    repbn.gamma.assign(r.standard_normal(C))
    repbn.beta.assign(r.standard_normal(C))
    repbn.alpha.assign(r.standard_normal(1))
    repbn.moving_mean.assign(r.standard_normal(C))
    repbn.moving_variance.assign(r.uniform(0.5, 2.0, C))


def np_repbn_train(layer, x):
    x = np.asarray(x, np.float64)
    mean, var = x.mean((0, 1)), x.var((0, 1))
    normed = (x - mean) / np.sqrt(var + layer.epsilon)
    return (normed * layer.gamma.numpy() + layer.beta.numpy()
            + layer.alpha.numpy() * x)


def np_layer_norm(layer, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps) * layer.gamma.numpy()
            + layer.beta.numpy())


def make_repbn():
    layer = RepBatchNorm()
    layer.build((None, None, C))
    randomise(layer)
    return layer


def test_repbn_training_uses_batch_statistics_and_updates_like_pytorch():
    layer = make_repbn()
    x = batch(2)
    mean0 = layer.moving_mean.numpy().copy()
    var0 = layer.moving_variance.numpy().copy()
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(out, np_repbn_train(layer, x), atol=1e-5)
    n = x.shape[0] * x.shape[1]
    xd = x.astype(np.float64)
    # PyTorch BatchNorm1d(momentum=0.1): running var uses the unbiased var.
    np.testing.assert_allclose(layer.moving_mean.numpy(),
                               0.9 * mean0 + 0.1 * xd.mean((0, 1)), atol=1e-6)
    np.testing.assert_allclose(
        layer.moving_variance.numpy(),
        0.9 * var0 + 0.1 * xd.var((0, 1)) * n / (n - 1), atol=1e-6)


def test_repbn_inference_is_the_affine_map_it_reports():
    layer = make_repbn()
    x = batch(3)
    a, b = layer.inference_affine()
    out = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(out, x * a + b, atol=1e-5)
    mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
    expected = ((x - mean) / np.sqrt(var + 1e-5) * layer.gamma.numpy()
                + layer.beta.numpy() + layer.alpha.numpy() * x)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def make_prepbn(total=10, warm=3, r0=1.0):
    layer = ProgressiveRepBN(total_steps=total, warm_steps=warm, r0=r0)
    layer.build((None, None, C))
    randomise(layer.repbn)
    r = np.random.default_rng(5)
    layer.layer_norm.gamma.assign(r.standard_normal(C))
    layer.layer_norm.beta.assign(r.standard_normal(C))
    return layer


def closed_form_gamma(step, total, warm, r0):
    """The paper's decay, written independently of the layer."""
    if step < warm:
        return 1.0
    return r0 * max(total - (step - warm), 0) / total


def test_schedule_closed_form():
    total, warm = 10, 3
    for r0 in (1.0, 0.5):
        for step in (0, 2, 3, 4, 8, 12, 13, 14, 50):
            expected = closed_form_gamma(step, total, warm, r0)
            assert prepbn_ln_weight(step, total, warm, r0) == pytest.approx(
                expected, abs=1e-12), (r0, step)
            tensor = prepbn_ln_weight(np.float32(step), total, warm, r0)
            assert float(tensor) == pytest.approx(expected, abs=1e-6)


def schedule_error(total=10, warm=3, r0=1.0, calls=18):
    """Max |layer output - closed-form mixture| over `calls` training calls."""
    layer = make_prepbn(total, warm, r0)
    worst = 0.0
    for step in range(calls):
        x = batch(100 + step)
        g = closed_form_gamma(step, total, warm, r0)
        expected = (g * np_layer_norm(layer.layer_norm, x)
                    + (1 - g) * np_repbn_train(layer.repbn, x))
        out = keras.ops.convert_to_numpy(layer(x, training=True))
        worst = max(worst, float(np.max(np.abs(out - expected))))
        assert float(layer.step.numpy()) == step + 1
    return worst


def test_ln_weight_decays_per_training_call():
    assert schedule_error() <= 1e-5
    assert schedule_error(r0=0.5, warm=0) <= 1e-5


@pytest.mark.parametrize("wrong", ["unclamped", "late"])
def test_detects_wrong_schedule(wrong, monkeypatch):
    def unclamped(step, total, warm=0, r0=1.0):
        s = keras.ops.cast(step, "float32")
        return keras.ops.where(s < warm, 1.0, r0 * (total - (s - warm))
                               / total)

    def late(step, total, warm=0, r0=1.0):
        return prepbn_ln_weight(keras.ops.cast(step, "float32") - 1.0,
                                total, warm, r0)

    monkeypatch.setattr(slab_norms, "prepbn_ln_weight",
                        {"unclamped": unclamped, "late": late}[wrong])
    assert schedule_error() > 1e-2


def test_endpoints_layer_norm_then_repbn_then_running_statistics():
    layer = make_prepbn(total=4, warm=0)
    x = batch(7)
    out = keras.ops.convert_to_numpy(layer(x, training=True))  # gamma = 1
    np.testing.assert_allclose(out, np_layer_norm(layer.layer_norm, x),
                               atol=1e-6)
    for _ in range(4):
        layer(batch(8), training=True)
    assert float(layer.ln_weight()) == 0.0
    out = keras.ops.convert_to_numpy(layer(x, training=True))  # gamma = 0
    np.testing.assert_allclose(out, np_repbn_train(layer.repbn, x),
                               atol=1e-5)
    step = float(layer.step.numpy())
    out = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(
        out, keras.ops.convert_to_numpy(layer.repbn(x, training=False)),
        atol=0)
    assert float(layer.step.numpy()) == step  # inference does not count


def test_warmup_keeps_running_statistics():
    layer = make_prepbn(total=10, warm=3)
    mean0 = layer.repbn.moving_mean.numpy().copy()
    for i in range(3):
        layer(batch(20 + i), training=True)
    np.testing.assert_array_equal(layer.repbn.moving_mean.numpy(), mean0)
    layer(batch(30), training=True)
    assert np.max(np.abs(layer.repbn.moving_mean.numpy() - mean0)) > 1e-3


def test_counters_survive_save_and_load(tmp_path):
    model = garden.build("slab", preset="tiny")
    x = garden.example_inputs("slab", preset="tiny", batch_size=4)
    for _ in range(3):
        model(x, training=True)
    steps = [float(n.step.numpy()) for n in slab_norms.prepbn_layers(model)]
    assert steps == [3.0] * 5  # 2 blocks x 2 norms + the final norm
    path = str(tmp_path / "slab.keras")
    model.save(path)
    loaded = garden.load(path)
    assert [float(n.step.numpy())
            for n in slab_norms.prepbn_layers(loaded)] == steps
    slab_norms.set_prepbn_step(loaded, 150)
    gammas = [float(n.ln_weight()) for n in slab_norms.prepbn_layers(loaded)]
    assert gammas == pytest.approx([0.5 * 50 / 200] * 5)
