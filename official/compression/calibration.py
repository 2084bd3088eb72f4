"""Static-calibration int8 PTQ (survey T2; spec 2.1, 2.2).

Keras' `quantize("int8")` quantizes the inputs of every Dense/EinsumDense
dynamically: s_x = 127 / max|x| per row, recomputed at every call. Static
quantization instead fixes one activation range per layer from calibration
data (Jacob et al. 2018, sec. 3; Wu et al. 2020, "Integer Quantization for
Deep Learning Inference", sec. 4.1 "max" and "percentile" calibration):

1. `model.quantize("int8")` (per-output-channel symmetric int8 weights);
2. every quantized layer's input quantizer is swapped for a recorder that
   passes through the dynamic quantization and records |x| on N calibration
   batches (so later layers see the activations of the quantized earlier
   layers, "sequential" calibration);
3. each layer gets a frozen `StaticActivationQuantizer(amax)` with
   amax = max |x| ("absmax") or the p-th percentile of |x| ("percentile",
   p = 99.99 by default, which clips rare outliers).

Static inputs: q = clip(round(x * 127 / amax), -127, 127); the layer then
computes y = (q_x @ q_W) / (s_x * s_W) exactly as Keras' dynamic path does
(Keras' scales are multiplicative: s = 127 / amax, x ~ q / s).

The quantizer is registered (package `garden`) and stored in the layer's
`quantization_config`, so a quantized functional or garden model keeps its
static ranges through `.keras` save/load (`GardenModel` imports this module
before it deserializes a quantization record).
"""

import keras
import numpy as np
from keras import ops

from official.compression.layer_keys import index_layers
from official.compression.layer_keys import layer_key
from official.compression.layer_keys import resolve
from official.compression.ptq import quantize_model
from official.registry import register_layer

METHODS = ("absmax", "percentile")


@register_layer()
class StaticActivationQuantizer(keras.quantizers.Quantizer):
    """Per-tensor int8 quantizer with a fixed range [-amax, amax].

    Called by Keras' int8 `Dense`/`EinsumDense` as `quantizer(x, axis=...)`;
    returns `(q, scale)` with q int8 in [lo, hi] and the multiplicative scale
    127 / amax as a tensor of rank `x.ndim` with every dimension 1 (it
    broadcasts wherever Keras' per-row scale would).

    Args:
        amax: float > 0. Calibrated absolute range.
        value_range: (lo, hi). The integer grid; (-127, 127) is symmetric.
        output_dtype: "int8".
    """

    def __init__(self, amax, value_range=(-127, 127), output_dtype="int8"):
        super().__init__(output_dtype=output_dtype)
        amax = float(amax)
        if not amax > 0:
            raise ValueError(
                f"StaticActivationQuantizer: amax must be > 0; got {amax}.")
        self.amax = amax
        self.value_range = tuple(value_range)

    def __call__(self, x, axis=None, to_numpy=False):
        x = ops.convert_to_tensor(x)
        scale = float(self.value_range[1]) / self.amax
        q = ops.clip(ops.round(x * ops.cast(scale, x.dtype)),
                     self.value_range[0], self.value_range[1])
        scale_t = ops.full((1,) * len(x.shape), scale, dtype=x.dtype)
        return ops.cast(q, self.output_dtype), scale_t

    def get_config(self):
        return {"amax": self.amax, "value_range": list(self.value_range),
                "output_dtype": self.output_dtype}


class _RangeRecorder(keras.quantizers.Quantizer):
    """Dynamic abs-max quantization that records |x| (eager calls only)."""

    def __init__(self, max_samples_per_call=65536, seed=0):
        super().__init__(output_dtype="int8")
        self.dynamic = keras.quantizers.AbsMaxQuantizer()
        self.max_samples = max_samples_per_call
        self.rng = np.random.default_rng(seed)
        self.amax = 0.0
        self.samples = []

    def __call__(self, x, axis=None, to_numpy=False):
        try:
            a = np.abs(ops.convert_to_numpy(x)).ravel()
        except Exception as e:  # symbolic tensor: not an eager call
            raise RuntimeError(
                "Calibration must run eagerly (call the model directly on "
                "concrete batches, not inside a compiled function)."
            ) from e
        self.amax = max(self.amax, float(a.max(initial=0.0)))
        if a.size > self.max_samples:
            a = self.rng.choice(a, self.max_samples, replace=False)
        self.samples.append(a)
        return self.dynamic(x, axis=axis)

    def range(self, method, percentile):
        if method == "absmax":
            return self.amax
        return float(np.percentile(np.concatenate(self.samples), percentile))


def _input_quantized_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False)
            if getattr(layer, "quantization_mode", None) == "int8"
            and getattr(layer, "inputs_quantizer", None) is not None]


def _reset_compiled_functions(model):
    model.train_function = None
    model.test_function = None
    model.predict_function = None


def calibrate(model, batches, method="absmax", percentile=99.99):
    """Records the input range of every int8 layer with an input quantizer.

    `model` must already be int8-quantized (`quantize_model`). Each batch
    is passed as `model(batch, training=False)` eagerly (a batch is whatever
    the model takes: an array or a dict of arrays).

    Returns:
        dict layer key (path without the model name,
        `official.compression.layer_keys`) -> amax (float), in model order.
    """
    if method not in METHODS:
        raise ValueError(f"calibrate: method must be one of {METHODS}; got "
                         f"'{method}'.")
    layers = _input_quantized_layers(model)
    if not layers:
        raise ValueError("calibrate: no int8 layer with an input quantizer; "
                         "quantize the model first.")
    saved = [layer.inputs_quantizer for layer in layers]
    recorders = [_RangeRecorder(seed=i) for i in range(len(layers))]
    try:
        for layer, rec in zip(layers, recorders):
            layer.inputs_quantizer = rec
        count = 0
        for batch in batches:
            model(batch, training=False)
            count += 1
        if count == 0:
            raise ValueError("calibrate: `batches` is empty.")
    finally:
        for layer, q in zip(layers, saved):
            layer.inputs_quantizer = q
    return {layer_key(model, layer): max(rec.range(method, percentile),
                                          1e-12)
            for layer, rec in zip(layers, recorders)}


def apply_static_ranges(model, ranges):
    """Freezes `ranges` (layer key -> amax) as static input quantizers."""
    index = index_layers(model, _input_quantized_layers(model))
    for path, amax in ranges.items():
        try:
            layer = resolve(model, index, path)
        except KeyError as e:
            raise ValueError(f"apply_static_ranges: {e}") from None
        quantizer = StaticActivationQuantizer(amax)
        layer.inputs_quantizer = quantizer
        layer.quantization_config = keras.quantizers.Int8QuantizationConfig(
            activation_quantizer=quantizer)
    _reset_compiled_functions(model)


def quantize_int8_static(model, batches, method="absmax", percentile=99.99):
    """int8 weights + statically calibrated int8 activations.

    Returns:
        (QuantizationReport, ranges dict layer key -> amax).
    """
    report = quantize_model(model, "int8")
    ranges = calibrate(model, batches, method=method, percentile=percentile)
    apply_static_ranges(model, ranges)
    return report, ranges
