"""Symmetric int8 fake quantization with a straight-through gradient.

Quantization-aware training (Jacob et al. 2018, "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference", sec. 3):
the forward pass sees the de-quantized value `round(x / s) * s`, the
backward pass treats the rounding as the identity (straight-through
estimator, Bengio et al. 2013).
"""

import keras
from keras import ops

from official.registry import register_layer


def _reduce_axes(ndim, axis):
    """All axes except the channel `axis` (None: all axes)."""
    if axis is None:
        return tuple(range(ndim))
    axis = axis % ndim
    return tuple(a for a in range(ndim) if a != axis)


def quantization_scale(x, axis=None, num_bits=8):
    """Symmetric abs-max scale s = max|x| / (2^(b-1) - 1), keepdims.

    Per tensor when `axis` is None, else one scale per index of `axis`
    (per channel). For int8 the denominator is 127 (the grid is
    {-127, ..., 127}; -128 is never used, so the grid is symmetric).
    """
    qmax = float(2 ** (num_bits - 1) - 1)
    x = ops.convert_to_tensor(x)
    amax = ops.max(
        ops.abs(x), axis=_reduce_axes(len(x.shape), axis), keepdims=True
    )
    return amax / qmax


def fake_quant(x, axis=None, num_bits=8, max_value=None):
    """Quantize-dequantize `x` on a symmetric integer grid.

    Forward: `q = clip(round(x / s), -qmax, qmax) * s`, qmax = 2^(b-1) - 1,
    `round` is round-to-nearest, ties to even (`np.round` / `tf.round`).

    Scale:
      * `max_value=None` (dynamic, the default): s = max|x| / qmax, per
        tensor (`axis=None`) or per channel along `axis`. Nothing is ever
        outside the grid, so the gradient is exactly the identity.
      * `max_value` given (static / calibrated range, scalar or a tensor
        broadcastable to `x`): s = max_value / qmax and `x` is first clipped
        to [-max_value, max_value]. The gradient is 1 inside that range and 0
        outside it (the clipped-STE of QAT).

    Backward: implemented as `x_c + stop_gradient(q - x_c)` (straight-
    through), with x_c = x (dynamic) or clip(x) (static). A zero scale (an
    all-zero channel) returns zeros without dividing by zero.

    Args:
        x: float tensor.
        axis: int or None. Channel axis for per-channel scales (e.g. -1 for
            the output channels of a Dense kernel); None = per tensor.
            Ignored when `max_value` is given.
        num_bits: int. Bit width; 8 gives the int8 grid [-127, 127].
        max_value: None, float or tensor. Static clipping range.

    Returns:
        Tensor like `x` with values on the grid `s * {-qmax, ..., qmax}`.
    """
    if num_bits < 2:
        raise ValueError(f"fake_quant: num_bits must be >= 2; got {num_bits}.")
    qmax = float(2 ** (num_bits - 1) - 1)
    x = ops.convert_to_tensor(x)
    if max_value is None:
        scale = quantization_scale(x, axis=axis, num_bits=num_bits)
        x_c = x
    else:
        max_value = ops.cast(max_value, x.dtype)
        scale = max_value / qmax
        x_c = ops.clip(x, -max_value, max_value)
    safe_scale = ops.where(scale > 0, scale, ops.ones_like(scale))
    q = ops.clip(ops.round(x_c / safe_scale), -qmax, qmax) * safe_scale
    q = ops.where(scale > 0, q, ops.zeros_like(q))
    return x_c + ops.stop_gradient(q - x_c)


@register_layer()
class FakeQuant(keras.layers.Layer):
    """Symmetric int-`num_bits` fake quantization of its input (no weights).

    Wraps `official.quantization.fake_quant`: the output holds the
    de-quantized values, the gradient passes straight through (identity;
    zero outside [-max_value, max_value] when a static `max_value` is set).
    Active in training and inference alike.

    Args:
        axis: int or None. Per-channel axis; None = one scale per tensor.
        num_bits: int. 8 = int8 grid [-127, 127] with s = max|x| / 127.
        max_value: float or None. Static clipping range instead of the
            dynamic abs-max.

    Example:
    >>> layer = official.quantization.FakeQuant(axis=None)
    >>> y = layer(np.array([127.0, 0.5, 1.5, -2.5], "float32"))
    >>> np.asarray(y).tolist()  # scale 1; ties round to even
    [127.0, 0.0, 2.0, -2.0]
    """

    def __init__(self, axis=None, num_bits=8, max_value=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.num_bits = num_bits
        self.max_value = max_value

    def call(self, inputs):
        return fake_quant(
            inputs,
            axis=self.axis,
            num_bits=self.num_bits,
            max_value=self.max_value,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "num_bits": self.num_bits,
            "max_value": self.max_value,
        }
