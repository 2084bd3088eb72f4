"""int8 PTQ through Keras' `quantize` (spec 2.3 checks 1-3) and the
`QuantizationReport`; full-int8 LiteRT through `official.export`."""

import os
import warnings

import keras
import numpy as np
import pytest
from compression_fixtures import accuracy
from compression_fixtures import digits_arrays
from compression_fixtures import digits_mlp

from official import compression as C
from official import export


def _keras_weight_quantize(w):
    """Keras' default int8 kernel quantizer (per output channel, axis 0)."""
    q, scale = keras.quantizers.AbsMaxQuantizer(axis=0)(w, to_numpy=True)
    return keras.ops.convert_to_numpy(q), keras.ops.convert_to_numpy(scale)


def _floor_quantize(w):
    """Broken variant: floor instead of round-to-nearest."""
    amax = np.abs(w).max(axis=0, keepdims=True)
    scale = 127.0 / (amax + keras.backend.epsilon())
    return np.clip(np.floor(w * scale), -127, 127), scale


def _max_violation(w, quantize):
    """max over entries of |W - W_hat| - step_c / 2 (<= 0 when the per-
    channel bound holds), step_c = max_i |W[i, c]| / 127."""
    q, scale = quantize(w)
    w_hat = q / scale
    step = np.abs(w).max(axis=0, keepdims=True) / 127.0
    return float(np.max(np.abs(w - w_hat) - step / 2 - 1e-7)), q


def test_weight_quantizer_bound_and_zero_channel():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 16)).astype("float32")
    w[:, 3] = 0.0  # an all-zero output channel
    violation, q = _max_violation(w, _keras_weight_quantize)
    assert violation <= 0.0
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    assert np.all(q[:, 3] == 0)
    _, scale = _keras_weight_quantize(w)
    assert np.all(np.isfinite(scale)) and np.all(np.isfinite(q / scale))
    # Broken variant (floor rounding) breaks the s/2 bound.
    bad, _ = _max_violation(w, _floor_quantize)
    assert bad > 0.0


def _dense_bound(x, w):
    """Elementwise bound on |x W - Q(x) Q(W)| (spec 2.3 check 2):
    sum_i |x_i| s_c/2 + |W_ic| s_x/2 + s_x s_c/4, s = abs-max / 127."""
    s_w = np.abs(w).max(axis=0) / 127.0  # (out,)
    s_x = np.abs(x).max(axis=1, keepdims=True) / 127.0  # (B, 1)
    ax, aw = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    bound = (ax.sum(1, keepdims=True) * s_w / 2 + s_x * aw.sum(0) / 2
             + x.shape[1] * s_x * s_w / 4)
    return bound + 1e-5 * (ax @ aw)  # float32 accumulation slack


def _quantized_dense(w, b):
    layer = keras.layers.Dense(w.shape[1])
    layer.build((None, w.shape[0]))
    layer.set_weights([w, b])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer.quantize("int8")
    return layer


def test_quantized_dense_elementwise_bound():
    rng = np.random.default_rng(1)
    # Output channels spanning two decades: a per-tensor weight scale
    # cannot meet the per-channel bound.
    w = (rng.normal(size=(64, 32)) * np.logspace(-2, 0, 32)).astype(
        "float32")
    b = rng.normal(size=(32,)).astype("float32")
    x = rng.normal(size=(16, 64)).astype("float32")
    exact = x.astype(np.float64) @ w + b
    got = keras.ops.convert_to_numpy(_quantized_dense(w, b)(x))
    bound = _dense_bound(x, w)
    assert np.all(np.abs(got - exact) <= bound)
    # Broken variant: one weight scale for the whole tensor.
    s_w = np.abs(w).max() / 127.0
    s_x = np.abs(x).max(axis=1, keepdims=True) / 127.0
    bad = (np.round(x / s_x) * s_x) @ (np.round(w / s_w) * s_w) + b
    assert np.any(np.abs(bad - exact) > bound)


def _floor_dense(x, w):
    """Broken variant: floor rounding of inputs and weights."""
    s_w = np.abs(w).max(axis=0) / 127.0
    s_x = np.abs(x).max(axis=1, keepdims=True) / 127.0
    return (np.floor(x / s_x) * s_x) @ (np.floor(w / s_w) * s_w)


def test_quantized_dense_relative_error_below_one_percent():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(64, 64)).astype("float32")
    b = np.zeros(64, "float32")
    x = rng.normal(size=(64, 64)).astype("float32")
    exact = x.astype(np.float64) @ w

    def rel(y):
        return np.linalg.norm(y - exact) / np.linalg.norm(exact)

    got = keras.ops.convert_to_numpy(_quantized_dense(w, b)(x))
    # Measured 0.0084 (0.0080-0.0085 over seeds 0-3); the floor-rounding
    # variant gives 0.015-0.018.
    assert rel(got) < 0.01, rel(got)
    assert rel(_floor_dense(x, w)) > 0.01


def test_report_on_digits_mlp_bytes_accuracy_and_reload(tmp_path):
    _, _, xte, yte = digits_arrays()
    model = digits_mlp()
    acc_fp32 = accuracy(model, xte, yte)
    report = C.quantize_model(model, "int8")
    acc_int8 = accuracy(model, xte, yte)
    assert acc_fp32 > 0.9
    assert acc_fp32 - acc_int8 <= 0.01, (acc_fp32, acc_int8)
    assert [r.path.split("/")[-1] for r in report.quantized] == ["fc1", "fc2"]
    assert not report.skipped
    # Exact bytes: int8 kernel (1 B/entry) + one float32 scale per output
    # channel + the float32 bias, vs 4 B/entry before.
    for row, (fan_in, fan_out) in zip(report.quantized, [(64, 64), (64, 10)]):
        assert row.bytes_before == 4 * (fan_in * fan_out + fan_out)
        assert row.bytes_after == fan_in * fan_out + 4 * fan_out + 4 * fan_out
    kernel_before = 4 * (64 * 64 + 64 * 10)
    assert report.bytes_after == pytest.approx(
        kernel_before / 4 + 4 * 2 * (64 + 10))
    assert "| **total** |" in report.to_markdown()
    # `.keras` round trip of a quantized functional model: identical outputs.
    path = os.path.join(tmp_path, "q.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded(xte)),
        keras.ops.convert_to_numpy(model(xte)))


def test_accuracy_check_catches_a_broken_quantizer():
    """The 1-point accuracy check fails for ternary 'int8' weights."""
    _, _, xte, yte = digits_arrays()
    model = digits_mlp()
    acc_fp32 = accuracy(model, xte, yte)
    config = keras.quantizers.Int8QuantizationConfig(
        weight_quantizer=keras.quantizers.AbsMaxQuantizer(
            axis=0, value_range=(-1, 1)))
    C.quantize_model(model, config=config)
    assert acc_fp32 - accuracy(model, xte, yte) > 0.01


def test_filters_and_skipped_layers_are_reported():
    model = digits_mlp()
    report = C.quantize_model(model, "int8", filters="fc2")
    status = {r.path.split("/")[-1]: (r.status, r.reason)
              for r in report.layers}
    assert status["fc1"] == ("skipped", "filtered out")
    assert status["fc2"] == ("quantized", "")
    # A layer Keras cannot quantize is reported with Keras' reason.
    inputs = keras.Input((8,))
    h = keras.layers.LayerNormalization(name="ln")(inputs)
    m = keras.Model(inputs, keras.layers.Dense(3, name="d")(h))
    rows = {r.path.split("/")[-1]: r for r in C.quantize_model(m).layers}
    assert rows["ln"].status == "skipped"
    assert "does not have a `quantize` method" in rows["ln"].reason
    assert rows["ln"].bytes_after == rows["ln"].bytes_before == 4 * 16


def test_full_int8_litert_through_official_export(tmp_path):
    """Reuses official.export (representative dataset) for full int8."""
    xtr, _, xte, yte = digits_arrays()
    model = digits_mlp()
    acc_fp32 = accuracy(model, xte, yte)
    rep = [xtr[i:i + 1] for i in range(100)]
    int8_path = os.path.join(tmp_path, "m_int8.tflite")
    float_path = os.path.join(tmp_path, "m.tflite")
    export.export_model(model, int8_path, xte[:1], format="tflite",
                        quantize="int8", representative_data=rep)
    export.export_model(model, float_path, xte[:1], format="tflite")
    logits = np.concatenate([export.run_exported(int8_path, xte[i:i + 1])[
        "output"] for i in range(len(xte))])
    acc_tflite = float(np.mean(np.argmax(logits, -1) == yte))
    assert acc_fp32 - acc_tflite <= 0.02, (acc_fp32, acc_tflite)
    assert os.path.getsize(int8_path) < 0.5 * os.path.getsize(float_path)
