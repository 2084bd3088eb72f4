"""`export_model`: one entry point for SavedModel, LiteRT and ONNX."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from official.export.onnx_handlers import register_onnx_handlers
from official.export.signature import serving_function

FORMATS = ("saved_model", "tflite", "onnx")


class ExportError(RuntimeError):
    """Raised when a converter fails or writes an invalid file."""


def export_model(model, path, example_inputs, format="tflite",
                 quantize=None, representative_data=None, opset=17,
                 dynamic_batch=False):
    """Exports `model` to `path` in `format`; returns the path.

    Args:
        model: a called/built Keras model.
        path: output file (`.tflite`, `.onnx`) or directory (SavedModel).
        example_inputs: inputs `model(...)` accepts; they fix the signature
            (names, dtypes, shapes).
        format: "saved_model", "tflite" or "onnx".
        quantize: TFLite only: None, "dynamic" (int8 weights) or "int8"
            (full integer with float input/output, needs
            `representative_data`, an iterable of input dicts/arrays).
        opset: ONNX opset.
        dynamic_batch: leave the batch dimension unknown in the signature.
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format '{format}'; expected one of "
                         f"{FORMATS}.")
    if quantize is not None and format != "tflite":
        raise ValueError("quantize= is only supported for format='tflite'.")
    serve, names = serving_function(model, example_inputs, dynamic_batch)
    concrete = serve.get_concrete_function()
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    if format == "saved_model":
        _save(model, serve, concrete, path)
    elif format == "tflite":
        with tempfile.TemporaryDirectory() as tmp:
            # Through a SavedModel: the converter then freezes the variables
            # (from_concrete_functions keeps them as resource variables that
            # the LiteRT interpreter reads as NaN / fails on).
            _save(model, serve, concrete, tmp)
            _export_tflite(tmp, path, names, quantize, representative_data)
    else:
        _export_onnx(serve, path, opset)
    return path


def _save(model, serve, concrete, path):
    # keras.export.ExportArchive tracks the backend tf.Variables behind the
    # Keras variables (a bare tf.Module does not, and LiteRT then reads NaN).
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve.python_function,
                         input_signature=serve.input_signature)
    archive.write_out(path, verbose=False)


def _export_tflite(saved_model_dir, path, names, quantize,
                   representative_data):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    # Builtin ops only: the Python interpreters have no Flex delegate, so a
    # Flex op must fail here, at conversion, not at run time.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if representative_data is None:
            raise ValueError("quantize='int8' needs representative_data.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def gen():
            for sample in representative_data:
                if isinstance(sample, dict):
                    yield [np.asarray(sample[n], np.float32) for n in names]
                else:
                    yield [np.asarray(sample, np.float32)]

        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        ]
    elif quantize is not None:
        raise ValueError(
            f"Unknown quantize='{quantize}'; expected None, 'dynamic' or "
            "'int8'."
        )
    try:
        flatbuffer = converter.convert()
    except Exception as e:  # converter errors come in many types
        raise ExportError(f"TFLite conversion failed: {e}") from e
    with open(path, "wb") as f:
        f.write(flatbuffer)


def _export_onnx(serve, path, opset):
    import onnx
    import tf2onnx

    register_onnx_handlers()
    try:
        model_proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=serve.input_signature, opset=opset,
            output_path=path,
        )
        # tf2onnx reports success while writing invalid files: check it.
        onnx.checker.check_model(model_proto)
        _check_onnxruntime_loads(path)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"ONNX conversion failed: {e}") from e


def _check_onnxruntime_loads(path):
    import onnxruntime as ort

    try:
        ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ExportError(f"onnxruntime cannot load {path}: {e}") from e
