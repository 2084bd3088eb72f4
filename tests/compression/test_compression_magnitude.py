"""Magnitude pruning (spec 2.2, 2.3 check 5): exact sparsity with ties,
the polynomial schedule in closed form, zeros that stay zero in `fit`."""

import keras
import numpy as np
import pytest
from compression_fixtures import digits_arrays
from compression_fixtures import digits_mlp

from official import compression as C


def test_mask_sparsity_is_exact_with_ties():
    rng = np.random.default_rng(0)
    w = np.round(rng.normal(size=(37, 11)), 1).astype("float32")  # ties
    for s in (0.0, 0.1, 0.5, 0.73, 0.99):
        mask = C.magnitude_mask(w, s)
        assert int((mask == 0).sum()) == int(round(s * w.size))
        kept, pruned = np.abs(w[mask == 1]), np.abs(w[mask == 0])
        if pruned.size and kept.size:
            assert pruned.max() <= kept.min()
    # Deterministic tie-breaking: among equal |w| the lower index goes.
    mask = C.magnitude_mask(np.array([1.0, -1.0, 1.0, 2.0]), 0.5)
    np.testing.assert_array_equal(mask, [0, 0, 1, 1])


def test_exactness_check_catches_a_quantile_threshold():
    """Broken variant: m = |W| > quantile(|W|, s) miscounts on ties."""
    w = np.round(np.random.default_rng(0).normal(size=(37, 11)), 1)
    s = 0.5
    broken = (np.abs(w) > np.quantile(np.abs(w), s)).astype("float32")
    assert abs(int((broken == 0).sum()) - int(round(s * w.size))) > 1


def test_polynomial_schedule_closed_form():
    sched = C.PolynomialSparsity(0.1, 0.8, begin_step=10, end_step=110,
                                 frequency=20)
    for t in (0, 10, 35, 60, 90, 110, 500):
        p = min(1.0, max(0.0, (t - 10) / 100))
        assert sched(t) == pytest.approx(0.8 + (0.1 - 0.8) * (1 - p) ** 3)
    assert sched(10) == pytest.approx(0.1) and sched(110) == pytest.approx(
        0.8)
    updates = [t for t in range(200) if sched.should_update(t)]
    assert updates == [10, 30, 50, 70, 90, 110]
    with pytest.raises(ValueError):
        C.PolynomialSparsity(0.0, 1.0, 0, 10)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruner_reaches_exact_sparsity(scope):
    model = digits_mlp()
    bias = keras.ops.convert_to_numpy(model.get_layer("fc1").bias)
    pruner = C.MagnitudePruner(model, scope=scope)
    pruner.update_masks(0.6)
    n = sum(int(np.prod(k.shape)) for _, k in pruner.kernels)
    zeros = round(pruner.sparsity() * n)
    assert abs(zeros - round(0.6 * n)) <= (1 if scope == "global" else 2)
    per_layer = pruner.layer_sparsity()
    if scope == "layer":
        for (layer, k), s in zip(pruner.kernels, per_layer.values()):
            size = int(np.prod(k.shape))
            assert round(s * size) == round(0.6 * size)
    # Biases are never pruned.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("fc1").bias), bias)


def _fit_with_pruning(model, callback, steps=60, jit_compile=True):
    xtr, ytr, _, _ = digits_arrays()
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), jit_compile=jit_compile)
    x, y = xtr[:64 * steps // 4], ytr[:64 * steps // 4]
    model.fit(x, y, batch_size=64, epochs=4, verbose=0, callbacks=[callback])


class _Recorder(C.PruningCallback):
    def on_train_batch_begin(self, batch, logs=None):
        super().on_train_batch_begin(batch, logs)
        self.seen = getattr(self, "seen", [])
        self.seen.append((self._step(), self.pruner.sparsity()))


def test_schedule_drives_fit_and_pruned_weights_stay_zero():
    model = digits_mlp()
    pruner = C.MagnitudePruner(model)
    sched = C.PolynomialSparsity(0.0, 0.5, begin_step=0, end_step=30,
                                 frequency=10)
    callback = _Recorder(pruner, sched)
    _fit_with_pruning(model, callback)
    # Masks changed exactly at the scheduled steps, to the scheduled value.
    seen = dict(callback.seen)
    for t in (0, 10, 20, 30):
        assert seen[t] == pytest.approx(sched(t), abs=2 / 4096)
    assert pruner.sparsity() == pytest.approx(0.5, abs=1 / 4096)
    masks = [keras.ops.convert_to_numpy(m) for m in pruner.masks]
    for (_, kernel), mask in zip(pruner.kernels, masks):
        w = keras.ops.convert_to_numpy(kernel)
        assert np.all(w[mask == 0] == 0.0)  # exactly zero after 60 steps
        assert np.all(w[mask == 1] != 0.0)


def test_zero_check_catches_a_callback_without_reapplying():
    """Broken variant: masks set on schedule but not re-applied after each
    optimiser step -> Adam revives pruned weights."""

    class NoReapply(C.PruningCallback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    model = digits_mlp()
    pruner = C.MagnitudePruner(model)
    sched = C.PolynomialSparsity(0.0, 0.5, begin_step=0, end_step=30,
                                 frequency=10)
    _fit_with_pruning(model, NoReapply(pruner, sched), jit_compile=False)
    revived = 0
    for (_, kernel), mask in zip(pruner.kernels, pruner.masks):
        w = keras.ops.convert_to_numpy(kernel)
        revived += int(np.sum(w[keras.ops.convert_to_numpy(mask) == 0] != 0))
    assert revived > 100  # measured: 1487 of 2368 masked weights


def test_refuses_quantized_layers_and_empty_selection():
    model = digits_mlp()
    with pytest.raises(ValueError, match="no prunable"):
        C.MagnitudePruner(model, filters="nothing_matches")
    C.quantize_model(model, "int8")
    with pytest.raises(ValueError, match="prune before quantizing"):
        C.MagnitudePruner(model)
