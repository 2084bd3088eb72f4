"""The sweep: every registered model, every contract check.

A model joins the sweep by registering itself (official.registry); nothing
here names a model.
"""

import json

import keras
import numpy as np
import pytest

import garden
from official import export
from official.export.exporter import ExportError
from official.loading import outputs_in_fresh_process
from tests import harness

MODELS = garden.list_models()
FORMATS = ("saved_model", "tflite", "onnx")
EXPORT_ATOL = 1e-4


def test_registry_is_populated():
    assert {"mae", "mae_classifier", "point_mae",
            "point_mae_classifier"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_presets_are_complete(name):
    presets = garden.list_presets(name)
    assert "tiny" in presets and "paper" in presets
    for preset in presets:
        info = garden.preset_info(name, preset)
        assert isinstance(info["config"], dict)
        assert "params" in info and "source" in info, (name, preset)
    paper = garden.preset_info(name, "paper")
    assert isinstance(paper["params"], int) and paper["params"] > 0, (
        f"{name}: the paper preset must record the official trainable "
        "parameter count")


@pytest.mark.parametrize("name", MODELS)
def test_example_inputs_are_seeded(name):
    a = garden.example_inputs(name, batch_size=2, seed=1)
    b = garden.example_inputs(name, batch_size=2, seed=1)
    c = garden.example_inputs(name, batch_size=2, seed=2)
    harness.assert_trees_close(a, b, 0.0, "same seed")
    flat_a = dict(harness.flat_items(a))
    flat_c = dict(harness.flat_items(c))
    assert any(not np.array_equal(flat_a[k], flat_c[k]) for k in flat_a)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes_dtypes_and_determinism(name):
    model, x, _ = harness.build_tiny(name)
    out = harness.to_numpy_tree(model(x, training=False))
    again = harness.to_numpy_tree(model(x, training=False))
    harness.assert_trees_close(out, again, 0.0, "inference determinism")
    symbolic = model.compute_output_spec(
        {k: keras.KerasTensor(np.shape(v), str(np.asarray(v).dtype))
         for k, v in x.items()} if isinstance(x, dict)
        else keras.KerasTensor(np.shape(x), str(np.asarray(x).dtype)))
    sym_items = dict(harness.flat_items(symbolic))
    for key, value in harness.flat_items(out):
        assert np.all(np.isfinite(value)), f"{name}: '{key}' not finite"
        assert value.shape[0] == 2, (name, key, value.shape)
        assert tuple(sym_items[key].shape) == value.shape, (
            name, key, sym_items[key].shape, value.shape)
        assert keras.backend.standardize_dtype(sym_items[key].dtype) == str(
            value.dtype)


@pytest.mark.parametrize("name", MODELS)
def test_train_step_reaches_every_variable(name):
    model, x, y = harness.build_tiny(name)
    loss, grads = harness.gradients(model, x, y)
    loss = float(loss)
    assert np.isfinite(loss), f"{name}: loss {loss}"
    missing, zero = [], []
    for var, grad in zip(model.trainable_variables, grads):
        if grad is None:
            missing.append(var.path)
            continue
        g = keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(grad))
        assert np.all(np.isfinite(g)), f"{name}: gradient of {var.path}"
        if not np.any(g):
            zero.append(var.path)
    assert not missing, f"{name}: no gradient reaches {missing}"
    assert not zero, f"{name}: zero gradient for {zero}"


@pytest.mark.parametrize("name", MODELS)
def test_fit_step_under_xla(name):
    model, x, y = harness.build_tiny(name)
    model.compile(jit_compile=True)
    history = model.fit(x, y, batch_size=2, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)), losses


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip_without_disk(name):
    model, x, _ = harness.build_tiny(name)
    out = harness.to_numpy_tree(model(x, training=False))
    config = model.get_config()
    json.dumps(config)  # the config must be JSON-serialisable
    clone = type(model).from_config(config)
    assert harness.config_json(clone) == harness.config_json(model)
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model))
    assert type(revived) is type(model)
    revived(x, training=False)
    revived.set_weights(model.get_weights())
    harness.assert_trees_close(
        harness.to_numpy_tree(revived(x, training=False)), out, 1e-6,
        "config round trip")


@pytest.mark.parametrize("name", MODELS)
def test_keras_file_round_trip_in_fresh_process(name, tmp_path):
    model, x, _ = harness.build_tiny(name)
    out = harness.to_numpy_tree(model(x, training=False))
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    cls, loaded = outputs_in_fresh_process(path, x, str(tmp_path))
    assert cls == type(model).__name__
    expected = dict(harness.flat_items(out))
    assert sorted(loaded) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(loaded[key], expected[key])
    # And garden.load in this process gives the same outputs.
    reloaded = garden.load(path)
    harness.assert_trees_close(
        harness.to_numpy_tree(reloaded(x, training=False)), out, 0.0,
        "garden.load")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODELS)
def test_export(name, fmt, tmp_path):
    model, x, _ = harness.build_tiny(name)
    model(x, training=False)
    suffix = {"saved_model": "", "tflite": ".tflite", "onnx": ".onnx"}[fmt]
    path = str(tmp_path / f"{name}{suffix}")
    reason = garden.get_entry(name).export_unsupported.get(fmt)
    if reason:
        # A declared limitation must be real: the export has to fail.
        with pytest.raises(ExportError):
            export.export_model(model, path, x, format=fmt)
        return
    export.export_model(model, path, x, format=fmt)
    diffs = export.check_parity(model, path, x)
    worst = max(diffs.values())
    assert worst <= EXPORT_ATOL, f"{name} {fmt} parity {diffs}"


@pytest.mark.parametrize("name", MODELS)
def test_paper_preset_parameter_count(name):
    info = garden.preset_info(name, "paper")
    model = garden.build(name, preset="paper")
    x = garden.example_inputs(name, preset="paper", batch_size=1)
    harness.symbolic_build(model, x)
    assert harness.trainable_count(model) == info["params"], (
        f"{name}: {harness.trainable_count(model)} trainable parameters, "
        f"official {info['params']} ({info['source']})")


@pytest.mark.parametrize("name", MODELS)
def test_wrong_rank_input_raises_value_error(name):
    model, x, _ = harness.build_tiny(name)
    entry = garden.get_entry(name)
    if isinstance(x, dict):
        primary = entry.cls.input_names[0]
        bad = dict(x)
        bad[primary] = np.asarray(x[primary])[..., 0]
    else:
        bad = np.asarray(x)[..., 0]
    with pytest.raises(ValueError) as info:
        model(bad, training=False)
    message = str(info.value)
    assert type(model).__name__ in message, message
    assert "rank" in message or "shape" in message, message
