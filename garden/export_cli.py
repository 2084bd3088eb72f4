"""`garden export`: a saved `.keras` model to SavedModel, LiteRT or ONNX.

Reports the file size and the agreement with the Keras model: the max abs
difference for float exports; for quantized LiteRT files, the top-1
agreement (classifiers) or the relative error of every output, measured on
`samples` inputs, next to the size of the float file.
"""

import os
import tempfile

import numpy as np

import garden
from official import export
from official.export.signature import flatten_outputs


def _example_inputs_for(model, batch_size, seed):
    entry = garden.get_entry(type(model).registry_name)
    return entry.example_inputs(model.get_config(), batch_size, seed)


def _representative(model, samples, data):
    if data is None:
        return [_example_inputs_for(model, 1, seed) for seed in
                range(samples)]
    from garden.train import dataset_for_model

    ds = dataset_for_model(model, data, split="train", batch_size=1,
                           seed=0, shuffle=False)
    out = []
    for batch in ds.take(samples):
        batch = {k: v.numpy() for k, v in batch.items() if k != "labels"}
        out.append(batch)
    return out


def _size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f))
                   for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def export_file(path, fmt, out=None, quantize=None, data=None, samples=200):
    model = garden.load(path)
    suffix = {"saved_model": "_saved_model", "tflite": ".tflite",
              "onnx": ".onnx"}[fmt]
    if out is None:
        tag = f"_{quantize}" if quantize else ""
        out = os.path.splitext(path)[0] + tag + suffix
    report = {"model": type(model).registry_name, "format": fmt,
              "path": out, "quantize": quantize}
    if quantize is None:
        x = _example_inputs_for(model, 2, 0)
        model(x, training=False)
        export.export_model(model, out, x, format=fmt)
        diffs = export.check_parity(model, out, x)
        report.update(bytes=_size(out), max_abs_diff=max(diffs.values()))
        return report
    rep = _representative(model, samples, data)
    model(rep[0], training=False)
    export.export_model(model, out, rep[0], format=fmt, quantize=quantize,
                        representative_data=rep)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = os.path.join(tmp, "float.tflite")
        export.export_model(model, float_path, rep[0], format="tflite")
        report["float_bytes"] = _size(float_path)
    report["bytes"] = _size(out)
    report["size_ratio"] = report["float_bytes"] / report["bytes"]
    report.update(agreement(model, out, rep))
    return report


def agreement(model, path, inputs):
    """Top-1 agreement for logits outputs, relative L2 error for the rest."""
    agree, rel = [], {}
    for x in inputs:
        want = {k: np.asarray(v) for k, v in
                flatten_outputs(model(x, training=False)).items()}
        got = export.run_exported(path, x)
        got = dict(zip(sorted(want), [got[k] for k in sorted(got)]))
        for key, w in want.items():
            g = got[key].astype(np.float64)
            rel.setdefault(key, []).append(
                float(np.linalg.norm(g - w) / (np.linalg.norm(w) + 1e-12)))
        if list(want) == ["output"] and want["output"].ndim == 2:
            agree.append(float(np.mean(
                np.argmax(got["output"], -1) == np.argmax(want["output"],
                                                          -1))))
    result = {"samples": len(inputs),
              "relative_error": {k: float(np.mean(v)) for k, v in
                                 rel.items()}}
    if agree:
        result["top1_agreement"] = float(np.mean(agree))
    return result
