"""The compression tools applied to garden models: `mae_classifier`
(tiny ViT) and the `lean_attention` decoder (KV cache)."""

import os

import keras
import numpy as np
import pytest
from keras import ops

import garden
from official import compression as C
from official import export


@pytest.fixture
def mae():
    keras.utils.set_random_seed(0)
    model = garden.build("mae_classifier", preset="tiny",
                         head_init_std=0.02)
    x = garden.example_inputs("mae_classifier", batch_size=4)
    model(x)
    return model, x


def test_quantize_report_on_mae_classifier(mae, tmp_path):
    model, x = mae
    y0 = ops.convert_to_numpy(model(x))
    report = C.quantize_model(model, "int8")
    names = sorted(r.path.split("/")[-1] for r in report.quantized)
    assert names == sorted(["proj", "head"] + 2 * ["query", "key", "value",
                                                   "attention_output", "fc1",
                                                   "fc2"])
    assert {r.layer_class for r in report.skipped} == {"LayerNormalization"}
    assert all("quantize" in r.reason for r in report.skipped)
    before, after = report.quantized_bytes()
    assert 0.25 < after / before < 0.30  # 1/4 + scales and float biases
    assert report.other_bytes == 4 * (64 + 17 * 64)  # cls token, positions
    y1 = ops.convert_to_numpy(model(x))
    assert np.mean(np.argmax(y1, -1) == np.argmax(y0, -1)) >= 0.75
    # Weights + `reload_quantized` (the workaround for non-garden models).
    path = os.path.join(tmp_path, "q.weights.h5")
    model.save_weights(path)
    fresh = garden.build("mae_classifier", preset="tiny")
    fresh(x)
    C.reload_quantized(fresh, path)
    np.testing.assert_array_equal(ops.convert_to_numpy(fresh(x)), y1)
    # The quantized garden model's `.keras` reloads int8 (GardenModel's
    # quantization record; fresh-process checks in
    # test_compression_reload.py).
    model.save(os.path.join(tmp_path, "q.keras"))
    loaded = keras.models.load_model(os.path.join(tmp_path, "q.keras"))
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(x)), y1)
    assert len(loaded.quantization_record()) == 14


def test_head_and_ffn_pruning_on_mae_classifier_export(mae, tmp_path):
    model, x = mae
    twin = garden.build("mae_classifier", preset="tiny")
    twin(x)
    twin.set_weights(model.get_weights())
    y = np.array([0, 1, 2, 3])
    keep = C.select_heads(model, C.head_importance(model, [(x, y)]), 0.5)
    assert all(len(v) == 2 for v in keep.values()) and len(keep) == 2
    with C.head_gates(twin, C.keep_to_gates(twin, keep)):
        gated = ops.convert_to_numpy(twin(x))
    before = model.count_params()
    summary = C.prune_heads(model, keep)
    assert np.max(np.abs(ops.convert_to_numpy(model(x)) - gated)) <= 1e-6
    # 2 of 4 heads (d = 16) in 2 blocks of width 64:
    # per head 3 (64*16 + 16) + 16*64.
    assert before - model.count_params() == 2 * 2 * (3 * (64 * 16 + 16)
                                                     + 16 * 64)
    assert sum(s["params_removed"] for s in summary.values()) == \
        before - model.count_params()
    C.prune_neurons(model, C.select_neurons(model, 0.5))
    want = ops.convert_to_numpy(model(x))
    # The pruned model exports (LiteRT traces the live, sliced model).
    path = os.path.join(tmp_path, "pruned.tflite")
    export.export_model(model, path, x, format="tflite")
    got = export.run_exported(path, x)["output"]
    assert np.max(np.abs(got - want)) < 1e-4


def test_magnitude_pruning_selects_every_projection(mae):
    model, _ = mae
    pruner = C.MagnitudePruner(model, filters=lambda layer: layer.name !=
                               "head")
    assert len(pruner.kernels) == 13  # patch proj + 2 x (q, k, v, o, fc1, fc2)
    pruner.update_masks(0.5)
    assert pruner.sparsity() == pytest.approx(0.5, abs=1e-4)


@pytest.fixture(scope="module")
def lean():
    keras.utils.set_random_seed(0)
    model = garden.build("lean_attention", preset="tiny",
                         attention_kernel="dense")
    ids = garden.example_inputs("lean_attention", batch_size=2)["token_ids"]
    model(ids)
    return model, ids


def test_int8_kv_cache_on_lean_attention_decoder(lean):
    model, ids = lean
    full = ops.convert_to_numpy(model(ids))
    got32, _ = C.teacher_forced_logits(model.forward_with_cache, ids,
                                       model.empty_cache(2), prefill=4)
    assert np.max(np.abs(got32 - full)) < 1e-5
    got8, cache = C.teacher_forced_logits(model.forward_with_cache, ids,
                                          model.empty_cache(2), prefill=4,
                                          kv_dtype="int8")
    diff = np.max(np.abs(got8 - full))
    top1 = np.mean(np.argmax(got8, -1) == np.argmax(full, -1))
    # Measured: max |diff| 2.3e-3 (logits std 0.11), top-1 1.0; the 15-level
    # grid of test_compression_kv_cache: 3.8e-2, top-1 0.94.
    assert diff < 1e-2 and top1 >= 0.99, (diff, top1)
    payload, scales = cache.nbytes()
    assert payload * 4 == C.kv_cache.kv_bytes(cache.as_float())
    out = C.decode_greedy(model.forward_with_cache, ids[:, :8], 6,
                          model.empty_cache(2), kv_dtype="int8")
    ref = model.generate(ids[:, :8], 6)
    np.testing.assert_array_equal(out["token_ids"], ref["token_ids"])
