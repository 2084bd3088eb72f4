"""Static-calibration int8 PTQ (spec 2.1 T2): exact quantizer values,
calibrated ranges, accuracy, save/load and XLA."""

import os

import keras
import numpy as np
import pytest
from compression_fixtures import accuracy
from compression_fixtures import digits_arrays
from compression_fixtures import digits_mlp

from official import compression as C


def test_static_quantizer_matches_numpy_and_clips():
    x = np.array([[-3.0, -1.0, 0.0, 0.49, 2.0, 5.0]], "float32")
    q, scale = C.StaticActivationQuantizer(2.0)(x, axis=-1)
    q = keras.ops.convert_to_numpy(q)
    want = np.clip(np.round(x * 127 / 2.0), -127, 127)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, want)
    assert q[0, 0] == -127 and q[0, -1] == 127  # clipped beyond amax
    assert keras.ops.convert_to_numpy(scale).shape == (1, 1)
    assert float(keras.ops.convert_to_numpy(scale)[0, 0]) == pytest.approx(
        63.5)
    with pytest.raises(ValueError, match="amax"):
        C.StaticActivationQuantizer(0.0)
    config = C.StaticActivationQuantizer(1.5).get_config()
    assert C.StaticActivationQuantizer(**config).amax == 1.5


def batches(x, size=100):
    return [x[i:i + size] for i in range(0, len(x), size)]


def test_absmax_ranges_are_the_observed_maxima():
    xtr, _, _, _ = digits_arrays()
    model = digits_mlp()
    C.quantize_model(model, "int8")
    ranges = C.calibrate(model, batches(xtr[:500]))
    assert list(ranges) == ["fc1", "fc2"]  # keys: paths without the model
    fc1, fc2 = list(ranges)
    # fc1 sees the data itself.
    assert ranges[fc1] == pytest.approx(float(np.abs(xtr[:500]).max()))
    # fc2 sees relu(fc1(x)) of the (dynamically) int8 fc1.
    hidden = keras.Model(model.input, model.get_layer("fc1").output)
    h = keras.ops.convert_to_numpy(hidden(xtr[:500]))
    assert ranges[fc2] == pytest.approx(float(np.abs(h).max()), rel=1e-5)
    pct = C.calibrate(model, batches(xtr[:500]), method="percentile",
                      percentile=99.0)
    assert pct[fc2] < ranges[fc2]
    with pytest.raises(ValueError, match="method"):
        C.calibrate(model, batches(xtr[:100]), method="mse")


def test_static_int8_accuracy_reload_and_xla(tmp_path):
    xtr, _, xte, yte = digits_arrays()
    model = digits_mlp()
    acc_fp32 = accuracy(model, xte, yte)
    report, ranges = C.quantize_int8_static(model, batches(xtr[:500]))
    assert len(report.quantized) == 2 and len(ranges) == 2
    for layer in (model.get_layer("fc1"), model.get_layer("fc2")):
        assert isinstance(layer.inputs_quantizer, C.StaticActivationQuantizer)
    acc_static = accuracy(model, xte, yte)
    assert acc_fp32 - acc_static <= 0.01, (acc_fp32, acc_static)
    eager = keras.ops.convert_to_numpy(model(xte))
    # The static ranges survive `.keras` save/load (functional model).
    path = os.path.join(tmp_path, "static.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.get_layer("fc2").inputs_quantizer.amax == pytest.approx(
        ranges["fc2"])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded(xte)),
                                  eager)
    # XLA-compiled inference gives the same integers, so the same logits.
    model.compile(jit_compile=True)
    xla = model.predict(xte[:300], batch_size=100, verbose=0)
    np.testing.assert_allclose(xla, eager[:300], atol=1e-4)


def test_accuracy_check_catches_wrong_static_ranges():
    """Ranges 100x too small clip almost every activation: the 1-point
    accuracy check fails."""
    xtr, _, xte, yte = digits_arrays()
    model = digits_mlp()
    acc_fp32 = accuracy(model, xte, yte)
    C.quantize_model(model, "int8")
    ranges = C.calibrate(model, batches(xtr[:500]))
    C.apply_static_ranges(model, {k: v / 100 for k, v in ranges.items()})
    assert acc_fp32 - accuracy(model, xte, yte) > 0.01


def test_calibration_needs_a_quantized_model_and_data():
    xtr, _, _, _ = digits_arrays()
    model = digits_mlp()
    with pytest.raises(ValueError, match="quantize the model first"):
        C.calibrate(model, batches(xtr[:100]))
    C.quantize_model(model, "int8")
    with pytest.raises(ValueError, match="empty"):
        C.calibrate(model, [])
