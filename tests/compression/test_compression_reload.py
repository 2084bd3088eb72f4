"""Compressed garden models reload from `.keras` (`GardenModel`'s
quantization record and structural-edit replay, official/models/
garden_model.py).

One module fixture builds the variants (int8, int4, static int8, int8 on a
filtered subset, heads+FFN pruned then int8 on `mae_classifier` tiny; int8
on `combiner_lm` tiny, whose token embedding is quantized too), saves them
and loads all of them in ONE fresh interpreter that imports only `garden`
(as the sweep's `outputs_in_fresh_process`), which reports outputs and, per
quantized layer, its mode, dtype policy, variables and input quantizer.
"""

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from keras import ops

import garden
from official import compression as C
from official.models.garden_model import QUANTIZATION_KEY
from official.models.garden_model import STRUCTURE_KEY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Runs in the fresh interpreter: argv[1] = manifest JSON
# [{"keras", "inputs", "outputs"}], argv[2] = report JSON path.
_FRESH = """
import json, sys, numpy as np, keras
import garden
def layer_info(model):
    info = {}
    for key, layer in model._keyed_layers():
        mode = getattr(layer, "quantization_mode", None)
        if not mode:
            continue
        q = getattr(layer, "inputs_quantizer", None)
        info[key] = {
            "mode": mode, "policy": layer.dtype_policy.name,
            "variables": sorted([w.name, str(w.dtype), list(w.shape)]
                                for w in layer.weights),
            "quantizer": type(q).__name__, "amax": getattr(q, "amax", None)}
    return info
report = {}
for entry in json.load(open(sys.argv[1])):
    data = np.load(entry["inputs"])
    x = data["__bare__"] if data.files == ["__bare__"] else {
        k: data[k] for k in data.files}
    model = keras.models.load_model(entry["keras"])
    np.save(entry["outputs"], keras.ops.convert_to_numpy(
        model(x, training=False)))
    report[entry["keras"]] = {"class": type(model).__name__,
                              "params": model.count_params(),
                              "layers": layer_info(model)}
json.dump(report, open(sys.argv[2], "w"))
"""


def layer_info(model):
    """The same per-layer facts as `_FRESH` reports, in this process."""
    info = {}
    for key, layer in model._keyed_layers():
        mode = getattr(layer, "quantization_mode", None)
        if not mode:
            continue
        q = getattr(layer, "inputs_quantizer", None)
        info[key] = {
            "mode": mode, "policy": layer.dtype_policy.name,
            "variables": sorted([w.name, str(w.dtype), list(w.shape)]
                                for w in layer.weights),
            "quantizer": type(q).__name__, "amax": getattr(q, "amax", None)}
    return info


def _mae():
    keras.utils.set_random_seed(0)
    model = garden.build("mae_classifier", preset="tiny",
                         head_init_std=0.02)
    x = garden.example_inputs("mae_classifier", batch_size=4)
    model(x)
    return model, x


def _variants():
    """name -> (model, inputs, extra facts) of every compressed variant."""
    out = {}
    for mode in ("int8", "int4"):
        model, x = _mae()
        C.quantize_model(model, mode)
        out[f"mae_{mode}"] = (model, x, {})
    model, x = _mae()
    _, ranges = C.quantize_int8_static(model, [x], method="percentile")
    out["mae_static"] = (model, x, {"ranges": ranges})
    model, x = _mae()
    C.quantize_model(model, "int8", filters=r"^fc\d$")
    out["mae_filtered"] = (model, x, {})
    model, x = _mae()
    keep = C.select_heads(model, C.head_importance(
        model, [(x, np.arange(4))]), 0.5)
    C.prune_heads(model, keep)
    C.prune_neurons(model, C.select_neurons(model, 0.5))
    pruned_params = model.count_params()
    C.quantize_model(model, "int8")
    out["mae_pruned_int8"] = (model, x, {"pruned_params": pruned_params})
    keras.utils.set_random_seed(0)
    model = garden.build("combiner_lm", preset="tiny")
    x = garden.example_inputs("combiner_lm", batch_size=2)
    model(x)
    C.quantize_model(model, "int8")
    out["combiner_lm_int8"] = (model, x, {})
    return out


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory):
    """name -> dict(model, x, facts, path, expected, fresh outputs, report)."""
    tmp = tmp_path_factory.mktemp("reload")
    variants = _variants()
    manifest, results = [], {}
    for name, (model, x, facts) in variants.items():
        path = str(tmp / f"{name}.keras")
        model.save(path)
        inputs = str(tmp / f"{name}_in.npz")
        if isinstance(x, dict):
            np.savez(inputs, **{k: np.asarray(v) for k, v in x.items()})
        else:
            np.savez(inputs, __bare__=np.asarray(x))
        outputs = str(tmp / f"{name}_out.npy")
        manifest.append({"keras": path, "inputs": inputs, "outputs": outputs})
        results[name] = dict(model=model, x=x, facts=facts, path=path,
                             expected=ops.convert_to_numpy(model(x)),
                             outputs=outputs)
    manifest_path, report_path = str(tmp / "m.json"), str(tmp / "r.json")
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH, manifest_path, report_path],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(report_path) as f:
        report = json.load(f)
    for r in results.values():
        r["fresh"] = np.load(r["outputs"])
        r["report"] = report[r["path"]]
    return results


@pytest.mark.parametrize("name", ["mae_int8", "mae_int4", "mae_static",
                                  "mae_filtered", "mae_pruned_int8",
                                  "combiner_lm_int8"])
def test_fresh_process_reload_is_identical(reloaded, name):
    r = reloaded[name]
    assert r["report"]["class"] == type(r["model"]).__name__
    assert r["fresh"].shape == r["expected"].shape
    # Measured: 0.0 for every variant (the same int8 kernels and scales).
    assert np.max(np.abs(r["fresh"] - r["expected"])) <= 1e-6
    # Same quantized layers, modes, dtype policies, variable names, dtypes
    # and shapes, input quantizers (and static ranges) as before saving.
    assert r["report"]["layers"] == json.loads(json.dumps(
        layer_info(r["model"])))
    assert r["report"]["params"] == r["model"].count_params()


def test_int8_kernels_are_int8_after_reload(reloaded):
    layers = reloaded["mae_int8"]["report"]["layers"]
    # patch proj + head + 2 x (q, k, v, o, fc1, fc2); LayerNorms stay float.
    assert len(layers) == 14
    for key, info in layers.items():
        assert info["policy"] == "int8_from_float32", key
        dtypes = {v[0]: v[1] for v in info["variables"]}
        assert dtypes["kernel"] == "int8" and dtypes["kernel_scale"] == \
            "float32", (key, dtypes)
    lm = reloaded["combiner_lm_int8"]["report"]["layers"]
    embeddings = [k for k in lm if k.endswith("token_embedding")]
    assert embeddings and {v[0]: v[1] for v in lm[embeddings[0]][
        "variables"]}["embeddings"] == "int8"
    assert all(info["mode"] == "int8" for info in lm.values())


def test_int4_kernels_are_packed_after_reload(reloaded):
    for key, info in reloaded["mae_int4"]["report"]["layers"].items():
        assert info["mode"] == "int4" and info["policy"].startswith("int4")
        dtypes = {v[0]: v[1] for v in info["variables"]}
        assert dtypes["kernel"] == "int8", (key, dtypes)  # two int4 a byte


def test_static_ranges_survive_reload(reloaded):
    r = reloaded["mae_static"]
    layers = r["report"]["layers"]
    assert {k: v["amax"] for k, v in layers.items()} == pytest.approx(
        r["facts"]["ranges"], rel=0, abs=0)
    assert {v["quantizer"] for v in layers.values()} == {
        "StaticActivationQuantizer"}


def test_filtered_quantization_restores_exactly_those_layers(reloaded):
    layers = reloaded["mae_filtered"]["report"]["layers"]
    assert sorted(layers) == sorted(
        f"encoder/blocks_{i}/mlp/{fc}" for i in (0, 1) for fc in ("fc1",
                                                                    "fc2"))


def test_pruned_then_quantized_reloads_sliced(reloaded):
    r = reloaded["mae_pruned_int8"]
    edits = r["model"].structure_edits()
    assert [e["op"] for e in edits] == ["garden>prune_heads",
                                        "garden>prune_neurons"]
    # 2 of 4 heads and 128 of 256 units kept in each of the 2 blocks.
    assert r["facts"]["pruned_params"] == 105034 - 16576 - 2 * 128 * (
        64 + 1 + 64)
    # The query projection (width 64 -> heads x 16) keeps 2 of 4 heads.
    q = r["report"]["layers"]["encoder/blocks_0/attn/query"]
    assert ["kernel", "int8", [64, 32]] in q["variables"]
    fc1 = r["report"]["layers"]["encoder/blocks_0/mlp/fc1"]
    assert ["kernel", "int8", [64, 128]] in fc1["variables"]


def test_garden_load_in_process(reloaded):
    r = reloaded["mae_int8"]
    model = garden.load(r["path"])
    np.testing.assert_array_equal(ops.convert_to_numpy(model(r["x"])),
                                  r["expected"])


def _edit_build_config(src, dst, edit):
    """Copies a `.keras` file with `edit(build_config)` applied."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config["build_config"])
                data = json.dumps(config).encode()
            zout.writestr(item, data)


def _strip_build_keys(src, dst, keys):
    def edit(build):
        for key in keys:
            build.pop(key, None)
    _edit_build_config(src, dst, edit)


@pytest.mark.parametrize("name,keys", [
    ("mae_int8", [QUANTIZATION_KEY]),
    ("mae_pruned_int8", [STRUCTURE_KEY]),
])
def test_without_the_record_the_file_does_not_load(reloaded, name, keys,
                                                   tmp_path):
    """Negative control: the same file minus GardenModel's record fails as
    every quantized garden model did before (float layers built from the
    constructor, int8 / sliced weights in the file)."""
    path = str(tmp_path / "stripped.keras")
    _strip_build_keys(reloaded[name]["path"], path, keys)
    with pytest.raises(ValueError, match="could not be loaded"):
        keras.models.load_model(path)


def test_only_replayable_edits_are_replayed(reloaded, tmp_path):
    """A file naming another registered object as an edit is refused."""
    path = str(tmp_path / "forged.keras")

    def edit(build):
        build[STRUCTURE_KEY][0]["op"] = "garden>StaticActivationQuantizer"
    _edit_build_config(reloaded["mae_pruned_int8"]["path"], path, edit)
    with pytest.raises(ValueError, match="not a registered replayable"):
        keras.models.load_model(path)


def test_float_model_saves_no_new_key(tmp_path):
    model, x = _mae()
    build = model.get_build_config()
    assert set(build) == {"input_shape"}
    assert model.quantization_record() == [] and \
        model.structure_edits() == []
    path = str(tmp_path / "float.keras")
    model.save(path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    assert set(config["build_config"]) == {"input_shape"}
    assert "garden_" not in json.dumps(config)
    # The constructor config of a quantized model is the float one: the
    # quantization is build state, not architecture.
    float_config = model.get_config()
    C.quantize_model(model, "int8")
    assert model.get_config() == float_config
    assert QUANTIZATION_KEY in model.get_build_config()


def test_a_loaded_float_model_quantizes(tmp_path):
    """`load_model` builds symbolically, leaving DropPath/Dropout unbuilt;
    Keras' own `model.quantize` then refuses them (negative control), while
    `quantize_model` skips weightless unbuilt layers."""
    model, x = _mae()
    path = str(tmp_path / "float.keras")
    model.save(path)
    plain = keras.models.load_model(path)
    with pytest.raises(ValueError, match="isn't yet built"):
        plain.quantize("int8")
    loaded = keras.models.load_model(path)
    report = C.quantize_model(loaded, "int8")
    assert len(report.quantized) == 14
    model_q, _ = _mae()
    C.quantize_model(model_q, "int8")
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(x)),
                                  ops.convert_to_numpy(model_q(x)))
