"""All quantization layers: serialization, .keras reload, XLA, fit, docs."""

import doctest
import importlib
import inspect
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import official
import official.quantization as Q
from official.models.garden_model import GardenModel

LAYERS = [
    lambda: Q.FakeQuant(axis=-1, num_bits=8, name="fq"),
    lambda: Q.BinaryHash(codes="01", name="bh"),
    lambda: Q.VectorQuantizer(
        8,
        beta=0.3,
        ema=True,
        decay=0.9,
        dead_code_threshold=0.2,
        seed=1,
        name="vq",
    ),
    lambda: Q.ResidualVectorQuantizer(2, 8, ema=False, seed=2, name="rvq"),
    lambda: Q.FiniteScalarQuantizer([5, 4, 3, 3], name="fsq"),
]


def _values(out):
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    return {"out": np.asarray(out)}


@pytest.mark.parametrize("make", LAYERS)
def test_config_round_trip_and_same_outputs(make):
    layer = make()
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    ref = _values(layer(x))
    config = layer.get_config()
    json.dumps(config)
    # Every constructor argument is in the config (config = init kwargs).
    args = set(inspect.signature(type(layer).__init__).parameters)
    assert args - {"self", "kwargs"} <= set(config), args - set(config)
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is type(layer)
    clone(x)
    clone.set_weights(layer.get_weights())
    for key, value in _values(clone(x)).items():
        np.testing.assert_allclose(value, ref[key], atol=1e-6)


@pytest.mark.large  # ~8-20 s: a second TensorFlow process
def test_keras_file_reloads_in_fresh_process(tmp_path):
    inputs = keras.Input((6, 4))
    vq = Q.VectorQuantizer(8, ema=True, name="vq")(inputs)
    rvq = Q.ResidualVectorQuantizer(2, 8, name="rvq")(inputs)
    outputs = {
        "vq": vq["quantized"],
        "vq_idx": vq["indices"],
        "rvq": rvq["quantized"],
        "fsq": Q.FiniteScalarQuantizer([3, 3, 4, 5], name="fsq")(inputs)[
            "indices"
        ],
        "fq": Q.FakeQuant(axis=-1, name="fq")(inputs),
        "bh": Q.BinaryHash(name="bh")(inputs),
    }
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(1).normal(size=(2, 6, 4)).astype("float32")
    expected = {k: np.asarray(v) for k, v in model(x).items()}
    path = str(tmp_path / "quant.keras")
    model.save(path)
    np.savez(str(tmp_path / "io.npz"), x=x, **expected)
    script = textwrap.dedent(
        f"""
        import keras, numpy as np
        import official.quantization
        data = np.load({str(tmp_path / "io.npz")!r})
        model = keras.models.load_model({path!r})
        out = model(data["x"])
        for k, v in out.items():
            np.testing.assert_allclose(np.asarray(v), data[k], atol=1e-6)
        print("RELOAD_OK", sorted(out))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "RELOAD_OK" in result.stdout, result.stderr[-3000:]


def test_all_ops_compile_with_xla():
    x = tf.constant(
        np.random.default_rng(2).normal(size=(4, 6, 4)).astype("float32")
    )
    eager_rvq = Q.ResidualVectorQuantizer(2, 8, ema=True, decay=0.8, seed=0)
    jit_rvq = Q.ResidualVectorQuantizer(2, 8, ema=True, decay=0.8, seed=0)
    fsq = Q.FiniteScalarQuantizer([3, 3, 4, 5])
    eager_rvq.build((None, 4))
    jit_rvq.build((None, 4))
    jit_rvq.set_weights(eager_rvq.get_weights())

    def run(x, rvq):
        out = rvq(x, training=True)
        return {
            "rvq": out["quantized"],
            "rvq_loss": out["loss"],
            "fsq": fsq(x)["indices"],
            "fq": Q.fake_quant(x, axis=-1),
            "bh": Q.binary_hash(x),
        }

    compiled = tf.function(lambda x: run(x, jit_rvq), jit_compile=True)
    got, want = compiled(x), run(x, eager_rvq)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)
    for a, b in zip(jit_rvq.get_weights(), eager_rvq.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5)  # EMA ran under XLA


@keras.saving.register_keras_serializable(package="garden_tests")
class TinyVQAutoencoder(GardenModel):
    input_names = ("x",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder = keras.layers.Dense(4)
        self.quantizer = Q.VectorQuantizer(8, ema=True, decay=0.9, seed=0)
        self.decoder = keras.layers.Dense(6)

    def call(self, x, training=False):
        out = self.quantizer(self.encoder(x), training=training)
        return {"recon": self.decoder(out["quantized"]), "vq": out["loss"]}

    def task_loss(self, x, y, y_pred, sample_weight=None):
        mse = keras.ops.mean(keras.ops.square(x - y_pred["recon"]))
        return mse + y_pred["vq"]


def test_ema_updates_inside_compiled_fit_only():
    x = np.random.default_rng(3).normal(size=(32, 6)).astype("float32")
    model = TinyVQAutoencoder()
    model.compile(jit_compile=True)
    model(x[:8])
    book = model.quantizer.codebook.numpy().copy()
    enc = model.encoder.kernel.numpy().copy()
    model.predict(x, batch_size=8, verbose=0)
    np.testing.assert_array_equal(model.quantizer.codebook.numpy(), book)
    np.testing.assert_array_equal(model.quantizer.cluster_size.numpy(), 1.0)
    model.fit(x, batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(model.quantizer.codebook.numpy(), book)
    assert not np.allclose(model.quantizer.cluster_size.numpy(), 1.0)
    # The straight-through estimator lets the decoder loss train the encoder.
    assert not np.allclose(model.encoder.kernel.numpy(), enc)


@pytest.mark.parametrize(
    "name",
    ["fake_quant", "binary_hash", "vector_quantizer", "residual_vq", "fsq"],
)
def test_docstring_examples_run(name):
    # Submodules by path: the package re-exports functions of the same name.
    module = importlib.import_module(f"official.quantization.{name}")
    globs = {"np": np, "official": official}
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, globs=globs) if t.examples]
    assert tests, module.__name__
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
