"""Run exported artifacts with their own runtimes (not TensorFlow's Keras)."""

import os

import numpy as np

from official.export.signature import as_named_inputs


def run_exported(path, inputs):
    """Runs a `.tflite`, `.onnx` or SavedModel dir; returns a dict of arrays."""
    named = as_named_inputs(inputs)
    if path.endswith(".tflite"):
        return run_tflite(path, named)
    if path.endswith(".onnx"):
        return run_onnx(path, named)
    if os.path.isdir(path):
        return run_saved_model(path, named)
    raise ValueError(f"Cannot tell the format of '{path}'.")


def _base_name(name):
    # "serving_default_images:0" / "images:0" -> "images"
    name = name.split(":")[0]
    for prefix in ("serving_default_",):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def run_tflite(path, named):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    runner = interpreter.get_signature_runner()
    feed = {}
    details = runner.get_input_details()
    for key in details:
        feed[key] = np.asarray(named[_base_name(key)],
                               details[key]["dtype"])
    out = runner(**feed)
    return {k: np.asarray(v) for k, v in out.items()}


def run_onnx(path, named):
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {}
    for spec in session.get_inputs():
        feed[spec.name] = named[_base_name(spec.name)]
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feed)
    return {_base_name(n): np.asarray(v) for n, v in zip(names, values)}


def run_saved_model(path, named):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    fn = loaded.signatures["serving_default"]
    out = fn(**{k: tf.constant(v) for k, v in named.items()})
    return {k: v.numpy() for k, v in out.items()}
